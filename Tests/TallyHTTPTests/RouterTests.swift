import Foundation
import HTTPTypes
import Hummingbird
import TallyCore
import TallyHTTP
import TallyServer
import TallyStore
import Testing

/// The back office on a real loopback socket (the HTTP application in process) over a real
/// ledger and a real `TallyServer`: pages, headers, sessions, CSRF, escaping, limits.
@Suite("back office over HTTP", .timeLimit(.minutes(5)))
struct RouterTests {
  @Test func signedOutPagesRedirectToSignIn() async throws {
    let office = try Office()
    try await office.live { client in
      for uri in ["/", "/partners", "/partner?id=acme", "/account?name=cash", "/audit", "/log"] {
        let r = try await client.execute(uri: uri, method: .get)
        #expect(r.status == .seeOther, "\(uri)")
        #expect(r.headers[.location] == "/signin", "\(uri)")
        #expect(r.headers[.cacheControl] == "no-store")
      }
      let page = try await client.execute(uri: "/signin", method: .get)
      #expect(page.status == .ok)
      #expect(page.headers[.contentType] == "text/html; charset=utf-8")
      #expect(page.headers[.contentSecurityPolicy]?.contains("default-src 'none'") == true)
      #expect(page.text.contains("Service keys are refused"))
    }
    await office.stop()
  }

  @Test func signInSetsAStrictHttpOnlyExpiringCookie() async throws {
    let office = try Office()
    let admin = office.keys[.admin]!
    try await office.live { client in
      var b = Browser()
      let r = try await b.signIn(client, key: admin.id, secret: admin.secret)
      #expect(r.status == .seeOther)
      #expect(r.headers[.location] == "/partners")
      let set = try #require(r.headers[.setCookie])
      #expect(set.hasPrefix("tally_session="))
      #expect(set.contains("HttpOnly"))
      #expect(set.contains("SameSite=Strict"))
      #expect(set.contains("Max-Age=28800"))
      #expect(!set.contains("Secure"))
      #expect(!set.contains(admin.secret))
      // 256 bits as hex.
      let id = set.dropFirst("tally_session=".count).prefix { $0 != ";" }
      #expect(id.count == 64)
      let page = try await b.get(client, "/partners")
      #expect(page.status == .ok)
    }
    var tls = HTTPConfig()
    tls.secureCookies = true
    try await office.live(tls) { client in
      var b = Browser()
      let r = try await b.signIn(client, key: admin.id, secret: admin.secret)
      #expect(r.headers[.setCookie]?.contains("Secure") == true)
    }
    await office.stop()
  }

  @Test func wrongSecretIsRefusedAndRateLimited() async throws {
    let office = try Office()
    let ops = office.keys[.ops]!
    try await office.live { client in
      var b = Browser()
      for _ in 0..<5 {
        let r = try await b.signIn(client, key: ops.id, secret: "wrong")
        #expect(r.status == .unauthorized)
        #expect(r.headers[HTTPField.Name("X-Tally-Error")!] == "AUTH_FAILED")
        #expect(r.headers[.setCookie] == nil)
      }
      // Over the AUTH limit: even the right secret is refused, without a lookup.
      let r = try await b.signIn(client, key: ops.id, secret: ops.secret)
      #expect(r.status == .tooManyRequests)
      #expect(r.headers[HTTPField.Name("X-Tally-Error")!] == "RATE_LIMITED")
      #expect(r.headers[.setCookie] == nil)
    }
    await office.stop()
  }

  @Test func serviceKeyIsRefused() async throws {
    let office = try Office()
    let svc = office.keys[.service]!
    try await office.live { client in
      var b = Browser()
      let r = try await b.signIn(client, key: svc.id, secret: svc.secret)
      #expect(r.status == .forbidden)
      #expect(r.headers[HTTPField.Name("X-Tally-Error")!] == "SERVICE_KEY_REFUSED")
      #expect(r.headers[.setCookie] == nil)
      #expect(r.text.contains("service keys may not sign in"))
    }
    await office.stop()
  }

  @Test func partnerNameIsEscapedOnEveryPage() async throws {
    let office = try Office()
    let admin = office.keys[.admin]!
    try await office.live { client in
      var b = Browser()
      _ = try await b.signIn(client, key: admin.id, secret: admin.secret)
      for uri in ["/partners", "/partner?id=acme"] {
        let r = try await b.get(client, uri)
        #expect(r.status == .ok, "\(uri)")
        #expect(!r.text.contains("<script>"), "\(uri)")
        #expect(r.text.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "\(uri)")
      }
    }
    await office.stop()
  }

  @Test func partnerAndAccountPagesShowMoneyInMinorUnits() async throws {
    let office = try Office { ledger, now in
      var cmds = [Command]()
      for i in 1...60 {
        cmds.append(
          .postEntry(
            EntrySpec(
              id: "e\(i)",
              legs: [
                LegSpec(account: "cash", side: .debit, amountMinor: Int128(i) * 100_001),
                LegSpec(account: "income", side: .credit, amountMinor: Int128(i) * 100_001),
              ])))
      }
      _ = try ledger.apply(cmds, now: now)
    }
    let ops = office.keys[.ops]!
    try await office.live { client in
      var b = Browser()
      _ = try await b.signIn(client, key: ops.id, secret: ops.secret)
      let p = try await b.get(client, "/partner?id=acme")
      #expect(p.status == .ok)
      // 100,001 × (1 + … + 60) = 183,001,830 minor units.
      #expect(p.text.contains("1,830,018.30"))
      #expect(p.text.contains("href=\"/account?name=cash\""))
      // Recent activity: the accounts that moved last, each with the seq of its last change
      // (e60 is seq 64: it moved both), linked to the log there.
      let recent = try #require(p.text.range(of: "id=\"recent\"")).upperBound
      let end = try #require(p.text[recent...].range(of: "</table>")).lowerBound
      let table = p.text[recent..<end]
      #expect(table.contains("href=\"/log?from=64\""))
      #expect(table.contains("href=\"/account?name=income\""))
      let a = try await b.get(client, "/account?name=cash")
      #expect(a.status == .ok)
      #expect(a.text.contains("<svg"))
      #expect(a.text.contains("<polyline"))
      #expect(a.text.contains("1,000.01"))
      let next = try #require(a.text.range(of: "from=")).upperBound
      let from = a.text[next...].prefix { $0.isNumber }
      let page2 = try await b.get(client, "/account?name=cash&from=\(from)")
      #expect(page2.status == .ok)
      #expect(page2.text.contains("60,000.60"))
      // Seqs 1-4 are the platform, the partner and its two accounts; e1…e3 are 5…7.
      let asOf = try await b.get(client, "/account?name=cash&as_of=7")
      #expect(asOf.text.contains("id=\"balance-amount\">6,000.06<"))
      let bad = try await b.get(client, "/account?name=cash&as_of=-1")
      #expect(bad.status == .badRequest)
      #expect(bad.headers[HTTPField.Name("X-Tally-Error")!] == "BAD_FORM")
      let missing = try await b.get(client, "/account?name=ghost")
      #expect(missing.status == .notFound)
      #expect(missing.headers[HTTPField.Name("X-Tally-Error")!] == "NOT_FOUND")
    }
    await office.stop()
  }

  @Test func rolesAreTheSocketsRoles() async throws {
    let office = try Office()
    let auditor = office.keys[.auditor]!
    let ops = office.keys[.ops]!
    try await office.live { client in
      var a = Browser()
      let r = try await a.signIn(client, key: auditor.id, secret: auditor.secret)
      #expect(r.headers[.location] == "/audit")
      let partners = try await a.get(client, "/partners")
      #expect(partners.status == .forbidden)
      #expect(partners.headers[HTTPField.Name("X-Tally-Error")!] == "FORBIDDEN")
      let audit = try await a.get(client, "/audit")
      #expect(audit.status == .ok)
      #expect(audit.text.contains("id=\"vkey\""))
      var o = Browser()
      _ = try await o.signIn(client, key: ops.id, secret: ops.secret)
      let log = try await o.get(client, "/log")
      #expect(log.status == .forbidden)
    }
    await office.stop()
  }

  /// The audit page shows the last `tally verify` kept in the directory: none yet, a
  /// failure with its problems (escaped), and an unreadable record as an error, not a crash.
  @Test func auditPageShowsTheLastVerification() async throws {
    let office = try Office()
    let auditor = office.keys[.auditor]!
    let dir = office.dir.ledgerPath
    try await office.live { client in
      var a = Browser()
      _ = try await a.signIn(client, key: auditor.id, secret: auditor.secret)
      #expect(try await a.get(client, "/audit").text.contains("has not been verified yet"))

      try VerifyRecord(
        ok: false, events: 3, headSeq: 3, chainHex: String(repeating: "ab", count: 32),
        problems: ["seq 2: leaf <b>differs</b>"], finishedNanos: 1_796_000_000_000_000_000,
        millis: 12
      ).write(toDirectory: dir)
      let failed = try await a.get(client, "/audit").text
      #expect(failed.contains("<strong>FAILED</strong>"), "\(failed)")
      #expect(failed.contains("seq 2: leaf &lt;b&gt;differs&lt;/b&gt;"))
      #expect(failed.contains("2026-11-30T00:53:20.000000Z"))

      try VerifyRecord(
        ok: true, events: 3, headSeq: 3, chainHex: String(repeating: "cd", count: 32),
        problems: [], finishedNanos: 1_796_000_000_000_000_000, millis: 5
      ).write(toDirectory: dir)
      let ok = try await a.get(client, "/audit").text
      #expect(ok.contains("<strong>ok</strong>:\n3 events to seq 3"), "\(ok)")

      let garbage = "{\"ok\":1}"
      try garbage.write(
        toFile: dir + "/" + VerifyRecord.fileName, atomically: true, encoding: .utf8)
      let bad = try await a.get(client, "/audit")
      #expect(bad.status == .ok)
      #expect(bad.text.contains("id=\"verify-error\""), "\(bad.text)")
      #expect(bad.text.contains("CORRUPT"))
    }
    await office.stop()
  }

  /// A day for the statement: the fixture's entries are dated today (UTC).
  static func today() -> String {
    let days = Int32(Int64(Date().timeIntervalSince1970) / 86_400)
    return CivilTime.formatDate(days)
  }

  @Test func importResolveAndCSRF() async throws {
    let office = try Office()
    let ops = office.keys[.ops]!
    try await office.live { client in
      var b = Browser()
      _ = try await b.signIn(client, key: ops.id, secret: ops.secret)
      let page = try await b.get(client, "/recon?account=cash")
      #expect(page.status == .ok)
      let csrf = try #require(b.csrf)
      let csv = "booking_date,amount,currency,reference\n\(Self.today()),12.34,EUR,nothing\n"
      let boundary = "XyZboundary"
      func part(_ name: String, _ value: String, file: Bool = false) -> String {
        "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\""
          + (file ? "; filename=\"s.csv\"\r\nContent-Type: text/csv" : "")
          + "\r\n\r\n\(value)\r\n"
      }
      func upload(csrf: String?) -> String {
        (csrf.map { part("csrf", $0) } ?? "") + part("account", "cash") + part("format", "csv")
          + part("tolerance_days", "3") + part("statement", csv, file: true) + "--\(boundary)--\r\n"
      }
      var h = b.headers
      h[.contentType] = "multipart/form-data; boundary=\(boundary)"
      // A wrong CSRF token (its first character changed): refused, nothing imported.
      let refused = try await client.execute(
        uri: "/recon/import", method: .post, headers: h,
        body: ByteBuffer(string: upload(csrf: (csrf.first == "0" ? "1" : "0") + csrf.dropFirst())))
      #expect(refused.status == .forbidden)
      #expect(refused.headers[HTTPField.Name("X-Tally-Error")!] == "CSRF_FAILED")
      #expect(try await b.get(client, "/recon?account=cash").text.contains("0 statements"))
      let imported = try await client.execute(
        uri: "/recon/import", method: .post, headers: h,
        body: ByteBuffer(string: upload(csrf: csrf)))
      #expect(imported.status == .ok)
      #expect(imported.text.contains("id=\"summary\""))
      #expect(imported.text.contains("1 statements"))
      #expect(imported.text.contains("id=\"item-1\""))
      // Resolve without the token: 403, the item stays unmatched.
      let noToken = try await b.post(client, "/recon/resolve", "account=cash&item=1&reason=fee")
      #expect(noToken.status == .forbidden)
      #expect(noToken.headers[HTTPField.Name("X-Tally-Error")!] == "CSRF_FAILED")
      #expect(noToken.text.contains("nothing was changed"))
      let still = try await b.get(client, "/recon?account=cash&state=unmatched")
      #expect(still.text.contains("id=\"item-1\""))
      let ok = try await b.post(
        client, "/recon/resolve", "csrf=\(csrf)&account=cash&item=1&reason=bank+fee")
      #expect(ok.status == .seeOther)
      let resolved = try await b.get(client, "/recon?account=cash&state=resolved")
      #expect(resolved.text.contains("resolved by key:\(ops.id): bank fee"))
      // Resolving it again is the ledger's ITEM_STATE.
      let again = try await b.post(
        client, "/recon/resolve", "csrf=\(csrf)&account=cash&item=1&reason=twice")
      #expect(again.status == .conflict)
      #expect(again.headers[HTTPField.Name("X-Tally-Error")!] == "ITEM_STATE")
    }
    await office.stop()
  }

  @Test func bodiesOverTheirLimitAre413() async throws {
    let office = try Office()
    let ops = office.keys[.ops]!
    var config = HTTPConfig()
    config.bodyBytesMax = 1024
    config.uploadBytesMax = 2048
    try await office.live(config) { client in
      var b = Browser()
      let big = String(repeating: "a", count: 4096)
      let r = try await client.execute(
        uri: "/signin", method: .post, headers: Browser.formHeaders(HTTPFields()),
        body: ByteBuffer(string: "key=\(big)&secret=x"))
      #expect(r.status == .contentTooLarge)
      #expect(r.headers[HTTPField.Name("X-Tally-Error")!] == "BODY_TOO_LARGE")
      _ = try await b.signIn(client, key: ops.id, secret: ops.secret)
      _ = try await b.get(client, "/recon?account=cash")
      let csrf = try #require(b.csrf)
      let form = try await b.post(
        client, "/recon/resolve", "csrf=\(csrf)&account=cash&item=1&reason=\(big)")
      #expect(form.status == .contentTooLarge)
      var h = b.headers
      h[.contentType] = "multipart/form-data; boundary=x"
      let upload = try await client.execute(
        uri: "/recon/import", method: .post, headers: h,
        body: ByteBuffer(string: String(repeating: "b", count: 4096)))
      #expect(upload.status == .contentTooLarge)
      #expect(try await b.get(client, "/recon?account=cash").text.contains("0 statements"))
    }
    await office.stop()
  }

  @Test func signOutNeedsTheTokenAndEndsTheSession() async throws {
    let office = try Office()
    let admin = office.keys[.admin]!
    try await office.live { client in
      var b = Browser()
      _ = try await b.signIn(client, key: admin.id, secret: admin.secret)
      _ = try await b.get(client, "/partners")
      let csrf = try #require(b.csrf)
      let refused = try await b.post(client, "/signout", "")
      #expect(refused.status == .forbidden)
      #expect(try await b.get(client, "/partners").status == .ok)
      let out = try await b.post(client, "/signout", "csrf=\(csrf)")
      #expect(out.status == .seeOther)
      let after = try await b.get(client, "/partners")
      #expect(after.status == .seeOther)
      let post = try await b.post(client, "/recon/resolve", "csrf=\(csrf)&account=cash&item=1")
      #expect(post.status == .unauthorized)
      #expect(post.headers[HTTPField.Name("X-Tally-Error")!] == "SESSION_REQUIRED")
    }
    await office.stop()
  }
}
