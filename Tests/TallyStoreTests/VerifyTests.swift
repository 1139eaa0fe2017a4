import CLMDB
import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

@testable import TallyStore

/// Accounts x (debit) and y (credit) in EUR, z in USD, with entries, holds, a capture, a
/// release, a reversal and a pending hold with a deadline: every projection has rows.
private func verifyFixture(_ ledger: Ledger) throws {
  try applyAll(
    ledger,
    [
      partner("acme", name: "Acme"), asset("TOKEN", scale: 3),
      open("x"), open("y", normal: .credit, partner: "acme"), open("z", "USD"),
      open("w", "USD", normal: .credit),
      post("e1", [debit("x", 100), credit("y", 100)]),
      post("e2", [debit("x", 50), credit("y", 50)], ref: "R2"),
      post("e3", [debit("z", 70), credit("w", 70)]),
      hold("h1", [debit("y", 30), credit("x", 30)]),
      capture("h1", .uniform(20)),
      hold("h2", [debit("y", 5), credit("x", 5)]),
      release("h2"),
      reverse("e2-rev", of: "e2"),
      hold("h3", [debit("y", 7), credit("x", 7)], deadline: t0 + 3600 * oneSecond),
    ])
}

private func accountNumber(_ ledger: Ledger, _ name: String) throws -> UInt64 {
  try #require(try ledger.account(name)).record.number
}

@Suite("verify and rebuild")
struct VerifyTests {
  @Test("A healthy ledger verifies: every event replayed, totals balanced per currency")
  func healthyLedgerVerifies() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      let report = try ledger.verify()
      #expect(report.ok, "\(report.problems)")
      #expect(report.problems.isEmpty)
      #expect(report.events == ledger.head.seq)
      #expect(report.head == ledger.head)
      #expect(report.accounts == 4)
      #expect(report.totals.map(\.currency) == ["EUR", "USD"])
      // EUR: e1 100 + e2 50 + capture 20 + reversal 50 on each side.
      #expect(report.totals[0].debits == 220 && report.totals[0].credits == 220)
      #expect(report.totals[1].debits == 70 && report.totals[1].credits == 70)
    }
  }

  @Test("The stored hashes are SHA-256 leaf and chain hashes of the stored event bytes")
  func storedHashesAreTheChain() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      let hasher = SHA256Hasher()
      var chain = Hash32.zero
      for rec in try ledger.log(fromSeq: 1, limit: 1000) {
        let leaf = hasher.leaf(rec.bytes)
        chain = hasher.chain(chain, leaf)
        #expect(rec.leaf == leaf)
        #expect(rec.chain == chain)
      }
      #expect(chain == ledger.head.chain)
    }
  }

  /// The LMDB log is a copy of the journal's records (the journal is the log): a byte
  /// changed there is the log table differing from the journal at seq N.
  @Test(
    "Flipping one byte of the LMDB copy of the event at seq N is a log problem at seq N",
    arguments: [1, 5, 9, 16] as [UInt64])
  func flippedEventByte(n: UInt64) throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      #expect(ledger.head.seq == 16)
      try tamper(ledger) { t, dbs in
        var bytes = try #require(try storedValue(t, dbs.log, u64: n))
        bytes[bytes.count - 1] ^= 0x01
        try putValue(t, dbs.log, u64: n, bytes)
      }
      let report = try ledger.verify()
      #expect(!report.ok)
      #expect(report.problems.first?.kind == .log)
      #expect(report.problems.first?.seq == n)
      // The journal is untouched: rebuild restores the copy.
      _ = try ledger.rebuild()
      #expect(try ledger.verify().ok)
    }
  }

  @Test("Altering the stored chain hash at seq N is a chain problem at seq N")
  func alteredChainHash() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      try tamper(ledger) { t, dbs in
        var h = try #require(try storedValue(t, dbs.hashes, u64: 7))
        h[40] ^= 0xff
        try putValue(t, dbs.hashes, u64: 7, h)
      }
      let p = try #require(try ledger.verify().problems.first)
      #expect(p.kind == .chain)
      #expect(p.seq == 7)
    }
  }

  @Test("A missing event is a log problem at its seq")
  func deletedEvent() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      try tamper(ledger) { t, dbs in
        var k = UInt64(6).bigEndian
        try withUnsafeBytes(of: &k) { try t.delete(dbs.log, $0) }
      }
      let p = try #require(try ledger.verify().problems.first)
      #expect(p.kind == .log)
      #expect(p.seq == 6)
    }
  }

  @Test("A stored head past the journal's end is a journal problem at the first missing seq")
  func alteredHead() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      var h = ledger.head
      h.seq += 1
      try tamper(ledger) { t, _ in try ledger.writeHead(t, h, accounts: nil) }
      let p = try #require(try ledger.verify().problems.first)
      #expect(p.kind == .journal)
      #expect(p.seq == h.seq)
    }
  }

  @Test(
    "A changed stored balance of account X (its last history row) is a projection problem naming X")
  func tamperedBalance() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      let n = try accountNumber(ledger, "y")
      try tamper(ledger) { t, dbs in
        try tamperLastHistoryRow(t, dbs, n) { $0.postedCredits += 1 }
      }
      #expect(try ledger.balances("y").postedCredits == 151)
      let report = try ledger.verify()
      #expect(report.problems.count == 1, "\(report.problems)")
      let p = try #require(report.problems.first)
      #expect(p.kind == .projection)
      #expect(p.account == "y")
    }
  }

  @Test("A deleted last history row is a projection problem; rebuild restores it")
  func deletedBalancesRow() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      let before = try #require(try ledger.account("w"))
      let n = before.record.number
      try tamper(ledger) { t, dbs in
        try historyKey(n, before.seq).withUnsafeBytes { try t.delete(dbs.history, $0) }
      }
      #expect(try ledger.balances("w") != before.balances)
      let report = try ledger.verify()
      #expect(!report.ok)
      #expect(report.problems.allSatisfy { $0.kind == .projection }, "\(report.problems)")
      _ = try ledger.rebuild()
      #expect(try ledger.account("w") == before)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("A deleted history row is a projection problem naming its account")
  func deletedHistoryRow() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      let n = try accountNumber(ledger, "z")
      let seq = try #require(
        try ledger.statement("z", fromSeq: 1, toSeq: .max, limit: 1)?.lines
          .first?.seq)
      try tamper(ledger) { t, dbs in
        try historyKey(n, seq).withUnsafeBytes { try t.delete(dbs.history, $0) }
      }
      #expect(try ledger.balance("z", asOfSeq: seq)?.balances == .zero)
      let report = try ledger.verify()
      let p = try #require(report.problems.first)
      #expect(p.kind == .projection)
      #expect(p.account == "z")
      #expect(report.problems.allSatisfy { $0.account == "z" })
    }
  }

  @Test("A changed account record is a projection problem naming the account")
  func tamperedAccountRecord() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      var rec = try #require(try ledger.account("x")).record
      rec.noOverdraft = true
      try tamper(ledger) { t, dbs in try t.put(dbs.accounts, string: "x", Records.encode(rec)) }
      let p = try #require(try ledger.verify().problems.first)
      #expect(p.kind == .projection)
      #expect(p.account == "x")
    }
  }

  @Test("Changed id, hold and deadline records are projection problems")
  func tamperedOtherProjections() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      // An id record that claims its entry was never reversed.
      try tamper(ledger) { t, dbs in
        var rec = try Records.decodeId(#require(try t.get(dbs.ids, string: "e2")))
        rec.reversedBySeq = 0
        try t.put(dbs.ids, string: "e2", Records.encode(rec))
      }
      #expect(try ledger.verify().problems.first?.kind == .projection)
      _ = try ledger.rebuild()
      #expect(try ledger.verify().ok)
      // A hold shown as released.
      try tamper(ledger) { t, dbs in
        var h = try Records.decodeHold(id: "h3", #require(try t.get(dbs.holds, string: "h3")))
        h.state = .released
        try t.put(dbs.holds, string: "h3", Records.encode(h))
      }
      #expect(try ledger.verify().problems.first?.kind == .projection)
      _ = try ledger.rebuild()
      #expect(try ledger.hold("h3")?.state == .pending)
      // A lost deadline index entry.
      try tamper(ledger) { t, dbs in
        let h = try Records.decodeHold(id: "h3", #require(try t.get(dbs.holds, string: "h3")))
        let key = Records.deadlineKey(h.deadlineNanos ?? 0, h.placedSeq)
        try key.withUnsafeBytes { try t.delete(dbs.deadlines, $0) }
      }
      #expect(try ledger.verify().problems.first?.kind == .projection)
      _ = try ledger.rebuild()
      #expect(try ledger.verify().ok)
      #expect(
        try ledger.run(.expireHolds(asOfNanos: .max))
          == .applied(
            firstSeq: ledger.head.seq, count: 1))
    }
  }

  @Test("A row in the balances table (empty since format 5) is a projection problem")
  func strayBalancesRow() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      let head = ledger.head
      try tamper(ledger) { t, dbs in
        try putValue(t, dbs.balances, u64: 1, [UInt8](repeating: 0, count: 72))
      }
      let report = try ledger.verify()
      #expect(report.problems.count == 1, "\(report.problems)")
      #expect(report.problems.first?.kind == .projection)
      #expect(report.problems.first?.message.contains("balances") == true)
      #expect(ledger.head == head)
      _ = try ledger.rebuild()
      #expect(try ledger.verify().ok)
    }
  }

  @Test("rebuild after a balance tamper restores verify().ok and the original balances")
  func rebuildRestoresBalances() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      let original = try ledger.allAccounts()
      let replay = try ReferenceReplay.of(ledger)
      let n = try accountNumber(ledger, "x")
      let zn = try accountNumber(ledger, "z")
      let zSeq = try #require(
        try ledger.statement("z", fromSeq: 1, toSeq: .max, limit: 1)?.lines
          .first?.seq)
      try tamper(ledger) { t, dbs in
        try tamperLastHistoryRow(t, dbs, n) {
          $0 = Balances(postedDebits: 1, postedCredits: 2, pendingDebits: 3, pendingCredits: 4)
        }
        try historyKey(zn, zSeq).withUnsafeBytes { try t.delete(dbs.history, $0) }
      }
      #expect(try !ledger.verify().ok)
      let replayed = try ledger.rebuild()
      #expect(replayed == ledger.head.seq)
      #expect(try ledger.verify().ok)
      #expect(try ledger.allAccounts() == original)
      for seq in 0...ledger.head.seq {
        #expect(
          try ledger.balance("z", asOfSeq: seq)?.balances
            == replay.after[Int(seq)]["z"] ?? .zero)
      }
      // The engine keeps working on the rebuilt projections.
      try expectApplied(ledger, post("after", [debit("x", 1), credit("y", 1)]))
      let x = try #require(original.first { $0.record.name == "x" })
      #expect(try ledger.balances("x").postedDebits == x.balances.postedDebits + 1)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("rebuild of a healthy ledger changes nothing")
  func rebuildIsIdempotent() throws {
    try withLedger { ledger in
      try verifyFixture(ledger)
      let before = try snapshot(ledger)
      #expect(try ledger.rebuild() == ledger.head.seq)
      #expect(try snapshot(ledger) == before)
      #expect(try ledger.rebuild() == ledger.head.seq)
      #expect(try snapshot(ledger) == before)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("A read-only ledger verifies the same ledger")
  func verifyReadOnly() throws {
    try withTempDir { dir in
      do {
        let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
        try verifyFixture(ledger)
      }
      let reader = try Ledger(path: dir.ledgerPath, mode: .readOnly)
      let report = try reader.verify()
      #expect(report.ok)
      #expect(report.events == 16)
    }
  }
}
