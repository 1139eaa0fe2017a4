/// Why a command was refused. Raw values are stable forever: they are on the wire, in
/// docs/PROTOCOL.md and in tests. Append new codes; never renumber.
///
/// Checks run in the order of the cases below (most fundamental first); the first
/// failing check names the rejection.
public enum RejectionCode: UInt16, Sendable, CaseIterable, CustomStringConvertible {
  /// An id or name is empty, too long, or has a byte outside its charset.
  case invalidId = 1
  /// An amount is zero, negative, not an integer, or has more decimals than the scale.
  case invalidAmount = 2
  /// A field is missing, of the wrong type, or out of range (side, value date, scale…).
  case invalidField = 3
  /// Metadata has too many pairs, an empty or oversized key or value, or a repeated key.
  case invalidMetadata = 4
  /// Fewer than 2 legs.
  case tooFewLegs = 5
  /// More than `Limits.legsPerEntryMax` legs.
  case tooManyLegs = 6
  /// An account appears in more than one leg of the same entry (our policy: one leg per
  /// account; net the amounts on the client).
  case duplicateLeg = 7
  /// The currency or asset code is not ISO 4217 and was not declared.
  case unknownCurrency = 8
  /// The id already names something with different content.
  case idConflict = 9
  /// A partner, account or asset with this id exists with different attributes.
  case alreadyExists = 10
  case partnerNotFound = 11
  case accountNotFound = 12
  case accountClosed = 13
  /// A leg's or the entry's stated currency is not the account's currency.
  case currencyMismatch = 14
  /// Debits and credits differ for at least one currency.
  case unbalanced = 15
  /// A sum or balance would leave the Int128 range.
  case overflow = 16
  /// A `no_overdraft` account's available balance would go below zero.
  case insufficientFunds = 17
  /// An account's balance plus pending inflows would exceed its limit.
  case limitExceeded = 18
  case entryNotFound = 19
  /// The entry was already reversed (an entry is reversed at most once).
  case alreadyReversed = 20
  case holdNotFound = 21
  /// The hold was already captured, released or expired (differently from this request).
  case holdNotPending = 22
  /// A captured amount exceeds the held amount of its leg.
  case captureExceedsHold = 23
  /// Closing an account whose posted balance is not zero.
  case accountNotEmpty = 24
  /// Closing an account with pending amounts (open holds).
  case accountHasHolds = 25
  /// A hold deadline that is not after the current time.
  case invalidDeadline = 26
  /// A request line is not a valid JSON object (syntax, duplicate key, limits).
  case invalidJson = 27
  /// A request line is longer than its limit.
  case lineTooLong = 28
  /// A statement could not be read (details: the parser's `code` and the `location`).
  case statementInvalid = 29
  /// The statement names another account (IBAN) than the ledger account's `iban` metadata.
  case statementAccountMismatch = 30
  /// No reconciliation item with this number (on an account the caller may see).
  case itemNotFound = 31
  /// The item's state does not allow this (e.g. resolving a matched item).
  case itemState = 32

  /// The wire name, e.g. `INSUFFICIENT_FUNDS`.
  public var name: String {
    switch self {
    case .invalidId: "INVALID_ID"
    case .invalidAmount: "INVALID_AMOUNT"
    case .invalidField: "INVALID_FIELD"
    case .invalidMetadata: "INVALID_METADATA"
    case .tooFewLegs: "TOO_FEW_LEGS"
    case .tooManyLegs: "TOO_MANY_LEGS"
    case .duplicateLeg: "DUPLICATE_LEG"
    case .unknownCurrency: "UNKNOWN_CURRENCY"
    case .idConflict: "ID_CONFLICT"
    case .alreadyExists: "ALREADY_EXISTS"
    case .partnerNotFound: "PARTNER_NOT_FOUND"
    case .accountNotFound: "ACCOUNT_NOT_FOUND"
    case .accountClosed: "ACCOUNT_CLOSED"
    case .currencyMismatch: "CURRENCY_MISMATCH"
    case .unbalanced: "UNBALANCED"
    case .overflow: "OVERFLOW"
    case .insufficientFunds: "INSUFFICIENT_FUNDS"
    case .limitExceeded: "LIMIT_EXCEEDED"
    case .entryNotFound: "ENTRY_NOT_FOUND"
    case .alreadyReversed: "ALREADY_REVERSED"
    case .holdNotFound: "HOLD_NOT_FOUND"
    case .holdNotPending: "HOLD_NOT_PENDING"
    case .captureExceedsHold: "CAPTURE_EXCEEDS_HOLD"
    case .accountNotEmpty: "ACCOUNT_NOT_EMPTY"
    case .accountHasHolds: "ACCOUNT_HAS_HOLDS"
    case .invalidDeadline: "INVALID_DEADLINE"
    case .invalidJson: "INVALID_JSON"
    case .lineTooLong: "LINE_TOO_LONG"
    case .statementInvalid: "STATEMENT_INVALID"
    case .statementAccountMismatch: "STATEMENT_ACCOUNT_MISMATCH"
    case .itemNotFound: "ITEM_NOT_FOUND"
    case .itemState: "ITEM_STATE"
    }
  }

  public var description: String { name }
}

/// A refused command: a stable code, a human message, and details (field names, ids).
public struct Rejection: Error, Equatable, Sendable, CustomStringConvertible {
  public var code: RejectionCode
  public var message: String
  /// Machine-readable context, e.g. `["field": "legs[1].amount"]` or `["account": "a"]`.
  public var details: [String: String]

  public init(_ code: RejectionCode, _ message: String, _ details: [String: String] = [:]) {
    self.code = code
    self.message = message
    self.details = details
  }

  public var description: String { "\(code.name): \(message)" }
}
