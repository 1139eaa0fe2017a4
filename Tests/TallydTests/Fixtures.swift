import Testing

// A small ledger most tests start from, built over the wire by an admin connection.

/// Names of the standard fixture's objects.
enum Fixture {
  /// Platform accounts: `cash` (EUR, debit), `fees` (EUR, credit).
  static let cash = "cash"
  static let fees = "fees"
  /// Platform accounts: `alice` (EUR, credit, no_overdraft), `bob` (EUR, credit),
  /// `capped` (EUR, credit, limit 1000), `usd` (USD, debit).
  static let alice = "alice"
  static let bob = "bob"
  static let capped = "capped"
  static let usd = "usd"
  /// Partners and their accounts: `p1:wallet`, `p1:pool` (p1, EUR, credit) and
  /// `p2:wallet` (p2, EUR, credit).
  static let p1Wallet = "p1:wallet"
  static let p1Pool = "p1:pool"
  static let p2Wallet = "p2:wallet"
  static let all = [cash, fees, alice, bob, capped, usd, p1Wallet, p1Pool, p2Wallet]
}

/// Builds the standard fixture through `admin`:
/// partners `p1`, `p2`; the accounts of `Fixture`; entries `seed` (cash → alice 10000),
/// `seed-p1` (cash → p1:wallet 5000), `seed-p2` (cash → p2:wallet 5000).
func buildFixture(_ admin: LineConn, sourceLocation: SourceLocation = #_sourceLocation)
  async throws
{
  try await admin.ok(#"PARTNER.CREATE {"id":"p1","name":"Partner One"}"#)
  try await admin.ok(#"PARTNER.CREATE {"id":"p2","name":"Partner Two"}"#)
  try await admin.open(Fixture.cash, sourceLocation: sourceLocation)
  try await admin.open(Fixture.fees, normal: "credit", sourceLocation: sourceLocation)
  try await admin.open(
    Fixture.alice, normal: "credit", extra: #""no_overdraft":true"#,
    sourceLocation: sourceLocation)
  try await admin.open(Fixture.bob, normal: "credit", sourceLocation: sourceLocation)
  try await admin.open(
    Fixture.capped, normal: "credit", extra: #""limit":"1000""#, sourceLocation: sourceLocation)
  try await admin.open(Fixture.usd, currency: "USD", sourceLocation: sourceLocation)
  try await admin.open(
    Fixture.p1Wallet, normal: "credit", partner: "p1", sourceLocation: sourceLocation)
  try await admin.open(
    Fixture.p1Pool, normal: "credit", partner: "p1", sourceLocation: sourceLocation)
  try await admin.open(
    Fixture.p2Wallet, normal: "credit", partner: "p2", sourceLocation: sourceLocation)
  try await admin.post(
    "seed", debit: Fixture.cash, credit: Fixture.alice, amount: "10000",
    sourceLocation: sourceLocation)
  try await admin.post(
    "seed-p1", debit: Fixture.cash, credit: Fixture.p1Wallet, amount: "5000",
    sourceLocation: sourceLocation)
  try await admin.post(
    "seed-p2", debit: Fixture.cash, credit: Fixture.p2Wallet, amount: "5000",
    sourceLocation: sourceLocation)
}

/// Starts a server (with `flags`), builds the fixture, and runs `body` with the server and
/// an authenticated admin connection.
func withFixture<R>(
  _ flags: [String] = [], sourceLocation: SourceLocation = #_sourceLocation,
  _ body: (TallydProcess, LineConn) async throws -> R
) async throws -> R {
  try await withTallyd(flags) { server in
    let admin = try await server.admin(sourceLocation: sourceLocation)
    try await buildFixture(admin, sourceLocation: sourceLocation)
    return try await body(server, admin)
  }
}

/// `posted.debits`, `posted.credits`, `pending.debits`, `pending.credits` and `balance` of
/// an account, as strings, from `BALANCE.GET`.
struct Bal: Equatable, CustomStringConvertible {
  var postedDebits: String
  var postedCredits: String
  var pendingDebits: String
  var pendingCredits: String
  var balance: String
  var description: String {
    "posted \(postedDebits)/\(postedCredits) pending \(pendingDebits)/\(pendingCredits) "
      + "balance \(balance)"
  }
}

extension LineConn {
  /// `BALANCE.GET` of `account` (optionally `as_of_seq`), required OK.
  func balance(
    _ account: String, asOf: Int? = nil, sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> Bal {
    let extra = asOf.map { ",\"as_of_seq\":\($0)" } ?? ""
    let r = try await ok(
      "BALANCE.GET {\"account\":\"\(account)\"\(extra)}", sourceLocation: sourceLocation)
    let posted = try r.obj("posted", sourceLocation: sourceLocation)
    let pending = try r.obj("pending", sourceLocation: sourceLocation)
    return Bal(
      postedDebits: try posted.str("debits", sourceLocation: sourceLocation),
      postedCredits: try posted.str("credits", sourceLocation: sourceLocation),
      pendingDebits: try pending.str("debits", sourceLocation: sourceLocation),
      pendingCredits: try pending.str("credits", sourceLocation: sourceLocation),
      balance: try r.str("balance", sourceLocation: sourceLocation))
  }
}
