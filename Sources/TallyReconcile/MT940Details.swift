/// MT940 `:86:` (information to the account owner) → end-to-end id and remittance text.
///
/// 1. The field's lines are joined with nothing between them: SWIFT wraps text at 65
///    characters wherever it falls, so a line break is not a space.
/// 2. Structured `:86:` (German DK layout: three digits and `?`, or `?` and two digits, at the
///    start, subfields `?NN`): the text is the purpose subfields `?20`…`?29` and `?60`…`?63`
///    joined in order; the others (booking text, bank code, account, name…) are not read.
///    Otherwise the text is the whole field.
/// 3. SEPA keywords (`EREF+`, `KREF+`, `MREF+`, `CRED+`, `DEBT+`, `COAM+`, `OAMT+`, `SVWZ+`,
///    `ABWA+`, `ABWE+`, `IBAN+`, `BIC+`) split the text: `EREF+` gives the end-to-end id
///    (`NOTPROVIDED` is none), `SVWZ+` the remittance; with keywords but no `SVWZ+`, the text
///    before the first keyword (if any) is the remittance. Without keywords the whole text is
///    the remittance.
enum MT940Details {
  /// The keywords without their `+`.
  static let keywords: Set<[UInt8]> = Set(
    [
      "EREF", "KREF", "MREF", "CRED", "DEBT", "COAM", "OAMT", "SVWZ", "ABWA", "ABWE", "IBAN",
      "BIC",
    ].map { Array($0.utf8) })

  static let purposeSubfields: Set<Int> = Set(20...29).union(60...63)

  static func parse(_ lines: [Substring]) -> (endToEndId: String?, remittance: String?) {
    var joined = [UInt8]()
    for l in lines { joined.append(contentsOf: l.utf8) }
    let text = isStructured(joined) ? purpose(joined) : joined
    let segments = keywordSegments(text)
    guard let first = keywords(in: text).first else {
      return (nil, Text.value(String(decoding: text, as: UTF8.self)[...]))
    }
    var e2e: String?
    var svwz: String?
    for (keyword, value) in segments {
      let v = Text.value(String(decoding: value, as: UTF8.self)[...])
      if keyword == "EREF+" && e2e == nil { e2e = v.flatMap(EndToEnd.provided) }
      if keyword == "SVWZ+" && svwz == nil { svwz = v }
    }
    let lead = Text.value(String(decoding: text[..<first.start], as: UTF8.self)[...])
    return (e2e, svwz ?? lead)
  }

  static func isStructured(_ u: [UInt8]) -> Bool {
    func digit(_ i: Int) -> Bool { i < u.count && u[i] >= 0x30 && u[i] <= 0x39 }
    if u.count >= 4, digit(0), digit(1), digit(2), u[3] == UInt8(ascii: "?") { return true }
    return u.count >= 3 && u[0] == UInt8(ascii: "?") && digit(1) && digit(2)
  }

  /// The purpose subfields of a structured `:86:`, joined.
  static func purpose(_ u: [UInt8]) -> [UInt8] {
    var out = [UInt8]()
    var current: Int?
    var i = 0
    while i < u.count {
      if u[i] == UInt8(ascii: "?"), i + 2 < u.count, u[i + 1] >= 0x30 && u[i + 1] <= 0x39,
        u[i + 2] >= 0x30 && u[i + 2] <= 0x39
      {
        current = Int(u[i + 1] - 0x30) * 10 + Int(u[i + 2] - 0x30)
        i += 3
        continue
      }
      if let c = current, purposeSubfields.contains(c) { out.append(u[i]) }
      i += 1
    }
    return out
  }

  /// Where each keyword starts, with the length of the keyword and its `+`; found from the
  /// `+` signs, so the scan is one pass.
  static func keywords(in u: [UInt8]) -> [(start: Int, length: Int)] {
    var found = [(start: Int, length: Int)]()
    var end = 0  // keywords do not overlap
    for i in u.indices where u[i] == UInt8(ascii: "+") {
      for n in [4, 3] where i - n >= end && keywords.contains(Array(u[(i - n)..<i])) {
        found.append((i - n, n + 1))
        end = i + 1
        break
      }
    }
    return found
  }

  /// Each keyword (with its `+`) and the text up to the next keyword.
  static func keywordSegments(_ u: [UInt8]) -> [(String, ArraySlice<UInt8>)] {
    let found = keywords(in: u)
    var out = [(String, ArraySlice<UInt8>)]()
    for (n, k) in found.enumerated() {
      let end = n + 1 < found.count ? found[n + 1].start : u.count
      out.append(
        (
          String(decoding: u[k.start..<(k.start + k.length)], as: UTF8.self),
          u[(k.start + k.length)..<end]
        ))
    }
    return out
  }
}
