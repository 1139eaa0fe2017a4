import Foundation
import Testing

/// A damaged `data.mdb` through the real `tally` process: a verification that fails
/// (exit 1, CORRUPT, kept for the audit page), never a signal; the advice it gives (move the
/// map away, open read-write) rebuilds the same ledger from the journal.
@Suite("damaged map")
struct DamagedMapTests {
  @Test("A damaged meta page: verify exits 1 with CORRUPT; moving the map away rebuilds it")
  func damagedMetaPage() async throws {
    try await withFundedLedger { s in
      try await s.ok("post", "--id", "m1", "--debit", "cash=3.00", "--credit", "bob=3.00")
      let before = try await s.snapshot(["cash", "alice", "bob"])
      let map = s.data + "/data.mdb"
      // Both meta pages name a last page far past the end of the file.
      for meta in 0..<2 {
        try Tamper.writeAt(map, meta * 4096 + 136, [0xff, 0xff, 0xff, 0, 0, 0, 0, 0])
      }
      let damaged = try Data(contentsOf: URL(fileURLWithPath: map))
      let v = try await s.tally("--json", "verify")
      #expect(v.status == 1, "\(v)")
      #expect(v.stdout.contains("\"CORRUPT\""), "\(v)")
      #expect(v.stderr.contains("data.mdb") && v.stderr.contains("page"), "\(v)")
      let record = try String(contentsOfFile: s.data + "/verify-last.json", encoding: .utf8)
      #expect(record.contains("\"ok\":false") && record.contains("CORRUPT"), "\(record)")
      // Every command refuses it the same way, and nothing changed the file.
      let b = try await s.tally("balance", "cash")
      #expect(b.status == 2 && b.stderr.contains("CORRUPT"), "\(b)")
      #expect(try Data(contentsOf: URL(fileURLWithPath: map)) == damaged)

      try FileManager.default.moveItem(atPath: map, toPath: s.file("data.mdb.damaged"))
      try? FileManager.default.removeItem(atPath: s.data + "/lock.mdb")
      try await s.ok("rebuild")
      try await s.ok("verify")
      #expect(try await s.snapshot(["cash", "alice", "bob"]) == before)
    }
  }
}
