import Testing

@testable import TallyReconcile

private let header = "booking_date,amount,currency,bank_ref,description\n"

@Suite("CSV statements")
struct CSVTests {
  @Test("A BOM and CRLF line ends parse like plain LF")
  func bomAndCRLF() throws {
    let lf = header + "2024-01-02,10.50,EUR,R1,rent\n2024-01-03,-2.00,EUR,R2,fee\n"
    let crlf = lf.replacingOccurrences(of: "\n", with: "\r\n")
    let plain = try parse(lf, .csv)
    let bom = try StatementParser.parse(
      [0xEF, 0xBB, 0xBF] + Array(crlf.utf8), format: .csv, scale: testScale)
    #expect(plain == bom)
    #expect(plain.lines.map(\.amountMinor) == [1050, 200])
    #expect(plain.lines.map(\.direction) == [.credit, .debit])
    #expect(plain.lines.map(\.source) == ["line 2", "line 3"])
  }

  @Test("Quoted fields hold commas, doubled quotes and line breaks; lines are counted")
  func quoting() throws {
    let text =
      header
      + "2024-01-02,1.00,EUR,\"R,1\",\"say \"\"hi\"\", then\nleave\"\n"
      + "\"2024-01-03\",\"2.00\",EUR,,\"two\r\nlines\"\r\n"
      + "2024-01-04,3.00,EUR,R3,\"\"\n"
    let s = try parse(text, .csv)
    #expect(s.lines.map(\.bankReference) == ["R,1", nil, "R3"])
    #expect(s.lines.map(\.remittance) == ["say \"hi\", then\nleave", "two\nlines", nil])
    #expect(s.lines.map(\.source) == ["line 2", "line 4", "line 6"])
    // An error after a multi-line record names the physical line of its record.
    expectError(
      header + "2024-01-02,1.00,EUR,R1,\"a\nb\"\n2024-01-03,x,EUR,R2,c\n", .csv,
      StatementError.badAmount, "line 4")
  }

  @Test("Header names: case, spaces, aliases, unknown columns, any order")
  func headerAliases() throws {
    let text =
      "Category, CCY ,Amt,Booking Date,Value-Date,Remittance,E2E,Ref,Bank Reference,IBAN\n"
      + "x,eur,12.34,2024-05-06,2024-05-07,hello,E1,C1,B1,DE89 3704\n"
    let s = try parse(text, .csv)
    let l = try #require(s.lines.first)
    #expect(l.currency == "EUR")
    #expect(l.amountMinor == 1234)
    #expect(l.bookingDateDays == day("2024-05-06"))
    #expect(l.valueDateDays == day("2024-05-07"))
    #expect(l.remittance == "hello")
    #expect(l.endToEndId == "E1")
    #expect(l.reference == "C1")
    #expect(l.bankReference == "B1")
    #expect(s.account == "DE89 3704")
    // The identity normalises the account: spaces removed, letters upper-cased.
    #expect(l.identity == "DE893704|B1|E1|2024-05-06|2024-05-07|credit|1234|EUR|1")
  }

  @Test(
    "A direction column takes credit/debit/C/D/CRDT/DBIT/CR/DR in any case",
    arguments: [
      ("credit", StatementDirection.credit), ("DEBIT", .debit), ("c", .credit), ("D", .debit),
      ("CRDT", .credit), ("dbit", .debit), ("Cr", .credit), ("DR", .debit),
    ])
  func directionColumn(value: String, direction: StatementDirection) throws {
    let s = try parse("date,amount,ccy,direction\n2024-01-02,5.00,EUR,\(value)\n", .csv)
    #expect(s.lines[0].direction == direction)
    #expect(s.lines[0].amountMinor == 500)
  }

  @Test("Optional values: empty cells are absent; reference falls back to bank_ref")
  func optionalValues() throws {
    let s = try parse(
      "booking_date,value_date,amount,currency,bank_ref,reference,end_to_end_id\n"
        + "2024-01-02,,1,JPY,B1,,NOTPROVIDED\n2024-01-02, ,+7,JPY,,C2,\n", .csv)
    #expect(s.lines[0].valueDateDays == nil)
    #expect(s.lines[0].reference == "B1")
    #expect(s.lines[0].endToEndId == nil)
    #expect(s.lines[1].reference == "C2")
    #expect(s.lines[1].bankReference == nil)
    #expect(s.lines.map(\.amountMinor) == [1, 7])
    #expect(s.account == nil)
  }

  @Test("Empty lines at the end are ignored; dates may carry a time")
  func trailingEmptyLinesAndDateTimes() throws {
    let s = try parse(
      "date,amount,currency\n2024-01-02T10:11:12Z,1.00,EUR\n2024-01-03 23:59:59,2.00,EUR\n"
        + "\n \n\r\n", .csv)
    #expect(s.lines.map(\.bookingDateDays) == [day("2024-01-02"), day("2024-01-03")])
  }

  @Test("A declared asset's scale comes from the scale function")
  func declaredAsset() throws {
    let s = try parse("date,amount,currency\n2024-01-02,15,PTS\n", .csv)
    #expect(s.currency == "PTS" && s.lines[0].amountMinor == 15)
    expectError("date,amount,currency\n2024-01-02,1.5,PTS\n", .csv, "BAD_AMOUNT", "line 2")
  }

  // MARK: - Errors, one or more per code, with their locations

  @Test(
    "MALFORMED names the record's line",
    arguments: [
      (header + "2024-01-02,1.00,EUR,R\"1,x\n", "line 2"),  // quote inside unquoted field
      (header + "2024-01-02,1.00,EUR,\"R1\"x,y\n", "line 2"),  // text after closing quote
      (header + "2024-01-02,1.00,EUR,R1\n", "line 2"),  // too few fields
      (header + "2024-01-02,1.00,EUR,R1,x,extra\n", "line 2"),  // too many fields
      (header + "2024-01-02,1.00,EUR,R1,x\r2024-01-03,1.00,EUR,R1,x\n", "line 2"),  // bare CR
      (header + "2024-01-02,1.00,EUR,R1,x\n\n2024-01-03,1.00,EUR,R1,x\n", "line 3"),  // gap
      ("date,booking_date,amount,currency\n2024-01-02,2024-01-02,1,EUR\n", "line 1"),
      ("date,amount,currency,direction\n2024-01-02,1,EUR,in\n", "line 2"),
      ("date,amount,currency,account\n2024-01-02,1,EUR,A\n2024-01-02,1,EUR,B\n", "line 3"),
    ])
  func malformed(text: String, location: String) {
    expectError(text, .csv, StatementError.malformed, location)
  }

  @Test("Bad UTF-8 is MALFORMED at its line")
  func badUTF8() {
    let bytes = Array((header + "2024-01-02,1.00,EUR,R1,caf").utf8) + [0xC3, 0x28, 0x0A]
    expectError(bytes, .csv, StatementError.malformed, "line 2")
    expectError([0xFF, 0xFE, 0x41], .csv, StatementError.malformed, "line 1")
  }

  @Test(
    "BAD_AMOUNT: not a decimal, too many decimals, zero, signed with a direction column",
    arguments: [
      "2024-01-02,12.345,EUR", "2024-01-02,\"1,000.00\",EUR", "2024-01-02,0.00,EUR",
      "2024-01-02,-0,EUR", "2024-01-02,abc,EUR", "2024-01-02,1.,EUR", "2024-01-02,.5,EUR",
      "2024-01-02,1e3,EUR", "2024-01-02,100.5,JPY", "2024-01-02,--1,EUR",
      "2024-01-02,12.500,EUR", "2024-01-02,\(String(repeating: "9", count: 40)),EUR",
    ])
  func badAmount(row: String) {
    expectError("date,amount,currency\n" + row + "\n", .csv, StatementError.badAmount, "line 2")
  }

  @Test("BAD_AMOUNT: a sign next to a direction column")
  func signedWithDirection() {
    expectError(
      "date,amount,currency,dc\n2024-01-02,-1.00,EUR,D\n", .csv, StatementError.badAmount,
      "line 2")
  }

  @Test(
    "BAD_DATE: impossible or other layouts, booking or value date",
    arguments: [
      "2024-02-30,,1,EUR", "03/01/2024,,1,EUR", "2024-1-02,,1,EUR", "2024-01-02,2023-13-01,1,EUR",
      "2024-01-02T25:00:00,,1,EUR",
    ])
  func badDate(row: String) {
    expectError(
      "booking_date,value_date,amount,currency\n" + row + "\n", .csv, StatementError.badDate,
      "line 2")
  }

  @Test("BAD_CURRENCY: unknown codes", arguments: ["XYZ", "EURO", "€", "E-R"])
  func badCurrency(code: String) {
    expectError(
      "date,amount,currency\n2024-01-02,1,\(code)\n", .csv, StatementError.badCurrency,
      "line 2")
  }

  @Test("A record in another currency than the first is a line in its own currency")
  func foreignCurrencyLine() throws {
    let s = try parse(
      "date,amount,currency\n2024-01-02,1,EUR\n2024-01-02,1,EUR\n2024-01-02,1.5,USD\n", .csv)
    #expect(s.currency == "EUR")
    #expect(s.lines.map(\.currency) == ["EUR", "EUR", "USD"])
    #expect(s.lines[2].amountMinor == 150 && s.foreignCurrencyLines == 1)
    #expect(s.lines[2].identity == "|||2024-01-02||credit|150|USD|1")
  }

  @Test(
    "MISSING_FIELD: required column or value absent, no records",
    arguments: [
      ("date,currency\n2024-01-02,EUR\n", "line 1"),
      ("amount,currency\n1,EUR\n", "line 1"),
      ("date,amount\n2024-01-02,1\n", "line 1"),
      ("date,amount,currency\n2024-01-02,,EUR\n", "line 2"),
      ("date,amount,currency\n2024-01-02,1, \n", "line 2"),
      ("date,amount,currency\n,1,EUR\n", "line 2"),
      ("date,amount,currency,direction\n2024-01-02,1,EUR,\n", "line 2"),
      ("date,amount,currency\n", "line 2"),
      ("date,amount,currency\r\n\r\n", "line 2"),
    ])
  func missingField(text: String, location: String) {
    expectError(text, .csv, StatementError.missingField, location)
  }

  @Test(
    "TRUNCATED: empty input, a quote never closed",
    arguments: [
      ("", "line 1"), ("\u{FEFF}", "line 1"), (" \n\n", "line 1"),
      (header + "2024-01-02,1.00,EUR,R1,x\n2024-01-03,1.00,EUR,R1,\"never\nclosed\n", "line 3"),
    ])
  func truncated(text: String, location: String) {
    expectError(text, .csv, StatementError.truncated, location)
  }
}
