/// Results of the partner and reconciliation queries and of a statement import, shared by
/// the store (which computes them) and the protocol views (which render them).

/// A statement balance compared with the ledger's balance of the account on that day.
public struct ReconBalanceCheck: Equatable, Sendable {
  public var dateDays: Int32
  /// As printed (signed: positive is a balance on the account's normal side).
  public var statementMinor: Int128
  /// The ledger's posted balance on the normal side, after every event booked up to the
  /// end of that day (opening: the end of the day before) — `asOfSeq` is the last of them.
  public var ledgerMinor: Int128
  public var asOfSeq: UInt64
  /// Statement minus ledger; 0 when they agree.
  public var differenceMinor: Int128

  public init(
    dateDays: Int32, statementMinor: Int128, ledgerMinor: Int128, asOfSeq: UInt64,
    differenceMinor: Int128
  ) {
    self.dateDays = dateDays
    self.statementMinor = statementMinor
    self.ledgerMinor = ledgerMinor
    self.asOfSeq = asOfSeq
    self.differenceMinor = differenceMinor
  }
}

/// One statement of an import: where it went and what it did.
public struct ReconStatementReport: Equatable, Sendable {
  /// 1-based position in the input, and where it starts (`line 1`, `Stmt[2]`).
  public var index: Int
  public var source: String
  public var statementId: String?
  /// The statement's account as printed (IBAN or id), if it names one.
  public var statementAccount: String?
  /// The ledger account it was imported for.
  public var account: String
  public var currency: String
  public var linesRead: Int
  public var new: Int = 0
  public var duplicates: Int = 0
  /// New lines in another currency than the statement's (imported in `discrepancy`).
  public var foreignCurrency: Int = 0
  public var matchedByRule: [ReconRule: Int] = [.reference: 0, .amountDate: 0, .sum: 0]
  /// New items left in discrepancy: reference discrepancies and lines in another currency.
  public var discrepancies: Int = 0
  public var unmatched: Int = 0
  public var firstItem: UInt64?
  public var lastItem: UInt64?
  public var opening: ReconBalanceCheck?
  public var closing: ReconBalanceCheck?
  /// When its lines do not lead from its opening to its closing balance (lines in another
  /// currency left out of the sum): the closing balance they imply, and the printed one.
  public var continuityImpliedMinor: Int128?
  public var continuityPrintedMinor: Int128?

  public init(
    index: Int, source: String, statementId: String?, statementAccount: String?,
    account: String, currency: String, linesRead: Int
  ) {
    self.index = index
    self.source = source
    self.statementId = statementId
    self.statementAccount = statementAccount
    self.account = account
    self.currency = currency
    self.linesRead = linesRead
  }
}

/// A statement of the input that was not imported: its account identifier is not the
/// account's and no `--map` names it.
public struct ReconSkippedStatement: Equatable, Sendable {
  public var index: Int
  public var source: String
  public var statementId: String?
  /// The identifier as printed (nil: the statement names none).
  public var statementAccount: String?
  public var currency: String
  public var lines: Int

  public init(
    index: Int, source: String, statementId: String?, statementAccount: String?,
    currency: String, lines: Int
  ) {
    self.index = index
    self.source = source
    self.statementId = statementId
    self.statementAccount = statementAccount
    self.currency = currency
    self.lines = lines
  }
}

/// Two consecutive statements of one account in the input whose balances do not join: the
/// closing balance of the first is not the opening balance of the next (a statement is
/// missing between them, or one was altered).
public struct ReconStatementGap: Equatable, Sendable {
  public var account: String
  /// Indexes (1-based, in the input) of the two statements; `fromStatement` is 0 when the
  /// first of them was imported before (`fromImportSeq`).
  public var fromStatement: Int
  public var toStatement: Int
  /// The `recon_imported` event of the statement imported before this input that the gap
  /// follows (nil: both statements are in this input).
  public var fromImportSeq: UInt64?
  public var closing: ReconBalance
  public var opening: ReconBalance
  /// Opening of the next minus closing of the first.
  public var differenceMinor: Int128

  public init(
    account: String, fromStatement: Int, toStatement: Int, fromImportSeq: UInt64? = nil,
    closing: ReconBalance, opening: ReconBalance, differenceMinor: Int128
  ) {
    self.account = account
    self.fromImportSeq = fromImportSeq
    self.fromStatement = fromStatement
    self.toStatement = toStatement
    self.closing = closing
    self.opening = opening
    self.differenceMinor = differenceMinor
  }
}

/// What one import did.
public struct ReconImportReport: Equatable, Sendable {
  public var account: String
  public var format: ReconFormat
  public var statementId: String?
  public var linesRead: Int
  public var new: Int
  public var duplicates: Int
  /// Lines matched per rule, in rule order (every rule listed, 0 when it matched none).
  public var matchedByRule: [ReconRule: Int]
  public var discrepancies: Int
  /// New lines left unmatched.
  public var unmatched: Int
  /// Numbers of the new items (empty when nothing was new).
  public var firstItem: UInt64?
  public var lastItem: UInt64?
  /// Seqs of the events the import appended (nil when it appended none).
  public var firstSeq: UInt64?
  public var lastSeq: UInt64?
  public var opening: ReconBalanceCheck?
  public var closing: ReconBalanceCheck?
  /// When the statement's own lines do not lead from its opening to its closing balance:
  /// the closing balance they imply, and the printed one.
  public var continuityImpliedMinor: Int128?
  public var continuityPrintedMinor: Int128?
  /// How the input's bytes were read as text.
  public var textEncoding: ReconTextEncoding = .utf8
  /// New lines in another currency than their statement's (in `discrepancies` too).
  public var foreignCurrency = 0
  /// The statements imported, in input order (the fields above are their totals; balances
  /// and continuity above are set when there is exactly one).
  public var statements: [ReconStatementReport] = []
  /// Statements of the input for another account, not imported.
  public var skipped: [ReconSkippedStatement] = []
  /// Consecutive statements of one account whose balances do not join.
  public var gaps: [ReconStatementGap] = []

  public init(
    account: String, format: ReconFormat, statementId: String? = nil, linesRead: Int, new: Int,
    duplicates: Int, matchedByRule: [ReconRule: Int], discrepancies: Int, unmatched: Int,
    firstItem: UInt64? = nil, lastItem: UInt64? = nil, firstSeq: UInt64? = nil,
    lastSeq: UInt64? = nil, opening: ReconBalanceCheck? = nil, closing: ReconBalanceCheck? = nil,
    continuityImpliedMinor: Int128? = nil, continuityPrintedMinor: Int128? = nil
  ) {
    self.account = account
    self.format = format
    self.statementId = statementId
    self.linesRead = linesRead
    self.new = new
    self.duplicates = duplicates
    self.matchedByRule = matchedByRule
    self.discrepancies = discrepancies
    self.unmatched = unmatched
    self.firstItem = firstItem
    self.lastItem = lastItem
    self.firstSeq = firstSeq
    self.lastSeq = lastSeq
    self.opening = opening
    self.closing = closing
    self.continuityImpliedMinor = continuityImpliedMinor
    self.continuityPrintedMinor = continuityPrintedMinor
  }
}

/// A partner's totals in one currency, over its accounts.
public struct PartnerTotal: Equatable, Sendable {
  public var currency: String
  public var accounts: Int
  /// Sums of each account's posted balance on its normal side, of its pending inflows and
  /// outflows, and of its available balance (posted minus pending outflows).
  public var postedMinor: Int128
  public var pendingInMinor: Int128
  public var pendingOutMinor: Int128
  public var availableMinor: Int128

  public init(
    currency: String, accounts: Int, postedMinor: Int128, pendingInMinor: Int128,
    pendingOutMinor: Int128, availableMinor: Int128
  ) {
    self.currency = currency
    self.accounts = accounts
    self.postedMinor = postedMinor
    self.pendingInMinor = pendingInMinor
    self.pendingOutMinor = pendingOutMinor
    self.availableMinor = availableMinor
  }
}

/// One page of a partner's view. Every figure on it comes from one read snapshot.
public struct PartnerView: Equatable, Sendable {
  public var partner: PartnerRecord
  public var stats: PartnerStats
  /// Balances and totals are as of this seq (the head of the snapshot, or the `asOfSeq`
  /// asked for, so that every page of one listing shows the same moment).
  public var asOfSeq: UInt64
  public var totals: [PartnerTotal]
  /// Accounts opened at or before `asOfSeq`, in name order after the cursor.
  public var accounts: [AccountView]
  public var nextAccount: String?
  /// Pending holds now, oldest first, at most `holdsMax`.
  public var openHolds: [HoldRecord]
  /// Recent activity: the accounts whose balances changed last at or before `asOfSeq`, the
  /// latest change first (`seq` is that change), at most `recentMax`; the same on every page.
  public var recentAccounts: [AccountView]

  public static let recentMax = 10

  public init(
    partner: PartnerRecord, stats: PartnerStats, asOfSeq: UInt64, totals: [PartnerTotal],
    accounts: [AccountView], nextAccount: String? = nil, openHolds: [HoldRecord],
    recentAccounts: [AccountView] = []
  ) {
    self.partner = partner
    self.stats = stats
    self.asOfSeq = asOfSeq
    self.totals = totals
    self.accounts = accounts
    self.nextAccount = nextAccount
    self.openHolds = openHolds
    self.recentAccounts = recentAccounts
  }
}

/// Counts and amounts per item state of one account, and what the ledger has that no
/// statement does.
public struct ReconStatus: Equatable, Sendable {
  public var account: AccountRecord
  public var record: ReconAccountRecord
  /// Postings dated within the period the statements cover that are in no standing match.
  public var missingCount: UInt64
  public var missingAmountMinor: Int128

  public init(
    account: AccountRecord, record: ReconAccountRecord, missingCount: UInt64,
    missingAmountMinor: Int128
  ) {
    self.account = account
    self.record = record
    self.missingCount = missingCount
    self.missingAmountMinor = missingAmountMinor
  }
}

/// A posting of the ledger no statement line matches (`missing_from_statement`).
public struct MissingPosting: Equatable, Sendable {
  public var seq: UInt64
  public var id: String
  public var ref: String?
  public var amountMinor: Int128
  public var direction: ReconDirection
  public var dateDays: Int32

  public init(
    seq: UInt64, id: String, ref: String? = nil, amountMinor: Int128, direction: ReconDirection,
    dateDays: Int32
  ) {
    self.seq = seq
    self.id = id
    self.ref = ref
    self.amountMinor = amountMinor
    self.direction = direction
    self.dateDays = dateDays
  }
}

/// Where an import is (`Ledger.importStatement(…, progress:)`), in order; for a terminal's
/// progress and for timing the phases. Nothing is committed before `committed`.
public enum ReconImportPhase: Sendable, Equatable {
  /// The statement parsed: this many lines.
  case parsed(lines: Int)
  /// The write groups ran: the new lines are items (the others duplicates), with the
  /// matches that still held (docs/RECONCILIATION.md, "Imports in write groups").
  case itemsAppended(new: Int, duplicates: Int)
  /// The account's postings the rules look at were read: first those rules 1 and 2 can
  /// use; then, when a line is left for rule 3, every one in the window (`all`).
  case candidatesRead(Int, all: Bool)
  /// The rules ran: this many matches (discrepancies included), checked next.
  case matched(Int)
  /// The journal synced after the last group: the import is durable.
  case committed
}
