import Testing

@testable import TallyReconcile

@Suite("Input limits")
struct LimitsTests {
  @Test("The limits are 64 MiB and one million lines")
  func limitValues() {
    #expect(StatementParser.bytesMax == 67_108_864)
    #expect(StatementParser.linesMax == 1_000_000)
  }

  @Test("bytesMax + 1 bytes are TOO_LARGE in every format, before anything is read")
  func bytesMax() {
    // One allocation; the size is checked first, so nothing walks the 64 MiB. Max itself is
    // checked at a lowered limit below (reading 64 MiB in a debug build takes seconds).
    let bytes = [UInt8](repeating: 0xFF, count: StatementParser.bytesMax + 1)
    for format in StatementFormat.allCases {
      expectError(bytes, format, StatementError.tooLarge, "input")
    }
  }

  @Test("A camt.053 document over 10 MB is read (libxml2 refuses larger single chunks)")
  func camtOverTenMegabytes() throws {
    let comment = "<!-- " + String(repeating: "x", count: 1000) + " -->\n"
    let text =
      "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt>\n"
      + String(repeating: comment, count: 11_000)
      + "<Stmt><Ntry><Amt Ccy=\"EUR\">1</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2024-01-02"
      + "</Dt></BookgDt></Ntry></Stmt></BkToCstmrStmt></Document>\n"
    #expect(text.utf8.count > 11_000_000)
    let s = try parse(text, .camt053)
    #expect(s.lines.count == 1)
    expectError(
      String(text.dropLast(20)), .camt053, StatementError.truncated, "line 11002")
  }

  @Test("A lowered byte limit is checked at max and max + 1")
  func bytesAtLoweredLimit() throws {
    let bytes = Array("date,amount,currency\n2024-01-02,1,EUR\n".utf8)
    var limits = StatementParser.Limits()
    limits.bytesMax = bytes.count
    let s = try StatementParser.parse(bytes, format: .csv, scale: testScale, limits: limits)
    #expect(s.lines.count == 1)
    limits.bytesMax = bytes.count - 1
    expectError(bytes, .csv, StatementError.tooLarge, "input", limits: limits)
  }

  @Test("linesMax lines are read and one more is TOO_LARGE at that line, in every format")
  func linesMax() throws {
    var limits = StatementParser.Limits()
    limits.linesMax = 3
    let csv = { (n: Int) in
      "date,amount,currency\n" + String(repeating: "2024-01-02,1,EUR\n", count: n)
    }
    let mt940 = { (n: Int) in
      ":20:R\n:25:A\n:60F:C240101EUR0,\n"
        + String(repeating: ":61:240102C1,NTRFX\n", count: n) + ":62F:C240101EUR0,\n"
    }
    let tx = "<TxDtls><AmtDtls><TxAmt><Amt Ccy=\"EUR\">1</Amt></TxAmt></AmtDtls></TxDtls>"
    let camt = { (n: Int) in
      "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\"><BkToCstmrStmt>"
        + "<Stmt><Ntry><Amt Ccy=\"EUR\">\(n)</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>"
        + "2024-01-02</Dt></BookgDt><NtryDtls>\(String(repeating: tx, count: n))</NtryDtls>"
        + "</Ntry></Stmt></BkToCstmrStmt></Document>"
    }
    for (format, make) in [
      (StatementFormat.csv, csv), (.mt940, mt940), (.camt053, camt),
    ] {
      let s = try StatementParser.parse(
        Array(make(3).utf8), format: format, scale: testScale, limits: limits)
      #expect(s.lines.count == 3, "\(format)")
    }
    expectError(Array(csv(4).utf8), .csv, StatementError.tooLarge, "line 5", limits: limits)
    expectError(Array(mt940(4).utf8), .mt940, StatementError.tooLarge, "line 7", limits: limits)
    expectError(
      Array(camt(4).utf8), .camt053, StatementError.tooLarge, "Stmt/Ntry[1]/NtryDtls/TxDtls[4]",
      limits: limits)
  }
}
