import Glibc
import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

@testable import TallyStore

enum IdTamper: String, CaseIterable, Sendable { case deleted, kindChanged, seqChanged }

/// Appends `body` as the next event with correct hashes and head, without touching the
/// projections (a writer that bypassed the engine, or a forger who recomputed the chain).
func appendForgedEvent(_ ledger: Ledger, _ body: EventBody) throws -> UInt64 {
  let head = try ledger.currentHead()
  let event = Event(seq: head.seq + 1, timestampNanos: head.timestampNanos + 1, body: body)
  let bytes = EventCodec.encode(event)
  let hasher = SHA256Hasher()
  let leaf = hasher.leaf(bytes)
  let chain = hasher.chain(head.chain, leaf)
  try tamper(ledger) { t, dbs in
    try putValue(t, dbs.log, u64: event.seq, bytes)
    try putValue(t, dbs.hashes, u64: event.seq, leaf.bytes + chain.bytes)
    try ledger.writeHead(
      t, LogHead(seq: event.seq, timestampNanos: event.timestampNanos, chain: chain),
      accounts: nil)
  }
  // The forged event is in the journal too: the log itself holds it.
  var w = ByteWriter()
  JournalFormat.frame(
    &w, seq: event.seq, syncedThrough: head.seq, leaf: leaf, chain: chain, event: bytes)
  let journal = try #require(ledger.journal)
  try withBytes(w.bytes) { (b) throws(StoreError) in
    try journal.append(
      b, first: event.seq, last: event.seq, chainBefore: head.chain, chainAfter: chain)
  }
  try journal.sync()
  return event.seq
}

/// verify must tell a damaged projection from a damaged log, and survive any stored bytes.
@Suite("verify robustness")
struct VerifyRobustnessTests {
  /// Regression: the replay once resolved reversals through the *stored* `ids` records, so a
  /// damaged id record made the replay of a valid log fail (blaming the log). The replay
  /// now resolves ids from the log itself; a damaged record is a projection problem that
  /// `rebuild` repairs.
  @Test(
    "A damaged id record of a reversed entry is a projection problem, not a log replay failure",
    .bug(id: "verify-replay-reads-stored-ids", "replay trusts the stored ids projection"),
    arguments: IdTamper.allCases)
  func damagedIdOfReversedEntry(_ how: IdTamper) throws {
    try withLedger { ledger in
      try applyAll(
        ledger,
        [
          open("x"), open("y", normal: .credit),
          post("e", [debit("x", 5), credit("y", 5)]),
          reverse("e-rev", of: "e"),
        ])
      try tamper(ledger) { t, dbs in
        var rec = try Records.decodeId(#require(try t.get(dbs.ids, string: "e")))
        switch how {
        case .deleted:
          try Array("e".utf8).withUnsafeBytes { try t.delete(dbs.ids, $0) }
          return
        case .kindChanged: rec.kind = .hold
        case .seqChanged: rec.seq += 1
        }
        try t.put(dbs.ids, string: "e", Records.encode(rec))
      }
      let report = try ledger.verify()
      #expect(!report.ok)
      // The log is intact: the problem is in the ids projection, which rebuild repairs.
      #expect(report.problems.first?.kind == .projection, "\(report.problems)")
      #expect(report.problems.allSatisfy { $0.kind == .projection }, "\(report.problems)")
      _ = try ledger.rebuild()
      #expect(try ledger.verify().ok)
      #expect(try ledger.idRecord("e")?.reversedBySeq == ledger.head.seq)
    }
  }

  @Test("An event appended behind the engine's back is a projection problem; rebuild adopts it")
  func staleProjections() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("x"), open("y", normal: .credit)])
      let seq = try appendForgedEvent(
        ledger,
        .entryPosted(
          EntryPosted(
            id: "late",
            legs: [
              Leg(account: "x", side: .debit, amountMinor: 9),
              Leg(account: "y", side: .credit, amountMinor: 9),
            ])))
      let report = try ledger.verify()
      #expect(report.events == seq)
      #expect(!report.problems.isEmpty)
      #expect(report.problems.allSatisfy { $0.kind == .projection }, "\(report.problems)")
      #expect(Set(report.problems.compactMap(\.account)) == ["x", "y"])
      #expect(try ledger.rebuild() == seq)
      #expect(try ledger.verify().ok)
      #expect(try ledger.balances("x").postedDebits == 9)
    }
  }

  /// Regression: a hash-valid log whose event reuses an entry id once replayed without
  /// error (verify then suggested `rebuild`, which refused the log). It is a replay problem
  /// at the seq of the repeat.
  @Test(
    "A log event that reuses an entry id is a replay problem at its seq",
    .bug(id: "verify-replay-accepts-repeated-ids", "replay no longer detects repeated ids"))
  func repeatedIdInTheLog() throws {
    try withLedger { ledger in
      try applyAll(
        ledger,
        [open("x"), open("y", normal: .credit), post("e", [debit("x", 5), credit("y", 5)])])
      let seq = try appendForgedEvent(
        ledger,
        .entryPosted(
          EntryPosted(
            id: "e",
            legs: [
              Leg(account: "x", side: .debit, amountMinor: 1),
              Leg(account: "y", side: .credit, amountMinor: 1),
            ])))
      let report = try ledger.verify()
      #expect(!report.ok)
      #expect(
        report.problems.contains { $0.seq == seq && ($0.kind == .replay || $0.kind == .log) },
        "\(report.problems)")
      // rebuild refuses such a log.
      #expect(throws: StoreError.self) { try ledger.rebuild() }
    }
  }

  /// Regression: `storedDigests` once grew an array to the account number found in a
  /// history key, so one flipped bit made verify allocate gigabytes or crash. Run in a child
  /// process with its address space capped.
  @Test(
    "A history row under a huge account number is reported without exhausting memory",
    .bug(id: "verify-history-number-alloc", "verify allocates per account number in a key"))
  func hugeAccountNumberInHistory() async throws {
    // The child may crash: the parent owns the directory and removes it.
    let dir = try TempDir()
    defer { dir.remove() }
    let path = dir.ledgerPath
    await #expect(processExitsWith: .success) { [path = path as String] in
      var code: Int32 = 2
      do {
        let ledger = try Ledger.create(at: path, now: t0)
        try applyAll(ledger, [open("x"), open("y", normal: .credit)])
        try tamper(ledger) { t, dbs in
          var w = ByteWriter()
          Records.write(.zero, &w)
          let key = historyKey(1 << 40, 3)
          try key.withUnsafeBytes { k in
            try w.bytes.withUnsafeBytes { try t.put(dbs.history, k, $0) }
          }
        }
        // At most 1 GiB more address space than now: plenty for verifying two accounts.
        capAddressSpace(extra: 1 << 30)
        let report = try ledger.verify()
        code = report.problems.first?.kind == .projection ? 0 : 1
      } catch {
        code = 2
      }
      exit(code)
    }
  }
}

/// Caps this process's address space at its current size plus `extra` bytes.
func capAddressSpace(extra: Int) {
  var buf = [UInt8](repeating: 0, count: 128)
  let fd = Glibc.open("/proc/self/statm", O_RDONLY)
  let n = read(fd, &buf, 127)
  close(fd)
  let text = String(decoding: buf.prefix(max(0, n)), as: UTF8.self)
  let pages = Int(text.split(separator: " ").first ?? "0") ?? 0
  var limit = rlimit(rlim_cur: rlim_t(pages * Int(getpagesize()) + extra), rlim_max: rlim_t.max)
  setrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit)
}
