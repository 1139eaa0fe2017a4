/// One server address, `host:port`.
public struct NATSAddress: Sendable, Hashable, CustomStringConvertible {
  public var host: String
  public var port: Int

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// `host:port`, with an IPv6 host in brackets.
  public var description: String {
    host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
  }

  /// Parses a comma-separated list such as `"nats://h:p,h:p"` or `"h:p,nats://h:p"`.
  ///
  /// Each entry is `host:port`, optionally after `nats://`; an IPv6 host goes in brackets
  /// (`[::1]:4222`). Spaces around entries are ignored. An empty list, an empty entry, another
  /// scheme, a missing host or a port outside 1…65535 throws `.invalid`: a server list is
  /// configuration, and guessing at it would connect somewhere unintended.
  public static func parseList(_ text: String) throws(NATSError) -> [NATSAddress] {
    let entries = text.split(separator: ",", omittingEmptySubsequences: false)
    var addresses: [NATSAddress] = []
    for raw in entries {
      addresses.append(try parse(raw.trimmingSpaces()))
    }
    guard !addresses.isEmpty else { throw NATSError(.invalid, "empty server list") }
    return addresses
  }

  /// Parses one `[nats://]host:port`.
  public static func parse(_ entry: Substring) throws(NATSError) -> NATSAddress {
    func bad(_ why: String) -> NATSError {
      NATSError(.invalid, "bad server address \"\(entry.prefix(100))\": \(why)")
    }
    guard !entry.isEmpty else { throw bad("empty entry") }
    var rest = entry
    if let colon = rest.firstIndex(of: ":"), rest[colon...].hasPrefix("://") {
      guard rest[..<colon].lowercased() == "nats" else {
        throw bad("only nats:// is supported")
      }
      rest = rest[colon...].dropFirst(3)
    }
    let host: Substring
    let portText: Substring
    if rest.first == "[" {
      guard let close = rest.firstIndex(of: "]") else { throw bad("unclosed '['") }
      host = rest[rest.index(after: rest.startIndex)..<close]
      let after = rest[rest.index(after: close)...]
      guard after.first == ":" else { throw bad("missing :port") }
      portText = after.dropFirst()
    } else {
      guard let colon = rest.lastIndex(of: ":") else { throw bad("missing :port") }
      host = rest[..<colon]
      portText = rest[rest.index(after: colon)...]
    }
    guard !host.isEmpty else { throw bad("missing host") }
    guard host.allSatisfy({ $0 != "/" && $0 != "@" && $0 != " " && $0 != "," }) else {
      throw bad("invalid host")
    }
    guard portText.count <= 5, portText.allSatisfy(\.isASCIIDigit), let port = Int(portText),
      (1...65_535).contains(port)
    else {
      throw bad("port must be 1...65535")
    }
    return NATSAddress(host: String(host), port: port)
  }
}

extension Character {
  var isASCIIDigit: Bool { isASCII && isNumber }
}

extension Substring {
  func trimmingSpaces() -> Substring {
    var s = self
    while let first = s.first, first == " " || first == "\t" { s = s.dropFirst() }
    while let last = s.last, last == " " || last == "\t" { s = s.dropLast() }
    return s
  }
}
