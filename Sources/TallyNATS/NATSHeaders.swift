/// The headers of a message: ordered `name: value` fields, names compared exactly.
///
/// NATS headers look like HTTP's but nats-server matches names byte for byte (it looks for
/// `Nats-Msg-Id`, not `nats-msg-id`), so lookups here are case-sensitive too. A name may occur
/// more than once; the subscript reads the first and replaces all.
public struct NATSHeaders: Sendable, Equatable {
  public var fields: [(name: String, value: String)]

  public init() {
    fields = []
  }

  public init(_ fields: [(String, String)]) {
    self.fields = fields.map { (name: $0.0, value: $0.1) }
  }

  public var isEmpty: Bool { fields.isEmpty }

  /// The first value of `name`; setting replaces every field of that name with one (at the
  /// position of the first), and `nil` removes them all.
  public subscript(name: String) -> String? {
    get { fields.first { $0.name == name }?.value }
    set {
      guard let newValue else {
        fields.removeAll { $0.name == name }
        return
      }
      if let first = fields.firstIndex(where: { $0.name == name }) {
        fields[first].value = newValue
        var index = fields.index(after: first)
        while index < fields.endIndex {
          if fields[index].name == name {
            fields.remove(at: index)
          } else {
            index += 1
          }
        }
      } else {
        fields.append((name: name, value: newValue))
      }
    }
  }

  /// Every value of `name`, in order.
  public func values(_ name: String) -> [String] {
    fields.filter { $0.name == name }.map(\.value)
  }

  /// Adds a field, keeping the ones already there.
  public mutating func append(_ name: String, _ value: String) {
    fields.append((name: name, value: value))
  }

  public static func == (lhs: NATSHeaders, rhs: NATSHeaders) -> Bool {
    lhs.fields.count == rhs.fields.count
      && zip(lhs.fields, rhs.fields).allSatisfy { $0.name == $1.name && $0.value == $1.value }
  }
}

// MARK: - The header block on the wire

/// `NATS/1.0[ status[ description]]\r\n` then `name: value\r\n` fields, then `\r\n`.
enum HeaderBlock {
  static let version = Array("NATS/1.0".utf8)

  /// The wire form of `headers`, after checking every name (a token: printable ASCII without
  /// `:` or spaces) and value (no CR, LF or other control bytes but tab).
  static func encode(_ headers: NATSHeaders) throws(NATSError) -> [UInt8] {
    var bytes = version
    bytes.append(contentsOf: [0x0D, 0x0A])
    for field in headers.fields {
      let name = Array(field.name.utf8)
      guard !name.isEmpty, name.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != 0x3A }) else {
        throw NATSError(
          .invalid, "header name \(quoted(field.name)) must be printable ASCII without ':'")
      }
      let value = Array(field.value.utf8)
      guard value.allSatisfy({ $0 >= 0x20 || $0 == 0x09 }), !value.contains(0x7F) else {
        throw NATSError(
          .invalid, "value of header \(quoted(field.name)) must not contain control characters")
      }
      bytes.append(contentsOf: name)
      bytes.append(contentsOf: [0x3A, 0x20])
      bytes.append(contentsOf: value)
      bytes.append(contentsOf: [0x0D, 0x0A])
    }
    bytes.append(contentsOf: [0x0D, 0x0A])
    return bytes
  }

  struct Parsed: Equatable {
    var headers = NATSHeaders()
    var status: Int?
    var statusDescription: String?
  }

  /// Parses a complete header block (what `HMSG` carries, or a stored message's `hdrs`).
  static func parse(_ block: some Collection<UInt8>) throws(NATSError) -> Parsed {
    let bytes = Array(block)
    func bad(_ why: String) -> NATSError {
      NATSError(.protocolError, "malformed header block: \(why)")
    }
    guard bytes.count >= version.count + 4, bytes.starts(with: version) else {
      throw bad("it must start with NATS/1.0")
    }
    guard bytes.suffix(4).elementsEqual([0x0D, 0x0A, 0x0D, 0x0A]) else {
      throw bad("it must end with an empty line (CR LF CR LF)")
    }
    var lines: [ArraySlice<UInt8>] = []
    var start = 0
    var index = 0
    // Everything but the final empty line, split at CR LF; a bare CR or LF is an error.
    let end = bytes.count - 2
    while index < end {
      let byte = bytes[index]
      if byte == 0x0D {
        guard index + 1 < bytes.count, bytes[index + 1] == 0x0A else { throw bad("bare CR") }
        lines.append(bytes[start..<index])
        index += 2
        start = index
      } else if byte == 0x0A {
        throw bad("bare LF")
      } else {
        index += 1
      }
    }
    var parsed = Parsed()
    // The status line: "NATS/1.0", then optionally " 503" and " No Responders".
    let statusLine = lines[0].dropFirst(version.count)
    if !statusLine.isEmpty {
      guard statusLine.first == 0x20 || statusLine.first == 0x09 else {
        throw bad("unexpected bytes after NATS/1.0")
      }
      let rest = statusLine.drop { $0 == 0x20 || $0 == 0x09 }
      let digits = rest.prefix { $0 != 0x20 && $0 != 0x09 }
      if !digits.isEmpty {
        guard digits.count == 3, digits.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
          throw bad("status must be three digits")
        }
        parsed.status = Int(String(decoding: digits, as: UTF8.self))
        let description = rest.dropFirst(digits.count).drop { $0 == 0x20 || $0 == 0x09 }
        if !description.isEmpty {
          parsed.statusDescription = String(decoding: description, as: UTF8.self)
        }
      }
    }
    for line in lines.dropFirst() {
      guard let colon = line.firstIndex(of: 0x3A) else {
        throw bad("a field has no ':'")
      }
      let name = line[line.startIndex..<colon]
      guard !name.isEmpty, name.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
        throw bad("a field name is empty or not a token")
      }
      var value = line[line.index(after: colon)...]
      while let first = value.first, first == 0x20 || first == 0x09 { value = value.dropFirst() }
      while let last = value.last, last == 0x20 || last == 0x09 { value = value.dropLast() }
      parsed.headers.append(
        String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
    }
    return parsed
  }

  static func quoted(_ text: String) -> String {
    "\"" + String(text.prefix(64)) + (text.count > 64 ? "…\"" : "\"")
  }
}
