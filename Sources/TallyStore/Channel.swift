import CLMDB
import Glibc

/// A bounded single-producer single-consumer channel (mutex + condition variables): the
/// producer blocks when `capacity` items wait, so memory stays bounded.
final class BoundedChannel<T>: @unchecked Sendable {
  private var items: [T] = []
  private var head = 0
  private var closed = false
  private let capacity: Int
  private var mutex = pthread_mutex_t()
  private var notEmpty = pthread_cond_t()
  private var notFull = pthread_cond_t()

  init(capacity: Int) {
    precondition(capacity > 0)
    self.capacity = capacity
    pthread_mutex_init(&mutex, nil)
    pthread_cond_init(&notEmpty, nil)
    pthread_cond_init(&notFull, nil)
  }

  deinit {
    pthread_mutex_destroy(&mutex)
    pthread_cond_destroy(&notEmpty)
    pthread_cond_destroy(&notFull)
  }

  func send(_ item: T) {
    pthread_mutex_lock(&mutex)
    while items.count - head >= capacity { pthread_cond_wait(&notFull, &mutex) }
    items.append(item)
    pthread_cond_signal(&notEmpty)
    pthread_mutex_unlock(&mutex)
  }

  func close() {
    pthread_mutex_lock(&mutex)
    closed = true
    pthread_cond_broadcast(&notEmpty)
    pthread_mutex_unlock(&mutex)
  }

  /// Nil once closed and drained.
  func receive() -> T? {
    pthread_mutex_lock(&mutex)
    defer { pthread_mutex_unlock(&mutex) }
    while items.count == head && !closed { pthread_cond_wait(&notEmpty, &mutex) }
    if items.count == head { return nil }
    let item = items[head]
    head += 1
    if head >= 64 {
      items.removeFirst(head)
      head = 0
    }
    pthread_cond_signal(&notFull)
    return item
  }
}

/// Runs `body` on a new OS thread; `join` waits for it.
public final class WorkerThread: @unchecked Sendable {
  private var thread = pthread_t()
  private let body: () -> Void

  private let name: String

  /// Starts `body` on a thread named `name` (at most 15 bytes are kept: what `top -H`,
  /// `perf` and `/proc/PID/task/*/comm` show).
  public init(name: String, _ body: @escaping () -> Void) {
    self.body = body
    self.name = name
    let unmanaged = Unmanaged.passRetained(self)
    let rc = pthread_create(
      &thread, nil,
      { raw in
        let worker = Unmanaged<WorkerThread>.fromOpaque(raw!).takeRetainedValue()
        nameThisThread(worker.name)
        worker.body()
        return nil
      }, unmanaged.toOpaque())
    precondition(rc == 0, "pthread_create failed: \(rc)")
  }

  public func join() { pthread_join(thread, nil) }
}

/// Names the calling thread (Linux keeps 15 bytes). Best effort: a name is for people
/// reading `top -H` or a profile, nothing depends on it.
func nameThisThread(_ name: String) {
  let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
  if fd < 0 { return }
  defer { close(fd) }
  let bytes = Array(name.utf8.prefix(15))
  _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
}

/// A readers-writer lock (pthread_rwlock): many shared holders or one exclusive holder.
/// Writers are preferred so that map growth cannot be starved by a stream of reads.
final class ReadWriteGate: @unchecked Sendable {
  private let lock: UnsafeMutablePointer<pthread_rwlock_t>

  init() {
    lock = .allocate(capacity: 1)
    var attr = pthread_rwlockattr_t()
    pthread_rwlockattr_init(&attr)
    pthread_rwlockattr_setkind_np(&attr, Int32(PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP))
    pthread_rwlock_init(lock, &attr)
    pthread_rwlockattr_destroy(&attr)
  }

  deinit {
    pthread_rwlock_destroy(lock)
    lock.deallocate()
  }

  func shared<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
    pthread_rwlock_rdlock(lock)
    defer { pthread_rwlock_unlock(lock) }
    return try body()
  }

  func exclusive<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
    pthread_rwlock_wrlock(lock)
    defer { pthread_rwlock_unlock(lock) }
    return try body()
  }

  /// `body` under the exclusive hold when it is free now; nil, without waiting, when a
  /// shared or exclusive holder has it.
  func tryExclusive<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R? {
    if pthread_rwlock_trywrlock(lock) != 0 { return nil }
    defer { pthread_rwlock_unlock(lock) }
    return try body()
  }
}

/// Fixes glibc's mmap threshold at 256 KiB for a long-running process (tallyd calls it
/// first thing). By default glibc raises the threshold to the size of each large block
/// freed, so the next blocks of that size come from a heap arena and stay resident after
/// they are freed: the 1–2 MiB buffers of a snapshot's copy (LMDB's and the hashing sink's),
/// made on a new thread per snapshot and so often in a different arena, left the process's
/// heap a few MiB larger after each snapshot, for good. With the threshold fixed, a block of
/// 256 KiB or more is its own mapping, returned to the system when freed. False when glibc
/// refused.
public func fixLargeAllocationsToTheirOwnMappings() -> Bool {
  tally_fix_mmap_threshold(256 << 10) == 1
}

/// Returns the heap's free memory to the system (glibc's `malloc_trim`): tallyd calls it
/// after each snapshot, whose replay on a thread of its own leaves megabytes of small
/// blocks free in that thread's arena (blocks under the threshold above) until the next.
public func returnFreedHeap() { _ = malloc_trim(0) }
