import CLMDB
import Glibc
import TallyCore
import TallyCrypto

/// One thing `verify` found wrong.
public struct VerifyProblem: Equatable, Sendable, CustomStringConvertible {
  public enum Kind: String, Sendable {
    case log, chain, decode, replay, projection, totals, journal, aux, snapshot
  }
  public var kind: Kind
  /// The first bad seq, when the problem is in the log.
  public var seq: UInt64?
  /// The account whose projection is wrong, when it is one.
  public var account: String?
  public var message: String

  public var description: String {
    var where_ = ""
    if let seq { where_ = "seq \(seq): " }
    if let account { where_ += "account \(account): " }
    return "\(kind.rawValue): \(where_)\(message)"
  }
}

public struct VerifyReport: Sendable {
  public var events: UInt64
  public var head: LogHead
  /// The journal's last good record; past `head` while a server is writing, or after a
  /// crash until the next read-write open replays it.
  public var journalSeq: UInt64 = 0
  /// A torn tail after `journalSeq` (never acknowledged; cut at the next read-write open).
  public var journalTorn: String?
  public var accounts: Int
  public var problems: [VerifyProblem]
  /// Per currency: total posted debits (= credits when ok).
  public var totals: [(currency: String, debits: Int128, credits: Int128)]
  public var ok: Bool { problems.isEmpty }
}

extension Ledger {
  /// Problems listed at most; the first is the one that matters.
  static let verifyProblemsMax = 20

  /// Recomputes every leaf and chain hash from the stored event bytes, checks seq and
  /// timestamp continuity, decodes and replays every event, compares the replayed
  /// projections with the stored ones, and checks debits = credits per currency.
  /// `progress` sees the log walk, the projections and the tree in turn.
  public func verify(progress: ProgressHandler? = nil) throws(StoreError) -> VerifyReport {
    let journal: Journal
    if let j = self.journal {
      journal = j
    } else {
      guard let j = try Journal.load(directory: path + "/journal", files: options.files) else {
        throw .corrupt("\(path)/journal is missing: the log cannot be verified")
      }
      journal = j
    }
    return try reader.read { t in
      var problems = [VerifyProblem]()
      let head = try Self.readHead(t, dbs)
      var mem = MemoryState()
      var stored = StoredDigests()
      var tail = JournalTail()
      let events = try replayLog(
        t, head: head, journal: journal, tail: &tail, into: &mem, problems: &problems,
        stored: &stored, progress)
      if problems.isEmpty {
        try compareProjections(t, mem, stored, &problems, progress)
        if let p = try Tree.verify(t, dbs, SHA256Hasher(), size: head.seq, progress) {
          problems.append(p)
        }
      }
      try verifyAux(t, journal: journal, &problems)
      try verifySnapshots(t, head: head, journal: journal, &problems)
      var totals: [String: (Int128, Int128, Int128, Int128)] = [:]
      for (i, name) in mem.names.enumerated() {
        guard let a = mem.accounts[name] else { continue }
        let b = mem.balanceRows[i].balances
        var t = totals[a.currency] ?? (0, 0, 0, 0)
        t.0 = t.0 &+ b.postedDebits
        t.1 = t.1 &+ b.postedCredits
        t.2 = t.2 &+ b.pendingDebits
        t.3 = t.3 &+ b.pendingCredits
        totals[a.currency] = t
      }
      for (c, t) in totals.sorted(by: { $0.key < $1.key }) {
        if t.0 != t.1 || t.2 != t.3 {
          problems.append(
            VerifyProblem(
              kind: .totals,
              message: "\(c): posted debits \(t.0) != credits \(t.1) "
                + "or pending debits \(t.2) != credits \(t.3)"))
        }
      }
      return VerifyReport(
        events: events, head: head, journalSeq: tail.lastSeq, journalTorn: tail.torn,
        accounts: mem.names.count,
        problems: Array(problems.prefix(Self.verifyProblemsMax)),
        totals: totals.sorted { $0.key < $1.key }.map { ($0.key, $0.value.0, $0.value.1) })
    }
  }

  /// A run of checked, decoded events, or the first problem found in the log.
  struct ReplayChunk: @unchecked Sendable {
    var events: [Event] = []
    var problem: VerifyProblem?
  }

  /// Walks log and hashes in step on a second thread (hash and decode), while this thread
  /// replays the events: the two halves of the work overlap on two cores. Stops at the first
  /// bad event: nothing after it can be trusted.
  func replayLog(
    _ t: Txn, head: LogHead, journal: Journal, tail: inout JournalTail,
    into mem: inout MemoryState, problems: inout [VerifyProblem],
    stored: inout StoredDigests, _ progress: ProgressHandler?
  ) throws -> UInt64 {
    // Replay reads earlier events back (id lookups) in a transaction of this thread's own
    // (the producer thread uses `t`; a transaction serves one thread at a time). Only seqs
    // the producer has already checked are read.
    let lookup = try env.begin(readOnly: true)
    defer { mdb_txn_abort(lookup) }
    // Sized from the journal (read and checked), never from a count in the map alone.
    mem.idSeqs.reserve(Int(min(head.seq, journal.lastSeq, 1 << 26)))
    let log = dbs.log
    mem.logEvent = { seq in
      guard let v = try Txn(txn: lookup).get(log, u64: seq) else {
        throw ApplyError(seq: seq, reason: "log has no event at seq \(seq)")
      }
      return try EventCodec.decode(v)
    }
    let channel = BoundedChannel<ReplayChunk>(capacity: 8)
    nonisolated(unsafe) let txn = t
    nonisolated(unsafe) var producerError: (any Error)?
    nonisolated(unsafe) var digests = StoredDigests()
    nonisolated(unsafe) var journalTail = JournalTail()
    let dbs = self.dbs
    let producer = WorkerThread(name: "tally-verify-rd") {
      do {
        journalTail = try Self.checkLog(txn, dbs, head: head, journal: journal, channel)
        channel.close()
        // While the replay finishes, fold the stored ids and history for the comparison.
        digests = try Self.storedDigests(txn, dbs)
      } catch {
        producerError = error
        channel.close()
      }
    }
    var seq: UInt64 = 0
    var failed = false
    progress?(.verifyLog, 0, head.seq)
    // Bounded: the producer sends at most head.seq / chunk size + 1 chunks, then closes.
    while let chunk = channel.receive() {
      if failed { continue }  // drain so the producer can finish
      for event in chunk.events {
        do {
          try Machine.apply(event, &mem)
        } catch {
          problems.append(
            VerifyProblem(kind: .replay, seq: event.seq, message: "replay failed: \(error)"))
          failed = true
          break
        }
        seq = event.seq
      }
      if let p = chunk.problem {
        problems.append(p)
        failed = true
      }
      progress?(.verifyLog, seq, head.seq)
    }
    producer.join()
    if let producerError { throw producerError }
    stored = digests
    tail = journalTail
    return seq
  }

  /// Folds of the stored `ids` and `history` databases, computed beside the replay.
  struct StoredDigests {
    var ids = IdsDigest()
    var idsUndecodable: [String] = []
    /// Per account number - 1: rows and digest, as `MemoryState.historyRows`.
    var history: [(count: UInt64, digest: UInt64)] = []
    var historyProblems: [String] = []
  }

  static func storedDigests(_ t: Txn, _ dbs: DBs) throws -> StoredDigests {
    var d = StoredDigests()
    // Rows are folded per account number up to the stored account count; a row beyond it
    // is reported, never used to size anything.
    let accounts = try readAccountCount(t, dbs)
    try Self.scan(t, dbs.ids) { k, v in
      let id = String(decoding: k, as: UTF8.self)
      guard let r = try? Records.decodeId(v) else {
        if d.idsUndecodable.count < 5 { d.idsUndecodable.append(id) }
        return
      }
      d.ids.add(id, r)
      d.ids.count += 1
    }
    try Self.scan(t, dbs.history) { k, v in
      guard k.count == 16 else {
        d.historyProblems.append("history key of \(k.count) bytes")
        return
      }
      let number = UInt64(bigEndian: k.loadUnaligned(as: UInt64.self))
      let seq = UInt64(bigEndian: k.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
      guard number >= 1, number <= accounts, let b = try? Records.decodeHistory(v) else {
        if d.historyProblems.count < 5 {
          d.historyProblems.append(
            "history row of account number \(number) at seq \(seq) is invalid")
        }
        return
      }
      let n = Int(number)
      while d.history.count < n { d.history.append((0, MemoryState.digestSeed)) }
      d.history[n - 1].count += 1
      d.history[n - 1].digest = MemoryState.digest(d.history[n - 1].digest, seq: seq, b)
    }
    return d
  }

  static let replayChunkEvents = 4096

  /// Where the journal ended when verify read it.
  struct JournalTail {
    var lastSeq: UInt64 = 0
    var torn: String?
  }

  private struct Stop: Error {}

  /// Producer half of `replayLog`: reads the journal (every frame, seq, leaf and chain hash),
  /// checks that the LMDB log and hashes hold exactly its records up to the snapshot's head,
  /// decodes and checks timestamps, and sends the events up to the head to be replayed.
  static func checkLog(
    _ t: Txn, _ dbs: DBs, head: LogHead, journal: Journal,
    _ out: BoundedChannel<ReplayChunk>
  ) throws -> JournalTail {
    let logCursor = try t.cursor(dbs.log)
    defer { logCursor.close() }
    let hashCursor = try t.cursor(dbs.hashes)
    defer { hashCursor.close() }
    var lastTs = Int64.min
    var row = try logCursor.get(MDB_FIRST)
    var hrow = try hashCursor.get(MDB_FIRST)
    var chunk = ReplayChunk()
    chunk.events.reserveCapacity(replayChunkEvents)
    var tail = JournalTail()
    var failed = false
    var chainAtHead = Hash32.zero
    func fail(_ kind: VerifyProblem.Kind, _ s: UInt64, _ m: String) {
      chunk.problem = VerifyProblem(kind: kind, seq: s, message: m)
      out.send(chunk)
      failed = true
    }
    let result: Journal.ScanResult
    do {
      result = try journal.scan { r in
        tail.lastSeq = r.seq
        if r.seq == head.seq { chainAtHead = r.chain }
        // Past the snapshot: a server is appending, or a crash left records to replay.
        if r.seq > head.seq { return }
        guard let (k, v) = row, k.count == 8,
          UInt64(bigEndian: k.loadUnaligned(as: UInt64.self)) == r.seq
        else {
          fail(.log, r.seq, "missing from the log table (the journal has it)")
          throw Stop()
        }
        if v.count != r.event.count
          || (v.count > 0 && memcmp(v.baseAddress!, r.event.baseAddress!, v.count) != 0)
        {
          fail(.log, r.seq, "the log table's event differs from the journal's (log altered)")
          throw Stop()
        }
        guard let (hk, hv) = hrow, hk.count == 8,
          UInt64(bigEndian: hk.loadUnaligned(as: UInt64.self)) == r.seq, hv.count == 64
        else {
          fail(.chain, r.seq, "no stored hashes for this seq")
          throw Stop()
        }
        if r.leaf != Hash32(raw: hv)
          || r.chain != Hash32(raw: UnsafeRawBufferPointer(rebasing: hv[32..<64]))
        {
          fail(.chain, r.seq, "stored hashes differ from the journal's (hashes altered)")
          throw Stop()
        }
        let event: Event
        do {
          event = try EventCodec.decode(r.event)
        } catch {
          fail(.decode, r.seq, "event does not decode: \(error)")
          throw Stop()
        }
        if event.seq != r.seq {
          fail(.log, r.seq, "event carries seq \(event.seq)")
          throw Stop()
        }
        if event.timestampNanos <= lastTs {
          fail(.log, r.seq, "timestamp \(event.timestampNanos) not after \(lastTs)")
          throw Stop()
        }
        lastTs = event.timestampNanos
        chunk.events.append(event)
        if chunk.events.count == replayChunkEvents {
          out.send(chunk)
          chunk = ReplayChunk()
          chunk.events.reserveCapacity(replayChunkEvents)
        }
        row = try logCursor.get(MDB_NEXT)
        hrow = try hashCursor.get(MDB_NEXT)
      }
    } catch is Stop {
      return tail
    } catch let e as JournalError {
      tail.lastSeq = e.seq - 1
      fail(.journal, e.seq, "\(e.reason) (segment \(e.segment), offset \(e.offset))")
      return tail
    }
    if case .torn(let seq, let segment, let offset, let reason) = result.end {
      tail.torn = "seq \(seq): \(reason) (segment \(segment), offset \(offset))"
    }
    if result.lastSeq < head.seq {
      fail(
        .journal, result.lastSeq + 1,
        "the journal ends at seq \(result.lastSeq) but the projections hold seq \(head.seq)")
      return tail
    }
    if let (k, _) = row {
      let seq = k.count == 8 ? UInt64(bigEndian: k.loadUnaligned(as: UInt64.self)) : 0
      fail(.log, seq, "the log table holds events past its head (seq \(head.seq))")
      return tail
    }
    if hrow != nil {
      fail(.chain, head.seq + 1, "hashes stored past the end of the log")
      return tail
    }
    if chainAtHead != head.chain {
      fail(
        .chain, head.seq,
        "stored head (seq \(head.seq), \(head.chain.hex)) differs from the journal's chain "
          + "there (\(chainAtHead.hex))")
      return tail
    }
    if !failed { out.send(chunk) }
    return tail
  }

  /// Tables `compareProjections` reports progress in: accounts, balances, history, ids,
  /// partners, assets, holds, deadlines, and the reconciliation and partner views.
  static let projectionTables: UInt64 = 9

  func compareProjections(
    _ t: Txn, _ mem: MemoryState, _ stored: StoredDigests, _ problems: inout [VerifyProblem],
    _ progress: ProgressHandler? = nil
  ) throws {
    func bad(_ account: String?, _ m: String) {
      problems.append(VerifyProblem(kind: .projection, account: account, message: m))
    }
    var tablesDone: UInt64 = 0
    func tableDone() {
      tablesDone += 1
      progress?(.verifyProjections, tablesDone, Self.projectionTables)
    }
    progress?(.verifyProjections, 0, Self.projectionTables)
    if try Self.readAccountCount(t, dbs) != mem.accountCount {
      bad(nil, "stored account count differs from replay (\(mem.accountCount))")
    }
    // accounts
    var seen = 0
    try Self.scan(t, dbs.accounts) { k, v in
      let name = String(decoding: k, as: UTF8.self)
      seen += 1
      guard let a = try? Records.decodeAccount(name: name, v) else {
        bad(name, "stored record does not decode")
        return
      }
      if mem.accounts[name] != a { bad(name, "stored record differs from replay") }
    }
    if seen != mem.accounts.count {
      bad(nil, "\(seen) stored accounts, \(mem.accounts.count) in replay")
    }
    tableDone()
    // balances: read from each account's last history row (compared below); the table
    // kept from format 4 must be empty.
    var leftover = 0
    try Self.scan(t, dbs.balances) { _, _ in leftover += 1 }
    if leftover > 0 {
      bad(nil, "\(leftover) rows in balances, which format \(Self.formatVersion) leaves empty")
    }
    tableDone()
    // history
    for p in stored.historyProblems.prefix(5) { bad(nil, p) }
    if stored.history.count > mem.names.count {
      bad(nil, "history rows stored for \(stored.history.count - mem.names.count) unknown accounts")
    }
    for i in mem.historyRows.indices {
      let s: (count: UInt64, digest: UInt64) =
        i < stored.history.count ? stored.history[i] : (0, MemoryState.digestSeed)
      if s != mem.historyRows[i] {
        bad(
          mem.names[i],
          "stored history (\(s.count) rows) differs from replay (\(mem.historyRows[i].count) rows)")
      }
    }
    tableDone()
    // ids
    for id in stored.idsUndecodable { bad(nil, "id \(id): stored record does not decode") }
    if stored.ids.count != mem.idsDigest.count {
      bad(nil, "\(stored.ids.count) stored ids, \(mem.idsDigest.count) in the log")
    } else if stored.ids != mem.idsDigest {
      bad(nil, "stored id records differ from the log (a seq, kind or reversal is wrong)")
    }
    tableDone()
    // partners, assets, holds, deadlines
    seen = 0
    try Self.scan(t, dbs.partners) { k, v in
      seen += 1
      let id = String(decoding: k, as: UTF8.self)
      if (try? Records.decodePartner(id: id, v)) != mem.partners[id] {
        bad(nil, "partner \(id): record differs from replay")
      }
    }
    if seen != mem.partners.count {
      bad(nil, "\(seen) stored partners, \(mem.partners.count) in replay")
    }
    tableDone()
    seen = 0
    try Self.scan(t, dbs.assets) { k, v in
      seen += 1
      let code = String(decoding: k, as: UTF8.self)
      if (try? Records.decodeAsset(code: code, v)) != mem.assets[code] {
        bad(nil, "asset \(code): record differs from replay")
      }
    }
    if seen != mem.assets.count { bad(nil, "\(seen) stored assets, \(mem.assets.count) in replay") }
    tableDone()
    seen = 0
    try Self.scan(t, dbs.holds) { k, v in
      seen += 1
      let id = String(decoding: k, as: UTF8.self)
      if (try? Records.decodeHold(id: id, v)) != mem.holds[id] {
        bad(nil, "hold \(id): record differs from replay")
      }
    }
    if seen != mem.holds.count { bad(nil, "\(seen) stored holds, \(mem.holds.count) in replay") }
    tableDone()
    seen = 0
    try Self.scan(t, dbs.deadlines) { k, v in
      seen += 1
      guard let (d, s) = try? Records.decodeDeadlineKey(k),
        mem.deadlines[MemoryState.DeadlineKey(deadline: d, seq: s)]
          == String(decoding: v, as: UTF8.self)
      else {
        bad(nil, "deadline index entry differs from replay")
        return
      }
    }
    if seen != mem.deadlines.count {
      bad(nil, "\(seen) stored deadlines, \(mem.deadlines.count) in replay")
    }
    tableDone()
    try compareViews(t, mem, &problems)
    tableDone()
  }

  static func scan(
    _ t: Txn, _ dbi: MDB_dbi,
    _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
  ) throws {
    let c = try t.cursor(dbi)
    defer { c.close() }
    var row = try c.get(MDB_FIRST)
    while let (k, v) = row {
      try body(k, v)
      row = try c.get(MDB_NEXT)
    }
  }

  /// Recomputes the log's LMDB rows and every projection from the journal in one write
  /// transaction (all or nothing): empties them, then applies every event through the same
  /// code as the live path. Returns the number of events replayed.
  public func rebuild(progress: ProgressHandler? = nil) throws(StoreError) -> UInt64 {
    precondition(!readOnly, "rebuild on a read-only ledger")
    return try retryingMapFull { () throws(StoreError) in try rebuildOnce(progress) }
  }

  func rebuildOnce(_ progress: ProgressHandler?) throws(StoreError) -> UInt64 {
    guard let journal else { throw .corrupt("rebuild without the journal") }
    let raw = try env.begin(readOnly: false)
    var committed = false
    defer { if !committed { mdb_txn_abort(raw) } }
    let txn = Txn(txn: raw)
    guard let tree = dbs.tree else { throw .corrupt("the tree database is not open") }
    for dbi in [dbs.log, dbs.hashes, tree] + dbs.projections {
      try check(mdb_drop(raw, dbi, 0), "drop")
    }
    let cache = BatchCache(accountCount: 0)
    var state = StoreState(txn: txn, dbs: dbs, cache: cache)
    let target = journal.lastSeq
    var h = LogHead.empty
    progress?(.rebuild, 0, target)
    var frontier = [Hash32](repeating: .zero, count: Tree.levelsMax)
    do {
      _ = try journal.scan(from: 1) { r in
        let event = try EventCodec.decode(r.event)
        guard event.seq == r.seq else {
          throw StoreError.corrupt("journal: seq \(r.seq): the event carries seq \(event.seq)")
        }
        try putLogRecord(
          txn, &frontier, seq: r.seq, Array(r.event), leaf: r.leaf, chain: r.chain,
          after: h)
        try Machine.apply(event, &state)
        h = LogHead(seq: r.seq, timestampNanos: event.timestampNanos, chain: r.chain)
        if h.seq & 0xfff == 0 { progress?(.rebuild, h.seq, target) }
      }
      try state.flush()
    } catch let e as JournalError {
      throw .corrupt(e.description)
    } catch {
      throw Self.storeError(error)
    }
    guard h.seq == journal.lastSeq else {
      throw .corrupt("the journal ends at seq \(journal.lastSeq), its records at \(h.seq)")
    }
    try writeHead(txn, h, accounts: cache.accountCount)
    try withBytes(Records.u64Key(cache.recon.items, cache.recon.matches)) {
      (v) throws(StoreError) in
      try txn.put(dbs.meta, Self.metaKey("recon"), v)
    }
    committed = true  // mdb_txn_commit frees the transaction whether or not it succeeds
    let rc = mdb_txn_commit(raw)
    writerCache.reset(
      accountCount: rc == 0 ? cache.accountCount : accountCount,
      recon: rc == 0 ? cache.recon : reconCounts)
    try check(rc, "commit")
    accountCount = cache.accountCount
    reconCounts = cache.recon
    treeFrontier = frontier
    head = h
    progress?(.rebuild, h.seq, target)
    return h.seq
  }
}
