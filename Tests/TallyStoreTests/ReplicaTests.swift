import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

@testable import TallyStore

/// `Ledger.appendReplicated`: a replica takes the primary's events only when each comes
/// next and its hashes are the ones its own chain gives (docs/REPLICATION.md).
@Suite struct ReplicaTests {
  /// A primary with accounts, entries, a hold and its capture; its log as a replica gets it.
  static func primaryLog(_ ledger: Ledger) throws -> [ReplicatedEvent] {
    try applyAll(
      ledger,
      [
        partner("p1"), open("cash"), open("w", normal: .credit, partner: "p1"),
        open("fees", normal: .credit),
      ])
    for i in 0..<40 {
      try applyAll(ledger, [transfer("e\(i)", from: "w", to: "cash", Int128(i + 1))])
    }
    try applyAll(ledger, [hold("h1", [debit("cash", 7), credit("fees", 7)])])
    try applyAll(ledger, [capture("h1")])
    return try ledger.log(fromSeq: 1, limit: 10_000).map {
      ReplicatedEvent(
        seq: $0.event.seq, bytes: $0.bytes, leaf: $0.leaf, chain: $0.chain)
    }
  }

  @Test func aReplicaFedThePrimarysLogEqualsItAndVerifies() throws {
    try withTempDir { dir in
      let primary = try Ledger.create(at: dir.path + "/primary", now: t0)
      let log = try Self.primaryLog(primary)
      do {
        let replica = try Ledger.createReplica(at: dir.path + "/replica")
        #expect(replica.head.seq == 0)
        var at = 0
        for size in [1, 7, 3, 100] where at < log.count {
          let group = Array(log[at..<min(at + size, log.count)])
          let h = try replica.appendReplicated(group)
          #expect(h.seq == group.last!.seq)
          at += group.count
        }
        #expect(replica.head == primary.head)
        #expect(try replica.allAccounts() == primary.allAccounts())
        #expect(try replica.verify().ok)
        try replica.close()
      }
      // And again after a reopen (journal and projections agree).
      let reopened = try Ledger(path: dir.path + "/replica", mode: .readWrite)
      #expect(reopened.head == primary.head)
      #expect(try reopened.verify().ok)
      try reopened.close()
      try primary.close()
    }
  }

  @Test func tamperedSkippedOrReplayedEventsAreRefusedNamingTheSeqAndChangeNothing() throws {
    try withTempDir { dir in
      let primary = try Ledger.create(at: dir.path + "/primary", now: t0)
      let log = try Self.primaryLog(primary)
      let replica = try Ledger.createReplica(at: dir.path + "/replica")
      _ = try replica.appendReplicated(Array(log[0..<10]))
      let before = try snapshot(replica)

      var changedAmount = log[10]
      // An amount is the last bytes before the metadata; flipping a byte anywhere in the
      // payload must be caught by the leaf check (or the decode).
      changedAmount.bytes[changedAmount.bytes.count / 2] ^= 0x01
      var wrongChain = log[10]
      wrongChain.chain = log[11].chain
      var bothRecomputed = log[10]
      bothRecomputed.bytes[bothRecomputed.bytes.count / 2] ^= 0x01
      bothRecomputed.leaf = SHA256Hasher().leaf(bothRecomputed.bytes)
      let cases: [(String, [ReplicatedEvent], UInt64)] = [
        ("changed bytes", [changedAmount], 11),
        ("skipped seq", [log[11]], 12),
        ("replayed seq", [log[9]], 10),
        ("wrong chain", [wrongChain], 11),
        ("bytes and leaf changed together", [bothRecomputed], 11),
      ]
      for (what, group, seq) in cases {
        do {
          _ = try replica.appendReplicated(group)
          Issue.record("\(what): accepted")
        } catch let r as ReplicationRefusal {
          #expect(r.seq == seq, "\(what): \(r)")
        }
        #expect(try snapshot(replica) == before, "\(what) changed the replica")
        #expect(replica.head == before.head, "\(what) moved the head")
      }
      // Good events before a bad one go in; the bad one and what follows do not.
      do {
        _ = try replica.appendReplicated([log[10], log[11], changedAmountAt(log[12]), log[13]])
        Issue.record("a bad event after good ones: accepted")
      } catch let r as ReplicationRefusal {
        #expect(r.seq == 13, "\(r)")
      }
      #expect(replica.head.seq == 12)
      #expect(replica.head.chain == log[11].chain)
      // The good events still go in after all that.
      _ = try replica.appendReplicated(Array(log[12...]))
      #expect(replica.head == primary.head)
      #expect(try replica.verify().ok)
      try replica.close()
      try primary.close()
    }
  }

  func changedAmountAt(_ e: ReplicatedEvent) -> ReplicatedEvent {
    var e = e
    e.bytes[e.bytes.count - 2] ^= 0x40
    return e
  }
}
