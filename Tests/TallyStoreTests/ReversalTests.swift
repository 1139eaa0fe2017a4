import TallyCore
import Testing

@testable import TallyStore

private func reversalFixture(_ ledger: Ledger) throws {
  try applyAll(
    ledger,
    [
      open("cash"), open("wallet", normal: .credit, noOverdraft: true),
      open("fees", normal: .credit),
    ])
}

@Suite("Reversals")
struct ReversalTests {
  @Test("A reversal mirrors every leg, references the original and restores the balances")
  func reversalMirrors() throws {
    try withLedger { ledger in
      try reversalFixture(ledger)
      let before = try ledger.allAccounts().map(\.balances)
      let original = try expectApplied(
        ledger,
        post(
          "e", [debit("cash", 100), credit("wallet", 70), credit("fees", 30)], ref: "INV-9",
          valueDate: 19782, metadata: meta(("channel", "card"))))
      let seq = try expectApplied(
        ledger, reverse("e-rev", of: "e", metadata: meta(("reason", "duplicate"))))
      let body = try #require(try ledger.log(fromSeq: seq, limit: 1).first?.event.body)
      #expect(
        body
          == .entryPosted(
            EntryPosted(
              id: "e-rev",
              legs: [
                Leg(account: "cash", side: .credit, amountMinor: 100),
                Leg(account: "wallet", side: .debit, amountMinor: 70),
                Leg(account: "fees", side: .debit, amountMinor: 30),
              ], ref: "INV-9", valueDateDays: 19782, reversalOf: "e",
              metadata: meta(("reason", "duplicate")))))
      let after = try ledger.allAccounts().map(\.balances)
      #expect(after.map { $0.balance(normal: .debit) } == before.map { $0.balance(normal: .debit) })
      #expect(
        try ledger.balances("cash")
          == Balances(
            postedDebits: 100, postedCredits: 100, pendingDebits: 0, pendingCredits: 0))
      #expect(try ledger.idRecord("e") == IdRecord(seq: original, kind: .entry, reversedBySeq: seq))
      #expect(try ledger.idRecord("e-rev") == IdRecord(seq: seq, kind: .entry))
    }
  }

  @Test("An entry is reversed at most once: a second reversal is ALREADY_REVERSED")
  func secondReversalRefused() throws {
    try withLedger { ledger in
      try reversalFixture(ledger)
      try expectApplied(ledger, post("e", [debit("cash", 10), credit("fees", 10)]))
      let seq = try expectApplied(ledger, reverse("r1", of: "e"))
      let r = try expectRejected(ledger, reverse("r2", of: "e"), code: .alreadyReversed)
      #expect(r?.details["seq"] == String(seq))
      #expect(r?.details["entry"] == "e")
    }
  }

  @Test("The same reversal repeated is a duplicate; other content under its id is ID_CONFLICT")
  func reversalIdempotency() throws {
    try withLedger { ledger in
      try reversalFixture(ledger)
      try applyAll(
        ledger,
        [
          post("e", [debit("cash", 10), credit("fees", 10)]),
          post("f", [debit("cash", 20), credit("fees", 20)]),
        ])
      let seq = try expectApplied(ledger, reverse("r", of: "e", metadata: meta(("why", "x"))))
      try expectDuplicate(ledger, reverse("r", of: "e", metadata: meta(("why", "x"))), of: seq)
      let r1 = try expectRejected(ledger, reverse("r", of: "f"), code: .idConflict)
      #expect(r1?.details["field"] == "reversal_of")
      let r2 = try expectRejected(
        ledger, reverse("r", of: "e", metadata: meta(("why", "y"))), code: .idConflict)
      #expect(r2?.details["field"] == "metadata")
      // A reversal id that names an ordinary entry, and an entry repeating a reversal's id.
      let r3 = try expectRejected(ledger, reverse("f", of: "e"), code: .idConflict)
      #expect(r3?.details["field"] == "reversal_of")
      let r4 = try expectRejected(
        ledger, post("r", [credit("cash", 10), debit("fees", 10)], metadata: meta(("why", "x"))),
        code: .idConflict)
      #expect(r4?.details["field"] == "reversal_of")
    }
  }

  @Test("Reversing a missing entry or a hold is ENTRY_NOT_FOUND")
  func missingEntry() throws {
    try withLedger { ledger in
      try reversalFixture(ledger)
      try expectApplied(ledger, hold("h", [debit("cash", 10), credit("fees", 10)]))
      try expectRejected(ledger, reverse("r", of: "nope"), code: .entryNotFound)
      try expectRejected(ledger, reverse("r", of: "h"), code: .entryNotFound)
    }
  }

  @Test("A reversal is validated like any entry: it can be INSUFFICIENT_FUNDS or ACCOUNT_CLOSED")
  func reversalFollowsTheRules() throws {
    try withLedger { ledger in
      try reversalFixture(ledger)
      try applyAll(
        ledger,
        [
          post("fund", [debit("cash", 500), credit("wallet", 500)]),
          post("spend", [debit("wallet", 400), credit("cash", 400)]),
        ])
      // Undoing the funding would take the wallet to −400.
      let r = try expectRejected(ledger, reverse("fund-rev", of: "fund"), code: .insufficientFunds)
      #expect(r?.details["account"] == "wallet")
      try applyAll(
        ledger,
        [
          open("x"), open("y", normal: .credit),
          post("e", [debit("x", 5), credit("y", 5)]),
          post("back", [debit("y", 5), credit("x", 5)]),
          close("x"),
        ])
      try expectRejected(ledger, reverse("e-rev", of: "e"), code: .accountClosed)
    }
  }

  @Test("A reversal can itself be reversed once, restoring the original effect")
  func reversalOfReversal() throws {
    try withLedger { ledger in
      try reversalFixture(ledger)
      try applyAll(
        ledger,
        [
          post("e", [debit("cash", 10), credit("fees", 10)]),
          reverse("r1", of: "e"),
          reverse("r2", of: "r1"),
        ])
      #expect(try ledger.balances("fees").balance(normal: .credit) == 10)
      try expectRejected(ledger, reverse("r3", of: "r1"), code: .alreadyReversed)
      try expectRejected(ledger, reverse("r4", of: "e"), code: .alreadyReversed)
      #expect(try ledger.verify().ok)
    }
  }
}
