import Foundation
import Glibc
import Testing

/// `/healthz`, `/readyz` and `/metrics` of a real `tallyd --http` (docs/OPERATIONS.md).
@Suite struct OpsHTTPTests {
  /// One HTTP/1.1 GET on a new connection to 127.0.0.1:`port`, read to the close.
  static func get(_ port: Int, _ path: String) async throws -> (
    status: Int, headers: [String: String], body: String
  ) {
    try await offPool {
      let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
      guard fd >= 0 else { throw POSIXError(.EIO) }
      defer { close(fd) }
      var tv = timeval(tv_sec: 30, tv_usec: 0)
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
      var addr = sockaddr_in()
      addr.sin_family = sa_family_t(AF_INET)
      addr.sin_port = in_port_t(UInt16(port).bigEndian)
      addr.sin_addr.s_addr = inet_addr("127.0.0.1")
      let connected = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      guard connected == 0 else { throw POSIXError(.ECONNREFUSED) }
      let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
      _ = request.withCString { send(fd, $0, strlen($0), 0) }
      var bytes = [UInt8]()
      var buf = [UInt8](repeating: 0, count: 65536)
      while bytes.count < 16 << 20 {
        let n = recv(fd, &buf, buf.count, 0)
        if n <= 0 { break }
        bytes += buf[0..<n]
      }
      let text = String(decoding: bytes, as: UTF8.self)
      guard let split = text.range(of: "\r\n\r\n") else { throw POSIXError(.EBADMSG) }
      let head = text[..<split.lowerBound].split(separator: "\r\n")
      let status = Int(head.first?.split(separator: " ").dropFirst().first ?? "") ?? 0
      var headers = [String: String]()
      for line in head.dropFirst() {
        if let c = line.firstIndex(of: ":") {
          headers[line[..<c].lowercased()] = line[line.index(after: c)...]
            .trimmingCharacters(in: .whitespaces)
        }
      }
      var body = String(text[split.upperBound...])
      if headers["transfer-encoding"] == "chunked" { body = dechunk(body) }
      return (status, headers, body)
    }
  }

  static func dechunk(_ s: String) -> String {
    var out = ""
    var rest = Substring(s)
    while let nl = rest.range(of: "\r\n"), let n = Int(rest[..<nl.lowerBound], radix: 16), n > 0 {
      let start = nl.upperBound
      let bytes = Array(rest[start...].utf8)
      out += String(decoding: bytes.prefix(n), as: UTF8.self)
      rest = Substring(String(decoding: bytes.dropFirst(n + 2), as: UTF8.self))
    }
    return out
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
      #expect(ready.headers["content-type"] == "application/json")
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
      #expect(m.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
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
