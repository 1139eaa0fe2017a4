import CLMDB
import Glibc
import TallyCore
import TallyCrypto

/// Where a built snapshot started from (`Ledger.buildSnapshot`).
public enum SnapshotBase: Equatable, Sendable, CustomStringConvertible {
  /// The newest snapshot, at this seq, brought forward.
  case snapshot(seq: UInt64)
  /// Empty projections: there was no snapshot, or the newest one could not be used (why).
  case journalStart(reason: String)

  public var description: String {
    switch self {
    case .snapshot(let seq): "snapshot \(seq)"
    case .journalStart(let reason): "the journal's start (\(reason))"
    }
  }
}

/// What a build (`Ledger.buildSnapshot`) started from and wrote.
public struct SnapshotBuildReport: Equatable, Sendable {
  public var base: SnapshotBase
  /// Bytes written: the copy of the newest snapshot, and the replay's pages written back (a
  /// page counted at each writeback that found it dirty).
  public var writtenBytes: Int
}

extension Ledger {
  /// What a snapshot stopped by `stopSnapshot` throws.
  static let snapshotStopped = StoreError.io("the snapshot was stopped: shutting down")

  /// Asks a snapshot running on another thread to stop (a build within 50 ms or one replay
  /// transaction, a copy of the live map within one MiB or 10 ms of its pace), and every
  /// later one not to start: nothing of it is used. For a shutdown, which would otherwise
  /// wait minutes for a paced build or copy of gigabytes.
  public func stopSnapshot() { snapshotCopy.stopping.store(true, ordering: .releasing) }

  /// Whether `stopSnapshot` was called.
  public var snapshotStopRequested: Bool { snapshotCopy.stopping.load(ordering: .acquiring) }

  /// Builds a snapshot beside the live map, never reading it: the newest snapshot's copy
  /// (checked against its SHA-256 as it is copied), or empty projections when there is
  /// none, brought forward by replaying the journal's durable records after its head
  /// through the same code as a recovery, in an environment of its own. Safe on another
  /// thread than the writer's while it writes: it reads the journal's files up to the seq
  /// that was durable when it began, and no record after it.
  ///
  /// A copy of the live map (`writeSnapshot`) holds a read transaction on it for as long as
  /// the copy takes: LMDB then reuses no page freed meanwhile, its free list ends as long as
  /// everything the writer changed during the copy, and since LMDB hands out the oldest
  /// freed pages first, every page a commit changes from then on is one written back long
  /// ago rather than a hot one still in the page cache (BENCHMARKS.md §13.6). A build costs
  /// the newest snapshot's size in reads and writes and the replay's CPU instead, and leaves
  /// the live map alone.
  ///
  /// `mibPerSecond` paces what the build writes: the copy, and the replay's dirty pages,
  /// written back every `buildWritebackNanos` of replay or `buildDirtyBytes` (0: unpaced;
  /// each MiB is still written back and waited for before the next, so that little of it is
  /// ever queued ahead of a journal sync; see `SnapshotPolicy.buildMibPerSecond`). Returns
  /// nil when nothing became durable since the newest snapshot.
  public func buildSnapshot(mibPerSecond: Int = 0) throws(StoreError) -> SnapshotInfo? {
    guard let journal, !readOnly else { throw .io("a snapshot needs a read-write ledger") }
    let through = journal.durableSeq
    let started = monotonicNanos()
    let appendedBefore = snapshotProgress.withLock { $0.bytes }
    // A failed attempt also waits the policy's interval before the next one.
    defer { snapshotProgress.withLock { $0.lastNanos = started } }
    var base: SnapshotBase = .journalStart(reason: "no snapshot")
    var from: (dir: String, info: SnapshotInfo)?
    switch Self.newestDescribedSnapshot(path, ledgerID: journal.ledgerID) {
    case .success(let s):
      if s.info.head.seq >= through { return nil }
      from = s
      base = .snapshot(seq: s.info.head.seq)
    case .failure(let why):
      base = .journalStart(reason: why.description)
    }
    if through == 0 { return nil }
    let control = snapshotCopy
    let pace = Pace(bytesPerSecond: mibPerSecond << 20) {
      control.stopping.load(ordering: .acquiring)
    }
    let built: (size: Int, digest: Hash32, head: LogHead)
    var unusable: String?
    do throws(StoreError) {
      built = try buildSnapshotCopy(
        from: from, through: through, pace: pace, unusable: &unusable)
    } catch {
      guard let from, let unusable else { throw error }
      // The newest snapshot is not the copy it describes, or does not open: build from the
      // journal's start rather than never snapshot again (a recovery would skip it too).
      base = .journalStart(reason: "snapshot \(from.info.head.seq): \(unusable)")
      var again: String?
      built = try buildSnapshotCopy(
        from: nil, through: through, pace: pace, unusable: &again)
    }
    let copied = monotonicNanos()
    lastBuild = SnapshotBuildReport(base: base, writtenBytes: pace.total)
    return try publishSnapshot(
      head: built.head, size: built.size, digest: built.digest, started: started,
      copied: copied, appendedBefore: appendedBefore)
  }

  /// `DIR/snapshots/next/data.mdb` built through `through`, written back and synced: its
  /// size, SHA-256 and head. When what fails is the snapshot built on (`from`: not the copy
  /// it describes, or its copy does not open), `unusable` says why.
  private func buildSnapshotCopy(
    from: (dir: String, info: SnapshotInfo)?, through: UInt64, pace: Pace,
    unusable: inout String?
  ) throws(StoreError) -> (size: Int, digest: Hash32, head: LogHead) {
    guard let journal else { throw .io("a snapshot needs a read-write ledger") }
    let files = options.files
    let next = try emptyNextSnapshotDir()
    let data = next + "/data.mdb"
    let fd = try files.open(data, create: true)
    defer { files.close(fd) }
    if let from {
      do throws(StoreError) {
        try Self.copyChecking(
          from: from.dir + "/data.mdb", to: fd, path: data, expect: from.info, pace: pace,
          files: files)
      } catch {
        if case .corrupt(let why) = error { unusable = why }
        throw error
      }
    }
    // The live journal's files, listed now: records up to `through` are whole and durable
    // in them, and the replay stops at `through`.
    guard let source = try Journal.load(directory: journal.directory, files: files) else {
      throw .corrupt("the journal is gone")
    }
    var used = 0
    do {
      let env: Environment
      let builder: Ledger
      do throws(StoreError) {
        env = try Environment(path: next, readOnly: false)
        if from == nil {
          try env.setMapSize(Self.initialMapBytes(options))
          // No key or kept checkpoint (`aux.log`): a recovery from this snapshot applies
          // `aux.log` after its replay, from the record after the last one the copy holds.
          try Self.initializeEnvironment(env, ledgerID: journal.ledgerID, aux: [])
        }
        builder = try Ledger(
          env: env, lock: nil, path: next, readOnly: false, options: options, building: true)
      } catch {
        if from != nil { unusable = "its data.mdb does not open: \(error)" }
        throw error
      }
      let meta: BackupFiles.MetaState
      do {
        let t = try env.begin(readOnly: true)
        defer { mdb_txn_abort(t) }
        meta = try BackupFiles.metaState(Txn(txn: t), builder.dbs)
      }
      guard meta.ledgerID == journal.ledgerID else {
        throw .corrupt("the snapshot's copy belongs to another ledger")
      }
      if builder.head.seq >= through {
        throw .corrupt("the snapshot's copy holds seq \(builder.head.seq), past \(through)")
      }
      // The replay's dirty pages are written back at the build's pace, the replay waiting
      // meanwhile: it goes no faster than that. Not after every transaction
      // (`buildBatchEvents`): each one copies every page it changes to a free one and reuses
      // pages freed two transactions before, so a page written back then was often dirtied
      // again at once. Pages left dirty a while are rewritten in place, not written twice:
      // the writeback comes once `buildWritebackNanos` of replay or `buildDirtyBytes` of
      // dirty pages have passed (a replay of 1.4 M events wrote 1.1 GB so, 7 GB and more
      // with 1 s or 32 MiB, and 8 GB for 1.6 M events after each transaction: BENCHMARKS.md
      // §13.9). Then an `fsync`, with nothing left to write: the kernel writes every dirty
      // page of a file back ~30 s after the file became dirty (`vm.dirty_expire_centisecs`),
      // at the disk's full speed, ahead of the journal's syncs, and counts those 30 s from
      // when the file was last clean in its eyes, which the writeback alone does not change
      // and an `fsync` does on filesystems without a journal of their own such as this
      // project's measuring machine's (on others the kernel still finds at most one
      // window's pages dirty).
      var lastWriteback = monotonicNanos()
      _ = try builder.replayJournal(
        source: source, through: through, batchEvents: Self.buildBatchEvents
      ) {
        () throws(StoreError) in
        try pace.checkStop()
        let used = env.info.usedBytes
        // The clock first: `cachestat` walks every cached page of the file.
        var due = monotonicNanos() - lastWriteback >= Self.buildWritebackNanos
        if !due {
          let dirty = tally_dirty_pages(fd, 0, UInt64(used))
          due = dirty < 0 || dirty * Int(sysconf(Int32(_SC_PAGESIZE))) >= Self.buildDirtyBytes
        }
        if due {
          try Self.writeBackDirty(fd: fd, path: data, bytes: used, pace: pace)
          if Glibc.fsync(fd) != 0 {
            throw .io("cannot sync \(data): \(String(cString: strerror(errno)))")
          }
          lastWriteback = monotonicNanos()
        }
      }
      guard builder.head.seq == through else {
        throw .corrupt("the replay stopped at seq \(builder.head.seq), not \(through)")
      }
      used = env.info.usedBytes
      // What is still dirty, written back the same way before the sync, which then has
      // little left to do: a sync of gigabytes at once would queue them all ahead of the
      // journal's syncs.
      try Self.writeBackDirty(fd: fd, path: data, bytes: used, pace: pace)
      try env.sync()
    }
    // The environment is closed (its last reference went with `builder`). Pages past the
    // last one in use were only reserved for growth: the copy ends where its pages do.
    try files.truncate(fd, to: used)
    try files.unlink(next + "/lock.mdb")
    files.wroteOutside(fd)
    try files.sync(fd)
    let (size, digest) = try Self.digestFile(data)
    let head = try Self.snapshotHead(data, checkStructure: false)
    guard head.seq == through else {
      throw .corrupt("the built snapshot holds seq \(head.seq), not \(through)")
    }
    return (size, digest, head)
  }

  /// Events per transaction of a build's replay: a quarter of a recovery's, whose batch
  /// (~10 MiB of heap) a build, running beside the server for minutes, would hold the whole
  /// time. Its pages are not written back per transaction, so smaller ones cost no writes.
  static let buildBatchEvents = 2_048
  /// Replay time after which a build writes its dirty pages back (`buildSnapshotCopy`).
  static let buildWritebackNanos: Int64 = 5_000_000_000
  /// Dirty pages after which a build writes them back sooner.
  static let buildDirtyBytes = 256 << 20

  /// The newest snapshot directory whose description is whole and names this ledger (its
  /// copy is checked while it is copied: `copyChecking`).
  static func newestDescribedSnapshot(_ path: String, ledgerID: [UInt8]) -> Result<
    (dir: String, info: SnapshotInfo), SnapshotProblem
  > {
    let dir = path + "/" + snapshotsDirName
    guard let names = try? directoryNames(dir),
      let seq = names.compactMap({ snapshotSeq($0) }).max()
    else { return .failure(.init("no snapshot")) }
    let d = dir + "/" + snapshotName(seq)
    let raw: [UInt8]
    do { raw = try readWholeFile(d + "/" + snapshotFileName) } catch {
      return .failure(.init("snapshot \(seq): \(error)"))
    }
    switch SnapshotInfo.decode(raw) {
    case .failure(let p): return .failure(.init("snapshot \(seq): \(p)"))
    case .success(let info):
      guard info.ledgerID == ledgerID else {
        return .failure(.init("snapshot \(seq): it belongs to another ledger"))
      }
      guard info.head.seq == seq else {
        return .failure(.init("snapshot \(seq): its description says seq \(info.head.seq)"))
      }
      return .success((d, info))
    }
  }

  /// Copies a snapshot's `data.mdb` into `fd` a MiB at a time, hashing what it reads; each
  /// MiB is written back and waited for before the next. Throws `corrupt` when the bytes
  /// are not the ones `expect` describes (size or SHA-256).
  static func copyChecking(
    from src: String, to fd: Int32, path: String, expect: SnapshotInfo, pace: Pace,
    files: JournalFiles
  ) throws(StoreError) {
    let input = Glibc.open(src, O_RDONLY | O_CLOEXEC)
    if input < 0 { throw .corrupt("cannot open \(src): \(String(cString: strerror(errno)))") }
    defer {
      // Read once, to be replaced: not worth a place in the page cache.
      _ = posix_fadvise(input, 0, 0, POSIX_FADV_DONTNEED)
      Glibc.close(input)
    }
    let chunk = 1 << 20
    var buf = [UInt8](repeating: 0, count: chunk)
    var hasher = SHA256Stream()
    var offset = 0
    while offset <= expect.bytes {
      let n = buf.withUnsafeMutableBytes { pread(input, $0.baseAddress!, chunk, off_t(offset)) }
      if n < 0 {
        if errno == EINTR { continue }
        throw .io("cannot read \(src): \(String(cString: strerror(errno)))")
      }
      if n == 0 { break }
      try withBytes(Array(buf[0..<n])) { (part) throws(StoreError) in
        hasher.update(part)
        try files.write(fd, part, at: offset)
      }
      if tally_writeback_range(fd, off_t(offset), off_t(n)) != 0 {
        throw .io("cannot write \(path) back: \(String(cString: strerror(errno)))")
      }
      offset += n
      try pace.add(n)
    }
    guard offset == expect.bytes, hasher.finish() == expect.digest else {
      throw .corrupt("its data.mdb is not the copy it describes (size or SHA-256 differs)")
    }
  }

  /// Writes the dirty pages of the first `bytes` of the file behind `fd` back, a MiB range
  /// at a time, each waited for before the next, `pace` counting the dirty bytes of each
  /// (`cachestat`). Where the kernel cannot say which pages are dirty (before Linux 6.5),
  /// every range is written back and counted whole.
  static func writeBackDirty(
    fd: Int32, path: String, bytes: Int, pace: Pace
  ) throws(StoreError) {
    let range = 1 << 20
    var offset = 0
    while offset < bytes {
      let n = min(range, bytes - offset)
      let dirty = tally_dirty_pages(fd, UInt64(offset), UInt64(n))
      if dirty != 0 {
        if tally_writeback_range(fd, off_t(offset), off_t(n)) != 0 {
          throw .io("cannot write \(path) back: \(String(cString: strerror(errno)))")
        }
        try pace.add(dirty < 0 ? n : min(n, dirty * Int(sysconf(Int32(_SC_PAGESIZE)))))
      }
      offset += n
    }
  }

  /// Makes a copy in `DIR/snapshots/next` the newest snapshot: renamed into its own
  /// directory, described last, older snapshots removed (writer-independent: any thread).
  func publishSnapshot(
    head: LogHead, size: Int, digest: Hash32, started: Int64, copied: Int64, appendedBefore: Int
  ) throws(StoreError) -> SnapshotInfo? {
    guard let journal else { throw .io("a snapshot needs a read-write ledger") }
    let files = options.files
    let dir = snapshotsDir
    let next = dir + "/next"
    let final = dir + "/" + Self.snapshotName(head.seq)
    if fileExists(final + "/" + Self.snapshotFileName) {
      // Nothing was appended since that snapshot.
      try removeSnapshotDir(next)
      return nil
    }
    try removeSnapshotDir(final)
    // What the copy holds must be durable in the journal before the copy may stand for it.
    if journal.durableSeq < head.seq { try journal.sync() }
    let info = SnapshotInfo(head: head, bytes: size, digest: digest, ledgerID: journal.ledgerID)
    try files.mkdir(final)
    try files.rename(next + "/data.mdb", final + "/data.mdb")
    // The description goes last: a directory without a valid one is never used.
    try writeFileDurably(final + "/" + Self.snapshotFileName, info.encode(), files: files)
    try files.syncDirectory(final)
    try files.syncDirectory(next)
    try files.syncDirectory(dir)
    try files.syncDirectory(path)
    for name in try directoryNames(dir) ?? [] where dir + "/" + name != final {
      try removeSnapshotDir(dir + "/" + name)
    }
    try files.syncDirectory(dir)
    snapshotProgress.withLock {
      $0.bytes -= min($0.bytes, appendedBefore)
      $0.lastCopyBytes = size
      $0.lastCopyNanos = copied - started
    }
    return info
  }
}

/// Paces a build's writes at `bytesPerSecond` (0: no pacing), counting bytes as they go
/// (`add`), and stops it when `stop` says so (`Ledger.snapshotStopped`).
///
/// Time spent between two `add`s (the replay's CPU time) earns at most `burstNanos` of
/// credit: a build that computed for minutes does not then write its backlog at the disk's
/// full speed (a burst that queues ahead of every journal sync meanwhile).
final class Pace {
  let bytesPerSecond: Int
  /// Credit at most this much time ahead of the pace (0.25 s).
  static let burstNanos: Int64 = 250_000_000
  /// The clock (monotonic ns) and the sleep (ns, at most 50 ms at a time); a test's own.
  private let clock: () -> Int64
  private let sleep: (Int64) -> Void
  /// When the bytes counted so far are due at the pace.
  private var due: Int64
  /// Bytes counted so far.
  private(set) var total = 0
  private let stop: () -> Bool

  init(
    bytesPerSecond: Int, clock: @escaping () -> Int64 = monotonicNanos,
    sleep: @escaping (Int64) -> Void = Pace.nanosleep, stop: @escaping () -> Bool
  ) {
    self.bytesPerSecond = bytesPerSecond
    self.clock = clock
    self.sleep = sleep
    self.stop = stop
    due = clock()
  }

  static func nanosleep(_ nanos: Int64) {
    var ts = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
    Glibc.nanosleep(&ts, nil)
  }

  /// Throws once a stop was asked for.
  func checkStop() throws(StoreError) {
    if stop() { throw Ledger.snapshotStopped }
  }

  /// Counts `bytes` more, then sleeps until they are due (in steps of at most 50 ms, so
  /// that a stop is seen soon).
  func add(_ bytes: Int) throws(StoreError) {
    total += max(0, bytes)
    try checkStop()
    guard bytesPerSecond > 0 else { return }
    // Bytes come from file sizes (bounded by the disk); 128 bits hold their product.
    let cost = Int64(
      min(Int128(max(0, bytes)) * 1_000_000_000 / Int128(bytesPerSecond), Int128(1) << 62))
    due = max(due, clock() - Self.burstNanos) + cost
    while true {
      let ahead = due - clock()
      guard ahead > 0 else { return }
      sleep(min(ahead, 50_000_000))
      try checkStop()
    }
  }
}
