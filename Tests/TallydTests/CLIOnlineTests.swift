import Foundation
import Testing

/// `tally --server`: the CLI's commands through a real tallyd, and the offline CLI opening
/// the same data directory read-only while the server runs.
@Suite("tally --server")
struct CLIOnlineTests {
  @Test func cliCommandsRunThroughTheServerAndReadOnlyOfflineUseWorksBesideIt() async throws {
    try await withTallyd { server in
      let online = [
        "--server", "127.0.0.1:\(server.port)", "--key", server.adminKey, "--secret",
        server.adminSecret,
      ]
      func tally(_ args: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await runTally(online + args)
      }
      func ok(_ args: [String]) async throws -> [String: Any] {
        let r = try await tally(args)
        #expect(r.status == 0, "\(args) → \(r.status) \(r.stderr)")
        return try #require(
          JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any],
          "\(args) → \(r.stdout)")
      }
      #expect(try await ok(["partner", "create", "acme"])["id"] as? String == "acme")
      _ = try await ok([
        "account", "open", "acme:w", "--currency", "EUR", "--partner", "acme", "--normal",
        "credit",
      ])
      _ = try await ok(["account", "open", "cash", "--currency", "EUR"])
      // Amounts in major units are converted with the account's scale, read from the server.
      let post = ["post", "--id", "p1", "--debit", "cash=10.50", "--credit", "acme:w=10.50"]
      let first = try await ok(post)
      let seq = try #require(first["seq"] as? Int)
      // A retry answers the original result.
      let again = try await ok(post)
      #expect(again["seq"] as? Int == seq && again["chain"] as? String == first["chain"] as? String)
      #expect(try await ok(["balance", "acme:w"])["balance"] as? String == "1050")
      #expect(try await ok(["call", "LOG.HEAD"])["seq"] as? Int == seq)

      // A server-side rejection: exit 1, the code on stderr, JSON on stdout with --json.
      let missing = try await tally(["account", "show", "ghost", "--json"])
      #expect(missing.status == 1)
      #expect(missing.stderr.contains("NOT_FOUND"), "\(missing.stderr)")
      #expect(missing.stdout.contains(#""code":"NOT_FOUND""#), "\(missing.stdout)")

      // The key can come from the environment instead of flags.
      let viaEnv = try await runTally(
        ["key", "create", "--role", "ops", "--json"],
        environment: [
          "TALLY_SERVER": "127.0.0.1:\(server.port)", "TALLY_KEY": server.adminKey,
          "TALLY_SECRET": server.adminSecret,
        ])
      #expect(viaEnv.status == 0, "\(viaEnv.stderr)")
      #expect(viaEnv.stdout.contains(#""role":"ops""#) && viaEnv.stdout.contains(#""secret""#))

      // A wrong secret is refused before anything runs.
      let bad = try await runTally(
        [
          "--server", "127.0.0.1:\(server.port)", "--key", server.adminKey, "--secret", "nope",
          "balance", "acme:w",
        ])
      #expect(bad.status == 2 && bad.stderr.contains("AUTH_FAILED"), "\(bad)")

      // Offline, read commands open the directory read-only beside the running server and
      // see what it committed; writes need the writer lock the server holds.
      let offline = try await runTally(["--data", server.dataDir, "balance", "acme:w", "--json"])
      #expect(offline.status == 0, "\(offline.stderr)")
      #expect(offline.stdout.contains(#""balance":"1050""#), "\(offline.stdout)")
      let offlineWrite = try await runTally(
        ["--data", server.dataDir, "account", "open", "x", "--currency", "EUR"])
      #expect(offlineWrite.status == 2 && offlineWrite.stderr.contains("LOCKED"), "\(offlineWrite)")
      let verify = try await runTally(["--data", server.dataDir, "verify", "--json"])
      #expect(verify.status == 0, "\(verify)")
    }
  }
}
