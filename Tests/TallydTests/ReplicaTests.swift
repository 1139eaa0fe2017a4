import Foundation
import TallyCrypto
import TallyNATS
import TallyTestSupport
import Testing

/// `tallyd --replica-of`: a read replica fed by the primary's change stream, checking every
/// event against its own chain (docs/REPLICATION.md, "Read replicas").
@Suite(.serialized) struct ReplicaTests {
  /// STATS `replica`, required present.
  static func replicaStats(_ c: LineConn) async throws -> [String: Any] {
    let r = try await c.ok("STATS")
    return try #require(r.body["replica"] as? [String: Any], "STATS has no replica: \(r.raw)")
  }

  /// Waits (bounded) until the replica's STATS says `state` (and, if given, seq).
  static func waitReplica(
    _ c: LineConn, seq: Int? = nil, state: String, timeout: Double = 60
  ) async throws -> [String: Any] {
    let deadline = monotonicSeconds() + timeout
    var last: [String: Any] = [:]
    while monotonicSeconds() < deadline {
      last = try await replicaStats(c)
      if last["state"] as? String == state && (seq == nil || last["seq"] as? Int == seq) {
        return last
      }
      try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record(
      "the replica did not reach \(state) \(seq.map(String.init) ?? "") in time: \(last)")
    return last
  }

  /// What a reader sees of the ledger over the protocol: head, every fixture account's
  /// balance, both partner views.
  static func picture(_ c: LineConn) async throws -> [String] {
    var out = [String]()
    let h = try await c.head()
    out.append("head \(h.seq) \(h.chain)")
    for a in Fixture.all { out.append("\(a): \(try await c.balance(a))") }
    for p in ["p1", "p2"] {
      let r = try await c.ok("PARTNER.VIEW {\"id\":\"\(p)\"}")
      out.append("\(p): \(r.raw)")
    }
    let s = try await c.ok("STATEMENT.GET {\"account\":\"\(Fixture.bob)\",\"limit\":1000}")
    out.append("statement: \(s.raw)")
    return out
  }

  @Test func aReplicaUnderLoadCatchesUpEqualsThePrimaryAndRefusesWrites() async throws {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    try await withFixture(["--stream", nats.url]) { primary, admin in
      try await withTallyd(["--replica-of", nats.url]) { replica in
        let r = try await replica.admin()
        // Load while the replica follows: pipelined posts, a hold and its capture.
        let lines = (0..<600).map {
          entryLine("r-\($0)", debit: Fixture.cash, credit: Fixture.bob, amount: "\($0 + 1)")
            + "\n"
        }
        try await admin.send(lines.joined())
        for _ in lines { #expect(try await admin.readReply(timeout: 60).isOK) }
        try await admin.ok(
          #"HOLD.PLACE {"id":"h1","legs":[{"account":"cash","side":"debit","amount":"70"},"#
            + #"{"account":"p1:wallet","side":"credit","amount":"70"}]}"#)
        try await admin.ok(#"HOLD.CAPTURE {"id":"h1"}"#)
        let head = try await admin.head().seq
        _ = try await Self.waitReplica(r, seq: head, state: "following")
        #expect(try await Self.picture(r) == Self.picture(admin))
        // Writes: READ_ONLY, naming the primary; nothing changes.
        let w = try await r.request(
          entryLine("on-replica", debit: Fixture.cash, credit: Fixture.bob, amount: "1"))
        #expect(w.code == "READ_ONLY", "\(w)")
        #expect(w.details["primary"] as? String == "127.0.0.1:\(primary.port)", "\(w)")
        #expect(try await r.head().seq == head)
        r.close()
      }
    }
  }

  @Test func aReplicaStoppedAndRestartedResumesAndVerifies() async throws {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    try await withFixture(["--stream", nats.url]) { _, admin in
      let replica = try await TallydProcess.start(flags: ["--replica-of", nats.url])
      defer { replica.remove() }
      for i in 0..<50 {
        try await admin.post("a-\(i)", debit: Fixture.cash, credit: Fixture.bob, amount: "1")
      }
      _ = try await replica.kill()
      for i in 0..<50 {
        try await admin.post("b-\(i)", debit: Fixture.cash, credit: Fixture.bob, amount: "1")
      }
      try await replica.restart()
      let r = try await replica.admin()
      let head = try await admin.head()
      _ = try await Self.waitReplica(r, seq: head.seq, state: "following")
      #expect(try await r.head().chain == head.chain)
      r.close()
      #expect(try await replica.terminate() == 0)
      let v = try await runTally(["verify", "--data", replica.dataDir])
      #expect(v.status == 0, "verify: \(v.stdout) \(v.stderr)")
    }
  }

  /// Copies messages `seqs` of stream TALLY, in order, into a new stream `name` (with
  /// `change` applied to the one at position `at`), as a forger would.
  static func forge(
    _ js: JetStream, into name: String, from seqs: [UInt64],
    change: ((inout JetStream.StoredMessage) -> Void)? = nil
  ) async throws {
    var config = JetStream.StreamConfig(name: name, subjects: [name + ".>"])
    config.replicas = 1
    _ = try await js.createStream(config)
    for (i, s) in seqs.enumerated() {
      var m = try #require(try await js.getMessage(stream: "TALLY", seq: s))
      if i == seqs.count - 1, let change { change(&m) }
      // The primary's publishing headers name its own stream and position.
      m.headers.fields.removeAll { $0.name.hasPrefix("Nats-") }
      _ = try await js.publish(name + ".x", headers: m.headers, payload: m.payload)
    }
  }

  @Test func aTamperedSkippedOrReplayedEventIsRefusedNamingItsSeq() async throws {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    let head = try await withFixture(["--stream", nats.url]) { _, admin in
      for i in 0..<10 {
        try await admin.post("t-\(i)", debit: Fixture.cash, credit: Fixture.bob, amount: "5")
      }
      return try await ChangeStreamTests.waitCaughtUp(admin)
    }
    let k = UInt64(head - 3)
    let conn = try await NATSConnection.connect(try NATSAddress.parseList(nats.url))
    let js = JetStream(conn)
    let good = Array(1..<k)
    // (a) a changed amount: the payload altered, the headers as the primary sent them.
    try await Self.forge(js, into: "CHANGED", from: good + [k]) { m in
      m.payload[m.payload.count / 2] ^= 0x01
    }
    // (b) a skipped seq: k + 1's event where k belongs.
    try await Self.forge(js, into: "SKIPPED", from: good + [k + 1])
    // (c) a replayed one: k - 1's event again.
    try await Self.forge(js, into: "REPLAYED", from: good + [k - 1])
    // (d) the hashes rewritten to match the altered payload (the chain still breaks).
    try await Self.forge(js, into: "REHASHED", from: good + [k]) { m in
      m.payload[m.payload.count / 2] ^= 0x01
      m.headers["Tally-Leaf"] = SHA256Hasher().leaf(m.payload).hex
    }
    await conn.close()
    for stream in ["CHANGED", "SKIPPED", "REPLAYED", "REHASHED"] {
      try await withTallyd(["--replica-of", nats.url, "--stream-name", stream]) { replica in
        let r = try await replica.admin()
        let st = try await Self.waitReplica(r, state: "failed")
        let refused = st["refused"] as? [String: Any]
        #expect(refused?["seq"] as? Int == Int(k), "\(stream): \(st)")
        #expect(try await r.head().seq == Int(k) - 1, "\(stream): applied past the bad event")
        #expect(replica.log().contains("refused"), "\(stream): the log does not say it")
        r.close()
      }
    }
  }
}
