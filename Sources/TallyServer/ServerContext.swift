import Logging
import NIOCore
import NIOPosix
import Synchronization
import TallyCore
import TallyCrypto
import TallyProtocol
import TallyStore

/// What every connection shares: the writer, the reader, the read threads, limits, and the
/// server-wide state (revocations, auth throttling, counters, shutdown).
final class ServerContext: Sendable {
  let config: ServerConfig
  let writer: Writer
  let reader: LedgerReader
  let readPool: NIOThreadPool
  let logger: Logger
  let info: ServerInfo
  let revoked = Mutex<Set<String>>([])
  let throttle: AuthThrottle
  let shuttingDown = Atomic<Bool>(false)
  let channels = Mutex<[ObjectIdentifier: any Channel]>([:])
  /// The change stream and replica roles (docs/REPLICATION.md).
  var replication: Replication { info.replication }

  init(
    config: ServerConfig, writer: Writer, reader: LedgerReader, readPool: NIOThreadPool,
    logger: Logger
  ) {
    self.config = config
    self.writer = writer
    self.reader = reader
    self.readPool = readPool
    self.logger = logger
    self.info = ServerInfo(writer: writer)
    self.throttle = AuthThrottle(failuresPerMinuteMax: config.authFailuresPerAddressPerMinuteMax)
  }

  func isRevoked(_ keyId: String) -> Bool { revoked.withLock { $0.contains(keyId) } }
}

/// Server counters for STATS.
final class ServerInfo: Sendable {
  let writer: Writer
  let connections = Atomic<Int>(0)
  let connectionsTotal = Atomic<Int>(0)
  let requests = Atomic<Int>(0)
  let responses = Atomic<Int>(0)
  let authFailures = Atomic<Int>(0)
  let started = NIODeadline.now()
  let replication = Replication()
  /// Requests read and not yet answered or dropped, over all connections.
  let inflight = Atomic<Int>(0)
  /// Open connections by the role of their key (after AUTH).
  let connectionsByRole = Mutex<[Role: Int]>([:])

  init(writer: Writer) { self.writer = writer }

  func snapshot() -> JSONObject {
    func n(_ v: Int) -> JSONValue { .number(String(v)) }
    let w = writer.stats
    let up = (NIODeadline.now() - started).nanoseconds / 1_000_000_000
    let refusal: JSONValue = writer.refusalState().map { .object($0.json) } ?? .null
    return JSONObject([
      ("connections", n(connections.load(ordering: .relaxed))),
      ("connections_total", n(connectionsTotal.load(ordering: .relaxed))),
      ("requests", n(requests.load(ordering: .relaxed))),
      ("responses", n(responses.load(ordering: .relaxed))),
      ("auth_failures", n(authFailures.load(ordering: .relaxed))),
      ("write_groups", n(w.groups.load(ordering: .relaxed))),
      ("write_commands", n(w.commands.load(ordering: .relaxed))),
      ("largest_group", n(w.largestGroup.load(ordering: .relaxed))),
      ("write_failures", n(w.failures.load(ordering: .relaxed))),
      ("journal_syncs", n(w.syncs.load(ordering: .relaxed))),
      ("snapshots", n(w.snapshots.load(ordering: .relaxed))),
      ("snapshot_seq", n(w.snapshotSeq.load(ordering: .relaxed))),
      ("snapshot_failures", n(w.snapshotFailures.load(ordering: .relaxed))),
      ("snapshots_cancelled", n(w.snapshotsCancelled.load(ordering: .relaxed))),
      (
        "segment_prepare_failures",
        n(writer.segmentPreparer?.failures.load(ordering: .relaxed) ?? 0)
      ),
      ("write_queue", n(writer.queue.depth)),
      ("write_refusal", refusal),
      ("uptime_s", .number(String(up))),
      ("durable", .bool(true)),
    ])
  }
}

/// Failed AUTH attempts per client address in a sliding minute. Bounded: at most
/// `addressesMax` addresses are tracked; when full, the oldest windows are dropped.
final class AuthThrottle: Sendable {
  struct Window {
    var startNanos: Int64
    var failures: Int
  }
  static let addressesMax = 65_536
  static let windowNanos: Int64 = 60_000_000_000
  let failuresPerMinuteMax: Int
  private let windows = Mutex<[String: Window]>([:])

  init(failuresPerMinuteMax: Int) { self.failuresPerMinuteMax = failuresPerMinuteMax }

  func isLimited(_ address: String, now: Int64) -> Bool {
    windows.withLock { w in
      guard let win = w[address], now - win.startNanos < Self.windowNanos else { return false }
      return win.failures >= failuresPerMinuteMax
    }
  }

  func recordFailure(_ address: String, now: Int64) {
    windows.withLock { w in
      if w.count >= Self.addressesMax {
        w = w.filter { now - $0.value.startNanos < Self.windowNanos }
        if w.count >= Self.addressesMax { w.removeAll() }
      }
      if var win = w[address], now - win.startNanos < Self.windowNanos {
        win.failures += 1
        w[address] = win
      } else {
        w[address] = Window(startNanos: now, failures: 1)
      }
    }
  }
}

/// Checks an AUTH: the key exists, is not revoked, and the MAC is HMAC-SHA256(secret, nonce),
/// compared in constant time. Runs on a read thread.
public enum Authenticator {
  static func check(key: String, mac: String, nonce: String, reader: LedgerReader)
    throws(StoreError) -> Principal?
  {
    guard let k = try reader.key(key), !k.isRevoked else { return nil }
    guard macMatches(mac, secret: k.secret, nonce: nonce) else { return nil }
    let scope = k.role == .service ? Scope(partner: k.partner ?? "", grants: Set(k.grants)) : nil
    return Principal(keyId: k.id, role: k.role, scope: scope)
  }

  /// Whether `mac` (hex, either case) is HMAC-SHA256(secret, nonce), compared in constant
  /// time. Any string is safe to pass: it comes straight from the client's AUTH.
  public static func macMatches(_ mac: String, secret: String, nonce: String) -> Bool {
    let expected = Secrets.hmacSHA256(key: Array(secret.utf8), message: Array(nonce.utf8))
    guard let given = [UInt8](hex: mac) else { return false }
    return Secrets.constantTimeEqual(expected, given)
  }
}

extension RefusalState {
  /// STATS `server.write_refusal`.
  var json: JSONObject {
    let since: JSONValue = sinceNanos.map { .number(String($0 / 1_000_000)) } ?? .null
    let free: JSONValue = freeBytes.map { .number(String($0)) } ?? .null
    return JSONObject([("reason", .string(reason)), ("since_ms", since), ("free_bytes", free)])
  }
}
