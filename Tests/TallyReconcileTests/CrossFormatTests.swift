import Testing

@testable import TallyReconcile

// One statement written in the three formats (Fixtures/statement.*): credits and debits, a
// line with an end-to-end id, one without any reference, a camt batch of three transactions
// (three lines in CSV and MT940), two identical lines, a value date after the booking date, a
// remittance text wrapped over two MT940 lines, and a reversal (camt RvslInd, MT940 RD).

private let account = "DE89370400440532013000"

/// The lines every format must give (sources aside).
private let expectedLines: [StatementLine] = {
  typealias L = (
    String, String, StatementDirection, Int128, String?, String?, String?, String?
  )
  let rows: [L] = [
    (
      "2024-03-01", "2024-03-01", .credit, 150_000, "BR0001", "E2E-INV-1001", "INV-1001",
      "Invoice 1001 March rent"
    ),
    ("2024-03-02", "2024-03-02", .debit, 25_075, "BR0002", nil, "BR0002", "Office supplies"),
    ("2024-03-04", "2024-03-04", .debit, 8_990, nil, nil, nil, "Bank fee March"),
    (
      "2024-03-05", "2024-03-05", .credit, 10_000, "BATCH-0042", "E2E-B1", "BATCH-0042",
      "Batch item 1"
    ),
    (
      "2024-03-05", "2024-03-05", .credit, 20_000, "BATCH-0042", "E2E-B2", "BATCH-0042",
      "Batch item 2"
    ),
    (
      "2024-03-05", "2024-03-05", .credit, 30_000, "BATCH-0042", "E2E-B3", "BATCH-0042",
      "Batch item 3"
    ),
    ("2024-03-06", "2024-03-06", .debit, 1_999, nil, nil, nil, "Streaming subscription"),
    ("2024-03-06", "2024-03-06", .debit, 1_999, nil, nil, nil, "Streaming subscription"),
    (
      "2024-03-07", "2024-03-08", .credit, 4_200, "BR0009", nil, "PO-77",
      "Purchase order 77 partial delivery of items A, B and C, see our letter of 2024-03-01"
    ),
    (
      "2024-03-08", "2024-03-08", .credit, 25_075, "BR0010", nil, "BR0010",
      "Return of office supplies"
    ),
  ]
  let identities = [
    "DE89370400440532013000|BR0001|E2E-INV-1001|2024-03-01|2024-03-01|credit|150000|EUR|1",
    "DE89370400440532013000|BR0002||2024-03-02|2024-03-02|debit|25075|EUR|1",
    "DE89370400440532013000|||2024-03-04|2024-03-04|debit|8990|EUR|1",
    "DE89370400440532013000|BATCH-0042|E2E-B1|2024-03-05|2024-03-05|credit|10000|EUR|1",
    "DE89370400440532013000|BATCH-0042|E2E-B2|2024-03-05|2024-03-05|credit|20000|EUR|1",
    "DE89370400440532013000|BATCH-0042|E2E-B3|2024-03-05|2024-03-05|credit|30000|EUR|1",
    "DE89370400440532013000|||2024-03-06|2024-03-06|debit|1999|EUR|1",
    "DE89370400440532013000|||2024-03-06|2024-03-06|debit|1999|EUR|2",
    "DE89370400440532013000|BR0009||2024-03-07|2024-03-08|credit|4200|EUR|1",
    "DE89370400440532013000|BR0010||2024-03-08|2024-03-08|credit|25075|EUR|1",
  ]
  return rows.enumerated().map { i, r in
    StatementLine(
      index: i + 1, source: "", amountMinor: r.3, currency: "EUR", direction: r.2,
      bookingDateDays: day(r.0), valueDateDays: day(r.1), bankReference: r.4, endToEndId: r.5,
      reference: r.6, remittance: r.7, identity: identities[i])
  }
}()

private let opening = StatementBalance(
  amountMinor: 1_000_000, currency: "EUR", dateDays: day("2024-03-01"))
private let closing = StatementBalance(
  amountMinor: 1_201_212, currency: "EUR", dateDays: day("2024-03-08"))

@Suite("The same statement in CSV, camt.053 and MT940")
struct CrossFormatTests {
  static let csv = fixture("statement.csv")
  static let camt = fixture("statement.camt053.xml")
  static let mt940 = fixture("statement.mt940")

  @Test("Each format gives the expected lines, with identities pinned")
  func eachFormatGivesTheExpectedLines() throws {
    for (bytes, format) in [
      (Self.csv, StatementFormat.csv), (Self.camt, .camt053), (Self.mt940, .mt940),
    ] {
      let s = try StatementParser.parse(bytes, format: format, scale: testScale)
      #expect(s.format == format)
      #expect(s.account == account)
      #expect(s.currency == "EUR")
      #expect(s.lines.count == expectedLines.count, "\(format)")
      for (got, want) in zip(s.lines, expectedLines) {
        #expect(got.sourceless == want, "\(format) line \(want.index)")
      }
    }
  }

  @Test("All three formats parse to identical lines and identities")
  func allFormatsAgree() throws {
    let c = try StatementParser.parse(Self.csv, format: .csv, scale: testScale)
    let x = try StatementParser.parse(Self.camt, format: .camt053, scale: testScale)
    let m = try StatementParser.parse(Self.mt940, format: .mt940, scale: testScale)
    #expect(c.lines.map(\.sourceless) == x.lines.map(\.sourceless))
    #expect(c.lines.map(\.sourceless) == m.lines.map(\.sourceless))
    #expect(Set(c.lines.map(\.identity)).count == c.lines.count)
  }

  @Test("camt.053 and MT940 carry the same opening and closing balances; CSV none")
  func balancesAgree() throws {
    let c = try StatementParser.parse(Self.csv, format: .csv, scale: testScale)
    let x = try StatementParser.parse(Self.camt, format: .camt053, scale: testScale)
    let m = try StatementParser.parse(Self.mt940, format: .mt940, scale: testScale)
    #expect(c.opening == nil && c.closing == nil)
    #expect(x.opening == opening && x.closing == closing)
    #expect(m.opening == opening && m.closing == closing)
    // The fixture is consistent: opening + credits - debits = closing.
    let net = x.lines.reduce(Int128(0)) { $0 + ($1.direction == .credit ? 1 : -1) * $1.amountMinor }
    #expect(opening.amountMinor + net == closing.amountMinor)
  }

  @Test("Statement ids and sources are the format's own")
  func statementIdsAndSources() throws {
    let c = try StatementParser.parse(Self.csv, format: .csv, scale: testScale)
    let x = try StatementParser.parse(Self.camt, format: .camt053, scale: testScale)
    let m = try StatementParser.parse(Self.mt940, format: .mt940, scale: testScale)
    #expect(c.statementId == nil)
    #expect(x.statementId == "STMT-2024-001")
    #expect(m.statementId == "STMT-2024-001/00001/001")
    #expect(c.lines.map(\.source).prefix(3) == ["line 2", "line 3", "line 4"])
    #expect(
      x.lines.map(\.source) == [
        "Stmt/Ntry[1]", "Stmt/Ntry[2]", "Stmt/Ntry[3]", "Stmt/Ntry[4]/NtryDtls/TxDtls[1]",
        "Stmt/Ntry[4]/NtryDtls/TxDtls[2]", "Stmt/Ntry[4]/NtryDtls/TxDtls[3]", "Stmt/Ntry[5]",
        "Stmt/Ntry[6]", "Stmt/Ntry[7]", "Stmt/Ntry[8]",
      ])
    #expect(m.lines.map(\.source).prefix(3) == ["line 6", "line 9", "line 11"])
  }

  @Test("Parsing the same bytes twice gives the same statement")
  func reparsingIsDeterministic() throws {
    for (bytes, format) in [
      (Self.csv, StatementFormat.csv), (Self.camt, .camt053), (Self.mt940, .mt940),
    ] {
      let a = try StatementParser.parse(bytes, format: format, scale: testScale)
      let b = try StatementParser.parse(bytes, format: format, scale: testScale)
      #expect(a == b)
    }
  }
}
