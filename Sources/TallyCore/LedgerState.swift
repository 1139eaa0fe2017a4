/// The state the state machine reads and writes: implemented over LMDB by the store (inside
/// one write transaction) and in memory for replay and verification.
public protocol LedgerState {
  func partner(_ id: String) throws -> PartnerRecord?
  func asset(_ code: String) throws -> AssetRecord?
  mutating func account(_ name: String) throws -> AccountRecord?
  /// The account's number, when it exists (replay's hot path: no record copy).
  mutating func accountNumber(_ name: String) throws -> UInt64?
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
