/// What clients ask for. A command is decided against the current state into events, a
/// duplicate (idempotent replay) or a rejection.

public struct LegSpec: Equatable, Sendable {
  public var account: String
  public var side: Side
  public var amountMinor: Int128
  /// Optional assertion: the account's currency must be this.
  public var currency: String?
  public init(account: String, side: Side, amountMinor: Int128, currency: String? = nil) {
    self.account = account
    self.side = side
    self.amountMinor = amountMinor
    self.currency = currency
  }
  public var leg: Leg { Leg(account: account, side: side, amountMinor: amountMinor) }
}

public struct EntrySpec: Equatable, Sendable {
  public var id: String
  public var legs: [LegSpec]
  /// Optional assertion: every leg's account is in this currency.
  public var currency: String?
  public var ref: String?
  public var valueDateDays: Int32?
  public var metadata: Metadata
  public init(
    id: String, legs: [LegSpec], currency: String? = nil, ref: String? = nil,
    valueDateDays: Int32? = nil, metadata: Metadata = .empty
  ) {
    self.id = id
    self.legs = legs
    self.currency = currency
    self.ref = ref
    self.valueDateDays = valueDateDays
    self.metadata = metadata
  }
}

public struct HoldSpec: Equatable, Sendable {
  public var id: String
  public var legs: [LegSpec]
  public var currency: String?
  public var ref: String?
  public var deadlineNanos: Int64?
  /// A time-to-live instead of a deadline: the deadline is the time the hold is placed (its
  /// event's timestamp) plus this, so a hold never arrives expired however long its request
  /// waited for the writer.
  public var ttlNanos: Int64?
  /// The deadline comes from a time-to-live: a retry computes another one, so an existing
  /// hold with this id is compared on everything but the exact deadline (the first
  /// attempt's deadline stands).
  public var deadlineIsRelative: Bool { ttlNanos != nil }
  public var metadata: Metadata
  public init(
    id: String, legs: [LegSpec], currency: String? = nil, ref: String? = nil,
    deadlineNanos: Int64? = nil, metadata: Metadata = .empty
  ) {
    self.id = id
    self.legs = legs
    self.currency = currency
    self.ref = ref
    self.deadlineNanos = deadlineNanos
    self.metadata = metadata
  }
}

public struct CaptureSpec: Equatable, Sendable {
  public enum Amounts: Equatable, Sendable {
    /// Capture everything held.
    case full
    /// The same amount on every leg (for holds whose legs are all equal, e.g. 2-leg holds).
    case uniform(Int128)
    /// One amount per leg, in the hold's leg order.
    case perLeg([Int128])
  }
  public var holdId: String
  public var amounts: Amounts
  public init(holdId: String, amounts: Amounts = .full) {
    self.holdId = holdId
    self.amounts = amounts
  }
}

public struct ReverseSpec: Equatable, Sendable {
  /// Id of the new, reversing entry.
  public var id: String
  public var entryId: String
  public var metadata: Metadata
  public init(id: String, entryId: String, metadata: Metadata = .empty) {
    self.id = id
    self.entryId = entryId
    self.metadata = metadata
  }
}

public enum Command: Equatable, Sendable {
  case createPartner(PartnerCreated)
  case declareAsset(AssetDeclared)
  case openAccount(AccountOpened)
  case closeAccount(name: String)
  case postEntry(EntrySpec)
  case placeHold(HoldSpec)
  case captureHold(CaptureSpec)
  case releaseHold(holdId: String)
  /// Expire every pending hold whose deadline is at or before `asOfNanos` (at most
  /// `Limits.holdsPerExpireMax` per command).
  case expireHolds(asOfNanos: Int64)
  case reverseEntry(ReverseSpec)
  /// Import a parsed statement's lines for an account (duplicates are left out).
  case reconImport(ReconImportSpec)
  /// Record matches found by the matcher (the store runs it right after an import).
  case reconMatch(ReconMatched)
  case reconResolve(ReconResolved)
  case reconUnmatch(ReconUnmatched)
}

/// The outcome of deciding one command.
public enum Decision: Equatable, Sendable {
  /// Append these events (possibly none, e.g. nothing to expire).
  case accept([EventBody])
  /// Same id, same content: the original result, nothing appended.
  case duplicate(seq: UInt64)
  case reject(Rejection)
}
