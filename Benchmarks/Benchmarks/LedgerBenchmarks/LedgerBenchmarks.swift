// Engine benchmarks for Tally on durable LMDB (default sync flags: every commit fsyncs).
//
// The workload is TallyWorkload's (shared with tally-bench): N accounts `acct-%07d`, EUR,
// debit-normal, opened untimed in batches of 10k; then 2-leg entries `e-%012d` between
// pseudo-random accounts, one write transaction per batch, commands built inside the timed
// region.
//
// What one iteration is, and what package-benchmark's own `throughput` then shows:
//   apply batch=1      1 entry (1 commit)           Throughput (#/s)  = entries/s
//   apply batch=100    1000 entries (10 commits),   Throughput (K/s)  = thousand entries/s
//                      scalingFactor .kilo          (`--scale`: time/mallocs per entry)
//   apply batch=10000  10k entries (1 commit)       Throughput (#/s)  = commits/s
//   verify / rebuild   one full pass over the log   Throughput: 1, or absent past 1.5 s
// `throughput` is 1e9 / iteration-ns rounded to an integer and dropped when that is 0, and
// scaling factors are powers of 1000 only, so it cannot show entries/s for 10k-entry
// batches, nor events/s for passes longer than 0.5 s. The headline rates are therefore
// custom metrics, timed in the iteration with CLOCK_MONOTONIC around exactly the measured
// work, and shown unscaled:
//   `entries/s` — entries applied in the iteration / its wall time, and
//   `events/s`  — events verified or replayed / the pass's wall time.
// `cpuTotal` on Linux comes from /proc/self/stat in 10 ms scheduler ticks: per-iteration
// values below ~100 ms (batch=1) are quantised to 0 or 10 ms.
//
// Each benchmark runs in its own process (package-benchmark spawns one per benchmark); its
// data directory is a fresh `mkdtemp` under $TMPDIR (else /tmp), made in `setup` (untimed,
// unsampled) and deleted in `teardown`.
import Benchmark
import Glibc
import TallyCore
import TallyStore
import TallyWorkload

// MARK: workload (TallyWorkload, shared with tally-bench)

func entryCommand(_ i: Int, accounts: Int) -> Command { Workload.entry(i, accounts: accounts) }
func wallNanos() -> Int64 { Workload.wallNanos() }
func monotonicNanos() -> Int64 { Workload.monotonicNanos() }

/// `count` units of work done in `nanos`, as an integer rate per second.
func perSecond(_ count: Int, _ nanos: Int64) -> Int {
  Int((Double(count) * 1e9 / Double(max(nanos, 1))).rounded())
}

struct BenchError: Error, CustomStringConvertible {
  var description: String
}

// MARK: fixture

/// One ledger in a fresh temporary directory, plus the workload cursor. Each benchmark
/// process owns exactly one; `setup` fills it, `teardown` closes it and deletes the files.
final class Fixture: @unchecked Sendable {
  private(set) var dir: String?
  private(set) var ledger: Ledger?
  private(set) var accounts = 0
  /// Number of the next entry to post (1-based, as in tally-bench).
  var nextEntry = 1
  /// Reused per iteration so the batch array is not part of the allocation count.
  var commands = [Command]()

  /// Creates the ledger and opens `accounts` accounts, untimed, in batches of 10k.
  func create(accounts: Int) throws {
    precondition(ledger == nil, "fixture already set up")
    let base =
      getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array((base + "/tally-bench.XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else {
      throw BenchError(description: "mkdtemp under \(base): \(String(cString: strerror(errno)))")
    }
    let dir = String(cString: made)
    self.dir = dir
    let ledger = try Ledger.create(at: dir, now: wallNanos())
    self.ledger = ledger
    self.accounts = accounts
    nextEntry = 1
    try Workload.openAccounts(ledger, count: accounts)
  }

  /// Posts the next `batch` workload entries in one `apply` (one write transaction).
  @inline(__always)
  func postBatch(_ batch: Int) throws {
    commands.removeAll(keepingCapacity: true)
    let end = nextEntry + batch
    while nextEntry < end {
      commands.append(entryCommand(nextEntry, accounts: accounts))
      nextEntry += 1
    }
    try check(ledger!.apply(commands, now: wallNanos()), "entry")
  }

  /// Untimed bulk load: posts entries in batches of 10k until the log holds `events` events.
  func fill(toEvents events: UInt64) throws {
    var remaining = Int(events) - Int(ledger!.head.seq)
    guard remaining >= 0 else {
      throw BenchError(description: "log already has \(ledger!.head.seq) events > \(events)")
    }
    commands.reserveCapacity(10_000)
    while remaining > 0 {
      let n = min(remaining, 10_000)
      try postBatch(n)
      remaining -= n
    }
    guard ledger!.head.seq == events else {
      throw BenchError(description: "log has \(ledger!.head.seq) events, wanted \(events)")
    }
  }

  func check(_ outcomes: [Outcome], _ what: String) throws {
    for o in outcomes {
      if case .rejected(let r) = o { throw BenchError(description: "\(what) rejected: \(r)") }
    }
  }

  /// Closes the environment (releasing the writer lock) and deletes the directory.
  func destroy() {
    ledger = nil
    guard let dir else { return }
    self.dir = nil
    if let d = opendir(dir) {
      while let e = readdir(d) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
          String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
        if name != "." && name != ".." { unlink(dir + "/" + name) }
      }
      closedir(d)
    }
    rmdir(dir)
  }
}

// MARK: metrics

let entriesPerSecond = BenchmarkMetric.custom(
  "entries/s", polarity: .prefersLarger, useScalingFactor: false)
let eventsPerSecond = BenchmarkMetric.custom(
  "events/s", polarity: .prefersLarger, useScalingFactor: false)

let standardMetrics: [BenchmarkMetric] = [
  .wallClock, .throughput, .peakMemoryResident, .mallocCountTotal, .cpuTotal,
]

// MARK: benchmarks

let benchmarks: @Sendable () -> Void = {
  // Per scenario: entries per `apply` (batch), `apply` calls per iteration, iterations.
  // batch 1 is fsync-bound (one commit per entry), so a few hundred entries; the larger
  // batches get enough transactions for a stable median. batch 100 runs 10 transactions
  // (1000 entries) an iteration so that the iteration is long enough for the 10 ms CPU
  // ticks and `scalingFactor: .kilo` makes the scaled figures per entry.
  let applyScenarios: [(batch: Int, txns: Int, iterations: Int, scaling: BenchmarkScalingFactor)] =
    [
      (1, 1, 500, .one),  // 500 entries, 500 commits
      (100, 10, 20, .kilo),  // 20k entries, 200 commits
      (10_000, 1, 20, .one),  // 200k entries, 20 commits
    ]
  for accounts in [10_000, 1_000_000] {
    let accountsLabel = accounts == 1_000_000 ? "1M" : "\(accounts / 1000)k"
    for (batch, txns, iterations, scaling) in applyScenarios {
      let fixture = Fixture()
      Benchmark(
        "apply batch=\(batch) accounts=\(accountsLabel)",
        configuration: .init(
          metrics: standardMetrics + [entriesPerSecond],
          units: [entriesPerSecond: .count],
          warmupIterations: 1,
          scalingFactor: scaling,
          maxDuration: .seconds(20),
          maxIterations: iterations)
      ) { benchmark in
        let start = monotonicNanos()
        for _ in 0..<txns { try fixture.postBatch(batch) }
        benchmark.measurement(entriesPerSecond, perSecond(batch * txns, monotonicNanos() - start))
      } setup: {
        try fixture.create(accounts: accounts)
        fixture.commands.reserveCapacity(batch)
      } teardown: {
        fixture.destroy()
      }
    }
  }

  // verify: 10k accounts, the log filled to exactly 1M events (the platform partner, 10k
  // account openings, then entries), then a full verify per iteration.
  do {
    let fixture = Fixture()
    let events: UInt64 = 1_000_000
    Benchmark(
      "verify events=1M",
      configuration: .init(
        metrics: standardMetrics + [eventsPerSecond],
        units: [eventsPerSecond: .count],
        warmupIterations: 0,
        maxDuration: .seconds(60),
        maxIterations: 5)
    ) { benchmark in
      let start = monotonicNanos()
      let report = try fixture.ledger!.verify()
      let elapsed = monotonicNanos() - start
      guard report.ok, report.events == events else {
        throw BenchError(
          description: "verify: \(report.events) events, problems \(report.problems)")
      }
      benchmark.measurement(eventsPerSecond, perSecond(Int(report.events), elapsed))
    } setup: {
      try fixture.create(accounts: 10_000)
      try fixture.fill(toEvents: events)
    } teardown: {
      fixture.destroy()
    }
  }

  // rebuild: 10k accounts, exactly 200k events; each iteration drops and recomputes every
  // projection in one durable write transaction.
  do {
    let fixture = Fixture()
    let events: UInt64 = 200_000
    Benchmark(
      "rebuild events=200k",
      configuration: .init(
        metrics: standardMetrics + [eventsPerSecond],
        units: [eventsPerSecond: .count],
        warmupIterations: 1,
        maxDuration: .seconds(60),
        maxIterations: 5)
    ) { benchmark in
      let start = monotonicNanos()
      let replayed = try fixture.ledger!.rebuild()
      let elapsed = monotonicNanos() - start
      guard replayed == events else {
        throw BenchError(description: "rebuild replayed \(replayed) events, wanted \(events)")
      }
      benchmark.measurement(eventsPerSecond, perSecond(Int(replayed), elapsed))
    } setup: {
      try fixture.create(accounts: 10_000)
      try fixture.fill(toEvents: events)
    } teardown: {
      fixture.destroy()
    }
  }
}
