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

/// SHA-256 from OpenSSL's libcrypto, with the algorithm fetched once and one context reused,
/// so each hash costs only the compression work. Not thread-safe: one per thread.
public final class SHA256Hasher {
  private let md: OpaquePointer
  private let ctx: OpaquePointer

  public init() {
    guard let md = EVP_MD_fetch(nil, "SHA256", nil), let ctx = EVP_MD_CTX_new() else {
      fatalError("OpenSSL: SHA256 is unavailable")
    }
    self.md = md
    self.ctx = ctx
  }

  deinit {
    EVP_MD_CTX_free(ctx)
    EVP_MD_free(md)
  }

  /// SHA-256 of the concatenation of `parts`.
  public func hash(_ parts: UnsafeRawBufferPointer...) -> Hash32 {
    var out = Hash32()
    guard EVP_DigestInit_ex2(ctx, md, nil) == 1 else { fatalError("OpenSSL: digest init") }
    for p in parts where p.count > 0 {
      guard EVP_DigestUpdate(ctx, p.baseAddress, p.count) == 1 else {
        fatalError("OpenSSL: digest update")
      }
    }
    withUnsafeMutableBytes(of: &out) { dst in
      var n: UInt32 = 0
      guard EVP_DigestFinal_ex(ctx, dst.baseAddress!.assumingMemoryBound(to: UInt8.self), &n) == 1
      else { fatalError("OpenSSL: digest final") }
    }
    return out
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
