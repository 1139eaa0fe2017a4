/// The ledger's values: sides, legs, metadata, balances, and the records projections keep.

public enum Side: UInt8, Sendable, Equatable, CustomStringConvertible {
  case debit = 0
  case credit = 1

  public var opposite: Side { self == .debit ? .credit : .debit }
  public var description: String { self == .debit ? "debit" : "credit" }

  public init?(name: String) {
    switch name {
    case "debit": self = .debit
    case "credit": self = .credit
    default: return nil
    }
  }
}

/// One side of an entry: an account named by its id, a side, and a positive amount in
/// the account currency's minor units.
public struct Leg: Equatable, Sendable {
  public var account: String
  public var side: Side
  public var amountMinor: Int128

  public init(account: String, side: Side, amountMinor: Int128) {
    self.account = account
    self.side = side
    self.amountMinor = amountMinor
  }
}

public struct MetadataPair: Equatable, Sendable {
  public var key: String
  public var value: String
  public init(_ key: String, _ value: String) {
    self.key = key
    self.value = value
  }

  /// Byte equality: canonically equivalent but differently encoded text is different
  /// content (it hashes differently in the log).
  public static func == (a: MetadataPair, b: MetadataPair) -> Bool {
    a.key.bytesEqual(b.key) && a.value.bytesEqual(b.value)
  }
}

extension String {
  /// Equal UTF-8 bytes (Swift's `==` treats canonically equivalent text as equal).
  public func bytesEqual(_ other: String) -> Bool { utf8.elementsEqual(other.utf8) }
}

extension Optional where Wrapped == String {
  public func bytesEqual(_ other: String?) -> Bool {
    switch (self, other) {
    case (nil, nil): true
    case (let a?, let b?): a.bytesEqual(b)
    default: false
    }
  }
}

/// Key/value pairs kept sorted by the keys' UTF-8 bytes, keys unique, so that equal
/// metadata always encodes to equal bytes.
public struct Metadata: Equatable, Sendable {
  public private(set) var pairs: [MetadataPair]

  public static let empty = Metadata(sortedUnique: [])

  init(sortedUnique pairs: [MetadataPair]) { self.pairs = pairs }

  /// Validates limits and sorts; rejects repeated keys.
  public static func make(_ pairs: [(String, String)]) -> Result<Metadata, Rejection> {
    if pairs.count > Limits.metadataPairsMax {
      return .failure(
        Rejection(
          .invalidMetadata,
          "metadata has \(pairs.count) pairs; at most \(Limits.metadataPairsMax)"))
    }
    var out = pairs.map { MetadataPair($0.0, $0.1) }
    for p in out {
      if p.key.utf8.isEmpty || p.key.utf8.count > Limits.metadataKeyBytesMax {
        return .failure(
          Rejection(
            .invalidMetadata,
            "metadata key must be 1…\(Limits.metadataKeyBytesMax) bytes", ["key": p.key]))
      }
      if p.value.utf8.count > Limits.metadataValueBytesMax {
        return .failure(
          Rejection(
            .invalidMetadata,
            "metadata value must be at most \(Limits.metadataValueBytesMax) bytes",
            ["key": p.key]))
      }
    }
    out.sort { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }
    for i in out.indices.dropFirst() where out[i].key.bytesEqual(out[i - 1].key) {
      return .failure(Rejection(.invalidMetadata, "repeated metadata key", ["key": out[i].key]))
    }
    return .success(Metadata(sortedUnique: out))
  }

  public subscript(key: String) -> String? { pairs.first { $0.key == key }?.value }
  public var isEmpty: Bool { pairs.isEmpty }
}

/// Posted and pending debits and credits of one account, in minor units. Each column only
/// grows or, for pending, returns toward zero; all are non-negative.
public struct Balances: Equatable, Sendable {
  public var postedDebits: Int128 = 0
  public var postedCredits: Int128 = 0
  public var pendingDebits: Int128 = 0
  public var pendingCredits: Int128 = 0

  public init() {}

  public init(
    postedDebits: Int128, postedCredits: Int128, pendingDebits: Int128,
    pendingCredits: Int128
  ) {
    self.postedDebits = postedDebits
    self.postedCredits = postedCredits
    self.pendingDebits = pendingDebits
    self.pendingCredits = pendingCredits
  }

  public static let zero = Balances()

  /// Posted balance on the normal side. Both columns are non-negative, so the difference
  /// cannot overflow.
  public func balance(normal: Side) -> Int128 {
    normal == .debit ? postedDebits - postedCredits : postedCredits - postedDebits
  }

  /// Posted balance minus pending outflows (the opposite side's pending column); nil when it
  /// would leave the Int128 range.
  public func available(normal: Side) -> Int128? {
    let outflow = normal == .debit ? pendingCredits : pendingDebits
    let (v, o) = balance(normal: normal).subtractingReportingOverflow(outflow)
    return o ? nil : v
  }

  /// Posted balance plus pending inflows: what a limit caps.
  public func exposure(normal: Side) -> Int128? {
    let inflow = normal == .debit ? pendingDebits : pendingCredits
    let (v, o) = balance(normal: normal).addingReportingOverflow(inflow)
    return o ? nil : v
  }

  public var isZero: Bool {
    postedDebits == postedCredits && pendingDebits == 0 && pendingCredits == 0
  }

  /// Adds to the posted column of `side`; nil on overflow.
  public func posting(_ side: Side, _ amount: Int128) -> Balances? {
    var b = self
    if side == .debit {
      let (v, o) = b.postedDebits.addingReportingOverflow(amount)
      if o { return nil }
      b.postedDebits = v
    } else {
      let (v, o) = b.postedCredits.addingReportingOverflow(amount)
      if o { return nil }
      b.postedCredits = v
    }
    return b
  }

  /// Adds `amount` (negative to remove) to the pending column of `side`; nil on overflow or
  /// if the column would go negative.
  public func pending(_ side: Side, _ amount: Int128) -> Balances? {
    var b = self
    if side == .debit {
      let (v, o) = b.pendingDebits.addingReportingOverflow(amount)
      if o || v < 0 { return nil }
      b.pendingDebits = v
    } else {
      let (v, o) = b.pendingCredits.addingReportingOverflow(amount)
      if o || v < 0 { return nil }
      b.pendingCredits = v
    }
    return b
  }
}

public enum AccountStatus: UInt8, Sendable, Equatable {
  case open = 0
  case closed = 1
}

/// An account as the projection keeps it (balances are kept apart: they change on every
/// entry, the record almost never).
public struct AccountRecord: Equatable, Sendable {
  /// Dense internal number, 1-based in order of opening; keys balances and history.
  public var number: UInt64
  public var name: String
  public var partner: String
  public var currency: String
  public var scale: UInt8
  public var normalSide: Side
  public var noOverdraft: Bool
  public var limitMinor: Int128?
  public var status: AccountStatus
  public var openedSeq: UInt64
  public var closedSeq: UInt64
  public var metadata: Metadata

  public init(
    number: UInt64, name: String, partner: String, currency: String, scale: UInt8,
    normalSide: Side, noOverdraft: Bool, limitMinor: Int128?, status: AccountStatus,
    openedSeq: UInt64, closedSeq: UInt64, metadata: Metadata
  ) {
    self.number = number
    self.name = name
    self.partner = partner
    self.currency = currency
    self.scale = scale
    self.normalSide = normalSide
    self.noOverdraft = noOverdraft
    self.limitMinor = limitMinor
    self.status = status
    self.openedSeq = openedSeq
    self.closedSeq = closedSeq
    self.metadata = metadata
  }
}

public struct PartnerRecord: Equatable, Sendable {
  public var id: String
  public var name: String
  public var metadata: Metadata
  public var createdSeq: UInt64
  public init(id: String, name: String, metadata: Metadata, createdSeq: UInt64) {
    self.id = id
    self.name = name
    self.metadata = metadata
    self.createdSeq = createdSeq
  }
}

public struct AssetRecord: Equatable, Sendable {
  public var code: String
  public var scale: UInt8
  public var name: String
  public var declaredSeq: UInt64
  public init(code: String, scale: UInt8, name: String, declaredSeq: UInt64) {
    self.code = code
    self.scale = scale
    self.name = name
    self.declaredSeq = declaredSeq
  }
}

/// What an entry or hold id refers to, for idempotency and reversals.
public struct IdRecord: Equatable, Sendable {
  public enum Kind: UInt8, Sendable { case entry = 1, hold = 2 }
  public var seq: UInt64
  public var kind: Kind
  /// Seq of the entry that reversed this one; 0 when not reversed.
  public var reversedBySeq: UInt64
  public init(seq: UInt64, kind: Kind, reversedBySeq: UInt64 = 0) {
    self.seq = seq
    self.kind = kind
    self.reversedBySeq = reversedBySeq
  }
}
