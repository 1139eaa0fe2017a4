import Dispatch
import Foundation
import Glibc
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TallyHTTP

/// The back office over a real socket: the application runs on 127.0.0.1 (an ephemeral
/// port) and each request is one HTTP/1.1 exchange on a new connection, read to the close.
/// A client of our own rather than HummingbirdTesting, whose HTTP client would add a TLS
/// stack to the build for tests that never use TLS.
struct LiveClient: Sendable {
  let port: Int

  struct Response: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer
  }

  struct Failed: Error, CustomStringConvertible { var description: String }

  func execute(
    uri: String, method: HTTPRequest.Method, headers: HTTPFields = HTTPFields(),
    body: ByteBuffer? = nil
  ) async throws -> Response {
    var head = "\(method.rawValue) \(uri) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for f in headers { head += "\(f.name.rawName): \(f.value)\r\n" }
    let payload = body.map { Array($0.readableBytesView) } ?? []
    if body != nil { head += "Content-Length: \(payload.count)\r\n" }
    let request = Array((head + "\r\n").utf8) + payload
    let port = self.port
    let raw = try await Self.offPool { try Self.exchange(port: port, request) }
    return try Self.parse(raw)
  }

  /// Runs blocking socket IO on a GCD thread, never on the concurrency pool.
  static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
      DispatchQueue.global().async { c.resume(with: Result { try body() }) }
    }
  }

  static func exchange(port: Int, _ request: [UInt8]) throws -> [UInt8] {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw Failed(description: "socket: \(errno)") }
    defer { close(fd) }
    // No-hang bound: a loaded run of the suite is slow, never this slow.
    var tv = timeval(tv_sec: 60, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &addr) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
      }
    }
    guard ok == 0 else { throw Failed(description: "connect: \(errno)") }
    var sent = 0
    while sent < request.count {
      let n = request.withUnsafeBytes {
        send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL))
      }
      if n < 0 && errno == EINTR { continue }
      // The server may answer (413) and close before reading a body it refuses.
      if n <= 0 { break }
      sent += n
    }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 65536)
    while out.count < 64 << 20 {
      let n = recv(fd, &buf, buf.count, 0)
      if n < 0 && errno == EINTR { continue }
      if n <= 0 { break }
      out += buf[0..<n]
    }
    return out
  }

  static func parse(_ raw: [UInt8]) throws -> Response {
    let crlf2: [UInt8] = [13, 10, 13, 10]
    guard let end = (0..<max(0, raw.count - 3)).first(where: { Array(raw[$0..<$0 + 4]) == crlf2 })
    else { throw Failed(description: "no complete answer: \(raw.count) bytes") }
    let lines = String(decoding: raw[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
    let statusLine = lines[0].split(separator: " ")
    guard statusLine.count >= 2, let code = Int(statusLine[1]) else {
      throw Failed(description: "bad status line: \(lines[0])")
    }
    var headers = HTTPFields()
    for line in lines.dropFirst() {
      guard let c = line.firstIndex(of: ":"), let name = HTTPField.Name(String(line[..<c]))
      else { continue }
      headers.append(
        HTTPField(
          name: name,
          value: String(line[line.index(after: c)...]).trimmingCharacters(in: .whitespaces)))
    }
    var body = Array(raw[(end + 4)...])
    if headers[.transferEncoding]?.lowercased() == "chunked" { body = try dechunk(body) }
    return Response(
      status: HTTPResponse.Status(code: code), headers: headers, body: ByteBuffer(bytes: body))
  }

  static func dechunk(_ b: [UInt8]) throws -> [UInt8] {
    var out = [UInt8]()
    var i = 0
    while i < b.count {
      guard let nl = (i..<b.count - 1).first(where: { b[$0] == 13 && b[$0 + 1] == 10 }),
        let size = Int(String(decoding: b[i..<nl], as: UTF8.self), radix: 16)
      else { throw Failed(description: "bad chunk at \(i)") }
      if size == 0 { break }
      let start = nl + 2
      guard start + size <= b.count else { throw Failed(description: "short chunk") }
      out += b[start..<start + size]
      i = start + size + 2
    }
    return out
  }
}

extension Office {
  /// Runs the back office on an ephemeral loopback port for `body`, then stops it.
  func live<R: Sendable>(
    _ config: HTTPConfig = HTTPConfig(), _ body: (LiveClient) async throws -> R
  ) async throws -> R {
    let (ports, bound) = AsyncStream<Int>.makeStream()
    var c = config
    c.port = 0
    let app = try makeHTTPApplication(
      server: server, config: c, logger: Logger(label: "test"),
      onListening: { port in bound.yield(port) })
    let running = Task { try await app.runService() }
    var it = ports.makeAsyncIterator()
    guard let port = await it.next() else { throw LiveClient.Failed(description: "not listening") }
    do {
      let r = try await body(LiveClient(port: port))
      running.cancel()
      _ = await running.result
      return r
    } catch {
      running.cancel()
      _ = await running.result
      throw error
    }
  }
}
