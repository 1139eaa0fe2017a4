import Foundation
import TallyStore
import Testing

/// `tally verify` keeps its outcome in the data directory (`verify-last.json`) for the back
/// office's audit page; the record is read back strictly.
@Suite struct VerifyRecordTests {
  @Test func verifyKeepsItsOutcome() async throws {
    try await withFundedLedger { s in
      #expect(try VerifyRecord.read(fromDirectory: s.data) == nil)
      try await s.ok("verify")
      let record = try #require(try VerifyRecord.read(fromDirectory: s.data))
      #expect(record.ok)
      #expect(record.headSeq == record.events && record.events >= 2)
      #expect(record.problems.isEmpty)
    }
  }

  @Test func aRecordThatIsNotOneIsCorrupt() throws {
    let dir = FileManager.default.temporaryDirectory.path + "/verify-record-\(UUID())"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }
    #expect(try VerifyRecord.read(fromDirectory: dir) == nil)
    let path = dir + "/" + VerifyRecord.fileName
    for text in [
      "", "[]", "{\"ok\":true}", "{\"ok\":\"yes\",\"events\":1}",
      String(repeating: " ", count: 70_000),
    ] {
      try text.write(toFile: path, atomically: true, encoding: .utf8)
      #expect(throws: StoreError.self, "\(text.prefix(40))") {
        try VerifyRecord.read(fromDirectory: dir)
      }
    }
    let good = VerifyRecord(
      ok: false, events: 9, headSeq: 9, chainHex: "00", problems: ["x", "y"], finishedNanos: 1,
      millis: 2)
    try good.write(toDirectory: dir)
    #expect(try VerifyRecord.read(fromDirectory: dir) == good)
  }
}
