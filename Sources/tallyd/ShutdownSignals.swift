import Foundation
import Glibc
import Logging
import ServiceLifecycle
import Synchronization

/// SIGTERM and SIGINT mean a graceful shutdown from the first line of `run`, before the
/// socket is bound and the port announced, not only once the service group has registered
/// signal sources of its own (asynchronously, after the services start: a supervisor that
/// signals as soon as it sees "listening" could otherwise kill tallyd with the signal's
/// default action, skipping the drain and the final checkpoint).
///
/// The handler only writes the signal's number to a pipe (async-signal-safe); a thread reads
/// it and asks the group to shut down gracefully. A signal that arrives while the ledger is
/// still recovering waits in the pipe: the group then starts and shuts down at once.
enum ShutdownSignals {
  static let signals: [Int32] = [SIGTERM, SIGINT]

  /// Installs the handler for `signals`. Call once, first.
  static func install() throws {
    var fds: [Int32] = [-1, -1]
    guard pipe(&fds) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
    // Neither end is inherited by a child. The reading end blocks (one thread waits on it);
    // the writing end never does (a full pipe drops the byte: a shutdown is pending then).
    for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    _ = fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK)
    signalPipeRead = fds[0]
    signalPipeWrite = fds[1]
    for sig in signals {
      var action = sigaction()
      action.__sigaction_handler.sa_handler = { sig in
        var byte = UInt8(truncatingIfNeeded: sig)
        _ = write(signalPipeWrite, &byte, 1)
      }
      sigemptyset(&action.sa_mask)
      action.sa_flags = SA_RESTART
      guard sigaction(sig, &action, nil) == 0 else {
        throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
      }
    }
  }

  /// Starts the thread that turns a signal into `group.triggerGracefulShutdown()`; a signal
  /// already received is acted on at once.
  static func deliver(to group: ServiceGroup, logger: Logger) {
    let fd = signalPipeRead
    let thread = Thread {
      var first = true
      // One read per signal received, for the life of the process.
      while true {
        var byte: UInt8 = 0
        let n = read(fd, &byte, 1)
        if n < 0 && errno == EINTR { continue }
        guard n == 1 else { return }
        let name = byte == UInt8(SIGTERM) ? "SIGTERM" : byte == UInt8(SIGINT) ? "SIGINT" : "\(byte)"
        if first {
          first = false
          logger.info("\(name): shutting down gracefully")
          Task { await group.triggerGracefulShutdown() }
        } else {
          logger.notice("\(name): the shutdown is already under way")
        }
      }
    }
    thread.name = "tallyd-signals"
    thread.start()
  }
}

/// The pipe's ends, read by the signal handler: plain globals with constant initial values
/// (statically initialised, so the handler's read of them involves no lazy initialisation).
nonisolated(unsafe) private var signalPipeRead: Int32 = -1
nonisolated(unsafe) private var signalPipeWrite: Int32 = -1
