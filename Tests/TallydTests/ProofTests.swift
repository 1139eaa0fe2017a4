import Foundation
import TallyCore
import TallyCrypto
import Testing

/// PROOF.INCLUSION and PROOF.CONSISTENCY over a real server: the answers verify with the
/// RFC 9162 algorithms against the leaves LOG.READ returns, an auditor may ask, a seq past
/// the head is refused, and the offline CLI gives the same proof from the data directory.
@Suite("tallyd Merkle proofs")
struct ProofTests {
  static func hash(_ hex: String) throws -> Hash32 {
    let b = try #require([UInt8](hex: hex), "not hex: \(hex)")
    return b.withUnsafeBytes { Hash32(raw: $0) }
  }

  @Test func proofsVerifyAgainstTheLeavesAndMatchTheOfflineCli() async throws {
    try await withFixture { server, admin in
      let k = try await admin.createKey(role: "auditor")
      let auditor = try await server.connect(key: k.key, secret: k.secret)
      let head = try await auditor.head().seq
      let events = try await auditor.ok("LOG.READ {\"limit\":10000}").body["events"] as? [Any]
      let leaves = try (events ?? []).map { e -> Hash32 in
        let o = try #require(e as? [String: Any])
        return try Self.hash(try #require(o["leaf"] as? String))
      }
      #expect(leaves.count == head)
      let h = SHA256Hasher()
      for seq in [1, head / 2, head] {
        let r = try await auditor.ok("PROOF.INCLUSION {\"seq\":\(seq)}")
        #expect(try r.int("leaf_index") == seq - 1 && r.int("tree_size") == head)
        #expect(try Self.hash(r.str("leaf_hash")) == leaves[seq - 1])
        let path = try (r.body["path"] as? [String] ?? []).map(Self.hash)
        #expect(
          Merkle.verifyInclusion(
            h, index: UInt64(seq - 1), size: UInt64(head), leafHash: leaves[seq - 1],
            path: path, root: try Self.hash(r.str("root"))), "seq \(seq)")
      }
      let c = try await auditor.ok("PROOF.CONSISTENCY {\"from\":3,\"to\":\(head)}")
      let proof = try (c.body["path"] as? [String] ?? []).map(Self.hash)
      #expect(
        Merkle.verifyConsistency(
          h, size1: 3, size2: UInt64(head), proof: proof, root1: try Self.hash(c.str("root_from")),
          root2: try Self.hash(c.str("root_to"))))
      let past = try await auditor.err("NOT_FOUND", "PROOF.INCLUSION {\"seq\":\(head + 1)}")
      #expect(past.reason == "OUT_OF_RANGE")
      // The offline CLI, read-only beside the server, answers byte for byte the same.
      let online = try await auditor.ok("PROOF.INCLUSION {\"seq\":2,\"size\":\(head)}")
      let offline = try await runTally([
        "--data", server.dataDir, "proof", "inclusion", "--seq", "2", "--size", "\(head)",
        "--json",
      ])
      #expect(offline.status == 0, "\(offline.stderr)")
      #expect("OK " + offline.stdout.trimmingCharacters(in: .newlines) == online.raw)
    }
  }

  @Test func checkpointsAreSignedNotesThatVerifyWithTheLedgersVerifierKey() async throws {
    try await withFixture { server, admin in
      let k = try await admin.createKey(role: "auditor")
      let auditor = try await server.connect(key: k.key, secret: k.secret)
      let head = try await auditor.head()
      let r = try await auditor.ok("CHECKPOINT.GET")
      let note = try r.str("note")
      let vkey = try await runTally(["--data", server.dataDir, "vkey"])
      #expect(vkey.status == 0, "\(vkey.stderr)")
      let text = try #require(
        Note.verify(note, vkey: vkey.stdout.trimmingCharacters(in: .newlines)),
        "the checkpoint does not verify: \(note)")
      let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
      let proof = try await auditor.ok("PROOF.INCLUSION {\"seq\":1}")
      let root = try Self.hash(proof.str("root"))
      #expect(lines.count == 5 && lines[1] == String(head.seq), "\(lines)")
      #expect(lines[2] == Base64.encode(root.bytes))
      #expect(lines[3] == "chain " + head.chain)
      // A tampered note (another size) no longer verifies.
      let forged = note.replacingOccurrences(of: "\n\(head.seq)\n", with: "\n\(head.seq + 1)\n")
      #expect(Note.verify(forged, vkey: vkey.stdout.trimmingCharacters(in: .newlines)) == nil)
      // The offline CLI signs the same body (Ed25519 is deterministic: the same note).
      let offline = try await runTally(["--data", server.dataDir, "checkpoint"])
      #expect(offline.status == 0 && offline.stdout == note, "\(offline.stdout)")
      _ = try await auditor.err("NOT_FOUND", "CHECKPOINT.GET {\"size\":\(head.seq + 1)}")
    }
  }

  @Test func theServerKeepsASignedCheckpointOfTheHeadOnItsInterval() async throws {
    try await withFixture(["--checkpoint-interval", "1"]) { server, admin in
      let head = try await admin.head()
      func kept() async throws -> [[String: Any]] {
        try await admin.ok(#"CHECKPOINT.LIST {"limit":10000}"#).body["checkpoints"]
          as? [[String: Any]] ?? []
      }
      // Bounded wait for a checkpoint of the current head (the interval is 1 s; earlier ones
      // may have been kept while the fixture was being built).
      var atHead: [String: Any]?
      for _ in 0..<150 where atHead == nil {
        try await Task.sleep(for: .milliseconds(100))
        atHead = try await kept().first { $0["size"] as? Int == head.seq }
      }
      let c = try #require(atHead, "no checkpoint of size \(head.seq) kept within 15 s")
      let note = try #require(c["note"] as? String)
      let vkey = try await runTally(["--data", server.dataDir, "vkey"])
      #expect(Note.verify(note, vkey: vkey.stdout.trimmingCharacters(in: .newlines)) != nil)
      // Sizes only grow, and nothing new is kept while the head does not move.
      let sizes = try await kept().compactMap { $0["size"] as? Int }
      #expect(sizes == sizes.sorted() && sizes.last == head.seq, "\(sizes)")
      try await Task.sleep(for: .milliseconds(2500))
      #expect(try await kept().count == sizes.count)
    }
  }
}
