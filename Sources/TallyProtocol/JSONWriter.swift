/// Builds compact, deterministic JSON text: no whitespace, object members in their stored
/// order, numbers as their raw text, and only the escapes RFC 8259 requires.
///
/// Determinism matters because serialized records may be hashed or signed: the same
/// `JSONValue` always produces the same bytes. `JSONParser.parse(serialize(v)) == v` holds for
/// every `v` the parser produced.
///
/// The writer trusts its input: a hand-built `.number` is written verbatim (validate it with
/// `JSONParser.isValidNumber(_:)`), and hand-built objects must not repeat keys, otherwise the
/// output is not something `JSONParser` accepts. Writing recurses once per nesting level.
public struct JSONWriter: Sendable {
  /// The UTF-8 text written so far.
  public private(set) var bytes: [UInt8] = []

  public init() {}

  /// The text written so far.
  public var string: String {
    String(decoding: bytes, as: UTF8.self)
  }

  /// The compact JSON text of `value`.
  public static func serialize(_ value: JSONValue) -> String {
    var writer = JSONWriter()
    writer.write(value)
    return writer.string
  }

  /// `s` as a JSON string literal, including the surrounding quotes.
  public static func quoted(_ s: String) -> String {
    var writer = JSONWriter()
    writer.writeString(s)
    return writer.string
  }

  /// Appends `value`. Successive calls simply concatenate, so callers writing several
  /// documents (e.g. one per line) add their own separators.
  public mutating func write(_ value: JSONValue) {
    switch value {
    case .null:
      bytes.append(contentsOf: "null".utf8)
    case .bool(let flag):
      bytes.append(contentsOf: (flag ? "true" : "false").utf8)
    case .number(let text):
      bytes.append(contentsOf: text.utf8)
    case .string(let text):
      writeString(text)
    case .array(let elements):
      bytes.append(UInt8(ascii: "["))
      for (position, element) in elements.enumerated() {
        if position > 0 { bytes.append(UInt8(ascii: ",")) }
        write(element)
      }
      bytes.append(UInt8(ascii: "]"))
    case .object(let object):
      bytes.append(UInt8(ascii: "{"))
      for (position, member) in object.members.enumerated() {
        if position > 0 { bytes.append(UInt8(ascii: ",")) }
        writeString(member.key)
        bytes.append(UInt8(ascii: ":"))
        write(member.value)
      }
      bytes.append(UInt8(ascii: "}"))
    }
  }

  /// Escapes `"`, `\` and C0 controls; everything else, including non-ASCII UTF-8, DEL and
  /// `/`, is copied as is. Unescaped runs are appended in bulk rather than byte by byte.
  mutating func writeString(_ text: String) {
    bytes.append(UInt8(ascii: "\""))
    var text = text
    text.withUTF8 { utf8 in
      var runStart = 0
      for position in utf8.indices {
        let byte = utf8[position]
        guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else {
          continue
        }
        bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<position]))
        appendEscape(for: byte)
        runStart = position + 1
      }
      bytes.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart...]))
    }
    bytes.append(UInt8(ascii: "\""))
  }

  private mutating func appendEscape(for byte: UInt8) {
    let short: UInt8
    switch byte {
    case UInt8(ascii: "\""): short = UInt8(ascii: "\"")
    case UInt8(ascii: "\\"): short = UInt8(ascii: "\\")
    case 0x0A: short = UInt8(ascii: "n")
    case 0x0D: short = UInt8(ascii: "r")
    case 0x09: short = UInt8(ascii: "t")
    case 0x08: short = UInt8(ascii: "b")
    case 0x0C: short = UInt8(ascii: "f")
    default:
      // Lowercase hex, as in RFC 8785 (JCS), so the output is a stable canonical form.
      let hexDigits: StaticString = "0123456789abcdef"
      let digits = hexDigits.utf8Start
      bytes.append(contentsOf: "\\u00".utf8)
      bytes.append(digits[Int(byte >> 4)])
      bytes.append(digits[Int(byte & 0x0F)])
      return
    }
    bytes.append(UInt8(ascii: "\\"))
    bytes.append(short)
  }
}
