import Dispatch
import Glibc
import Synchronization
import TallyCore
import Testing

@testable import TallyServer

/// A job of `commands` commands (each closing an account; the queue never looks inside).
func job(_ commands: Int, _ tag: String = "") -> WriteJob {
  WriteJob(
    work: .commands(Array(repeating: .closeAccount(name: tag), count: commands), nil),
    complete: { _ in })
}

/// A key revocation job: weight 1, and its tag survives the queue for order checks.
func keyJob(_ tag: String) -> WriteJob {
  WriteJob(work: .keyRevoke(tag), complete: { _ in })
}

func tag(_ j: WriteJob) -> String? {
  switch j.work {
  case .keyRevoke(let t): t
  case .commands(let c, _):
    if case .closeAccount(let t)? = c.first { t } else { nil }
  case .keyCreate, .keepCheckpoint, .reconImport, .replicate: nil
  }
}

/// Counts calls from any thread.
final class Calls: Sendable {
  let count = Atomic<Int>(0)
  var value: Int { count.load(ordering: .relaxed) }
  func callback() -> @Sendable () -> Void { { self.count.add(1, ordering: .relaxed) } }
}

@Suite("WriteQueue")
struct WriteQueueTests {
  @Test("weight is counted in commands; a key operation or an empty job counts one")
  func weights() {
    #expect(job(7).weight == 7)
    #expect(job(0).weight == 1)
    #expect(keyJob("k").weight == 1)
    #expect(
      WriteJob(work: .keyCreate(role: .ops, partner: nil, grants: []), complete: { _ in })
        .weight == 1)
  }

  @Test("the queue fills to its capacity in commands, then answers full")
  func capacityInCommands() {
    let q = WriteQueue(capacity: 10)
    #expect(q.tryPush(job(3)) == .queued)
    #expect(q.tryPush(job(3)) == .queued)
    #expect(q.tryPush(job(3)) == .queued)
    #expect(q.depth == 9)
    // 9 + 2 > 10: refused whole, nothing of it queued.
    #expect(q.tryPush(job(2)) == .full)
    #expect(q.depth == 9)
    #expect(q.tryPush(job(1)) == .queued)
    #expect(q.depth == 10)
    #expect(q.tryPush(keyJob("k")) == .full)
  }

  @Test("a job heavier than the capacity is admitted into an empty queue only")
  func heavyJobIntoEmptyQueue() {
    let q = WriteQueue(capacity: 4)
    #expect(q.tryPush(job(10)) == .queued)
    #expect(q.depth == 10)
    #expect(q.tryPush(job(1)) == .full)
    _ = q.drain(maxWeight: 100)
    #expect(q.tryPush(job(1)) == .queued)
    #expect(q.tryPush(job(10)) == .full)
  }

  @Test("drain takes jobs in order up to the group limit, always at least one")
  func drainRespectsGroupLimit() throws {
    let q = WriteQueue(capacity: 100)
    for (i, w) in [2, 2, 2, 9, 1].enumerated() { _ = q.tryPush(job(w, "j\(i)")) }
    let first = try #require(q.drain(maxWeight: 5))
    #expect(first.map(tag) == ["j0", "j1"])
    #expect(q.depth == 12)
    // The next job alone (9) is over the limit: it is still taken, by itself.
    let second = try #require(q.drain(maxWeight: 5))
    #expect(second.map(tag) == ["j2"])
    let third = try #require(q.drain(maxWeight: 5))
    #expect(third.map(tag) == ["j3"])
    let fourth = try #require(q.drain(maxWeight: 5))
    #expect(fourth.map(tag) == ["j4"])
    #expect(q.depth == 0)
  }

  @Test("FIFO order holds across many pushes and drains (past the internal compaction)")
  func fifoAcrossCompaction() throws {
    let q = WriteQueue(capacity: 10_000)
    var next = 0
    var seen = [String]()
    for round in 0..<5 {
      for _ in 0..<1500 {
        #expect(q.tryPush(keyJob(String(next))) == .queued)
        next += 1
      }
      // Drain unevenly, leaving some behind, so the head moves past 1024 with jobs queued.
      while q.depth > round * 10 {
        seen += try #require(q.drain(maxWeight: 7)).compactMap(tag)
      }
    }
    while q.depth > 0 { seen += try #require(q.drain(maxWeight: 1000)).compactMap(tag) }
    #expect(seen == (0..<next).map(String.init))
  }

  @Test("notifyWhenSpace waits for the next drain, then calls once")
  func notifyAfterDrain() {
    let q = WriteQueue(capacity: 2)
    _ = q.tryPush(job(2))
    let calls = Calls()
    q.notifyWhenSpace(calls.callback())
    #expect(calls.value == 0)
    _ = q.drain(maxWeight: 10)
    #expect(calls.value == 1)
    // Called once only: a later drain does not call it again.
    _ = q.tryPush(job(1))
    _ = q.drain(maxWeight: 10)
    #expect(calls.value == 1)
  }

  @Test("notifyWhenSpace on an empty or closed queue calls at once")
  func notifyImmediately() {
    let q = WriteQueue(capacity: 2)
    let calls = Calls()
    q.notifyWhenSpace(calls.callback())
    #expect(calls.value == 1)
    _ = q.tryPush(job(1))
    q.close()
    q.notifyWhenSpace(calls.callback())
    #expect(calls.value == 2)
  }

  @Test("close wakes every waiter")
  func closeWakesWaiters() {
    let q = WriteQueue(capacity: 1)
    _ = q.tryPush(job(1))
    let calls = Calls()
    for _ in 0..<3 { q.notifyWhenSpace(calls.callback()) }
    #expect(calls.value == 0)
    q.close()
    #expect(calls.value == 3)
  }

  @Test("after close: pushes are refused, queued jobs still drain, then drain returns nil")
  func closeDrainsThenNil() throws {
    let q = WriteQueue(capacity: 10)
    _ = q.tryPush(job(1, "a"))
    _ = q.tryPush(job(1, "b"))
    q.close()
    #expect(q.tryPush(job(1)) == .closed)
    #expect(try #require(q.drain(maxWeight: 10)).map(tag) == ["a", "b"])
    #expect(q.drain(maxWeight: 10) == nil)
  }

  @Test("drain blocks until a job is pushed, and until close when none comes")
  func drainBlocks() {
    let q = WriteQueue(capacity: 10)
    let got = Mutex<[String?]?>(nil)
    let done = DispatchSemaphore(value: 0)
    // A GCD thread, not the Swift concurrency pool: drain blocks its thread.
    DispatchQueue.global().async {
      let jobs = q.drain(maxWeight: 10)
      got.withLock { $0 = jobs?.map(tag) }
      done.signal()
    }
    usleep(50_000)
    #expect(got.withLock { $0 } == nil, "drain returned from an empty queue")
    _ = q.tryPush(job(1, "x"))
    #expect(done.wait(timeout: .now() + 10) == .success)
    #expect(got.withLock { $0 } == ["x"])

    let ended = DispatchSemaphore(value: 0)
    let result = Mutex<Bool?>(nil)
    DispatchQueue.global().async {
      let jobs = q.drain(maxWeight: 10)
      result.withLock { $0 = jobs == nil }
      ended.signal()
    }
    usleep(50_000)
    #expect(result.withLock { $0 } == nil)
    q.close()
    #expect(ended.wait(timeout: .now() + 10) == .success)
    #expect(result.withLock { $0 } == true)
  }
}
