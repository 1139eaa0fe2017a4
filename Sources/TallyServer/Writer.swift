import Glibc
import Logging
import Synchronization
import TallyCore
import TallyReconcile
import TallyStore

/// What the writer is asked to do.
enum WriteWork: Sendable {
  /// Commands applied in the group's transaction; `scope` limits a service key.
  case commands([Command], Scope?)
  case keyCreate(role: Role, partner: String?, grants: [String])
  case keyRevoke(String)
  /// Sign a checkpoint of the head and keep it (when the head moved since the last one).
  case keepCheckpoint
  /// An import planned off the writer (parsed, checked and matched against a snapshot, its
  /// intent synced): the writer applies one write group of it per turn and queues it again
  /// behind what waits, so other clients' groups run in between. `intent` is removed once
  /// the last group is synced.
  case reconImport(ReconImportRun, intent: String?)
  /// A read replica's next events from the primary's stream (docs/REPLICATION.md): checked
  /// against this ledger's chain and appended as one write group.
  case replicate([ReplicatedEvent])
}

enum WriteResult: Sendable {
  case outcomes([Outcome], [Receipt?])
  case keyCreated(Result<KeyRecord, Rejection>)
  case keyRevoked(KeyRecord?)
  case checkpointKept(Checkpoint?)
  case imported(Result<ReconImportReport, Rejection>)
  /// In `--durability stream`: the group is in the local journal (synced) but the stream did
  /// not acknowledge it in time, or refused it (this server was fenced).
  case notReplicated(seq: UInt64, reason: String)
  /// The replica's head after the group (durable), or why it was refused (nothing applied).
  case replicated(Result<LogHead, ReplicationRefusal>)
  /// The store failed (disk, map): nothing of the group was committed.
  case failed(StoreError)
}

struct WriteJob: Sendable {
  var work: WriteWork
  var complete: @Sendable (WriteResult) -> Void

  /// Queue capacity it takes: its commands (a key operation counts one).
  var weight: Int {
    switch work {
    case .commands(let c, _): return max(c.count, 1)
    // One write group: a slice of at most `Limits.reconLinesPerGroupMax` lines and its
    // matches.
    case .reconImport: return 2
    case .replicate(let events): return max(events.count, 1)
    default: return 1
    }
  }
}

/// The bounded queue in front of the writer, counted in commands. A producer that finds it
/// full keeps its request, stops reading its socket, and registers to be called back when
/// the writer has drained: backpressure, never a drop.
final class WriteQueue: @unchecked Sendable {
  private var jobs: [WriteJob] = []
  /// Jobs queued and not yet taken, readable without the mutex (the writer's brief spin).
  private let queued = Atomic<Int>(0)
  /// How long the writer polls an empty queue before it sleeps on the condition variable.
  static let spinNanos: Int64 = 300_000
  private var head = 0
  private var weight = 0
  private var closed = false
  private var waiters: [@Sendable () -> Void] = []
  let capacity: Int
  private var mutex = pthread_mutex_t()
  private var notEmpty = pthread_cond_t()

  init(capacity: Int) {
    precondition(capacity > 0)
    self.capacity = capacity
    pthread_mutex_init(&mutex, nil)
    pthread_cond_init(&notEmpty, nil)
  }

  deinit {
    pthread_mutex_destroy(&mutex)
    pthread_cond_destroy(&notEmpty)
  }

  enum Push { case queued, full, closed }

  /// Queues `job` unless it would overflow. A job heavier than the whole capacity is
  /// admitted into an empty queue (the batch limit bounds it), so it cannot wait forever.
  func tryPush(_ job: WriteJob) -> Push {
    pthread_mutex_lock(&mutex)
    defer { pthread_mutex_unlock(&mutex) }
    if closed { return .closed }
    let w = job.weight
    if weight > 0 && weight + w > capacity { return .full }
    jobs.append(job)
    weight += w
    queued.add(1, ordering: .releasing)
    pthread_cond_signal(&notEmpty)
    return .queued
  }

  /// Queues a job the writer took and has more to do for (an import's next group) behind
  /// what waits, whatever the queue holds: it was admitted once, and only the writer calls
  /// this, so the queue holds at most one such job per import.
  func requeue(_ job: WriteJob) {
    pthread_mutex_lock(&mutex)
    jobs.append(job)
    weight += job.weight
    pthread_cond_signal(&notEmpty)
    pthread_mutex_unlock(&mutex)
  }

  /// Calls `wake` once, after the writer next takes jobs off the queue (or at close).
  func notifyWhenSpace(_ wake: @escaping @Sendable () -> Void) {
    pthread_mutex_lock(&mutex)
    if closed || weight == 0 {
      pthread_mutex_unlock(&mutex)
      wake()
      return
    }
    waiters.append(wake)
    pthread_mutex_unlock(&mutex)
  }

  var depth: Int {
    pthread_mutex_lock(&mutex)
    defer { pthread_mutex_unlock(&mutex) }
    return weight
  }

  /// Blocks for at least one job, then takes what waits, up to `maxWeight` (at least one
  /// job). Nil once closed and empty.
  func drain(maxWeight: Int) -> [WriteJob]? {
    // A lone client's next request usually arrives within a round trip, sooner than a
    // sleeping thread is woken on a busy or virtual machine: poll (yielding the core) for a
    // bounded 300 µs before sleeping.
    if queued.load(ordering: .acquiring) == 0 {
      let until = monotonicNanos() + Self.spinNanos
      while queued.load(ordering: .acquiring) == 0 && monotonicNanos() < until { sched_yield() }
    }
    pthread_mutex_lock(&mutex)
    while jobs.count == head && !closed { pthread_cond_wait(&notEmpty, &mutex) }
    if jobs.count == head {
      pthread_mutex_unlock(&mutex)
      return nil
    }
    var out = [WriteJob]()
    var taken = 0
    while head < jobs.count {
      let w = jobs[head].weight
      if !out.isEmpty && taken + w > maxWeight { break }
      out.append(jobs[head])
      taken += w
      head += 1
    }
    weight -= taken
    queued.subtract(out.count, ordering: .releasing)
    if head == jobs.count {
      jobs.removeAll(keepingCapacity: true)
      head = 0
    } else if head >= 1024 {
      jobs.removeFirst(head)
      head = 0
    }
    let wake = waiters
    waiters.removeAll()
    pthread_mutex_unlock(&mutex)
    for w in wake { w() }
    return out
  }

  func close() {
    pthread_mutex_lock(&mutex)
    closed = true
    let wake = waiters
    waiters.removeAll()
    pthread_cond_broadcast(&notEmpty)
    pthread_mutex_unlock(&mutex)
    for w in wake { w() }
  }
}

/// Why the writer refuses writes: the last write failed for want of space or map, and none
/// has succeeded since (docs/OPERATIONS.md, "When the disk fills").
public struct WriteRefusal: Sendable, Equatable {
  /// `NO_SPACE` or `MAP_FULL` (the `UNAVAILABLE` reason clients got).
  public var reason: String
  /// Free bytes on the data directory's filesystem when the last write failed (nil: unknown).
  public var freeBytes: Int?
  /// Since when (wall clock, ns): the first failure after the last success.
  public var sinceNanos: Int64

  /// Free space on the filesystem that has grown by this much since the failure counts as
  /// space returned (for /readyz; the next write is what proves it): one first journal
  /// segment (1 MiB), the least a new segment takes.
  public static let spaceReturnedBytes = 1 << 20

  /// Whether space was freed since the failure, as far as `freeNow` tells.
  public func spaceReturned(freeNow: Int?) -> Bool {
    guard reason == "NO_SPACE", let freeBytes, let freeNow else { return false }
    return freeNow >= freeBytes + Self.spaceReturnedBytes
  }
}

/// Whether writes are refused now, and why (STATS `write_refusal`, /metrics
/// `tally_writes_refused`): out of space or map (`WriteRefusal`, until a write commits), or
/// an I/O error that stopped the journal (until a restart).
public struct RefusalState: Sendable, Equatable {
  /// `NO_SPACE`, `MAP_FULL` or `IO`: the `UNAVAILABLE` reason writes are answered with.
  public var reason: String
  /// Since when (wall clock, ns); nil for `IO` (the journal does not record when).
  public var sinceNanos: Int64?
  /// Free bytes on the filesystem at the last refused write (`NO_SPACE`, `MAP_FULL`).
  public var freeBytes: Int?
}

/// Gives the calling thread the lowest CPU priority (nice 19): it then runs on what the
/// others leave. A failure only leaves it at the process's priority.
func lowerThisThreadsPriority() {
  // The thread's own id, which Glibc's module does not offer (gettid): /proc names it.
  var buf = [UInt8](repeating: 0, count: 64)
  let n = buf.withUnsafeMutableBytes { readlink("/proc/thread-self", $0.baseAddress!, 63) }
  guard n > 0,
    let tid = Int32(String(decoding: buf[0..<n], as: UTF8.self).split(separator: "/").last ?? "")
  else { return }
  _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), id_t(tid), 19)
}

/// Free bytes for unprivileged writers on the filesystem holding `path` (nil when unknown).
func freeBytes(_ path: String) -> Int? {
  var fs = statvfs()
  guard statvfs(path, &fs) == 0 else { return nil }
  return Int(fs.f_bavail) &* Int(fs.f_frsize)
}

/// Hands the ledger to the writer thread: after `start`, only that thread touches it.
final class LedgerHandoff: @unchecked Sendable {
  let ledger: Ledger
  init(_ ledger: Ledger) { self.ledger = ledger }
}

/// Counters for STATS.
final class WriterStats: Sendable {
  let groups = Atomic<Int>(0)
  let commands = Atomic<Int>(0)
  let largestGroup = Atomic<Int>(0)
  let failures = Atomic<Int>(0)
  let syncs = Atomic<Int>(0)
  let snapshots = Atomic<Int>(0)
  let snapshotSeq = Atomic<Int>(0)
  let snapshotFailures = Atomic<Int>(0)
  let snapshotsCancelled = Atomic<Int>(0)
}

/// Groups applied to LMDB whose journal records wait for their sync: the writer hands each
/// group's completions here and goes on with the next group while the syncer thread runs
/// one `fdatasync` for everything handed so far, then completes those requests. At most
/// `groupsMax` groups wait; the writer blocks beyond that (bounded, never dropped).
final class SyncQueue: @unchecked Sendable {
  /// Two groups in flight overlap one group's sync with the next one's apply; more only
  /// grow latency on a disk that syncs one file at a time.
  static let groupsMax = 4
  private var waiting: [() -> Void] = []
  /// Groups handed over and not yet completed (waiting, or taken and being synced).
  private var unfinished = 0
  private var closed = false
  private var mutex = pthread_mutex_t()
  private var changed = pthread_cond_t()

  init() {
    pthread_mutex_init(&mutex, nil)
    pthread_cond_init(&changed, nil)
  }

  deinit {
    pthread_mutex_destroy(&mutex)
    pthread_cond_destroy(&changed)
  }

  /// Called by the writer after a group's LMDB commit: `complete` runs after the next sync.
  func push(_ complete: @escaping () -> Void) {
    pthread_mutex_lock(&mutex)
    while waiting.count >= Self.groupsMax && !closed { pthread_cond_wait(&changed, &mutex) }
    waiting.append(complete)
    unfinished += 1
    pthread_cond_broadcast(&changed)
    pthread_mutex_unlock(&mutex)
  }

  /// True when no group is waiting or being synced: the writer may then sync its group
  /// itself and skip a thread handoff (what a lone client waits for).
  var idle: Bool {
    pthread_mutex_lock(&mutex)
    defer { pthread_mutex_unlock(&mutex) }
    return unfinished == 0
  }

  /// Called by the syncer after completing `count` groups.
  func finished(_ count: Int) {
    pthread_mutex_lock(&mutex)
    unfinished -= count
    pthread_mutex_unlock(&mutex)
  }

  /// Blocks for at least one group; nil once closed and empty.
  func take() -> [() -> Void]? {
    pthread_mutex_lock(&mutex)
    defer { pthread_mutex_unlock(&mutex) }
    while waiting.isEmpty && !closed { pthread_cond_wait(&changed, &mutex) }
    if waiting.isEmpty { return nil }
    let out = waiting
    waiting.removeAll(keepingCapacity: true)
    pthread_cond_broadcast(&changed)
    return out
  }

  func close() {
    pthread_mutex_lock(&mutex)
    closed = true
    pthread_cond_broadcast(&changed)
    pthread_mutex_unlock(&mutex)
  }
}

/// The single writer: drains the queue, applies each group in one LMDB transaction, appends
/// its events to the journal, and hands it to the syncer thread, which makes the journal
/// durable (one `fdatasync` for every group handed so far) and then completes the group's
/// jobs. `OK` is sent only after that sync; reads wait for it too (`LedgerReader`).
final class Writer: Sendable {
  let queue: WriteQueue
  let stats = WriterStats()
  let handoff: LedgerHandoff
  let groupCommandsMax: Int
  let logger: Logger
  let syncs = SyncQueue()
  let snapshotPolicy: SnapshotPolicy
  /// Where imports record their intent before their first group (read off the writer).
  let intents: ReconIntents
  /// The journal's maker of next segments (its failure count, for STATS).
  let segmentPreparer: SegmentPreparer?
  private let thread = Mutex<WorkerThread?>(nil)
  /// The writer's time in `answerWhenDurable` this turn (for the slow-turn warning).
  private let durableWaitNanos = Atomic<Int>(0)
  private let syncThread = Mutex<WorkerThread?>(nil)
  /// Sweeps the map's dirty pages back to disk every `mapWritebackSeconds` (0: never;
  /// `MapWriteback`).
  private let mapWriteback = Mutex<MapWriteback?>(nil)
  let mapWritebackSeconds: Int
  /// The thread copying the projections into a snapshot, while one runs (at most one).
  private let snapshotThread = Mutex<WorkerThread?>(nil)
  private let snapshotting = Atomic<Bool>(false)
  /// Set in `--durability stream` while primary: groups are answered once the stream
  /// acknowledged them.
  let streamAcks = Mutex<ChangeStreamPublisher?>(nil)
  /// Nil unless metrics are on (`ServerConfig.metrics`).
  let metrics: ServerMetrics?
  /// The newest checkpoint this process kept: its tree size and when (0: none yet).
  let checkpointKeptSize = Atomic<UInt64>(0)
  let checkpointKeptNanos = Atomic<Int64>(0)
  /// Set while writes fail for want of space or map; cleared by the next write that
  /// commits. Only the writer thread sets or clears it.
  let refusal = Mutex<WriteRefusal?>(nil)
  /// Whether `refusal` is set, readable without the mutex on every group.
  private let refusing = Atomic<Bool>(false)

  init(ledger: Ledger, config: ServerConfig, metrics: ServerMetrics?, logger: Logger) {
    self.metrics = metrics
    handoff = LedgerHandoff(ledger)
    queue = WriteQueue(capacity: config.writeQueueCommandsMax)
    groupCommandsMax = config.groupCommandsMax
    snapshotPolicy = config.snapshots
    mapWritebackSeconds = config.mapWritebackSeconds
    intents = ledger.reconIntents
    segmentPreparer = ledger.journal?.preparer
    self.logger = logger
  }

  func start() {
    handoff.ledger.syncEachGroup = false
    thread.withLock { t in
      precondition(t == nil, "writer started twice")
      t = WorkerThread(name: "tally-writer") { [self] in run() }
    }
    syncThread.withLock { t in
      t = WorkerThread(name: "tally-sync") { [self] in runSyncs() }
    }
    let logger = self.logger
    let warned = Atomic<Bool>(false)
    mapWriteback.withLock { w in
      w = MapWriteback(handoff.ledger, sweepSeconds: mapWritebackSeconds) { err in
        // Once: the kernel still writes the pages back, in its own larger bursts.
        if warned.exchange(true, ordering: .relaxed) { return }
        logger.warning(
          "cannot start the map's writeback; the kernel's own goes on",
          metadata: ["error": "\(String(cString: strerror(err)))"])
      }
    }
  }

  /// Stops taking jobs once the queue is empty, waits for the thread and the last syncs, and
  /// closes the ledger (journal and LMDB synced; the next open trusts the projections).
  func stop() {
    queue.close()
    thread.withLock { $0 }?.join()
    syncs.close()
    syncThread.withLock { $0 }?.join()
    // A build or copy of gigabytes at its pace takes minutes: stop it rather than wait.
    handoff.ledger.stopSnapshot()
    snapshotThread.withLock { $0 }?.join()
    mapWriteback.withLock { $0 }?.stop()
    do { try handoff.ledger.close() } catch {
      logger.error("closing the ledger failed", metadata: ["error": "\(error)"])
    }
  }

  /// The syncer: one `fdatasync` covers every group handed since the last one.
  private func runSyncs() {
    let ledger = handoff.ledger
    while let groups = syncs.take() {
      do {
        try timedSync(ledger, groups: groups.count)
        stats.syncs.add(1, ordering: .relaxed)
      } catch {
        // A failed sync is never retried: the groups were not acknowledged, the journal is
        // poisoned, and every later write fails until the server restarts and recovers.
        failed()
        logger.critical("journal sync failed", metadata: ["error": "\(error)"])
      }
      for complete in groups { complete() }
      syncs.finished(groups.count)
    }
  }

  /// Makes everything appended so far durable, on the writer thread (before a job that must
  /// not run ahead of the log: a checkpoint signs the head).
  private func syncNow(_ ledger: Ledger) throws(StoreError) { try ledger.journal?.sync() }

  static func now() -> Int64 { Ledger.wallClockNanos() }

  private func failed() {
    stats.failures.add(1, ordering: .relaxed)
    metrics?.writeFailures.increment()
  }

  /// Whether writes are refused now, and why (nil: they are not).
  public func refusalState() -> RefusalState? {
    if handoff.ledger.journal?.isPoisoned == true {
      return RefusalState(reason: "IO", sinceNanos: nil, freeBytes: nil)
    }
    guard refusing.load(ordering: .acquiring), let r = refusal.withLock({ $0 }) else { return nil }
    return RefusalState(reason: r.reason, sinceNanos: r.sinceNanos, freeBytes: r.freeBytes)
  }

  /// Notes a write that failed with `error`: out of space or map, writes are refused (said
  /// once in the log, and on /readyz) until one commits again.
  private func storeFailed(_ error: StoreError) {
    failed()
    guard let reason = StoreFailure.reason(error), reason != "IO" else { return }
    let free = freeBytes(handoff.ledger.path)
    let first = refusal.withLock { r -> Bool in
      let first = r == nil
      r = WriteRefusal(
        reason: reason, freeBytes: free, sinceNanos: r?.sinceNanos ?? Self.now())
      return first
    }
    refusing.store(true, ordering: .releasing)
    if first {
      logger.critical(
        "writes refused (reads go on); every write tries again, the first to commit ends this",
        metadata: ["reason": "\(reason)", "error": "\(error)", "free_bytes": "\(free ?? -1)"])
    }
  }

  /// Notes a write that committed: a refusal, if any, is over.
  private func storeSucceeded() {
    guard refusing.load(ordering: .acquiring) else { return }
    let was = refusal.withLock { r in
      defer { r = nil }
      return r
    }
    refusing.store(false, ordering: .releasing)
    if let was {
      logger.notice(
        "writes accepted again",
        metadata: [
          "reason": "\(was.reason)", "refused_ms": "\((Self.now() - was.sinceNanos) / 1_000_000)",
        ])
    }
  }

  /// A writer turn or a journal sync that takes longer than this is logged (a warning with
  /// where its time went): what an operator looks at when latency jumps.
  static let slowNanos: Int64 = 100_000_000

  /// One journal sync, timed; `groups` it makes durable, for the slow-sync warning.
  private func timedSync(_ ledger: Ledger, groups: Int) throws(StoreError) {
    let t0 = monotonicNanos()
    try ledger.journal?.sync()
    let took = monotonicNanos() - t0
    metrics?.journalSync.recordNanoseconds(took)
    if took > Self.slowNanos {
      logger.warning(
        "slow journal sync", metadata: ["ms": "\(took / 1_000_000)", "groups": "\(groups)"])
    }
  }

  /// Where one turn of the writer (a drained batch of jobs) spent its time; logged when the
  /// whole turn took longer than `slowNanos`.
  private struct Turn {
    let started = monotonicNanos()
    let growWait: Int64
    let grow: Int64
    var applied: Int64 = 0
    var snapshotChecked: Int64 = 0

    init(_ ledger: Ledger) {
      growWait = ledger.growWaitNanos
      grow = ledger.growNanos
    }

    func report(
      _ logger: Logger, _ ledger: Ledger, jobs: Int, commands: Int, durableWait: Int64
    ) {
      let done = monotonicNanos()
      guard done - started > Writer.slowNanos else { return }
      let ms = { (nanos: Int64) in "\(nanos / 1_000_000)" }
      let applyEnd = applied == 0 ? done : applied
      logger.warning(
        "slow write turn",
        metadata: [
          "ms": "\(ms(done - started))", "jobs": "\(jobs)", "commands": "\(commands)",
          // Growing the map: waiting for reads in flight, then the growth itself.
          "grow_wait_ms": "\(ms(ledger.growWaitNanos - growWait))",
          "grow_ms": "\(ms(ledger.growNanos - grow))",
          // The group's apply and commit, growth and the wait below included.
          "apply_ms": "\(ms(applyEnd - started))",
          // Syncing inline, or waiting for room in the syncer's queue.
          "durable_wait_ms": "\(ms(durableWait))",
          "snapshot_start_ms": "\(ms(snapshotChecked == 0 ? 0 : snapshotChecked - applyEnd))",
          "other_jobs_ms": "\(ms(done - (snapshotChecked == 0 ? applyEnd : snapshotChecked)))",
        ])
    }
  }

  private func run() {
    let ledger = handoff.ledger
    while let jobs = queue.drain(maxWeight: groupCommandsMax) {
      var turn = Turn(ledger)
      durableWaitNanos.store(0, ordering: .relaxed)
      var commands = [Command]()
      var scopes = [Scope?]()
      var anyScope = false
      for job in jobs {
        guard case .commands(let cs, let scope) = job.work else { continue }
        commands += cs
        for _ in cs { scopes.append(scope) }
        if scope != nil { anyScope = true }
      }
      if !commands.isEmpty {
        applyGroup(ledger, jobs, commands, anyScope ? scopes : nil)
        turn.applied = monotonicNanos()
        startSnapshotIfDue(ledger)
        turn.snapshotChecked = monotonicNanos()
      }
      defer {
        turn.report(
          logger, ledger, jobs: jobs.count, commands: commands.count,
          durableWait: Int64(durableWaitNanos.load(ordering: .relaxed)))
      }
      for job in jobs {
        if case .commands = job.work { continue }
        if case .reconImport(let run, let intent) = job.work {
          importStep(ledger, job, run, intent)
          continue
        }
        if case .replicate(let events) = job.work {
          replicateStep(ledger, job, events)
          continue
        }
        // What a job outside the group answers must not run ahead of the durable log.
        do { try syncNow(ledger) } catch {
          job.complete(.failed(error))
          continue
        }
        switch job.work {
        case .commands: continue
        case .keyCreate(let role, let partner, let grants):
          do {
            job.complete(
              .keyCreated(
                try ledger.createKey(role: role, partner: partner, grants: grants, now: Self.now())
              ))
            storeSucceeded()
          } catch {
            logger.error("key create failed", metadata: ["error": "\(error)"])
            storeFailed(error)
            job.complete(.failed(error))
          }
        case .keyRevoke(let id):
          do {
            job.complete(.keyRevoked(try ledger.revokeKey(id, now: Self.now())))
            storeSucceeded()
          } catch {
            logger.error("key revoke failed", metadata: ["error": "\(error)"])
            storeFailed(error)
            job.complete(.failed(error))
          }
        case .reconImport, .replicate: continue
        case .keepCheckpoint:
          do {
            let kept = try ledger.keepCheckpoint()
            if let kept {
              checkpointKeptSize.store(kept.size, ordering: .relaxed)
              checkpointKeptNanos.store(Self.now(), ordering: .relaxed)
            }
            job.complete(.checkpointKept(kept))
          } catch {
            logger.error("checkpoint failed", metadata: ["error": "\(error)"])
            storeFailed(error)
            job.complete(.failed(error))
          }
        }
      }
    }
  }

  /// One write group of an import; the job goes back in the queue until the last, whose
  /// answer waits for a sync covering every group of it. A store failure fails the import:
  /// its intent stays, and the next open finishes what it appended (all or nothing).
  private func importStep(
    _ ledger: Ledger, _ job: WriteJob, _ run: ReconImportRun, _ intent: String?
  ) {
    do {
      try ledger.importStep(run, now: Self.now())
      storeSucceeded()
      stats.groups.add(1, ordering: .relaxed)
      if !run.finished {
        queue.requeue(job)
        return
      }
      try syncNow(ledger)
      if let intent { try ledger.reconIntents.remove(intent) }
      job.complete(.imported(.success(run.report)))
    } catch {
      storeFailed(error)
      logger.error(
        "statement import failed; its intent stays for the next open",
        metadata: ["error": "\(error)", "intent": "\(intent ?? "-")"])
      job.complete(.failed(error))
    }
  }

  /// Runs `answers(true)` once everything appended so far is synced, or `answers(false)`
  /// when the sync failed and `seq` (the group's last) never became durable.
  private func answerWhenDurable(
    _ ledger: Ledger, through seq: UInt64, _ answers: @escaping (_ durable: Bool) -> Void
  ) {
    let journal = ledger.journal
    let answer = { answers(journal.map { $0.durableSeq >= seq } ?? true) }
    let t0 = monotonicNanos()
    defer { durableWaitNanos.add(Int(monotonicNanos() - t0), ordering: .relaxed) }
    if queue.depth == 0 && syncs.idle {
      // Nothing else waits: sync here and answer, one thread handoff fewer. With more
      // load, the syncer overlaps this group's sync with the next group's apply.
      do {
        try timedSync(ledger, groups: 1)
        stats.syncs.add(1, ordering: .relaxed)
      } catch {
        failed()
        logger.critical("journal sync failed", metadata: ["error": "\(error)"])
      }
      answer()
    } else {
      syncs.push(answer)
    }
  }

  /// A replica's group: appended (journal, then LMDB) and answered once synced, like a
  /// client's group. A refused event is answered with the refusal once the events before it
  /// (appended) are synced; nothing from it on is written.
  private func replicateStep(_ ledger: Ledger, _ job: WriteJob, _ events: [ReplicatedEvent]) {
    do {
      let result: Result<LogHead, ReplicationRefusal>
      do {
        result = .success(try ledger.appendReplicated(events))
      } catch let refusal as ReplicationRefusal {
        // The events before the refused one were appended: they are answered durable too.
        result = .failure(refusal)
      }
      stats.groups.add(1, ordering: .relaxed)
      stats.commands.add(events.count, ordering: .relaxed)
      stats.largestGroup.max(events.count, ordering: .relaxed)
      answerWhenDurable(ledger, through: ledger.head.seq) { durable in
        job.complete(durable ? .replicated(result) : .failed(Journal.poisonError))
      }
      startSnapshotIfDue(ledger)
    } catch {
      storeFailed(Ledger.storeError(error))
      logger.error(
        "replicated group failed; nothing of it was committed", metadata: ["error": "\(error)"])
      job.complete(.failed(Ledger.storeError(error)))
    }
  }

  /// Starts copying the projections into a snapshot on a thread of its own when the policy
  /// calls for one and none is running. The writer goes on meanwhile.
  private func startSnapshotIfDue(_ ledger: Ledger) {
    if snapshotting.load(ordering: .acquiring) || !ledger.snapshotDue(snapshotPolicy) { return }
    snapshotting.store(true, ordering: .releasing)
    snapshotThread.withLock { $0 }?.join()
    let build = snapshotPolicy.method == .build
    do throws(StoreError) {
      // A build never reads the live map: no room to make for it.
      if !build {
        try ledger.makeRoomForSnapshot(copyMibPerSecond: snapshotPolicy.copyMibPerSecond)
      }
    } catch {
      // The copy goes ahead: a write that then needs a larger map waits for it (or reports
      // the full disk itself), as without this step.
      logger.warning(
        "no room made in the map before a snapshot",
        metadata: ["error": "\(error)", "code": "\(error.code)"])
    }
    let handoff = self.handoff
    snapshotThread.withLock { t in
      t = WorkerThread(name: "tally-snapshot") { [self] in
        let started = Self.now()
        let cancelledBefore = handoff.ledger.snapshotCopiesCancelled
        // A build replays the journal on this thread: it takes what CPU the writer and the
        // connections leave (the lowest priority), not a share of theirs.
        if build { lowerThisThreadsPriority() }
        do throws(StoreError) {
          if let info = try build
            ? handoff.ledger.buildSnapshot(mibPerSecond: snapshotPolicy.buildMibPerSecond)
            : handoff.ledger.writeSnapshot(copyMibPerSecond: snapshotPolicy.copyMibPerSecond)
          {
            let report = build ? handoff.ledger.lastBuild : nil
            let base = report.map { "\($0.base)" } ?? "live map"
            let written = report?.writtenBytes ?? info.bytes
            stats.snapshots.add(1, ordering: .relaxed)
            stats.snapshotSeq.store(Int(info.head.seq), ordering: .relaxed)
            logger.info(
              "snapshot written",
              metadata: [
                "seq": "\(info.head.seq)", "bytes": "\(info.bytes)",
                "ms": "\((Self.now() - started) / 1_000_000)",
                "copy_ms": "\(handoff.ledger.lastSnapshotCopyNanos / 1_000_000)",
                "method": "\(snapshotPolicy.method)",
                "base": "\(base)", "written_bytes": "\(written)",
              ])
          }
        } catch  where handoff.ledger.snapshotCopiesCancelled != cancelledBefore {
          // The writer needed a larger map and cancelled the copy rather than wait for it;
          // the next snapshot, due again after the policy's interval, makes more room.
          stats.snapshotsCancelled.add(1, ordering: .relaxed)
          logger.warning(
            "snapshot cancelled: the map had to grow during its copy",
            metadata: ["ms": "\((Self.now() - started) / 1_000_000)"])
        } catch  where handoff.ledger.snapshotStopRequested {
          logger.info(
            "snapshot stopped: shutting down",
            metadata: [
              "ms": "\((Self.now() - started) / 1_000_000)",
              "method": "\(snapshotPolicy.method)",
            ])
        } catch {
          // Nothing acknowledged depends on a snapshot: recovery after an OS crash then
          // starts from an older one, or from the journal's start.
          stats.snapshotFailures.add(1, ordering: .relaxed)
          logger.error("snapshot failed", metadata: ["error": "\(error)", "code": "\(error.code)"])
        }
        // What the snapshot's work held (a build's replay batches) goes back to the system
        // rather than stay in this thread's malloc arena until the next one.
        returnFreedHeap()
        snapshotting.store(false, ordering: .releasing)
      }
    }
  }

  private func applyGroup(
    _ ledger: Ledger, _ jobs: [WriteJob], _ commands: [Command], _ scopes: [Scope?]?
  ) {
    do {
      let t0 = metrics == nil ? 0 : monotonicNanos()
      let headBefore = ledger.head.seq
      var (outcomes, receipts) = try ledger.applyWithReceipts(
        commands, scopes: scopes, now: Self.now())
      // Only a group that wrote proves the store takes writes again (an expiry round with
      // nothing due commits nothing).
      if ledger.head.seq != headBefore { storeSucceeded() }
      if let metrics {
        metrics.groupApply.recordNanoseconds(monotonicNanos() - t0)
        metrics.groupCommands.record(commands.count)
        metrics.recordOutcomes(outcomes)
      }
      // A retried write answers its original result: look up where it landed. Its group
      // may not be durable yet; the answer waits for the next sync like every other.
      for (i, o) in outcomes.enumerated() {
        if case .duplicate(let seq) = o {
          receipts[i] = try ledger.reader.receipt(seq, waitDurable: false)
        }
      }
      stats.groups.add(1, ordering: .relaxed)
      stats.commands.add(commands.count, ordering: .relaxed)
      stats.largestGroup.max(commands.count, ordering: .relaxed)
      let last = ledger.head.seq
      let answerAll: @Sendable () -> Void = { [outcomes, receipts] in
        var at = 0
        for job in jobs {
          guard case .commands(let cs, _) = job.work else { continue }
          let range = at..<(at + cs.count)
          at += cs.count
          job.complete(.outcomes(Array(outcomes[range]), Array(receipts[range])))
        }
      }
      let streamAcks = self.streamAcks.withLock { $0 }
      answerWhenDurable(ledger, through: last) { durable in
        // A group whose records did not become durable is answered failed.
        guard durable else {
          for job in jobs {
            if case .commands = job.work { job.complete(.failed(Journal.poisonError)) }
          }
          return
        }
        guard let streamAcks else { return answerAll() }
        streamAcks.whenAcked(last) { verdict in
          switch verdict {
          case .acked: answerAll()
          case .refused(let why):
            for job in jobs {
              if case .commands = job.work { job.complete(.notReplicated(seq: last, reason: why)) }
            }
          }
        }
      }
    } catch {
      storeFailed(error)
      logger.error(
        "write group failed; nothing of it was committed",
        metadata: ["commands": "\(commands.count)", "error": "\(error)", "code": "\(error.code)"])
      for job in jobs {
        if case .commands = job.work { job.complete(.failed(error)) }
      }
    }
  }
}
