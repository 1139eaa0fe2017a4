import Histogram
import TallyProtocol

/// The result of a run, in the shape of the `--json` output.
struct Report {
  let config: LoadConfig
  let stats: Stats
  /// Connections that were lost before the end of the run.
  let connectionsLost: Int

  var requestsPerSecond: Int { stats.requests / config.durationSeconds }
  var entriesPerSecond: Int { stats.entries / config.durationSeconds }

  /// p50, p90, p99, p99.9 and max in microseconds, 0 when nothing was measured.
  var latency: [(name: String, micros: UInt64)] {
    let histogram = stats.latency
    guard histogram.totalCount > 0 else {
      return [("p50", 0), ("p90", 0), ("p99", 0), ("p999", 0), ("max", 0)]
    }
    // Percentile arguments are Doubles in the histogram API; they are not amounts.
    return [
      ("p50", histogram.valueAtPercentile(50)), ("p90", histogram.valueAtPercentile(90)),
      ("p99", histogram.valueAtPercentile(99)), ("p999", histogram.valueAtPercentile(99.9)),
      ("max", histogram.maxRecorded),
    ]
  }

  var json: String {
    func number(_ value: some BinaryInteger) -> JSONValue { .number("\(value)") }
    let errors = stats.errors.sorted { $0.key < $1.key }.map {
      (key: $0.key, value: number($0.value))
    }
    let object = JSONObject([
      ("connections", number(config.connections)),
      ("inflight", number(config.inflight)),
      ("entries_per_request", number(config.entriesPerRequest)),
      ("accounts", number(config.accounts)),
      ("hot_percent", number(config.hotPercent)),
      ("mode", .string(config.isOpenLoop ? "open" : "closed")),
      ("client", .string(config.blocking ? "blocking" : "nio")),
      ("target_rate", number(config.rate)),
      ("duration_s", number(config.durationSeconds)),
      ("requests", number(stats.requests)),
      ("entries", number(stats.entries)),
      ("errors", .object(JSONObject(errors))),
      ("entries_per_sec", number(entriesPerSecond)),
      ("requests_per_sec", number(requestsPerSecond)),
      ("latency_us", .object(JSONObject(latency.map { (key: $0.name, value: number($0.micros)) }))),
      ("late_sends", number(stats.late)),
      ("skipped_sends", number(stats.skipped)),
      ("connections_lost", number(connectionsLost)),
      ("warmup_s", number(config.warmupSeconds)),
      ("run_id", .string(config.runID)),
    ])
    return JSONWriter.serialize(.object(object))
  }

  var text: String {
    let mode =
      config.isOpenLoop
      ? "open loop at \(config.rate) entries/s"
      : config.blocking ? "closed loop, blocking client" : "closed loop"
    var lines = [
      "tally-load: \(mode) against \(config.endpoint), run \(config.runID)",
      "  \(config.connections) connections x \(config.inflight) in flight, "
        + "\(config.entriesPerRequest) entries/request, \(config.accounts) accounts, "
        + "hot \(config.hotPercent)%",
      "  measured \(config.durationSeconds) s after \(config.warmupSeconds) s warmup",
      "  requests  \(stats.requests) (\(requestsPerSecond)/s)",
      "  entries   \(stats.entries) accepted (\(entriesPerSecond)/s)",
      "  latency   "
        + latency.map { "\($0.name) \(Self.micros($0.micros))" }.joined(separator: "  "),
    ]
    if stats.errors.isEmpty {
      lines.append("  errors    none")
    } else {
      lines.append(
        "  errors    "
          + stats.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
          .joined(separator: ", ") + " (entries)")
    }
    if config.isOpenLoop {
      lines.append("  schedule  \(stats.late) sends late (>1 ms), \(stats.skipped) skipped (>1 s)")
    }
    if connectionsLost > 0 {
      lines.append("  lost      \(connectionsLost) connections")
    }
    return lines.joined(separator: "\n")
  }

  /// `850us`, `12.3ms` or `1.20s`, with integer arithmetic.
  static func micros(_ value: UInt64) -> String {
    if value < 1_000 { return "\(value)us" }
    if value < 1_000_000 { return "\(value / 1_000).\(value % 1_000 / 100)ms" }
    let hundredths = value % 1_000_000 / 10_000
    return "\(value / 1_000_000).\(hundredths < 10 ? "0" : "")\(hundredths)s"
  }
}
