import Testing

@testable import TallyReconcile

/// The matching rules, in order, on hand-made lines and candidates.
@Suite("matching rules")
struct MatcherTests {
  static let day: Int32 = 20_000

  static func line(
    _ index: Int, _ amount: Int128, _ dir: StatementDirection = .credit, currency: String = "EUR",
    day: Int32 = day, e2e: String? = nil, ref: String? = nil, bankRef: String? = nil
  ) -> StatementLine {
    StatementLine(
      index: index, source: "line \(index)", amountMinor: amount, currency: currency,
      direction: dir, bookingDateDays: day, valueDateDays: day, bankReference: bankRef,
      endToEndId: e2e, reference: ref, remittance: nil, identity: "id-\(index)")
  }

  static func entry(
    _ id: String, _ amount: Int128, _ dir: StatementDirection = .credit, currency: String = "EUR",
    day: Int32 = day, ref: String? = nil, seq: UInt64 = 1
  ) -> LedgerCandidate {
    LedgerCandidate(
      entryId: id, seq: seq, ref: ref, amountMinor: amount, currency: currency, direction: dir,
      dateDays: day)
  }

  @Test("rule 1: an exact reference with equal amount, currency and direction")
  func reference() {
    let out = Matcher.match(
      lines: [Self.line(1, 1050, e2e: "E2E-9"), Self.line(2, 700, ref: "e-2")],
      candidates: [
        Self.entry("e-1", 1050, ref: "E2E-9"), Self.entry("e-2", 700), Self.entry("e-3", 1050),
      ])
    #expect(out.contains(.matched(rule: .reference, lines: [1], entries: ["e-1"])))
    #expect(out.contains(.matched(rule: .reference, lines: [2], entries: ["e-2"])))
    #expect(out.count == 2)
  }

  @Test("rule 1: a reference with another amount, currency or direction is a discrepancy")
  func discrepancy() {
    let out = Matcher.match(
      lines: [
        Self.line(1, 1000, e2e: "e-1"), Self.line(2, 500, .debit, ref: "e-2"),
        Self.line(3, 300, currency: "USD", bankRef: "e-3"),
      ],
      candidates: [
        Self.entry("e-1", 1050), Self.entry("e-2", 500), Self.entry("e-3", 300),
      ])
    #expect(
      out.contains(
        .discrepancy(
          line: 1, entry: "e-1", amountDifferenceMinor: -50, currencyDiffers: false,
          directionDiffers: false)))
    #expect(
      out.contains(
        .discrepancy(
          line: 2, entry: "e-2", amountDifferenceMinor: 0, currencyDiffers: false,
          directionDiffers: true)))
    #expect(
      out.contains(
        .discrepancy(
          line: 3, entry: "e-3", amountDifferenceMinor: 0, currencyDiffers: true,
          directionDiffers: false)))
  }

  @Test("rule 2: amount and date within the tolerance, only when unique on both sides")
  func amountDate() {
    var o = MatchOptions()
    o.toleranceDays = 2
    let unique = Matcher.match(
      lines: [Self.line(1, 4200, day: Self.day + 2)],
      candidates: [Self.entry("e-1", 4200), Self.entry("e-far", 4200, day: Self.day + 30)],
      options: o)
    #expect(unique == [.matched(rule: .amountDate, lines: [1], entries: ["e-1"])])
    // Two candidates: ambiguous, nothing matched.
    let twoEntries = Matcher.match(
      lines: [Self.line(1, 4200)], candidates: [Self.entry("a", 4200), Self.entry("b", 4200)],
      options: o)
    #expect(twoEntries.isEmpty)
    // Two lines for one candidate: ambiguous too.
    let twoLines = Matcher.match(
      lines: [Self.line(1, 4200), Self.line(2, 4200)], candidates: [Self.entry("a", 4200)],
      options: o)
    #expect(twoLines.isEmpty)
    // Outside the tolerance, or the other direction: no match.
    #expect(
      Matcher.match(
        lines: [Self.line(1, 4200, day: Self.day + 3)], candidates: [Self.entry("a", 4200)],
        options: o
      ).isEmpty)
    #expect(
      Matcher.match(lines: [Self.line(1, 4200, .debit)], candidates: [Self.entry("a", 4200)])
        .isEmpty)
  }

  @Test("rule 3: one line to several entries and several lines to one, when the sum is unique")
  func sums() {
    let oneToMany = Matcher.match(
      lines: [Self.line(1, 1000)],
      candidates: [Self.entry("a", 300), Self.entry("b", 700), Self.entry("c", 450)])
    #expect(oneToMany == [.matched(rule: .sum, lines: [1], entries: ["a", "b"])])
    let manyToOne = Matcher.match(
      lines: [Self.line(1, 250), Self.line(2, 750), Self.line(3, 333)],
      candidates: [Self.entry("batch", 1000)])
    #expect(manyToOne == [.matched(rule: .sum, lines: [1, 2], entries: ["batch"])])
    // Two combinations reach the amount: ambiguous, nothing matched.
    let ambiguous = Matcher.match(
      lines: [Self.line(1, 1000)],
      candidates: [
        Self.entry("a", 300), Self.entry("b", 700), Self.entry("c", 400), Self.entry("d", 600),
      ])
    #expect(ambiguous.isEmpty)
  }

  @Test("rule 3 is bounded: a search beyond its step budget matches nothing")
  func bounded() {
    // 22 decoys of 4.00 closest in date, then 3.00 and 7.00: only 3 + 7 makes 10.00, found
    // after visiting thousands of decoy subsets.
    let candidates =
      (0..<22).map { Self.entry("d\($0)", 400) }
      + [Self.entry("three", 300, day: Self.day + 2), Self.entry("seven", 700, day: Self.day + 2)]
    let found = Matcher.match(lines: [Self.line(1, 1000)], candidates: candidates)
    #expect(found == [.matched(rule: .sum, lines: [1], entries: ["three", "seven"])])
    var o = MatchOptions()
    o.stepsMax = 50
    #expect(Matcher.match(lines: [Self.line(1, 1000)], candidates: candidates, options: o).isEmpty)
  }

  @Test("rules run in order and use each line and entry once")
  func order() {
    let out = Matcher.match(
      lines: [Self.line(1, 500, ref: "e-1"), Self.line(2, 500)],
      candidates: [Self.entry("e-1", 500), Self.entry("e-2", 500)])
    #expect(
      out == [
        .matched(rule: .reference, lines: [1], entries: ["e-1"]),
        .matched(rule: .amountDate, lines: [2], entries: ["e-2"]),
      ])
  }
}
