import CLMDB
import Glibc
import TallyCore
import TallyCrypto

/// Why a backup or a restore failed. Codes never change (docs/BACKUP.md, "Errors").
public enum BackupError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The data directory (missing, locked, corrupt) or an I/O error: the store's own code.
  case store(StoreError)
  /// `--out` or `--data NEW` exists and is not an empty directory.
  case targetNotEmpty(String)
  /// A write failed for want of space (ENOSPC, EDQUOT).
  case diskFull(String)
  /// The directory has no manifest, or one this tally does not read.
  case notABackup(String)
  /// A file is missing, unlisted, or differs from the manifest (size or SHA-256).
  case manifestMismatch(String)
  /// An incremental backup's base is of another ledger or history, or not the one recorded.
  case baseMismatch(String)
  /// The laid-out copy does not verify, or does not end at the head recorded.
  case verifyFailed(String)

  public var code: String {
    switch self {
    case .store(let e): e.code
    case .targetNotEmpty: "TARGET_NOT_EMPTY"
    case .diskFull: "DISK_FULL"
    case .notABackup: "NOT_A_BACKUP"
    case .manifestMismatch: "MANIFEST_MISMATCH"
    case .baseMismatch: "BASE_MISMATCH"
    case .verifyFailed: "VERIFY_FAILED"
    }
  }

  /// True when the backup (or its restore) is not what it claims to be, as opposed to an
  /// operating error: the CLI exits 1 for these, as `verify` does for a failed check.
  public var isIntegrityFailure: Bool {
    switch self {
    case .notABackup, .manifestMismatch, .baseMismatch, .verifyFailed: true
    case .store, .targetNotEmpty, .diskFull: false
    }
  }

  public var description: String {
    switch self {
    case .store(let e): e.description
    case .targetNotEmpty(let m), .diskFull(let m), .notABackup(let m), .manifestMismatch(let m),
      .baseMismatch(let m), .verifyFailed(let m):
      m
    }
  }
}

extension ProgressPhase {
  /// A backup's or a restore's copying, in bytes; the verification after it reports the
  /// verify phases.
  public static let backupCopy = ProgressPhase("copy", .bytes)
}

/// Progress of a backup or restore: `.backupCopy`, then the verify phases.
public typealias BackupProgress = ProgressHandler

/// What `backup` wrote.
public struct BackupSummary: Sendable {
  public var directory: String
  public var manifest: BackupManifest
  /// Size of the compacted `data.mdb` (0 in an incremental backup, which has none).
  public var dataBytes: Int
  /// Bytes of journal segments copied.
  public var journalBytes: Int
  /// Events the verification of the laid-out copy replayed (the whole log).
  public var verifiedEvents: UInt64
  /// Time spent copying (LMDB, journal, keys) and laying out and verifying the copy.
  public var copyNanos: Int64
  public var verifyNanos: Int64
}

/// What `restore` laid out.
public struct RestoreSummary: Sendable {
  public var directory: String
  public var head: LogHead
  /// The backups restored, the full one first.
  public var backups: [String]
  public var verifiedEvents: UInt64
}

extension Ledger {
  /// Backups chained through `--since` at most: each restore reads every one of them.
  public static let backupChainMax = 64
  /// Times a copy is retried when another process grew the map under it.
  static let copyMapResizedRetriesMax = 8

  /// Writes a backup of this ledger into `directory` (created; must be empty if it exists)
  /// while a writer may be appending (docs/BACKUP.md): the projections as one compacted LMDB
  /// read transaction, then the journal's records up to that copy's head, `aux.log` up to
  /// what that copy holds, the signing keys, and a checkpoint signed at the head. The copy
  /// is laid out in `DIR/.verify`, opened and fully verified before `BACKUP.json` is
  /// written; a failed backup leaves no manifest and is removed.
  ///
  /// With `since` (an earlier backup of this ledger), only the journal segments holding its
  /// head and later are copied, and no `data.mdb`: restore takes the chain.
  public func backup(
    to directory: String, since: String? = nil, now: Int64, progress: BackupProgress? = nil
  ) throws(BackupError) -> BackupSummary {
    let base = try since.map { (b) throws(BackupError) in try BackupChain.load(b) }
    let started = monotonicNanos()
    let created = try BackupFiles.prepareEmpty(directory)
    var finished = false
    defer { if !finished { BackupFiles.removeTree(directory, keepRoot: !created) } }
    guard chmod(directory, 0o700) == 0 else {
      throw .store(.io("cannot restrict \(directory): \(String(cString: strerror(errno)))"))
    }
    try BackupFiles.makeDirectory(directory + "/" + BackupLayout.journalDir)

    // 1. The projections (full backups): one read transaction, compacted. Its head is the
    // backup's: every entry acknowledged before now was committed to LMDB before its OK.
    var dataBytes = 0
    let state: BackupFiles.MetaState
    if base == nil {
      let data = directory + "/" + BackupLayout.dataFile
      try compactCopy(to: data)
      state = try BackupFiles.copiedMeta(data)
      dataBytes = try BackupFiles.size(data)
    } else {
      do {
        state = try reader.read(waitDurable: false) { t in try BackupFiles.metaState(t, dbs) }
      } catch { throw .store(error) }
    }
    progress?(.backupCopy, UInt64(dataBytes), 0)

    // 2. The journal, up to that head; its ledger id must be the projections'.
    let journalDir = path + "/journal"
    let liveJournal: Journal
    do {
      guard let j = try Journal.load(directory: journalDir, files: options.files) else {
        throw StoreError.corrupt("\(journalDir) is missing")
      }
      liveJournal = j
    } catch { throw .store(Self.storeError(error)) }
    guard liveJournal.ledgerID == state.ledgerID else {
      throw .store(.corrupt("the journal belongs to another ledger than the projections"))
    }
    let head = state.head
    var firstSeq: UInt64 = 1
    if let link = base?.last {
      let b = link.manifest
      guard b.ledgerID == state.ledgerID else {
        throw .baseMismatch(
          "\(link.directory) is a backup of ledger \(b.ledgerID.hex), not this one")
      }
      guard b.head.seq <= head.seq else {
        throw .baseMismatch(
          "\(link.directory) holds seq \(b.head.seq), past this ledger's head \(head.seq)")
      }
      firstSeq = max(1, b.head.seq)
    }
    let journalBytes = try BackupFiles.copySegments(
      liveJournal, from: firstSeq, through: head.seq, base: base?.last?.manifest.head,
      into: directory + "/" + BackupLayout.journalDir
    ) { done in
      progress?(.backupCopy, UInt64(dataBytes + done), 0)
    }
    let outJournal = directory + "/" + BackupLayout.journalDir
    try BackupFiles.copy(
      journalDir + "/" + Journal.ledgerIDFile, to: outJournal + "/" + Journal.ledgerIDFile)
    try BackupFiles.copy(
      journalDir + "/" + AuxJournal.fileName, to: outJournal + "/" + AuxJournal.fileName,
      bytes: Int(state.auxBytes))

    // 3. The keys, and a checkpoint of the head signed by the ledger's key.
    let names: [String]
    do { names = try directoryNames(path) ?? [] } catch { throw .store(error) }
    for name in names
    where name == SigningKey.fileName
      || (name.hasPrefix(BackupLayout.retiredKeyPrefix) && BackupLayout.isFilePath(name))
    {
      try BackupFiles.copy(path + "/" + name, to: directory + "/" + name)
    }
    if head.seq > 0 {
      do {
        if case .success(let c)? = try checkpoint(size: head.seq) {
          try BackupFiles.write(
            Array(c.note.utf8), to: directory + "/" + BackupLayout.checkpointFile)
        }
      } catch let e as BackupError {
        throw e
      } catch {
        throw .store(Self.storeError(error))
      }
    }
    try BackupFiles.syncDirectory(outJournal)
    try BackupFiles.syncDirectory(directory)

    // 4. The manifest's list, then the drill: lay the chain out, open it, verify it.
    var manifest = BackupManifest(
      createdNanos: now, ledgerID: state.ledgerID, origin: reader.signer?.name, head: head,
      base: base?.last.map {
        BackupManifest.Base(
          path: $0.directory, head: $0.manifest.head, manifestSHA256: $0.manifestSHA256)
      }, files: [])
    manifest.files = try BackupFiles.describe(directory)
    let copied = monotonicNanos()
    let link = BackupChain.Link(directory: directory, manifest: manifest, manifestSHA256: .zero)
    let scratch = directory + "/.verify"
    let events = try BackupChain.restore(
      (base ?? []) + [link], into: scratch, progress: progress)
    BackupFiles.removeTree(scratch, keepRoot: false)

    try BackupFiles.write(manifest.encode(), to: directory + "/" + BackupManifest.fileName)
    try BackupFiles.syncDirectory(directory)
    finished = true
    return BackupSummary(
      directory: directory, manifest: manifest, dataBytes: dataBytes,
      journalBytes: journalBytes, verifiedEvents: events, copyNanos: copied - started,
      verifyNanos: monotonicNanos() - copied)
  }

  /// `mdb_env_copyfd2` with `MDB_CP_COMPACT` into a new file: the pages of one read
  /// transaction, free pages left out. Another process may grow the map meanwhile; the
  /// copy then starts over on the grown map.
  func compactCopy(to file: String) throws(BackupError) {
    let fd = try BackupFiles.create(file)
    defer { Glibc.close(fd) }
    var attempts = 0
    while true {
      let rc = reader.gate.shared { mdb_env_copyfd2(env.env, fd, UInt32(MDB_CP_COMPACT)) }
      if rc == MDB_MAP_RESIZED && attempts < Self.copyMapResizedRetriesMax {
        attempts += 1
        // Adopt the new size (a transaction begun on it), then copy again from the start.
        do { mdb_txn_abort(try env.begin(readOnly: true)) } catch { throw .store(error) }
        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else {
          throw .store(.io("cannot truncate \(file): \(String(cString: strerror(errno)))"))
        }
        continue
      }
      if rc == ENOSPC || rc == EDQUOT { throw .diskFull("no space left for \(file)") }
      do { try check(rc, "env_copy") } catch { throw .store(error) }
      break
    }
    try BackupFiles.sync(fd, file)
  }
}

/// A chain of backups: a full one, then the incrementals that continue it.
enum BackupChain {
  struct Link {
    var directory: String
    var manifest: BackupManifest
    var manifestSHA256: Hash32
  }

  /// Reads `directory`'s manifest and those of its bases, checking every file each lists
  /// (present, its size and SHA-256; nothing unlisted) and that each base is the one its
  /// incremental recorded. The full backup comes first.
  static func load(_ directory: String) throws(BackupError) -> [Link] {
    var links = [Link]()
    var next = directory
    for _ in 0..<Ledger.backupChainMax {
      let path = next + "/" + BackupManifest.fileName
      guard fileExists(path) else {
        throw .notABackup("\(next) has no \(BackupManifest.fileName): it is not a finished backup")
      }
      let raw: [UInt8]
      do { raw = try BackupFiles.read(path, max: BackupManifest.fileBytesMax) } catch {
        throw .notABackup("\(path): \(error)")
      }
      let manifest: BackupManifest
      switch BackupManifest.decode(raw) {
      case .success(let m): manifest = m
      case .failure(let why): throw .notABackup("\(path): \(why)")
      }
      let digest = SHA256Hasher().hash(raw)
      if let child = links.last, let b = child.manifest.base {
        guard digest == b.manifestSHA256, manifest.head == b.head,
          manifest.ledgerID == child.manifest.ledgerID
        else {
          throw .baseMismatch(
            "\(next) is not the base \(child.directory) was made from (its manifest differs)")
        }
      }
      try BackupFiles.checkFiles(next, manifest)
      let hasData = manifest.files.contains { $0.path == BackupLayout.dataFile }
      guard hasData == (manifest.base == nil) else {
        throw .manifestMismatch(
          "\(path): a full backup holds data.mdb and an incremental one does not")
      }
      links.append(Link(directory: next, manifest: manifest, manifestSHA256: digest))
      guard let b = manifest.base else { return links.reversed() }
      next = b.path
    }
    throw .baseMismatch("\(directory): more than \(Ledger.backupChainMax) backups in its chain")
  }

  /// Lays the chain out as a data directory in `target` (which must not exist or be empty),
  /// opens it read-write (the journal's records past data.mdb's head are replayed), verifies
  /// every event and projection, and checks it ends at the newest backup's head. Returns the
  /// events verified. On failure `target` is removed (or emptied, when it existed).
  static func restore(_ chain: [Link], into target: String, progress: BackupProgress?)
    throws(BackupError) -> UInt64
  {
    let created = try BackupFiles.prepareEmpty(target)
    var finished = false
    defer { if !finished { BackupFiles.removeTree(target, keepRoot: !created) } }
    guard chmod(target, 0o700) == 0 else {
      throw .store(.io("cannot restrict \(target): \(String(cString: strerror(errno)))"))
    }
    // Each path from the newest backup that has it: a later copy of a segment holds more.
    var source = [String: String]()
    var total = 0
    for link in chain {
      for f in link.manifest.files where f.path != BackupLayout.checkpointFile {
        source[f.path] = link.directory
        total += f.bytes
      }
    }
    try BackupFiles.makeDirectory(target + "/" + BackupLayout.journalDir)
    var done = 0
    for path in source.keys.sorted() {
      let from = source[path]! + "/" + path
      try BackupFiles.copy(from, to: target + "/" + path, extendSegment: true)
      done += try BackupFiles.size(from)
      progress?(.backupCopy, UInt64(done), UInt64(total))
    }
    try BackupFiles.syncDirectory(target + "/" + BackupLayout.journalDir)
    try BackupFiles.syncDirectory(target)

    let expected = chain.last!.manifest.head
    let report: VerifyReport
    do {
      let ledger = try Ledger(path: target, mode: .readWrite)
      report = try ledger.verify(progress: progress)
      try ledger.close()
    } catch { throw .store(error) }
    // The next segment's file, made ahead by the open: the next open would remove it anyway.
    unlink(target + "/" + BackupLayout.journalDir + "/" + SegmentPreparer.fileName)
    if let p = report.problems.first {
      throw .verifyFailed("the restored copy does not verify: \(p)")
    }
    guard report.head == expected, report.journalSeq == expected.seq,
      report.journalTorn == nil
    else {
      throw .verifyFailed(
        "the restored copy ends at seq \(report.head.seq) (chain \(report.head.chain.hex)), "
          + "not at the backup's head seq \(expected.seq) (chain \(expected.chain.hex))")
    }
    finished = true
    return report.events
  }
}

extension Backup {
  /// Restores the backup in `directory` (the newest of a chain of incrementals) into a new
  /// data directory `target`, which must not exist or be empty: every manifest's files are
  /// checked before anything is written, then the directory is laid out, opened and fully
  /// verified (docs/BACKUP.md, "Restore").
  public static func restore(
    from directory: String, to target: String, progress: BackupProgress? = nil
  ) throws(BackupError) -> RestoreSummary {
    let chain = try BackupChain.load(directory)
    let events = try BackupChain.restore(chain, into: target, progress: progress)
    return RestoreSummary(
      directory: target, head: chain.last!.manifest.head, backups: chain.map(\.directory),
      verifiedEvents: events)
  }

  /// The manifest of a finished backup, its files checked (and those of its bases).
  public static func check(_ directory: String) throws(BackupError) -> [BackupManifest] {
    try BackupChain.load(directory).map(\.manifest)
  }
}

/// Backup and restore entry points that need no open ledger.
public enum Backup {}
