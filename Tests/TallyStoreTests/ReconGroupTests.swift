import Glibc
import TallyCore
import TallyReconcile
import TallyTestSupport
import Testing

@testable import TallyStore

/// Imports applied in write groups from a plan made on a snapshot: revalidation of what
/// changed in between, and an interrupted import finished on the next open.
@Suite struct ReconGroupTests {
  static let header =
    "booking_date,value_date,amount,currency,bank_ref,end_to_end_id,reference,description,"
    + "account\n"

  /// One line naming `e-ref` (INV-1001, 1500.00) by reference, with bank reference `bankRef`.
  static func referenceLine(_ bankRef: String) -> String {
    header + "2023-11-14,2023-11-14,1500.00,EUR,\(bankRef),,INV-1001,rent,DE89370400440532013000\n"
  }

  /// `count` payments out no posting mirrors (100.01, 100.02, …: the setup's postings are
  /// all money in), then the reference line.
  static func large(_ count: Int) -> String {
    var s = header
    for i in 1...count {
      s +=
        "2023-11-14,2023-11-14,-\(100 + i / 100).\(format2(i % 100)),EUR,L\(i),,,x,"
        + "DE89370400440532013000\n"
    }
    return s + "2023-11-14,2023-11-14,1500.00,EUR,BRX,,INV-1001,rent,DE89370400440532013000\n"
  }

  static func format2(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

  func plan(_ l: Ledger, _ text: String) throws -> ReconImportPlan {
    guard
      case .success(let statements) = try l.reader.parseStatements(
        Array(text.utf8), format: .csv)
    else { throw TestFailure("parse failed") }
    guard
      case .success(let p) = try l.reader.planImport(
        statements, format: .csv, routing: ReconRouting(account: "bank"))
    else { throw TestFailure("plan refused") }
    return p
  }

  @Test func aMatchPlannedOnASnapshotIsDroppedWhenItsEntryWasMatchedMeanwhile() throws {
    try withLedger { l in
      try ReconStoreTests.setUp(l)
      // Two different lines that both name e-ref, planned against the same snapshot: both
      // plans match it. Applied one after the other, only the first match stands.
      let a = try plan(l, Self.referenceLine("BRA"))
      let b = try plan(l, Self.referenceLine("BRB"))
      let ra = try l.run(a, now: t0 + oneSecond, progress: nil)
      let rb = try l.run(b, now: t0 + 2 * oneSecond, progress: nil)
      #expect(ra.matchedByRule[.reference] == 1 && ra.unmatched == 0, "\(ra)")
      #expect(rb.new == 1 && rb.matchedByRule[.reference] == 0 && rb.unmatched == 1, "\(rb)")
      let status = try #require(try l.reconStatus("bank"))
      #expect(status.record.counts == [1, 1, 0, 0], "\(status.record)")
      #expect(try l.verify().ok)
    }
  }

  @Test func theSameStatementPlannedTwiceConcurrentlyIsImportedOnce() throws {
    try withLedger { l in
      try ReconStoreTests.setUp(l)
      let a = try plan(l, ReconStoreTests.csv)
      let b = try plan(l, ReconStoreTests.csv)
      let ra = try l.run(a, now: t0 + oneSecond, progress: nil)
      let head = l.head.seq
      let rb = try l.run(b, now: t0 + 2 * oneSecond, progress: nil)
      #expect(ra.new == 5 && ra.unmatched == 1, "\(ra)")
      // The second found every line imported meanwhile: nothing new, nothing matched twice;
      // only its statement record (part 0, no lines) is appended, as planned.
      #expect(rb.new == 0 && rb.duplicates == 5, "\(rb)")
      #expect(rb.matchedByRule.values.reduce(0, +) == 0 && rb.discrepancies == 0, "\(rb)")
      #expect(l.head.seq == head + 1)
      let status = try #require(try l.reconStatus("bank"))
      #expect(status.record.counts.reduce(0, +) == 5, "\(status.record)")
      #expect(try l.verify().ok)
    }
  }

  @Test func anImportInterruptedBetweenGroupsIsFinishedOnTheNextOpen() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let text = Self.large(2_500)
      do {
        let l = try Ledger.create(at: path, now: t0)
        try ReconStoreTests.setUp(l)
        let p = try plan(l, text)
        #expect(p.steps == 11)
        _ = try l.reconIntents.write(
          ReconIntent(
            afterSeq: p.snapshotSeq, format: .csv, encoding: nil,
            toleranceDays: Limits.reconToleranceDaysDefault,
            routing: ReconRouting(account: "bank"), bytes: Array(text.utf8)))
        // The first group only, as a crash after it would leave it.
        let run = ReconImportRun(p)
        try l.importStep(run, now: t0 + oneSecond)
        #expect(!run.finished)
        let status = try #require(try l.reconStatus("bank"))
        #expect(status.record.counts.reduce(0, +) == Limits.reconLinesPerGroupMax)
        try l.close()
      }
      let l = try Ledger(path: path)
      let status = try #require(try l.reconStatus("bank"))
      #expect(status.record.counts == [2_500, 1, 0, 0], "\(status.record)")
      #expect(try directoryNames(path + "/recon-intents") == [])
      #expect(try l.verify().ok)
      // A retry finds everything in: nothing appended.
      let head = l.head.seq
      guard
        case .success(let again) = try l.importStatement(
          Array(text.utf8), format: .csv, account: "bank", now: t0 + 3 * oneSecond)
      else { throw TestFailure("retry refused") }
      #expect(again.new == 0 && again.duplicates == 2_501 && l.head.seq == head, "\(again)")
    }
  }

  @Test func namesTooLongForAnIntentAreRefusedBeforeAnythingIsPlanned() throws {
    try withLedger { l in
      try ReconStoreTests.setUp(l)
      let head = l.head
      let text = Array(Self.large(10).utf8)
      let long = String(repeating: "X", count: 70_000)
      for routing in [
        ReconRouting(account: "bank", map: [long: "bank"]),
        ReconRouting(account: "bank", map: ["DE89": long]),
        ReconRouting(account: "bank", map: ["": "bank"]),
        ReconRouting(account: long),
      ] {
        let r = try l.importStatements(text, format: .csv, routing: routing, now: t0 + oneSecond)
        guard case .failure(let rej) = r else {
          Issue.record("accepted: \(r)")
          continue
        }
        #expect(rej.code == .invalidField, "\(rej)")
        #expect(l.head == head)
        #expect(try directoryNames(l.path + "/recon-intents")?.isEmpty ?? true)
      }
    }
  }

  @Test func aLastImportSeqThatIsNoImportIsCorruptionAndNothingIsImported() throws {
    try withLedger { l in
      try ReconStoreTests.setUp(l)
      // Two MT940 days of `bank`; the second opens with the first's closing.
      func day(_ d: Int, _ open: String, _ close: String, _ ref: String) -> [UInt8] {
        Array(
          """
          :20:D\(d)
          :25:DE89370400440532013000
          :28C:\(d)/1
          :60F:C2311\(d - 1)EUR\(open)
          :61:2311\(d)11\(d)D1,00NTRFNONREF//\(ref)
          :86:fee
          :62F:C2311\(d)EUR\(close)
          -
          """.utf8)
      }
      let routing = ReconRouting(account: "bank")
      let first = try l.importStatements(
        day(14, "10,00", "9,00", "B1"), format: .mt940, routing: routing, now: t0 + oneSecond)
      guard case .success = first else { throw TestFailure("first day refused: \(first)") }
      // Damage the projection: the account's last import now names the first event.
      let number = try #require(try l.account("bank")).record.number
      var rec = try #require(try l.reader.readState { s in try s.reconAccount(number) })
      rec.lastImportSeq = 1
      try l.writeLMDB { (t, _) throws(StoreError) in
        try withBytes(Records.encode(rec)) { (v) throws(StoreError) in
          try t.put(l.dbs.reconAccounts, u64: number, v)
        }
      }
      let head = l.head
      do {
        let r = try l.importStatements(
          day(15, "9,00", "8,00", "B2"), format: .mt940, routing: routing, now: t0 + 2 * oneSecond)
        Issue.record("imported over a damaged projection: \(r)")
      } catch {
        #expect(
          (error as? StoreError)?.code == "CORRUPT" && "\(error)".contains("last import seq 1"),
          "\(error)")
      }
      #expect(l.head == head)
      #expect(try directoryNames(l.path + "/recon-intents")?.isEmpty ?? true)
    }
  }

  @Test func aDamagedIntentStopsTheOpenAndATmpOneIsRemoved() throws {
    try withTempDir { dir in
      let path = dir.ledgerPath
      let head: LogHead
      do {
        let l = try Ledger.create(at: path, now: t0)
        head = l.head
        try l.close()
      }
      let intents = path + "/recon-intents"
      #expect(mkdir(intents, 0o750) == 0)
      let intent = ReconIntent(
        afterSeq: 1, format: .csv, encoding: nil, toleranceDays: 3,
        routing: ReconRouting(account: "bank"), bytes: Array("x".utf8))
      // A write cut short before its rename: removed, the open goes on.
      try writeScratchFile(
        intents + "/00000000000000aa.intent.tmp", Array(intent.encoded().prefix(9)))
      do {
        let l = try Ledger(path: path)
        #expect(l.head == head)
        try l.close()
      }
      #expect(!fileExists(intents + "/00000000000000aa.intent.tmp"))
      // Damage under an intent's own name: the open refuses, names it, changes nothing.
      var damaged = intent.encoded()
      damaged[12] ^= 0x40
      try writeScratchFile(intents + "/00000000000000bb.intent", damaged)
      #expect {
        _ = try Ledger(path: path)
      } throws: { e in
        guard case StoreError.corrupt(let m) = e else { return false }
        return m.contains("00000000000000bb.intent")
      }
      #expect(fileExists(intents + "/00000000000000bb.intent"))
      #expect(try Ledger(path: path, mode: .readOnly).head == head)
    }
  }

  @Test func aTornIntentIsRefusedAndAnIntactOneRoundTrips() throws {
    let intent = ReconIntent(
      afterSeq: 42, format: .mt940, encoding: .windows1252, toleranceDays: 3,
      routing: ReconRouting(account: "bank", map: ["DE89": "other"]), bytes: [0x3A, 0xE9, 0x0A])
    let bytes = intent.encoded()
    #expect(ReconIntent.decode(bytes) == intent)
    #expect(ReconIntent.decode(Array(bytes.dropLast())) == nil)
    var flipped = bytes
    flipped[10] ^= 1
    #expect(ReconIntent.decode(flipped) == nil)
  }
}
