import Foundation
import Testing

/// The Python client (`clients/python`, written from docs/PROTOCOL.md alone) against a real
/// `tallyd`: its unittest suite runs as a child process with the server's address and first
/// admin key, and must pass. It covers AUTH, pipelining, every kind of verb, proofs checked
/// in Python, typed errors that change nothing, and exactly-once retries of writes through a
/// proxy that cuts the connection before an answer.
@Suite("Python client against tallyd", .timeLimit(.minutes(15)))
struct PythonClientTests {
  /// `clients/python/run-tests`, found from this file's path (the package root is two
  /// levels up). It installs python3 when missing and bounds the run at 15 minutes.
  static let script: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("clients/python/run-tests").path
  }()

  @Test("the Python client's tests pass against a real tallyd")
  func pythonClientSuite() async throws {
    try await withTallyd { server in
      let r = try await run(
        "/bin/bash", [Self.script, "-v"],
        environment: [
          "TALLY_ADDR": "127.0.0.1:\(server.port)",
          "TALLY_KEY": server.adminKey,
          "TALLY_SECRET": server.adminSecret,
          // Keep the source tree free of __pycache__ directories.
          "PYTHONDONTWRITEBYTECODE": "1",
        ])
      let output = "stdout:\n\(r.stdout)\nstderr:\n\(r.stderr)"
      #expect(r.status == 0, "python client tests exited \(r.status)\n\(output)")
      // Every server test ran: none was skipped for want of the server.
      #expect(!r.stderr.contains("no tallyd to test against"), "\(output)")
      #expect(r.stderr.contains("\nOK"), "\(output)")
    }
  }
}
