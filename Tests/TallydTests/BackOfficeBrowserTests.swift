import Foundation
import Testing

/// The back office in a real browser: a real `tallyd --http` on 127.0.0.1, driven through
/// headless Debian chromium by tools/webtest/backoffice_test.py (Selenium). Screenshots are
/// kept under .build/test-artifacts/backoffice/.
@Suite("back office in a browser", .timeLimit(.minutes(5)))
struct BackOfficeBrowserTests {
  static var packageRoot: URL {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
  }

  @Test func signInPartnerStatementResolveCSRFAndServiceKeyInChromium() async throws {
    let httpDir = try makeTempDir("tallyd-http")
    defer { try? FileManager.default.removeItem(atPath: httpDir) }
    let portFile = httpDir + "/http-port"
    try await withTallyd(["--http", "127.0.0.1:0", "--http-port-file", portFile]) { server in
      let admin = try await server.admin()
      _ = try await admin.ok(
        #"PARTNER.CREATE {"id":"acme","name":"<script>alert(1)</script>"}"#)
      _ = try await admin.ok(
        #"ACCOUNT.OPEN {"account":"cash","partner":"acme","currency":"EUR"}"#)
      _ = try await admin.ok(
        #"ACCOUNT.OPEN {"account":"income","partner":"acme","currency":"EUR","normal":"credit"}"#
      )
      // More lines than one statement page (50).
      for i in 1...60 {
        _ = try await admin.ok(
          "ENTRY.POST {\"id\":\"e\(i)\",\"legs\":[{\"account\":\"cash\",\"side\":\"debit\","
            + "\"amount\":\"\(i * 100)\"},{\"account\":\"income\",\"side\":\"credit\","
            + "\"amount\":\"\(i * 100)\"}]}")
      }
      // One statement line that matches nothing: item 1, unmatched.
      let statement = "booking_date,amount,currency,reference\n\(todayUTC()),7.77,EUR,fee\n"
      let imported = try await admin.ok(importLine("cash", statement))
      #expect(try imported.int("unmatched") == 1, "\(imported)")
      let ops = try await admin.ok(#"KEY.CREATE {"role":"ops"}"#)
      let svc = try await admin.ok(
        #"KEY.CREATE {"role":"service","partner":"acme"}"#)

      let deadline = monotonicSeconds() + 30
      var port = ""
      while port.isEmpty {
        if let t = readFile(portFile), t.hasSuffix("\n") {
          port = t.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if monotonicSeconds() > deadline {
          Issue.record("no HTTP port file within 30 s; log:\n\(server.log().suffix(2000))")
          return
        } else {
          try await Task.sleep(for: .milliseconds(20))
        }
      }
      let artifacts = Self.packageRoot.appendingPathComponent(
        ".build/test-artifacts/backoffice"
      ).path
      let script = Self.packageRoot.appendingPathComponent("tools/webtest/backoffice_test.py")
        .path
      let r = try await run(
        "/usr/bin/env",
        [
          "python3", script, "--url", "http://127.0.0.1:\(port)",
          "--ops-key", try ops.str("key"), "--ops-secret", try ops.str("secret"),
          "--admin-key", server.adminKey, "--admin-secret", server.adminSecret,
          "--service-key", try svc.str("key"), "--service-secret", try svc.str("secret"),
          "--artifacts", artifacts,
        ])
      #expect(
        r.status == 0,
        "backoffice_test.py exited \(r.status):\n\(r.stdout)\n\(r.stderr.suffix(4000))\n"
          + "tallyd log:\n\(server.log().suffix(2000))")
    }
  }
}
