/// Parses bank and partner statements (CSV, camt.053, camt.054, MT940) into `Statement`s.
public enum StatementParser {
  /// Larger inputs are refused with TOO_LARGE before anything is read. 64 MiB holds a
  /// camt.053 of roughly 50,000 entries with full details (about 1.3 KiB each), or a CSV of
  /// about a million lines: far more than one statement of a busy account.
  public static let bytesMax = 64 << 20
  /// More statement lines (in all the input's statements together) are refused with
  /// TOO_LARGE. A parsed line takes a few hundred bytes, so this bounds what one import holds
  /// in memory to a few hundred MB. Within `bytesMax` only CSV and MT940 lines are short
  /// enough to reach it.
  public static let linesMax = 1_000_000
  /// More statements in one input are refused with TOO_LARGE: a year of daily statements for
  /// a dozen accounts and currencies (365 × 12 = 4,380) fits; each statement is validated and
  /// reported on its own, so this bounds the report as `linesMax` bounds the lines.
  public static let statementsMax = 5_000

  /// Parses an input that holds exactly one statement, or fails naming the first bad line
  /// or element; never returns a partial statement. A second statement is UNSUPPORTED at
  /// its start (`parseAll` reads several).
  ///
  /// `scale` maps a currency (or declared asset) code to its minor-unit scale (0…18); codes
  /// it does not know are BAD_CURRENCY. `encoding` nil reads MT940 as UTF-8 when it is valid,
  /// else as Windows-1252, and the other formats as UTF-8.
  public static func parse(
    _ bytes: [UInt8], format: StatementFormat, encoding: StatementTextEncoding? = nil,
    scale: (String) -> Int?
  ) throws(StatementError) -> Statement {
    try parse(bytes, format: format, encoding: encoding, scale: scale, limits: Limits())
  }

  /// Parses every statement of the input, in input order (an MT940 file of several messages,
  /// a camt document of several `Stmt` or `Ntfctn`), or fails naming the first problem; never
  /// returns part of the input.
  public static func parseAll(
    _ bytes: [UInt8], format: StatementFormat, encoding: StatementTextEncoding? = nil,
    scale: (String) -> Int?
  ) throws(StatementError) -> [Statement] {
    try parseAll(bytes, format: format, encoding: encoding, scale: scale, limits: Limits())
  }

  /// The limits, lowered by tests to check them at max and max + 1 cheaply.
  struct Limits {
    var bytesMax = StatementParser.bytesMax
    var linesMax = StatementParser.linesMax
    var statementsMax = StatementParser.statementsMax
  }

  static func parse(
    _ bytes: [UInt8], format: StatementFormat, encoding: StatementTextEncoding? = nil,
    scale: (String) -> Int?, limits: Limits
  ) throws(StatementError) -> Statement {
    let all = try parseAll(
      bytes, format: format, encoding: encoding, scale: scale, limits: limits)
    if all.count > 1 {
      throw StatementError(
        code: StatementError.unsupported, location: all[1].source,
        message: "a second statement; this import takes one statement per input (import a "
          + "file of several statements from a data directory, or split it)")
    }
    return all[0]
  }

  static func parseAll(
    _ raw: [UInt8], format: StatementFormat, encoding: StatementTextEncoding? = nil,
    scale: (String) -> Int?, limits: Limits
  ) throws(StatementError) -> [Statement] {
    if raw.count > limits.bytesMax {
      throw StatementError(
        code: StatementError.tooLarge, location: "input",
        message: "the input has \(raw.count) bytes; at most \(limits.bytesMax) are accepted")
    }
    let (bytes, textEncoding) = try TextDecoding.utf8(raw, format: format, encoding: encoding)
    // An optional UTF-8 byte order mark; line numbers are unaffected.
    let start = bytes.starts(with: [0xEF, 0xBB, 0xBF]) ? 3 : 0
    let body = bytes[start...]
    if body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
      throw StatementError(
        code: StatementError.truncated, location: "line 1", message: "the input is empty")
    }
    var statements = try withoutActuallyEscaping(scale) { scale throws(StatementError) in
      let currencies = Currencies(scale: scale)
      var sink = LineSink(linesMax: limits.linesMax, statementsMax: limits.statementsMax)
      switch format {
      case .csv:
        return [try CSVStatement.parse(body, currencies: currencies, sink: &sink)]
      case .camt053, .camt054:
        return try CamtStatement.parse(
          body, message: format == .camt053 ? .statement : .notification,
          currencies: currencies, sink: &sink)
      case .mt940:
        return try MT940Statement.parse(body, currencies: currencies, sink: &sink)
      }
    }
    // From here on nothing can fail: the statements are complete.
    for i in statements.indices {
      statements[i].textEncoding = textEncoding
      LineIdentity.assign(&statements[i])
    }
    return statements
  }
}

/// Collects the lines of the statement being read, numbering them from 1 in each statement,
/// and enforces `linesMax` over the whole input and `statementsMax`.
struct LineSink {
  let linesMax: Int
  let statementsMax: Int
  var lines: [StatementLine] = []
  /// Lines of the statements finished before this one.
  var linesBefore = 0
  var statements = 0

  init(linesMax: Int, statementsMax: Int = StatementParser.statementsMax) {
    self.linesMax = linesMax
    self.statementsMax = statementsMax
  }

  /// A statement starts at `location`: numbering starts again from 1.
  mutating func startStatement(at location: String) throws(StatementError) {
    if statements >= statementsMax {
      throw StatementError(
        code: StatementError.tooLarge, location: location,
        message: "an input may hold at most \(statementsMax) statements")
    }
    statements += 1
    linesBefore += lines.count
    lines = []
  }

  /// Appends `line` with the next index (its `identity` is set once the statement is whole).
  mutating func append(_ line: StatementLine) throws(StatementError) {
    precondition(line.amountMinor > 0, "statement lines are checked to be positive first")
    if linesBefore + lines.count >= linesMax {
      throw StatementError(
        code: StatementError.tooLarge, location: line.source,
        message: "an input may have at most \(linesMax) statement lines")
    }
    var line = line
    line.index = lines.count + 1
    lines.append(line)
  }
}

/// Reads the input's bytes as text: UTF-8 as it is (checked), ISO-8859-1 and Windows-1252
/// transcoded to UTF-8 byte by byte, so every ASCII byte (the structure, amounts, dates and
/// SWIFT references) stays the same byte on the same line.
enum TextDecoding {
  static func utf8(
    _ bytes: [UInt8], format: StatementFormat, encoding: StatementTextEncoding?
  ) throws(StatementError) -> ([UInt8], StatementTextEncoding) {
    let chosen = encoding ?? (format == .mt940 ? nil : .utf8)
    if (format == .camt053 || format == .camt054), let chosen, chosen != .utf8 {
      throw StatementError(
        code: StatementError.unsupported, location: "input",
        message: "camt documents are read as UTF-8 (their XML declaration names the "
          + "encoding); \(chosen.rawValue) is not accepted")
    }
    switch chosen {
    case .utf8:
      if let line = UTF8Check.firstInvalidLine(bytes) {
        throw StatementError(
          code: StatementError.malformed, location: "line \(line)",
          message: "the input is not valid UTF-8")
      }
      return (bytes, .utf8)
    case .iso88591, .windows1252:
      return (transcode(bytes, chosen!), chosen!)
    case nil:
      // MT940 without a choice: UTF-8 when valid (ASCII is), else the bank's 8-bit charset.
      if UTF8Check.firstInvalidLine(bytes) == nil { return (bytes, .utf8) }
      return (transcode(bytes, .windows1252), .windows1252)
    }
  }

  /// Windows-1252's characters for 0x80…0x9F; 0 marks the five bytes it leaves undefined,
  /// read as the code points of the same value (U+0081, …), as web browsers do.
  static let windows1252High: [UInt16] = [
    0x20AC, 0, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021,
    0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0, 0x017D, 0,
    0, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0, 0x017E, 0x0178,
  ]

  static func transcode(_ bytes: [UInt8], _ encoding: StatementTextEncoding) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(bytes.count + bytes.count / 8)
    for b in bytes {
      if b < 0x80 {
        out.append(b)
        continue
      }
      var scalar = UInt32(b)
      if encoding == .windows1252 && b <= 0x9F {
        let mapped = windows1252High[Int(b - 0x80)]
        if mapped != 0 { scalar = UInt32(mapped) }
      }
      out.append(contentsOf: Unicode.UTF8.encode(Unicode.Scalar(scalar)!)!)
    }
    return out
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
