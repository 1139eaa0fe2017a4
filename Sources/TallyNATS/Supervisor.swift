import NIOCore
import NIOPosix
import Synchronization

/// The connection's one long-lived task: connect, run the session, reconnect.
extension NATSConnection {
  typealias FirstConnect = CheckedContinuation<Result<Void, NATSError>, Never>

  /// How a session on one server ended.
  enum SessionEnd {
    /// The attempt failed before the handshake completed.
    case notEstablished(NATSError)
    /// The connection was established, then lost (or closed by `close()`).
    case lost(NATSError)
  }

  /// Connects (the first time: one round over the servers; after a loss: rounds until
  /// `reconnectAttemptsMax` attempts), runs each session until it ends, and repeats until the
  /// connection is closed or gives up.
  func supervise(first: FirstConnect) async {
    var first: FirstConnect? = first
    var next = 0
    var attempts = 0
    var failures: [String] = []
    var lostCause = ""
    while true {
      let servers = state.withLock { $0.servers }
      var lost = false
      for offset in 0..<servers.count {
        if state.withLock({ $0.isClosed }) { return }
        let limit = first != nil ? servers.count : options.reconnectAttemptsMax
        if attempts >= limit {
          giveUp(first: first, attempts: attempts, lostCause: lostCause, failures: failures)
          return
        }
        let index = (next + offset) % servers.count
        attempts += 1
        switch await session(servers[index], first: &first) {
        case .notEstablished(let error):
          failures.append(error.message)
          if failures.count > NATSLimits.connectFailuresKept { failures.removeFirst() }
        case .lost(let cause):
          // A new outage: start with the server after this one, with a fresh budget.
          next = index + 1
          attempts = 0
          failures = []
          lostCause = cause.message
          lost = true
        }
        if lost { break }
      }
      if lost { continue }
      if state.withLock({ $0.isClosed }) { return }
      if first != nil || attempts >= options.reconnectAttemptsMax {
        giveUp(first: first, attempts: attempts, lostCause: lostCause, failures: failures)
        return
      }
      // A whole round failed: wait before the next (close() cancels the wait).
      try? await Task.sleep(for: options.reconnectWait)
    }
  }

  /// Ends the connection after the last allowed attempt failed.
  private func giveUp(
    first: FirstConnect?, attempts: Int, lostCause: String, failures: [String]
  ) {
    let reasons = failures.joined(separator: "; ")
    if let first {
      let error = NATSError(.connect, "could not connect to any server: \(reasons)")
      state.withLock { $0.phase = .closed(error) }
      first.resume(returning: .failure(error))
      return
    }
    let tried = failures.isEmpty ? "" : "; last failures: \(reasons)"
    let error = NATSError(
      .closed, "gave up reconnecting after \(attempts) attempts (\(lostCause))\(tried)")
    let taken = state.withLock { state -> Taken in
      guard !state.isClosed else { return Taken() }
      state.phase = .closed(error)
      state.lastError = error
      var taken = Taken()
      taken.take(from: &state)
      return taken
    }
    taken.finish(error, subscriptionsWithError: true)
  }

  /// One connection to `server`: connect, handshake, then read until it ends.
  private func session(_ server: NATSAddress, first: inout FirstConnect?) async -> SessionEnd {
    let timeout = TimeAmount(options.connectTimeout)
    let channel: NIOAsyncChannel<ServerOp, Never>
    do {
      channel = try await ClientBootstrap(group: eventLoop)
        .connectTimeout(timeout)
        .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
        .connect(host: server.host, port: server.port) { channel in
          channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(FrameDecoder()))
            return try NIOAsyncChannel<ServerOp, Never>(wrappingChannelSynchronously: channel)
          }
        }
    } catch {
      return .notEstablished(NATSError(.connect, "\(server): \(error)"))
    }
    let registered = state.withLock { state in
      guard !state.isClosed else { return false }
      state.attemptChannel = channel.channel
      return true
    }
    guard registered else {
      try? await channel.channel.close()
      return .notEstablished(NATSError(.closed, "closed while connecting"))
    }
    // Bounds the handshake: closing the channel ends the reads it waits on.
    let expired = Flag()
    let deadline = eventLoop.scheduleTask(in: timeout) {
      expired.set()
      channel.channel.close(promise: nil)
    }
    var established = false
    do {
      try await channel.executeThenClose { inbound in
        var ops = inbound.makeAsyncIterator()
        let info = try await handshake(&ops, channel.channel, server)
        deadline.cancel()
        try establish(Link(channel: channel.channel, server: server, info: info), first != nil)
        established = true
        first?.resume(returning: .success(()))
        first = nil
        while let op = try await ops.next() {
          dispatch(op, channel.channel)
        }
      }
      deadline.cancel()
      if !established {
        throw NATSError(.connect, "\(server) closed the connection during the handshake")
      }
      throw NATSError(.disconnected, "\(server) closed the connection")
    } catch {
      deadline.cancel()
      guard established else {
        state.withLock { $0.attemptChannel = nil }
        if expired.isSet {
          return .notEstablished(
            NATSError(.timeout, "\(server): no handshake within \(options.connectTimeout)"))
        }
        let wrapped = NATSError.wrap(error, "\(server)")
        return .notEstablished(
          NATSError(
            wrapped.code == .disconnected ? .connect : wrapped.code,
            wrapped.message))
      }
      let cause = NATSError.wrap(error, "connection to \(server) lost")
      connectionLost(cause, server)
      return .lost(cause)
    }
  }

  typealias Link = ConnectionState.Link

  /// Reads `INFO`, sends `CONNECT` and `PING`, and waits for the `PONG`.
  private func handshake(
    _ ops: inout NIOAsyncChannelInboundStream<ServerOp>.AsyncIterator, _ channel: any Channel,
    _ server: NATSAddress
  ) async throws -> ServerInfo {
    guard case .info(var info)? = try await ops.next() else {
      throw NATSError(.protocolError, "\(server) did not start with INFO")
    }
    guard info.headers else {
      throw NATSError(.connect, "\(server) does not support headers (nats-server 2.2+ does)")
    }
    var buffer = channel.allocator.buffer(capacity: 256)
    ClientOps.connect(name: options.name, into: &buffer)
    try await channel.writeAndFlush(buffer)
    while true {
      guard let op = try await ops.next() else {
        throw NATSError(.connect, "\(server) closed the connection during the handshake")
      }
      switch op {
      case .pong:
        return info
      case .ok:
        continue
      case .ping:
        try await channel.writeAndFlush(Self.pong)
      case .info(let newer):
        info = newer
      case .err(let text):
        throw NATSError(.server, "\(server) refused the connection: \(text)")
      case .message:
        throw NATSError(.protocolError, "\(server) sent a message before the handshake ended")
      }
    }
  }

  /// The handshake is done: the link goes live, with the request inbox and every live
  /// subscription subscribed (in the same lock hold, so no `SUB` is sent twice or lost).
  private func establish(_ link: Link, _ isFirst: Bool) throws(NATSError) {
    try state.withLock { state throws(NATSError) in
      if case .closed(let reason) = state.phase { throw reason }
      state.attemptChannel = nil
      state.phase = .connected(link)
      state.keepalivesOutstanding = 0
      if options.discoverServers { state.addDiscovered(link.info.connectURLs) }
      var buffer = link.channel.allocator.buffer(capacity: 64 + 64 * state.subscriptions.count)
      ClientOps.subscribe(
        subject: inboxPrefix + ".*", queue: nil, sid: ConnectionState.inboxSid, into: &buffer)
      for (sid, subscription) in state.subscriptions.sorted(by: { $0.key < $1.key }) {
        ClientOps.subscribe(
          subject: subscription.subject, queue: subscription.queue, sid: sid, into: &buffer)
      }
      try send(buffer, on: link.channel)
      if !isFirst { state.reconnects += 1 }
      let interval = TimeAmount(options.pingInterval)
      let channel = link.channel
      state.keepalive = eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) {
        [weak self] _ in
        self?.keepaliveTick(channel)
      }
    }
  }

  /// The link is gone: waiters fail, the phase becomes `.reconnecting` (unless closed).
  private func connectionLost(_ cause: NATSError, _ server: NATSAddress) {
    let taken = state.withLock { state -> Taken in
      if !state.isClosed {
        state.phase = .reconnecting(cause)
        state.lastError = cause
      }
      var taken = Taken()
      taken.take(from: &state)
      return taken
    }
    let error = NATSError(
      .disconnected, "connection to \(server) lost while waiting: \(cause.message)")
    taken.finish(error, subscriptionsWithError: true)
  }

  /// Sends a keepalive `PING`, or drops a connection whose last ones went unanswered.
  private func keepaliveTick(_ channel: any Channel) {
    let stale = state.withLock { state -> Bool in
      guard let link = state.link, link.channel === channel else { return false }
      if state.keepalivesOutstanding >= options.pingsOutstandingMax { return true }
      do {
        try send(Self.ping, on: channel)
      } catch {
        return false
      }
      state.keepalivesOutstanding += 1
      state.pongWaiters.append(ConnectionState.PongWaiter(id: 0, continuation: nil, timer: nil))
      return false
    }
    if stale {
      state.withLock {
        $0.lastError = NATSError(
          .timeout, "\(options.pingsOutstandingMax) keepalive PINGs went unanswered")
      }
      channel.close(promise: nil)
    }
  }

  // MARK: Incoming operations

  private func dispatch(_ op: ServerOp, _ channel: any Channel) {
    switch op {
    case .message(let sid, let message):
      if sid == ConnectionState.inboxSid {
        routeReply(message)
      } else {
        deliver(sid, message)
      }
    case .ping:
      try? state.withLock { _ throws(NATSError) in try send(Self.pong, on: channel) }
    case .pong:
      let waiter = state.withLock { state in
        state.keepalivesOutstanding = 0
        return state.pongWaiters.popFirst()
      }
      waiter?.timer?.cancel()
      waiter?.continuation?.resume(returning: .success(()))
    case .ok:
      break
    case .err(let text):
      // Fatal ones are followed by the server closing the connection; the others (such as a
      // permissions violation) concern one operation, which then times out.
      state.withLock { $0.lastError = NATSError(.server, text) }
    case .info(let info):
      state.withLock { state in
        guard case .connected(var link) = state.phase, link.channel === channel else { return }
        link.info = info
        state.phase = .connected(link)
        if options.discoverServers { state.addDiscovered(info.connectURLs) }
      }
    }
  }

  /// A message on the request inbox: the reply to request `<token>`. Replies to requests no
  /// longer waiting (timed out) are dropped, as any late reply in NATS.
  private func routeReply(_ message: NATSMessage) {
    let prefix = inboxPrefix.utf8.count + 1
    guard message.subject.utf8.count > prefix,
      let token = UInt64(decimal: message.subject.utf8.dropFirst(prefix))
    else { return }
    let request = state.withLock { $0.requests.removeValue(forKey: token) }
    guard let request else { return }
    request.timer?.cancel()
    if message.status == 503 {
      request.continuation.resume(
        returning: .failure(NATSError(.noResponders, "no responders on \(request.subject)")))
    } else {
      request.continuation.resume(returning: .success(message))
    }
  }

  /// Hands a message to its subscription; a full buffer ends the subscription.
  private func deliver(_ sid: UInt64, _ message: NATSMessage) {
    // A message for a subscription already ended was in flight before its UNSUB.
    guard let subscription = state.withLock({ $0.subscriptions[sid] }) else { return }
    switch subscription.continuation.yield(message) {
    case .enqueued:
      break
    case .dropped:
      removeSubscription(sid)
      subscription.continuation.finish(
        throwing: NATSError(
          .slowConsumer,
          "the consumer of \(subscription.subject) fell \(subscription.pendingMax) messages "
            + "behind; the subscription was ended"))
    case .terminated:
      removeSubscription(sid)
    @unknown default:
      removeSubscription(sid)
    }
  }

  /// Forgets a subscription and sends `UNSUB` if connected. Idempotent.
  func removeSubscription(_ sid: UInt64) {
    state.withLock { state in
      guard state.subscriptions.removeValue(forKey: sid) != nil, let link = state.link else {
        return
      }
      var buffer = link.channel.allocator.buffer(capacity: 32)
      ClientOps.unsubscribe(sid: sid, into: &buffer)
      // Overloaded: the UNSUB is lost, and messages still arriving are dropped above.
      try? send(buffer, on: link.channel)
    }
  }
}

/// A one-way flag set on the event loop and read by the supervisor.
final class Flag: Sendable {
  private let value = Atomic<Bool>(false)
  func set() { value.store(true, ordering: .releasing) }
  var isSet: Bool { value.load(ordering: .acquiring) }
}
