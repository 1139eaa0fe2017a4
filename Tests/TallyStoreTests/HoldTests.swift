import TallyCore
import Testing

@testable import TallyStore

/// `cash` EUR debit; `wallet` EUR credit no_overdraft funded with 500; `fees` EUR credit;
/// `capped` EUR credit with limit 1000.
private func holdFixture(_ ledger: Ledger) throws {
  try applyAll(
    ledger,
    [
      open("cash"), open("wallet", normal: .credit, noOverdraft: true),
      open("fees", normal: .credit),
      open("capped", normal: .credit, limit: 1000),
      post("fund", [debit("cash", 500), credit("wallet", 500)]),
    ])
}

private func bal(_ pd: Int128, _ pc: Int128, _ qd: Int128 = 0, _ qc: Int128 = 0) -> Balances {
  Balances(postedDebits: pd, postedCredits: pc, pendingDebits: qd, pendingCredits: qc)
}

@Suite("Holds")
struct HoldTests {
  @Test("Placing a hold moves the pending columns, not the posted ones")
  func placeMovesPending() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      let seq = try expectApplied(
        ledger, hold("h1", [debit("wallet", 200), credit("cash", 200)], ref: "AUTH-1"))
      #expect(try ledger.balances("wallet") == bal(0, 500, 200, 0))
      #expect(try ledger.balances("cash") == bal(500, 0, 0, 200))
      let h = try #require(try ledger.hold("h1"))
      #expect(h.state == .pending)
      #expect(h.placedSeq == seq)
      #expect(h.resolvedSeq == 0)
      #expect(
        h.legs == [
          Leg(account: "wallet", side: .debit, amountMinor: 200),
          Leg(account: "cash", side: .credit, amountMinor: 200),
        ])
      #expect(try ledger.idRecord("h1") == IdRecord(seq: seq, kind: .hold))
    }
  }

  @Test("A ttl counts from placement: a request that waited past its ttl is still placed")
  func ttlCountsFromPlacement() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      // Sent with a ttl of 200 ms; the writer places it 5 s later (a queue, a stall). With
      // the deadline taken when the request arrived it would be in the past: INVALID_DEADLINE.
      let placedAt = t0 + 5 * oneSecond
      var spec = HoldSpec(id: "h-ttl", legs: [debit("wallet", 10), credit("cash", 10)])
      spec.ttlNanos = 200_000_000
      #expect(spec.deadlineIsRelative)
      try expectApplied(ledger, .placeHold(spec), now: placedAt)
      let h = try #require(try ledger.hold("h-ttl"))
      #expect(h.deadlineNanos == placedAt + 200_000_000)
      // A retry later computes another deadline; the first one stands and nothing is added.
      let head = ledger.head
      _ = try ledger.run(.placeHold(spec), now: placedAt + 10 * oneSecond)
      #expect(ledger.head == head)
      #expect(try ledger.hold("h-ttl")?.deadlineNanos == placedAt + 200_000_000)
    }
  }

  @Test("no_overdraft counts pending outflows: after holding everything, any spend is refused")
  func noOverdraftCountsPendingOutflows() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      try expectApplied(ledger, hold("all", [debit("wallet", 500), credit("cash", 500)]))
      let r = try expectRejected(
        ledger, post("spend", [debit("wallet", 1), credit("cash", 1)]), code: .insufficientFunds)
      #expect(r?.details["account"] == "wallet")
      try expectRejected(
        ledger, hold("more", [debit("wallet", 1), credit("cash", 1)]), code: .insufficientFunds)
      // Inflows are not counted as available until posted: a pending credit does not help.
      try expectApplied(ledger, hold("in", [debit("cash", 50), credit("wallet", 50)]))
      try expectRejected(
        ledger, post("spend2", [debit("wallet", 1), credit("cash", 1)]), code: .insufficientFunds)
      // Releasing the outflow frees the funds again.
      try expectApplied(ledger, release("all"))
      try expectApplied(ledger, post("spend3", [debit("wallet", 500), credit("cash", 500)]))
      #expect(try ledger.balances("wallet") == bal(500, 500, 0, 50))
    }
  }

  @Test("A limit counts pending inflows: a hold up to the limit blocks further credits")
  func limitCountsPendingInflows() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      try expectApplied(ledger, hold("h", [debit("cash", 1000), credit("capped", 1000)]))
      try expectRejected(
        ledger, post("e", [debit("cash", 1), credit("capped", 1)]), code: .limitExceeded)
      // Outflows never make a limit worse.
      try expectApplied(ledger, post("out", [debit("capped", 10), credit("cash", 10)]))
      try expectApplied(ledger, post("in", [debit("cash", 10), credit("capped", 10)]))
      try expectApplied(ledger, capture("h"))
      #expect(try ledger.balances("capped") == bal(10, 1010, 0, 0))
    }
  }

  @Test("A full capture posts the held amounts and clears the pending columns")
  func fullCapture() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      try expectApplied(ledger, hold("h", [debit("wallet", 200), credit("fees", 200)]))
      let seq = try expectApplied(ledger, capture("h"))
      #expect(try ledger.balances("wallet") == bal(200, 500, 0, 0))
      #expect(try ledger.balances("fees") == bal(0, 200, 0, 0))
      let h = try #require(try ledger.hold("h"))
      #expect(h.state == .captured)
      #expect(h.resolvedSeq == seq)
      #expect(h.capturedMinor == [200, 200])
      let event = try #require(try ledger.log(fromSeq: seq, limit: 1).first?.event.body)
      #expect(event == .holdCaptured(HoldCaptured(holdId: "h", amountsMinor: [200, 200])))
    }
  }

  @Test("A partial capture posts the captured part and releases the rest")
  func partialCapture() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      try expectApplied(ledger, hold("h", [debit("wallet", 200), credit("fees", 200)]))
      try expectApplied(ledger, capture("h", .uniform(150)))
      #expect(try ledger.balances("wallet") == bal(150, 500, 0, 0))
      #expect(try ledger.balances("fees") == bal(0, 150, 0, 0))
      #expect(try ledger.hold("h")?.capturedMinor == [150, 150])
      // The released 50 is available again.
      try expectApplied(ledger, post("spend", [debit("wallet", 350), credit("cash", 350)]))
      #expect(try ledger.balances("wallet").available(normal: .credit) == 0)
    }
  }

  @Test("Per-leg capture amounts post per leg, balanced per currency")
  func perLegCapture() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      try expectApplied(
        ledger, hold("h", [debit("wallet", 100), credit("cash", 60), credit("fees", 40)]))
      try expectRejected(ledger, capture("h", .perLeg([50, 30, 30])), code: .unbalanced)
      try expectRejected(ledger, capture("h", .perLeg([0, 0, 0])), code: .invalidAmount)
      try expectRejected(ledger, capture("h", .uniform(40)), code: .invalidField)
      try expectApplied(ledger, capture("h", .perLeg([50, 50, 0])))
      #expect(try ledger.balances("wallet") == bal(50, 500, 0, 0))
      #expect(try ledger.balances("cash") == bal(500, 50, 0, 0))
      #expect(try ledger.balances("fees") == bal(0, 0, 0, 0))
      #expect(try ledger.hold("h")?.capturedMinor == [50, 50, 0])
    }
  }

  @Test("Release returns the pending columns to zero and posts nothing")
  func releaseVoids() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      let before = try ledger.allAccounts()
      try expectApplied(ledger, hold("h", [debit("wallet", 70), credit("fees", 70)]))
      let seq = try expectApplied(ledger, release("h"))
      #expect(try ledger.allAccounts().map(\.balances) == before.map(\.balances))
      #expect(try ledger.hold("h")?.state == .released)
      #expect(try ledger.hold("h")?.resolvedSeq == seq)
      #expect(try ledger.hold("h")?.capturedMinor == [])
    }
  }

  @Test("expire(asOf) expires only holds due by asOf, earliest deadline first, as events")
  func expireInDeadlineOrder() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      let d1 = t0 + 10 * oneSecond
      let d2 = t0 + 20 * oneSecond
      let d3 = t0 + 30 * oneSecond
      // Placed out of deadline order; h2b shares h2's deadline and is placed later.
      try applyAll(
        ledger,
        [
          hold("h3", [debit("wallet", 3), credit("fees", 3)], deadline: d3),
          hold("h2", [debit("wallet", 2), credit("fees", 2)], deadline: d2),
          hold("h1", [debit("wallet", 1), credit("fees", 1)], deadline: d1),
          hold("h2b", [debit("wallet", 20), credit("fees", 20)], deadline: d2),
          hold("forever", [debit("wallet", 100), credit("fees", 100)]),
        ], now: t0)
      #expect(try ledger.balances("wallet").pendingDebits == 126)
      let head = ledger.head.seq
      // Nothing due yet: applied with no events.
      #expect(
        try ledger.run(.expireHolds(asOfNanos: d1 - 1), now: t0)
          == .applied(
            firstSeq: head + 1, count: 0))
      #expect(ledger.head.seq == head)
      // asOf == d2 includes d2 (deadline ≤ asOf).
      let out = try ledger.run(.expireHolds(asOfNanos: d2), now: t0 + oneSecond)
      #expect(out == .applied(firstSeq: head + 1, count: 3))
      let expired = try ledger.log(fromSeq: head + 1, limit: 10).map(\.event.body)
      #expect(
        expired == [
          .holdExpired(holdId: "h1"), .holdExpired(holdId: "h2"), .holdExpired(holdId: "h2b"),
        ])
      #expect(try ledger.hold("h1")?.state == .expired)
      #expect(try ledger.hold("h2b")?.resolvedSeq == head + 3)
      #expect(try ledger.hold("h3")?.state == .pending)
      #expect(try ledger.hold("forever")?.state == .pending)
      #expect(try ledger.balances("wallet").pendingDebits == 103)
      #expect(try ledger.balances("fees").pendingCredits == 103)
      // Expired holds can be neither captured nor released.
      try expectRejected(ledger, capture("h1"), code: .holdNotPending)
      try expectRejected(ledger, release("h2"), code: .holdNotPending)
      // Expiring again finds nothing new; a hold without a deadline never expires.
      #expect(
        try ledger.run(.expireHolds(asOfNanos: d2), now: t0)
          == .applied(
            firstSeq: head + 4, count: 0))
      #expect(
        try ledger.run(.expireHolds(asOfNanos: .max), now: t0)
          == .applied(
            firstSeq: head + 4, count: 1))
      #expect(try ledger.hold("h3")?.state == .expired)
      #expect(try ledger.hold("forever")?.state == .pending)
      #expect(try ledger.balances("wallet").pendingDebits == 100)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("A captured or released hold leaves the deadline index: expire skips it")
  func resolvedHoldsDoNotExpire() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      let d = t0 + 10 * oneSecond
      try applyAll(
        ledger,
        [
          hold("c", [debit("wallet", 5), credit("fees", 5)], deadline: d),
          hold("r", [debit("wallet", 5), credit("fees", 5)], deadline: d),
          capture("c"), release("r"),
        ])
      let head = ledger.head.seq
      #expect(
        try ledger.run(.expireHolds(asOfNanos: d), now: t0)
          == .applied(
            firstSeq: head + 1, count: 0))
      #expect(try ledger.hold("c")?.state == .captured)
      #expect(try ledger.hold("r")?.state == .released)
    }
  }

  @Test("A hold placed and expired in one batch; a due hold can still be captured until expired")
  func captureBeforeExpiry() throws {
    try withLedger { ledger in
      try holdFixture(ledger)
      let d = t0 + 10 * oneSecond
      try expectApplied(ledger, hold("h", [debit("wallet", 5), credit("fees", 5)], deadline: d))
      // The deadline has passed, but no expire command ran yet: the hold is still pending.
      try expectApplied(ledger, capture("h"), now: d + oneSecond)
      let out = try ledger.apply(
        [
          hold("h2", [debit("wallet", 5), credit("fees", 5)], deadline: d + 2 * oneSecond),
          .expireHolds(asOfNanos: d + 2 * oneSecond),
        ], now: d + oneSecond)
      #expect(out[1] == .applied(firstSeq: ledger.head.seq, count: 1))
      #expect(try ledger.hold("h2")?.state == .expired)
      #expect(try ledger.hold("h")?.state == .captured)
    }
  }

  @Test("An account with an open hold cannot close; after release and a zero balance it can")
  func closeWithHolds() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)])
      try expectApplied(ledger, hold("h", [debit("a", 10), credit("b", 10)]))
      try expectRejected(ledger, close("a"), code: .accountHasHolds)
      try expectRejected(ledger, close("b"), code: .accountHasHolds)
      try expectApplied(ledger, release("h"))
      try expectApplied(ledger, close("a"))
      try expectApplied(ledger, close("b"))
      #expect(try ledger.account("a")?.record.status == .closed)
      try expectRejected(ledger, post("e", [debit("a", 1), credit("b", 1)]), code: .accountClosed)
      try expectRejected(ledger, hold("h2", [debit("a", 1), credit("b", 1)]), code: .accountClosed)
    }
  }

  @Test("A captured hold leaves a balance: the account is not empty until it is moved back")
  func closeAfterCapture() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)])
      try applyAll(ledger, [hold("h", [debit("a", 10), credit("b", 10)]), capture("h")])
      try expectRejected(ledger, close("a"), code: .accountNotEmpty)
      try expectApplied(ledger, post("back", [debit("b", 10), credit("a", 10)]))
      try expectApplied(ledger, close("a"))
      try expectApplied(ledger, close("b"))
    }
  }

  @Test("Deadlines before 1970 are valid and expire before later ones")
  func negativeDeadlines() throws {
    try withLedger(now: -100 * oneSecond) { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)], now: -100 * oneSecond)
      try applyAll(
        ledger,
        [
          hold("late", [debit("a", 1), credit("b", 1)], deadline: 5 * oneSecond),
          hold("minus5", [debit("a", 2), credit("b", 2)], deadline: -5 * oneSecond),
          hold("minus10", [debit("a", 3), credit("b", 3)], deadline: -10 * oneSecond),
        ], now: -100 * oneSecond)
      let head = ledger.head.seq
      #expect(try ledger.run(.expireHolds(asOfNanos: 0)) == .applied(firstSeq: head + 1, count: 2))
      let bodies = try ledger.log(fromSeq: head + 1, limit: 5).map(\.event.body)
      #expect(bodies == [.holdExpired(holdId: "minus10"), .holdExpired(holdId: "minus5")])
      #expect(try ledger.hold("late")?.state == .pending)
      #expect(try ledger.balances("a").pendingDebits == 1)
    }
  }

  @Test("One expire command expires at most 10,000 holds; the next one continues")
  func expireLimit() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)])
      let count = Limits.holdsPerExpireMax + 1
      let holds = (0..<count).map { i in
        hold("h\(i)", [debit("a", 1), credit("b", 1)], deadline: t0 + oneSecond + Int64(i))
      }
      try applyAll(ledger, holds)
      let head = ledger.head.seq
      let first = try ledger.run(.expireHolds(asOfNanos: .max))
      #expect(first == .applied(firstSeq: head + 1, count: Limits.holdsPerExpireMax))
      // Earliest deadlines first: the last placed (latest deadline) is still pending.
      #expect(try ledger.hold("h\(count - 1)")?.state == .pending)
      #expect(try ledger.hold("h\(count - 2)")?.state == .expired)
      let second = try ledger.run(.expireHolds(asOfNanos: .max))
      #expect(second == .applied(firstSeq: ledger.head.seq, count: 1))
      #expect(try ledger.hold("h\(count - 1)")?.state == .expired)
      #expect(try ledger.balances("a").pendingDebits == 0)
    }
  }
}
