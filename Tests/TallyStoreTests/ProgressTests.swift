import Foundation
import Glibc
import TallyCore
import TallyTestSupport
import Testing

@testable import TallyStore

@Suite("progress line")
struct ProgressLineTests {
  static let second: Int64 = 1_000_000_000

  func line(
    _ done: UInt64, _ total: UInt64, elapsed: Int64, unit: ProgressUnit = .events,
    label: String = "verify: log and chain"
  ) -> String {
    ProgressLine.render(
      label: label, unit: unit, done: done, total: total, elapsedNanos: elapsed, columns: 200)
  }

  @Test("A line shows label, bar, done/total, percent, rate and ETA")
  func fullLine() {
    // 50,000 of 200,000 in 2 s: 25,000 events/s, 150,000 left take 6 s.
    #expect(
      line(50_000, 200_000, elapsed: 2 * Self.second)
        == "verify: log and chain [######------------------] 50000/200000  25%  "
        + "25000 events/s  ETA 0:06")
  }

  @Test("The bar fills in proportion, rounded down; percent too")
  func barFill() {
    #expect(line(1, 3, elapsed: Self.second).contains("[########----------------] 1/3  33%"))
    #expect(line(0, 3, elapsed: Self.second).contains("[------------------------] 0/3  0%"))
    #expect(
      line(3, 3, elapsed: Self.second).contains("[########################] 3/3  100%"))
  }

  @Test("A narrow terminal narrows the bar, then leaves it out; the figures stay")
  func narrow() {
    let figures = "50000/200000  25%  25000 events/s  ETA 0:06"
    func at(_ columns: Int) -> String {
      ProgressLine.render(
        label: "verify: log and chain", unit: .events, done: 50_000, total: 200_000,
        elapsedNanos: 2_000_000_000, columns: columns)
    }
    // 21 label + 1 + 2 brackets + 1 + 43 figures + 1 spare = 69 columns around the bar.
    #expect(at(93) == "verify: log and chain [######------------------] \(figures)")
    #expect(at(300) == at(93), "24 at most")
    #expect(at(79) == "verify: log and chain [##--------] \(figures)")
    #expect(at(75) == "verify: log and chain [#-----] \(figures)")
    #expect(at(74) == "verify: log and chain \(figures)")
    #expect(at(74).count < 74)
  }

  @Test("ETA rounds up to whole seconds and shows minutes and hours")
  func etaFormatting() {
    // 1 of 1,000,000 in 1 ms: 999,999 left at 1,000/s = 999.999 s → 1000 s = 16:40.
    #expect(line(1, 1_000_000, elapsed: 1_000_000).hasSuffix("1000 events/s  ETA 16:40"))
    // 1 of 10,000 in 1 s: 9,999 s = 2:46:39.
    #expect(line(1, 10_000, elapsed: Self.second).hasSuffix("1 events/s  ETA 2:46:39"))
    // 1 of 10^12 in 1 s: beyond 99 hours.
    #expect(line(1, 1_000_000_000_000, elapsed: Self.second).hasSuffix("ETA >99h"))
    // Half a second left rounds up to 0:01.
    #expect(line(2, 3, elapsed: Self.second).hasSuffix("2 events/s  ETA 0:01"))
  }

  @Test("A zero total (size unknown) shows count and rate, no bar, percent or ETA")
  func zeroTotal() {
    #expect(
      line(1_234, 0, elapsed: 2 * Self.second, label: "replay journal")
        == "replay journal  1234 events  617 events/s")
    #expect(line(0, 0, elapsed: 0, label: "x") == "x  0 events  - events/s")
  }

  @Test("done > total: a full bar, 100% and nothing left, the real counts shown")
  func doneBeyondTotal() {
    #expect(
      line(250, 200, elapsed: Self.second, label: "x")
        == "x [########################] 250/200  100%  250 events/s  ETA 0:00")
  }

  @Test("No elapsed time or nothing done yet: rate and ETA read -")
  func noRateYet() {
    #expect(line(10, 100, elapsed: 0, label: "x").hasSuffix("10%  - events/s  ETA -"))
    #expect(line(0, 100, elapsed: Self.second, label: "x").hasSuffix("0%  0 events/s  ETA -"))
  }

  @Test("Bytes show as MiB with one decimal, rounded down")
  func bytes() {
    #expect(
      line(3 << 20, 12 << 20, elapsed: 2 * Self.second, unit: .bytes, label: "post --file")
        == "post --file [######------------------] 3.0/12.0 MiB  25%  1.5 MiB/s  ETA 0:06")
    #expect(
      line(1_048_575, 0, elapsed: Self.second, unit: .bytes, label: "b") == "b  0.9 MiB  0.9 MiB/s")
  }

  @Test("Extreme figures do not trap: UInt64.max done and total, a nanosecond elapsed")
  func extremes() {
    let l = line(.max, .max, elapsed: 1, label: "x")
    #expect(l.contains("100%"))
    #expect(l.contains("\(UInt64.max) events/s"), "the rate saturates")
    #expect(line(1, .max, elapsed: .max, label: "x").hasSuffix("ETA >99h"))
  }
}

@Suite("progress throttle")
struct ProgressThrottleTests {
  /// Feeds `calls` calls `stepNanos` apart; returns (redraws, clock reads).
  func run(calls: Int, stepNanos: Int64) -> (draws: Int, reads: Int) {
    var t = ProgressThrottle()
    var now: Int64 = 5_000_000_000
    var draws = 0
    var reads = 0
    for _ in 0..<calls {
      now += stepNanos
      guard t.tick() else { continue }
      reads += 1
      if t.due(nowNanos: now) { draws += 1 }
    }
    return (draws, reads)
  }

  @Test("The first call redraws")
  func firstCallDraws() {
    var t = ProgressThrottle()
    let read = t.tick()
    let draw = t.due(nowNanos: 42)
    #expect(read && draw)
  }

  @Test("A million calls in one second: about ten redraws, the clock read rarely")
  func hotLoop() {
    let (draws, reads) = run(calls: 1_000_000, stepNanos: 1_000)
    #expect((10...11).contains(draws), "\(draws) redraws")
    #expect(reads < 1_000, "\(reads) clock reads for 1,000,000 calls")
  }

  @Test("Calls 50 ms apart: every call reads the clock, every other one redraws")
  func slowCalls() {
    let (draws, reads) = run(calls: 100, stepNanos: 50_000_000)
    #expect(reads == 100)
    #expect((49...51).contains(draws), "\(draws) redraws")
  }

  @Test("After a hot loop, slow calls bring the stride back down: no redraw is held back")
  func strideComesDown() {
    var t = ProgressThrottle()
    var now: Int64 = 0
    for _ in 0..<100_000 {
      now += 100
      if t.tick() { _ = t.due(nowNanos: now) }
    }
    #expect(t.stride == ProgressThrottle.strideMax)
    // One call a second from now on: the stride halves on each clock read, so within
    // log2(strideMax) + 1 reads every call reads the clock and redraws.
    var calls = 0
    while t.stride > 1 {
      now += 1_000_000_000
      calls += 1
      if t.tick() { _ = t.due(nowNanos: now) }
      #expect(calls < 20_000, "the stride never came down")
      if calls >= 20_000 { return }
    }
    now += 1_000_000_000
    let read = t.tick()
    let draw = t.due(nowNanos: now)
    #expect(read && draw)
  }

  @Test("force: the next call redraws though the interval has not passed")
  func force() {
    var t = ProgressThrottle()
    var seen = [Bool]()
    for now: Int64 in [1_000, 2_000] {
      seen.append(t.tick())
      seen.append(t.due(nowNanos: now))
    }
    t.force()
    seen.append(t.tick())
    seen.append(t.due(nowNanos: 3_000))
    #expect(seen == [true, true, true, false, true, true])
  }
}

/// Every call a long operation made, in order.
final class ProgressRecorder {
  var calls: [(phase: ProgressPhase, done: UInt64, total: UInt64)] = []
  var handler: ProgressHandler { { [self] p, d, t in calls.append((p, d, t)) } }
  var phases: [ProgressPhase] {
    calls.map(\.phase).reduce(into: []) { if $0.last != $1 { $0.append($1) } }
  }
  func last(_ phase: ProgressPhase) -> (done: UInt64, total: UInt64)? {
    calls.last { $0.phase == phase }.map { ($0.done, $0.total) }
  }
  /// Within one phase, `done` never goes back.
  var monotonic: Bool {
    zip(calls, calls.dropFirst()).allSatisfy { a, b in a.phase != b.phase || a.done <= b.done }
  }
}

@Suite("progress of the store's long operations")
struct StoreProgressTests {
  /// A ledger with more than one chunk of events, so the walks report more than twice.
  func withBusyLedger(_ body: (Ledger) throws -> Void) throws {
    try withLedger { ledger in
      _ = try applyAll(ledger, [open("a:1", "EUR"), open("a:2", "EUR")])
      var commands = [Command]()
      for i in 0..<9_000 { commands.append(transfer("t\(i)", from: "a:1", to: "a:2", 1)) }
      for chunk in stride(from: 0, to: commands.count, by: 1_000) {
        _ = try applyAll(ledger, Array(commands[chunk..<min(chunk + 1_000, commands.count)]))
      }
      try body(ledger)
    }
  }

  @Test("verify reports the log walk, the projections and the tree, each to its total")
  func verifyPhases() throws {
    try withBusyLedger { ledger in
      let r = ProgressRecorder()
      let report = try ledger.verify(progress: r.handler)
      #expect(report.ok)
      let plain = try ledger.verify()
      #expect(report.events == plain.events && report.head == plain.head, "same report")
      #expect(r.phases == [.verifyLog, .verifyProjections, .verifyTree])
      let head = ledger.head.seq
      #expect(r.last(.verifyLog)! == (head, head))
      #expect(r.last(.verifyProjections)! == (9, 9))
      #expect(r.last(.verifyTree)! == (head, head))
      #expect(r.calls.filter { $0.phase == .verifyLog }.count > 2, "reported along the way")
      #expect(r.monotonic)
    }
  }

  @Test("rebuild reports every event replayed, to the journal's last seq")
  func rebuildPhases() throws {
    try withBusyLedger { ledger in
      let r = ProgressRecorder()
      let events = try ledger.rebuild(progress: r.handler)
      #expect(r.phases == [.rebuild])
      #expect(r.last(.rebuild)! == (events, events))
      #expect(r.calls.first! == (.rebuild, 0, events))
      #expect(r.monotonic)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("export reports the events written, to the range's size; a refused one, nothing")
  func exportPhases() throws {
    try withBusyLedger { ledger in
      try withTempDir { dir in
        let r = ProgressRecorder()
        let out = try ledger.export(
          to: dir.path + "/export", fromSeq: 2, toSeq: 8_002, progress: r.handler)
        guard case .success(let s) = out else {
          Issue.record("export failed: \(out)")
          return
        }
        #expect(s.events == 8_001)
        #expect(r.phases == [.export])
        #expect(r.last(.export)! == (8_001, 8_001))
        #expect(r.monotonic)
        let refused = ProgressRecorder()
        let again = try ledger.export(
          to: dir.path + "/other", fromSeq: 5, toSeq: 4, progress: refused.handler)
        #expect(again == .failure(.range("--from-seq must be 1…4, got 5")))
        #expect(refused.calls.isEmpty)
      }
    }
  }

  @Test("Opening a format-3 directory reports the migration, then the replay, to the head")
  func migrationPhases() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      try Format3FixtureTests.install(at: path)
      let expected = try Format3FixtureTests.expected()
      let r = ProgressRecorder()
      do {
        let ledger = try Ledger(path: path, progress: r.handler)
        #expect(ledger.head.seq == expected.seq)
        #expect(try ledger.verify().ok)
        try ledger.close()
      }
      #expect(r.phases == [.migrate, .replay])
      #expect(r.calls.first! == (.migrate, 0, expected.seq))
      #expect(r.last(.migrate)! == (expected.seq, expected.seq))
      #expect(r.last(.replay)! == (expected.seq, expected.seq))
      #expect(r.monotonic)
      // Already migrated and closed cleanly: the next open has nothing to report.
      let again = ProgressRecorder()
      _ = try Ledger(path: path, progress: again.handler)
      #expect(again.calls.isEmpty)
    }
  }
}
