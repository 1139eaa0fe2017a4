/// Parses bank and partner statements (CSV, camt.053, MT940) into a `Statement`.
public enum StatementParser {
  /// Larger inputs are refused with TOO_LARGE before anything is read. 64 MiB holds a
  /// camt.053 of roughly 50,000 entries with full details (about 1.3 KiB each), or a CSV of
  /// about a million lines: far more than one statement of a busy account.
  public static let bytesMax = 64 << 20
  /// More statement lines are refused with TOO_LARGE. A parsed line takes a few hundred
  /// bytes, so this bounds what one import holds in memory to a few hundred MB. Within
  /// `bytesMax` only CSV and MT940 lines are short enough to reach it.
  public static let linesMax = 1_000_000

  /// Parses the whole input or fails naming the first bad line or element; never returns a
  /// partial statement.
  ///
  /// `scale` maps a currency (or declared asset) code to its minor-unit scale (0…18); codes
  /// it does not know are BAD_CURRENCY.
  public static func parse(
    _ bytes: [UInt8], format: StatementFormat, scale: (String) -> Int?
  ) throws(StatementError) -> Statement {
    try parse(bytes, format: format, scale: scale, limits: Limits())
  }

  /// The limits, lowered by tests to check them at max and max + 1 cheaply.
  struct Limits {
    var bytesMax = StatementParser.bytesMax
    var linesMax = StatementParser.linesMax
  }

  static func parse(
    _ bytes: [UInt8], format: StatementFormat, scale: (String) -> Int?, limits: Limits
  ) throws(StatementError) -> Statement {
    if bytes.count > limits.bytesMax {
      throw StatementError(
        code: StatementError.tooLarge, location: "input",
        message: "the input has \(bytes.count) bytes; at most \(limits.bytesMax) are accepted")
    }
    if let line = UTF8Check.firstInvalidLine(bytes) {
      throw StatementError(
        code: StatementError.malformed, location: "line \(line)",
        message: "the input is not valid UTF-8")
    }
    // An optional UTF-8 byte order mark; line numbers are unaffected.
    let start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
    let body = bytes[start...]
    if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
      throw StatementError(
        code: StatementError.truncated, location: "line 1", message: "the input is empty")
    }
    var statement = try withoutActuallyEscaping(scale) { scale throws(StatementError) in
      let currencies = Currencies(scale: scale)
      var sink = LineSink(linesMax: limits.linesMax)
      switch format {
      case .csv:
        return try CSVStatement.parse(body, currencies: currencies, sink: &sink)
      case .camt053:
        return try CamtStatement.parse(body, currencies: currencies, sink: &sink)
      case .mt940:
        return try MT940Statement.parse(body, currencies: currencies, sink: &sink)
      }
    }
    // From here on nothing can fail: the statement is complete.
    LineIdentity.assign(&statement)
    return statement
  }
}

/// Collects the lines of a statement, numbering them and enforcing `linesMax`.
struct LineSink {
  let linesMax: Int
  var lines: [StatementLine] = []

  init(linesMax: Int) { self.linesMax = linesMax }

  /// Appends `line` with the next index (its `identity` is set once the statement is whole).
  mutating func append(_ line: StatementLine) throws(StatementError) {
    precondition(line.amountMinor > 0, "statement lines are checked to be positive first")
    if lines.count >= linesMax {
      throw StatementError(
        code: StatementError.tooLarge, location: line.source,
        message: "a statement may have at most \(linesMax) lines")
    }
    var line = line
    line.index = lines.count + 1
    lines.append(line)
  }
}

/// Strict UTF-8 validation (no overlong forms, no surrogates, nothing above U+10FFFF) that
/// reports where the first bad byte is.
enum UTF8Check {
  /// The 1-based line of the first byte that is not valid UTF-8, or nil if all are.
  static func firstInvalidLine(_ bytes: [UInt8]) -> Int? {
    bytes.withUnsafeBufferPointer { b -> Int? in
      var i = 0
      var line = 1
      let n = b.count
      while i < n {
        let c = b[i]
        if c < 0x80 {
          if c == 0x0A { line += 1 }
          i += 1
          continue
        }
        var need = 0
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: need = 1
        case 0xE0: (need, low) = (2, 0xA0)
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: (need, high) = (2, 0x9F)
        case 0xF0: (need, low) = (3, 0x90)
        case 0xF1...0xF3: need = 3
        case 0xF4: (need, high) = (3, 0x8F)
        default: return line
        }
        if i + need >= n { return line }
        if b[i + 1] < low || b[i + 1] > high { return line }
        for k in 2..<(need + 1) where b[i + k] < 0x80 || b[i + k] > 0xBF { return line }
        i += need + 1
      }
      return nil
    }
  }
}
