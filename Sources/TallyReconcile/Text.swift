/// Small text helpers shared by the formats.
enum Text {
  /// Trims spaces, tabs, CR and LF at both ends; nil when nothing is left.
  static func value(_ s: Substring) -> String? {
    let t = trimmed(s)
    return t.isEmpty ? nil : String(t)
  }

  /// `value(s[...])`, without a copy when there is nothing to trim (neither end is a space,
  /// tab, CR or LF byte; otherwise the Character-wise trim above decides, as before).
  static func value(_ s: String) -> String? {
    let u = s.utf8
    guard let first = u.first, let last = u.last else { return nil }
    func space(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }
    if !space(first) && !space(last) { return s }
    return value(s[...])
  }

  static func trimmed(_ s: Substring) -> Substring {
    var t = s
    while let c = t.first, isSpace(c) { t.removeFirst() }
    while let c = t.last, isSpace(c) { t.removeLast() }
    return t
  }

  static func isSpace(_ c: Character) -> Bool {
    c == " " || c == "\t" || c == "\n" || c == "\r" || c == "\r\n"
  }

  /// A value for a message: quoted, cut at 48 characters.
  static func quoted(_ s: Substring) -> String {
    s.count > 48 ? "\"\(s.prefix(48))…\"" : "\"\(s)\""
  }
}

/// End-to-end ids: `NOTPROVIDED` (the SEPA placeholder for "none") is read as absent.
enum EndToEnd {
  static func provided(_ s: String) -> String? {
    s == "NOTPROVIDED" ? nil : s
  }
}
