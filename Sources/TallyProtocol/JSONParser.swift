/// Resource limits applied while parsing untrusted input.
///
/// Every limit is checked before the work it guards is done, so a hostile document costs at
/// most `maxBytes` of scanning and `maxDepth` levels of native stack.
public struct JSONLimits: Sendable {
  /// Largest accepted input, in bytes. Checked before any byte is examined.
  public var maxBytes: Int
  /// Deepest accepted container nesting; a top-level array or object is depth 1.
  ///
  /// The parser recurses once per level, so this also bounds native stack use. Keep it small
  /// (hundreds at most): very large values could exhaust a thread's stack on nested input.
  public var maxDepth: Int
  /// Longest accepted string (values and keys), in UTF-8 bytes after unescaping.
  public var maxStringBytes: Int
  /// Most elements in any single array, or members in any single object.
  public var maxMembers: Int

  public static let `default` = JSONLimits()

  public init(
    maxBytes: Int = 1 << 20,
    maxDepth: Int = 16,
    maxStringBytes: Int = 65_536,
    maxMembers: Int = 10_000
  ) {
    self.maxBytes = maxBytes
    self.maxDepth = maxDepth
    self.maxStringBytes = maxStringBytes
    self.maxMembers = maxMembers
  }
}

/// Why a document was rejected, and where.
public struct JSONError: Error, Equatable, Sendable, CustomStringConvertible {
  public enum Kind: String, Sendable {
    case syntax, duplicateKey, tooDeep, tooLarge, stringTooLong,
      tooManyMembers, invalidUTF8, trailingData, empty
  }

  public var kind: Kind
  /// Byte offset into the input where the problem was found.
  public var offset: Int
  /// Human-readable explanation that ends with the offset, e.g.
  /// `duplicate key "id" at byte 17`.
  public var message: String

  public init(kind: Kind, offset: Int, message: String) {
    self.kind = kind
    self.offset = offset
    self.message = message
  }

  public var description: String { "\(kind.rawValue): \(message)" }
}

/// A strict RFC 8259 parser for untrusted protocol input.
///
/// Beyond the grammar it rejects what a money protocol must not guess about: duplicate keys,
/// invalid UTF-8 (overlongs, encoded surrogates, values above U+10FFFF), unpaired `\u`
/// surrogates and anything after the top-level value. Numbers are kept as their raw text.
///
/// UTF-8 is validated as strings are scanned. Outside strings any non-ASCII byte is an error
/// anyway; it is reported as `invalidUTF8` if it starts an ill-formed sequence and as `syntax`
/// otherwise, except after a complete top-level value, where it is `trailingData`.
public enum JSONParser {
  /// Parses one JSON document from raw bytes.
  ///
  /// Contiguous collections (`[UInt8]`, `ArraySlice`, `String.UTF8View`, buffers) are read in
  /// place; anything else is copied into an array once.
  public static func parse(
    _ bytes: some Collection<UInt8>, limits: JSONLimits = .default
  ) throws(JSONError) -> JSONValue {
    let count = bytes.count
    if count > limits.maxBytes { throw tooLarge(count, limits) }
    if let result = bytes.withContiguousStorageIfAvailable({ parse(buffer: $0, limits) }) {
      return try result.get()
    }
    return try Array(bytes).withUnsafeBufferPointer { parse(buffer: $0, limits) }.get()
  }

  /// Parses one JSON document from its text.
  public static func parse(
    _ text: String, limits: JSONLimits = .default
  ) throws(JSONError) -> JSONValue {
    var text = text
    let count = text.utf8.count
    if count > limits.maxBytes { throw tooLarge(count, limits) }
    return try text.withUTF8 { parse(buffer: $0, limits) }.get()
  }

  /// Whether `text` is exactly one RFC 8259 number, e.g. for checking a hand-built
  /// `JSONValue.number` before writing it.
  public static func isValidNumber(_ text: String) -> Bool {
    var text = text
    return text.withUTF8 { buffer in
      guard !buffer.isEmpty else { return false }
      var parser = Parser(buffer, .default)
      do throws(JSONError) {
        _ = try parser.parseNumber()
        return parser.index == buffer.count
      } catch {
        return false
      }
    }
  }

  /// Non-generic core, so the hot loop is compiled once over a plain buffer. It returns a
  /// `Result` because `withContiguousStorageIfAvailable` and `withUTF8` take closures with
  /// untyped `rethrows`, which would erase `JSONError` to `any Error`.
  private static func parse(
    buffer: UnsafeBufferPointer<UInt8>, _ limits: JSONLimits
  ) -> Result<JSONValue, JSONError> {
    var parser = Parser(buffer, limits)
    do throws(JSONError) {
      return .success(try parser.parseDocument())
    } catch {
      return .failure(error)
    }
  }

  private static func tooLarge(_ count: Int, _ limits: JSONLimits) -> JSONError {
    let offset = max(limits.maxBytes, 0)
    return JSONError(
      kind: .tooLarge, offset: offset,
      message: "input of \(count) bytes exceeds the limit of \(limits.maxBytes) at byte \(offset)")
  }
}

/// Recursive-descent parser over a borrowed buffer.
///
/// Only ever lives inside the `withUnsafe…` closure that lends it `bytes`. Every read is
/// preceded by an explicit `index < end` check; the buffer subscript is additionally bounds
/// checked in debug builds, which is what the fuzz tests run under.
private struct Parser {
  let bytes: UnsafeBufferPointer<UInt8>
  let end: Int
  let limits: JSONLimits
  /// Clamped copy of `limits.maxStringBytes`, so length arithmetic never sees a negative.
  let maxStringBytes: Int
  var index = 0

  /// Objects with more members than this switch duplicate detection from a linear scan of
  /// `members` to a `Set`, so a 10 000-member object costs O(n) rather than O(n²).
  static let linearKeyScanLimit = 16

  init(_ bytes: UnsafeBufferPointer<UInt8>, _ limits: JSONLimits) {
    self.bytes = bytes
    self.end = bytes.count
    self.limits = limits
    self.maxStringBytes = max(limits.maxStringBytes, 0)
  }

  // MARK: Structure

  mutating func parseDocument() throws(JSONError) -> JSONValue {
    skipWhitespace()
    guard index < end else {
      throw JSONError(
        kind: .empty, offset: index, message: "no JSON value in input at byte \(index)")
    }
    let value = try parseValue(depth: 0)
    skipWhitespace()
    guard index == end else {
      throw JSONError(
        kind: .trailingData, offset: index,
        message: "unexpected data after the JSON value at byte \(index)")
    }
    return value
  }

  /// Only the four RFC 8259 whitespace bytes; form feed, vertical tab, NBSP and BOM are not.
  @inline(__always)
  mutating func skipWhitespace() {
    while index < end {
      let byte = bytes[index]
      guard byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 else { return }
      index += 1
    }
  }

  /// Parses the value starting at `index`. `depth` is the number of enclosing containers.
  mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
    guard index < end else { throw endOfInput(expecting: "a value") }
    switch bytes[index] {
    case UInt8(ascii: "\""): return .string(try parseString())
    case UInt8(ascii: "{"): return .object(try parseObject(depth: depth))
    case UInt8(ascii: "["): return .array(try parseArray(depth: depth))
    case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
      return .number(try parseNumber())
    case UInt8(ascii: "t"): return try parseLiteral("true", .bool(true))
    case UInt8(ascii: "f"): return try parseLiteral("false", .bool(false))
    case UInt8(ascii: "n"): return try parseLiteral("null", .null)
    default: throw unexpected(expecting: "a value")
    }
  }

  mutating func parseArray(depth: Int) throws(JSONError) -> [JSONValue] {
    // Checked before descending, so recursion never goes deeper than maxDepth.
    guard depth < limits.maxDepth else { throw tooDeep() }
    index += 1
    skipWhitespace()
    if index < end && bytes[index] == UInt8(ascii: "]") {
      index += 1
      return []
    }
    var elements: [JSONValue] = []
    while true {
      guard elements.count < limits.maxMembers else { throw tooManyMembers() }
      elements.append(try parseValue(depth: depth + 1))
      skipWhitespace()
      guard index < end else { throw endOfInput(expecting: "',' or ']'") }
      switch bytes[index] {
      case UInt8(ascii: ","):
        index += 1
        skipWhitespace()
      case UInt8(ascii: "]"):
        index += 1
        return elements
      default:
        throw unexpected(expecting: "',' or ']'")
      }
    }
  }

  mutating func parseObject(depth: Int) throws(JSONError) -> JSONObject {
    guard depth < limits.maxDepth else { throw tooDeep() }
    index += 1
    skipWhitespace()
    if index < end && bytes[index] == UInt8(ascii: "}") {
      index += 1
      return JSONObject()
    }
    var members: [(key: String, value: JSONValue)] = []
    members.reserveCapacity(4)
    // Only populated once the object outgrows the linear scan; an empty Set never allocates.
    var seenKeys = Set<String>()
    while true {
      guard index < end else { throw endOfInput(expecting: "a string key") }
      guard bytes[index] == UInt8(ascii: "\"") else {
        throw unexpected(expecting: "a string key")
      }
      guard members.count < limits.maxMembers else { throw tooManyMembers() }
      let keyOffset = index
      let key = try parseString()
      // Rejected at the key, before its value is parsed: for a ledger, which of two
      // "amount" members wins is exactly the ambiguity an attacker would exploit.
      if isDuplicate(key, in: members, seen: &seenKeys) {
        throw JSONError(
          kind: .duplicateKey, offset: keyOffset,
          message: "duplicate key \(Self.excerpt(key)) at byte \(keyOffset)")
      }
      skipWhitespace()
      guard index < end else { throw endOfInput(expecting: "':'") }
      guard bytes[index] == UInt8(ascii: ":") else { throw unexpected(expecting: "':'") }
      index += 1
      skipWhitespace()
      let value = try parseValue(depth: depth + 1)
      members.append((key: key, value: value))
      skipWhitespace()
      guard index < end else { throw endOfInput(expecting: "',' or '}'") }
      switch bytes[index] {
      case UInt8(ascii: ","):
        index += 1
        skipWhitespace()
      case UInt8(ascii: "}"):
        index += 1
        return JSONObject(members)
      default:
        throw unexpected(expecting: "',' or '}'")
      }
    }
  }

  /// Keys are compared with `String` equality, i.e. Unicode canonical equivalence. That is
  /// stricter than RFC 8259's code-point comparison, deliberately: keys like "é" and
  /// "e\u{301}" look identical and would be indistinguishable via `JSONObject`'s subscript.
  func isDuplicate(
    _ key: String, in members: [(key: String, value: JSONValue)], seen: inout Set<String>
  ) -> Bool {
    if members.count < Self.linearKeyScanLimit {
      for member in members where member.key == key {
        return true
      }
      return false
    }
    if seen.isEmpty {
      seen.reserveCapacity(members.count * 2)
      for member in members {
        seen.insert(member.key)
      }
    }
    return !seen.insert(key).inserted
  }

  // MARK: Scalars

  mutating func parseLiteral(
    _ literal: StaticString, _ value: JSONValue
  ) throws(JSONError) -> JSONValue {
    let start = index
    let text = literal.utf8Start
    for offset in 0..<literal.utf8CodeUnitCount {
      let position = start + offset
      guard position < end, bytes[position] == text[offset] else {
        index = position
        if position == end { throw endOfInput(expecting: "'\(literal)'") }
        throw unexpected(expecting: "'\(literal)' (started at byte \(start))")
      }
    }
    index = start + literal.utf8CodeUnitCount
    return value
  }

  /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, returned as its raw text.
  mutating func parseNumber() throws(JSONError) -> String {
    let start = index
    if bytes[index] == UInt8(ascii: "-") { index += 1 }
    guard index < end else { throw endOfInput(expecting: "a digit") }
    switch bytes[index] {
    case UInt8(ascii: "0"):
      index += 1
      // A dedicated message, because greedy parsing would otherwise report "01" as
      // trailing data after "0", which hides the real mistake.
      if index < end && Self.isDigit(bytes[index]) {
        throw JSONError(
          kind: .syntax, offset: index, message: "leading zero in number at byte \(index)")
      }
    case UInt8(ascii: "1")...UInt8(ascii: "9"):
      index += 1
      skipDigits()
    default:
      throw unexpected(expecting: "a digit")
    }
    if index < end && bytes[index] == UInt8(ascii: ".") {
      index += 1
      try requireDigits(after: "'.'")
    }
    if index < end && (bytes[index] | 0x20) == UInt8(ascii: "e") {
      index += 1
      if index < end && (bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")) {
        index += 1
      }
      try requireDigits(after: "the exponent marker")
    }
    return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
  }

  @inline(__always)
  static func isDigit(_ byte: UInt8) -> Bool {
    byte &- UInt8(ascii: "0") < 10
  }

  @inline(__always)
  mutating func skipDigits() {
    while index < end && Self.isDigit(bytes[index]) { index += 1 }
  }

  mutating func requireDigits(after what: String) throws(JSONError) {
    guard index < end else { throw endOfInput(expecting: "a digit after \(what)") }
    guard Self.isDigit(bytes[index]) else { throw unexpected(expecting: "a digit after \(what)") }
    skipDigits()
  }

  // MARK: Strings

  /// Parses the string whose opening quote is at `index`.
  ///
  /// Fast path: while there are no escapes the unescaped bytes are the raw bytes, so the
  /// string is built once from a slice of the input, and the scan itself can stop at
  /// `maxStringBytes`. The first backslash hands over to `parseEscapedString`.
  mutating func parseString() throws(JSONError) -> String {
    let quote = index
    index += 1
    let start = index
    let scanEnd = end - start > maxStringBytes ? start + maxStringBytes : end
    while index < scanEnd {
      let byte = bytes[index]
      if byte == UInt8(ascii: "\"") {
        break
      } else if byte == UInt8(ascii: "\\") {
        return try parseEscapedString(from: start, quote: quote)
      } else if byte < 0x20 {
        throw controlCharacter()
      } else if byte < 0x80 {
        index += 1
      } else {
        index += try utf8Sequence()
      }
    }
    // A multi-byte character may have stepped over scanEnd; that is one byte too many.
    if index > scanEnd { throw stringTooLong(at: scanEnd) }
    guard index < end else { throw unterminatedString(quote) }
    // At scanEnd only a closing quote is acceptable: any other byte adds at least one more.
    guard bytes[index] == UInt8(ascii: "\"") else { throw stringTooLong(at: index) }
    let string = String(
      decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
    index += 1
    return string
  }

  /// Slow path for strings with escapes: unescaped UTF-8 is collected in one `[UInt8]` and
  /// turned into a `String` once at the end, never appended character by character.
  mutating func parseEscapedString(from start: Int, quote: Int) throws(JSONError) -> String {
    var utf8: [UInt8] = []
    utf8.reserveCapacity(min(maxStringBytes, max(32, 2 * (index - start))))
    utf8.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[start..<index]))
    while index < end {
      let byte = bytes[index]
      if byte == UInt8(ascii: "\"") {
        index += 1
        return String(decoding: utf8, as: UTF8.self)
      } else if byte == UInt8(ascii: "\\") {
        try appendEscape(to: &utf8)
      } else if byte < 0x20 {
        throw controlCharacter()
      } else if byte < 0x80 {
        guard utf8.count < maxStringBytes else { throw stringTooLong(at: index) }
        utf8.append(byte)
        index += 1
      } else {
        let length = try utf8Sequence()
        guard utf8.count + length <= maxStringBytes else { throw stringTooLong(at: index) }
        utf8.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[index..<index + length]))
        index += length
      }
    }
    throw unterminatedString(quote)
  }

  /// Decodes the escape at `index` (a backslash) and appends its UTF-8 to `utf8`.
  mutating func appendEscape(to utf8: inout [UInt8]) throws(JSONError) {
    let escape = index
    guard escape + 1 < end else {
      index = end
      throw endOfInput(expecting: "an escape character")
    }
    let scalar: UInt32
    var length = 2
    switch bytes[escape + 1] {
    case UInt8(ascii: "\""): scalar = 0x22
    case UInt8(ascii: "\\"): scalar = 0x5C
    case UInt8(ascii: "/"): scalar = 0x2F
    case UInt8(ascii: "b"): scalar = 0x08
    case UInt8(ascii: "f"): scalar = 0x0C
    case UInt8(ascii: "n"): scalar = 0x0A
    case UInt8(ascii: "r"): scalar = 0x0D
    case UInt8(ascii: "t"): scalar = 0x09
    case UInt8(ascii: "u"):
      guard let unit = hex4(at: escape + 2) else { throw invalidUnicodeEscape(at: escape) }
      length = 6
      switch unit {
      case 0xD800...0xDBFF:
        // A high surrogate is only meaningful as the first half of a \uXXXX\uXXXX pair.
        guard escape + 7 < end,
          bytes[escape + 6] == UInt8(ascii: "\\"), bytes[escape + 7] == UInt8(ascii: "u"),
          let low = hex4(at: escape + 8), (0xDC00...0xDFFF).contains(low)
        else { throw loneSurrogate(unit, at: escape) }
        scalar = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
        length = 12
      case 0xDC00...0xDFFF:
        throw loneSurrogate(unit, at: escape)
      default:
        scalar = unit
      }
    default:
      index = escape + 1
      throw JSONError(
        kind: .syntax, offset: escape,
        message: "invalid escape \(describe(byteAt: escape + 1)) at byte \(escape)")
    }
    let encodedLength = scalar < 0x80 ? 1 : scalar < 0x800 ? 2 : scalar < 0x10000 ? 3 : 4
    guard utf8.count + encodedLength <= maxStringBytes else { throw stringTooLong(at: escape) }
    Self.appendUTF8(scalar, length: encodedLength, to: &utf8)
    index = escape + length
  }

  /// The value of four hex digits at `position`, or nil if they are missing or not hex.
  func hex4(at position: Int) -> UInt32? {
    guard end - position >= 4 else { return nil }
    var value: UInt32 = 0
    for offset in 0..<4 {
      let byte = bytes[position + offset]
      let digit: UInt8
      switch byte {
      case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
      case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
      case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
      default: return nil
      }
      value = value << 4 | UInt32(digit)
    }
    return value
  }

  /// Appends a scalar (already known not to be a surrogate, and at most U+10FFFF).
  static func appendUTF8(_ scalar: UInt32, length: Int, to utf8: inout [UInt8]) {
    switch length {
    case 1:
      utf8.append(UInt8(truncatingIfNeeded: scalar))
    case 2:
      utf8.append(UInt8(truncatingIfNeeded: 0xC0 | scalar >> 6))
      utf8.append(UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F))
    case 3:
      utf8.append(UInt8(truncatingIfNeeded: 0xE0 | scalar >> 12))
      utf8.append(UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F))
      utf8.append(UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F))
    default:
      utf8.append(UInt8(truncatingIfNeeded: 0xF0 | scalar >> 18))
      utf8.append(UInt8(truncatingIfNeeded: 0x80 | scalar >> 12 & 0x3F))
      utf8.append(UInt8(truncatingIfNeeded: 0x80 | scalar >> 6 & 0x3F))
      utf8.append(UInt8(truncatingIfNeeded: 0x80 | scalar & 0x3F))
    }
  }

  // MARK: UTF-8

  /// Length of the well-formed multi-byte sequence at `index`, or `invalidUTF8`.
  mutating func utf8Sequence() throws(JSONError) -> Int {
    let length = wellFormedLength(at: index)
    guard length > 0 else {
      throw JSONError(
        kind: .invalidUTF8, offset: index,
        message: "invalid UTF-8 sequence at byte \(index)")
    }
    return length
  }

  /// Length of the well-formed UTF-8 sequence starting at `position`, or 0 if it is
  /// ill-formed or truncated. Follows Unicode Table 3-7 exactly, which is what rules out
  /// overlong forms (C0, C1, E0 80–9F, F0 80–8F), UTF-16 surrogates (ED A0–BF) and code
  /// points above U+10FFFF (F4 90–BF, F5–FF).
  func wellFormedLength(at position: Int) -> Int {
    let lead = bytes[position]
    switch lead {
    case 0x00...0x7F:
      return 1
    case 0xC2...0xDF:
      return continuation(position + 1) ? 2 : 0
    case 0xE0:
      return byte(at: position + 1, in: 0xA0...0xBF) && continuation(position + 2) ? 3 : 0
    case 0xE1...0xEC, 0xEE...0xEF:
      return continuation(position + 1) && continuation(position + 2) ? 3 : 0
    case 0xED:
      return byte(at: position + 1, in: 0x80...0x9F) && continuation(position + 2) ? 3 : 0
    case 0xF0:
      return byte(at: position + 1, in: 0x90...0xBF) && continuation(position + 2)
        && continuation(position + 3) ? 4 : 0
    case 0xF1...0xF3:
      return continuation(position + 1) && continuation(position + 2)
        && continuation(position + 3) ? 4 : 0
    case 0xF4:
      return byte(at: position + 1, in: 0x80...0x8F) && continuation(position + 2)
        && continuation(position + 3) ? 4 : 0
    default:
      return 0
    }
  }

  @inline(__always)
  func continuation(_ position: Int) -> Bool {
    byte(at: position, in: 0x80...0xBF)
  }

  @inline(__always)
  func byte(at position: Int, in range: ClosedRange<UInt8>) -> Bool {
    position < end && range.contains(bytes[position])
  }

  // MARK: Errors
  // Kept out of line so the hot paths stay small; they only run once per failed parse.

  @inline(never)
  func unexpected(expecting expected: String) -> JSONError {
    if bytes[index] >= 0x80 && wellFormedLength(at: index) == 0 {
      return JSONError(
        kind: .invalidUTF8, offset: index, message: "invalid UTF-8 sequence at byte \(index)")
    }
    return JSONError(
      kind: .syntax, offset: index,
      message: "unexpected \(describe(byteAt: index)), expected \(expected) at byte \(index)")
  }

  @inline(never)
  func endOfInput(expecting expected: String) -> JSONError {
    JSONError(
      kind: .syntax, offset: index,
      message: "unexpected end of input, expected \(expected) at byte \(index)")
  }

  @inline(never)
  func tooDeep() -> JSONError {
    JSONError(
      kind: .tooDeep, offset: index,
      message: "nesting deeper than \(limits.maxDepth) at byte \(index)")
  }

  @inline(never)
  func tooManyMembers() -> JSONError {
    JSONError(
      kind: .tooManyMembers, offset: index,
      message: "more than \(limits.maxMembers) members in a container at byte \(index)")
  }

  @inline(never)
  func stringTooLong(at offset: Int) -> JSONError {
    JSONError(
      kind: .stringTooLong, offset: offset,
      message: "string longer than \(limits.maxStringBytes) bytes at byte \(offset)")
  }

  @inline(never)
  func controlCharacter() -> JSONError {
    JSONError(
      kind: .syntax, offset: index,
      message: "unescaped control character \(describe(byteAt: index)) in string "
        + "at byte \(index)")
  }

  @inline(never)
  func unterminatedString(_ quote: Int) -> JSONError {
    JSONError(
      kind: .syntax, offset: end,
      message: "unterminated string (opened at byte \(quote)) at byte \(end)")
  }

  @inline(never)
  func invalidUnicodeEscape(at escape: Int) -> JSONError {
    JSONError(
      kind: .syntax, offset: escape,
      message: "\\u must be followed by four hex digits at byte \(escape)")
  }

  @inline(never)
  func loneSurrogate(_ unit: UInt32, at escape: Int) -> JSONError {
    JSONError(
      kind: .syntax, offset: escape,
      message: "unpaired surrogate \\u\(Self.hex(unit, digits: 4)) at byte \(escape)")
  }

  /// A short, log-safe description of the input byte at `position`.
  func describe(byteAt position: Int) -> String {
    guard position < end else { return "end of input" }
    let byte = bytes[position]
    if byte >= 0x21 && byte <= 0x7E {
      return "'\(Character(Unicode.Scalar(byte)))'"
    }
    if byte >= 0x80 {
      let length = wellFormedLength(at: position)
      if length > 0 {
        let text = String(
          decoding: UnsafeBufferPointer(rebasing: bytes[position..<position + length]),
          as: UTF8.self)
        if let scalar = text.unicodeScalars.first {
          return "character U+\(Self.hex(scalar.value, digits: 4))"
        }
      }
    }
    return "byte 0x\(Self.hex(UInt32(byte), digits: 2))"
  }

  static func hex(_ value: UInt32, digits: Int) -> String {
    let text = String(value, radix: 16, uppercase: true)
    return String(repeating: "0", count: max(0, digits - text.count)) + text
  }

  /// The key as a JSON literal, shortened: messages end up in logs, so they must neither
  /// carry control characters nor echo 64 KiB of attacker-chosen text.
  static func excerpt(_ key: String) -> String {
    let limit = 40
    guard key.count > limit else { return JSONWriter.quoted(key) }
    return JSONWriter.quoted(String(key.prefix(limit))) + "…"
  }
}
