import Foundation
import Glibc
import TallyTestSupport
import Testing

/// `/healthz`, `/readyz` and `/metrics` of a real `tallyd --http` (docs/OPERATIONS.md).
@Suite struct OpsHTTPTests {
  /// One HTTP/1.1 GET on a new connection to 127.0.0.1:`port`.
  static func get(_ port: Int, _ path: String) async throws -> (
    status: Int, contentType: String?, body: String
  ) {
    let a = try await offPool { try HTTPExchange.run(port: port, method: "GET", target: path) }
    return (a.status, a.header("Content-Type"), a.text)
  }

  /// The sample `name{labels}` in a Prometheus text, as an integer.
  static func sample(_ text: String, _ series: String) -> Int? {
    for line in text.split(separator: "\n") where line.hasPrefix(series + " ") {
      let v = line.dropFirst(series.count + 1)
      return Int(v) ?? Double(v).map { Int($0) }
    }
    return nil
  }

  static func httpPort(_ server: TallydProcess, _ file: String) async throws -> Int {
    let deadline = monotonicSeconds() + 30
    while true {
      if let t = readFile(file), t.hasSuffix("\n"), let p = Int(t.dropLast()) { return p }
      if monotonicSeconds() > deadline {
        throw POSIXError(.ETIMEDOUT)
      }
      try await Task.sleep(for: .milliseconds(20))
    }
  }

  @Test func healthReadinessAndMetricsOfARealServer() async throws {
    let dir = try makeTempDir("tallyd-ops")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let portFile = dir + "/http-port"
    try await withTallyd(["--http", "127.0.0.1:0", "--http-port-file", portFile]) { server in
      let port = try await Self.httpPort(server, portFile)
      let health = try await Self.get(port, "/healthz")
      #expect(health.status == 200 && health.body == "ok\n")

      let ready = try await Self.get(port, "/readyz")
      #expect(ready.status == 200, "\(ready.body)")
      #expect(ready.contentType == "application/json")
      let r = try JSONSerialization.jsonObject(with: Data(ready.body.utf8)) as? [String: Any]
      #expect(r?["ready"] as? Bool == true)
      let names = (r?["checks"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
      #expect(names == ["recovered", "writable", "disk"])

      let c = try await server.admin()
      try await c.open("cash")
      try await c.open("sales", normal: "credit")
      for i in 1...3 { try await c.post("m\(i)", debit: "cash", credit: "sales", amount: "100") }
      // One engine rejection and one malformed request.
      try await c.err(
        "NOT_FOUND", entryLine("m4", debit: "cash", credit: "nowhere", amount: "1"))
      try await c.err("BAD_REQUEST", "ENTRY.POST {\"id\":")
      let head = try await c.head()

      let m = try await Self.get(port, "/metrics")
      #expect(m.status == 200)
      #expect(m.contentType == "text/plain; version=0.0.4; charset=utf-8")
      let t = m.body
      #expect(Self.sample(t, #"tally_commands_total{result="applied"}"#) == 5, "\(t)")
      #expect(Self.sample(t, #"tally_rejections_total{code="ACCOUNT_NOT_FOUND"}"#) == 1)
      #expect(Self.sample(t, #"tally_rejections_total{code="INSUFFICIENT_FUNDS"}"#) == 0)
      #expect(Self.sample(t, #"tally_error_responses_total{code="NOT_FOUND"}"#) == 1)
      #expect(Self.sample(t, #"tally_error_responses_total{code="BAD_REQUEST"}"#) == 1)
      #expect(Self.sample(t, #"tally_connections{role="admin"}"#) == 1)
      #expect(Self.sample(t, "tally_head_seq") == head.seq)
      #expect((Self.sample(t, "tally_write_group_commands_count") ?? 0) >= 1)
      #expect((Self.sample(t, "tally_journal_sync_duration_seconds_count") ?? 0) >= 1)
      #expect((Self.sample(t, "tally_journal_bytes") ?? 0) > 0)
      #expect(Self.sample(t, "tally_stream_lag_events") == -1)
      #expect(Self.sample(t, "tally_replica_lag_events") == -1)
      #expect(Self.sample(t, #"tally_recon_items{state="unmatched"}"#) == 0)
      #expect(t.contains("# TYPE tally_write_group_apply_duration_seconds histogram"))
      c.close()
    }
  }

  @Test func readinessFailsBelowTheDiskFloorWhileHealthStaysUp() async throws {
    let dir = try makeTempDir("tallyd-ops")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let portFile = dir + "/http-port"
    // 16 TiB free: more than this machine has.
    try await withTallyd([
      "--http", "127.0.0.1:0", "--http-port-file", portFile, "--ready-min-free-mib", "16777216",
    ]) { server in
      let port = try await Self.httpPort(server, portFile)
      #expect(try await Self.get(port, "/healthz").status == 200)
      let ready = try await Self.get(port, "/readyz")
      #expect(ready.status == 503)
      let r = try JSONSerialization.jsonObject(with: Data(ready.body.utf8)) as? [String: Any]
      #expect(r?["ready"] as? Bool == false)
      let disk = (r?["checks"] as? [[String: Any]])?.first { $0["name"] as? String == "disk" }
      #expect(disk?["ok"] as? Bool == false)
      #expect((disk?["detail"] as? String)?.contains("floor 16777216 MiB") == true, "\(ready.body)")
    }
  }

  /// HTTP flags that do not hold are refused before any directory is made.
  @Test func badHTTPFlagsAreRefused() async throws {
    let root = try makeTempDir()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let dir = root + "/data"
    let cases: [([String], String)] = [
      (["--http", "10.1.2.3:8080"], "is not a loopback address"),
      (["--http", "127.0.0.1"], "--http must be HOST:PORT"),
      (["--http", "127.0.0.1:70000"], "--http must be HOST:PORT"),
      (["--http-port-file", root + "/p"], "need --http"),
      (["--http-public"], "need --http"),
      (["--http", "127.0.0.1:0", "--ready-min-free-mib", "-1"], "--ready-min-free-mib"),
    ]
    for (flags, message) in cases {
      let r = try await run(
        try Binaries.tallyd(), ["--data", dir, "--initialize", "--listen", "127.0.0.1:0"] + flags)
      #expect(r.status != 0, "\(flags)")
      #expect(r.stderr.contains(message), "\(flags): \(r.stderr)")
      #expect(!FileManager.default.fileExists(atPath: dir), "\(flags)")
    }
  }
}
