import ArgumentParser
import TallyClient

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// `tally-load`: drives a running `tallyd` with transfers over many connections and reports
/// throughput, latency percentiles and errors.
@main
struct TallyLoad: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "tally-load",
    abstract: "Load generator for tallyd: random 2-leg USD transfers between load accounts.",
    discussion: """
      Closed loop (default): every connection keeps --inflight requests outstanding and \
      sends the next as soon as one is answered. Open loop (--rate R): entries are \
      scheduled at R per second in total and latency counts from the scheduled time; at \
      most --inflight requests are outstanding per connection, sends over 1 ms behind \
      schedule are reported as late and those over 1 s behind are skipped (reported, not \
      queued).

      Accounts are load-0 … load-<N-1> (USD, partner platform, normal debit); --setup \
      opens them first, idempotently. Entry ids are <run-id>-<connection>-<counter>. \
      Errors are counted per entry by wire code; the run completes regardless.

      Exit codes: 0 ran, 1 setup rejected, 2 usage or connection error.
      """)

  @Option(help: "Server address HOST:PORT.")
  var server = "127.0.0.1:7878"

  @Option(help: "Key id for AUTH (default: $TALLY_KEY). Without a key no AUTH is sent.")
  var key: String?

  @Option(help: "Key secret as printed at creation (default: $TALLY_SECRET).")
  var secret: String?

  @Option(help: "Connections (1…1024).")
  var connections = 64

  @Option(help: "Requests outstanding per connection (1…256).")
  var inflight = 1

  @Option(help: "Entries per request: 1 sends ENTRY.POST, more send ENTRY.BATCH (…10000).")
  var entriesPerRequest = 1

  @Option(help: "Load accounts to spread transfers over (2…10000000).")
  var accounts = 10_000

  @Option(help: "Percentage 0…100 of entries with a leg on the hot account load-0.")
  var hotFraction = 0

  @Option(help: "Target entries per second in total, open loop; 0 runs closed loop.")
  var rate = 0

  @Option(help: "Measured seconds (1…3600).")
  var duration = 10

  @Option(help: "Unmeasured seconds before the measurement (0…600).")
  var warmup = 1

  @Flag(
    help: """
      Closed loop, one request in flight: each connection on its own thread with blocking \
      socket calls instead of the event loop (as a synchronous service posts).
      """)
  var blocking = false

  @Flag(help: "Open the load accounts before the run (idempotent).")
  var setup = false

  @Option(help: "Prefix of entry ids, [A-Za-z0-9._] up to 24 characters (default: random).")
  var runId: String?

  @Flag(help: "Print one JSON object instead of text.")
  var json = false

  func validate() throws {
    func check(_ value: Int, _ range: ClosedRange<Int>, _ name: String) throws {
      guard range.contains(value) else {
        throw ValidationError("--\(name) must be \(range.lowerBound)…\(range.upperBound)")
      }
    }
    try check(connections, 1...1_024, "connections")
    try check(inflight, 1...256, "inflight")
    try check(entriesPerRequest, 1...10_000, "entries-per-request")
    try check(accounts, 2...10_000_000, "accounts")
    try check(hotFraction, 0...100, "hot-fraction")
    try check(rate, 0...10_000_000, "rate")
    try check(duration, 1...3_600, "duration")
    try check(warmup, 0...600, "warmup")
    if let runId {
      guard !runId.isEmpty, runId.utf8.count <= 24,
        runId.utf8.allSatisfy({ byte in
          (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A)
            || (byte >= 0x61 && byte <= 0x7A) || byte == 0x2E || byte == 0x5F
        })
      else {
        throw ValidationError("--run-id must be 1…24 characters of [A-Za-z0-9._]")
      }
    }
    do {
      _ = try Endpoint(parsing: server)
    } catch {
      throw ValidationError("--server: \(error)")
    }
    if blocking && (rate != 0 || inflight != 1 || connections > 64) {
      throw ValidationError(
        "--blocking runs a closed loop: no --rate, --inflight 1, at most 64 connections")
    }
    if (key ?? environment("TALLY_KEY")) != nil && (secret ?? environment("TALLY_SECRET")) == nil {
      throw ValidationError("a key needs its secret: --secret or TALLY_SECRET")
    }
  }

  mutating func run() async throws {
    let config = LoadConfig(
      endpoint: try Endpoint(parsing: server),
      key: key ?? environment("TALLY_KEY"),
      secret: secret ?? environment("TALLY_SECRET"),
      connections: connections, inflight: inflight, entriesPerRequest: entriesPerRequest,
      accounts: accounts, hotPercent: hotFraction, rate: rate, durationSeconds: duration,
      warmupSeconds: warmup, runID: runId ?? Self.randomRunID(), blocking: blocking)
    if setup {
      do {
        try await openAccounts(config, log: standardError)
      } catch let error as SetupError {
        standardError("tally-load: setup rejected: \(error)")
        throw ExitCode(1)
      } catch {
        standardError("tally-load: setup failed: \(error)")
        throw ExitCode(2)
      }
    }
    let report: Report
    do {
      if blocking {
        report = try runBlockingLoad(config, log: standardError)
      } else {
        report = try await runLoad(config, log: standardError)
      }
    } catch {
      standardError("tally-load: \(error)")
      throw ExitCode(2)
    }
    print(json ? report.json : report.text)
  }

  /// Eight hex digits, enough that reruns against one ledger do not collide.
  static func randomRunID() -> String {
    let value = UInt32.random(in: 0...UInt32.max)
    let digits = String(value, radix: 16)
    return "r" + String(repeating: "0", count: 8 - digits.count) + digits
  }
}

func environment(_ name: String) -> String? {
  guard let value = getenv(name) else { return nil }
  let text = String(cString: value)
  return text.isEmpty ? nil : text
}

/// Progress and diagnostics go to stderr, so `--json` output on stdout stays one object.
@Sendable func standardError(_ message: String) {
  let line = Array((message + "\n").utf8)
  line.withUnsafeBytes { bytes in
    var offset = 0
    // Bounded: each round writes at least one byte or gives up.
    while offset < bytes.count {
      let written = write(2, bytes.baseAddress! + offset, bytes.count - offset)
      if written <= 0 { return }
      offset += written
    }
  }
}

/// Connects every connection, runs the workers until the end of the window, and merges what
/// they measured.
func runLoad(_ config: LoadConfig, log: @Sendable (String) -> Void) async throws -> Report {
  var clients: [TallyClient] = []
  clients.reserveCapacity(config.connections)
  do {
    try await withThrowingTaskGroup(of: TallyClient.self) { group in
      // Connect in waves so that a large --connections does not flood the listen backlog.
      var started = 0
      while started < config.connections {
        let wave = min(64, config.connections - started)
        for _ in 0..<wave {
          group.addTask { try await openClient(config) }
        }
        started += wave
        for _ in 0..<wave {
          if let client = try await group.next() { clients.append(client) }
        }
      }
    }
  } catch {
    for client in clients { await client.close() }
    throw error
  }
  log(
    "tally-load: \(config.connections) connections ready; running \(config.warmupSeconds) s "
      + "warmup + \(config.durationSeconds) s")

  let clock = ContinuousClock()
  // A short lead so every worker is waiting when the schedule starts.
  let start = clock.now + .milliseconds(20)
  let measureFrom = start + .seconds(config.warmupSeconds)
  let timeline = Timeline(
    start: start, measureFrom: measureFrom, end: measureFrom + .seconds(config.durationSeconds))
  let perConnection = (0..<config.connections).map { _ in ConnectionStats() }
  let watchdog = Watchdog()
  let connectedClients = clients
  // Requests still unanswered this long after the end are given up on: the connections are
  // closed, which fails the waiting calls, so the run ends in bounded time.
  let grace = Duration.seconds(10)
  let guardTask = Task {
    try await Task.sleep(until: timeline.end + grace, clock: clock)
    watchdog.fired.store(true, ordering: .relaxed)
    for client in connectedClients { await client.close() }
  }

  let lost = await withTaskGroup(of: Int?.self) { group in
    for connection in 0..<config.connections {
      let client = connectedClients[connection]
      let loop = LoopBound(client)
      for slot in 0..<config.inflight {
        group.addTask {
          let healthy = await runWorker(
            on: loop, client: client, connection: connection, slot: slot, config: config,
            timeline: timeline, stats: perConnection[connection], watchdog: watchdog)
          return healthy ? nil : connection
        }
      }
    }
    var lost = Set<Int>()
    for await connection in group {
      if let connection { lost.insert(connection) }
    }
    return lost.count
  }
  guardTask.cancel()
  for client in clients { await client.close() }

  var total = Stats()
  for stats in perConnection {
    stats.state.withLock { total.merge($0) }
  }
  return Report(config: config, stats: total, connectionsLost: lost)
}
