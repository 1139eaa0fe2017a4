import CLMDB
import Dispatch
import Glibc
import Synchronization
import TallyCore
import TallyTestSupport
import Testing

@testable import TallyStore

private func storageFixture(_ ledger: Ledger) throws {
  try applyAll(
    ledger,
    [
      partner("acme", name: "Acme"),
      asset("TOKEN", scale: 6),
      open("cash"), open("wallet", normal: .credit, noOverdraft: true, partner: "acme"),
      post("fund", [debit("cash", 900), credit("wallet", 900)], ref: "R", valueDate: 19000),
      hold("h", [debit("wallet", 100), credit("cash", 100)], deadline: t0 + 60 * oneSecond),
      hold("h2", [debit("wallet", 10), credit("cash", 10)]),
      capture("h2", .uniform(4)),
    ])
}

private func expectStoreError(
  _ expected: StoreError, sourceLocation: SourceLocation = #_sourceLocation,
  _ body: () throws -> Void
) {
  do {
    try body()
    Issue.record("expected \(expected), nothing thrown", sourceLocation: sourceLocation)
  } catch {
    #expect(error as? StoreError == expected, "\(error)", sourceLocation: sourceLocation)
  }
}

@Suite("Storage")
struct StorageTests {
  @Test("Closing and reopening keeps the log, head, accounts, holds and ids; writing continues")
  func reopenKeepsEverything() throws {
    try withTempDir { dir in
      var before: Snapshot?
      var holdBefore: HoldRecord?
      do {
        let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
        try storageFixture(ledger)
        before = try snapshot(ledger)
        holdBefore = try ledger.hold("h")
      }
      let ledger = try Ledger(path: dir.ledgerPath)
      #expect(try snapshot(ledger) == before)
      #expect(ledger.head == before?.head)
      #expect(try ledger.hold("h") == holdBefore)
      #expect(try ledger.idRecord("fund")?.kind == .entry)
      #expect(try ledger.partners().map(\.id) == ["acme", "platform"])
      #expect(try ledger.assets().map(\.code) == ["TOKEN"])
      // The next event continues the seq and the chain; the no_overdraft rule still holds.
      let seq = try expectApplied(ledger, post("more", [debit("cash", 1), credit("wallet", 1)]))
      #expect(seq == (before?.head.seq ?? 0) + 1)
      try expectRejected(
        ledger, post("over", [debit("wallet", 2000), credit("cash", 2000)]),
        code: .insufficientFunds)
      // Expiry still finds the hold through the deadline index after reopening.
      #expect(
        try ledger.run(.expireHolds(asOfNanos: t0 + 60 * oneSecond))
          == .applied(
            firstSeq: seq + 1, count: 1))
      // Timestamps keep increasing across the reopen even if the clock went back.
      try expectApplied(ledger, post("late", [debit("cash", 1), credit("wallet", 1)]), now: 0)
      let last = try ledger.log(fromSeq: ledger.head.seq - 1, limit: 2)
      try #require(last.count == 2)
      #expect(last[1].event.timestampNanos == last[0].event.timestampNanos + 1)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("create makes a missing data directory, or uses an existing empty one")
  func createDirectories() throws {
    try withTempDir { dir in
      do { _ = try Ledger.create(at: dir.path, now: t0) }
      #expect(try Ledger(path: dir.path).head.seq == 1)
      let deep = dir.path + "/no/such/parent"
      do {
        _ = try Ledger.create(at: deep, now: t0)
        Issue.record("created under a missing parent")
      } catch {
        guard case .io = error as? StoreError else {
          Issue.record("expected io, got \(error)")
          return
        }
      }
    }
  }

  @Test("Opening a missing or uninitialised directory is StoreError.missing")
  func missingDirectory() throws {
    try withTempDir { dir in
      let missing = dir.path + "/nope"
      expectStoreError(.missing(missing)) { _ = try Ledger(path: missing) }
      expectStoreError(.missing(missing)) { _ = try Ledger(path: missing, mode: .readOnly) }
      // An existing but empty directory is not initialised either.
      expectStoreError(.missing(dir.path)) { _ = try Ledger(path: dir.path) }
      #expect(StoreError.missing(missing).code == "NOT_INITIALIZED")
    }
  }

  @Test("Creating over an initialised directory is StoreError.alreadyInitialized")
  func createTwice() throws {
    try withTempDir { dir in
      do { _ = try Ledger.create(at: dir.ledgerPath, now: t0) }
      expectStoreError(.alreadyInitialized(dir.ledgerPath)) {
        _ = try Ledger.create(at: dir.ledgerPath, now: t0)
      }
    }
  }

  @Test("A second writer on the same directory is StoreError.locked until the first closes")
  func secondWriterIsLocked() throws {
    try withTempDir { dir in
      do {
        let first = try Ledger.create(at: dir.ledgerPath, now: t0)
        do throws(StoreError) {
          _ = try Ledger(path: dir.ledgerPath, mode: .readWrite)
          Issue.record("a second writer opened")
        } catch {
          guard case .locked(let message) = error else {
            Issue.record("expected locked, got \(error)")
            return
          }
          #expect(message.contains("pid \(getpid())"))
          #expect(error.code == "LOCKED")
        }
        // The first writer is unaffected.
        try expectApplied(first, open("a"))
      }
      // Once the first writer is gone, a new one may open.
      let second = try Ledger(path: dir.ledgerPath, mode: .readWrite)
      #expect(try second.account("a") != nil)
    }
  }

  @Test("A read-only ledger opens while a writer holds the lock and sees its commits")
  func readOnlyBesideWriter() throws {
    try withTempDir { dir in
      let writer = try Ledger.create(at: dir.ledgerPath, now: t0)
      try storageFixture(writer)
      let reader = try Ledger(path: dir.ledgerPath, mode: .readOnly)
      #expect(reader.readOnly)
      #expect(try reader.currentHead() == writer.head)
      #expect(try reader.allAccounts() == writer.allAccounts())
      try expectApplied(writer, post("later", [debit("cash", 7), credit("wallet", 7)]))
      #expect(try reader.currentHead() == writer.head)
      #expect(try reader.balances("wallet") == writer.balances("wallet"))
      #expect(try reader.verify().ok)
    }
  }

  @Test("A directory of another format version is StoreError.formatVersion")
  func formatVersionMismatch() throws {
    try withTempDir { dir in
      do {
        let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
        try tamper(ledger) { t, dbs in
          var v = UInt32(99).bigEndian
          try withUnsafeBytes(of: &v) { try t.put(dbs.meta, Ledger.metaKey("format"), $0) }
        }
      }
      expectStoreError(.formatVersion(found: 99, expected: Ledger.formatVersion)) {
        _ = try Ledger(path: dir.ledgerPath)
      }
      expectStoreError(.formatVersion(found: 99, expected: Ledger.formatVersion)) {
        _ = try Ledger(path: dir.ledgerPath, mode: .readOnly)
      }
    }
  }

  @Test("stats counts the rows of every database")
  func statsCounts() throws {
    try withLedger { ledger in
      try storageFixture(ledger)
      let s = try ledger.stats()
      let counts = Dictionary(uniqueKeysWithValues: s.counts.map { ($0.name, $0.entries) })
      let head = ledger.head.seq
      #expect(s.head == ledger.head)
      #expect(s.formatVersion == Ledger.formatVersion)
      #expect(counts["log"] == Int(head))
      #expect(counts["hashes"] == Int(head))
      #expect(counts["partners"] == 2)
      #expect(counts["assets"] == 1)
      #expect(counts["accounts"] == 2)
      #expect(counts["balances"] == nil, "retired: balances are the last history rows")
      #expect(counts["ids"] == 3)  // fund, h, h2
      #expect(counts["holds"] == 2)
      #expect(counts["deadlines"] == 1)  // only the pending hold with a deadline
      // history: fund (2), h (2), h2 (2), capture (2)
      #expect(counts["history"] == 8)
      #expect(s.mapBytes >= s.usedBytes)
      #expect(s.mapBytes == 64 << 20)
    }
  }

  @Test("Writing past the initial 64 MiB map grows it without an error")
  func mapGrows() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)])
      // A reader opened before the growth must adopt the new map size (MDB_MAP_RESIZED).
      let reader = try Ledger(path: ledger.path, mode: .readOnly)
      let initial = try ledger.stats().mapBytes
      #expect(initial == 64 << 20)
      let md = meta(("note", String(repeating: "m", count: 400)), ("source", "map-growth-test"))
      let batches = 16
      let perBatch = 5000
      for b in 0..<batches {
        let commands = (0..<perBatch).map { i in
          post("g-\(b)-\(i)", [debit("a", 1), credit("b", 1)], metadata: md)
        }
        let out = try ledger.apply(commands, now: t0 + Int64(b) * oneSecond)
        #expect(out.count == perBatch)
        #expect(out.allSatisfy { if case .applied = $0 { true } else { false } })
        #expect(out.last == .applied(firstSeq: ledger.head.seq, count: 1))
      }
      let stats = try ledger.stats()
      #expect(stats.mapBytes > initial)
      #expect(stats.usedBytes > initial)
      #expect(try ledger.balances("a").postedDebits == Int128(batches * perBatch))
      #expect(ledger.head.seq == UInt64(batches * perBatch) + 3)
      #expect(try reader.currentHead() == ledger.head)
      #expect(try reader.balances("b") == ledger.balances("b"))
    }
  }

  @Test("Past 60 % of the map a write grows it only when nothing reads, and never waits for it")
  func mapGrowsEarlyWhenNothingReads() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)])
      let md = meta(("note", String(repeating: "m", count: 400)), ("source", "early-growth"))
      var n = 0
      func batch(_ count: Int) throws {
        let commands = (0..<count).map { _ in
          n += 1
          return post("e-\(n)", [debit("a", 1), credit("b", 1)], metadata: md)
        }
        _ = try ledger.apply(commands, now: t0 + Int64(n))
      }
      // Fill to just past 60 % of the initial map (the check runs before each write).
      let initial = try ledger.stats().mapBytes
      for _ in 0..<400 {
        let s = try ledger.stats()
        if s.usedBytes * 5 >= s.mapBytes * 3 { break }
        try batch(500)
      }
      let filled = try ledger.stats()
      #expect(filled.mapBytes == initial)
      #expect(
        filled.usedBytes * 5 >= filled.mapBytes * 3 && filled.usedBytes * 5 < filled.mapBytes * 4)

      // A read in flight on another thread: the write neither grows the map nor waits.
      let holding = DispatchSemaphore(value: 0)
      let release = DispatchSemaphore(value: 0)
      let done = DispatchSemaphore(value: 0)
      let released = ReleasedFlag()
      let reader = ledger.reader
      DispatchQueue.global().async {
        _ = try? reader.read(waitDurable: false) { _ in
          holding.signal()
          // Bounded: a write that waited for this read would be let go after 20 s (and the
          // expectations below would then fail).
          _ = release.wait(timeout: .now() + 20)
          released.value.store(true, ordering: .releasing)
        }
        done.signal()
      }
      holding.wait()
      try batch(10)
      let waited = released.value.load(ordering: .acquiring)
      #expect(!waited, "the write waited for the read")
      #expect(try ledger.stats().mapBytes == initial)
      release.signal()
      done.wait()

      // Nothing reads now: the next write grows the map.
      try batch(10)
      #expect(try ledger.stats().mapBytes > initial)
      #expect(try ledger.balances("a").postedDebits == Int128(n))
    }
  }
}

/// Set by the reading thread once its read ended.
private final class ReleasedFlag: Sendable {
  let value = Atomic<Bool>(false)
}
