import TallyCore

/// What a partner-bound caller (a `service` key) may touch: its partner's accounts and the
/// platform accounts it was granted. Anything else is answered exactly as if it did not
/// exist, so a partner can neither read nor infer another partner's accounts, entries or
/// holds.
public struct Scope: Sendable, Equatable {
  public var partner: String
  public var grants: Set<String>

  public init(partner: String, grants: Set<String> = []) {
    self.partner = partner
    self.grants = grants
  }

  func admits(_ a: AccountRecord) -> Bool {
    a.partner == partner || (a.partner == Machine.platformPartner && grants.contains(a.name))
  }

  /// Whether the account may be read: only the partner's own accounts.
  public func canRead(_ a: AccountRecord) -> Bool { a.partner == partner }
}

extension StoreState {
  /// Checked in the write transaction before the engine decides, so the answer is exact.
  /// Messages are the engine's own not-found messages, word for word.
  mutating func scopeRejection(_ c: Command, _ scope: Scope) throws -> Rejection? {
    func legs(_ names: [String]) throws -> Rejection? {
      for name in names {
        guard let a = try account(name), scope.admits(a) else {
          return Rejection(.accountNotFound, "account \(name) does not exist", ["account": name])
        }
      }
      return nil
    }
    switch c {
    case .postEntry(let e):
      return try legs(e.legs.map(\.account)) ?? foreignId(e.id, scope)
    case .placeHold(let h):
      return try legs(h.legs.map(\.account)) ?? foreignId(h.id, scope)
    case .captureHold(let spec): return try holdRejection(spec.holdId, scope)
    case .releaseHold(let id): return try holdRejection(id, scope)
    case .reverseEntry(let r):
      guard let rec = try idRecord(r.entryId), rec.kind == .entry,
        case .entryPosted(let p) = try event(at: rec.seq).body,
        try p.legs.allSatisfy({ try account($0.account).map(scope.admits) ?? false })
      else {
        return Rejection(
          .entryNotFound, "entry \(r.entryId) does not exist", ["entry": r.entryId])
      }
      return try foreignId(r.id, scope)
    case .openAccount(let a):
      if a.partner != scope.partner {
        return Rejection(
          .partnerNotFound, "partner \(a.partner) does not exist", ["partner": a.partner])
      }
      // Account names are global. Names in the partner's own namespace cannot collide with
      // another partner's accounts, so an ALREADY_EXISTS can never reveal one.
      if !a.name.hasPrefix(scope.partner + ":") {
        return Rejection(
          .invalidId, "a partner's key opens accounts named \(scope.partner):…",
          ["account": a.name])
      }
      return nil
    case .closeAccount(let name):
      guard let a = try account(name), a.partner == scope.partner else {
        return Rejection(.accountNotFound, "account \(name) does not exist", ["account": name])
      }
      return nil
    case .createPartner, .declareAsset, .expireHolds, .reconImport, .reconMatch, .reconResolve,
      .reconUnmatch:
      // Role checks keep these from services; refusing here too keeps the scope airtight.
      return Rejection(.invalidField, "not permitted for a partner-bound key")
    }
  }

  /// Ids are global. When `id` is taken by an entry or hold outside the scope, the engine's
  /// ID_CONFLICT would name the differing field and the original seq: say only that the id
  /// is taken.
  mutating func foreignId(_ id: String, _ scope: Scope) throws -> Rejection? {
    guard let rec = try idRecord(id) else { return nil }
    let names: [String]
    switch try event(at: rec.seq).body {
    case .entryPosted(let p): names = p.legs.map(\.account)
    case .holdPlaced(let h): names = h.legs.map(\.account)
    default: names = []
    }
    if try !names.isEmpty && names.allSatisfy({ try account($0).map(scope.admits) ?? false }) {
      return nil
    }
    return Rejection(.idConflict, "id \(id) is already in use", ["id": id])
  }

  mutating func holdRejection(_ id: String, _ scope: Scope) throws -> Rejection? {
    guard let h = try hold(id),
      try h.legs.allSatisfy({ try account($0.account).map(scope.admits) ?? false })
    else {
      return Rejection(.holdNotFound, "hold \(id) does not exist", ["hold": id])
    }
    return nil
  }
}

extension LedgerQuerying {
  /// Whether `scope` may see the entry or hold `id` (every leg on an account it may use).
  public func visible(id: String, to scope: Scope) throws(StoreError) -> Bool {
    try reader.readState { s in
      guard let rec = try s.idRecord(id) else { return false }
      let names: [String]
      switch try s.event(at: rec.seq).body {
      case .entryPosted(let p): names = p.legs.map(\.account)
      case .holdPlaced(let h): names = h.legs.map(\.account)
      default: return false
      }
      return try names.allSatisfy { try s.account($0).map(scope.admits) ?? false }
    }
  }
}
