import CLMDB
import Synchronization
import TallyCore
import TallyCrypto

/// One stored event with its hashes.
public struct LogRecord: Sendable {
  public var event: Event
  public var bytes: [UInt8]
  public var leaf: Hash32
  public var chain: Hash32
}

/// Account records kept between `streamRecords` calls of one reader (not thread-safe: one
/// caller at a time; bounded like the writer's cache).
public final class StreamReadCache: @unchecked Sendable {
  let accounts = BatchCache(accountCount: 0)
  public init() {}
}

/// One event as the change stream carries it (docs/REPLICATION.md).
public struct StreamRecord: Sendable {
  public var seq: UInt64
  /// The canonical event bytes (docs/FORMAT.md), as in the journal and exports.
  public var bytes: [UInt8]
  public var leaf: Hash32
  public var chain: Hash32
  public var type: EventType
  public var timestampNanos: Int64
  /// The partners it concerns (`Machine.eventPartners`); empty for ledger-wide events.
  public var partners: [String]
}

public struct Stats: Sendable {
  public var head: LogHead
  public var formatVersion: UInt32
  public var counts: [(name: String, entries: Int)]
  public var mapBytes: Int
  public var usedBytes: Int
}

/// Read-only queries. Each runs in its own LMDB read transaction (an MVCC snapshot of one
/// log prefix) that never waits for the writer; nothing read escapes without being copied.
/// Safe to call from any thread, concurrently with the writer.
public final class LedgerReader: @unchecked Sendable {
  let env: Environment
  let dbs: DBs
  /// Shared by reads, exclusive while the writer grows the map (see `Ledger.grow`).
  let gate = ReadWriteGate()
  /// Signs checkpoints; nil until the directory has a key (see `SigningKey`).
  let signer: NoteSigner?
  /// The complete subtrees that make up the last tree size proofs were asked for (its
  /// frontier). Nodes never change once written, so the entry stays valid in any later
  /// snapshot; proofs against one size (the head, a checkpoint) then skip those reads.
  let edge = Mutex<(size: UInt64, nodes: [Hash32])>((0, []))
  /// Complete subtrees of ≥ 256 leaves read for proofs, by `level << 56 | index`: nearly
  /// every audit path passes through the upper levels, and these nodes never change. At
  /// most `upperCacheMax` entries (2 MiB of hashes, some 5 MiB as a table); once full,
  /// reads go to the store. The table is allocated whole when the reader is made, so it
  /// never grows (doubles) while a server runs: the process's memory does not step up hours
  /// into a run as proofs fill it (pages of it are touched as entries land).
  let upper = Mutex<[UInt64: Hash32]>(.init(minimumCapacity: upperCacheMax))
  static let upperCacheMax = 65_536
  static let upperCacheLevel = 8

  /// The seq of the last LMDB commit begun: a snapshot holds at most this.
  let pending = Atomic<UInt64>(0)
  /// When set (a server syncing on its own thread), a read waits until its snapshot is
  /// durable, so nothing that a crash could take back is ever read.
  nonisolated(unsafe) var durability: Journal?

  /// The ledger's name in its checkpoints and change stream (`tally.ledger/…`); nil for a
  /// directory without a signing key yet.
  public var origin: String? { signer?.name }

  init(env: Environment, dbs: DBs, signer: NoteSigner?) {
    self.env = env
    self.dbs = dbs
    self.signer = signer
  }

  /// Runs `body` in a read-only transaction. `waitDurable: false` is for the writer thread
  /// only, which answers nothing before the next sync anyway. The wait holds the read gate,
  /// which map growth takes exclusively: `Ledger.grow` therefore syncs the journal first.
  func read<R>(waitDurable: Bool = true, _ body: (Txn) throws -> R) throws(StoreError) -> R {
    try gate.shared { () throws(StoreError) in
      let raw = try env.begin(readOnly: true)
      defer { mdb_txn_abort(raw) }
      if waitDurable, let durability,
        !durability.waitDurable(pending.load(ordering: .acquiring))
      {
        throw Journal.poisonError
      }
      do {
        return try body(Txn(txn: raw))
      } catch {
        throw Ledger.storeError(error)
      }
    }
  }

  func readState<R>(cache: BatchCache? = nil, _ body: (inout StoreState) throws -> R)
    throws(StoreError) -> R
  {
    try read { t in
      // Reads never allocate account numbers, so the cache's counter is irrelevant here.
      var s = StoreState(txn: t, dbs: dbs, cache: cache ?? BatchCache(accountCount: 0))
      return try body(&s)
    }
  }

  /// The head as committed now.
  public func currentHead() throws(StoreError) -> LogHead {
    try read { t in try Ledger.readHead(t, dbs) }
  }
}

/// The queries, shared by `Ledger` (for the CLI's offline use) and `LedgerReader`.
public protocol LedgerQuerying {
  var reader: LedgerReader { get }
}

extension LedgerReader: LedgerQuerying {
  public var reader: LedgerReader { self }
}

extension Ledger: LedgerQuerying {}

extension LedgerQuerying {
  public func account(_ name: String) throws(StoreError) -> AccountView? {
    try reader.readState { s in
      guard let a = try s.account(name) else { return nil }
      let (b, seq) = try Self.historyAt(s.txn, reader.dbs, number: a.number, seq: .max)
      return AccountView(record: a, balances: b, seq: seq)
    }
  }

  /// Balances of `name` after the event at `asOfSeq` (O(log n): one cursor seek in the
  /// account's history). Nil when the account does not exist now.
  public func balance(_ name: String, asOfSeq: UInt64?) throws(StoreError) -> AccountView? {
    guard let asOfSeq else { return try account(name) }
    return try reader.readState { s in
      guard let a = try s.account(name) else { return nil }
      let (b, seq) = try Self.historyAt(s.txn, reader.dbs, number: a.number, seq: asOfSeq)
      return AccountView(record: a, balances: b, seq: seq)
    }
  }

  /// Last history row of `number` at or before `seq` (`.max`: its balances now).
  static func historyAt(_ t: Txn, _ dbs: DBs, number: UInt64, seq: UInt64) throws
    -> (Balances, UInt64)
  {
    let c = try t.cursor(dbs.history)
    defer { c.close() }
    // Seek to the first key after (number, seq), then step back one.
    let (next, o) = seq.addingReportingOverflow(1)
    let key = (number.bigEndian, (o ? UInt64.max : next).bigEndian)
    let found = try withBytes(of: key) { (k) throws(StoreError) in try c.get(MDB_SET_RANGE, key: k)
    }
    let row = found == nil ? try c.get(MDB_LAST) : try c.get(MDB_PREV)
    guard let (k, v) = row, k.count == 16 else { return (.zero, 0) }
    let n = UInt64(bigEndian: k.loadUnaligned(as: UInt64.self))
    let s = UInt64(bigEndian: k.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    if n != number || s > seq { return (.zero, 0) }
    return (try Records.decodeHistory(v), s)
  }

  /// Accounts in name order after `after`, optionally of one partner.
  public func accounts(after: String?, limit: Int, partner: String? = nil) throws(StoreError)
    -> [AccountView]
  {
    try reader.read { t in
      try Self.page(t, reader.dbs.accounts, after: after, limit: limit) { k, v in
        let a = try Records.decodeAccount(name: String(decoding: k, as: UTF8.self), v)
        if let partner, a.partner != partner { return nil }
        let (b, seq) = try Self.historyAt(t, reader.dbs, number: a.number, seq: .max)
        return AccountView(record: a, balances: b, seq: seq)
      }
    }
  }

  public func partner(_ id: String) throws(StoreError) -> PartnerRecord? {
    try reader.readState { s in try s.partner(id) }
  }

  /// Partners in id order after `after`, at most `limit`.
  public func partners(after: String? = nil, limit: Int = Limits.pageLimitMax)
    throws(StoreError) -> [PartnerRecord]
  {
    try reader.read { t in
      try Self.page(t, reader.dbs.partners, after: after, limit: limit) { k, v in
        try Records.decodePartner(id: String(decoding: k, as: UTF8.self), v)
      }
    }
  }

  /// Declared assets in code order after `after`, at most `limit`.
  public func assets(after: String? = nil, limit: Int = Limits.pageLimitMax)
    throws(StoreError) -> [AssetRecord]
  {
    try reader.read { t in
      try Self.page(t, reader.dbs.assets, after: after, limit: limit) { k, v in
        try Records.decodeAsset(code: String(decoding: k, as: UTF8.self), v)
      }
    }
  }

  public func asset(_ code: String) throws(StoreError) -> AssetRecord? {
    try reader.readState { s in try s.asset(code) }
  }

  /// Minor-unit scale of a currency: ISO 4217's, else the declared asset's (nil: neither).
  public func scale(of currency: String) throws(StoreError) -> UInt8? {
    if let s = ISO4217.minorUnits(of: currency) { return s }
    return try asset(currency)?.scale
  }

  /// Whether `key` sorts strictly after `cursor` (byte order, as LMDB sorts).
  static func isAfter(_ key: UnsafeRawBufferPointer, _ cursor: String) -> Bool {
    cursor.utf8.lexicographicallyPrecedes(key)
  }

  /// Up to `limit` records of a string-keyed database, in key order, after key `after`.
  static func page<T>(
    _ t: Txn, _ dbi: MDB_dbi, after: String?, limit: Int,
    _ decode: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> T?
  ) throws -> [T] {
    let c = try t.cursor(dbi)
    defer { c.close() }
    var row: (key: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer)?
    // Seek to the cursor (cut to LMDB's key limit; LMDB refuses an empty key, and every key
    // sorts after ""), then step over keys at or before it.
    if let after, !after.isEmpty {
      let seek = Array(after.utf8.prefix(Txn.keyBytesMax))
      row = try withBytes(seek) { (k) throws(StoreError) in try c.get(MDB_SET_RANGE, key: k) }
      while let r = row, !isAfter(r.key, after) {
        row = try c.get(MDB_NEXT)
      }
    } else {
      row = try c.get(MDB_FIRST)
    }
    var out = [T]()
    while let (k, v) = row, out.count < limit {
      if let item = try decode(k, v) { out.append(item) }
      row = try c.get(MDB_NEXT)
    }
    return out
  }

  public func hold(_ id: String) throws(StoreError) -> HoldRecord? {
    try reader.readState { s in try s.hold(id) }
  }

  public func idRecord(_ id: String) throws(StoreError) -> IdRecord? {
    try reader.readState { s in try s.idRecord(id) }
  }

  /// Events from `fromSeq` (inclusive), at most `limit`.
  public func log(fromSeq: UInt64, limit: Int) throws(StoreError) -> [LogRecord] {
    try reader.read { t in
      var out = [LogRecord]()
      try Self.walkLog(t, reader.dbs, fromSeq: fromSeq, limit: limit) { _, v, leaf, chain in
        out.append(
          LogRecord(event: try EventCodec.decode(v), bytes: Array(v), leaf: leaf, chain: chain))
      }
      return out
    }
  }

  /// Durable events from `fromSeq` (inclusive), at most `limit`, each with its canonical
  /// bytes, hashes and the partners it concerns: what the change stream publishes. `cache`
  /// keeps the account records read across calls (an account's partner never changes).
  public func streamRecords(
    fromSeq: UInt64, limit: Int, cache: StreamReadCache? = nil
  ) throws(StoreError) -> [StreamRecord] {
    cache?.accounts.beginBatch()
    return try reader.readState(cache: cache?.accounts) { s in
      var out = [StreamRecord]()
      try Self.walkLog(s.txn, reader.dbs, fromSeq: fromSeq, limit: limit) { seq, v, leaf, chain in
        let event = try EventCodec.decode(v)
        out.append(
          StreamRecord(
            seq: seq, bytes: Array(v), leaf: leaf, chain: chain, type: event.body.type,
            timestampNanos: event.timestampNanos,
            partners: try Machine.eventPartners(event, &s)))
      }
      return out
    }
  }

  /// Calls `body` with each stored event from `fromSeq` on, at most `limit`: its seq, bytes
  /// (valid during the call) and hashes. A key or hashes row of the wrong size is corrupt.
  static func walkLog(
    _ t: Txn, _ dbs: DBs, fromSeq: UInt64, limit: Int,
    _ body: (UInt64, UnsafeRawBufferPointer, Hash32, Hash32) throws -> Void
  ) throws {
    let c = try t.cursor(dbs.log)
    defer { c.close() }
    var row = try withBytes(of: max(fromSeq, 1).bigEndian) { (k) throws(StoreError) in
      try c.get(MDB_SET_RANGE, key: k)
    }
    var n = 0
    while let (k, v) = row, n < limit {
      guard k.count == 8 else { throw StoreError.corrupt("a log key of \(k.count) bytes") }
      let seq = UInt64(bigEndian: k.loadUnaligned(as: UInt64.self))
      guard let h = try t.get(dbs.hashes, u64: seq), h.count == 64 else {
        throw StoreError.corrupt("no hashes for seq \(seq)")
      }
      try body(
        seq, v, Hash32(raw: h), Hash32(raw: UnsafeRawBufferPointer(rebasing: h[32..<64])))
      n += 1
      row = try c.get(MDB_NEXT)
    }
  }

  /// Where the event at `seq` landed (its timestamp and the chain hash after it); nil past
  /// the head. Answers a retried write with the original result.
  /// Where the event at `seq` landed. `waitDurable: false`: see `LedgerReader.read`.
  public func receipt(_ seq: UInt64, waitDurable: Bool = true) throws(StoreError) -> Receipt? {
    try reader.read(waitDurable: waitDurable) { t in
      guard let v = try t.get(reader.dbs.log, u64: seq) else { return nil }
      guard let h = try t.get(reader.dbs.hashes, u64: seq), h.count == 64 else {
        throw StoreError.corrupt("no hashes for seq \(seq)")
      }
      return Receipt(
        seq: seq, timestampNanos: try EventCodec.header(v).timestampNanos,
        chain: Hash32(raw: UnsafeRawBufferPointer(rebasing: h[32..<64])))
    }
  }

  /// The first seq whose timestamp is at or after `nanos` (head.seq + 1 when none):
  /// timestamps strictly increase along the log, so a binary search over seqs finds it.
  public func firstSeq(atOrAfter nanos: Int64) throws(StoreError) -> UInt64 {
    try reader.read { t in
      let last = try Ledger.readHead(t, reader.dbs).seq
      var lo: UInt64 = 1
      var hi = last + 1
      while lo < hi {
        let mid = lo + (hi - lo) / 2
        guard let v = try t.get(reader.dbs.log, u64: mid) else {
          throw StoreError.corrupt("log has no event at seq \(mid)")
        }
        if try EventCodec.header(v).timestampNanos < nanos { lo = mid + 1 } else { hi = mid }
      }
      return lo
    }
  }

  /// Events that touched `name` with seq in `fromSeq...toSeq`, at most `limit`, with the next
  /// cursor (a seq to pass as `fromSeq`) when more remain.
  public func statement(_ name: String, fromSeq: UInt64, toSeq: UInt64, limit: Int)
    throws(StoreError) -> (account: AccountView, lines: [StatementLine], next: UInt64?)?
  {
    try reader.readState { s in
      guard let a = try s.account(name) else { return nil }
      let from = max(fromSeq, 1)
      var (prev, _) = try Self.historyAt(s.txn, reader.dbs, number: a.number, seq: from - 1)
      let c = try s.txn.cursor(reader.dbs.history)
      defer { c.close() }
      var row = try withBytes(of: (a.number.bigEndian, from.bigEndian)) {
        (k) throws(StoreError) in try c.get(MDB_SET_RANGE, key: k)
      }
      var lines = [StatementLine]()
      var next: UInt64?
      while let (k, v) = row {
        guard k.count == 16 else { throw StoreError.corrupt("a history key of \(k.count) bytes") }
        let n = UInt64(bigEndian: k.loadUnaligned(as: UInt64.self))
        let seq = UInt64(bigEndian: k.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        if n != a.number || seq > toSeq { break }
        if lines.count == limit {
          next = seq
          break
        }
        let after = try Records.decodeHistory(v)
        let event = try s.event(at: seq)
        var id = ""
        var ref: String?
        var date: Int32?
        switch event.body {
        case .entryPosted(let e): (id, ref, date) = (e.id, e.ref, e.valueDateDays)
        case .holdPlaced(let h): (id, ref) = (h.id, h.ref)
        case .holdCaptured(let c): id = c.holdId
        case .holdReleased(let h), .holdExpired(let h): id = h
        default: break
        }
        let delta = Balances(
          postedDebits: after.postedDebits - prev.postedDebits,
          postedCredits: after.postedCredits - prev.postedCredits,
          pendingDebits: after.pendingDebits - prev.pendingDebits,
          pendingCredits: after.pendingCredits - prev.pendingCredits)
        lines.append(
          StatementLine(
            seq: seq, timestampNanos: event.timestampNanos, type: event.body.type, id: id,
            ref: ref, valueDateDays: date, delta: delta, after: after))
        prev = after
        row = try c.get(MDB_NEXT)
      }
      let (b, seq) = try Self.historyAt(s.txn, reader.dbs, number: a.number, seq: UInt64.max)
      return (AccountView(record: a, balances: b, seq: seq), lines, next)
    }
  }

  public func stats() throws(StoreError) -> Stats {
    // mdb_env_info reads the map's meta pages: not while the writer remaps it (`grow`).
    let (map, used) = reader.gate.shared { reader.env.info }
    let d = reader.dbs
    return try reader.read { t in
      var counts = [(String, Int)]()
      let all = [
        d.log, d.hashes, d.ids, d.partners, d.assets, d.accounts, d.balances, d.history, d.holds,
        d.deadlines,
      ]
      // `balances` is empty since format 5 (balances are the last history rows).
      for (name, dbi) in zip(DBs.names.dropFirst(), all) where dbi != d.balances {
        counts.append((name, try t.count(dbi)))
      }
      return Stats(
        head: try Ledger.readHead(t, d), formatVersion: Ledger.formatVersion, counts: counts,
        mapBytes: map, usedBytes: used)
    }
  }
}
