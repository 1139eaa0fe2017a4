import Dispatch
import Glibc
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TallyCore
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

  /// Takes over `ledger` (opened read-write): from here on only the writer thread uses it.
  public init(ledger: Ledger, config: ServerConfig, logger: Logger) {
    let writer = Writer(ledger: ledger, config: config, logger: logger)
    let pool = NIOThreadPool(numberOfThreads: config.readThreads)
    pool.start()
    context = ServerContext(
      config: config, writer: writer, reader: ledger.reader, readPool: pool, logger: logger)
    group = MultiThreadedEventLoopGroup(numberOfThreads: config.eventLoopThreads)
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
    startExpiry()
    startCheckpoints()
    return channel.localAddress?.port ?? context.config.port
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
    context.writer.stop()
    try? context.readPool.syncShutdownGracefully()
    try? group.syncShutdownGracefully()
    context.logger.info("stopped")
  }

  /// Blocks until SIGTERM or SIGINT, then shuts down gracefully.
  public func runUntilSignalled() {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    signal(SIGPIPE, SIG_IGN)
    let stop = DispatchSemaphore(value: 0)
    let q = DispatchQueue(label: "tallyd.signals")
    var sources = [any DispatchSourceSignal]()
    for sig in [SIGTERM, SIGINT] {
      let s = DispatchSource.makeSignalSource(signal: sig, queue: q)
      s.setEventHandler { stop.signal() }
      s.resume()
      sources.append(s)
    }
    stop.wait()
    shutdown()
    withExtendedLifetime(sources) {}
  }
}
