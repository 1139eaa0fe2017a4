import Testing

@Suite("reverse")
struct ReverseTests {
  @Test("reverse restores balances; a second reversal is ALREADY_REVERSED (exit 1)")
  func reverseRestores() async throws {
    try await withFundedLedger { s in
      let accounts = ["cash", "alice", "bob"]
      let before = try await s.snapshot(accounts)
      let aliceBefore = try await s.okJSON("balance", "alice")
      let bobBefore = try await s.okJSON("balance", "bob")
      let posted = try await s.okJSON(
        "post", "--id", "pay-1", "--debit", "alice=25.00", "--credit", "bob=25.00", "--ref", "R-1")
      let paySeq = try posted.int("seq")
      #expect(try await s.okJSON("balance", "alice").str("balance") == "7500")
      #expect(try await s.okJSON("balance", "bob").str("balance") == "2500")

      let rev = try await s.ok("reverse", "pay-1", "--meta", "reason=mistake")
      #expect(
        rev.stdout.contains("reversal pay-1.reversal: applied at seq \(paySeq + 1)"), "\(rev)")
      let alice = try await s.okJSON("balance", "alice")
      let bob = try await s.okJSON("balance", "bob")
      #expect(try alice.str("balance") == (try aliceBefore.str("balance")))
      #expect(try alice.str("available") == (try aliceBefore.str("available")))
      #expect(try bob.str("balance") == (try bobBefore.str("balance")))
      // posted columns keep both movements
      #expect(try alice.obj("posted").str("debits") == "2500")
      #expect(try alice.obj("posted").str("credits") == "12500")
      #expect(try bob.obj("posted").str("debits") == "2500")
      #expect(try bob.obj("posted").str("credits") == "2500")

      // the reversal is an entry with every leg mirrored, the same ref, reversal_of set
      let ev = try #require(
        try await s.tally("--json", "log", "--from-seq", String(paySeq + 1)).lines().first)
      #expect(try ev.str("type") == "entry_posted")
      #expect(try ev.str("id") == "pay-1.reversal")
      #expect(try ev.str("reversal_of") == "pay-1")
      #expect(try ev.str("ref") == "R-1")
      #expect(try ev.obj("metadata").str("reason") == "mistake")
      let legs = try ev.arr("legs").map { try #require($0 as? [String: Any]) }
      let mirrored = try legs.map {
        "\(try $0.str("account")):\(try $0.str("side")):\(try $0.str("amount"))"
      }
      #expect(Set(mirrored) == ["alice:credit:2500", "bob:debit:2500"])

      let afterFirst = try await s.snapshot(accounts)
      #expect(afterFirst.seq == before.seq + 2)

      // the same reversal again (same id and content) is an idempotent duplicate…
      let dup = try await s.okJSON("reverse", "pay-1", "--meta", "reason=mistake")
      #expect(try dup.str("result") == "duplicate")
      #expect(try dup.int("seq") == paySeq + 1)
      // …the same id with other content is ID_CONFLICT…
      let conflict = try await s.tally("--json", "reverse", "pay-1")
      #expect(conflict.status == 1)
      #expect(try conflict.object().obj("error").obj("details").str("field") == "metadata")
      // …and a second, different reversal of the same entry is refused
      let second = try await s.tally("reverse", "pay-1", "--id", "pay-1.again")
      #expect(second.status == 1, "\(second)")
      #expect(second.stderr.contains("rejected: ALREADY_REVERSED"), "\(second)")
      let secondJSON = try await s.tally("--json", "reverse", "pay-1", "--id", "pay-1.again")
      #expect(secondJSON.status == 1)
      let e = try secondJSON.object().obj("error")
      #expect(try e.str("code") == "ALREADY_REVERSED")
      #expect(try e.obj("details").str("seq") == String(paySeq + 1))
      #expect(try await s.snapshot(accounts) == afterFirst)
      #expect(try await s.tally("verify").status == 0)
    }
  }

  @Test("a reversal is checked like any entry: INSUFFICIENT_FUNDS when the money moved on")
  func reversalRespectsOverdraft() async throws {
    try await withFundedLedger { s in
      try await s.ok("post", "--id", "spend", "--debit", "alice=90", "--credit", "bob=90")
      let before = try await s.snapshot(["cash", "alice", "bob"])
      // reversing the 100.00 funding would debit alice (10.00 left) below zero
      let r = try await s.tally("--json", "reverse", "seed")
      #expect(r.status == 1)
      #expect(try r.object().obj("error").str("code") == "INSUFFICIENT_FUNDS")
      #expect(try await s.snapshot(["cash", "alice", "bob"]) == before)
    }
  }
}
