import Glibc
import Synchronization
import TallyCore
import TallyCrypto

/// A record the journal could not accept as part of the log: names the first bad seq.
public struct JournalError: Error, CustomStringConvertible, Sendable, Equatable {
  public var seq: UInt64
  public var segment: String
  public var offset: Int
  public var reason: String
  public var description: String {
    "journal: seq \(seq): \(reason) (segment \(segment), offset \(offset))"
  }
}

/// How a scan of the journal ended.
public enum JournalEnd: Equatable, Sendable {
  /// After the last record: zeros to the end of the last segment.
  case clean
  /// A torn or zeroed record at `seq` that nothing durable follows: it was never
  /// acknowledged, and recovery cuts the journal there.
  case torn(seq: UInt64, segment: String, offset: Int, reason: String)
}

/// The journal: the log's acknowledged events in append-only, preallocated segment files
/// (docs/FORMAT.md, "The journal"). One writer thread appends whole groups; `sync` (from
/// that thread or a syncer thread) makes them durable with one `fdatasync`; readers that
/// must not see undurable state wait in `waitDurable`.
public final class Journal: @unchecked Sendable {
  public let directory: String
  let files: JournalFiles
  public let ledgerID: [UInt8]
  let segmentBytes: Int
  let hasher = SHA256Hasher()

  struct Segment {
    var name: String
    var header: SegmentHeader
    var path: String
  }
  /// Segments in seq order (writer thread, and open).
  private(set) var segments: [Segment]

  // The write side: only the writer thread appends and rolls; `sync` reads `fd` under
  // `syncLock`, which a roll also holds.
  private var fd: Int32 = -1
  private var writeOffset = 0
  private var capacity = 0
  /// The last record written: seq and chain hash after it.
  public private(set) var lastSeq: UInt64 = 0
  public private(set) var lastChain = Hash32.zero

  private let written = Atomic<UInt64>(0)
  private let durable = Atomic<UInt64>(0)
  private let durableHook = Mutex<(@Sendable () -> Void)?>(nil)
  private let syncLock = Mutex<StoreError?>(nil)
  private var waitMutex = pthread_mutex_t()
  private var waitCond = pthread_cond_t()
  /// Set when a sync failed: nothing more is written or acknowledged (no fsync retries).
  private let poisoned = Atomic<Bool>(false)
  /// The next segment's file, made ahead of time off the writer (see `prepareNext`).
  public let preparer = SegmentPreparer()

  init(
    directory: String, files: JournalFiles, ledgerID: [UInt8], segmentBytes: Int,
    segments: [Segment]
  ) {
    precondition(ledgerID.count == JournalFormat.ledgerIDBytes)
    self.directory = directory
    self.files = files
    self.ledgerID = ledgerID
    self.segmentBytes = segmentBytes
    self.segments = segments
    pthread_mutex_init(&waitMutex, nil)
    pthread_cond_init(&waitCond, nil)
  }

  deinit {
    preparer.discard(files)
    if fd >= 0 { files.close(fd) }
    pthread_mutex_destroy(&waitMutex)
    pthread_cond_destroy(&waitCond)
  }

  // MARK: opening

  static func newLedgerID() -> [UInt8] { Secrets.random(JournalFormat.ledgerIDBytes) }

  /// Reads the segment headers of `directory`: names, ledger ids and order. A segment whose
  /// header is all zeros is one whose creation a crash interrupted; it must be the last, and
  /// `openForWriting` removes it. Leftover `.tmp` files are ignored here.
  static func load(
    directory: String, files: JournalFiles, segmentBytes: Int = JournalFormat.segmentBytesDefault
  ) throws(StoreError) -> Journal? {
    guard let names = try directoryNames(directory) else { return nil }
    var segments = [Segment]()
    var unfinished: String?
    var id: [UInt8]?
    for name in names {
      guard let first = JournalFormat.segmentFirstSeq(name) else { continue }
      let path = directory + "/" + name
      let fd = try files.open(path, create: false)
      let head: [UInt8]
      do throws(StoreError) {
        head = try files.read(fd, count: JournalFormat.headerBytes, at: 0)
      } catch {
        files.close(fd)
        throw error
      }
      files.close(fd)
      switch SegmentHeader.decode(head) {
      case .failure(.empty):
        if unfinished != nil {
          throw .corrupt("journal: segments \(unfinished!) and \(name) have no header")
        }
        unfinished = name
        continue
      case .failure(.invalid(let why)):
        throw .corrupt("journal: segment \(name): \(why)")
      case .success(let h):
        if let u = unfinished {
          throw .corrupt("journal: segment \(u) has no header but \(name) follows it")
        }
        guard h.firstSeq == first else {
          throw .corrupt("journal: segment \(name) says it starts at seq \(h.firstSeq)")
        }
        if let id, id != h.ledgerID {
          throw .corrupt(
            "journal: segment \(name) belongs to another ledger (id \(h.ledgerID.hex), "
              + "expected \(id.hex))")
        }
        id = h.ledgerID
        segments.append(Segment(name: name, header: h, path: path))
      }
    }
    guard let id else {
      // No segment yet (a journal that never got its first group): its id is in `ledger-id`.
      guard let stored = try Self.readLedgerID(directory, files) else { return nil }
      return Journal(
        directory: directory, files: files, ledgerID: stored, segmentBytes: segmentBytes,
        segments: [])
    }
    if let stored = try Self.readLedgerID(directory, files), stored != id {
      throw .corrupt(
        "journal: segment \(segments[0].name) belongs to another ledger (id \(id.hex); this "
          + "journal is ledger \(stored.hex))")
    }
    return Journal(
      directory: directory, files: files, ledgerID: id, segmentBytes: segmentBytes,
      segments: segments)
  }

  static let ledgerIDFile = "ledger-id"

  static func readLedgerID(_ directory: String, _ files: JournalFiles) throws(StoreError)
    -> [UInt8]?
  {
    let path = directory + "/" + ledgerIDFile
    guard fileExists(path) else { return nil }
    let fd = try files.open(path, create: false)
    defer { files.close(fd) }
    let b = try files.read(fd, count: 64, at: 0)
    guard let text = String(validating: b, as: UTF8.self),
      let id = [UInt8](hex: text.trimmingNewline()), id.count == JournalFormat.ledgerIDBytes
    else { throw .corrupt("journal: \(path) does not hold a ledger id") }
    return id
  }

  /// Creates an empty journal directory with a new ledger id (durably).
  static func create(
    directory: String, files: JournalFiles, ledgerID: [UInt8] = newLedgerID(),
    segmentBytes: Int = JournalFormat.segmentBytesDefault
  ) throws(StoreError) -> Journal {
    try files.mkdir(directory)
    try writeFileDurably(
      directory + "/" + ledgerIDFile, Array((ledgerID.hex + "\n").utf8), files: files)
    let parent = String(directory.prefix(upTo: directory.lastIndex(of: "/") ?? directory.endIndex))
    try files.syncDirectory(parent.isEmpty ? "." : parent)
    return Journal(
      directory: directory, files: files, ledgerID: ledgerID, segmentBytes: segmentBytes,
      segments: [])
  }

  // MARK: reading

  /// A mapped segment, unmapped on deinit.
  final class Mapped {
    let base: UnsafeRawPointer?
    let count: Int
    init(path: String) throws(StoreError) {
      let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
      if fd < 0 { throw .io("cannot open \(path): \(String(cString: strerror(errno)))") }
      defer { _ = Glibc.close(fd) }
      var st = stat()
      guard fstat(fd, &st) == 0 else { throw .io("cannot stat \(path)") }
      count = Int(st.st_size)
      if count == 0 {
        base = nil
        return
      }
      let p = mmap(nil, count, PROT_READ, MAP_SHARED, fd, 0)
      if p == MAP_FAILED { throw .io("cannot map \(path): \(String(cString: strerror(errno)))") }
      _ = madvise(p, count, MADV_SEQUENTIAL)
      base = UnsafeRawPointer(p)
    }
    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    deinit { if let base { munmap(UnsafeMutableRawPointer(mutating: base), count) } }
  }

  /// Where a scan ended: the last good record and the offset after it.
  public struct ScanResult: Sendable {
    public var lastSeq: UInt64
    public var lastChain: Hash32
    public var end: JournalEnd
    /// The segment index and offset where the next record goes.
    var segmentIndex: Int
    var offset: Int
  }

  /// Walks every record from `from` (≥ 1) to the end of the journal, checking each frame,
  /// seq, leaf and chain hash, and calls `body` for each. Records before `from` in its
  /// segment are checked too (the chain needs them). A bad record that something durable
  /// follows is a `JournalError` naming its seq; a torn tail ends the scan (`end`).
  /// `expectChainBefore`, when given, is what chain[from - 1] must be.
  public func scan(
    from: UInt64 = 1,
    _ body: (JournalRecord) throws -> Void
  ) throws -> ScanResult {
    precondition(from >= 1)
    var index = 0
    for (i, s) in segments.enumerated() where s.header.firstSeq <= from { index = i }
    var result = ScanResult(
      lastSeq: 0, lastChain: .zero, end: .clean, segmentIndex: 0, offset: JournalFormat.headerBytes)
    if segments.isEmpty { return result }
    var expected = segments[index].header.firstSeq
    var chain = segments[index].header.chainBefore
    result.lastSeq = expected - 1
    result.lastChain = chain
    result.segmentIndex = index
    while index < segments.count {
      let seg = segments[index]
      if seg.header.firstSeq != expected || seg.header.chainBefore != chain {
        let why =
          seg.header.firstSeq != expected
          ? "segment missing: the journal jumps from seq \(expected - 1) to segment \(seg.name)"
          : "segment \(seg.name) does not continue the chain of the one before it"
        throw JournalError(seq: expected, segment: seg.name, offset: 0, reason: why)
      }
      let map = try Mapped(path: seg.path)
      let buf = map.buffer
      let limit = min(buf.count, Int(seg.header.capacityBytes))
      var offset = JournalFormat.headerBytes
      result.segmentIndex = index
      result.offset = offset
      while true {
        let read =
          offset >= limit
          ? .zero : JournalFormat.readFrame(buf, at: offset, limit: limit, hasher: hasher)
        var problem: String?
        switch read {
        case .record(let r, let next):
          if r.seq != expected {
            problem = "frame carries seq \(r.seq)"
          } else if hasher.chain(chain, r.leaf) != r.chain {
            problem = "chain hash does not continue the previous record"
          } else {
            if r.seq >= from { try body(r) }
            chain = r.chain
            expected += 1
            offset = next
            result.lastSeq = r.seq
            result.lastChain = chain
            result.offset = offset
            continue
          }
        case .zero:
          // The end of this segment's records: a roll continues in the next segment at
          // exactly `expected`; the last segment ends with zeros to its end.
          if index + 1 < segments.count {
            let next = segments[index + 1].header
            if next.firstSeq == expected && next.chainBefore == chain { break }
            problem =
              next.firstSeq > expected
              ? "segment missing: no record from seq \(expected) to seq \(next.firstSeq - 1)"
              : "zeroed record"
          } else if Self.isZero(UnsafeRawBufferPointer(rebasing: buf[min(offset, limit)..<limit])) {
            result.end = .clean
            return result
          } else {
            problem = "zeroed record with bytes after it"
          }
        case .bad(let why):
          problem = why
        }
        if let problem {
          if try laterRecord(after: expected, index: index, offset: offset) {
            throw JournalError(
              seq: expected, segment: seg.name, offset: offset,
              reason: problem + "; durable records follow it")
          }
          result.end = .torn(seq: expected, segment: seg.name, offset: offset, reason: problem)
          return result
        }
        break
      }
      index += 1
    }
    return result
  }

  static func isZero(_ b: UnsafeRawBufferPointer) -> Bool {
    // Word at a time: this runs over the rest of a segment at every open.
    var i = 0
    let n = b.count
    while i + 8 <= n {
      if b.loadUnaligned(fromByteOffset: i, as: UInt64.self) != 0 { return false }
      i += 8
    }
    while i < n {
      if b[i] != 0 { return false }
      i += 1
    }
    return true
  }

  /// Checks the journal's shape up to segment `before` without hashing: every frame's
  /// magic, length and seq, and that each segment ends where the next begins. Cheap (a hop
  /// per record), so every read-write open runs it over the segments it does not scan; a
  /// flipped byte inside an event there is found by `verify`, which hashes every record.
  func checkStructure(before: Int) throws(JournalError) {
    guard before > 0 else { return }
    for i in 0..<min(before, segments.count) {
      let seg = segments[i]
      let map: Mapped
      do { map = try Mapped(path: seg.path) } catch {
        throw JournalError(
          seq: seg.header.firstSeq, segment: seg.name, offset: 0, reason: "\(error)")
      }
      let buf = map.buffer
      let limit = min(buf.count, Int(seg.header.capacityBytes))
      var o = JournalFormat.headerBytes
      var expected = seg.header.firstSeq
      while o + JournalFormat.recordHeaderBytes <= limit {
        let magic = UInt32(bigEndian: buf.loadUnaligned(fromByteOffset: o, as: UInt32.self))
        if magic == 0 { break }
        let len = Int(UInt32(bigEndian: buf.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self)))
        let seq = UInt64(bigEndian: buf.loadUnaligned(fromByteOffset: o + 8, as: UInt64.self))
        guard magic == JournalFormat.recordMagic, len >= 1, len <= JournalFormat.eventBytesMax,
          seq == expected, o + JournalFormat.recordHeaderBytes + len <= limit
        else {
          throw JournalError(seq: expected, segment: seg.name, offset: o, reason: "bad frame")
        }
        expected += 1
        o += JournalFormat.recordBytes(eventBytes: len)
      }
      let next = segments[i + 1].header.firstSeq
      if next != expected {
        throw JournalError(
          seq: expected, segment: seg.name, offset: o,
          reason: next > expected
            ? "segment missing: no record from seq \(expected) to seq \(next - 1)"
            : "segment \(segments[i + 1].name) overlaps this one")
      }
    }
  }

  /// The index of the segment that holds `seq` (the last one starting at or before it).
  func segmentIndex(holding seq: UInt64) -> Int {
    var index = 0
    for (i, s) in segments.enumerated() where s.header.firstSeq <= seq { index = i }
    return index
  }

  /// `scan` without a body: checks everything and says where the journal ends.
  func scanEnd() throws(StoreError) -> ScanResult {
    do { return try scan { _ in } } catch let e as JournalError {
      throw .corrupt(e.description)
    } catch let e as StoreError {
      throw e
    } catch {
      throw .corrupt("\(error)")
    }
  }

  /// Whether a record after (`index`, `offset`) shows that seq `seq` had been synced: a
  /// valid record (its leaf hash matches) with `syncedThrough ≥ seq`, or any valid record
  /// at or below `seq` (a record out of place). Searched at every 8-byte offset of the rest
  /// of the journal: this runs only when a record is bad.
  func laterRecord(after seq: UInt64, index: Int, offset: Int) throws(StoreError) -> Bool {
    for i in index..<segments.count {
      let map = try Mapped(path: segments[i].path)
      let buf = map.buffer
      let limit = min(buf.count, Int(segments[i].header.capacityBytes))
      var o = i == index ? offset + 8 : JournalFormat.headerBytes
      while o + JournalFormat.recordHeaderBytes <= limit {
        let magic = UInt32(bigEndian: buf.loadUnaligned(fromByteOffset: o, as: UInt32.self))
        if magic == JournalFormat.recordMagic,
          case .record(let r, _) = JournalFormat.readFrame(buf, at: o, limit: limit, hasher: hasher)
        {
          if r.syncedThrough >= seq || r.seq <= seq { return true }
        }
        o += 8
      }
    }
    return false
  }

  // MARK: recovery

  /// Cuts a torn tail (zeros from the bad record to the segment's end, synced; later segments
  /// removed), removes an unfinished segment and leftover temporary files, and positions the
  /// writer after the last good record. The records kept are synced before this returns.
  func openForWriting(_ scan: ScanResult) throws(StoreError) {
    if let names = try directoryNames(directory) {
      for name in names where name.hasSuffix(".tmp") || unfinishedSegment(name) {
        try files.unlink(directory + "/" + name)
      }
    }
    lastSeq = scan.lastSeq
    lastChain = scan.lastChain
    if segments.isEmpty {
      try files.syncDirectory(directory)
      prepareNext(after: 0)
      return
    }
    let keep = scan.segmentIndex
    for s in segments[(keep + 1)...] { try files.unlink(s.path) }
    segments.removeLast(segments.count - keep - 1)
    let seg = segments[keep]
    fd = try files.open(seg.path, create: false)
    capacity = Int(seg.header.capacityBytes)
    writeOffset = scan.offset
    if case .torn = scan.end {
      try Self.zeroFill(fd, from: scan.offset, to: capacity, files)
    }
    // Records a killed process left in the page cache are part of the log now: make them
    // durable before anything is served from them.
    try files.sync(fd)
    try files.syncDirectory(directory)
    written.store(lastSeq, ordering: .releasing)
    durable.store(lastSeq, ordering: .releasing)
    prepareNext(after: capacity)
  }

  private func unfinishedSegment(_ name: String) -> Bool {
    JournalFormat.segmentFirstSeq(name) != nil && !segments.contains { $0.name == name }
  }

  // MARK: writing

  /// Appends one group of framed records (`JournalFormat.frame`): seqs `first...last`, the
  /// chain hash before `first` and after `last`. Not durable until `sync`.
  ///
  /// A failed append leaves the journal as it was, or stops it (docs/FORMAT.md, "A write
  /// that fails"): the bytes a failed write may have put down are zeroed again, so no record
  /// of a group that was refused can be read back as part of the log after a crash. Out of
  /// space (`StoreError.noSpace`) with that restored, the next append may succeed; any other
  /// failure, or a restore that fails, poisons the journal.
  func append(
    _ group: UnsafeRawBufferPointer, first: UInt64, last: UInt64, chainBefore: Hash32,
    chainAfter: Hash32
  ) throws(StoreError) {
    if poisoned.load(ordering: .acquiring) { throw Self.poisonError }
    precondition(first == lastSeq + 1 && chainBefore == lastChain, "journal append out of order")
    if fd < 0 || writeOffset + group.count > capacity {
      do throws(StoreError) {
        try roll(first: first, chainBefore: chainBefore, groupBytes: group.count)
      } catch {
        if case .noSpace = error { throw error }
        throw stop(error)
      }
    }
    do throws(StoreError) { try files.write(fd, group, at: writeOffset) } catch {
      // Part of the group may be in the file: the range was zeros (preallocated, and every
      // unappended or cut range is zeroed), so zeros restore it. Only up to the last byte
      // that is not zero: what the failed write put down, which the restore can overwrite
      // without new space (and without passing a file size limit the write hit).
      do throws(StoreError) {
        let now = try files.read(fd, count: group.count, at: writeOffset)
        if let last = now.lastIndex(where: { $0 != 0 }) {
          try Self.zeroFill(fd, from: writeOffset, to: writeOffset + last + 1, files)
        }
      } catch {
        throw stop(error)
      }
      if case .noSpace = error { throw error }
      throw stop(error)
    }
    writeOffset += group.count
    lastSeq = last
    lastChain = chainAfter
    written.store(last, ordering: .releasing)
  }

  /// Takes back the group just appended (its LMDB transaction did not commit, so it was
  /// never applied nor acknowledged): zeros its bytes and moves the end back.
  func unappend(groupBytes: Int, toSeq seq: UInt64, chain: Hash32) throws(StoreError) {
    let from = writeOffset - groupBytes
    precondition(from >= JournalFormat.headerBytes, "unappend across a segment")
    do throws(StoreError) { try Self.zeroFill(fd, from: from, to: writeOffset, files) } catch {
      // The journal now holds records LMDB does not: write nothing more (a restart replays
      // or cuts them).
      throw stop(error)
    }
    writeOffset = from
    lastSeq = seq
    lastChain = chain
    written.store(seq, ordering: .releasing)
  }

  /// The synced-through seq that the records of the next group carry.
  var syncedThroughForNextGroup: UInt64 { durable.load(ordering: .acquiring) }

  /// Starts a new segment for a group beginning at `first`: the current one is synced and
  /// closed, the new one written in full (header, then zeros to its capacity) under a
  /// temporary name, synced, renamed and its directory synced.
  private func roll(first: UInt64, chainBefore: Hash32, groupBytes: Int) throws(StoreError) {
    // Segments start at 1 MiB and double up to `segmentBytes`: a new ledger does not pay
    // for 64 MiB of zeros before its first entry, and zero-filling stays within the bytes
    // already journaled.
    let previous = segments.last.map { Int($0.header.capacityBytes) } ?? 0
    let cap = max(nextCapacity(after: previous), JournalFormat.headerBytes + groupBytes)
    let header = SegmentHeader(
      ledgerID: ledgerID, firstSeq: first, chainBefore: chainBefore, capacityBytes: UInt64(cap))
    let name = JournalFormat.segmentName(first)
    let path = directory + "/" + name
    // The file prepared ahead of time when it has this capacity (waiting for a preparation
    // under way costs at most what writing the zeros here would); else the zeros now.
    let prepared = preparer.take(capacity: cap, files)
    let tmp = prepared == nil ? path + ".tmp" : directory + "/" + SegmentPreparer.fileName
    let nfd: Int32
    if let prepared {
      nfd = prepared
    } else {
      try files.unlink(tmp)
      nfd = try files.open(tmp, create: true)
    }
    do throws(StoreError) {
      try withBytes(header.encode()) { (b) throws(StoreError) in try files.write(nfd, b, at: 0) }
      if prepared == nil { try Self.zeroFill(nfd, from: JournalFormat.headerBytes, to: cap, files) }
      try files.sync(nfd)
      try files.rename(tmp, path)
    } catch {
      // Nothing of the journal changed: the new file is not part of it yet. Remove it, so a
      // full disk gets back the space it took.
      files.close(nfd)
      try? files.unlink(tmp)
      throw error
    }
    // The old segment is complete: make it durable before records go elsewhere, and stop
    // a concurrent sync from using its descriptor.
    try syncLock.withLock { (failure) throws(StoreError) in
      if let failure { throw failure }
      if fd >= 0 {
        do throws(StoreError) { try files.sync(fd) } catch {
          failure = error
          poison()
          throw error
        }
        files.close(fd)
        durable.store(lastSeq, ordering: .releasing)
      }
      fd = nfd
    }
    capacity = cap
    writeOffset = JournalFormat.headerBytes
    segments.append(Segment(name: name, header: header, path: path))
    // The segment is in the journal now: a failed sync of its name is a failed sync.
    do { try files.syncDirectory(directory) } catch {
      poison()
      throw error
    }
    wakeWaiters()
    prepareNext(after: cap)
  }

  /// Segments start at 1 MiB and double up to `segmentBytes`.
  private func nextCapacity(after previous: Int) -> Int {
    min(segmentBytes, max(JournalFormat.segmentBytesFirst, previous * 2))
  }

  /// Starts making the file of the segment after one of `capacity` bytes on a thread of its
  /// own: `next.tmp`, zero-filled and synced, which the next roll gives a header and renames.
  /// A roll then costs a header write, two syncs and a rename instead of writing and syncing
  /// up to `segmentBytes` of zeros while every client waits. An open removes a leftover
  /// `next.tmp` with the other temporary files; a failed preparation only means the roll
  /// writes the zeros itself.
  private func prepareNext(after capacity: Int) {
    preparer.start(
      capacity: nextCapacity(after: capacity), path: directory + "/" + SegmentPreparer.fileName,
      files)
  }

  /// Writes zeros over `from..<to` of `fd`, 1 MiB at a time.
  static func zeroFill(_ fd: Int32, from: Int, to: Int, _ files: JournalFiles)
    throws(StoreError)
  {
    let chunk = [UInt8](repeating: 0, count: 1 << 20)
    var o = from
    while o < to {
      let n = min(chunk.count, to - o)
      try withBytes(chunk) { (b) throws(StoreError) in
        try files.write(fd, UnsafeRawBufferPointer(rebasing: b[0..<n]), at: o)
      }
      o += n
    }
  }

  public static let poisonError = StoreError.io(
    "a journal write or sync failed earlier; this process writes nothing more (restart to "
      + "recover)")

  /// Makes every appended record durable (one `fdatasync`). Callable from any thread; a
  /// failure poisons the journal: nothing more is written or acknowledged.
  public func sync() throws(StoreError) {
    try syncLock.withLock { (failure) throws(StoreError) in
      if let failure { throw failure }
      let target = written.load(ordering: .acquiring)
      if durable.load(ordering: .acquiring) >= target || fd < 0 { return }
      do throws(StoreError) { try files.sync(fd) } catch {
        failure = error
        poison()
        throw error
      }
      durable.store(target, ordering: .releasing)
    }
    wakeWaiters()
    durableHook.withLock { $0 }?()
  }

  /// Called after each sync that made records durable (from the syncing thread): lets a
  /// follower of the log (the change stream) wake at once instead of polling.
  public func setDurableHook(_ hook: (@Sendable () -> Void)?) {
    durableHook.withLock { $0 = hook }
  }

  public var durableSeq: UInt64 { durable.load(ordering: .acquiring) }

  /// True once a failed write or sync stopped the journal (until the next open).
  public var isPoisoned: Bool { poisoned.load(ordering: .acquiring) }

  /// Bytes in the journal directory's files (segments, prepared ones included).
  public func fileBytes() throws(StoreError) -> Int {
    var total = 0
    for name in try directoryNames(directory) ?? [] {
      var st = stat()
      if stat(directory + "/" + name, &st) == 0 { total += Int(st.st_size) }
    }
    return total
  }

  /// Poisons the journal after `error` and says so: what a client is told is an I/O error
  /// (no retry succeeds before a restart), even when the failure was for want of space.
  private func stop(_ error: StoreError) -> StoreError {
    poison()
    if case .io = error { return error }
    return .io("the journal stopped: \(error)")
  }

  /// Stops the journal: nothing more is written or acknowledged until the next open. Also
  /// called by the ledger when LMDB fails with an I/O error (docs/FORMAT.md, "A write that
  /// fails").
  func poison() {
    poisoned.store(true, ordering: .releasing)
    wakeWaiters()
  }

  private func wakeWaiters() {
    pthread_mutex_lock(&waitMutex)
    pthread_cond_broadcast(&waitCond)
    pthread_mutex_unlock(&waitMutex)
  }

  /// Blocks until `seq` is durable. False when a sync failed (it never will be).
  public func waitDurable(_ seq: UInt64) -> Bool {
    if durable.load(ordering: .acquiring) >= seq { return true }
    pthread_mutex_lock(&waitMutex)
    defer { pthread_mutex_unlock(&waitMutex) }
    while durable.load(ordering: .acquiring) < seq {
      if poisoned.load(ordering: .acquiring) { return false }
      pthread_cond_wait(&waitCond, &waitMutex)
    }
    return true
  }

  /// Closes the current segment (after a final sync).
  func close() throws(StoreError) {
    preparer.discard(files)
    if fd >= 0 {
      try sync()
      files.close(fd)
      fd = -1
    }
  }
}

/// The next segment's file, made by a thread of its own (`Journal.prepareNext`): at most one
/// preparation at a time, and at most one prepared file, kept open for the roll.
public final class SegmentPreparer: Sendable {
  static let fileName = "next.tmp"
  private struct State {
    var thread: WorkerThread?
    /// The prepared file's descriptor and capacity, once zero-filled and synced.
    var ready: (fd: Int32, capacity: Int)?
  }
  private let state = Mutex(State())
  /// Preparations that failed (the roll then wrote its own zeros); the last one's error.
  public let failures = Atomic<Int>(0)
  let lastFailure = Mutex<StoreError?>(nil)

  /// Waits for a preparation under way, then hands over the prepared file if it has
  /// `capacity` bytes (else closes it: the caller makes its own).
  func take(capacity: Int, _ files: JournalFiles) -> Int32? {
    join()
    return state.withLock { s in
      guard let r = s.ready else { return nil }
      s.ready = nil
      if r.capacity == capacity { return r.fd }
      files.close(r.fd)
      return nil
    }
  }

  func start(capacity: Int, path: String, _ files: JournalFiles) {
    join()
    state.withLock { s in
      if let r = s.ready {
        if r.capacity == capacity { return }
        files.close(r.fd)
        s.ready = nil
      }
      s.thread = WorkerThread(name: "tally-segprep") { [self] in
        var fd: Int32 = -1
        do throws(StoreError) {
          try files.unlink(path)
          fd = try files.open(path, create: true)
          try Journal.zeroFill(fd, from: 0, to: capacity, files)
          try files.sync(fd)
          let made = fd
          state.withLock { $0.ready = (made, capacity) }
        } catch {
          if fd >= 0 { files.close(fd) }
          // A partial file on a full disk holds space the ledger's own writes need.
          try? files.unlink(path)
          failures.add(1, ordering: .relaxed)
          lastFailure.withLock { $0 = error }
        }
      }
    }
  }

  /// The capacity of the prepared file once its preparation has ended (nil: none, or it
  /// failed).
  var readyCapacity: Int? {
    join()
    return state.withLock { $0.ready?.capacity }
  }

  /// Stops using a prepared file (it stays on disk; an open removes it).
  func discard(_ files: JournalFiles) {
    join()
    state.withLock { s in
      if let r = s.ready { files.close(r.fd) }
      s.ready = nil
    }
  }

  private func join() {
    let t = state.withLock { s -> WorkerThread? in
      let t = s.thread
      s.thread = nil
      return t
    }
    t?.join()
  }
}

/// Writes a small file durably: a temporary file, synced, renamed over `path`. The caller
/// syncs the directory.
func writeFileDurably(_ path: String, _ bytes: [UInt8], files: JournalFiles) throws(StoreError) {
  let tmp = path + ".tmp"
  try files.unlink(tmp)
  let fd = try files.open(tmp, create: true)
  do throws(StoreError) {
    try withBytes(bytes) { (b) throws(StoreError) in try files.write(fd, b, at: 0) }
    try files.sync(fd)
  } catch {
    files.close(fd)
    throw error
  }
  files.close(fd)
  try files.rename(tmp, path)
}

extension String {
  func trimmingNewline() -> String {
    var s = self
    while s.hasSuffix("\n") { s.removeLast() }
    return s
  }
}

extension [UInt8] {
  /// Bytes from lower-case hex; nil for anything else.
  init?(hex: String) {
    let u = Array(hex.utf8)
    guard u.count % 2 == 0 else { return nil }
    func nib(_ c: UInt8) -> UInt8? {
      switch c {
      case 48...57: c - 48
      case 97...102: c - 87
      default: nil
      }
    }
    var out = [UInt8]()
    out.reserveCapacity(u.count / 2)
    var i = 0
    while i < u.count {
      guard let h = nib(u[i]), let l = nib(u[i + 1]) else { return nil }
      out.append(h << 4 | l)
      i += 2
    }
    self = out
  }
}
