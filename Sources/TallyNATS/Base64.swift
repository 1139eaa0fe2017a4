/// Standard base64 (RFC 4648 §4, with `=` padding), which the JetStream API uses for the
/// `data` and `hdrs` of stored messages.
enum Base64 {
  private static let alphabet = Array(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

  private static let values: [UInt8] = {
    var table = [UInt8](repeating: 0xFF, count: 256)
    for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
    return table
  }()

  /// The bytes `text` encodes; nil unless it is canonical padded base64 (length a multiple
  /// of 4, padding only at the end, unused bits zero).
  static func decode(_ text: String) -> [UInt8]? {
    let input = Array(text.utf8)
    guard input.count % 4 == 0 else { return nil }
    var output: [UInt8] = []
    output.reserveCapacity(input.count / 4 * 3)
    var index = 0
    while index < input.count {
      let isLast = index + 4 == input.count
      var quad: [UInt8] = [0, 0, 0, 0]
      var padding = 0
      for offset in 0..<4 {
        let byte = input[index + offset]
        if byte == UInt8(ascii: "=") {
          // Only the last one or two characters of the last group may be padding.
          guard isLast, offset >= 2 else { return nil }
          padding += 1
          continue
        }
        guard padding == 0 else { return nil }
        let value = values[Int(byte)]
        guard value != 0xFF else { return nil }
        quad[offset] = value
      }
      let bits =
        UInt32(quad[0]) << 18 | UInt32(quad[1]) << 12 | UInt32(quad[2]) << 6
        | UInt32(quad[3])
      output.append(UInt8(truncatingIfNeeded: bits >> 16))
      if padding < 2 { output.append(UInt8(truncatingIfNeeded: bits >> 8)) }
      if padding < 1 { output.append(UInt8(truncatingIfNeeded: bits)) }
      // Canonical: the bits dropped by padding must be zero.
      if padding == 2 && bits & 0xFFFF != 0 { return nil }
      if padding == 1 && bits & 0xFF != 0 { return nil }
      index += 4
    }
    return output
  }

  static func encode(_ bytes: [UInt8]) -> String {
    var output: [UInt8] = []
    output.reserveCapacity((bytes.count + 2) / 3 * 4)
    var index = 0
    while index < bytes.count {
      let remaining = bytes.count - index
      let b0 = UInt32(bytes[index])
      let b1 = remaining > 1 ? UInt32(bytes[index + 1]) : 0
      let b2 = remaining > 2 ? UInt32(bytes[index + 2]) : 0
      let bits = b0 << 16 | b1 << 8 | b2
      output.append(alphabet[Int(bits >> 18 & 0x3F)])
      output.append(alphabet[Int(bits >> 12 & 0x3F)])
      output.append(remaining > 1 ? alphabet[Int(bits >> 6 & 0x3F)] : UInt8(ascii: "="))
      output.append(remaining > 2 ? alphabet[Int(bits & 0x3F)] : UInt8(ascii: "="))
      index += 3
    }
    return String(decoding: output, as: UTF8.self)
  }
}
