import NIOCore

/// Everything a connection shares between its caller tasks, its reader task and its event
/// loop timers, guarded by one `Mutex` in `NATSConnection`.
///
/// Writes to the socket are made while holding that lock (they only enqueue a task on the
/// event loop), so the order of bytes on the wire is the order of the lock: a `PING` of
/// `flush` follows every `PUB` made before it, and a `PONG` answers the oldest `PING`.
struct ConnectionState {
  enum Phase {
    /// The first connect is in progress; `connect` has not returned yet.
    case connecting
    case connected(Link)
    /// The connection was lost (the reason) and the supervisor is reconnecting.
    case reconnecting(NATSError)
    /// Closed for good: by `close()`, a failed first connect, or after giving up reconnecting.
    case closed(NATSError)
  }

  /// A live, handshaken connection to one server.
  struct Link {
    let channel: any Channel
    let server: NATSAddress
    var info: ServerInfo
  }

  struct Subscription {
    var subject: String
    var queue: String?
    var pendingMax: Int
    var continuation: AsyncThrowingStream<NATSMessage, any Error>.Continuation
  }

  struct Request {
    var subject: String
    var continuation: CheckedContinuation<Result<NATSMessage, NATSError>, Never>
    var timer: Scheduled<Void>?
  }

  /// One `PING` written and not yet answered. Keepalive pings have no continuation; a flush
  /// that timed out or was cancelled keeps its slot (without a continuation) so that later
  /// `PONG`s still pair with the right `PING`s.
  struct PongWaiter {
    var id: UInt64
    var continuation: CheckedContinuation<Result<Void, NATSError>, Never>?
    var timer: Scheduled<Void>?
  }

  var phase: Phase = .connecting
  /// Servers to try, configured ones first, then those announced in `INFO`.
  var servers: [NATSAddress]
  var subscriptions: [UInt64: Subscription] = [:]
  /// Subscription ids; `inboxSid` is the shared request inbox, so ids start above it.
  var nextSid: UInt64 = ConnectionState.inboxSid + 1
  var requests: [UInt64: Request] = [:]
  var nextToken: UInt64 = 0
  var pongWaiters = CircularBuffer<PongWaiter>(initialCapacity: 8)
  var nextFlushID: UInt64 = 0
  /// Keepalive `PING`s sent since the last `PONG`.
  var keepalivesOutstanding = 0
  var keepalive: RepeatedTask?
  var reconnects = 0
  var lastError: NATSError?
  /// The channel of the connection attempt in progress, so that `close()` can end it.
  var attemptChannel: (any Channel)?
  var supervisor: Task<Void, Never>?

  /// The subscription id of the wildcard request inbox, subscribed on every connect.
  static let inboxSid: UInt64 = 1

  init(servers: [NATSAddress]) {
    self.servers = servers
  }

  var link: Link? {
    if case .connected(let link) = phase { return link }
    return nil
  }

  var isClosed: Bool {
    if case .closed = phase { return true }
    return false
  }

  /// The live link, or the error saying why there is none.
  func requireLink() throws(NATSError) -> Link {
    switch phase {
    case .connected(let link):
      return link
    case .connecting:
      throw NATSError(.disconnected, "not connected yet")
    case .reconnecting(let lost):
      throw NATSError(.disconnected, "not connected (reconnecting after: \(lost.message))")
    case .closed(let reason):
      throw NATSError(.closed, "the connection is closed (\(reason.message))")
    }
  }

  /// Adds servers the cluster announced, up to `NATSLimits.serversMax`. An entry that does
  /// not parse is skipped: it came from the server, and the ones configured still work.
  mutating func addDiscovered(_ urls: [String]) {
    for url in urls {
      guard servers.count < NATSLimits.serversMax else { return }
      guard let address = try? NATSAddress.parse(Substring(url)) else { continue }
      if !servers.contains(address) { servers.append(address) }
    }
  }
}
