import Histogram
import NIOCore
import Synchronization
import TallyClient

/// Everything a run needs, fixed before it starts.
struct LoadConfig: Sendable {
  var endpoint: Endpoint
  var key: String?
  var secret: String?
  var connections: Int
  var inflight: Int
  var entriesPerRequest: Int
  var accounts: Int
  var hotPercent: Int
  /// Target entries per second for the open loop; 0 runs closed loop.
  var rate: Int
  var durationSeconds: Int
  var warmupSeconds: Int
  var runID: String
  /// `--blocking`: a thread and blocking socket calls per connection (Blocking.swift).
  var blocking = false

  var isOpenLoop: Bool { rate > 0 }
  var workers: Int { connections * inflight }
}

/// Latencies above this are recorded as this: a minute is far beyond any sane answer and
/// keeps every histogram the same, bounded size.
let latencyCeilingMicros: UInt64 = 60_000_000

/// What one connection measured. Its workers share it, so it sits behind a lock; with one
/// request in flight per connection the lock is never contended.
struct Stats: Sendable {
  var latency = Histogram<UInt64>(
    lowestDiscernibleValue: 1, highestTrackableValue: latencyCeilingMicros,
    numberOfSignificantValueDigits: .three)
  var requests = 0
  /// Entries the server accepted.
  var entries = 0
  /// Failed entries by code: the wire code of an `ERR` answer (counted once per entry of the
  /// request), the code of a failed item in a batch answer, or a client-side code
  /// (`CONNECTION_CLOSED`, `PROTOCOL_VIOLATION`, `NO_RESPONSE`).
  var errors: [String: Int] = [:]
  /// Open loop: sends that went out more than `lateNanos` after their scheduled time.
  var late = 0
  /// Open loop: scheduled sends dropped because the run was over `maxLagNanos` behind.
  var skipped = 0

  mutating func merge(_ other: Stats) {
    latency.add(other.latency)
    requests += other.requests
    entries += other.entries
    for (code, count) in other.errors {
      errors[code, default: 0] += count
    }
    late += other.late
    skipped += other.skipped
  }

  mutating func record(latencyNanos: Int64) {
    let micros = UInt64(max(0, latencyNanos) / 1_000)
    latency.record(min(micros, latencyCeilingMicros))
  }
}

final class ConnectionStats: Sendable {
  let state = Mutex(Stats())
}

/// Set when the run overstays its deadline and the connections are closed under the
/// workers, so calls failing from then on are reported as unanswered rather than as drops.
final class Watchdog: Sendable {
  let fired = Atomic<Bool>(false)
}

/// Runs the workers of one connection on that connection's event loop.
///
/// The client's I/O happens on the loop anyway; running the worker there too means a
/// request is written without waking another thread and its response resumes the worker
/// without a thread switch. On a 2-core machine shared with the server under test, that is
/// most of what the generator costs per request.
actor LoopBound {
  let client: TallyClient

  init(_ client: TallyClient) {
    self.client = client
  }

  nonisolated var unownedExecutor: UnownedSerialExecutor { client.executor }
}

/// The instants of a run on the continuous clock.
struct Timeline: Sendable {
  let start: ContinuousClock.Instant
  let measureFrom: ContinuousClock.Instant
  let end: ContinuousClock.Instant
}

/// A send more than 1 ms behind schedule counts as late.
let lateNanos: Int64 = 1_000_000
/// More than 1 s behind schedule the open loop drops sends (counted as skipped) instead of
/// trying to catch up, so a stalled server cannot build an unbounded backlog.
let maxLagNanos: Int64 = 1_000_000_000

func nanos(_ duration: Duration) -> Int64 {
  let (seconds, attoseconds) = duration.components
  return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
}

/// One worker, with at most one request of its own in flight, so a connection with
/// `inflight` workers has at most `inflight` requests outstanding. Requests sent (closed
/// loop) or scheduled (open loop) inside the measured window are counted; their latency runs
/// from the send, or from the scheduled time in the open loop, so a slow server cannot hide
/// its queueing delay by slowing the generator down (coordinated omission). Returns `false`
/// when the connection failed.
func runWorker(
  on loop: isolated LoopBound, client: TallyClient, connection: Int, slot: Int,
  config: LoadConfig, timeline: Timeline, stats: ConnectionStats, watchdog: Watchdog
) async -> Bool {
  var generator = EntryGenerator(
    runID: config.runID, connection: connection, slot: slot, stride: config.inflight,
    accounts: config.accounts, hotPercent: config.hotPercent,
    entriesPerRequest: config.entriesPerRequest)
  let clock = ContinuousClock()
  // Open loop: this worker owns every `workers`-th slot of the global schedule, offset so
  // that consecutive slots go to different connections.
  let globalIndex = Int128(slot * config.connections + connection)
  let workers = Int128(config.workers)
  let nanosPerEntry = Int128(1_000_000_000)
  var ownSlot: Int128 = 0
  // Nothing is sent before the common start, so that every entry sent counts somewhere:
  // with no warmup, a request sent earlier would be committed but not measured.
  do {
    try await Task.sleep(until: timeline.start, clock: clock)
  } catch {
    return true
  }
  while !Task.isCancelled {
    var intended = clock.now
    if config.isOpenLoop {
      let offset =
        (globalIndex + ownSlot * workers) * Int128(config.entriesPerRequest) * nanosPerEntry
        / Int128(config.rate)
      intended = timeline.start + .nanoseconds(Int64(offset))
      if intended >= timeline.end { break }
      var now = clock.now
      if intended > now {
        // A timer of the connection's own event loop (epoll's timeout), resumed on that
        // loop: `Task.sleep` would wake through a timer thread of the global executor and
        // hop back, which costs the generator a core-share and ms of its own lateness on a
        // 2-core machine shared with the server under test.
        let wait = client.eventLoop.scheduleTask(in: .nanoseconds(nanos(intended - now))) {}
        do {
          try await wait.futureResult.get()
        } catch {
          break
        }
        if Task.isCancelled { break }
        now = clock.now
      }
      let behind = nanos(now - intended)
      if behind > maxLagNanos {
        // Jump to the first own slot no more than maxLag in the past; those in between are
        // counted, not sent.
        let missed =
          Int128(behind - maxLagNanos) * Int128(config.rate)
          / (workers * Int128(config.entriesPerRequest) * nanosPerEntry) + 1
        if intended >= timeline.measureFrom {
          stats.state.withLock { $0.skipped += Int(missed) }
        }
        ownSlot += max(1, missed)
        continue
      }
      if behind > lateNanos && intended >= timeline.measureFrom {
        stats.state.withLock { $0.late += 1 }
      }
    } else if intended >= timeline.end {
      break
    }
    ownSlot += 1
    let (verb, body) = generator.nextRequest()
    let measured = intended >= timeline.measureFrom
    do {
      // Sent and awaited on the connection's own event loop (see LoopBound).
      let response = try await client.call(verb, body)
      let done = clock.now
      guard measured else { continue }
      let outcome = Outcome(response, entries: config.entriesPerRequest)
      stats.state.withLock { stats in
        stats.requests += 1
        stats.record(latencyNanos: nanos(done - intended))
        stats.entries += outcome.accepted
        for (code, count) in outcome.failed {
          stats.errors[code, default: 0] += count
        }
      }
    } catch {
      let code: String
      switch error {
      case .protocolViolation: code = "PROTOCOL_VIOLATION"
      case _ where watchdog.fired.load(ordering: .relaxed): code = "NO_RESPONSE"
      default: code = "CONNECTION_CLOSED"
      }
      if measured || code == "NO_RESPONSE" {
        stats.state.withLock { $0.errors[code, default: 0] += config.entriesPerRequest }
      }
      // The connection is unusable now; its other workers find that out on their own.
      return false
    }
  }
  return true
}

/// How the entries of one request fared.
struct Outcome {
  var accepted = 0
  var failed: [(String, Int)] = []

  init(_ response: TallyResponse, entries: Int) {
    guard response.ok else {
      failed = [(response.code ?? "ERR", entries)]
      return
    }
    guard entries > 1 else {
      accepted = 1
      return
    }
    // A batch answer without a single "error" member is all successes; only otherwise is it
    // worth parsing (a full parse of 1,000 results costs more than the scan).
    guard Self.mentionsError(response.body) else {
      accepted = entries
      return
    }
    var codes: [String: Int] = [:]
    if let results = try? response.json()["results"]?.arrayValue {
      for item in results {
        if let error = item.objectValue?["error"]?.objectValue {
          codes[error["code"]?.stringValue ?? "UNKNOWN", default: 0] += 1
        } else {
          accepted += 1
        }
      }
      if results.count != entries {
        codes["BAD_RESPONSE", default: 0] += abs(entries - results.count)
      }
    } else {
      codes["BAD_RESPONSE", default: 0] += entries
    }
    failed = codes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
  }

  static func mentionsError(_ body: String) -> Bool {
    let needle = Array(#""error""#.utf8)
    var text = body
    return text.withUTF8 { bytes in
      guard bytes.count >= needle.count else { return false }
      var index = 0
      let last = bytes.count - needle.count
      while index <= last {
        if bytes[index] == needle[0] {
          var matched = 1
          while matched < needle.count && bytes[index + matched] == needle[matched] {
            matched += 1
          }
          if matched == needle.count { return true }
        }
        index += 1
      }
      return false
    }
  }
}
