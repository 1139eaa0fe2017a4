/// RFC 4648 base64 with padding (strict: decoding refuses anything non-canonical).
public enum Base64 {
  static let alphabet = Array(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
  /// Byte → its 6-bit value, 255 for bytes outside the alphabet (a statement sent in base64
  /// is up to 64 MiB: one table lookup per character, not a search of the alphabet).
  static let values: [UInt8] = {
    var t = [UInt8](repeating: 255, count: 256)
    for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
    return t
  }()

  public static func encode(_ bytes: [UInt8]) -> String {
    var out = [UInt8]()
    out.reserveCapacity((bytes.count + 2) / 3 * 4)
    var i = 0
    while i < bytes.count {
      let b0 = UInt32(bytes[i])
      let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
      let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
      let v = b0 << 16 | b1 << 8 | b2
      out.append(alphabet[Int(v >> 18 & 63)])
      out.append(alphabet[Int(v >> 12 & 63)])
      out.append(i + 1 < bytes.count ? alphabet[Int(v >> 6 & 63)] : UInt8(ascii: "="))
      out.append(i + 2 < bytes.count ? alphabet[Int(v & 63)] : UInt8(ascii: "="))
      i += 3
    }
    return String(decoding: out, as: UTF8.self)
  }

  public static func decode(_ text: String) -> [UInt8]? {
    let u = Array(text.utf8)
    guard u.count % 4 == 0 else { return nil }
    var out = [UInt8]()
    out.reserveCapacity(u.count / 4 * 3)
    var i = 0
    while i < u.count {
      var v: UInt32 = 0
      var pad = 0
      for j in 0..<4 {
        let c = u[i + j]
        if c == UInt8(ascii: "=") {
          // Padding only at the end of the last quantum, at most two.
          guard i + 4 == u.count, j >= 2 else { return nil }
          pad += 1
          v <<= 6
          continue
        }
        let d = values[Int(c)]
        guard pad == 0, d != 255 else { return nil }
        v = v << 6 | UInt32(d)
      }
      out.append(UInt8(v >> 16 & 0xff))
      if pad < 2 { out.append(UInt8(v >> 8 & 0xff)) }
      if pad < 1 { out.append(UInt8(v & 0xff)) }
      i += 4
    }
    // Canonical: re-encoding gives the same text (no stray bits in the padding).
    return encode(out) == text ? out : nil
  }
}
