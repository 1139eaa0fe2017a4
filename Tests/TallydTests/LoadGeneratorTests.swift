import Foundation
import Testing

/// `tally-load` against a real tallyd: both clients post what they report, and a misuse of
/// `--blocking` is refused before anything is sent.
@Suite("tally-load")
struct LoadGeneratorTests {
  func load(_ server: TallydProcess, _ arguments: [String]) async throws -> [String: Any] {
    let r = try await run(
      try Binaries.tallyLoad(),
      ["--server", "127.0.0.1:\(server.port)", "--accounts", "20", "--json"] + arguments,
      environment: ["TALLY_KEY": server.adminKey, "TALLY_SECRET": server.adminSecret])
    #expect(r.status == 0, "\(r)")
    let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
    return try #require(object as? [String: Any], "\(r.stdout)")
  }

  @Test("the event loop client and --blocking each post what they report, without errors")
  func bothClientsPost() async throws {
    try await withTallyd { server in
      let admin = try await server.admin()
      defer { admin.close() }
      var posted = 0
      for (client, flags) in [
        ("nio", ["--setup", "--connections", "2"]),
        ("blocking", ["--connections", "2", "--blocking"]),
      ] {
        let before = try await admin.ok("LOG.HEAD").int("seq")
        let r = try await load(server, flags + ["--duration", "1", "--warmup", "0"])
        #expect(r["client"] as? String == client, "\(r)")
        #expect(r["mode"] as? String == "closed")
        #expect((r["errors"] as? [String: Any])?.isEmpty == true, "\(r)")
        #expect(r["connections_lost"] as? Int == 0, "\(r)")
        let entries = try #require(r["entries"] as? Int)
        #expect(entries > 0, "\(r)")
        // Every entry it counts was committed (the run may also have posted a few outside
        // the measured window, and --setup opened the accounts).
        let after = try await admin.ok("LOG.HEAD").int("seq")
        #expect(after - before >= entries, "\(client): head \(before) -> \(after), \(entries)")
        posted += entries
      }
      #expect(posted > 0)
    }
  }

  @Test("--blocking refuses an open loop, several in flight and over 64 connections")
  func blockingMisuse() async throws {
    try await withTallyd { server in
      let admin = try await server.admin()
      defer { admin.close() }
      let before = try await admin.ok("LOG.HEAD").int("seq")
      for extra in [["--rate", "100"], ["--inflight", "2"], ["--connections", "65"]] {
        let r = try await run(
          try Binaries.tallyLoad(),
          ["--server", "127.0.0.1:\(server.port)", "--blocking", "--duration", "1"] + extra,
          environment: ["TALLY_KEY": server.adminKey, "TALLY_SECRET": server.adminSecret])
        #expect(r.status == 64 || r.status == 2, "\(extra): \(r)")
        #expect(r.stderr.contains("--blocking"), "\(extra): \(r)")
      }
      #expect(try await admin.ok("LOG.HEAD").int("seq") == before)
    }
  }
}
