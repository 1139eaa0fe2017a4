import Foundation
import TallyCore
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

  /// The primary's verifier key, read from its directory (read-only, while it runs).
  static func vkey(_ server: TallydProcess) async throws -> String {
    let r = try await runTally(["vkey", "--data", server.dataDir])
    try #require(r.status == 0, "tally vkey: \(r.stderr)")
    return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
  }

  @Test func aReplicaUnderLoadCatchesUpEqualsThePrimaryAndRefusesWrites() async throws {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    try await withFixture(["--stream", nats.url, "--checkpoint-interval", "1"]) { primary, admin in
      let vkey = try await Self.vkey(primary)
      // A second key, as after a rotation: a checkpoint verifies under either.
      let other = try makeTempDir()
      defer { try? FileManager.default.removeItem(atPath: other) }
      #expect(try await runTally(["--data", other + "/l", "init"]).status == 0)
      let otherKey = try await runTally(["vkey", "--data", other + "/l"]).stdout
        .trimmingCharacters(in: .whitespacesAndNewlines)
      try await withTallyd([
        "--replica-of", nats.url, "--primary-vkey", otherKey, "--primary-vkey", vkey,
      ]) { replica in
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
        // The primary's signed checkpoints verify against the replica's own tree and chain.
        let deadline = monotonicSeconds() + 60
        var st: [String: Any] = [:]
        while monotonicSeconds() < deadline {
          st = try await Self.replicaStats(r)
          if (st["checkpoints_verified"] as? Int ?? 0) >= 1 { break }
          try await Task.sleep(for: .milliseconds(100))
        }
        #expect((st["checkpoints_verified"] as? Int ?? 0) >= 1, "\(st)")
        #expect(st["checkpoints_checked"] as? Bool == true)
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
    // (e) a hash header that is not 64 lowercase hex digits.
    try await Self.forge(js, into: "MALFORMED", from: good + [k]) { m in
      m.headers["Tally-Leaf"] = (m.headers["Tally-Leaf"] ?? "").uppercased()
    }
    await conn.close()
    for stream in ["CHANGED", "SKIPPED", "REPLAYED", "REHASHED", "MALFORMED"] {
      try await withTallyd(["--replica-of", nats.url, "--stream-name", stream]) { replica in
        let r = try await replica.admin()
        let st = try await Self.waitReplica(r, state: "failed")
        let refused = st["refused"] as? [String: Any]
        #expect(refused?["seq"] as? Int == Int(k), "\(stream): \(st)")
        #expect(try await r.head().seq == Int(k) - 1, "\(stream): applied past the bad event")
        #expect(replica.log().contains("refused"), "\(stream): the log does not say it")
        // A replica that refused the stream cannot be promoted, and stays as it was.
        let p = try await r.request("REPLICA.PROMOTE")
        #expect(p.code == "BAD_REQUEST" && p.reason == "REPLICA_FAILED", "\(stream): \(p)")
        #expect(try await r.head().seq == Int(k) - 1)
        let w = try await r.request(
          entryLine("after-refusal", debit: Fixture.cash, credit: Fixture.bob, amount: "1"))
        #expect(w.code == "READ_ONLY", "\(stream): \(w)")
        r.close()
      }
    }
  }
}

extension ReplicaTests {
  /// Copies the primary's stream into `name`, rewriting event `k` (one payload byte) and
  /// every chain hash from there on so that the chain stays consistent: only the primary's
  /// signed checkpoints can tell. Copies its checkpoints too (`name`_CHECKPOINTS).
  static func forgeConsistently(
    _ js: JetStream, into name: String, events: UInt64, k: UInt64
  ) async throws {
    var config = JetStream.StreamConfig(name: name, subjects: [name + ".>"])
    config.replicas = 1
    _ = try await js.createStream(config)
    let h = SHA256Hasher()
    var chain = Hash32.zero
    for s in 1...events {
      var m = try #require(try await js.getMessage(stream: "TALLY", seq: s))
      m.headers.fields.removeAll { $0.name.hasPrefix("Nats-") }
      if s == k { m.payload[m.payload.count / 2] ^= 0x01 }
      if s >= k {
        let leaf = h.leaf(m.payload)
        m.headers["Tally-Leaf"] = leaf.hex
        chain = h.chain(chain, leaf)
        m.headers["Tally-Chain"] = chain.hex
      } else {
        let raw = try #require([UInt8](hex: m.headers["Tally-Chain"] ?? ""))
        chain = raw.withUnsafeBytes { Hash32(raw: $0) }
      }
      _ = try await js.publish(name + ".x", headers: m.headers, payload: m.payload)
    }
    var ck = JetStream.StreamConfig(name: name + "_CHECKPOINTS", subjects: [name + "-checkpoints"])
    ck.replicas = 1
    _ = try await js.createStream(ck)
    let info = try #require(try await js.streamInfo("TALLY_CHECKPOINTS"))
    for s in max(info.firstSeq, 1)...max(info.lastSeq, 1) where info.lastSeq > 0 {
      let m = try #require(try await js.getMessage(stream: "TALLY_CHECKPOINTS", seq: s))
      _ = try await js.publish(name + "-checkpoints", headers: m.headers, payload: m.payload)
    }
  }

  @Test func aConsistentRewriteOfTheStreamIsCaughtByThePrimarysSignedCheckpoints() async throws {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    var vkey = ""
    var size = 0
    try await withFixture(["--stream", nats.url, "--checkpoint-interval", "1"]) { primary, admin in
      vkey = try await Self.vkey(primary)
      for i in 0..<10 {
        try await admin.post("cw-\(i)", debit: Fixture.cash, credit: Fixture.bob, amount: "5")
      }
      let head = try await ChangeStreamTests.waitCaughtUp(admin)
      // Wait (bounded) for a checkpoint of the head in the checkpoint stream.
      let conn = try await NATSConnection.connect(try NATSAddress.parseList(nats.url))
      let js = JetStream(conn)
      let deadline = monotonicSeconds() + 60
      while monotonicSeconds() < deadline {
        let last = try await js.lastMessage(
          stream: "TALLY_CHECKPOINTS", subject: "tally.events-checkpoints")
        size = Int(last?.headers["Tally-Size"] ?? "") ?? 0
        if size == head { break }
        try await Task.sleep(for: .milliseconds(100))
      }
      await conn.close()
      try #require(size == head, "no checkpoint of the head was published")
    }
    let conn = try await NATSConnection.connect(try NATSAddress.parseList(nats.url))
    let js = JetStream(conn)
    let k = UInt64(size - 4)
    try await Self.forgeConsistently(js, into: "REWRITTEN", events: UInt64(size), k: k)
    // A note whose signature does not verify (another key signed it).
    var bad = JetStream.StreamConfig(name: "BADSIG", subjects: ["BADSIG.>"])
    bad.replicas = 1
    _ = try await js.createStream(bad)
    for s in 1...UInt64(size) {
      var m = try #require(try await js.getMessage(stream: "TALLY", seq: s))
      m.headers.fields.removeAll { $0.name.hasPrefix("Nats-") }
      _ = try await js.publish("BADSIG.x", headers: m.headers, payload: m.payload)
    }
    var badCk = JetStream.StreamConfig(name: "BADSIG_CHECKPOINTS", subjects: ["BADSIG-checkpoints"])
    badCk.replicas = 1
    _ = try await js.createStream(badCk)
    let real = try #require(
      try await js.lastMessage(stream: "TALLY_CHECKPOINTS", subject: "tally.events-checkpoints"))
    var forgedNote = String(decoding: real.payload, as: UTF8.self)
    forgedNote = forgedNote.replacingOccurrences(of: "\n\(size)\n", with: "\n\(size - 1)\n")
    _ = try await js.publish(
      "BADSIG-checkpoints", headers: real.headers, payload: Array(forgedNote.utf8))
    await conn.close()

    for (stream, want, says) in [
      ("REWRITTEN", size, "signed checkpoint"), ("BADSIG", size, "does not verify"),
    ] {
      try await withTallyd([
        "--replica-of", nats.url, "--stream-name", stream, "--primary-vkey", vkey,
      ]) { replica in
        let r = try await replica.admin()
        let st = try await Self.waitReplica(r, state: "failed")
        let refused = st["refused"] as? [String: Any]
        #expect(refused?["seq"] as? Int == want, "\(stream): \(st)")
        #expect((refused?["reason"] as? String)?.contains(says) == true, "\(stream): \(st)")
        r.close()
      }
    }
  }
}
