extension Machine {
  /// Applies one event to the projections. Events come from `decide` (live) or from the log
  /// (replay); an event that the state cannot absorb is a corrupt log, reported as an
  /// `ApplyError` naming the seq, never a crash.
  public static func apply<S: LedgerState>(_ event: Event, _ state: inout S) throws {
    let seq = event.seq
    switch event.body {
    case .partnerCreated(let p):
      if try state.partner(p.id) != nil {
        throw ApplyError(seq: seq, reason: "partner \(p.id) created twice")
      }
      try state.putPartner(
        PartnerRecord(
          id: p.id, name: p.name, metadata: p.metadata,
          createdSeq: seq))
    case .assetDeclared(let a):
      if try state.asset(a.code) != nil || ISO4217.minorUnits(of: a.code) != nil {
        throw ApplyError(seq: seq, reason: "asset \(a.code) declared twice")
      }
      try state.putAsset(
        AssetRecord(
          code: a.code, scale: a.scale, name: a.name,
          declaredSeq: seq))
    case .accountOpened(let a):
      if try state.account(a.name) != nil {
        throw ApplyError(seq: seq, reason: "account \(a.name) opened twice")
      }
      guard try state.partner(a.partner) != nil else {
        throw ApplyError(seq: seq, reason: "account \(a.name): unknown partner \(a.partner)")
      }
      guard let scale = try scale(of: a.currency, state) else {
        throw ApplyError(seq: seq, reason: "account \(a.name): unknown currency \(a.currency)")
      }
      let number = state.accountCount + 1
      try state.putAccount(
        AccountRecord(
          number: number, name: a.name, partner: a.partner, currency: a.currency, scale: scale,
          normalSide: a.normalSide, noOverdraft: a.noOverdraft, limitMinor: a.limitMinor,
          status: .open, openedSeq: seq, closedSeq: 0, metadata: a.metadata))
      try state.putPartnerAccount(partner: a.partner, account: a.name)
    // No balances row until the first movement: absent means zero.
    case .accountClosed(let name):
      guard var a = try state.account(name), a.status == .open else {
        throw ApplyError(seq: seq, reason: "closing \(name), which is not open")
      }
      a.status = .closed
      a.closedSeq = seq
      try state.putAccount(a)
    case .entryPosted(let e):
      try move(e.legs, seq: seq, &state) { b, l in b.posting(l.side, l.amountMinor) }
      try touchPartners(e.legs, event, &state) { $0.entries += 1 }
      guard try state.insertIdRecord(e.id, IdRecord(seq: seq, kind: .entry)) else {
        throw ApplyError(seq: seq, reason: "id \(e.id) used twice")
      }
      if let orig = e.reversalOf {
        guard var rec = try state.idRecord(orig), rec.kind == .entry, rec.reversedBySeq == 0
        else { throw ApplyError(seq: seq, reason: "reversal of \(orig), not reversible") }
        rec.reversedBySeq = seq
        try state.putIdRecord(orig, rec)
      }
    case .holdPlaced(let h):
      try move(h.legs, seq: seq, &state) { b, l in b.pending(l.side, l.amountMinor) }
      guard try state.insertIdRecord(h.id, IdRecord(seq: seq, kind: .hold)) else {
        throw ApplyError(seq: seq, reason: "id \(h.id) used twice")
      }
      let partners = try touchPartners(h.legs, event, &state) {
        $0.holds += 1
        $0.openHolds += 1
      }
      for p in partners {
        try state.putPartnerHold(partner: p, placedSeq: seq, holdId: h.id, open: true)
      }
      try state.putHold(
        HoldRecord(
          id: h.id, legs: h.legs, deadlineNanos: h.deadlineNanos, state: .pending,
          placedSeq: seq, resolvedSeq: 0, capturedMinor: []))
      if let d = h.deadlineNanos {
        try state.addDeadline(d, placedSeq: seq, holdId: h.id)
      }
    case .holdCaptured(let c):
      var hold = try pending(c.holdId, seq, &state)
      guard c.amountsMinor.count == hold.legs.count else {
        throw ApplyError(seq: seq, reason: "capture of \(c.holdId): wrong amount count")
      }
      var i = 0
      try move(hold.legs, seq: seq, &state) { b, l in
        defer { i += 1 }
        let amount = c.amountsMinor[i]
        guard amount >= 0, amount <= l.amountMinor else { return nil }
        return b.pending(l.side, -l.amountMinor)?.posting(l.side, amount)
      }
      try resolve(&hold, .captured, seq, c.amountsMinor, &state)
    case .holdReleased(let id):
      var hold = try pending(id, seq, &state)
      try move(hold.legs, seq: seq, &state) { b, l in b.pending(l.side, -l.amountMinor) }
      try resolve(&hold, .released, seq, [], &state)
    case .holdExpired(let id):
      var hold = try pending(id, seq, &state)
      try move(hold.legs, seq: seq, &state) { b, l in b.pending(l.side, -l.amountMinor) }
      try resolve(&hold, .expired, seq, [], &state)
    case .reconImported(let r): try applyReconImported(r, seq, &state)
    case .reconMatched(let m): try applyReconMatched(m, seq, &state)
    case .reconResolved(let r): try applyReconResolved(r, seq, &state)
    case .reconUnmatched(let u): try applyReconUnmatched(u, seq, &state)
    }
    switch event.body {
    case .holdCaptured(let c): try closeHoldInViews(c.holdId, event, &state)
    case .holdReleased(let id), .holdExpired(let id): try closeHoldInViews(id, event, &state)
    default: break
    }
  }

  /// The distinct partners owning the legs' accounts, in leg order.
  static func partners<S: LedgerState>(_ legs: [Leg], _ seq: UInt64, _ state: inout S) throws
    -> [String]
  {
    var out = [String]()
    for l in legs {
      guard let partner = try state.accountPartner(l.account) else {
        throw ApplyError(seq: seq, reason: "account \(l.account) does not exist")
      }
      if !out.contains(partner) { out.append(partner) }
    }
    return out
  }

  /// Counts a money-moving event in each partner's view it touches.
  @discardableResult
  static func touchPartners<S: LedgerState>(
    _ legs: [Leg], _ event: Event, _ state: inout S, _ change: (inout PartnerStats) -> Void
  ) throws -> [String] {
    let ps = try partners(legs, event.seq, &state)
    for p in ps {
      var st = try state.partnerStats(p)
      change(&st)
      st.lastActivitySeq = event.seq
      st.lastActivityNanos = event.timestampNanos
      try state.putPartnerStats(p, st)
    }
    return ps
  }

  /// A hold left pending: it leaves its partners' open holds.
  static func closeHoldInViews<S: LedgerState>(_ id: String, _ event: Event, _ state: inout S)
    throws
  {
    guard let hold = try state.hold(id) else {
      throw ApplyError(seq: event.seq, reason: "hold \(id) vanished")
    }
    let ps = try touchPartners(hold.legs, event, &state) { st in
      st.openHolds = st.openHolds &- 1
    }
    for p in ps {
      if try state.partnerStats(p).openHolds == UInt64.max {
        throw ApplyError(seq: event.seq, reason: "partner \(p) open holds below zero")
      }
      try state.putPartnerHold(partner: p, placedSeq: hold.placedSeq, holdId: id, open: false)
    }
  }

  static func pending<S: LedgerState>(_ id: String, _ seq: UInt64, _ state: inout S) throws
    -> HoldRecord
  {
    guard let hold = try state.hold(id), hold.state == .pending else {
      throw ApplyError(seq: seq, reason: "hold \(id) is not pending")
    }
    return hold
  }

  static func resolve<S: LedgerState>(
    _ hold: inout HoldRecord, _ to: HoldState, _ seq: UInt64, _ captured: [Int128],
    _ state: inout S
  ) throws {
    hold.resolve(to, seq: seq, captured: captured)
    try state.putHold(hold)
    if let d = hold.deadlineNanos {
      try state.removeDeadline(d, placedSeq: hold.placedSeq)
    }
  }

  /// Applies `change` to each leg's account and records balances and history.
  static func move<S: LedgerState>(
    _ legs: [Leg], seq: UInt64, _ state: inout S, _ change: (Balances, Leg) -> Balances?
  ) throws {
    for l in legs {
      guard let number = try state.accountNumber(l.account) else {
        throw ApplyError(seq: seq, reason: "account \(l.account) does not exist")
      }
      let old = try state.balances(number)
      guard let new = change(old, l) else {
        throw ApplyError(seq: seq, reason: "balance of \(l.account) out of range")
      }
      try state.putBalances(number, new, seq: seq)
      try state.putHistory(number, seq: seq, new)
    }
  }
}
