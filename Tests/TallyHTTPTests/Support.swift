import Dispatch
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import TallyCore
import TallyHTTP
import TallyServer
import TallyStore
import TallyTestSupport

/// A real ledger in a temporary directory, served by a real `TallyServer` (its socket on an
/// ephemeral loopback port), with one key per role and a partner whose name is markup.
final class Office: Sendable {
  static let scriptName = "<script>alert(1)</script>"
  let dir: TempDir
  let server: TallyServer
  let keys: [Role: KeyRecord]

  init(setup: (Ledger, Int64) throws -> Void = { _, _ in }) throws {
    dir = try TempDir()
    let now = Int64(Date().timeIntervalSince1970 * 1e9)
    let ledger = try Ledger.create(at: dir.ledgerPath, now: now)
    let out = try ledger.apply(
      [
        .createPartner(PartnerCreated(id: "acme", name: Self.scriptName)),
        .openAccount(
          AccountOpened(
            name: "cash", partner: "acme", currency: "EUR", normalSide: .debit,
            noOverdraft: false, limitMinor: nil, metadata: .empty)),
        .openAccount(
          AccountOpened(
            name: "income", partner: "acme", currency: "EUR", normalSide: .credit,
            noOverdraft: false, limitMinor: nil, metadata: .empty)),
      ], now: now)
    for o in out {
      guard case .applied = o else { throw SetupFailed(description: "setup: \(o)") }
    }
    try setup(ledger, now)
    var keys = [Role: KeyRecord]()
    for role in [Role.admin, .ops, .auditor, .service] {
      keys[role] = try ledger.createKey(
        role: role, partner: role == .service ? "acme" : nil,
        grants: [], now: now
      ).get()
    }
    self.keys = keys
    var c = ServerConfig()
    c.port = 0
    c.authFailuresPerAddressPerMinuteMax = 5
    server = TallyServer(ledger: ledger, config: c, logger: Logger(label: "test"))
    _ = try server.start()
  }

  /// Stops the server off the concurrency pool (shutdown waits on threads), then removes
  /// the directory.
  func stop() async {
    let server = self.server
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
      DispatchQueue.global().async {
        server.shutdown()
        done.resume()
      }
    }
    dir.remove()
  }

}

struct SetupFailed: Error, CustomStringConvertible { var description: String }

/// A browser's cookie jar of one: the session cookie the last answer set.
struct Browser {
  var cookie: String?
  var csrf: String?

  var headers: HTTPFields {
    var h = HTTPFields()
    if let cookie { h[.cookie] = cookie }
    return h
  }

  static func formHeaders(_ base: HTTPFields) -> HTTPFields {
    var h = base
    h[.contentType] = "application/x-www-form-urlencoded"
    return h
  }

  /// Signs in; keeps the session cookie and the CSRF token of the next page.
  mutating func signIn(_ client: LiveClient, key: String, secret: String)
    async throws -> LiveClient.Response
  {
    let body = "key=\(key)&secret=\(secret)"
    let r = try await client.execute(
      uri: "/signin", method: .post, headers: Self.formHeaders(HTTPFields()),
      body: ByteBuffer(string: body))
    if let set = r.headers[.setCookie], let v = set.split(separator: ";").first {
      cookie = String(v)
    }
    return r
  }

  mutating func get(_ client: LiveClient, _ uri: String) async throws -> LiveClient.Response {
    let r = try await client.execute(uri: uri, method: .get, headers: headers)
    let text = String(buffer: r.body)
    if let range = text.range(of: "name=\"csrf\" value=\"") {
      csrf = String(text[range.upperBound...].prefix { $0 != "\"" })
    }
    return r
  }

  func post(_ client: LiveClient, _ uri: String, _ form: String) async throws
    -> LiveClient.Response
  {
    try await client.execute(
      uri: uri, method: .post, headers: Self.formHeaders(headers), body: ByteBuffer(string: form))
  }
}

extension LiveClient.Response {
  var text: String { String(buffer: body) }
}
