import CLMDB
import Glibc
import TallyCore
import TallyCrypto

/// The file work of backups and restores: copies that report a full disk as such, durable
/// writes, the journal's records up to a head, and the manifest's checks.
enum BackupFiles {
  /// Bytes read and written per system call when copying.
  static let copyChunkBytes = 1 << 20

  /// What a copy of the projections holds: the head, how much of `aux.log` it applied, and
  /// the journal's ledger id.
  struct MetaState {
    var head: LogHead
    var auxBytes: UInt64
    var ledgerID: [UInt8]
  }

  static func metaState(_ t: Txn, _ dbs: DBs) throws(StoreError) -> MetaState {
    let head = try Ledger.readHead(t, dbs)
    var aux: UInt64 = 0
    if let v = try t.get(dbs.meta, Ledger.metaKey("aux")) {
      guard v.count == 8 else { throw .corrupt("meta aux has \(v.count) bytes") }
      aux = UInt64(bigEndian: v.loadUnaligned(as: UInt64.self))
    }
    guard let id = try t.get(dbs.meta, Ledger.metaKey("journal")),
      id.count == JournalFormat.ledgerIDBytes
    else { throw .corrupt("meta has no journal ledger id") }
    return MetaState(head: head, auxBytes: aux, ledgerID: Array(id))
  }

  /// `metaState` of a copied `data.mdb` (opened read-only, without a lock file).
  static func copiedMeta(_ file: String) throws(BackupError) -> MetaState {
    do {
      let env = try Environment(path: file, readOnly: true, noSubdirNoLock: true)
      let txn = try env.begin(readOnly: true)
      defer { mdb_txn_abort(txn) }
      _ = try MapAudit.check(file: file, txnID: UInt64(mdb_txn_id(txn)))
      var dbs = DBs()
      try check(mdb_dbi_open(txn, "meta", 0, &dbs.meta), "dbi_open meta")
      return try metaState(Txn(txn: txn), dbs)
    } catch { throw .store(error) }
  }

  // MARK: directories

  /// Creates `directory`, or checks that it is an empty directory. True when created.
  static func prepareEmpty(_ directory: String) throws(BackupError) -> Bool {
    if mkdir(directory, 0o700) == 0 { return true }
    let err = errno
    guard err == EEXIST else {
      throw .store(.io("cannot create \(directory): \(String(cString: strerror(err)))"))
    }
    let names: [String]?
    do { names = try directoryNames(directory) } catch {
      throw .targetNotEmpty("\(directory) exists and is not a readable directory")
    }
    guard let names, names.isEmpty else {
      throw .targetNotEmpty("\(directory) exists and is not empty: nothing is ever overwritten")
    }
    return false
  }

  static func makeDirectory(_ path: String) throws(BackupError) {
    guard mkdir(path, 0o700) == 0 else {
      throw .store(.io("cannot create \(path): \(String(cString: strerror(errno)))"))
    }
  }

  /// Removes what a failed backup or restore wrote: `directory`'s files and those of its
  /// subdirectories (a backup or data directory is two levels deep, three with `.verify`).
  static func removeTree(_ directory: String, keepRoot: Bool, depth: Int = 3) {
    guard depth > 0, let names = try? directoryNames(directory) else { return }
    for name in names {
      let p = directory + "/" + name
      var st = stat()
      if lstat(p, &st) == 0 && st.st_mode & S_IFMT == S_IFDIR {
        removeTree(p, keepRoot: false, depth: depth - 1)
      } else {
        unlink(p)
      }
    }
    if !keepRoot { rmdir(directory) }
  }

  static func syncDirectory(_ path: String) throws(BackupError) {
    do { try JournalFiles().syncDirectory(path) } catch { throw .store(error) }
  }

  // MARK: files

  static func size(_ path: String) throws(BackupError) -> Int {
    var st = stat()
    guard stat(path, &st) == 0 else {
      throw .store(.io("cannot stat \(path): \(String(cString: strerror(errno)))"))
    }
    return Int(st.st_size)
  }

  /// A new file (never an existing one), mode 0600: a backup holds secrets.
  static func create(_ path: String) throws(BackupError) -> Int32 {
    let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else {
      throw .store(.io("cannot create \(path): \(String(cString: strerror(errno)))"))
    }
    return fd
  }

  static func sync(_ fd: Int32, _ path: String) throws(BackupError) {
    if fsync(fd) != 0 { throw writeError(path) }
  }

  static func writeError(_ path: String, _ err: Int32 = errno) -> BackupError {
    if err == ENOSPC || err == EDQUOT { return .diskFull("no space left writing \(path)") }
    return .store(.io("cannot write \(path): \(String(cString: strerror(err)))"))
  }

  /// Writes all of `bytes` at `offset`.
  static func writeAll(
    _ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, _ path: String
  ) throws(BackupError) {
    let err = pwriteFully(fd, bytes, at: offset)
    if err != 0 { throw writeError(path, err) }
  }

  /// A new file holding `bytes`, synced.
  static func write(_ bytes: [UInt8], to path: String) throws(BackupError) {
    let fd = try create(path)
    defer { Glibc.close(fd) }
    let r: Result<Void, BackupError> = bytes.withUnsafeBytes { b in
      do throws(BackupError) { try writeAll(fd, b, at: 0, path) } catch { return .failure(error) }
      return .success(())
    }
    try r.get()
    try sync(fd, path)
  }

  /// A small file whole; refused unread when over `max` bytes.
  static func read(_ path: String, max: Int) throws(BackupError) -> [UInt8] {
    guard try size(path) <= max else { throw .store(.io("\(path) is over \(max) bytes")) }
    do { return try readWholeFile(path) } catch { throw .store(error) }
  }

  /// Copies the first `bytes` of `source` (all of it when nil) into a new file `target`,
  /// synced. With `extendSegment`, a journal segment is then filled with zeros to the
  /// capacity its header names, as the journal preallocates its segments.
  static func copy(
    _ source: String, to target: String, bytes: Int? = nil, extendSegment: Bool = false
  ) throws(BackupError) {
    let src = Glibc.open(source, O_RDONLY | O_CLOEXEC)
    guard src >= 0 else {
      throw .store(.io("cannot open \(source): \(String(cString: strerror(errno)))"))
    }
    defer { Glibc.close(src) }
    let count: Int
    if let bytes { count = bytes } else { count = try size(source) }
    let dst = try create(target)
    defer { Glibc.close(dst) }
    let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: copyChunkBytes, alignment: 8)
    defer { buf.deallocate() }
    var offset = 0
    var header: [UInt8] = []
    while offset < count {
      let n = pread(src, buf.baseAddress!, min(copyChunkBytes, count - offset), off_t(offset))
      if n < 0 {
        if errno == EINTR { continue }
        throw .store(.io("cannot read \(source): \(String(cString: strerror(errno)))"))
      }
      if n == 0 { throw .store(.corrupt("\(source) ends at \(offset) bytes, not \(count)")) }
      let chunk = UnsafeRawBufferPointer(rebasing: buf[0..<n])
      try writeAll(dst, chunk, at: offset, target)
      if header.count < JournalFormat.headerBytes {
        header += chunk.prefix(JournalFormat.headerBytes - header.count)
      }
      offset += n
    }
    if extendSegment && JournalFormat.segmentFirstSeq(basename(target)) != nil {
      guard case .success(let h) = SegmentHeader.decode(header) else {
        throw .store(.corrupt("\(source) has no valid segment header"))
      }
      buf.initializeMemory(as: UInt8.self, repeating: 0)
      let capacity = Int(h.capacityBytes)
      while offset < capacity {
        let n = min(copyChunkBytes, capacity - offset)
        try writeAll(dst, UnsafeRawBufferPointer(rebasing: buf[0..<n]), at: offset, target)
        offset += n
      }
    }
    try sync(dst, target)
  }

  static func basename(_ path: String) -> String {
    path.lastIndex(of: "/").map { String(path[path.index(after: $0)...]) } ?? path
  }

  // MARK: the journal

  /// Copies the records `first…last` of the live journal (with the rest of the first
  /// segment's records before `first`) into `directory`, each segment up to the end of its
  /// last record in that range. Every record up to `last` was written before LMDB committed
  /// it, so none of the bytes read changes meanwhile; the bytes after them (a group being
  /// written now) are never read. Each live segment copied is then synced (`fdatasync` on a
  /// read-only descriptor): the backup never holds a record that a crash of the machine
  /// could still take from the ledger. When `base` is given, the record at its seq must
  /// carry its chain hash. Returns the bytes copied.
  static func copySegments(
    _ journal: Journal, from first: UInt64, through last: UInt64, base: LogHead?,
    into directory: String, progress: (Int) -> Void
  ) throws(BackupError) -> Int {
    var copied = 0
    var reached = first - 1
    var baseChecked = base == nil || base!.seq == 0
    if let base, base.seq == 0, base.chain != .zero {
      throw .baseMismatch("the base backup's empty log has a chain hash")
    }
    let segments = journal.segments
    for (i, seg) in segments.enumerated() where last >= first {
      let segFirst = seg.header.firstSeq
      if segFirst > last { break }
      let segLast = i + 1 < segments.count ? min(last, segments[i + 1].header.firstSeq - 1) : last
      if segLast < first { continue }
      let map: Journal.Mapped
      do { map = try Journal.Mapped(path: seg.path) } catch { throw .store(error) }
      let buf = map.buffer
      var o = JournalFormat.headerBytes
      var seq = segFirst
      while seq <= segLast {
        func bad(_ why: String) -> BackupError {
          .store(.corrupt("journal: seq \(seq): \(why) (segment \(seg.name), offset \(o))"))
        }
        guard o + JournalFormat.recordHeaderBytes <= buf.count else {
          throw bad("the segment ends before it")
        }
        let magic = UInt32(bigEndian: buf.loadUnaligned(fromByteOffset: o, as: UInt32.self))
        let len = Int(UInt32(bigEndian: buf.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self)))
        let frameSeq = UInt64(bigEndian: buf.loadUnaligned(fromByteOffset: o + 8, as: UInt64.self))
        let end = o + JournalFormat.recordBytes(eventBytes: len)
        guard magic == JournalFormat.recordMagic, len >= 1, len <= JournalFormat.eventBytesMax,
          frameSeq == seq, end <= buf.count
        else { throw bad("bad frame") }
        if let base, seq == base.seq {
          let chain = Hash32(raw: UnsafeRawBufferPointer(rebasing: buf[(o + 56)..<(o + 88)]))
          guard chain == base.chain else {
            throw .baseMismatch(
              "this ledger's chain at seq \(seq) differs from the base backup's: another history")
          }
          baseChecked = true
        }
        o = end
        seq += 1
      }
      reached = segLast
      let target = directory + "/" + seg.name
      let fd = try create(target)
      defer { Glibc.close(fd) }
      try writeAll(fd, UnsafeRawBufferPointer(rebasing: buf[0..<o]), at: 0, target)
      try sync(fd, target)
      let live = Glibc.open(seg.path, O_RDONLY | O_CLOEXEC)
      guard live >= 0, fdatasync(live) == 0 else {
        let why = String(cString: strerror(errno))
        if live >= 0 { Glibc.close(live) }
        throw .store(.io("cannot sync \(seg.path): \(why)"))
      }
      Glibc.close(live)
      copied += o
      progress(copied)
    }
    guard reached >= last || last < first else {
      throw .store(
        .corrupt("the journal ends at seq \(reached), before the projections' head \(last)"))
    }
    guard baseChecked else {
      throw .baseMismatch("the journal does not hold the base backup's head seq \(base!.seq)")
    }
    return copied
  }

  // MARK: the manifest's files

  /// Every file under `directory` (and `journal/`), with size and SHA-256, by path.
  static func describe(_ directory: String) throws(BackupError) -> [BackupManifest.File] {
    var out = [BackupManifest.File]()
    for path in try listed(directory) {
      do {
        let (size, digest) = try Ledger.digestFile(directory + "/" + path)
        out.append(.init(path: path, bytes: size, sha256: digest))
      } catch { throw .store(error) }
    }
    return out
  }

  /// The paths of the files a backup directory holds, its manifest aside.
  static func listed(_ directory: String) throws(BackupError) -> [String] {
    do {
      var paths = [String]()
      for name in try directoryNames(directory) ?? [] {
        if name == BackupManifest.fileName { continue }
        if name == BackupLayout.journalDir {
          for j in try directoryNames(directory + "/" + name) ?? [] { paths.append(name + "/" + j) }
        } else {
          paths.append(name)
        }
      }
      return paths.sorted()
    } catch { throw .store(error) }
  }

  /// Every file `manifest` lists is in `directory` with its size and SHA-256, and nothing
  /// else is.
  static func checkFiles(_ directory: String, _ manifest: BackupManifest) throws(BackupError) {
    let present = Set(try listed(directory))
    let names = Set(manifest.files.map(\.path))
    if let extra = present.subtracting(names).sorted().first {
      throw .manifestMismatch("\(directory)/\(extra) is not in the manifest")
    }
    for f in manifest.files {
      let p = directory + "/" + f.path
      guard present.contains(f.path) else { throw .manifestMismatch("\(p) is missing") }
      let size: Int
      let digest: Hash32
      do { (size, digest) = try Ledger.digestFile(p) } catch { throw .store(error) }
      guard size == f.bytes else {
        throw .manifestMismatch("\(p) has \(size) bytes; the manifest says \(f.bytes)")
      }
      guard digest == f.sha256 else {
        throw .manifestMismatch("\(p): its SHA-256 differs from the manifest's")
      }
    }
  }
}
