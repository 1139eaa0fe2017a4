import CLMDB
import Glibc

/// Operating errors of the store: not client mistakes, but conditions an operator must see.
public enum StoreError: Error, CustomStringConvertible, Equatable, Sendable {
  case missing(String)
  case alreadyInitialized(String)
  case locked(String)
  case formatVersion(found: UInt32, expected: UInt32)
  case lmdb(code: Int32, op: String)
  case mapFull
  case corrupt(String)
  case io(String)
  /// The filesystem refused a write for want of space (`ENOSPC`, `EDQUOT`, or `EFBIG`: a file
  /// at the size limit, RLIMIT_FSIZE or the filesystem's largest) and nothing of
  /// it remains: the same write can succeed once space is freed (docs/OPERATIONS.md, "When
  /// the disk fills").
  case noSpace(String)

  public var description: String {
    switch self {
    case .missing(let d):
      "data directory \(d) does not exist or is not initialized (run tally init)"
    case .alreadyInitialized(let d): "data directory \(d) is already initialized"
    case .locked(let m): m
    case .formatVersion(let f, let e):
      f < e
        ? "data directory has format version \(f); this tally reads \(e) (its first "
          + "read-write open, tallyd or any writing tally command, migrates it)"
        : "data directory has format version \(f); this tally reads \(e)"
    case .lmdb(let code, let op):
      "LMDB \(op) failed: \(String(cString: mdb_strerror(code))) (\(code))"
    case .mapFull: "LMDB map full"
    case .corrupt(let m): "store corrupt: \(m)"
    case .io(let m): m
    case .noSpace(let m): m
    }
  }

  /// Stable code for the CLI and (later) the wire.
  public var code: String {
    switch self {
    case .missing: "NOT_INITIALIZED"
    case .alreadyInitialized: "ALREADY_INITIALIZED"
    case .locked: "LOCKED"
    case .formatVersion: "FORMAT_VERSION"
    case .lmdb: "STORAGE"
    case .mapFull: "STORAGE"
    case .corrupt: "CORRUPT"
    case .io: "IO"
    case .noSpace: "NO_SPACE"
    }
  }
}

@inline(__always)
func check(_ rc: Int32, _ op: @autoclosure () -> String) throws(StoreError) {
  if rc == 0 { return }
  if rc == MDB_MAP_FULL { throw .mapFull }
  // What LMDB says of a damaged file is damage, not an operating error.
  if rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID
    || rc == MDB_VERSION_MISMATCH || rc == MDB_BAD_TXN
  {
    throw .corrupt("LMDB \(op()): \(String(cString: mdb_strerror(rc))) (\(rc))")
  }
  if isNoSpace(rc) { throw .noSpace("LMDB \(op()) failed: \(String(cString: strerror(rc)))") }
  if rc == EIO { throw .io("LMDB \(op()) failed: \(String(cString: strerror(rc)))") }
  throw .lmdb(code: rc, op: op())
}

/// Whether `err` says a write needs space it may not have: the filesystem is full, the user
/// out of quota, or the file at its size limit. Each clears without a restart once space is
/// freed or the limit raised.
func isNoSpace(_ err: Int32) -> Bool { err == ENOSPC || err == EDQUOT || err == EFBIG }

/// The error of a failed write, open, rename or directory entry: `noSpace` when `err` says
/// the filesystem is full, `io` otherwise. Never used for a failed sync: whatever its errno,
/// the pages a sync could not write may be lost, so a failed sync is always `io`.
func writeError(_ what: String, _ err: Int32) -> StoreError {
  let text = "\(what): \(String(cString: strerror(err)))"
  return isNoSpace(err) ? .noSpace(text) : .io(text)
}

/// One LMDB environment (one per data directory, one per process).
final class Environment {
  let env: OpaquePointer
  let path: String

  static let maxDBs: UInt32 = 32

  /// `noSubdirNoLock` opens one file read-only without a lock file (a snapshot's copy).
  init(path: String, readOnly: Bool, noSubdirNoLock: Bool = false) throws(StoreError) {
    var e: OpaquePointer?
    try check(mdb_env_create(&e), "env_create")
    guard let e else { throw .lmdb(code: -1, op: "env_create") }
    env = e
    self.path = path
    do throws(StoreError) {
      // LMDB sizes the map from the meta page's last page, and a writer's map extends the
      // file to it: a damaged meta is refused before LMDB reads it (MapAudit).
      let file = noSubdirNoLock ? path : path + "/data.mdb"
      if fileExists(file) { try MapAudit.checkMetas(file: file) }
      try check(mdb_env_set_maxdbs(env, Self.maxDBs), "set_maxdbs")
      // MDB_NOTLS: reader slots belong to transactions, not threads (Swift tasks hop
      // threads). A read-write ledger then turns syncing off (`setNoSync`): the journal,
      // not LMDB, makes a write durable.
      // A writer maps the file writable (MDB_WRITEMAP): a commit changes pages in place
      // instead of copying each dirty page through pwrite. It is unsafe only across an OS
      // crash, after which the projections are restored or rebuilt from the journal anyway
      // (docs/FORMAT.md, "Crashes and recovery"); a process crash leaves the page cache, and
      // so the last committed state, intact. It also turns readahead off (MDB_NORDAHEAD):
      // a write batch touches pages all over the map, and each fault on a new page would
      // otherwise read (zero) a large block around it (+7 % at batch 10,000, +9 % batched
      // over the socket, alternating runs).
      let flags =
        UInt32(MDB_NOTLS)
        | (readOnly ? UInt32(MDB_RDONLY) : UInt32(MDB_WRITEMAP) | UInt32(MDB_NORDAHEAD))
        | (noSubdirNoLock ? UInt32(MDB_NOSUBDIR) | UInt32(MDB_NOLOCK) : 0)
      try check(mdb_env_open(env, path, flags, 0o640), "env_open \(path)")
      // Readers left behind by crashed processes pin old pages; clear them.
      var dead: Int32 = 0
      if !noSubdirNoLock { _ = mdb_reader_check(env, &dead) }
      precondition(mdb_env_get_maxkeysize(env) >= 511, "LMDB built with keys under 511 bytes")
    } catch {
      // Every stored property is set: the object is whole, so `deinit` runs on this throw
      // and closes the environment (closing it here too freed it twice).
      throw error
    }
  }

  deinit { mdb_env_close(env) }

  var info: (mapSize: Int, usedBytes: Int) {
    var info = MDB_envinfo()
    mdb_env_info(env, &info)
    var stat = MDB_stat()
    mdb_env_stat(env, &stat)
    return (info.me_mapsize, (info.me_last_pgno + 1) * Int(stat.ms_psize))
  }

  /// Only call with no transaction open in this process.
  func setMapSize(_ bytes: Int) throws(StoreError) {
    try check(mdb_env_set_mapsize(env, bytes), "set_mapsize")
  }

  /// How `allocate` went: blocks reserved, or a filesystem that cannot reserve them.
  enum Allocation { case allocated, unsupported }

  /// Gives `data.mdb` disk blocks for its first `bytes` (extending the file when shorter).
  ///
  /// A writer maps the file writable (MDB_WRITEMAP) and LMDB sizes it to the map with
  /// `ftruncate`, which leaves holes: a commit that stores into a hole on a full filesystem
  /// would get SIGBUS, not an error. With the map's every byte allocated beforehand, a full
  /// disk shows up here instead, as `noSpace`, before any transaction touches the pages (and
  /// a transaction that needs more than the map gets `MDB_MAP_FULL`, which grows it through
  /// here). On failure the file is cut back to `keepBytes` (the mapped part), so a full disk
  /// gets back what a partial allocation took. `unsupported`: the file cannot be allocated
  /// ahead (a full disk may then stop the process; docs/OPERATIONS.md).
  func allocate(_ bytes: Int, keepBytes: Int) throws(StoreError) -> Allocation {
    var fd: Int32 = -1
    try check(mdb_env_get_fd(env, &fd), "env_get_fd")
    while true {
      // posix_fallocate: the fallocate system call, or where a filesystem lacks it, glibc
      // writes a zero byte into each block that reads as zero (allocating it, changing no
      // content). It returns the error number rather than setting errno.
      let err = posix_fallocate(fd, 0, off_t(bytes))
      if err == 0 { return .allocated }
      if err == EINTR { continue }
      if err == EOPNOTSUPP { return .unsupported }
      var st = stat()
      if fstat(fd, &st) == 0 && Int(st.st_size) > keepBytes {
        _ = ftruncate(fd, off_t(keepBytes))
      }
      throw writeError("cannot allocate \(bytes >> 20) MiB for \(path)/data.mdb", err)
    }
  }

  func begin(readOnly: Bool) throws(StoreError) -> OpaquePointer {
    var txn: OpaquePointer?
    var rc = mdb_txn_begin(env, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
    if rc == MDB_MAP_RESIZED {
      // Another process grew the map: adopt its size and retry once.
      try check(mdb_env_set_mapsize(env, 0), "set_mapsize")
      rc = mdb_txn_begin(env, nil, readOnly ? UInt32(MDB_RDONLY) : 0, &txn)
    }
    try check(rc, "txn_begin")
    return txn!
  }
}

/// Byte helpers for LMDB keys and values.
@inline(__always)
func withVal<R>(_ bytes: UnsafeRawBufferPointer, _ body: (inout MDB_val) throws(StoreError) -> R)
  throws(StoreError) -> R
{
  var v = MDB_val(
    mv_size: bytes.count, mv_data: UnsafeMutableRawPointer(mutating: bytes.baseAddress))
  return try body(&v)
}

extension MDB_val {
  var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: mv_data, count: mv_size) }
}

/// Big-endian u64 key bytes.
@inline(__always)
func be64(_ v: UInt64) -> UInt64 { v.bigEndian }

/// A transaction with named-database handles: plain get/put/cursor operations.
/// Lifetime is managed by the caller (`Ledger`), which commits or aborts in one scope.
struct Txn {
  let txn: OpaquePointer
  /// LMDB's default maximum key size (mdb_env_get_maxkeysize).
  static let keyBytesMax = 511

  func get(_ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer) throws(StoreError)
    -> UnsafeRawBufferPointer?
  {
    // LMDB refuses empty keys and keys over 511 bytes (MDB_BAD_VALSIZE); no record can have
    // one, so such a lookup simply finds nothing.
    if key.count == 0 || key.count > Self.keyBytesMax { return nil }
    var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    var v = MDB_val()
    let rc = mdb_get(txn, dbi, &k, &v)
    if rc == MDB_NOTFOUND { return nil }
    try check(rc, "get")
    return v.buffer
  }

  func get(_ dbi: MDB_dbi, string key: String) throws(StoreError) -> UnsafeRawBufferPointer? {
    var key = key
    let r: Result<UnsafeRawBufferPointer?, StoreError> = key.withUTF8 { k in
      do throws(StoreError) { return .success(try get(dbi, UnsafeRawBufferPointer(k))) } catch {
        return .failure(error)
      }
    }
    return try r.get()
  }

  func get(_ dbi: MDB_dbi, u64 key: UInt64) throws(StoreError) -> UnsafeRawBufferPointer? {
    var k = key.bigEndian
    return try withUnsafeBytes(of: &k) { (kb) throws(StoreError) in try get(dbi, kb) }
  }

  func put(
    _ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer,
    flags: UInt32 = 0
  ) throws(StoreError) {
    var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    var v = MDB_val(
      mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
    try check(mdb_put(txn, dbi, &k, &v, flags), "put")
  }

  func put(_ dbi: MDB_dbi, string key: String, _ value: [UInt8]) throws(StoreError) {
    var key = key
    let r: Result<Void, StoreError> = key.withUTF8 { k in
      value.withUnsafeBytes { v in
        do throws(StoreError) { return .success(try put(dbi, UnsafeRawBufferPointer(k), v)) } catch
        { return .failure(error) }
      }
    }
    try r.get()
  }

  func put(
    _ dbi: MDB_dbi, u64 key: UInt64, _ value: UnsafeRawBufferPointer,
    flags: UInt32 = 0
  ) throws(StoreError) {
    var k = key.bigEndian
    try withUnsafeBytes(of: &k) { (kb) throws(StoreError) in try put(dbi, kb, value, flags: flags) }
  }

  func delete(_ dbi: MDB_dbi, _ key: UnsafeRawBufferPointer) throws(StoreError) {
    var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    let rc = mdb_del(txn, dbi, &k, nil)
    if rc == MDB_NOTFOUND { return }
    try check(rc, "del")
  }

  func count(_ dbi: MDB_dbi) throws(StoreError) -> Int {
    var s = MDB_stat()
    try check(mdb_stat(txn, dbi, &s), "stat")
    return s.ms_entries
  }

  func cursor(_ dbi: MDB_dbi) throws(StoreError) -> Cursor {
    var c: OpaquePointer?
    try check(mdb_cursor_open(txn, dbi, &c), "cursor_open")
    return Cursor(cursor: c!)
  }
}

/// A cursor; close it before its transaction ends.
struct Cursor {
  let cursor: OpaquePointer

  func close() { mdb_cursor_close(cursor) }

  /// Positions with `op`; nil at the end.
  func get(_ op: MDB_cursor_op, key: UnsafeRawBufferPointer? = nil) throws(StoreError)
    -> (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)?
  {
    var k = MDB_val()
    if let key {
      k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    }
    var v = MDB_val()
    let rc = mdb_cursor_get(cursor, &k, &v, op)
    if rc == MDB_NOTFOUND { return nil }
    try check(rc, "cursor_get")
    return (k.buffer, v.buffer)
  }

  /// Writes `value` under `key` (`mdb_cursor_put`), replacing any value there.
  func put(_ key: UnsafeRawBufferPointer, _ value: UnsafeRawBufferPointer) throws(StoreError) {
    var k = MDB_val(mv_size: key.count, mv_data: UnsafeMutableRawPointer(mutating: key.baseAddress))
    var v = MDB_val(
      mv_size: value.count, mv_data: UnsafeMutableRawPointer(mutating: value.baseAddress))
    try check(mdb_cursor_put(cursor, &k, &v, 0), "cursor_put")
  }
}

/// The exclusive writer lock (`DIR/tally.lock`, flock): one writing process per directory.
final class WriterLock {
  let fd: Int32

  init(directory: String) throws(StoreError) {
    let path = directory + "/tally.lock"
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
    if fd < 0 { throw .io("cannot open \(path): \(String(cString: strerror(errno)))") }
    // A lock can be held for a moment by a process that is about to let it go: a child
    // forked by the previous holder keeps the open file until it execs or exits. Retry for
    // a bounded time (1 s) before reporting the directory locked.
    var locked = false
    for _ in 0..<100 {
      if flock(fd, LOCK_EX | LOCK_NB) == 0 {
        locked = true
        break
      }
      if errno != EWOULDBLOCK { break }
      usleep(10_000)
    }
    if !locked {
      var buf = [UInt8](repeating: 0, count: 32)
      let n = pread(fd, &buf, 31, 0)
      let recorded = n > 0 ? Int32(String(decoding: buf[0..<n], as: UTF8.self)) : nil
      close(fd)
      // The file names the last tally writer; say so when that process is gone (the lock is
      // then held by something else, e.g. a copy of the directory's file descriptor).
      let holder: String
      if let pid = recorded, kill(pid, 0) == 0 || errno == EPERM {
        holder = "pid \(pid)"
      } else {
        holder = "holder unknown; last tally writer was pid \(recorded.map(String.init) ?? "?")"
      }
      throw .locked(
        "data directory \(directory) is locked by another writer (\(holder)); "
          + "stop it or use a read-only command")
    }
    let pid = String(getpid())
    _ = ftruncate(fd, 0)
    _ = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
  }

  deinit { close(fd) }  // releases the flock
}

/// `withUnsafeBytes` for arrays, keeping the typed error.
@inline(__always)
func withBytes<R>(_ a: [UInt8], _ body: (UnsafeRawBufferPointer) throws(StoreError) -> R)
  throws(StoreError) -> R
{
  let r: Result<R, StoreError> = a.withUnsafeBytes { b in
    do throws(StoreError) { return .success(try body(b)) } catch { return .failure(error) }
  }
  return try r.get()
}

/// `withUnsafeBytes(of:)` for values, keeping the typed error.
@inline(__always)
func withBytes<T, R>(of value: T, _ body: (UnsafeRawBufferPointer) throws(StoreError) -> R)
  throws(StoreError) -> R
{
  var v = value
  let r: Result<R, StoreError> = withUnsafeBytes(of: &v) { b in
    do throws(StoreError) { return .success(try body(b)) } catch { return .failure(error) }
  }
  return try r.get()
}
