import COpenSSL

/// Key material for the server's authentication: random secrets, HMAC-SHA256 and a
/// constant-time comparison, all from OpenSSL's libcrypto.
public enum Secrets {
  /// `count` bytes from OpenSSL's CSPRNG. A failing CSPRNG is not survivable: a key made
  /// from a weak source would be silently guessable.
  public static func random(_ count: Int) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: count)
    let rc = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
    guard rc == 1 else { fatalError("OpenSSL: RAND_bytes failed") }
    return out
  }

  /// HMAC-SHA256(key, message).
  public static func hmacSHA256(key: some Collection<UInt8>, message: some Collection<UInt8>)
    -> [UInt8]
  {
    let k = Array(key)
    let m = Array(message)
    var out = [UInt8](repeating: 0, count: 32)
    var n: UInt32 = 0
    let ok = k.withUnsafeBufferPointer { kp in
      m.withUnsafeBufferPointer { mp in
        out.withUnsafeMutableBufferPointer { op in
          HMAC(
            EVP_sha256(), kp.baseAddress, Int32(kp.count), mp.baseAddress, mp.count,
            op.baseAddress, &n) != nil
        }
      }
    }
    guard ok, n == 32 else { fatalError("OpenSSL: HMAC-SHA256 failed") }
    return out
  }

  /// Equal length and bytes, in time that depends only on the length (CRYPTO_memcmp).
  public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    if a.isEmpty { return true }
    return a.withUnsafeBytes { ap in
      b.withUnsafeBytes { bp in CRYPTO_memcmp(ap.baseAddress, bp.baseAddress, a.count) == 0 }
    }
  }
}
