/// The messages of one subscription, in order, as an `AsyncSequence` (one consumer).
///
/// Its buffer holds at most `pendingMax` messages: when the consumer falls that far behind,
/// the next message ends the subscription with `.slowConsumer` (after the buffered ones are
/// consumed), never a silent drop. It ends without error after `unsubscribe()` or the
/// connection's `close()`, and with an error when the connection gives up reconnecting.
/// Cancelling the consuming task ends it too. A dropped subscription unsubscribes itself.
public final class NATSSubscription: AsyncSequence, Sendable {
  public typealias Element = NATSMessage
  public typealias Failure = NATSError

  public let subject: String
  public let queue: String?
  public let pendingMax: Int
  let sid: UInt64
  let connection: NATSConnection
  let stream: AsyncThrowingStream<NATSMessage, any Error>
  let continuation: AsyncThrowingStream<NATSMessage, any Error>.Continuation

  init(
    connection: NATSConnection, sid: UInt64, subject: String, queue: String?, pendingMax: Int,
    stream: AsyncThrowingStream<NATSMessage, any Error>,
    continuation: AsyncThrowingStream<NATSMessage, any Error>.Continuation
  ) {
    self.connection = connection
    self.sid = sid
    self.subject = subject
    self.queue = queue
    self.pendingMax = pendingMax
    self.stream = stream
    self.continuation = continuation
  }

  deinit {
    continuation.finish()
    connection.removeSubscription(sid)
  }

  /// Stops the subscription: `UNSUB` goes to the server, and iteration ends after the
  /// messages already buffered.
  public func unsubscribe() {
    connection.removeSubscription(sid)
    continuation.finish()
  }

  /// Ends the subscription with `error` (after the buffered messages).
  func end(throwing error: NATSError) {
    connection.removeSubscription(sid)
    continuation.finish(throwing: error)
  }

  public func makeAsyncIterator() -> AsyncIterator {
    AsyncIterator(subscription: self, base: stream.makeAsyncIterator())
  }

  public struct AsyncIterator: AsyncIteratorProtocol {
    public typealias Element = NATSMessage
    public typealias Failure = NATSError
    /// Keeps the subscription (and so its server-side interest) alive while iterating.
    let subscription: NATSSubscription
    var base: AsyncThrowingStream<NATSMessage, any Error>.AsyncIterator

    public mutating func next() async throws(NATSError) -> NATSMessage? {
      do {
        return try await base.next()
      } catch {
        throw NATSError.wrap(error, "subscription to \(subscription.subject)")
      }
    }

    public mutating func next(isolation actor: isolated (any Actor)?) async throws(NATSError)
      -> NATSMessage?
    {
      do {
        return try await base.next(isolation: actor)
      } catch {
        throw NATSError.wrap(error, "subscription to \(subscription.subject)")
      }
    }
  }
}

extension NATSConnection {
  /// Subscribes to `subject` (wildcards allowed), in queue group `queue` if given.
  ///
  /// While connected it returns once the server has processed the `SUB` (a `PING`/`PONG`
  /// round trip bounded by `connectTimeout`), so a message published after it returns is
  /// delivered. While reconnecting the subscription is registered and sent on reconnect.
  public func subscribe(
    _ subject: String, queue: String? = nil,
    pendingMax: Int = NATSLimits.subscriptionPendingDefault
  ) async throws(NATSError) -> NATSSubscription {
    let (subscription, connected) = try subscribeNow(subject, queue: queue, pendingMax: pendingMax)
    if connected {
      do {
        try await flush(timeout: options.connectTimeout)
      } catch  where error.code == .disconnected {
        // Lost meanwhile: the SUB is sent again on reconnect.
      } catch {
        subscription.unsubscribe()
        throw error
      }
    }
    return subscription
  }

  /// Registers a subscription and writes its `SUB` (if connected) without waiting for the
  /// server; returns it and whether the `SUB` was written.
  func subscribeNow(
    _ subject: String, queue: String?, pendingMax: Int
  ) throws(NATSError) -> (NATSSubscription, Bool) {
    try ClientOps.checkSubject(subject, wildcards: true)
    if let queue { try ClientOps.checkQueue(queue) }
    guard (1...NATSLimits.subscriptionPendingMax).contains(pendingMax) else {
      throw NATSError(
        .invalid, "pendingMax must be 1...\(NATSLimits.subscriptionPendingMax), not \(pendingMax)")
    }
    let (stream, continuation) = AsyncThrowingStream.makeStream(
      of: NATSMessage.self, throwing: (any Error).self,
      bufferingPolicy: .bufferingOldest(pendingMax))
    let (sid, connected) = try state.withLock { state throws(NATSError) -> (UInt64, Bool) in
      if case .closed(let reason) = state.phase {
        throw NATSError(.closed, "the connection is closed (\(reason.message))")
      }
      guard state.subscriptions.count < NATSLimits.subscriptionsMax else {
        throw NATSError(.overloaded, "\(NATSLimits.subscriptionsMax) subscriptions already live")
      }
      let sid = state.nextSid
      state.nextSid += 1
      var connected = false
      if let link = state.link {
        var buffer = link.channel.allocator.buffer(capacity: subject.utf8.count + 32)
        ClientOps.subscribe(subject: subject, queue: queue, sid: sid, into: &buffer)
        try send(buffer, on: link.channel)
        connected = true
      }
      state.subscriptions[sid] = ConnectionState.Subscription(
        subject: subject, queue: queue, pendingMax: pendingMax, continuation: continuation)
      return (sid, connected)
    }
    continuation.onTermination = { [weak self] _ in
      self?.removeSubscription(sid)
    }
    let subscription = NATSSubscription(
      connection: self, sid: sid, subject: subject, queue: queue, pendingMax: pendingMax,
      stream: stream, continuation: continuation)
    return (subscription, connected)
  }
}
