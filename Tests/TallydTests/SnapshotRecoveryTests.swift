import Foundation
import Glibc
import Testing

/// tallyd writes snapshots of its projections while it serves writes, and after an OS crash
/// (the machine stopped: LMDB's unsynced pages untrusted) restores the newest one and
/// replays only the journal after it.
@Suite("tallyd snapshots")
struct TallydSnapshotTests {
  @Test(
    "Snapshots under load; after SIGKILL and an OS crash the snapshot is restored, every OK kept")
  func snapshotThenOSCrash() async throws {
    let flags = ["--snapshot-mib", "1", "--snapshot-min-interval", "0"]
    try await withFixture(flags) { server, admin in
      // About 1 MiB of journal (entries of ~300 bytes), then wait for the snapshot.
      var acked = [String]()
      var snapshotSeq = 0
      for round in 0..<40 {
        for i in 0..<200 {
          let id = "s\(round)-\(i)"
          try await admin.post(id, debit: "alice", credit: "bob", amount: "1")
          acked.append(id)
        }
        let st = try await admin.ok("STATS").obj("server")
        snapshotSeq = try st.int("snapshot_seq")
        if try st.int("snapshots") >= 1 { break }
      }
      #expect(snapshotSeq > 0, "no snapshot after \(acked.count) entries")
      for i in 0..<50 {
        let id = "after-\(i)"
        try await admin.post(id, debit: "bob", credit: "alice", amount: "2")
        acked.append(id)
      }
      let head = try await admin.ok("LOG.HEAD")
      let headSeq = try head.int("seq")
      #expect(headSeq > snapshotSeq)
      try await server.kill()
      // The machine stops too: the marker names another boot, and data.mdb is garbage.
      let data = server.dataDir
      try "old-boot\n".write(
        toFile: data + "/journal/lmdb-unsynced", atomically: false, encoding: .utf8)
      let fd = Glibc.open(data + "/data.mdb", O_WRONLY)
      #expect(fd >= 0)
      let junk = [UInt8](repeating: 0xa5, count: 1 << 16)
      _ = junk.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
      Glibc.close(fd)
      try await server.restart()
      #expect(
        server.log().contains("restored the snapshot at seq \(snapshotSeq)"),
        "tallyd says how it recovered: \(server.log().suffix(2000))")
      let again = try await server.admin()
      #expect(try await again.ok("LOG.HEAD").int("seq") == headSeq)
      for id in acked where id.hasPrefix("after-") || id.hasSuffix("-0") {
        #expect(try await again.request("ENTRY.GET {\"id\":\"\(id)\"}").isOK, "\(id)")
      }
      try await server.terminate()
      let v = try await runTally(["--data", data, "verify", "--json"])
      #expect(v.status == 0, "\(v.stdout) \(v.stderr)")
    }
  }
}
