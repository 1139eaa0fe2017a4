import Testing

@testable import TallyReconcile

/// The header blocks of a wrapped message, up to `{4:` and its line end.
private let wrapped = "{1:F01X}{2:O940X}{4:\n"

/// A plain MT940 message (no block wrapper) with `body` between the opening and closing
/// balances: lines 1–4 are :20:, :25:, :28C:, :60F:, so `body` starts on line 5.
private func mt940(
  _ body: String, opening: String = "C240101EUR100,00", closing: String = "C240131EUR100,00"
) -> String {
  ":20:REF1\n:25:NL91ABNA0417164300\n:28C:7/1\n:60F:\(opening)\n\(body):62F:\(closing)\n"
}

@Suite("MT940 statements")
struct MT940Tests {
  @Test("Plain tag lines, the {4: wrapper and CRLF give the same statement")
  func wrapperAndPlain() throws {
    let body = ":61:2401020102C5,00NTRFR1//B1\n:86:hello\n"
    let plain = try parse(mt940(body), .mt940)
    let dash = try parse(mt940(body) + "-\n", .mt940)
    let wrapped = try parse(
      "{1:F01ABNANL2AAXXX0000000000}{2:O940ABNANL2AXXXXN}{3:{108:MUR1}}{4:\r\n"
        + mt940(body).replacingOccurrences(of: "\n", with: "\r\n") + "-}\r\n{5:{CHK:ABC}}\r\n",
      .mt940)
    let splitHeader = try parse(
      "{1:F01ABNANL2AAXXX0000000000}\n{2:O940ABNANL2AXXXXN}{4:\n" + mt940(body) + "-}", .mt940)
    #expect(plain.lines.map(\.sourceless) == wrapped.lines.map(\.sourceless))
    #expect(plain == dash)
    #expect(try parse(mt940(body) + "\n \n", .mt940) == plain)
    #expect(
      try parse(mt940("\n" + body + "\n"), .mt940).lines.map(\.sourceless)
        == plain.lines.map(\.sourceless))
    #expect(splitHeader.lines.map(\.sourceless) == plain.lines.map(\.sourceless))
    #expect(plain.statementId == "REF1/7/1" && plain.account == "NL91ABNA0417164300")
    #expect(plain.lines[0].source == "line 5" && wrapped.lines[0].source == "line 6")
  }

  @Test(":61: fields: entry date, marks, funds code, references, supplementary details")
  func statementLineFields() throws {
    let s = try parse(
      mt940(
        ":61:240105C1,NMSCNONREF\n"  // no entry date: booked on the value date
          + ":61:2401050104D2,5NTRFCUST//BANK\nsupplementary details\n"
          + ":61:2401050105RC3,00NCHKC3\n"  // reversal of a credit: money out
          + ":61:2401050105RDR4,00FCHK//B4\n"  // reversal of a debit, funds code R
          + ":61:2401050105CR5,01S103 ref with spaces //\n"),
      .mt940)
    let l = s.lines
    #expect(l.map(\.amountMinor) == [100, 250, 300, 400, 501])
    #expect(l.map(\.direction) == [.credit, .debit, .debit, .credit, .credit])
    #expect(l[0].bookingDateDays == day("2024-01-05") && l[0].valueDateDays == day("2024-01-05"))
    #expect(l[1].bookingDateDays == day("2024-01-04"))
    #expect(l.map(\.bankReference) == [nil, "BANK", nil, "B4", nil])
    #expect(l.map(\.reference) == [nil, "CUST", "C3", "B4", "ref with spaces"])
  }

  @Test(
    "The entry date takes the year nearest the value date",
    arguments: [
      ("2312310102", "2024-01-02"), ("2401021231", "2023-12-31"), ("2402290229", "2024-02-29"),
      ("2406300701", "2024-07-01"),
    ])
  func entryDateYear(dates: String, booking: String) throws {
    let s = try parse(mt940(":61:\(dates)C1,00NTRFX\n"), .mt940)
    #expect(s.lines[0].bookingDateDays == day(booking))
  }

  @Test("A multi-line :86: is joined without separators (SWIFT wraps at 65 columns)")
  func multiLineInformation() throws {
    let s = try parse(
      mt940(
        ":61:240102C1,00NTRFX\n:86:Payment for invoice 2024-0117 and 2024-0118, thank you very\n"
          + " much. Order 5\n511\n"),
      .mt940)
    #expect(
      s.lines[0].remittance
        == "Payment for invoice 2024-0117 and 2024-0118, thank you very much. Order 5511")
    #expect(s.lines[0].endToEndId == nil)
  }

  @Test(
    ":86: with SEPA keywords or ?-subfields gives the end-to-end id and the SVWZ+ text",
    arguments: [
      ("EREF+E2E-1 SVWZ+Rent March", "E2E-1", "Rent March"),
      (
        "EREF+E2E-1\nKREF+K1 MREF+M1 CRED+DE98ZZZ SVWZ+Rent\n March ABWA+Someone", "E2E-1",
        "Rent March"
      ),
      ("EREF+NOTPROVIDED SVWZ+x", nil, "x"),
      ("Free text EREF+E7", "E7", "Free text"),
      ("EREF+E8", "E8", nil),
      (
        "166?00GUTSCHRIFT?109310?20EREF+E2E-9?21SVWZ+Invoice 1?22001?30BANKDEFF?31DE1\n"
          + "23?32Payer Name", "E2E-9", "Invoice 1001"
      ),
      ("?20EREF+A?21B?22SVWZ+x?60y", "AB", "xy"),
      ("835?00Some booking?20Plain purpose?21text", nil, "Plain purposetext"),
      ("Just text? 20 is not a subfield", nil, "Just text? 20 is not a subfield"),
    ] as [(String, String?, String?)])
  func structuredInformation(info: String, e2e: String?, remittance: String?) throws {
    let s = try parse(mt940(":61:240102C1,00NTRFX\n:86:\(info)\n"), .mt940)
    #expect(s.lines[0].endToEndId == e2e)
    #expect(s.lines[0].remittance == remittance)
  }

  @Test("Statement-level :86:, :64:, :65:, :21:, :28: and :60M:/:62M: are accepted")
  func optionalTags() throws {
    let s = try parse(
      ":20:R\n:21:REL\n:25:ACC 1\n:28:5\n:60M:D240101EUR1,00\n:86:statement info\n"
        + ":61:240102C2,00NTRFX\n:62M:C240102EUR1,00\n:64:C240102EUR1,00\n"
        + ":65:C240103EUR1,00\n:65:C240104EUR1,00\n:86:more info\n", .mt940)
    #expect(s.statementId == "R/5" && s.account == "ACC 1")
    #expect(
      s.opening == StatementBalance(amountMinor: -100, currency: "EUR", dateDays: day("2024-01-01"))
    )
    #expect(s.closing?.amountMinor == 100)
    #expect(s.lines.count == 1 && s.lines[0].remittance == nil)
  }

  @Test("A statement with no lines and a JPY amount without decimals")
  func noLinesAndScaleZero() throws {
    let s = try parse(":20:R\n:25:A\n:60F:C240101JPY1000,\n:62F:C240101JPY1000,\n", .mt940)
    #expect(s.lines.isEmpty && s.currency == "JPY" && s.opening?.amountMinor == 1000)
  }

  // MARK: - Errors, one or more per code, with their locations

  @Test(
    "MALFORMED names the tag's line",
    arguments: [
      (mt940(":61:240102X1,00NTRFX\n"), "line 5"),  // no D/C mark
      (mt940(":61:240102C1,00XTRFX\n"), "line 5"),  // bad transaction type
      (mt940(":61:2401\n"), "line 5"),  // no value date
      (mt940(":61:240102C1,00NTRFX\n:86:a\n:86:b\n"), "line 7"),  // second :86:
      (mt940(":25:X\n"), "line 5"),  // tag out of place
      ("hello\n" + mt940(""), "line 1"),  // not a tag
      ("{1:F01X}{2:O940X}{4::20:R\n:25:A\n:60F:C240101EUR1,00\n:62F:C240101EUR1,00\n", "line 1"),
      ("{1:F01X{2:O940X}{4:\n" + mt940(""), "line 1"),  // block not closed
      (mt940("") + "trailing text\n", "line 6"),
      (mt940(":61:240102C1,00NTRFX\nsupplementary\nmore\n"), "line 7"),
      (":20:R\ncontinued\n:25:A\n:60F:C240101EUR1,00\n:62F:C240101EUR1,00\n", "line 2"),
      (":20:R\n:25:A\n:60F:X240101EUR1,00\n", "line 3"),  // balance mark
    ])
  func malformed(text: String, location: String) {
    expectError(text, .mt940, StatementError.malformed, location)
  }

  @Test("MALFORMED: bad UTF-8 names its line when UTF-8 is asked for")
  func badUTF8() throws {
    let bytes =
      Array(":20:R\n:25:A\n:60F:C240101EUR1,00\n:61:240102C1,00NTRFX\n:86:caf".utf8)
      + [0xE9, 0x0A] + Array(":62F:C240131EUR2,00\n".utf8)
    #expect(
      throws: StatementError(
        code: StatementError.malformed, location: "line 5",
        message: "the input is not valid UTF-8")
    ) {
      try StatementParser.parse(bytes, format: .mt940, encoding: .utf8, scale: testScale)
    }
    // Without a choice the same bytes are Windows-1252 text.
    let s = try StatementParser.parse(bytes, format: .mt940, scale: testScale)
    #expect(s.textEncoding == .windows1252 && s.lines[0].remittance == "café")
  }

  @Test(
    "BAD_AMOUNT: a decimal point, too many decimals, zero, no comma",
    arguments: [
      (mt940(":61:240102C1.00NTRFX\n"), "line 5"), (mt940(":61:240102C1,001NTRFX\n"), "line 5"),
      (mt940(":61:240102C0,00NTRFX\n"), "line 5"), (mt940(":61:240102C100NTRFX\n"), "line 5"),
      (mt940(":61:240102C,50NTRFX\n"), "line 5"), (mt940("", opening: "C240101EUR1,2,3"), "line 4"),
      (mt940("", closing: "C240131EUR1"), "line 5"),
    ])
  func badAmount(text: String, location: String) {
    expectError(text, .mt940, StatementError.badAmount, location)
  }

  @Test(
    "BAD_DATE: impossible value, entry or balance dates",
    arguments: [
      (mt940(":61:240230C1,00NTRFX\n"), "line 5"), (mt940(":61:2401021332C1,00NTRFX\n"), "line 5"),
      (mt940("", opening: "C241301EUR1,00"), "line 4"),
      (mt940("", closing: "C230229EUR1,00"), "line 5"),
    ])
  func badDate(text: String, location: String) {
    expectError(text, .mt940, StatementError.badDate, location)
  }

  @Test("BAD_CURRENCY: an unknown balance currency")
  func badCurrency() {
    expectError(mt940("", opening: "C240101XYZ1,00"), .mt940, StatementError.badCurrency, "line 4")
  }

  @Test("CURRENCY_MISMATCH: a closing balance in another currency")
  func currencyMismatch() {
    expectError(
      mt940(":61:240102C1,00NTRFX\n", closing: "C240131USD1,00"), .mt940,
      StatementError.currencyMismatch, "line 6")
  }

  @Test(
    "MISSING_FIELD: :20:, :25: or the opening balance absent",
    arguments: [
      (":25:A\n:60F:C240101EUR1,00\n:62F:C240101EUR1,00\n", "line 1"),
      (":20:R\n:60F:C240101EUR1,00\n:62F:C240101EUR1,00\n", "line 2"),
      (":20:R\n:25:A\n:28C:1\n:61:240102C1,00NTRFX\n:62F:C240101EUR1,00\n", "line 4"),
      (":20:R\n:25:A\n:62F:C240101EUR1,00\n", "line 3"),
    ])
  func missingField(text: String, location: String) {
    expectError(text, .mt940, StatementError.missingField, location)
  }

  @Test(
    "TRUNCATED: no closing balance, a wrapper without -}, only a header, empty",
    arguments: [
      (":20:R\n:25:A\n:60F:C240101EUR1,00\n:61:240102C1,00NTRFX\n:86:x\n", "line 5"),
      (":20:R\n:25:A\n:60F:C240101EUR1,00\n-\n", "line 4"),
      ("{1:F01X}{2:O940X}{4:\n" + mt940(""), "line 6"),
      ("{1:F01X}{2:O940X}{4:\n:20:R\n:25:A\n:60F:C240101EUR1,00\n-}\n", "line 5"),
      ("{1:F01X}{2:O940X}\n", "line 1"),
      ("\r\n", "line 1"),
      // A second message that ends early.
      ("{1:F01X}{2:O940X}{4:\n" + mt940("") + "-}\n{1:F01X}{2:O940X}{4:\n", "line 8"),
      (mt940("") + ":20:S\n:25:A\n", "line 7"),
    ])
  func truncated(text: String, location: String) {
    expectError(text, .mt940, StatementError.truncated, location)
  }

  @Test(
    "UNSUPPORTED: a second message where one is asked for, another type, others' tags",
    arguments: [
      (mt940("") + mt940(""), "line 6"),
      (mt940("") + "-\n" + mt940(""), "line 7"),
      (wrapped + mt940("") + "-}\n" + wrapped + mt940("") + "-}\n", "line 8"),
      ("{1:F01X}{2:O942X}{4:\n" + mt940("") + "-}\n", "line 1"),
      (":20:R\n:25:A\n:28C:1\n:34F:EUR0,\n:13D:2401021200+0100\n", "line 4"),
    ])
  func unsupported(text: String, location: String) {
    expectError(text, .mt940, StatementError.unsupported, location)
  }
}
