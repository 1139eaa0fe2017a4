import PropertyBased
import TallyCore
import TallyTestSupport

@testable import TallyReconcile

// A model statement and writers for the three formats, for the property test: a random
// statement is written as CSV, camt.053 and MT940, and each must parse back to the model's
// lines. The writers vary what the formats allow (header spellings, quoting, line ends, BOM,
// camt versions and prefixes, batches, CDATA, MT940 wrapper, structured :86:, reversal
// marks) so that the parsers see many spellings of the same data.

struct ModelLine: Equatable {
  var booking: Int32
  var value: Int32
  var direction: StatementDirection
  var amount: Int128
  var bankRef: String?
  var customerRef: String?
  var endToEndId: String?
  var remittance: String?
  /// Lines with the same batch number are one camt entry (consecutive, same dates, direction
  /// and bank reference).
  var batch: Int?

  /// Every format reads the customer reference, else the bank reference.
  var reference: String? { customerRef ?? bankRef }
}

struct ModelStatement {
  var account: String
  var currency: String
  var scale: Int
  var openingDays: Int32
  var opening: Int128
  var lines: [ModelLine]

  var closingDays: Int32 { lines.map(\.booking).max() ?? openingDays }
  var closing: Int128 {
    lines.reduce(opening) { $0 + ($1.direction == .credit ? $1.amount : -$1.amount) }
  }

  /// The lines every format must give, sources aside, with identities computed here
  /// independently of `LineIdentity`.
  var expectedLines: [TallyReconcile.StatementLine] {
    var seen = [String: Int]()
    return lines.enumerated().map { i, l in
      func esc(_ s: String?) -> String {
        (s ?? "").replacingOccurrences(of: "\\", with: "\\\\")
          .replacingOccurrences(of: "|", with: "\\|")
      }
      let key = [
        esc(account), esc(l.bankRef), esc(l.endToEndId), CivilTime.formatDate(l.booking),
        CivilTime.formatDate(l.value), l.direction.rawValue, String(l.amount), currency,
      ].joined(separator: "|")
      seen[key, default: 0] += 1
      return TallyReconcile.StatementLine(
        index: i + 1, source: "", amountMinor: l.amount, currency: currency,
        direction: l.direction, bookingDateDays: l.booking, valueDateDays: l.value,
        bankReference: l.bankRef, endToEndId: l.endToEndId, reference: l.reference,
        remittance: l.remittance, identity: key + "|" + String(seen[key]!))
    }
  }

  func decimal(_ minor: Int128) -> String {
    Amount.formatDecimal(minor, scale: UInt8(scale))
  }
}

// MARK: - Random statements

enum RandomStatement {
  static let currencies: [(String, Int)] = [
    ("EUR", 2), ("JPY", 0), ("BHD", 3), ("CLF", 4), ("USD", 2), ("CHF", 2),
  ]
  static let refChars = Array("ABCDEFGHKLMNPRSTUVWXYZabcdefxyz0123456789-.")
  static let words = [
    "Invoice", "rent", "March", "order", "no.", "4711", "café", "Müller", "A&B", "(ref)",
    "\"quoted\"", "it's", "10,50", "2024-03-01", "a/b", "x", "Zahlung", "payment", "thanks",
  ]

  static func make(_ rng: inout Xoshiro) -> ModelStatement {
    let (currency, scale) = rng.pick(currencies)
    let account = "DE" + String((0..<20).map { _ in Character(String(rng.int(0...9))) })
    // MT940 years are 20YY: keep every date (±3 days, +2 per line) inside 2000…2099.
    let first = Int32(rng.int(Int(day("2000-01-10"))...Int(day("2099-10-01"))))
    var lines = [ModelLine]()
    var day = first
    var batch = 0
    let count = rng.int(1...24)
    while lines.count < count {
      if !lines.isEmpty && rng.chance(0.12) {
        // A genuine repeat of an earlier line (outside any batch).
        var copy = rng.pick(lines)
        copy.batch = nil
        lines.append(copy)
        continue
      }
      day += Int32(rng.int(0...2))
      var line = ModelLine(
        booking: day, value: day + Int32(rng.int(-3...3)),
        direction: rng.chance(0.5) ? .credit : .debit, amount: amount(&rng, scale),
        bankRef: rng.chance(0.7) ? ref(&rng, 1...16) : nil,
        customerRef: rng.chance(0.5) ? ref(&rng, 1...16) : nil,
        endToEndId: rng.chance(0.5) ? ref(&rng, 1...35) : nil,
        remittance: rng.chance(0.8) ? remittance(&rng) : nil)
      if rng.chance(0.15) {
        batch += 1
        let size = rng.int(2...4)
        for _ in 0..<size where lines.count < count + 3 {
          line.batch = batch
          lines.append(line)
          line.amount = amount(&rng, scale)
          line.customerRef = rng.chance(0.5) ? ref(&rng, 1...16) : nil
          line.endToEndId = rng.chance(0.7) ? ref(&rng, 1...35) : nil
          line.remittance = rng.chance(0.8) ? remittance(&rng) : nil
        }
      } else {
        lines.append(line)
      }
    }
    return ModelStatement(
      account: account, currency: currency, scale: scale, openingDays: first - 1,
      opening: rng.amount(-1_000_000_000_000...1_000_000_000_000), lines: lines)
  }

  static func amount(_ rng: inout Xoshiro, _ scale: Int) -> Int128 {
    rng.chance(0.3) ? rng.amount(1...999) : rng.amount(1...100_000_000_000_000)
  }

  static func ref(_ rng: inout Xoshiro, _ length: ClosedRange<Int>) -> String {
    var s = ""
    for _ in 0..<rng.int(length) { s.append(rng.pick(refChars)) }
    // Rarely, the characters the identity escapes.
    if rng.chance(0.05) { s.insert(rng.pick(["|", "\\"]), at: s.startIndex) }
    // Ending with a letter or digit keeps MT940 continuation lines from being a lone `-`.
    if s == "NONREF" || s == "NOTPROVIDED" || !(s.last!.isLetter || s.last!.isNumber) {
      s += "1"
    }
    return s
  }

  /// Words separated by single spaces, starting and ending with a letter or digit (so no
  /// MT940 continuation line can be a lone `-`), no `?`, `+` or `:` (MT940 structure).
  static func remittance(_ rng: inout Xoshiro) -> String {
    var parts = ["Pay" + String(rng.int(0...999))]
    for _ in 0..<rng.int(0...14) { parts.append(rng.pick(words)) }
    parts.append(String(rng.int(0...99)))
    return parts.joined(separator: " ")
  }
}

// MARK: - CSV

enum CSVWriter {
  static func write(_ s: ModelStatement, _ rng: inout Xoshiro) -> [UInt8] {
    let signed = rng.chance(0.5)
    let names = [
      rng.pick(["booking_date", "Date", "Booking Date", "posting_date"]),
      rng.pick(["value_date", "Valuta", "VALUE DATE"]), rng.pick(["amount", "Amt"]),
      rng.pick(["currency", "CCY"]), rng.pick(["bank_ref", "Bank Reference"]),
      rng.pick(["end_to_end_id", "E2E"]), rng.pick(["reference", "Customer Ref"]),
      rng.pick(["description", "Remittance"]), rng.pick(["account", "IBAN"]),
    ]
    let spaced = rng.chance(0.3)
    let account =
      spaced
      ? stride(from: 0, to: s.account.count, by: 4).map { i in
        String(s.account.dropFirst(i).prefix(4))
      }.joined(separator: " ") : s.account
    let newline = rng.chance(0.5) ? "\r\n" : "\n"
    var rows = [names + (signed ? [] : ["direction"]) + ["ignored"]]
    for l in s.lines {
      var amount = s.decimal(l.amount)
      if signed {
        amount = l.direction == .debit ? "-" + amount : (rng.chance(0.3) ? "+" + amount : amount)
      }
      var row = [
        CivilTime.formatDate(l.booking), CivilTime.formatDate(l.value), amount,
        rng.chance(0.2) ? s.currency.lowercased() : s.currency, l.bankRef ?? "",
        l.endToEndId ?? (rng.chance(0.2) ? "NOTPROVIDED" : ""), l.customerRef ?? "",
        l.remittance ?? "", account,
      ]
      if !signed {
        row.append(
          l.direction == .credit
            ? rng.pick(["credit", "C", "CRDT", "cr"]) : rng.pick(["debit", "D", "DBIT", "Dr"]))
      }
      row.append(rng.pick(["", "x", "a,b", "line\nbreak"]))
      rows.append(row)
    }
    var text = rows.map { row in
      row.map { field in quote(field, always: rng.chance(0.1)) }.joined(separator: ",")
    }.joined(separator: newline)
    if rng.chance(0.5) { text += newline }
    if rng.chance(0.2) { text += newline + "  " + newline }
    return (rng.chance(0.3) ? [0xEF, 0xBB, 0xBF] : []) + Array(text.utf8)
  }

  static func quote(_ field: String, always: Bool) -> String {
    let special = field.contains { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }
    guard special || always else { return field }
    return "\"" + field.replacingOccurrences(of: "\"", with: "\"\"") + "\""
  }
}

// MARK: - camt.053

enum CamtWriter {
  static func write(_ s: ModelStatement, _ rng: inout Xoshiro) -> [UInt8] {
    write([s], notification: false, &rng)
  }

  /// A camt.053 document of one `Stmt` per statement, or a camt.054 of one `Ntfctn` each
  /// (without balances).
  static func write(_ all: [ModelStatement], notification: Bool, _ rng: inout Xoshiro)
    -> [UInt8]
  {
    let version = rng.int(2...13)
    let p = rng.chance(0.3) ? "c:" : ""
    let ns =
      "urn:iso:std:iso:20022:tech:xsd:camt.05\(notification ? 4 : 3).001."
      + (version < 10 ? "0" : "") + String(version)
    let (body, item) =
      notification ? ("BkToCstmrDbtCdtNtfctn", "Ntfctn") : ("BkToCstmrStmt", "Stmt")
    var x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    x += "<\(p)Document xmlns\(p.isEmpty ? "" : ":c")=\"\(ns)\">\n<\(p)\(body)>\n"
    x += "<\(p)GrpHdr><\(p)MsgId>M</\(p)MsgId></\(p)GrpHdr>\n"
    for (k, s) in all.enumerated() {
      x += "<\(p)\(item)><\(p)Id>S\(k + 1)</\(p)Id>\n"
      x += statement(s, p: p, version: version, balances: !notification, &rng)
      x += "</\(p)\(item)>\n"
    }
    x += "</\(p)\(body)>\n</\(p)Document>\n"
    return Array(x.utf8)
  }

  /// The children of one `Stmt` (or `Ntfctn`).
  static func statement(
    _ s: ModelStatement, p: String, version: Int, balances: Bool, _ rng: inout Xoshiro
  ) -> String {
    var x = ""
    // Without balances the first entry would fix the currency: name it.
    let ccy = rng.chance(0.8) || !balances ? "<\(p)Ccy>\(s.currency)</\(p)Ccy>" : ""
    x += "<\(p)Acct><\(p)Id><\(p)IBAN>\(s.account)</\(p)IBAN></\(p)Id>\(ccy)</\(p)Acct>\n"
    if balances {
      x += balance(p, "OPBD", s.opening, s.currency, s.openingDays, s)
      x += balance(p, "CLBD", s.closing, s.currency, s.closingDays, s)
    }
    var i = 0
    while i < s.lines.count {
      let l = s.lines[i]
      var group = [l]
      if let b = l.batch {
        while i + group.count < s.lines.count && s.lines[i + group.count].batch == b {
          group.append(s.lines[i + group.count])
        }
      }
      i += group.count
      let total = group.reduce(Int128(0)) { $0 + $1.amount }
      x += "<\(p)Ntry><\(p)Amt Ccy=\"\(s.currency)\">\(s.decimal(total))</\(p)Amt>"
      x += "<\(p)CdtDbtInd>\(l.direction == .credit ? "CRDT" : "DBIT")</\(p)CdtDbtInd>"
      if rng.chance(0.1) { x += "<\(p)RvslInd>true</\(p)RvslInd>" }
      x += version < 8 ? "<\(p)Sts>BOOK</\(p)Sts>" : "<\(p)Sts><\(p)Cd>BOOK</\(p)Cd></\(p)Sts>"
      x += "<\(p)BookgDt>\(date(p, l.booking, &rng))</\(p)BookgDt>"
      x += "<\(p)ValDt>\(date(p, l.value, &rng))</\(p)ValDt>"
      if let r = l.bankRef { x += "<\(p)AcctSvcrRef>\(escape(r))</\(p)AcctSvcrRef>" }
      let batched = group.count > 1
      let details = group.map { tx(p, $0, batched: batched, version: version, s, &rng) }
      if details.contains(where: { !$0.isEmpty }) {
        x += "<\(p)NtryDtls>" + details.joined() + "</\(p)NtryDtls>"
      }
      x += "</\(p)Ntry>\n"
    }
    return x
  }

  static func tx(
    _ p: String, _ l: ModelLine, batched: Bool, version: Int, _ s: ModelStatement,
    _ rng: inout Xoshiro
  ) -> String {
    var refs = ""
    if let c = l.customerRef { refs += "<\(p)InstrId>\(escape(c))</\(p)InstrId>" }
    if let e = l.endToEndId {
      refs += "<\(p)EndToEndId>\(escape(e))</\(p)EndToEndId>"
    } else if rng.chance(0.3) {
      refs += "<\(p)EndToEndId>NOTPROVIDED</\(p)EndToEndId>"
    }
    var amount = ""
    if batched {
      let a = "<\(p)Amt Ccy=\"\(s.currency)\">\(s.decimal(l.amount))</\(p)Amt>"
      amount =
        version >= 5 && rng.chance(0.5)
        ? a : "<\(p)AmtDtls><\(p)TxAmt>\(a)</\(p)TxAmt></\(p)AmtDtls>"
    }
    var rmt = ""
    if let r = l.remittance {
      let ustrd = splitAtSpace(r, &rng).map { part in
        let text = rng.chance(0.2) ? "<![CDATA[\(part)]]>" : escape(part)
        return "<\(p)Ustrd>\(text)</\(p)Ustrd>"
      }
      rmt = "<\(p)RmtInf>" + ustrd.joined() + "</\(p)RmtInf>"
    }
    if refs.isEmpty && amount.isEmpty && rmt.isEmpty && !batched { return "" }
    return "<\(p)TxDtls>" + (refs.isEmpty ? "" : "<\(p)Refs>\(refs)</\(p)Refs>") + amount + rmt
      + "</\(p)TxDtls>"
  }

  /// One Ustrd, or two split at a space (the parser joins them with one space).
  static func splitAtSpace(_ r: String, _ rng: inout Xoshiro) -> [String] {
    let spaces = r.indices.filter { r[$0] == " " }
    guard !spaces.isEmpty, rng.chance(0.3) else { return [r] }
    let at = rng.pick(spaces)
    return [String(r[..<at]), String(r[r.index(after: at)...])]
  }

  static func date(_ p: String, _ d: Int32, _ rng: inout Xoshiro) -> String {
    rng.chance(0.2)
      ? "<\(p)DtTm>\(CivilTime.formatDate(d))T12:00:00+01:00</\(p)DtTm>"
      : "<\(p)Dt>\(CivilTime.formatDate(d))</\(p)Dt>"
  }

  static func balance(
    _ p: String, _ code: String, _ amount: Int128, _ ccy: String, _ day: Int32,
    _ s: ModelStatement
  ) -> String {
    "<\(p)Bal><\(p)Tp><\(p)CdOrPrtry><\(p)Cd>\(code)</\(p)Cd></\(p)CdOrPrtry></\(p)Tp>"
      + "<\(p)Amt Ccy=\"\(ccy)\">\(s.decimal(Int128(amount.magnitude)))</\(p)Amt>"
      + "<\(p)CdtDbtInd>\(amount < 0 ? "DBIT" : "CRDT")</\(p)CdtDbtInd>"
      + "<\(p)Dt><\(p)Dt>\(CivilTime.formatDate(day))</\(p)Dt></\(p)Dt></\(p)Bal>\n"
  }

  static func escape(_ s: String) -> String {
    var out = ""
    for c in s {
      switch c {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      default: out.append(c)
      }
    }
    return out
  }
}

// MARK: - MT940

enum MT940Writer {
  /// The statements as consecutive messages of one file, each wrapped or plain, ended by
  /// `-`/`-}` or followed directly by the next `:20:`.
  static func write(_ all: [ModelStatement], _ rng: inout Xoshiro) -> [UInt8] {
    let newline = rng.chance(0.5) ? "\r\n" : "\n"
    var out = [String]()
    for s in all { out += lines(s, &rng) }
    return Array((out.joined(separator: newline) + (rng.chance(0.7) ? newline : "")).utf8)
  }

  static func write(_ s: ModelStatement, _ rng: inout Xoshiro) -> [UInt8] {
    let newline = rng.chance(0.5) ? "\r\n" : "\n"
    let out = lines(s, &rng)
    return Array((out.joined(separator: newline) + (rng.chance(0.7) ? newline : "")).utf8)
  }

  static func lines(_ s: ModelStatement, _ rng: inout Xoshiro) -> [String] {
    let wrapped = rng.chance(0.5)
    var out = [String]()
    if wrapped { out.append("{1:F01BANKDEFFAXXX0000000000}{2:O940BANKDEFFXXXXN}{4:") }
    out.append(":20:STMT\(rng.int(1...999))")
    out.append(":25:\(s.account)")
    if rng.chance(0.7) { out.append(":28C:\(rng.int(1...99))/1") }
    out.append(":60F:" + balance(s.opening, s.openingDays, s))
    for l in s.lines {
      let c = l.direction == .credit
      let mark = rng.chance(0.15) ? (c ? "RD" : "RC") : (c ? "C" : "D")
      let funds = rng.chance(0.2) ? String(s.currency.last!) : ""
      let type = rng.pick(["NTRF", "NMSC", "FCHK", "S103", "NDDT"])
      let customer = l.customerRef ?? (l.bankRef != nil || rng.chance(0.5) ? "NONREF" : "")
      let bank = l.bankRef.map { "//" + $0 } ?? ""
      out.append(
        ":61:" + yymmdd(l.value)
          + String(CivilTime.formatDate(l.booking).suffix(5)).replacingOccurrences(
            of: "-", with: "")
          + mark + funds + amount(l.amount, s) + type + customer + bank)
      if rng.chance(0.2) { out.append("SUPPLEMENTARY \(rng.int(0...99))") }
      if let info = information(l, &rng) { out += wrap(":86:" + info) }
    }
    out.append(":62F:" + balance(s.closing, s.closingDays, s))
    if wrapped {
      out.append("-}" + (rng.chance(0.5) ? "{5:{CHK:0123456789AB}}" : ""))
    } else if rng.chance(0.5) {
      out.append("-")
    }
    return out
  }

  /// The `:86:` content: plain text, SEPA keywords, or ?-subfields.
  static func information(_ l: ModelLine, _ rng: inout Xoshiro) -> String? {
    let e2e = l.endToEndId ?? (rng.chance(0.3) ? "NOTPROVIDED" : nil)
    guard let e2e else { return l.remittance }
    let svwz = l.remittance.map { "SVWZ+" + $0 } ?? ""
    if rng.chance(0.5) {
      return "EREF+" + e2e + (svwz.isEmpty ? "" : " " + svwz)
    }
    // German structured layout: purpose text in ?20…?29, ?60…?63, 27 characters each.
    let chunks = chunked("EREF+" + e2e, 27) + chunked(svwz, 27)
    let numbers = Array(20...29) + Array(60...63)
    guard chunks.count <= numbers.count else { return "EREF+" + e2e + " " + svwz }
    var text = "166?00GUTSCHRIFT?109999"
    for (chunk, n) in zip(chunks, numbers) { text += "?\(n)" + chunk }
    return text + "?32PAYER NAME"
  }

  static func chunked(_ s: String, _ size: Int) -> [String] {
    var out = [String]()
    var rest = Substring(s)
    while !rest.isEmpty {
      out.append(String(rest.prefix(size)))
      rest = rest.dropFirst(size)
    }
    return out
  }

  /// SWIFT lines are at most 65 characters; the parser joins them without separators.
  static func wrap(_ s: String) -> [String] { chunked(s, 65) }

  static func yymmdd(_ d: Int32) -> String {
    let iso = CivilTime.formatDate(d)
    return String(iso.dropFirst(2)).replacingOccurrences(of: "-", with: "")
  }

  static func amount(_ minor: Int128, _ s: ModelStatement) -> String {
    let d = s.decimal(minor).replacingOccurrences(of: ".", with: ",")
    return s.scale == 0 ? d + "," : d
  }

  static func balance(_ minor: Int128, _ day: Int32, _ s: ModelStatement) -> String {
    (minor < 0 ? "D" : "C") + yymmdd(day) + s.currency
      + amount(Int128(minor.magnitude), s)
  }
}
