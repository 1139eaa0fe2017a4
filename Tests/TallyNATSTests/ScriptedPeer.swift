import Dispatch
import Glibc

// A raw TCP peer on 127.0.0.1 that plays a scripted part of the NATS protocol, for what a
// real nats-server will not do on demand: send a PING, break the protocol, stop reading.

final class ScriptedPeer: @unchecked Sendable {
  struct Failed: Error, CustomStringConvertible { var description: String }

  let port: Int
  private let listener: Int32
  private(set) var connection: Int32 = -1

  static let info =
    "INFO {\"server_id\":\"peer\",\"server_name\":\"peer\",\"version\":\"2.9.10\","
    + "\"max_payload\":1048576,\"headers\":true,\"proto\":1}\r\n"

  init() throws {
    let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard bound == 0, listen(listener, 4) == 0 else {
      close(listener)
      throw Failed(description: "bind/listen: errno \(errno)")
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
    }
    self.listener = listener
    port = Int(UInt16(bigEndian: address.sin_port))
  }

  deinit {
    if connection >= 0 { close(connection) }
    close(listener)
  }

  /// Accepts one client (waiting at most 30 s); reads then time out after 30 s each (no-hang bounds: a loaded run of the suite stalls processes for seconds).
  func accept() throws {
    var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
    guard poll(&poller, 1, 30_000) == 1 else { throw Failed(description: "no client connected") }
    connection = Glibc.accept(listener, nil, nil)
    guard connection >= 0 else { throw Failed(description: "accept: errno \(errno)") }
    var timeout = timeval(tv_sec: 30, tv_usec: 0)
    setsockopt(
      connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  }

  func send(_ text: String) throws {
    let bytes = Array(text.utf8)
    guard Glibc.send(connection, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
      throw Failed(description: "send failed: errno \(errno)")
    }
  }

  /// Reads until the text received contains `marker`; returns all of it.
  func read(until marker: String) throws -> String {
    var received: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while !String(decoding: received, as: UTF8.self).contains(marker) {
      let n = recv(connection, &chunk, chunk.count, 0)
      guard n > 0 else {
        throw Failed(description: "connection ended before \(marker.debugDescription)")
      }
      received += chunk[0..<n]
    }
    return String(decoding: received, as: UTF8.self)
  }

  /// Reads until the client closes: "closed" (FIN), "reset" (RST, a close with data still
  /// unread), or what went wrong (the read timeout of 30 s, another errno).
  func readUntilClosed() -> String {
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
      let n = recv(connection, &chunk, chunk.count, 0)
      if n == 0 { return "closed" }
      if n < 0 {
        if errno == ECONNRESET { return "reset" }
        if errno == EAGAIN || errno == EWOULDBLOCK { return "not closed within 30 s" }
        return "recv failed: errno \(errno)"
      }
    }
  }

  /// Accepts a client and completes its handshake (INFO; CONNECT and PING; PONG); returns
  /// the CONNECT line.
  func handshake() throws -> String {
    try accept()
    try send(Self.info)
    let hello = try read(until: "PING\r\n")
    try send("PONG\r\n")
    return String(hello.prefix { $0 != "\r" })
  }
}

/// Runs blocking `body` on a GCD thread and awaits it.
func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
    DispatchQueue.global().async {
      do { continuation.resume(returning: try body()) } catch {
        continuation.resume(throwing: error)
      }
    }
  }
}
