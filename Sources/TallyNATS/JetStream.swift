import TallyProtocol

/// JetStream over a `NATSConnection`: requests to `$JS.API.*` with JSON bodies.
///
/// Every call is one request bounded by `timeout`. An `error` in the reply throws a
/// `JetStreamError` with JetStream's `code` and `errCode`; a request without an answer throws
/// one of kind `.transport` carrying the connection's `NATSError`.
public struct JetStream: Sendable {
  public let connection: NATSConnection
  public let apiPrefix: String
  public let timeout: Duration

  public init(
    _ connection: NATSConnection, apiPrefix: String = "$JS.API", timeout: Duration = .seconds(5)
  ) {
    self.connection = connection
    self.apiPrefix = apiPrefix
    self.timeout = timeout
  }

  /// Sends `body` to `<apiPrefix>.<api>` and returns the reply object.
  func call(_ api: String, _ body: JSONObject?) async throws(JetStreamError) -> JSONObject {
    let subject = apiPrefix + "." + api
    let payload = body.map { Array(JSONWriter.serialize(.object($0)).utf8) } ?? []
    let reply: NATSMessage
    do {
      reply = try await connection.request(subject, payload: payload, timeout: timeout)
    } catch {
      throw Self.transport(error, subject)
    }
    return try APIJSON.reply(reply.payload, subject)
  }

  static func transport(_ error: NATSError, _ subject: String) -> JetStreamError {
    let hint =
      error.code == .noResponders ? " (JetStream not enabled, no leader, or no such stream)" : ""
    return JetStreamError(
      .transport, "\(subject): \(error.message)\(hint)", transport: error)
  }

  /// Stream and consumer names become subject tokens: no `.`, `*`, `>`, spaces or controls.
  static func checkName(_ name: String, _ what: String) throws(JetStreamError) {
    let bytes = Array(name.utf8)
    guard !bytes.isEmpty, bytes.count <= NATSLimits.jetStreamNameBytesMax,
      bytes.allSatisfy({
        $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: ".") && $0 != UInt8(ascii: "*")
          && $0 != UInt8(ascii: ">") && $0 != UInt8(ascii: "/") && $0 != UInt8(ascii: "\\")
      })
    else {
      throw JetStreamError(
        .invalid,
        "\(what) name \(HeaderBlock.quoted(name)) must be 1...\(NATSLimits.jetStreamNameBytesMax) "
          + "bytes without . * > / \\ or spaces")
    }
  }

  // MARK: Streams

  public func createStream(_ config: StreamConfig) async throws(JetStreamError) -> StreamInfo {
    try Self.checkName(config.name, "stream")
    let reply = try await call("STREAM.CREATE.\(config.name)", try config.json())
    return try StreamInfo(reply)
  }

  /// Creates the stream, or returns the info of an existing one of that name. An existing
  /// stream is never changed: if its subjects, replicas or storage differ from `config`, this
  /// throws a `.mismatch` error naming the field.
  public func ensureStream(_ config: StreamConfig) async throws(JetStreamError) -> StreamInfo {
    if let existing = try await streamInfo(config.name) {
      try Self.check(existing, against: config)
      return existing
    }
    do {
      return try await createStream(config)
    } catch  where error.errCode == JetStreamError.streamNameInUse {
      // Created meanwhile by someone else, with another configuration.
      guard let existing = try await streamInfo(config.name) else { throw error }
      try Self.check(existing, against: config)
      return existing
    }
  }

  static func check(_ info: StreamInfo, against config: StreamConfig) throws(JetStreamError) {
    func mismatch(_ field: String, _ have: String, _ want: String) -> JetStreamError {
      JetStreamError(
        .mismatch,
        "stream \(config.name) exists with \(field) \(have), not \(want); it was left unchanged")
    }
    if Set(info.subjects) != Set(config.subjects) {
      throw mismatch("subjects", "\(info.subjects)", "\(config.subjects)")
    }
    if info.replicas != config.replicas {
      throw mismatch("replicas", "\(info.replicas)", "\(config.replicas)")
    }
    if let storage = info.storage, storage != config.storage {
      throw mismatch("storage", storage.rawValue, config.storage.rawValue)
    }
  }

  /// The stream's info, nil when there is no stream of that name.
  public func streamInfo(_ name: String) async throws(JetStreamError) -> StreamInfo? {
    try Self.checkName(name, "stream")
    do {
      return try StreamInfo(try await call("STREAM.INFO.\(name)", nil))
    } catch  where error.errCode == JetStreamError.streamNotFound {
      return nil
    }
  }

  public func deleteStream(_ name: String) async throws(JetStreamError) {
    try Self.checkName(name, "stream")
    let reply = try await call("STREAM.DELETE.\(name)", nil)
    guard reply["success"]?.boolValue == true else {
      throw JetStreamError(.response, "deleting stream \(name) did not answer success")
    }
  }

  // MARK: Publishing

  /// Publishes to a stream's subject and waits for the stream's acknowledgement.
  ///
  /// `msgId` sets `Nats-Msg-Id` (a repeat within the stream's duplicate window is not stored
  /// again: the ack says `duplicate` and carries the first one's sequence);
  /// `expectedLastSequence` sets `Nats-Expected-Last-Sequence` (the stream refuses the
  /// message with `errCode` 10071 unless its last sequence is that); `expectedStream` sets
  /// `Nats-Expected-Stream`.
  public func publish(
    _ subject: String, headers: NATSHeaders = .init(), payload: [UInt8], msgId: String? = nil,
    expectedLastSequence: UInt64? = nil, expectedStream: String? = nil
  ) async throws(JetStreamError) -> PubAck {
    var headers = headers
    if let msgId { headers["Nats-Msg-Id"] = msgId }
    if let expectedLastSequence {
      headers["Nats-Expected-Last-Sequence"] = String(expectedLastSequence)
    }
    if let expectedStream { headers["Nats-Expected-Stream"] = expectedStream }
    let reply: NATSMessage
    do {
      reply = try await connection.request(
        subject, headers: headers, payload: payload, timeout: timeout)
    } catch {
      throw Self.transport(error, subject)
    }
    let object = try APIJSON.reply(reply.payload, subject)
    let context = "ack of \(subject)"
    guard let stream = object.string("stream") else { throw APIJSON.missing("stream", context) }
    guard let seq = object.uint64("seq"), seq > 0 else { throw APIJSON.missing("seq", context) }
    return PubAck(
      stream: stream, seq: seq, duplicate: object["duplicate"]?.boolValue ?? false,
      domain: object.string("domain"))
  }

  // MARK: Reading stored messages

  /// The message at `seq`, nil when there is none (never stored, or deleted).
  public func getMessage(stream: String, seq: UInt64) async throws(JetStreamError)
    -> StoredMessage?
  {
    try await storedMessage(stream, JSONObject([("seq", APIJSON.number(seq))]))
  }

  /// The last message stored on `subject`, nil when there is none.
  public func lastMessage(stream: String, subject: String) async throws(JetStreamError)
    -> StoredMessage?
  {
    try await storedMessage(stream, JSONObject([("last_by_subj", .string(subject))]))
  }

  private func storedMessage(_ stream: String, _ request: JSONObject) async throws(JetStreamError)
    -> StoredMessage?
  {
    try Self.checkName(stream, "stream")
    let reply: JSONObject
    do {
      reply = try await call("STREAM.MSG.GET.\(stream)", request)
    } catch  where error.errCode == JetStreamError.messageNotFound {
      return nil
    }
    guard let message = reply.object("message") else {
      throw APIJSON.missing("message", "message of stream \(stream)")
    }
    return try StoredMessage(message, stream: stream)
  }
}
