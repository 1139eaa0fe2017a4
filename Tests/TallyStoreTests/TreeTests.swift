import CLMDB
import Glibc
import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

@testable import TallyStore

/// The stored Merkle tree (format 2): written with the events, equal to the tree computed
/// from the leaf hashes for every size, proofs that verify, `verify` catching a bad node,
/// `rebuild` restoring it, and the format 1 → 2 migration.
@Suite("Merkle tree in the store")
struct TreeTests {
  func leaves(_ ledger: Ledger) throws -> [Hash32] {
    try ledger.log(fromSeq: 1, limit: 10_000).map(\.leaf)
  }

  /// Appends transfers until the log has `events` events (bounded: each round appends).
  func grow(_ ledger: Ledger, to events: Int, batch: Int) throws {
    _ = try ledger.apply([open("a"), open("b")], now: t0)
    for round in 0..<events {
      let start = ledger.head.seq
      if Int(start) >= events { return }
      let cmds = (0..<batch).map { transfer("t\(start)-\($0)", from: "a", to: "b", 1) }
      _ = try ledger.apply(cmds, now: t0 + Int64(round))
      #expect(ledger.head.seq > start, "round \(round) appended nothing")
    }
  }

  @Test func everyRootAndProofMatchesTheTreeComputedFromTheLeaves() throws {
    try withLedger { ledger in
      try grow(ledger, to: 300, batch: 7)
      let h = SHA256Hasher()
      let all = try leaves(ledger)
      let tree = Merkle.subtrees(h, leaves: all)
      for size in [1, 2, 3, 7, 8, 9, 64, 100, 255, 256, all.count] {
        let n = UInt64(size)
        let expected = try Merkle.root(h, size: n, tree)
        #expect(try ledger.treeRoot(size: n).get() == expected, "size \(size)")
        for seq in [1, size / 2 + 1, size] {
          let p = try ledger.inclusionProof(seq: UInt64(seq), size: n).get()
          #expect(p.root == expected && p.leafIndex == UInt64(seq - 1))
          #expect(
            Merkle.verifyInclusion(
              h, index: p.leafIndex, size: n, leafHash: p.leafHash, path: p.path, root: p.root))
        }
        let c = try ledger.consistencyProof(from: max(1, n / 3), to: n).get()
        #expect(
          Merkle.verifyConsistency(
            h, size1: c.from, size2: c.to, proof: c.path, root1: c.rootFrom, root2: c.rootTo))
      }
      #expect(try ledger.verify().ok)
    }
  }

  @Test func proofsOutsideTheLogAreRefusedNotGuessed() throws {
    try withLedger { ledger in
      let head = ledger.head.seq
      #expect(throws: ProofError.self) {
        try ledger.inclusionProof(seq: head + 1, size: nil).get()
      }
      #expect(throws: ProofError.self) { try ledger.inclusionProof(seq: 0, size: nil).get() }
      #expect(throws: ProofError.self) { try ledger.consistencyProof(from: 0, to: head).get() }
      #expect(throws: ProofError.self) { try ledger.treeRoot(size: head + 1).get() }
    }
  }

  @Test func aRejectedOrFailedBatchLeavesTheTreeAsItWas() throws {
    try withLedger { ledger in
      try grow(ledger, to: 20, batch: 3)
      let before = try ledger.treeRoot(size: ledger.head.seq).get()
      let out = try ledger.apply([transfer("bad", from: "a", to: "ghost", 1)], now: t0 + 999)
      guard case .rejected = out[0] else { Issue.record("expected a rejection"); return }
      #expect(try ledger.treeRoot(size: ledger.head.seq).get() == before)
      try grow(ledger, to: 40, batch: 5)
      #expect(try ledger.verify().ok)
    }
  }

  @Test func verifyNamesAnAlteredNodeAndRebuildRestoresIt() throws {
    try withLedger { ledger in
      try grow(ledger, to: 50, batch: 4)
      try tamper(ledger) { t, dbs in
        var junk = Hash32.zero
        try withUnsafeBytes(of: &junk) { v in
          try Tree.key(2, 3).withUnsafeBytes { k in try t.put(dbs.tree!, k, v) }
        }
      }
      let report = try ledger.verify()
      #expect(!report.ok)
      #expect(report.problems.first?.message.contains("Merkle node level 2 index 3") == true)
      _ = try ledger.rebuild()
      #expect(try ledger.verify().ok)
    }
  }

  @Test func aFormatOneDirectoryGainsTheTreeOnItsFirstReadWriteOpen() throws {
    try withTempDir { dir in
      var root = Hash32.zero
      do {
        let ledger = try Ledger.create(at: dir.ledgerPath, now: t0)
        try grow(ledger, to: 77, batch: 6)
        root = try ledger.treeRoot(size: ledger.head.seq).get()
        // Make it a format-1 directory: no tree, format 1.
        try tamper(ledger) { t, dbs in
          try check(mdb_drop(t.txn, dbs.tree!, 1), "drop tree")
          var v = UInt32(1).bigEndian
          try withUnsafeBytes(of: &v) { try t.put(dbs.meta, Ledger.metaKey("format"), $0) }
        }
      }
      // Read-only, a format-1 directory is refused (it has no tree to answer proofs from).
      #expect(throws: StoreError.formatVersion(found: 1, expected: Ledger.formatVersion)) {
        _ = try Ledger(path: dir.ledgerPath, mode: .readOnly)
      }
      do {
        let migrated = try Ledger(path: dir.ledgerPath)
        #expect(try migrated.stats().formatVersion == Ledger.formatVersion)
        #expect(try migrated.treeRoot(size: migrated.head.seq).get() == root)
        #expect(try migrated.verify().ok)
        try grow(migrated, to: 120, batch: 5)
        #expect(try migrated.verify().ok)
      }
      let reader = try Ledger(path: dir.ledgerPath, mode: .readOnly)
      #expect(try reader.verify().ok)
    }
  }
}
