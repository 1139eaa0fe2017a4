import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// A small tmpfs mounted on a fresh directory, for tests of a full disk (`ENOSPC`). Needs
/// root (CAP_SYS_ADMIN); `available` says whether this machine can mount one.
public final class SmallTmpfs: @unchecked Sendable {
  public let path: String

  /// Whether a tmpfs can be mounted here: tried once (mount, then unmount) per process.
  public static let available: Bool = {
    guard getuid() == 0, let probe = try? SmallTmpfs(bytes: 64 << 10) else { return false }
    probe.unmount()
    return true
  }()

  /// Mounts a tmpfs of `bytes` (rounded up to pages by the kernel) on a new directory.
  public init(bytes: Int) throws {
    var template = Array(
      (FileManager.default.temporaryDirectory.path + "/tally-tmpfs-XXXXXX").utf8CString)
    guard let p = mkdtemp(&template) else {
      throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
    }
    path = String(cString: p)
    guard mount("tmpfs", path, "tmpfs", 0, "size=\(bytes),mode=0700") == 0 else {
      let e = errno
      rmdir(path)
      throw POSIXError(POSIXErrorCode(rawValue: e) ?? .EIO)
    }
  }

  private var mounted = true

  /// Unmounts (lazily, should a file still be open) and removes the directory.
  public func unmount() {
    guard mounted else { return }
    mounted = false
    umount2(path, Int32(MNT_DETACH))
    rmdir(path)
  }

  deinit { unmount() }
}
