/// Small text helpers shared by the formats.
enum Text {
  /// Trims spaces, tabs, CR and LF at both ends; nil when nothing is left.
  static func value(_ s: Substring) -> String? {
    let t = trimmed(s)
    return t.isEmpty ? nil : String(t)
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
