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

  /// Everything but the occurrence.
  static func key(account: String, _ line: StatementLine) -> String {
    var parts = [String]()
    parts.reserveCapacity(8)
    parts.append(escaped(account))
    parts.append(escaped(line.bankReference ?? ""))
    parts.append(escaped(line.endToEndId ?? ""))
    parts.append(Dates.format(line.bookingDateDays))
    parts.append(line.valueDateDays.map(Dates.format) ?? "")
    parts.append(line.direction.rawValue)
    parts.append(String(line.amountMinor))
    parts.append(escaped(line.currency))
    return parts.joined(separator: "|")
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
