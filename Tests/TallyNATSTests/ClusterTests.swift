import TallyNATS
import TallyTestSupport
import Testing

// A 3-server JetStream cluster with a replicas-3 stream: killing the server the client is on,
// which also leads the stream, loses nothing that was acknowledged.

@Suite("JetStream cluster", .timeLimit(.minutes(10)))
struct ClusterTests {
  /// Retries `body` every 100 ms until it succeeds or `seconds` pass (then rethrows).
  func retrying<T>(_ seconds: Double, _ body: () async throws -> T) async throws -> T {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while true {
      do {
        return try await body()
      } catch {
        if ContinuousClock.now >= deadline { throw error }
        try await Task.sleep(for: .milliseconds(100))
      }
    }
  }

  @Test func killingTheConnectedStreamLeaderLosesNoAcknowledgedMessage() async throws {
    let cluster = try await NATSCluster.start(size: 3)
    defer { cluster.stop() }
    let setup = try await connect(cluster.urls)
    defer { Task { await setup.close() } }
    let setupJS = JetStream(setup, timeout: .seconds(10))
    // Right after the meta leader is elected, the peers may not all be known yet.
    let created = try await retrying(15) {
      try await setupJS.createStream(
        .init(name: "R3", subjects: ["r3.>"], replicas: 3, duplicateWindow: .seconds(120)))
    }
    #expect(created.replicas == 3)
    let leaderName = try await retrying(10) { () -> String in
      guard let leader = try await setupJS.streamInfo("R3")?.clusterLeader else {
        throw TimedOut(description: "no stream leader yet")
      }
      return leader
    }
    let leader = try #require(cluster.servers.first { $0.name == leaderName })
    // The client connects to the leader first, so one SIGKILL takes both.
    let urls = [leader.url] + cluster.servers.filter { $0 !== leader }.map(\.url)
    let connection = try await connect(urls.joined(separator: ","))
    defer { Task { await connection.close() } }
    #expect(connection.connectedServer?.port == leader.port)
    let js = JetStream(connection, timeout: .seconds(10))

    /// Publishes message `i` until it is acknowledged (the msg id makes retries safe).
    func publish(_ i: Int) async throws -> JetStream.PubAck {
      try await retrying(20) {
        try await js.publish("r3.m", payload: bytes("m\(i)"), msgId: "m-\(i)")
      }
    }
    for i in 1...20 {
      #expect(try await publish(i).seq == UInt64(i))
    }
    leader.kill()
    var acks: [JetStream.PubAck] = []
    for i in 21...40 { acks.append(try await publish(i)) }
    #expect(acks.map(\.seq) == (21...40).map { UInt64($0) })
    #expect(connection.reconnects >= 1)
    #expect(connection.connectedServer != nil && connection.connectedServer?.port != leader.port)

    // Everything acknowledged is there, in order, on the new leader.
    let info = try await retrying(10) { try #require(try await js.streamInfo("R3")) }
    #expect(info.messages == 40 && info.lastSeq == 40, "\(info)")
    #expect(info.clusterLeader != leaderName)
    for seq in 1...40 {
      let message = try await retrying(10) {
        try await js.getMessage(stream: "R3", seq: UInt64(seq))
      }
      #expect(message?.payload == bytes("m\(seq)"), "seq \(seq)")
    }
  }
}
