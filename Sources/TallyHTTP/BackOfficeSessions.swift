import Glibc
import Synchronization
import TallyCore
import TallyCrypto
import TallyServer

/// One signed-in person: the key they signed in with (never its secret) and the CSRF token
/// every form that changes something must carry.
public struct BackOfficeSession: Sendable {
  public var id: String
  public var principal: Principal
  public var csrf: String
  var createdNanos: Int64
  var lastSeenNanos: Int64
}

/// Sessions in server memory only: bounded in count, ended after an idle or an absolute
/// time, by sign-out, or when their key is revoked. Ids and CSRF tokens are 256 random bits
/// from the system's CSPRNG (OpenSSL's RAND_bytes).
public final class BackOfficeSessions: Sendable {
  let config: HTTPConfig
  private let sessions = Mutex<[String: BackOfficeSession]>([:])

  public init(config: HTTPConfig) { self.config = config }

  /// Monotonic: expiry never moves with the wall clock.
  static func nowNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
  }

  static func token() -> String { Secrets.random(32).hex }

  public var count: Int { sessions.withLock { $0.count } }

  /// Starts a session; when the table is full, expired sessions go first, then the least
  /// recently used one.
  public func start(_ principal: Principal) -> BackOfficeSession {
    let now = Self.nowNanos()
    let s = BackOfficeSession(
      id: Self.token(), principal: principal, csrf: Self.token(), createdNanos: now,
      lastSeenNanos: now)
    sessions.withLock { table in
      if table.count >= config.sessionsMax {
        table = table.filter { !expired($0.value, now) }
      }
      if table.count >= config.sessionsMax,
        let oldest = table.min(by: { $0.value.lastSeenNanos < $1.value.lastSeenNanos })
      {
        table.removeValue(forKey: oldest.key)
      }
      table[s.id] = s
    }
    return s
  }

  func expired(_ s: BackOfficeSession, _ now: Int64) -> Bool {
    now - s.lastSeenNanos > config.sessionIdleSeconds * 1_000_000_000
      || now - s.createdNanos > config.sessionAbsoluteSeconds * 1_000_000_000
  }

  /// The live session with this id, its idle clock restarted; nil (and forgotten) when it
  /// expired or its key was revoked.
  public func find(_ id: String, revoked: (String) -> Bool) -> BackOfficeSession? {
    let now = Self.nowNanos()
    return sessions.withLock { table in
      guard var s = table[id] else { return nil }
      if expired(s, now) || revoked(s.principal.keyId) {
        table.removeValue(forKey: id)
        return nil
      }
      s.lastSeenNanos = now
      table[id] = s
      return s
    }
  }

  public func end(_ id: String) { sessions.withLock { _ = $0.removeValue(forKey: id) } }

  /// Ends every session of a key (on revocation).
  public func endAll(keyId: String) {
    sessions.withLock { table in table = table.filter { $0.value.principal.keyId != keyId } }
  }
}
