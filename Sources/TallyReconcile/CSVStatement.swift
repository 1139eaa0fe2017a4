/// A CSV statement: a header row naming the columns, then one line per record.
/// docs/RECONCILIATION.md lists the columns and their aliases.
enum CSVStatement {
  enum Column: String, CaseIterable {
    case bookingDate = "booking_date"
    case valueDate = "value_date"
    case amount
    case direction
    case currency
    case bankRef = "bank_ref"
    case endToEndId = "end_to_end_id"
    case reference
    case description
    case account
  }

  /// Header names after normalisation (trimmed, ASCII lower-cased, spaces and hyphens read as
  /// underscores) → column. Unknown names are ignored.
  static let names: [String: Column] = {
    var m = [String: Column]()
    for c in Column.allCases { m[c.rawValue] = c }
    let aliases: [(Column, [String])] = [
      (
        .bookingDate,
        ["date", "booking", "booked", "posting_date", "entry_date", "transaction_date"]
      ),
      (.valueDate, ["valuta", "valuta_date"]),
      (.amount, ["amt"]),
      (.direction, ["credit_debit", "debit_credit", "cdtdbtind", "dc", "cd"]),
      (.currency, ["ccy", "cur"]),
      (.bankRef, ["bank_reference", "acctsvcrref"]),
      (.endToEndId, ["end_to_end", "endtoendid", "e2e", "e2e_id", "eref"]),
      (.reference, ["ref", "customer_ref", "customer_reference"]),
      (.description, ["remittance", "details", "memo", "narrative", "purpose", "text"]),
      (.account, ["iban", "account_id"]),
    ]
    for (column, list) in aliases { for name in list { m[name] = column } }
    return m
  }()

  static func normalisedHeader(_ s: String) -> String {
    var out = ""
    for c in Text.trimmed(s[...]) {
      if c == " " || c == "-" {
        out.append("_")
      } else if let a = c.asciiValue, a >= 0x41 && a <= 0x5A {
        out.append(Character(Unicode.Scalar(a + 0x20)))
      } else {
        out.append(c)
      }
    }
    return out
  }

  static func parse(
    _ bytes: ArraySlice<UInt8>, currencies: Currencies, sink: inout LineSink
  ) throws(StatementError) -> Statement {
    try sink.startStatement(at: "line 1")
    var reader = CSVReader(bytes)
    guard let header = try reader.next() else {
      throw StatementError(
        code: StatementError.truncated, location: "line 1", message: "the input is empty")
    }
    var index = [Column: Int]()
    var headerNames = [Column: String]()
    for (i, raw) in header.fields.enumerated() {
      guard let column = names[normalisedHeader(raw)] else { continue }
      if let other = headerNames[column] {
        throw StatementError(
          code: StatementError.malformed, location: "line \(header.line)",
          message: "columns \"\(other)\" and \"\(raw)\" both give \(column.rawValue)")
      }
      index[column] = i
      headerNames[column] = raw
    }
    let missing = [Column.bookingDate, .amount, .currency].filter { index[$0] == nil }
    if !missing.isEmpty {
      throw StatementError(
        code: StatementError.missingField, location: "line \(header.line)",
        message: "the header has no column "
          + missing.map(\.rawValue).joined(separator: ", "))
    }

    var currency: String?
    var account: String?
    var accountLine = 0
    while let record = try reader.next() {
      let location = "line \(record.line)"
      guard record.fields.count == header.fields.count else {
        throw StatementError(
          code: StatementError.malformed, location: location,
          message: "\(record.fields.count) fields; the header has \(header.fields.count)")
      }
      func value(_ c: Column) -> String? {
        index[c].flatMap { Text.value(record.fields[$0]) }
      }
      func required(_ c: Column) throws(StatementError) -> String {
        guard let v = value(c) else {
          throw StatementError(
            code: StatementError.missingField, location: location,
            message: "\(c.rawValue) is empty")
        }
        return v
      }

      let bookingText = try required(.bookingDate)
      guard let booking = Dates.isoDateOrDateTime(bookingText[...]) else {
        throw badDate(bookingText, .bookingDate, location)
      }
      var valueDate: Int32?
      if let text = value(.valueDate) {
        guard let v = Dates.isoDateOrDateTime(text[...]) else {
          throw badDate(text, .valueDate, location)
        }
        valueDate = v
      }

      // Partner exports often write currency codes in lower case (`eur`).
      let code = ascii(uppercased: try required(.currency))
      let scale = try currencies.scaleOf(code, location: location)
      // The first record's currency is the statement's; a record in another is a line in
      // its own currency (a foreign payment, a fee), which the import does not match.
      if currency == nil { currency = code }

      var amountText = Substring(try required(.amount))
      var direction = StatementDirection.credit
      if index[.direction] != nil {
        let text = try required(.direction)
        guard let d = parseDirection(text) else {
          throw StatementError(
            code: StatementError.malformed, location: location,
            message: "direction \(Text.quoted(text[...])) is not credit, debit, C, D, CRDT, "
              + "DBIT, CR or DR")
        }
        direction = d
        if amountText.first == "-" || amountText.first == "+" {
          throw StatementError(
            code: StatementError.badAmount, location: location,
            message: "amount \(Text.quoted(amountText)) must be unsigned: the direction "
              + "column gives the direction")
        }
      } else if amountText.first == "-" {
        direction = .debit
        amountText = amountText.dropFirst()
      } else if amountText.first == "+" {
        amountText = amountText.dropFirst()
      }
      let amount = try Amounts.minor(
        amountText, currency: code, scale: scale, separator: UInt8(ascii: "."),
        location: location)
      try Amounts.requirePositive(amount, location: location)

      if let a = value(.account) {
        if let known = account, known != a {
          throw StatementError(
            code: StatementError.malformed, location: location,
            message: "account \(Text.quoted(a[...])) differs from line \(accountLine)'s "
              + Text.quoted(known[...]) + "; a statement covers one account")
        }
        if account == nil { (account, accountLine) = (a, record.line) }
      }

      let bankRef = value(.bankRef)
      try sink.append(
        StatementLine(
          index: 0, source: location, amountMinor: amount, currency: code,
          direction: direction, bookingDateDays: booking, valueDateDays: valueDate,
          bankReference: bankRef, endToEndId: value(.endToEndId).flatMap(EndToEnd.provided),
          reference: value(.reference) ?? bankRef, remittance: value(.description),
          identity: ""))
    }
    guard let currency else {
      throw StatementError(
        code: StatementError.missingField, location: "line \(header.line + 1)",
        message: "the CSV has a header but no records, so no currency")
    }
    return Statement(
      format: .csv, account: account, statementId: nil, currency: currency, opening: nil,
      closing: nil, lines: sink.lines)
  }

  static func parseDirection(_ s: String) -> StatementDirection? {
    switch ascii(uppercased: s) {
    case "CREDIT", "C", "CRDT", "CR": .credit
    case "DEBIT", "D", "DBIT", "DR": .debit
    default: nil
    }
  }

  static func ascii(uppercased s: String) -> String {
    // Most codes are already upper case: no new string then.
    if !s.utf8.contains(where: { $0 >= 0x61 && $0 <= 0x7A }) { return s }
    return String(
      String.UnicodeScalarView(
        s.unicodeScalars.map { u in
          u.value >= 0x61 && u.value <= 0x7A ? Unicode.Scalar(u.value - 0x20)! : u
        }))
  }

  private static func badDate(_ text: String, _ c: Column, _ location: String) -> StatementError {
    StatementError(
      code: StatementError.badDate, location: location,
      message: "\(c.rawValue) \(Text.quoted(text[...])) is not a valid YYYY-MM-DD date")
  }
}
