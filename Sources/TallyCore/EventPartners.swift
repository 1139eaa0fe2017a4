extension Machine {
  /// The partners an event concerns, in a stable order (legs' accounts in leg order; the
  /// account's partner for account and reconciliation events; the partner itself when
  /// created). Empty for ledger-wide events (an asset declared). Used to route the change
  /// stream (docs/REPLICATION.md, "Subjects"); read-only: nothing in `state` changes.
  public static func eventPartners<S: LedgerState>(_ event: Event, _ state: inout S) throws
    -> [String]
  {
    func of(_ account: String) throws -> [String] {
      guard let p = try state.accountPartner(account) else {
        throw ApplyError(seq: event.seq, reason: "account \(account) does not exist")
      }
      return [p]
    }
    func ofHold(_ id: String) throws -> [String] {
      guard let h = try state.hold(id) else {
        throw ApplyError(seq: event.seq, reason: "hold \(id) does not exist")
      }
      return try partners(h.legs, event.seq, &state)
    }
    func ofItem(_ number: UInt64) throws -> [String] {
      guard let item = try state.reconItem(number) else {
        throw ApplyError(seq: event.seq, reason: "reconciliation item \(number) does not exist")
      }
      return try of(item.account)
    }
    switch event.body {
    case .partnerCreated(let p): return [p.id]
    case .assetDeclared: return []
    case .accountOpened(let a): return [a.partner]
    case .accountClosed(let name): return try of(name)
    case .entryPosted(let e): return try partners(e.legs, event.seq, &state)
    case .holdPlaced(let h): return try partners(h.legs, event.seq, &state)
    case .holdCaptured(let c): return try ofHold(c.holdId)
    case .holdReleased(let id), .holdExpired(let id): return try ofHold(id)
    case .reconImported(let r): return try of(r.account)
    case .reconMatched(let m): return try of(m.account)
    case .reconResolved(let r): return try ofItem(r.item)
    case .reconUnmatched(let u): return try ofItem(u.item)
    }
  }
}
