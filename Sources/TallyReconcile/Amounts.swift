/// Exact decimal text → minor units. Never floating point, never rounding: more decimals than
/// the currency's scale is an error even when they are zeros (`10.500` EUR), as everywhere in
/// Tally.
enum Amounts {
  enum Problem: Error, Equatable {
    case syntax
    case tooManyDecimals(Int)
    case outOfRange
  }

  /// Digits before the separator, at most this many bytes in all: more than 38 digits cannot
  /// fit an Int128 anyway, and the cap keeps messages short.
  static let textBytesMax = 60

  /// Parses unsigned `digits [separator digits]` into minor units at `scale`.
  /// `trailingSeparator`: MT940 writes `100,` (the comma is mandatory there, decimals are
  /// not); `separatorRequired` makes the separator mandatory.
  static func parse(
    _ text: Substring.UTF8View, scale: Int, separator: UInt8, separatorRequired: Bool = false,
    trailingSeparator: Bool = false
  ) -> Result<Int128, Problem> {
    guard !text.isEmpty, text.count <= textBytesMax else { return .failure(.syntax) }
    var value: Int128 = 0
    var integerDigits = 0
    var fractionDigits = 0
    var sawSeparator = false
    for c in text {
      if c == separator {
        if sawSeparator { return .failure(.syntax) }
        sawSeparator = true
        continue
      }
      guard c >= 0x30 && c <= 0x39 else { return .failure(.syntax) }
      if sawSeparator { fractionDigits += 1 } else { integerDigits += 1 }
      let (m, o1) = value.multipliedReportingOverflow(by: 10)
      let (a, o2) = m.addingReportingOverflow(Int128(c - 0x30))
      if o1 || o2 { return .failure(.outOfRange) }
      value = a
    }
    if integerDigits == 0 { return .failure(.syntax) }
    if separatorRequired && !sawSeparator { return .failure(.syntax) }
    if sawSeparator && fractionDigits == 0 && !trailingSeparator { return .failure(.syntax) }
    if fractionDigits > scale { return .failure(.tooManyDecimals(fractionDigits)) }
    for _ in fractionDigits..<scale {
      let (m, o) = value.multipliedReportingOverflow(by: 10)
      if o { return .failure(.outOfRange) }
      value = m
    }
    return .success(value)
  }

  /// `parse`, or BAD_AMOUNT at `location` with a message naming the value.
  static func minor(
    _ text: Substring, currency: String, scale: Int, separator: UInt8,
    separatorRequired: Bool = false, trailingSeparator: Bool = false, location: String
  ) throws(StatementError) -> Int128 {
    switch parse(
      text.utf8, scale: scale, separator: separator, separatorRequired: separatorRequired,
      trailingSeparator: trailingSeparator)
    {
    case .success(let v): return v
    case .failure(let problem):
      let shown = Text.quoted(text)
      let message: String
      switch problem {
      case .syntax:
        let sep = separator == UInt8(ascii: ",") ? "a decimal comma" : "a decimal point"
        message = "amount \(shown) is not an unsigned decimal number with \(sep)"
      case .tooManyDecimals(let n):
        message = "amount \(shown) has \(n) decimals; \(currency) has \(scale)"
      case .outOfRange:
        message = "amount \(shown) is out of range"
      }
      throw StatementError(code: StatementError.badAmount, location: location, message: message)
    }
  }

  /// Statement lines move money: zero is refused.
  static func requirePositive(_ v: Int128, location: String) throws(StatementError) {
    if v == 0 {
      throw StatementError(
        code: StatementError.badAmount, location: location,
        message: "a statement line's amount must be greater than zero")
    }
  }
}

/// Currency codes and their scales through the caller's `scale` function.
struct Currencies {
  let scale: (String) -> Int?
  /// Scales the ledger can hold (as for declared assets).
  static let scaleRange = 0...18
  /// Longest code accepted (declared asset codes are 1–16 bytes of `[A-Z0-9_]`).
  static let codeBytesMax = 16

  /// The scale of `code`, or BAD_CURRENCY at `location`.
  func scaleOf(_ code: String, location: String) throws(StatementError) -> Int {
    let u = code.utf8
    let wellFormed =
      !u.isEmpty && u.count <= Currencies.codeBytesMax
      && u.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
    guard wellFormed, let s = scale(code), Currencies.scaleRange.contains(s) else {
      throw StatementError(
        code: StatementError.badCurrency, location: location,
        message: "currency \(Text.quoted(Substring(code))) is not a known currency or asset")
    }
    return s
  }

  /// CURRENCY_MISMATCH unless `code` is the statement's currency.
  static func require(_ code: String, is statement: String, location: String)
    throws(StatementError)
  {
    if code != statement {
      throw StatementError(
        code: StatementError.currencyMismatch, location: location,
        message: "currency \(code) differs from the statement's currency \(statement)")
    }
  }
}
