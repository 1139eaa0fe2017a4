import TallyCore

/// The error codes of the line protocol: `ERR CODE {json}`. Names are a contract (clients
/// branch on them; docs/PROTOCOL.md lists each with when it occurs, and a test compares the
/// two lists). Append new codes; never rename one.
public enum WireCode: String, Sendable, CaseIterable {
  /// Malformed request: not `VERB [SP json-object]`, invalid JSON or UTF-8, a missing,
  /// unknown or mistyped field (a JSON number where an amount string belongs), an invalid
  /// id, metadata or leg structure. `reason` names the precise rule.
  case badRequest = "BAD_REQUEST"
  case unknownVerb = "UNKNOWN_VERB"
  case lineTooLong = "LINE_TOO_LONG"
  case authRequired = "AUTH_REQUIRED"
  case authFailed = "AUTH_FAILED"
  case forbidden = "FORBIDDEN"
  /// A partner, account, entry, hold or key does not exist, or the caller may not see it
  /// (the two are indistinguishable on purpose).
  case notFound = "NOT_FOUND"
  case alreadyExists = "ALREADY_EXISTS"
  case idConflict = "ID_CONFLICT"
  case unbalanced = "UNBALANCED"
  case currencyMismatch = "CURRENCY_MISMATCH"
  case unknownCurrency = "UNKNOWN_CURRENCY"
  case accountClosed = "ACCOUNT_CLOSED"
  case insufficientFunds = "INSUFFICIENT_FUNDS"
  case limitExceeded = "LIMIT_EXCEEDED"
  case invalidAmount = "INVALID_AMOUNT"
  case overflow = "OVERFLOW"
  case alreadyReversed = "ALREADY_REVERSED"
  case holdNotPending = "HOLD_NOT_PENDING"
  case captureExceedsHold = "CAPTURE_EXCEEDS_HOLD"
  case accountNotEmpty = "ACCOUNT_NOT_EMPTY"
  case accountHasHolds = "ACCOUNT_HAS_HOLDS"
  /// A statement that cannot be read; `details` has the parser's `code` and `location`.
  case statementInvalid = "STATEMENT_INVALID"
  case statementAccountMismatch = "STATEMENT_ACCOUNT_MISMATCH"
  /// A reconciliation item whose state does not allow the request.
  case itemState = "ITEM_STATE"
  /// A request over a server limit other than line length (batch size, page size).
  case tooLarge = "TOO_LARGE"
  case tooManyConnections = "TOO_MANY_CONNECTIONS"
  /// The connection was idle, or unauthenticated, for longer than its limit.
  case timeout = "TIMEOUT"
  case shuttingDown = "SHUTTING_DOWN"
  case `internal` = "INTERNAL"
  /// A write verb sent to a read replica; `details.primary` names the primary when known.
  case readOnly = "READ_ONLY"
  /// `--durability stream`: the write is in the local journal but the stream did not
  /// acknowledge it (`details.seq`: the last seq of its group).
  case notReplicated = "NOT_REPLICATED"
  /// `REPLICA.PROMOTE` on a replica that does not hold everything the stream holds yet.
  case notCaughtUp = "NOT_CAUGHT_UP"
  /// The store cannot take writes now: reason `NO_SPACE` (the data directory's filesystem
  /// is full) or `MAP_FULL` (the LMDB map is at `--map-max-mib`), nothing of the request
  /// applied; or `IO` (an I/O error stopped writes; the request's outcome is known after a
  /// restart). `details.retryable` says whether the same request can succeed without a
  /// restart (`"true"`: once space is freed).
  case unavailable = "UNAVAILABLE"

  /// The wire code of an engine rejection. Static-shape rules collapse into `BAD_REQUEST`
  /// and the not-found family into `NOT_FOUND`; the engine code stays in `reason`.
  public static func of(_ r: Rejection) -> WireCode {
    switch r.code {
    case .invalidId, .invalidField, .invalidMetadata, .tooFewLegs, .tooManyLegs, .duplicateLeg,
      .invalidDeadline, .invalidJson:
      return .badRequest
    case .invalidAmount: return .invalidAmount
    case .lineTooLong: return .lineTooLong
    case .unknownCurrency: return .unknownCurrency
    case .idConflict: return .idConflict
    case .alreadyExists: return .alreadyExists
    case .partnerNotFound, .accountNotFound, .entryNotFound, .holdNotFound, .itemNotFound:
      return .notFound
    case .accountClosed: return .accountClosed
    case .currencyMismatch: return .currencyMismatch
    case .unbalanced: return .unbalanced
    case .overflow: return .overflow
    case .insufficientFunds: return .insufficientFunds
    case .limitExceeded: return .limitExceeded
    case .alreadyReversed: return .alreadyReversed
    case .holdNotPending: return .holdNotPending
    case .captureExceedsHold: return .captureExceedsHold
    case .accountNotEmpty: return .accountNotEmpty
    case .accountHasHolds: return .accountHasHolds
    case .statementInvalid: return .statementInvalid
    case .statementAccountMismatch: return .statementAccountMismatch
    case .itemState: return .itemState
    }
  }
}

/// An error answered on the wire: `ERR CODE {"message","reason","details"}`.
public struct WireError: Error, Equatable, Sendable {
  public var code: WireCode
  /// The precise rule (an engine rejection name such as `TOO_FEW_LEGS`), or the code itself.
  public var reason: String
  public var message: String
  public var details: [String: String]

  public init(
    _ code: WireCode, _ message: String, reason: String? = nil, details: [String: String] = [:]
  ) {
    self.code = code
    self.reason = reason ?? code.rawValue
    self.message = message
    self.details = details
  }

  public init(_ r: Rejection) {
    self.init(WireCode.of(r), r.message, reason: r.code.name, details: r.details)
  }

  public var body: JSONObject {
    JSONObject([
      ("message", .string(message)), ("reason", .string(reason)),
      (
        "details",
        .object(JSONObject(details.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
      ),
    ])
  }

  /// `ERR CODE {…}` without the newline.
  public var line: String { "ERR \(code.rawValue) \(JSONWriter.serialize(.object(body)))" }

  /// The body of one failed entry inside `ENTRY.BATCH` results.
  public var batchItem: JSONObject {
    var o = body
    o.members.insert(("code", .string(code.rawValue)), at: 0)
    return JSONObject([("error", .object(o))])
  }
}

/// Building OK lines.
public enum WireOK {
  public static func line(_ body: JSONObject) -> String {
    "OK " + JSONWriter.serialize(.object(body))
  }
}
