import CLMDB
import Glibc
import TallyCore
import TallyCrypto

/// How a ledger opens its files.
public struct LedgerOptions: Sendable {
  /// The file layer of the journals and the marker (crash-image tests record through it).
  public var files: JournalFiles = JournalFiles()
  /// A new journal segment's capacity.
  public var segmentBytes = JournalFormat.segmentBytesDefault
  /// The largest the LMDB map may grow to (`tallyd --map-max-mib`); nil: no limit but the
  /// disk. At the limit a write that needs more pages fails with `StoreError.mapFull` and
  /// nothing of it is committed; a map already larger is left as it is.
  public var mapBytesMax: Int?
  /// This boot's identity; nil reads `/proc/sys/kernel/random/boot_id`. Crash images are
  /// opened as another boot than the one that wrote them.
  public var bootID: String?

  public init() {}

  public func currentBootID() throws(StoreError) -> String {
    if let bootID { return bootID }
    let path = "/proc/sys/kernel/random/boot_id"
    guard let f = fopen(path, "r") else {
      throw .io("cannot read \(path) (needed to tell a process crash from an OS crash)")
    }
    defer { fclose(f) }
    var buf = [CChar](repeating: 0, count: 128)
    guard fgets(&buf, 128, f) != nil else { throw .io("\(path) is empty") }
    let s = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    let id = s.trimmingNewline()
    guard !id.isEmpty else { throw .io("\(path) is empty") }
    return id
  }
}

extension Environment {
  /// Commits from now on write their pages without syncing: the journal is what makes a
  /// group durable, and `sync()` makes the projections durable at checkpoints and close.
  func setNoSync() throws(StoreError) {
    try check(mdb_env_set_flags(env, UInt32(MDB_NOSYNC), 1), "env_set_flags")
  }

  /// Flushes every committed transaction to disk.
  func sync() throws(StoreError) {
    try check(mdb_env_sync(env, 1), "env_sync")
  }
}

/// One record replayed from the journal into LMDB.
struct ReplayRecord {
  var event: Event
  var bytes: [UInt8]
  var leaf: Hash32
  var chain: Hash32
}

extension Ledger {
  /// The marker that LMDB may hold writes that were never synced: `journal/lmdb-unsynced`,
  /// holding the boot id of the machine that wrote them. Written (durably) before the first
  /// unsynced commit of a read-write open; removed by `close` after `mdb_env_sync`.
  static let markerName = "lmdb-unsynced"
  /// Events replayed per LMDB transaction during recovery.
  static let replayBatchEvents = 8192

  static func readMarker(_ journalDir: String, _ files: JournalFiles) throws(StoreError)
    -> String?
  {
    let path = journalDir + "/" + markerName
    guard fileExists(path) else { return nil }
    let fd = try files.open(path, create: false)
    defer { files.close(fd) }
    let b = try files.read(fd, count: 256, at: 0)
    // An empty or torn marker still says "unsynced writes may exist": trust nothing.
    return String(decoding: b, as: UTF8.self).trimmingNewline()
  }

  /// Whether LMDB may hold pages that an OS crash lost or tore: a marker left by a boot
  /// other than this one. A process crash (same boot) leaves the page cache intact, so the
  /// projections are then a consistent state of some log prefix.
  static func projectionsUntrusted(_ journalDir: String, _ options: LedgerOptions)
    throws(StoreError) -> Bool
  {
    guard let marker = try readMarker(journalDir, options.files) else { return false }
    return marker != (try options.currentBootID())
  }

  /// Writes the state kept outside the log into the keys and checkpoints tables, and meta
  /// `aux` (how much of the aux journal LMDB holds).
  static func applyAux(_ t: Txn, _ raw: OpaquePointer, _ records: [AuxJournal.Record])
    throws(StoreError)
  {
    guard let last = records.last else { return }
    var keys: MDB_dbi = 0
    var checkpoints: MDB_dbi = 0
    try check(mdb_dbi_open(raw, "keys", UInt32(MDB_CREATE), &keys), "dbi_open keys")
    try check(
      mdb_dbi_open(raw, "checkpoints", UInt32(MDB_CREATE), &checkpoints), "dbi_open checkpoints")
    for r in records {
      let dbi = r.table == .keys ? keys : checkpoints
      try withBytes(r.key) { (k) throws(StoreError) in
        try withBytes(r.value) { (v) throws(StoreError) in try t.put(dbi, k, v) }
      }
    }
    var meta: MDB_dbi = 0
    try check(mdb_dbi_open(raw, "meta", UInt32(MDB_CREATE), &meta), "dbi_open meta")
    try withBytes(of: UInt64(last.end).bigEndian) { (v) throws(StoreError) in
      try t.put(meta, metaKey("aux"), v)
    }
  }

  /// After opening read-write: mark LMDB as written without syncs, replay the journal's
  /// tail into the projections, cut a torn tail, and bring the aux state up to date.
  /// `progress` sees the replay; `total` is the journal's last seq when known (0: not).
  func recover(progress: ProgressHandler? = nil, total: UInt64 = 0) throws(StoreError) {
    guard let journal else { throw .corrupt("recover without a journal") }
    try writeFileDurably(
      journal.directory + "/" + Self.markerName, Array((try options.currentBootID() + "\n").utf8),
      files: options.files)
    try options.files.syncDirectory(journal.directory)
    try env.setNoSync()
    try loadTreeFrontier()
    let result = try replayJournal(progress: progress, total: total)
    try journal.openForWriting(result)
    let (auxJournal, records) = try AuxJournal.open(
      directory: journal.directory, files: options.files, repair: true)
    let applied: UInt64 = try reader.read { t in
      guard let v = try t.get(dbs.meta, Self.metaKey("aux")), v.count == 8 else { return 0 }
      return UInt64(bigEndian: v.loadUnaligned(as: UInt64.self))
    }
    let newer = records.filter { UInt64($0.end) > applied }
    if !newer.isEmpty {
      try writeLMDB { (t, raw) throws(StoreError) in try Self.applyAux(t, raw, newer) }
    }
    aux = auxJournal
    writerCache.reset(accountCount: accountCount, recon: reconCounts)
  }

  /// Reads the right edge of the Merkle tree at the head (`treeFrontier`), before a replay.
  func loadTreeFrontier() throws(StoreError) {
    do {
      let t = try env.begin(readOnly: true)
      defer { mdb_txn_abort(t) }
      treeFrontier = try Tree.frontier(Txn(txn: t), dbs, size: head.seq)
    } catch {
      throw Self.storeError(error)
    }
  }

  /// One LMDB write transaction outside the log path, committed (not synced).
  func writeLMDB(_ body: (Txn, OpaquePointer) throws(StoreError) -> Void) throws(StoreError) {
    try growIfNeeded()
    let raw = try env.begin(readOnly: false)
    do { try body(Txn(txn: raw), raw) } catch {
      mdb_txn_abort(raw)
      throw error
    }
    try check(mdb_txn_commit(raw), "commit")
  }

  /// Applies every journal record after the projections' head, in transactions of
  /// `batchEvents` (a recovery's `replayBatchEvents`), and returns where the journal ends.
  /// The record at the head must carry the head's chain hash: otherwise the journal and LMDB
  /// are of different histories.
  ///
  /// `source` replaces this ledger's own journal (a snapshot being built reads the live one),
  /// and `through` stops the replay after that seq: the scan then reads no record after it,
  /// so records being appended meanwhile are never looked at (the result then names
  /// `through` and its chain hash, and no write position). `afterBatch` runs after each
  /// transaction's commit.
  func replayJournal(
    progress: ProgressHandler? = nil, total: UInt64 = 0, source: Journal? = nil,
    through: UInt64? = nil, batchEvents: Int = Ledger.replayBatchEvents,
    afterBatch: (() throws(StoreError) -> Void)? = nil
  ) throws(StoreError) -> Journal.ScanResult {
    guard let journal = source ?? self.journal else {
      throw .corrupt("replay without a journal")
    }
    let start = head
    if let through, through <= start.seq {
      throw .corrupt("replay through seq \(through), at or before the head \(start.seq)")
    }
    struct Reached: Error {}
    var batch = [ReplayRecord]()
    let batchEvents = max(1, batchEvents)
    batch.reserveCapacity(batchEvents)
    let result: Journal.ScanResult
    do {
      try journal.checkStructure(before: journal.segmentIndex(holding: max(1, start.seq)))
      result = try journal.scan(from: max(1, start.seq)) { r in
        if r.seq <= start.seq {
          if r.seq == start.seq && r.chain != start.chain {
            throw StoreError.corrupt(
              "journal: seq \(r.seq): its chain hash differs from the projections' head: the "
                + "journal and data.mdb hold different histories")
          }
          return
        }
        let event: Event
        do { event = try EventCodec.decode(r.event) } catch {
          throw StoreError.corrupt("journal: seq \(r.seq): the event does not decode: \(error)")
        }
        guard event.seq == r.seq else {
          throw StoreError.corrupt("journal: seq \(r.seq): the event carries seq \(event.seq)")
        }
        batch.append(
          ReplayRecord(event: event, bytes: Array(r.event), leaf: r.leaf, chain: r.chain))
        if batch.count >= batchEvents {
          try applyReplay(batch)
          batch.removeAll(keepingCapacity: true)
          progress?(.replay, head.seq, total)
          try afterBatch?()
        }
        if r.seq == through { throw Reached() }
      }
      if !batch.isEmpty {
        try applyReplay(batch)
        progress?(.replay, head.seq, total)
      }
    } catch let e as JournalError {
      throw .corrupt(e.description)
    } catch is Reached {
      if !batch.isEmpty {
        try applyReplay(batch)
        progress?(.replay, head.seq, total)
        try afterBatch?()
      }
      return Journal.ScanResult(
        lastSeq: head.seq, lastChain: head.chain, end: .clean, segmentIndex: 0, offset: 0)
    } catch {
      throw Self.storeError(error)
    }
    if let through {
      // The scan ended without reaching it.
      throw .corrupt(
        "the journal ends at seq \(result.lastSeq), before seq \(through) that it had made "
          + "durable")
    }
    if result.lastSeq < start.seq {
      throw .corrupt(
        "the journal ends at seq \(result.lastSeq) but the projections hold seq \(start.seq): "
          + "journal records are missing")
    }
    return result
  }

  func applyReplay(_ batch: [ReplayRecord]) throws(StoreError) {
    try retryingMapFull { () throws(StoreError) in try applyReplayOnce(batch) }
  }

  private func applyReplayOnce(_ batch: [ReplayRecord]) throws(StoreError) {
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
    var frontier = treeFrontier
    for r in batch {
      try putLogRecord(
        txn, &frontier, seq: r.event.seq, r.bytes, leaf: r.leaf, chain: r.chain, after: h)
      do { try Machine.apply(r.event, &state) } catch { throw Self.storeError(error) }
      h = LogHead(seq: r.event.seq, timestampNanos: r.event.timestampNanos, chain: r.chain)
    }
    do { try state.flush() } catch { throw Self.storeError(error) }
    try writeHead(txn, h, accounts: cache.accountCount)
    reader.pending.store(h.seq, ordering: .releasing)
    // mdb_txn_commit frees the transaction whether or not it succeeds: never abort it after.
    committed = true
    let rc = mdb_txn_commit(raw)
    if rc != 0 {
      cache.reset(accountCount: accountCount, recon: reconCounts)
      reader.pending.store(head.seq, ordering: .releasing)
      try check(rc, "commit")
    }
    head = h
    accountCount = cache.accountCount
    reconCounts = cache.recon
    treeFrontier = frontier
  }

  /// The log's own LMDB rows for one event: its bytes, its leaf and chain hashes, and the
  /// Merkle tree nodes it completes. `after` is the head before it.
  func putLogRecord(
    _ txn: Txn, _ frontier: inout [Hash32], seq: UInt64, _ bytes: [UInt8], leaf: Hash32,
    chain: Hash32, after: LogHead
  ) throws(StoreError) {
    precondition(seq == after.seq + 1, "seq must advance by one")
    guard let tree = dbs.tree else { throw .corrupt("the tree database is not open") }
    try withBytes(bytes) { (v) throws(StoreError) in
      try txn.put(dbs.log, u64: seq, v, flags: UInt32(MDB_APPEND))
    }
    var both = (leaf, chain)
    try withUnsafeBytes(of: &both) { (v) throws(StoreError) in
      try txn.put(dbs.hashes, u64: seq, v, flags: UInt32(MDB_APPEND))
    }
    try Tree.append(txn, tree, hasher, &frontier, index: seq - 1, leaf: leaf)
  }

  // MARK: migration

  /// Formats 1–3 → 4: writes the journal from the LMDB log (under `journal.new`, synced, then
  /// renamed to `journal`: an interrupted migration leaves no journal, or a whole one), then
  /// empties every table derived from it and records format 4; `recover` then replays the
  /// whole journal. Rerunning after an interruption at any point gives the same result.
  /// Returns the journal's last seq when it wrote the journal (0 when it was there).
  func migrateToJournal(progress: ProgressHandler? = nil) throws(StoreError) -> UInt64 {
    let files = options.files
    var copied: UInt64 = 0
    if journal == nil {
      let final = path + "/journal"
      let tmp = path + "/journal.new"
      if let names = try directoryNames(tmp) {
        for n in names { try files.unlink(tmp + "/" + n) }
        if rmdir(tmp) != 0 {
          throw .io("cannot remove \(tmp): \(String(cString: strerror(errno)))")
        }
      }
      let j = try Journal.create(directory: tmp, files: files, segmentBytes: options.segmentBytes)
      try j.openForWriting(try j.scanEnd())
      copied = try copyLogToJournal(j, progress)
      try j.close()
      let (aux, _) = try AuxJournal.open(directory: tmp, files: files, repair: true)
      guard let aux else { throw .io("cannot create \(tmp)/\(AuxJournal.fileName)") }
      _ = try aux.append(try auxRecordsInLMDB())
      try files.syncDirectory(tmp)
      try files.rename(tmp, final)
      try files.syncDirectory(path)
      journal = try Journal.load(directory: final, files: files, segmentBytes: options.segmentBytes)
    }
    guard let journal else { throw .corrupt("the migrated journal did not load") }
    try resetProjections(ledgerID: journal.ledgerID)
    return copied
  }

  /// Copies the LMDB log into `j`, checking every leaf and chain hash on the way (a log that
  /// does not verify is not migrated). Returns the last seq copied.
  private func copyLogToJournal(_ j: Journal, _ progress: ProgressHandler?) throws(StoreError)
    -> UInt64
  {
    try reader.read { t in
      let total = try Self.readHead(t, dbs).seq
      progress?(.migrate, 0, total)
      let c = try t.cursor(dbs.log)
      defer { c.close() }
      var w = ByteWriter(capacity: 1 << 20)
      var prev = LogHead.empty
      var groupStart = prev
      var row = try c.get(MDB_FIRST)
      while let (k, v) = row {
        guard k.count == 8 else { throw StoreError.corrupt("a log key of \(k.count) bytes") }
        let seq = UInt64(bigEndian: k.loadUnaligned(as: UInt64.self))
        guard seq == prev.seq + 1 else {
          throw StoreError.corrupt("log gap before seq \(seq); run verify before migrating")
        }
        let leaf = hasher.leaf(v)
        let chain = hasher.chain(prev.chain, leaf)
        // Each record is its own group (synced through seq - 1): a bad record that any
        // other follows is then always reported, never cut.
        JournalFormat.frame(
          &w, seq: seq, syncedThrough: seq - 1, leaf: leaf, chain: chain, event: Array(v))
        prev = LogHead(seq: seq, timestampNanos: 0, chain: chain)
        if seq & 0xfff == 0 { progress?(.migrate, seq, total) }
        if w.bytes.count >= 1 << 20 {
          try withBytes(w.bytes) { (b) throws(StoreError) in
            try j.append(
              b, first: groupStart.seq + 1, last: seq, chainBefore: groupStart.chain,
              chainAfter: chain)
          }
          w.bytes.removeAll(keepingCapacity: true)
          groupStart = prev
        }
        row = try c.get(MDB_NEXT)
      }
      if !w.bytes.isEmpty {
        try withBytes(w.bytes) { (b) throws(StoreError) in
          try j.append(
            b, first: groupStart.seq + 1, last: prev.seq,
            chainBefore: groupStart.chain, chainAfter: prev.chain)
        }
      }
      progress?(.migrate, prev.seq, total)
      let stored = try Self.readHead(t, dbs)
      guard stored.seq == prev.seq, stored.chain == prev.chain else {
        throw StoreError.corrupt(
          "the log (seq \(prev.seq)) does not match its head (seq \(stored.seq)); run verify")
      }
      return prev.seq
    }
  }

  /// Keys and kept checkpoints as aux records.
  func auxRecordsInLMDB() throws(StoreError) -> [AuxJournal.Record] {
    try reader.read { t in
      var out = [AuxJournal.Record]()
      if let keys = dbs.keys {
        try Self.scan(t, keys) { k, v in
          out.append(.init(table: .keys, key: Array(k), value: Array(v)))
        }
      }
      if let cps = dbs.checkpoints {
        try Self.scan(t, cps) { k, v in
          out.append(.init(table: .checkpoints, key: Array(k), value: Array(v)))
        }
      }
      return out
    }
  }

  /// Empties the log's LMDB rows and every projection, and records format 4 and the
  /// journal's ledger id, in one synced transaction; `recover` then replays the journal.
  /// Keys and kept checkpoints stay.
  func resetProjections(ledgerID: [UInt8]) throws(StoreError) {
    try writeLMDB { (t, raw) throws(StoreError) in
      guard let tree = dbs.tree else { throw .corrupt("the tree database is not open") }
      for dbi in [dbs.log, dbs.hashes, tree] + dbs.projections {
        try check(mdb_drop(raw, dbi, 0), "drop")
      }
      for name: StaticString in ["head", "accounts", "recon"] {
        try t.delete(dbs.meta, Self.metaKey(name))
      }
      try withBytes(of: Self.formatVersion.bigEndian) { (v) throws(StoreError) in
        try t.put(dbs.meta, Self.metaKey("format"), v)
      }
      try withBytes(ledgerID) { (v) throws(StoreError) in
        try t.put(dbs.meta, Self.metaKey("journal"), v)
      }
    }
    try env.sync()
    head = .empty
    accountCount = 0
    reconCounts = (0, 0)
    treeFrontier = [Hash32](repeating: .zero, count: Tree.levelsMax)
    writerCache.reset(accountCount: 0, recon: (0, 0))
  }

  // MARK: close

  /// Syncs the journal and LMDB and removes the unsynced marker: the next open, on any
  /// boot, trusts the projections. Further writes are refused. Idempotent.
  public func close() throws(StoreError) {
    if closed || readOnly { return }
    closed = true
    guard let journal else { return }
    try journal.close()
    try env.sync()
    try options.files.unlink(journal.directory + "/" + Self.markerName)
    try options.files.syncDirectory(journal.directory)
  }
}
