import Glibc

/// A fresh directory under /tmp (mkdtemp). `remove()` deletes it and everything in it.
public struct TempDir: Sendable {
  public struct Failed: Error, CustomStringConvertible {
    public var description: String
  }

  public let path: String

  public init() throws {
    var template = Array("/tmp/tally-tests.XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else { throw Failed(description: "mkdtemp failed: errno \(errno)") }
    path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
  }

  /// The path of a data directory inside this one (created by `Ledger.create`).
  public var ledgerPath: String { path + "/ledger" }

  public func remove() { removeTree(path) }
}

/// Runs `body` with a new temporary directory, then removes it and everything in it.
public func withTempDir<R>(_ body: (TempDir) throws -> R) throws -> R {
  let dir = try TempDir()
  defer { dir.remove() }
  return try body(dir)
}

/// Deletes `path` and, for a directory, everything below it (no symlinks are followed).
public func removeTree(_ path: String) {
  var st = stat()
  guard lstat(path, &st) == 0 else { return }
  if st.st_mode & S_IFMT == S_IFDIR, let dir = opendir(path) {
    var children: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." { children.append(name) }
    }
    closedir(dir)
    for child in children { removeTree(path + "/" + child) }
    rmdir(path)
  } else {
    unlink(path)
  }
}
