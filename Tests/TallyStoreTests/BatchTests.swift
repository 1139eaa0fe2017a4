import TallyCore
import Testing

@testable import TallyStore

private func entryIds(_ ledger: Ledger, from seq: UInt64) throws -> [String] {
  try ledger.log(fromSeq: seq, limit: 100).compactMap {
    if case .entryPosted(let e) = $0.event.body { return e.id }
    return nil
  }
}

@Suite("Batches")
struct BatchTests {
  @Test("[valid, invalid, valid] gives [applied, rejected, applied] with consecutive seqs")
  func middleRejectionDoesNotDisturbTheOthers() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("cash"), open("wallet", normal: .credit, noOverdraft: true)])
      let start = ledger.head.seq
      let out = try ledger.apply(
        [
          post("d", [debit("cash", 5), credit("wallet", 5)]),
          post("e", [debit("cash", 1), credit("ghost", 1)]),
          post("f", [debit("wallet", 2), credit("cash", 2)]),
        ], now: t0)
      #expect(out[0] == .applied(firstSeq: start + 1, count: 1))
      guard case .rejected(let r) = out[1] else {
        Issue.record("second command: \(out[1])")
        return
      }
      #expect(r.code == .accountNotFound)
      #expect(out[2] == .applied(firstSeq: start + 2, count: 1))
      #expect(ledger.head.seq == start + 2)
      #expect(try entryIds(ledger, from: start + 1) == ["d", "f"])
      #expect(try ledger.idRecord("e") == nil)
      #expect(
        try ledger.balances("cash")
          == Balances(
            postedDebits: 5, postedCredits: 2, pendingDebits: 0, pendingCredits: 0))
      #expect(
        try ledger.balances("wallet")
          == Balances(
            postedDebits: 2, postedCredits: 5, pendingDebits: 0, pendingCredits: 0))

      // The middle command breaks a balance rule only because of the first one.
      let mid = ledger.head.seq
      let out3 = try ledger.apply(
        [
          post("g", [debit("wallet", 3), credit("cash", 3)]),  // wallet 3 → 0
          post("h", [debit("wallet", 1), credit("cash", 1)]),  // would be −1
          post("i", [debit("cash", 4), credit("wallet", 4)]),
        ], now: t0)
      #expect(out3[0] == .applied(firstSeq: mid + 1, count: 1))
      #expect(out3[2] == .applied(firstSeq: mid + 2, count: 1))
      guard case .rejected(let r3) = out3[1] else {
        Issue.record("h: \(out3[1])")
        return
      }
      #expect(r3.code == .insufficientFunds)
      #expect(try ledger.balances("wallet").balance(normal: .credit) == 4)
      #expect(try entryIds(ledger, from: mid + 1) == ["g", "i"])
    }
  }

  @Test("A rejected command in a batch changes nothing: same result as the batch without it")
  func rejectedCommandIsInvisible() throws {
    func run(_ commands: [Command]) throws -> (Snapshot, [LogRecord]) {
      try withLedger { ledger in
        try applyAll(ledger, [open("a"), open("b", normal: .credit, limit: 100)])
        _ = try ledger.apply(commands, now: t0 + oneSecond)
        return (try snapshot(ledger), try ledger.log(fromSeq: 1, limit: 100))
      }
    }
    let valid1 = post("v1", [debit("a", 60), credit("b", 60)])
    let invalid = post("x", [debit("a", 50), credit("b", 50)])  // would pass the limit
    let valid2 = post("v2", [debit("a", 40), credit("b", 40)])
    let (with, withLog) = try run([valid1, invalid, valid2])
    let (without, withoutLog) = try run([valid1, valid2])
    #expect(with == without)
    #expect(withLog.map(\.bytes) == withoutLog.map(\.bytes))
    #expect(withLog.last?.chain == withoutLog.last?.chain)
  }

  @Test("A command sees the effects of earlier commands of the same batch")
  func laterCommandsSeeEarlierOnes() throws {
    try withLedger { ledger in
      let out = try ledger.apply(
        [
          partner("acme", name: "Acme"),
          open("cash"),
          open("wallet", normal: .credit, noOverdraft: true, partner: "acme"),
          post("fund", [debit("cash", 50), credit("wallet", 50)]),
          post("spend", [debit("wallet", 30), credit("cash", 30)]),
          post("overspend", [debit("wallet", 30), credit("cash", 30)]),
          hold("h", [debit("wallet", 20), credit("cash", 20)]),
          capture("h", .uniform(5)),
          reverse("spend-rev", of: "spend"),
        ], now: t0)
      let applied = out.filter { if case .applied = $0 { true } else { false } }.count
      #expect(applied == 8)
      guard case .rejected(let r) = out[5] else {
        Issue.record("overspend: \(out[5])")
        return
      }
      #expect(r.code == .insufficientFunds)
      let seqs = out.compactMap { o -> UInt64? in
        if case .applied(let s, _) = o { return s }
        return nil
      }
      #expect(seqs == Array(2...9))
      // wallet: +50 −30 −5 (capture) +30 (reversal) = 45
      #expect(try ledger.balances("wallet").balance(normal: .credit) == 45)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("A batch of only rejections and duplicates commits nothing")
  func allRejectedBatchCommitsNothing() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)])
      let seq = try expectApplied(ledger, post("e", [debit("a", 1), credit("b", 1)]))
      let before = try snapshot(ledger)
      let out = try ledger.apply(
        [
          post("e", [debit("a", 1), credit("b", 1)]), post("x", [debit("a", 1)]),
          close("a"),
        ], now: t0 + oneSecond)
      #expect(out[0] == .duplicate(seq: seq))
      #expect(out.dropFirst().allSatisfy { if case .rejected = $0 { true } else { false } })
      #expect(try snapshot(ledger) == before)
    }
  }

  @Test("An empty batch returns no outcomes and changes nothing")
  func emptyBatch() throws {
    try withLedger { ledger in
      let before = try snapshot(ledger)
      #expect(try ledger.apply([], now: t0).isEmpty)
      #expect(try snapshot(ledger) == before)
    }
  }

  @Test("Event timestamps are max(now, previous + 1): strictly increasing even if now goes back")
  func timestampsStrictlyIncrease() throws {
    try withLedger(now: t0) { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)], now: t0 - 5 * oneSecond)
      try applyAll(
        ledger, [post("e1", [debit("a", 1), credit("b", 1)])], now: t0 + 10 * oneSecond)
      try applyAll(
        ledger, [post("e2", [debit("a", 1), credit("b", 1)])], now: t0 + 10 * oneSecond)
      try applyAll(ledger, [post("e3", [debit("a", 1), credit("b", 1)])], now: t0)
      let ts = try ledger.log(fromSeq: 1, limit: 10).map(\.event.timestampNanos)
      #expect(
        ts == [
          t0, t0 + 1, t0 + 2, t0 + 10 * oneSecond, t0 + 10 * oneSecond + 1,
          t0 + 10 * oneSecond + 2,
        ])
      #expect(ledger.head.timestampNanos == t0 + 10 * oneSecond + 2)
    }
  }
}
