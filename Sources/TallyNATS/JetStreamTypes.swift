import TallyProtocol

extension JetStream {
  public struct StreamConfig: Sendable {
    public enum Storage: String, Sendable { case file, memory }
    public enum Retention: String, Sendable { case limits, interest, workqueue }
    public enum Discard: String, Sendable { case old, new }

    public var name: String
    public var subjects: [String]
    public var replicas: Int
    public var storage: Storage
    public var retention: Retention
    public var discard: Discard
    /// How long a `Nats-Msg-Id` is remembered for de-duplication (the server's default, two
    /// minutes, when nil).
    public var duplicateWindow: Duration?
    public var maxBytes: Int64?
    public var maxMsgs: Int64?
    public var maxAge: Duration?
    public var maxMsgSize: Int32?
    /// Refuse deleting single messages (for an append-only log).
    public var denyDelete: Bool
    /// Refuse purging the stream.
    public var denyPurge: Bool

    public init(
      name: String, subjects: [String], replicas: Int = 1, storage: Storage = .file,
      retention: Retention = .limits, discard: Discard = .old, duplicateWindow: Duration? = nil,
      maxBytes: Int64? = nil, maxMsgs: Int64? = nil, maxAge: Duration? = nil,
      maxMsgSize: Int32? = nil, denyDelete: Bool = false, denyPurge: Bool = false
    ) {
      self.name = name
      self.subjects = subjects
      self.replicas = replicas
      self.storage = storage
      self.retention = retention
      self.discard = discard
      self.duplicateWindow = duplicateWindow
      self.maxBytes = maxBytes
      self.maxMsgs = maxMsgs
      self.maxAge = maxAge
      self.maxMsgSize = maxMsgSize
      self.denyDelete = denyDelete
      self.denyPurge = denyPurge
    }

    func json() throws(JetStreamError) -> JSONObject {
      guard !subjects.isEmpty else {
        throw JetStreamError(.invalid, "stream \(name) needs at least one subject")
      }
      for subject in subjects {
        do {
          try ClientOps.checkSubject(subject, wildcards: true)
        } catch {
          throw JetStreamError(.invalid, error.message)
        }
      }
      guard (1...5).contains(replicas) else {
        throw JetStreamError(.invalid, "replicas must be 1...5 (JetStream's maximum)")
      }
      var members: [(key: String, value: JSONValue)] = [
        ("name", .string(name)), ("subjects", .array(subjects.map { .string($0) })),
        ("retention", .string(retention.rawValue)), ("max_consumers", .number("-1")),
        ("max_msgs", APIJSON.number(maxMsgs ?? -1)), ("max_bytes", APIJSON.number(maxBytes ?? -1)),
        ("max_age", try APIJSON.nanoseconds(maxAge ?? .zero, "maxAge")),
        ("max_msg_size", APIJSON.number(maxMsgSize ?? -1)),
        ("storage", .string(storage.rawValue)), ("discard", .string(discard.rawValue)),
        ("num_replicas", APIJSON.number(replicas)),
        ("deny_delete", .bool(denyDelete)), ("deny_purge", .bool(denyPurge)),
      ]
      if let duplicateWindow {
        members.append(
          ("duplicate_window", try APIJSON.nanoseconds(duplicateWindow, "duplicateWindow")))
      }
      return JSONObject(members)
    }
  }

  public struct StreamInfo: Sendable {
    public var name: String
    public var subjects: [String]
    public var replicas: Int
    public var storage: StreamConfig.Storage?
    public var messages: UInt64
    public var bytes: UInt64
    /// 0 and 0 for a stream that never held a message; `firstSeq` > `lastSeq` once all
    /// were removed.
    public var firstSeq: UInt64
    public var lastSeq: UInt64
    /// The server leading the stream in a cluster, nil for a single server.
    public var clusterLeader: String?

    init(_ reply: JSONObject) throws(JetStreamError) {
      let context = "stream info"
      guard let config = reply.object("config"), let name = config.string("name") else {
        throw APIJSON.missing("config.name", context)
      }
      guard let state = reply.object("state"), let messages = state.uint64("messages"),
        let bytes = state.uint64("bytes"), let firstSeq = state.uint64("first_seq"),
        let lastSeq = state.uint64("last_seq")
      else {
        throw APIJSON.missing("state", context)
      }
      self.name = name
      self.subjects = (config["subjects"]?.arrayValue ?? []).compactMap(\.stringValue)
      self.replicas = config.int("num_replicas") ?? 1
      self.storage = config.string("storage").flatMap(StreamConfig.Storage.init(rawValue:))
      self.messages = messages
      self.bytes = bytes
      self.firstSeq = firstSeq
      self.lastSeq = lastSeq
      self.clusterLeader = reply.object("cluster")?.string("leader")
    }
  }

  public struct PubAck: Sendable, Equatable {
    public var stream: String
    /// The message's sequence in the stream (for a duplicate: the first copy's).
    public var seq: UInt64
    /// The `Nats-Msg-Id` was seen within the duplicate window; nothing new was stored.
    public var duplicate: Bool
    public var domain: String?
  }

  public struct StoredMessage: Sendable {
    public var subject: String
    public var seq: UInt64
    public var headers: NATSHeaders
    public var payload: [UInt8]
    /// When the stream stored it, RFC 3339 as the server wrote it.
    public var timestamp: String

    init(_ message: JSONObject, stream: String) throws(JetStreamError) {
      let context = "message of stream \(stream)"
      guard let subject = message.string("subject") else {
        throw APIJSON.missing("subject", context)
      }
      guard let seq = message.uint64("seq") else { throw APIJSON.missing("seq", context) }
      self.subject = subject
      self.seq = seq
      self.timestamp = message.string("time") ?? ""
      if let data = message.string("data") {
        guard let bytes = Base64.decode(data) else { throw APIJSON.missing("data", context) }
        self.payload = bytes
      } else {
        self.payload = []
      }
      if let hdrs = message.string("hdrs") {
        guard let block = Base64.decode(hdrs) else { throw APIJSON.missing("hdrs", context) }
        do {
          self.headers = try HeaderBlock.parse(block).headers
        } catch {
          throw JetStreamError(.response, "\(context) \(seq): \(error.message)")
        }
      } else {
        self.headers = NATSHeaders()
      }
    }
  }
}
