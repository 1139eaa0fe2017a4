import Foundation
import TallyCore
import Testing

@testable import TallyReconcile

/// TallyCore has its own `StatementLine` (a line of a ledger account's statement); code that
/// imports both modules picks one by name.
typealias StatementLine = TallyReconcile.StatementLine

/// ISO 4217 plus one declared asset (`PTS`, scale 0), as the CLI will pass.
func testScale(_ code: String) -> Int? {
  if code == "PTS" { return 0 }
  return ISO4217.minorUnits(of: code).map(Int.init)
}

func fixture(_ name: String) -> [UInt8] {
  let dir = (#filePath as NSString).deletingLastPathComponent
  guard let data = FileManager.default.contents(atPath: dir + "/Fixtures/" + name) else {
    fatalError("fixture \(name) is missing")
  }
  return [UInt8](data)
}

func parse(_ text: String, _ format: StatementFormat) throws(StatementError) -> Statement {
  try StatementParser.parse(Array(text.utf8), format: format, scale: testScale)
}

/// The error parsing `bytes` gives; records an issue when it parses.
func parseError(
  _ bytes: [UInt8], _ format: StatementFormat,
  limits: StatementParser.Limits = StatementParser.Limits(),
  sourceLocation: SourceLocation = #_sourceLocation
) -> StatementError? {
  do {
    let s = try StatementParser.parse(bytes, format: format, scale: testScale, limits: limits)
    Issue.record(
      "parsed with \(s.lines.count) lines; expected an error", sourceLocation: sourceLocation)
    return nil
  } catch {
    return error
  }
}

/// Expects `text` to fail with `code` at `location`.
func expectError(
  _ text: String, _ format: StatementFormat, _ code: String, _ location: String,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  expectError(Array(text.utf8), format, code, location, sourceLocation: sourceLocation)
}

func expectError(
  _ bytes: [UInt8], _ format: StatementFormat, _ code: String, _ location: String,
  limits: StatementParser.Limits = StatementParser.Limits(),
  sourceLocation: SourceLocation = #_sourceLocation
) {
  guard let e = parseError(bytes, format, limits: limits, sourceLocation: sourceLocation) else {
    return
  }
  #expect(e.code == code, "\(e)", sourceLocation: sourceLocation)
  #expect(e.location == location, "\(e)", sourceLocation: sourceLocation)
  #expect(!e.message.isEmpty, sourceLocation: sourceLocation)
}

func day(_ iso: String) -> Int32 { CivilTime.parseDate(iso)! }

extension StatementLine {
  /// The line without its `source`, which names a place in one particular format.
  var sourceless: StatementLine {
    var l = self
    l.source = ""
    return l
  }
}
