import Foundation
import Testing

@Suite("happy path")
struct HappyPathTests {
  @Test("init, partners, assets, accounts, posts, balances, statement, log, verify, stats")
  func fullHappyPath() async throws {
    try await withScratch { s in
      // init
      let i = try await s.ok("init")
      #expect(i.stdout.contains("initialised \(s.data)"), "\(i)")
      #expect(i.stdout.contains("partner platform created at seq 1"), "\(i)")
      #expect(try await s.okJSON("stats").int("seq") == 1)

      // partners
      let p = try await s.okJSON(
        "partner", "create", "acme", "--name", "Acme Payments", "--meta", "kyc=done")
      #expect(try p.str("result") == "applied")
      #expect(try p.int("seq") == 2)
      #expect(try p.int("events") == 1)
      let partners = try await s.tally("--json", "partner", "list").array()
      let byId = Dictionary(
        uniqueKeysWithValues: partners.compactMap { $0 as? [String: Any] }.map {
          (($0["id"] as? String) ?? "?", $0)
        })
      #expect(Set(byId.keys) == ["platform", "acme"])
      #expect(byId["acme"]?["name"] as? String == "Acme Payments")
      #expect(byId["acme"]?["created_seq"] as? Int == 2)
      #expect((byId["acme"]?["metadata"] as? [String: Any])?["kyc"] as? String == "done")
      #expect(byId["platform"]?["created_seq"] as? Int == 1)
      let partnersHuman = try await s.ok("partner", "list")
      #expect(partnersHuman.stdout.contains("acme"))
      #expect(partnersHuman.stdout.contains("Acme Payments"))

      // a custom asset, and accounts in it
      let gold = try await s.okJSON(
        "asset", "declare", "GOLD", "--scale", "3", "--name", "Gold gram")
      #expect(try gold.str("result") == "applied")
      let assets = try await s.tally("--json", "asset", "list").array()
      #expect(assets.count == 1)
      let a0 = try #require(assets.first as? [String: Any])
      #expect(try a0.str("code") == "GOLD")
      #expect(try a0.int("scale") == 3)
      #expect(try a0.str("name") == "Gold gram")
      #expect(try a0.int("declared_seq") == 3)

      // accounts
      try await s.ok("account", "open", "cash", "--currency", "EUR")
      try await s.ok(
        "account", "open", "alice", "--currency", "EUR", "--normal", "credit", "--no-overdraft",
        "--partner", "acme", "--meta", "tier=gold")
      try await s.ok("account", "open", "yen", "--currency", "JPY")
      try await s.ok("account", "open", "yen-src", "--currency", "JPY", "--normal", "credit")
      try await s.ok("account", "open", "vault", "--currency", "GOLD")
      try await s.ok("account", "open", "mine", "--currency", "GOLD", "--normal", "credit")
      let opened = try await s.okJSON("stats")
      #expect(try opened.int("seq") == 9)
      #expect(try opened.obj("counts").int("accounts") == 6)

      // posts with decimals
      let p1 = try await s.ok(
        "post", "--id", "p1", "--debit", "cash=10.50", "--credit", "alice=10.50")
      #expect(p1.stdout.contains("entry p1: applied at seq 10"), "\(p1)")
      let p2 = try await s.okJSON(
        "post", "--id", "p2", "--debit", "cash=0.05", "--credit", "alice=0.05", "--ref", "INV-2",
        "--value-date", "2026-01-31")
      #expect(try p2.str("result") == "applied")
      #expect(try p2.int("seq") == 11)
      try await s.ok("post", "--id", "p3", "--debit", "cash=7", "--credit", "alice=7")
      try await s.ok("post", "--id", "y1", "--debit", "yen=1500", "--credit", "yen-src=1500")
      try await s.ok("post", "--id", "g1", "--debit", "vault=1.234", "--credit", "mine=1.234")

      // balance --json: exact fields, amounts as strings of minor units
      let b = try await s.okJSON("balance", "alice")
      // The brief's field list, plus normal_side (which the CLI also emits; see report).
      #expect(
        Set(b.keys) == [
          "account", "currency", "scale", "normal_side", "posted", "pending", "balance",
          "available", "seq",
        ])
      #expect(Set(try b.obj("posted").keys) == ["debits", "credits"])
      #expect(Set(try b.obj("pending").keys) == ["debits", "credits"])
      #expect(try b.str("account") == "alice")
      #expect(try b.str("currency") == "EUR")
      #expect(try b.int("scale") == 2)
      #expect(try b.str("normal_side") == "credit")
      #expect(try b.obj("posted").str("credits") == "1755")
      #expect(try b.obj("posted").str("debits") == "0")
      #expect(try b.obj("pending").str("debits") == "0")
      #expect(try b.obj("pending").str("credits") == "0")
      #expect(try b.str("balance") == "1755")
      #expect(try b.str("available") == "1755")
      #expect(try b.int("seq") == 12)
      let cash = try await s.okJSON("balance", "cash")
      #expect(try cash.obj("posted").str("debits") == "1755")
      #expect(try cash.str("balance") == "1755")
      #expect(try cash.str("normal_side") == "debit")
      let yen = try await s.okJSON("balance", "yen")
      #expect(try yen.int("scale") == 0)
      #expect(try yen.str("balance") == "1500")
      let vault = try await s.okJSON("balance", "vault")
      #expect(try vault.int("scale") == 3)
      #expect(try vault.str("currency") == "GOLD")
      #expect(try vault.str("balance") == "1234")

      // human balance shows major units
      let bh = try await s.ok("balance", "alice")
      #expect(bh.stdout.contains("17.55"), "\(bh)")
      let vh = try await s.ok("balance", "vault")
      #expect(vh.stdout.contains("1.234"), "\(vh)")

      // balance --as-of-seq: right after p1 (10), after p2 (11), before anything (9)
      #expect(try await s.okJSON("balance", "alice", "--as-of-seq", "10").str("balance") == "1050")
      let asOf11 = try await s.okJSON("balance", "alice", "--as-of-seq", "11")
      #expect(try asOf11.str("balance") == "1055")
      #expect(try asOf11.int("seq") == 11)
      #expect(try await s.okJSON("balance", "alice", "--as-of-seq", "9").str("balance") == "0")
      // a later seq that did not touch alice keeps her balance as of her last change
      let asOf14 = try await s.okJSON("balance", "alice", "--as-of-seq", "14")
      #expect(try asOf14.str("balance") == "1755")
      #expect(try asOf14.int("seq") == 12)

      // global options after the subcommand work the same
      let after = try await runTally(["balance", "alice", "--json", "--data", s.data])
      #expect(after.status == 0)
      #expect(after.stdout == (try await s.tally("--json", "balance", "alice")).stdout)
      let eqForm = try await runTally(["--data=\(s.data)", "--json", "balance", "alice"])
      #expect(eqForm.status == 0)
      #expect(try eqForm.object().str("balance") == "1755")

      // statement, human
      let st = try await s.ok("statement", "alice")
      #expect(st.stdout.contains("statement of alice (EUR, normal credit)"), "\(st)")
      for (id, amount, running) in [
        ("p1", "10.50", "10.50"), ("p2", "0.05", "10.55"), ("p3", "7.00", "17.55"),
      ] {
        let line = st.stdout.split(separator: "\n").first { $0.contains(" \(id) ") }
        #expect(line != nil, "no statement line for \(id): \(st)")
        #expect(line?.contains(amount) == true, "\(String(describing: line))")
        #expect(line?.hasSuffix(running) == true, "\(String(describing: line))")
      }

      // statement --json, paginated with --limit / --cursor
      let page1 = try await s.okJSON("statement", "alice", "--limit", "2")
      #expect(try page1.str("account") == "alice")
      #expect(try page1.str("currency") == "EUR")
      #expect(try page1.int("scale") == 2)
      let l1 = try page1.arr("lines").map { try #require($0 as? [String: Any]) }
      #expect(try l1.map { try $0.str("id") } == ["p1", "p2"])
      #expect(try l1.map { try $0.int("seq") } == [10, 11])
      #expect(try l1.map { try $0.obj("posted").str("credits") } == ["1050", "5"])
      #expect(try l1.map { try $0.str("balance") } == ["1050", "1055"])
      #expect(try l1[1].str("ref") == "INV-2")
      #expect(try l1[1].str("value_date") == "2026-01-31")
      #expect(try l1[0].str("type") == "entry_posted")
      let cursor = try page1.int("next_cursor")
      #expect(cursor == 12)
      let page2 = try await s.okJSON(
        "statement", "alice", "--limit", "2", "--cursor", String(cursor))
      let l2 = try page2.arr("lines").map { try #require($0 as? [String: Any]) }
      #expect(try l2.map { try $0.str("id") } == ["p3"])
      #expect(try l2.map { try $0.str("balance") } == ["1755"])
      #expect(page2.isNull("next_cursor"))
      let window = try await s.okJSON("statement", "alice", "--from-seq", "11", "--to-seq", "11")
      #expect(
        try window.arr("lines").compactMap { ($0 as? [String: Any])?["id"] as? String } == ["p2"])
      #expect(window.isNull("next_cursor"))
      let stHumanPaged = try await s.ok("statement", "alice", "--limit", "2")
      #expect(stHumanPaged.stdout.contains("more: --cursor 12"), "\(stHumanPaged)")

      // log --json: every event, seq 1…head, leaf and chain as hex
      let stats = try await s.okJSON("stats")
      let head = try stats.int("seq")
      #expect(head == 14)
      let log = try await s.tally("--json", "log", "--limit", "1000")
      #expect(log.status == 0)
      let events = try log.lines()
      #expect(try events.map { try $0.int("seq") } == Array(1...head))
      #expect(
        try events.map { try $0.str("type") } == [
          "partner_created", "partner_created", "asset_declared", "account_opened",
          "account_opened",
          "account_opened", "account_opened", "account_opened", "account_opened", "entry_posted",
          "entry_posted", "entry_posted", "entry_posted", "entry_posted",
        ])
      for e in events {
        #expect(isHex64(try e.str("leaf")), "\(e)")
        #expect(isHex64(try e.str("chain")), "\(e)")
      }
      #expect(Set(try events.map { try $0.str("chain") }).count == head)
      #expect(try events.last?.str("chain") == (try stats.str("chain")))
      let e10 = events[9]
      #expect(try e10.str("id") == "p1")
      let legs = try e10.arr("legs").map { try #require($0 as? [String: Any]) }
      #expect(try legs.map { try $0.str("account") } == ["cash", "alice"])
      #expect(try legs.map { try $0.str("side") } == ["debit", "credit"])
      #expect(try legs.map { try $0.str("amount") } == ["1050", "1050"])
      // --from-seq / --limit window, --hex carries the canonical bytes
      let logWindow = try await s.tally(
        "--json", "log", "--from-seq", "10", "--limit", "2", "--hex"
      ).lines()
      #expect(try logWindow.map { try $0.int("seq") } == [10, 11])
      #expect(try logWindow.allSatisfy { !(try $0.str("bytes")).isEmpty })
      let humanLog = try await s.ok("log", "--from-seq", "10", "--limit", "1")
      #expect(humanLog.stdout.contains("entry_posted"), "\(humanLog)")
      #expect(humanLog.stdout.contains("DR cash 1050, CR alice 1050"), "\(humanLog)")

      // verify
      let v = try await s.ok("verify")
      #expect(
        v.stdout.hasPrefix("ok: 14 events, 6 accounts, chain head \(try stats.str("chain"))"),
        "\(v)")
      #expect(v.stdout.contains("EUR: debits 1755 = credits 1755"), "\(v)")
      let vj = try await s.okJSON("verify")
      #expect(vj["ok"] as? Bool == true)
      #expect(try vj.int("events") == 14)
      #expect(try vj.int("accounts") == 6)
      #expect(try vj.arr("problems").isEmpty)
      #expect(try vj.obj("head").str("chain") == (try stats.str("chain")))
      let totals = try vj.arr("totals").map { try #require($0 as? [String: Any]) }
      #expect(try totals.map { try $0.str("currency") } == ["EUR", "GOLD", "JPY"])
      #expect(try totals.map { try $0.str("debits") } == ["1755", "1234", "1500"])
      #expect(try totals.map { try $0.str("credits") } == ["1755", "1234", "1500"])

      // stats --json
      #expect(isHex64(try stats.str("chain")))
      #expect(try stats.int("format_version") == 5)
      #expect(try stats.int("map_bytes") >= (try stats.int("used_bytes")))
      #expect(epochSeconds(try stats.str("last_timestamp")) != nil)
      let counts = try stats.obj("counts")
      #expect(try counts.int("log") == head)
      #expect(try counts.int("hashes") == head)
      #expect(try counts.int("partners") == 2)
      #expect(try counts.int("assets") == 1)
      #expect(try counts.int("accounts") == 6)
      #expect(counts["balances"] == nil, "the balances table is retired")
      #expect(try counts.int("ids") == 5)
      #expect(try counts.int("holds") == 0)
      let statsHuman = try await s.ok("stats")
      #expect(statsHuman.stdout.contains("head      seq 14"), "\(statsHuman)")

      // account show
      let show = try await s.okJSON("account", "show", "alice")
      #expect(try show.str("partner") == "acme")
      #expect(try show.str("status") == "open")
      #expect(show["no_overdraft"] as? Bool == true)
      #expect(show.isNull("limit"))
      #expect(show.isNull("closed_seq"))
      #expect(try show.int("number") == 2)
      #expect(try show.int("opened_seq") == 5)
      #expect(try show.obj("metadata").str("tier") == "gold")
      #expect(try show.str("balance") == "1755")
      let showHuman = try await s.ok("account", "show", "alice")
      for needle in ["acme", "no_overdraft", "credit", "17.55", "meta tier", "EUR (scale 2)"] {
        #expect(showHuman.stdout.contains(needle), "\(needle) missing: \(showHuman)")
      }

      // account list: name order, pagination, partner filter
      let list = try await s.tally("--json", "account", "list").array()
      #expect(
        list.compactMap { ($0 as? [String: Any])?["account"] as? String } == [
          "alice", "cash", "mine", "vault", "yen", "yen-src",
        ])
      let listPage = try await s.tally(
        "--json", "account", "list", "--after", "cash", "--limit", "2"
      ).array()
      #expect(
        listPage.compactMap { ($0 as? [String: Any])?["account"] as? String } == ["mine", "vault"])
      let acme = try await s.tally("--json", "account", "list", "--partner", "acme").array()
      #expect(acme.compactMap { ($0 as? [String: Any])?["account"] as? String } == ["alice"])
      let listHuman = try await s.ok("account", "list")
      #expect(listHuman.stdout.split(separator: "\n").count == 7, "\(listHuman)")

      // close an account with a zero balance
      try await s.ok("account", "open", "spare", "--currency", "EUR")
      let closed = try await s.ok("account", "close", "spare")
      #expect(closed.stdout.contains("account spare: applied at seq 16"), "\(closed)")
      let spare = try await s.okJSON("account", "show", "spare")
      #expect(try spare.str("status") == "closed")
      #expect(try spare.int("closed_seq") == 16)
      #expect(try await s.ok("verify").stdout.hasPrefix("ok: 16 events"))
    }
  }

  @Test("init --json and $TALLY_DATA as the default data directory")
  func initJSONAndEnvironment() async throws {
    try await withScratch { s in
      let r = try await runTally(["--json", "init"], environment: ["TALLY_DATA": s.data])
      #expect(r.status == 0, "\(r)")
      let o = try r.object()
      #expect(try o.str("data") == s.data)
      #expect(try o.int("seq") == 1)
      let stats = try await runTally(["--json", "stats"], environment: ["TALLY_DATA": s.data])
      #expect(stats.status == 0, "\(stats)")
      #expect(try stats.object().int("seq") == 1)
      // --data wins over $TALLY_DATA
      let missing = try await runTally(
        ["--data", s.file("elsewhere"), "stats"], environment: ["TALLY_DATA": s.data])
      #expect(missing.status == 2)
      #expect(missing.stderr.contains("NOT_INITIALIZED"))
    }
  }
  /// Bug: `init --json` (Sources/tally/Init.swift) builds its JSON by string interpolation
  /// without escaping, so a data directory whose path holds `"` or `\` yields invalid JSON.
  @Test("init --json is valid JSON whatever the directory is called")
  func initJSONEscapesThePath() async throws {
    try await withScratch { s in
      let dir = s.root + #"/say "hi" \ bye"#
      let r = try await runTally(["--json", "--data", dir, "init"])
      #expect(r.status == 0, "\(r)")
      let o = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
      #expect(o?["data"] as? String == dir, "not valid JSON naming the directory: \(r.stdout)")
      // the directory itself was initialised fine
      let stats = try await runTally(["--json", "--data", dir, "stats"])
      #expect(stats.status == 0, "\(stats)")
    }
  }
}
