import Foundation
import Testing

/// `tally signing-key rotate` (docs/AUDIT.md, "Rotating the signing key").
@Suite("signing-key rotate")
struct SigningKeyTests {
  @Test("rotation: handover signed by both keys, old notes verify under the old key only")
  func rotate() async throws {
    try await withFundedLedger { s in
      let oldKey = try await s.ok("vkey").stdout.trimmingCharacters(in: .newlines)
      try await s.ok("checkpoint").stdout.write(
        toFile: s.file("before.note"), atomically: true, encoding: .utf8)
      let head = try await s.okJSON("stats").int("seq")

      let r = try await s.okJSON("signing-key", "rotate")
      let newKey = try r.str("new_vkey")
      #expect(try r.str("old_vkey") == oldKey)
      #expect(newKey != oldKey)
      // Same name (the origin), another key hash.
      #expect(newKey.split(separator: "+")[0] == oldKey.split(separator: "+")[0])
      #expect(newKey.split(separator: "+")[1] != oldKey.split(separator: "+")[1])
      #expect(try r.int("size") == head)
      #expect(try await s.ok("vkey").stdout.trimmingCharacters(in: .newlines) == newKey)

      // The retired key is kept, private.
      let retired = s.data + "/" + (try r.str("retired_key_file"))
      let attributes = try FileManager.default.attributesOfItem(atPath: retired)
      #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)

      // The handover note verifies under either key; the note from before only under the old.
      try (try r.str("handover")).write(
        toFile: s.file("handover.note"), atomically: true, encoding: .utf8)
      for key in [oldKey, newKey] {
        let v = try await runTally([
          "--json", "verify", "--vkey", key, "--checkpoint", s.file("handover.note"),
        ])
        #expect(v.status == 0, "\(v)")
      }
      let oldOnly = try await runTally([
        "verify", "--vkey", newKey, "--checkpoint", s.file("before.note"),
      ])
      #expect(oldOnly.status == 1, "\(oldOnly)")
      #expect(oldOnly.stdout.contains("signature"), "\(oldOnly)")

      // New checkpoints are signed by the new key only.
      try await s.ok("post", "--id", "after", "--debit", "cash=1.00", "--credit", "bob=1.00")
      try await s.ok("checkpoint").stdout.write(
        toFile: s.file("after.note"), atomically: true, encoding: .utf8)
      let underOld = try await runTally([
        "verify", "--vkey", oldKey, "--checkpoint", s.file("after.note"),
      ])
      #expect(underOld.status == 1, "\(underOld)")

      // An export after the rotation: verifies under the new key; the checkpoint kept from
      // before the rotation needs the old key too (an auditor keeps every key).
      try await s.ok("export", "--out", s.file("export"))
      let newOnly = try await runTally([
        "--json", "verify", "--export", s.file("export"), "--vkey", newKey, "--checkpoint",
        s.file("before.note"),
      ])
      #expect(newOnly.status == 1, "\(newOnly)")
      let both = try await runTally([
        "--json", "verify", "--export", s.file("export"), "--vkey", newKey, "--vkey", oldKey,
        "--checkpoint", s.file("before.note"), "--checkpoint", s.file("handover.note"),
      ])
      #expect(both.status == 0, "\(both)")
      let statuses = ((try both.object()["checkpoints"] as? [[String: Any]]) ?? []).compactMap {
        $0["status"] as? String
      }
      #expect(statuses == ["consistent", "consistent"], "\(both)")
      // A key file with both keys, one per line, works the same.
      try (newKey + "\n" + oldKey + "\n").write(
        toFile: s.file("keys"), atomically: true, encoding: .utf8)
      let file = try await runTally([
        "verify", "--export", s.file("export"), "--vkey", s.file("keys"), "--checkpoint",
        s.file("before.note"),
      ])
      #expect(file.status == 0, "\(file)")
      // The log itself did not change: the full verify passes.
      try await s.ok("verify")
    }
  }

  @Test("rotation needs the writer lock and changes nothing when refused")
  func rotateLocked() async throws {
    try await withFundedLedger { s in
      let key = try await s.ok("vkey").stdout
      let lock = open(s.data + "/tally.lock", O_RDWR)
      try #require(lock >= 0)
      defer { close(lock) }
      try #require(flock(lock, LOCK_EX | LOCK_NB) == 0)
      let r = try await s.tally("signing-key", "rotate")
      #expect(r.status == 2, "\(r)")
      #expect(r.stderr.contains("LOCKED") || r.stderr.contains("locked"), "\(r)")
      #expect(try await s.ok("vkey").stdout == key)
      let files = try FileManager.default.contentsOfDirectory(atPath: s.data)
      #expect(!files.contains { $0.hasPrefix("signing.key.") }, "\(files)")
    }
  }
}
