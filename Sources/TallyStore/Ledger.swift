import CLMDB
import Glibc
import Synchronization
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
  /// 2 added the Merkle tree (`tree`), 3 the reconciliation and partner-view projections,
  /// 4 the journal (the log's durable copy; LMDB written behind it), 5 reads an account's
  /// balances from its last `history` row (the `balances` table stays, empty). An older directory is
  /// migrated on its first read-write open (docs/FORMAT.md, "Compatibility").
  public static let formatVersion: UInt32 = 5
  /// First map size; the map doubles (up to +4 GiB a step): see `growIfNeeded`.
  static let initialMapBytes = 64 << 20
  static let mapGrowthStepMaxBytes = 4 << 30

  /// A new environment's map size: `initialMapBytes`, or the limit when it is smaller.
  static func initialMapBytes(_ options: LedgerOptions) -> Int {
    min(initialMapBytes, options.mapBytesMax ?? initialMapBytes)
  }

  let env: Environment
  let dbs: DBs
  /// Read-only queries over the same environment; safe to use from other threads while
  /// this ledger writes (LMDB allows one environment per process, so they share it).
  public let reader: LedgerReader
  let lock: WriterLock?
  let hasher = SHA256Hasher()
  public let path: String
  public let readOnly: Bool
  public internal(set) var head: LogHead
  var accountCount: UInt64
  /// Reconciliation items and matches recorded (meta `recon`).
  var reconCounts: (items: UInt64, matches: UInt64) = (0, 0)
  /// The right edge of the Merkle tree after the last commit (see `Tree.append`).
  var treeFrontier = [Hash32](repeating: .zero, count: Tree.levelsMax)
  /// The writer's account and balance cache (see `BatchCache`).
  lazy var writerCache = BatchCache(accountCount: accountCount, recon: reconCounts)
  /// The journal (read-write opens only): acknowledged events live here first.
  public internal(set) var journal: Journal?
  /// Keys and kept checkpoints, durable outside LMDB (read-write opens only).
  var aux: AuxJournal?
  let options: LedgerOptions
  /// True (the default): `apply` returns once its group is durable (one `fdatasync`).
  /// A server that syncs on its own thread sets it false, calls `journal.sync()` itself and
  /// answers after it; reads then wait for durability (`LedgerReader.read`).
  public var syncEachGroup = true {
    didSet { reader.durability = syncEachGroup ? nil : journal }
  }
  /// Journal bytes appended since the last snapshot, and when it was taken.
  let snapshotProgress = Mutex(SnapshotProgress(lastNanos: monotonicNanos()))
  /// The snapshot copy running on another thread, which `grow` may cancel.
  let snapshotCopy = SnapshotCopyControl()
  /// What the last snapshot `buildSnapshot` wrote started from and wrote (nil: none built
  /// yet). Set and read on the thread that builds.
  public internal(set) var lastBuild: SnapshotBuildReport?
  /// How the last read-write open brought the projections up to the journal.
  public internal(set) var recovery: RecoveryKind = .replayed
  /// The framed records of the group being applied.
  var groupBuffer = ByteWriter(capacity: 1 << 16)
  /// False when the filesystem cannot reserve the map's blocks ahead (no `fallocate`): a
  /// full disk may then stop the process with SIGBUS instead of refusing writes.
  public private(set) var mapBlocksAllocated = true
  /// Time the map's growths took since the open (ns): waiting for reads in flight to end
  /// (`growWaitNanos`), then reserving and mapping the larger map (`growNanos`). The writer
  /// reports a turn they made slow.
  public private(set) var growWaitNanos: Int64 = 0
  public private(set) var growNanos: Int64 = 0
  var closed = false

  public enum Mode: Sendable { case readWrite, readOnly }

  deinit {
    // A ledger released without `close` still leaves its directory clean when it can; if
    // this fails, the marker stays and the next open on another boot rebuilds.
    try? close()
  }

  /// Creates and initialises a data directory: format version, and the platform partner
  /// as the first event.
  /// `origin` names the ledger in its signed checkpoints (default: `tally.ledger/<random>`).
  public static func create(
    at path: String, now: Int64, origin: String? = nil, options: LedgerOptions = .init()
  ) throws(StoreError) -> Ledger {
    let ledger = try createEmpty(at: path, origin: origin, options: options)
    let out = try ledger.apply(
      [.createPartner(PartnerCreated(id: Machine.platformPartner, name: "Platform"))], now: now)
    guard case .applied = out[0] else {
      throw .corrupt("could not create the platform partner: \(out[0])")
    }
    return ledger
  }

  /// Creates and initialises a data directory for a read replica: no event at all (its
  /// first event, the primary's platform partner, comes from the stream).
  public static func createReplica(
    at path: String, origin: String? = nil, options: LedgerOptions = .init()
  ) throws(StoreError) -> Ledger {
    try createEmpty(at: path, origin: origin, options: options)
  }

  static func createEmpty(
    at path: String, origin: String?, options: LedgerOptions
  ) throws(StoreError) -> Ledger {
    var st = stat()
    if stat(path, &st) != 0 {
      if mkdir(path, 0o750) != 0 {
        throw .io("cannot create \(path): \(String(cString: strerror(errno)))")
      }
    } else if stat(path + "/data.mdb", &st) == 0 || stat(path + "/journal", &st) == 0 {
      throw .alreadyInitialized(path)
    }
    let lock = try WriterLock(directory: path)
    let journal = try Journal.create(
      directory: path + "/journal", files: options.files, segmentBytes: options.segmentBytes)
    let env = try Environment(path: path, readOnly: false)
    try env.setMapSize(initialMapBytes(options))
    try Self.initializeEnvironment(env, ledgerID: journal.ledgerID, aux: [])
    return try Ledger(
      env: env, lock: lock, path: path, readOnly: false, origin: origin, journal: journal,
      options: options)
  }

  /// Creates the named databases of an empty environment and records the format, the
  /// journal's ledger id and the state kept outside the log, in one synced transaction.
  static func initializeEnvironment(
    _ env: Environment, ledgerID: [UInt8], aux: [AuxJournal.Record]
  ) throws(StoreError) {
    let txn = try env.begin(readOnly: false)
    do throws(StoreError) {
      var dbs = try DBs.open(txn, create: true)
      try dbs.openFormat3(txn, create: true)
      let t = Txn(txn: txn)
      try withBytes(of: formatVersion.bigEndian) { (vb) throws(StoreError) in
        try t.put(dbs.meta, metaKey("format"), vb)
      }
      try withBytes(ledgerID) { (v) throws(StoreError) in
        try t.put(dbs.meta, metaKey("journal"), v)
      }
      try applyAux(t, txn, aux)
    } catch {
      mdb_txn_abort(txn)
      throw error
    }
    // mdb_txn_commit frees the transaction whether or not it succeeds.
    try check(mdb_txn_commit(txn), "commit")
    try env.sync()
  }

  /// Opens an initialised data directory. `.readWrite` takes the writer lock, replays the
  /// journal's tail into the projections (or rebuilds them when they cannot be trusted:
  /// docs/FORMAT.md, "Crashes and recovery") and cuts a torn tail; `.readOnly` reads the
  /// projections as they are. `progress` sees a migration from an older format and the
  /// journal replay, when the open does either.
  public convenience init(
    path: String, mode: Mode = .readWrite, options: LedgerOptions = .init(),
    progress: ProgressHandler? = nil
  ) throws(StoreError) {
    let hasData = fileExists(path + "/data.mdb")
    let journalDir = path + "/journal"
    if mode == .readOnly {
      guard hasData else {
        if fileExists(journalDir) {
          throw .corrupt(
            "\(path) has a journal but no projections: open it read-write (tallyd, or any "
              + "writing tally command) to rebuild them")
        }
        throw .missing(path)
      }
      if let marker = try Self.readMarker(journalDir, options.files),
        marker != (try options.currentBootID())
      {
        throw .corrupt(
          "the projections in \(path) were being written when the machine stopped (boot "
            + "\(marker)); open it read-write (tallyd, or any writing tally command) to rebuild "
            + "them from the journal")
      }
      let env = try Environment(path: path, readOnly: true)
      try self.init(env: env, lock: nil, path: path, readOnly: true, options: options)
      return
    }
    guard hasData || fileExists(journalDir) else { throw .missing(path) }
    let lock = try WriterLock(directory: path)
    let journal = try Journal.load(
      directory: journalDir, files: options.files, segmentBytes: options.segmentBytes)
    var env: Environment
    var recovery = RecoveryKind.replayed
    let untrusted = try Self.projectionsUntrusted(journalDir, options)
    if let journal, !hasData || untrusted {
      // The projections are not a state of the log: restore the newest intact snapshot, or
      // rebuild them from the journals (docs/FORMAT.md, "Crashes and recovery").
      switch try Self.usableSnapshot(path, ledgerID: journal.ledgerID) {
      case .success(let (dir, info)):
        try Self.restoreSnapshot(dir, into: path, files: options.files)
        env = try Environment(path: path, readOnly: false)
        recovery = .restoredSnapshot(seq: info.head.seq)
      case .failure(let why):
        for name in ["data.mdb", "lock.mdb"] { try options.files.unlink(path + "/" + name) }
        env = try Environment(path: path, readOnly: false)
        try env.setMapSize(Self.initialMapBytes(options))
        let (_, records) = try AuxJournal.open(
          directory: journalDir, files: options.files, repair: true)
        try Self.initializeEnvironment(env, ledgerID: journal.ledgerID, aux: records)
        recovery = .rebuilt(reason: why.description)
      }
    } else {
      env = try Environment(path: path, readOnly: false)
    }
    try self.init(
      env: env, lock: lock, path: path, readOnly: false, journal: journal, options: options,
      progress: progress)
    self.recovery = recovery
    let copy = Self.newestSnapshotBytes(path)
    snapshotProgress.withLock { $0.lastCopyBytes = copy }
    // An import a crash interrupted is finished before anything else is written.
    try resumeReconImports()
  }

  init(
    env: Environment, lock: WriterLock?, path: String, readOnly: Bool, origin: String? = nil,
    journal: Journal? = nil, options: LedgerOptions = .init(), progress: ProgressHandler? = nil,
    building: Bool = false
  ) throws(StoreError) {
    self.env = env
    self.lock = lock
    self.path = path
    self.readOnly = readOnly
    self.options = options
    self.journal = journal
    if !readOnly {
      // Every byte of the map gets its disk blocks before a commit can store into it (see
      // `Environment.allocate`); a directory written before this is allocated now.
      let map = env.info.mapSize
      mapBlocksAllocated = try env.allocate(map, keepBytes: map) == .allocated
    }
    // Handles opened in a transaction survive only if it commits.
    let opener = try env.begin(readOnly: true)
    var dbs: DBs
    do throws(StoreError) {
      // Nothing is read through LMDB before its pages are checked (MapAudit): the snapshot
      // this reader holds is the one walked, and it stays put while the reader is open.
      _ = try MapAudit.check(file: path + "/data.mdb", txnID: UInt64(mdb_txn_id(opener)))
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
    if signer == nil && !readOnly && !building {
      signer = try SigningKey.create(directory: path, origin: origin ?? SigningKey.defaultOrigin())
    }
    self.reader = LedgerReader(env: env, dbs: dbs, signer: signer)
    let found: UInt32
    do {
      let txn = try env.begin(readOnly: true)
      defer { mdb_txn_abort(txn) }
      let t = Txn(txn: txn)
      guard let fv = try t.get(dbs.meta, Self.metaKey("format")), fv.count == 4 else {
        throw StoreError.corrupt("meta has no format version")
      }
      found = UInt32(bigEndian: fv.loadUnaligned(as: UInt32.self))
      head = try Self.readHead(t, dbs)
      accountCount = try Self.readAccountCount(t, dbs)
      reconCounts = try Self.readReconCounts(t, dbs)
      if found >= 4, let journal {
        guard let id = try t.get(dbs.meta, Self.metaKey("journal")), Array(id) == journal.ledgerID
        else {
          throw StoreError.corrupt(
            "the journal (ledger \(journal.ledgerID.hex)) belongs to another ledger than "
              + "these projections")
        }
      }
    } catch {
      throw Self.storeError(error)
    }
    if readOnly {
      guard found == Self.formatVersion && dbs.hasFormat3 else {
        throw .formatVersion(found: found, expected: Self.formatVersion)
      }
      return
    }
    guard (1...Self.formatVersion).contains(found) else {
      throw .formatVersion(found: found, expected: Self.formatVersion)
    }
    if building {
      // A snapshot being built (`buildSnapshot`): projections of this format, written
      // without syncs, brought forward by replaying the live journal; nothing else.
      guard found == Self.formatVersion && dbs.hasFormat3 else {
        throw .formatVersion(found: found, expected: Self.formatVersion)
      }
      try env.setNoSync()
      try loadTreeFrontier()
      return
    }
    // Records the replay will apply, when known before it starts (0: not known).
    var replayTotal: UInt64 = 0
    if found < 4 {
      // Formats 1–3 keep the log in LMDB only: write the journal from it, then recompute
      // every projection from the journal (docs/FORMAT.md, "Compatibility").
      replayTotal = try migrateToJournal(progress: progress)
    } else if self.journal == nil {
      throw .corrupt(
        "\(path)/journal is missing: the projections of a format-\(found) directory are not "
          + "the log")
    } else if found == 4 {
      // Format 4 kept a copy of each account's last history row in `balances`.
      try writeLMDB { (t, raw) throws(StoreError) in
        try check(mdb_drop(raw, dbs.balances, 0), "drop")
        try withBytes(of: Self.formatVersion.bigEndian) { (v) throws(StoreError) in
          try t.put(dbs.meta, Self.metaKey("format"), v)
        }
      }
      try env.sync()
    }
    try recover(progress: progress, total: replayTotal)
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
    return try retryingMapFull { () throws(StoreError) in
      try applyOnce(commands, scopes: scopes, now: now)
    }
  }

  /// Runs one write transaction, growing the map and running it again when it hits
  /// `MDB_MAP_FULL` (nothing of it was committed), at most 8 times. `mapFull` reaches the
  /// caller only when the map is at `LedgerOptions.mapBytesMax` (or cannot be grown).
  ///
  /// An I/O error (`StoreError.io`) stops the journal: LMDB or the disk under it failed in a
  /// way a retry cannot be trusted to survive. Out of space (`noSpace`) does not: nothing of
  /// the transaction was committed and the journal is as it was (docs/FORMAT.md, "A write
  /// that fails").
  func retryingMapFull<R>(_ body: () throws(StoreError) -> R) throws(StoreError) -> R {
    do throws(StoreError) {
      try growIfNeeded()
      var attempts = 0
      while true {
        do throws(StoreError) {
          return try body()
        } catch .mapFull {
          attempts += 1
          if attempts > 8 || grownMapBytes(env.info.mapSize) == nil { throw .mapFull }
          try grow()
        }
      }
    } catch {
      if case .io = error { journal?.poison() }
      throw error
    }
  }

  /// Past 80 % of the map, grows it (waiting for reads in flight); past 60 %, grows it only
  /// when no read is in flight, so that a long read (an import's plan, an export) seldom
  /// makes a write wait for it: the map usually grows between reads, well before it is full.
  func growIfNeeded() throws(StoreError) {
    let (map, used) = env.info
    guard let next = grownMapBytes(map) else { return }
    do throws(StoreError) {
      if used * 5 >= map * 4 {
        try grow()
      } else if used * 5 >= map * 3 {
        // No wait, so no sync first (see `grow`): a read in flight just defers this.
        _ = try reader.gate.tryExclusive { () throws(StoreError) in
          let held = monotonicNanos()
          defer { growNanos &+= monotonicNanos() &- held }
          try growMap(from: map, to: next)
        }
      }
    } catch .noSpace {
      // Growing ahead of need: the group may still fit the map as it is. If it does not,
      // it hits MDB_MAP_FULL and `grow` reports the full disk to its caller.
    }
  }

  /// Allocates the disk blocks of a map of `next` bytes, then maps it (see
  /// `Environment.allocate`). When the disk cannot hold the whole step, smaller ones (halved
  /// down to 1 MiB) are tried before giving up with `noSpace`. Only with no transaction open.
  func growMap(from map: Int, to next: Int) throws(StoreError) {
    var target = next
    while true {
      do throws(StoreError) {
        if try env.allocate(target, keepBytes: map) == .unsupported { mapBlocksAllocated = false }
        try env.setMapSize(target)
        return
      } catch .noSpace(let why) {
        let step = (target - map) / 2
        if step < 1 << 20 { throw .noSpace(why) }
        target = map + step
      }
    }
  }

  /// Grows the map one step; `mapFull` when it is at `LedgerOptions.mapBytesMax` already.
  func grow() throws(StoreError) {
    // Readers wait for their snapshot to be durable while holding the gate taken below: make
    // everything written durable first, or a group committed without a sync (an import's
    // write group, left for a later sync) would hold them, and them this, forever.
    try journal?.sync()
    let (map, _) = env.info
    guard let next = grownMapBytes(map) else { throw .mapFull }
    // mdb_env_set_mapsize requires that no transaction is active in this process: wait
    // for in-flight reads on other threads to finish, and hold new ones off meanwhile.
    // A snapshot's copy holds its read for as long as it takes (a minute, paced, for
    // gigabytes): cancel it rather than wait. Its growth was measured; the next makes room.
    if snapshotCopy.running.load(ordering: .acquiring) {
      snapshotCopy.cancel.store(true, ordering: .releasing)
    }
    let asked = monotonicNanos()
    var held: Int64 = 0
    defer {
      let done = monotonicNanos()
      growWaitNanos &+= held == 0 ? done &- asked : held &- asked
      if held != 0 { growNanos &+= done &- held }
    }
    try reader.gate.exclusive { () throws(StoreError) in
      held = monotonicNanos()
      do throws(StoreError) { try growMap(from: map, to: next) } catch {
        if case .noSpace = error { throw error }
        // LMDB unmapped the old size before it failed to map the new one: the environment
        // is unusable until the next open, so this stops writes (`retryingMapFull`).
        throw StoreError.io("cannot grow the LMDB map to \(next) bytes: \(error)")
      }
    }
  }

  /// The map size after one growth step from `map`.
  static func grown(_ map: Int) -> Int { map + min(map, mapGrowthStepMaxBytes) }

  /// The map size after one growth step from `map`, capped at `LedgerOptions.mapBytesMax`;
  /// nil when it is there already.
  func grownMapBytes(_ map: Int) -> Int? {
    guard let max = options.mapBytesMax else { return Self.grown(map) }
    let next = min(Self.grown(map), max)
    return next > map ? next : nil
  }

  /// `extend`, when given, runs after each accepted command's events are applied, in the
  /// same transaction, and returns more events for that command (the matches an import
  /// finds); throwing aborts the whole batch.
  func applyOnce(
    _ commands: [Command], scopes: [Scope?]?, now: Int64,
    extend: ((inout StoreState, Int, [EventBody]) throws -> [EventBody])? = nil
  ) throws(StoreError) -> (outcomes: [Outcome], receipts: [Receipt?]) {
    guard let journal else { throw .corrupt("apply on a ledger without its journal") }
    if closed { throw .io("the ledger is closed") }
    let raw = try env.begin(readOnly: false)
    let cache = writerCache
    cache.beginBatch()
    groupBuffer.bytes.removeAll(keepingCapacity: true)
    // Every record of this group was written after this seq was known durable.
    let syncedThrough = journal.syncedThroughForNextGroup
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
    var frontier = treeFrontier
    var outcomes = [Outcome]()
    outcomes.reserveCapacity(commands.count)
    var receipts = [Receipt?]()
    receipts.reserveCapacity(commands.count)
    var eventBytes = ByteWriter(capacity: 256)
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
        JournalFormat.frame(
          &groupBuffer, seq: event.seq, syncedThrough: syncedThrough, leaf: leaf, chain: chain,
          event: eventBytes.bytes)
        try putLogRecord(
          txn, &frontier, seq: event.seq, eventBytes.bytes, leaf: leaf, chain: chain, after: h)
        do {
          try Machine.apply(event, &state)
        } catch {
          throw Self.storeError(error)
        }
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
      // Journal first: the group's records are written (not yet synced) before LMDB commits,
      // so the projections never hold an event the journal lacks, even after SIGKILL.
      let appended = h.seq != head.seq
      if appended {
        try withBytes(groupBuffer.bytes) { (b) throws(StoreError) in
          try journal.append(
            b, first: head.seq + 1, last: h.seq, chainBefore: head.chain, chainAfter: h.chain)
        }
      }
      reader.pending.store(h.seq, ordering: .releasing)
      // mdb_txn_commit frees the transaction whether or not it succeeds: never abort it after.
      committed = true
      let rc = mdb_txn_commit(raw)
      if rc != 0 {
        cache.reset(accountCount: accountCount, recon: reconCounts)
        reader.pending.store(head.seq, ordering: .releasing)
        // Nothing of the group was applied or acknowledged: take its records back.
        if appended {
          try journal.unappend(
            groupBytes: groupBuffer.bytes.count, toSeq: head.seq, chain: head.chain)
        }
        try check(rc, "commit")
      }
      if appended {
        let bytes = groupBuffer.bytes.count
        snapshotProgress.withLock { $0.bytes += bytes }
        if syncEachGroup { try journal.sync() }
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

  public static func storeError(_ error: any Error) -> StoreError {
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
