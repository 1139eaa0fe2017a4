import Glibc

/// A blocking TCP connection to 127.0.0.1:`port` with receive (and send) timeouts of
/// `timeoutMillis`; nil with the reason when it cannot be made. The caller closes it.
public func connectLoopback(port: Int, timeoutMillis: Int) -> Result<Int32, LoopbackError> {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return .failure(LoopbackError("socket: errno \(errno)")) }
  var timeout = timeval(tv_sec: timeoutMillis / 1000, tv_usec: timeoutMillis % 1000 * 1000)
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = in_port_t(UInt16(port).bigEndian)
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  let connected = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
    }
  }
  guard connected == 0 else {
    let why = String(cString: strerror(errno))
    close(fd)
    return .failure(LoopbackError("connect: \(why)"))
  }
  return .success(fd)
}

public struct LoopbackError: Error, CustomStringConvertible {
  public var description: String
  public init(_ description: String) { self.description = description }
}

/// One HTTP/1.1 exchange for tests: a request on a new loopback connection, the answer read
/// to the close (the request says `Connection: close`). Blocking: call it off the pool.
public enum HTTPExchange {
  public struct Answer: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    /// The first header of that name (case-insensitive).
    public func header(_ name: String) -> String? {
      headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }
    public var text: String { String(decoding: body, as: UTF8.self) }
  }

  /// Sends `method target` with `headers` (and `body` with its Content-Length), returns the
  /// answer. Reads are bounded by 60 s each (a no-hang bound) and the answer by 64 MiB.
  public static func run(
    port: Int, method: String, target: String, headers: [(String, String)] = [],
    body: [UInt8]? = nil
  ) throws -> Answer {
    var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    for (n, v) in headers { head += "\(n): \(v)\r\n" }
    if let body { head += "Content-Length: \(body.count)\r\n" }
    let request = Array((head + "\r\n").utf8) + (body ?? [])
    let fd = try connectLoopback(port: port, timeoutMillis: 60_000).get()
    defer { close(fd) }
    var sent = 0
    while sent < request.count {
      let n = request.withUnsafeBytes {
        send(fd, $0.baseAddress! + sent, request.count - sent, Int32(MSG_NOSIGNAL))
      }
      if n < 0 && errno == EINTR { continue }
      // The server may answer (e.g. 413) and close before reading a body it refuses.
      if n <= 0 { break }
      sent += n
    }
    var raw = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 65536)
    while raw.count < 64 << 20 {
      let n = recv(fd, &buf, buf.count, 0)
      if n < 0 && errno == EINTR { continue }
      if n <= 0 { break }
      raw += buf[0..<n]
    }
    return try parse(raw)
  }

  static func parse(_ raw: [UInt8]) throws -> Answer {
    let crlf2: [UInt8] = [13, 10, 13, 10]
    guard
      let end = (0..<max(0, raw.count - 3)).first(where: { raw[$0..<$0 + 4].elementsEqual(crlf2) })
    else { throw LoopbackError("no complete answer: \(raw.count) bytes") }
    let lines = String(decoding: raw[0..<end], as: UTF8.self).split(
      separator: "\r\n", omittingEmptySubsequences: false)
    let statusLine = lines[0].split(separator: " ")
    guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
      throw LoopbackError("bad status line: \(lines[0])")
    }
    var headers = [(name: String, value: String)]()
    for line in lines.dropFirst() {
      guard let c = line.firstIndex(of: ":") else { continue }
      let value = line[line.index(after: c)...].drop { $0 == " " || $0 == "\t" }
      headers.append((String(line[..<c]), String(value)))
    }
    var body = Array(raw[(end + 4)...])
    let answer = Answer(status: status, headers: headers, body: [])
    if answer.header("Transfer-Encoding")?.lowercased() == "chunked" { body = try dechunk(body) }
    return Answer(status: status, headers: headers, body: body)
  }

  static func dechunk(_ b: [UInt8]) throws -> [UInt8] {
    var out = [UInt8]()
    var i = 0
    while i < b.count {
      guard let nl = (i..<max(i, b.count - 1)).first(where: { b[$0] == 13 && b[$0 + 1] == 10 }),
        let size = Int(String(decoding: b[i..<nl], as: UTF8.self), radix: 16)
      else { throw LoopbackError("bad chunk at \(i)") }
      if size == 0 { break }
      let start = nl + 2
      guard start + size <= b.count else { throw LoopbackError("short chunk") }
      out += b[start..<start + size]
      i = start + size + 2
    }
    return out
  }
}
