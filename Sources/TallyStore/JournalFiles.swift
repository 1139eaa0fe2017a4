import Glibc
import Synchronization

/// The file operations the journal, the aux journal and the projections marker make: every
/// byte the ledger relies on after a crash goes through one of these. Production uses
/// `PosixFiles`; the crash-image tool wraps it in `RecordingFiles` to learn which writes
/// and syncs happened in which order (docs/FORMAT.md, "Crashes and recovery").
///
/// LMDB's own writes to `data.mdb` do not pass here: after an OS crash the projections are
/// restored from a snapshot (whose files do pass here) or rebuilt from the journal, so no
/// byte of `data.mdb` written without a sync is trusted.
public class JournalFiles: @unchecked Sendable {
  public init() {}

  /// Opens `path` read-write (creating it with mode 0640 when `create`).
  public func open(_ path: String, create: Bool) throws(StoreError) -> Int32 {
    let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0o640)
    if fd < 0 { throw writeError("cannot open \(path)", errno) }
    return fd
  }

  public func close(_ fd: Int32) { _ = Glibc.close(fd) }

  /// Says that the file behind `fd` was written by other means than `write` (LMDB's copy
  /// into a snapshot): a recorder reads it back. Nothing to do here.
  public func wroteOutside(_ fd: Int32) {}

  /// Writes all of `bytes` at `offset` (retrying short writes).
  public func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int)
    throws(StoreError)
  {
    let err = pwriteFully(fd, bytes, at: offset)
    if err != 0 { throw writeError("journal write failed", err) }
  }

  /// `fdatasync`. A failed sync is never retried by the caller (the page cache may have
  /// dropped the dirty pages it could not write): the ledger stops writing.
  public func sync(_ fd: Int32) throws(StoreError) {
    if fdatasync(fd) != 0 {
      throw .io("journal sync failed: \(String(cString: strerror(errno)))")
    }
  }

  public func truncate(_ fd: Int32, to size: Int) throws(StoreError) {
    if ftruncate(fd, off_t(size)) != 0 {
      throw .io("cannot truncate: \(String(cString: strerror(errno)))")
    }
  }

  public func size(_ fd: Int32) throws(StoreError) -> Int {
    var st = stat()
    if fstat(fd, &st) != 0 { throw .io("cannot stat: \(String(cString: strerror(errno)))") }
    return Int(st.st_size)
  }

  public func rename(_ from: String, _ to: String) throws(StoreError) {
    if Glibc.rename(from, to) != 0 { throw writeError("cannot rename \(from) to \(to)", errno) }
  }

  public func unlink(_ path: String) throws(StoreError) {
    if Glibc.unlink(path) != 0 && errno != ENOENT {
      throw .io("cannot remove \(path): \(String(cString: strerror(errno)))")
    }
  }

  public func mkdir(_ path: String) throws(StoreError) {
    if Glibc.mkdir(path, 0o750) != 0 && errno != EEXIST {
      throw writeError("cannot create \(path)", errno)
    }
  }

  /// fsync of a directory: makes the names created, renamed or removed in it durable.
  public func syncDirectory(_ path: String) throws(StoreError) {
    let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    guard fd >= 0 else { throw .io("cannot open \(path): \(String(cString: strerror(errno)))") }
    defer { _ = Glibc.close(fd) }
    guard fsync(fd) == 0 else {
      throw .io("cannot sync \(path): \(String(cString: strerror(errno)))")
    }
  }

  /// Reads up to `count` bytes at `offset`; fewer at the end of the file.
  public func read(_ fd: Int32, count: Int, at offset: Int) throws(StoreError) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    var done = 0
    while done < count {
      let n = out.withUnsafeMutableBytes {
        pread(fd, $0.baseAddress! + done, count - done, off_t(offset + done))
      }
      if n < 0 {
        if errno == EINTR { continue }
        throw .io("journal read failed: \(String(cString: strerror(errno)))")
      }
      if n == 0 { break }
      done += n
    }
    out.removeLast(count - done)
    return out
  }
}

/// `pwrite` of all of `bytes` at `offset` (retrying short and interrupted writes): 0, or the
/// `errno` of the write that failed.
func pwriteFully(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int) -> Int32 {
  var done = 0
  while done < bytes.count {
    let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
    if n < 0 {
      if errno == EINTR { continue }
      return errno
    }
    done += n
  }
  return 0
}

/// Lists the names in a directory (nil when it does not exist).
func directoryNames(_ path: String) throws(StoreError) -> [String]? {
  guard let d = opendir(path) else {
    if errno == ENOENT { return nil }
    throw .io("cannot list \(path): \(String(cString: strerror(errno)))")
  }
  defer { closedir(d) }
  var names = [String]()
  while let e = readdir(d) {
    let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
      String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    if name != "." && name != ".." { names.append(name) }
  }
  return names.sorted()
}

func fileExists(_ path: String) -> Bool {
  var st = stat()
  return stat(path, &st) == 0
}

/// A `JournalFiles` that also records every operation in order, for crash images: which
/// bytes were written where, and which syncs made which of them durable.
public final class RecordingFiles: JournalFiles, @unchecked Sendable {
  public enum Op: Sendable, Equatable {
    case create(path: String)
    case write(path: String, offset: Int, bytes: [UInt8])
    case sync(path: String)
    case truncate(path: String, size: Int)
    case rename(from: String, to: String)
    case unlink(path: String)
    case syncDirectory(path: String)
  }

  private let state = Mutex<(ops: [Op], paths: [Int32: String])>(([], [:]))
  /// Operations recorded at most (the recorder is for bounded test runs).
  public static let opsMax = 2_000_000

  public override init() {}

  public var ops: [Op] { state.withLock { $0.ops } }
  public var count: Int { state.withLock { $0.ops.count } }

  private func record(_ op: Op) {
    state.withLock { s in
      precondition(s.ops.count < Self.opsMax, "crash recorder over its bound")
      s.ops.append(op)
    }
  }

  public override func open(_ path: String, create: Bool) throws(StoreError) -> Int32 {
    let existed = fileExists(path)
    let fd = try super.open(path, create: create)
    state.withLock { $0.paths[fd] = path }
    if !existed { record(.create(path: path)) }
    return fd
  }

  public override func close(_ fd: Int32) {
    state.withLock { _ = $0.paths.removeValue(forKey: fd) }
    super.close(fd)
  }

  private func path(_ fd: Int32) -> String { state.withLock { $0.paths[fd] ?? "?" } }

  public override func wroteOutside(_ fd: Int32) {
    var st = stat()
    guard fstat(fd, &st) == 0, let bytes = try? read(fd, count: Int(st.st_size), at: 0) else {
      preconditionFailure("crash recorder cannot read back \(path(fd))")
    }
    record(.write(path: path(fd), offset: 0, bytes: bytes))
  }

  public override func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int)
    throws(StoreError)
  {
    try super.write(fd, bytes, at: offset)
    record(.write(path: path(fd), offset: offset, bytes: Array(bytes)))
  }

  public override func sync(_ fd: Int32) throws(StoreError) {
    // Recorded before the sync returns: a crash image may cut just after it.
    try super.sync(fd)
    record(.sync(path: path(fd)))
  }

  public override func truncate(_ fd: Int32, to size: Int) throws(StoreError) {
    try super.truncate(fd, to: size)
    record(.truncate(path: path(fd), size: size))
  }

  public override func rename(_ from: String, _ to: String) throws(StoreError) {
    try super.rename(from, to)
    // A descriptor opened under the old name now writes the file of the new one.
    state.withLock { s in
      for (fd, p) in s.paths where p == from { s.paths[fd] = to }
    }
    record(.rename(from: from, to: to))
  }

  public override func unlink(_ path: String) throws(StoreError) {
    try super.unlink(path)
    record(.unlink(path: path))
  }

  public override func syncDirectory(_ path: String) throws(StoreError) {
    try super.syncDirectory(path)
    record(.syncDirectory(path: path))
  }
}
