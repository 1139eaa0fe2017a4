import Foundation
import Glibc
import Synchronization
import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

@testable import TallyStore

/// Posts `count` two-leg entries x → y, one per group, ids `prefix0`….
func postEntries(_ ledger: Ledger, _ prefix: String, _ count: Int) throws {
  for i in 0..<count {
    try applyAll(ledger, [post("\(prefix)\(i)", [debit("x", 3), credit("y", 3)])])
  }
}

/// A new ledger with accounts x and y and `entries` entries `a0`….
func newLedger(_ path: String, entries: Int = 0) throws -> Ledger {
  let l = try Ledger.create(at: path, now: t0)
  try applyAll(l, [open("x"), open("y", normal: .credit)])
  try postEntries(l, "a", entries)
  return l
}

/// What an OS crash leaves: the marker names another boot and data.mdb holds garbage.
func simulateOSCrash(_ path: String) throws {
  try writeScratchFile(path + "/journal/" + Ledger.markerName, Array("old-boot\n".utf8))
  var junk = try readWholeFile(path + "/data.mdb")
  for i in stride(from: 0, to: junk.count, by: 61) { junk[i] ^= 0xa5 }
  try writeScratchFile(path + "/data.mdb", junk)
}

func newBoot() -> LedgerOptions {
  var o = LedgerOptions()
  o.bootID = "new-boot"
  return o
}

func snapshotDirs(_ path: String) throws -> [String] {
  try (directoryNames(path + "/snapshots") ?? []).filter { Ledger.snapshotSeq($0) != nil }
}

@Suite("Snapshots of the projections")
struct SnapshotTests {
  @Test("After an OS crash the newest snapshot is restored and only the journal after it replayed")
  func osCrashRestoresSnapshot() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let snapSeq: UInt64
      let head: LogHead
      let balance: Balances
      let key: KeyRecord
      do {
        let l = try newLedger(path, entries: 20)
        let info = try #require(try l.writeSnapshot())
        snapSeq = info.head.seq
        #expect(info.head == l.head)
        #expect(try l.writeSnapshot() == nil, "nothing appended since: no new snapshot")
        try postEntries(l, "b", 15)
        key = try l.createKey(role: .ops, partner: nil, now: t0).get()
        head = l.head
        balance = try l.balances("y")
        // No close: the process and then the machine stop.
        try l.journal?.sync()
      }
      try simulateOSCrash(path)
      let ledger = try Ledger(path: path, options: newBoot())
      #expect(ledger.recovery == .restoredSnapshot(seq: snapSeq))
      #expect(ledger.head == head)
      #expect(try ledger.balances("y") == balance)
      #expect(try ledger.idRecord("b14") != nil)
      #expect(try ledger.idRecord("a0") != nil)
      #expect(try ledger.key(key.id) == key, "keys created after the snapshot come from aux.log")
      #expect(try ledger.verify().ok)
      #expect(try snapshotDirs(path).count == 1)
    }
  }

  @Test("A newer snapshot replaces the older one; data.mdb missing is restored from it")
  func newerSnapshotReplacesOlder() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let head: LogHead
      do {
        let l = try newLedger(path, entries: 5)
        let first = try #require(try l.writeSnapshot())
        try postEntries(l, "b", 5)
        let second = try #require(try l.writeSnapshot())
        #expect(second.head.seq == first.head.seq + 5)
        #expect(try snapshotDirs(path) == [Ledger.snapshotName(second.head.seq)])
        head = l.head
        try l.close()
      }
      #expect(Glibc.unlink(path + "/data.mdb") == 0)
      let ledger = try Ledger(path: path)
      #expect(ledger.recovery == .restoredSnapshot(seq: head.seq))
      #expect(ledger.head == head)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("A damaged, torn or foreign snapshot is not used: the journal rebuilds, and says why")
  func badSnapshotsAreRefused() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let other = dir.path + "/other"
      let head: LogHead
      let seq: UInt64
      do {
        let l = try newLedger(path, entries: 8)
        seq = try #require(try l.writeSnapshot()).head.seq
        try postEntries(l, "b", 3)
        head = l.head
        try l.close()
      }
      let snap = path + "/snapshots/" + Ledger.snapshotName(seq)
      let pristine = (
        data: try readWholeFile(snap + "/data.mdb"), meta: try readWholeFile(snap + "/snapshot")
      )
      /// Crashes, opens as the next boot, checks the result, and returns how it recovered.
      /// The log and projections verify; the snapshot left in place is reported by verify
      /// while it is bad (kind `snapshot`, naming it), and only then.
      func crashAndOpen() throws -> RecoveryKind {
        try simulateOSCrash(path)
        let l = try Ledger(path: path, options: newBoot())
        #expect(l.head == head)
        let report = try l.verify()
        if case .rebuilt = l.recovery {
          #expect(report.problems.map(\.kind) == [.snapshot], "\(report.problems)")
          #expect(report.problems.first?.seq == seq)
          #expect("\(report.problems)".contains("snapshots/\(Ledger.snapshotName(seq))"))
        } else {
          #expect(report.ok, "\(report.problems)")
        }
        try l.close()
        return l.recovery
      }
      // One byte of the copy flipped.
      var data = pristine.data
      data[data.count / 2] ^= 1
      try writeScratchFile(snap + "/data.mdb", data)
      var r = try crashAndOpen()
      guard case .rebuilt(let why) = r else {
        Issue.record("expected a rebuild, got \(r)")
        return
      }
      #expect(why.contains("SHA-256"), "\(why)")
      // The description torn (half of it).
      try writeScratchFile(snap + "/data.mdb", pristine.data)
      try writeScratchFile(snap + "/snapshot", Array(pristine.meta.prefix(40)))
      r = try crashAndOpen()
      #expect("\(r)".contains("bytes, not"), "\(r)")
      // Another ledger's snapshot, under this ledger's seq.
      do {
        let o = try newLedger(other, entries: 8)
        let s = try #require(try o.writeSnapshot())
        #expect(s.head.seq == seq)
        try o.close()
      }
      let foreign = other + "/snapshots/" + Ledger.snapshotName(seq)
      try writeScratchFile(snap + "/data.mdb", try readWholeFile(foreign + "/data.mdb"))
      try writeScratchFile(snap + "/snapshot", try readWholeFile(foreign + "/snapshot"))
      r = try crashAndOpen()
      #expect("\(r)".contains("another ledger"), "\(r)")
      // Put back intact, it is used again.
      try writeScratchFile(snap + "/data.mdb", pristine.data)
      try writeScratchFile(snap + "/snapshot", pristine.meta)
      #expect(try crashAndOpen() == .restoredSnapshot(seq: seq))
    }
  }

  @Test("verify checks every snapshot as a recovery would, and its head against the log")
  func verifyChecksSnapshots() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let fork = dir.path + "/fork"
      let seq: UInt64
      do {
        let l = try newLedger(path, entries: 6)
        try l.close()
      }
      // The same ledger (one ledger id) written two ways from here: a fork.
      try FileManager.default.copyItem(atPath: path, toPath: fork)
      do {
        let f = try Ledger(path: fork)
        try postEntries(f, "c", 4)
        #expect(try f.writeSnapshot() != nil)
        try f.close()
      }
      do {
        let l = try Ledger(path: path)
        try postEntries(l, "b", 4)
        seq = try #require(try l.writeSnapshot()).head.seq
        try l.close()
      }
      let name = Ledger.snapshotName(seq)
      let snap = path + "/snapshots/" + name
      let pristine = (
        data: try readWholeFile(snap + "/data.mdb"), meta: try readWholeFile(snap + "/snapshot")
      )
      func problems() throws -> [VerifyProblem] {
        let l = try Ledger(path: path, mode: .readOnly)
        return try l.verify().problems
      }
      #expect(try problems() == [])
      // Each damage: one `snapshot` problem naming it and why; the log itself verifies.
      func expectBad(_ why: String, _ comment: Comment) throws {
        let p = try problems()
        #expect(p.map(\.kind) == [.snapshot], comment)
        #expect(p.first?.seq == seq, comment)
        #expect("\(p)".contains("snapshots/\(name)") && "\(p)".contains(why), "\(p)")
      }
      var data = pristine.data
      data[data.count / 3] ^= 0x40
      try writeScratchFile(snap + "/data.mdb", data)
      try expectBad("SHA-256", "a byte of the copy")
      try writeScratchFile(snap + "/data.mdb", pristine.data)
      var meta = pristine.meta
      meta[50] ^= 1
      try writeScratchFile(snap + "/snapshot", meta)
      try expectBad("checksum", "a byte of the description")
      // The fork's snapshot: whole, of this ledger, at this seq, but of another chain.
      let forked = fork + "/snapshots/" + name
      try writeScratchFile(snap + "/data.mdb", try readWholeFile(forked + "/data.mdb"))
      try writeScratchFile(snap + "/snapshot", try readWholeFile(forked + "/snapshot"))
      try expectBad("chain hash", "a forked snapshot")
      // Without a description (being written, or interrupted) it is not one: nothing to say.
      #expect(Glibc.unlink(snap + "/snapshot") == 0)
      #expect(try problems() == [])
      try writeScratchFile(snap + "/data.mdb", pristine.data)
      try writeScratchFile(snap + "/snapshot", pristine.meta)
      #expect(try problems() == [])
    }
  }

  @Test("A clean open replays nothing and keeps LMDB's own projections")
  func cleanOpenIsReplayed() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      do {
        let l = try newLedger(path)
        _ = try l.writeSnapshot()
        try l.close()
      }
      let l = try Ledger(path: path)
      #expect(l.recovery == .replayed)
    }
  }

  @Test("The policy: due by journal bytes after the shortest interval, or by age alone")
  func policy() throws {
    try withTempDir { dir in
      let l = try Ledger.create(at: dir.ledgerPath, now: t0)
      var p = SnapshotPolicy()
      p.journalBytes = 1
      p.minSeconds = 0
      p.journalPercentOfCopy = 0  // (the copy's share: `policyScalesWithTheCopy`)
      #expect(l.snapshotDue(p), "creating the ledger appended its first event")
      _ = try l.writeSnapshot()
      #expect(!l.snapshotDue(p), "nothing appended since")
      try applyAll(l, [open("x")])
      #expect(l.snapshotDue(p))
      p.minSeconds = 3600
      #expect(!l.snapshotDue(p), "too soon after the last one")
      p.maxSeconds = 0
      #expect(l.snapshotDue(p), "old enough whatever the bytes")
    }
  }

  @Test("The policy: the journal needed grows with the last copy's size")
  func policyScalesWithTheCopy() throws {
    var p = SnapshotPolicy()
    p.journalBytes = 256 << 20
    #expect(p.journalBytesDue(lastCopyBytes: 0) == 256 << 20, "before any snapshot")
    #expect(p.journalBytesDue(lastCopyBytes: 400 << 20) == 256 << 20, "a small copy")
    #expect(p.journalBytesDue(lastCopyBytes: 8 << 30) == 2 << 30, "25 % of an 8 GiB copy")
    #expect(p.journalBytesDue(lastCopyBytes: Int.max) == Int.max, "no overflow trap")
    try withTempDir { dir in
      let path = dir.ledgerPath
      do {
        let l = try newLedger(path, entries: 5)
        p.journalBytes = 1
        p.minSeconds = 0
        p.journalPercentOfCopy = 100
        let info = try #require(try l.writeSnapshot())
        try postEntries(l, "b", 1)
        #expect(!l.snapshotDue(p), "one entry is far less journal than the \(info.bytes)-byte copy")
        p.journalPercentOfCopy = 0
        #expect(l.snapshotDue(p))
        try l.close()
      }
      // A reopened ledger paces the next snapshot by the newest one on disk.
      let l = try Ledger(path: path)
      p.journalPercentOfCopy = 100
      try postEntries(l, "c", 1)
      #expect(!l.snapshotDue(p))
      p.journalPercentOfCopy = 0
      #expect(l.snapshotDue(p))
    }
  }

  @Test("A description claiming more than its copy holds paces by the copy's real size")
  func describedSizeIsBoundedByTheFile() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let l = try newLedger(path, entries: 3)
      var info = try #require(try l.writeSnapshot())
      let real = info.bytes
      let d = path + "/snapshots/" + Ledger.snapshotName(info.head.seq)
      info.bytes = Int(Int64.max)  // checksummed again by encode(): only the size lies
      try writeScratchFile(d + "/" + Ledger.snapshotFileName, info.encode())
      #expect(Ledger.newestSnapshotBytes(path) == real)
      try l.close()
    }
  }

  @Test("On a filesystem without O_DIRECT (tmpfs) the copy is written through the cache and used")
  func snapshotOnTmpfs() throws {
    guard SmallTmpfs.available else { return }
    let disk = try SmallTmpfs(bytes: 256 << 20)
    let path = disk.path + "/ledger"
    let head: LogHead
    do {
      let l = try newLedger(path, entries: 30)
      let info = try #require(try l.writeSnapshot())
      head = l.head
      #expect(info.head == head)
      let d = path + "/snapshots/" + Ledger.snapshotName(info.head.seq)
      let (size, digest) = try Ledger.digestFile(d + "/data.mdb")
      #expect(size == info.bytes && digest == info.digest, "the digest is of the bytes written")
      try l.journal?.sync()
    }
    try simulateOSCrash(path)
    let ledger = try Ledger(path: path, options: newBoot())
    #expect(ledger.recovery == .restoredSnapshot(seq: head.seq))
    #expect(ledger.head == head)
    #expect(try ledger.verify().ok)
  }

  @Test("A copy that does not fit the disk fails with NO_SPACE; the ledger writes on")
  func snapshotOnAFullDisk() throws {
    guard SmallTmpfs.available else { return }
    let disk = try SmallTmpfs(bytes: 128 << 20)
    let path = disk.path + "/ledger"
    let l = try newLedger(path, entries: 200)
    // Leave the filesystem less room than the copy needs.
    let filler = disk.path + "/filler"
    let fd = Glibc.open(filler, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
    try #require(fd >= 0)
    var vfs = statvfs()
    try #require(statvfs(disk.path, &vfs) == 0)
    let free = Int(vfs.f_bavail) * Int(vfs.f_frsize)
    #expect(posix_fallocate(fd, 0, off_t(max(free - (8 << 10), 4096))) == 0)
    Glibc.close(fd)
    let head = l.head
    #expect(throws: StoreError.self) { _ = try l.writeSnapshot() }
    do { _ = try l.writeSnapshot() } catch { #expect(error.code == "NO_SPACE", "\(error)") }
    #expect(l.head == head, "a failed snapshot changes nothing")
    #expect(try snapshotDirs(path).isEmpty)
    #expect(Glibc.unlink(filler) == 0)
    try postEntries(l, "after", 3)
    #expect(l.head.seq == head.seq + 3)
    #expect(try l.writeSnapshot() != nil)
    #expect(try l.verify().ok)
  }

  @Test("The description round-trips and refuses every change")
  func descriptionEncoding() throws {
    let info = SnapshotInfo(
      head: LogHead(seq: 42, timestampNanos: t0, chain: SHA256Sample.hash),
      bytes: 123_456, digest: SHA256Sample.hash, ledgerID: Array(repeating: 7, count: 16))
    let bytes = info.encode()
    #expect(try SnapshotInfo.decode(bytes).get() == info)
    for i in stride(from: 0, to: bytes.count, by: 7) {
      var b = bytes
      b[i] ^= 0x10
      #expect(throws: SnapshotProblem.self) { try SnapshotInfo.decode(b).get() }
    }
  }

  @Test("A paced copy is the same snapshot, and takes at least its size over the pace")
  func pacedCopy() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let l = try ledgerOfSeveralChunks(path)
      let t = monotonicNanos()
      let info = try #require(try l.writeSnapshot(copyMibPerSecond: 4))
      let took = monotonicNanos() - t
      #expect(info.bytes >= 3 * SnapshotSink.chunk, "a copy of several chunks: \(info.bytes)")
      // The sink sleeps until each chunk is due: a lower bound, whatever the machine.
      #expect(
        took >= Int64(info.bytes - SnapshotSink.chunk) * 1_000_000_000 / Int64(4 << 20),
        "\(info.bytes) bytes in \(took) ns")
      let d = path + "/snapshots/" + Ledger.snapshotName(info.head.seq)
      let (size, digest) = try Ledger.digestFile(d + "/data.mdb")
      #expect(size == info.bytes && digest == info.digest)
      #expect(info.head == l.head)
      #expect(try l.verify().ok)
      try l.close()
    }
  }

  @Test("A map growth cancels a snapshot's copy instead of waiting for it; the next one works")
  func growthCancelsCopy() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let l = try ledgerOfSeveralChunks(path)
      let head = l.head
      let mapBefore = l.env.info.mapSize
      // A copy of a few MiB at 1 MiB/s: seconds, unless cancelled.
      let copier = SnapshotOnThread(l) { (l) throws(StoreError) in
        try l.writeSnapshot(copyMibPerSecond: 1)
      }
      var waited = 0
      while !l.snapshotCopy.running.load(ordering: .acquiring) && waited < 500 {
        usleep(10_000)
        waited += 1
      }
      let started = l.snapshotCopy.running.load(ordering: .acquiring)
      try #require(started, "the copy started")
      usleep(200_000)
      try l.grow()
      let result = copier.join()
      #expect(l.env.info.mapSize > mapBefore, "the map grew")
      // The copy stopped because it was asked to, not because it ended first.
      #expect(l.snapshotCopiesCancelled == 1)
      switch result {
      case .failure(let e): #expect("\(e)".contains("cancelled"), "\(e)")
      default: Issue.record("the copy was not cancelled")
      }
      #expect(try snapshotDirs(path).isEmpty, "no snapshot stands for a cancelled copy")
      #expect(l.head == head)
      #expect(try l.verify().ok)
      // The next copy, unhindered, is whole.
      let info = try #require(try l.writeSnapshot())
      #expect(info.head == head)
      #expect(info.bytes >= 3 * SnapshotSink.chunk, "seconds of copy at 1 MiB/s: \(info.bytes)")
      try l.close()
    }
  }

  @Test("The room made before a copy: the growth measured during the last, over its expected time")
  func roomBeforeACopy() {
    var p = SnapshotProgress(lastNanos: 0)
    #expect(Ledger.snapshotRoom(p, copyMibPerSecond: 0) == 512 << 20, "nothing measured yet")
    p.lastCopyBytes = 4 << 30
    #expect(Ledger.snapshotRoom(p, copyMibPerSecond: 0) == 4 << 30, "at least the last copy")
    // 5 GiB expected at 256 MiB/s: 21 s; twice over at 100 MiB/s of growth.
    p.copyBytesPerSecond = 256 << 20
    p.copyGrowthPerSecond = 100 << 20
    #expect(Ledger.snapshotRoom(p, copyMibPerSecond: 0) == 42 * (100 << 20))
    // A pace slower than the disk sets the time: 5 GiB at 64 MiB/s, 81 s.
    #expect(Ledger.snapshotRoom(p, copyMibPerSecond: 64) == 162 * (100 << 20))
    // A faster pace does not: the disk's measured speed does.
    #expect(Ledger.snapshotRoom(p, copyMibPerSecond: 1024) == 42 * (100 << 20))
    // Absurd measurements saturate instead of overflowing.
    p.copyGrowthPerSecond = Int.max / 3
    #expect(Ledger.snapshotRoom(p, copyMibPerSecond: 0) == Int.max / 2)
  }

  @Test("The writeback sweep passes over the map and stops when asked")
  func mapWritebackSweeps() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let l = try newLedger(path, entries: 0)
      let off = MapWriteback(l, sweepSeconds: 0) { _ in }
      #expect(off == nil, "0: the kernel's writeback only")
      let failures = Errnos()
      let made = MapWriteback(l, sweepSeconds: 1) { e in failures.list.withLock { $0.append(e) } }
      let w = try #require(made)
      try postBatches(l, "w", 2_000)
      var waited = 0
      while w.sweeps.load(ordering: .relaxed) < 2 && waited < 100 {
        usleep(50_000)
        waited += 1
      }
      #expect(w.sweeps.load(ordering: .relaxed) >= 2, "a sweep a second")
      w.stop()
      #expect(failures.list.withLock { $0 }.isEmpty)
      #expect(w.failed.load(ordering: .relaxed) == 0)
      #expect(try l.verify().ok)
      try l.close()
    }
  }
}

/// A ledger whose snapshot copy is several `SnapshotSink` chunks (the tests check that).
func ledgerOfSeveralChunks(_ path: String) throws -> Ledger {
  let l = try newLedger(path, entries: 0)
  try postBatches(l, "p", 6_000)
  return l
}

/// Posts `count` two-leg entries x → y in groups of 500, ids `prefix0`….
func postBatches(_ ledger: Ledger, _ prefix: String, _ count: Int) throws {
  var i = 0
  while i < count {
    let n = min(500, count - i)
    try applyAll(
      ledger, (i..<(i + n)).map { post("\(prefix)\($0)", [debit("x", 3), credit("y", 3)]) })
    i += n
  }
}

/// Errnos a writeback reported.
private final class Errnos: Sendable {
  let list = Mutex<[Int32]>([])
}

/// A snapshot made on a second thread of the test (`make` with the ledger handed over), and
/// what it returned once it ended.
final class SnapshotOnThread {
  /// What the thread uses: the ledger, and where it puts what `make` returned.
  private final class Shared: @unchecked Sendable {
    let ledger: Ledger
    let outcome = Mutex<Result<SnapshotInfo?, StoreError>?>(nil)
    init(_ ledger: Ledger) { self.ledger = ledger }
  }
  private let shared: Shared
  private let thread: WorkerThread

  init(_ ledger: Ledger, _ make: @escaping @Sendable (Ledger) throws(StoreError) -> SnapshotInfo?) {
    let shared = Shared(ledger)
    self.shared = shared
    thread = WorkerThread(name: "test-snapshot") {
      let r: Result<SnapshotInfo?, StoreError>
      do throws(StoreError) { r = .success(try make(shared.ledger)) } catch {
        r = .failure(error)
      }
      shared.outcome.withLock { $0 = r }
    }
  }

  /// What it returned; nil while it runs.
  var result: Result<SnapshotInfo?, StoreError>? { shared.outcome.withLock { $0 } }

  /// Waits for it to end; what it returned.
  @discardableResult func join() -> Result<SnapshotInfo?, StoreError>? {
    thread.join()
    return result
  }
}

private enum SHA256Sample {
  static let hash = SHA256Hasher().hash(Array("snapshot".utf8))
}
