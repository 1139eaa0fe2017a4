import TallyCore
import TallyReconcile

/// Bank and partner statements (TallyReconcile): CSV, camt.053/054 and MT940.
enum StatementTargets {
  @Sendable static func csv(_ data: [UInt8]) { parse(data, .csv) }
  @Sendable static func camt(_ data: [UInt8]) { parse(data, .camt053) }
  @Sendable static func mt940(_ data: [UInt8]) { parse(data, .mt940) }

  /// The scale the statement tests use: ISO 4217, and PTS (points) with no minor unit.
  static func scale(_ code: String) -> Int? {
    code == "PTS" ? 0 : ISO4217.minorUnits(of: code).map(Int.init)
  }

  /// Parses every statement of the input; a statement that parses is consistent, an error
  /// carries a documented code and says where and why.
  static func parse(_ data: [UInt8], _ format: StatementFormat) {
    do throws(StatementError) {
      let statements = try StatementParser.parseAll(data, format: format, scale: scale)
      FuzzCheck.expect(!statements.isEmpty, "parsed to no statement")
      for s in statements {
        FuzzCheck.expect(
          s.lines.map(\.index) == s.lines.indices.map { $0 + 1 }, "line indexes not 1…n")
        FuzzCheck.expect(s.lines.allSatisfy { $0.amountMinor > 0 }, "a line amount ≤ 0")
        FuzzCheck.expect(s.opening.map { $0.currency == s.currency } ?? true, "opening currency")
        FuzzCheck.expect(s.closing.map { $0.currency == s.currency } ?? true, "closing currency")
      }
    } catch {
      FuzzCheck.expect(StatementError.codes.contains(error.code), "undocumented code \(error)")
      FuzzCheck.expect(!error.location.isEmpty && !error.message.isEmpty, "empty \(error)")
    }
  }
}
