import Foundation
import Glibc
import TallyProtocol
import TallyTestSupport

/// A TCP proxy on 127.0.0.1 in front of a real `tallyd` that rewrites the server's answers:
/// the lying server an auditor's tools are tested against. Each connection takes the
/// rewrite set when it was accepted, and passes everything else through (the HELLO, the
/// AUTH exchange, requests), so the client authenticates with the real server.
final class LyingProxy: @unchecked Sendable {
  /// Rewrites one answer line, given the request's verb and its integer fields.
  typealias Rewrite =
    @Sendable (_ verb: String, _ request: [String: UInt64], _ line: String) ->
    String

  let port: UInt16
  private let upstream: Int
  private let listenFD: Int32
  private let lock = NSLock()
  private var rewrite: Rewrite = { _, _, line in line }

  init(upstream: Int) throws {
    self.upstream = upstream
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw LoopbackError("socket: errno \(errno)") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
        bind(fd, p, length) == 0 && listen(fd, 64) == 0 && getsockname(fd, p, &length) == 0
      }
    }
    guard bound else {
      Glibc.close(fd)
      throw LoopbackError("bind/listen: errno \(errno)")
    }
    listenFD = fd
    port = UInt16(bigEndian: address.sin_port)
    Thread.detachNewThread { [self] in acceptLoop() }
  }

  /// The rewrite for connections accepted from now on.
  func lie(_ r: @escaping Rewrite) { lock.withLock { rewrite = r } }

  /// Stops accepting (connections already open run to their end).
  func stop() { Glibc.shutdown(listenFD, Int32(SHUT_RDWR)) }

  private func acceptLoop() {
    while true {
      let c = accept(listenFD, nil, nil)
      if c < 0 {
        if errno == EINTR { continue }
        Glibc.close(listenFD)
        return
      }
      let r = lock.withLock { rewrite }
      guard case .success(let u) = connectLoopback(port: upstream, timeoutMillis: 60_000) else {
        Glibc.close(c)
        continue
      }
      let link = Link(client: c, server: u, rewrite: r)
      Thread.detachNewThread { link.requests() }
      Thread.detachNewThread { link.answers() }
    }
  }

  /// One proxied connection: requests flow to the server as they are, and each answer line
  /// is matched (in order) with the request it answers.
  private final class Link: @unchecked Sendable {
    let client: Int32
    let server: Int32
    let rewrite: Rewrite
    private let lock = NSLock()
    private var pending = [(String, [String: UInt64])]()
    private var finished = 0

    init(client: Int32, server: Int32, rewrite: @escaping Rewrite) {
      self.client = client
      self.server = server
      self.rewrite = rewrite
    }

    func requests() {
      var reader = LineReader(fd: client)
      while let line = reader.next() {
        lock.withLock { pending.append(Self.parse(line)) }
        guard writeAll(server, Array((line + "\n").utf8)) else { break }
      }
      Glibc.shutdown(server, Int32(SHUT_WR))
      done()
    }

    func answers() {
      var reader = LineReader(fd: server)
      var greeted = false
      while let line = reader.next() {
        var out = line
        if greeted {
          let request = lock.withLock { pending.isEmpty ? nil : pending.removeFirst() }
          if let (verb, fields) = request, line.hasPrefix("OK") {
            out = rewrite(verb, fields, line)
          }
        }
        greeted = true
        guard writeAll(client, Array((out + "\n").utf8)) else { break }
      }
      Glibc.shutdown(client, Int32(SHUT_RDWR))
      done()
    }

    /// The second side to finish closes both sockets.
    private func done() {
      let last = lock.withLock {
        finished += 1
        return finished == 2
      }
      if last {
        Glibc.close(client)
        Glibc.close(server)
      }
    }

    static func parse(_ line: String) -> (String, [String: UInt64]) {
      let parts = line.split(separator: " ", maxSplits: 1)
      let verb = parts.first.map(String.init) ?? ""
      var fields = [String: UInt64]()
      if parts.count == 2, let o = try? JSONParser.parse(String(parts[1])).objectValue {
        for (k, v) in o.members {
          if case .number(let t) = v, let n = UInt64(t) { fields[k] = n }
        }
      }
      return (verb, fields)
    }
  }
}

/// Lines of a blocking socket (bounded: a line over 16 MiB ends the stream).
struct LineReader {
  let fd: Int32
  private var buffer = [UInt8]()
  private var start = 0

  init(fd: Int32) { self.fd = fd }

  mutating func next() -> String? {
    while true {
      if let nl = buffer[start...].firstIndex(of: 0x0A) {
        let line = String(decoding: buffer[start..<nl], as: UTF8.self)
        start = nl + 1
        if start > 65536 {
          buffer.removeFirst(start)
          start = 0
        }
        return line
      }
      guard buffer.count - start < 16 << 20 else { return nil }
      var chunk = [UInt8](repeating: 0, count: 65536)
      let n = recv(fd, &chunk, chunk.count, 0)
      if n < 0 && errno == EINTR { continue }
      if n <= 0 { return nil }
      buffer += chunk[0..<n]
    }
  }
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
  var sent = 0
  while sent < bytes.count {
    let n = bytes.withUnsafeBytes {
      send(fd, $0.baseAddress! + sent, bytes.count - sent, Int32(MSG_NOSIGNAL))
    }
    if n < 0 && errno == EINTR { continue }
    if n <= 0 { return false }
    sent += n
  }
  return true
}
