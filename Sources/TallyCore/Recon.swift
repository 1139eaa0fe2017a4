/// Reconciliation's values: imported statement lines (items), matches, and the states an item
/// moves through (docs/RECONCILIATION.md, "States"). Statement parsing and the matching rules
/// live in TallyReconcile; what they decide reaches the log as the events below.

/// The statement formats an import can come from (the `u8` in `recon_imported`).
public enum ReconFormat: UInt8, Sendable, CaseIterable, CustomStringConvertible {
  case csv = 0
  case camt053 = 1
  case mt940 = 2
  /// camt.054 debit/credit notifications (only in version-2 `recon_imported` events).
  case camt054 = 3

  public var description: String {
    switch self {
    case .csv: "csv"
    case .camt053: "camt053"
    case .mt940: "mt940"
    case .camt054: "camt054"
    }
  }

  public init?(name: String) {
    guard let f = Self.allCases.first(where: { $0.description == name }) else { return nil }
    self = f
  }
}

/// How a statement's bytes were read as text (the `u8` in a version-2 `recon_imported`
/// header).
public enum ReconTextEncoding: UInt8, Sendable, CaseIterable, CustomStringConvertible {
  case utf8 = 0
  case iso88591 = 1
  case windows1252 = 2

  public var description: String {
    switch self {
    case .utf8: "utf-8"
    case .iso88591: "iso-8859-1"
    case .windows1252: "windows-1252"
    }
  }

  public init?(name: String) {
    guard let e = Self.allCases.first(where: { $0.description == name }) else { return nil }
    self = e
  }
}

/// Which way money moved, from the statement's side: `credit` = into the account, `debit` =
/// out of it. On the ledger, a movement on the account's normal side is a `credit`.
public enum ReconDirection: UInt8, Sendable, Equatable, CustomStringConvertible {
  case debit = 0
  case credit = 1

  public var description: String { self == .debit ? "debit" : "credit" }

  /// The statement direction of a ledger leg on an account with normal side `normal`.
  public static func of(leg side: Side, normal: Side) -> ReconDirection {
    side == normal ? .credit : .debit
  }
}

/// The rule that made a match, in the order the rules run.
public enum ReconRule: UInt8, Sendable, CaseIterable, CustomStringConvertible {
  case reference = 1
  case amountDate = 2
  case sum = 3

  public var description: String {
    switch self {
    case .reference: "reference"
    case .amountDate: "amount_date"
    case .sum: "sum"
    }
  }
}

/// An item's state: unmatched → matched | discrepancy (a match), matched | discrepancy →
/// unmatched (an unmatch), unmatched | discrepancy → resolved (ops). Nothing else.
public enum ReconState: UInt8, Sendable, CaseIterable, CustomStringConvertible {
  case unmatched = 0
  case matched = 1
  case discrepancy = 2
  case resolved = 3

  public var description: String {
    switch self {
    case .unmatched: "unmatched"
    case .matched: "matched"
    case .discrepancy: "discrepancy"
    case .resolved: "resolved"
    }
  }

  public init?(name: String) {
    guard let s = Self.allCases.first(where: { $0.description == name }) else { return nil }
    self = s
  }

  /// Still needs someone's attention (counted as unreconciled in partner views).
  public var isOpen: Bool { self == .unmatched || self == .discrepancy }
}

/// A balance printed in a statement: signed minor units (negative: overdrawn) on a date.
public struct ReconBalance: Equatable, Sendable {
  public var amountMinor: Int128
  public var dateDays: Int32
  public init(amountMinor: Int128, dateDays: Int32) {
    self.amountMinor = amountMinor
    self.dateDays = dateDays
  }
}

/// One statement line as the log keeps it.
public struct ReconLine: Equatable, Sendable {
  /// The format-independent identity (TallyReconcile's `LineIdentity`): a line whose
  /// identity the account already has is a duplicate and is not imported again.
  public var identity: String
  /// Where the line was in its statement (`line 7`, `Stmt/Ntry[3]`).
  public var source: String
  public var amountMinor: Int128
  /// The line's currency when it differs from the statement's (a foreign payment, a fee):
  /// such an item is never matched and starts in `discrepancy` (reason `CURRENCY`). Nil: the
  /// statement's currency, which is the account's.
  public var currency: String?
  public var direction: ReconDirection
  public var bookingDateDays: Int32
  public var valueDateDays: Int32?
  public var bankReference: String?
  public var endToEndId: String?
  public var reference: String?
  public var remittance: String?

  public init(
    identity: String, source: String, amountMinor: Int128, currency: String? = nil,
    direction: ReconDirection, bookingDateDays: Int32, valueDateDays: Int32? = nil,
    bankReference: String? = nil, endToEndId: String? = nil, reference: String? = nil,
    remittance: String? = nil
  ) {
    self.identity = identity
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
  }

  /// The date matching compares: the value date, else the booking date.
  public var dateDays: Int32 { valueDateDays ?? bookingDateDays }

  /// Whether the line is booked in another currency than its statement's.
  public var isForeignCurrency: Bool { currency != nil }

  /// What the line adds to its account's per-state amounts: its amount in the account's
  /// currency, and 0 for a line in another currency (amounts of two currencies are never
  /// summed; such items are counted, and listed with their own currency).
  public var accountAmountMinor: Int128 { currency == nil ? amountMinor : 0 }
}

/// The statement an import came from (the same in every part of one import).
public struct ReconStatementHeader: Equatable, Sendable {
  public var format: ReconFormat
  /// The statement's own id (camt `Stmt/Id`, MT940 `:20:`), if it has one.
  public var statementId: String?
  /// The statement's account as printed (IBAN or other id), if it names one.
  public var statementAccount: String?
  public var currency: String
  public var opening: ReconBalance?
  public var closing: ReconBalance?
  /// First and last day the statement covers: its balances' and lines' dates.
  public var periodFromDays: Int32
  public var periodToDays: Int32
  /// Lines in the statement, and how many of them the account already had.
  public var linesRead: UInt32
  public var duplicates: UInt32
  /// How the statement's bytes were read as text. Nil only in version-1 events (written
  /// before it was recorded: those were UTF-8); every import records it.
  public var textEncoding: ReconTextEncoding?

  public init(
    format: ReconFormat, statementId: String?, statementAccount: String?, currency: String,
    opening: ReconBalance?, closing: ReconBalance?, periodFromDays: Int32, periodToDays: Int32,
    linesRead: UInt32, duplicates: UInt32, textEncoding: ReconTextEncoding? = nil
  ) {
    self.textEncoding = textEncoding
    self.format = format
    self.statementId = statementId
    self.statementAccount = statementAccount
    self.currency = currency
    self.opening = opening
    self.closing = closing
    self.periodFromDays = periodFromDays
    self.periodToDays = periodToDays
    self.linesRead = linesRead
    self.duplicates = duplicates
  }
}

/// Event `recon_imported`: one part of an import (a statement's new lines are split into
/// parts of at most `Limits.reconLinesPerEventMax`, so no event grows without bound). The
/// lines become items numbered on from the last item, in order.
public struct ReconImported: Equatable, Sendable {
  public var account: String
  public var header: ReconStatementHeader
  /// 0-based part of this import, and how many parts it has.
  public var part: UInt32
  public var parts: UInt32
  public var lines: [ReconLine]

  public init(
    account: String, header: ReconStatementHeader, part: UInt32, parts: UInt32,
    lines: [ReconLine]
  ) {
    self.account = account
    self.header = header
    self.part = part
    self.parts = parts
    self.lines = lines
  }
}

/// One match inside a `recon_matched` event.
public struct ReconMatch: Equatable, Sendable {
  public var rule: ReconRule
  /// `matched`, or `discrepancy` (rule `reference` only: one item, one entry).
  public var state: ReconState
  /// Item numbers, ascending.
  public var items: [UInt64]
  /// Entry ids (or hold ids, for a captured hold), in the order the rule found them.
  public var entries: [String]
  /// For a discrepancy: the line's amount minus the entry's, and what else differs.
  public var amountDifferenceMinor: Int128
  public var currencyDiffers: Bool
  public var directionDiffers: Bool

  public init(
    rule: ReconRule, state: ReconState = .matched, items: [UInt64], entries: [String],
    amountDifferenceMinor: Int128 = 0, currencyDiffers: Bool = false,
    directionDiffers: Bool = false
  ) {
    self.rule = rule
    self.state = state
    self.items = items
    self.entries = entries
    self.amountDifferenceMinor = amountDifferenceMinor
    self.currencyDiffers = currencyDiffers
    self.directionDiffers = directionDiffers
  }
}

/// Event `recon_matched`: matches the rules found on one account, numbered on from the
/// last match, in order.
public struct ReconMatched: Equatable, Sendable {
  public var account: String
  public var matches: [ReconMatch]
  public init(account: String, matches: [ReconMatch]) {
    self.account = account
    self.matches = matches
  }
}

/// Event and command `recon_resolved`: ops closes an unmatched or discrepant item.
public struct ReconResolved: Equatable, Sendable {
  public var item: UInt64
  public var reason: String
  /// Who resolved it: the key id online, `--by` (or the user) offline.
  public var by: String
  /// The entry that corrects the difference, if one was posted.
  public var entry: String?
  public init(item: UInt64, reason: String, by: String, entry: String? = nil) {
    self.item = item
    self.reason = reason
    self.by = by
    self.entry = entry
  }
}

/// Event and command `recon_unmatched`: undoes the match an item is in (all of its items go
/// back to unmatched, its entries become candidates again).
public struct ReconUnmatched: Equatable, Sendable {
  public var item: UInt64
  public var reason: String?
  public var by: String
  public init(item: UInt64, reason: String? = nil, by: String) {
    self.item = item
    self.reason = reason
    self.by = by
  }
}

/// One parsed statement and the ledger account it is imported for.
public struct ReconStatementSpec: Equatable, Sendable {
  public var account: String
  public var header: ReconStatementHeader
  public var lines: [ReconLine]
  /// Set when `lines` is one slice of a statement imported in several write groups
  /// (docs/RECONCILIATION.md, "Imports in write groups"): the slice is one `recon_imported`
  /// event, part `part` of `parts`, and the header's counts (`linesRead`, `duplicates`) are
  /// the whole statement's, as planned, and kept as given.
  public var slice: (part: UInt32, parts: UInt32)?

  public init(
    account: String, header: ReconStatementHeader, lines: [ReconLine],
    slice: (part: UInt32, parts: UInt32)? = nil
  ) {
    self.account = account
    self.header = header
    self.lines = lines
    self.slice = slice
  }

  public static func == (a: Self, b: Self) -> Bool {
    a.account == b.account && a.header == b.header && a.lines == b.lines
      && a.slice?.part == b.slice?.part && a.slice?.parts == b.slice?.parts
  }
}

/// What the import command carries: the statements of one input, in input order, each for
/// its ledger account. They are checked together and imported together, or not at all.
public struct ReconImportSpec: Equatable, Sendable {
  public var statements: [ReconStatementSpec]

  public init(statements: [ReconStatementSpec]) {
    self.statements = statements
  }

  /// One statement.
  public init(account: String, header: ReconStatementHeader, lines: [ReconLine]) {
    self.statements = [ReconStatementSpec(account: account, header: header, lines: lines)]
  }
}

// MARK: - projections

/// An imported statement line and where it stands.
public struct ReconItemRecord: Equatable, Sendable {
  /// Dense, 1-based, in the order lines were imported (ledger-wide).
  public var number: UInt64
  public var account: String
  public var line: ReconLine
  public var importedSeq: UInt64
  public var state: ReconState
  /// The match the item is in (0: none); kept after resolution of a discrepancy.
  public var match: UInt64
  /// Seq of the event that gave the item its state.
  public var stateSeq: UInt64
  /// Set when resolved.
  public var resolution: ReconResolved?

  public init(
    number: UInt64, account: String, line: ReconLine, importedSeq: UInt64,
    state: ReconState = .unmatched, match: UInt64 = 0, stateSeq: UInt64,
    resolution: ReconResolved? = nil
  ) {
    self.number = number
    self.account = account
    self.line = line
    self.importedSeq = importedSeq
    self.state = state
    self.match = match
    self.stateSeq = stateSeq
    self.resolution = resolution
  }

  /// The item's state machine. Every transition not listed is impossible: `decide` refuses
  /// it before an event exists, and replay applies only what `decide` produced, so a
  /// forbidden transition here is a corrupt log and is reported, never applied.
  public enum Transition { case match(UInt64, ReconState), unmatch, resolve(ReconResolved) }

  public mutating func apply(_ t: Transition, seq: UInt64) -> Bool {
    switch (state, t) {
    case (.unmatched, .match(let m, let to)) where to == .matched || to == .discrepancy:
      state = to
      match = m
    case (.matched, .unmatch), (.discrepancy, .unmatch):
      state = .unmatched
      match = 0
    case (.unmatched, .resolve(let r)), (.discrepancy, .resolve(let r)):
      state = .resolved
      resolution = r
    default:
      return false
    }
    stateSeq = seq
    return true
  }
}

/// A match as the projection keeps it.
public struct ReconMatchRecord: Equatable, Sendable {
  public var number: UInt64
  public var account: String
  public var match: ReconMatch
  public var matchedSeq: UInt64
  /// Seq of the unmatch that undid it (0: standing).
  public var undoneSeq: UInt64
  public init(
    number: UInt64, account: String, match: ReconMatch, matchedSeq: UInt64, undoneSeq: UInt64
  ) {
    self.number = number
    self.account = account
    self.match = match
    self.matchedSeq = matchedSeq
    self.undoneSeq = undoneSeq
  }
}

/// Per reconciled account: what was imported, and counts and amounts per item state.
public struct ReconAccountRecord: Equatable, Sendable {
  public var statements: UInt64 = 0
  /// The days all imported statements cover together (first day, last day).
  public var periodFromDays: Int32 = .max
  public var periodToDays: Int32 = .min
  public var lastImportSeq: UInt64 = 0
  /// Indexed by `ReconState.rawValue`.
  public var counts: [UInt64] = [0, 0, 0, 0]
  /// Sum of the items' amounts (minor units, direction ignored) per state.
  public var amountsMinor: [Int128] = [0, 0, 0, 0]
  public init() {}
}

/// Per partner: activity counters that a view shows without scanning the log.
public struct PartnerStats: Equatable, Sendable {
  /// `entry_posted` events with a leg on one of the partner's accounts.
  public var entries: UInt64 = 0
  /// Holds placed with such a leg, and how many of them are still pending.
  public var holds: UInt64 = 0
  public var openHolds: UInt64 = 0
  /// Items on the partner's accounts that are unmatched or discrepant.
  public var unreconciled: UInt64 = 0
  /// The last event that moved money on one of its accounts (0: none).
  public var lastActivitySeq: UInt64 = 0
  public var lastActivityNanos: Int64 = 0
  public init() {}
}
