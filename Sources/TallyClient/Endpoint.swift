/// A server address given as `HOST:PORT`, `[IPv6]:PORT` or `:PORT` (meaning 127.0.0.1).
public struct Endpoint: Sendable, Equatable, CustomStringConvertible {
  public var host: String
  public var port: Int

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// Parses `HOST:PORT`. The port must be 1…65535; an IPv6 address must be bracketed, since
  /// its own colons would make the port ambiguous.
  public init(parsing text: String) throws(TallyClientError) {
    guard let colon = text.lastIndex(of: ":") else {
      throw .invalidEndpoint("expected HOST:PORT, got \(Self.excerpt(text))")
    }
    var host = String(text[..<colon])
    let portText = text[text.index(after: colon)...]
    guard !portText.isEmpty, portText.utf8.count <= 5,
      portText.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
      let port = Int(portText), (1...65_535).contains(port)
    else {
      throw .invalidEndpoint("port must be 1…65535 in \(Self.excerpt(text))")
    }
    if host.hasPrefix("[") {
      guard host.hasSuffix("]"), host.count > 2 else {
        throw .invalidEndpoint("unterminated [IPv6] address in \(Self.excerpt(text))")
      }
      host = String(host.dropFirst().dropLast())
    } else if host.contains(":") {
      throw .invalidEndpoint("bracket an IPv6 address, as in [::1]:7878")
    }
    if host.isEmpty { host = "127.0.0.1" }
    guard host.utf8.count <= 253, !host.contains(where: { $0 == " " || $0.isNewline }) else {
      throw .invalidEndpoint("malformed host in \(Self.excerpt(text))")
    }
    self.init(host: host, port: port)
  }

  public var description: String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
  }

  private static func excerpt(_ text: String) -> String {
    "\"\(text.prefix(64))\""
  }
}
