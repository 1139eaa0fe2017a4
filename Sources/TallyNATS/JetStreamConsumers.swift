import NIOCore
import TallyProtocol

extension JetStream {
  public enum DeliverPolicy: Sendable, Equatable {
    case all, last, new
    case byStartSequence(UInt64)
  }

  public enum AckPolicy: String, Sendable {
    case explicit, none, all
  }

  /// A pull consumer's configuration.
  public struct ConsumerConfig: Sendable {
    /// A durable consumer survives its clients; nil creates an ephemeral one.
    public var durableName: String?
    public var filterSubject: String?
    public var deliverPolicy: DeliverPolicy
    public var ackPolicy: AckPolicy
    public var maxAckPending: Int?
    /// How long a delivered message may stay unacknowledged before it is delivered again.
    public var ackWait: Duration?
    /// How long the consumer may go without pulls before the server deletes it.
    public var inactiveThreshold: Duration?
    public var maxDeliver: Int?

    public init(
      durableName: String? = nil, filterSubject: String? = nil, deliverPolicy: DeliverPolicy = .all,
      ackPolicy: AckPolicy = .explicit, maxAckPending: Int? = nil, ackWait: Duration? = nil,
      inactiveThreshold: Duration? = nil, maxDeliver: Int? = nil
    ) {
      self.durableName = durableName
      self.filterSubject = filterSubject
      self.deliverPolicy = deliverPolicy
      self.ackPolicy = ackPolicy
      self.maxAckPending = maxAckPending
      self.ackWait = ackWait
      self.inactiveThreshold = inactiveThreshold
      self.maxDeliver = maxDeliver
    }

    func json() throws(JetStreamError) -> JSONObject {
      var members: [(key: String, value: JSONValue)] = []
      if let durableName {
        try JetStream.checkName(durableName, "consumer")
        members.append(("durable_name", .string(durableName)))
      }
      switch deliverPolicy {
      case .all: members.append(("deliver_policy", .string("all")))
      case .last: members.append(("deliver_policy", .string("last")))
      case .new: members.append(("deliver_policy", .string("new")))
      case .byStartSequence(let seq):
        guard seq > 0 else { throw JetStreamError(.invalid, "start sequence must be >= 1") }
        members.append(("deliver_policy", .string("by_start_sequence")))
        members.append(("opt_start_seq", APIJSON.number(seq)))
      }
      members.append(("ack_policy", .string(ackPolicy.rawValue)))
      members.append(("replay_policy", .string("instant")))
      if let filterSubject {
        do {
          try ClientOps.checkSubject(filterSubject, wildcards: true, what: "filter subject")
        } catch {
          throw JetStreamError(.invalid, error.message)
        }
        members.append(("filter_subject", .string(filterSubject)))
      }
      if let maxAckPending { members.append(("max_ack_pending", APIJSON.number(maxAckPending))) }
      if let maxDeliver { members.append(("max_deliver", APIJSON.number(maxDeliver))) }
      if let ackWait { members.append(("ack_wait", try APIJSON.nanoseconds(ackWait, "ackWait"))) }
      if let inactiveThreshold {
        members.append(
          ("inactive_threshold", try APIJSON.nanoseconds(inactiveThreshold, "inactiveThreshold")))
      }
      return JSONObject(members)
    }
  }

  public struct ConsumerInfo: Sendable {
    public var stream: String
    public var name: String
    /// Messages matching the consumer not yet delivered.
    public var numPending: UInt64
    /// Delivered and not yet acknowledged.
    public var numAckPending: Int
    public var numRedelivered: Int
    /// The stream sequence of the last delivered message.
    public var deliveredStreamSeq: UInt64
    /// Every message up to this stream sequence is acknowledged.
    public var ackFloorStreamSeq: UInt64

    init(_ reply: JSONObject) throws(JetStreamError) {
      let context = "consumer info"
      guard let stream = reply.string("stream_name") else {
        throw APIJSON.missing("stream_name", context)
      }
      guard let name = reply.string("name") else { throw APIJSON.missing("name", context) }
      guard let delivered = reply.object("delivered")?.uint64("stream_seq") else {
        throw APIJSON.missing("delivered.stream_seq", context)
      }
      guard let floor = reply.object("ack_floor")?.uint64("stream_seq") else {
        throw APIJSON.missing("ack_floor.stream_seq", context)
      }
      self.stream = stream
      self.name = name
      self.numPending = reply.uint64("num_pending") ?? 0
      self.numAckPending = reply.int("num_ack_pending") ?? 0
      self.numRedelivered = reply.int("num_redelivered") ?? 0
      self.deliveredStreamSeq = delivered
      self.ackFloorStreamSeq = floor
    }
  }

  /// Creates a pull consumer (nats-server 2.9 APIs: `CONSUMER.DURABLE.CREATE.<stream>.<name>`
  /// for a durable one, `CONSUMER.CREATE.<stream>` for an ephemeral one). Creating a durable
  /// consumer that exists with the same configuration returns its info.
  public func createConsumer(stream: String, _ config: ConsumerConfig) async throws(JetStreamError)
    -> ConsumerInfo
  {
    try Self.checkName(stream, "stream")
    let body = JSONObject([
      ("stream_name", .string(stream)), ("config", .object(try config.json())),
    ])
    let api =
      config.durableName.map { "CONSUMER.DURABLE.CREATE.\(stream).\($0)" }
      ?? "CONSUMER.CREATE.\(stream)"
    return try ConsumerInfo(try await call(api, body))
  }

  /// The consumer's info, nil when the stream has no consumer of that name.
  public func consumerInfo(stream: String, name: String) async throws(JetStreamError)
    -> ConsumerInfo?
  {
    try Self.checkName(stream, "stream")
    try Self.checkName(name, "consumer")
    do {
      return try ConsumerInfo(try await call("CONSUMER.INFO.\(stream).\(name)", nil))
    } catch  where error.errCode == JetStreamError.consumerNotFound {
      return nil
    }
  }

  public func deleteConsumer(stream: String, name: String) async throws(JetStreamError) {
    try Self.checkName(stream, "stream")
    try Self.checkName(name, "consumer")
    let reply = try await call("CONSUMER.DELETE.\(stream).\(name)", nil)
    guard reply["success"]?.boolValue == true else {
      throw JetStreamError(.response, "deleting consumer \(name) did not answer success")
    }
  }

  // MARK: Pulling

  /// The delivery metadata JetStream puts in the reply subject of a delivered message.
  public struct AckMetadata: Sendable, Equatable {
    public var stream: String
    public var consumer: String
    /// How many times the message has been delivered (1 the first time).
    public var deliveries: UInt64
    public var streamSeq: UInt64
    public var consumerSeq: UInt64
    /// Messages still pending for the consumer after this one.
    public var pending: UInt64

    /// Parses `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>`, or the
    /// newer `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.…[.<token>]`.
    public init(replySubject reply: String) throws(JetStreamError) {
      // Split over UTF-8 bytes: this runs once per delivered message, and String.split
      // walks Characters (grapheme breaking) for nothing here.
      let tokens = reply.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
      guard tokens.count >= 9, tokens[0].elementsEqual("$JS".utf8),
        tokens[1].elementsEqual("ACK".utf8)
      else {
        throw JetStreamError(.response, "reply subject \(reply) is not a JetStream ack subject")
      }
      let base = tokens.count == 9 ? 2 : 4
      guard tokens.count == 9 || tokens.count == 11 || tokens.count == 12,
        let deliveries = Self.number(tokens[base + 2]),
        let streamSeq = Self.number(tokens[base + 3]),
        let consumerSeq = Self.number(tokens[base + 4]), let pending = Self.number(tokens[base + 6])
      else {
        throw JetStreamError(.response, "reply subject \(reply) has malformed metadata")
      }
      self.stream = String(Substring(tokens[base]))
      self.consumer = String(Substring(tokens[base + 1]))
      self.deliveries = deliveries
      self.streamSeq = streamSeq
      self.consumerSeq = consumerSeq
      self.pending = pending
    }

    /// A decimal UInt64 (digits only, no sign, no overflow), as `UInt64(String)` reads one.
    static func number(_ token: Substring.UTF8View) -> UInt64? {
      if token.isEmpty || token.count > 20 { return nil }
      var value: UInt64 = 0
      for c in token {
        guard c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") else { return nil }
        let (m, o1) = value.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(UInt64(c - UInt8(ascii: "0")))
        if o1 || o2 { return nil }
        value = a
      }
      return value
    }
  }

  /// A message delivered by a consumer, with the metadata of its reply subject.
  public struct Delivered: Sendable {
    public var message: NATSMessage
    public var metadata: AckMetadata
    public var stream: String { metadata.stream }
    public var consumer: String { metadata.consumer }
    public var streamSeq: UInt64 { metadata.streamSeq }
    public var consumerSeq: UInt64 { metadata.consumerSeq }
    /// How many times it has been delivered (1 the first time).
    public var deliveries: UInt64 { metadata.deliveries }
    /// Messages still pending for the consumer after this one.
    public var pending: UInt64 { metadata.pending }
    let connection: NATSConnection

    init(_ message: NATSMessage, connection: NATSConnection) throws(JetStreamError) {
      guard let reply = message.replyTo else {
        throw JetStreamError(.response, "a delivered message has no reply subject")
      }
      self.message = message
      self.metadata = try AckMetadata(replySubject: reply)
      self.connection = connection
    }

    /// Acknowledges the message (queued like `publish`; the server confirms nothing).
    public func ack() throws(NATSError) {
      try connection.publish(message.replyTo!, payload: Array("+ACK".utf8))
    }

    /// Acknowledges and waits for JetStream to confirm it has recorded the ack.
    public func ackSync(timeout: Duration) async throws(NATSError) {
      _ = try await connection.request(
        message.replyTo!, payload: Array("+ACK".utf8), timeout: timeout)
    }

    /// Asks for the message to be delivered again (now).
    public func nak() throws(NATSError) {
      try connection.publish(message.replyTo!, payload: Array("-NAK".utf8))
    }
  }

  /// Pulls up to `batch` messages from a pull consumer: `CONSUMER.MSG.NEXT.<stream>.<consumer>`
  /// with `{"batch":n,"expires":ns}` (`{"batch":n,"no_wait":true}` if `noWait`: answer at once
  /// with what is there) and a fresh reply inbox.
  ///
  /// Collects messages until `batch` arrived or a 404 / 408 status ends the pull (no messages
  /// / expired); 100 heartbeats are skipped, and any other status (such as 409) is thrown.
  /// Waits at most `expires` plus the API `timeout`; a pull that outlives that throws
  /// `.transport` with a timeout (its messages are delivered again after `ackWait`).
  public func fetch(
    stream: String, consumer: String, batch: Int, expires: Duration, noWait: Bool = false
  ) async throws(JetStreamError) -> [Delivered] {
    try Self.checkName(stream, "stream")
    try Self.checkName(consumer, "consumer")
    guard (1...NATSLimits.fetchBatchMax).contains(batch) else {
      throw JetStreamError(.invalid, "batch must be 1...\(NATSLimits.fetchBatchMax), not \(batch)")
    }
    guard expires >= .milliseconds(1), expires <= NATSLimits.fetchExpiresMax else {
      throw JetStreamError(
        .invalid, "expires must be between 1 ms and \(NATSLimits.fetchExpiresMax)")
    }
    var request: [(key: String, value: JSONValue)] = [("batch", APIJSON.number(batch))]
    if noWait {
      // With an expiry nats-server 2.9 waits it out even when nothing is pending.
      request.append(("no_wait", .bool(true)))
    } else {
      request.append(("expires", try APIJSON.nanoseconds(expires, "expires")))
    }
    let subject = "\(apiPrefix).CONSUMER.MSG.NEXT.\(stream).\(consumer)"
    let subscription: NATSSubscription
    do {
      let inbox = connection.newInbox()
      (subscription, _) = try connection.subscribeNow(
        inbox, queue: nil, pendingMax: batch + NATSLimits.fetchStatusSlack)
      // The SUB was written first on the same connection, so the server has it before this.
      try connection.publish(
        subject, replyTo: inbox,
        payload: Array(JSONWriter.serialize(.object(JSONObject(request))).utf8))
    } catch {
      throw Self.transport(error, subject)
    }
    defer { subscription.unsubscribe() }
    let limit = expires + timeout
    let deadline = connection.eventLoop.scheduleTask(in: TimeAmount(limit)) {
      subscription.end(throwing: NATSError(.timeout, "pull did not end within \(limit)"))
    }
    defer { deadline.cancel() }
    var delivered: [Delivered] = []
    var messages = subscription.makeAsyncIterator()
    while true {
      let next: NATSMessage?
      do {
        next = try await messages.next()
      } catch {
        throw Self.transport(error, subject)
      }
      guard let message = next else {
        throw Self.transport(NATSError(.closed, "the subscription ended"), subject)
      }
      if let status = message.status {
        switch status {
        case 100:
          continue
        case 404, 408:
          return delivered
        default:
          var error = JetStreamError(
            code: status, errCode: 0,
            description: "pull from \(stream).\(consumer): \(status) "
              + (message.statusDescription ?? ""))
          error.kind = .api
          throw error
        }
      }
      delivered.append(try Delivered(message, connection: connection))
      if delivered.count == batch { return delivered }
    }
  }
}
