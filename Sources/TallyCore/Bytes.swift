/// Big-endian byte building and parsing for the canonical encoding (docs/FORMAT.md).

/// Appends canonical big-endian fields to a byte array.
public struct ByteWriter: Sendable {
  public var bytes: [UInt8]

  public init(capacity: Int = 128) {
    bytes = []
    bytes.reserveCapacity(capacity)
  }

  @inlinable public mutating func u8(_ v: UInt8) { bytes.append(v) }

  @inlinable public mutating func u16(_ v: UInt16) {
    bytes.append(UInt8(truncatingIfNeeded: v >> 8))
    bytes.append(UInt8(truncatingIfNeeded: v))
  }

  @inlinable public mutating func u32(_ v: UInt32) {
    withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
  }

  @inlinable public mutating func u64(_ v: UInt64) {
    withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
  }

  @inlinable public mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
  @inlinable public mutating func i64(_ v: Int64) { u64(UInt64(bitPattern: v)) }

  /// 16 bytes, big-endian two's complement.
  @inlinable public mutating func i128(_ v: Int128) {
    let u = UInt128(bitPattern: v)
    u64(UInt64(truncatingIfNeeded: u >> 64))
    u64(UInt64(truncatingIfNeeded: u))
  }

  /// u16 length, then the UTF-8 bytes. Callers validate lengths before encoding.
  @inlinable public mutating func str(_ s: String) {
    var s = s
    s.withUTF8 { buf in
      precondition(buf.count <= Int(UInt16.max), "string field longer than 65535 bytes")
      u16(UInt16(buf.count))
      bytes.append(contentsOf: buf)
    }
  }

  /// u8 0 when absent; u8 1 and the string when present.
  @inlinable public mutating func optionalStr(_ s: String?) {
    if let s {
      u8(1)
      str(s)
    } else {
      u8(0)
    }
  }

  @inlinable public mutating func raw(_ b: some Sequence<UInt8>) { bytes.append(contentsOf: b) }
}

/// Why bytes could not be decoded: never a crash, always a position and a reason.
public struct DecodeError: Error, Equatable, Sendable, CustomStringConvertible {
  public var offset: Int
  public var reason: String
  public init(offset: Int, reason: String) {
    self.offset = offset
    self.reason = reason
  }
  public var description: String { "\(reason) at byte \(offset)" }
}

/// Reads canonical big-endian fields from a buffer, bounds-checked.
public struct ByteReader {
  public let buffer: UnsafeRawBufferPointer
  public private(set) var offset: Int = 0

  public init(_ buffer: UnsafeRawBufferPointer) { self.buffer = buffer }

  public var remaining: Int { buffer.count - offset }
  public var isAtEnd: Bool { offset == buffer.count }

  @inline(__always) mutating func need(_ n: Int, _ what: StaticString) throws(DecodeError) {
    if buffer.count - offset < n {
      throw DecodeError(offset: offset, reason: "truncated \(what)")
    }
  }

  public mutating func u8(_ what: StaticString = "u8") throws(DecodeError) -> UInt8 {
    try need(1, what)
    defer { offset += 1 }
    return buffer[offset]
  }

  public mutating func u16(_ what: StaticString = "u16") throws(DecodeError) -> UInt16 {
    try need(2, what)
    defer { offset += 2 }
    return UInt16(buffer[offset]) << 8 | UInt16(buffer[offset + 1])
  }

  public mutating func u32(_ what: StaticString = "u32") throws(DecodeError) -> UInt32 {
    try need(4, what)
    defer { offset += 4 }
    return UInt32(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
  }

  public mutating func u64(_ what: StaticString = "u64") throws(DecodeError) -> UInt64 {
    try need(8, what)
    defer { offset += 8 }
    return UInt64(bigEndian: buffer.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
  }

  public mutating func i32(_ what: StaticString = "i32") throws(DecodeError) -> Int32 {
    Int32(bitPattern: try u32(what))
  }

  public mutating func i64(_ what: StaticString = "i64") throws(DecodeError) -> Int64 {
    Int64(bitPattern: try u64(what))
  }

  public mutating func i128(_ what: StaticString = "i128") throws(DecodeError) -> Int128 {
    let hi = try u64(what)
    let lo = try u64(what)
    return Int128(bitPattern: UInt128(hi) << 64 | UInt128(lo))
  }

  /// A u16-length-prefixed string that must be valid UTF-8.
  public mutating func str(_ what: StaticString = "string") throws(DecodeError) -> String {
    let n = Int(try u16(what))
    try need(n, what)
    let start = offset
    let slice = UnsafeRawBufferPointer(rebasing: buffer[start..<start + n])
    offset += n
    let bytes = slice.bindMemory(to: UInt8.self)
    // Ids and names are ASCII: check that cheaply; validate anything else fully.
    if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
    guard let s = String(validating: bytes, as: UTF8.self) else {
      throw DecodeError(offset: start, reason: "invalid UTF-8 in \(what)")
    }
    return s
  }

  /// The bytes of a u16-length-prefixed string, unvalidated: for comparing or skipping it
  /// without making a `String`.
  public mutating func strBytes(_ what: StaticString = "string") throws(DecodeError)
    -> UnsafeRawBufferPointer
  {
    let n = Int(try u16(what))
    try need(n, what)
    defer { offset += n }
    return UnsafeRawBufferPointer(rebasing: buffer[offset..<offset + n])
  }

  public mutating func optionalStr(_ what: StaticString = "string") throws(DecodeError)
    -> String?
  {
    switch try u8(what) {
    case 0: return nil
    case 1: return try str(what)
    case let b: throw DecodeError(offset: offset - 1, reason: "presence byte \(b) in \(what)")
    }
  }

  public func expectEnd(_ what: StaticString) throws(DecodeError) {
    if !isAtEnd {
      throw DecodeError(offset: offset, reason: "\(remaining) trailing bytes after \(what)")
    }
  }
}

extension Array where Element == UInt8 {
  /// Lower-case hex.
  public var hex: String {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(count * 2)
    for b in self {
      out.append(digits[Int(b >> 4)])
      out.append(digits[Int(b & 0x0f)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// Parses lower- or upper-case hex; nil when malformed.
  public init?(hex: String) {
    let u = Array(hex.utf8)
    guard u.count % 2 == 0 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
      switch c {
      case 48...57: c - 48
      case 97...102: c - 87
      case 65...70: c - 55
      default: nil
      }
    }
    var out = [UInt8]()
    out.reserveCapacity(u.count / 2)
    var i = 0
    while i < u.count {
      guard let h = nibble(u[i]), let l = nibble(u[i + 1]) else { return nil }
      out.append(h << 4 | l)
      i += 2
    }
    self = out
  }
}
