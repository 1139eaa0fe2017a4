import ArgumentParser
import Glibc
import Logging
import ServiceLifecycle
import TallyAudit
import TallyCore
import TallyHTTP
import TallyServer
import TallyStore

/// `tallyd --data DIR --listen HOST:PORT`: serves the line protocol (docs/PROTOCOL.md).
@main
struct Tallyd: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tallyd",
    abstract: "Serve a Tally ledger over the line protocol (docs/PROTOCOL.md).",
    discussion: """
      Every option can also be set in the environment: TALLY_DATA, TALLY_LISTEN, and
      TALLY_<OPTION> for the limits (e.g. TALLY_MAX_CONNECTIONS). Flags win over the
      environment. SIGTERM or SIGINT stops it gracefully.
      """)

  @Option(help: "Data directory (default: $TALLY_DATA or ./tally-data).") var data: String?
  @Option(help: "Address to listen on, HOST:PORT (default: $TALLY_LISTEN or 127.0.0.1:7878).")
  var listen: String?
  @Flag(help: "Initialise the data directory if it is not, and print a first admin key once.")
  var initialize = false
  @Option(help: "Write the bound port to this file once listening (useful with port 0).")
  var portFile: String?
  @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
  var logLevel: String?
  @Option(help: "Log lines as text (default) or json: one object per line on stderr.")
  var logFormat: String?

  @Option(help: "Longest request line in bytes (default 1048576).") var maxLineBytes: Int?
  @Option(help: "Entries per ENTRY.BATCH (default 10000, at most 100000).") var maxBatch: Int?
  @Option(help: "Open connections (default 1024).") var maxConnections: Int?
  @Option(help: "Unanswered requests per connection before reading pauses (default 128).")
  var maxInflight: Int?
  @Option(help: "Commands waiting for the writer before reading pauses (default 65536).")
  var maxQueue: Int?
  @Option(help: "Commands per write transaction (default 16384).") var maxGroup: Int?
  @Option(help: "Seconds without a complete request before closing (default 300).")
  var idleTimeout: Int64?
  @Option(help: "Seconds to authenticate after connecting (default 10).") var authTimeout: Int64?
  @Option(help: "Milliseconds between hold-expiry rounds (default 1000).")
  var expiryInterval: Int64?
  @Option(help: "Seconds between kept, signed checkpoints of the head (default 60).")
  var checkpointInterval: Int64?
  @Option(help: "Journal MiB written since the last snapshot that make one due (default 256).")
  var snapshotMib: Int?
  @Option(help: "Fewest seconds between two snapshots of the projections (default 60).")
  var snapshotMinInterval: Int64?
  @Option(help: "Most seconds a snapshot lags a ledger written to (default 600).")
  var snapshotMaxInterval: Int64?
  @Option(help: "Journal (as % of the last snapshot's size) also due before a snapshot (25).")
  var snapshotJournalPercent: Int?
  @Option(help: "MiB/s a snapshot's copy is written at most, 0 for unpaced (default 0).")
  var snapshotCopyRate: Int?
  @Option(
    help: """
      How snapshots are made: build (from the newest one and the journal, beside the live \
      map) or copy (of the live map) (default build).
      """)
  var snapshotMethod: String?
  @Option(help: "MiB/s a snapshot's build copies and writes at most, 0 for unpaced (default 24).")
  var snapshotBuildRate: Int?
  @Option(help: "Seconds per even sweep of the map's dirty pages to disk, 0: the kernel's (5).")
  var mapWriteback: Int?
  @Option(help: "Threads serving reads (default 2).") var readThreads: Int?
  @Option(help: "Event loop threads (default 1).") var eventLoops: Int?
  @Option(
    help: """
      Publish every committed event to NATS JetStream: nats://HOST:PORT[,HOST:PORT…] \
      (docs/REPLICATION.md). Off unless set.
      """)
  var stream: String?
  @Option(
    help: """
      Serve as a read replica of the primary publishing to this stream: \
      nats://HOST:PORT[,HOST:PORT…]. Writes answer READ_ONLY. With --initialize, creates an \
      empty replica directory (its events all come from the stream).
      """)
  var replicaOf: String?
  @Option(
    help: """
      With --replica-of: the primary's verifier key (tally vkey on the primary). The replica \
      then checks every checkpoint the primary signed against its own tree and chain. \
      Repeat it after the primary's signing key was rotated (the old and the new key).
      """)
  var primaryVkey: [String] = []
  @Option(
    help: """
      What OK means: local (synced in the local journal) or stream (also acknowledged by \
      the --stream; a replica given it keeps it once promoted). Default local.
      """)
  var durability: String?
  @Option(help: "Seconds a write waits for the stream's ack in --durability stream (default 5).")
  var streamAckTimeout: Int64?
  @Option(help: "JetStream stream for --stream and --replica-of (default TALLY).")
  var streamName: String?
  @Option(help: "Subject prefix for --stream (default tally.events).")
  var streamSubjectPrefix: String?
  @Option(help: "Replicas when --stream creates the stream (default 1; 3 on a cluster).")
  var streamReplicas: Int?
  @Option(
    help: """
      Serve the back office over HTTP on HOST:PORT (docs/BACKOFFICE.md), e.g. \
      127.0.0.1:8080. Off unless set. A loopback host unless --http-public is given.
      """)
  var http: String?
  @Flag(help: "Allow --http on a host other than loopback (put TLS in front of it).")
  var httpPublic = false
  @Option(help: "Write the HTTP listener's bound port to this file (useful with port 0).")
  var httpPortFile: String?
  @Option(
    help: "Free MiB on the data directory's filesystem below which /readyz fails (default 256).")
  var readyMinFreeMib: Int?
  @Option(
    help: "Largest LMDB map in MiB; past it writes answer UNAVAILABLE MAP_FULL (default: none).")
  var mapMaxMib: Int?

  func env(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

  func value<T: LosslessStringConvertible>(_ flag: T?, _ envName: String, _ def: T) throws -> T {
    if let flag { return flag }
    if let e = env(envName) {
      guard let v = T(e) else { throw ValidationError("\(envName)=\(e) is not valid") }
      return v
    }
    return def
  }

  func run() async throws {
    // Before anything allocates: a heap that does not keep large freed blocks (see there).
    if !fixLargeAllocationsToTheirOwnMappings() {
      FileHandleErr.write("tallyd: warning: glibc refused a fixed mmap threshold")
    }
    // First: from here on SIGTERM and SIGINT mean a graceful shutdown (ShutdownSignals).
    do { try ShutdownSignals.install() } catch {
      FileHandleErr.write("tallyd: cannot install the signal handlers: \(error)")
      throw ExitCode(2)
    }
    let level = try value(logLevel, "TALLY_LOG_LEVEL", "info")
    guard let lvl = Logger.Level(rawValue: level) else {
      throw ValidationError("--log-level must be trace, debug, info, notice, warning or error")
    }
    switch try value(logFormat, "TALLY_LOG_FORMAT", "text") {
    case "text":
      LoggingSystem.bootstrap { label in
        var h = StreamLogHandler.standardError(label: label)
        h.logLevel = lvl
        return h
      }
    case "json":
      LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: lvl) }
    default:
      throw ValidationError("--log-format must be text or json")
    }
    let logger = Logger(label: "tallyd")
    var c = ServerConfig()
    let dir = data ?? env("TALLY_DATA") ?? "tally-data"
    let addr = listen ?? env("TALLY_LISTEN") ?? "127.0.0.1:7878"
    guard let colon = addr.lastIndex(of: ":"), let port = Int(addr[addr.index(after: colon)...]),
      port >= 0 && port <= 65535
    else { throw ValidationError("--listen must be HOST:PORT, e.g. 127.0.0.1:7878") }
    c.host = String(addr[..<colon])
    c.port = port
    c.lineBytesMax = try value(maxLineBytes, "TALLY_MAX_LINE_BYTES", c.lineBytesMax)
    c.batchEntriesMax = try value(maxBatch, "TALLY_MAX_BATCH", c.batchEntriesMax)
    c.connectionsMax = try value(maxConnections, "TALLY_MAX_CONNECTIONS", c.connectionsMax)
    c.inflightPerConnectionMax = try value(
      maxInflight, "TALLY_MAX_INFLIGHT", c.inflightPerConnectionMax)
    c.writeQueueCommandsMax = try value(maxQueue, "TALLY_MAX_QUEUE", c.writeQueueCommandsMax)
    c.groupCommandsMax = try value(maxGroup, "TALLY_MAX_GROUP", c.groupCommandsMax)
    c.idleTimeoutSeconds = try value(idleTimeout, "TALLY_IDLE_TIMEOUT", c.idleTimeoutSeconds)
    c.authTimeoutSeconds = try value(authTimeout, "TALLY_AUTH_TIMEOUT", c.authTimeoutSeconds)
    c.holdExpiryIntervalMillis = try value(
      expiryInterval, "TALLY_EXPIRY_INTERVAL", c.holdExpiryIntervalMillis)
    c.checkpointIntervalSeconds = try value(
      checkpointInterval, "TALLY_CHECKPOINT_INTERVAL", c.checkpointIntervalSeconds)
    c.snapshots.journalBytes =
      try value(snapshotMib, "TALLY_SNAPSHOT_MIB", c.snapshots.journalBytes >> 20) << 20
    c.snapshots.minSeconds = try value(
      snapshotMinInterval, "TALLY_SNAPSHOT_MIN_INTERVAL", c.snapshots.minSeconds)
    c.snapshots.maxSeconds = try value(
      snapshotMaxInterval, "TALLY_SNAPSHOT_MAX_INTERVAL", c.snapshots.maxSeconds)
    c.snapshots.journalPercentOfCopy = try value(
      snapshotJournalPercent, "TALLY_SNAPSHOT_JOURNAL_PERCENT", c.snapshots.journalPercentOfCopy)
    c.snapshots.copyMibPerSecond = try value(
      snapshotCopyRate, "TALLY_SNAPSHOT_COPY_RATE", c.snapshots.copyMibPerSecond)
    c.snapshots.buildMibPerSecond = try value(
      snapshotBuildRate, "TALLY_SNAPSHOT_BUILD_RATE", c.snapshots.buildMibPerSecond)
    let method = snapshotMethod ?? env("TALLY_SNAPSHOT_METHOD") ?? c.snapshots.method.rawValue
    guard let m = SnapshotMethod(method) else {
      let names = SnapshotMethod.allCases.map(\.rawValue).joined(separator: " or ")
      throw ValidationError("--snapshot-method must be \(names), not \(method)")
    }
    c.snapshots.method = m
    c.mapWritebackSeconds = try value(
      mapWriteback, "TALLY_MAP_WRITEBACK", c.mapWritebackSeconds)
    c.readThreads = try value(readThreads, "TALLY_READ_THREADS", c.readThreads)
    c.eventLoopThreads = try value(eventLoops, "TALLY_EVENT_LOOPS", c.eventLoopThreads)
    if let urls = stream ?? env("TALLY_STREAM") {
      c.stream = try streamConfig(urls, flag: "--stream")
    }
    let replicaURLs = replicaOf ?? env("TALLY_REPLICA_OF")
    if !primaryVkey.isEmpty && replicaURLs == nil {
      throw ValidationError("--primary-vkey is for a replica: give --replica-of too")
    }
    if let urls = replicaURLs {
      if c.stream != nil {
        throw ValidationError(
          "--replica-of and --stream exclude each other (a replica publishes nothing)")
      }
      // The stream it follows, and publishes to once promoted.
      var r = ReplicaConfig(stream: try streamConfig(urls, flag: "--replica-of"))
      r.primaryVerifierKeys =
        primaryVkey.isEmpty ? (env("TALLY_PRIMARY_VKEY").map { [$0] } ?? []) : primaryVkey
      for k in r.primaryVerifierKeys where VerifierKey.name(k) == nil {
        throw ValidationError("--primary-vkey must be a verifier key name+hash+base64 (tally vkey)")
      }
      c.replica = r
    }
    let mode = try value(durability, "TALLY_DURABILITY", "local")
    guard let d = Durability(rawValue: mode) else {
      throw ValidationError("--durability must be local or stream")
    }
    if d == .stream && c.stream == nil && c.replica == nil {
      throw ValidationError(
        "--durability stream needs --stream (or --replica-of, for after a promotion)")
    }
    c.durability = d
    try check(c)
    let httpConfig = try httpConfig()
    // Metrics are recorded only when the listener that serves them runs.
    c.metrics = httpConfig != nil

    var options = LedgerOptions()
    let mapMax = try env("TALLY_MAP_MAX_MIB").map { e in
      guard let v = Int(e) else { throw ValidationError("TALLY_MAP_MAX_MIB=\(e) is not valid") }
      return v
    }
    if let mib = mapMaxMib ?? mapMax {
      // 1 MiB holds a new ledger's tables; 16 TiB is far past any disk this runs on.
      guard mib >= 1 && mib <= 1 << 24 else {
        throw ValidationError("--map-max-mib must be 1…16777216")
      }
      options.mapBytesMax = mib << 20
    }
    let ledger: Ledger
    do {
      var st = stat()
      if initialize && stat(dir + "/data.mdb", &st) != 0 {
        ledger =
          c.replica != nil
          ? try Ledger.createReplica(at: dir, options: options)
          : try Ledger.create(at: dir, now: nowNanos(), options: options)
        let k = try ledger.createKey(role: .admin, partner: nil, now: nowNanos()).get()
        print("initialised \(dir)")
        print("first admin key (shown once; keep the secret safe):")
        print("  key    \(k.id)")
        print("  secret \(k.secret)")
      } else {
        ledger = try Ledger(path: dir, mode: .readWrite, options: options)
        logger.info("opened \(dir): \(ledger.recovery)", metadata: ["head": "\(ledger.head.seq)"])
      }
    } catch let e as StoreError {
      FileHandleErr.write("tallyd: error \(e.code): \(e)")
      throw ExitCode(2)
    } catch let r as Rejection {
      FileHandleErr.write("tallyd: could not create the first key: \(r)")
      throw ExitCode(2)
    }
    if !ledger.mapBlocksAllocated {
      let why =
        "\(dir) cannot have the LMDB map's blocks reserved ahead: a full disk may stop tallyd "
        + "instead of refusing writes (docs/OPERATIONS.md, \"When the disk fills\")"
      logger.warning("\(why)")
    }
    let server = TallyServer(ledger: ledger, config: c, logger: logger)
    let bound: Int
    do {
      bound = try server.start()
    } catch {
      FileHandleErr.write("tallyd: cannot listen on \(addr): \(error)")
      throw ExitCode(2)
    }
    if let portFile { writePort(bound, to: portFile) }
    print(
      "tallyd listening on \(c.host):\(bound), data \(dir) (durable: every OK is in the synced journal)"
    )
    print("connect: nc \(c.host) \(bound)   then AUTH (see docs/PROTOCOL.md)")
    fflush(nil)
    signal(SIGPIPE, SIG_IGN)
    // Startup is done above (recovery, bind); the group runs the services and, on SIGTERM
    // or SIGINT (from ShutdownSignals), shuts them down in reverse order: drain, final
    // checkpoint, close.
    var services = [
      ServiceGroupConfiguration.ServiceConfiguration(
        service: LedgerService(server: server),
        successTerminationBehavior: .gracefullyShutdownGroup,
        failureTerminationBehavior: .gracefullyShutdownGroup)
    ]
    if let httpConfig {
      // After the ledger's service: a shutdown stops the listener first.
      services.append(
        ServiceGroupConfiguration.ServiceConfiguration(
          service: try httpService(server, httpConfig, logger),
          successTerminationBehavior: .gracefullyShutdownGroup,
          failureTerminationBehavior: .gracefullyShutdownGroup))
    }
    // The signals are tallyd's own (installed first thing), not the group's.
    let group = ServiceGroup(
      configuration: ServiceGroupConfiguration(
        services: services, gracefulShutdownSignals: [], logger: logger))
    ShutdownSignals.deliver(to: group, logger: logger)
    do {
      try await group.run()
    } catch {
      // A service failed (e.g. the HTTP listener could not bind): the group shut the
      // others down gracefully; say why and exit 2, as a socket that cannot bind does.
      FileHandleErr.write("tallyd: stopped: \(error)")
      throw ExitCode(2)
    }
  }

  /// `--http HOST:PORT` (or TALLY_HTTP), checked: a loopback host unless --http-public.
  func httpConfig() throws -> HTTPConfig? {
    guard let addr = http ?? env("TALLY_HTTP") else {
      if httpPublic || httpPortFile != nil {
        throw ValidationError("--http-public and --http-port-file need --http HOST:PORT")
      }
      return nil
    }
    guard let colon = addr.lastIndex(of: ":"), let port = Int(addr[addr.index(after: colon)...]),
      port >= 0 && port <= 65535, colon > addr.startIndex
    else { throw ValidationError("--http must be HOST:PORT, e.g. 127.0.0.1:8080") }
    var host = String(addr[..<colon])
    if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    let loopback = host == "localhost" || host == "::1" || host.hasPrefix("127.")
    if !loopback && !httpPublic {
      throw ValidationError(
        "--http \(addr) is not a loopback address: give --http-public to serve it beyond this host"
      )
    }
    var h = HTTPConfig()
    h.host = host
    h.port = port
    let floor = try value(readyMinFreeMib, "TALLY_READY_MIN_FREE_MIB", h.readyMinFreeBytes >> 20)
    if floor < 0 || floor > 1 << 24 {
      throw ValidationError("--ready-min-free-mib must be 0…16777216")
    }
    h.readyMinFreeBytes = floor << 20
    return h
  }

  /// The HTTP listener as a service of the group (a Hummingbird application is one).
  func httpService(_ server: TallyServer, _ config: HTTPConfig, _ logger: Logger) throws
    -> some Service
  {
    let portFile = httpPortFile
    return try makeHTTPApplication(
      server: server, config: config, logger: logger,
      onListening: { port in
        if let portFile { writePort(port, to: portFile) }
        logger.info("HTTP listening", metadata: ["http": "\(config.host):\(port)"])
      })
  }

  /// The stream `--stream` publishes to, or `--replica-of` follows (and publishes to once
  /// promoted): servers, name, subject prefix, replicas and ack timeout, each checked.
  func streamConfig(_ urls: String, flag: String) throws -> ChangeStreamConfig {
    var s: ChangeStreamConfig
    do { s = try ChangeStreamConfig(urls: urls) } catch {
      throw ValidationError("\(flag): \(error)")
    }
    s.streamName = try value(streamName, "TALLY_STREAM_NAME", s.streamName)
    s.subjectPrefix = try value(
      streamSubjectPrefix, "TALLY_STREAM_SUBJECT_PREFIX", s.subjectPrefix)
    s.replicas = try value(streamReplicas, "TALLY_STREAM_REPLICAS", s.replicas)
    let ackSeconds = try value(streamAckTimeout, "TALLY_STREAM_ACK_TIMEOUT", Int64(5))
    if ackSeconds < 1 || ackSeconds > 3600 {
      throw ValidationError("--stream-ack-timeout must be 1…3600")
    }
    s.ackWaitNanos = ackSeconds * 1_000_000_000
    if !(1...5).contains(s.replicas) { throw ValidationError("--stream-replicas must be 1…5") }
    if !ChangeStreamConfig.isStreamName(s.streamName) {
      throw ValidationError("--stream-name must be 1…64 characters of [A-Za-z0-9_-]")
    }
    if !ChangeStreamConfig.isSubjectPrefix(s.subjectPrefix) {
      throw ValidationError(
        "--stream-subject-prefix must be dot-separated tokens of [A-Za-z0-9_-], e.g. tally.events")
    }
    return s
  }

  func check(_ c: ServerConfig) throws {
    func range(_ v: Int, _ lo: Int, _ hi: Int, _ name: String) throws {
      if v < lo || v > hi { throw ValidationError("\(name) must be \(lo)…\(hi)") }
    }
    try range(c.lineBytesMax, 1024, 64 << 20, "--max-line-bytes")
    try range(c.batchEntriesMax, 1, Limits.commandsPerBatchMax, "--max-batch")
    try range(c.connectionsMax, 1, 65_536, "--max-connections")
    try range(c.inflightPerConnectionMax, 1, 65_536, "--max-inflight")
    try range(c.writeQueueCommandsMax, 1, 10_000_000, "--max-queue")
    try range(c.groupCommandsMax, 1, Limits.commandsPerBatchMax, "--max-group")
    try range(Int(c.idleTimeoutSeconds), 1, 86_400 * 7, "--idle-timeout")
    try range(Int(c.authTimeoutSeconds), 1, 3600, "--auth-timeout")
    try range(Int(c.holdExpiryIntervalMillis), 10, 3_600_000, "--expiry-interval")
    try range(Int(c.checkpointIntervalSeconds), 1, 86_400, "--checkpoint-interval")
    try range(c.snapshots.journalBytes >> 20, 1, 1 << 20, "--snapshot-mib")
    try range(Int(c.snapshots.minSeconds), 0, 86_400, "--snapshot-min-interval")
    try range(c.snapshots.journalPercentOfCopy, 0, 10_000, "--snapshot-journal-percent")
    try range(c.snapshots.copyMibPerSecond, 0, 1 << 20, "--snapshot-copy-rate")
    try range(c.snapshots.buildMibPerSecond, 0, 1 << 20, "--snapshot-build-rate")
    try range(c.mapWritebackSeconds, 0, 3_600, "--map-writeback")
    try range(Int(c.snapshots.maxSeconds), 1, 86_400 * 7, "--snapshot-max-interval")
    try range(c.readThreads, 1, 64, "--read-threads")
    try range(c.eventLoopThreads, 1, 64, "--event-loops")
  }
}

/// Writes a bound port for tests and scripts (`--port-file`, `--http-port-file`).
func writePort(_ port: Int, to path: String) {
  let text = "\(port)\n"
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  if fd >= 0 {
    _ = text.withCString { write(fd, $0, strlen($0)) }
    close(fd)
  }
}

func nowNanos() -> Int64 {
  var ts = timespec()
  clock_gettime(CLOCK_REALTIME, &ts)
  return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

enum FileHandleErr {
  static func write(_ s: String) {
    let line = s.hasSuffix("\n") ? s : s + "\n"
    _ = line.withCString { Glibc.write(2, $0, strlen($0)) }
  }
}
