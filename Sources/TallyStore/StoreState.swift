import CLMDB
import TallyCore

/// Handles of the named databases (docs/FORMAT.md, "Storage").
struct DBs {
  var meta: MDB_dbi = 0
  var log: MDB_dbi = 0
  var hashes: MDB_dbi = 0
  var ids: MDB_dbi = 0
  var partners: MDB_dbi = 0
  var assets: MDB_dbi = 0
  var accounts: MDB_dbi = 0
  var balances: MDB_dbi = 0
  var history: MDB_dbi = 0
  var holds: MDB_dbi = 0
  var deadlines: MDB_dbi = 0
  /// API keys (not part of the log; see Keys.swift). Nil in a read-only open of a directory
  /// that never had keys.
  var keys: MDB_dbi?
  /// Complete Merkle subtrees above the leaves (see Tree.swift). Nil only while a format-1
  /// directory is opened read-only (it gains the tree on its first read-write open).
  var tree: MDB_dbi?
  /// Checkpoints the server signed, by tree size (not part of the log; see Checkpoints.swift).
  var checkpoints: MDB_dbi?
  // Reconciliation and partner views (format 3; see ReconState.swift).
  var reconItems: MDB_dbi = 0
  var reconLines: MDB_dbi = 0
  var reconIndex: MDB_dbi = 0
  var reconMatches: MDB_dbi = 0
  var reconEntries: MDB_dbi = 0
  var reconAccounts: MDB_dbi = 0
  var partnerAccounts: MDB_dbi = 0
  var partnerStats: MDB_dbi = 0
  var partnerHolds: MDB_dbi = 0
  /// Whether the format-3 databases exist (false only for an older directory opened
  /// read-only, which is then refused).
  var hasFormat3 = false

  static let format3Names = [
    "recon_items", "recon_lines", "recon_index", "recon_matches", "recon_entries",
    "recon_accounts", "partner_accounts", "partner_stats", "partner_holds",
  ]

  mutating func openFormat3(_ txn: OpaquePointer, create: Bool) throws(StoreError) {
    var handles = [MDB_dbi]()
    for name in Self.format3Names {
      var h: MDB_dbi = 0
      try check(mdb_dbi_open(txn, name, create ? UInt32(MDB_CREATE) : 0, &h), "dbi_open \(name)")
      handles.append(h)
    }
    setFormat3(handles)
  }

  mutating func setFormat3(_ h: [MDB_dbi]) {
    (reconItems, reconLines, reconIndex, reconMatches, reconEntries) = (
      h[0], h[1], h[2], h[3], h[4]
    )
    (reconAccounts, partnerAccounts, partnerStats, partnerHolds) = (h[5], h[6], h[7], h[8])
    hasFormat3 = true
  }

  var format3: [MDB_dbi] {
    [
      reconItems, reconLines, reconIndex, reconMatches, reconEntries, reconAccounts,
      partnerAccounts, partnerStats, partnerHolds,
    ]
  }

  static let names = [
    "meta", "log", "hashes", "ids", "partners", "assets", "accounts", "balances", "history",
    "holds", "deadlines",
  ]

  /// Every projection (everything but meta, log and hashes): what rebuild recomputes.
  var projections: [MDB_dbi] {
    [ids, partners, assets, accounts, balances, history, holds, deadlines] + format3
  }

  static func open(_ txn: OpaquePointer, create: Bool) throws(StoreError) -> DBs {
    var d = DBs()
    var handles = [MDB_dbi]()
    for name in names {
      var h: MDB_dbi = 0
      let rc = mdb_dbi_open(txn, name, create ? UInt32(MDB_CREATE) : 0, &h)
      if rc == MDB_NOTFOUND { throw .corrupt("named database \(name) is missing") }
      try check(rc, "dbi_open \(name)")
      handles.append(h)
    }
    (d.meta, d.log, d.hashes, d.ids, d.partners, d.assets) =
      (handles[0], handles[1], handles[2], handles[3], handles[4], handles[5])
    (d.accounts, d.balances, d.history, d.holds, d.deadlines) =
      (handles[6], handles[7], handles[8], handles[9], handles[10])
    return d
  }
}

/// The writer's cache of account records and balances. Only the writer (which holds the
/// directory's exclusive lock) changes them, so what it committed stays valid across batches:
/// each account is read from LMDB once, and its balances are written once per batch. A batch
/// that does not commit leaves the cache suspect, so the writer then empties it.
final class BatchCache {
  /// Records cached at most; past this the cache is emptied between batches (memory bound).
  static let accountsMax = 500_000

  var accounts: [String: AccountRecord] = [:]
  var balances: [UInt64: (balances: Balances, seq: UInt64)] = [:]
  var accountCount: UInt64
  var accountCountDirty = false
  /// Partner counters, written once per batch like balances.
  var partnerStats: [String: PartnerStats] = [:]
  var partnerDirty: [String] = []
  /// Reconciliation items and matches recorded so far (meta `recon`).
  var recon: (items: UInt64, matches: UInt64) = (0, 0)
  var reconDirty = false
  /// History rows of this batch not yet written: they go in key order at the end of the
  /// batch (or before anything in the batch reads `history`), so that one batch walks the
  /// table once instead of descending to a random page for every row.
  var history: [HistoryRow] = []

  init(accountCount: UInt64, recon: (items: UInt64, matches: UInt64) = (0, 0)) {
    self.accountCount = accountCount
    self.recon = recon
  }

  func beginBatch() {
    if accounts.count > Self.accountsMax || balances.count > Self.accountsMax
      || partnerStats.count > Self.accountsMax
    {
      accounts.removeAll()
      balances.removeAll()
      partnerStats.removeAll()
    }
    partnerDirty.removeAll(keepingCapacity: true)
    history.removeAll(keepingCapacity: true)
    accountCountDirty = false
    reconDirty = false
  }

  func reset(accountCount: UInt64, recon: (items: UInt64, matches: UInt64)) {
    accounts.removeAll()
    balances.removeAll()
    partnerStats.removeAll()
    partnerDirty.removeAll()
    history.removeAll()
    self.accountCount = accountCount
    self.recon = recon
    accountCountDirty = false
    reconDirty = false
  }
}

/// One `history` row: an account's balances after the event at `seq`.
struct HistoryRow {
  var number: UInt64
  var seq: UInt64
  var balances: Balances
}

/// `LedgerState` over one LMDB write (or read) transaction.
struct StoreState: LedgerState {
  let txn: Txn
  let dbs: DBs
  let cache: BatchCache

  func partner(_ id: String) throws -> PartnerRecord? {
    guard let v = try txn.get(dbs.partners, string: id) else { return nil }
    return try Records.decodePartner(id: id, v)
  }

  func asset(_ code: String) throws -> AssetRecord? {
    guard let v = try txn.get(dbs.assets, string: code) else { return nil }
    return try Records.decodeAsset(code: code, v)
  }

  mutating func account(_ name: String) throws -> AccountRecord? {
    if let a = cache.accounts[name] { return a }
    guard let v = try txn.get(dbs.accounts, string: name) else { return nil }
    let a = try Records.decodeAccount(name: name, v)
    cache.accounts[name] = a
    return a
  }

  mutating func accountNumber(_ name: String) throws -> UInt64? {
    if let a = cache.accounts[name] { return a.number }
    return try account(name)?.number
  }

  /// An account's balances: its last `history` row (none: zero).
  mutating func balances(_ number: UInt64) throws -> Balances {
    // Not cached: not touched in this batch, so no pending history row is its.
    if let b = cache.balances[number] { return b.balances }
    let (b, seq) = try Ledger.historyAt(txn, dbs, number: number, seq: .max)
    cache.balances[number] = (b, seq)
    return b
  }

  func idRecord(_ id: String) throws -> IdRecord? {
    guard let v = try txn.get(dbs.ids, string: id) else { return nil }
    return try Records.decodeId(v)
  }

  func event(at seq: UInt64) throws -> Event {
    guard let v = try txn.get(dbs.log, u64: seq) else {
      throw StoreError.corrupt("log has no event at seq \(seq)")
    }
    return try EventCodec.decode(v)
  }

  func hold(_ id: String) throws -> HoldRecord? {
    guard let v = try txn.get(dbs.holds, string: id) else { return nil }
    return try Records.decodeHold(id: id, v)
  }

  func holdsDue(asOfNanos: Int64, limit: Int) throws -> [String] {
    let c = try txn.cursor(dbs.deadlines)
    defer { c.close() }
    var out = [String]()
    var next = try c.get(MDB_FIRST)
    while let (k, v) = next, out.count < limit {
      let (deadline, _) = try Records.decodeDeadlineKey(k)
      if deadline > asOfNanos { break }
      out.append(String(decoding: v, as: UTF8.self))
      next = try c.get(MDB_NEXT)
    }
    return out
  }

  var accountCount: UInt64 { cache.accountCount }

  mutating func putPartner(_ r: PartnerRecord) throws {
    try txn.put(dbs.partners, string: r.id, Records.encode(r))
  }

  mutating func putAsset(_ r: AssetRecord) throws {
    try txn.put(dbs.assets, string: r.code, Records.encode(r))
  }

  mutating func putAccount(_ r: AccountRecord) throws {
    try txn.put(dbs.accounts, string: r.name, Records.encode(r))
    if r.number > cache.accountCount {
      cache.accountCount = r.number
      cache.accountCountDirty = true
    }
    cache.accounts[r.name] = r
  }

  /// Balances live in `history` (its last row per account): only the cache changes here.
  mutating func putBalances(_ number: UInt64, _ b: Balances, seq: UInt64) throws {
    cache.balances[number] = (b, seq)
  }

  mutating func putHistory(_ number: UInt64, seq: UInt64, _ b: Balances) throws {
    cache.history.append(HistoryRow(number: number, seq: seq, balances: b))
  }

  /// Writes the batch's pending history rows, sorted by key (account, then seq).
  func flushHistory() throws(StoreError) {
    if cache.history.isEmpty { return }
    // Rows of one account arrive in seq order: a stable sort by account keeps it.
    var rows = cache.history
    cache.history.removeAll(keepingCapacity: true)
    if rows.count > 1 {
      rows = rows.enumerated().sorted {
        ($0.element.number, $0.offset) < ($1.element.number, $1.offset)
      }.map(\.element)
    }
    let c = try txn.cursor(dbs.history)
    defer { c.close() }
    for r in rows {
      var key = (r.number.bigEndian, r.seq.bigEndian)
      let b = r.balances
      var value = (
        UInt128(bitPattern: b.postedDebits).bigEndian,
        UInt128(bitPattern: b.postedCredits).bigEndian,
        UInt128(bitPattern: b.pendingDebits).bigEndian,
        UInt128(bitPattern: b.pendingCredits).bigEndian
      )
      try withUnsafeBytes(of: &key) { (kb) throws(StoreError) in
        try withUnsafeBytes(of: &value) { (vb) throws(StoreError) in
          try c.put(kb, vb)
        }
      }
    }
  }

  mutating func putIdRecord(_ id: String, _ r: IdRecord) throws {
    try txn.put(dbs.ids, string: id, Records.encode(r))
  }

  mutating func insertIdRecord(_ id: String, _ r: IdRecord) throws -> Bool {
    // MDB_NOOVERWRITE: one B-tree descent that both checks and inserts.
    var key = id
    let value = Records.encode(r)
    let rc: Int32 = key.withUTF8 { k in
      value.withUnsafeBytes { v in
        var kv = MDB_val(
          mv_size: k.count, mv_data: UnsafeMutableRawPointer(mutating: k.baseAddress))
        var vv = MDB_val(
          mv_size: v.count, mv_data: UnsafeMutableRawPointer(mutating: v.baseAddress))
        return mdb_put(txn.txn, dbs.ids, &kv, &vv, UInt32(MDB_NOOVERWRITE))
      }
    }
    if rc == MDB_KEYEXIST { return false }
    try check(rc, "put ids")
    return true
  }

  mutating func putHold(_ r: HoldRecord) throws {
    try txn.put(dbs.holds, string: r.id, Records.encode(r))
  }

  mutating func addDeadline(_ deadlineNanos: Int64, placedSeq: UInt64, holdId: String) throws {
    try Records.deadlineKey(deadlineNanos, placedSeq).withUnsafeBytes {
      (k) in
      try Array(holdId.utf8).withUnsafeBytes { (v) in
        try txn.put(dbs.deadlines, k, v)
      }
    }
  }

  mutating func removeDeadline(_ deadlineNanos: Int64, placedSeq: UInt64) throws {
    try Records.deadlineKey(deadlineNanos, placedSeq).withUnsafeBytes {
      (k) in try txn.delete(dbs.deadlines, k)
    }
  }

  /// Writes the batch's history rows and partner counters.
  func flush() throws {
    try flushHistory()
    try flushViews()
  }
}
