import Foundation
import Testing

@Suite("tamper detection")
struct TamperTests {
  /// A ledger with entries, a hold and a reversal.
  func build(_ s: Scratch) async throws {
    try await s.ok("post", "--id", "p1", "--debit", "alice=10.00", "--credit", "bob=10.00")
    try await s.ok("post", "--id", "p2", "--debit", "alice=2.50", "--credit", "bob=2.50")
    try await s.ok("hold", "place", "--id", "h1", "--debit", "alice=5", "--credit", "bob=5")
    try await s.ok("post", "--id", "p3", "--debit", "cash=1.25", "--credit", "alice=1.25")
    try await s.ok("reverse", "p2")
    #expect(try await s.tally("verify").status == 0)
  }

  func seq(of id: String, _ s: Scratch) async throws -> Int {
    let events = try await s.tally("--json", "log", "--limit", "10000").lines()
    let e = try #require(events.first { ($0["id"] as? String) == id }, "no event \(id)")
    return try e.int("seq")
  }

  @Test("one flipped byte in the journal: verify exits 1 naming that seq; nothing opens it")
  func flippedEventByte() async throws {
    try await withFundedLedger { s in
      try await build(s)
      let target = try await seq(of: "p2", s)
      try Tamper.flipJournalByte(s.data, seq: UInt64(target), offset: 20)

      let v = try await s.tally("verify")
      #expect(v.status == 1, "\(v)")
      #expect(v.stdout.hasPrefix("FAILED:"), "\(v)")
      #expect(v.stdout.contains("seq \(target): "), "\(v)")
      let vj = try await s.tally("--json", "verify")
      #expect(vj.status == 1)
      let o = try vj.object()
      #expect(o["ok"] as? Bool == false)
      let first = try #require(try o.arr("problems").first as? [String: Any])
      #expect(try first.int("seq") == target)
      #expect(try first.str("kind") == "journal")
      #expect(try first.str("message").contains("event altered"))

      // rebuild (a read-write open) refuses a journal with a bad record inside it
      let rb = try await s.tally("rebuild")
      #expect(rb.status == 2, "\(rb)")
      #expect(rb.stderr.contains("seq \(target):") || rb.stdout.contains("seq \(target):"), "\(rb)")
      #expect(try await s.tally("verify").status == 1)

      // flipping it back restores a verifying ledger: that byte was the only fault
      try Tamper.flipJournalByte(s.data, seq: UInt64(target), offset: 20)
      #expect(try await s.tally("verify").status == 0)
    }
  }

  @Test("a torn journal tail: verify reports it and passes; the next writing command cuts it")
  func tornTailIsReportedThenCut() async throws {
    try await withFundedLedger { s in
      try await build(s)
      let last = try #require(try Tamper.journalRecords(s.data).last)
      let end = last.1 + 88 + (last.3 + 7) & ~7
      // Half a frame after the last record: what a crash mid-write leaves.
      try Tamper.writeAt(last.0, end, [0x54, 0x4A, 0x52, 0x31, 0, 0, 0, 40, 1, 2, 3])
      let vj = try await s.tally("--json", "verify")
      #expect(vj.status == 0, "\(vj)")
      let journal = try #require(try vj.object()["journal"] as? [String: Any])
      #expect(journal["torn"] is String, "\(journal)")
      #expect(try await s.tally("verify").stdout.contains("torn tail after seq"))
      try await s.ok("post", "--id", "after-tear", "--debit", "alice=1", "--credit", "bob=1")
      let after = try await s.tally("--json", "verify")
      #expect(after.status == 0, "\(after)")
      let j2 = try #require(try after.object()["journal"] as? [String: Any])
      #expect(j2["torn"] is NSNull, "\(j2)")
      #expect(try await seq(of: "after-tear", s) == Int(last.2) + 1)
    }
  }

  @Test("one flipped byte in the LMDB copy of an event: verify names it; rebuild restores it")
  func flippedLMDBCopy() async throws {
    try await withFundedLedger { s in
      try await build(s)
      let target = try await seq(of: "p2", s)
      let original = try Tamper.eventBytes(s.data, seq: UInt64(target))
      try Tamper.flipEventByte(s.data, seq: UInt64(target), offset: original.count / 2)
      let vj = try await s.tally("--json", "verify")
      #expect(vj.status == 1)
      let first = try #require(try vj.object().arr("problems").first as? [String: Any])
      #expect(try first.int("seq") == target)
      #expect(try first.str("kind") == "log")
      let rb = try await s.tally("rebuild")
      #expect(rb.status == 0, "\(rb)")
      #expect(try Tamper.eventBytes(s.data, seq: UInt64(target)) == original)
      #expect(try await s.tally("verify").status == 0)
    }
  }

  @Test("tampering the first and the last event is found too", arguments: ["first", "last"])
  func edges(_ which: String) async throws {
    try await withFundedLedger { s in
      try await build(s)
      let head = try await s.okJSON("stats").int("seq")
      let target = which == "first" ? 1 : head
      try Tamper.flipJournalByte(s.data, seq: UInt64(target), offset: -1, mask: 0x80)
      let vj = try await s.tally("--json", "verify")
      #expect(vj.status == 1, "\(vj)")
      let first = try #require(try vj.object().arr("problems").first as? [String: Any])
      #expect(try first.int("seq") == target)
    }
  }

  @Test("a changed stored balance: verify exits 1 naming the account; rebuild fixes it")
  func changedBalance() async throws {
    try await withFundedLedger { s in
      try await build(s)
      let good = try await s.tally("--json", "balance", "alice")
      let goodStats = try await s.okJSON("stats")
      let number = try await s.okJSON("account", "show", "alice").int("number")
      try Tamper.addToPostedCredits(s.data, accountNumber: UInt64(number), 1_000_00)
      // the tamper is visible through the CLI…
      let bad = try await s.okJSON("balance", "alice")
      let goodBalance = try #require(Int(try good.object().str("balance")))
      #expect(try bad.str("balance") == String(goodBalance + 1_000_00))
      // …and verify names the account
      let v = try await s.tally("verify")
      #expect(v.status == 1, "\(v)")
      #expect(v.stdout.contains("account alice: "), "\(v)")
      let vj = try await s.tally("--json", "verify")
      #expect(vj.status == 1)
      let problems = try vj.object().arr("problems").compactMap { $0 as? [String: Any] }
      #expect(
        problems.contains {
          ($0["account"] as? String) == "alice" && ($0["kind"] as? String) == "projection"
        }, "\(problems)")
      #expect(!problems.contains { ($0["account"] as? String) == "bob" })

      // rebuild recomputes the projections from the log
      let rb = try await s.tally("rebuild")
      #expect(rb.status == 0, "\(rb)")
      #expect(rb.stdout.contains("verify ok after"), "\(rb)")
      #expect(rb.stdout.contains("fixed: projection: account alice: "), "\(rb)")
      #expect(try await s.tally("verify").status == 0)
      #expect(try await s.tally("--json", "balance", "alice").stdout == good.stdout)
      // the log is untouched by rebuild
      let stats = try await s.okJSON("stats")
      #expect(try stats.int("seq") == (try goodStats.int("seq")))
      #expect(try stats.str("chain") == (try goodStats.str("chain")))
      // rebuild --json on a healthy ledger
      let again = try await s.okJSON("rebuild")
      #expect(try again.int("differences_before") == 0)
      #expect(again["ok"] as? Bool == true)
      #expect(try again.int("events") == (try stats.int("seq")))
    }
  }
}
