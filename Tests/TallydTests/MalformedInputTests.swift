import Foundation
import TallyTestSupport
import Testing

// Hostile and sloppy input, end to end. For each case: the answer, whether the connection
// stays usable (noted per case), and that nothing changed (LOG.HEAD + balances).

@Suite("tallyd malformed input", .timeLimit(.minutes(10)))
struct MalformedInputTests {
  /// Connection stays usable: every garbage line gets exactly one error answer.
  @Test func randomBinaryLinesAreRefusedOneAnswerEach() async throws {
    try await withFixture { server, admin in
      let c = try await server.admin()
      var rng = SplitMix64(seed: 0x7A11_D5EE_D000_0001)
      var payload = [UInt8]()
      let count = 300
      for i in 0..<count {
        let n = Int.random(in: 1...300, using: &rng)
        var line = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
        line = line.map { $0 == 0x0A ? 0xFF : $0 }
        // Always some NUL and 0xFF bytes; every other line starts like a real verb.
        line[n / 2] = 0x00
        line[n - 1] = 0xFF
        if i % 2 == 1 { line = Array("ENTRY.POST ".utf8) + line }
        payload += line + [0x0A]
      }
      try await expectNoChange(admin) {
        try await c.send(payload)
        let replies = try await c.readReplies(count)
        for (i, r) in replies.enumerated() {
          #expect(
            r.code == "BAD_REQUEST" || r.code == "UNKNOWN_VERB", "line \(i): \(r.raw.prefix(200))")
          if i % 2 == 1 { #expect(r.code == "BAD_REQUEST" && r.reason == "INVALID_UTF8") }
        }
        #expect(try await c.request("PING").raw == #"OK {"pong":true}"#)
      }
    }
  }

  /// Connection stays usable.
  @Test func invalidUtf8InsideAJsonStringIsBadRequest() async throws {
    try await withFixture { _, admin in
      let bad: [[UInt8]] = [
        [0xFF, 0xFE], [0xC0, 0xAF], [0xED, 0xA0, 0x80], [0xE2, 0x82],
        [0xF8, 0x88, 0x80, 0x80, 0x80],
      ]
      try await expectNoChange(admin) {
        for seq in bad {
          let line =
            Array(#"ENTRY.POST {"id":"u"#.utf8) + seq
            + Array("\",\"legs\":\(twoLegs("alice", "bob", "1"))}\n".utf8)
          try await admin.send(line)
          let r = try await admin.readReply()
          #expect(r.code == "BAD_REQUEST" && r.reason == "INVALID_UTF8", "\(seq) → \(r)")
          let meta =
            Array("ENTRY.POST {\"id\":\"u2\",\"legs\":\(twoLegs("alice", "bob", "1")),".utf8)
            + Array(#""metadata":{"k":""#.utf8) + seq + Array("\"}}\n".utf8)
          try await admin.send(meta)
          let m = try await admin.readReply()
          #expect(m.code == "BAD_REQUEST" && m.reason == "INVALID_UTF8", "\(seq) → \(m)")
        }
        // Control characters and NUL inside strings, raw or escaped.
        try await admin.send(Array(#"ENTRY.GET {"id":"a"#.utf8) + [0] + Array("b\"}\n".utf8))
        let raw = try await admin.readReply()
        #expect(raw.code == "BAD_REQUEST", "\(raw)")
        let esc = try await admin.request(#"ENTRY.GET {"id":"a\u0000b"}"#)
        #expect(esc.code == "BAD_REQUEST" || esc.code == "NOT_FOUND", "\(esc)")
        let lone = try await admin.request(#"ENTRY.GET {"id":"\ud800"}"#)
        #expect(lone.code == "BAD_REQUEST", "lone surrogate escape: \(lone)")
      }
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// Connection stays usable: only the long line is refused.
  @Test func oversizeLineAtTheDefaultLimitIsRefused() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let big = "ENTRY.POST {\"id\":\"" + String(repeating: "a", count: (1 << 20) + 10) + "\"}"
        let r = try await admin.request(big)
        #expect(r.code == "LINE_TOO_LONG", "\(r.raw.prefix(200))")
        #expect(r.details["limit"] as? String == "1048576")
      }
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// Connection stays usable after each.
  @Test func missingAndExtraFieldsNameTheField() async throws {
    try await withFixture { _, admin in
      let cases: [(String, String)] = [
        (#"ACCOUNT.OPEN {"currency":"EUR"}"#, "account"),
        (#"ACCOUNT.OPEN {"account":"x"}"#, "currency"),
        (#"ACCOUNT.OPEN {"account":"x","currency":"EUR","colour":"red"}"#, "colour"),
        ("ACCOUNT.GET", "account"),
        (#"ACCOUNT.GET {"account":"bob","x":1}"#, "x"),
        (#"BALANCE.GET {}"#, "account"),
        (#"PARTNER.CREATE {"id":"q"}"#, "name"),
        (#"KEY.CREATE {}"#, "role"),
        (#"HOLD.CAPTURE {}"#, "id"),
        (#"ENTRY.REVERSE {"id":"r"}"#, "entry"),
        (#"ENTRY.POST {"id":"e"}"#, "legs"),
        (#"ENTRY.BATCH {}"#, "entries"),
        (#"ENTRY.BATCH {"entries":[]}"#, "entries"),
        (#"AUTH {"key":"k"}"#, "mac"),
        (
          "ENTRY.POST {\"id\":\"e\",\"legs\":\(twoLegs("alice", "bob", "1")),\"memo\":\"x\"}",
          "memo"
        ),
        (
          #"ENTRY.POST {"id":"e","legs":[{"account":"alice","side":"debit","amount":"1","#
            + #""note":"x"},{"account":"bob","side":"credit","amount":"1"}]}"#, "legs[0].note"
        ),
        (
          #"ENTRY.POST {"id":"e","legs":[{"side":"debit","amount":"1"},"#
            + #"{"account":"bob","side":"credit","amount":"1"}]}"#, "legs[0].account"
        ),
        (#"STATEMENT.GET {"account":"bob","cursor":1,"from_seq":1}"#, "cursor"),
        (#"HOLD.CAPTURE {"id":"h","amount":"1","amounts":["1"]}"#, "amounts"),
      ]
      try await expectNoChange(admin) {
        for (line, field) in cases {
          let r = try await admin.request(line)
          #expect(r.code == "BAD_REQUEST", "\(line) → \(r)")
          #expect(r.details["field"] as? String == field, "\(line) → \(r)")
        }
      }
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// Connection stays usable after each.
  @Test func wrongJsonTypesAreBadRequest() async throws {
    try await withFixture { _, admin in
      let cases = [
        ("ENTRY.POST {\"id\":5,\"legs\":\(twoLegs("alice", "bob", "1"))}", "id"),
        (#"ENTRY.POST {"id":"e","legs":{}}"#, "legs"),
        (#"ENTRY.POST {"id":"e","legs":["alice","bob"]}"#, "legs"),
        (#"ACCOUNT.GET {"account":["bob"]}"#, "account"),
        (#"ACCOUNT.GET {"account":null}"#, "account"),
        (#"ACCOUNT.LIST {"limit":"10"}"#, "limit"),
        (#"ACCOUNT.LIST {"limit":1.5}"#, "limit"),
        (#"ACCOUNT.LIST {"limit":-1}"#, "limit"),
        (#"BALANCE.GET {"account":"bob","as_of_seq":"3"}"#, "as_of_seq"),
        (#"BALANCE.GET {"account":"bob","as_of_seq":true}"#, "as_of_seq"),
        (#"BALANCE.GET {"account":"bob","as_of_seq":1e2}"#, "as_of_seq"),
        (#"BALANCE.GET {"account":"bob","as_of_seq":18446744073709551616}"#, "as_of_seq"),
        (
          #"ACCOUNT.OPEN {"account":"x","currency":"EUR","no_overdraft":"true"}"#,
          "no_overdraft"
        ),
        (#"KEY.CREATE {"role":"service","partner":"p1","grants":"fees"}"#, "grants"),
        (#"KEY.CREATE {"role":"service","partner":"p1","grants":[1]}"#, "grants"),
        (
          "HOLD.PLACE {\"id\":\"h\",\"legs\":\(twoLegs("alice", "bob", "1")),\"ttl_ms\":1.5}",
          "ttl_ms"
        ),
        (
          "HOLD.PLACE {\"id\":\"h\",\"legs\":\(twoLegs("alice", "bob", "1")),\"ttl_ms\":\"5\"}",
          "ttl_ms"
        ),
        (#"STATEMENT.GET {"account":"bob","limit":10001}"#, "limit"),
        (#"PARTNER.CREATE {"id":"q","name":"Q","metadata":["a"]}"#, ""),
        (#"KEY.CREATE {"role":"wizard"}"#, "role"),
      ]
      try await expectNoChange(admin) {
        for (line, field) in cases {
          let r = try await admin.request(line)
          #expect(r.code == "BAD_REQUEST", "\(line) → \(r)")
          if !field.isEmpty {
            #expect(r.details["field"] as? String == field, "\(line) → \(r)")
          }
        }
      }
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// Connection stays usable after each.
  @Test func amountsAsJsonNumbersAreBadRequestNotInvalidAmount() async throws {
    try await withFixture { _, admin in
      try await admin.ok("HOLD.PLACE {\"id\":\"hn\",\"legs\":\(twoLegs("alice", "bob", "5"))}")
      let cases = [
        #"ENTRY.POST {"id":"n1","legs":[{"account":"alice","side":"debit","amount":100},"#
          + #"{"account":"bob","side":"credit","amount":100}]}"#,
        #"ENTRY.POST {"id":"n2","legs":[{"account":"alice","side":"debit","amount":"100"},"#
          + #"{"account":"bob","side":"credit","amount":1e2}]}"#,
        #"ENTRY.POST {"id":"n3","legs":[{"account":"alice","side":"debit","amount":null},"#
          + #"{"account":"bob","side":"credit","amount":"1"}]}"#,
        #"HOLD.CAPTURE {"id":"hn","amount":5}"#,
        #"HOLD.CAPTURE {"id":"hn","amounts":[5,5]}"#,
        #"ACCOUNT.OPEN {"account":"lim","currency":"EUR","limit":1000}"#,
      ]
      try await expectNoChange(admin) {
        for line in cases {
          let r = try await admin.request(line)
          #expect(r.code == "BAD_REQUEST", "\(line) → \(r)")
          #expect(r.reason == "INVALID_FIELD", "\(line) → \(r)")
        }
        // Strings that are not positive integers of minor units are INVALID_AMOUNT.
        for amount in [
          "0", "-5", "+5", "5.00", "0x10", "99999999999999999999999999999999999999999",
        ] {
          let r = try await admin.request(
            "HOLD.PLACE {\"id\":\"hx\",\"legs\":\(twoLegs("alice", "bob", amount))}")
          #expect(r.code == "INVALID_AMOUNT", "\(amount) → \(r)")
        }
      }
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// Connection stays usable after each.
  @Test func unknownAndLowercaseVerbsAreUnknownVerb() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        for line in [
          "ping", "Ping", "entry.post {}", "log.head", "PINGPINGPINGPINGPINGPINGPINGPINGP",
          "PING\t{}", "ENTRY_POST {}", "ENTRY-POST", "\u{00C9}TAT", "123", "{\"verb\":\"PING\"}",
          "FROB {}",
        ] {
          let r = try await admin.request(line)
          #expect(r.code == "UNKNOWN_VERB", "\(line) → \(r)")
        }
        // A verb with a space but no body is malformed JSON, not an unknown verb; so is an
        // unknown verb with a malformed body (the body is parsed before the verb is looked
        // up). A line starting with a space has no verb.
        for line in ["PING ", "FROB {not json"] {
          let r = try await admin.request(line)
          #expect(r.code == "BAD_REQUEST" && r.reason == "INVALID_JSON", "\(line) → \(r)")
        }
        let noVerb = try await admin.request(" PING")
        #expect(noVerb.code == "BAD_REQUEST" && noVerb.reason == "MISSING_VERB", "\(noVerb)")
      }
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// CRLF is accepted as a line end; the connection stays usable.
  @Test func crlfLineEndingsAreAccepted() async throws {
    try await withFixture { _, admin in
      try await admin.send(
        "PING\r\nLOG.HEAD\r\n" + entryLine("crlf", debit: "alice", credit: "bob", amount: "4")
          + "\r\nBALANCE.GET {\"account\":\"bob\"}\r\n")
      let r = try await admin.readReplies(4)
      #expect(r[0].raw == #"OK {"pong":true}"#)
      #expect(r[1].isOK, "\(r[1])")
      #expect(r[2].isOK && r[2].body["id"] as? String == "crlf", "\(r[2])")
      #expect(r[3].body["balance"] as? String == "4", "\(r[3])")
      for line in r { #expect(!line.raw.hasSuffix("\r")) }
    }
  }

  /// Empty lines are BAD_REQUEST each; the connection stays usable.
  @Test func emptyLinesAreBadRequestEach() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        try await admin.send("\n\r\n\nPING\n")
        let r = try await admin.readReplies(4)
        for e in r.prefix(3) {
          #expect(e.code == "BAD_REQUEST", "\(e)")
          #expect(e.message == "empty request line", "\(e)")
        }
        #expect(r[3].isOK)
      }
    }
  }

  /// JSON followed by more bytes is malformed; the connection stays usable.
  @Test func jsonWithTrailingGarbageIsBadRequest() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        for line in [
          "PING {} x", "LOG.HEAD {}{}", #"ENTRY.GET {"id":"seed"} garbage"#,
          entryLine("tg", debit: "alice", credit: "bob", amount: "1") + "}",
          entryLine("tg2", debit: "alice", credit: "bob", amount: "1") + " \u{0}",
          #"BALANCE.GET {"account":"bob"},"#, #"BALANCE.GET {"account":"bob""#,
          #"BALANCE.GET {"account":"bob",}"#, #"BALANCE.GET {'account':'bob'}"#,
          #"BALANCE.GET {"account":"bob","account":"alice"}"#,
        ] {
          let r = try await admin.request(line)
          #expect(r.code == "BAD_REQUEST", "\(line) → \(r)")
        }
      }
      #expect(try await admin.request(#"ENTRY.GET {"id":"tg"}"#).code == "NOT_FOUND")
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// The server neither crashes nor recurses without bound; the connection stays usable.
  @Test func deeplyNestedJsonIsRefusedWithoutHarm() async throws {
    try await withFixture { server, admin in
      try await expectNoChange(admin) {
        let depth = 200_000
        let arrays =
          "PING " + String(repeating: "[", count: depth)
          + String(repeating: "]", count: depth)
        let a = try await admin.request(arrays)
        #expect(a.code == "BAD_REQUEST", "\(a.raw.prefix(200))")
        let objects =
          "ENTRY.POST {\"id\":\"deep\",\"metadata\":"
          + String(repeating: "{\"a\":", count: 100_000) + "1"
          + String(repeating: "}", count: 100_001)
        let o = try await admin.request(objects)
        #expect(o.code == "BAD_REQUEST", "\(o.raw.prefix(200))")
        // Unclosed nesting, too.
        let open = try await admin.request("PING " + String(repeating: "{\"a\":[", count: 50_000))
        #expect(open.code == "BAD_REQUEST", "\(open.raw.prefix(200))")
        // Modest nesting inside metadata is refused as metadata, not as a crash.
        let meta = try await admin.request(
          "ENTRY.POST {\"id\":\"m\",\"legs\":\(twoLegs("alice", "bob", "1")),"
            + "\"metadata\":{\"k\":{\"k\":{\"k\":\"v\"}}}}")
        #expect(meta.code == "BAD_REQUEST", "\(meta)")
      }
      #expect(try await admin.request("PING").isOK)
      #expect(server.isRunning)
      let fresh = try await server.admin()
      #expect(try await fresh.request("PING").isOK)
    }
  }

  /// Malformed AUTH never answers INTERNAL; two failures leave the connection usable.
  @Test func malformedAuthKeysFailCleanly() async throws {
    try await withTallyd { server in
      let c = try await server.connect()
      let empty = try await c.request(#"AUTH {"key":"","mac":""}"#)
      #expect(empty.code == "AUTH_FAILED", "\(empty)")
      let huge = String(repeating: "k", count: 2000)
      let long = try await c.request("AUTH {\"key\":\"\(huge)\",\"mac\":\"00\"}")
      #expect(long.code == "AUTH_FAILED", "\(long)")
      #expect(try await c.request("PING").isOK)
      let d = try await server.connect()
      let number = try await d.request(#"AUTH {"key":1,"mac":2}"#)
      #expect(number.code == "BAD_REQUEST", "\(number)")
      #expect(
        try await d.auth(key: server.adminKey, secret: server.adminSecret).isOK,
        "a malformed AUTH is not a failed attempt")
    }
  }

  /// 10,000 requests in one write: 10,000 answers, in order, reads seeing earlier writes.
  @Test func tenThousandPipelinedRequestsAreAnsweredInOrder() async throws {
    try await withFixture { _, admin in
      var text = ""
      var kinds = [Int]()
      let total = 10_000
      // Blocks of 25 posts, 25 balance reads, 25 pings… so that writes group.
      for i in 0..<total {
        let kind = (i / 25) % 3
        kinds.append(kind)
        switch kind {
        case 0: text += entryLine("pl\(i)", debit: "alice", credit: "bob", amount: "1") + "\n"
        case 1: text += "BALANCE.GET {\"account\":\"bob\"}\n"
        default: text += "PING\n"
        }
      }
      let before = try await admin.head()
      try await admin.send(text, timeout: 60)
      let replies = try await admin.readReplies(total, timeout: 60)
      #expect(replies.count == total)
      var lastSeq = before.seq
      var posts = 0
      for (i, r) in replies.enumerated() {
        switch kinds[i] {
        case 0:
          let seq = r.body["seq"] as? Int ?? -1
          #expect(r.isOK && seq == lastSeq + 1, "reply \(i): \(r)")
          #expect(r.body["id"] as? String == "pl\(i)")
          lastSeq = seq
          posts += 1
        case 1:
          #expect(r.body["balance"] as? String == String(posts), "reply \(i): \(r)")
        default:
          #expect(r.raw == #"OK {"pong":true}"#, "reply \(i): \(r)")
        }
      }
      #expect(try await admin.head().seq == before.seq + posts)
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// A client dribbling one byte at a time does not hold up others; its request is
  /// answered once its line is complete. Each PING is answered before the next byte of the
  /// slow line is sent: a server that waited for the slow line would never answer it (the
  /// PING times out), whatever the machine's speed.
  @Test func slowLorisDoesNotBlockOtherClients() async throws {
    try await withFixture { server, admin in
      let slow = try await server.admin()
      let line = Array((entryLine("loris", debit: "alice", credit: "bob", amount: "6") + "\n").utf8)
      var pings = 0
      for (i, byte) in line.enumerated() {
        try await slow.send([byte])
        if i % 10 == 0 && i + 1 < line.count {
          #expect(try await admin.request("PING").isOK)
          pings += 1
        }
        try await Task.sleep(for: .milliseconds(5))
      }
      #expect(pings >= line.count / 10, "others were answered while the slow line was open")
      let r = try await slow.readReply()
      #expect(r.isOK && r.body["id"] as? String == "loris", "\(r)")
      #expect(try await admin.balance("bob").balance == "6")
    }
  }

  /// A line cut off by a disconnect is not a request: nothing is applied.
  @Test func halfALineThenDisconnectAppliesNothing() async throws {
    try await withFixture { server, admin in
      try await expectNoChange(admin) {
        let c = try await server.admin()
        // A complete, valid request — only the newline is missing.
        try await c.send(entryLine("half", debit: "alice", credit: "bob", amount: "8"))
        c.shutdownWrite()
        let rest = try await c.waitClosed(timeout: 10)
        #expect(rest.isEmpty, "no answer to a half line: \(rest)")
        c.close()
        // Wait (bounded) until the server has dropped that connection.
        var connections = -1
        for _ in 0..<200 {
          let st = try await admin.ok("STATS")
          connections = try st.obj("server").int("connections")
          if connections == 1 { break }
          try await Task.sleep(for: .milliseconds(10))
        }
        #expect(connections == 1)
      }
      #expect(try await admin.request(#"ENTRY.GET {"id":"half"}"#).code == "NOT_FOUND")
    }
  }

  /// A client that never reads its answers: the server must stop answering (and reading its
  /// socket) once answers back up (docs/PROTOCOL.md: "no queue grows without bound") and
  /// keep serving others. 4,000 `LOG.READ`s (~6 KB answers each) are sent at once by a
  /// client with a tiny receive buffer; the requests themselves (96 KB) arrive in one read,
  /// but with backpressure the server stops answering after roughly its socket send buffer
  /// (≤ 4 MiB) of answers, far below 4,000.
  @Test func clientThatNeverReadsIsThrottledAndDoesNotStarveOthers() async throws {
    try await withFixture { server, admin in
      let hog = try await LineConn.connect(port: server.port, receiveBuffer: 4096)
      #expect(try await hog.auth(key: server.adminKey, secret: server.adminSecret).isOK)
      func served() async throws -> Int {
        try await admin.ok("STATS").obj("server").int("responses")
      }
      let count = 4000
      let base = try await served()
      let rssBefore = server.residentKiB() ?? 0
      try await hog.send(String(repeating: "LOG.READ {\"limit\":100}\n", count: count))
      // Wait (bounded) until the server stops taking the hog's requests.
      var last = base
      var stableSince = monotonicSeconds()
      var polls = 0
      let deadline = monotonicSeconds() + 8
      while monotonicSeconds() < deadline {
        try await Task.sleep(for: .milliseconds(100))
        let now = try await served()
        polls += 1
        if now != last + 1 {  // + 1: the STATS itself
          last = now
          stableSince = monotonicSeconds()
        } else {
          last = now
          if monotonicSeconds() - stableSince > 1 { break }
        }
      }
      let hogServed = last - base - polls
      let rssAfter = server.residentKiB() ?? 0
      // The server stops starting work and reading the socket while the client's answers
      // are not drained (channel writability), so memory stays bounded.
      #expect(
        hogServed < count * 3 / 4,
        "the server answered \(hogServed) of \(count) requests of a client that reads none "
          + "(answers buffered in memory: RSS \(rssBefore) → \(rssAfter) KiB)")

      // Others are served while the hog is still stalled: its answer count does not move
      // while a PING and a post by another connection are answered (no timing involved —
      // a starved server would time these out, a drained hog would move the count).
      let before = try await served()
      #expect(try await admin.request("PING").isOK)
      let other = try await server.admin()
      #expect(
        try await other.request(
          entryLine(
            "starve", debit: "alice", credit: "bob",
            amount: "1")
        ).isOK)
      let after = try await served()
      // STATS, PING, the other's AUTH and entry, and this STATS: 4 answers besides the hog's.
      #expect(after - before == 4, "the hog was answered while stalled: \(before) → \(after)")
      hog.close()
      #expect(try await admin.request("PING").isOK)
      #expect(server.isRunning)
    }
  }

  /// Every request naming something, with `name` in the name's place.
  static func namingRequests(_ name: String) -> [String] {
    [
      "ACCOUNT.GET {\"account\":\"\(name)\"}", "BALANCE.GET {\"account\":\"\(name)\"}",
      "STATEMENT.GET {\"account\":\"\(name)\"}", "ENTRY.GET {\"id\":\"\(name)\"}",
      "PARTNER.GET {\"id\":\"\(name)\"}", "KEY.REVOKE {\"key\":\"\(name)\"}",
      "ACCOUNT.LIST {\"after\":\"\(name)\"}", "PARTNER.LIST {\"after\":\"\(name)\"}",
      "ACCOUNT.CLOSE {\"account\":\"\(name)\"}", "HOLD.RELEASE {\"id\":\"\(name)\"}",
      "HOLD.CAPTURE {\"id\":\"\(name)\"}", "ENTRY.REVERSE {\"id\":\"r\",\"entry\":\"\(name)\"}",
      "ACCOUNT.LIST {\"partner\":\"\(name)\"}",
      entryLine(
        name, debit: "alice", credit: "bob",
        amount: "1"),
      entryLine("n", debit: name, credit: "bob", amount: "1"),
      "ACCOUNT.OPEN {\"account\":\"\(name)\",\"currency\":\"EUR\"}",
      "PARTNER.CREATE {\"id\":\"\(name)\",\"name\":\"N\"}",
    ]
  }

  /// Over-long names and ids (LMDB keys are at most 511 bytes) are answered as missing or
  /// malformed, never as a server failure. The connection stays usable.
  @Test func oversizedNamesNeverAnswerInternal() async throws {
    try await withFixture { _, admin in
      let long = String(repeating: "n", count: 600)
      try await expectNoChange(admin) {
        for line in Self.namingRequests(long) {
          let r = try await admin.request(line)
          #expect(
            r.isOK || r.code == "NOT_FOUND" || r.code == "BAD_REQUEST",
            "\(line.prefix(60))… → \(r.raw.prefix(300))")
        }
      }
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// Empty names and ids (LMDB keys are never empty) are answered as missing or malformed,
  /// never as a server failure. The connection stays usable.
  @Test func emptyNamesNeverAnswerInternal() async throws {
    try await withFixture { _, admin in
      // LMDB refuses empty keys; the store treats such a lookup as finding nothing.
      try await expectNoChange(admin) {
        for line in Self.namingRequests("") {
          let r = try await admin.request(line)
          #expect(
            r.isOK || r.code == "NOT_FOUND" || r.code == "BAD_REQUEST",
            "\(line) → \(r.raw.prefix(300))")
        }
      }
      #expect(try await admin.request("PING").isOK)
    }
  }

  /// docs/PROTOCOL.md: strings at most 64 KiB.
  @Test func jsonStringsOver64KiBAreRefused() async throws {
    try await withFixture { _, admin in
      try await expectNoChange(admin) {
        let big = String(repeating: "v", count: 65_537)
        let r = try await admin.request(
          "ENTRY.POST {\"id\":\"s\",\"legs\":\(twoLegs("alice", "bob", "1")),"
            + "\"metadata\":{\"k\":\"\(big)\"}}")
        #expect(r.code == "BAD_REQUEST" && r.reason == "INVALID_JSON", "\(r.raw.prefix(300))")
        let esc = String(repeating: "\\u0041", count: 65_537)
        let e = try await admin.request("PING {\"\(esc)\":1}")
        #expect(e.code == "BAD_REQUEST" && e.reason == "INVALID_JSON", "\(e.raw.prefix(300))")
      }
    }
  }

  /// docs/PROTOCOL.md: nesting at most 16 deep.
  @Test func jsonNestingIsLimitedTo16Levels() async throws {
    try await withTallyd { server in
      let admin = try await server.admin()
      func nested(_ arrays: Int) -> String {
        "LOG.HEAD {\"x\":" + String(repeating: "[", count: arrays)
          + String(repeating: "]", count: arrays) + "}"
      }
      // The object is level 1: 15 arrays inside make 16 levels (parsed; then "x" is an
      // unknown field), 16 arrays make 17 (refused as JSON).
      let at = try await admin.request(nested(15))
      #expect(at.code == "BAD_REQUEST" && at.reason == "INVALID_FIELD", "\(at)")
      let over = try await admin.request(nested(16))
      #expect(over.code == "BAD_REQUEST" && over.reason == "INVALID_JSON", "\(over)")
    }
  }

  /// The limit counts the request line; the `\r` of a CRLF ending is part of the line end.
  @Test func crlfEndingDoesNotPushALineAtTheLimitOver() async throws {
    try await withTallyd(["--max-line-bytes", "1024"]) { server in
      let admin = try await server.admin()
      let head = #"ENTRY.GET {"id":"nope""#
      let line = head + String(repeating: " ", count: 1024 - head.utf8.count - 1) + "}"
      #expect(line.utf8.count == 1024)
      let lf = try await admin.request(line)
      #expect(lf.code == "NOT_FOUND", "\(lf)")
      try await admin.send(line + "\r\n")
      let crlf = try await admin.readReply()
      #expect(crlf.code == "NOT_FOUND", "\(crlf)")
      // One byte more (before the CR) is over.
      try await admin.send(line + " \r\n")
      let over = try await admin.readReply()
      #expect(over.code == "LINE_TOO_LONG", "\(over)")
    }
  }
}
