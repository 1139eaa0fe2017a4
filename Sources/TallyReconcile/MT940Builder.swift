/// The fields of one MT940 message, in the order SWIFT defines:
/// `:20:` [`:21:`] `:25:` [`:28C:`] `:60F:`|`:60M:` (`:61:` [`:86:`])* `:62F:`|`:62M:`
/// [`:64:`] [`:65:`]* [`:86:`].
struct MT940Builder {
  enum Phase: String {
    case start, reference, account, number, opening, line, info, closed
  }

  let currencies: Currencies
  var sink: LineSink
  var phase = Phase.start
  var reference: String?
  var number: String?
  var account: String?
  var currency: String?
  var scale = 0
  var opening: StatementBalance?
  var closing: StatementBalance?
  /// The last `:61:`, kept until we know whether an `:86:` follows.
  var pending: StatementLine?

  /// Where the current message starts.
  var start = 1

  init(currencies: Currencies, sink: LineSink) {
    self.currencies = currencies
    self.sink = sink
  }

  /// A message starts at `line`: everything of the previous one is forgotten.
  mutating func startMessage(line: Int) throws(StatementError) {
    try sink.startStatement(at: "line \(line)")
    (phase, reference, number, account, currency, scale) = (.start, nil, nil, nil, nil, 0)
    (opening, closing, pending, start) = (nil, nil, nil, line)
  }

  mutating func field(_ f: MT940Field) throws(StatementError) {
    let location = "line \(f.line)"
    let first = Text.trimmed(f.lines[0])
    switch (f.tag, phase) {
    case ("20", .start):
      reference = Text.value(first)
      phase = .reference
    case ("20", .closed):
      throw StatementError(
        code: StatementError.unsupported, location: location,
        message: "a second statement message; only one statement per input is accepted")
    case (_, .start):
      throw missing(":20:", before: f)
    case ("21", .reference):
      break
    case ("25", .reference):
      account = Text.value(first)
      phase = .account
    case ("28C", .account), ("28", .account):
      number = Text.value(first)
      phase = .number
    case ("60F", .account), ("60M", .account), ("60F", .number), ("60M", .number):
      let b = try balance(first, location: location)
      (opening, currency) = (b, b.currency)
      scale = try currencies.scaleOf(b.currency, location: location)
      phase = .opening
    case ("61", .opening), ("61", .line), ("61", .info):
      try flushPending()
      pending = try statementLine(first, location: location)
      phase = .line
    case ("86", .line):
      let details = MT940Details.parse(f.lines)
      pending!.endToEndId = details.endToEndId
      pending!.remittance = details.remittance
      phase = .info
    case ("86", .opening), ("86", .closed):
      break  // information about the whole statement, not a line
    case ("86", .info):
      throw StatementError(
        code: StatementError.malformed, location: location,
        message: "a second :86: for the same :61:")
    case ("62F", .opening), ("62M", .opening), ("62F", .line), ("62M", .line),
      ("62F", .info), ("62M", .info):
      try flushPending()
      let b = try balance(first, location: location)
      try Currencies.require(b.currency, is: currency!, location: location)
      closing = b
      phase = .closed
    case ("64", .closed), ("65", .closed):
      break  // available balances: not part of the model
    case ("25", _), ("28C", _), ("28", _), ("21", _):
      if phase == .reference && f.tag != "25" { throw missing(":25:", before: f) }
      throw outOfPlace(f)
    case ("60F", _), ("60M", _):
      if phase == .reference { throw missing(":25:", before: f) }
      throw outOfPlace(f)
    case ("61", _), ("62F", _), ("62M", _), ("86", _):
      if phase == .reference { throw missing(":25:", before: f) }
      if phase == .account || phase == .number { throw missing(":60F:", before: f) }
      throw outOfPlace(f)
    case ("20", _), ("64", _), ("65", _):
      throw outOfPlace(f)
    default:
      throw StatementError(
        code: StatementError.unsupported, location: location,
        message: "tag :\(f.tag): is not part of MT940")
    }
  }

  /// At the end of the message (`-}`, `-` or the end of the input).
  mutating func finishMessage(line: Int) throws(StatementError) {
    if phase != .closed {
      throw StatementError(
        code: StatementError.truncated, location: "line \(line)",
        message: "the statement ends without a closing balance :62F:")
    }
  }

  func statement() -> Statement {
    let id = reference.map { r in number.map { r + "/" + $0 } ?? r }
    return Statement(
      format: .mt940, source: "line \(start)", account: account, statementId: id,
      currency: currency!, opening: opening, closing: closing, lines: sink.lines)
  }

  private mutating func flushPending() throws(StatementError) {
    if let p = pending {
      pending = nil
      try sink.append(p)
    }
  }

  // MARK: - Fields

  /// `:60F:`/`:62F:` etc.: `C`|`D`, `YYMMDD`, currency, amount with a decimal comma.
  private func balance(_ text: Substring, location: String) throws(StatementError)
    -> StatementBalance
  {
    let u = Array(text.utf8)
    guard u.count >= 11, u[0] == UInt8(ascii: "C") || u[0] == UInt8(ascii: "D") else {
      throw StatementError(
        code: StatementError.malformed, location: location,
        message: "a balance is C or D, YYMMDD, a currency and an amount (C240301EUR100,00)")
    }
    guard let date = Dates.yymmdd(u[1..<7]) else {
      throw StatementError(
        code: StatementError.badDate, location: location,
        message: "\(Text.quoted(String(decoding: u[1..<7], as: UTF8.self)[...])) is not a valid "
          + "YYMMDD date")
    }
    let ccy = String(decoding: u[7..<10], as: UTF8.self)
    let scale = try currencies.scaleOf(ccy, location: location)
    let amount = try Amounts.minor(
      text.utf8.dropFirst(10).substring, currency: ccy, scale: scale,
      separator: UInt8(ascii: ","), separatorRequired: true, trailingSeparator: true,
      location: location)
    return StatementBalance(
      amountMinor: u[0] == UInt8(ascii: "C") ? amount : -amount, currency: ccy,
      dateDays: date)
  }

  /// `:61:` — `YYMMDD[MMDD](C|D|RC|RD)[funds code]amount type customerRef[//bankRef]`; the
  /// continuation line (supplementary details) is not read.
  private func statementLine(_ text: Substring, location: String) throws(StatementError)
    -> StatementLine
  {
    let u = Array(text.utf8)
    func bad(_ what: String) -> StatementError {
      StatementError(
        code: StatementError.malformed, location: location,
        message: ":61: \(what) (expected YYMMDD[MMDD]C|D|RC|RD[funds]amount type ref[//ref])")
    }
    func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    func isUpper(_ c: UInt8) -> Bool { c >= 0x41 && c <= 0x5A }
    guard u.count >= 6, u[0..<6].allSatisfy(isDigit) else { throw bad("has no value date") }
    guard let valueDate = Dates.yymmdd(u[0..<6]) else {
      throw StatementError(
        code: StatementError.badDate, location: location,
        message: "value date \(Text.quoted(text.utf8.prefix(6).substring)) is not a valid "
          + "YYMMDD date")
    }
    var p = 6
    var bookingDate = valueDate
    if u.count >= 10, u[6..<10].allSatisfy(isDigit) {
      guard let d = Dates.mmddNear(u[6..<10], valueDays: valueDate) else {
        throw StatementError(
          code: StatementError.badDate, location: location,
          message: "entry date \(Text.quoted(text.utf8.dropFirst(6).prefix(4).substring)) "
            + "is not a valid MMDD date")
      }
      bookingDate = d
      p = 10
    }
    let mark = u[p...].prefix(2)
    let direction: StatementDirection
    if mark.elementsEqual("RC".utf8) || mark.elementsEqual("RD".utf8) {
      // RC, a reversal of a credit, takes money out; RD, a reversal of a debit, brings it in.
      direction = mark.last == UInt8(ascii: "C") ? .debit : .credit
      p += 2
    } else if mark.first == UInt8(ascii: "C") || mark.first == UInt8(ascii: "D") {
      direction = mark.first == UInt8(ascii: "C") ? .credit : .debit
      p += 1
    } else {
      throw bad("has no debit/credit mark")
    }
    if p < u.count && isUpper(u[p]) { p += 1 }  // funds code (third letter of the currency)
    var q = p
    while q < u.count && (isDigit(u[q]) || u[q] == UInt8(ascii: ",")) { q += 1 }
    let amountText = String(decoding: u[p..<q], as: UTF8.self)
    let amount = try Amounts.minor(
      amountText[...], currency: currency!, scale: scale, separator: UInt8(ascii: ","),
      separatorRequired: true, trailingSeparator: true, location: location)
    try Amounts.requirePositive(amount, location: location)
    guard q + 4 <= u.count, "NFS".utf8.contains(u[q]),
      u[(q + 1)..<(q + 4)].allSatisfy({ isDigit($0) || isUpper($0) })
    else { throw bad("has no transaction type (N, F or S and three characters)") }
    let refs = u[(q + 4)...]
    var customerRef: String?
    var bankRef: String?
    let slash = UInt8(ascii: "/")
    if let r = refs.indices.first(where: {
      $0 + 1 < u.count && u[$0] == slash && u[$0 + 1] == slash
    }) {
      customerRef = Text.value(String(decoding: u[(q + 4)..<r], as: UTF8.self)[...])
      bankRef = Text.value(String(decoding: u[(r + 2)...], as: UTF8.self)[...])
    } else {
      customerRef = Text.value(String(decoding: refs, as: UTF8.self)[...])
    }
    if customerRef == "NONREF" { customerRef = nil }
    return StatementLine(
      index: 0, source: location, amountMinor: amount, currency: currency!,
      direction: direction, bookingDateDays: bookingDate, valueDateDays: valueDate,
      bankReference: bankRef, endToEndId: nil, reference: customerRef ?? bankRef,
      remittance: nil, identity: "")
  }

  private func missing(_ tag: String, before f: MT940Field) -> StatementError {
    StatementError(
      code: StatementError.missingField, location: "line \(f.line)",
      message: "\(tag) is missing before :\(f.tag):")
  }

  private func outOfPlace(_ f: MT940Field) -> StatementError {
    StatementError(
      code: StatementError.malformed, location: "line \(f.line)",
      message: ":\(f.tag): is out of place after :\(lastTagName):")
  }

  private var lastTagName: String {
    switch phase {
    case .start: "(nothing)"
    case .reference: "20"
    case .account: "25"
    case .number: "28C"
    case .opening: "60F"
    case .line: "61"
    case .info: "86"
    case .closed: "62F"
    }
  }
}

extension Substring.UTF8View {
  fileprivate var substring: Substring { Substring(self) }
}
