import Logging
import Synchronization
import TallyCore
import TallyNATS
import TallyProtocol
import TallyStore

/// Where and how the change stream is published (`tallyd --stream`; docs/REPLICATION.md).
public struct ChangeStreamConfig: Sendable {
  public var servers: [NATSAddress]
  /// The JetStream stream (created when missing, with subjects `<subjectPrefix>.>`).
  public var streamName = "TALLY"
  public var subjectPrefix = "tally.events"
  /// Copies JetStream keeps of each message when it creates the stream (3 on a 3-server
  /// cluster: an acknowledged publish is then on a quorum).
  public var replicas = 1
  /// Events read from the ledger per round: one read transaction, bounded memory.
  public var readBatchMax = 1024
  /// Messages published and not yet acknowledged by the stream. Enough to keep a
  /// loopback or LAN round trip busy at the ledger's full rate (20k/s × 50 ms = 1,000);
  /// beyond it the publisher waits for acks.
  public var unackedMax = 4096
  /// An ack older than this means the connection or the stream is stuck: reconnect and
  /// resume from the stream's last seq.
  public var ackTimeoutNanos: Int64 = 5_000_000_000
  /// Wait between connection attempts while NATS is unreachable (posting is unaffected).
  public var reconnectWaitNanos: Int64 = 500_000_000
  /// `--durability stream`: how long a group waits for the stream's ack before it is
  /// answered `NOT_REPLICATED` (`--stream-ack-timeout`, seconds).
  public var ackWaitNanos: Int64 = 5_000_000_000
  /// The stream's duplicate window when tallyd creates it. Exactly-once rests on the
  /// expected last sequence; message ids only catch a resend within the window, so a short
  /// one keeps the server's id table small at high rates.
  public var duplicateWindowNanos: Int64 = 30_000_000_000

  public init(servers: [NATSAddress]) { self.servers = servers }

  /// JetStream stream names: no spaces, dots, wildcards or path separators.
  public static func isStreamName(_ s: String) -> Bool {
    !s.isEmpty && s.utf8.count <= 64 && s.utf8.allSatisfy(isTokenByte)
  }

  /// Literal subject tokens (no wildcards) joined by dots.
  public static func isSubjectPrefix(_ s: String) -> Bool {
    let tokens = s.split(separator: ".", omittingEmptySubsequences: false)
    return s.utf8.count <= 200
      && tokens.allSatisfy { !$0.isEmpty && $0.utf8.allSatisfy(isTokenByte) }
  }

  static func isTokenByte(_ c: UInt8) -> Bool {
    switch c {
    case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
      UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
      return true
    default: return false
    }
  }

  /// The stream of the primary's signed checkpoints (beside the events' stream, whose
  /// sequence must stay the ledger's), and its one subject, outside `<subjectPrefix>.>`.
  public var checkpointStreamName: String { streamName + "_CHECKPOINTS" }
  public var checkpointSubject: String { subjectPrefix + "-checkpoints" }

  /// How often the publisher looks for newly kept checkpoints to publish.
  public var checkpointPollNanos: Int64 = 1_000_000_000

  /// From `--stream nats://H:P[,H:P…]`; the message says what is wrong.
  public init(urls: String) throws(NATSError) { servers = try NATSAddress.parseList(urls) }
}

/// Why the publisher stopped for good (until restarted): never a silent skip.
public enum ChangeStreamStop: Sendable, Equatable, CustomStringConvertible {
  /// The stream's last message is not this ledger's event at that seq: another ledger (or
  /// a fork) publishes there.
  case foreign(String)
  /// The stream holds seqs this ledger has not made durable: another primary wrote them.
  case fenced(String)

  public var description: String {
    switch self {
    case .foreign(let why): "FOREIGN_STREAM: " + why
    case .fenced(let why): "FENCED: " + why
    }
  }
}

/// Publishes every durable event, in seq order, to a JetStream stream whose sequence equals
/// the ledger's seq: each message carries `Nats-Expected-Last-Sequence: seq - 1` (so a
/// second publisher can never interleave) and `Nats-Msg-Id: <origin>:<seq>` (so a resend
/// after a lost ack is stored once). It reads the ledger like any reader and never touches
/// the writer: a NATS outage never blocks or slows posting; the stream catches up from the
/// log when NATS is back.
public final class ChangeStreamPublisher: Sendable {
  public struct Status: Sendable {
    /// `connecting`, `publishing`, `stopped` or `failed`.
    public var state = "connecting"
    /// The last seq the stream acknowledged.
    public var ackedSeq: UInt64 = 0
    /// The last seq sent (acknowledged or not).
    public var sentSeq: UInt64 = 0
    public var connects = 0
    /// Times the publisher re-read the stream's position (a lost connection, a refused
    /// publish, a stuck ack).
    public var resyncs = 0
    public var lastError: String?
    public var stop: ChangeStreamStop?
    public var server: String?
  }

  let config: ChangeStreamConfig
  let query: LedgerReader
  let journal: Journal?
  let origin: String
  let logger: Logger
  let status = Mutex(Status())
  let stopping = Atomic<Bool>(false)
  let primary = Mutex<String?>(nil)
  private let task = Mutex<Task<Void, Never>?>(nil)
  private let watchdog = Mutex<Task<Void, Never>?>(nil)
  /// Wakes the publishing loop: a sync made events durable, an ack arrived, or the
  /// watchdog's tick (which bounds every wait).
  let doorbell = Doorbell()

  /// What a group waiting in `--durability stream` is told.
  public enum Verdict: Sendable {
    case acked
    case refused(String)
  }
  struct Waiter {
    var seq: UInt64
    var deadlineNanos: Int64
    var done: @Sendable (Verdict) -> Void
  }
  /// Groups waiting for the stream's ack, in seq order (groups are synced in order). Bounded
  /// by the requests in flight: connections × `--max-inflight`.
  private let waiters = Mutex<[Waiter]>([])

  /// Why this publisher will append no more (another primary took the stream over, or it
  /// is another ledger's), if so.
  public var fencedReason: String? {
    status.withLock { s in
      switch s.stop {
      case .fenced(let why)?, .foreign(let why)?: why
      case nil: nil
      }
    }
  }

  /// Calls `done` once the stream acknowledged `seq` (`.acked`), or when it cannot within
  /// `ackWaitNanos` or ever (fenced): `.refused`. Called from any thread.
  public func whenAcked(_ seq: UInt64, _ done: @escaping @Sendable (Verdict) -> Void) {
    let deadline = monotonicNanos() + config.ackWaitNanos
    waiters.withLock { $0.append(Waiter(seq: seq, deadlineNanos: deadline, done: done)) }
    fireWaiters()
  }

  /// Answers every waiter the stream's position (or a stop, or the clock) decides.
  func fireWaiters() {
    let (acked, stop) = status.withLock { ($0.ackedSeq, $0.stop) }
    let now = monotonicNanos()
    var ready = [(Waiter, Verdict)]()
    waiters.withLock { w in
      var i = 0
      while i < w.count {
        let x = w[i]
        if x.seq <= acked {
          ready.append((x, .acked))
        } else if let stop {
          ready.append((x, .refused("\(stop)")))
        } else if x.deadlineNanos <= now {
          ready.append((x, .refused("no ack within the stream ack timeout")))
        } else {
          break
        }
        i += 1
      }
      w.removeFirst(i)
    }
    for (x, v) in ready { x.done(v) }
  }

  /// Records an ack (from the ack subscription) and answers the groups it covers.
  func acked(_ seq: UInt64) {
    status.withLock { if seq > $0.ackedSeq { $0.ackedSeq = seq } }
    fireWaiters()
    doorbell.ring()
  }

  public init(
    config: ChangeStreamConfig, reader: LedgerReader, journal: Journal?, origin: String,
    logger: Logger
  ) {
    self.config = config
    self.query = reader
    self.journal = journal
    self.origin = origin
    self.logger = logger
  }

  /// The seq every acknowledged write has reached (what the stream must catch up to).
  func durableSeq() -> UInt64 {
    if let journal { return journal.durableSeq }
    return (try? query.currentHead().seq) ?? 0
  }

  /// Starts publishing; `primaryAddress` (the server's HOST:PORT) goes in every message's
  /// `Tally-Primary`, so that replicas can name the primary in `READ_ONLY`.
  public func start(primaryAddress: String) {
    primary.withLock { $0 = primaryAddress }
    journal?.setDurableHook { [doorbell] in doorbell.ring() }
    task.withLock { t in
      precondition(t == nil, "change stream started twice")
      t = Task { [self] in await run() }
    }
    // Deadlines pass while nothing is acked (NATS down): answer those groups on time.
    watchdog.withLock { t in
      t = Task { [self] in
        while !isStopping {
          try? await Task.sleep(for: .milliseconds(20))
          fireWaiters()
          doorbell.ring()
        }
      }
    }
  }

  /// Stops publishing after a bounded attempt (`drainNanos`) to send what is durable.
  public func stop(drainNanos: Int64 = 2_000_000_000) async {
    let deadline = monotonicNanos() + drainNanos
    while monotonicNanos() < deadline {
      let s = status.withLock { $0 }
      if s.stop != nil || s.state != "publishing" || s.ackedSeq >= durableSeq() { break }
      try? await Task.sleep(for: .milliseconds(5))
    }
    stopping.store(true, ordering: .releasing)
    journal?.setDurableHook(nil)
    doorbell.ring()
    let t = task.withLock { $0 }
    await t?.value
    await watchdog.withLock { $0 }?.value
    status.withLock { if $0.stop == nil { $0.state = "stopped" } }
    // Nothing more will be acknowledged: whoever still waits is told so.
    let left = waiters.withLock { w in
      defer { w.removeAll() }
      return w
    }
    for x in left { x.done(.refused("the server is stopping")) }
  }

  /// Durable events the stream has not acknowledged yet.
  var lagEvents: UInt64 {
    let acked = status.withLock { $0.ackedSeq }
    let durable = durableSeq()
    return durable > acked ? durable - acked : 0
  }

  /// Why it stopped publishing for good (a fenced or foreign stream), if it did.
  var stopReason: String? { status.withLock { $0.stop.map(\.description) } }

  /// STATS `stream`: where the stream is and how far behind the ledger.
  public func snapshot() -> JSONObject {
    let s = status.withLock { $0 }
    let durable = durableSeq()
    func n(_ v: UInt64) -> JSONValue { .number(String(v)) }
    var members: [(key: String, value: JSONValue)] = [
      ("state", .string(s.state)),
      ("stream", .string(config.streamName)),
      ("acked_seq", n(s.ackedSeq)),
      ("sent_seq", n(s.sentSeq)),
      ("lag", n(durable > s.ackedSeq ? durable - s.ackedSeq : 0)),
      ("connects", .number(String(s.connects))),
      ("resyncs", .number(String(s.resyncs))),
      ("server", s.server.map { .string($0) } ?? .null),
      ("error", s.lastError.map { .string($0) } ?? .null),
    ]
    if let stop = s.stop { members.append(("stopped", .string(stop.description))) }
    return JSONObject(members)
  }

  private var isStopping: Bool { stopping.load(ordering: .acquiring) }

  /// Connects, resumes from the stream's last seq, publishes until the connection fails,
  /// then waits and does it again; until `stop`, or a stream that is not this ledger's.
  private func run() async {
    await reconnecting(
      "change stream", logger: logger, waitNanos: config.reconnectWaitNanos,
      isStopping: { isStopping }, session: { try await session() },
      lost: { why in
        status.withLock {
          $0.lastError = why
          $0.state = "connecting"
        }
      }
    ) { error in
      guard let stop = error as? StopPublishing else { return false }
      status.withLock {
        $0.stop = stop.reason
        $0.state = "failed"
      }
      logger.critical(
        "change stream stopped: it is not this ledger's to append to",
        metadata: ["reason": "\(stop.reason)"])
      fireWaiters()
      return true
    }
  }

  struct StopPublishing: Error { var reason: ChangeStreamStop }
  struct Resync: Error, CustomStringConvertible { var description: String }

  /// The subject of an event: `<prefix>.<partner>.<type>`, with `@ledger` for ledger-wide
  /// events and `@multi` for events of several partners (all named in `Tally-Partners`).
  /// A `.` in a partner id (a NATS token separator) is written `%2E`.
  public static func subject(prefix: String, partners: [String], type: EventType) -> String {
    let token: String
    switch partners.count {
    case 0: token = "@ledger"
    case 1:
      let p = partners[0]
      token = p.utf8.contains(UInt8(ascii: ".")) ? p.replacing(".", with: "%2E") : p
    default: token = "@multi"
    }
    return prefix + "." + token + "." + type.description
  }

  /// The headers of one event's message; `fixed` holds the ones every message of the
  /// session carries (`Tally-Origin`, `Tally-Primary`, `Nats-Expected-Stream`).
  func headers(_ r: StreamRecord, _ fixed: [(name: String, value: String)]) -> NATSHeaders {
    var f = fixed
    f.reserveCapacity(fixed.count + 8)
    f.append(("Nats-Msg-Id", origin + ":" + String(r.seq)))
    f.append(("Nats-Expected-Last-Sequence", String(r.seq - 1)))
    f.append(("Tally-Seq", String(r.seq)))
    f.append(("Tally-Leaf", r.leaf.hex))
    f.append(("Tally-Chain", r.chain.hex))
    f.append(("Tally-Type", r.type.description))
    f.append(("Tally-Ts", String(r.timestampNanos)))
    if !r.partners.isEmpty { f.append(("Tally-Partners", r.partners.joined(separator: ","))) }
    var h = NATSHeaders()
    h.fields = f
    return h
  }

  /// One connection's worth of publishing. Throws to reconnect (or `StopPublishing`).
  private func session() async throws {
    var options = NATSConnection.Options()
    options.name = "tallyd " + origin
    let conn = try await NATSConnection.connect(config.servers, options: options)
    defer { Task { await conn.close() } }
    let js = JetStream(conn)
    status.withLock {
      $0.connects += 1
      $0.server = conn.connectedServer?.description
    }
    var streamConfig = JetStream.StreamConfig(
      name: config.streamName, subjects: [config.subjectPrefix + ".>"])
    streamConfig.replicas = config.replicas
    streamConfig.duplicateWindow = .nanoseconds(config.duplicateWindowNanos)
    let info = try await js.ensureStream(streamConfig)
    let last = info.lastSeq
    try await checkOwnership(js, last: last)
    var checkpoints = JetStream.StreamConfig(
      name: config.checkpointStreamName, subjects: [config.checkpointSubject])
    checkpoints.replicas = config.replicas
    _ = try await js.ensureStream(checkpoints)
    var checkpointSize =
      try await js.lastMessage(
        stream: config.checkpointStreamName, subject: config.checkpointSubject
      )
      .flatMap { $0.headers["Tally-Size"].flatMap { UInt64($0) } } ?? 0
    var checkpointPolled = monotonicNanos()
    let inbox = "_INBOX.tally-stream." + String(UInt64.random(in: 0...UInt64.max), radix: 16)
    let acks = try await conn.subscribe(inbox + ".*", pendingMax: config.unackedMax * 2)
    defer { acks.unsubscribe() }
    let tracker = AckTracker(acked: last) { [self] seq in acked(seq) }
    let consumer = Task { await tracker.consume(acks, inbox: inbox) }
    defer { consumer.cancel() }
    status.withLock {
      $0.ackedSeq = last
      $0.sentSeq = last
      $0.state = "publishing"
      $0.lastError = nil
    }
    logger.info(
      "change stream publishing",
      metadata: ["stream": "\(config.streamName)", "from_seq": "\(last + 1)"])
    var fixed: [(name: String, value: String)] = [
      ("Nats-Expected-Stream", config.streamName), ("Tally-Origin", origin),
    ]
    if let p = primary.withLock({ $0 }) { fixed.append(("Tally-Primary", p)) }
    let readCache = StreamReadCache()
    var sent = last
    while !isStopping {
      let t = tracker.state()
      if let failure = t.failure {
        status.withLock { $0.resyncs += 1 }
        throw Resync(description: failure)
      }
      if sent > t.acked, let oldest = t.oldestSentNanos,
        monotonicNanos() - oldest > config.ackTimeoutNanos
      {
        status.withLock { $0.resyncs += 1 }
        throw Resync(description: "no ack for seq \(t.acked + 1) within the ack timeout")
      }
      if monotonicNanos() - checkpointPolled >= config.checkpointPollNanos {
        checkpointPolled = monotonicNanos()
        checkpointSize = try await publishCheckpoints(js, after: checkpointSize, upTo: t.acked)
      }
      let room = config.unackedMax - Int(sent - t.acked)
      let durable = durableSeq()
      if room <= 0 || sent >= durable {
        await doorbell.wait()
        continue
      }
      let want = min(config.readBatchMax, room, Int(durable - sent))
      let records = try query.streamRecords(fromSeq: sent + 1, limit: want, cache: readCache)
      guard let first = records.first, first.seq == sent + 1 else {
        throw Resync(description: "the log has no event at seq \(sent + 1)")
      }
      tracker.sending(upTo: records.last!.seq, now: monotonicNanos())
      // Only a batch's last message asks for an ack. Each message carries the seq it must
      // follow, and one connection's messages are stored in order: the last one stored
      // means every one before it was (a refused one, unanswered, makes every later one
      // refused too, the last one's ack included).
      let lastSeq = records.last!.seq
      try conn.publish(
        records.map { r in
          NATSConnection.Outgoing(
            subject: Self.subject(prefix: config.subjectPrefix, partners: r.partners, type: r.type),
            replyTo: r.seq == lastSeq ? inbox + "." + String(r.seq) : nil,
            headers: headers(r, fixed), payload: r.bytes)
        })
      sent = records.last!.seq
      status.withLock { $0.sentSeq = sent }
    }
  }

  /// Publishes the checkpoints this server signed and kept after tree size `after` (those
  /// of seqs the stream holds), oldest first; returns the last size published. Replicas
  /// verify them with the primary's verifier key (docs/REPLICATION.md).
  private func publishCheckpoints(_ js: JetStream, after: UInt64, upTo acked: UInt64)
    async throws -> UInt64
  {
    var size = after
    for (n, note) in try query.checkpoints(after: after, limit: 16) where n <= acked {
      var h = NATSHeaders()
      h["Tally-Size"] = String(n)
      h["Tally-Origin"] = origin
      _ = try await js.publish(
        config.checkpointSubject, headers: h, payload: Array(note.utf8),
        msgId: origin + ":checkpoint:" + String(n))
      size = n
    }
    return size
  }

  /// The stream's last message must be this ledger's event at that seq, and no further
  /// than what this ledger made durable.
  private func checkOwnership(_ js: JetStream, last: UInt64) async throws {
    if last == 0 { return }
    let durable = durableSeq()
    if last > durable {
      throw StopPublishing(
        reason: .fenced(
          "stream \(config.streamName) holds seq \(last), this ledger only \(durable): "
            + "another primary has published"))
    }
    guard let m = try await js.getMessage(stream: config.streamName, seq: last) else {
      throw Resync(description: "stream message \(last) vanished")
    }
    let mine = try query.streamRecords(fromSeq: last, limit: 1)
    guard let r = mine.first, r.seq == last else {
      throw Resync(description: "the log has no event at seq \(last)")
    }
    // The chain hash commits to the whole history up to `last`: equal means the stream is
    // this ledger's (or the one it was a replica of, before a promotion).
    if m.headers["Tally-Chain"] != r.chain.hex {
      throw StopPublishing(
        reason: .foreign(
          "stream \(config.streamName) seq \(last) is \(m.headers["Tally-Origin"] ?? "?") "
            + "chain \(m.headers["Tally-Chain"] ?? "?"), this ledger's is \(origin) chain "
            + r.chain.hex))
    }
  }
}

/// Acks of one session, in order. A refused publish (a wrong expected seq, a stream that
/// moved), an ack for the wrong seq, or an ack out of order is a failure: the session
/// resyncs from the stream's position, never skips.
final class AckTracker: Sendable {
  struct State {
    var acked: UInt64
    var sentUpTo: UInt64
    /// When the oldest unacknowledged batch was sent.
    var oldestSentNanos: Int64?
    var failure: String?
  }
  private let s: Mutex<State>
  /// Send times of batches still unacknowledged: (last seq of the batch, nanos). Bounded
  /// by the unacked window over the read batch size.
  private let batches = Mutex<[(UInt64, Int64)]>([])
  let onAck: @Sendable (UInt64) -> Void

  init(acked: UInt64, onAck: @escaping @Sendable (UInt64) -> Void) {
    s = Mutex(State(acked: acked, sentUpTo: acked))
    self.onAck = onAck
  }

  func state() -> State { s.withLock { $0 } }

  func sending(upTo seq: UInt64, now: Int64) {
    s.withLock {
      $0.sentUpTo = seq
      if $0.oldestSentNanos == nil { $0.oldestSentNanos = now }
    }
    batches.withLock { $0.append((seq, now)) }
  }

  func fail(_ why: String) { s.withLock { if $0.failure == nil { $0.failure = why } } }

  func consume(_ acks: NATSSubscription, inbox: String) async {
    do {
      for try await m in acks {
        let token = m.subject.dropFirst(inbox.count + 1)
        guard let seq = UInt64(token) else {
          fail("ack on an unexpected subject \(m.subject)")
          return
        }
        switch PubAckReply.parse(m.payload) {
        case .failure(let why):
          fail("publish of seq \(seq) refused: \(why)")
          return
        case .success(let ackSeq):
          // Acks come for the last message of each batch, in the order sent.
          let expected = batches.withLock { $0.first?.0 }
          guard seq == expected, ackSeq == seq else {
            fail(
              "ack for seq \(seq) (stream seq \(ackSeq)) where \(expected.map(String.init) ?? "none") "
                + "was next")
            return
          }
          let oldest: Int64? = batches.withLock { b in
            b.removeFirst()
            return b.first?.1
          }
          s.withLock {
            $0.acked = seq
            $0.oldestSentNanos = seq >= $0.sentUpTo ? nil : (oldest ?? $0.oldestSentNanos)
          }
          onAck(seq)
        }
      }
      fail("the ack subscription ended")
    } catch {
      fail("acks: \(error)")
    }
  }
}

/// A JetStream publish acknowledgement: `{"stream":S,"seq":N[,"duplicate":true]}` or
/// `{"error":{"code":C,"err_code":E,"description":D}}`.
enum PubAckReply {
  static func parse(_ payload: [UInt8]) -> Result<UInt64, AckError> {
    guard case .object(let o)? = try? JSONParser.parse(payload) else {
      return .failure(AckError(description: "ack is not a JSON object"))
    }
    if let e = o["error"]?.objectValue {
      let code = e["err_code"].flatMap { if case .number(let n) = $0 { n } else { nil } } ?? "?"
      return .failure(
        AckError(description: "\(e["description"]?.stringValue ?? "error") (err_code \(code))"))
    }
    guard case .number(let n)? = o["seq"], let seq = UInt64(n) else {
      return .failure(AckError(description: "ack without a seq"))
    }
    // A duplicate message id: something is already stored under it, whose content this
    // ack does not show. Never count it as ours: resync, which checks the stream's chain.
    if o["duplicate"]?.boolValue == true {
      return .failure(AckError(description: "duplicate of stream seq \(seq)"))
    }
    return .success(seq)
  }

  struct AckError: Error, CustomStringConvertible { var description: String }
}

/// One waiter, many ringers: `wait` returns at once if rung since the last wait, else at the
/// next ring. The publisher's watchdog rings every 20 ms, which bounds every wait.
final class Doorbell: Sendable {
  private let state = Mutex<(rung: Bool, waiter: CheckedContinuation<Void, Never>?)>((false, nil))

  func ring() {
    let waiter = state.withLock { s -> CheckedContinuation<Void, Never>? in
      guard let w = s.waiter else {
        s.rung = true
        return nil
      }
      s.waiter = nil
      return w
    }
    waiter?.resume()
  }

  func wait() async {
    await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
      let now = state.withLock { s -> Bool in
        if s.rung {
          s.rung = false
          return true
        }
        precondition(s.waiter == nil, "one waiter at a time: the publishing loop")
        s.waiter = c
        return false
      }
      if now { c.resume() }
    }
  }
}
