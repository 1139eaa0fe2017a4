import Foundation
import Glibc
import Synchronization
import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

@testable import TallyStore

// A write refused for want of space or map leaves the ledger exactly as it was, and the
// next write after the condition clears succeeds (docs/FORMAT.md, "A write that fails").

/// A file layer whose disk can be made full. `.nextWrite` puts down the first half of the
/// next write and fails it with ENOSPC (the worst a real full disk does to one write), then
/// is roomy again; `.everyWrite` does that to every write; `.newFiles` refuses only what needs
/// new space: creating a file and writing a new segment's header.
private final class FillableDisk: JournalFiles, @unchecked Sendable {
  enum Mode { case roomy, nextWrite, everyWrite, newFiles }
  let mode = Mutex(Mode.roomy)
  let refusals = Atomic<Int>(0)

  private func refuse() -> StoreError {
    refusals.add(1, ordering: .relaxed)
    return .noSpace("journal write failed: No space left on device (made full for the test)")
  }

  override func open(_ path: String, create: Bool) throws(StoreError) -> Int32 {
    if create && mode.withLock({ $0 }) != .roomy { throw refuse() }
    return try super.open(path, create: create)
  }

  override func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int)
    throws(StoreError)
  {
    switch mode.withLock({ $0 }) {
    case .roomy:
      try super.write(fd, bytes, at: offset)
    case .newFiles:
      if offset == 0 { throw refuse() }
      try super.write(fd, bytes, at: offset)
    case .nextWrite, .everyWrite:
      mode.withLock { if $0 == .nextWrite { $0 = .roomy } }
      let half = bytes.count / 2
      if half > 0 {
        try super.write(fd, UnsafeRawBufferPointer(rebasing: bytes[0..<half]), at: offset)
      }
      throw refuse()
    }
  }
}

private func segments(_ path: String) throws -> [String] {
  try #require(try directoryNames(path + "/journal")).filter { $0.hasSuffix(".seg") }.sorted()
}

/// The bytes of every segment (not the prepared next one, which a thread may be writing).
private func journalFiles(_ path: String) throws -> [String: [UInt8]] {
  var out = [String: [UInt8]]()
  for name in try segments(path) {
    out[name] = try readWholeFile(path + "/journal/" + name)
  }
  return out
}

private func transfers(_ prefix: String, _ n: Int) -> [Command] {
  (1...n).map { post("\(prefix)\($0)", [debit("x", 5), credit("y", 5)]) }
}

/// Runs `body`, which must throw `expected`'s case.
private func expectRefused(
  _ expected: String, sourceLocation: SourceLocation = #_sourceLocation,
  _ body: () throws -> Void
) {
  do {
    try body()
    Issue.record("the write was not refused", sourceLocation: sourceLocation)
  } catch let e as StoreError {
    #expect(e.code == expected, "\(e)", sourceLocation: sourceLocation)
  } catch {
    Issue.record("unexpected \(error)", sourceLocation: sourceLocation)
  }
}

@Suite("out of space")
struct OutOfSpaceTests {
  @Test("A group whose journal write runs out of space leaves no byte; the next succeeds")
  func refusedAppendLeavesTheJournalAsItWas() throws {
    try withTempDir { dir in
      let disk = FillableDisk()
      var options = LedgerOptions()
      options.files = disk
      options.segmentBytes = 1 << 20
      do {
        let ledger = try Ledger.create(at: dir.ledgerPath, now: t0, options: options)
        try applyAll(ledger, [open("x"), open("y", normal: .credit)] + transfers("a", 10))
        let head = ledger.head
        // The next segment's file is made ahead on a thread of the journal's own: let it be
        // made first, or (on a loaded machine) its creation can take the refusal meant for
        // the group's write.
        let preparer = try #require(ledger.journal).preparer
        var waited = 0
        while preparer.readyCapacity == nil && waited < 2_000 {
          usleep(5_000)
          waited += 1
        }
        #expect(preparer.readyCapacity != nil, "the next segment was prepared")
        let before = try journalFiles(dir.ledgerPath)
        disk.mode.withLock { $0 = .nextWrite }
        expectRefused("NO_SPACE") { _ = try ledger.apply(transfers("b", 5), now: t0) }
        #expect(disk.refusals.load(ordering: .relaxed) == 1)
        #expect(ledger.head == head)
        let journal = try #require(ledger.journal)
        #expect(!journal.isPoisoned)
        // Half of the group was written, then zeroed again: every journal byte as before.
        #expect(try journalFiles(dir.ledgerPath) == before)
        #expect(try ledger.reader.idRecord("b1") == nil)

        let seqs = try applyAll(ledger, transfers("b", 5))
        #expect(seqs.first == head.seq + 1)

        // When even the zeros cannot be written, the journal stops: an I/O error, and every
        // later write refused until a restart.
        disk.mode.withLock { $0 = .everyWrite }
        expectRefused("IO") { _ = try ledger.apply(transfers("c", 5), now: t0) }
        #expect(journal.isPoisoned)
        disk.mode.withLock { $0 = .roomy }
        expectRefused("IO") { _ = try ledger.apply(transfers("c", 5), now: t0) }
      }
      // The open keeps what of the group's records is whole and cuts the rest (a torn tail
      // nothing durable follows): the group's writes are known only now, and the same ids
      // sent again answer each one's outcome exactly once.
      do {
        let ledger = try Ledger(path: dir.ledgerPath, mode: .readWrite, options: options)
        let kept: UInt64 = 3 + 10 + 5
        #expect(ledger.head.seq >= kept && ledger.head.seq <= kept + 5)
        for outcome in try ledger.apply(transfers("c", 5), now: t0) {
          switch outcome {
          case .applied, .duplicate: break
          case .rejected(let r): Issue.record("c rejected: \(r)")
          }
        }
        try ledger.close()
      }
      let reopened = try Ledger(path: dir.ledgerPath, mode: .readOnly)
      #expect(reopened.head.seq == 3 + 10 + 5 + 5)
      let v = try reopened.verify()
      #expect(v.ok, "\(v)")
    }
  }

  @Test("A new segment that cannot be made is removed; the next roll makes it")
  func refusedRollRemovesItsFile() throws {
    try withTempDir { dir in
      let disk = FillableDisk()
      var options = LedgerOptions()
      options.files = disk
      options.segmentBytes = 1 << 20
      var acknowledged = 0
      do {
        let ledger = try Ledger.create(at: dir.ledgerPath, now: t0, options: options)
        try applyAll(ledger, [open("x"), open("y", normal: .credit)])
        disk.mode.withLock { $0 = .newFiles }
        // Posts fill the first segment (no new space needed), then the roll is refused.
        var refused: StoreError?
        var batch = 0
        while refused == nil {
          try #require(batch < 2_000, "the first segment never filled")
          batch += 1
          let head = ledger.head
          do {
            _ = try ledger.apply(transfers("f\(batch)-", 50), now: t0)
            acknowledged += 50
          } catch let e as StoreError {
            refused = e
            #expect(ledger.head == head)
          }
        }
        #expect(refused?.code == "NO_SPACE", "\(String(describing: refused))")
        let journal = try #require(ledger.journal)
        #expect(!journal.isPoisoned)
        #expect(try segments(dir.ledgerPath).count == 1)
        let leftovers = try #require(try directoryNames(dir.ledgerPath + "/journal"))
          .filter { $0.hasSuffix(".tmp") }
        #expect(leftovers == [], "a refused segment's file stayed")

        disk.mode.withLock { $0 = .roomy }
        try applyAll(ledger, transfers("f\(batch)-", 50))
        acknowledged += 50
        #expect(try segments(dir.ledgerPath).count == 2)
        try ledger.close()
      }
      let reopened = try Ledger(path: dir.ledgerPath, mode: .readOnly)
      #expect(reopened.head.seq == UInt64(3 + acknowledged))
      let v = try reopened.verify()
      #expect(v.ok, "\(v)")
    }
  }

  @Test("A map at its limit is MAP_FULL, commits nothing, and a larger limit takes the write")
  func mapAtItsLimit() throws {
    try withTempDir { dir in
      var options = LedgerOptions()
      options.mapBytesMax = 1 << 20
      var acknowledged = 0
      var refusedBatch = 0
      do {
        let ledger = try Ledger.create(at: dir.ledgerPath, now: t0, options: options)
        try applyAll(ledger, [open("x"), open("y", normal: .credit)])
        var refused = false
        while !refused {
          try #require(refusedBatch < 2_000, "the map never filled")
          refusedBatch += 1
          let head = ledger.head
          let journalEnd = try journalFiles(dir.ledgerPath)
          do {
            _ = try ledger.apply(transfers("m\(refusedBatch)-", 50), now: t0)
            acknowledged += 50
          } catch let e as StoreError {
            refused = true
            #expect(e == .mapFull)
            #expect(ledger.head == head)
            #expect(try journalFiles(dir.ledgerPath) == journalEnd)
          }
        }
        #expect(ledger.journal?.isPoisoned == false)
        #expect(ledger.env.info.mapSize == 1 << 20)
        // Reads go on.
        #expect(try ledger.reader.idRecord("m1-1") != nil)
        try ledger.close()
      }
      options.mapBytesMax = 8 << 20
      do {
        let ledger = try Ledger(path: dir.ledgerPath, mode: .readWrite, options: options)
        try applyAll(ledger, transfers("m\(refusedBatch)-", 50))
        acknowledged += 50
        try ledger.close()
      }
      let reopened = try Ledger(path: dir.ledgerPath, mode: .readOnly)
      #expect(reopened.head.seq == UInt64(3 + acknowledged))
      let v = try reopened.verify()
      #expect(v.ok, "\(v)")
    }
  }

  @Test("A read-write open gives every byte of the map disk blocks (no hole to fault on)")
  func mapIsAllocated() throws {
    try withTempDir { dir in
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
      #expect(ledger.mapBlocksAllocated)
      var st = stat()
      try #require(stat(dir.ledgerPath + "/data.mdb", &st) == 0)
      #expect(Int(st.st_size) == ledger.env.info.mapSize)
      // st_blocks counts 512-byte units actually allocated.
      #expect(Int(st.st_blocks) * 512 >= Int(st.st_size))
      try ledger.close()
    }
  }
}
