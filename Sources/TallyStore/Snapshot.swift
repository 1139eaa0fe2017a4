import CLMDB
import Glibc
import Synchronization
import TallyCore
import TallyCrypto

/// A durable copy of the projections as of one journal position. After an OS crash the
/// newest valid snapshot replaces `data.mdb` and only the journal after its head is
/// replayed, instead of every event from seq 1 (docs/FORMAT.md, "Snapshots").
///
/// `DIR/snapshots/<20-digit head seq>/` holds `data.mdb` (a compacted LMDB copy, made with
/// `mdb_env_copyfd2` while writes go on) and `snapshot` (what the copy covers, and the
/// SHA-256 of its bytes). The copy is written as `DIR/snapshots/next/data.mdb`, synced, and
/// renamed into its directory; the description is written last; older snapshots are removed
/// once the new one is durable. A directory without a valid description is never used.
public struct SnapshotInfo: Equatable, Sendable {
  public var head: LogHead
  /// Size of the copy's `data.mdb`.
  public var bytes: Int
  /// SHA-256 of the copy's `data.mdb`.
  public var digest: Hash32
  public var ledgerID: [UInt8]

  static let magic = Array("TALLYSNP".utf8)
  static let version: UInt32 = 1
  static let encodedBytes = 8 + 4 + 16 + 8 + 8 + 32 + 8 + 32 + 32

  func encode() -> [UInt8] {
    var w = ByteWriter(capacity: Self.encodedBytes)
    w.raw(Self.magic)
    w.u32(Self.version)
    w.raw(ledgerID)
    w.u64(head.seq)
    w.i64(head.timestampNanos)
    w.raw(head.chain.bytes)
    w.u64(UInt64(bytes))
    w.raw(digest.bytes)
    w.raw(SHA256Hasher().hash(w.bytes).bytes)
    return w.bytes
  }

  /// Nil with the reason when `b` is not a whole, intact snapshot description.
  static func decode(_ b: [UInt8]) -> Result<SnapshotInfo, SnapshotProblem> {
    guard b.count == encodedBytes else {
      return .failure(.init("its description has \(b.count) bytes, not \(encodedBytes)"))
    }
    let body = b.count - 32
    let sum = b.withUnsafeBytes {
      SHA256Hasher().hash(UnsafeRawBufferPointer(rebasing: $0[0..<body]))
    }
    guard Array(b[body...]) == sum.bytes else {
      return .failure(.init("its description fails its checksum"))
    }
    guard Array(b[0..<8]) == magic else { return .failure(.init("its description is not one")) }
    return b.withUnsafeBytes { raw -> Result<SnapshotInfo, SnapshotProblem> in
      var r = ByteReader(raw)
      do {
        _ = try r.raw(8)
        let v = try r.u32()
        guard v == version else {
          return .failure(.init("its description has version \(v); this tally reads \(version)"))
        }
        let id = try r.raw(16)
        let seq = try r.u64()
        let ts = try r.i64()
        let chain = try r.raw(32)
        let bytes = try r.u64()
        let digest = try r.raw(32)
        guard bytes <= UInt64(Int.max) else { return .failure(.init("its size is out of range")) }
        return .success(
          SnapshotInfo(
            head: LogHead(seq: seq, timestampNanos: ts, chain: Hash32(bytes: chain)),
            bytes: Int(bytes), digest: Hash32(bytes: digest), ledgerID: id))
      } catch {
        return .failure(.init("its description does not decode: \(error)"))
      }
    }
  }
}

/// Why a snapshot was not used.
public struct SnapshotProblem: Error, Equatable, Sendable, CustomStringConvertible {
  public var description: String
  init(_ d: String) { description = d }
}

/// How a read-write open brought the projections to the journal's end.
public enum RecoveryKind: Equatable, Sendable, CustomStringConvertible {
  /// The projections were LMDB's own (clean close, or a process crash: the page cache held
  /// every commit); the journal's tail after their head, if any, was replayed.
  case replayed
  /// After an OS crash (or with `data.mdb` missing) the snapshot at `seq` replaced the
  /// projections and the journal after it was replayed.
  case restoredSnapshot(seq: UInt64)
  /// The projections were rebuilt from the whole journal: no snapshot could be used
  /// (`reason` says why).
  case rebuilt(reason: String)

  public var description: String {
    switch self {
    case .replayed: "replayed the journal's tail"
    case .restoredSnapshot(let s):
      "restored the snapshot at seq \(s) and replayed the journal after it"
    case .rebuilt(let r): "rebuilt the projections from the whole journal (\(r))"
    }
  }
}

extension ByteReader {
  mutating func raw(_ n: Int) throws(DecodeError) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(n)
    for _ in 0..<n { out.append(try u8()) }
    return out
  }
}

extension Hash32 {
  init(bytes: [UInt8]) {
    self = bytes.withUnsafeBytes { Hash32(raw: $0) }
  }
}

/// How tallyd makes its snapshots (`--snapshot-method`).
public enum SnapshotMethod: String, Sendable, CaseIterable, LosslessStringConvertible {
  case build, copy
  public init?(_ description: String) { self.init(rawValue: description) }
  public var description: String { rawValue }
}

/// When to write snapshots (tallyd; a short-lived command never does).
public struct SnapshotPolicy: Sendable {
  /// Journal bytes appended since the last snapshot that make one due.
  public var journalBytes = 256 << 20
  /// Fewest seconds between two snapshots (a copy costs the projections' size in writes).
  public var minSeconds: Int64 = 60
  /// Most seconds a snapshot lags behind a ledger that was written to.
  public var maxSeconds: Int64 = 600
  /// Journal written since the last snapshot, as a percentage of that snapshot's size, that
  /// is also needed before the next one (besides `journalBytes`): a copy costs the
  /// projections' size, which grows with the ledger, so copies come less often as it grows
  /// and their cost per journal byte stays bounded (at 25: four bytes copied per journal
  /// byte at most). `maxSeconds` still bounds how far a snapshot lags.
  public var journalPercentOfCopy = 25
  /// MiB per second the copy is written at most (0, the default: as fast as the disk takes
  /// it). A copy at full speed fills the disk's queue, and journal syncs meanwhile wait
  /// behind it (a cache flush covers the copy's writes too); but a paced copy holds its read
  /// transaction longer, every page the writer changes meanwhile is a new one, and those
  /// pages are written back for minutes after it. On this project's measuring machine the
  /// short copy costs writes less in all (BENCHMARKS.md §13.5); pace it on a disk shared
  /// with other work.
  public var copyMibPerSecond = 0
  /// MiB per second a build (`method` `build`) copies the newest snapshot and writes its
  /// result back at most (0: as fast as the disk takes it). A build holds nothing of the
  /// live map, so a pace only makes it take longer; unpaced, its reads and writes queue
  /// ahead of journal syncs (BENCHMARKS.md §13.8).
  public var buildMibPerSecond = 24
  /// How a snapshot is made: `build` (the default) brings the newest snapshot forward from
  /// the journal beside the live map (`buildSnapshot`); `copy` copies the live map
  /// (`writeSnapshot`), holding a read on it for the copy's duration.
  public var method = SnapshotMethod.build
  public init() {}

  /// Journal bytes that make a snapshot due after one of `lastCopyBytes`.
  func journalBytesDue(lastCopyBytes: Int) -> Int {
    // Overflow-safe: the size comes from a file on disk (bounded by the file's real size,
    // `newestSnapshotBytes`), the percentage from a flag (0…10,000).
    let (scaled, over) = lastCopyBytes.multipliedReportingOverflow(by: journalPercentOfCopy)
    return max(journalBytes, over ? Int.max : scaled / 100)
  }
}

extension Ledger {
  static let snapshotsDirName = "snapshots"
  static let snapshotFileName = "snapshot"

  var snapshotsDir: String { path + "/" + Self.snapshotsDirName }

  /// Whether `policy` calls for a snapshot now (writer thread: it reads the counters the
  /// write path keeps).
  public func snapshotDue(_ policy: SnapshotPolicy) -> Bool {
    let (bytes, last, copy) = snapshotProgress.withLock {
      ($0.bytes, $0.lastNanos, $0.lastCopyBytes)
    }
    if bytes == 0 { return false }
    let age = (monotonicNanos() - last) / 1_000_000_000
    return (bytes >= policy.journalBytesDue(lastCopyBytes: copy) && age >= policy.minSeconds)
      || age >= policy.maxSeconds
  }

  /// Grows the map ahead of a snapshot (writer thread, no transaction open). The copy holds
  /// one read transaction from start to end, and LMDB cannot reuse a page freed after it
  /// began, so every page the writer changes meanwhile is a new one; and the map cannot grow
  /// while the copy reads it (`grow` waits for reads in flight). Without room for the pages
  /// written during the copy, the writer would stop until the copy ends. The room asked for
  /// is the last copy's size (a copy's duration, and so the pages written during it, grows
  /// with it), at least 512 MiB, below the 80 % at which a write waits for a growth.
  ///
  /// The room: what the map grew by per second during the last copy, times the next copy's
  /// expected duration (its expected size at the speed the last attempt, whole or cancelled,
  /// wrote at, or at `copyMibPerSecond` when slower), twice over, and at least the last
  /// copy's size and 512 MiB. Should the writer still need
  /// a growth during the copy, it cancels the copy rather than wait for it (`grow`); the
  /// cancelled copy's measured growth then sizes the next attempt's room.
  public func makeRoomForSnapshot(copyMibPerSecond: Int = 0) throws(StoreError) {
    let want = Self.snapshotRoom(
      snapshotProgress.withLock { $0 }, copyMibPerSecond: copyMibPerSecond)
    for _ in 0..<8 {
      let (map, used) = env.info
      if map / 5 * 4 - used >= want || grownMapBytes(map) == nil { return }
      try grow()
    }
  }

  /// The map bytes a snapshot's copy needs free below the growth mark (`makeRoomForSnapshot`).
  static func snapshotRoom(_ progress: SnapshotProgress, copyMibPerSecond: Int) -> Int {
    let expectedBytes = max(progress.lastCopyBytes + progress.lastCopyBytes / 4, 64 << 20)
    var speed = max(progress.copyBytesPerSecond, 1 << 20)
    if copyMibPerSecond > 0 && copyMibPerSecond << 20 < speed { speed = copyMibPerSecond << 20 }
    let seconds = expectedBytes / speed + 1
    let (growth, over) = progress.copyGrowthPerSecond.multipliedReportingOverflow(
      by: seconds * 2)
    return max(512 << 20, progress.lastCopyBytes, over ? Int.max / 2 : growth)
  }

  /// Writes a snapshot of the projections as committed now and removes older ones. Safe on
  /// another thread than the writer's while it writes: LMDB's copy reads a snapshot of its
  /// own, and the map does not grow meanwhile. Returns nil when no event was appended since
  /// the newest snapshot.
  ///
  /// `copyMibPerSecond` paces the copy's writes (0: unpaced; see `SnapshotPolicy`).
  public func writeSnapshot(copyMibPerSecond: Int = 0) throws(StoreError) -> SnapshotInfo? {
    guard journal != nil, !readOnly else { throw .io("a snapshot needs a read-write ledger") }
    if snapshotStopRequested { throw Self.snapshotStopped }
    let files = options.files
    let data = try emptyNextSnapshotDir() + "/data.mdb"
    let started = monotonicNanos()
    let appendedBefore = snapshotProgress.withLock { $0.bytes }
    // A failed attempt also waits the policy's interval before the next one.
    defer { snapshotProgress.withLock { $0.lastNanos = started } }
    let fd = try files.open(data, create: true)
    // Off the writer's thread: mdb_env_info reads the map, which a growth may be remapping.
    let usedBefore = reader.gate.shared { env.info.usedBytes }
    snapshotCopy.cancel.store(false, ordering: .relaxed)
    snapshotCopy.written.store(0, ordering: .relaxed)
    snapshotCopy.running.store(true, ordering: .releasing)
    /// Once the copy's read is over (whole, failed or cancelled): a growth no longer needs
    /// to cancel it, and what the map grew by meanwhile, and how fast the copy was written,
    /// size the next copy's room.
    func copyEnded() {
      snapshotCopy.running.store(false, ordering: .releasing)
      let nanos = max(1, monotonicNanos() - started)
      let seconds = max(1, nanos / 1_000_000_000)
      let grew = max(0, reader.gate.shared { env.info.usedBytes } - usedBefore)
      let written = snapshotCopy.written.load(ordering: .relaxed)
      snapshotProgress.withLock {
        $0.copyGrowthPerSecond = grew / Int(seconds)
        // Only a copy of some size says how fast the disk takes one.
        if written >= 64 << 20 {
          $0.copyBytesPerSecond = written / Int(max(1, nanos / 1_000_000)) * 1000
        }
      }
    }
    // LMDB writes the copy into a pipe; a thread of ours hashes each chunk as it arrives and
    // writes it to the file, bypassing the page cache where the filesystem allows it
    // (O_DIRECT, 1 MiB aligned chunks). The copy is never read back to be hashed: reading
    // gigabytes from disk beside the writer stalls its own writes (block-layer writeback
    // throttling), and writing them through the cache costs a CPU copy and evicts the live
    // map. Where O_DIRECT is refused (tmpfs), the file is written through the cache.
    let size: Int
    let digest: Hash32
    do throws(StoreError) {
      do throws(StoreError) {
        (size, digest) = try Self.copyHashing(
          fd: fd, path: data, bytesPerSecond: copyMibPerSecond << 20, control: snapshotCopy
        ) { (out) throws(StoreError) in
          let rc = reader.gate.shared { mdb_env_copyfd2(env.env, out, UInt32(MDB_CP_COMPACT)) }
          try check(rc, "env_copy")
        }
      } catch {
        copyEnded()
        throw error
      }
      copyEnded()
      files.wroteOutside(fd)
      try files.sync(fd)
    } catch {
      files.close(fd)
      throw error
    }
    files.close(fd)
    let copied = monotonicNanos()
    // The copy was just written by LMDB from the live map, whose structure was checked when
    // this ledger opened: no second walk of it here (it would read the whole copy again on
    // the thread beside the writer). Recovery checks it before using it (`checkSnapshot`).
    let head = try Self.snapshotHead(data, checkStructure: false)
    return try publishSnapshot(
      head: head, size: size, digest: digest, started: started, copied: copied,
      appendedBefore: appendedBefore)
  }

  /// `DIR/snapshots/next`, made empty (what an interrupted attempt left is removed).
  func emptyNextSnapshotDir() throws(StoreError) -> String {
    let next = snapshotsDir + "/next"
    try options.files.mkdir(snapshotsDir)
    try removeSnapshotDir(next)
    try options.files.mkdir(next)
    return next
  }

  /// A snapshot directory's name: its head seq in 20 digits.
  static func snapshotName(_ seq: UInt64) -> String {
    let digits = String(seq)
    return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
  }

  static func snapshotSeq(_ name: String) -> UInt64? {
    guard name.utf8.count == 20, name.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
    return UInt64(name)
  }

  /// Removes a snapshot directory, its description first: a directory partly removed (a
  /// crash, or a reader listing it meanwhile) is then one without a description, which
  /// recovery and verify skip, never a described snapshot with its copy missing.
  func removeSnapshotDir(_ d: String) throws(StoreError) {
    guard let names = try directoryNames(d) else { return }
    let described = names.contains(Self.snapshotFileName)
    if described { try options.files.unlink(d + "/" + Self.snapshotFileName) }
    for n in names where !(described && n == Self.snapshotFileName) {
      try options.files.unlink(d + "/" + n)
    }
    if rmdir(d) != 0 && errno != ENOENT {
      throw .io("cannot remove \(d): \(String(cString: strerror(errno)))")
    }
  }

  /// The head recorded in a copied `data.mdb` (opened read-only, without a lock file); its
  /// structure is checked first (MapAudit) unless the caller just wrote it.
  static func snapshotHead(_ file: String, checkStructure: Bool = true) throws(StoreError)
    -> LogHead
  {
    let env = try Environment(path: file, readOnly: true, noSubdirNoLock: true)
    let txn = try env.begin(readOnly: true)
    defer { mdb_txn_abort(txn) }
    if checkStructure { _ = try MapAudit.check(file: file, txnID: UInt64(mdb_txn_id(txn))) }
    var meta: MDB_dbi = 0
    try check(mdb_dbi_open(txn, "meta", 0, &meta), "dbi_open meta")
    var dbs = DBs()
    dbs.meta = meta
    return try readHead(Txn(txn: txn), dbs)
  }

  /// Runs `produce` with the write end of a pipe, while a thread reads the pipe, hashes what
  /// arrives and writes it to `fd` from offset 0; returns the bytes written and their
  /// SHA-256. The reader drains the pipe to its end even after a failed write (so the
  /// producer never blocks or gets EPIPE), and the first error wins. `bytesPerSecond` > 0
  /// paces the writes (the producer then waits on the full pipe).
  static func copyHashing(
    fd: Int32, path: String, bytesPerSecond: Int = 0, control: SnapshotCopyControl? = nil,
    _ produce: (Int32) throws(StoreError) -> Void
  ) throws(StoreError) -> (Int, Hash32) {
    var ends: [Int32] = [-1, -1]
    if pipe(&ends) != 0 {
      throw .io("cannot make a pipe for \(path): \(String(cString: strerror(errno)))")
    }
    let (readEnd, writeEnd) = (ends[0], ends[1])
    for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
    // F_SETPIPE_SZ: fewer wake-ups than the default 64 KiB (a larger pipe is only faster).
    _ = fcntl(writeEnd, 1031, Int32(1 << 20))
    let flags = fcntl(fd, F_GETFL)
    let direct = openDirectFlag.map { fcntl(fd, F_SETFL, flags | $0) == 0 } ?? false
    let sink = SnapshotSink(
      fd: fd, readEnd: readEnd, direct: direct, path: path, bytesPerSecond: bytesPerSecond,
      control: control)
    let thread = WorkerThread(name: "tally-snap-hash") { sink.run() }
    var produced: StoreError?
    do throws(StoreError) { try produce(writeEnd) } catch { produced = error }
    Glibc.close(writeEnd)
    thread.join()
    if direct { _ = fcntl(fd, F_SETFL, flags) }
    // A cancelled copy fails in LMDB (its pipe closed: EPIPE); the cancellation is the news.
    if let e = sink.error, sink.cancelled {
      if !sink.stopped { control?.cancelled.add(1, ordering: .relaxed) }
      throw e
    }
    if let produced { throw produced }
    if let e = sink.error { throw e }
    return (sink.written, sink.hash.finish())
  }

  /// How long the newest snapshot's copy (LMDB's read transaction, hashing and writing it)
  /// took, in nanoseconds.
  public var lastSnapshotCopyNanos: Int64 { snapshotProgress.withLock { $0.lastCopyNanos } }

  /// Snapshot copies cancelled since the open so that the map could grow (`grow`).
  public var snapshotCopiesCancelled: Int { snapshotCopy.cancelled.load(ordering: .relaxed) }

  /// Size and SHA-256 of a file (mapped read-only).
  static func digestFile(_ file: String) throws(StoreError) -> (Int, Hash32) {
    let fd = Glibc.open(file, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw .io("cannot open \(file): \(String(cString: strerror(errno)))") }
    defer { Glibc.close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw .io("cannot stat \(file): \(String(cString: strerror(errno)))") }
    let size = Int(st.st_size)
    if size == 0 { return (0, SHA256Hasher().hash()) }
    guard let p = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), p != MAP_FAILED else {
      throw .io("cannot map \(file): \(String(cString: strerror(errno)))")
    }
    defer {
      munmap(p, size)
      // A snapshot's pages are cold (read again only by a recovery): drop them from the
      // page cache rather than let them push out the live map's.
      _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
    }
    _ = madvise(p, size, MADV_SEQUENTIAL)
    return (size, SHA256Hasher().hash(UnsafeRawBufferPointer(start: p, count: size)))
  }

  /// The newest snapshot of this ledger that is whole and intact, or why none is: each
  /// directory is checked (its description's checksum, ledger id, the copy's size, SHA-256
  /// and recorded head), newest first.
  static func usableSnapshot(_ path: String, ledgerID: [UInt8]) throws(StoreError) -> Result<
    (dir: String, info: SnapshotInfo), SnapshotProblem
  > {
    let dir = path + "/" + snapshotsDirName
    let seqs = (try directoryNames(dir) ?? []).compactMap { snapshotSeq($0) }.sorted(by: >)
    if seqs.isEmpty { return .failure(.init("no snapshot")) }
    var why = [String]()
    for seq in seqs {
      let d = dir + "/" + snapshotName(seq)
      switch try checkSnapshot(d, seq: seq, ledgerID: ledgerID) {
      case .success(let info): return .success((d, info))
      case .failure(let p): why.append("snapshot \(seq): \(p)")
      }
    }
    return .failure(.init(why.joined(separator: "; ")))
  }

  /// The size the newest snapshot's description gives (0 when there is none or it does not
  /// decode): only paces the next snapshot (`SnapshotPolicy.journalPercentOfCopy`); a
  /// recovery checks a snapshot in full before using it.
  static func newestSnapshotBytes(_ path: String) -> Int {
    let dir = path + "/" + snapshotsDirName
    guard let names = try? directoryNames(dir),
      let seq = names.compactMap({ snapshotSeq($0) }).max(),
      let raw = try? readWholeFile(dir + "/" + snapshotName(seq) + "/" + snapshotFileName),
      case .success(let info) = SnapshotInfo.decode(raw)
    else { return 0 }
    // Never more than the copy's real size: a description is only checksummed, and this
    // value sizes map growth (`makeRoomForSnapshot`).
    var st = stat()
    let file = dir + "/" + snapshotName(seq) + "/data.mdb"
    guard stat(file, &st) == 0 else { return 0 }
    return min(info.bytes, Int(st.st_size))
  }

  static func checkSnapshot(_ d: String, seq: UInt64, ledgerID: [UInt8]) throws(StoreError)
    -> Result<SnapshotInfo, SnapshotProblem>
  {
    let metaPath = d + "/" + snapshotFileName
    guard fileExists(metaPath), fileExists(d + "/data.mdb") else {
      return .failure(.init("it is incomplete"))
    }
    let raw: [UInt8]
    do { raw = try readWholeFile(metaPath) } catch { return .failure(.init("\(error)")) }
    let info: SnapshotInfo
    switch SnapshotInfo.decode(raw) {
    case .failure(let p): return .failure(p)
    case .success(let i): info = i
    }
    guard info.ledgerID == ledgerID else { return .failure(.init("it belongs to another ledger")) }
    guard info.head.seq == seq else {
      return .failure(.init("its description says seq \(info.head.seq)"))
    }
    let (size, digest) = try digestFile(d + "/data.mdb")
    guard size == info.bytes, digest == info.digest else {
      return .failure(.init("its data.mdb is not the copy it describes (size or SHA-256 differs)"))
    }
    let head: LogHead
    do { head = try snapshotHead(d + "/data.mdb") } catch {
      return .failure(.init("its data.mdb does not open: \(error)"))
    }
    guard head == info.head else {
      return .failure(.init("its data.mdb holds head seq \(head.seq), not the one described"))
    }
    return .success(info)
  }

  /// Replaces `DIR/data.mdb` with the snapshot's copy (written under a temporary name,
  /// synced, renamed).
  static func restoreSnapshot(_ snapDir: String, into path: String, files: JournalFiles)
    throws(StoreError)
  {
    let src = Glibc.open(snapDir + "/data.mdb", O_RDONLY | O_CLOEXEC)
    if src < 0 { throw .io("cannot open \(snapDir)/data.mdb: \(String(cString: strerror(errno)))") }
    defer { Glibc.close(src) }
    let tmp = path + "/data.mdb.restore"
    try files.unlink(tmp)
    let dst = try files.open(tmp, create: true)
    do throws(StoreError) {
      var buf = [UInt8](repeating: 0, count: 1 << 20)
      var offset = 0
      while true {
        let n = buf.withUnsafeMutableBytes { Glibc.read(src, $0.baseAddress!, $0.count) }
        if n < 0 {
          if errno == EINTR { continue }
          throw .io("cannot read \(snapDir)/data.mdb: \(String(cString: strerror(errno)))")
        }
        if n == 0 { break }
        try withBytes(Array(buf[0..<n])) { (b) throws(StoreError) in
          try files.write(dst, b, at: offset)
        }
        offset += n
      }
      try files.sync(dst)
    } catch {
      files.close(dst)
      throw error
    }
    files.close(dst)
    try files.unlink(path + "/lock.mdb")
    try files.rename(tmp, path + "/data.mdb")
    try files.syncDirectory(path)
  }
}

/// What the write path counts for the snapshot policy (shared with the snapshot thread).
struct SnapshotProgress {
  var bytes = 0
  var lastNanos: Int64
  /// Size of the newest snapshot's copy (0 before the first).
  var lastCopyBytes = 0
  var lastCopyNanos: Int64 = 0
  /// Map bytes the writer used per second while the last copy (whole or cancelled) ran: LMDB
  /// reuses no page freed during a copy, so this sizes the room the next one needs.
  var copyGrowthPerSecond = 0
  /// Bytes per second the last attempt (whole or cancelled, of 64 MiB or more) wrote its
  /// copy at (0 before the first): with the expected size, a copy's expected duration.
  var copyBytesPerSecond = 0
}

/// Lets the writer cancel a snapshot's copy that stands in the way of a map growth: the
/// copy's read transaction holds the gate that `mdb_env_set_mapsize` needs free, and a paced
/// copy of gigabytes would hold the writer (and every write) for a minute.
final class SnapshotCopyControl: Sendable {
  let running = Atomic<Bool>(false)
  let cancel = Atomic<Bool>(false)
  /// A shutdown asked the snapshot (build or copy) to stop (`Ledger.stopSnapshot`).
  let stopping = Atomic<Bool>(false)
  /// Bytes of the running (or last) copy written so far.
  let written = Atomic<Int>(0)
  /// Copies that stopped because `cancel` was set (not those that ended first).
  let cancelled = Atomic<Int>(0)
}

/// O_DIRECT's value (Swift's Glibc does not export it); nil where it is not known.
#if arch(x86_64)
  let openDirectFlag: Int32? = 0o40000
#elseif arch(arm64)
  let openDirectFlag: Int32? = 0o200000
#else
  let openDirectFlag: Int32? = nil
#endif

/// Nanoseconds of CLOCK_MONOTONIC (intervals only).
public func monotonicNanos() -> Int64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// The reading side of `Ledger.copyHashing` (one thread; its fields are read after `join`).
final class SnapshotSink: @unchecked Sendable {
  static let chunk = 1 << 20
  let fd: Int32
  let readEnd: Int32
  var direct: Bool
  let path: String
  var hash = SHA256Stream()
  var written = 0
  var error: StoreError?
  /// At most this many bytes written per second (0: unpaced).
  let bytesPerSecond: Int
  let started = monotonicNanos()
  /// Asked to stop by the writer (`SnapshotCopyControl`).
  let control: SnapshotCopyControl?
  var cancelled = false
  /// The cancellation was a shutdown's (not counted as a growth's).
  var stopped = false

  init(
    fd: Int32, readEnd: Int32, direct: Bool, path: String, bytesPerSecond: Int = 0,
    control: SnapshotCopyControl? = nil
  ) {
    self.fd = fd
    self.readEnd = readEnd
    self.direct = direct
    self.path = path
    self.bytesPerSecond = bytesPerSecond
    self.control = control
  }

  /// True once the writer asked the copy to stop (a growth), or a shutdown did
  /// (`Ledger.stopSnapshot`): the sink then closes the pipe (LMDB's copy fails with EPIPE,
  /// which its copy thread keeps from raising SIGPIPE) and reports why.
  private func cancelRequested() -> Bool {
    guard let control else { return false }
    if control.stopping.load(ordering: .acquiring) {
      cancelled = true
      stopped = true
      if error == nil { error = Ledger.snapshotStopped }
      return true
    }
    guard control.cancel.load(ordering: .acquiring) else { return false }
    cancelled = true
    if error == nil {
      error = .io("the snapshot's copy of \(path) was cancelled: the map had to grow")
    }
    return true
  }

  /// Sleeps until `written` bytes are due at the pace asked for (at most 1 s at a time: a
  /// chunk is 1 MiB, the pace at least 1 MiB/s).
  private func pace() {
    guard bytesPerSecond > 0 else { return }
    let (scaled, over) = written.multipliedReportingOverflow(by: 1_000_000_000)
    if over { return }
    let due = started + Int64(scaled / bytesPerSecond)
    // In steps of at most 10 ms, so that a cancellation is seen soon.
    while !cancelRequested() {
      let ahead = due - monotonicNanos()
      guard ahead > 0 else { return }
      var ts = timespec(tv_sec: 0, tv_nsec: Int(min(ahead, 10_000_000)))
      nanosleep(&ts, nil)
    }
  }

  func run() {
    // Closed here, at the pipe's end or after a failed read (the producer then gets EPIPE
    // rather than block on a pipe nobody reads).
    defer { Glibc.close(readEnd) }
    guard let buf = UnsafeMutableRawPointer.allocateAligned(Self.chunk) else {
      error = .io("cannot allocate a buffer for \(path)")
      drain()
      return
    }
    defer { free(buf) }
    while true {
      // Fill the chunk (O_DIRECT writes whole aligned chunks), or stop at the pipe's end.
      var filled = 0
      while filled < Self.chunk {
        let n = Glibc.read(readEnd, buf + filled, Self.chunk - filled)
        if n < 0 {
          if errno == EINTR { continue }
          if error == nil {
            error = .io("cannot read the copy of \(path): \(String(cString: strerror(errno)))")
          }
          return
        }
        if n == 0 { break }
        filled += n
      }
      if filled == 0 { return }
      let bytes = UnsafeRawBufferPointer(start: buf, count: filled)
      if error == nil {
        hash.update(bytes)
        // The last chunk may not be a whole number of blocks: written through the cache.
        if direct && filled % 4096 != 0 {
          _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~(openDirectFlag ?? 0))
          direct = false
        }
        let err = pwriteFully(fd, bytes, at: written)
        if err != 0 { error = writeError("cannot write \(path)", err) }
        written += filled
        control?.written.store(written, ordering: .relaxed)
        pace()
      }
      if cancelled || cancelRequested() { return }
      if filled < Self.chunk { drain(); return }
    }
  }

  /// Reads the pipe to its end, discarding (after an error).
  private func drain() {
    var scratch = [UInt8](repeating: 0, count: 65536)
    while true {
      let n = scratch.withUnsafeMutableBytes { Glibc.read(readEnd, $0.baseAddress!, $0.count) }
      if n == 0 || (n < 0 && errno != EINTR) { return }
    }
  }
}

extension UnsafeMutableRawPointer {
  /// `bytes` aligned to 4096 (what O_DIRECT needs on common filesystems); free with `free`.
  static func allocateAligned(_ bytes: Int) -> UnsafeMutableRawPointer? {
    var p: UnsafeMutableRawPointer?
    return posix_memalign(&p, 4096, bytes) == 0 ? p : nil
  }
}
