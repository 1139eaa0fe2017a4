import Testing

@testable import TallyCore

@Suite("Rejection codes")
struct RejectionCodeTests {
  /// The wire contract: renumbering, renaming or removing a code fails here.
  @Test("Rejection codes keep their raw values and wire names")
  func test_rejection_codes_are_stable() {
    let expected: [(UInt16, RejectionCode, String)] = [
      (1, .invalidId, "INVALID_ID"),
      (2, .invalidAmount, "INVALID_AMOUNT"),
      (3, .invalidField, "INVALID_FIELD"),
      (4, .invalidMetadata, "INVALID_METADATA"),
      (5, .tooFewLegs, "TOO_FEW_LEGS"),
      (6, .tooManyLegs, "TOO_MANY_LEGS"),
      (7, .duplicateLeg, "DUPLICATE_LEG"),
      (8, .unknownCurrency, "UNKNOWN_CURRENCY"),
      (9, .idConflict, "ID_CONFLICT"),
      (10, .alreadyExists, "ALREADY_EXISTS"),
      (11, .partnerNotFound, "PARTNER_NOT_FOUND"),
      (12, .accountNotFound, "ACCOUNT_NOT_FOUND"),
      (13, .accountClosed, "ACCOUNT_CLOSED"),
      (14, .currencyMismatch, "CURRENCY_MISMATCH"),
      (15, .unbalanced, "UNBALANCED"),
      (16, .overflow, "OVERFLOW"),
      (17, .insufficientFunds, "INSUFFICIENT_FUNDS"),
      (18, .limitExceeded, "LIMIT_EXCEEDED"),
      (19, .entryNotFound, "ENTRY_NOT_FOUND"),
      (20, .alreadyReversed, "ALREADY_REVERSED"),
      (21, .holdNotFound, "HOLD_NOT_FOUND"),
      (22, .holdNotPending, "HOLD_NOT_PENDING"),
      (23, .captureExceedsHold, "CAPTURE_EXCEEDS_HOLD"),
      (24, .accountNotEmpty, "ACCOUNT_NOT_EMPTY"),
      (25, .accountHasHolds, "ACCOUNT_HAS_HOLDS"),
      (26, .invalidDeadline, "INVALID_DEADLINE"),
      (27, .invalidJson, "INVALID_JSON"),
      (28, .lineTooLong, "LINE_TOO_LONG"),
      (29, .statementInvalid, "STATEMENT_INVALID"),
      (30, .statementAccountMismatch, "STATEMENT_ACCOUNT_MISMATCH"),
      (31, .itemNotFound, "ITEM_NOT_FOUND"),
      (32, .itemState, "ITEM_STATE"),
    ]
    #expect(RejectionCode.allCases.count == expected.count)
    for (raw, code, name) in expected {
      #expect(code.rawValue == raw, "\(name)")
      #expect(RejectionCode(rawValue: raw) == code)
      #expect(code.name == name)
      #expect(code.description == name)
    }
    #expect(RejectionCode(rawValue: 0) == nil)
    #expect(RejectionCode(rawValue: 33) == nil)
  }

  @Test("A rejection describes itself as CODE: message and keeps its details")
  func rejectionDescription() {
    let r = Rejection(.insufficientFunds, "account w would be overdrawn", ["account": "w"])
    #expect(r.description == "INSUFFICIENT_FUNDS: account w would be overdrawn")
    #expect(r.details == ["account": "w"])
  }

  @Test("Event type numbers and names are stable")
  func eventTypesAreStable() {
    let expected: [(UInt8, EventType, String)] = [
      (1, .partnerCreated, "partner_created"), (2, .assetDeclared, "asset_declared"),
      (3, .accountOpened, "account_opened"), (4, .accountClosed, "account_closed"),
      (5, .entryPosted, "entry_posted"), (6, .holdPlaced, "hold_placed"),
      (7, .holdCaptured, "hold_captured"), (8, .holdReleased, "hold_released"),
      (9, .holdExpired, "hold_expired"),
      (10, .reconImported, "recon_imported"),
      (11, .reconMatched, "recon_matched"),
      (12, .reconResolved, "recon_resolved"),
      (13, .reconUnmatched, "recon_unmatched"),
    ]
    #expect(EventType.allCases.count == expected.count)
    for (raw, type, name) in expected {
      #expect(type.rawValue == raw)
      #expect(type.description == name)
    }
  }
}
