import Foundation
import Testing

@testable import TallyReconcile

/// Opening + credits − debits against the printed closing balance.
@Suite("statement continuity")
struct ContinuityTests {
  static func statement(opening: Int128?, closing: Int128?, lines: [(Int128, StatementDirection)])
    -> Statement
  {
    Statement(
      format: .mt940, account: "DE89", statementId: "S", currency: "EUR",
      opening: opening.map { StatementBalance(amountMinor: $0, currency: "EUR", dateDays: 1) },
      closing: closing.map { StatementBalance(amountMinor: $0, currency: "EUR", dateDays: 2) },
      lines: lines.enumerated().map { i, l in
        StatementLine(
          index: i + 1, source: "line \(i + 1)", amountMinor: l.0, currency: "EUR",
          direction: l.1, bookingDateDays: 1, valueDateDays: nil, bankReference: nil,
          endToEndId: nil, reference: nil, remittance: nil, identity: "x\(i)")
      })
  }

  @Test("agreeing balances, a missing line, absent balances, a debit balance")
  func continuity() {
    let lines: [(Int128, StatementDirection)] = [(500, .credit), (200, .debit), (50, .credit)]
    #expect(
      Self.statement(opening: 1000, closing: 1350, lines: lines).continuityDifference() == nil)
    let missing = Self.statement(opening: 1000, closing: 1350, lines: Array(lines.dropLast()))
      .continuityDifference()
    #expect(missing?.implied == 1300 && missing?.printed == 1350 && missing?.overflowed == false)
    #expect(Self.statement(opening: nil, closing: 5, lines: lines).continuityDifference() == nil)
    #expect(Self.statement(opening: 100, closing: nil, lines: lines).continuityDifference() == nil)
    #expect(
      Self.statement(opening: -100, closing: -300, lines: [(200, .debit)]).continuityDifference()
        == nil)
  }

  @Test("the project's fixtures (one statement in camt.053 and MT940) are continuous")
  func fixtures() throws {
    let dir = (#filePath as NSString).deletingLastPathComponent + "/Fixtures/"
    for (file, format) in [
      ("statement.camt053.xml", StatementFormat.camt053), ("statement.mt940", .mt940),
    ] {
      let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: dir + file)))
      let s = try StatementParser.parse(bytes, format: format) { $0 == "EUR" ? 2 : nil }
      #expect(s.opening != nil && s.closing != nil, "\(file)")
      #expect(s.continuityDifference() == nil, "\(file)")
    }
  }
}
