// The normalised statement model. Every input format (CSV, camt.053, camt.054, MT940) parses
// into these values; matching and import work on them only. docs/RECONCILIATION.md describes
// how each format's fields map here.

/// The input formats `StatementParser` reads.
public enum StatementFormat: String, Sendable, CaseIterable {
  case csv, camt053, mt940
  /// ISO 20022 bank-to-customer debit/credit notification: each `Ntfctn` is a statement
  /// without balances.
  case camt054
}

/// How the input's bytes were read as text. MT940 is read as UTF-8 when it is valid UTF-8,
/// else as Windows-1252; CSV and camt are UTF-8 unless the caller names another.
public enum StatementTextEncoding: String, Sendable, CaseIterable {
  case utf8 = "utf-8"
  case iso88591 = "iso-8859-1"
  case windows1252 = "windows-1252"
}

/// Money moved on the statement's account, from the account holder's view at the bank:
/// credit = money in, debit = money out.
public enum StatementDirection: String, Sendable {
  case credit, debit
}

/// An opening or closing balance as printed in the statement.
public struct StatementBalance: Equatable, Sendable {
  /// Signed minor units: negative = debit balance (overdrawn).
  public var amountMinor: Int128
  public var currency: String
  /// Days since 1970-01-01.
  public var dateDays: Int32

  public init(amountMinor: Int128, currency: String, dateDays: Int32) {
    self.amountMinor = amountMinor
    self.currency = currency
    self.dateDays = dateDays
  }
}

/// One movement of money on the statement's account.
public struct StatementLine: Equatable, Sendable {
  /// 1-based position in the statement (a batched camt entry gives one line per transaction).
  public var index: Int
  /// Where the line came from, for messages: `"line 7"` (CSV, MT940) or `"Stmt/Ntry[3]"`
  /// (camt; `"Stmt/Ntry[3]/NtryDtls/TxDtls[2]"` for a transaction of a batched entry).
  public var source: String
  /// Minor units of `currency`, always > 0; `direction` says which way the money went.
  public var amountMinor: Int128
  /// The line's own currency: the statement's, or another for a line booked in a foreign
  /// currency (a camt entry's `Amt/@Ccy`, a CSV record's `currency`).
  public var currency: String
  public var direction: StatementDirection
  /// Days since 1970-01-01.
  public var bookingDateDays: Int32
  /// Days since 1970-01-01.
  public var valueDateDays: Int32?
  /// The bank's (account servicer's) reference: camt `AcctSvcrRef`, MT940 `:61:` after `//`,
  /// CSV `bank_ref`.
  public var bankReference: String?
  /// The payer's end-to-end id: camt `Refs/EndToEndId`, MT940 `EREF+` in `:86:`, CSV
  /// `end_to_end_id`. `NOTPROVIDED` is read as absent.
  public var endToEndId: String?
  /// The customer reference (camt `Refs/InstrId`, MT940 `:61:` customer reference, CSV
  /// `reference`); when the statement has none, the bank reference.
  public var reference: String?
  /// Free text for the account owner: camt `RmtInf/Ustrd`, MT940 `:86:`, CSV `description`.
  public var remittance: String?
  /// Deterministic identity of the line, the same whichever format carried it: see
  /// `LineIdentity` and docs/RECONCILIATION.md.
  public var identity: String

  public init(
    index: Int, source: String, amountMinor: Int128, currency: String,
    direction: StatementDirection, bookingDateDays: Int32, valueDateDays: Int32?,
    bankReference: String?, endToEndId: String?, reference: String?, remittance: String?,
    identity: String
  ) {
    self.index = index
    self.source = source
    self.amountMinor = amountMinor
    self.currency = currency
    self.direction = direction
    self.bookingDateDays = bookingDateDays
    self.valueDateDays = valueDateDays
    self.bankReference = bankReference
    self.endToEndId = endToEndId
    self.reference = reference
    self.remittance = remittance
    self.identity = identity
  }
}

/// A whole statement of one account in one currency (a line may be in another: see
/// `StatementLine.currency`).
public struct Statement: Equatable, Sendable {
  public var format: StatementFormat
  /// Where the statement starts in its input, for messages: `line 1` (CSV, MT940: the line
  /// of its `{1:` block or `:20:`), `Stmt`, `Stmt[2]`, `Ntfctn[3]` (camt).
  public var source: String
  /// How the input's bytes were read as text.
  public var textEncoding: StatementTextEncoding
  /// IBAN or account id as printed (camt `Acct/Id/IBAN` or `Othr/Id`, MT940 `:25:`, CSV
  /// `account`).
  public var account: String?
  /// camt `Stmt/Id`; MT940 `:20:`, followed by `/` and `:28C:` when present; CSV none.
  public var statementId: String?
  public var currency: String
  /// camt `OPBD` (else `PRCD`) balance, MT940 `:60F:`/`:60M:`; CSV none.
  public var opening: StatementBalance?
  /// camt `CLBD` balance, MT940 `:62F:`/`:62M:`; CSV none.
  public var closing: StatementBalance?
  public var lines: [StatementLine]

  public init(
    format: StatementFormat, source: String = "line 1",
    textEncoding: StatementTextEncoding = .utf8, account: String?, statementId: String?,
    currency: String, opening: StatementBalance?, closing: StatementBalance?,
    lines: [StatementLine]
  ) {
    self.format = format
    self.source = source
    self.textEncoding = textEncoding
    self.account = account
    self.statementId = statementId
    self.currency = currency
    self.opening = opening
    self.closing = closing
    self.lines = lines
  }
}

/// Why a statement was refused. The parser stops at the first problem, in input order.
public struct StatementError: Error, Equatable, Sendable, CustomStringConvertible {
  /// Stable code, one of `StatementError.codes`.
  public var code: String
  /// `"line 7"` (CSV: the physical line where the record starts; MT940: the tag's first
  /// line; any format: bad UTF-8 or malformed XML), `"Stmt/Ntry[3]/Amt"` (camt element
  /// path), or `"input"` (the whole input, e.g. too large).
  public var location: String
  public var message: String

  public init(code: String, location: String, message: String) {
    self.code = code
    self.location = location
    self.message = message
  }

  public var description: String { "\(code) at \(location): \(message)" }

  /// The input is not well-formed in its format (CSV quoting, XML syntax, MT940 field layout,
  /// bad UTF-8, a value that cannot be read).
  public static let malformed = "MALFORMED"
  /// An amount is not a decimal number, has more decimals than the currency's scale, is out
  /// of range, or is zero on a statement line.
  public static let badAmount = "BAD_AMOUNT"
  /// A date is not a valid calendar date in the expected layout.
  public static let badDate = "BAD_DATE"
  /// A currency code the `scale` function does not know.
  public static let badCurrency = "BAD_CURRENCY"
  /// A line or balance in another currency than the statement's.
  public static let currencyMismatch = "CURRENCY_MISMATCH"
  /// A required column, element, tag or value is absent or empty.
  public static let missingField = "MISSING_FIELD"
  /// More than `StatementParser.bytesMax` bytes or `StatementParser.linesMax` lines.
  public static let tooLarge = "TOO_LARGE"
  /// The input ends too early: empty, a quote or element never closed, no closing balance.
  public static let truncated = "TRUNCATED"
  /// Well-formed, but outside what this parser accepts (another message type or version,
  /// several statements where one is asked for, a DTD, an encoding other than UTF-8 for
  /// camt, a non-booked entry).
  public static let unsupported = "UNSUPPORTED"

  /// Every code, stable forever; new codes are appended.
  public static let codes = [
    malformed, badAmount, badDate, badCurrency, currencyMismatch, missingField, tooLarge,
    truncated, unsupported,
  ]
}

extension Statement {
  /// Lines booked in another currency than the statement's.
  public var foreignCurrencyLines: Int { lines.count(where: { $0.currency != currency }) }

  /// When the statement carries both balances: the closing balance its opening balance and
  /// lines imply (opening + credits − debits), if that differs from the printed closing
  /// balance, or nil when they agree or a balance is absent. A difference means lines are
  /// missing, repeated or altered; the import reports it (it is not a parse error: the
  /// lines themselves are well-formed). Lines in another currency are left out of the sum
  /// (their amount in the statement's currency is not printed); a statement with such lines
  /// usually shows a difference for that reason (`foreignCurrencyLines` says how many). Nil
  /// also when the running sum overflows Int128, which no real statement reaches;
  /// `overflowed` says so.
  public func continuityDifference() -> (implied: Int128, printed: Int128, overflowed: Bool)? {
    guard let opening, let closing else { return nil }
    var sum = opening.amountMinor
    for l in lines where l.currency == currency {
      let (v, o) =
        l.direction == .credit
        ? sum.addingReportingOverflow(l.amountMinor)
        : sum.subtractingReportingOverflow(l.amountMinor)
      if o { return (sum, closing.amountMinor, true) }
      sum = v
    }
    return sum == closing.amountMinor ? nil : (sum, closing.amountMinor, false)
  }
}
