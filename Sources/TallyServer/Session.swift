import TallyProtocol
import TallyStore

/// Who is on a connection after AUTH.
public struct Principal: Sendable, Equatable {
  public var keyId: String
  public var role: Role
  /// Set for `service` keys: the partner it is bound to and its grants.
  public var scope: Scope?

  public init(keyId: String, role: Role, scope: Scope?) {
    self.keyId = keyId
    self.role = role
    self.scope = scope
  }
}

/// A connection's session as a plain state machine (postgres-nio style): each event in,
/// an action out, no IO. The handler carries the actions out.
public struct Session: Sendable {
  public enum State: Sendable, Equatable {
    /// HELLO sent; only PING, AUTH and QUIT are served.
    case greeted
    /// An AUTH is being checked; nothing after it is dispatched until it resolves.
    case authenticating
    case ready(Principal)
    /// QUIT, a fatal error or shutdown: no further requests are dispatched.
    case closing
  }

  public private(set) var state: State = .greeted
  public let nonce: String
  public private(set) var authFailures = 0
  let authFailuresMax: Int

  public init(nonce: String, authFailuresMax: Int) {
    self.nonce = nonce
    self.authFailuresMax = authFailuresMax
  }

  public enum Admission: Equatable, Sendable {
    /// Run it, as this principal (nil before AUTH: PING, QUIT).
    case run(Principal?)
    /// Check these credentials (the handler looks the key up, then calls `authResult`).
    case authenticate(key: String, mac: String)
    /// Answer with this error; the connection stays usable.
    case refuse(WireError)
    /// Answer QUIT's OK, then close.
    case quit
    /// Answer nothing more (closing).
    case drop
  }

  /// Decides what to do with the next request, in order.
  public mutating func admit(_ request: Request) -> Admission {
    switch state {
    case .closing:
      return .drop
    case .authenticating:
      // The handler never dispatches past an unresolved AUTH.
      preconditionFailure("request admitted while AUTH is unresolved")
    case .greeted:
      switch request {
      case .ping: return .run(nil)
      case .quit:
        state = .closing
        return .quit
      case .auth(let key, let mac):
        state = .authenticating
        return .authenticate(key: key, mac: mac)
      default:
        return .refuse(WireError(.authRequired, "authenticate first: AUTH {\"key\",\"mac\"}"))
      }
    case .ready(let p):
      switch request {
      case .quit:
        state = .closing
        return .quit
      case .auth:
        return .refuse(
          WireError(
            .badRequest, "this connection is already authenticated",
            reason: "ALREADY_AUTHENTICATED"))
      default:
        if let e = Access.check(request, p.role) { return .refuse(e) }
        return .run(p)
      }
    }
  }

  public enum AuthOutcome: Equatable, Sendable {
    case accepted(Principal)
    case rejected(WireError, close: Bool)
  }

  /// The result of checking an AUTH's key and MAC.
  public mutating func authResult(_ principal: Principal?, rateLimited: Bool = false)
    -> AuthOutcome
  {
    // The connection may have closed (timeout, shutdown) while the key was being looked up:
    // the late result changes nothing and is never answered.
    guard state == .authenticating else {
      return .rejected(WireError(.authFailed, "the connection is closing"), close: true)
    }
    if let principal {
      state = .ready(principal)
      return .accepted(principal)
    }
    authFailures += 1
    let close = rateLimited || authFailures >= authFailuresMax
    state = close ? .closing : .greeted
    let e =
      rateLimited
      ? WireError(
        .authFailed, "too many failed attempts from this address; retry later",
        reason: "RATE_LIMITED")
      : WireError(.authFailed, "unknown key, revoked key or wrong MAC")
    return .rejected(e, close: close)
  }

  /// The key was revoked while this connection was using it.
  public mutating func revoked() -> WireError {
    state = .closing
    return WireError(.authFailed, "the key was revoked", reason: "KEY_REVOKED")
  }

  public mutating func close() { state = .closing }

  public var principal: Principal? {
    if case .ready(let p) = state { return p }
    return nil
  }
}

/// The role matrix (docs/PROTOCOL.md, "Roles"). Partner scope (which accounts a service
/// may touch) is checked later, against the ledger.
public enum Access {
  public static func allowed(_ request: Request, _ role: Role) -> Bool {
    switch request {
    case .ping, .quit, .auth: return true
    case .keyCreate, .keyRevoke, .keyList, .partnerCreate, .replicaPromote: return role == .admin
    case .partnerGet, .partnerList, .accountGet, .accountList, .entryGet, .balanceGet,
      .statementGet:
      return role == .admin || role == .ops || role == .service
    case .accountOpen, .accountClose, .entryPost, .entryBatch, .entryReverse, .holdPlace,
      .holdCapture, .holdRelease:
      return role == .admin || role == .service
    case .logHead: return true
    case .logRead, .proofInclusion, .proofConsistency, .checkpointGet, .checkpointList:
      return role == .admin || role == .auditor
    case .stats: return role == .admin || role == .ops
    case .partnerView: return role == .admin || role == .ops || role == .service
    case .reconImport, .reconResolve, .reconUnmatch: return role == .admin || role == .ops
    case .reconStatus, .reconItems: return role == .admin || role == .ops || role == .auditor
    }
  }

  static func check(_ request: Request, _ role: Role) -> WireError? {
    allowed(request, role)
      ? nil : WireError(.forbidden, "role \(role.rawValue) may not do this")
  }
}
