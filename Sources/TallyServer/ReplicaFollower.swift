import Logging
import Synchronization
import TallyAudit
import TallyCore
import TallyCrypto
import TallyNATS
import TallyProtocol
import TallyStore

/// A read replica's source (`tallyd --replica-of`; docs/REPLICATION.md, "Read replicas").
public struct ReplicaConfig: Sendable {
  /// The stream followed (servers, name), and how this server publishes to it once
  /// promoted.
  public var stream: ChangeStreamConfig
  public var servers: [NATSAddress] { stream.servers }
  public var streamName: String { stream.streamName }
  public var checkpointStreamName: String { stream.checkpointStreamName }
  /// The primary's verifier keys (`tally vkey` on the primary; `--primary-vkey`, repeatable:
  /// after a signing-key rotation the old and the new): with them, the replica checks every
  /// checkpoint the primary signed against its own tree and chain.
  public var primaryVerifierKeys: [String] = []
  public var checkpointPollNanos: Int64 = 1_000_000_000
  /// Events fetched from the stream per request, and appended as one write group.
  public var fetchBatch = 2048
  /// How long one fetch waits for events when the replica has caught up.
  public var fetchExpiresNanos: Int64 = 500_000_000
  public var reconnectWaitNanos: Int64 = 500_000_000

  public init(stream: ChangeStreamConfig) { self.stream = stream }
}

/// Follows the primary's change stream: fetches events in seq order from the replica's
/// head, has the writer check each against the replica's own chain and append it, and
/// stops for good (naming the seq) at the first event that does not check out.
public final class ReplicaFollower: Sendable {
  public struct Status: Sendable {
    /// `connecting`, `following`, `failed` (refused an event: see `refused`), `stopped`.
    public var state = "connecting"
    public var appliedSeq: UInt64 = 0
    /// The stream's last seq as last seen.
    public var streamSeq: UInt64 = 0
    /// The primary's address, from the last event's `Tally-Primary` header.
    public var primary: String?
    public var connects = 0
    public var lastError: String?
    public var refused: ReplicationRefusal?
    /// Checkpoints of the primary whose signature verified and whose root and chain equal
    /// this replica's at their size; the last such size.
    public var checkpointsVerified = 0
    public var checkpointSize: UInt64 = 0
  }

  let config: ReplicaConfig
  let writer: Writer
  let reader: LedgerReader
  let logger: Logger
  let status = Mutex(Status())
  let stopping = Atomic<Bool>(false)
  private let task = Mutex<Task<Void, Never>?>(nil)

  init(config: ReplicaConfig, writer: Writer, reader: LedgerReader, logger: Logger) {
    self.config = config
    self.writer = writer
    self.reader = reader
    self.logger = logger
  }

  /// Starts following (again, after `stop`).
  func start() {
    if let h = try? reader.currentHead() { status.withLock { $0.appliedSeq = h.seq } }
    stopping.store(false, ordering: .releasing)
    task.withLock { t in
      t = Task { [self] in await run() }
    }
  }

  func stop() async {
    stopping.store(true, ordering: .releasing)
    let t = task.withLock { $0 }
    await t?.value
    status.withLock { if $0.refused == nil { $0.state = "stopped" } }
  }

  var primaryAddress: String? { status.withLock { $0.primary } }

  /// Events in the stream not applied here yet.
  var lagEvents: UInt64 {
    let s = status.withLock { $0 }
    return s.streamSeq > s.appliedSeq ? s.streamSeq - s.appliedSeq : 0
  }

  /// Why it stopped applying (the refused event), if it did.
  var refusal: String? {
    status.withLock { s in s.refused.map { "seq \($0.seq): \($0.reason)" } }
  }

  /// STATS `replica`.
  func snapshot() -> JSONObject {
    let s = status.withLock { $0 }
    func n(_ v: UInt64) -> JSONValue { .number(String(v)) }
    return JSONObject([
      ("state", .string(s.state)),
      ("stream", .string(config.streamName)),
      ("seq", n(s.appliedSeq)),
      ("stream_seq", n(s.streamSeq)),
      ("lag", n(s.streamSeq > s.appliedSeq ? s.streamSeq - s.appliedSeq : 0)),
      ("primary", s.primary.map { .string($0) } ?? .null),
      ("connects", .number(String(s.connects))),
      ("checkpoints_verified", .number(String(s.checkpointsVerified))),
      ("checkpoint_size", n(s.checkpointSize)),
      ("checkpoints_checked", .bool(!config.primaryVerifierKeys.isEmpty)),
      ("error", s.lastError.map { .string($0) } ?? .null),
      (
        "refused",
        s.refused.map {
          .object(JSONObject([("seq", n($0.seq)), ("reason", .string($0.reason))]))
        } ?? .null
      ),
    ])
  }

  private var isStopping: Bool { stopping.load(ordering: .acquiring) }

  private func run() async {
    await reconnecting(
      "replica", logger: logger, waitNanos: config.reconnectWaitNanos,
      isStopping: { isStopping }, session: { try await session() },
      lost: { why in
        status.withLock {
          $0.lastError = why
          $0.state = "connecting"
        }
      }
    ) { error in
      guard let refusal = error as? ReplicationRefusal else { return false }
      let head = try? reader.currentHead().seq
      status.withLock {
        $0.refused = refusal
        $0.state = "failed"
        if let head { $0.appliedSeq = head }
      }
      logger.critical(
        "replica refused an event from the stream and stopped applying",
        metadata: ["seq": "\(refusal.seq)", "reason": "\(refusal.reason)"])
      return true
    }
  }

  struct Lost: Error, CustomStringConvertible { var description: String }

  private func session() async throws {
    var options = NATSConnection.Options()
    options.name = "tallyd replica"
    let conn = try await NATSConnection.connect(config.servers, options: options)
    defer { Task { await conn.close() } }
    let js = JetStream(conn)
    status.withLock { $0.connects += 1 }
    guard let info = try await js.streamInfo(config.streamName) else {
      throw Lost(description: "stream \(config.streamName) does not exist (yet)")
    }
    var head = try reader.currentHead().seq
    status.withLock {
      $0.streamSeq = info.lastSeq
      $0.appliedSeq = head
      $0.state = "following"
      $0.lastError = nil
    }
    var consumerConfig = JetStream.ConsumerConfig()
    consumerConfig.deliverPolicy = .byStartSequence(head + 1)
    consumerConfig.ackPolicy = .none
    consumerConfig.inactiveThreshold = .seconds(30)
    let consumer = try await js.createConsumer(stream: config.streamName, consumerConfig)
    defer {
      let name = consumer.name
      Task { try? await js.deleteConsumer(stream: config.streamName, name: name) }
    }
    logger.info(
      "replica following", metadata: ["stream": "\(config.streamName)", "from_seq": "\(head + 1)"])
    let (stream, name, batch, expires) = (
      config.streamName, consumer.name, config.fetchBatch, config.fetchExpiresNanos
    )
    func fetch() -> Task<[JetStream.Delivered], any Error> {
      Task {
        try await js.fetch(
          stream: stream, consumer: name, batch: batch, expires: .nanoseconds(expires))
      }
    }
    // One fetch runs ahead while the writer applies the batch before it: the network and
    // parsing overlap the apply, on the other core. Two pull requests on one consumer are
    // served in order.
    var next = fetch()
    defer { next.cancel() }
    var checkpoints = CheckpointCheck(config: config)
    defer { checkpoints.close(js) }
    while !isStopping {
      let got = try await next.value
      next = fetch()
      try await checkpoints.poll(js, head: head, reader: reader) { size in
        status.withLock {
          $0.checkpointsVerified += 1
          $0.checkpointSize = size
        }
      }
      if got.isEmpty { continue }
      var events = [ReplicatedEvent]()
      events.reserveCapacity(got.count)
      var primary: String?
      // Events up to a malformed message are applied; the malformed one is refused.
      var malformed: ReplicationRefusal?
      for d in got {
        do {
          events.append(try Self.event(d))
        } catch {
          malformed = error
          break
        }
        if let p = d.message.headers["Tally-Primary"] { primary = p }
      }
      let last = got.last!
      // Both counts come from the server: a sum past UInt64.max is clamped, never a trap.
      let (sum, over) = last.streamSeq.addingReportingOverflow(last.pending)
      let streamSeq = over ? UInt64.max : sum
      status.withLock {
        $0.streamSeq = streamSeq
        if let primary { $0.primary = primary }
      }
      if let first = events.first, first.seq != head + 1 {
        // The consumer started at head + 1 and delivers in order: a gap is the stream's.
        throw ReplicationRefusal(
          seq: first.seq, reason: "the stream skipped from seq \(head) to \(first.seq)")
      }
      if !events.isEmpty {
        head = try await apply(events).seq
        status.withLock { $0.appliedSeq = head }
      }
      if let malformed { throw malformed }
    }
  }

  /// One stream message as an event: its seq must be the stream's, its hashes well-formed.
  static func event(_ d: JetStream.Delivered) throws(ReplicationRefusal) -> ReplicatedEvent {
    let seq = d.streamSeq
    let h = d.message.headers
    guard h["Tally-Seq"] == String(seq) else {
      throw ReplicationRefusal(
        seq: seq, reason: "stream message \(seq) says Tally-Seq \(h["Tally-Seq"] ?? "none")")
    }
    // Lowercase hex, as the primary writes it (`Hash32(hex:)`, TallyAudit).
    guard let leaf = h["Tally-Leaf"].flatMap(Hash32.init(hex:)),
      let chain = h["Tally-Chain"].flatMap(Hash32.init(hex:))
    else {
      throw ReplicationRefusal(seq: seq, reason: "missing or malformed Tally-Leaf/Tally-Chain")
    }
    return ReplicatedEvent(seq: seq, bytes: d.message.payload, leaf: leaf, chain: chain)
  }

  /// Hands a group to the writer and waits for it to be durable (or refused).
  private func apply(_ events: [ReplicatedEvent]) async throws -> LogHead {
    let result: WriteResult = await withCheckedContinuation { done in
      let job = WriteJob(work: .replicate(events)) { done.resume(returning: $0) }
      push(job)
    }
    switch result {
    case .replicated(.success(let h)): return h
    case .replicated(.failure(let refusal)): throw refusal
    case .failed(let e): throw Lost(description: "store: \(e)")
    default: throw Lost(description: "unexpected writer result")
    }
  }

  /// Queues `job`, waiting while the writer's queue is full (bounded by the queue).
  private func push(_ job: WriteJob) {
    switch writer.queue.tryPush(job) {
    case .queued: return
    case .closed: job.complete(.failed(.io("the server is stopping")))
    case .full:
      writer.queue.notifyWhenSpace { [self] in push(job) }
    }
  }
}

/// The primary's signed checkpoints, from their stream: each must verify under the
/// primary's verifier key, and once the replica holds its size, its root and chain must be
/// the replica's own at that size. Either failing is a refusal naming the size.
struct CheckpointCheck {
  let config: ReplicaConfig
  var consumer: String?
  /// Verified signatures whose size the replica has not reached yet, in size order; at most
  /// `pendingMax` (a day of checkpoints at the default minute; a replica far behind fetches
  /// the next ones as it catches up).
  var pending: [SignedCheckpoint] = []
  static let pendingMax = 1_440
  var lastPoll: Int64 = 0
  /// Sizes seen (verified or pending) up to here are skipped when delivered again.
  var seenSize: UInt64 = 0

  init(config: ReplicaConfig) { self.config = config }

  mutating func poll(
    _ js: JetStream, head: UInt64, reader: LedgerReader, verified: (UInt64) -> Void
  ) async throws {
    if config.primaryVerifierKeys.isEmpty { return }
    // Checkpoints of sizes the replica has not reached wait here; past `pendingMax` the
    // stream keeps the rest (no ack: they are fetched again later, in order).
    if monotonicNanos() - lastPoll >= config.checkpointPollNanos
      && pending.count < Self.pendingMax
    {
      lastPoll = monotonicNanos()
      try await fetch(js, vkeys: config.primaryVerifierKeys)
    }
    while let c = pending.first, c.size <= head {
      pending.removeFirst()
      guard case .success(let own)? = try reader.checkpoint(size: c.size) else {
        throw ReplicationRefusal(
          seq: c.size, reason: "cannot compute this replica's tree at \(c.size)")
      }
      if own.root != c.root || (c.chain != nil && c.chain != own.chain) {
        throw ReplicationRefusal(
          seq: c.size,
          reason: "the primary's signed checkpoint at size \(c.size) has root \(c.root.hex) "
            + "chain \(c.chain?.hex ?? "-"), this replica's is root \(own.root.hex) chain "
            + own.chain.hex)
      }
      verified(c.size)
    }
  }

  private mutating func fetch(_ js: JetStream, vkeys: [String]) async throws {
    if consumer == nil {
      // The primary creates the stream with its first publish session.
      guard try await js.streamInfo(config.checkpointStreamName) != nil else { return }
      var c = JetStream.ConsumerConfig()
      c.ackPolicy = .none
      c.inactiveThreshold = .seconds(30)
      consumer = try await js.createConsumer(stream: config.checkpointStreamName, c).name
    }
    guard let consumer else { return }
    let got = try await js.fetch(
      stream: config.checkpointStreamName, consumer: consumer,
      batch: min(256, Self.pendingMax - pending.count),
      expires: .milliseconds(100), noWait: true)
    for d in got {
      let note = String(decoding: d.message.payload, as: UTF8.self)
      switch SignedCheckpoint.open(note: note, vkeys: vkeys) {
      case .failure(let why):
        let size = d.message.headers["Tally-Size"].flatMap { UInt64($0) } ?? 0
        throw ReplicationRefusal(
          seq: size, reason: "the checkpoint at size \(size) does not verify: \(why)")
      case .success(let c):
        if c.size <= seenSize { continue }
        seenSize = c.size
        pending.append(c)
      }
    }
  }

  func close(_ js: JetStream) {
    guard let consumer else { return }
    let stream = config.checkpointStreamName
    Task { try? await js.deleteConsumer(stream: stream, name: consumer) }
  }
}
