import CLMDB
import Foundation
import Glibc
import Synchronization
import TallyCore
import TallyTestSupport
import Testing

@testable import TallyStore

/// Snapshots built beside the live map (`Ledger.buildSnapshot`): the newest snapshot, or
/// empty projections, brought forward by replaying the journal.
@Suite("Snapshots built from the journal")
struct SnapshotBuildTests {
  @Test("The first build replays the journal from its start, the next brings it forward")
  func buildsFromTheJournalThenFromTheNewest() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let head: LogHead
      let balance: Balances
      let key: KeyRecord
      let second: SnapshotInfo
      do {
        let l = try newLedger(path, entries: 20)
        let keyBefore = try l.createKey(role: .ops, partner: nil, now: t0).get()
        let first = try #require(try l.buildSnapshot())
        #expect(first.head == l.head)
        #expect(l.lastBuild?.base == .journalStart(reason: "no snapshot"))
        #expect(try l.buildSnapshot() == nil, "nothing appended since: no new snapshot")
        try postEntries(l, "b", 15)
        key = try l.createKey(role: .ops, partner: nil, now: t0).get()
        second = try #require(try l.buildSnapshot())
        #expect(second.head == l.head)
        #expect(l.lastBuild?.base == .snapshot(seq: first.head.seq))
        // At least the copy of the snapshot it was built on.
        #expect((l.lastBuild?.writtenBytes ?? 0) >= first.bytes)
        #expect(try snapshotDirs(path) == [Ledger.snapshotName(second.head.seq)])
        #expect(!fileExists(path + "/snapshots/next"), "nothing of the build left behind")
        try postEntries(l, "c", 4)
        head = l.head
        balance = try l.balances("y")
        #expect(try l.verify().ok, "verify checks the described snapshot too")
        #expect(try l.key(keyBefore.id) == keyBefore)
        try l.journal?.sync()
      }
      try simulateOSCrash(path)
      let ledger = try Ledger(path: path, options: newBoot())
      #expect(ledger.recovery == .restoredSnapshot(seq: second.head.seq))
      #expect(ledger.head == head)
      #expect(try ledger.balances("y") == balance)
      #expect(try ledger.idRecord("a0") != nil && ledger.idRecord("c3") != nil)
      #expect(try ledger.key(key.id) == key, "keys come from aux.log after the restore")
      // verify replays the whole log and compares every projection with what it holds.
      #expect(try ledger.verify().ok)
    }
  }

  @Test("A newest snapshot that is not its description's copy is not built on: the journal is")
  func aDamagedNewestIsNotBuiltOn() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let l = try newLedger(path, entries: 10)
      let first = try #require(try l.buildSnapshot())
      let file = path + "/snapshots/" + Ledger.snapshotName(first.head.seq) + "/data.mdb"
      var bytes = try readWholeFile(file)
      bytes[bytes.count / 2] ^= 0x01
      try writeScratchFile(file, bytes)
      try postEntries(l, "b", 3)
      let second = try #require(try l.buildSnapshot())
      #expect(second.head == l.head)
      guard case .journalStart(let reason) = l.lastBuild?.base else {
        Issue.record("built on \(String(describing: l.lastBuild?.base))")
        return
      }
      #expect(
        reason.contains("snapshot \(first.head.seq)") && reason.contains("SHA-256"), "\(reason)")
      #expect(try snapshotDirs(path) == [Ledger.snapshotName(second.head.seq)])
      #expect(try l.verify().ok)
    }
  }

  @Test("A build on another thread while the writer goes on holds the durable head it began at")
  func buildsWhileTheWriterWrites() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let head: LogHead
      let built: SnapshotInfo
      do {
        let l = try newLedger(path, entries: 50)
        _ = try #require(try l.buildSnapshot())
        try postEntries(l, "b", 500)
        let builder = SnapshotOnThread(l) { (l) throws(StoreError) in try l.buildSnapshot() }
        try postEntries(l, "c", 300)
        built = try #require(try builder.join()?.get())
        #expect(built.head.seq > 50 && built.head.seq <= l.head.seq)
        head = l.head
        try l.journal?.sync()
      }
      try simulateOSCrash(path)
      let ledger = try Ledger(path: path, options: newBoot())
      #expect(ledger.recovery == .restoredSnapshot(seq: built.head.seq))
      #expect(ledger.head == head)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("A build holds no read on the live map, where a copy of it holds one throughout")
  func aBuildHoldsNoReadOnTheLiveMap() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let l = try ledgerOfSeveralChunks(path)
      _ = try #require(try l.buildSnapshot())
      try postBatches(l, "q", 1_000)
      /// Readers of the live map seen while `make` runs on another thread (sampled every
      /// 10 ms until it ends), and what it returned.
      func readersDuring(
        _ make: @escaping @Sendable (Ledger) throws(StoreError) -> SnapshotInfo?
      ) throws -> (readers: [Int], made: SnapshotInfo?) {
        let maker = SnapshotOnThread(l, make)
        var seen = [Int]()
        for _ in 0..<3_000 where maker.result == nil {
          seen.append(liveReaders(l.env))
          usleep(10_000)
        }
        return (seen, try maker.join()?.get())
      }
      // Paced at 1 MiB/s: a build of a copy of several MiB takes seconds.
      let build = try readersDuring { (l) throws(StoreError) in
        try l.buildSnapshot(mibPerSecond: 1)
      }
      #expect(build.made?.head == l.head)
      #expect(build.readers.count >= 10, "sampled while it ran: \(build.readers.count)")
      #expect(build.readers.allSatisfy { $0 == 0 }, "\(build.readers)")
      try postBatches(l, "r", 1_000)
      let copy = try readersDuring { (l) throws(StoreError) in
        try l.writeSnapshot(copyMibPerSecond: 1)
      }
      #expect(copy.made?.head == l.head)
      #expect(copy.readers.contains { $0 > 0 }, "the copy's read shows: \(copy.readers)")
      #expect(try l.verify().ok)
    }
  }

  @Test(
    "A shutdown stops a build, or a copy of the live map, within moments; nothing of it is used",
    arguments: [SnapshotMethod.build, .copy])
  func stopSnapshotStopsIt(method: SnapshotMethod) throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let l = try ledgerOfSeveralChunks(path)
      // At 1 MiB/s, a copy of several MiB takes seconds (a build's starts with one).
      let make: @Sendable (Ledger, Int) throws(StoreError) -> SnapshotInfo? = {
        (l, mib) throws(StoreError) in
        method == .build
          ? try l.buildSnapshot(mibPerSecond: mib) : try l.writeSnapshot(copyMibPerSecond: mib)
      }
      let first = try #require(try make(l, 0))
      try postBatches(l, "q", 1_000)
      let maker = SnapshotOnThread(l) { (l) throws(StoreError) in try make(l, 1) }
      var waited = 0
      while !fileExists(path + "/snapshots/next/data.mdb") && waited < 500 {
        usleep(10_000)
        waited += 1
      }
      usleep(300_000)
      #expect(maker.result == nil, "the paced \(method) was still running")
      l.stopSnapshot()
      #expect(maker.join() == .failure(Ledger.snapshotStopped))
      // A copy's stop is not a growth's cancellation.
      #expect(l.snapshotCopiesCancelled == 0)
      #expect(try snapshotDirs(path) == [Ledger.snapshotName(first.head.seq)])
      #expect(throws: Ledger.snapshotStopped) { try make(l, 0) }
      #expect(try l.verify().ok)
    }
  }

  @Test("A build's pace earns no credit while it computes: bytes after a pause go at the pace")
  func paceHasNoBacklog() throws {
    // A clock the pace's own sleeps move: what it slept is what the clock says.
    final class FakeClock: @unchecked Sendable {
      var now: Int64 = 1_000_000_000
      var slept: Int64 = 0
    }
    let clock = FakeClock()
    let mib = 1 << 20
    let pace = Pace(
      bytesPerSecond: 4 * mib, clock: { clock.now },
      sleep: {
        #expect($0 > 0 && $0 <= 50_000_000)
        clock.now += $0
        clock.slept += $0
      }, stop: { false })
    // At the pace from the start: 8 MiB at 4 MiB/s is 2 s of sleep.
    try pace.add(8 * mib)
    #expect(clock.slept == 2_000_000_000)
    // A minute of replay without writes, then 40 MiB: 10 s at the pace, less the 0.25 s of
    // credit a pause may earn (the minute does not pay for them).
    clock.now += 60_000_000_000
    clock.slept = 0
    try pace.add(40 * mib)
    #expect(clock.slept == 10_000_000_000 - Pace.burstNanos)
    // Unpaced: no sleep at all; a stop is seen at the next count.
    var stopped = false
    let free = Pace(
      bytesPerSecond: 0, clock: { clock.now }, sleep: { _ in Issue.record("slept") },
      stop: { stopped })
    try free.add(1 << 40)
    stopped = true
    #expect(throws: Ledger.snapshotStopped) { try free.add(1) }
  }
}

/// Read transactions open on `env` now (LMDB's reader table: `mdb_reader_list` prints a
/// header and a line per reader, or one line saying there is none).
private func liveReaders(_ env: Environment) -> Int {
  var lines = 0
  _ = mdb_reader_list(
    env.env,
    { msg, ctx in
      let text = msg.map { String(cString: $0) } ?? ""
      ctx!.assumingMemoryBound(to: Int.self).pointee += text.contains("no active readers") ? 0 : 1
      return 0
    }, &lines)
  return max(0, lines - 1)
}
