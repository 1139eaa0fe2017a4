import CLMDB
import Glibc
import TallyCore
import TallyCrypto

/// The head of the log: last seq, its timestamp, and the chain hash after it.
public struct LogHead: Equatable, Sendable {
  public var seq: UInt64
  public var timestampNanos: Int64
  public var chain: Hash32
  public static let empty = LogHead(seq: 0, timestampNanos: 0, chain: .zero)
}

/// Where a command's last event landed: its seq, timestamp and the chain hash after it.
public struct Receipt: Equatable, Sendable {
  public var seq: UInt64
  public var timestampNanos: Int64
  public var chain: Hash32
}

/// The ledger engine over one data directory: the single writer (or a reader), applying
/// batches of commands in one LMDB write transaction each.
public final class Ledger {
  /// Version of the data directory layout (event encoding, projections, meta).
  /// 2 added the Merkle tree (`tree`), 3 the reconciliation and partner-view projections;
  /// an older directory is migrated on its first read-write open (docs/FORMAT.md,
  /// "Compatibility").
  public static let formatVersion: UInt32 = 3
  /// First map size; the map grows by doubling (up to +4 GiB a step) when 80 % full.
  static let initialMapBytes = 64 << 20
  static let mapGrowthStepMaxBytes = 4 << 30

  let env: Environment
  let dbs: DBs
  /// Read-only queries over the same environment; safe to use from other threads while
  /// this ledger writes (LMDB allows one environment per process, so they share it).
  public let reader: LedgerReader
  let lock: WriterLock?
  let hasher = SHA256Hasher()
  public let path: String
  public let readOnly: Bool
  public private(set) var head: LogHead
  var accountCount: UInt64
  /// Reconciliation items and matches recorded (meta `recon`).
  var reconCounts: (items: UInt64, matches: UInt64) = (0, 0)
  /// The right edge of the Merkle tree after the last commit (see `Tree.append`).
  var treeFrontier = [Hash32](repeating: .zero, count: Tree.levelsMax)
  /// The writer's account and balance cache (see `BatchCache`).
  lazy var writerCache = BatchCache(accountCount: accountCount, recon: reconCounts)

  public enum Mode: Sendable { case readWrite, readOnly }

  /// Creates and initialises a data directory: format version, and the platform partner
  /// as the first event.
  /// `origin` names the ledger in its signed checkpoints (default: `tally.ledger/<random>`).
  public static func create(at path: String, now: Int64, origin: String? = nil)
    throws(StoreError) -> Ledger
  {
    var st = stat()
    if stat(path, &st) != 0 {
      if mkdir(path, 0o750) != 0 {
        throw .io("cannot create \(path): \(String(cString: strerror(errno)))")
      }
    } else if stat(path + "/data.mdb", &st) == 0 {
      throw .alreadyInitialized(path)
    }
    let lock = try WriterLock(directory: path)
    let env = try Environment(path: path, readOnly: false)
    try env.setMapSize(initialMapBytes)
    let txn = try env.begin(readOnly: false)
    do throws(StoreError) {
      var dbs = try DBs.open(txn, create: true)
      try dbs.openFormat3(txn, create: true)
      try withBytes(of: formatVersion.bigEndian) { (vb) throws(StoreError) in
        try Txn(txn: txn).put(dbs.meta, metaKey("format"), vb)
      }
    } catch {
      mdb_txn_abort(txn)
      throw error
    }
    // mdb_txn_commit frees the transaction whether or not it succeeds.
    try check(mdb_txn_commit(txn), "commit")
    let ledger = try Ledger(env: env, lock: lock, path: path, readOnly: false, origin: origin)
    let out = try ledger.apply(
      [.createPartner(PartnerCreated(id: Machine.platformPartner, name: "Platform"))], now: now)
    guard case .applied = out[0] else {
      throw .corrupt("could not create the platform partner: \(out[0])")
    }
    return ledger
  }

  /// Opens an initialised data directory. `.readWrite` takes the writer lock.
  public convenience init(path: String, mode: Mode = .readWrite) throws(StoreError) {
    var st = stat()
    guard stat(path + "/data.mdb", &st) == 0 else { throw .missing(path) }
    let lock = mode == .readWrite ? try WriterLock(directory: path) : nil
    let env = try Environment(path: path, readOnly: mode == .readOnly)
    try self.init(env: env, lock: lock, path: path, readOnly: mode == .readOnly)
  }

  init(
    env: Environment, lock: WriterLock?, path: String, readOnly: Bool, origin: String? = nil
  ) throws(StoreError) {
    self.env = env
    self.lock = lock
    self.path = path
    self.readOnly = readOnly
    // Handles opened in a transaction survive only if it commits.
    let opener = try env.begin(readOnly: true)
    var dbs: DBs
    do throws(StoreError) {
      dbs = try DBs.open(opener, create: false)
    } catch {
      mdb_txn_abort(opener)
      throw error
    }
    try check(mdb_txn_commit(opener), "commit")
    dbs.keys = try Self.openNamed(env, "keys", create: !readOnly)
    dbs.tree = try Self.openNamed(env, "tree", create: !readOnly)
    dbs.checkpoints = try Self.openNamed(env, "checkpoints", create: !readOnly)
    var format3 = [MDB_dbi]()
    for name in DBs.format3Names {
      guard let h = try Self.openNamed(env, name, create: !readOnly) else { break }
      format3.append(h)
    }
    if format3.count == DBs.format3Names.count { dbs.setFormat3(format3) }
    self.dbs = dbs
    var signer = try SigningKey.load(directory: path)
    if signer == nil && !readOnly {
      signer = try SigningKey.create(directory: path, origin: origin ?? SigningKey.defaultOrigin())
    }
    self.reader = LedgerReader(env: env, dbs: dbs, signer: signer)
    let txn = try env.begin(readOnly: true)
    defer { mdb_txn_abort(txn) }
    let t = Txn(txn: txn)
    guard let fv = try t.get(dbs.meta, Self.metaKey("format")), fv.count == 4 else {
      throw .corrupt("meta has no format version")
    }
    let found = UInt32(bigEndian: fv.loadUnaligned(as: UInt32.self))
    let migrate = (found == 1 || found == 2) && !readOnly
    guard (found == Self.formatVersion && dbs.hasFormat3) || migrate else {
      throw .formatVersion(found: found, expected: Self.formatVersion)
    }
    head = try Self.readHead(t, dbs)
    accountCount = try Self.readAccountCount(t, dbs)
    reconCounts = try Self.readReconCounts(t, dbs)
    if migrate {
      if found == 1 { try migrateFrom1() }
      try migrateTo3()
    } else if !readOnly {
      do { treeFrontier = try Tree.frontier(t, dbs, size: head.seq) } catch {
        throw Self.storeError(error)
      }
    }
  }

  /// Format 2 → 3: the new projections (reconciliation, partner views) are computed by
  /// rebuilding every projection from the log, and format 3 recorded, in one write
  /// transaction (all or nothing; the log is untouched).
  func migrateTo3() throws(StoreError) {
    _ = try rebuild(setFormat: true)
    do {
      let t = try env.begin(readOnly: true)
      defer { mdb_txn_abort(t) }
      treeFrontier = try Tree.frontier(Txn(txn: t), dbs, size: head.seq)
    } catch {
      throw Self.storeError(error)
    }
  }

  /// Format 1 → 2: builds the Merkle tree from the stored leaf hashes and records format 2,
  /// in one write transaction (all or nothing; the log and projections are untouched).
  func migrateFrom1() throws(StoreError) {
    try growIfNeeded()
    let raw = try env.begin(readOnly: false)
    var committed = false
    defer { if !committed { mdb_txn_abort(raw) } }
    let t = Txn(txn: raw)
    let frontier: [Hash32]
    do { frontier = try Tree.build(t, dbs, hasher, size: head.seq) } catch {
      throw Self.storeError(error)
    }
    try withBytes(of: UInt32(2).bigEndian) { (v) throws(StoreError) in
      try t.put(dbs.meta, Self.metaKey("format"), v)
    }
    committed = true
    try check(mdb_txn_commit(raw), "commit")
    treeFrontier = frontier
  }

  // MARK: meta

  /// Meta keys are static strings: their bytes live for the whole process.
  static func metaKey(_ name: StaticString) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount)
  }

  static func readHead(_ t: Txn, _ dbs: DBs) throws(StoreError) -> LogHead {
    guard let v = try t.get(dbs.meta, metaKey("head")) else { return .empty }
    guard v.count == 48 else { throw .corrupt("meta head has \(v.count) bytes") }
    return LogHead(
      seq: UInt64(bigEndian: v.loadUnaligned(fromByteOffset: 32, as: UInt64.self)),
      timestampNanos: Int64(bigEndian: v.loadUnaligned(fromByteOffset: 40, as: Int64.self)),
      chain: Hash32(raw: v))
  }

  static func readAccountCount(_ t: Txn, _ dbs: DBs) throws(StoreError) -> UInt64 {
    guard let v = try t.get(dbs.meta, metaKey("accounts")) else { return 0 }
    guard v.count == 8 else { throw .corrupt("meta accounts has \(v.count) bytes") }
    return UInt64(bigEndian: v.loadUnaligned(as: UInt64.self))
  }

  static func readReconCounts(_ t: Txn, _ dbs: DBs) throws(StoreError)
    -> (items: UInt64, matches: UInt64)
  {
    guard let v = try t.get(dbs.meta, metaKey("recon")) else { return (0, 0) }
    guard v.count == 16 else { throw .corrupt("meta recon has \(v.count) bytes") }
    return (
      UInt64(bigEndian: v.loadUnaligned(as: UInt64.self)),
      UInt64(bigEndian: v.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
    )
  }

  func writeHead(_ t: Txn, _ h: LogHead, accounts: UInt64?) throws(StoreError) {
    var w = ByteWriter(capacity: 48)
    w.raw(h.chain.bytes)
    w.u64(h.seq)
    w.i64(h.timestampNanos)
    try withBytes(w.bytes) { (v) throws(StoreError) in
      try t.put(dbs.meta, Self.metaKey("head"), v)
    }
    if let accounts {
      try withBytes(of: accounts.bigEndian) { (v) throws(StoreError) in
        try t.put(dbs.meta, Self.metaKey("accounts"), v)
      }
    }
  }

  // MARK: write path

  /// Applies `commands` in one write transaction (one fsync): each gets its own outcome; a
  /// rejected command changes nothing and does not disturb the others. `now` is the
  /// caller's clock (ns since epoch); event timestamps are max(now, last + 1).
  public func apply(_ commands: [Command], now: Int64) throws(StoreError) -> [Outcome] {
    try applyWithReceipts(commands, now: now).outcomes
  }

  /// `apply`, also returning for each command that appended events the seq, timestamp and
  /// chain hash of its last event (nil for duplicates, rejections and no-op commands).
  ///
  /// A command with a `Scope` is first checked against it in the same transaction; one
  /// outside it is rejected as not found and never reaches the engine.
  public func applyWithReceipts(
    _ commands: [Command], scopes: [Scope?]? = nil, now: Int64
  ) throws(StoreError) -> (outcomes: [Outcome], receipts: [Receipt?]) {
    precondition(scopes == nil || scopes!.count == commands.count, "one scope per command")
    precondition(!readOnly, "apply on a read-only ledger")
    precondition(commands.count <= Limits.commandsPerBatchMax, "batch over the limit")
    try growIfNeeded()
    var attempts = 0
    while true {
      do throws(StoreError) {
        return try applyOnce(commands, scopes: scopes, now: now)
      } catch .mapFull {
        // Nothing was committed; grow between transactions and run the batch again.
        attempts += 1
        if attempts > 8 { throw .mapFull }
        try grow()
      }
    }
  }

  func growIfNeeded() throws(StoreError) {
    let (map, used) = env.info
    if used * 5 >= map * 4 { try grow() }
  }

  func grow() throws(StoreError) {
    let (map, _) = env.info
    // mdb_env_set_mapsize requires that no transaction is active in this process: wait
    // for in-flight reads on other threads to finish, and hold new ones off meanwhile.
    try reader.gate.exclusive { () throws(StoreError) in
      try env.setMapSize(map + min(map, Self.mapGrowthStepMaxBytes))
    }
  }

  /// `extend`, when given, runs after each accepted command's events are applied, in the
  /// same transaction, and returns more events for that command (the matches an import
  /// finds); throwing aborts the whole batch.
  func applyOnce(
    _ commands: [Command], scopes: [Scope?]?, now: Int64,
    extend: ((inout StoreState, Int, [EventBody]) throws -> [EventBody])? = nil
  ) throws(StoreError) -> (outcomes: [Outcome], receipts: [Receipt?]) {
    let raw = try env.begin(readOnly: false)
    let cache = writerCache
    cache.beginBatch()
    var committed = false
    defer {
      if !committed {
        mdb_txn_abort(raw)
        cache.reset(accountCount: accountCount, recon: reconCounts)
      }
    }
    let txn = Txn(txn: raw)
    var state = StoreState(txn: txn, dbs: dbs, cache: cache)
    var h = head
    guard let tree = dbs.tree else { throw .corrupt("the tree database is not open") }
    var frontier = treeFrontier
    var outcomes = [Outcome]()
    outcomes.reserveCapacity(commands.count)
    var receipts = [Receipt?]()
    receipts.reserveCapacity(commands.count)
    var eventBytes = ByteWriter(capacity: 256)
    var hashBytes = [UInt8](repeating: 0, count: 64)
    /// Appends events: log, hashes, tree, projections, head.
    func append(_ bodies: [EventBody]) throws(StoreError) {
      for body in bodies {
        let (next, exhausted) = h.timestampNanos.addingReportingOverflow(1)
        if exhausted { throw StoreError.corrupt("event timestamps reached Int64.max") }
        let event = Event(seq: h.seq + 1, timestampNanos: max(now, next), body: body)
        eventBytes.bytes.removeAll(keepingCapacity: true)
        EventCodec.encode(event, into: &eventBytes)
        let leaf = hasher.leaf(eventBytes.bytes)
        let chain = hasher.chain(h.chain, leaf)
        try withBytes(eventBytes.bytes) { (v) throws(StoreError) in
          try txn.put(dbs.log, u64: event.seq, v, flags: UInt32(MDB_APPEND))
        }
        hashBytes.withUnsafeMutableBytes { dst in
          withUnsafeBytes(of: leaf) {
            dst.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: 32)
          }
          withUnsafeBytes(of: chain) {
            (dst.baseAddress! + 32).copyMemory(from: $0.baseAddress!, byteCount: 32)
          }
        }
        try withBytes(hashBytes) { (v) throws(StoreError) in
          try txn.put(dbs.hashes, u64: event.seq, v, flags: UInt32(MDB_APPEND))
        }
        try Tree.append(txn, tree, hasher, &frontier, index: event.seq - 1, leaf: leaf)
        do {
          try Machine.apply(event, &state)
        } catch {
          throw Self.storeError(error)
        }
        precondition(event.seq == h.seq + 1, "seq must advance by one")
        h = LogHead(seq: event.seq, timestampNanos: event.timestampNanos, chain: chain)
      }
    }
    for (i, command) in commands.enumerated() {
      let decision: Decision
      do {
        if let scope = scopes?[i], let r = try state.scopeRejection(command, scope) {
          decision = .reject(r)
        } else {
          decision = try Machine.decide(command, &state, now: now)
        }
      } catch {
        throw Self.storeError(error)
      }
      switch decision {
      case .reject(let r):
        outcomes.append(.rejected(r))
        receipts.append(nil)
      case .duplicate(let seq):
        outcomes.append(.duplicate(seq: seq))
        receipts.append(nil)
      case .accept(var bodies):
        let first = h.seq + 1
        try append(bodies)
        if let extend {
          let more: [EventBody]
          do { more = try extend(&state, i, bodies) } catch { throw Self.storeError(error) }
          try append(more)
          bodies += more
        }
        outcomes.append(.applied(firstSeq: first, count: bodies.count))
        receipts.append(
          bodies.isEmpty
            ? nil : Receipt(seq: h.seq, timestampNanos: h.timestampNanos, chain: h.chain))
      }
    }
    if h.seq != head.seq || cache.accountCountDirty {
      do { try state.flush() } catch { throw Self.storeError(error) }
      try writeHead(txn, h, accounts: cache.accountCountDirty ? cache.accountCount : nil)
      // mdb_txn_commit frees the transaction whether or not it succeeds: never abort it after.
      committed = true
      let rc = mdb_txn_commit(raw)
      if rc != 0 {
        cache.reset(accountCount: accountCount, recon: reconCounts)
        try check(rc, "commit")
      }
    } else {
      committed = true
      mdb_txn_abort(raw)
    }
    head = h
    accountCount = cache.accountCount
    reconCounts = cache.recon
    treeFrontier = frontier
    return (outcomes, receipts)
  }

  static func storeError(_ error: any Error) -> StoreError {
    switch error {
    case let e as StoreError: e
    case let e as ApplyError: .corrupt(e.description)
    case let e as DecodeError: .corrupt("undecodable record: \(e)")
    default: .corrupt("\(error)")
    }
  }

  // MARK: read path

  /// The head as committed now (another process may have written since this one opened).
  public func currentHead() throws(StoreError) -> LogHead { try reader.currentHead() }
}
