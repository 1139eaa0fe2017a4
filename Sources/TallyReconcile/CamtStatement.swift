import TallyCore

/// camt.053 (ISO 20022 BankToCustomerStatement) and camt.054 (BankToCustomerDebitCredit-
/// Notification), versions 02 to 13: the elements read and how they map are listed in
/// docs/RECONCILIATION.md. Each `Stmt` (camt.053) or `Ntfctn` (camt.054) is a statement.
enum CamtStatement {
  static func parse(
    _ bytes: ArraySlice<UInt8>, message: CamtMessage, currencies: Currencies,
    sink: inout LineSink
  ) throws(StatementError) -> [Statement] {
    try CamtReader.read(bytes, message: message, currencies: currencies, sink: &sink)
  }
}

/// The two camt messages read, and the names that differ between them.
enum CamtMessage {
  case statement, notification

  var format: StatementFormat { self == .statement ? .camt053 : .camt054 }
  /// `camt.053` or `camt.054`.
  var name: String { self == .statement ? "camt.053" : "camt.054" }
  /// The document's child: `BkToCstmrStmt`, `BkToCstmrDbtCdtNtfctn`.
  var body: String { self == .statement ? "BkToCstmrStmt" : "BkToCstmrDbtCdtNtfctn" }
  /// The repeated element that is one statement: `Stmt`, `Ntfctn`.
  var item: String { self == .statement ? "Stmt" : "Ntfctn" }
}

/// Builds one statement from the children of its `Stmt` (or `Ntfctn`), in document order.
struct CamtBuilder {
  let currencies: Currencies
  let message: CamtMessage
  /// The statement's path in messages: `Stmt` for the first, `Stmt[2]` for the second, …
  let root: String
  var sink: LineSink
  var statementId: String?
  var account: String?
  /// The statement's currency: `Acct/Ccy`, else the first balance's, else the first entry's.
  var currency: String?
  var opening: StatementBalance?
  var openingIsPRCD = false
  var closing: StatementBalance?

  init(currencies: Currencies, message: CamtMessage, root: String, sink: LineSink) {
    self.currencies = currencies
    self.message = message
    self.root = root
    self.sink = sink
  }

  mutating func stmtChild(_ node: XMLNode, index: Int) throws(StatementError) {
    switch node.name {
    case "Id": statementId = node.value
    case "Acct": try readAccount(node)
    case "Bal": try readBalance(node, path: "\(root)/Bal[\(index)]")
    case "Ntry": try readEntry(node, path: "\(root)/Ntry[\(index)]")
    default: break
    }
  }

  func finish() throws(StatementError) -> Statement {
    guard let currency else {
      throw StatementError(
        code: StatementError.missingField, location: "\(root)/Acct/Ccy",
        message: "the statement names no currency (no Acct/Ccy, balance or entry)")
    }
    return Statement(
      format: message.format, source: root, account: account, statementId: statementId,
      currency: currency, opening: opening, closing: closing, lines: sink.lines)
  }

  // MARK: - Account and balances

  private mutating func readAccount(_ node: XMLNode) throws(StatementError) {
    account = node.at("Id", "IBAN")?.value ?? node.at("Id", "Othr", "Id")?.value
    if let ccy = node.child("Ccy")?.value {
      let location = "\(root)/Acct/Ccy"
      _ = try currencies.scaleOf(ccy, location: location)
      try useCurrency(ccy, location: location)
    }
  }

  /// Fixes the statement's currency on first use, then requires every later one to match.
  private mutating func useCurrency(_ code: String, location: String) throws(StatementError) {
    if let currency {
      try Currencies.require(code, is: currency, location: location)
    } else {
      currency = code
    }
  }

  private mutating func readBalance(_ node: XMLNode, path: String) throws(StatementError) {
    let type = node.at("Tp", "CdOrPrtry", "Cd")?.value
    guard let type, type == "OPBD" || type == "PRCD" || type == "CLBD" else { return }
    let (ccy, scale, amountText) = try amount(node, path: path)
    let amount = try Amounts.minor(
      amountText[...], currency: ccy, scale: scale, separator: UInt8(ascii: "."),
      location: "\(path)/Amt")
    let direction = try creditDebit(node, path: path)
    guard let dt = node.child("Dt") else {
      throw missing("\(path)/Dt", "the balance has no date")
    }
    let date = try date(dt, path: "\(path)/Dt")
    let balance = StatementBalance(
      amountMinor: direction == .credit ? amount : -amount, currency: ccy, dateDays: date)
    switch type {
    case "CLBD":
      if closing != nil { throw repeated(path, "a second CLBD balance") }
      closing = balance
    case "OPBD":
      if opening != nil && !openingIsPRCD { throw repeated(path, "a second OPBD balance") }
      (opening, openingIsPRCD) = (balance, false)
    default:  // PRCD: the opening balance when there is no OPBD.
      if opening == nil { (opening, openingIsPRCD) = (balance, true) }
    }
  }

  // MARK: - Entries

  private mutating func readEntry(_ node: XMLNode, path: String) throws(StatementError) {
    // An entry may be booked in another currency than the statement's: it is a line in its
    // own currency (the import does not match it; see docs/RECONCILIATION.md).
    let (ccy, scale, amountText) = try amount(node, path: path, foreignAllowed: true)
    let amount = try Amounts.minor(
      amountText[...], currency: ccy, scale: scale, separator: UInt8(ascii: "."),
      location: "\(path)/Amt")
    try Amounts.requirePositive(amount, location: "\(path)/Amt")
    let direction = try creditDebit(node, path: path)
    // RvslInd is checked but does not change the direction: ISO 20022 defines CdtDbtInd as
    // the direction of the reversal entry itself (see docs/RECONCILIATION.md).
    if let r = try only(node, "RvslInd", path)?.value,
      !["true", "false", "1", "0"].contains(r)
    {
      throw malformed("\(path)/RvslInd", "RvslInd \(Text.quoted(r[...])) is not true or false")
    }
    if let sts = try only(node, "Sts", path) {
      let code = sts.child("Cd")?.value ?? sts.child("Prtry")?.value ?? sts.value
      if code != "BOOK" {
        throw StatementError(
          code: StatementError.unsupported, location: "\(path)/Sts",
          message: "entry status \(code ?? "(empty)") is not BOOK; only booked entries "
            + "are accepted")
      }
    }
    guard let bookingNode = try only(node, "BookgDt", path) else {
      throw missing("\(path)/BookgDt", "the entry has no booking date")
    }
    let booking = try date(bookingNode, path: "\(path)/BookgDt")
    var valueDate: Int32?
    if let v = try only(node, "ValDt", path) {
      valueDate = try date(v, path: "\(path)/ValDt")
    }
    let entryRef = try only(node, "AcctSvcrRef", path)?.value

    let txs = node.children("NtryDtls").flatMap { $0.children("TxDtls") }
    if txs.count <= 1 {
      let tx = txs.first
      let bankRef = entryRef ?? tx?.at("Refs", "AcctSvcrRef")?.value
      try sink.append(
        line(
          path, amount, ccy, direction, booking, valueDate, bankRef: bankRef,
          tx: tx))
      return
    }
    // A batched entry: one line per transaction, each with its own amount.
    var lines = [StatementLine]()
    var sum: Int128 = 0
    for (k, tx) in txs.enumerated() {
      let txPath = "\(path)/NtryDtls/TxDtls[\(k + 1)]"
      let amountPath: String
      let amountNode: XMLNode
      if let a = tx.at("AmtDtls", "TxAmt", "Amt") {
        (amountPath, amountNode) = ("\(txPath)/AmtDtls/TxAmt/Amt", a)
      } else if let a = tx.child("Amt") {
        (amountPath, amountNode) = ("\(txPath)/Amt", a)
      } else {
        throw missing(
          "\(txPath)/AmtDtls/TxAmt/Amt", "a transaction of a batched entry has no amount")
      }
      guard let txCcy = amountNode.attributes["Ccy"] else {
        throw missing(amountPath, "the amount has no Ccy attribute")
      }
      _ = try currencies.scaleOf(txCcy, location: amountPath)
      try Currencies.require(txCcy, is: ccy, location: amountPath)
      let txAmount = try Amounts.minor(
        (amountNode.value ?? "")[...], currency: ccy, scale: scale,
        separator: UInt8(ascii: "."), location: amountPath)
      try Amounts.requirePositive(txAmount, location: amountPath)
      if let d = tx.child("CdtDbtInd")?.value, d != (direction == .credit ? "CRDT" : "DBIT") {
        throw StatementError(
          code: StatementError.unsupported, location: "\(txPath)/CdtDbtInd",
          message: "a transaction against its entry's direction (mixed batches are not "
            + "supported)")
      }
      let (s, overflow) = sum.addingReportingOverflow(txAmount)
      if overflow {
        throw StatementError(
          code: StatementError.badAmount, location: amountPath,
          message: "the batch's amounts overflow")
      }
      sum = s
      let bankRef = tx.at("Refs", "AcctSvcrRef")?.value ?? entryRef
      lines.append(
        line(txPath, txAmount, ccy, direction, booking, valueDate, bankRef: bankRef, tx: tx))
    }
    if sum != amount {
      throw malformed(
        path,
        "the entry's amount \(amountText) differs from the sum of its \(txs.count) "
          + "transactions (\(Amount.formatDecimal(sum, scale: UInt8(scale))))")
    }
    for l in lines { try sink.append(l) }
  }

  private func line(
    _ source: String, _ amount: Int128, _ ccy: String, _ direction: StatementDirection,
    _ booking: Int32, _ valueDate: Int32?, bankRef: String?, tx: XMLNode?
  ) -> StatementLine {
    let ustrd = tx?.child("RmtInf")?.children("Ustrd").compactMap(\.value) ?? []
    return StatementLine(
      index: 0, source: source, amountMinor: amount, currency: ccy, direction: direction,
      bookingDateDays: booking, valueDateDays: valueDate, bankReference: bankRef,
      endToEndId: tx?.at("Refs", "EndToEndId")?.value.flatMap(EndToEnd.provided),
      reference: tx?.at("Refs", "InstrId")?.value ?? bankRef,
      remittance: ustrd.isEmpty ? nil : ustrd.joined(separator: " "), identity: "")
  }

  // MARK: - Fields

  /// `Amt` with its `Ccy`: the currency (known, and the statement's unless
  /// `foreignAllowed`), its scale, the text.
  private mutating func amount(_ node: XMLNode, path: String, foreignAllowed: Bool = false)
    throws(StatementError) -> (String, Int, String)
  {
    let location = "\(path)/Amt"
    guard let amt = try only(node, "Amt", path) else {
      throw missing(location, "no Amt")
    }
    guard let ccy = amt.attributes["Ccy"] else {
      throw missing(location, "the amount has no Ccy attribute")
    }
    let scale = try currencies.scaleOf(ccy, location: location)
    if !foreignAllowed || currency == nil { try useCurrency(ccy, location: location) }
    return (ccy, scale, amt.value ?? "")
  }

  private func creditDebit(_ node: XMLNode, path: String) throws(StatementError)
    -> StatementDirection
  {
    guard let v = try only(node, "CdtDbtInd", path)?.value else {
      throw missing("\(path)/CdtDbtInd", "no credit/debit indicator")
    }
    switch v {
    case "CRDT": return .credit
    case "DBIT": return .debit
    default:
      throw malformed("\(path)/CdtDbtInd", "CdtDbtInd \(Text.quoted(v[...])) is not CRDT or DBIT")
    }
  }

  /// `Dt` (`YYYY-MM-DD`) or `DtTm` (the date part as printed) inside `node`.
  private func date(_ node: XMLNode, path: String) throws(StatementError) -> Int32 {
    if let dt = node.child("Dt") {
      guard let text = dt.value, let d = Dates.iso(text[...]) else {
        throw StatementError(
          code: StatementError.badDate, location: "\(path)/Dt",
          message: "\(Text.quoted((dt.value ?? "")[...])) is not a valid YYYY-MM-DD date")
      }
      return d
    }
    if let dtTm = node.child("DtTm") {
      guard let text = dtTm.value, let d = Dates.isoDateOrDateTime(text[...]) else {
        throw StatementError(
          code: StatementError.badDate, location: "\(path)/DtTm",
          message: "\(Text.quoted((dtTm.value ?? "")[...])) is not a valid ISO date-time")
      }
      return d
    }
    throw missing("\(path)/Dt", "neither Dt nor DtTm")
  }

  /// The child `name` of `node`, refusing repeats of elements that occur once.
  private func only(_ node: XMLNode, _ name: String, _ path: String) throws(StatementError)
    -> XMLNode?
  {
    let all = node.children(name)
    if all.count > 1 { throw repeated("\(path)/\(name)", "\(name) occurs \(all.count) times") }
    return all.first
  }

  private func missing(_ location: String, _ message: String) -> StatementError {
    StatementError(code: StatementError.missingField, location: location, message: message)
  }
  private func malformed(_ location: String, _ message: String) -> StatementError {
    StatementError(code: StatementError.malformed, location: location, message: message)
  }
  private func repeated(_ location: String, _ message: String) -> StatementError {
    malformed(location, message)
  }
}
