import Foundation
import Synchronization
import TallyTestSupport
import Testing

/// `tally backup` beside a running tallyd under load, and `tally restore` of the result,
/// served by another tallyd (docs/BACKUP.md).
@Suite("Backup under load")
struct TallydBackupTests {
  /// The highest seq acknowledged so far, and whether the load should stop.
  final class Acks: Sendable {
    let maxSeq = Atomic<Int>(0)
    let count = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
  }

  /// Posts entries (ids `prefix`-n, cash → bob, 1 each) pipelined `window` at a time until
  /// told to stop or `countMax` were sent, recording each acknowledged seq.
  static func load(_ server: TallydProcess, prefix: String, acks: Acks, countMax: Int = 20_000)
    async throws
  {
    let c = try await server.admin()
    defer { c.close() }
    let window = 16
    var next = 0
    while next < countMax && !acks.stop.load(ordering: .relaxed) {
      let lines = (next..<(next + window)).map {
        entryLine("\(prefix)-\($0)", debit: Fixture.cash, credit: Fixture.bob, amount: "1") + "\n"
      }
      try await c.send(lines.joined(), timeout: 30)
      for _ in 0..<window {
        let r = try await c.readReply(timeout: 60)
        #expect(r.isOK, "\(r)")
        if let seq = r.body["seq"] as? Int {
          acks.maxSeq.max(seq, ordering: .relaxed)
          acks.count.add(1, ordering: .relaxed)
        }
      }
      next += window
    }
  }

  static func json(_ text: String) throws -> [String: Any] {
    try #require(
      try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
  }

  @Test func aBackupUnderLoadHoldsEveryAcknowledgedEntryAndRestoresToAServingLedger()
    async throws
  {
    try await withFixture { server, admin in
      let acks = Acks()
      let load = Task {
        try await withThrowingTaskGroup(of: Void.self) { g in
          for i in 0..<4 {
            g.addTask { try await Self.load(server, prefix: "b\(i)", acks: acks) }
          }
          try await g.waitForAll()
        }
      }
      defer { acks.stop.store(true, ordering: .relaxed) }
      // Under way: some entries acknowledged on every connection's behalf.
      let deadline = monotonicSeconds() + 60
      while acks.count.load(ordering: .relaxed) < 400 && monotonicSeconds() < deadline {
        try await Task.sleep(for: .milliseconds(10))
      }
      let ackedBefore = acks.maxSeq.load(ordering: .relaxed)
      let countBefore = acks.count.load(ordering: .relaxed)
      #expect(countBefore >= 400)

      let scratch = try makeTempDir("tally-backup")
      defer { try? FileManager.default.removeItem(atPath: scratch) }
      let out = scratch + "/backup"
      let b = try await runTally(["backup", "--data", server.dataDir, "--out", out, "--json"])
      #expect(b.status == 0, "\(b.stdout) \(b.stderr)")
      let backup = try Self.json(b.stdout)
      let head = try #require(backup["head"] as? [String: Any])
      let seq = try #require(head["seq"] as? Int)
      let chain = try #require(head["chain"] as? String)
      // The load goes on after the backup: a bounded wait until an entry past the backup's
      // head is acknowledged shows the backup was of a ledger being written, not an idle
      // one. (How many land *during* the backup's run depends on how the machine schedules
      // the two processes; a loaded CI machine may give none.)
      let pastBy = monotonicSeconds() + 60
      while acks.maxSeq.load(ordering: .relaxed) <= seq && monotonicSeconds() < pastBy {
        try await Task.sleep(for: .milliseconds(10))
      }
      acks.stop.store(true, ordering: .relaxed)
      try await load.value
      // Every entry acknowledged before the backup started is in it, and entries were
      // acknowledged past its head.
      #expect(seq >= ackedBefore, "backup head \(seq) < acknowledged \(ackedBefore)")
      let ackedLast = acks.maxSeq.load(ordering: .relaxed)
      #expect(ackedLast > seq, "nothing acknowledged past the backup's head \(seq)")
      #expect((backup["verified_events"] as? Int) == seq)
      #expect((backup["bytes"] as? Int ?? 0) > 0)

      let root = try makeTempDir()
      let restored = TallydRoot(root)
      defer { try? FileManager.default.removeItem(atPath: root) }
      let r = try await runTally(["restore", out, "--data", restored.data, "--json"])
      #expect(r.status == 0, "\(r.stdout) \(r.stderr)")
      let rh = try #require(try Self.json(r.stdout)["head"] as? [String: Any])
      #expect(rh["seq"] as? Int == seq && rh["chain"] as? String == chain)
      let v = try await runTally(["verify", "--data", restored.data, "--json"])
      #expect(v.status == 0, "\(v.stdout) \(v.stderr)")
      #expect(try Self.json(v.stdout)["ok"] as? Bool == true)

      // The restored directory serves: its keys came with it (the same admin key), its head
      // is the backup's, and its balances are the original's at that seq.
      try FileManager.default.copyItem(atPath: server.stdoutPath, toPath: restored.stdout)
      let second = try await TallydProcess.start(root: root)
      defer { second.killNow() }
      let other = try await second.admin()
      let h2 = try await other.ok("LOG.HEAD")
      #expect(try h2.int("seq") == seq)
      #expect(try h2.str("chain") == chain)
      for account in [Fixture.cash, Fixture.bob, Fixture.alice] {
        let then = try await admin.balance(account, asOf: seq)
        #expect(try await other.balance(account) == then, "\(account)")
        #expect(try await other.balance(account, asOf: seq) == then, "\(account)")
      }
      // The original went on past the backup; the restored one has none of that.
      let live = try await admin.ok("LOG.HEAD")
      #expect(try live.int("seq") >= seq)
      try await second.terminate()
    }
  }

  @Test func backupAndRestoreErrorsHaveStableCodesAndChangeNothing() async throws {
    let scratch = try makeTempDir("tally-backup")
    defer { try? FileManager.default.removeItem(atPath: scratch) }
    let data = scratch + "/data"
    let initialised = try await runTally(["init", "--data", data])
    #expect(initialised.status == 0, "\(initialised.stderr)")

    func errorCode(_ args: [String], status: Int32) async throws -> String? {
      let r = try await runTally(args + ["--json"])
      #expect(r.status == status, "\(args): \(r.stdout) \(r.stderr)")
      let e = try Self.json(r.stdout)["error"] as? [String: Any]
      return e?["code"] as? String
    }

    // No data directory.
    #expect(
      try await errorCode(
        ["backup", "--data", scratch + "/none", "--out", scratch + "/b0"], status: 2)
        == "NOT_INITIALIZED")
    #expect(!FileManager.default.fileExists(atPath: scratch + "/b0"))
    // --out not empty.
    let busy = scratch + "/busy"
    try FileManager.default.createDirectory(atPath: busy, withIntermediateDirectories: false)
    try Data([7]).write(to: URL(fileURLWithPath: busy + "/keep"))
    #expect(
      try await errorCode(["backup", "--data", data, "--out", busy], status: 2)
        == "TARGET_NOT_EMPTY")
    #expect(try FileManager.default.contentsOfDirectory(atPath: busy) == ["keep"])

    let out = scratch + "/backup"
    let ok = try await runTally(["backup", "--data", data, "--out", out])
    #expect(ok.status == 0, "\(ok.stderr)")
    #expect(ok.stdout.hasPrefix("backup \(out): head seq 1, chain "), "\(ok.stdout)")

    // Restore: without --data, into a non-empty directory, from a changed backup.
    let noData = try await runTally(["restore", out])
    #expect(noData.status == 2 && noData.stderr.contains("--data"), "\(noData.stderr)")
    #expect(
      try await errorCode(["restore", out, "--data", busy], status: 2) == "TARGET_NOT_EMPTY")
    #expect(
      try await errorCode(["restore", scratch + "/none", "--data", scratch + "/r"], status: 1)
        == "NOT_A_BACKUP")
    let key = out + "/signing.key"
    var bytes = try Data(contentsOf: URL(fileURLWithPath: key))
    bytes[3] ^= 1
    try bytes.write(to: URL(fileURLWithPath: key))
    #expect(
      try await errorCode(["restore", out, "--data", scratch + "/r"], status: 1)
        == "MANIFEST_MISMATCH")
    #expect(!FileManager.default.fileExists(atPath: scratch + "/r"))
    // --since a directory that is no backup.
    #expect(
      try await errorCode(
        ["backup", "--data", data, "--out", scratch + "/inc", "--since", busy], status: 1)
        == "NOT_A_BACKUP")
    #expect(!FileManager.default.fileExists(atPath: scratch + "/inc"))
  }
}

/// Paths of a tallyd root (see `TallydProcess`) before any server runs on it.
struct TallydRoot {
  let root: String
  init(_ root: String) { self.root = root }
  var data: String { root + "/data" }
  var stdout: String { root + "/stdout.log" }
}
