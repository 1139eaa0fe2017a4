import Foundation
import Testing

// RECON.* and PARTNER.VIEW end to end: a real tallyd, real statements, real sockets.

/// `s` as a JSON string literal (quotes, escapes).
func jsonQuote(_ s: String) -> String {
  let data = try! JSONSerialization.data(withJSONObject: s, options: [.fragmentsAllowed])
  return String(decoding: data, as: UTF8.self)
}

/// Today's UTC date, `YYYY-MM-DD` (the day the server dates the fixture's entries).
func todayUTC() -> String {
  let f = DateFormatter()
  f.locale = Locale(identifier: "en_US_POSIX")
  f.timeZone = TimeZone(identifier: "UTC")
  f.dateFormat = "yyyy-MM-dd"
  return f.string(from: Date())
}

/// `RECON.IMPORT` of `statement` for `account`.
func importLine(
  _ account: String, _ statement: String, format: String = "csv", extra: String = ""
) -> String {
  "RECON.IMPORT {\"account\":\"\(account)\",\"format\":\"\(format)\",\"statement\":"
    + jsonQuote(statement) + extra + "}"
}

/// The counts of `RECON.STATUS`, by state name.
func reconCounts(_ c: LineConn, _ account: String, timeout: Double = LineConn.defaultTimeout)
  async throws -> [String: Int]
{
  let r = try await c.ok("RECON.STATUS {\"account\":\"\(account)\"}", timeout: timeout)
  var out = [String: Int]()
  for (k, v) in try r.obj("counts") { out[k] = try jsonInt(v, k) }
  return out
}

@Suite("tallyd reconciliation and partner views", .timeLimit(.minutes(10)))
struct ReconVerbTests {
  /// Against the fixture's `cash` (EUR, debit-normal): `seed` (100.00 in) matches by
  /// reference; 50.00 in has two equal candidates (`seed-p1`, `seed-p2`) and must stay
  /// unmatched; the 2.50 fee has none.
  static func statement(_ day: String) -> String {
    """
    booking_date,amount,currency,reference,description
    \(day),100.00,EUR,seed,first
    \(day),50.00,EUR,,one of two
    \(day),-2.50,EUR,,bank fee

    """
  }

  @Test func importStatusItemsResolveUnmatchAreEventsThatSurviveSIGKILL() async throws {
    try await withFixture { server, admin in
      let day = todayUTC()
      let imported = try await admin.ok(importLine("cash", Self.statement(day)))
      #expect(try imported.int("lines_read") == 3 && imported.int("new") == 3, "\(imported)")
      #expect(try imported.obj("matched").int("reference") == 1, "\(imported)")
      #expect(try imported.obj("matched").int("amount_date") == 0, "ambiguous: \(imported)")
      #expect(try imported.int("unmatched") == 2, "\(imported)")
      #expect(try imported.int("first_item") == 1 && imported.int("last_item") == 3)

      // The same statement again appends nothing.
      try await expectNoChange(admin) {
        let again = try await admin.ok(importLine("cash", Self.statement(day)))
        #expect(try again.int("new") == 0 && again.int("duplicate") == 3, "\(again)")
        #expect(again.isNull("first_seq"), "\(again)")
      }
      var counts = try await reconCounts(admin, "cash")
      #expect(counts["matched"] == 1 && counts["unmatched"] == 2, "\(counts)")
      #expect(counts["missing_from_statement"] == 2, "seed-p1 and seed-p2: \(counts)")

      let unmatched = try await admin.ok(#"RECON.ITEMS {"account":"cash","state":"unmatched"}"#)
      let numbers = try unmatched.arr("items").map {
        try jsonInt(($0 as? [String: Any])?["item"], "item")
      }
      #expect(numbers == [2, 3], "\(unmatched)")
      let missing = try await admin.ok(
        #"RECON.ITEMS {"account":"cash","state":"missing_from_statement"}"#)
      let ids = try missing.arr("items").compactMap { ($0 as? [String: Any])?["id"] as? String }
      #expect(ids == ["seed-p1", "seed-p2"], "\(missing)")
      // Pages: one item at a time, `next` until null.
      let page = try await admin.ok(#"RECON.ITEMS {"account":"cash","limit":1}"#)
      #expect(try page.arr("items").count == 1 && page.int("next") == 1, "\(page)")
      let last = try await admin.ok(#"RECON.ITEMS {"account":"cash","after":2,"limit":5}"#)
      #expect(try last.arr("items").count == 1 && last.isNull("next"), "\(last)")

      // A matched item cannot be resolved; an unknown one does not exist.
      try await expectNoChange(admin) {
        let r = try await admin.request(#"RECON.RESOLVE {"item":1,"reason":"x"}"#)
        #expect(r.code == "ITEM_STATE", "\(r)")
        let u = try await admin.request(#"RECON.UNMATCH {"item":999}"#)
        #expect(u.code == "NOT_FOUND" && u.reason == "ITEM_NOT_FOUND", "\(u)")
        let v = try await admin.request(#"RECON.RESOLVE {"item":2}"#)
        #expect(v.code == "BAD_REQUEST" && v.reason == "INVALID_FIELD", "\(v)")
      }
      let resolved = try await admin.ok(#"RECON.RESOLVE {"item":3,"reason":"bank fee"}"#)
      #expect(try resolved.int("item") == 3, "\(resolved)")
      let seq = try resolved.int("seq")
      // The same resolution again is a duplicate: it answers the original seq.
      try await expectNoChange(admin) {
        let again = try await admin.ok(#"RECON.RESOLVE {"item":3,"reason":"bank fee"}"#)
        #expect(try again.int("seq") == seq, "\(again)")
      }
      let items = try await admin.ok(#"RECON.ITEMS {"account":"cash","state":"resolved"}"#)
      let item = try #require(try items.arr("items").first as? [String: Any])
      #expect(item["by"] as? String == "key:" + server.adminKey, "who is the key: \(item)")
      #expect(item["reason"] as? String == "bank fee")

      let undone = try await admin.ok(#"RECON.UNMATCH {"item":1,"reason":"wrong pair"}"#)
      #expect(try undone.int("item") == 1)
      counts = try await reconCounts(admin, "cash")
      #expect(
        counts["matched"] == 0 && counts["unmatched"] == 2 && counts["resolved"] == 1
          && counts["missing_from_statement"] == 3, "\(counts)")
      let status = try await admin.ok(#"RECON.STATUS {"account":"cash"}"#).raw

      // Killed without warning: every acknowledged import, match and resolution is there,
      // and the chain (with the projections) verifies.
      _ = try await server.kill()
      try await server.restart()
      let again = try await server.admin()
      #expect(try await again.ok(#"RECON.STATUS {"account":"cash"}"#).raw == status)
      let v = try await runTally(["--data", server.dataDir, "verify", "--json"])
      #expect(v.status == 0, "verify: \(v.stdout) \(v.stderr)")
    }
  }

  @Test func badStatementsAreRefusedWithTheirCodeAndChangeNothing() async throws {
    try await withFixture(["--max-line-bytes", "4096"]) { _, admin in
      let day = todayUTC()
      try await admin.open(
        "bank", extra: #""metadata":{"iban":"DE89 3704 0044 0532 0130 00"}"#)
      let cases: [(String, String, String?, String)] = [
        // (request, code, reason or details.code, why)
        (
          importLine("cash", "booking_date,amount,currency\n2024-02-30,1.00,EUR\n"),
          "STATEMENT_INVALID", "BAD_DATE", "no such day"
        ),
        (
          importLine("cash", "booking_date,amount,currency\n\(day),1.0.0,EUR\n"),
          "STATEMENT_INVALID", "BAD_AMOUNT", "not a decimal"
        ),
        (
          importLine("cash", "<Document><BkToCstmrStmt><Stmt>", format: "camt053"),
          "STATEMENT_INVALID", nil, "truncated XML"
        ),
        (
          importLine(
            "cash",
            #"<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt><Stmt></BkToCstmrStmt></Document>"#,
            format: "camt053"),
          "STATEMENT_INVALID", "MALFORMED", "malformed XML"
        ),
        (
          importLine("cash", ":20:X\n:25:DE89370400440532013000\n:60F:C2412", format: "mt940"),
          "STATEMENT_INVALID", nil, "truncated MT940"
        ),
        (
          importLine("cash", "booking_date,amount,currency\n\(day),1.00,USD\n"),
          "CURRENCY_MISMATCH", nil, "a USD statement for an EUR account"
        ),
        (
          importLine(
            "bank",
            "booking_date,amount,currency,account\n\(day),1.00,EUR,DE02120300000000202051\n"),
          "STATEMENT_ACCOUNT_MISMATCH", nil, "another IBAN"
        ),
        (
          importLine("ghost", "booking_date,amount,currency\n\(day),1.00,EUR\n"), "NOT_FOUND",
          "ACCOUNT_NOT_FOUND", "no such account"
        ),
        (
          importLine("cash", "booking_date,amount,currency\n\(day),1.00,EUR\n", format: "pdf"),
          "BAD_REQUEST", "INVALID_FIELD", "unknown format"
        ),
        (importLine("cash", ""), "BAD_REQUEST", "INVALID_FIELD", "empty statement"),
        (
          importLine(
            "cash", "booking_date,amount,currency\n\(day),1.00,EUR\n",
            extra: #","tolerance_days":32"#), "BAD_REQUEST", "INVALID_FIELD", "tolerance too wide"
        ),
        (
          #"RECON.IMPORT {"account":"cash","format":"csv","statement":7}"#, "BAD_REQUEST",
          "INVALID_FIELD", "statement not a string"
        ),
        (
          #"RECON.IMPORT {"account":"cash","format":"csv"}"#, "BAD_REQUEST", "INVALID_FIELD",
          "no statement"
        ),
        (#"RECON.STATUS {"account":"ghost"}"#, "NOT_FOUND", "ACCOUNT_NOT_FOUND", "status"),
        (
          #"RECON.ITEMS {"account":"cash","state":"lost"}"#, "BAD_REQUEST", "INVALID_FIELD", "state"
        ),
        (#"RECON.ITEMS {"account":"ghost"}"#, "NOT_FOUND", "ACCOUNT_NOT_FOUND", "items"),
        (#"RECON.UNMATCH {"item":"1"}"#, "BAD_REQUEST", "INVALID_FIELD", "item not a number"),
      ]
      try await expectNoChange(admin, Fixture.all + ["bank"]) {
        for (line, code, reason, why) in cases {
          let r = try await admin.request(line)
          #expect(r.code == code, "\(why): \(r)")
          if let reason {
            #expect(
              r.reason == reason || r.details["code"] as? String == reason, "\(why): \(r)")
          }
          if code == "STATEMENT_INVALID" {
            #expect(r.details["location"] as? String != nil, "names the line or element: \(r)")
          }
        }
        // Over the line limit: refused whole, and the connection stays usable.
        var big = "booking_date,amount,currency\n"
        for i in 0..<200 { big += "\(day),\(i + 1).00,EUR\n" }
        let r = try await admin.request(importLine("cash", big))
        #expect(r.code == "LINE_TOO_LONG", "\(r)")
        #expect(try await admin.request("PING").isOK)
        let st = try await reconCounts(admin, "cash")
        #expect(st.values.allSatisfy { $0 == 0 }, "nothing imported: \(st)")
      }
    }
  }

  @Test func partnerViewShowsTheWholePictureAndPagesFromOneSnapshot() async throws {
    try await withFixture { server, admin in
      try await admin.ok(
        "HOLD.PLACE {\"id\":\"h1\",\"legs\":\(twoLegs("p1:wallet", "p1:pool", "300"))}")
      let v = try await admin.ok(#"PARTNER.VIEW {"id":"p1"}"#)
      #expect(try v.obj("partner").str("id") == "p1")
      let stats = try v.obj("stats")
      #expect(try stats.int("entries") == 1 && stats.int("open_holds") == 1, "\(v)")
      let totals = try v.arr("totals")
      let eur = try #require(totals.first as? [String: Any])
      #expect(eur["currency"] as? String == "EUR" && totals.count == 1)
      #expect(eur["posted"] as? String == "5000" && eur["available"] as? String == "4700", "\(v)")
      #expect(eur["pending_in"] as? String == "300" && eur["pending_out"] as? String == "300")
      let names = try v.arr("accounts").compactMap { ($0 as? [String: Any])?["account"] as? String }
      #expect(names == [Fixture.p1Pool, Fixture.p1Wallet])
      let holds = try v.arr("open_holds").compactMap { ($0 as? [String: Any])?["id"] as? String }
      #expect(holds == ["h1"])

      // Page 1, then a write, then page 2 at page 1's seq: the write is not on page 2.
      let p1 = try await admin.ok(#"PARTNER.VIEW {"id":"p1","limit":1}"#)
      #expect(try p1.str("next") == Fixture.p1Pool, "\(p1)")
      let asOf = try p1.int("as_of_seq")
      try await admin.post("later", debit: "cash", credit: "p1:wallet", amount: "7")
      let p2 = try await admin.ok(
        "PARTNER.VIEW {\"id\":\"p1\",\"limit\":1,\"after\":\"p1:pool\",\"as_of_seq\":\(asOf)}")
      let wallet = try #require(try p2.arr("accounts").first as? [String: Any])
      #expect(wallet["account"] as? String == "p1:wallet" && wallet["balance"] as? String == "5000")
      let p2AsOf = try p2.int("as_of_seq")
      #expect(p2.isNull("next") && p2AsOf == asOf, "\(p2)")
      let now = try await admin.ok(#"PARTNER.VIEW {"id":"p1","after":"p1:pool"}"#)
      let w2 = try #require(try now.arr("accounts").first as? [String: Any])
      #expect(w2["balance"] as? String == "5007", "\(now)")

      // A service key sees its own partner (also without naming it), and another partner
      // exactly like one that does not exist.
      let k = try await admin.createKey(role: "service", partner: "p1")
      let svc = try await server.connect(key: k.key, secret: k.secret)
      #expect(try await svc.ok("PARTNER.VIEW").obj("partner").str("id") == "p1")
      try await RoleTests.expectIndistinguishable(
        svc, #"PARTNER.VIEW {"id":"p2"}"#, real: "p2", fake: "pz")
      let none = try await admin.request(#"PARTNER.VIEW {"id":"nobody"}"#)
      #expect(none.code == "NOT_FOUND" && none.reason == "PARTNER_NOT_FOUND", "\(none)")
      let noId = try await admin.request("PARTNER.VIEW")
      #expect(noId.code == "BAD_REQUEST" && noId.reason == "INVALID_FIELD", "\(noId)")
    }
  }

  @Test func cliReconAndPartnerViewOnlineAnswerWhatTheDataDirectoryHolds() async throws {
    try await withFixture { server, admin in
      let online = [
        "--server", "127.0.0.1:\(server.port)", "--key", server.adminKey, "--secret",
        server.adminSecret,
      ]
      let file = server.root + "/st.csv"
      try Self.statement(todayUTC()).write(toFile: file, atomically: true, encoding: .utf8)
      let imp = try await runTally(
        online + ["recon", "import", "--account", "cash", "--format", "csv", file])
      #expect(imp.status == 0 && imp.stdout.contains(#""new":3"#), "\(imp)")
      let status = try await runTally(online + ["recon", "status", "--account", "cash"])
      let offline = try await runTally([
        "--data", server.dataDir, "--json", "recon", "status", "--account", "cash",
      ])
      #expect(status.status == 0 && offline.status == 0, "\(status) \(offline)")
      #expect(status.stdout == offline.stdout, "the same JSON either way")
      let view = try await runTally(online + ["partner", "view", "p1"])
      let viewOffline = try await runTally([
        "--data", server.dataDir, "--json", "partner", "view", "p1",
      ])
      #expect(view.stdout == viewOffline.stdout && view.stdout.contains(#""as_of_seq""#))
      let byRefused = try await runTally(
        online + ["recon", "resolve", "3", "--reason", "r", "--by", "me"])
      #expect(byRefused.status != 0 && byRefused.stderr.contains("--by"), "\(byRefused)")
      let res = try await runTally(online + ["recon", "resolve", "3", "--reason", "fee"])
      #expect(res.status == 0, "\(res)")
      let items = try await admin.ok(#"RECON.ITEMS {"account":"cash","state":"resolved"}"#)
      #expect(try items.arr("items").count == 1)
      // A file over the statement limit (64 MiB) is refused before it is sent.
      let huge = server.root + "/huge.csv"
      try writeHugeStatement(huge)
      let head = try await admin.ok("LOG.HEAD")
      let big = try await runTally(
        online + ["--json", "recon", "import", "--account", "cash", "--format", "csv", huge])
      #expect(big.status == 1, "\(big.stderr)")
      #expect(big.stdout.contains("STATEMENT_INVALID") && big.stdout.contains("TOO_LARGE"))
      #expect(try await admin.ok("LOG.HEAD").raw == head.raw, "nothing appended")
    }
  }
}

/// Just over 64 MiB of a valid-looking CSV statement.
func writeHugeStatement(_ path: String) throws {
  let line = "2024-03-01,1.00,EUR\n"
  let text =
    "booking_date,amount,currency\n"
    + String(repeating: line, count: (64 << 20) / line.utf8.count + 1)
  try text.write(toFile: path, atomically: false, encoding: .utf8)
}
