import TallyCore
import Testing

@testable import TallyStore

/// One ledger with something in every state a rejection needs, built in one batch:
///
/// - `cash` EUR debit; `wallet` EUR credit no_overdraft (funded 500); `capped` EUR credit
///   limit 1000; `usd`, `usd-w` USD; `closed` (closed); `held` (pending hold `h-pending`).
/// - entries `fund`, `e1`, `e-reversed` (reversed by `e-reversal`);
/// - holds `h-pending` (2 legs of 100), `h-released`, `h-captured`, `h-three` (3 legs).
func rejectionFixture(_ ledger: Ledger) throws {
  try applyAll(
    ledger,
    [
      partner("acme", name: "Acme"),
      open("cash"),
      open("wallet", normal: .credit, noOverdraft: true, partner: "acme"),
      open("capped", normal: .credit, limit: 1000, partner: "acme"),
      open("usd", "USD"),
      open("usd-w", "USD", normal: .credit),
      open("closed"),
      close("closed"),
      open("held"),
      transfer("fund", from: "wallet", to: "cash", 500),
      post("e1", [debit("cash", 10), credit("capped", 10)], ref: "R1"),
      post("e-reversed", [debit("cash", 5), credit("capped", 5)]),
      reverse("e-reversal", of: "e-reversed"),
      hold("h-pending", [debit("held", 100), credit("cash", 100)]),
      hold("h-released", [debit("cash", 7), credit("capped", 7)]),
      release("h-released"),
      hold("h-captured", [debit("cash", 3), credit("capped", 3)]),
      capture("h-captured"),
      hold("h-three", [debit("cash", 30), credit("capped", 20), credit("held", 10)]),
    ])
}

/// A command the fixture refuses, the code it must give, and optionally a detail to check.
struct RejectionCase: Sendable, CustomTestStringConvertible {
  var name: String
  var command: Command
  var code: RejectionCode
  var detail: (key: String, value: String)?
  var now: Int64 = t0

  init(
    _ name: String, _ command: Command, _ code: RejectionCode,
    detail: (String, String)? = nil, now: Int64 = t0
  ) {
    self.name = name
    self.command = command
    self.code = code
    self.detail = detail.map { (key: $0.0, value: $0.1) }
    self.now = now
  }

  var testDescription: String { "\(code.name): \(name)" }
}

private let longId = String(repeating: "e", count: 65)
private let longName = String(repeating: "a", count: 129)

let rejectionCases: [RejectionCase] = [
  // INVALID_ID
  RejectionCase(
    "entry id with a space", transfer("bad id", from: "wallet", to: "cash", 1),
    .invalidId, detail: ("field", "id")),
  RejectionCase("empty entry id", transfer("", from: "wallet", to: "cash", 1), .invalidId),
  RejectionCase(
    "entry id of 65 bytes", transfer(longId, from: "wallet", to: "cash", 1),
    .invalidId),
  RejectionCase(
    "leg account with a slash", post("x1", [debit("a/b", 1), credit("cash", 1)]),
    .invalidId, detail: ("field", "legs[0].account")),
  RejectionCase(
    "account name of 129 bytes", open(longName), .invalidId,
    detail: ("field", "account")),
  RejectionCase("partner id with a non-ASCII byte", partner("acmé"), .invalidId),
  RejectionCase(
    "account of an invalid partner id", open("new", partner: "a b"), .invalidId,
    detail: ("field", "partner")),
  RejectionCase("closing an invalid name", close("a b"), .invalidId),
  RejectionCase(
    "hold id with a space", hold("h x", [debit("cash", 1), credit("capped", 1)]),
    .invalidId),
  RejectionCase("capture of an invalid hold id", capture("h x"), .invalidId),
  RejectionCase("release of an invalid hold id", release(""), .invalidId),
  RejectionCase("reversal with an invalid id", reverse("r x", of: "e1"), .invalidId),
  RejectionCase(
    "reversal of an invalid entry id", reverse("r1", of: "e 1"), .invalidId,
    detail: ("field", "entry")),
  // INVALID_AMOUNT
  RejectionCase(
    "zero leg amount", post("x2", [debit("cash", 0), credit("capped", 0)]),
    .invalidAmount, detail: ("field", "legs[0].amount")),
  RejectionCase(
    "negative leg amount", post("x3", [debit("cash", 5), credit("capped", -5)]),
    .invalidAmount, detail: ("field", "legs[1].amount")),
  RejectionCase(
    "negative hold amount", hold("x4", [debit("cash", -1), credit("capped", -1)]),
    .invalidAmount),
  RejectionCase(
    "negative account limit", open("new", limit: -1), .invalidAmount,
    detail: ("field", "limit")),
  RejectionCase(
    "negative capture amount", capture("h-pending", .perLeg([-1, 5])),
    .invalidAmount, detail: ("field", "amounts[0]")),
  RejectionCase("capture of nothing", capture("h-pending", .uniform(0)), .invalidAmount),
  // INVALID_FIELD
  RejectionCase(
    "ref of 129 bytes",
    post("x5", [debit("cash", 1), credit("capped", 1)], ref: String(repeating: "r", count: 129)),
    .invalidField, detail: ("field", "ref")),
  RejectionCase(
    "ref with a control character",
    post("x6", [debit("cash", 1), credit("capped", 1)], ref: "a\nb"), .invalidField),
  RejectionCase(
    "empty partner name", partner("p2", name: ""), .invalidField,
    detail: ("field", "name")),
  RejectionCase(
    "asset scale 19", asset("TOKEN", scale: 19), .invalidField,
    detail: ("field", "scale")),
  RejectionCase(
    "lower-case asset code", asset("token", scale: 2), .invalidField,
    detail: ("field", "code")),
  RejectionCase(
    "asset code of 17 bytes", asset(String(repeating: "T", count: 17), scale: 2),
    .invalidField),
  RejectionCase("empty asset name", asset("TOKEN", scale: 2, name: ""), .invalidField),
  RejectionCase(
    "uniform capture of a hold with unequal legs", capture("h-three", .uniform(5)),
    .invalidField, detail: ("field", "amounts")),
  RejectionCase(
    "per-leg capture with the wrong count", capture("h-pending", .perLeg([1])),
    .invalidField, detail: ("field", "amounts")),
  // TOO_FEW_LEGS / TOO_MANY_LEGS / DUPLICATE_LEG
  RejectionCase("entry with one leg", post("x7", [debit("cash", 1)]), .tooFewLegs),
  RejectionCase("entry with no legs", post("x8", []), .tooFewLegs),
  RejectionCase("hold with one leg", hold("x9", [debit("cash", 1)]), .tooFewLegs),
  RejectionCase(
    "entry with 129 legs",
    post("x10", names(128, bytes: 8).map { debit($0, 1) } + [credit("cash", 128)]),
    .tooManyLegs),
  RejectionCase(
    "one account on both sides",
    post("x11", [debit("cash", 1), credit("cash", 1)]), .duplicateLeg,
    detail: ("account", "cash")),
  RejectionCase(
    "one account twice among three legs",
    post("x12", [debit("cash", 2), credit("capped", 1), credit("cash", 1)]), .duplicateLeg),
  // UNKNOWN_CURRENCY
  RejectionCase(
    "account in an unknown code", open("new", "ABC"), .unknownCurrency,
    detail: ("currency", "ABC")),
  RejectionCase("account in a lower-case ISO code", open("new", "eur"), .unknownCurrency),
  RejectionCase("account in a withdrawn ISO code", open("new", "HRK"), .unknownCurrency),
  // ID_CONFLICT
  RejectionCase(
    "entry id reused with another amount",
    post("e1", [debit("cash", 11), credit("capped", 11)], ref: "R1"), .idConflict,
    detail: ("field", "legs")),
  RejectionCase(
    "hold id reused by an entry",
    post("h-pending", [debit("held", 100), credit("cash", 100)]), .idConflict,
    detail: ("field", "kind")),
  // ALREADY_EXISTS
  RejectionCase(
    "account reopened in another currency", open("cash", "USD"), .alreadyExists,
    detail: ("field", "currency")),
  RejectionCase(
    "partner recreated with another name", partner("acme", name: "Other"),
    .alreadyExists, detail: ("field", "name")),
  RejectionCase(
    "asset declared with an ISO 4217 code", asset("EUR", scale: 2),
    .alreadyExists, detail: ("asset", "EUR")),
  // PARTNER_NOT_FOUND
  RejectionCase(
    "account of a missing partner", open("new", partner: "nobody"),
    .partnerNotFound, detail: ("partner", "nobody")),
  // ACCOUNT_NOT_FOUND
  RejectionCase(
    "entry to a missing account",
    post("x13", [debit("cash", 1), credit("ghost", 1)]), .accountNotFound,
    detail: ("account", "ghost")),
  RejectionCase(
    "hold on a missing account",
    hold("x14", [debit("ghost", 1), credit("cash", 1)]), .accountNotFound),
  RejectionCase("closing a missing account", close("ghost"), .accountNotFound),
  // ACCOUNT_CLOSED
  RejectionCase(
    "entry to a closed account",
    post("x15", [debit("closed", 1), credit("cash", 1)]), .accountClosed,
    detail: ("account", "closed")),
  RejectionCase(
    "hold on a closed account",
    hold("x16", [debit("cash", 1), credit("closed", 1)]), .accountClosed),
  // CURRENCY_MISMATCH
  RejectionCase(
    "leg asserting USD on a EUR account",
    post("x17", [debit("cash", 1, currency: "USD"), credit("capped", 1)]), .currencyMismatch,
    detail: ("account", "cash")),
  RejectionCase(
    "entry asserting USD over EUR accounts",
    post("x18", [debit("cash", 1), credit("capped", 1)], currency: "USD"), .currencyMismatch),
  RejectionCase(
    "hold asserting EUR on a USD leg",
    hold("x19", [debit("usd", 1), credit("usd-w", 1, currency: "EUR")]), .currencyMismatch),
  // UNBALANCED
  RejectionCase(
    "debits exceed credits",
    post("x20", [debit("cash", 10), credit("capped", 9)]), .unbalanced,
    detail: ("currency", "EUR")),
  RejectionCase(
    "balanced in total but not per currency",
    post("x21", [debit("cash", 10), credit("usd-w", 10)]), .unbalanced),
  RejectionCase(
    "unbalanced hold", hold("x22", [debit("cash", 10), credit("capped", 11)]),
    .unbalanced),
  RejectionCase(
    "per-leg capture that does not balance",
    capture("h-three", .perLeg([30, 20, 5])), .unbalanced),
  // INSUFFICIENT_FUNDS
  RejectionCase(
    "spending more than a no_overdraft wallet holds",
    transfer("x23", from: "cash", to: "wallet", 501), .insufficientFunds,
    detail: ("account", "wallet")),
  RejectionCase(
    "holding more than a no_overdraft wallet holds",
    hold("x24", [debit("wallet", 501), credit("cash", 501)]), .insufficientFunds),
  // LIMIT_EXCEEDED (capped holds 10 + 3 posted, 20 pending from h-three)
  RejectionCase(
    "crediting past the limit",
    post("x25", [debit("cash", 968), credit("capped", 968)]), .limitExceeded,
    detail: ("account", "capped")),
  RejectionCase(
    "holding past the limit",
    hold("x26", [debit("cash", 968), credit("capped", 968)]), .limitExceeded),
  // ENTRY_NOT_FOUND / ALREADY_REVERSED
  RejectionCase(
    "reversing a missing entry", reverse("r2", of: "nope"), .entryNotFound,
    detail: ("entry", "nope")),
  RejectionCase("reversing a hold id", reverse("r3", of: "h-pending"), .entryNotFound),
  RejectionCase(
    "reversing an entry twice", reverse("r4", of: "e-reversed"), .alreadyReversed,
    detail: ("entry", "e-reversed")),
  // HOLD_NOT_FOUND / HOLD_NOT_PENDING / CAPTURE_EXCEEDS_HOLD
  RejectionCase(
    "capturing a missing hold", capture("nope"), .holdNotFound,
    detail: ("hold", "nope")),
  RejectionCase("releasing a missing hold", release("nope"), .holdNotFound),
  RejectionCase(
    "capturing a released hold", capture("h-released"), .holdNotPending,
    detail: ("state", "released")),
  RejectionCase(
    "releasing a captured hold", release("h-captured"), .holdNotPending,
    detail: ("state", "captured")),
  RejectionCase(
    "capturing a captured hold with other amounts",
    capture("h-captured", .uniform(1)), .holdNotPending),
  RejectionCase(
    "capturing more than held", capture("h-pending", .uniform(101)),
    .captureExceedsHold, detail: ("field", "amounts[0]")),
  RejectionCase(
    "capturing more than held on one leg",
    capture("h-three", .perLeg([30, 20, 11])), .captureExceedsHold,
    detail: ("field", "amounts[2]")),
  // ACCOUNT_NOT_EMPTY / ACCOUNT_HAS_HOLDS
  RejectionCase(
    "closing an account with a balance", close("wallet"), .accountNotEmpty,
    detail: ("account", "wallet")),
  RejectionCase(
    "closing an account with a pending hold", close("held"), .accountHasHolds,
    detail: ("account", "held")),
  // INVALID_DEADLINE
  RejectionCase(
    "hold deadline equal to now",
    hold("x27", [debit("cash", 1), credit("capped", 1)], deadline: t0 + 3600 * oneSecond),
    .invalidDeadline, detail: ("field", "deadline"), now: t0 + 3600 * oneSecond),
  RejectionCase(
    "hold deadline in the past",
    hold("x28", [debit("cash", 1), credit("capped", 1)], deadline: t0 - 1), .invalidDeadline),
]

@Suite("Rejections change nothing")
struct RejectionTests {
  @Test(
    "Each rule's rejection has its code and leaves head, chain and balances unchanged",
    arguments: rejectionCases)
  func rejectionChangesNothing(_ c: RejectionCase) throws {
    try withLedger { ledger in
      try rejectionFixture(ledger)
      let r = try expectRejected(ledger, c.command, code: c.code, now: c.now)
      if let d = c.detail {
        #expect(r?.details[d.key] == d.value, "details: \(r?.details ?? [:])")
      }
    }
  }

  @Test("Every rejection code apply can produce is covered by a case")
  func everyApplyCodeIsCovered() {
    let covered = Set(rejectionCases.map(\.code))
    // INVALID_METADATA is refused when the command is built (Metadata.make), see
    // LimitTests; OVERFLOW has its own tests; INVALID_JSON and LINE_TOO_LONG belong to the
    // request parser; the reconciliation codes are covered in ReconStoreTests.
    let elsewhere: Set<RejectionCode> = [
      .invalidMetadata, .overflow, .invalidJson, .lineTooLong, .statementInvalid,
      .statementAccountMismatch, .itemNotFound, .itemState,
    ]
    #expect(covered.union(elsewhere) == Set(RejectionCode.allCases))
  }

  @Test("The first failing check names the rejection: shape before references and balance")
  func validationOrder() throws {
    try withLedger { ledger in
      try rejectionFixture(ledger)
      // Invalid id and unbalanced, missing account: the id wins.
      try expectRejected(
        ledger, post("a b", [debit("ghost", 1), credit("cash", 2)]), code: .invalidId)
      // One leg to a missing account: the leg count wins.
      try expectRejected(ledger, post("x", [debit("ghost", 1)]), code: .tooFewLegs)
      // Zero amount on a missing account: the amount wins over existence.
      try expectRejected(
        ledger, post("x", [debit("ghost", 0), credit("cash", 0)]), code: .invalidAmount)
      // A missing account in a leg after a closed one: leg order decides.
      try expectRejected(
        ledger, post("x", [debit("closed", 1), credit("ghost", 1)]), code: .accountClosed)
      try expectRejected(
        ledger, post("x", [debit("ghost", 1), credit("closed", 1)]), code: .accountNotFound)
      // Currency assertion before balance.
      try expectRejected(
        ledger, post("x", [debit("cash", 1, currency: "USD"), credit("capped", 2)]),
        code: .currencyMismatch)
      // Unbalanced before the balance rules.
      try expectRejected(
        ledger, post("x", [debit("wallet", 900), credit("cash", 901)]), code: .unbalanced)
      // Balance rules in leg order: wallet (no_overdraft) first, then capped (limit).
      try expectRejected(
        ledger, post("x", [debit("wallet", 2000), credit("capped", 2000)]),
        code: .insufficientFunds)
      // An existing id is a conflict even when the new content would be refused otherwise.
      try expectRejected(
        ledger, post("e1", [debit("ghost", 1), credit("cash", 1)]), code: .idConflict)
      // A deadline in the past is checked after the id.
      let r = try expectRejected(
        ledger, hold("h-pending", [debit("held", 100), credit("cash", 100)], deadline: t0 - 1),
        code: .idConflict)
      #expect(r?.details["field"] == "deadline")
    }
  }
}

@Suite("Overflow")
struct OverflowTests {
  @Test("A second entry near Int128.max into one account is OVERFLOW, not a crash")
  func secondHugeEntryOverflows() throws {
    try withLedger { ledger in
      let big = Int128.max - 10
      try applyAll(ledger, [open("big-a"), open("big-b", normal: .credit)])
      try expectApplied(ledger, post("o1", [debit("big-a", big), credit("big-b", big)]))
      let r = try expectRejected(
        ledger, post("o2", [debit("big-a", big), credit("big-b", big)]), code: .overflow)
      #expect(r?.details["account"] == "big-a")
      #expect(try ledger.balances("big-a").postedDebits == big)
      // Up to the exact maximum is still fine.
      try expectApplied(ledger, post("o3", [debit("big-a", 10), credit("big-b", 10)]))
      #expect(try ledger.balances("big-a").postedDebits == Int128.max)
      try expectRejected(
        ledger, post("o4", [debit("big-a", 1), credit("big-b", 1)]), code: .overflow)
      #expect(try ledger.verify().ok)
    }
  }

  @Test("Legs whose per-currency sum leaves Int128 are OVERFLOW")
  func legSumOverflows() throws {
    try withLedger { ledger in
      try applyAll(
        ledger, [open("a"), open("b"), open("c", normal: .credit), open("d", normal: .credit)])
      try expectRejected(
        ledger,
        post("o", [debit("a", .max), debit("b", 1), credit("c", .max), credit("d", 1)]),
        code: .overflow)
    }
  }

  @Test("Pending columns near Int128.max overflow on a second hold")
  func pendingOverflows() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)])
      try expectApplied(ledger, hold("h1", [debit("a", .max), credit("b", .max)]))
      try expectRejected(ledger, hold("h2", [debit("a", 1), credit("b", 1)]), code: .overflow)
      #expect(try ledger.balances("a").pendingDebits == .max)
    }
  }
}
