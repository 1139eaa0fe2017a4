import Testing

@testable import TallyReconcile

/// A camt.053 document around `body` (the content of `Stmt`).
private func camt(
  _ body: String, version: String = "08", stmts: Int = 1,
  prolog: String = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
) -> String {
  let stmt = "<Stmt><Id>S1</Id>\(body)</Stmt>"
  return """
    \(prolog)
    <Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.\(version)">
    <BkToCstmrStmt><GrpHdr><MsgId>M1</MsgId></GrpHdr>
    \(String(repeating: stmt, count: stmts))
    </BkToCstmrStmt>
    </Document>
    """
}

private let acct = "<Acct><Id><IBAN>DE89370400440532013000</IBAN></Id><Ccy>EUR</Ccy></Acct>"

private func ntry(
  amount: String = "10.00", ccy: String = "EUR", cdi: String = "CRDT",
  booking: String = "<Dt>2024-01-02</Dt>", extra: String = "", details: String = ""
) -> String {
  "<Ntry><Amt Ccy=\"\(ccy)\">\(amount)</Amt><CdtDbtInd>\(cdi)</CdtDbtInd>"
    + "<Sts><Cd>BOOK</Cd></Sts><BookgDt>\(booking)</BookgDt>\(extra)\(details)</Ntry>"
}

private func bal(_ code: String, _ amount: String, _ cdi: String = "CRDT", ccy: String = "EUR")
  -> String
{
  "<Bal><Tp><CdOrPrtry><Cd>\(code)</Cd></CdOrPrtry></Tp><Amt Ccy=\"\(ccy)\">\(amount)</Amt>"
    + "<CdtDbtInd>\(cdi)</CdtDbtInd><Dt><Dt>2024-01-31</Dt></Dt></Bal>"
}

private func tx(_ amount: String?, e2e: String, ccy: String = "EUR", extra: String = "")
  -> String
{
  let amt = amount.map { "<AmtDtls><TxAmt><Amt Ccy=\"\(ccy)\">\($0)</Amt></TxAmt></AmtDtls>" }
  return "<TxDtls><Refs><EndToEndId>\(e2e)</EndToEndId></Refs>\(amt ?? "")\(extra)</TxDtls>"
}

@Suite("camt.053 statements")
struct CamtTests {
  @Test(
    "Every version namespace from 02 to 13 is read; version 02 writes Sts as a code",
    arguments: ["02", "04", "08", "10", "13"])
  func namespaceVersions(version: String) throws {
    let sts = version == "02" ? "<Sts>BOOK</Sts>" : "<Sts><Cd>BOOK</Cd></Sts>"
    let body =
      acct + "<Ntry><Amt Ccy=\"EUR\">1.00</Amt><CdtDbtInd>DBIT</CdtDbtInd>\(sts)"
      + "<BookgDt><Dt>2024-01-02</Dt></BookgDt></Ntry>"
    let s = try parse(camt(body, version: version), .camt053)
    #expect(s.lines.count == 1 && s.lines[0].direction == .debit)
    #expect(s.statementId == "S1")
  }

  @Test("A namespace prefix is the same document")
  func prefixedNamespace() throws {
    let text = """
      <c:Document xmlns:c="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02">
      <c:BkToCstmrStmt><c:Stmt><c:Id>S</c:Id><c:Acct><c:Id><c:Othr><c:Id>12345</c:Id></c:Othr>
      </c:Id><c:Ccy>CHF</c:Ccy></c:Acct><c:Ntry><c:Amt Ccy="CHF">5.05</c:Amt>
      <c:CdtDbtInd>CRDT</c:CdtDbtInd><c:BookgDt><c:Dt>2024-01-02</c:Dt></c:BookgDt></c:Ntry>
      </c:Stmt></c:BkToCstmrStmt></c:Document>
      """
    let s = try parse(text, .camt053)
    #expect(s.account == "12345" && s.currency == "CHF")
    #expect(s.lines.map(\.amountMinor) == [505])
  }

  @Test(
    "Other versions, message types and namespaces are UNSUPPORTED",
    arguments: [
      ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.01", "Document"),
      ("urn:iso:std:iso:20022:tech:xsd:camt.053.001.14", "Document"),
      ("urn:iso:std:iso:20022:tech:xsd:camt.052.001.08", "Document"),
      ("urn:example", "Document"),
    ])
  func unsupportedNamespaces(namespace: String, location: String) {
    expectError(
      "<Document xmlns=\"\(namespace)\"><BkToCstmrStmt/></Document>", .camt053,
      StatementError.unsupported, location)
  }

  @Test("A document without a namespace is UNSUPPORTED")
  func noNamespace() {
    expectError("<Document><BkToCstmrStmt/></Document>", .camt053, "UNSUPPORTED", "Document")
  }

  @Test("OPBD is the opening balance, PRCD only without it; debit balances are negative")
  func balances() throws {
    let s = try parse(
      camt(
        acct + bal("PRCD", "1.00") + bal("OPBD", "2.00", "DBIT") + bal("CLBD", "3.00")
          + bal("ITBD", "9.99") + bal("CLAV", "x")), .camt053)
    #expect(s.opening?.amountMinor == -200)
    #expect(s.closing?.amountMinor == 300)
    #expect(s.closing?.dateDays == day("2024-01-31"))
    let p = try parse(camt(acct + bal("PRCD", "1.00")), .camt053)
    #expect(p.opening?.amountMinor == 100 && p.closing == nil && p.lines.isEmpty)
  }

  @Test("Without Acct/Ccy the currency comes from the first balance or entry")
  func currencyWithoutAcctCcy() throws {
    #expect(try parse(camt(bal("OPBD", "1", ccy: "USD")), .camt053).currency == "USD")
    #expect(try parse(camt(ntry(amount: "7", ccy: "JPY")), .camt053).currency == "JPY")
  }

  @Test("RvslInd does not change the direction: CdtDbtInd is the reversal entry's own")
  func reversalIndicator() throws {
    let s = try parse(
      camt(
        acct + ntry(cdi: "DBIT", extra: "<RvslInd>true</RvslInd>")
          + ntry(cdi: "CRDT", extra: "<RvslInd>1</RvslInd>")), .camt053)
    #expect(s.lines.map(\.direction) == [.debit, .credit])
  }

  @Test("Entity and character references and CDATA are text; Ustrd parts join with a space")
  func textDecoding() throws {
    let details =
      "<NtryDtls><TxDtls><Refs><InstrId>A&amp;B</InstrId></Refs><RmtInf>"
      + "<Ustrd>caf&#xE9; &lt;1&gt;</Ustrd><Ustrd><![CDATA[x & <y>]]></Ustrd><Ustrd> </Ustrd>"
      + "</RmtInf></TxDtls></NtryDtls>"
    let s = try parse(camt(acct + ntry(details: details)), .camt053)
    #expect(s.lines[0].reference == "A&B")
    #expect(s.lines[0].remittance == "café <1> x & <y>")
  }

  @Test("An entry without details, with DtTm dates and references at entry level")
  func entryWithoutDetails() throws {
    let s = try parse(
      camt(
        acct
          + ntry(
            booking: "<DtTm>2024-02-29T23:30:00-05:00</DtTm>",
            extra: "<ValDt><DtTm>2024-03-01T00:00:00Z</DtTm></ValDt><AcctSvcrRef>X9</AcctSvcrRef>"
          )), .camt053)
    let l = s.lines[0]
    #expect(l.bookingDateDays == day("2024-02-29") && l.valueDateDays == day("2024-03-01"))
    #expect(l.bankReference == "X9" && l.reference == "X9")
    #expect(l.endToEndId == nil && l.remittance == nil && l.source == "Stmt/Ntry[1]")
  }

  @Test("A batched entry gives one line per transaction, TxDtls across NtryDtls")
  func batchedEntry() throws {
    let details =
      "<NtryDtls>\(tx("4.00", e2e: "E1"))\(tx("5.00", e2e: "NOTPROVIDED"))</NtryDtls>"
      + "<NtryDtls><TxDtls><Refs><AcctSvcrRef>T3</AcctSvcrRef><InstrId>I3</InstrId></Refs>"
      + "<Amt Ccy=\"EUR\">1.00</Amt></TxDtls></NtryDtls>"
    let s = try parse(
      camt(acct + ntry(extra: "<AcctSvcrRef>B</AcctSvcrRef>", details: details)), .camt053)
    #expect(s.lines.map(\.amountMinor) == [400, 500, 100])
    #expect(s.lines.map(\.endToEndId) == ["E1", nil, nil])
    #expect(s.lines.map(\.bankReference) == ["B", "B", "T3"])
    #expect(s.lines.map(\.reference) == ["B", "B", "I3"])
    #expect(s.lines.map(\.index) == [1, 2, 3])
    #expect(s.lines[2].source == "Stmt/Ntry[1]/NtryDtls/TxDtls[3]")
  }

  @Test("Elements of other namespaces are skipped with their content")
  func foreignElements() throws {
    let details =
      "<NtryDtls><TxDtls><x:Amt xmlns:x=\"urn:other\" Ccy=\"EUR\">1.00</x:Amt>"
      + "<RmtInf><x:Ustrd xmlns:x=\"urn:other\">no</x:Ustrd><Ustrd>yes</Ustrd></RmtInf>"
      + "</TxDtls></NtryDtls>"
    let s = try parse(camt(acct + ntry(details: details)), .camt053)
    #expect(s.lines[0].remittance == "yes")
  }

  // MARK: - Errors, one or more per code, with their locations

  @Test("MALFORMED: XML syntax errors name the parser's line")
  func malformedXML() {
    expectError(
      "<?xml version=\"1.0\"?>\n<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">"
        + "\n<BkToCstmrStmt>\n<Stmt></Stm>\n</BkToCstmrStmt></Document>", .camt053,
      StatementError.malformed, "line 4")
    expectError(
      camt(acct) + "\n<Extra/>", .camt053, StatementError.malformed, "line 7")
    expectError(
      camt(acct + ntry(details: "<RmtInf><Ustrd>&undefined;</Ustrd></RmtInf>")), .camt053,
      StatementError.malformed, "line 4")
  }

  @Test(
    "MALFORMED: values and structure name the element",
    arguments: [
      (ntry(cdi: "CR"), "Stmt/Ntry[1]/CdtDbtInd"),
      (ntry(extra: "<RvslInd>yes</RvslInd>"), "Stmt/Ntry[1]/RvslInd"),
      (
        ntry(extra: "<ValDt><Dt>2024-01-02</Dt></ValDt><ValDt><Dt>2024-01-02</Dt></ValDt>"),
        "Stmt/Ntry[1]/ValDt"
      ),
      (
        ntry()
          + ntry(details: "<NtryDtls>\(tx("4.00", e2e: "a"))\(tx("5.00", e2e: "b"))</NtryDtls>"),
        "Stmt/Ntry[2]"
      ),
      (bal("OPBD", "1") + bal("OPBD", "1"), "Stmt/Bal[2]"),
      (bal("CLBD", "1") + bal("CLBD", "1"), "Stmt/Bal[2]"),
    ])
  func malformedValues(body: String, location: String) {
    expectError(camt(acct + body), .camt053, StatementError.malformed, location)
  }

  @Test("MALFORMED: bad UTF-8 names its line")
  func badUTF8() {
    var bytes = Array(camt(acct + ntry()).utf8)
    let stmt = Array("<Stmt>".utf8)
    let at = bytes.indices.first { bytes[$0...].starts(with: stmt) }!
    bytes.insert(0xC0, at: at + 1)
    expectError(bytes, .camt053, StatementError.malformed, "line 4")
  }

  @Test(
    "BAD_AMOUNT names the amount element",
    arguments: [
      (ntry(amount: "1,00"), "Stmt/Ntry[1]/Amt"), (ntry(amount: "-5.00"), "Stmt/Ntry[1]/Amt"),
      (ntry(amount: "0.00"), "Stmt/Ntry[1]/Amt"), (ntry(amount: "1.001"), "Stmt/Ntry[1]/Amt"),
      (ntry(amount: ""), "Stmt/Ntry[1]/Amt"), (ntry(amount: "1.5E2"), "Stmt/Ntry[1]/Amt"),
      (bal("CLBD", "x"), "Stmt/Bal[1]/Amt"),
      (
        ntry(
          amount: "1.00",
          details: "<NtryDtls>\(tx("1.00", e2e: "a"))\(tx("0", e2e: "b"))</NtryDtls>"),
        "Stmt/Ntry[1]/NtryDtls/TxDtls[2]/AmtDtls/TxAmt/Amt"
      ),
    ])
  func badAmount(body: String, location: String) {
    expectError(camt(acct + body), .camt053, StatementError.badAmount, location)
  }

  @Test(
    "BAD_DATE names the date element",
    arguments: [
      (ntry(booking: "<Dt>2024-13-01</Dt>"), "Stmt/Ntry[1]/BookgDt/Dt"),
      (ntry(booking: "<Dt>2023-02-29</Dt>"), "Stmt/Ntry[1]/BookgDt/Dt"),
      (ntry(booking: "<DtTm>2024-01-02T25:00:00</DtTm>"), "Stmt/Ntry[1]/BookgDt/DtTm"),
      (ntry(extra: "<ValDt><Dt>02.01.2024</Dt></ValDt>"), "Stmt/Ntry[1]/ValDt/Dt"),
      (
        bal("OPBD", "1").replacingOccurrences(of: "2024-01-31", with: "2024-01-32"),
        "Stmt/Bal[1]/Dt/Dt"
      ),
    ])
  func badDate(body: String, location: String) {
    expectError(camt(acct + body), .camt053, StatementError.badDate, location)
  }

  @Test("BAD_CURRENCY names the element with the code")
  func badCurrency() {
    expectError(camt(ntry(ccy: "XXX")), .camt053, StatementError.badCurrency, "Stmt/Ntry[1]/Amt")
    expectError(
      camt("<Acct><Ccy>EURO</Ccy></Acct>"), .camt053, StatementError.badCurrency,
      "Stmt/Acct/Ccy")
  }

  @Test(
    "CURRENCY_MISMATCH names the balance or batched transaction amount",
    arguments: [
      (bal("CLBD", "1", ccy: "CHF"), "Stmt/Bal[1]/Amt"),
      (
        ntry(
          details: "<NtryDtls>\(tx("4.00", e2e: "a"))\(tx("6.00", e2e: "b", ccy: "USD"))</NtryDtls>"
        ),
        "Stmt/Ntry[1]/NtryDtls/TxDtls[2]/AmtDtls/TxAmt/Amt"
      ),
    ])
  func currencyMismatch(body: String, location: String) {
    expectError(camt(acct + body), .camt053, StatementError.currencyMismatch, location)
  }

  @Test(
    "MISSING_FIELD names what is absent",
    arguments: [
      (acct + "<Ntry><CdtDbtInd>CRDT</CdtDbtInd></Ntry>", "Stmt/Ntry[1]/Amt"),
      (acct + "<Ntry><Amt>1.00</Amt></Ntry>", "Stmt/Ntry[1]/Amt"),
      (acct + "<Ntry><Amt Ccy=\"EUR\">1.00</Amt></Ntry>", "Stmt/Ntry[1]/CdtDbtInd"),
      (
        acct + "<Ntry><Amt Ccy=\"EUR\">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd></Ntry>",
        "Stmt/Ntry[1]/BookgDt"
      ),
      (acct + ntry(booking: ""), "Stmt/Ntry[1]/BookgDt/Dt"),
      (
        acct + ntry(details: "<NtryDtls>\(tx("4.00", e2e: "a"))\(tx(nil, e2e: "b"))</NtryDtls>"),
        "Stmt/Ntry[1]/NtryDtls/TxDtls[2]/AmtDtls/TxAmt/Amt"
      ),
      ("<Acct><Id><IBAN>X</IBAN></Id></Acct>", "Stmt/Acct/Ccy"),
    ])
  func missingField(body: String, location: String) {
    expectError(camt(body), .camt053, StatementError.missingField, location)
  }

  @Test("MISSING_FIELD: a document without Stmt")
  func noStmt() {
    expectError(camt("", stmts: 0), .camt053, StatementError.missingField, "BkToCstmrStmt")
  }

  @Test("TRUNCATED: a document cut anywhere after its start")
  func truncated() throws {
    let full = camt(acct + ntry() + ntry())
    let bytes = Array(full.utf8)
    // Cut inside an element's text, inside a tag, between elements, before the root ends.
    for cut in [bytes.count / 2, bytes.count - 3, bytes.count - 11, 60] {
      let e = try #require(parseError(Array(bytes[..<cut]), .camt053), "cut at \(cut)")
      #expect(e.code == StatementError.truncated, "cut at \(cut): \(e)")
      #expect(e.location.hasPrefix("line "), "cut at \(cut): \(e)")
    }
    expectError("", .camt053, StatementError.truncated, "line 1")
  }

  @Test(
    "UNSUPPORTED: two statements, a DTD, another encoding, a non-booked entry, mixed batch",
    arguments: [
      (camt(acct, stmts: 2), "Stmt[2]"),
      (camt(acct, prolog: "<?xml version=\"1.0\"?>\n<!DOCTYPE d [<!ENTITY e \"x\">]>"), "line 2"),
      (camt(acct, prolog: "<?xml version='1.0' encoding = 'latin1'?>"), "line 1"),
      // Found by fuzzing: XMLParser crashed on a processing instruction without data.
      (camt(acct, prolog: "<?xml version=\"1.0\"?>\n<?pi?>"), "line 2"),
      (camt(acct + "<?xm:te \n ?>"), "line 4"),
      (camt(acct + ntry().replacingOccurrences(of: "BOOK", with: "PDNG")), "Stmt/Ntry[1]/Sts"),
      (
        camt(acct + ntry().replacingOccurrences(of: "<Cd>BOOK</Cd>", with: "INFO")),
        "Stmt/Ntry[1]/Sts"
      ),
      (
        camt(
          acct
            + ntry(
              amount: "2",
              details: "<NtryDtls>\(tx("1", e2e: "a"))"
                + tx("1", e2e: "b", extra: "<CdtDbtInd>DBIT</CdtDbtInd>") + "</NtryDtls>")),
        "Stmt/Ntry[1]/NtryDtls/TxDtls[2]/CdtDbtInd"
      ),
    ])
  func unsupported(text: String, location: String) {
    expectError(text, .camt053, StatementError.unsupported, location)
  }
}
