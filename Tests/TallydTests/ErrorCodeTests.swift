import Foundation
import TallyProtocol
import Testing

// Each wire error code a client can meet, end to end. After every rejected write the log
// head (seq and chain) and the balances of every fixture account are unchanged.

/// Runs `body` and requires the ledger state (head + balances of `accounts`) to be the same
/// before and after.
func expectNoChange(
  _ admin: LineConn, _ accounts: [String] = Fixture.all,
  sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void
) async throws {
  let before = try await admin.state(accounts, sourceLocation: sourceLocation)
  try await body()
  let after = try await admin.state(accounts, sourceLocation: sourceLocation)
  #expect(after == before, "a rejected request changed the ledger", sourceLocation: sourceLocation)
}

/// `legs` JSON of a two-leg entry.
func twoLegs(_ debit: String, _ credit: String, _ amount: String) -> String {
  "[{\"account\":\"\(debit)\",\"side\":\"debit\",\"amount\":\"\(amount)\"},"
    + "{\"account\":\"\(credit)\",\"side\":\"credit\",\"amount\":\"\(amount)\"}]"
}

@Suite("tallyd error codes", .timeLimit(.minutes(10)))
struct ErrorCodeTests {
  @Test func badRequestForMalformedBodiesChangesNothing() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let cases: [(String, String?)] = [
          (#"ENTRY.POST {"legs":[]}"#, "INVALID_FIELD"),
          (
            "ENTRY.POST {\"id\":\"x\",\"legs\":\(twoLegs("alice", "bob", "1")),\"extra\":1}",
            "INVALID_FIELD"
          ),
          (
            "ENTRY.POST {\"id\":\"has space\",\"legs\":\(twoLegs("alice", "bob", "1"))}",
            "INVALID_ID"
          ),
          (
            #"ENTRY.POST {"id":"one","legs":[{"account":"alice","side":"debit","amount":"1"}]}"#,
            "TOO_FEW_LEGS"
          ),
          (
            "ENTRY.POST {\"id\":\"dup\",\"legs\":\(twoLegs("alice", "alice", "1"))}",
            "DUPLICATE_LEG"
          ),
          (
            #"ENTRY.POST {"id":"num","legs":[{"account":"alice","side":"debit","amount":1},"#
              + #"{"account":"bob","side":"credit","amount":1}]}"#, "INVALID_FIELD"
          ),
          (
            #"ENTRY.POST {"id":"side","legs":[{"account":"alice","side":"up","amount":"1"},"#
              + #"{"account":"bob","side":"credit","amount":"1"}]}"#, "INVALID_FIELD"
          ),
          (
            "ENTRY.POST {\"id\":\"vd\",\"legs\":\(twoLegs("alice", "bob", "1")),"
              + "\"value_date\":\"2025-02-30\"}", "INVALID_FIELD"
          ),
          (
            "ENTRY.POST {\"id\":\"md\",\"legs\":\(twoLegs("alice", "bob", "1")),"
              + "\"metadata\":{\"k\":1}}", "INVALID_METADATA"
          ),
          ("ENTRY.POST [1,2]", "INVALID_JSON"),
          ("ENTRY.POST {\"id\":", "INVALID_JSON"),
          (
            #"ACCOUNT.OPEN {"account":"x","currency":"EUR","normal":"sideways"}"#,
            "INVALID_FIELD"
          ),
          (#"ACCOUNT.OPEN {"account":"bad name","currency":"EUR"}"#, "INVALID_ID"),
          (#"HOLD.PLACE {"id":"hp","legs":[],"ttl_ms":0}"#, nil),
          (
            "HOLD.PLACE {\"id\":\"hp\",\"legs\":\(twoLegs("alice", "bob", "1")),"
              + "\"deadline\":\"2001-01-01T00:00:00Z\"}", "INVALID_DEADLINE"
          ),
          (#"STATEMENT.GET {"account":"bob","limit":0}"#, "INVALID_FIELD"),
          (#"LOG.READ {"from_seq":-1}"#, "INVALID_FIELD"),
          ("PING {\"x\":1}", "INVALID_FIELD"),
        ]
        for (line, reason) in cases {
          let r = try await admin.request(line)
          #expect(r.code == "BAD_REQUEST", "\(line) → \(r)")
          if let reason { #expect(r.reason == reason, "\(line) → \(r)") }
          #expect(r.message?.isEmpty == false, "\(r)")
          #expect(r.body["details"] is [String: Any], "\(r)")
        }
      }
      #expect(try await admin.request("PING").isOK, "the connection stays usable")
    }
  }

  @Test func unknownVerbIsRefusedAndTheConnectionStaysUsable() async throws {
    try await withTallyd { server in
      let c = try await server.connect()
      // Before AUTH the verb is still recognised as unknown.
      let pre = try await c.request("FROB")
      #expect(pre.code == "UNKNOWN_VERB", "\(pre)")
      let admin = try await server.admin()
      try await expectNoChange(admin, []) {
        for line in ["ENTRY.DELETE {}", "FROB", "HELLO {}", "PING.PONG", "OK {}"] {
          let r = try await admin.request(line)
          #expect(r.code == "UNKNOWN_VERB", "\(line) → \(r)")
        }
      }
      #expect(try await admin.request("PING").isOK)
    }
  }

  @Test func lineTooLongIsAnsweredAndTheConnectionStaysUsable() async throws {
    try await withFixture(["--max-line-bytes", "1024"]) { _, admin in
      try await expectNoChange(admin) {
        // A write over the limit is not applied.
        let big = String(repeating: "v", count: 400)
        let line =
          "ENTRY.POST {\"id\":\"big\",\"legs\":\(twoLegs("alice", "bob", "1")),"
          + "\"metadata\":{\"a\":\"\(big)\",\"b\":\"\(big)\",\"c\":\"\(big)\"}}"
        #expect(line.utf8.count > 1024)
        let r = try await admin.request(line)
        #expect(r.code == "LINE_TOO_LONG", "\(r)")
        #expect(r.details["limit"] as? String == "1024")
        #expect(try await admin.request("PING").raw == #"OK {"pong":true}"#)
        // Exactly at the limit is a request; one byte more is not.
        func padded(_ total: Int) -> String {
          let head = #"ENTRY.GET {"id":"nope""#
          return head + String(repeating: " ", count: total - head.utf8.count - 1) + "}"
        }
        let at = try await admin.request(padded(1024))
        #expect(at.code == "NOT_FOUND", "1024 bytes: \(at)")
        let over = try await admin.request(padded(1025))
        #expect(over.code == "LINE_TOO_LONG", "1025 bytes: \(over)")
        // A huge line arriving in pieces is answered once, and what follows still works.
        try await admin.send(String(repeating: "x", count: 5000))
        try await admin.send(String(repeating: "y", count: 5000) + "\nPING\n")
        let e = try await admin.readReply()
        #expect(e.code == "LINE_TOO_LONG", "\(e)")
        let p = try await admin.readReply()
        #expect(p.raw == #"OK {"pong":true}"#, "\(p)")
      }
    }
  }

  @Test func authRequiredBeforeAnythingButPingAuthQuit() async throws {
    try await withFixture { server, admin in
      let c = try await server.connect()
      try await expectNoChange(admin) {
        for line in [
          "LOG.HEAD", "STATS", "KEY.LIST",
          entryLine(
            "pre", debit: "alice", credit: "bob",
            amount: "1"), #"PARTNER.CREATE {"id":"x","name":"X"}"#,
        ] {
          let r = try await c.request(line)
          #expect(r.code == "AUTH_REQUIRED", "\(line) → \(r)")
        }
      }
      #expect(try await c.request("PING").isOK, "the connection stays usable")
      #expect(try await c.auth(key: server.adminKey, secret: server.adminSecret).isOK)
      #expect(try await c.request("LOG.HEAD").isOK)
    }
  }

  @Test func authFailedForWrongMacUnknownKeyRevokedKeyAndClosesAfterThree() async throws {
    try await withFixture { server, admin in
      let k = try await admin.createKey(role: "ops")
      try await admin.ok("KEY.REVOKE {\"key\":\"\(k.key)\"}")
      let c = try await server.connect()
      let zeros = String(repeating: "0", count: 64)
      let wrong = try await c.request("AUTH {\"key\":\"\(server.adminKey)\",\"mac\":\"\(zeros)\"}")
      #expect(wrong.code == "AUTH_FAILED", "\(wrong)")
      let unknown = try await c.auth(key: "key_ffffffffffffffff", secret: server.adminSecret)
      #expect(unknown.code == "AUTH_FAILED", "\(unknown)")
      // The same message whatever failed (no oracle for which keys exist).
      #expect(unknown.message == wrong.message)
      #expect(try await c.request("PING").isOK, "open after two failures")
      let revoked = try await c.auth(key: k.key, secret: k.secret)
      #expect(revoked.code == "AUTH_FAILED", "\(revoked)")
      #expect(revoked.message == wrong.message)
      let rest = try await c.waitClosed(timeout: 5)
      #expect(rest.isEmpty, "closed after the third failure; got \(rest)")
      // A MAC over another connection's nonce fails too (no replay).
      let a = try await server.connect()
      let b = try await server.connect()
      let replay = try await b.request(a.authLine(key: server.adminKey, secret: server.adminSecret))
      #expect(replay.code == "AUTH_FAILED", "\(replay)")
      // A MAC that is not hex.
      let nothex = try await b.request("AUTH {\"key\":\"\(server.adminKey)\",\"mac\":\"zz\"}")
      #expect(nothex.code == "AUTH_FAILED", "\(nothex)")
    }
  }

  @Test func forbiddenWriteByAnAuditorChangesNothing() async throws {
    try await withFixture { server, admin in
      let k = try await admin.createKey(role: "auditor")
      let aud = try await server.connect(key: k.key, secret: k.secret)
      try await expectNoChange(admin) {
        let r = try await aud.request(entryLine("aud", debit: "alice", credit: "bob", amount: "1"))
        #expect(r.code == "FORBIDDEN", "\(r)")
        #expect(r.message == "role auditor may not do this")
      }
      #expect(try await aud.request("LOG.HEAD").isOK, "the connection stays usable")
    }
  }

  @Test func notFoundForMissingObjectsChangesNothing() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let cases: [(String, String)] = [
          (entryLine("nf1", debit: "alice", credit: "ghost", amount: "1"), "ACCOUNT_NOT_FOUND"),
          (#"ENTRY.REVERSE {"id":"nf2","entry":"ghost-entry"}"#, "ENTRY_NOT_FOUND"),
          (#"HOLD.CAPTURE {"id":"ghost-hold"}"#, "HOLD_NOT_FOUND"),
          (#"HOLD.RELEASE {"id":"ghost-hold"}"#, "HOLD_NOT_FOUND"),
          (#"ACCOUNT.CLOSE {"account":"ghost"}"#, "ACCOUNT_NOT_FOUND"),
          (
            #"ACCOUNT.OPEN {"account":"g:x","partner":"ghostco","currency":"EUR"}"#,
            "PARTNER_NOT_FOUND"
          ),
          (#"ACCOUNT.GET {"account":"ghost"}"#, "ACCOUNT_NOT_FOUND"),
          (#"BALANCE.GET {"account":"ghost"}"#, "ACCOUNT_NOT_FOUND"),
          (#"STATEMENT.GET {"account":"ghost"}"#, "ACCOUNT_NOT_FOUND"),
          (#"ENTRY.GET {"id":"ghost"}"#, "ENTRY_NOT_FOUND"),
          (#"PARTNER.GET {"id":"ghost"}"#, "PARTNER_NOT_FOUND"),
        ]
        for (line, reason) in cases {
          let r = try await admin.request(line)
          #expect(r.code == "NOT_FOUND", "\(line) → \(r)")
          #expect(r.reason == reason, "\(line) → \(r)")
        }
        // A service key that names a partner that does not exist.
        let r = try await admin.request(#"KEY.CREATE {"role":"service","partner":"ghostco"}"#)
        #expect(r.code == "NOT_FOUND", "\(r)")
      }
    }
  }

  @Test func alreadyExistsForADifferentReopenChangesNothing() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let r = try await admin.request(
          #"ACCOUNT.OPEN {"account":"bob","currency":"USD","normal":"credit"}"#)
        #expect(r.code == "ALREADY_EXISTS", "\(r)")
        #expect(r.details["field"] as? String == "currency")
        let p = try await admin.request(#"PARTNER.CREATE {"id":"p1","name":"Someone Else"}"#)
        #expect(p.code == "ALREADY_EXISTS", "\(p)")
      }
    }
  }

  @Test func idConflictForAReusedIdChangesNothing() async throws {
    try await withFixture { _, admin in
      try await admin.ok(
        "HOLD.PLACE {\"id\":\"hid\",\"legs\":\(twoLegs("alice", "bob", "5"))}")
      try await expectNoChange(admin) {
        let r = try await admin.request(
          entryLine(
            "seed", debit: "cash", credit: "alice",
            amount: "10001"))
        #expect(r.code == "ID_CONFLICT", "\(r)")
        #expect(r.details["id"] as? String == "seed")
        // An entry id already used by a hold.
        let k = try await admin.request(
          entryLine(
            "hid", debit: "alice", credit: "bob",
            amount: "5"))
        #expect(k.code == "ID_CONFLICT", "\(k)")
        #expect(k.details["field"] as? String == "kind")
      }
    }
  }

  @Test func unbalancedEntryChangesNothing() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let r = try await admin.request(
          #"ENTRY.POST {"id":"u1","legs":[{"account":"alice","side":"debit","amount":"10"},"#
            + #"{"account":"bob","side":"credit","amount":"9"}]}"#)
        #expect(r.code == "UNBALANCED", "\(r)")
        #expect(r.details["currency"] as? String == "EUR")
        // Two currencies, each unbalanced.
        let x = try await admin.request(
          entryLine(
            "u2", debit: "usd", credit: "bob",
            amount: "10"))
        #expect(x.code == "UNBALANCED", "\(x)")
      }
    }
  }

  @Test func currencyMismatchChangesNothing() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let r = try await admin.request(
          "ENTRY.POST {\"id\":\"cm\",\"legs\":\(twoLegs("alice", "bob", "1")),"
            + "\"currency\":\"USD\"}")
        #expect(r.code == "CURRENCY_MISMATCH", "\(r)")
        let leg = try await admin.request(
          #"ENTRY.POST {"id":"cm2","legs":[{"account":"alice","side":"debit","amount":"1","#
            + #""currency":"GBP"},{"account":"bob","side":"credit","amount":"1"}]}"#)
        #expect(leg.code == "CURRENCY_MISMATCH", "\(leg)")
      }
    }
  }

  @Test func unknownCurrencyChangesNothing() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        for cur in ["XYZ", "eur", "EURO"] {
          let r = try await admin.request(
            "ACCOUNT.OPEN {\"account\":\"cur-\(cur)\",\"currency\":\"\(cur)\"}")
          #expect(r.code == "UNKNOWN_CURRENCY", "\(cur) → \(r)")
        }
      }
      let g = try await admin.request(#"ACCOUNT.GET {"account":"cur-XYZ"}"#)
      #expect(g.code == "NOT_FOUND")
    }
  }

  @Test func accountClosedRefusesPostingsAndChangesNothing() async throws {
    try await withFixture { _, admin in
      try await admin.open("shut", normal: "credit")
      try await admin.ok(#"ACCOUNT.CLOSE {"account":"shut"}"#)
      try await expectNoChange(admin, Fixture.all + ["shut"]) {
        let r = try await admin.request(
          entryLine(
            "ac", debit: "alice", credit: "shut",
            amount: "1"))
        #expect(r.code == "ACCOUNT_CLOSED", "\(r)")
        #expect(r.details["account"] as? String == "shut")
        let h = try await admin.request(
          "HOLD.PLACE {\"id\":\"ach\",\"legs\":\(twoLegs("alice", "shut", "1"))}")
        #expect(h.code == "ACCOUNT_CLOSED", "\(h)")
      }
    }
  }

  @Test func insufficientFundsOnANoOverdraftAccountChangesNothing() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let r = try await admin.request(
          entryLine(
            "if", debit: "alice", credit: "bob",
            amount: "10001"))
        #expect(r.code == "INSUFFICIENT_FUNDS", "\(r)")
        #expect(r.details["account"] as? String == "alice")
        let h = try await admin.request(
          "HOLD.PLACE {\"id\":\"ifh\",\"legs\":\(twoLegs("alice", "bob", "10001"))}")
        #expect(h.code == "INSUFFICIENT_FUNDS", "\(h)")
      }
      // Exactly the balance is fine.
      try await admin.post("all", debit: "alice", credit: "bob", amount: "10000")
      #expect(try await admin.balance("alice").balance == "0")
    }
  }

  @Test func limitExceededOnACappedAccountChangesNothing() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let r = try await admin.request(
          entryLine(
            "le", debit: "cash", credit: "capped",
            amount: "1001"))
        #expect(r.code == "LIMIT_EXCEEDED", "\(r)")
        #expect(r.details["account"] as? String == "capped")
      }
      try await admin.post("le-ok", debit: "cash", credit: "capped", amount: "1000")
      try await expectNoChange(admin) {
        let r = try await admin.request(
          entryLine(
            "le2", debit: "cash", credit: "capped",
            amount: "1"))
        #expect(r.code == "LIMIT_EXCEEDED", "\(r)")
        // Pending inflows count too.
        let h = try await admin.request(
          "HOLD.PLACE {\"id\":\"leh\",\"legs\":\(twoLegs("cash", "capped", "1"))}")
        #expect(h.code == "LIMIT_EXCEEDED", "\(h)")
      }
    }
  }

  @Test func invalidAmountForZeroNegativeNonNumericAndHugeChangesNothing() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let int128Max = "170141183460469231731687303715884105727"
        let tooBig = "170141183460469231731687303715884105728"
        for amount in [
          "0", "-5", "abc", "1.5", "007", "", " 1", "1e3", tooBig,
          String(repeating: "9", count: 60),
        ] {
          let r = try await admin.request(
            entryLine(
              "ia", debit: "alice", credit: "bob",
              amount: amount))
          #expect(r.code == "INVALID_AMOUNT", "amount \"\(amount)\" → \(r)")
        }
        // Int128.max parses; it is then refused by a balance rule, not as an amount.
        let max = try await admin.request(
          entryLine(
            "ia-max", debit: "alice", credit: "bob",
            amount: int128Max))
        #expect(max.code == "INSUFFICIENT_FUNDS", "\(max)")
        let limit = try await admin.request(
          #"ACCOUNT.OPEN {"account":"neg","currency":"EUR","limit":"-1"}"#)
        #expect(limit.code == "INVALID_AMOUNT", "\(limit)")
      }
      try await admin.ok("HOLD.PLACE {\"id\":\"iah\",\"legs\":\(twoLegs("alice", "bob", "5"))}")
      try await expectNoChange(admin) {
        let cap = try await admin.request(#"HOLD.CAPTURE {"id":"iah","amount":"0"}"#)
        #expect(cap.code == "INVALID_AMOUNT", "\(cap)")
      }
    }
  }

  @Test func overflowOfASumOrABalanceChangesNothing() async throws {
    try await withFixture { _, admin in
      let max = "170141183460469231731687303715884105727"
      try await admin.open("big1")
      try await admin.open("big2", normal: "credit")
      try await admin.open("big3", normal: "credit")
      let accounts = Fixture.all + ["big1", "big2", "big3"]
      try await expectNoChange(admin, accounts) {
        let r = try await admin.request(
          "ENTRY.POST {\"id\":\"of\",\"legs\":[{\"account\":\"big1\",\"side\":\"debit\","
            + "\"amount\":\"\(max)\"},{\"account\":\"big2\",\"side\":\"debit\",\"amount\":"
            + "\"\(max)\"},{\"account\":\"big3\",\"side\":\"credit\",\"amount\":\"1\"}]}")
        #expect(r.code == "OVERFLOW", "\(r)")
      }
      try await admin.post("of-max", debit: "big1", credit: "big2", amount: max)
      try await expectNoChange(admin, accounts) {
        let r = try await admin.request(
          entryLine(
            "of-1", debit: "big1", credit: "big2",
            amount: "1"))
        #expect(r.code == "OVERFLOW", "\(r)")
      }
    }
  }

  @Test func alreadyReversedChangesNothing() async throws {
    try await withFixture { _, admin in
      try await admin.post("ar", debit: "alice", credit: "bob", amount: "3")
      let first = try await admin.ok(#"ENTRY.REVERSE {"id":"ar-r1","entry":"ar"}"#)
      try await expectNoChange(admin) {
        let r = try await admin.request(#"ENTRY.REVERSE {"id":"ar-r2","entry":"ar"}"#)
        #expect(r.code == "ALREADY_REVERSED", "\(r)")
        #expect(r.details["seq"] as? String == String(try first.int("seq")))
      }
    }
  }

  @Test func holdNotPendingAfterCaptureOrReleaseChangesNothing() async throws {
    try await withFixture { _, admin in
      try await admin.ok("HOLD.PLACE {\"id\":\"hn1\",\"legs\":\(twoLegs("alice", "bob", "9"))}")
      try await admin.ok(#"HOLD.CAPTURE {"id":"hn1"}"#)
      try await admin.ok("HOLD.PLACE {\"id\":\"hn2\",\"legs\":\(twoLegs("alice", "bob", "9"))}")
      try await admin.ok(#"HOLD.RELEASE {"id":"hn2"}"#)
      try await expectNoChange(admin) {
        let r = try await admin.request(#"HOLD.RELEASE {"id":"hn1"}"#)
        #expect(r.code == "HOLD_NOT_PENDING", "\(r)")
        #expect(r.details["state"] as? String == "captured")
        let c = try await admin.request(#"HOLD.CAPTURE {"id":"hn2"}"#)
        #expect(c.code == "HOLD_NOT_PENDING", "\(c)")
        #expect(c.details["state"] as? String == "released")
        // A different capture of a captured hold is not a retry.
        let d = try await admin.request(#"HOLD.CAPTURE {"id":"hn1","amount":"1"}"#)
        #expect(d.code == "HOLD_NOT_PENDING", "\(d)")
      }
    }
  }

  @Test func captureExceedingTheHoldChangesNothing() async throws {
    try await withFixture { _, admin in
      try await admin.ok("HOLD.PLACE {\"id\":\"ce\",\"legs\":\(twoLegs("alice", "bob", "9"))}")
      try await expectNoChange(admin) {
        let r = try await admin.request(#"HOLD.CAPTURE {"id":"ce","amount":"10"}"#)
        #expect(r.code == "CAPTURE_EXCEEDS_HOLD", "\(r)")
        let p = try await admin.request(#"HOLD.CAPTURE {"id":"ce","amounts":["9","10"]}"#)
        #expect(p.code == "CAPTURE_EXCEEDS_HOLD", "\(p)")
      }
      #expect(try await admin.balance("alice").pendingDebits == "9", "the hold is still pending")
    }
  }

  @Test func accountNotEmptyAndAccountHasHoldsRefuseCloseAndChangeNothing() async throws {
    try await withFixture { _, admin in
      try await admin.open("held", normal: "credit")
      try await admin.ok("HOLD.PLACE {\"id\":\"hh\",\"legs\":\(twoLegs("cash", "held", "4"))}")
      try await expectNoChange(admin, Fixture.all + ["held"]) {
        let r = try await admin.request(#"ACCOUNT.CLOSE {"account":"alice"}"#)
        #expect(r.code == "ACCOUNT_NOT_EMPTY", "\(r)")
        let h = try await admin.request(#"ACCOUNT.CLOSE {"account":"held"}"#)
        #expect(h.code == "ACCOUNT_HAS_HOLDS", "\(h)")
      }
      let g = try await admin.ok(#"ACCOUNT.GET {"account":"alice"}"#)
      #expect(try g.str("status") == "open")
    }
  }

  @Test func tooLargeBatchIsRefusedWhole() async throws {
    try await withFixture(["--max-batch", "3"]) { _, admin in
      let e = (0..<4).map { entryJSON("tl\($0)", debit: "alice", credit: "bob", amount: "1") }
      try await expectNoChange(admin) {
        let r = try await admin.request("ENTRY.BATCH {\"entries\":[\(e.joined(separator: ","))]}")
        #expect(r.code == "TOO_LARGE", "\(r)")
        #expect(r.details["limit"] as? String == "3")
      }
      let ok = try await admin.ok(
        "ENTRY.BATCH {\"entries\":[\(e.prefix(3).joined(separator: ","))]}")
      #expect(try ok.arr("results").count == 3)
      #expect(try await admin.balance("bob").balance == "3")
    }
  }

  @Test func tooManyConnectionsIsAnsweredThenClosed() async throws {
    try await withTallyd(["--max-connections", "2"]) { server in
      let a = try await server.admin()
      let b = try await server.connect()
      let c = try await server.connect(expectHello: false)
      let lines = try await c.waitClosed(timeout: 10)
      try #require(lines.count == 1, "\(lines)")
      let r = Reply(lines[0])
      #expect(r.code == "TOO_MANY_CONNECTIONS", "\(r)")
      #expect(try await a.request("PING").isOK, "the others keep working")
      #expect(try await b.request("PING").isOK)
      // A slot frees when a connection closes.
      b.close()
      var admitted = false
      for _ in 0..<100 {
        let d = try await server.connect(expectHello: false)
        let first = try await d.readLine(timeout: 5) ?? ""
        if first.hasPrefix("HELLO ") {
          admitted = true
          break
        }
        try await Task.sleep(for: .milliseconds(20))
      }
      #expect(admitted, "no connection admitted after one closed")
    }
  }

  @Test func unauthenticatedConnectionTimesOutThenCloses() async throws {
    // 10 s: long enough that the authenticated connection below finishes its AUTH in time
    // even when the whole suite loads the 2 cores (stalls of over 5 s were seen).
    try await withTallyd(["--auth-timeout", "10"]) { server in
      let authed = try await server.admin()
      let start = monotonicSeconds()
      let c = try await server.connect()
      let lines = try await c.waitClosed(timeout: 30)
      let took = monotonicSeconds() - start
      try #require(lines.count == 1, "\(lines)")
      let r = Reply(lines[0])
      #expect(r.code == "TIMEOUT" && r.reason == "AUTH_TIMEOUT", "\(r)")
      #expect(took > 9 && took < 30, "took \(took)s")
      // An authenticated connection is not subject to the auth timeout.
      #expect(try await authed.request("PING").isOK)
    }
  }

  @Test func idleConnectionTimesOutThenCloses() async throws {
    // 10 s: AUTH must be answered within the idle limit, and a loaded run of the whole
    // suite was seen to stall a process for over 5 s.
    try await withTallyd(["--idle-timeout", "10"]) { server in
      let c = try await server.admin()
      let lines = try await c.waitClosed(timeout: 30)
      try #require(lines.count == 1, "\(lines)")
      let r = Reply(lines[0])
      #expect(r.code == "TIMEOUT" && r.reason == "IDLE_TIMEOUT", "\(r)")
      // Activity keeps a connection alive past the idle limit (pings 40x more often than the
      // limit, so a loaded machine's stalls cannot pass for idleness).
      let d = try await server.admin()
      let start = monotonicSeconds()
      while monotonicSeconds() - start < 11 {
        try await Task.sleep(for: .milliseconds(250))
        #expect(try await d.request("PING").isOK)
      }
    }
  }

  /// SIGTERM while requests wait behind earlier ones: each is answered OK (done) or
  /// `ERR SHUTTING_DOWN` (not run), then the connection closes; acknowledged writes survive.
  @Test func shutdownAnswersWaitingRequestsShuttingDown() async throws {
    let server = try await TallydProcess.start()
    defer { server.remove() }
    do {
      let admin = try await server.admin()
      try await buildFixture(admin)
      // Alternate writes and reads: each read waits for the write before it, so most of the
      // pipeline is still waiting when the signal lands. 3,000 pairs (far more than the
      // server holds in flight per connection, and half a second or more of work even for a
      // fast server) so that it cannot run them all before the signal.
      var text = ""
      for i in 0..<3000 {
        text += entryLine("sd\(i)", debit: "cash", credit: "bob", amount: "1") + "\n"
        text += "BALANCE.GET {\"account\":\"bob\"}\n"
      }
      try await admin.send(text)
      let first = try await admin.readReply()
      #expect(first.isOK, "\(first)")
      server.signal(SIGTERM)
      let rest = try await admin.waitClosed(timeout: 30).map(Reply.init)
      var posted = 1
      var shuttingDown = 0
      for (i, r) in rest.enumerated() {
        if r.isOK {
          if (i + 1) % 2 == 0 { posted += 1 }
        } else {
          #expect(r.code == "SHUTTING_DOWN", "reply \(i + 1): \(r)")
          shuttingDown += 1
        }
      }
      #expect(shuttingDown > 0, "no request was refused SHUTTING_DOWN (all \(rest.count) ran)")
      let status = try #require(try await server.waitExit(timeout: 30))
      #expect(status == 0, "tallyd exit status \(status); log:\n\(server.log().suffix(2000))")
      // Every acknowledged write is there after a restart; none that was refused.
      try await server.restart()
      let again = try await server.admin()
      #expect(try await again.balance("bob").balance == String(posted))
      try await server.terminate()
    } catch {
      _ = try? await server.kill()
      throw error
    }
  }

  @Test func authFailuresFromOneAddressAreRateLimited() async throws {
    try await withTallyd { server in
      // 20 failures from 127.0.0.1: six connections of 3 (each closed), then 2 more. The
      // limit counts failures in a 60 s window from the first, so the connections are opened
      // first and each one's AUTHs are sent together: on a loaded machine, 20 round trips
      // one after another once took longer than the window, which then rightly began again.
      var conns = [LineConn]()
      for _ in 0..<8 { conns.append(try await server.connect()) }
      let start = monotonicSeconds()
      var failures = 0
      for c in conns.prefix(7) {
        let n = min(3, 20 - failures)
        let line = c.authLine(key: server.adminKey, secret: "wrong") + "\n"
        try await c.send(String(repeating: line, count: n))
        for _ in 0..<n {
          let r = try await c.readReply()
          #expect(r.code == "AUTH_FAILED" && r.reason == "AUTH_FAILED", "\(r)")
          failures += 1
        }
      }
      #expect(failures == 20)
      let elapsed = monotonicSeconds() - start
      try #require(elapsed < 50, "20 failures took \(elapsed) s: the 60 s window could end")
      // Now even the right MAC is refused unchecked, and the connection closes.
      let c = conns[7]
      try await c.send(c.authLine(key: server.adminKey, secret: server.adminSecret) + "\n")
      let lines = try await c.waitClosed()
      try #require(lines.count == 1, "\(lines)")
      let r = Reply(lines[0])
      #expect(r.code == "AUTH_FAILED" && r.reason == "RATE_LIMITED", "\(r)")
      let st = try await server.connect()
      #expect(try await st.request("PING").isOK, "PING still works before AUTH")
    }
  }

  @Test func keyRevokeOfAnUnknownKeyIsNotFoundNamingTheKey() async throws {
    try await withTallyd { server in
      let admin = try await server.admin()
      let before = try await admin.ok("KEY.LIST").raw
      let r = try await admin.request(#"KEY.REVOKE {"key":"key_0123456789abcdef"}"#)
      #expect(r.code == "NOT_FOUND" && r.reason == "KEY_NOT_FOUND", "\(r)")
      #expect(r.details["key"] as? String == "key_0123456789abcdef", "\(r)")
      #expect(try await admin.ok("KEY.LIST").raw == before)
    }
  }

  @Test func keyCreateRefusesInvalidRolePartnerGrantCombinations() async throws {
    try await withFixture { _, admin in
      let before = try await admin.ok("KEY.LIST").raw
      let cases: [(String, String)] = [
        (#"KEY.CREATE {"role":"service"}"#, "BAD_REQUEST"),
        (#"KEY.CREATE {"role":"ops","partner":"p1"}"#, "BAD_REQUEST"),
        (#"KEY.CREATE {"role":"admin","grants":["fees"]}"#, "BAD_REQUEST"),
        (#"KEY.CREATE {"role":"service","partner":"p1","grants":["p2:wallet"]}"#, "BAD_REQUEST"),
        (#"KEY.CREATE {"role":"service","partner":"p1","grants":["nowhere"]}"#, "NOT_FOUND"),
        (#"KEY.CREATE {"role":"service","partner":"nobody"}"#, "NOT_FOUND"),
        (#"KEY.CREATE {"role":"root"}"#, "BAD_REQUEST"),
      ]
      for (line, code) in cases {
        let r = try await admin.request(line)
        #expect(r.code == code, "\(line) → \(r)")
      }
      #expect(try await admin.ok("KEY.LIST").raw == before, "no key was created")
    }
  }

  /// docs/PROTOCOL.md: bytes that never form a line do not count as activity.
  @Test func slowLorisIsClosedByTheIdleTimeout() async throws {
    // 10 s, for the same reason as idleConnectionTimesOutThenCloses.
    try await withTallyd(["--idle-timeout", "10"]) { server in
      let c = try await server.admin()
      let start = monotonicSeconds()
      var closedAt: Double?
      var lines = [String]()
      // Dribble for up to ~45 s: a server that counted bytes as activity would keep the
      // connection all that time; the idle timeout (10 s) must close it long before.
      for i in 0..<400 {
        do {
          try await c.send([UInt8(ascii: "P") + UInt8(i % 2)])
        } catch {
          break  // the server is gone
        }
        if try await c.isClosed(within: 0.1) {
          closedAt = monotonicSeconds()
          break
        }
        if let l = try? await c.readLine(timeout: 0.01) { lines.append(l) }
      }
      if closedAt == nil {
        lines += try await c.waitClosed(timeout: 3)
        closedAt = monotonicSeconds()
      }
      let took = (closedAt ?? 0) - start
      #expect(took < 30, "a dribbling client was kept for \(took) s with --idle-timeout 10")
      #expect(lines.contains { Reply($0).reason == "IDLE_TIMEOUT" }, "\(lines)")
    }
  }

  @Test func pageLimitsOverTheMaximumAreRefused() async throws {
    try await withFixture { _, admin in
      for line in [
        #"STATEMENT.GET {"account":"bob","limit":10001}"#, #"LOG.READ {"limit":10001}"#,
        #"ACCOUNT.LIST {"limit":10001}"#, #"PARTNER.LIST {"limit":10001}"#,
        #"LOG.READ {"limit":0}"#,
      ] {
        let r = try await admin.request(line)
        #expect(r.code == "BAD_REQUEST" && r.details["field"] as? String == "limit", "\(r)")
      }
      let ok = try await admin.request(#"LOG.READ {"limit":10000}"#)
      #expect(ok.isOK)
    }
  }

  @Test func everyWireCodeIsDocumentedInProtocolMd() throws {
    var root = (#filePath as NSString).deletingLastPathComponent
    while root != "/" && !FileManager.default.fileExists(atPath: root + "/Package.swift") {
      root = (root as NSString).deletingLastPathComponent
    }
    let path = root + "/docs/PROTOCOL.md"
    let text = try #require(readFile(path), "docs/PROTOCOL.md does not exist")
    // The error table: the run of `|` lines that has a row for BAD_REQUEST (other tables,
    // such as the verbs', may also start rows with a back-quoted word).
    var tables = [[Substring]]()
    var current = [Substring]()
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
      if line.hasPrefix("|") {
        current.append(line)
      } else if !current.isEmpty {
        tables.append(current)
        current = []
      }
    }
    if !current.isEmpty { tables.append(current) }
    let errorTables = tables.filter { $0.contains { $0.hasPrefix("| `BAD_REQUEST` |") } }
    try #require(!errorTables.isEmpty, "no table with a | `BAD_REQUEST` | row in \(path)")
    var documented = Set<String>()
    for line in errorTables.joined() where line.hasPrefix("| `") {
      let rest = line.dropFirst(3)
      guard let end = rest.firstIndex(of: "`") else { continue }
      documented.insert(String(rest[..<end]))
    }
    let codes = Set(WireCode.allCases.map(\.rawValue))
    #expect(codes.subtracting(documented).sorted() == [], "codes missing from the doc")
    #expect(documented.subtracting(codes).sorted() == [], "documented codes that do not exist")
  }
}
