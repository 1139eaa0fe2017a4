import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MultipartKit
import Mustache
import NIOCore
import TallyCore
import TallyCrypto
import TallyProtocol
import TallyServer

/// The back office: server-rendered pages for admin, ops and auditor keys. Every page asks
/// the ledger through `TallyServer.respond(to:as:)`, the socket's own rules and answers,
/// and renders the answer's JSON; nothing here decides what a role may see or do.
/// A value, or the page that answers instead (a redirect, an error page).
enum Got<T> {
  case value(T)
  case answer(Response)
}

struct BackOffice: Sendable {
  let server: TallyServer
  let config: HTTPConfig
  let logger: Logger
  let sessions: BackOfficeSessions
  let library: MustacheLibrary

  static let cookieName = "tally_session"

  init(server: TallyServer, config: HTTPConfig, logger: Logger) throws {
    self.server = server
    self.config = config
    self.logger = logger
    sessions = BackOfficeSessions(config: config)
    library = try BackOfficeTemplates.library()
  }

  /// Errors of the back office itself; the ledger's answers keep their wire codes.
  enum PageError: String {
    /// No session, or it expired or was ended.
    case sessionRequired = "SESSION_REQUIRED"
    /// A form that changes something came without this session's CSRF token.
    case csrfFailed = "CSRF_FAILED"
    /// A request body or upload over its limit.
    case bodyTooLarge = "BODY_TOO_LARGE"
    /// A service key tried to sign in.
    case serviceKeyRefused = "SERVICE_KEY_REFUSED"
    /// A form or query field missing or malformed.
    case badForm = "BAD_FORM"
  }

  func addRoutes(to router: Router<BackOfficeContext>) {
    router.get("/") { req, _ in
      try await self.home(req)
    }
    router.get("/signin") { _, _ in self.signinPage(nil, status: .ok) }
    router.post("/signin") { req, ctx in try await self.signIn(req, ctx) }
    router.post("/signout") { req, _ in try await self.signOut(req) }
    router.get("/partners") { req, _ in try await self.partners(req) }
    router.get("/partner") { req, _ in try await self.partner(req) }
    router.get("/account") { req, _ in try await self.account(req) }
    router.get("/recon") { req, _ in try await self.recon(req) }
    router.post("/recon/resolve") { req, _ in try await self.resolve(req, unmatch: false) }
    router.post("/recon/unmatch") { req, _ in try await self.resolve(req, unmatch: true) }
    router.post("/recon/import") { req, _ in try await self.importStatement(req) }
    router.get("/log") { req, _ in try await self.log(req) }
    router.get("/audit") { req, _ in try await self.audit(req) }
  }

  // MARK: rendering

  func html(_ template: String, _ data: [String: Any], status: HTTPResponse.Status = .ok)
    -> Response
  {
    // Templates are registered at start (a test renders each); a missing one is a defect.
    guard let text = library.render(data, withTemplate: template) else {
      preconditionFailure("back office template \(template) is not registered")
    }
    return Response(
      status: status, headers: [.contentType: "text/html; charset=utf-8"],
      body: .init(byteBuffer: ByteBuffer(string: text)))
  }

  /// What the header shows for a session (nil: signed out).
  func chrome(_ s: BackOfficeSession?, title: String) -> [String: Any] {
    var d: [String: Any] = ["title": title]
    if let s {
      let role = s.principal.role
      d["session"] = [
        "key": s.principal.keyId, "role": role.rawValue, "csrf": s.csrf,
        "canPartners": role == .admin || role == .ops,
        "canLog": role == .admin || role == .auditor,
        "canAudit": role == .admin || role == .auditor,
      ]
      d["csrf"] = s.csrf
    }
    return d
  }

  func errorPage(
    _ s: BackOfficeSession?, status: HTTPResponse.Status, code: String, reason: String? = nil,
    message: String
  ) -> Response {
    var d = chrome(s, title: "Error")
    d["code"] = code
    if let reason, reason != code { d["reason"] = reason }
    d["message"] = message
    var r = html("error", d, status: status)
    r.headers[HTTPField.Name("X-Tally-Error")!] = code
    return r
  }

  func pageError(_ s: BackOfficeSession?, _ e: PageError, _ message: String) -> Response {
    let status: HTTPResponse.Status =
      switch e {
      case .sessionRequired: .unauthorized
      case .csrfFailed, .serviceKeyRefused: .forbidden
      case .bodyTooLarge: .contentTooLarge
      case .badForm: .badRequest
      }
    return errorPage(s, status: status, code: e.rawValue, message: message)
  }

  /// The HTTP status of a wire error code.
  static func status(_ code: String) -> HTTPResponse.Status {
    switch code {
    case "NOT_FOUND": .notFound
    case "FORBIDDEN": .forbidden
    case "AUTH_FAILED", "AUTH_REQUIRED": .unauthorized
    case "BAD_REQUEST", "INVALID_AMOUNT", "UNKNOWN_CURRENCY", "STATEMENT_INVALID",
      "STATEMENT_ACCOUNT_MISMATCH":
      .badRequest
    case "TOO_LARGE", "LINE_TOO_LONG": .contentTooLarge
    case "READ_ONLY", "SHUTTING_DOWN", "NOT_REPLICATED", "UNAVAILABLE": .serviceUnavailable
    case "INTERNAL": .internalServerError
    // The ledger's rules refused the request (state, balance, conflict).
    default: .conflict
    }
  }

  /// Asks the ledger; an error answer becomes the error page (a revoked key also ends the
  /// session).
  func ask(_ request: TallyProtocol.Request, _ s: BackOfficeSession) async -> Got<JSONObject> {
    switch Answer(line: await server.respond(to: request, as: s.principal)) {
    case .ok(let o): return .value(o)
    case .error(let code, let reason, let message):
      if reason == "KEY_REVOKED" { sessions.endAll(keyId: s.principal.keyId) }
      return .answer(
        errorPage(s, status: Self.status(code), code: code, reason: reason, message: message))
    }
  }

  // MARK: sessions

  func session(_ req: Request) -> BackOfficeSession? {
    guard let id = req.cookies[Self.cookieName]?.value else { return nil }
    return sessions.find(id) { server.isRevoked($0) }
  }

  func signedOut() -> Response {
    Response(status: .seeOther, headers: [.location: "/signin"])
  }

  /// The session of a page request, or the answer for a visitor without one.
  func requireSession(_ req: Request) -> Got<BackOfficeSession> {
    if let s = session(req) { return .value(s) }
    return .answer(signedOut())
  }

  /// A form that changes something: its body (bounded), a session, and that session's CSRF
  /// token, compared in constant time. Checked before anything is asked of the ledger.
  func requireForm(_ req: Request, limit: Int? = nil) async -> Got<(BackOfficeSession, ByteBuffer)>
  {
    var req = req
    let limit = limit ?? config.bodyBytesMax
    guard let s = session(req) else {
      return .answer(pageError(nil, .sessionRequired, "sign in first; the session has ended"))
    }
    let body: ByteBuffer
    do {
      body = try await req.collectBody(upTo: limit)
    } catch {
      return .answer(
        pageError(s, .bodyTooLarge, "the request body is larger than \(limit) bytes"))
    }
    return .value((s, body))
  }

  func csrfMatches(_ given: String?, _ s: BackOfficeSession) -> Bool {
    guard let given else { return false }
    return Secrets.constantTimeEqual(Array(given.utf8), Array(s.csrf.utf8))
  }

  func csrfRefused(_ s: BackOfficeSession) -> Response {
    pageError(
      s, .csrfFailed, "the form did not carry this session's CSRF token; nothing was changed")
  }

  /// An `application/x-www-form-urlencoded` body (Hummingbird's decoder); nil when it
  /// does not decode.
  static func form<T: Decodable>(_ type: T.Type, _ body: ByteBuffer) -> T? {
    try? URLEncodedFormDecoder().decode(type, from: String(buffer: body))
  }

  struct CSRFForm: Decodable { var csrf: String? }
  struct SignInForm: Decodable {
    var key: String?
    var secret: String?
  }
  struct ItemForm: Decodable {
    var csrf: String?
    var account: String?
    var item: String?
    var reason: String?
    var entry: String?
  }

  /// A value made safe for a URL's query (RFC 3986 unreserved characters kept).
  static func q(_ s: String) -> String {
    var out = ""
    for b in s.utf8 {
      switch b {
      case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
        UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
        UInt8(ascii: "_"), UInt8(ascii: "~"):
        out.append(Character(UnicodeScalar(b)))
      default:
        let hex = Array("0123456789ABCDEF")
        out += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
      }
    }
    return out
  }

  func cookie(_ value: String, maxAge: Int) -> Cookie {
    Cookie(
      name: Self.cookieName, value: value, maxAge: maxAge, path: "/",
      secure: config.secureCookies, httpOnly: true, sameSite: .strict)
  }

  func home(_ req: Request) async throws -> Response {
    guard let s = session(req) else { return signedOut() }
    let role = s.principal.role
    let to = role == .auditor ? "/audit" : "/partners"
    return Response(status: .seeOther, headers: [.location: to])
  }

  func signinPage(_ failure: (code: String, message: String)?, status: HTTPResponse.Status)
    -> Response
  {
    var d = chrome(nil, title: "Sign in")
    if let failure { d["failure"] = ["code": failure.code, "message": failure.message] }
    var r = html("signin", d, status: status)
    if let failure { r.headers[HTTPField.Name("X-Tally-Error")!] = failure.code }
    return r
  }

  func signIn(_ req: Request, _ ctx: BackOfficeContext) async throws -> Response {
    var req = req
    let body: ByteBuffer
    do {
      body = try await req.collectBody(upTo: config.bodyBytesMax)
    } catch {
      return pageError(
        nil, .bodyTooLarge, "the request body is larger than \(config.bodyBytesMax) bytes")
    }
    let f = Self.form(SignInForm.self, body)
    guard let key = f?.key, let secret = f?.secret, !key.isEmpty, !secret.isEmpty else {
      return signinPage(("BAD_FORM", "give a key and its secret"), status: .badRequest)
    }
    let address = ctx.remoteAddress?.ipAddress ?? "unknown"
    switch await server.signIn(key: key, secret: secret, address: address) {
    case .failure(let e):
      let status: HTTPResponse.Status =
        e.reason == "RATE_LIMITED" ? .tooManyRequests : .unauthorized
      return signinPage((e.reason, e.message), status: status)
    case .success(let p):
      if p.role == .service {
        logger.warning("back office sign-in refused: service key", metadata: ["key": "\(p.keyId)"])
        return signinPage(
          (
            PageError.serviceKeyRefused.rawValue,
            "service keys may not sign in to the back office (admin, ops and auditor keys only)"
          ), status: .forbidden)
      }
      let s = sessions.start(p)
      var r = Response(
        status: .seeOther, headers: [.location: p.role == .auditor ? "/audit" : "/partners"])
      r.setCookie(cookie(s.id, maxAge: Int(config.sessionAbsoluteSeconds)))
      return r
    }
  }

  func signOut(_ req: Request) async throws -> Response {
    let (s, body): (BackOfficeSession, ByteBuffer)
    switch await requireForm(req) {
    case .answer(let r): return r
    case .value(let v): (s, body) = v
    }
    guard csrfMatches(Self.form(CSRFForm.self, body)?.csrf, s) else { return csrfRefused(s) }
    sessions.end(s.id)
    var r = signedOut()
    r.setCookie(cookie("", maxAge: 0))
    return r
  }

  // MARK: pages

  func partners(_ req: Request) async throws -> Response {
    let s: BackOfficeSession
    switch requireSession(req) {
    case .answer(let r): return r
    case .value(let v): s = v
    }
    let after = req.uri.queryParameters.get("after")
    switch await ask(.partnerList(after: after, limit: config.pageRows), s) {
    case .answer(let r): return r
    case .value(let o):
      var d = chrome(s, title: "Partners")
      d["rows"] = o.array("partners").compactMap(\.objectValue).map { p -> [String: Any] in
        [
          "id": p.text("id"), "idQ": Self.q(p.text("id")), "name": p.text("name"),
          "created": p.text("created_seq"),
        ]
      }
      let next = o.text("next")
      if !next.isEmpty { d["next"] = Self.q(next) }
      return html("partners", d)
    }
  }

  func partner(_ req: Request) async throws -> Response {
    let s: BackOfficeSession
    switch requireSession(req) {
    case .answer(let r): return r
    case .value(let v): s = v
    }
    let qp = req.uri.queryParameters
    guard let id = qp.get("id"), !id.isEmpty else {
      return pageError(s, .badForm, "which partner? (id)")
    }
    let after = qp.get("after").flatMap { $0.isEmpty ? nil : $0 }
    switch await ask(
      .partnerView(partner: id, after: after, limit: config.pageRows, asOfSeq: nil), s)
    {
    case .answer(let r): return r
    case .value(let o):
      let p = o.object("partner")
      let st = o.object("stats")
      var d = chrome(s, title: "Partner \(p.text("name"))")
      d["id"] = p.text("id")
      d["idQ"] = Self.q(p.text("id"))
      d["name"] = p.text("name")
      d["asOf"] = o.text("as_of_seq")
      for (k, v) in [
        ("entries", "entries"), ("holds", "holds"), ("openHolds", "open_holds"),
        ("unreconciled", "unreconciled"), ("lastActivitySeq", "last_activity_seq"),
        ("lastActivity", "last_activity"),
      ] {
        d[k] = st.text(v)
      }
      if st.text("last_activity").isEmpty { d["lastActivity"] = false }
      d["totals"] = o.array("totals").compactMap(\.objectValue).map { t -> [String: Any] in
        let scale = Money.scale(t.text("currency"), fallback: 0)
        func m(_ k: String) -> String { Money.format(t.text(k), scale: scale) }
        return [
          "currency": t.text("currency"), "accounts": t.text("accounts"), "posted": m("posted"),
          "pendingIn": m("pending_in"), "pendingOut": m("pending_out"),
          "available": m("available"),
        ]
      }
      d["accounts"] = o.array("accounts").compactMap(\.objectValue).map(Self.accountRow)
      let recent = o.array("recent_accounts").compactMap(\.objectValue).map { a in
        Self.accountRow(a).merging(["seq": a.text("seq")]) { $1 }
      }
      d["recent"] = recent
      d["hasRecent"] = !recent.isEmpty
      d["holds"] = o.array("open_holds").compactMap(\.objectValue).map { h -> [String: Any] in
        [
          "id": h.text("id"), "state": h.text("state"), "deadline": h.text("deadline"),
          "legs": h.array("legs").count,
        ]
      }
      let next = o.text("next")
      if !next.isEmpty { d["next"] = Self.q(next) }
      return html("partner", d)
    }
  }

  static func accountRow(_ a: JSONObject) -> [String: Any] {
    let scale = Int(a.text("scale")) ?? 0
    return [
      "name": a.text("account"), "nameQ": q(a.text("account")), "currency": a.text("currency"),
      "status": a.text("status"), "balance": Money.format(a.text("balance"), scale: scale),
      "available": a[("available")] == .null
        ? "" : Money.format(a.text("available"), scale: scale),
    ]
  }

  func account(_ req: Request) async throws -> Response {
    let s: BackOfficeSession
    switch requireSession(req) {
    case .answer(let r): return r
    case .value(let v): s = v
    }
    let qp = req.uri.queryParameters
    guard let name = qp.get("name"), !name.isEmpty else {
      return pageError(s, .badForm, "which account? (name)")
    }
    var asOf: UInt64?
    if let t = qp.get("as_of"), !t.isEmpty {
      guard let v = UInt64(t) else {
        return pageError(s, .badForm, "as_of must be a seq (a whole number)")
      }
      asOf = v
    }
    var from: UInt64 = 1
    if let t = qp.get("from"), !t.isEmpty {
      guard let v = UInt64(t), v >= 1 else {
        return pageError(s, .badForm, "from must be a seq (a whole number from 1)")
      }
      from = v
    }
    let info: JSONObject
    switch await ask(.accountGet(name: name), s) {
    case .answer(let r): return r
    case .value(let o): info = o
    }
    let balance: JSONObject
    switch await ask(.balanceGet(account: name, asOfSeq: asOf), s) {
    case .answer(let r): return r
    case .value(let o): balance = o
    }
    let statement: JSONObject
    switch await ask(
      .statementGet(account: name, fromSeq: from, toSeq: UInt64.max, limit: config.pageRows), s)
    {
    case .answer(let r): return r
    case .value(let o): statement = o
    }
    let scale = Int(info.text("scale")) ?? 0
    func m(_ v: String) -> String { Money.format(v, scale: scale) }
    var d = chrome(s, title: "Account \(name)")
    d["name"] = name
    d["nameQ"] = Self.q(name)
    d["partner"] = info.text("partner")
    d["partnerQ"] = Self.q(info.text("partner"))
    d["currency"] = info.text("currency")
    d["status"] = info.text("status")
    d["asOfInput"] = asOf.map(String.init) ?? ""
    d["balanceSeq"] = balance.text("seq")
    d["balance"] = m(balance.text("balance"))
    d["available"] = balance["available"] == .null ? "" : m(balance.text("available"))
    d["postedDebits"] = m(balance.object("posted").text("debits"))
    d["postedCredits"] = m(balance.object("posted").text("credits"))
    d["pendingDebits"] = m(balance.object("pending").text("debits"))
    d["pendingCredits"] = m(balance.object("pending").text("credits"))
    let lines = statement.array("lines").compactMap(\.objectValue)
    d["lines"] = lines.map { l -> [String: Any] in
      let posted = l.object("posted")
      let debit = posted.text("debits")
      let credit = posted.text("credits")
      return [
        "seq": l.text("seq"), "timestamp": l.text("timestamp"), "type": l.text("type"),
        "id": l.text("id"), "debit": debit == "0" ? "" : m(debit),
        "credit": credit == "0" ? "" : m(credit), "ref": l.text("ref"),
      ]
    }
    let next = statement.text("next")
    if !next.isEmpty { d["next"] = next }
    // The chart: the posted balance before the page, then each line's change.
    var start: Int128 = 0
    if let first = lines.first.flatMap({ UInt64($0.text("seq")) }), first > 1 {
      switch await ask(.balanceGet(account: name, asOfSeq: first - 1), s) {
      case .answer(let r): return r
      case .value(let b):
        start = Self.postedBalance(b.object("posted"), normal: info.text("normal_side"))
      }
    }
    var points = [(seq: UInt64, balance: Int128)]()
    var running = start
    for l in lines {
      running += Self.postedBalance(l.object("posted"), normal: info.text("normal_side"))
      points.append((UInt64(l.text("seq")) ?? 0, running))
    }
    d["chart"] = BalanceChart.svg(points)
    return html("account", d)
  }

  /// Debits less credits for a debit-normal account, credits less debits otherwise.
  /// Amounts come from the ledger, which keeps them far inside Int128.
  static func postedBalance(_ posted: JSONObject, normal: String) -> Int128 {
    let dr = Int128(posted.text("debits")) ?? 0
    let cr = Int128(posted.text("credits")) ?? 0
    return normal == "credit" ? cr - dr : dr - cr
  }

  // MARK: reconciliation

  static let reconStates = ["unmatched", "matched", "discrepancy", "resolved"]

  func recon(_ req: Request) async throws -> Response {
    let s: BackOfficeSession
    switch requireSession(req) {
    case .answer(let r): return r
    case .value(let v): s = v
    }
    let qp = req.uri.queryParameters
    guard let name = qp.get("account"), !name.isEmpty else {
      return pageError(s, .badForm, "which account? (account)")
    }
    var filter = ReconItemsFilter.all
    let stateName = qp.get("state").flatMap { $0.isEmpty ? nil : $0 }
    if let stateName {
      guard let st = ReconState(name: stateName) else {
        return pageError(
          s, .badForm, "state must be unmatched, matched, discrepancy or resolved")
      }
      filter = .state(st)
    }
    var after: UInt64 = 0
    if let t = qp.get("after"), !t.isEmpty {
      guard let v = UInt64(t) else { return pageError(s, .badForm, "after must be an item") }
      after = v
    }
    return await reconPage(s, name, filter: filter, stateName: stateName, after: after)
  }

  func reconPage(
    _ s: BackOfficeSession, _ name: String, filter: ReconItemsFilter, stateName: String?,
    after: UInt64, imported: String? = nil
  ) async -> Response {
    let status: JSONObject
    switch await ask(.reconStatus(account: name), s) {
    case .answer(let r): return r
    case .value(let o): status = o
    }
    let items: JSONObject
    switch await ask(
      .reconItems(account: name, filter: filter, after: after, limit: config.pageRows), s)
    {
    case .answer(let r): return r
    case .value(let o): items = o
    }
    let scale = Money.scale(status.text("currency"), fallback: 0)
    let role = s.principal.role
    let canWrite = role == .admin || role == .ops
    var d = chrome(s, title: "Reconciliation of \(name)")
    d["name"] = name
    d["nameQ"] = Self.q(name)
    d["currency"] = status.text("currency")
    d["statements"] = status.text("statements")
    if !status.text("from").isEmpty {
      d["from"] = status.text("from")
      d["to"] = status.text("to")
    }
    let counts = status.object("counts")
    let amounts = status.object("amounts")
    d["states"] = counts.keys.map { k -> [String: Any] in
      ["state": k, "count": counts.text(k), "amount": Money.format(amounts.text(k), scale: scale)]
    }
    d["filters"] = Self.reconStates
    if let stateName { d["state"] = stateName }
    d["items"] = items.array("items").compactMap(\.objectValue).map { i -> [String: Any] in
      let state = i.text("state")
      var detail = i.text("discrepancy_reason")
      if state == "resolved" {
        detail = "resolved by \(i.text("by")): \(i.text("reason"))"
        if !i.text("entry").isEmpty { detail += " (entry \(i.text("entry")))" }
      }
      return [
        "item": i.text("item"), "state": state, "match": i.text("match"), "detail": detail,
        "account": name, "csrf": s.csrf,
        "canResolve": canWrite && (state == "unmatched" || state == "discrepancy"),
        "canUnmatch": canWrite && (state == "matched" || state == "discrepancy"),
      ]
    }
    let next = items.text("next")
    if !next.isEmpty { d["next"] = next }
    d["canImport"] = canWrite
    d["uploadLimit"] = config.uploadBytesMax
    if let imported { d["imported"] = imported }
    return html("recon", d)
  }

  /// RECON.RESOLVE or RECON.UNMATCH from a form; recorded as the signed-in key, like the
  /// CLI's (the server takes `by` from the key, never from the form).
  func resolve(_ req: Request, unmatch: Bool) async throws -> Response {
    let (s, body): (BackOfficeSession, ByteBuffer)
    switch await requireForm(req) {
    case .answer(let r): return r
    case .value(let v): (s, body) = v
    }
    let f = Self.form(ItemForm.self, body)
    guard csrfMatches(f?.csrf, s) else { return csrfRefused(s) }
    guard let f, let account = f.account, !account.isEmpty, let itemText = f.item,
      let item = UInt64(itemText)
    else { return pageError(s, .badForm, "the form needs an account and an item number") }
    let reason = f.reason.flatMap { $0.isEmpty ? nil : $0 }
    let request: TallyProtocol.Request
    if unmatch {
      request = .reconUnmatch(item: item, reason: reason)
    } else {
      guard let reason else { return pageError(s, .badForm, "a resolution needs a reason") }
      let entry = f.entry.flatMap { $0.isEmpty ? nil : $0 }
      request = .reconResolve(item: item, reason: reason, entry: entry)
    }
    switch await ask(request, s) {
    case .answer(let r): return r
    case .value:
      let state = unmatch ? "unmatched" : "resolved"
      return Response(
        status: .seeOther,
        headers: [.location: "/recon?account=\(Self.q(account))&state=\(state)"])
    }
  }

  /// The statement upload's fields (multipart/form-data).
  struct ImportForm: Decodable {
    var csrf: String
    var account: String
    var format: String
    var tolerance_days: String?
    var statement: Data
  }

  func importStatement(_ req: Request) async throws -> Response {
    let (s, body): (BackOfficeSession, ByteBuffer)
    switch await requireForm(req, limit: config.uploadBytesMax) {
    case .answer(let r): return r
    case .value(let v): (s, body) = v
    }
    let contentType = req.headers[.contentType] ?? ""
    guard let b = contentType.range(of: "boundary=") else {
      return pageError(s, .badForm, "a statement comes as multipart/form-data")
    }
    let boundary = String(
      contentType[b.upperBound...].prefix { $0 != ";" }.filter { $0 != "\"" && $0 != " " })
    let form: ImportForm
    do {
      form = try FormDataDecoder().decode(ImportForm.self, from: body, boundary: boundary)
    } catch {
      // Without a readable form there is no CSRF token to check either: refused whole.
      return pageError(
        s, .badForm, "the upload is not a readable form (csrf, account, format, statement)")
    }
    guard csrfMatches(form.csrf, s) else { return csrfRefused(s) }
    guard let format = ReconFormat(name: form.format) else {
      return pageError(s, .badForm, "format must be csv, camt053, camt054 or mt940")
    }
    var tolerance: Int32 = 3
    if let t = form.tolerance_days, !t.isEmpty {
      guard let v = Int32(t), (0...31).contains(v) else {
        return pageError(s, .badForm, "tolerance_days must be 0…31")
      }
      tolerance = v
    }
    let bytes = [UInt8](form.statement)
    let request = TallyProtocol.Request.reconImport(
      ReconImportRequest(
        account: form.account, format: format, statement: bytes, toleranceDays: tolerance))
    switch await ask(request, s) {
    case .answer(let r): return r
    case .value(let o):
      let summary = JSONWriter.serialize(.object(o))
      return await reconPage(
        s, form.account, filter: .all, stateName: nil, after: 0, imported: summary)
    }
  }

  // MARK: log and audit

  func log(_ req: Request) async throws -> Response {
    let s: BackOfficeSession
    switch requireSession(req) {
    case .answer(let r): return r
    case .value(let v): s = v
    }
    var from: UInt64 = 1
    if let t = req.uri.queryParameters.get("from"), !t.isEmpty {
      guard let v = UInt64(t), v >= 1 else {
        return pageError(s, .badForm, "from must be a seq (a whole number from 1)")
      }
      from = v
    }
    switch await ask(.logRead(fromSeq: from, limit: config.pageRows), s) {
    case .answer(let r): return r
    case .value(let o):
      var d = chrome(s, title: "Log")
      d["events"] = o.array("events").compactMap(\.objectValue).map { e -> [String: Any] in
        [
          "seq": e.text("seq"), "ts": e.text("ts"), "type": e.text("type"),
          "chain": String(e.text("chain").prefix(16)),
        ]
      }
      let next = o.text("next")
      if !next.isEmpty { d["next"] = next }
      return html("log", d)
    }
  }

  func audit(_ req: Request) async throws -> Response {
    let s: BackOfficeSession
    switch requireSession(req) {
    case .answer(let r): return r
    case .value(let v): s = v
    }
    return await auditPage(s)
  }

  func auditPage(_ s: BackOfficeSession) async -> Response {
    let head: JSONObject
    switch await ask(.logHead, s) {
    case .answer(let r): return r
    case .value(let o): head = o
    }
    // The latest kept checkpoints: pages of them up to the head's size, the last page kept.
    var kept = [JSONObject]()
    var after: UInt64 = 0
    for _ in 0..<Self.checkpointPagesMax {
      switch await ask(.checkpointList(after: after, limit: Limits.pageLimitMax), s) {
      case .answer(let r): return r
      case .value(let o):
        let page = o.array("checkpoints").compactMap(\.objectValue)
        if !page.isEmpty { kept = page }
        guard let n = UInt64(o.text("next")) else { break }
        after = n
        continue
      }
      break
    }
    var d = chrome(s, title: "Audit")
    d["headSeq"] = head.text("seq")
    d["headChain"] = head.text("chain")
    d["vkey"] = server.verifierKey ?? "(this ledger has no signing key)"
    d["checkpoints"] = kept.suffix(Self.checkpointsShown).reversed().map {
      c -> [String: Any] in ["size": c.text("size"), "note": c.text("note")]
    }
    do {
      if let v = try server.lastVerify() {
        d["verify"] = [
          "ok": v.ok, "events": String(v.events), "headSeq": String(v.headSeq),
          "chain": v.chainHex, "problems": v.problems, "millis": String(v.millis),
          "finished": JSONLogHandler.rfc3339(v.finishedNanos),
        ]
      }
    } catch {
      d["verifyError"] = "\(error.code): \(error)"
    }
    return html("audit", d)
  }

  /// Pages of kept checkpoints walked to find the latest (each up to `Limits.pageLimitMax`).
  static let checkpointPagesMax = 100
  /// Latest checkpoints the audit page shows.
  static let checkpointsShown = 5
}
