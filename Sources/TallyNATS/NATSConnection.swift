import NIOCore
import NIOPosix
import Synchronization

/// A connection to a NATS server (or cluster) over SwiftNIO, reconnecting on loss.
///
/// The channel pipeline only frames (`FrameDecoder`); a supervisor task reads the operations,
/// answers `PING`s, routes messages to subscriptions and replies to requests, and reconnects
/// when the connection is lost: it tries the known servers round-robin (the configured ones,
/// then those the cluster announced), waiting `reconnectWait` between rounds, at most
/// `reconnectAttemptsMax` attempts per outage. After a reconnect every live subscription is
/// subscribed again. Requests and flushes waiting when the connection is lost fail with
/// `.disconnected`; while it is down, `publish`, `request` and `flush` fail at once.
///
/// Call `close()` when done: the supervisor keeps the connection alive until then.
public final class NATSConnection: Sendable {
  public struct Options: Sendable {
    /// Sent in `CONNECT`; shows in the server's list of connections.
    public var name: String
    /// Bound on one connection attempt (TCP connect, `INFO`, and the `PONG` that confirms
    /// `CONNECT`), and on the round trip by which `subscribe` confirms its `SUB`.
    public var connectTimeout: Duration
    /// Wait between reconnect rounds (one round tries every known server once).
    public var reconnectWait: Duration
    /// Connection attempts in one outage, over all servers, before the connection gives up
    /// and closes; 0 closes it at the first loss.
    public var reconnectAttemptsMax: Int
    /// Interval of keepalive `PING`s.
    public var pingInterval: Duration
    /// Unanswered keepalive `PING`s after which the connection counts as dead and is dropped
    /// (and reconnected).
    public var pingsOutstandingMax: Int
    /// Whether servers announced in `INFO` (`connect_urls`) join the list tried on reconnect.
    public var discoverServers: Bool

    public init(
      name: String = "tally",
      connectTimeout: Duration = .seconds(2),
      reconnectWait: Duration = .seconds(2),
      reconnectAttemptsMax: Int = NATSLimits.reconnectAttemptsDefault,
      pingInterval: Duration = .seconds(30),
      pingsOutstandingMax: Int = 2,
      discoverServers: Bool = true
    ) {
      self.name = name
      self.connectTimeout = connectTimeout
      self.reconnectWait = reconnectWait
      self.reconnectAttemptsMax = reconnectAttemptsMax
      self.pingInterval = pingInterval
      self.pingsOutstandingMax = pingsOutstandingMax
      self.discoverServers = discoverServers
    }

    func validate() throws(NATSError) {
      guard connectTimeout > .zero, reconnectWait >= .zero, pingInterval > .zero else {
        throw NATSError(.invalid, "connectTimeout and pingInterval must be positive")
      }
      guard reconnectAttemptsMax >= 0, pingsOutstandingMax >= 1 else {
        throw NATSError(.invalid, "reconnectAttemptsMax must be >= 0, pingsOutstandingMax >= 1")
      }
      guard name.utf8.count <= NATSLimits.labelBytesMax,
        name.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F })
      else {
        throw NATSError(
          .invalid,
          "name must be at most \(NATSLimits.labelBytesMax) bytes without control characters")
      }
    }
  }

  let options: Options
  let eventLoop: any EventLoop
  /// `_INBOX.<random>`: replies to requests go to `<inboxPrefix>.<token>`.
  let inboxPrefix: String
  let state: Mutex<ConnectionState>
  /// Bytes handed to the event loop and not yet written (see `pendingWriteBytesMax`).
  let writeBytesPending = Atomic<Int>(0)

  private init(servers: [NATSAddress], options: Options, eventLoop: any EventLoop) {
    self.options = options
    self.eventLoop = eventLoop
    self.inboxPrefix = Self.newInbox()
    self.state = Mutex(ConnectionState(servers: servers))
  }

  /// Connects to the first server of `servers` that accepts (each is tried once, in order)
  /// and returns once the handshake is done; throws `.connect` listing why each failed.
  public static func connect(
    _ servers: [NATSAddress], options: Options = .init(),
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
  ) async throws(NATSError) -> NATSConnection {
    guard !servers.isEmpty else { throw NATSError(.invalid, "no servers to connect to") }
    try options.validate()
    var unique: [NATSAddress] = []
    for server in servers where !unique.contains(server) {
      guard unique.count < NATSLimits.serversMax else {
        throw NATSError(.invalid, "more than \(NATSLimits.serversMax) servers")
      }
      unique.append(server)
    }
    // One event loop for the connection's whole life, whichever server it is on.
    let connection = NATSConnection(servers: unique, options: options, eventLoop: group.next())
    let result = await withCheckedContinuation {
      (first: CheckedContinuation<Result<Void, NATSError>, Never>) in
      connection.state.withLock { state in
        state.supervisor = Task { await connection.supervise(first: first) }
      }
    }
    try result.get()
    return connection
  }

  // MARK: State

  public var isConnected: Bool { state.withLock { $0.link != nil } }

  /// The server of the live connection, nil while disconnected.
  public var connectedServer: NATSAddress? { state.withLock { $0.link?.server } }

  /// Successful reconnects so far.
  public var reconnects: Int { state.withLock { $0.reconnects } }

  /// The servers tried on reconnect: the configured ones, then those the cluster announced.
  public var knownServers: [NATSAddress] { state.withLock { $0.servers } }

  /// The server's `max_payload` (headers and payload) of the live connection.
  public var maxPayload: Int? { state.withLock { $0.link?.info.maxPayload } }

  /// The latest connection loss or `-ERR` from a server, nil if none happened.
  public var lastError: NATSError? { state.withLock { $0.lastError } }

  /// A new unique subject under `_INBOX.` for replies.
  public func newInbox() -> String { Self.newInbox() }

  static func newInbox() -> String {
    let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)
    var generator = SystemRandomNumberGenerator()
    // 22 base-62 characters: 130 bits, so inboxes of different connections never collide.
    let token = (0..<22).map { _ in alphabet[Int(generator.next(upperBound: UInt8(62)))] }
    return "_INBOX." + String(decoding: token, as: UTF8.self)
  }

  // MARK: Publish, request, flush

  /// Queues a message for writing (no wait for the server). Throws when the connection is
  /// closed or disconnected, the message is larger than the server's `max_payload`, or
  /// `pendingWriteBytesMax` bytes are already waiting for the socket (`.overloaded`).
  public func publish(
    _ subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: [UInt8]
  ) throws(NATSError) {
    let block = try Self.checkPublish(subject, replyTo: replyTo, headers: headers)
    try state.withLock { state throws(NATSError) in
      let link = try state.requireLink()
      try write(subject, replyTo: replyTo, block: block, payload: payload, on: link)
    }
  }

  /// One message of `publish(_:)`'s batch.
  public struct Outgoing: Sendable {
    public var subject: String
    public var replyTo: String?
    public var headers: NATSHeaders?
    public var payload: [UInt8]
    public init(
      subject: String, replyTo: String? = nil, headers: NATSHeaders? = nil, payload: [UInt8]
    ) {
      self.subject = subject
      self.replyTo = replyTo
      self.headers = headers
      self.payload = payload
    }
  }

  /// Publishes `messages` in order with one write to the socket (one event-loop hop, one
  /// flush): what a publisher of many small messages needs. Every message is checked
  /// first; one that is invalid or too large fails the call and nothing is sent.
  public func publish(_ messages: [Outgoing]) throws(NATSError) {
    if messages.isEmpty { return }
    var blocks = [[UInt8]?]()
    blocks.reserveCapacity(messages.count)
    var bytes = 0
    for m in messages {
      let block = try Self.checkPublish(m.subject, replyTo: m.replyTo, headers: m.headers)
      blocks.append(block)
      bytes +=
        (block?.count ?? 0) + m.payload.count + m.subject.utf8.count
        + (m.replyTo?.utf8.count ?? 0) + 64
    }
    try state.withLock { state throws(NATSError) in
      let link = try state.requireLink()
      var buffer = link.channel.allocator.buffer(capacity: bytes)
      for (m, block) in zip(messages, blocks) {
        let size = (block?.count ?? 0) + m.payload.count
        guard size <= link.info.maxPayload else {
          throw NATSError(
            .payloadTooLarge,
            "message of \(size) bytes exceeds the server's max_payload of \(link.info.maxPayload)")
        }
        ClientOps.publish(
          subject: m.subject, replyTo: m.replyTo, headerBlock: block, payload: m.payload,
          into: &buffer)
      }
      try send(buffer, on: link.channel)
    }
  }

  /// Publishes with a reply subject and waits for the first reply, at most `timeout`.
  ///
  /// Replies arrive on one wildcard subscription shared by all requests
  /// (`_INBOX.<random>.*`). A 503 status reply (nobody subscribes to `subject`) throws
  /// `.noResponders`; the connection's loss while waiting throws `.disconnected`.
  public func request(
    _ subject: String, headers: NATSHeaders? = nil, payload: [UInt8], timeout: Duration
  ) async throws(NATSError) -> NATSMessage {
    guard timeout > .zero else { throw NATSError(.invalid, "timeout must be positive") }
    let token = state.withLock { state in
      state.nextToken += 1
      return state.nextToken
    }
    let replyTo = "\(inboxPrefix).\(token)"
    let block = try Self.checkPublish(subject, replyTo: replyTo, headers: headers)
    let result = await withTaskCancellationHandler {
      await withCheckedContinuation {
        (continuation: CheckedContinuation<Result<NATSMessage, NATSError>, Never>) in
        do throws(NATSError) {
          try state.withLock { state throws(NATSError) in
            let link = try state.requireLink()
            guard state.requests.count < NATSLimits.requestsInFlightMax else {
              throw NATSError(
                .overloaded, "\(NATSLimits.requestsInFlightMax) requests already in flight")
            }
            try write(subject, replyTo: replyTo, block: block, payload: payload, on: link)
            state.requests[token] = ConnectionState.Request(
              subject: subject, continuation: continuation, timer: nil)
          }
        } catch {
          continuation.resume(returning: .failure(error))
          return
        }
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) { [weak self] () -> Void in
          self?.finishRequest(
            token, .failure(NATSError(.timeout, "no reply to \(subject) within \(timeout)")))
        }
        let done = state.withLock { state in
          guard state.requests[token] != nil else { return true }
          state.requests[token]!.timer = timer
          return false
        }
        if done { timer.cancel() }
      }
    } onCancel: {
      finishRequest(token, .failure(NATSError(.cancelled, "request to \(subject) cancelled")))
    }
    return try result.get()
  }

  /// Waits until the server has processed everything written before (a `PING`/`PONG`
  /// round trip), at most `timeout`.
  public func flush(timeout: Duration) async throws(NATSError) {
    guard timeout > .zero else { throw NATSError(.invalid, "timeout must be positive") }
    let id = state.withLock { state in
      state.nextFlushID += 1
      return state.nextFlushID
    }
    let result = await withTaskCancellationHandler {
      await withCheckedContinuation {
        (continuation: CheckedContinuation<Result<Void, NATSError>, Never>) in
        do throws(NATSError) {
          try state.withLock { state throws(NATSError) in
            let link = try state.requireLink()
            guard state.pongWaiters.count < NATSLimits.flushesInFlightMax else {
              throw NATSError(
                .overloaded, "\(NATSLimits.flushesInFlightMax) flushes already in flight")
            }
            try send(Self.ping, on: link.channel)
            state.pongWaiters.append(
              ConnectionState.PongWaiter(id: id, continuation: continuation, timer: nil))
          }
        } catch {
          continuation.resume(returning: .failure(error))
          return
        }
        let timer = eventLoop.scheduleTask(in: TimeAmount(timeout)) { [weak self] () -> Void in
          self?.abandonFlush(id, NATSError(.timeout, "no PONG within \(timeout)"))
        }
        let done = state.withLock { state in
          guard let index = state.pongWaiters.firstIndex(where: { $0.id == id }),
            state.pongWaiters[index].continuation != nil
          else { return true }
          state.pongWaiters[index].timer = timer
          return false
        }
        if done { timer.cancel() }
      }
    } onCancel: {
      abandonFlush(id, NATSError(.cancelled, "flush cancelled"))
    }
    try result.get()
  }

  /// Closes the connection. Subscriptions end (without error); requests and flushes still
  /// waiting fail with `.closed`. Returns once the supervisor task has stopped.
  public func close() async {
    let taken = state.withLock { state in
      let supervisor = state.supervisor
      guard !state.isClosed else { return Taken(supervisor: supervisor) }
      var taken = Taken(supervisor: supervisor)
      taken.channels = [state.link?.channel, state.attemptChannel].compactMap { $0 }
      state.phase = .closed(NATSError(.closed, "closed by the application"))
      taken.take(from: &state)
      return taken
    }
    taken.finish(NATSError(.closed, "the connection was closed"), subscriptionsWithError: false)
    for channel in taken.channels {
      try? await channel.close()
    }
    taken.supervisor?.cancel()
    await taken.supervisor?.value
  }

  // MARK: Writing

  static let ping: ByteBuffer = ByteBuffer(string: "PING\r\n")
  static let pong: ByteBuffer = ByteBuffer(string: "PONG\r\n")

  /// Checks a message's subject, reply subject and headers; returns the encoded headers.
  static func checkPublish(
    _ subject: String, replyTo: String?, headers: NATSHeaders?
  ) throws(NATSError) -> [UInt8]? {
    try ClientOps.checkSubject(subject, wildcards: false)
    if let replyTo { try ClientOps.checkSubject(replyTo, wildcards: false, what: "reply subject") }
    // "HPUB " + subject + " " + reply + two sizes of at most 20 digits + spaces and CR LF.
    let lineBytes = subject.utf8.count + (replyTo?.utf8.count ?? 0) + 50
    guard lineBytes <= NATSLimits.outgoingControlLineBytesMax else {
      throw NATSError(
        .invalid,
        "subject and reply subject are too long for one control line "
          + "(\(NATSLimits.outgoingControlLineBytesMax) bytes)")
    }
    guard let headers, !headers.isEmpty else { return nil }
    return try HeaderBlock.encode(headers)
  }

  /// Encodes and sends a `PUB`/`HPUB`. Called with the state lock held.
  func write(
    _ subject: String, replyTo: String?, block: [UInt8]?, payload: [UInt8],
    on link: ConnectionState.Link
  ) throws(NATSError) {
    let size = (block?.count ?? 0) + payload.count
    guard size <= link.info.maxPayload else {
      throw NATSError(
        .payloadTooLarge,
        "message of \(size) bytes exceeds the server's max_payload of \(link.info.maxPayload)")
    }
    var buffer = link.channel.allocator.buffer(capacity: size + subject.utf8.count + 64)
    ClientOps.publish(
      subject: subject, replyTo: replyTo, headerBlock: block, payload: payload, into: &buffer)
    try send(buffer, on: link.channel)
  }

  /// Hands `buffer` to the channel's event loop. Always through `execute`, never written
  /// in place, so bytes reach the socket in the order of the calls (made under the lock).
  func send(_ buffer: ByteBuffer, on channel: any Channel) throws(NATSError) {
    let bytes = buffer.readableBytes
    let before = writeBytesPending.add(bytes, ordering: .relaxed).oldValue
    guard before + bytes <= NATSLimits.pendingWriteBytesMax || before == 0 else {
      writeBytesPending.subtract(bytes, ordering: .relaxed)
      throw NATSError(
        .overloaded,
        "\(before) bytes are already waiting to be written (the server is not reading)")
    }
    let promise = channel.eventLoop.makePromise(of: Void.self)
    promise.futureResult.whenComplete { [self] _ in
      writeBytesPending.subtract(bytes, ordering: .relaxed)
    }
    channel.eventLoop.execute {
      channel.writeAndFlush(buffer, promise: promise)
    }
  }

  // MARK: Completing waiters

  func finishRequest(_ token: UInt64, _ result: Result<NATSMessage, NATSError>) {
    let request = state.withLock { $0.requests.removeValue(forKey: token) }
    request?.timer?.cancel()
    request?.continuation.resume(returning: result)
  }

  func abandonFlush(_ id: UInt64, _ error: NATSError) {
    let waiter = state.withLock { state -> ConnectionState.PongWaiter? in
      guard let index = state.pongWaiters.firstIndex(where: { $0.id == id }) else { return nil }
      let waiter = state.pongWaiters[index]
      // The slot stays: the PONG answering its PING is still to come.
      state.pongWaiters[index].continuation = nil
      state.pongWaiters[index].timer = nil
      return waiter
    }
    waiter?.timer?.cancel()
    waiter?.continuation?.resume(returning: .failure(error))
  }
}

/// What is taken out of the state when the connection goes down or closes, to be failed
/// or finished after the lock is released (resuming or finishing under the lock could run
/// code, such as a stream's termination handler, that takes it again).
struct Taken {
  var supervisor: Task<Void, Never>?
  var channels: [any Channel] = []
  var subscriptions: [ConnectionState.Subscription] = []
  var requests: [ConnectionState.Request] = []
  var flushes: [ConnectionState.PongWaiter] = []

  init(supervisor: Task<Void, Never>? = nil) {
    self.supervisor = supervisor
  }

  /// Takes the waiters, and the subscriptions too when the state is closed.
  mutating func take(from state: inout ConnectionState) {
    requests = Array(state.requests.values)
    state.requests.removeAll()
    flushes = Array(state.pongWaiters)
    state.pongWaiters.removeAll()
    state.keepalivesOutstanding = 0
    state.keepalive?.cancel()
    state.keepalive = nil
    if state.isClosed {
      subscriptions = Array(state.subscriptions.values)
      state.subscriptions.removeAll()
    }
  }

  func finish(_ error: NATSError, subscriptionsWithError: Bool) {
    for request in requests {
      request.timer?.cancel()
      request.continuation.resume(returning: .failure(error))
    }
    for flush in flushes {
      flush.timer?.cancel()
      flush.continuation?.resume(returning: .failure(error))
    }
    for subscription in subscriptions {
      if subscriptionsWithError {
        subscription.continuation.finish(throwing: error)
      } else {
        subscription.continuation.finish()
      }
    }
  }
}
