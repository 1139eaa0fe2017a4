import Foundation
import Glibc
import TallyTestSupport
import Testing

/// Startup and shutdown under swift-service-lifecycle, and `--log-format json`.
@Suite struct LifecycleTests {
  /// SIGTERM drains, keeps a last signed checkpoint of the head, closes, and exits 0; with
  /// `--log-format json` every line of the log is one JSON object.
  @Test func sigtermKeepsAFinalCheckpointAndLogsJSON() async throws {
    // A checkpoint interval far past the test: only the shutdown's checkpoint can be kept.
    let server = try await TallydProcess.start(flags: [
      "--log-format", "json", "--checkpoint-interval", "86400",
    ])
    defer { server.remove() }
    let c = try await server.admin()
    try await c.open("cash")
    try await c.open("sales", normal: "credit")
    try await c.post("e1", debit: "cash", credit: "sales", amount: "500")
    let head = try await c.head()
    let before = try await c.ok("CHECKPOINT.LIST")
    #expect(try before.arr("checkpoints").isEmpty)
    c.close()
    #expect(try await server.terminate() == 0)

    let lines = server.log().split(separator: "\n")
    #expect(!lines.isEmpty)
    var messages = [String]()
    for line in lines {
      let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
      #expect(object != nil, "not one JSON object: \(line)")
      if let o = object {
        #expect(o["ts"] is String && o["level"] is String && o["logger"] is String)
        if let m = o["msg"] as? String { messages.append(m) }
      }
    }
    #expect(messages.contains("final checkpoint kept"), "\(messages)")
    #expect(messages.last == "stopped", "\(messages)")

    try await server.restart()
    let c2 = try await server.admin()
    let after = try await c2.ok("CHECKPOINT.LIST")
    let kept = try after.arr("checkpoints")
    #expect(kept.count == 1)
    let size = (kept.first as? [String: Any])?["size"]
    #expect(try jsonInt(size, "size") == head.seq)
    c2.close()
    #expect(try await server.terminate() == 0)
  }

  /// A SIGTERM the moment the port is announced (before the service group runs) is a
  /// graceful shutdown too, not the signal's default action: tallyd's handler is installed
  /// before it binds. Five times, signalled as soon as the port file appears.
  @Test func sigtermRightAfterThePortIsAnnouncedShutsDownGracefully() async throws {
    let exe = try Binaries.tallyd()
    for round in 1...5 {
      let root = try makeTempDir()
      defer { try? FileManager.default.removeItem(atPath: root) }
      let (status, log) = try await offPool { () throws -> (Int32, String) in
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = [
          "--data", root + "/data", "--initialize", "--listen", "127.0.0.1:0", "--port-file",
          root + "/port",
        ]
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        _ = FileManager.default.createFile(atPath: root + "/stderr", contents: nil)
        p.standardError = FileHandle(forWritingAtPath: root + "/stderr")
        try p.run()
        // Up to 60 s for the port file, polled every millisecond.
        for _ in 0..<60_000 {
          if let a = try? FileManager.default.attributesOfItem(atPath: root + "/port"),
            (a[.size] as? Int ?? 0) > 0
          {
            break
          }
          usleep(1_000)
        }
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let log = (try? String(contentsOfFile: root + "/stderr", encoding: .utf8)) ?? ""
        return (p.terminationReason == .exit ? p.terminationStatus : 128 + p.terminationStatus, log)
      }
      #expect(status == 0, "round \(round): exit \(status)\n\(log)")
      #expect(log.contains("SIGTERM: shutting down gracefully"), "round \(round): \(log)")
      #expect(log.contains("stopped"), "round \(round): \(log)")
    }
  }

  /// A bad `--log-format` is refused before anything is made.
  @Test func badLogFormatIsRefused() async throws {
    let root = try makeTempDir()
    defer { try? FileManager.default.removeItem(atPath: root) }
    let dir = root + "/data"
    let r = try await run(
      try Binaries.tallyd(),
      ["--data", dir, "--initialize", "--listen", "127.0.0.1:0", "--log-format", "xml"])
    #expect(r.status != 0)
    #expect(r.stderr.contains("--log-format must be text or json"), "\(r.stderr)")
    #expect(!FileManager.default.fileExists(atPath: dir))
  }
}
