import Glibc
import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

@testable import TallyStore

/// Backups of a real data directory: what they hold, that a restore verifies and ends at
/// the backup's head, and that every damaged or foreign input is refused with its code and
/// changes nothing (docs/BACKUP.md).
@Suite("Backup and restore")
struct BackupTests {
  static let accounts = ["cash", "alice", "bob"]

  /// A ledger with three accounts and `entries` transfers.
  static func fill(_ ledger: Ledger, entries: Int, prefix: String = "e", now: Int64 = t0) throws {
    if try ledger.account("cash") == nil {
      try applyAll(
        ledger, [open("cash"), open("alice", normal: .credit), open("bob", normal: .credit)])
    }
    var batch = [Command]()
    for i in 0..<entries {
      batch.append(transfer("\(prefix)\(i)", from: i % 2 == 0 ? "alice" : "bob", to: "cash", 7))
      if batch.count == 100 || i == entries - 1 {
        try applyAll(ledger, batch, now: now)
        batch.removeAll()
      }
    }
  }

  static func balances(_ ledger: Ledger) throws -> [Balances] {
    try accounts.map { try ledger.balances($0) }
  }

  static func readFile(_ path: String) throws -> [UInt8] { try readWholeFile(path) }

  static func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    let fd = Glibc.open(path, O_WRONLY | O_TRUNC | O_CREAT, 0o600)
    #expect(fd >= 0)
    defer { Glibc.close(fd) }
    let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    #expect(n == bytes.count)
  }

  static func flipByte(_ path: String, at offset: Int) throws {
    var b = try readFile(path)
    b[offset] ^= 0x01
    try writeFile(path, b)
  }

  static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

  /// The error `body` throws, required to be a `BackupError`.
  static func error(_ body: () throws -> Void) -> BackupError? {
    do {
      try body()
      return nil
    } catch let e as BackupError {
      return e
    } catch {
      Issue.record("not a BackupError: \(error)")
      return nil
    }
  }

  @Test func aBackupRestoresToItsHeadWithTheSameBalancesAndVerifies() throws {
    try withTempDir { dir in
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
      try Self.fill(ledger, entries: 500)
      let out = dir.path + "/backup"
      let s = try ledger.backup(to: out, now: t0)
      let head = ledger.head
      #expect(s.manifest.head == head)
      #expect(s.verifiedEvents == head.seq)
      #expect(s.dataBytes > 0 && s.journalBytes > 0)
      let paths = s.manifest.files.map(\.path)
      for p in ["data.mdb", "journal/ledger-id", "journal/aux.log", "signing.key", "checkpoint"] {
        #expect(paths.contains(p), "\(p) in \(paths)")
      }
      #expect(paths.contains { $0.hasSuffix(".seg") })
      #expect(!Self.exists(out + "/.verify"))
      // The checkpoint is signed at the head by the ledger's key.
      let note = String(decoding: try Self.readFile(out + "/checkpoint"), as: UTF8.self)
      #expect(note.contains("\n\(head.seq)\n") && note.contains("chain " + head.chain.hex))
      // Nothing in the backup is readable by others: it holds the signing key.
      var st = stat()
      #expect(stat(out, &st) == 0 && st.st_mode & 0o077 == 0)

      let restored = dir.path + "/restored"
      let r = try Backup.restore(from: out, to: restored)
      #expect(r.head == head)
      #expect(r.backups == [out])
      let copy = try Ledger(path: restored, mode: .readOnly)
      #expect(copy.head == head)
      #expect(try Self.balances(copy) == Self.balances(ledger))
      #expect(try copy.verify().ok)
      #expect(copy.verifierKey == ledger.verifierKey)
    }
  }

  @Test func aBackupHoldsTheHeadOfItsCopyAndNothingWrittenAfter() throws {
    try withTempDir { dir in
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
      try Self.fill(ledger, entries: 50)
      let out = dir.path + "/backup"
      let s = try ledger.backup(to: out, now: t0)
      try Self.fill(ledger, entries: 50, prefix: "later")
      #expect(ledger.head.seq > s.manifest.head.seq)
      let restored = dir.path + "/restored"
      let r = try Backup.restore(from: out, to: restored)
      #expect(r.head == s.manifest.head)
      let copy = try Ledger(path: restored, mode: .readWrite)
      #expect(try copy.idRecord("later0") == nil)
      #expect(try copy.idRecord("e49") != nil)
      // The restored directory takes writes and serves them.
      try Self.fill(copy, entries: 1, prefix: "new")
      #expect(copy.head.seq == s.manifest.head.seq + 1)
      try copy.close()
    }
  }

  @Test func aBackupOfAClosedLedgerOpenedReadOnlyRestores() throws {
    try withTempDir { dir in
      do {
        let writer = try Ledger.create(at: dir.ledgerPath, now: t0)
        try Self.fill(writer, entries: 20)
        try writer.close()
      }
      let ledger = try Ledger(path: dir.ledgerPath, mode: .readOnly)
      let out = dir.path + "/backup"
      let s = try ledger.backup(to: out, now: t0)
      #expect(s.manifest.head == ledger.head)
      #expect(try Backup.restore(from: out, to: dir.path + "/restored").head == ledger.head)
    }
  }

  @Test func aChangedByteInABackupFileIsRefusedAndNothingIsWritten() throws {
    try withTempDir { dir in
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
      try Self.fill(ledger, entries: 30)
      let out = dir.path + "/backup"
      let s = try ledger.backup(to: out, now: t0)
      let segment = try #require(s.manifest.files.first { $0.path.hasSuffix(".seg") })
      for path in [segment.path, "data.mdb", "journal/ledger-id", "signing.key", "checkpoint"] {
        try Self.flipByte(out + "/" + path, at: 5000 % (try Self.readFile(out + "/" + path).count))
        let target = dir.path + "/restored"
        let e = Self.error { _ = try Backup.restore(from: out, to: target) }
        #expect(e?.code == "MANIFEST_MISMATCH", "\(path): \(String(describing: e))")
        #expect(!Self.exists(target), "nothing laid out for \(path)")
        try Self.flipByte(out + "/" + path, at: 5000 % (try Self.readFile(out + "/" + path).count))
      }
      // Restored again once every byte is back.
      #expect(try Backup.restore(from: out, to: dir.path + "/again").head == ledger.head)
    }
  }

  @Test func aMissingExtraOrResizedFileIsRefused() throws {
    try withTempDir { dir in
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
      try Self.fill(ledger, entries: 10)
      let out = dir.path + "/backup"
      _ = try ledger.backup(to: out, now: t0)
      let target = dir.path + "/restored"

      try Self.writeFile(out + "/journal/extra", [1, 2, 3])
      let extra = Self.error { _ = try Backup.restore(from: out, to: target) }
      #expect(extra?.code == "MANIFEST_MISMATCH")
      #expect(extra?.description.contains("journal/extra") == true)
      unlink(out + "/journal/extra")

      let key = try Self.readFile(out + "/signing.key")
      unlink(out + "/signing.key")
      let missing = Self.error { _ = try Backup.restore(from: out, to: target) }
      #expect(missing?.code == "MANIFEST_MISMATCH")
      try Self.writeFile(out + "/signing.key", key + [0x0a])
      let longer = Self.error { _ = try Backup.restore(from: out, to: target) }
      #expect(longer?.code == "MANIFEST_MISMATCH")
      #expect(!Self.exists(target))
      try Self.writeFile(out + "/signing.key", key)
      #expect(try Backup.restore(from: out, to: target).head == ledger.head)
    }
  }

  @Test func aChangedOrMissingManifestIsRefused() throws {
    try withTempDir { dir in
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
      try Self.fill(ledger, entries: 10)
      let out = dir.path + "/backup"
      _ = try ledger.backup(to: out, now: t0)
      let manifestPath = out + "/" + BackupManifest.fileName
      let original = try Self.readFile(manifestPath)
      let text = String(decoding: original, as: UTF8.self)
      let target = dir.path + "/restored"

      // A head other than the copy's: every file matches, the drill's head does not.
      let seq = "\"seq\":\(ledger.head.seq)"
      #expect(text.contains(seq))
      try Self.writeFile(
        manifestPath,
        Array(text.replacingOccurrences(seq, "\"seq\":\(ledger.head.seq - 1)").utf8))
      #expect(Self.error { _ = try Backup.restore(from: out, to: target) }?.code == "VERIFY_FAILED")
      #expect(!Self.exists(target))

      // A changed SHA-256.
      let m = try BackupManifest.decode(original).get()
      let sha = m.files[0].sha256.hex
      try Self.writeFile(
        manifestPath, Array(text.replacingOccurrences(sha, String(sha.reversed())).utf8))
      #expect(
        Self.error { _ = try Backup.restore(from: out, to: target) }?.code == "MANIFEST_MISMATCH")

      // A path outside the backup, not JSON, cut short, absent.
      try Self.writeFile(
        manifestPath, Array(text.replacingOccurrences("\"data.mdb\"", "\"../data.mdb\"").utf8))
      #expect(Self.error { _ = try Backup.restore(from: out, to: target) }?.code == "NOT_A_BACKUP")
      for bad in [Array("not json".utf8), Array(original.prefix(original.count / 2)), []] {
        try Self.writeFile(manifestPath, bad)
        let e = Self.error { _ = try Backup.restore(from: out, to: target) }
        #expect(e?.code == "NOT_A_BACKUP", "\(String(describing: e))")
      }
      unlink(manifestPath)
      #expect(Self.error { _ = try Backup.restore(from: out, to: target) }?.code == "NOT_A_BACKUP")
      #expect(!Self.exists(target))
      try Self.writeFile(manifestPath, original)
      #expect(try Backup.restore(from: out, to: target).head == ledger.head)
    }
  }

  @Test func aNonEmptyTargetIsRefusedAndKeepsItsFiles() throws {
    try withTempDir { dir in
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
      try Self.fill(ledger, entries: 10)
      let busy = dir.path + "/busy"
      mkdir(busy, 0o700)
      try Self.writeFile(busy + "/keep", [42])

      let e = Self.error { _ = try ledger.backup(to: busy, now: t0) }
      #expect(e?.code == "TARGET_NOT_EMPTY")
      #expect(try Self.readFile(busy + "/keep") == [42])
      #expect(try directoryNames(busy) == ["keep"])

      let out = dir.path + "/backup"
      _ = try ledger.backup(to: out, now: t0)
      let r = Self.error { _ = try Backup.restore(from: out, to: busy) }
      #expect(r?.code == "TARGET_NOT_EMPTY")
      #expect(try directoryNames(busy) == ["keep"])
      // Restoring over the live directory itself is the same refusal.
      let live = Self.error { _ = try Backup.restore(from: out, to: dir.ledgerPath) }
      #expect(live?.code == "TARGET_NOT_EMPTY")
      #expect(try ledger.verify().ok)

      // An empty existing directory is used.
      let empty = dir.path + "/empty"
      mkdir(empty, 0o700)
      #expect(try Backup.restore(from: out, to: empty).head == ledger.head)
    }
  }

  @Test func aDirectoryWithoutAManifestIsNotABackup() throws {
    try withTempDir { dir in
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
      let e = Self.error { _ = try Backup.restore(from: dir.ledgerPath, to: dir.path + "/r") }
      #expect(e?.code == "NOT_A_BACKUP")
      let none = Self.error {
        _ = try Backup.restore(from: dir.path + "/none", to: dir.path + "/r")
      }
      #expect(none?.code == "NOT_A_BACKUP")
      #expect(!Self.exists(dir.path + "/r"))
      _ = ledger
    }
  }

  @Test func anIncrementalBackupCopiesOnlyTheNewJournalAndRestoresTheChain() throws {
    try withTempDir { dir in
      var options = LedgerOptions()
      // Small segments, so that the journal has several and an incremental skips some.
      options.segmentBytes = 64 << 10
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0, options: options)
      try Self.fill(ledger, entries: 2000)
      let full = dir.path + "/full"
      let first = try ledger.backup(to: full, now: t0)
      try Self.fill(ledger, entries: 300, prefix: "second")
      let inc = dir.path + "/inc"
      let second = try ledger.backup(to: inc, since: full, now: t0)
      #expect(second.manifest.base?.path == full)
      #expect(second.manifest.base?.head == first.manifest.head)
      #expect(second.dataBytes == 0)
      #expect(!second.manifest.files.contains { $0.path == "data.mdb" })
      let fullSegments = first.manifest.files.filter { $0.path.hasSuffix(".seg") }.count
      let incSegments = second.manifest.files.filter { $0.path.hasSuffix(".seg") }.count
      #expect(fullSegments > 2 && incSegments < fullSegments, "\(fullSegments) → \(incSegments)")
      #expect(second.journalBytes < first.journalBytes)
      #expect(second.verifiedEvents == ledger.head.seq)

      // A third on top of the second.
      try Self.fill(ledger, entries: 10, prefix: "third")
      let inc2 = dir.path + "/inc2"
      _ = try ledger.backup(to: inc2, since: inc, now: t0)

      let restored = dir.path + "/restored"
      let r = try Backup.restore(from: inc2, to: restored)
      #expect(r.backups == [full, inc, inc2])
      #expect(r.head == ledger.head)
      let copy = try Ledger(path: restored, mode: .readOnly)
      #expect(try Self.balances(copy) == Self.balances(ledger))

      // The base damaged: the chain is refused as a whole.
      let seg = try #require(first.manifest.files.first { $0.path.hasSuffix(".seg") })
      try Self.flipByte(full + "/" + seg.path, at: 4200)
      let e = Self.error { _ = try Backup.restore(from: inc2, to: dir.path + "/r2") }
      #expect(e?.code == "MANIFEST_MISMATCH")
      #expect(!Self.exists(dir.path + "/r2"))
    }
  }

  @Test func anIncrementalOfAnotherLedgerOrABaseReplacedIsRefused() throws {
    try withTempDir { dir in
      let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
      try Self.fill(ledger, entries: 10)
      let other = try Ledger.create(at: dir.path + "/other", now: t0)
      try Self.fill(other, entries: 10)
      let otherBackup = dir.path + "/other-backup"
      _ = try other.backup(to: otherBackup, now: t0)

      let out = dir.path + "/inc"
      let foreign = Self.error { _ = try ledger.backup(to: out, since: otherBackup, now: t0) }
      #expect(foreign?.code == "BASE_MISMATCH")
      #expect(!Self.exists(out))

      let full = dir.path + "/full"
      _ = try ledger.backup(to: full, now: t0)
      try Self.fill(ledger, entries: 5, prefix: "more")
      let inc = dir.path + "/inc-ok"
      _ = try ledger.backup(to: inc, since: full, now: t0)

      // The base replaced by another backup (of the same ledger, later): its manifest is not
      // the one the incremental recorded.
      removeTree(full)
      _ = try ledger.backup(to: full, now: t0)
      let replaced = Self.error { _ = try Backup.restore(from: inc, to: dir.path + "/r") }
      #expect(replaced?.code == "BASE_MISMATCH")
      #expect(!Self.exists(dir.path + "/r"))
    }
  }

  @Test func aBaseWithAnotherHistoryAtItsHeadIsRefused() throws {
    try withTempDir { dir in
      // Two ledgers with the same journal id diverge: a copy of one directory, written to.
      do {
        let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
        try Self.fill(ledger, entries: 10)
        try ledger.close()
      }
      let twin = dir.path + "/twin"
      let full = dir.path + "/full"
      _ = try Ledger(path: dir.ledgerPath, mode: .readOnly).backup(to: full, now: t0)
      _ = try Backup.restore(from: full, to: twin)
      let a = try Ledger(path: dir.ledgerPath, mode: .readWrite)
      try Self.fill(a, entries: 3, prefix: "a")
      let b = try Ledger(path: twin, mode: .readWrite)
      try Self.fill(b, entries: 3, prefix: "b")
      let fromA = dir.path + "/from-a"
      _ = try a.backup(to: fromA, now: t0)
      // b's history at the head of a's backup is not a's.
      let e = Self.error { _ = try b.backup(to: dir.path + "/inc", since: fromA, now: t0) }
      #expect(e?.code == "BASE_MISMATCH", "\(String(describing: e))")
      #expect(!Self.exists(dir.path + "/inc"))
    }
  }
}

extension String {
  fileprivate func replacingOccurrences(_ a: String, _ b: String) -> String {
    var out = ""
    var rest = self[...]
    while let r = rest.firstRange(of: a) {
      out += rest[..<r.lowerBound] + b
      rest = rest[r.upperBound...]
    }
    return out + rest
  }
}
