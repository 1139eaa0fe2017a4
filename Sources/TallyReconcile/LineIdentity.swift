/// The deterministic identity of a statement line, so that importing the same statement, or
/// the same line in another statement or format, twice can be detected:
///
///     account|bankReference|endToEndId|bookingDate|valueDate|direction|amountMinor|currency
///       |occurrence
///
/// (one string, wrapped here), where
/// - `account`: the statement's account with spaces removed and ASCII letters upper-cased
///   (`DE89 3704 …` and `de893704…` are the same account); empty when the statement has none.
/// - `bankReference`, `endToEndId`: as parsed; empty when absent.
/// - dates `YYYY-MM-DD`; `valueDate` empty when absent.
/// - `direction` `credit` or `debit`; `amountMinor` in decimal; `currency` as parsed.
/// - `occurrence`: 1 + the number of earlier lines of the same statement whose other fields
///   are all equal, so two genuinely identical lines stay distinct and a re-import gives the
///   same identities.
///
/// The format and the statement id are left out on purpose: the same economic line gets the
/// same identity from CSV, camt.053 or MT940 as far as the formats carry the same fields.
/// `\` and `|` inside a field are escaped as `\\` and `\|`, so the fields cannot run together.
enum LineIdentity {
  /// Sets every line's `identity`.
  static func assign(_ statement: inout Statement) {
    let account = statement.account.map(normalisedAccount) ?? ""
    var seen: [String: Int] = [:]
    seen.reserveCapacity(statement.lines.count)
    for i in statement.lines.indices {
      let key = self.key(account: account, statement.lines[i])
      let occurrence = (seen[key] ?? 0) + 1
      seen[key] = occurrence
      statement.lines[i].identity = key + "|" + String(occurrence)
    }
  }

  /// Everything but the occurrence: the fields joined by `|`, each escaped. Built as bytes
  /// (the hot path of an import), equal to joining the escaped texts.
  static func key(account: String, _ line: StatementLine) -> String {
    var b = [UInt8]()
    b.reserveCapacity(96)
    let bar = UInt8(ascii: "|")
    appendEscaped(&b, account)
    b.append(bar)
    appendEscaped(&b, line.bankReference ?? "")
    b.append(bar)
    appendEscaped(&b, line.endToEndId ?? "")
    b.append(bar)
    b.append(contentsOf: Dates.format(line.bookingDateDays).utf8)
    b.append(bar)
    if let v = line.valueDateDays { b.append(contentsOf: Dates.format(v).utf8) }
    b.append(bar)
    b.append(contentsOf: line.direction.rawValue.utf8)
    b.append(bar)
    b.append(contentsOf: String(line.amountMinor).utf8)
    b.append(bar)
    appendEscaped(&b, line.currency)
    return String(decoding: b, as: UTF8.self)
  }

  static func appendEscaped(_ b: inout [UInt8], _ s: String) {
    var plain = true
    for c in s.utf8 where c == UInt8(ascii: "|") || c == UInt8(ascii: "\\") {
      plain = false
      break
    }
    if plain { b.append(contentsOf: s.utf8) } else { b.append(contentsOf: escaped(s).utf8) }
  }

  static func normalisedAccount(_ s: String) -> String {
    var out = String.UnicodeScalarView()
    for u in s.unicodeScalars where u != " " {
      out.append(u.value >= 0x61 && u.value <= 0x7A ? Unicode.Scalar(u.value - 0x20)! : u)
    }
    return String(out)
  }

  static func escaped(_ s: String) -> String {
    guard s.contains(where: { $0 == "|" || $0 == "\\" }) else { return s }
    var out = ""
    for c in s {
      if c == "|" || c == "\\" { out.append("\\") }
      out.append(c)
    }
    return out
  }
}
