import Dispatch
import TallyNATS
import Testing

// The client against a scripted peer: what it sends in CONNECT, that it answers the server's
// PINGs, that a protocol violation drops the connection with a clear error, and that a
// server that stops reading makes publish fail rather than queue without end.

@Suite("NATS client against a scripted peer", .timeLimit(.minutes(10)))
struct PeerTests {
  func connectToPeer(_ peer: ScriptedPeer, attempts: Int = 0) async throws -> NATSConnection {
    var options = testOptions("peer-test")
    options.reconnectAttemptsMax = attempts
    return try await NATSConnection.connect(
      [NATSAddress(host: "127.0.0.1", port: peer.port)], options: options)
  }

  @Test func serverPingsAreAnsweredAndAProtocolViolationDropsTheConnection() async throws {
    let peer = try ScriptedPeer()
    let script = Task {
      try await onThread { () -> (String, String) in
        let connect = try peer.handshake()
        _ = try peer.read(until: "SUB _INBOX.")  // the request inbox, subscribed at once
        try peer.send("PING\r\n")
        _ = try peer.read(until: "PONG\r\n")
        try peer.send("MSG a 1 abc\r\n")  // a size that is not a number
        return (connect, peer.readUntilClosed())
      }
    }
    let connection = try await connectToPeer(peer)
    let (connect, ending) = try await script.value
    #expect(connect.hasPrefix("CONNECT {"))
    for field in [
      "\"verbose\":false", "\"pedantic\":false", "\"headers\":true", "\"no_responders\":true",
      "\"name\":\"peer-test\"",
    ] {
      #expect(connect.contains(field), "\(field) missing in \(connect)")
    }
    #expect(
      ending == "closed" || ending == "reset",
      "the client must close a connection whose framing broke: \(ending)")
    // With no reconnect attempts allowed, the connection closes for good.
    #expect(await eventually(20) { connection.lastError?.code == .closed })
    #expect(!connection.isConnected)
    let error = try #require(connection.lastError)
    #expect(error.code == .closed, "\(error)")
    #expect(error.message.contains("MSG with a bad size"), "\(error)")
    await connection.close()
  }

  @Test func aServerThatStopsReadingMakesPublishFailWithOverloaded() async throws {
    let peer = try ScriptedPeer()
    let release = DispatchSemaphore(value: 0)
    let script = Task {
      try await onThread { () -> Bool in
        _ = try peer.handshake()
        // Never read again, until the test is done.
        return release.wait(timeout: .now() + 20) == .success
      }
    }
    let connection = try await connectToPeer(peer)
    let payload = [UInt8](repeating: 0x5A, count: 1 << 20)
    var accepted = 0
    var refusal: NATSError?
    // 64 MiB may wait for the socket; the kernel's buffers hold a few MiB more.
    for _ in 0..<256 {
      do {
        try connection.publish("fill", payload: payload)
        accepted += 1
      } catch {
        refusal = error
        break
      }
    }
    release.signal()
    _ = try await script.value
    let error = try #require(refusal, "256 MiB were queued for a server that does not read")
    #expect(error.code == .overloaded, "\(error)")
    #expect(accepted >= NATSLimits.pendingWriteBytesMax >> 20 - 1, "\(accepted)")
    await connection.close()
  }
}
