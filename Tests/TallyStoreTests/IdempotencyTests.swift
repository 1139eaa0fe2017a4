import TallyCore
import TallyTestSupport
import Testing

@testable import TallyStore

private func idempotencyFixture(_ ledger: Ledger) throws {
  try applyAll(
    ledger,
    [
      partner("acme", name: "Acme", metadata: meta(("tier", "gold"))),
      open("cash"),
      open(
        "wallet", normal: .credit, noOverdraft: true, limit: 10_000, partner: "acme",
        metadata: meta(("kyc", "full"))),
      open("fees", normal: .credit),
      asset("TOKEN", scale: 4, name: "Token"),
    ])
}

private let entryE1 = post(
  "e1", [debit("cash", 100), credit("wallet", 100)], ref: "INV-1", valueDate: 19782,
  metadata: meta(("channel", "card")))

@Suite("Idempotency")
struct IdempotencyTests {
  @Test("The same entry twice is a duplicate of the original seq; head and chain unchanged")
  func sameEntryTwice() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      let seq = try expectApplied(ledger, entryE1)
      let head = try ledger.currentHead()
      try expectDuplicate(ledger, entryE1, of: seq)
      // Later, after other activity and with another clock, still the original seq.
      try expectApplied(ledger, transfer("e2", from: "fees", to: "cash", 5))
      try expectDuplicate(ledger, entryE1, of: seq, now: t0 + 3600 * oneSecond)
      #expect(try ledger.currentHead().seq == head.seq + 1)
      #expect(try ledger.balances("wallet").postedCredits == 100)
    }
  }

  @Test("A repeated entry in the same batch is a duplicate of the first one")
  func sameEntryInOneBatch() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      let before = ledger.head.seq
      let out = try ledger.apply([entryE1, entryE1], now: t0)
      #expect(out == [.applied(firstSeq: before + 1, count: 1), .duplicate(seq: before + 1)])
      #expect(ledger.head.seq == before + 1)
      #expect(try ledger.balances("cash").postedDebits == 100)
    }
  }

  @Test(
    "The same id with different content is ID_CONFLICT naming the first differing field",
    arguments: [
      (
        "legs",
        post(
          "e1", [debit("cash", 101), credit("wallet", 101)], ref: "INV-1", valueDate: 19782,
          metadata: meta(("channel", "card")))
      ),
      (
        "legs",
        post(
          "e1", [credit("wallet", 100), debit("cash", 100)], ref: "INV-1", valueDate: 19782,
          metadata: meta(("channel", "card")))
      ),
      (
        "legs",
        post(
          "e1", [debit("cash", 100), credit("fees", 100)], ref: "INV-1", valueDate: 19782,
          metadata: meta(("channel", "card")))
      ),
      (
        "ref",
        post(
          "e1", [debit("cash", 100), credit("wallet", 100)], ref: "INV-2", valueDate: 19782,
          metadata: meta(("channel", "card")))
      ),
      (
        "ref",
        post(
          "e1", [debit("cash", 100), credit("wallet", 100)], valueDate: 19782,
          metadata: meta(("channel", "card")))
      ),
      (
        "value_date",
        post(
          "e1", [debit("cash", 100), credit("wallet", 100)], ref: "INV-1", valueDate: 19783,
          metadata: meta(("channel", "card")))
      ),
      (
        "metadata",
        post(
          "e1", [debit("cash", 100), credit("wallet", 100)], ref: "INV-1", valueDate: 19782,
          metadata: meta(("channel", "sepa")))
      ),
      (
        "metadata",
        post(
          "e1", [debit("cash", 100), credit("wallet", 100)], ref: "INV-1", valueDate: 19782)
      ),
      ("kind", hold("e1", [debit("cash", 100), credit("wallet", 100)], ref: "INV-1")),
      ("reversal_of", reverse("e1", of: "e0")),
    ] as [(String, Command)])
  func conflictNamesField(field: String, command: Command) throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      try applyAll(ledger, [transfer("e0", from: "fees", to: "cash", 1)])
      let seq = try expectApplied(ledger, entryE1)
      let r = try expectRejected(ledger, command, code: .idConflict)
      #expect(r?.details["field"] == field)
      #expect(r?.details["id"] == "e1")
      #expect(r?.details["seq"] == String(seq))
    }
  }

  @Test("The currency assertion is not part of an entry's content")
  func currencyAssertionIsNotContent() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      let seq = try expectApplied(ledger, post("e", [debit("cash", 5), credit("fees", 5)]))
      try expectDuplicate(
        ledger, post("e", [debit("cash", 5, currency: "EUR"), credit("fees", 5)], currency: "EUR"),
        of: seq)
    }
  }

  @Test("A repeated entry is a duplicate even after its accounts were closed")
  func duplicateAfterClose() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      try applyAll(ledger, [open("x"), open("y", normal: .credit)])
      let seq = try expectApplied(ledger, post("e", [debit("x", 5), credit("y", 5)]))
      try applyAll(ledger, [reverse("e-rev", of: "e"), close("x"), close("y")])
      try expectDuplicate(ledger, post("e", [debit("x", 5), credit("y", 5)]), of: seq)
    }
  }

  @Test("Opening an identical account is a duplicate; any other attribute is ALREADY_EXISTS")
  func accountReopen() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      let opened = try #require(try ledger.account("wallet")?.record.openedSeq)
      let same = open(
        "wallet", normal: .credit, noOverdraft: true, limit: 10_000, partner: "acme",
        metadata: meta(("kyc", "full")))
      try expectDuplicate(ledger, same, of: opened)
      let variants: [(String, Command)] = [
        (
          "partner",
          open(
            "wallet", normal: .credit, noOverdraft: true, limit: 10_000,
            metadata: meta(("kyc", "full")))
        ),
        (
          "currency",
          open(
            "wallet", "USD", normal: .credit, noOverdraft: true, limit: 10_000, partner: "acme",
            metadata: meta(("kyc", "full")))
        ),
        (
          "normal_side",
          open(
            "wallet", normal: .debit, noOverdraft: true, limit: 10_000, partner: "acme",
            metadata: meta(("kyc", "full")))
        ),
        (
          "no_overdraft",
          open(
            "wallet", normal: .credit, noOverdraft: false, limit: 10_000, partner: "acme",
            metadata: meta(("kyc", "full")))
        ),
        (
          "limit",
          open(
            "wallet", normal: .credit, noOverdraft: true, limit: 10_001, partner: "acme",
            metadata: meta(("kyc", "full")))
        ),
        (
          "limit",
          open(
            "wallet", normal: .credit, noOverdraft: true, partner: "acme",
            metadata: meta(("kyc", "full")))
        ),
        (
          "metadata",
          open(
            "wallet", normal: .credit, noOverdraft: true, limit: 10_000, partner: "acme")
        ),
      ]
      for (field, command) in variants {
        let r = try expectRejected(ledger, command, code: .alreadyExists)
        #expect(r?.details["field"] == field)
        #expect(r?.details["account"] == "wallet")
      }
    }
  }

  @Test("Creating an identical partner is a duplicate; another name or metadata is ALREADY_EXISTS")
  func partnerRecreate() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      let created = try #require(try ledger.partners().first { $0.id == "acme" }?.createdSeq)
      try expectDuplicate(
        ledger, partner("acme", name: "Acme", metadata: meta(("tier", "gold"))),
        of: created)
      try expectDuplicate(ledger, partner(Machine.platformPartner, name: "Platform"), of: 1)
      let r1 = try expectRejected(
        ledger, partner("acme", name: "ACME", metadata: meta(("tier", "gold"))),
        code: .alreadyExists)
      #expect(r1?.details["field"] == "name")
      let r2 = try expectRejected(ledger, partner("acme", name: "Acme"), code: .alreadyExists)
      #expect(r2?.details["field"] == "metadata")
    }
  }

  @Test("Declaring an identical asset is a duplicate; another scale or name is ALREADY_EXISTS")
  func assetRedeclare() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      let declared = try #require(try ledger.assets().first?.declaredSeq)
      try expectDuplicate(ledger, asset("TOKEN", scale: 4, name: "Token"), of: declared)
      let r1 = try expectRejected(
        ledger, asset("TOKEN", scale: 2, name: "Token"),
        code: .alreadyExists)
      #expect(r1?.details["field"] == "scale")
      let r2 = try expectRejected(
        ledger, asset("TOKEN", scale: 4, name: "Tok"),
        code: .alreadyExists)
      #expect(r2?.details["field"] == "name")
    }
  }

  @Test("A repeated hold is a duplicate; another deadline or amount is ID_CONFLICT")
  func holdRepeat() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      let h = hold("h", [debit("cash", 10), credit("fees", 10)], deadline: t0 + oneSecond)
      let seq = try expectApplied(ledger, h)
      try expectDuplicate(ledger, h, of: seq)
      // The deadline has passed by now; the duplicate check comes first.
      try expectDuplicate(ledger, h, of: seq, now: t0 + 10 * oneSecond)
      let r1 = try expectRejected(
        ledger, hold("h", [debit("cash", 10), credit("fees", 10)], deadline: t0 + 2 * oneSecond),
        code: .idConflict)
      #expect(r1?.details["field"] == "deadline")
      let r2 = try expectRejected(
        ledger, hold("h", [debit("cash", 11), credit("fees", 11)], deadline: t0 + oneSecond),
        code: .idConflict)
      #expect(r2?.details["field"] == "legs")
      let r3 = try expectRejected(
        ledger, post("h", [debit("cash", 10), credit("fees", 10)]), code: .idConflict)
      #expect(r3?.details["field"] == "kind")
    }
  }

  @Test("Repeating a capture with the same amounts is a duplicate of the capture")
  func captureRepeat() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      try expectApplied(ledger, hold("h", [debit("cash", 10), credit("fees", 10)]))
      let seq = try expectApplied(ledger, capture("h", .uniform(7)))
      try expectDuplicate(ledger, capture("h", .uniform(7)), of: seq)
      try expectDuplicate(ledger, capture("h", .perLeg([7, 7])), of: seq)
      try expectRejected(ledger, capture("h", .uniform(6)), code: .holdNotPending)
      try expectRejected(ledger, capture("h"), code: .holdNotPending)
      try expectRejected(ledger, release("h"), code: .holdNotPending)
      #expect(try ledger.balances("cash").postedDebits == 7)
      #expect(try ledger.balances("cash").pendingDebits == 0)
    }
  }

  @Test("Releasing twice is a duplicate; capturing after a release is HOLD_NOT_PENDING")
  func releaseRepeat() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      try expectApplied(ledger, hold("h", [debit("cash", 10), credit("fees", 10)]))
      let seq = try expectApplied(ledger, release("h"))
      try expectDuplicate(ledger, release("h"), of: seq)
      let r = try expectRejected(ledger, capture("h"), code: .holdNotPending)
      #expect(r?.details["state"] == "released")
      #expect(try ledger.hold("h")?.state == .released)
      #expect(try ledger.hold("h")?.resolvedSeq == seq)
    }
  }

  @Test("Closing a closed account is a duplicate of the close")
  func closeRepeat() throws {
    try withLedger { ledger in
      try idempotencyFixture(ledger)
      try expectApplied(ledger, open("spare"))
      let seq = try expectApplied(ledger, close("spare"))
      try expectDuplicate(ledger, close("spare"), of: seq)
      #expect(try ledger.account("spare")?.record.closedSeq == seq)
      // Re-opening a closed account with the same attributes is a duplicate of the open too.
      let opened = try #require(try ledger.account("spare")?.record.openedSeq)
      try expectDuplicate(ledger, open("spare"), of: opened)
      #expect(try ledger.account("spare")?.record.status == .closed)
    }
  }

  @Test("Duplicates are recognised after the ledger is closed and reopened")
  func duplicateAcrossReopen() throws {
    try withTempDir { dir in
      var seq: UInt64 = 0
      do {
        let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
        try idempotencyFixture(ledger)
        seq = try expectApplied(ledger, entryE1)
      }
      let reopened = try Ledger(path: dir.ledgerPath)
      try expectDuplicate(reopened, entryE1, of: seq)
      try expectRejected(
        reopened, post("e1", [debit("cash", 1), credit("wallet", 1)]), code: .idConflict)
    }
  }
}
