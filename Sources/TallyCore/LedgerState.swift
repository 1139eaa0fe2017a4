/// The state the state machine reads and writes: implemented over LMDB by the store (inside
/// one write transaction) and in memory for replay and verification.
public protocol LedgerState {
  func partner(_ id: String) throws -> PartnerRecord?
  func asset(_ code: String) throws -> AssetRecord?
  mutating func account(_ name: String) throws -> AccountRecord?
  /// The account's number, when it exists (replay's hot path: no record copy).
  mutating func accountNumber(_ name: String) throws -> UInt64?
  /// The partner owning the account, when it exists (the partner views' hot path: no
  /// record copy). By default read from `account`.
  mutating func accountPartner(_ name: String) throws -> String?
  /// Zero for an account without activity.
  mutating func balances(_ number: UInt64) throws -> Balances
  func idRecord(_ id: String) throws -> IdRecord?
  /// The stored event at `seq` (for idempotency comparisons and reversals).
  func event(at seq: UInt64) throws -> Event
  func hold(_ id: String) throws -> HoldRecord?
  /// Ids of pending holds with deadline ≤ `asOfNanos`, earliest first, at most `limit`.
  func holdsDue(asOfNanos: Int64, limit: Int) throws -> [String]
  /// Accounts opened so far (the next account number is this plus one).
  var accountCount: UInt64 { get }

  mutating func putPartner(_ r: PartnerRecord) throws
  mutating func putAsset(_ r: AssetRecord) throws
  mutating func putAccount(_ r: AccountRecord) throws
  mutating func putBalances(_ number: UInt64, _ b: Balances, seq: UInt64) throws
  /// Balances of `number` after the event at `seq`.
  mutating func putHistory(_ number: UInt64, seq: UInt64, _ b: Balances) throws
  mutating func putIdRecord(_ id: String, _ r: IdRecord) throws
  /// Inserts a new id; false (and nothing written) when the id exists.
  mutating func insertIdRecord(_ id: String, _ r: IdRecord) throws -> Bool
  mutating func putHold(_ r: HoldRecord) throws
  mutating func addDeadline(_ deadlineNanos: Int64, placedSeq: UInt64, holdId: String) throws
  mutating func removeDeadline(_ deadlineNanos: Int64, placedSeq: UInt64) throws

  // Reconciliation (docs/RECONCILIATION.md, "Storage"). Accounts are named by number.
  func reconItem(_ number: UInt64) throws -> ReconItemRecord?
  /// The item an account's line identity was imported as.
  func reconLineItem(account: UInt64, identity: String) throws -> UInt64?
  func reconMatch(_ number: UInt64) throws -> ReconMatchRecord?
  /// The standing match an entry (by seq) is in on an account.
  func reconEntryMatch(account: UInt64, entrySeq: UInt64) throws -> UInt64?
  func reconAccount(_ number: UInt64) throws -> ReconAccountRecord?
  /// Items and matches recorded so far (the next number is this plus one).
  var reconItemCount: UInt64 { get }
  var reconMatchCount: UInt64 { get }
  /// Writes an item; `previous` is its state before (nil: a new item), for the state index.
  mutating func putReconItem(_ r: ReconItemRecord, accountNumber: UInt64, previous: ReconState?)
    throws
  mutating func putReconLine(account: UInt64, identity: String, item: UInt64) throws
  mutating func putReconMatch(_ r: ReconMatchRecord) throws
  /// Links (or, with nil, unlinks) an entry to a match on an account.
  mutating func putReconEntry(account: UInt64, entrySeq: UInt64, match: UInt64?) throws
  mutating func putReconAccount(_ number: UInt64, _ r: ReconAccountRecord) throws

  // Partner views.
  /// Zero counters for a partner without activity.
  mutating func partnerStats(_ id: String) throws -> PartnerStats
  mutating func putPartnerStats(_ id: String, _ s: PartnerStats) throws
  mutating func putPartnerAccount(partner: String, account: String) throws
  /// Adds (open) or removes (closed) a pending hold from the partner's open holds.
  mutating func putPartnerHold(partner: String, placedSeq: UInt64, holdId: String, open: Bool)
    throws
}

/// The log and the projections disagree with what an event requires (a corrupt or forged
/// log during replay, or a bug). Never produced for client input.
public struct ApplyError: Error, CustomStringConvertible, Sendable {
  public var seq: UInt64
  public var reason: String
  public init(seq: UInt64, reason: String) {
    self.seq = seq
    self.reason = reason
  }
  public var description: String { "seq \(seq): \(reason)" }
}

extension LedgerState {
  public mutating func accountNumber(_ name: String) throws -> UInt64? {
    try account(name)?.number
  }
}

extension LedgerState {
  public mutating func accountPartner(_ name: String) throws -> String? {
    try account(name)?.partner
  }
}
