import CoreMetrics
import Prometheus
import Synchronization
import TallyCore
import TallyProtocol
import TallyStore

/// The server's metrics, recorded through swift-metrics into a Prometheus registry of this
/// server's own (no process-wide state, so tests can run several servers). The hot path
/// records once per write group or per sync, never per entry; levels (queue depth,
/// connections, sizes, ages, lags) are read when `/metrics` is scraped. Names and units follow
/// the Prometheus conventions: `_total` counters, `_seconds` durations, `_bytes` sizes.
/// docs/OPERATIONS.md lists each one.
public final class ServerMetrics: Sendable {
  public let registry: PrometheusCollectorRegistry
  let factory: PrometheusMetricsFactory

  /// Commands the writer decided, by result: `applied` (appended events) or `duplicate`
  /// (a retried id); rejections are counted by code.
  let commandsApplied: CoreMetrics.Counter
  let commandsDuplicate: CoreMetrics.Counter
  /// Engine rejections by code (docs/PROTOCOL.md), batch items included.
  private let rejections: Mutex<[RejectionCode: CoreMetrics.Counter]> = Mutex([:])
  /// `ERR` lines answered on the socket, by wire code.
  private let errors: Mutex<[String: CoreMetrics.Counter]> = Mutex([:])
  /// Commands per write group.
  let groupCommands: CoreMetrics.Recorder
  /// One group's apply and LMDB commit (journal append included, sync excluded).
  let groupApply: CoreMetrics.Timer
  /// One `fdatasync` of the journal.
  let journalSync: CoreMetrics.Timer
  let writeFailures: CoreMetrics.Counter

  // Levels, set when scraped.
  let queueDepth: CoreMetrics.Recorder
  let inflight: CoreMetrics.Recorder
  let connections: [String: CoreMetrics.Recorder]
  let headSeq: CoreMetrics.Recorder
  let journalBytes: CoreMetrics.Recorder
  let mapBytes: CoreMetrics.Recorder
  let mapUsedBytes: CoreMetrics.Recorder
  let checkpointAge: CoreMetrics.Recorder
  let checkpointSize: CoreMetrics.Recorder
  let reconItems: [ReconState: CoreMetrics.Recorder]
  let streamLag: CoreMetrics.Recorder
  let replicaLag: CoreMetrics.Recorder
  let uptime: CoreMetrics.Recorder
  /// `tally_writes_refused{reason}`, one per reason in `refusalReasons`.
  let writesRefused: [String: CoreMetrics.Recorder]
  let writesRefusedSeconds: CoreMetrics.Recorder
  static let refusalReasons = ["NO_SPACE", "MAP_FULL", "IO"]

  /// Labels for connections: the four roles, and `none` before AUTH.
  static let connectionRoles = ["none"] + Role.allCases.map(\.rawValue)

  public init() {
    let registry = PrometheusCollectorRegistry()
    var f = PrometheusMetricsFactory(registry: registry)
    // A group commits in tens of microseconds to milliseconds, a sync in ~0.1 to tens of
    // milliseconds: the default buckets (5 ms up) would put nearly all of them in one.
    let micro: [Duration] = [
      .microseconds(25), .microseconds(50), .microseconds(100), .microseconds(250),
      .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
      .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
      .milliseconds(250), .seconds(1),
    ]
    f.defaultDurationHistogramBuckets = micro
    // Group sizes run from 1 to `Limits.commandsPerBatchMax`.
    f.defaultValueHistogramBuckets = [
      1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
    ]
    self.registry = registry
    self.factory = f

    func counter(_ name: String, _ help: String, _ labels: [(String, String)] = [])
      -> CoreMetrics.Counter
    {
      Self.counter(registry, f, name, help, labels)
    }
    func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = [])
      -> CoreMetrics.Recorder
    {
      // A gauge is a non-aggregating Recorder: its handler is the registry's gauge.
      CoreMetrics.Recorder(
        label: name, dimensions: labels, aggregate: false,
        handler: registry.makeGauge(descriptor: Self.descriptor(name, help), labels: labels),
        factory: f)
    }
    func timer(_ name: String, _ help: String) -> CoreMetrics.Timer {
      CoreMetrics.Timer(
        label: name, dimensions: [],
        handler: registry.makeDurationHistogram(
          descriptor: Self.descriptor(name, help), labels: [], buckets: micro),
        factory: f)
    }
    let applied = "tally_commands_total"
    let appliedHelp =
      "Commands the writer decided, by result: applied (appended events) or duplicate (a retried id)."
    commandsApplied = counter(applied, appliedHelp, [("result", "applied")])
    commandsDuplicate = counter(applied, appliedHelp, [("result", "duplicate")])
    groupCommands = CoreMetrics.Recorder(
      label: "tally_write_group_commands", dimensions: [], aggregate: true,
      handler: registry.makeValueHistogram(
        descriptor: Self.descriptor(
          "tally_write_group_commands",
          "Commands per write group (one LMDB transaction and one journal append)."),
        labels: [], buckets: f.defaultValueHistogramBuckets),
      factory: f)
    groupApply = timer(
      "tally_write_group_apply_duration_seconds",
      "Time to decide, apply and commit one write group (journal append included, sync not).")
    journalSync = timer(
      "tally_journal_sync_duration_seconds", "Time of one fdatasync of the journal.")
    writeFailures = counter(
      "tally_write_failures_total", "Write groups or syncs that failed (see the server log).")
    queueDepth = gauge(
      "tally_write_queue_commands", "Commands waiting for the writer, over all connections.")
    inflight = gauge(
      "tally_inflight_requests", "Requests read from sockets and not yet answered.")
    var conns = [String: CoreMetrics.Recorder]()
    for role in Self.connectionRoles {
      conns[role] = gauge(
        "tally_connections",
        "Open socket connections, by the role of their key (none before AUTH).",
        [("role", role)])
    }
    connections = conns
    headSeq = gauge("tally_head_seq", "Sequence number of the last event in the log.")
    journalBytes = gauge("tally_journal_bytes", "Bytes in the journal's segment files.")
    mapBytes = gauge("tally_lmdb_map_bytes", "Size of the LMDB map.")
    mapUsedBytes = gauge("tally_lmdb_used_bytes", "Bytes of the LMDB map in use.")
    checkpointAge = gauge(
      "tally_checkpoint_age_seconds",
      "Seconds since the newest kept signed checkpoint (-1 when there is none).")
    checkpointSize = gauge(
      "tally_checkpoint_tree_size", "Tree size of the newest kept signed checkpoint.")
    var recon = [ReconState: CoreMetrics.Recorder]()
    for state in ReconState.allCases {
      recon[state] = gauge(
        "tally_recon_items", "Reconciliation items, by state.", [("state", state.description)])
    }
    reconItems = recon
    streamLag = gauge(
      "tally_stream_lag_events",
      "Durable events not yet acknowledged by the change stream (-1 without a stream).")
    replicaLag = gauge(
      "tally_replica_lag_events",
      "Events in the followed stream not yet applied here (-1 when not a replica).")
    uptime = gauge("tally_uptime_seconds", "Seconds since the server started.")
    var refused = [String: CoreMetrics.Recorder]()
    for reason in Self.refusalReasons {
      refused[reason] = gauge(
        "tally_writes_refused",
        "1 while writes are answered UNAVAILABLE with this reason, else 0 (docs/OPERATIONS.md).",
        [("reason", reason)])
    }
    writesRefused = refused
    writesRefusedSeconds = gauge(
      "tally_writes_refused_seconds",
      "Seconds writes have been refused for (0 when they are not, or since an I/O error).")
    // Registered up front so a scrape shows every family from the start.
    for code in RejectionCode.allCases { _ = rejectionCounter(code) }
  }

  /// A metric's full name, as the registry takes it (units are part of our names already).
  static func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
    MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
  }

  /// A swift-metrics counter whose handler is the registry's counter (with its help text).
  static func counter(
    _ registry: PrometheusCollectorRegistry, _ factory: PrometheusMetricsFactory, _ name: String,
    _ help: String, _ labels: [(String, String)]
  ) -> CoreMetrics.Counter {
    CoreMetrics.Counter(
      label: name, dimensions: labels,
      handler: registry.makeCounter(descriptor: descriptor(name, help), labels: labels),
      factory: factory)
  }

  private func rejectionCounter(_ code: RejectionCode) -> CoreMetrics.Counter {
    rejections.withLock { all in
      if let c = all[code] { return c }
      let c = Self.counter(
        registry, factory, "tally_rejections_total",
        "Commands the engine rejected, by code (docs/PROTOCOL.md); batch items included.",
        [("code", code.name)])
      all[code] = c
      return c
    }
  }

  /// Counts one write group's outcomes: one pass over outcomes the writer already holds.
  func recordOutcomes(_ outcomes: [Outcome]) {
    var applied = 0
    var duplicate = 0
    var rejected: [RejectionCode: Int] = [:]
    for o in outcomes {
      switch o {
      // An expiry round that found nothing due appends nothing: not counted.
      case .applied(_, let count): if count > 0 { applied += 1 }
      case .duplicate: duplicate += 1
      case .rejected(let r): rejected[r.code, default: 0] += 1
      }
    }
    if applied > 0 { commandsApplied.increment(by: applied) }
    if duplicate > 0 { commandsDuplicate.increment(by: duplicate) }
    for (code, n) in rejected { rejectionCounter(code).increment(by: n) }
  }

  /// Counts an `ERR` line answered on the socket, by its wire code. The code set is closed
  /// (`WireCode`), so the label set is bounded.
  func recordErrorLine(_ line: String) {
    guard line.utf8.first == UInt8(ascii: "E"), line.hasPrefix("ERR ") else { return }
    let rest = line.utf8.dropFirst(4)
    let end = rest.firstIndex(of: UInt8(ascii: " ")) ?? rest.endIndex
    guard let code = String(rest[..<end]), WireCode(rawValue: code) != nil else { return }
    let c = errors.withLock { all in
      if let c = all[code] { return c }
      let c = Self.counter(
        registry, factory, "tally_error_responses_total",
        "ERR lines answered on the socket, by code.", [("code", code)])
      all[code] = c
      return c
    }
    c.increment()
  }
}
