import COpenSSL
import TallyCore

/// A 32-byte hash held inline (no heap allocation per hash).
public struct Hash32: Equatable, Hashable, Sendable, CustomStringConvertible {
  public var w0: UInt64 = 0
  public var w1: UInt64 = 0
  public var w2: UInt64 = 0
  public var w3: UInt64 = 0

  public static let zero = Hash32()

  public init() {}

  public init(raw: UnsafeRawBufferPointer) {
    precondition(raw.count >= 32)
    withUnsafeMutableBytes(of: &self) {
      $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: raw[0..<32]))
    }
  }

  public var bytes: [UInt8] { withUnsafeBytes(of: self) { Array($0) } }
  public var hex: String { bytes.hex }
  public var description: String { hex }
}

/// SHA-256 of bytes given in parts, as they arrive (`update`, then `finish` once).
public struct SHA256Stream {
  private var state = tally_sha256_stream()

  public init() { tally_sha256_stream_init(&state) }

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    tally_sha256_stream_update(&state, bytes.baseAddress, bytes.count)
  }

  public mutating func finish() -> Hash32 {
    var out = Hash32()
    withUnsafeMutableBytes(of: &out) { dst in
      tally_sha256_stream_final(&state, dst.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }
    return out
  }
}

/// SHA-256 from OpenSSL's libcrypto (its SHA256_* functions, which use SHA-NI where the CPU
/// has it), over one to three parts without copying or allocating.
public struct SHA256Hasher: Sendable {
  public init() {}

  @inline(__always)
  private func digest(
    _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, _ c: UnsafeRawBufferPointer
  ) -> Hash32 {
    var out = Hash32()
    withUnsafeMutableBytes(of: &out) { dst in
      tally_sha256(
        a.baseAddress, a.count, b.baseAddress, b.count, c.baseAddress, c.count,
        dst.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }
    return out
  }

  /// SHA-256 of nothing (the empty tree's root).
  public func hash() -> Hash32 {
    digest(.init(start: nil, count: 0), .init(start: nil, count: 0), .init(start: nil, count: 0))
  }

  public func hash(_ a: UnsafeRawBufferPointer) -> Hash32 {
    digest(a, .init(start: nil, count: 0), .init(start: nil, count: 0))
  }

  public func hash(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Hash32 {
    digest(a, b, .init(start: nil, count: 0))
  }

  public func hash(
    _ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, _ c: UnsafeRawBufferPointer
  ) -> Hash32 {
    digest(a, b, c)
  }

  public func hash(_ bytes: [UInt8]) -> Hash32 {
    bytes.withUnsafeBytes { hash($0) }
  }

  /// RFC 9162 leaf hash: SHA-256(0x00 || event bytes).
  public func leaf(_ event: UnsafeRawBufferPointer) -> Hash32 {
    var prefix: UInt8 = 0
    return withUnsafeBytes(of: &prefix) { hash($0, event) }
  }

  public func leaf(_ event: [UInt8]) -> Hash32 {
    event.withUnsafeBytes { leaf($0) }
  }

  /// chain[n] = SHA-256(chain[n-1] || leaf[n]).
  public func chain(_ previous: Hash32, _ leaf: Hash32) -> Hash32 {
    var p = previous
    var l = leaf
    return withUnsafeBytes(of: &p) { pb in withUnsafeBytes(of: &l) { lb in hash(pb, lb) } }
  }
}
