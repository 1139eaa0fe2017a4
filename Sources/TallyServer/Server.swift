import Dispatch
import Glibc
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TallyCore
import TallyNATS
import TallyProtocol
import TallyStore

/// `tallyd`: the line-protocol server over one data directory.
public final class TallyServer: Sendable {
  let context: ServerContext
  let group: MultiThreadedEventLoopGroup
  let serverChannel: Mutex<(any Channel)?> = Mutex(nil)
  let expiry: Mutex<RepeatedTask?> = Mutex(nil)
  let expiryQueued = Atomic<Bool>(false)
  let checkpointTask: Mutex<RepeatedTask?> = Mutex(nil)
  let checkpointQueued = Atomic<Bool>(false)
  let done = Mutex<Bool>(false)
  /// The ledger's journal and name, for a publisher made at promotion.
  let journal: Journal?
  let origin: String
  /// The data directory (its filesystem's free space is a readiness check).
  let dataPath: String
  /// Set once `start` bound the socket and started the writer.
  let serving = Atomic<Bool>(false)

  /// Takes over `ledger` (opened read-write): from here on only the writer thread uses it.
  public init(ledger: Ledger, config: ServerConfig, logger: Logger) {
    let writer = Writer(
      ledger: ledger, config: config, metrics: config.metrics ? ServerMetrics() : nil,
      logger: logger)
    let origin = ledger.reader.origin ?? "tally.ledger/unnamed"
    self.origin = origin
    journal = ledger.journal
    dataPath = ledger.path
    let pool = NIOThreadPool(numberOfThreads: config.readThreads)
    pool.start()
    context = ServerContext(
      config: config, writer: writer, reader: ledger.reader, readPool: pool, logger: logger)
    if let s = config.stream {
      context.replication.stream.withLock {
        $0 = ChangeStreamPublisher(
          config: s, reader: ledger.reader, journal: ledger.journal,
          origin: origin, logger: logger)
      }
    }
    if let r = config.replica {
      context.replication.replica.withLock {
        $0 = ReplicaFollower(config: r, writer: writer, reader: ledger.reader, logger: logger)
      }
    }
    group = MultiThreadedEventLoopGroup(numberOfThreads: config.eventLoopThreads)
    context.replication.promoter.withLock {
      $0 = { [weak self] in
        await self?.promote() ?? WireError(.shuttingDown, "the server is shutting down").line
      }
    }
  }

  /// Binds and starts serving; returns the bound port (useful with port 0).
  public func start() throws -> Int {
    context.writer.start()
    let ctx = context
    let bootstrap = ServerBootstrap(group: group)
      .serverChannelOption(.backlog, value: 256)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
      .childChannelOption(.maxMessagesPerRead, value: 16)
      .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(LineDecoder(lineBytesMax: ctx.config.lineBytesMax)))
          try channel.pipeline.syncOperations.addHandler(ConnectionHandler(server: ctx))
        }
      }
    let channel = try bootstrap.bind(host: context.config.host, port: context.config.port).wait()
    serverChannel.withLock { $0 = channel }
    let port = channel.localAddress?.port ?? context.config.port
    context.replication.address.withLock { $0 = "\(context.config.host):\(port)" }
    if let follower = context.replication.replica.withLock({ $0 }) {
      // Events, expiries included, come from the primary; nothing is signed here.
      follower.start()
    } else {
      startPrimary()
    }
    serving.store(true, ordering: .releasing)
    return port
  }

  /// `REPLICA.PROMOTE`: stops following, checks that this replica holds everything the
  /// stream holds, then serves as the primary: writes, expiry, checkpoints, and publishing
  /// to the same stream (whose expected-last-sequence check fences the old primary).
  func promote() async -> String {
    let replication = context.replication
    guard let follower = replication.replica.withLock({ $0 }) else {
      return WireError(.badRequest, "this server is not a read replica", reason: "NOT_A_REPLICA")
        .line
    }
    if let refused = follower.status.withLock({ $0.refused }) {
      return WireError(
        .badRequest, "this replica refused the stream at \(refused); it cannot be promoted",
        reason: "REPLICA_FAILED", details: ["seq": String(refused.seq)]
      ).line
    }
    await follower.stop()
    let r = follower.config
    let head: UInt64
    let streamSeq: UInt64
    do {
      let conn = try await NATSConnection.connect(r.servers)
      defer { Task { await conn.close() } }
      streamSeq = try await JetStream(conn).streamInfo(r.streamName)?.lastSeq ?? 0
      head = try context.reader.currentHead().seq
    } catch {
      follower.start()
      return WireError(.internal, "cannot read the stream's position: \(error)").line
    }
    if head != streamSeq {
      follower.start()
      return WireError(
        .notCaughtUp,
        "this replica holds seq \(head), the stream \(streamSeq): promote it once caught up",
        details: ["seq": String(head), "stream_seq": String(streamSeq)]
      ).line
    }
    let publisher = ChangeStreamPublisher(
      config: r.stream, reader: context.reader, journal: journal, origin: origin,
      logger: context.logger)
    replication.stream.withLock { $0 = publisher }
    replication.replica.withLock { $0 = nil }
    startPrimary()
    context.logger.notice("promoted to primary", metadata: ["seq": "\(head)"])
    return WireOK.line(
      JSONObject([
        ("promoted", .bool(true)), ("seq", .number(String(head))),
        ("stream", .string(r.streamName)),
        ("durability", .string(context.config.durability.rawValue)),
      ]))
  }

  /// What a primary runs beside serving: hold expiry, kept checkpoints, the change stream.
  func startPrimary() {
    startExpiry()
    startCheckpoints()
    if let stream = context.replication.stream.withLock({ $0 }) {
      context.writer.streamAcks.withLock {
        $0 = context.config.durability == .stream ? stream : nil
      }
      stream.start(primaryAddress: context.replication.address.withLock { $0 } ?? "")
    }
  }

  /// Appends expiry events for holds past their deadline, on a timer. At most one expiry
  /// job waits at a time; a full round (the per-command maximum) is followed at once by
  /// another.
  func startExpiry() {
    let interval = TimeAmount.milliseconds(context.config.holdExpiryIntervalMillis)
    let task = group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) {
      [self] _ in enqueueExpiry()
    }
    expiry.withLock { $0 = task }
  }

  func enqueueExpiry() {
    guard !expiryQueued.exchange(true, ordering: .acquiringAndReleasing) else { return }
    let job = WriteJob(work: .commands([.expireHolds(asOfNanos: Writer.now())], nil)) {
      [self] result in
      expiryQueued.store(false, ordering: .releasing)
      if case .outcomes(let o, _) = result, case .applied(_, let count) = o[0] {
        if count > 0 {
          context.logger.info("expired holds", metadata: ["count": "\(count)"])
        }
        if count >= Limits.holdsPerExpireMax { enqueueExpiry() }
      }
    }
    if context.writer.queue.tryPush(job) != .queued {
      expiryQueued.store(false, ordering: .releasing)
    }
  }

  /// Signs and keeps a checkpoint of the head every interval (nothing when the head has not
  /// moved); at most one such job waits at a time.
  func startCheckpoints() {
    let interval = TimeAmount.seconds(context.config.checkpointIntervalSeconds)
    let task = group.next().scheduleRepeatedTask(initialDelay: interval, delay: interval) {
      [self] _ in
      guard !checkpointQueued.exchange(true, ordering: .acquiringAndReleasing) else { return }
      let job = WriteJob(work: .keepCheckpoint) { [self] result in
        checkpointQueued.store(false, ordering: .releasing)
        if case .checkpointKept(let c?) = result {
          context.logger.info("checkpoint kept", metadata: ["size": "\(c.size)"])
        }
      }
      if context.writer.queue.tryPush(job) != .queued {
        checkpointQueued.store(false, ordering: .releasing)
      }
    }
    checkpointTask.withLock { $0 = task }
  }

  /// Queues a last signed checkpoint of the head; the writer's stop runs it before closing,
  /// so a restarted server (and an auditor) starts from a signed head.
  func queueFinalCheckpoint() {
    let logger = context.logger
    let job = WriteJob(work: .keepCheckpoint) { result in
      if case .checkpointKept(let c?) = result {
        logger.info("final checkpoint kept", metadata: ["size": "\(c.size)"])
      }
    }
    if context.writer.queue.tryPush(job) != .queued {
      logger.warning("no final checkpoint: the write queue is full or closed")
    }
  }

  /// Graceful stop: stop accepting; connections answer what they read and close; the
  /// writer finishes its queue; then everything is released. Bounded by the grace period.
  public func shutdown() {
    let first = done.withLock { d -> Bool in
      defer { d = true }
      return !d
    }
    guard first else { return }
    context.logger.info("shutting down")
    context.shuttingDown.store(true, ordering: .releasing)
    expiry.withLock { $0?.cancel() }
    checkpointTask.withLock { $0?.cancel() }
    if let ch = serverChannel.withLock({ $0 }) { try? ch.close().wait() }
    let open = context.channels.withLock { Array($0.values) }
    for ch in open { ch.pipeline.fireUserInboundEventTriggered(ShutdownEvent()) }
    let deadline = NIODeadline.now() + .seconds(context.config.shutdownGraceSeconds)
    while context.info.connections.load(ordering: .relaxed) > 0 && NIODeadline.now() < deadline {
      usleep(10_000)
    }
    let left = context.channels.withLock { Array($0.values) }
    for ch in left { ch.close(promise: nil) }
    let stream = context.replication.stream.withLock { $0 }
    let follower = context.replication.replica.withLock { $0 }
    if stream != nil || follower != nil {
      // Everything answered is durable: give the stream a bounded moment to take it.
      let stopped = DispatchSemaphore(value: 0)
      Task {
        await follower?.stop()
        await stream?.stop()
        stopped.signal()
      }
      stopped.wait()
    }
    if context.replication.replica.withLock({ $0 }) == nil { queueFinalCheckpoint() }
    context.writer.stop()
    try? context.readPool.syncShutdownGracefully()
    try? group.syncShutdownGracefully()
    context.logger.info("stopped")
  }

}
