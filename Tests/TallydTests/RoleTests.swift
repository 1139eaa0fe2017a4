import Foundation
import Testing

// The role matrix and partner scope, end to end.

/// The role matrix (docs/PROTOCOL.md "Roles"; `Access.allowed`): which roles may send each
/// verb. PING, QUIT, AUTH and LOG.HEAD are open to every role.
let roleMatrix: [String: Set<String>] = [
  "KEY.CREATE": ["admin"], "KEY.REVOKE": ["admin"], "KEY.LIST": ["admin"],
  "PARTNER.CREATE": ["admin"],
  "PARTNER.GET": ["admin", "ops", "service"], "PARTNER.LIST": ["admin", "ops", "service"],
  "ACCOUNT.GET": ["admin", "ops", "service"], "ACCOUNT.LIST": ["admin", "ops", "service"],
  "ENTRY.GET": ["admin", "ops", "service"], "BALANCE.GET": ["admin", "ops", "service"],
  "STATEMENT.GET": ["admin", "ops", "service"],
  "ACCOUNT.OPEN": ["admin", "service"], "ACCOUNT.CLOSE": ["admin", "service"],
  "ENTRY.POST": ["admin", "service"], "ENTRY.BATCH": ["admin", "service"],
  "ENTRY.REVERSE": ["admin", "service"], "HOLD.PLACE": ["admin", "service"],
  "HOLD.CAPTURE": ["admin", "service"], "HOLD.RELEASE": ["admin", "service"],
  "LOG.HEAD": ["admin", "ops", "service", "auditor"], "LOG.READ": ["admin", "auditor"],
  "STATS": ["admin", "ops"], "PING": ["admin", "ops", "service", "auditor"],
  "PROOF.INCLUSION": ["admin", "auditor"], "PROOF.CONSISTENCY": ["admin", "auditor"],
  "CHECKPOINT.GET": ["admin", "auditor"], "CHECKPOINT.LIST": ["admin", "auditor"],
  "PARTNER.VIEW": ["admin", "ops", "service"],
  "RECON.IMPORT": ["admin", "ops"], "RECON.RESOLVE": ["admin", "ops"],
  "RECON.UNMATCH": ["admin", "ops"],
  "RECON.STATUS": ["admin", "ops", "auditor"], "RECON.ITEMS": ["admin", "ops", "auditor"],
]

/// The ledger state a forbidden request must leave alone: head, balances, and the raw key,
/// account and partner lists.
struct FullState: Equatable, CustomStringConvertible {
  var ledger: LedgerState
  var lists: [String]
  var description: String {
    "\(ledger) lists \(lists.map { String($0.utf8.count) + " bytes" })"
  }
}

func fullState(_ admin: LineConn) async throws -> FullState {
  let s = try await admin.state(Fixture.all)
  let keys = try await admin.ok("KEY.LIST").raw
  let accounts = try await admin.ok(#"ACCOUNT.LIST {"limit":1000}"#).raw
  let partners = try await admin.ok("PARTNER.LIST").raw
  return FullState(ledger: s, lists: [keys, accounts, partners])
}

@Suite("tallyd roles and partner scope", .timeLimit(.minutes(10)))
struct RoleTests {
  /// One well-formed request per verb, valid for a service key of p1 granted `fees`, in an
  /// order where each allowed one succeeds: (verb, line, answer when allowed).
  static func requests(_ role: String) -> [(verb: String, line: String, allowed: String)] {
    let open = "p1:new-\(role)"
    return [
      ("PING", "PING", "OK"),
      ("LOG.HEAD", "LOG.HEAD", "OK"),
      ("KEY.CREATE", #"KEY.CREATE {"role":"ops"}"#, "OK"),
      ("KEY.REVOKE", #"KEY.REVOKE {"key":"key_0000000000000000"}"#, "NOT_FOUND"),
      ("KEY.LIST", "KEY.LIST", "OK"),
      ("PARTNER.CREATE", "PARTNER.CREATE {\"id\":\"px-\(role)\",\"name\":\"X\"}", "OK"),
      ("PARTNER.GET", #"PARTNER.GET {"id":"p1"}"#, "OK"),
      ("PARTNER.LIST", "PARTNER.LIST", "OK"),
      (
        "ACCOUNT.OPEN",
        "ACCOUNT.OPEN {\"account\":\"\(open)\",\"partner\":\"p1\",\"currency\":\"EUR\"}", "OK"
      ),
      ("ACCOUNT.GET", #"ACCOUNT.GET {"account":"p1:wallet"}"#, "OK"),
      ("ACCOUNT.LIST", "ACCOUNT.LIST", "OK"),
      ("ACCOUNT.CLOSE", "ACCOUNT.CLOSE {\"account\":\"\(open)\"}", "OK"),
      (
        "ENTRY.POST", entryLine("m-\(role)", debit: "p1:wallet", credit: "p1:pool", amount: "2"),
        "OK"
      ),
      (
        "ENTRY.BATCH",
        "ENTRY.BATCH {\"entries\":["
          + entryJSON("mb-\(role)", debit: "p1:wallet", credit: "fees", amount: "1") + "]}",
        "OK"
      ),
      ("ENTRY.GET", #"ENTRY.GET {"id":"own-p1"}"#, "OK"),
      ("ENTRY.REVERSE", "ENTRY.REVERSE {\"id\":\"mr-\(role)\",\"entry\":\"m-\(role)\"}", "OK"),
      (
        "HOLD.PLACE",
        "HOLD.PLACE {\"id\":\"mh-\(role)\",\"legs\":\(twoLegs("p1:wallet", "p1:pool", "3"))}",
        "OK"
      ),
      ("HOLD.CAPTURE", "HOLD.CAPTURE {\"id\":\"mh-\(role)\",\"amount\":\"1\"}", "OK"),
      (
        "HOLD.PLACE",
        "HOLD.PLACE {\"id\":\"mh2-\(role)\",\"legs\":\(twoLegs("p1:wallet", "p1:pool", "3"))}",
        "OK"
      ),
      ("HOLD.RELEASE", "HOLD.RELEASE {\"id\":\"mh2-\(role)\"}", "OK"),
      ("BALANCE.GET", #"BALANCE.GET {"account":"p1:wallet"}"#, "OK"),
      ("STATEMENT.GET", #"STATEMENT.GET {"account":"p1:wallet"}"#, "OK"),
      ("LOG.READ", #"LOG.READ {"limit":2}"#, "OK"),
      ("PROOF.INCLUSION", #"PROOF.INCLUSION {"seq":1}"#, "OK"),
      ("PROOF.CONSISTENCY", #"PROOF.CONSISTENCY {"from":1,"to":2}"#, "OK"),
      ("CHECKPOINT.GET", "CHECKPOINT.GET", "OK"),
      ("CHECKPOINT.LIST", "CHECKPOINT.LIST", "OK"),
      ("STATS", "STATS", "OK"),
      ("PARTNER.VIEW", #"PARTNER.VIEW {"id":"p1"}"#, "OK"),
      // Item 1 matches `seed` by reference; item 2 has no candidate.
      (
        "RECON.IMPORT",
        importLine(
          "cash",
          "booking_date,amount,currency,reference\n\(todayUTC()),100.00,EUR,seed\n"
            + "\(todayUTC()),1.23,EUR,\n"), "OK"
      ),
      ("RECON.STATUS", #"RECON.STATUS {"account":"cash"}"#, "OK"),
      ("RECON.ITEMS", #"RECON.ITEMS {"account":"cash"}"#, "OK"),
      ("RECON.UNMATCH", #"RECON.UNMATCH {"item":1}"#, "OK"),
      ("RECON.RESOLVE", #"RECON.RESOLVE {"item":2,"reason":"role test"}"#, "OK"),
    ]
  }

  @Test(arguments: ["admin", "service", "ops", "auditor"])
  func roleMatrixAllowsAndForbidsEachVerb(role: String) async throws {
    try await withFixture { server, admin in
      try await admin.post("own-p1", debit: "p1:wallet", credit: "p1:pool", amount: "1")
      let conn: LineConn
      if role == "admin" {
        conn = try await server.admin()
      } else {
        let k = try await admin.createKey(
          role: role, partner: role == "service" ? "p1" : nil,
          grants: role == "service" ? ["fees"] : [])
        conn = try await server.connect(key: k.key, secret: k.secret)
      }
      var covered = Set<String>()
      for (verb, line, allowedAnswer) in Self.requests(role) {
        covered.insert(verb)
        let allowed = try #require(roleMatrix[verb], "no matrix row for \(verb)").contains(role)
        if allowed {
          let r = try await conn.request(line)
          if allowedAnswer == "OK" {
            #expect(r.isOK, "\(role) \(verb) is allowed: \(r)")
          } else {
            #expect(r.code == allowedAnswer, "\(role) \(verb) is allowed: \(r)")
          }
        } else {
          let before = try await fullState(admin)
          let r = try await conn.request(line)
          #expect(r.code == "FORBIDDEN", "\(role) \(verb) is forbidden: \(r)")
          #expect(r.message == "role \(role) may not do this", "\(r)")
          let after = try await fullState(admin)
          #expect(after == before, "forbidden \(role) \(verb) changed the ledger")
        }
      }
      #expect(covered == Set(roleMatrix.keys), "every verb tried")
      // AUTH again is a bad request (not FORBIDDEN) for every role; QUIT works for all.
      let again = try await conn.request(conn.authLine(key: "k", secret: "s"))
      #expect(again.code == "BAD_REQUEST" && again.reason == "ALREADY_AUTHENTICATED", "\(again)")
      try await conn.send("QUIT\n")
      #expect(try await conn.waitClosed() == ["OK {}"])
    }
  }

  /// Sends `line` and `shadow` (the same request with a never-created name of the same
  /// shape), and requires the answers to be identical once the names are swapped back.
  static func expectIndistinguishable(
    _ c: LineConn, _ line: String, real: String, fake: String,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws {
    precondition(real.utf8.count == fake.utf8.count && line.contains(real))
    let a = try await c.request(line)
    let b = try await c.request(line.replacingOccurrences(of: real, with: fake))
    #expect(a.code == "NOT_FOUND", "\(line) → \(a)", sourceLocation: sourceLocation)
    #expect(
      a.raw == b.raw.replacingOccurrences(of: fake, with: real),
      "answer differs from a non-existent object's:\n  \(a.raw)\n  \(b.raw)",
      sourceLocation: sourceLocation)
  }

  @Test func serviceReadsOfAnotherPartnerAnswerExactlyLikeNonExistence() async throws {
    try await withFixture { server, admin in
      // An entry touching p1 and p2, one touching p1 and a granted platform account.
      try await admin.post("mixed", debit: "p1:wallet", credit: "p2:wallet", amount: "7")
      try await admin.post("granted", debit: "p1:wallet", credit: "fees", amount: "1")
      try await admin.ok(
        "HOLD.PLACE {\"id\":\"p2hold\",\"legs\":\(twoLegs("cash", "p2:wallet", "1"))}")
      let k = try await admin.createKey(role: "service", partner: "p1", grants: ["fees"])
      let svc = try await server.connect(key: k.key, secret: k.secret)
      for (real, fake) in [("p2:wallet", "p2:wallex"), ("cash", "casx")] {
        for verb in ["ACCOUNT.GET", "BALANCE.GET", "STATEMENT.GET"] {
          try await Self.expectIndistinguishable(
            svc, "\(verb) {\"account\":\"\(real)\"}", real: real, fake: fake)
        }
        try await Self.expectIndistinguishable(
          svc, "BALANCE.GET {\"account\":\"\(real)\",\"as_of_seq\":3}", real: real, fake: fake)
      }
      for (real, fake) in [("seed-p2", "seed-px"), ("seed", "seex"), ("mixed", "mixex")] {
        try await Self.expectIndistinguishable(
          svc, "ENTRY.GET {\"id\":\"\(real)\"}", real: real, fake: fake)
      }
      try await Self.expectIndistinguishable(
        svc, #"PARTNER.GET {"id":"p2"}"#, real: "p2", fake: "pz")
      // Its own objects are visible.
      #expect(try await svc.request(#"ACCOUNT.GET {"account":"p1:wallet"}"#).isOK)
      #expect(try await svc.request(#"ENTRY.GET {"id":"mixed"}"#).code == "NOT_FOUND")
      #expect(try await svc.request(#"ENTRY.GET {"id":"granted"}"#).isOK)
      #expect(try await svc.request(#"PARTNER.GET {"id":"p1"}"#).isOK)
    }
  }

  @Test func serviceWritesTouchingAnotherPartnerAnswerNotFoundAndChangeNothing() async throws {
    try await withFixture { server, admin in
      try await admin.ok(
        "HOLD.PLACE {\"id\":\"p2hold\",\"legs\":\(twoLegs("cash", "p2:wallet", "1"))}")
      try await admin.ok(#"PARTNER.CREATE {"id":"p3","name":"Three"}"#)
      let k = try await admin.createKey(role: "service", partner: "p1", grants: ["fees"])
      let svc = try await server.connect(key: k.key, secret: k.secret)
      try await expectNoChange(admin) {
        try await Self.expectIndistinguishable(
          svc, entryLine("x1", debit: "p1:wallet", credit: "p2:wallet", amount: "1"),
          real: "p2:wallet", fake: "p2:wallex")
        try await Self.expectIndistinguishable(
          svc, entryLine("x2", debit: "p1:wallet", credit: "cash", amount: "1"),
          real: "cash", fake: "casx")
        try await Self.expectIndistinguishable(
          svc, "HOLD.PLACE {\"id\":\"x3\",\"legs\":\(twoLegs("p2:wallet", "p1:wallet", "1"))}",
          real: "p2:wallet", fake: "p2:wallex")
        try await Self.expectIndistinguishable(
          svc, #"ENTRY.REVERSE {"id":"x4","entry":"seed-p2"}"#, real: "seed-p2", fake: "seed-px")
        try await Self.expectIndistinguishable(
          svc, #"HOLD.CAPTURE {"id":"p2hold"}"#, real: "p2hold", fake: "p2holx")
        try await Self.expectIndistinguishable(
          svc, #"HOLD.RELEASE {"id":"p2hold"}"#, real: "p2hold", fake: "p2holx")
        try await Self.expectIndistinguishable(
          svc, #"ACCOUNT.CLOSE {"account":"p2:wallet"}"#, real: "p2:wallet", fake: "p2:wallex")
        // Opening under another (existing) partner looks like opening under a missing one.
        try await Self.expectIndistinguishable(
          svc, #"ACCOUNT.OPEN {"account":"p3:a","partner":"p3","currency":"EUR"}"#,
          real: "p3", fake: "p9")
        // A batch: the foreign entry fails alone, like a missing account.
        let b = try await svc.request(
          "ENTRY.BATCH {\"entries\":["
            + entryJSON("x5", debit: "p1:wallet", credit: "p2:wallet", amount: "1") + "]}")
        let item = try #require(try b.arr("results").first as? [String: Any])
        #expect(try item.obj("error").str("code") == "NOT_FOUND", "\(b)")
        #expect(try item.obj("error").str("message") == "account p2:wallet does not exist")
        // Names outside its namespace are refused.
        let name = try await svc.request(
          #"ACCOUNT.OPEN {"account":"wallet2","partner":"p1","currency":"EUR"}"#)
        #expect(name.code == "BAD_REQUEST" && name.reason == "INVALID_ID", "\(name)")
      }
      // Granted platform accounts may be used; its own accounts too.
      let fee = try await svc.request(
        entryLine(
          "fee1", debit: "p1:wallet", credit: "fees",
          amount: "10"))
      #expect(fee.isOK, "\(fee)")
      let own = try await svc.request(
        #"ACCOUNT.OPEN {"account":"p1:extra","partner":"p1","currency":"EUR"}"#)
      #expect(own.isOK, "\(own)")
      #expect(try await admin.balance("fees").balance == "10")
    }
  }

  @Test func serviceListsOnlyItsOwnAccountsAndPartner() async throws {
    try await withFixture { server, admin in
      let k = try await admin.createKey(role: "service", partner: "p1")
      let svc = try await server.connect(key: k.key, secret: k.secret)
      let list = try await svc.ok("ACCOUNT.LIST")
      let names = try list.arr("accounts").compactMap { ($0 as? [String: Any])?["account"] }
      #expect(names as? [String] == [Fixture.p1Pool, Fixture.p1Wallet])
      let own = try await svc.ok(#"ACCOUNT.LIST {"partner":"p1"}"#)
      #expect(own.raw == list.raw)
      try await Self.expectIndistinguishable(
        svc, #"ACCOUNT.LIST {"partner":"p2"}"#, real: "p2", fake: "pz")
      try await Self.expectIndistinguishable(
        svc, #"ACCOUNT.LIST {"partner":"platform"}"#, real: "platform", fake: "platfxrm")
      let partners = try await svc.ok("PARTNER.LIST")
      let ids = try partners.arr("partners").compactMap { ($0 as? [String: Any])?["id"] }
      #expect(ids as? [String] == ["p1"])
      // Paging past its own account ends the list.
      let page = try await svc.ok(#"ACCOUNT.LIST {"limit":1}"#)
      let next = try page.str("next")
      let page2 = try await svc.ok("ACCOUNT.LIST {\"limit\":1,\"after\":\"\(next)\"}")
      let rest = try page2.arr("accounts").compactMap { ($0 as? [String: Any])?["account"] }
      #expect(rest as? [String] == [Fixture.p1Wallet])
    }
  }

  @Test func revokingAKeyCutsOffItsLiveConnection() async throws {
    try await withFixture { server, admin in
      let k = try await admin.createKey(role: "service", partner: "p1")
      let svc = try await server.connect(key: k.key, secret: k.secret)
      #expect(try await svc.request(#"BALANCE.GET {"account":"p1:wallet"}"#).isOK)
      try await admin.ok("KEY.REVOKE {\"key\":\"\(k.key)\"}")
      try await expectNoChange(admin) {
        // The next request is refused, what was pipelined behind it is not run.
        try await svc.send(
          "BALANCE.GET {\"account\":\"p1:wallet\"}\n"
            + entryLine("after-revoke", debit: "p1:wallet", credit: "p1:pool", amount: "1")
            + "\n")
        let lines = try await svc.waitClosed()
        try #require(lines.count == 1, "\(lines)")
        let r = Reply(lines[0])
        #expect(r.code == "AUTH_FAILED" && r.reason == "KEY_REVOKED", "\(r)")
      }
      #expect(try await admin.request(#"ENTRY.GET {"id":"after-revoke"}"#).code == "NOT_FOUND")
      // Other keys' connections are unaffected.
      #expect(try await admin.request("PING").isOK)
      // An admin revoking its own key loses its own connection too.
      let k2 = try await admin.createKey(role: "admin")
      let self2 = try await server.connect(key: k2.key, secret: k2.secret)
      let r2 = try await self2.request("KEY.REVOKE {\"key\":\"\(k2.key)\"}")
      #expect(r2.isOK, "\(r2)")
      let after = try await self2.waitClosed(timeout: 5, sending: "PING\n")
      #expect(after.count == 1 && Reply(after[0]).reason == "KEY_REVOKED", "\(after)")
    }
  }

  /// docs/PROTOCOL.md: "an ID_CONFLICT tells a service only that an id is taken, never by
  /// whom or with what". Two foreign entries with different content and seqs must give the
  /// same answer (ids swapped).
  @Test func idConflictOnAForeignIdRevealsNothingAboutIt() async throws {
    try await withFixture { server, admin in
      try await admin.post("taken-a", debit: "cash", credit: "alice", amount: "1")
      try await admin.post("filler", debit: "cash", credit: "bob", amount: "1")
      try await admin.ok(
        "HOLD.PLACE {\"id\":\"taken-b\",\"legs\":\(twoLegs("cash", "p2:wallet", "2"))}")
      let k = try await admin.createKey(role: "service", partner: "p1")
      let svc = try await server.connect(key: k.key, secret: k.secret)
      try await expectNoChange(admin) {
        let a = try await svc.request(
          entryLine("taken-a", debit: "p1:wallet", credit: "p1:pool", amount: "1"))
        let b = try await svc.request(
          entryLine("taken-b", debit: "p1:wallet", credit: "p1:pool", amount: "1"))
        #expect(a.code == "ID_CONFLICT" && b.code == "ID_CONFLICT", "\(a)\n\(b)")
        // Details never carry the foreign object's seq or the differing field.
        #expect(
          a.raw == b.raw.replacingOccurrences(of: "taken-b", with: "taken-a"),
          "\n  \(a.raw)\n  \(b.raw)")
        #expect(a.details["seq"] == nil, "\(a)")

      }
    }
  }

  @Test func serviceOpensAccountsUnderItsOwnPartnerByDefault() async throws {
    try await withFixture { server, admin in
      let k = try await admin.createKey(role: "service", partner: "p1")
      let svc = try await server.connect(key: k.key, secret: k.secret)
      let r = try await svc.request(#"ACCOUNT.OPEN {"account":"p1:auto","currency":"EUR"}"#)
      #expect(r.isOK, "\(r)")
      let g = try await svc.ok(#"ACCOUNT.GET {"account":"p1:auto"}"#)
      #expect(try g.str("partner") == "p1")
      // The admin's default stays the platform.
      try await admin.ok(#"ACCOUNT.OPEN {"account":"plat-auto","currency":"EUR"}"#)
      #expect(
        try await admin.ok(#"ACCOUNT.GET {"account":"plat-auto"}"#).str("partner")
          == "platform")
    }
  }

  /// A service key's malformed names are refused like an admin's: as malformed, alone.
  /// The scope check runs before the rules validate names, so an empty name from a service
  /// must not reach the store (LMDB refuses empty keys) and fail its whole write group.
  @Test func serviceEmptyNamesAreRefusedAloneNotAsStoreFailures() async throws {
    try await withFixture { server, admin in
      let k = try await admin.createKey(role: "service", partner: "p1")
      let svc = try await server.connect(key: k.key, secret: k.secret)
      let lines = [
        entryLine("se1", debit: "p1:wallet", credit: "", amount: "1"),
        "HOLD.PLACE {\"id\":\"se2\",\"legs\":\(twoLegs("", "p1:wallet", "1"))}",
        #"HOLD.CAPTURE {"id":""}"#, #"HOLD.RELEASE {"id":""}"#,
        #"ENTRY.REVERSE {"id":"se3","entry":""}"#, #"ACCOUNT.CLOSE {"account":""}"#,
      ]
      try await expectNoChange(admin) {
        for line in lines {
          let r = try await svc.request(line)
          #expect(r.code == "NOT_FOUND" || r.code == "BAD_REQUEST", "\(line) → \(r)")

        }
      }
      // Over-long names (LMDB keys are at most 511 bytes) are handled.
      let long = String(repeating: "n", count: 600)
      try await expectNoChange(admin) {
        for line in [
          entryLine("sl1", debit: "p1:wallet", credit: long, amount: "1"),
          "HOLD.CAPTURE {\"id\":\"\(long)\"}", "ACCOUNT.CLOSE {\"account\":\"\(long)\"}",
          "ENTRY.REVERSE {\"id\":\"sl2\",\"entry\":\"\(long)\"}",
        ] {
          let r = try await svc.request(line)
          #expect(r.code == "NOT_FOUND" || r.code == "BAD_REQUEST", "\(line) → \(r)")
        }
      }
      // In a batch, the good entry must still be applied.
      let good = entryJSON("se-good", debit: "p1:wallet", credit: "p1:pool", amount: "3")
      let bad = entryJSON("se-bad", debit: "p1:wallet", credit: "", amount: "3")
      let b = try await svc.request("ENTRY.BATCH {\"entries\":[\(good),\(bad)]}")
      let first = (b.body["results"] as? [Any])?.first as? [String: Any]
      let pool = try await admin.balance("p1:pool").balance
      #expect(first?["seq"] is Int, "\(b)")
      #expect(pool == "3")

    }
  }

  /// A rejected write never affects other clients' writes in the same write group
  /// (docs/PROTOCOL.md: "the other commands of its group are unaffected").
  @Test func aServicesBadWriteNeverFailsAnotherClientsWrite() async throws {
    try await withFixture { server, admin in
      let k = try await admin.createKey(role: "service", partner: "p1")
      let svc = try await server.connect(key: k.key, secret: k.secret)
      var failed = [String]()
      var posted = 0
      for round in 0..<10 {
        var text = ""
        for i in 0..<30 {
          text += entryLine("grp-\(round)-\(i)", debit: "cash", credit: "bob", amount: "1") + "\n"
        }
        // Both in flight at once, so the writer may group them.
        async let a: Void = admin.send(text)
        async let b: Void = svc.send(
          entryLine("bad-\(round)", debit: "p1:wallet", credit: "", amount: "1") + "\n")
        _ = try await (a, b)
        let replies = try await admin.readReplies(30)
        _ = try await svc.readReply()
        for r in replies {
          if r.isOK { posted += 1 } else { failed.append(r.raw) }
        }
      }
      #expect(try await admin.balance("bob").balance == String(posted))
      #expect(
        failed.isEmpty,
        "\(failed.count) of the admin's 300 writes failed: "
          + "\(failed.first ?? "")")

    }
  }
}
