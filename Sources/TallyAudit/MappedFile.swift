import Glibc

/// A file mapped read-only into memory (empty files map to an empty buffer).
final class MappedFile: @unchecked Sendable {
  let path: String
  let bytes: UnsafeRawBufferPointer
  private let base: UnsafeMutableRawPointer?
  private let length: Int

  /// Maps `path`; the reason when it cannot (missing, not a regular file, unreadable).
  static func open(_ path: String) -> Result<MappedFile, Refusal> {
    let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
      return .failure("cannot read \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
      return .failure("\(path) is not a regular file")
    }
    let n = Int(st.st_size)
    if n == 0 { return .success(MappedFile(path: path, base: nil, length: 0)) }
    let p = mmap(nil, n, PROT_READ, MAP_PRIVATE, fd, 0)
    guard let p, p != MAP_FAILED else {
      return .failure("cannot map \(path): \(String(cString: strerror(errno)))")
    }
    _ = madvise(p, n, MADV_SEQUENTIAL)
    return .success(MappedFile(path: path, base: p, length: n))
  }

  private init(path: String, base: UnsafeMutableRawPointer?, length: Int) {
    self.path = path
    self.base = base
    self.length = length
    bytes = UnsafeRawBufferPointer(start: base, count: length)
  }

  deinit { if let base { munmap(base, length) } }

  var text: String { String(decoding: bytes, as: UTF8.self) }

  @inline(__always) func u32(at offset: Int) -> UInt32 {
    UInt32(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
  }

  @inline(__always) func u64(at offset: Int) -> UInt64 {
    UInt64(bigEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
  }
}

/// The records of an `events` (or `context`) file: `u32` length ‖ bytes.
struct RecordWalker {
  let file: MappedFile
  var offset = 0

  init(_ file: MappedFile) { self.file = file }

  enum Step {
    case record(UnsafeRawBufferPointer)
    case end
    /// The file ends inside a record's length or bytes.
    case truncated
  }

  @inline(__always) mutating func next() -> Step {
    let b = file.bytes
    if offset == b.count { return .end }
    guard b.count - offset >= 4 else { return .truncated }
    let n = Int(file.u32(at: offset))
    guard b.count - offset - 4 >= n else { return .truncated }
    let r = UnsafeRawBufferPointer(rebasing: b[(offset + 4)..<(offset + 4 + n)])
    offset += 4 + n
    return .record(r)
  }
}
