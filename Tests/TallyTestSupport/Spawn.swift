import Glibc

/// Why a child could not be started.
public struct SpawnError: Error, CustomStringConvertible {
  public var description: String
}

/// Starts `exe` with `arguments` in the background: stdin from /dev/null, stdout and stderr
/// appended to the given files, and nothing else inherited (SwiftNIO opens its sockets
/// without close-on-exec: a child spawned while a test holds a connection would keep that
/// socket open after the test closed it, and the peer would never see the close). Returns
/// the child's pid; reap it with `waitpid`.
public func spawnDetached(
  _ exe: String, _ arguments: [String], stdout: String, stderr: String
) throws(SpawnError) -> pid_t {
  signal(SIGPIPE, SIG_IGN)
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
  posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_APPEND, 0o644)
  posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_APPEND, 0o644)
  closeInheritedDescriptors(&actions)
  let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + arguments).map { strdup($0) } + [nil]
  defer { for arg in argv { free(arg) } }
  var child: pid_t = 0
  let rc = posix_spawn(&child, exe, &actions, nil, argv, environ)
  guard rc == 0 else {
    throw SpawnError(description: "posix_spawn \(exe): \(String(cString: strerror(rc)))")
  }
  return child
}

/// The exit code in a `waitpid` status, or 128 + the signal that ended the process.
public func exitCode(waitStatus st: Int32) -> Int32 {
  (st & 0x7f) == 0 ? (st >> 8) & 0xff : 128 + (st & 0x7f)
}
