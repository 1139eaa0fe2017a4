import Foundation
import TallyNATS
import TallyTestSupport
import Testing

/// `tallyd --stream`: every committed event in a JetStream stream, once, in seq order, with a
/// real nats-server (docs/REPLICATION.md).
@Suite(.serialized) struct ChangeStreamTests {
  /// One event of the log as LOG.READ gives it.
  struct LogEvent: Equatable {
    var seq: Int
    var type: String
    var bytes: String
    var leaf: String
    var chain: String
  }

  static func readLog(_ c: LineConn) async throws -> [LogEvent] {
    var out = [LogEvent]()
    var from = 1
    for _ in 0..<10_000 {
      let r = try await c.request("LOG.READ {\"from_seq\":\(from),\"limit\":2000}", timeout: 30)
      try #require(r.isOK, "LOG.READ: \(r.raw.prefix(300))")
      for case let e as [String: Any] in try r.arr("events") {
        out.append(
          LogEvent(
            seq: try e.int("seq"), type: try e.str("type"), bytes: try e.str("bytes"),
            leaf: try e.str("leaf"), chain: try e.str("chain")))
      }
      guard let next = r.body["next"] as? Int else { break }
      from = next
    }
    return out
  }

  /// STATS `stream`, required present.
  static func streamStats(_ c: LineConn) async throws -> [String: Any] {
    let r = try await c.ok("STATS")
    return try #require(r.body["stream"] as? [String: Any], "STATS has no stream: \(r.raw)")
  }

  /// Waits (bounded) until the stream acknowledged the head.
  static func waitCaughtUp(_ c: LineConn, timeout: Double = 60) async throws -> Int {
    let head = try await c.head().seq
    let deadline = monotonicSeconds() + timeout
    var last: [String: Any] = [:]
    while monotonicSeconds() < deadline {
      last = try await streamStats(c)
      if (last["acked_seq"] as? Int) == head { return head }
      try await Task.sleep(for: .milliseconds(50))
    }
    Issue.record("the stream did not reach seq \(head) in \(timeout) s: \(last)")
    return head
  }

  static func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
      out.append(digits[Int(b >> 4)])
      out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Every message of the stream equals the log's event at the same seq: bytes, hashes,
  /// type and subject; the stream holds exactly seqs 1…head.
  static func expectStreamEqualsLog(
    _ nats: String, _ log: [LogEvent], partnersOf: [String: [String]] = [:],
    stream: String = "TALLY", sourceLocation: SourceLocation = #_sourceLocation
  ) async throws {
    let conn = try await NATSConnection.connect(try NATSAddress.parseList(nats))
    defer { Task { await conn.close() } }
    let js = JetStream(conn)
    let info = try #require(try await js.streamInfo(stream), sourceLocation: sourceLocation)
    #expect(info.messages == UInt64(log.count), sourceLocation: sourceLocation)
    #expect(info.firstSeq == 1, sourceLocation: sourceLocation)
    #expect(info.lastSeq == UInt64(log.count), sourceLocation: sourceLocation)
    var problems = [String]()
    for e in log {
      guard let m = try await js.getMessage(stream: stream, seq: UInt64(e.seq)) else {
        problems.append("seq \(e.seq): not in the stream")
        continue
      }
      if hex(m.payload) != e.bytes { problems.append("seq \(e.seq): payload differs") }
      if m.headers["Tally-Seq"] != String(e.seq) { problems.append("seq \(e.seq): Tally-Seq") }
      if m.headers["Tally-Leaf"] != e.leaf { problems.append("seq \(e.seq): Tally-Leaf") }
      if m.headers["Tally-Chain"] != e.chain { problems.append("seq \(e.seq): Tally-Chain") }
      if m.headers["Tally-Type"] != e.type { problems.append("seq \(e.seq): Tally-Type") }
      if !m.subject.hasPrefix("tally.events.") || !m.subject.hasSuffix("." + e.type) {
        problems.append("seq \(e.seq): subject \(m.subject)")
      }
      if let want = partnersOf[String(e.seq)] {
        let token = want.count == 1 ? want[0] : (want.isEmpty ? "@ledger" : "@multi")
        if m.subject != "tally.events.\(token).\(e.type)" {
          problems.append("seq \(e.seq): subject \(m.subject), want partner \(token)")
        }
        if want.count > 1 && m.headers["Tally-Partners"] != want.joined(separator: ",") {
          problems.append("seq \(e.seq): Tally-Partners \(m.headers["Tally-Partners"] ?? "-")")
        }
      }
      if problems.count > 10 { break }
    }
    #expect(
      problems.isEmpty, "\(problems.count) problems:\n" + problems.joined(separator: "\n"),
      sourceLocation: sourceLocation)
  }

  @Test func theStreamHoldsEveryEventOnceInSeqOrderWithItsHashesAndSubject() async throws {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    try await withFixture(["--stream", nats.url]) { server, admin in
      var partnersOf = [String: [String]]()
      for i in 0..<60 {
        let (debit, credit, want): (String, String, [String]) =
          switch i % 3 {
          case 0: (Fixture.p1Pool, Fixture.p1Wallet, ["p1"])
          case 1: (Fixture.cash, Fixture.p2Wallet, ["platform", "p2"])
          default: (Fixture.cash, Fixture.alice, ["platform"])
          }
        let r = try await admin.post("s-\(i)", debit: debit, credit: credit, amount: "1")
        partnersOf[String(try r.int("seq"))] = want
      }
      _ = try await Self.waitCaughtUp(admin)
      let st = try await Self.streamStats(admin)
      #expect(st["state"] as? String == "publishing")
      #expect(st["lag"] as? Int == 0)
      let log = try await Self.readLog(admin)
      try await Self.expectStreamEqualsLog(nats.url, log, partnersOf: partnersOf)
    }
  }

  @Test func aNATSOutageNeverBlocksPostingAndTheStreamCatchesUpExactlyOnce() async throws {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    try await withFixture(["--stream", nats.url]) { server, admin in
      for i in 0..<20 {
        try await admin.post("a-\(i)", debit: Fixture.cash, credit: Fixture.bob, amount: "1")
      }
      _ = try await Self.waitCaughtUp(admin)
      nats.kill()
      // Posting goes on while NATS is down: every post answered OK.
      for i in 0..<200 {
        try await admin.post("b-\(i)", debit: Fixture.cash, credit: Fixture.bob, amount: "1")
      }
      let down = try await Self.streamStats(admin)
      #expect(down["state"] as? String != "publishing" || (down["lag"] as? Int ?? 0) > 0)
      try await nats.restart()
      _ = try await Self.waitCaughtUp(admin)
      let log = try await Self.readLog(admin)
      try await Self.expectStreamEqualsLog(nats.url, log)
      let st = try await Self.streamStats(admin)
      #expect((st["connects"] as? Int ?? 0) >= 2, "\(st)")
    }
  }

  @Test func losingOneServerOfAClusterMidRunLeavesTheStreamExactlyOnce() async throws {
    let cluster = try await NATSCluster.start(size: 3)
    defer { cluster.stop() }
    let flags = ["--stream", cluster.urls, "--stream-replicas", "3"]
    try await withFixture(flags) { server, admin in
      let lines = (0..<600).map {
        entryLine("m-\($0)", debit: Fixture.cash, credit: Fixture.bob, amount: "1") + "\n"
      }
      try await admin.send(lines[..<300].joined())
      // One server goes (it may be the one tallyd publishes through, or the stream leader)
      // while answers are still coming.
      cluster.servers[0].kill()
      for _ in 0..<300 { #expect(try await admin.readReply(timeout: 60).isOK) }
      try await admin.send(lines[300...].joined())
      for _ in 0..<300 { #expect(try await admin.readReply(timeout: 60).isOK) }
      _ = try await Self.waitCaughtUp(admin, timeout: 120)
      let log = try await Self.readLog(admin)
      let alive = cluster.servers.dropFirst().map(\.url).joined(separator: ",")
      try await Self.expectStreamEqualsLog(alive, log)
    }
  }

  @Test func sigkillOfTallydLeavesTheStreamExactlyOnceAfterRestart() async throws {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    let server = try await TallydProcess.start(flags: ["--stream", nats.url])
    defer { server.remove() }
    do {
      let admin = try await server.admin()
      try await buildFixture(admin)
      for round in 0..<3 {
        // Pipelined posts, killed mid-flight.
        let lines = (0..<300).map {
          entryLine("k\(round)-\($0)", debit: Fixture.cash, credit: Fixture.bob, amount: "1")
            + "\n"
        }
        let c = try await server.admin()
        try await c.send(lines.joined())
        try await Task.sleep(for: .milliseconds(20 + 40 * round))
        _ = try await server.kill()
        c.close()
        try await server.restart()
      }
      let admin2 = try await server.admin()
      _ = try await Self.waitCaughtUp(admin2)
      let log = try await Self.readLog(admin2)
      try await Self.expectStreamEqualsLog(nats.url, log)
      admin2.close()
      let status = try await server.terminate()
      #expect(status == 0)
    } catch {
      _ = try? await server.terminate(timeout: 5)
      throw error
    }
  }

  @Test func aStreamThatIsNotThisLedgersStopsThePublisherNotPosting() async throws {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    // Ledger A publishes its events.
    let aHead = try await withFixture(["--stream", nats.url]) { _, admin in
      try await Self.waitCaughtUp(admin)
    }
    // Ledger B, shorter than the stream: another primary has published there (fenced).
    try await withTallyd(["--stream", nats.url]) { server in
      let admin = try await server.admin()
      let deadline = monotonicSeconds() + 30
      var st: [String: Any] = [:]
      while monotonicSeconds() < deadline {
        st = try await Self.streamStats(admin)
        if st["state"] as? String == "failed" { break }
        try await Task.sleep(for: .milliseconds(50))
      }
      #expect(st["state"] as? String == "failed", "\(st)")
      #expect((st["stopped"] as? String)?.hasPrefix("FENCED") == true, "\(st)")
      // Posting is unaffected.
      try await admin.ok(#"PARTNER.CREATE {"id":"pb","name":"B"}"#)
    }
    // Ledger C, longer than the stream, with other events at the stream's last seq.
    let c = try await TallydProcess.start()
    defer { c.remove() }
    let admin = try await c.admin()
    try await buildFixture(admin)
    for i in 0..<(aHead + 5) {
      try await admin.post("c-\(i)", debit: Fixture.cash, credit: Fixture.bob, amount: "1")
    }
    admin.close()
    try await c.restart(flags: ["--stream", nats.url])
    let admin2 = try await c.admin()
    let deadline = monotonicSeconds() + 30
    var st: [String: Any] = [:]
    while monotonicSeconds() < deadline {
      st = try await Self.streamStats(admin2)
      if st["state"] as? String == "failed" { break }
      try await Task.sleep(for: .milliseconds(50))
    }
    #expect((st["stopped"] as? String)?.hasPrefix("FOREIGN_STREAM") == true, "\(st)")
    try await admin2.post("c-after", debit: Fixture.cash, credit: Fixture.bob, amount: "1")
    // The stream still holds A's events only.
    let conn = try await NATSConnection.connect(try NATSAddress.parseList(nats.url))
    let info = try await JetStream(conn).streamInfo("TALLY")
    #expect(info?.lastSeq == UInt64(aHead))
    await conn.close()
    admin2.close()
    #expect(try await c.terminate() == 0)
  }

  @Test func badStreamFlagsAreRefusedBeforeServing() async throws {
    let dir = try makeTempDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    for (flags, says) in [
      (["--stream", "nats://127.0.0.1"], "--stream"),
      (["--stream", "http://127.0.0.1:4222"], "--stream"),
      (["--stream", "nats://127.0.0.1:4222", "--stream-replicas", "9"], "--stream-replicas"),
      (["--stream", "nats://127.0.0.1:4222", "--stream-name", "a.b"], "--stream-name"),
      (
        ["--stream", "nats://127.0.0.1:4222", "--stream-subject-prefix", "tally.>"],
        "--stream-subject-prefix"
      ),
      (["--stream", "nats://127.0.0.1:4222", "--stream-ack-timeout", "0"], "--stream-ack-timeout"),
      (["--replica-of", "nats://127.0.0.1"], "--replica-of"),
      (["--replica-of", "nats://127.0.0.1:4222", "--stream-replicas", "0"], "--stream-replicas"),
      (
        ["--replica-of", "nats://127.0.0.1:4222", "--stream", "nats://127.0.0.1:4222"],
        "exclude each other"
      ),
      (["--replica-of", "nats://127.0.0.1:4222", "--primary-vkey", "nope"], "--primary-vkey"),
      (["--primary-vkey", "a+b+c"], "--replica-of"),
      (["--durability", "stream"], "--durability stream needs"),
      (["--stream", "nats://127.0.0.1:4222", "--durability", "quorum"], "--durability"),
    ] {
      let r = try await run(
        try Binaries.tallyd(),
        ["--data", dir + "/d", "--initialize", "--listen", "127.0.0.1:0"]
          + flags)
      #expect(r.status != 0, "\(flags) was accepted")
      // Refused before anything is initialised: no data directory.
      #expect(!FileManager.default.fileExists(atPath: dir + "/d"), "\(flags) created it")
      #expect(r.stderr.contains(says), "\(flags): \(r.stderr)")
    }
  }
}
