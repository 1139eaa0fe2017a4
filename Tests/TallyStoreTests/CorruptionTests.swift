import CLMDB
import Foundation
import Glibc
import TallyCore
import TallyTestSupport
import Testing

@testable import TallyStore

/// Bytes read from disk are untrusted: a damaged file of a data directory gives an error,
/// never a crash. The fixed cases are the campaign's findings (tools/corrupt); the seeded
/// slice is a small campaign of its own on a real directory, through the library.
@Suite("corruption", .serialized)
struct CorruptionTests {
  /// A closed data directory with accounts, entries, holds and a key, and what it says.
  static func build(_ dir: TempDir) throws -> String {
    let path = dir.ledgerPath
    let ledger = try Ledger.create(at: path, now: t0)
    var commands: [Command] = [
      open("cash"), open("alice", normal: .credit), open("bob", normal: .credit),
    ]
    for i in 1...300 {
      commands.append(
        transfer("e\(i)", from: "cash", to: i % 3 == 0 ? "bob" : "alice", Int128(100 + i)))
    }
    try applyAll(ledger, commands)
    try applyAll(ledger, (1...6).map { hold("h\($0)", [debit("alice", 5), credit("bob", 5)]) })
    try applyAll(ledger, [capture("h1"), release("h2")])
    // Values larger than a page live in LMDB's overflow pages: one entry of ~9 KiB (a
    // campaign-free suite run found the walk refusing them).
    let pairs = (10..<28).map { ("k\($0)", String(repeating: "x", count: 500)) }
    let big = try Metadata.make(pairs).get()
    try applyAll(ledger, [post("big", [debit("cash", 1), credit("bob", 1)], metadata: big)])
    _ = try ledger.createKey(role: .auditor, partner: nil, now: t0)
    // A snapshot of the projections, which verify checks as a recovery would.
    #expect(try ledger.writeSnapshot() != nil)
    return path
  }

  /// Everything a reader is told about the directory (the head, every account with its
  /// balances, the keys, the record counts).
  static func content(_ path: String) throws -> String {
    let ledger = try Ledger(path: path, mode: .readOnly)
    let stats = try ledger.stats()
    let accounts = try ledger.reader.accounts(after: nil, limit: 1000)
    let keys = try ledger.keys().map { "\($0)" }
    return "\(stats.head) \(stats.counts) \(accounts) \(keys)"
  }

  /// What verify says of the directory: nil when everything verifies.
  static func verdict(_ path: String) -> String? {
    do {
      let ledger = try Ledger(path: path, mode: .readOnly)
      let report = try ledger.verify()
      return report.ok ? nil : report.problems.first.map { "\($0)" } ?? "not ok"
    } catch {
      return "\(error.code): \(error)"
    }
  }

  static func bytes(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
  }

  static func write(_ path: String, at offset: Int, _ b: [UInt8]) throws {
    let fd = Glibc.open(path, O_WRONLY)
    guard fd >= 0 else { throw TestFailure("cannot open \(path)") }
    defer { Glibc.close(fd) }
    let n = b.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
    guard n == b.count else { throw TestFailure("short write to \(path)") }
  }

  // MARK: - Findings of the campaign, fixed

  /// One damaged page, and the error that must name it.
  enum PageDamage: String, CaseIterable, Sendable {
    /// A leaf node flagged as duplicate data (0x04): LMDB took the value for a sub-page and
    /// read through a wild pointer (SIGSEGV in the replay's read of the log).
    case leafNodeFlaggedDupData
    /// A key size of 27,904 bytes: `mdb_cursor_next` asserted `IS_LEAF(mp)` (SIGABRT).
    case hugeKeySize
    /// A branch pointing back at itself: a cycle in the tree.
    case childIsItsParent
    /// The page number in a page's header is not its own.
    case pageNumberWrong
    /// The meta page's last page lies past the end of the file.
    case lastPagePastTheFile
  }

  @Test(
    "A structurally damaged data.mdb is CORRUPT, naming the page, and is left as it was",
    .bug(id: "corrupt-map-sigsegv", "verify died of SIGSEGV/SIGABRT inside liblmdb"),
    arguments: PageDamage.allCases)
  func damagedPageIsCorrupt(_ damage: PageDamage) throws {
    try withTempDir { dir in
      let path = try Self.build(dir)
      let file = path + "/data.mdb"
      let audit = try MapAudit.check(file: file, txnID: nil)
      let log = try #require(audit.roots["log"])
      try #require(log.depth >= 2, "the log's tree has a branch level")
      let ps = audit.pageBytes
      let root = Int(log.page) * ps
      var page = Array(try Self.bytes(file)[root..<root + ps])
      func u16(_ o: Int) -> Int { Int(page[o]) | Int(page[o + 1]) << 8 }
      func put16(_ o: Int, _ v: Int) {
        page[o] = UInt8(v & 0xff)
        page[o + 1] = UInt8(v >> 8)
      }
      // The first child of the root is a leaf (depth 2) or a branch; its first node.
      let node1 = u16(16 + 2)
      let firstChild = Int(u16(u16(16))) | Int(u16(u16(16) + 2)) << 16
      var target = root
      switch damage {
      case .childIsItsParent:
        put16(node1, Int(log.page) & 0xffff)
        put16(node1 + 2, Int(log.page) >> 16)
      case .pageNumberWrong:
        page[0] ^= 0x01
      case .lastPagePastTheFile:
        // Both metas: whichever LMDB picks names a page far past the end.
        for m in 0..<2 {
          let at = m * ps + 136
          try Self.write(file, at: at, [0xff, 0xff, 0xff, 0x00, 0, 0, 0, 0])
        }
        target = -1
      case .leafNodeFlaggedDupData, .hugeKeySize:
        try #require(log.depth == 2)
        target = firstChild * ps
        page = Array(try Self.bytes(file)[target..<target + ps])
        let node = u16(16)
        if damage == .leafNodeFlaggedDupData {
          put16(node + 4, 0x04)
        } else {
          put16(node + 6, 27904)
        }
      }
      if target >= 0 { try Self.write(file, at: target, page) }
      let damaged = try Self.bytes(file)
      let error = #expect(throws: StoreError.self) { _ = try Ledger(path: path, mode: .readOnly) }
      #expect(error?.code == "CORRUPT", "\(String(describing: error))")
      #expect("\(String(describing: error))".contains("data.mdb"))
      // A writer refuses it too, and nothing was changed by either.
      #expect(throws: StoreError.self) { _ = try Ledger(path: path, mode: .readWrite) }
      #expect(try Self.bytes(file) == damaged)
    }
  }

  static let flippedMap =
    (#filePath as NSString).deletingLastPathComponent + "/Fixtures/flipped-map"

  @Test(
    "The campaign's SIGSEGV ledger: CORRUPT naming page 17; with the bit back it verifies",
    .bug(id: "corrupt-map-sigsegv", "verify died of SIGSEGV inside liblmdb"))
  func theFlippedLedgerOfTheCampaign() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      try FileManager.default.copyItem(atPath: Self.flippedMap, toPath: path)
      let error = #expect(throws: StoreError.self) { _ = try Ledger(path: path, mode: .readOnly) }
      #expect(error?.code == "CORRUPT")
      #expect("\(String(describing: error))".contains("page 17: log: node 19 flags 4"))
      let file = path + "/data.mdb"
      let byte = try Self.bytes(file)[71_872]
      try Self.write(file, at: 71_872, [byte ^ 0x04])
      let report = try Ledger(path: path, mode: .readOnly).verify()
      #expect(report.ok, "\(report.problems)")
      #expect(report.events == 304)
      #expect(
        report.head.chain.hex == "c077e03ce88b2df51c8379c7307257c20f93c4466d7df9cd0a9ed0ce5f7fa342")
    }
  }

  @Test("The walk accepts what LMDB writes: a fresh, a grown and a compacted copy")
  func auditAcceptsHealthyMaps() throws {
    try withTempDir { dir in
      let path = try Self.build(dir)
      let first = try MapAudit.check(file: path + "/data.mdb", txnID: nil)
      #expect(first.databases["log"] == 313)
      // Many more commits (pages freed and reused), then the audit of every open still passes.
      let ledger = try Ledger(path: path)
      for round in 0..<20 {
        try applyAll(
          ledger, (0..<25).map { transfer("g\(round)-\($0)", from: "cash", to: "bob", 1) })
      }
      let second = try MapAudit.check(file: path + "/data.mdb", txnID: nil)
      #expect(second.databases["log"] == 813)
      #expect(try ledger.verify().ok)
      // A compacted copy (what backups and snapshots hold) is walked the same way.
      let copy = dir.path + "/compact"
      #expect(mkdir(copy, 0o700) == 0)
      #expect(mdb_env_copy2(ledger.env.env, copy, UInt32(MDB_CP_COMPACT)) == 0)
      let compact = try MapAudit.check(file: copy + "/data.mdb", txnID: nil)
      #expect(compact.databases == second.databases)
      #expect(compact.lastPage <= second.lastPage)
    }
  }

  @Test(
    "A damaged record of aux.log that LMDB holds is an aux problem of verify",
    .bug(id: "verify-skips-aux", "verify never read aux.log: a lost key passed"))
  func damagedAuxRecordFailsVerify() throws {
    try withTempDir { dir in
      let path = try Self.build(dir)
      let file = path + "/journal/aux.log"
      let pristine = try Self.bytes(file)
      try Self.write(file, at: 20, [pristine[20] ^ 0x40])
      let ledger = try Ledger(path: path, mode: .readOnly)
      let report = try ledger.verify()
      #expect(report.problems.first?.kind == .aux, "\(report.problems)")
      #expect("\(report.problems)".contains("offset 0"), "\(report.problems)")
      try Self.write(file, at: 20, [pristine[20]])
      #expect(try ledger.verify().ok)
    }
  }

  // MARK: - The seeded slice

  enum Kind: String, CaseIterable, Sendable {
    case dataMDB = "data.mdb"
    case segment
    case auxLog = "aux.log"
    case ledgerID = "ledger-id"
    case signingKey = "signing.key"
    case snapshotCopy = "snapshot data.mdb"
    case snapshotDescription = "snapshot description"
  }

  static let trialsPerMutation = 24

  /// Per kind: `trialsPerMutation` random byte changes and as many random 512-byte sectors;
  /// each one is detected (an error or a failed verify) or leaves the content unchanged.
  /// Offsets fall in the bytes the file uses (data.mdb up to its last page, a segment up to
  /// its last record).
  @Test("Random damage to each file is detected or changes nothing", arguments: Kind.allCases)
  func seededCampaign(_ kind: Kind) throws {
    let seed =
      UInt64(ProcessInfo.processInfo.environment["TALLY_SEED"] ?? "")
      ?? UInt64.random(in: 1...UInt64.max)
    print("corruption campaign \(kind.rawValue): seed \(seed) (TALLY_SEED to repeat)")
    var rng = SplitMix64(seed: seed)
    try withTempDir { dir in
      let path = try Self.build(dir)
      #expect(Self.verdict(path) == nil)
      let original = try Self.content(path)
      let file: String
      var used: Int
      switch kind {
      case .dataMDB:
        file = path + "/data.mdb"
        used = Int(try MapAudit.check(file: file, txnID: nil).lastPage + 1) * 4096
      case .segment:
        let names = try FileManager.default.contentsOfDirectory(atPath: path + "/journal")
        file = path + "/journal/" + (try #require(names.filter { $0.hasSuffix(".seg") }.min()))
        used = 4096
        let b = try Self.bytes(file)
        func be32(_ o: Int) -> Int { b[o..<o + 4].reduce(0) { $0 << 8 | Int($1) } }
        while used + 88 <= b.count && be32(used) == 0x544A_5231 {
          used += 88 + (be32(used + 4) + 7) & ~7
        }
      case .auxLog, .ledgerID:
        file = path + "/journal/" + kind.rawValue
        used = try Self.bytes(file).count
      case .signingKey:
        file = path + "/" + kind.rawValue
        used = try Self.bytes(file).count
      case .snapshotCopy, .snapshotDescription:
        let names = try FileManager.default.contentsOfDirectory(atPath: path + "/snapshots")
        let snap = path + "/snapshots/" + (try #require(names.filter { $0 != "next" }.max()))
        file = snap + (kind == .snapshotCopy ? "/data.mdb" : "/snapshot")
        used = try Self.bytes(file).count
      }
      let pristine = try Self.bytes(file)
      var detected = 0
      var unused = 0
      for trial in 0..<(2 * Self.trialsPerMutation) {
        let sector = trial >= Self.trialsPerMutation
        let offset: Int
        var damage: [UInt8]
        if sector {
          offset = used <= 512 ? 0 : Int(rng.next() % UInt64(used / 512)) * 512
          damage = (0..<min(512, used)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        } else {
          offset = Int(rng.next() % UInt64(used))
          damage = [pristine[offset] ^ UInt8(1 + rng.next() % 255)]
        }
        try Self.write(file, at: offset, damage)
        let what = "\(kind.rawValue) \(sector ? "sector" : "byte") at \(offset), seed \(seed)"
        if Self.verdict(path) != nil {
          detected += 1
        } else {
          let after = try? Self.content(path)
          #expect(after == original, "verify passed but the content changed: \(what)")
          unused += 1
        }
        try Self.write(file, at: offset, Array(pristine[offset..<offset + damage.count]))
      }
      #expect(try Self.bytes(file) == pristine)
      #expect(Self.verdict(path) == nil)
      print("corruption campaign \(kind.rawValue): detected \(detected), unused \(unused)")
    }
  }

  @Test("A damaged verify-last.json reads as CORRUPT, never a crash")
  func damagedVerifyRecord() throws {
    try withTempDir { dir in
      let good = VerifyRecord(
        ok: true, events: 311, headSeq: 311, chainHex: String(repeating: "ab", count: 32),
        problems: [], finishedNanos: t0, millis: 12)
      try FileManager.default.createDirectory(atPath: dir.path, withIntermediateDirectories: true)
      try good.write(toDirectory: dir.path)
      let file = dir.path + "/" + VerifyRecord.fileName
      let pristine = try Self.bytes(file)
      var rng = SplitMix64(seed: 0x5EED)
      var refused = 0
      for _ in 0..<200 {
        var b = pristine
        let at = Int(rng.next() % UInt64(b.count))
        b[at] ^= UInt8(1 + rng.next() % 255)
        try Self.write(file, at: 0, b)
        // A change inside a string or a digit can still be a record; anything else is an
        // error. Never a crash.
        do { _ = try VerifyRecord.read(fromDirectory: dir.path) } catch { refused += 1 }
      }
      #expect(refused > 0)
    }
  }
}

/// A small seeded generator (SplitMix64): the same seed gives the same trials.
struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9e37_79b9_7f4a_7c15
    var z = state
    z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
    z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
    return z ^ (z >> 31)
  }
}
