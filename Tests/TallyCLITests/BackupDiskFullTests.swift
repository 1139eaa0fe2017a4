import Foundation
import TallyTestSupport
import Testing

/// `tally backup` and `tally restore` onto a filesystem too small for them: `DISK_FULL`
/// (docs/BACKUP.md, "Errors"), the partial copy removed, the source untouched.
@Suite(.enabled(if: SmallTmpfs.available, "needs root to mount a small tmpfs"))
struct BackupDiskFullTests {
  @Test func aBackupThatDoesNotFitIsDiskFullAndLeavesNothing() async throws {
    try await withFundedLedger { s in
      let head = try await s.ok("--json", "stats").stdout
      let disk = try SmallTmpfs(bytes: 48 << 10)
      defer { disk.unmount() }
      let out = disk.path + "/backup"
      let r = try await s.tally("backup", "--out", out)
      #expect(r.status == 2, "\(r)")
      #expect(r.stderr.contains("error DISK_FULL"), "\(r.stderr)")
      #expect(!FileManager.default.fileExists(atPath: out), "the partial backup is removed")
      #expect(try FileManager.default.contentsOfDirectory(atPath: disk.path).isEmpty)
      // The ledger is as it was, and a backup where there is room works.
      #expect(try await s.ok("--json", "stats").stdout == head)
      try await s.ok("verify")
      try await s.ok("backup", "--out", s.root + "/backup")
    }
  }

  @Test func aRestoreThatDoesNotFitIsDiskFullAndLeavesTheTargetEmpty() async throws {
    try await withFundedLedger { s in
      let backup = s.root + "/backup"
      try await s.ok("backup", "--out", backup)
      let disk = try SmallTmpfs(bytes: 48 << 10)
      defer { disk.unmount() }
      let target = disk.path + "/restored"
      try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: false)
      let r = try await runTally(["restore", backup, "--data", target])
      #expect(r.status == 2, "\(r)")
      #expect(r.stderr.contains("error DISK_FULL"), "\(r.stderr)")
      #expect(try FileManager.default.contentsOfDirectory(atPath: target).isEmpty)
      // The backup is intact: restoring it where there is room works.
      let r2 = try await runTally(["restore", backup, "--data", s.root + "/restored"])
      #expect(r2.status == 0, "\(r2)")
    }
  }
}
