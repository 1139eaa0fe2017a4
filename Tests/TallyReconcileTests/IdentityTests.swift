import Testing

@testable import TallyReconcile

@Suite("Line identity")
struct IdentityTests {
  @Test("Identical lines count their occurrence; a re-import gives the same identities")
  func occurrences() throws {
    let text =
      "date,amount,currency,bank_ref,description\n2024-01-02,1,EUR,B,x\n2024-01-02,1,EUR,B,y\n"
      + "2024-01-02,2,EUR,B,x\n2024-01-02,1,EUR,B,z\n"
    let s = try parse(text, .csv)
    #expect(
      s.lines.map(\.identity) == [
        "|B||2024-01-02||credit|100|EUR|1", "|B||2024-01-02||credit|100|EUR|2",
        "|B||2024-01-02||credit|200|EUR|1", "|B||2024-01-02||credit|100|EUR|3",
      ])
    #expect(try parse(text, .csv).lines.map(\.identity) == s.lines.map(\.identity))
  }

  @Test("The same line in another statement, with other lines around it, keeps its identity")
  func independentOfOtherLines() throws {
    let header = "date,amount,currency,bank_ref,reference\n"
    let line = "2024-01-02,-5.00,EUR,B7,R\n"
    let a = try parse(header + line, .csv)
    let b = try parse(header + "2024-01-01,9,EUR,Q,\n" + line + "2024-01-03,1,EUR,,\n", .csv)
    #expect(a.lines[0].identity == b.lines[1].identity)
    #expect(a.lines[0].identity == "|B7||2024-01-02||debit|500|EUR|1")
  }

  @Test("Reference and remittance are not part of the identity; the account is normalised")
  func fieldsLeftOut() throws {
    let s = try parse(
      "date,amount,currency,reference,description,account\n"
        + "2024-01-02,1,EUR,R1,one,de89 3704\n2024-01-02,1,EUR,R2,two,\n", .csv)
    #expect(s.lines[0].identity == "DE893704|||2024-01-02||credit|100|EUR|1")
    #expect(s.lines[1].identity == "DE893704|||2024-01-02||credit|100|EUR|2")
  }

  @Test("| and \\ inside a field are escaped, so different fields never give one identity")
  func escaping() throws {
    let s = try parse(
      "date,amount,currency,bank_ref,end_to_end_id\n2024-01-02,1,EUR,a|b,\n"
        + "2024-01-02,1,EUR,a,b\n2024-01-02,1,EUR,a\\,b\n", .csv)
    #expect(
      s.lines.map(\.identity) == [
        "|a\\|b||2024-01-02||credit|100|EUR|1", "|a|b|2024-01-02||credit|100|EUR|1",
        "|a\\\\|b|2024-01-02||credit|100|EUR|1",
      ])
    #expect(Set(s.lines.map(\.identity)).count == 3)
  }
}
