import Testing

@testable import TallyReconcile

// Files of several statements (Fixtures/multi.*, notification.camt054.xml, foreign.csv): two
// days of a EUR account and a day of a USD account in MT940 (Windows-1252 narrative); two
// days in camt.053 with an entry booked in USD; two camt.054 notifications of two accounts.

private let eurAccount = "DE89370400440532013000"
private let usdAccount = "DE44500105175407324931"

@Suite("Several statements in one input, character sets, lines in another currency")
struct MultiStatementTests {
  @Test("MT940: each message is a statement, in order, with its own id, balances and lines")
  func mt940Messages() throws {
    let all = try StatementParser.parseAll(
      fixture("multi.mt940"), format: .mt940, scale: testScale)
    #expect(
      all.map(\.statementId) == ["DAY-0311/00011/001", "DAY-0312/00012/001", "USD-0312/00003/001"])
    #expect(all.map(\.account) == [eurAccount, eurAccount, usdAccount])
    #expect(all.map(\.currency) == ["EUR", "EUR", "USD"])
    #expect(all.map(\.source) == ["line 1", "line 12", "line 21"])
    #expect(all.map { $0.lines.map(\.index) } == [[1, 2], [1], [1]])
    #expect(
      all.map { $0.lines.map(\.source) } == [["line 6", "line 8"], ["line 17"], ["line 25"]])
    #expect(all[0].opening?.amountMinor == 100_000 && all[0].closing?.amountMinor == 113_750)
    #expect(all[1].opening?.amountMinor == 113_750 && all[1].closing?.amountMinor == 110_000)
    #expect(
      all[2].opening
        == StatementBalance(amountMinor: 50_000, currency: "USD", dateDays: day("2024-03-11")))
    #expect(all.allSatisfy { $0.continuityDifference() == nil })
    #expect(
      all[2].lines[0].identity == "\(usdAccount)|BU0001||2024-03-12|2024-03-12|credit|2000|USD|1")
    // Asked for one statement, the second is refused where it starts.
    #expect(
      throws: StatementError(
        code: StatementError.unsupported, location: "line 12",
        message: "a second statement; this import takes one statement per input (import a "
          + "file of several statements from a data directory, or split it)")
    ) { try StatementParser.parse(fixture("multi.mt940"), format: .mt940, scale: testScale) }
  }

  @Test("MT940 not in UTF-8 is read as Windows-1252; amounts, dates and references exact")
  func windows1252Narrative() throws {
    let bytes = fixture("multi.mt940")
    #expect(UTF8Check.firstInvalidLine(bytes) == 7)
    let auto = try StatementParser.parseAll(bytes, format: .mt940, scale: testScale)
    #expect(auto.allSatisfy { $0.textEncoding == .windows1252 })
    #expect(auto[0].lines[0].remittance == "Miete März Straße 5")
    #expect(auto[0].lines[1].remittance == "Gebühr € 12,50 “Kontoführung”")
    #expect(auto[0].lines[0].endToEndId == "E2E-2001")
    #expect(auto[0].lines[0].reference == "INV-2001")
    #expect(auto[0].lines[0].bankReference == "BR2001")
    #expect(auto[0].lines[1].amountMinor == 1_250)
    // ISO-8859-1 reads the same letters; 0x80…0x9F are control characters there.
    let latin1 = try StatementParser.parseAll(
      bytes, format: .mt940, encoding: .iso88591, scale: testScale)
    #expect(latin1.allSatisfy { $0.textEncoding == .iso88591 })
    #expect(latin1[0].lines[0].remittance == "Miete März Straße 5")
    #expect(latin1[0].lines[1].remittance == "Gebühr \u{80} 12,50 \u{93}Kontoführung\u{94}")
    // The same file converted to UTF-8 gives the same lines: only the text encoding differs.
    let utf8 = Array(
      String(decoding: TextDecoding.transcode(bytes, .windows1252), as: UTF8.self).utf8)
    let again = try StatementParser.parseAll(utf8, format: .mt940, scale: testScale)
    #expect(again.allSatisfy { $0.textEncoding == .utf8 })
    #expect(again.map(\.lines) == auto.map(\.lines))
    // Asked for UTF-8, the narrative byte is refused where it is.
    #expect(
      throws: StatementError(
        code: StatementError.malformed, location: "line 7",
        message: "the input is not valid UTF-8")
    ) { try StatementParser.parseAll(bytes, format: .mt940, encoding: .utf8, scale: testScale) }
  }

  @Test("Windows-1252 maps 0x80…0x9F to its characters and its five holes to U+0081 …")
  func windows1252Table() {
    let all = (0x80...0xFF).map { UInt8($0) }
    let text = String(decoding: TextDecoding.transcode(all, .windows1252), as: UTF8.self)
    let scalars = text.unicodeScalars.map(\.value)
    #expect(scalars.count == 128)
    #expect(scalars[0] == 0x20AC && scalars[0x1F] == 0x0178 && scalars[0x20] == 0xA0)
    #expect([0x81, 0x8D, 0x8F, 0x90, 0x9D].allSatisfy { scalars[$0 - 0x80] == UInt32($0) })
    let latin1 = String(decoding: TextDecoding.transcode(all, .iso88591), as: UTF8.self)
    #expect(latin1.unicodeScalars.map(\.value) == (0x80...0xFF).map { UInt32($0) })
  }

  @Test("camt.053: each Stmt is a statement; an entry in USD is a line in USD")
  func camtStatements() throws {
    let all = try StatementParser.parseAll(
      fixture("multi.camt053.xml"), format: .camt053, scale: testScale)
    #expect(all.map(\.statementId) == ["DAY-0311", "DAY-0312"])
    #expect(all.map(\.source) == ["Stmt", "Stmt[2]"])
    #expect(all[1].lines.map(\.source) == ["Stmt[2]/Ntry[1]", "Stmt[2]/Ntry[2]"])
    #expect(all.allSatisfy { $0.currency == "EUR" && $0.textEncoding == .utf8 })
    let fx = all[1].lines[1]
    #expect(fx.currency == "USD" && fx.amountMinor == 2_500 && fx.direction == .debit)
    #expect(fx.identity == "\(eurAccount)|BR2004|E2E-FX-1|2024-03-12|2024-03-12|debit|2500|USD|1")
    #expect(all[1].foreignCurrencyLines == 1)
    // The USD line is left out of the continuity sum: the EUR lines lead to the closing.
    #expect(all[1].continuityDifference() == nil)
    #expect(all[0].lines[0].remittance == "Miete März Straße 5")
  }

  @Test("camt.053: an error in the second Stmt names it")
  func camtErrorInSecondStatement() {
    let text = String(decoding: fixture("multi.camt053.xml"), as: UTF8.self)
      .replacingOccurrences(
        of: "<Amt Ccy=\"EUR\">37.50</Amt>", with: "<Amt Ccy=\"EUR\">37.5x</Amt>")
    expectError(text, .camt053, StatementError.badAmount, "Stmt[2]/Ntry[1]/Amt")
    let balance = String(decoding: fixture("multi.camt053.xml"), as: UTF8.self)
      .replacingOccurrences(
        of: "<Amt Ccy=\"EUR\">1100.00</Amt>", with: "<Amt Ccy=\"CHF\">1100.00</Amt>")
    expectError(balance, .camt053, StatementError.currencyMismatch, "Stmt[2]/Bal[2]/Amt")
  }

  @Test("camt.054: each Ntfctn is a statement without balances")
  func camt054Notifications() throws {
    let all = try StatementParser.parseAll(
      fixture("notification.camt054.xml"), format: .camt054, scale: testScale)
    #expect(all.map(\.format) == [.camt054, .camt054])
    #expect(all.map(\.statementId) == ["NTF-0312-1", "NTF-0312-2"])
    #expect(all.map(\.account) == [eurAccount, usdAccount])
    #expect(all.map(\.source) == ["Ntfctn", "Ntfctn[2]"])
    #expect(all.allSatisfy { $0.opening == nil && $0.closing == nil })
    #expect(all[0].lines.map(\.currency) == ["EUR", "USD"])
    #expect(all[0].lines.map(\.source) == ["Ntfctn/Ntry[1]", "Ntfctn/Ntry[2]"])
    // The same line as in the camt.053 statement has the same identity.
    let stmt = try StatementParser.parseAll(
      fixture("multi.camt053.xml"), format: .camt053, scale: testScale)
    #expect(all[0].lines[0].identity == stmt[0].lines[0].identity)
    #expect(all[0].lines[1].identity == stmt[1].lines[1].identity)
  }

  @Test(
    "camt.054 and camt.053 are told apart; camt is UTF-8 only",
    arguments: [
      ("notification.camt054.xml", StatementFormat.camt053, "Document"),
      ("multi.camt053.xml", StatementFormat.camt054, "Document"),
    ])
  func camtMessagesDiffer(file: String, format: StatementFormat, location: String) {
    expectError(fixture(file), format, StatementError.unsupported, location)
  }

  @Test("camt with another encoding asked for is UNSUPPORTED at input")
  func camtEncoding() {
    #expect(
      throws: StatementError(
        code: StatementError.unsupported, location: "input",
        message: "camt documents are read as UTF-8 (their XML declaration names the "
          + "encoding); iso-8859-1 is not accepted")
    ) {
      try StatementParser.parseAll(
        fixture("multi.camt053.xml"), format: .camt053, encoding: .iso88591, scale: testScale)
    }
  }

  @Test("camt.054 without Ntfctn is MISSING_FIELD")
  func camt054Empty() {
    let text = """
      <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.054.001.02">
      <BkToCstmrDbtCdtNtfctn><GrpHdr><MsgId>M</MsgId></GrpHdr></BkToCstmrDbtCdtNtfctn>
      </Document>
      """
    expectError(text, .camt054, StatementError.missingField, "BkToCstmrDbtCdtNtfctn")
  }

  @Test("statementsMax and linesMax count the whole input, at max and max + 1")
  func limitsOverTheInput() throws {
    let bytes = fixture("multi.mt940")
    var limits = StatementParser.Limits()
    limits.statementsMax = 3
    limits.linesMax = 4
    let all = try StatementParser.parseAll(
      bytes, format: .mt940, scale: testScale, limits: limits)
    #expect(all.count == 3)
    limits.statementsMax = 2
    expectError(bytes, .mt940, StatementError.tooLarge, "line 21", limits: limits)
    limits.statementsMax = 3
    limits.linesMax = 3
    expectError(bytes, .mt940, StatementError.tooLarge, "line 25", limits: limits)
  }

  @Test("The CSV of the same lines: the USD record is a line in USD")
  func csvForeignLine() throws {
    let s = try StatementParser.parse(fixture("foreign.csv"), format: .csv, scale: testScale)
    let camt = try StatementParser.parseAll(
      fixture("multi.camt053.xml"), format: .camt053, scale: testScale)
    #expect(s.currency == "EUR" && s.foreignCurrencyLines == 1)
    #expect(s.lines.map(\.identity) == camt.flatMap { $0.lines.map(\.identity) })
  }
}
