import CLMDB
import Glibc
import Synchronization

/// Writes the LMDB map's dirty pages back to disk a little at a time, on a thread of its own.
///
/// The writer commits without syncing the map (the journal is what makes a write durable), so
/// its pages stay dirty in the page cache until the kernel writes them back: the whole file's
/// dirty pages at once, some 30 s after it was first dirtied (`vm.dirty_expire_centisecs`),
/// hundreds of MiB under load. Each such burst fills the disk's queue for a second or more,
/// and every journal sync meanwhile (a cache flush), with the writes that wait for it, waits
/// behind it.
///
/// This sweeps the file instead, start to end once every `sweepSeconds`, one `chunk` at a
/// time, at an even pace: each range's dirty pages are written back and waited for
/// (`sync_file_range`) before the next range's, so at most one chunk of the map's pages is
/// ever queued ahead of a journal sync. The way PostgreSQL spreads a checkpoint's writes
/// (`checkpoint_completion_target`, `checkpoint_flush_after`). It never makes anything
/// durable that recovery relies on; a page written again after the sweep passed it waits
/// for the next sweep (or the kernel), so a shorter sweep writes more bytes in all.
public final class MapWriteback: @unchecked Sendable {
  /// File range written back per step.
  public static let chunk = 1 << 20
  private let fd: Int32
  private let sweepNanos: Int64
  private let stopping = Atomic<Bool>(false)
  private var thread: WorkerThread?
  /// Sweeps completed, and the writebacks refused.
  public let sweeps = Atomic<Int>(0)
  public let failed = Atomic<Int>(0)
  /// Told the errno of each refused writeback (the kernel's own writeback goes on).
  private let onFailure: @Sendable (Int32) -> Void

  /// Nil when the map's file descriptor is unavailable (read-only ledger) or `sweepSeconds`
  /// is 0 (the kernel's own writeback only).
  public init?(
    _ ledger: Ledger, sweepSeconds: Int, onFailure: @escaping @Sendable (Int32) -> Void
  ) {
    guard sweepSeconds > 0, !ledger.readOnly else { return nil }
    var fd: Int32 = -1
    guard mdb_env_get_fd(ledger.env.env, &fd) == 0, fd >= 0 else { return nil }
    self.fd = fd
    self.onFailure = onFailure
    sweepNanos = Int64(sweepSeconds) * 1_000_000_000
    thread = WorkerThread(name: "tally-writeback") { [self] in run() }
  }

  private func run() {
    while !stopping.load(ordering: .acquiring) {
      var st = stat()
      guard fstat(fd, &st) == 0 else {
        failed.add(1, ordering: .relaxed)
        onFailure(errno)
        if !sleep(until: monotonicNanos() + sweepNanos) { return }
        continue
      }
      // The file's size when the sweep starts: pages past it (the map grew meanwhile) are
      // the next sweep's.
      let size = Int64(st.st_size)
      let chunks = max(1, (size + Int64(Self.chunk) - 1) / Int64(Self.chunk))
      let start = monotonicNanos()
      var i: Int64 = 0
      while i < chunks {
        // Chunk i is due at start + i/chunks of the sweep.
        if !sleep(until: start + sweepNanos / chunks * i) { return }
        let rc = tally_writeback_range(fd, off_t(i) * off_t(Self.chunk), off_t(Self.chunk))
        if rc != 0 {
          failed.add(1, ordering: .relaxed)
          onFailure(errno)
        }
        i += 1
      }
      sweeps.add(1, ordering: .relaxed)
      if !sleep(until: start + sweepNanos) { return }
    }
  }

  /// Sleeps until `deadline` (monotonic ns), in steps of at most 50 ms so that `stop` never
  /// waits long; false once stopping. Less than 4 ms ahead counts as due: the chunks due
  /// within it go out together, one wake-up for them all (a 12 GiB map in 5 s is a chunk
  /// every 0.4 ms).
  private func sleep(until deadline: Int64) -> Bool {
    while !stopping.load(ordering: .acquiring) {
      let left = deadline - monotonicNanos()
      if left < 4_000_000 { return true }
      var ts = timespec(tv_sec: 0, tv_nsec: Int(min(left, 50_000_000)))
      nanosleep(&ts, nil)
    }
    return false
  }

  /// Stops the thread and waits for it; call before the ledger closes.
  public func stop() {
    stopping.store(true, ordering: .releasing)
    thread?.join()
    thread = nil
  }
}
