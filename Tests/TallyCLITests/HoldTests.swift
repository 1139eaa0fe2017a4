import Foundation
import Testing

@Suite("holds")
struct HoldTests {
  func hold(_ s: Scratch, _ id: String) async throws -> [String: Any] {
    try await s.okJSON("hold", "show", id)
  }

  @Test("place with --ttl, partial capture, release, expire --as-of, show states")
  func lifecycle() async throws {
    try await withFundedLedger { s in
      // alice (credit-normal, no_overdraft) holds 100.00
      let placedAt = Int(Date().timeIntervalSince1970)
      let placed = try await s.okJSON(
        "hold", "place", "--id", "h1", "--debit", "alice=30.00", "--credit", "bob=30.00", "--ttl",
        "3600", "--ref", "AUTH-1")
      #expect(try placed.str("result") == "applied")
      let h1Seq = try placed.int("seq")
      var h1 = try await hold(s, "h1")
      #expect(try h1.str("state") == "pending")
      #expect(try h1.int("placed_seq") == h1Seq)
      #expect(h1.isNull("resolved_seq"))
      #expect(try h1.arr("captured").isEmpty)
      let legs = try h1.arr("legs").map { try #require($0 as? [String: Any]) }
      #expect(try legs.map { try $0.str("account") } == ["alice", "bob"])
      #expect(try legs.map { try $0.str("amount") } == ["3000", "3000"])
      let deadline = try #require(epochSeconds(try h1.str("deadline")))
      #expect(
        abs(deadline - (placedAt + 3600)) <= 120, "deadline \(deadline) vs \(placedAt + 3600)")
      // A retry with the same --ttl (another "now") answers the original and adds nothing;
      // the first deadline stands.
      let retried = try await s.okJSON(
        "hold", "place", "--id", "h1", "--debit", "alice=30.00", "--credit", "bob=30.00", "--ttl",
        "3600", "--ref", "AUTH-1")
      #expect(try retried.str("result") == "duplicate")
      #expect(try retried.int("seq") == h1Seq)
      #expect(try await hold(s, "h1").str("deadline") == (try h1.str("deadline")))

      // pending columns move, posted ones do not; available shrinks
      var alice = try await s.okJSON("balance", "alice")
      #expect(try alice.obj("pending").str("debits") == "3000")
      #expect(try alice.obj("posted").str("debits") == "0")
      #expect(try alice.str("balance") == "10000")
      #expect(try alice.str("available") == "7000")
      var bob = try await s.okJSON("balance", "bob")
      #expect(try bob.obj("pending").str("credits") == "3000")
      #expect(try bob.str("balance") == "0")

      // the hold counts against no_overdraft: 70.01 more does not fit
      let before = try await s.snapshot(["alice", "bob"])
      let tooMuch = try await s.tally(
        "--json", "hold", "place", "--id", "h-big", "--debit", "alice=70.01", "--credit",
        "bob=70.01")
      #expect(tooMuch.status == 1)
      #expect(try tooMuch.object().obj("error").str("code") == "INSUFFICIENT_FUNDS")
      let tooMuchPost = try await s.tally(
        "post", "--id", "p-big", "--debit", "alice=70.01", "--credit", "bob=70.01")
      #expect(tooMuchPost.status == 1)
      #expect(tooMuchPost.stderr.contains("INSUFFICIENT_FUNDS"))
      #expect(try await s.snapshot(["alice", "bob"]) == before)

      // capturing more than held is refused
      let over = try await s.tally("--json", "hold", "capture", "h1", "--amount", "30.01")
      #expect(over.status == 1)
      #expect(try over.object().obj("error").str("code") == "CAPTURE_EXCEEDS_HOLD")
      let badScale = try await s.tally("--json", "hold", "capture", "h1", "--amount", "1.001")
      #expect(badScale.status == 1)
      #expect(try badScale.object().obj("error").str("code") == "INVALID_AMOUNT")
      #expect(try await s.snapshot(["alice", "bob"]) == before)

      // partial capture: 12.34 posted, the rest released
      let cap = try await s.okJSON("hold", "capture", "h1", "--amount", "12.34")
      #expect(try cap.str("result") == "applied")
      let capSeq = try cap.int("seq")
      h1 = try await hold(s, "h1")
      #expect(try h1.str("state") == "captured")
      #expect(try h1.int("resolved_seq") == capSeq)
      #expect(try h1.arr("captured").compactMap { $0 as? String } == ["1234", "1234"])
      alice = try await s.okJSON("balance", "alice")
      #expect(try alice.obj("posted").str("debits") == "1234")
      #expect(try alice.obj("pending").str("debits") == "0")
      #expect(try alice.str("balance") == "8766")
      #expect(try alice.str("available") == "8766")
      bob = try await s.okJSON("balance", "bob")
      #expect(try bob.str("balance") == "1234")
      #expect(try bob.obj("pending").str("credits") == "0")
      let showHuman = try await s.ok("hold", "show", "h1")
      #expect(
        showHuman.stdout.contains(
          "hold h1: captured, placed at seq \(h1Seq), resolved at seq \(capSeq)"), "\(showHuman)")
      // the same capture again is a duplicate; another one is HOLD_NOT_PENDING
      let again = try await s.okJSON("hold", "capture", "h1", "--amount", "12.34")
      #expect(try again.str("result") == "duplicate")
      #expect(try again.int("seq") == capSeq)
      let other = try await s.tally("--json", "hold", "capture", "h1", "--amount", "1")
      #expect(other.status == 1)
      #expect(try other.object().obj("error").str("code") == "HOLD_NOT_PENDING")

      // release
      try await s.ok("hold", "place", "--id", "h2", "--debit", "alice=5", "--credit", "bob=5")
      #expect(try await s.okJSON("balance", "alice").str("available") == "8266")
      let rel = try await s.okJSON("hold", "release", "h2")
      #expect(try rel.str("result") == "applied")
      let h2 = try await hold(s, "h2")
      #expect(try h2.str("state") == "released")
      #expect(try h2.int("resolved_seq") == (try rel.int("seq")))
      #expect(h2.isNull("deadline"))
      alice = try await s.okJSON("balance", "alice")
      #expect(try alice.str("available") == "8766")
      #expect(try alice.obj("pending").str("debits") == "0")
      #expect(try await s.okJSON("hold", "release", "h2").str("result") == "duplicate")
      let capReleased = try await s.tally("--json", "hold", "capture", "h2")
      #expect(capReleased.status == 1)
      #expect(try capReleased.object().obj("error").str("code") == "HOLD_NOT_PENDING")

      // expire: two holds with deadlines in the far future, one without a deadline
      try await s.ok(
        "hold", "place", "--id", "h3", "--debit", "alice=1", "--credit", "bob=1", "--deadline",
        "2098-06-01T00:00:00Z")
      try await s.ok(
        "hold", "place", "--id", "h4", "--debit", "alice=2", "--credit", "bob=2", "--deadline",
        "2099-01-01T00:00:00Z")
      try await s.ok("hold", "place", "--id", "h5", "--debit", "alice=4", "--credit", "bob=4")
      #expect(try await s.okJSON("balance", "alice").obj("pending").str("debits") == "700")
      // nothing is due now
      let none = try await s.ok("hold", "expire")
      #expect(none.stdout.contains("no holds due"), "\(none)")
      let headBefore = try await s.okJSON("stats").int("seq")
      // as of 2099-01-01T00:00:00Z both deadlines have passed (deadline ≤ asOf)
      let exp = try await s.tally("--json", "hold", "expire", "--as-of", "2099-01-01T00:00:00Z")
      #expect(exp.status == 0, "\(exp)")
      let rounds = try exp.lines()
      #expect(rounds.count == 1)
      #expect(try rounds[0].str("result") == "applied")
      #expect(try rounds[0].int("events") == 2)
      #expect(try rounds[0].int("seq") == headBefore + 1)
      let h3 = try await hold(s, "h3")
      let h4 = try await hold(s, "h4")
      #expect(try h3.str("state") == "expired")
      #expect(try h4.str("state") == "expired")
      // earliest deadline first
      #expect(try h3.int("resolved_seq") == headBefore + 1)
      #expect(try h4.int("resolved_seq") == headBefore + 2)
      #expect(try h3.str("deadline").hasPrefix("2098-06-01T00:00:00"))
      #expect(try await hold(s, "h5").str("state") == "pending")
      alice = try await s.okJSON("balance", "alice")
      #expect(try alice.obj("pending").str("debits") == "400")
      #expect(try alice.str("available") == "8366")
      // expiring again finds nothing
      let again2 = try await s.ok("hold", "expire", "--as-of", "2100-01-01T00:00:00Z")
      #expect(again2.stdout.contains("no holds due"), "\(again2)")
      #expect(try await s.okJSON("stats").int("seq") == headBefore + 2)
      // an expired hold cannot be captured
      let capExpired = try await s.tally("--json", "hold", "capture", "h3")
      #expect(capExpired.status == 1)
      #expect(try capExpired.object().obj("error").str("code") == "HOLD_NOT_PENDING")

      // the statement shows the pending movements, the log the hold events
      let st = try await s.okJSON("statement", "alice", "--limit", "100")
      let types = try st.arr("lines").map { try #require($0 as? [String: Any]).str("type") }
      #expect(
        types == [
          "entry_posted", "hold_placed", "hold_captured", "hold_placed", "hold_released",
          "hold_placed",
          "hold_placed", "hold_placed", "hold_expired", "hold_expired",
        ])
      let log = try await s.tally("--json", "log", "--from-seq", String(headBefore + 1)).lines()
      #expect(try log.map { try $0.str("type") } == ["hold_expired", "hold_expired"])
      #expect(try log.map { try $0.str("hold") } == ["h3", "h4"])
      #expect(try await s.tally("verify").status == 0)
    }
  }

  @Test("--amounts captures per leg; a hold id cannot be reused for an entry")
  func perLegCaptureAndIdNamespace() async throws {
    try await withFundedLedger { s in
      try await s.ok("hold", "place", "--id", "h", "--debit", "alice=10", "--credit", "bob=10")
      let mismatch = try await s.tally("--json", "hold", "capture", "h", "--amounts", "1.00")
      #expect(mismatch.status == 1)
      #expect(try mismatch.object().obj("error").str("code") == "INVALID_FIELD")
      let cap = try await s.okJSON("hold", "capture", "h", "--amounts", "2.50,2.50")
      #expect(try cap.str("result") == "applied")
      #expect(
        try await s.okJSON("hold", "show", "h").arr("captured").compactMap { $0 as? String } == [
          "250", "250",
        ])
      let conflict = try await s.tally(
        "--json", "post", "--id", "h", "--debit", "cash=1", "--credit", "alice=1")
      #expect(conflict.status == 1)
      #expect(try conflict.object().obj("error").str("code") == "ID_CONFLICT")
    }
  }
}
