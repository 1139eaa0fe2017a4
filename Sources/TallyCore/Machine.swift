/// The ledger's rules: `decide` turns a command and the current state into events or a
/// rejection without changing anything; `apply` turns an event into projection updates.
/// The store and the replayer both call these; nothing else implements a rule.
public enum Machine {
  /// Name of the partner `init` creates for the platform itself.
  public static let platformPartner = "platform"

  /// Scale of an ISO 4217 currency or a declared asset.
  public static func scale<S: LedgerState>(of code: String, _ state: S) throws -> UInt8? {
    if let s = ISO4217.minorUnits(of: code) { return s }
    return try state.asset(code)?.scale
  }

  // MARK: - decide

  public static func decide<S: LedgerState>(_ command: Command, _ state: inout S, now: Int64)
    throws -> Decision
  {
    switch command {
    case .createPartner(let p): return try decidePartner(p, &state)
    case .declareAsset(let a): return try decideAsset(a, &state)
    case .openAccount(let a): return try decideOpen(a, &state)
    case .closeAccount(let name): return try decideClose(name, &state)
    case .postEntry(let e): return try decideEntry(e, &state)
    case .placeHold(let h): return try decideHold(h, &state, now: now)
    case .captureHold(let c): return try decideCapture(c, &state)
    case .releaseHold(let id): return try decideRelease(id, &state)
    case .expireHolds(let asOf): return try decideExpire(asOf, &state)
    case .reverseEntry(let r): return try decideReverse(r, &state)
    case .reconImport(let i): return try decideReconImport(i, &state)
    case .reconMatch(let m): return try decideReconMatch(m, &state)
    case .reconResolve(let r): return try decideReconResolve(r, &state)
    case .reconUnmatch(let u): return try decideReconUnmatch(u, &state)
    }
  }

  static func decidePartner<S: LedgerState>(_ p: PartnerCreated, _ state: inout S) throws
    -> Decision
  {
    guard Validate.id(p.id, maxBytes: Limits.partnerIdBytesMax) else {
      return .reject(Validate.idRejection("partner", p.id, maxBytes: Limits.partnerIdBytesMax))
    }
    guard Validate.text(p.name, maxBytes: Limits.displayNameBytesMax) else {
      return .reject(
        Rejection(.invalidField, "partner name must be 1…256 bytes of text", ["field": "name"]))
    }
    if let existing = try state.partner(p.id) {
      let differs =
        !existing.name.bytesEqual(p.name)
        ? "name" : existing.metadata != p.metadata ? "metadata" : nil
      if let differs {
        return .reject(
          Rejection(
            .alreadyExists, "partner \(p.id) exists with a different \(differs)",
            ["partner": p.id, "field": differs]))
      }
      return .duplicate(seq: existing.createdSeq)
    }
    return .accept([.partnerCreated(p)])
  }

  static func decideAsset<S: LedgerState>(_ a: AssetDeclared, _ state: inout S) throws
    -> Decision
  {
    guard Validate.assetCode(a.code) else {
      return .reject(
        Rejection(
          .invalidField, "asset code must be 1…16 bytes of [A-Z0-9_]",
          ["field": "code", "value": String(a.code.prefix(24))]))
    }
    guard a.scale <= Limits.assetScaleMax else {
      return .reject(
        Rejection(.invalidField, "asset scale must be 0…18", ["field": "scale"]))
    }
    guard Validate.text(a.name, maxBytes: Limits.displayNameBytesMax) else {
      return .reject(
        Rejection(.invalidField, "asset name must be 1…256 bytes of text", ["field": "name"]))
    }
    if ISO4217.minorUnits(of: a.code) != nil {
      return .reject(
        Rejection(.alreadyExists, "\(a.code) is an ISO 4217 currency", ["asset": a.code]))
    }
    if let existing = try state.asset(a.code) {
      let differs =
        existing.scale != a.scale ? "scale" : !existing.name.bytesEqual(a.name) ? "name" : nil
      if let differs {
        return .reject(
          Rejection(
            .alreadyExists, "asset \(a.code) exists with a different \(differs)",
            ["asset": a.code, "field": differs]))
      }
      return .duplicate(seq: existing.declaredSeq)
    }
    return .accept([.assetDeclared(a)])
  }

  static func decideOpen<S: LedgerState>(_ a: AccountOpened, _ state: inout S) throws
    -> Decision
  {
    guard Validate.id(a.name, maxBytes: Limits.accountNameBytesMax) else {
      return .reject(Validate.idRejection("account", a.name, maxBytes: Limits.accountNameBytesMax))
    }
    guard Validate.id(a.partner, maxBytes: Limits.partnerIdBytesMax) else {
      return .reject(Validate.idRejection("partner", a.partner, maxBytes: Limits.partnerIdBytesMax))
    }
    if let l = a.limitMinor, l < 0 {
      return .reject(Rejection(.invalidAmount, "limit must not be negative", ["field": "limit"]))
    }
    if let existing = try state.account(a.name) {
      let differs: String? =
        existing.partner != a.partner
        ? "partner"
        : existing.currency != a.currency
          ? "currency"
          : existing.normalSide != a.normalSide
            ? "normal_side"
            : existing.noOverdraft != a.noOverdraft
              ? "no_overdraft"
              : existing.limitMinor != a.limitMinor
                ? "limit" : existing.metadata != a.metadata ? "metadata" : nil
      if let differs {
        return .reject(
          Rejection(
            .alreadyExists, "account \(a.name) exists with a different \(differs)",
            ["account": a.name, "field": differs]))
      }
      return .duplicate(seq: existing.openedSeq)
    }
    guard try state.partner(a.partner) != nil else {
      return .reject(
        Rejection(.partnerNotFound, "partner \(a.partner) does not exist", ["partner": a.partner]))
    }
    guard try scale(of: a.currency, state) != nil else {
      return .reject(
        Rejection(
          .unknownCurrency, "\(a.currency.prefix(24)) is neither ISO 4217 nor a declared asset",
          ["currency": String(a.currency.prefix(24))]))
    }
    return .accept([.accountOpened(a)])
  }

  static func decideClose<S: LedgerState>(_ name: String, _ state: inout S) throws -> Decision {
    guard Validate.id(name, maxBytes: Limits.accountNameBytesMax) else {
      return .reject(Validate.idRejection("account", name, maxBytes: Limits.accountNameBytesMax))
    }
    guard let acct = try state.account(name) else {
      return .reject(
        Rejection(.accountNotFound, "account \(name) does not exist", ["account": name]))
    }
    if acct.status == .closed { return .duplicate(seq: acct.closedSeq) }
    let b = try state.balances(acct.number)
    if b.pendingDebits != 0 || b.pendingCredits != 0 {
      return .reject(
        Rejection(.accountHasHolds, "account \(name) has pending holds", ["account": name]))
    }
    if b.postedDebits != b.postedCredits {
      return .reject(
        Rejection(
          .accountNotEmpty, "account \(name) has a non-zero balance", ["account": name]))
    }
    return .accept([.accountClosed(name: name)])
  }

  /// Shape checks common to entries and holds: id, leg count, leg accounts and amounts,
  /// one leg per account, ref.
  static func checkShape(id: String, legs: [LegSpec], ref: String?) -> Rejection? {
    guard Validate.id(id, maxBytes: Limits.entryIdBytesMax) else {
      return Validate.idRejection("id", id, maxBytes: Limits.entryIdBytesMax)
    }
    if legs.count < Limits.legsPerEntryMin {
      return Rejection(.tooFewLegs, "an entry needs at least 2 legs, got \(legs.count)")
    }
    if legs.count > Limits.legsPerEntryMax {
      return Rejection(
        .tooManyLegs, "an entry has at most \(Limits.legsPerEntryMax) legs, got \(legs.count)")
    }
    for (i, l) in legs.enumerated() {
      guard Validate.id(l.account, maxBytes: Limits.accountNameBytesMax) else {
        return Validate.idRejection(
          "legs[\(i)].account", l.account,
          maxBytes: Limits.accountNameBytesMax)
      }
      if l.amountMinor <= 0 {
        return Rejection(
          .invalidAmount, "legs[\(i)].amount must be positive", ["field": "legs[\(i)].amount"])
      }
    }
    for i in legs.indices {
      for j in legs.indices where j > i && legs[j].account == legs[i].account {
        return Rejection(
          .duplicateLeg, "account \(legs[i].account) appears in legs \(i) and \(j)",
          ["account": legs[i].account])
      }
    }
    if let ref, !Validate.text(ref, maxBytes: Limits.refBytesMax) {
      return Rejection(
        .invalidField, "ref must be 1…\(Limits.refBytesMax) bytes of text", ["field": "ref"])
    }
    return nil
  }

  /// Accounts exist and are open, and currencies agree with the assertions.
  static func resolve<S: LedgerState>(_ legs: [LegSpec], currency: String?, _ state: inout S)
    throws -> Result<[AccountRecord], Rejection>
  {
    var accounts = [AccountRecord]()
    accounts.reserveCapacity(legs.count)
    for l in legs {
      guard let a = try state.account(l.account) else {
        return .failure(
          Rejection(
            .accountNotFound, "account \(l.account) does not exist", ["account": l.account]))
      }
      if a.status == .closed {
        return .failure(
          Rejection(.accountClosed, "account \(l.account) is closed", ["account": l.account]))
      }
      accounts.append(a)
    }
    for (l, a) in zip(legs, accounts) {
      for asserted in [l.currency, currency] {
        if let asserted, asserted != a.currency {
          return .failure(
            Rejection(
              .currencyMismatch,
              "account \(a.name) is in \(a.currency), not \(asserted.prefix(24))",
              ["account": a.name, "currency": a.currency]))
        }
      }
    }
    return .success(accounts)
  }

  /// For each currency, debits equal credits.
  static func checkBalanced(
    _ amounts: [(currency: String, side: Side, amount: Int128)]
  ) -> Rejection? {
    var totals: [(currency: String, net: Int128)] = []
    for a in amounts {
      let signed = a.side == .debit ? a.amount : -a.amount
      if let i = totals.firstIndex(where: { $0.currency == a.currency }) {
        let (v, o) = totals[i].net.addingReportingOverflow(signed)
        if o { return Rejection(.overflow, "sum of \(a.currency) legs overflows") }
        totals[i].net = v
      } else {
        totals.append((a.currency, signed))
      }
    }
    for t in totals where t.net != 0 {
      return Rejection(
        .unbalanced, "\(t.currency) debits and credits differ by \(t.net.magnitude)",
        ["currency": t.currency])
    }
    return nil
  }

  /// Balance-rule checks of one account's move from `old` to `new`. A move that does not
  /// make things worse is always allowed.
  static func checkRules(_ a: AccountRecord, old: Balances, new: Balances) -> Rejection? {
    if a.noOverdraft {
      guard let avail = new.available(normal: a.normalSide),
        let before = old.available(normal: a.normalSide)
      else { return Rejection(.overflow, "available balance of \(a.name) overflows") }
      if avail < 0 && avail < before {
        return Rejection(
          .insufficientFunds, "account \(a.name) would be overdrawn", ["account": a.name])
      }
    }
    if let limit = a.limitMinor {
      guard let exp = new.exposure(normal: a.normalSide),
        let before = old.exposure(normal: a.normalSide)
      else { return Rejection(.overflow, "balance of \(a.name) overflows") }
      if exp > limit && exp > before {
        return Rejection(
          .limitExceeded, "account \(a.name) would exceed its limit", ["account": a.name])
      }
    }
    return nil
  }

  /// Validates the balance effects of posted (or pending) legs.
  static func checkMoves<S: LedgerState>(
    _ legs: [LegSpec], _ accounts: [AccountRecord], pending: Bool, _ state: inout S
  ) throws -> Rejection? {
    if let r = checkBalanced(
      zip(legs, accounts).map { ($1.currency, $0.side, $0.amountMinor) })
    {
      return r
    }
    for (l, a) in zip(legs, accounts) {
      let old = try state.balances(a.number)
      guard
        let new = pending
          ? old.pending(l.side, l.amountMinor) : old.posting(l.side, l.amountMinor)
      else {
        return Rejection(.overflow, "balance of \(a.name) would overflow", ["account": a.name])
      }
      if let r = checkRules(a, old: old, new: new) { return r }
    }
    return nil
  }

  static func firstDifference(_ e: EntryPosted, _ spec: EntrySpec, reversalOf: String?)
    -> String?
  {
    if e.legs != spec.legs.map(\.leg) { return "legs" }
    if !e.ref.bytesEqual(spec.ref) { return "ref" }
    if e.valueDateDays != spec.valueDateDays { return "value_date" }
    if e.metadata != spec.metadata { return "metadata" }
    if !e.reversalOf.bytesEqual(reversalOf) { return "reversal_of" }
    return nil
  }

  /// The id is taken: the original seq when the content matches, else ID_CONFLICT.
  static func idempotent<S: LedgerState>(
    _ id: String, _ rec: IdRecord, _ state: inout S, differs: (EventBody) -> String?
  ) throws -> Decision {
    let original = try state.event(at: rec.seq)
    if let field = differs(original.body) {
      return .reject(
        Rejection(
          .idConflict, "id \(id) was used with a different \(field)",
          ["id": id, "field": field, "seq": String(rec.seq)]))
    }
    return .duplicate(seq: rec.seq)
  }

  static func decideEntry<S: LedgerState>(_ e: EntrySpec, _ state: inout S) throws -> Decision {
    if let r = checkShape(id: e.id, legs: e.legs, ref: e.ref) { return .reject(r) }
    if let rec = try state.idRecord(e.id) {
      return try idempotent(e.id, rec, &state) { body in
        guard case .entryPosted(let p) = body else { return "kind" }
        return firstDifference(p, e, reversalOf: nil)
      }
    }
    let accounts: [AccountRecord]
    switch try resolve(e.legs, currency: e.currency, &state) {
    case .failure(let r): return .reject(r)
    case .success(let a): accounts = a
    }
    if let r = try checkMoves(e.legs, accounts, pending: false, &state) { return .reject(r) }
    // Every check passed: from here the entry is applied as decided.
    return .accept([
      .entryPosted(
        EntryPosted(
          id: e.id, legs: e.legs.map(\.leg), ref: e.ref, valueDateDays: e.valueDateDays,
          metadata: e.metadata))
    ])
  }

  static func decideHold<S: LedgerState>(_ spec: HoldSpec, _ state: inout S, now: Int64) throws
    -> Decision
  {
    var h = spec
    if let ttl = h.ttlNanos {
      let (d, overflow) = now.addingReportingOverflow(ttl)
      h.deadlineNanos = overflow ? Int64.max : d
    }
    if let r = checkShape(id: h.id, legs: h.legs, ref: h.ref) { return .reject(r) }
    if let rec = try state.idRecord(h.id) {
      return try idempotent(h.id, rec, &state) { body in
        guard case .holdPlaced(let p) = body else { return "kind" }
        if p.legs != h.legs.map(\.leg) { return "legs" }
        if !p.ref.bytesEqual(h.ref) { return "ref" }
        if h.deadlineIsRelative {
          if (p.deadlineNanos == nil) != (h.deadlineNanos == nil) { return "deadline" }
        } else if p.deadlineNanos != h.deadlineNanos {
          return "deadline"
        }
        if p.metadata != h.metadata { return "metadata" }
        return nil
      }
    }
    if let d = h.deadlineNanos, d <= now {
      return .reject(
        Rejection(.invalidDeadline, "deadline is not in the future", ["field": "deadline"]))
    }
    let accounts: [AccountRecord]
    switch try resolve(h.legs, currency: h.currency, &state) {
    case .failure(let r): return .reject(r)
    case .success(let a): accounts = a
    }
    if let r = try checkMoves(h.legs, accounts, pending: true, &state) { return .reject(r) }
    // Every check passed.
    return .accept([
      .holdPlaced(
        HoldPlaced(
          id: h.id, legs: h.legs.map(\.leg), ref: h.ref, deadlineNanos: h.deadlineNanos,
          metadata: h.metadata))
    ])
  }

  static func pendingHold<S: LedgerState>(_ id: String, _ state: inout S) throws
    -> Result<HoldRecord, Rejection>
  {
    guard Validate.id(id, maxBytes: Limits.entryIdBytesMax) else {
      return .failure(Validate.idRejection("hold", id, maxBytes: Limits.entryIdBytesMax))
    }
    guard let hold = try state.hold(id) else {
      return .failure(Rejection(.holdNotFound, "hold \(id) does not exist", ["hold": id]))
    }
    return .success(hold)
  }

  static func decideCapture<S: LedgerState>(_ c: CaptureSpec, _ state: inout S) throws
    -> Decision
  {
    let hold: HoldRecord
    switch try pendingHold(c.holdId, &state) {
    case .failure(let r): return .reject(r)
    case .success(let h): hold = h
    }
    let resolved: Result<[Int128], Rejection>
    switch c.amounts {
    case .full:
      resolved = .success(hold.legs.map(\.amountMinor))
    case .uniform(let a):
      resolved =
        hold.legs.allSatisfy({ $0.amountMinor == hold.legs[0].amountMinor })
        ? .success(Array(repeating: a, count: hold.legs.count))
        : .failure(
          Rejection(
            .invalidField, "hold legs differ; give one amount per leg", ["field": "amounts"]))
    case .perLeg(let a):
      resolved =
        a.count == hold.legs.count
        ? .success(a)
        : .failure(
          Rejection(
            .invalidField, "hold has \(hold.legs.count) legs, got \(a.count) amounts",
            ["field": "amounts"]))
    }
    if hold.state != .pending {
      if hold.state == .captured, case .success(let amounts) = resolved,
        hold.capturedMinor == amounts
      {
        return .duplicate(seq: hold.resolvedSeq)
      }
      return .reject(
        Rejection(
          .holdNotPending, "hold \(hold.id) is \(hold.state)",
          ["hold": hold.id, "state": hold.state.description]))
    }
    let amounts: [Int128]
    switch resolved {
    case .failure(let r): return .reject(r)
    case .success(let a): amounts = a
    }
    for (i, a) in amounts.enumerated() {
      if a < 0 {
        return .reject(
          Rejection(.invalidAmount, "amounts[\(i)] is negative", ["field": "amounts[\(i)]"]))
      }
      if a > hold.legs[i].amountMinor {
        return .reject(
          Rejection(
            .captureExceedsHold, "amounts[\(i)] exceeds the held amount",
            ["field": "amounts[\(i)]"]))
      }
    }
    if amounts.allSatisfy({ $0 == 0 }) {
      return .reject(
        Rejection(.invalidAmount, "capture of nothing; release the hold instead"))
    }
    var accounts = [AccountRecord]()
    for l in hold.legs {
      guard let a = try state.account(l.account) else {
        throw ApplyError(seq: hold.placedSeq, reason: "hold account \(l.account) missing")
      }
      accounts.append(a)
    }
    if let r = checkBalanced(
      zip(hold.legs, zip(accounts, amounts)).map { ($1.0.currency, $0.side, $1.1) })
    {
      return .reject(r)
    }
    for (i, l) in hold.legs.enumerated() {
      let old = try state.balances(accounts[i].number)
      guard let released = old.pending(l.side, -l.amountMinor),
        let new = released.posting(l.side, amounts[i])
      else {
        return .reject(
          Rejection(.overflow, "balance of \(l.account) would overflow", ["account": l.account]))
      }
      if let r = checkRules(accounts[i], old: old, new: new) { return .reject(r) }
    }
    // Every check passed.
    return .accept([.holdCaptured(HoldCaptured(holdId: hold.id, amountsMinor: amounts))])
  }

  static func decideRelease<S: LedgerState>(_ id: String, _ state: inout S) throws -> Decision {
    let hold: HoldRecord
    switch try pendingHold(id, &state) {
    case .failure(let r): return .reject(r)
    case .success(let h): hold = h
    }
    switch hold.state {
    case .pending: return .accept([.holdReleased(holdId: id)])
    case .released: return .duplicate(seq: hold.resolvedSeq)
    case .captured, .expired:
      return .reject(
        Rejection(
          .holdNotPending, "hold \(id) is \(hold.state)",
          ["hold": id, "state": hold.state.description]))
    }
  }

  static func decideExpire<S: LedgerState>(_ asOf: Int64, _ state: inout S) throws -> Decision {
    let due = try state.holdsDue(asOfNanos: asOf, limit: Limits.holdsPerExpireMax)
    return .accept(due.map { .holdExpired(holdId: $0) })
  }

  static func decideReverse<S: LedgerState>(_ r: ReverseSpec, _ state: inout S) throws
    -> Decision
  {
    guard Validate.id(r.id, maxBytes: Limits.entryIdBytesMax) else {
      return .reject(Validate.idRejection("id", r.id, maxBytes: Limits.entryIdBytesMax))
    }
    guard Validate.id(r.entryId, maxBytes: Limits.entryIdBytesMax) else {
      return .reject(Validate.idRejection("entry", r.entryId, maxBytes: Limits.entryIdBytesMax))
    }
    if let rec = try state.idRecord(r.id) {
      return try idempotent(r.id, rec, &state) { body in
        guard case .entryPosted(let p) = body else { return "kind" }
        if p.reversalOf != r.entryId { return "reversal_of" }
        if p.metadata != r.metadata { return "metadata" }
        return nil
      }
    }
    guard let orig = try state.idRecord(r.entryId), orig.kind == .entry,
      case .entryPosted(let original) = try state.event(at: orig.seq).body
    else {
      return .reject(
        Rejection(.entryNotFound, "entry \(r.entryId) does not exist", ["entry": r.entryId]))
    }
    if orig.reversedBySeq != 0 {
      return .reject(
        Rejection(
          .alreadyReversed, "entry \(r.entryId) was reversed at seq \(orig.reversedBySeq)",
          ["entry": r.entryId, "seq": String(orig.reversedBySeq)]))
    }
    let legs = original.legs.map {
      LegSpec(account: $0.account, side: $0.side.opposite, amountMinor: $0.amountMinor)
    }
    let accounts: [AccountRecord]
    switch try resolve(legs, currency: nil, &state) {
    case .failure(let rej): return .reject(rej)
    case .success(let a): accounts = a
    }
    if let rej = try checkMoves(legs, accounts, pending: false, &state) { return .reject(rej) }
    // Every check passed.
    return .accept([
      .entryPosted(
        EntryPosted(
          id: r.id, legs: legs.map(\.leg), ref: original.ref,
          valueDateDays: original.valueDateDays, reversalOf: r.entryId, metadata: r.metadata))
    ])
  }
}
