/// Events: the only thing the log stores. Every change to the ledger is one of these.

public enum EventType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
  case partnerCreated = 1
  case assetDeclared = 2
  case accountOpened = 3
  case accountClosed = 4
  case entryPosted = 5
  case holdPlaced = 6
  case holdCaptured = 7
  case holdReleased = 8
  case holdExpired = 9
  case reconImported = 10
  case reconMatched = 11
  case reconResolved = 12
  case reconUnmatched = 13

  public var description: String {
    switch self {
    case .partnerCreated: "partner_created"
    case .assetDeclared: "asset_declared"
    case .accountOpened: "account_opened"
    case .accountClosed: "account_closed"
    case .entryPosted: "entry_posted"
    case .holdPlaced: "hold_placed"
    case .holdCaptured: "hold_captured"
    case .holdReleased: "hold_released"
    case .holdExpired: "hold_expired"
    case .reconImported: "recon_imported"
    case .reconMatched: "recon_matched"
    case .reconResolved: "recon_resolved"
    case .reconUnmatched: "recon_unmatched"
    }
  }
}

public struct PartnerCreated: Equatable, Sendable {
  public var id: String
  public var name: String
  public var metadata: Metadata
  public init(id: String, name: String, metadata: Metadata = .empty) {
    self.id = id
    self.name = name
    self.metadata = metadata
  }
}

public struct AssetDeclared: Equatable, Sendable {
  public var code: String
  public var scale: UInt8
  public var name: String
  public init(code: String, scale: UInt8, name: String) {
    self.code = code
    self.scale = scale
    self.name = name
  }
}

public struct AccountOpened: Equatable, Sendable {
  public var name: String
  public var partner: String
  public var currency: String
  public var normalSide: Side
  public var noOverdraft: Bool
  public var limitMinor: Int128?
  public var metadata: Metadata
  public init(
    name: String, partner: String, currency: String, normalSide: Side,
    noOverdraft: Bool = false, limitMinor: Int128? = nil, metadata: Metadata = .empty
  ) {
    self.name = name
    self.partner = partner
    self.currency = currency
    self.normalSide = normalSide
    self.noOverdraft = noOverdraft
    self.limitMinor = limitMinor
    self.metadata = metadata
  }
}

public struct EntryPosted: Equatable, Sendable {
  public var id: String
  public var legs: [Leg]
  public var ref: String?
  /// Days since 1970-01-01 (the value date of the entry).
  public var valueDateDays: Int32?
  /// Id of the entry this one reverses.
  public var reversalOf: String?
  public var metadata: Metadata
  public init(
    id: String, legs: [Leg], ref: String? = nil, valueDateDays: Int32? = nil,
    reversalOf: String? = nil, metadata: Metadata = .empty
  ) {
    self.id = id
    self.legs = legs
    self.ref = ref
    self.valueDateDays = valueDateDays
    self.reversalOf = reversalOf
    self.metadata = metadata
  }
}

public struct HoldPlaced: Equatable, Sendable {
  public var id: String
  public var legs: [Leg]
  public var ref: String?
  public var deadlineNanos: Int64?
  public var metadata: Metadata
  public init(
    id: String, legs: [Leg], ref: String? = nil, deadlineNanos: Int64? = nil,
    metadata: Metadata = .empty
  ) {
    self.id = id
    self.legs = legs
    self.ref = ref
    self.deadlineNanos = deadlineNanos
    self.metadata = metadata
  }
}

public struct HoldCaptured: Equatable, Sendable {
  public var holdId: String
  /// Captured amount per leg of the hold, in leg order (0 allowed per leg); the rest of
  /// each leg is released.
  public var amountsMinor: [Int128]
  public init(holdId: String, amountsMinor: [Int128]) {
    self.holdId = holdId
    self.amountsMinor = amountsMinor
  }
}

public enum EventBody: Equatable, Sendable {
  case partnerCreated(PartnerCreated)
  case assetDeclared(AssetDeclared)
  case accountOpened(AccountOpened)
  case accountClosed(name: String)
  case entryPosted(EntryPosted)
  case holdPlaced(HoldPlaced)
  case holdCaptured(HoldCaptured)
  case holdReleased(holdId: String)
  case holdExpired(holdId: String)
  case reconImported(ReconImported)
  case reconMatched(ReconMatched)
  case reconResolved(ReconResolved)
  case reconUnmatched(ReconUnmatched)

  public var type: EventType {
    switch self {
    case .partnerCreated: .partnerCreated
    case .assetDeclared: .assetDeclared
    case .accountOpened: .accountOpened
    case .accountClosed: .accountClosed
    case .entryPosted: .entryPosted
    case .holdPlaced: .holdPlaced
    case .holdCaptured: .holdCaptured
    case .holdReleased: .holdReleased
    case .holdExpired: .holdExpired
    case .reconImported: .reconImported
    case .reconMatched: .reconMatched
    case .reconResolved: .reconResolved
    case .reconUnmatched: .reconUnmatched
    }
  }
}

public struct Event: Equatable, Sendable {
  public var seq: UInt64
  /// Nanoseconds since the Unix epoch, strictly increasing along the log.
  public var timestampNanos: Int64
  public var body: EventBody
  public init(seq: UInt64, timestampNanos: Int64, body: EventBody) {
    self.seq = seq
    self.timestampNanos = timestampNanos
    self.body = body
  }
}
