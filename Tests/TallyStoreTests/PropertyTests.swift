import PropertyBased
import TallyCore
import TallyTestSupport
import Testing

@testable import TallyStore

// A model of the ledger in plain dictionaries: it predicts every outcome (applied with which
// events, duplicate of which seq, or rejected with which code) and keeps balances with its
// own arithmetic. Random batches of valid and invalid commands go to the engine and to the
// model; after every batch outcomes, events and balances must agree.

// MARK: - Model

struct MBalance: Equatable, CustomStringConvertible {
  var pd: Int128 = 0
  var pc: Int128 = 0
  var qd: Int128 = 0
  var qc: Int128 = 0

  init() {}
  init(_ b: Balances) {
    (pd, pc, qd, qc) = (b.postedDebits, b.postedCredits, b.pendingDebits, b.pendingCredits)
  }

  func balance(_ normal: Side) -> Int128 { normal == .debit ? pd - pc : pc - pd }
  func available(_ normal: Side) -> Int128 { balance(normal) - (normal == .debit ? qc : qd) }
  func exposure(_ normal: Side) -> Int128 { balance(normal) + (normal == .debit ? qd : qc) }

  mutating func add(_ side: Side, pending: Bool, _ amount: Int128) {
    switch (side, pending) {
    case (.debit, false): pd += amount
    case (.credit, false): pc += amount
    case (.debit, true): qd += amount
    case (.credit, true): qc += amount
    }
  }

  var description: String { "posted \(pd)/\(pc) pending \(qd)/\(qc)" }
}

struct MAccount {
  var spec: AccountOpened
  var openedSeq: UInt64
  var closedSeq: UInt64 = 0
  var b = MBalance()
  var closed: Bool { closedSeq != 0 }
}

struct MHold {
  var placed: HoldPlaced
  var seq: UInt64
  var state: HoldState = .pending
  var resolvedSeq: UInt64 = 0
  var captured: [Int128] = []
}

enum Expect: CustomStringConvertible {
  case accept([EventBody])
  case duplicate(UInt64)
  case reject(RejectionCode)

  var description: String {
    switch self {
    case .accept(let b): "applied \(b.count) event(s) \(b.map(\.type))"
    case .duplicate(let s): "duplicate of \(s)"
    case .reject(let c): "rejected \(c.name)"
    }
  }
}

struct Model {
  var partners: Set<String> = [Machine.platformPartner]
  var accounts: [String: MAccount] = [:]
  /// Entries (with their seq) and holds, one id namespace.
  var entries: [String: (seq: UInt64, body: EntryPosted)] = [:]
  var holds: [String: MHold] = [:]
  var reversedBy: [String: UInt64] = [:]
  var seq: UInt64 = 1  // the platform partner
  /// Balances of every account after each seq (index = seq).
  var snapshots: [[String: MBalance]] = [[:], [:]]

  static func validId(_ s: String, _ max: Int) -> Bool {
    let u = Array(s.utf8)
    return !u.isEmpty && u.count <= max
      && u.allSatisfy { c in
        (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57)
          || [46, 95, 58, 45].contains(c)
      }
  }

  static func validText(_ s: String, _ max: Int) -> Bool {
    let u = Array(s.utf8)
    return !u.isEmpty && u.count <= max && u.allSatisfy { $0 >= 0x20 && $0 != 0x7f }
  }

  func names(in currency: String) -> [String] {
    accounts.keys.sorted().filter { accounts[$0]!.spec.currency == currency }
  }

  // MARK: decide

  func decide(_ command: Command, now: Int64) -> Expect {
    switch command {
    case .createPartner(let p):
      if partners.contains(p.id) { return .duplicate(1) }  // only "platform" exists
      return .accept([.partnerCreated(p)])
    case .declareAsset: return .reject(.invalidField)  // not generated
    case .openAccount(let a): return decideOpen(a)
    case .closeAccount(let name): return decideClose(name)
    case .postEntry(let e): return decideEntry(e)
    case .placeHold(let h): return decideHold(h, now: now)
    case .captureHold(let c): return decideCapture(c)
    case .releaseHold(let id): return decideRelease(id)
    case .expireHolds(let asOf): return decideExpire(asOf)
    case .reverseEntry(let r): return decideReverse(r)
    case .reconImport, .reconMatch, .reconResolve, .reconUnmatch:
      return .reject(.invalidField)  // not generated (ReconPropertyTests covers them)
    }
  }

  func decideOpen(_ a: AccountOpened) -> Expect {
    guard Self.validId(a.name, 128), Self.validId(a.partner, 64) else { return .reject(.invalidId) }
    if let l = a.limitMinor, l < 0 { return .reject(.invalidAmount) }
    if let existing = accounts[a.name] {
      return existing.spec == a ? .duplicate(existing.openedSeq) : .reject(.alreadyExists)
    }
    guard partners.contains(a.partner) else { return .reject(.partnerNotFound) }
    guard ["EUR", "USD", "JPY"].contains(a.currency) else { return .reject(.unknownCurrency) }
    return .accept([.accountOpened(a)])
  }

  func decideClose(_ name: String) -> Expect {
    guard Self.validId(name, 128) else { return .reject(.invalidId) }
    guard let a = accounts[name] else { return .reject(.accountNotFound) }
    if a.closed { return .duplicate(a.closedSeq) }
    if a.b.qd != 0 || a.b.qc != 0 { return .reject(.accountHasHolds) }
    if a.b.pd != a.b.pc { return .reject(.accountNotEmpty) }
    return .accept([.accountClosed(name: name)])
  }

  func shape(_ id: String, _ legs: [LegSpec], _ ref: String?) -> RejectionCode? {
    guard Self.validId(id, 64) else { return .invalidId }
    if legs.count < 2 { return .tooFewLegs }
    if legs.count > 128 { return .tooManyLegs }
    for l in legs {
      guard Self.validId(l.account, 128) else { return .invalidId }
      if l.amountMinor <= 0 { return .invalidAmount }
    }
    if Set(legs.map(\.account)).count != legs.count { return .duplicateLeg }
    if let ref, !Self.validText(ref, 128) { return .invalidField }
    return nil
  }

  func resolve(_ legs: [LegSpec], currency: String?) -> RejectionCode? {
    for l in legs {
      guard let a = accounts[l.account] else { return .accountNotFound }
      if a.closed { return .accountClosed }
    }
    for l in legs {
      let c = accounts[l.account]!.spec.currency
      if let asserted = l.currency, asserted != c { return .currencyMismatch }
      if let currency, currency != c { return .currencyMismatch }
    }
    return nil
  }

  func ruleBreak(_ a: MAccount, old: MBalance, new: MBalance) -> RejectionCode? {
    let normal = a.spec.normalSide
    if a.spec.noOverdraft, new.available(normal) < 0,
      new.available(normal) < old.available(normal)
    {
      return .insufficientFunds
    }
    if let limit = a.spec.limitMinor, new.exposure(normal) > limit,
      new.exposure(normal) > old.exposure(normal)
    {
      return .limitExceeded
    }
    return nil
  }

  func unbalanced(_ moves: [(account: String, side: Side, amount: Int128)]) -> Bool {
    var net: [String: Int128] = [:]
    for m in moves {
      net[accounts[m.account]!.spec.currency, default: 0] += m.side == .debit ? m.amount : -m.amount
    }
    return net.values.contains { $0 != 0 }
  }

  func checkMoves(_ legs: [LegSpec], pending: Bool) -> RejectionCode? {
    if unbalanced(legs.map { ($0.account, $0.side, $0.amountMinor) }) { return .unbalanced }
    for l in legs {
      let a = accounts[l.account]!
      var new = a.b
      new.add(l.side, pending: pending, l.amountMinor)
      if let r = ruleBreak(a, old: a.b, new: new) { return r }
    }
    return nil
  }

  func decideEntry(_ e: EntrySpec) -> Expect {
    if let r = shape(e.id, e.legs, e.ref) { return .reject(r) }
    if let (seq, p) = entries[e.id] {
      let same =
        p.legs == e.legs.map(\.leg) && p.ref == e.ref && p.valueDateDays == e.valueDateDays
        && p.metadata == e.metadata && p.reversalOf == nil
      return same ? .duplicate(seq) : .reject(.idConflict)
    }
    if holds[e.id] != nil { return .reject(.idConflict) }
    if let r = resolve(e.legs, currency: e.currency) { return .reject(r) }
    if let r = checkMoves(e.legs, pending: false) { return .reject(r) }
    return .accept([
      .entryPosted(
        EntryPosted(
          id: e.id, legs: e.legs.map(\.leg), ref: e.ref, valueDateDays: e.valueDateDays,
          metadata: e.metadata))
    ])
  }

  func decideHold(_ h: HoldSpec, now: Int64) -> Expect {
    if let r = shape(h.id, h.legs, h.ref) { return .reject(r) }
    if let existing = holds[h.id] {
      let p = existing.placed
      let same =
        p.legs == h.legs.map(\.leg) && p.ref == h.ref && p.deadlineNanos == h.deadlineNanos
        && p.metadata == h.metadata
      return same ? .duplicate(existing.seq) : .reject(.idConflict)
    }
    if entries[h.id] != nil { return .reject(.idConflict) }
    if let d = h.deadlineNanos, d <= now { return .reject(.invalidDeadline) }
    if let r = resolve(h.legs, currency: h.currency) { return .reject(r) }
    if let r = checkMoves(h.legs, pending: true) { return .reject(r) }
    return .accept([
      .holdPlaced(
        HoldPlaced(
          id: h.id, legs: h.legs.map(\.leg), ref: h.ref, deadlineNanos: h.deadlineNanos,
          metadata: h.metadata))
    ])
  }

  func decideCapture(_ c: CaptureSpec) -> Expect {
    guard Self.validId(c.holdId, 64) else { return .reject(.invalidId) }
    guard let h = holds[c.holdId] else { return .reject(.holdNotFound) }
    let legs = h.placed.legs
    // nil: the amounts do not fit the hold (INVALID_FIELD, unless the hold is resolved).
    let amounts: [Int128]?
    switch c.amounts {
    case .full: amounts = legs.map(\.amountMinor)
    case .uniform(let a):
      amounts = Set(legs.map(\.amountMinor)).count == 1 ? legs.map { _ in a } : nil
    case .perLeg(let a):
      amounts = a.count == legs.count ? a : nil
    }
    if h.state != .pending {
      return h.state == .captured && h.captured == amounts
        ? .duplicate(h.resolvedSeq) : .reject(.holdNotPending)
    }
    guard let amounts else { return .reject(.invalidField) }
    for (a, l) in zip(amounts, legs) {
      if a < 0 { return .reject(.invalidAmount) }
      if a > l.amountMinor { return .reject(.captureExceedsHold) }
    }
    if amounts.allSatisfy({ $0 == 0 }) { return .reject(.invalidAmount) }
    if unbalanced(zip(legs, amounts).map { ($0.account, $0.side, $1) }) {
      return .reject(.unbalanced)
    }
    for (l, a) in zip(legs, amounts) {
      let acct = accounts[l.account]!
      var new = acct.b
      new.add(l.side, pending: true, -l.amountMinor)
      new.add(l.side, pending: false, a)
      if let r = ruleBreak(acct, old: acct.b, new: new) { return .reject(r) }
    }
    return .accept([.holdCaptured(HoldCaptured(holdId: c.holdId, amountsMinor: amounts))])
  }

  func decideRelease(_ id: String) -> Expect {
    guard Self.validId(id, 64) else { return .reject(.invalidId) }
    guard let h = holds[id] else { return .reject(.holdNotFound) }
    switch h.state {
    case .pending: return .accept([.holdReleased(holdId: id)])
    case .released: return .duplicate(h.resolvedSeq)
    case .captured, .expired: return .reject(.holdNotPending)
    }
  }

  func decideExpire(_ asOf: Int64) -> Expect {
    let due = holds.compactMap { id, h -> (deadline: Int64, seq: UInt64, id: String)? in
      guard h.state == .pending, let d = h.placed.deadlineNanos, d <= asOf else { return nil }
      return (d, h.seq, id)
    }
    let ordered = due.sorted { ($0.deadline, $0.seq) < ($1.deadline, $1.seq) }
    return .accept(ordered.prefix(Limits.holdsPerExpireMax).map { .holdExpired(holdId: $0.id) })
  }

  func decideReverse(_ r: ReverseSpec) -> Expect {
    guard Self.validId(r.id, 64), Self.validId(r.entryId, 64) else { return .reject(.invalidId) }
    if let (seq, p) = entries[r.id] {
      return p.reversalOf == r.entryId && p.metadata == r.metadata
        ? .duplicate(seq) : .reject(.idConflict)
    }
    if holds[r.id] != nil { return .reject(.idConflict) }
    guard let (_, original) = entries[r.entryId] else { return .reject(.entryNotFound) }
    if reversedBy[r.entryId] != nil { return .reject(.alreadyReversed) }
    let legs = original.legs.map {
      LegSpec(
        account: $0.account, side: $0.side == .debit ? .credit : .debit,
        amountMinor: $0.amountMinor)
    }
    if let code = resolve(legs, currency: nil) { return .reject(code) }
    if let code = checkMoves(legs, pending: false) { return .reject(code) }
    return .accept([
      .entryPosted(
        EntryPosted(
          id: r.id, legs: legs.map(\.leg), ref: original.ref, valueDateDays: original.valueDateDays,
          reversalOf: r.entryId, metadata: r.metadata))
    ])
  }

  // MARK: apply

  mutating func apply(_ body: EventBody) {
    seq += 1
    func move(_ legs: [Leg], pending: Bool, sign: Int128, amounts: [Int128]? = nil) {
      for (i, l) in legs.enumerated() {
        accounts[l.account]!.b.add(l.side, pending: pending, (amounts?[i] ?? l.amountMinor) * sign)
      }
    }
    switch body {
    case .partnerCreated(let p): partners.insert(p.id)
    case .assetDeclared: break
    case .accountOpened(let a): accounts[a.name] = MAccount(spec: a, openedSeq: seq)
    case .accountClosed(let name): accounts[name]!.closedSeq = seq
    case .entryPosted(let e):
      move(e.legs, pending: false, sign: 1)
      entries[e.id] = (seq, e)
      if let o = e.reversalOf { reversedBy[o] = seq }
    case .holdPlaced(let h):
      move(h.legs, pending: true, sign: 1)
      holds[h.id] = MHold(placed: h, seq: seq)
    case .holdCaptured(let c):
      let legs = holds[c.holdId]!.placed.legs
      move(legs, pending: true, sign: -1)
      move(legs, pending: false, sign: 1, amounts: c.amountsMinor)
      holds[c.holdId]!.state = .captured
      holds[c.holdId]!.captured = c.amountsMinor
      holds[c.holdId]!.resolvedSeq = seq
    case .holdReleased(let id), .holdExpired(let id):
      move(holds[id]!.placed.legs, pending: true, sign: -1)
      if case .holdReleased = body {
        holds[id]!.state = .released
      } else {
        holds[id]!.state = .expired
      }
      holds[id]!.resolvedSeq = seq
    case .reconImported, .reconMatched, .reconResolved, .reconUnmatched: break
    }
    snapshots.append(accounts.mapValues(\.b))
  }
}

// MARK: - Command generation

/// The accounts of every run: plain, no_overdraft, limited, both, in EUR and USD.
private let baseAccounts: [AccountOpened] = [
  AccountOpened(name: "cash", partner: "platform", currency: "EUR", normalSide: .debit),
  AccountOpened(
    name: "wallet", partner: "acme", currency: "EUR", normalSide: .credit, noOverdraft: true),
  AccountOpened(
    name: "fees", partner: "platform", currency: "EUR", normalSide: .credit, limitMinor: 3000),
  AccountOpened(
    name: "merchant", partner: "acme", currency: "EUR", normalSide: .credit, noOverdraft: true,
    limitMinor: 20_000),
  AccountOpened(name: "usd-cash", partner: "platform", currency: "USD", normalSide: .debit),
  AccountOpened(
    name: "usd-wallet", partner: "acme", currency: "USD", normalSide: .credit,
    noOverdraft: true),
  AccountOpened(name: "spare", partner: "platform", currency: "EUR", normalSide: .debit),
]

struct CommandSource {
  var rng: Xoshiro
  var counter = 0
  var issued: [Command] = []
  var entryIds: [String] = []
  var holdIds: [String] = []

  mutating func fresh(_ prefix: String) -> String {
    counter += 1
    return "\(prefix)\(counter)"
  }

  mutating func amount(_ max: Int = 3000) -> Int128 { Int128(rng.int(1...max)) }

  /// Balanced legs over 2 or 3 distinct accounts of one currency, in random order.
  mutating func legs(_ m: Model, currency: String) -> [LegSpec] {
    var names = m.names(in: currency)
    // Mostly open accounts; sometimes a closed one (ACCOUNT_CLOSED).
    let open = names.filter { !m.accounts[$0]!.closed }
    if open.count >= 2 && rng.chance(0.85) { names = open }
    for i in names.indices.reversed() { names.swapAt(i, rng.int(0...i)) }
    let x = amount()
    if names.count >= 3 && x >= 2 && rng.chance(0.3) {
      let y = Int128(rng.int(1...Int(x - 1)))
      let debitFirst = rng.chance(0.5)
      let big: Side = debitFirst ? .debit : .credit
      return [
        LegSpec(account: names[0], side: big, amountMinor: x),
        LegSpec(account: names[1], side: big.opposite, amountMinor: y),
        LegSpec(account: names[2], side: big.opposite, amountMinor: x - y),
      ]
    }
    return [debit(names[0], x), credit(names[1], x)]
  }

  mutating func currency() -> String { rng.chance(0.75) ? "EUR" : "USD" }

  mutating func metadata() -> Metadata {
    rng.chance(0.2) ? meta(("k\(rng.int(0...2))", "v\(rng.int(0...2))")) : .empty
  }

  mutating func ref() -> String? { rng.chance(0.2) ? "REF-\(rng.int(0...3))" : nil }

  mutating func pickOr(_ ids: [String], _ fallback: String) -> String {
    ids.isEmpty || rng.chance(0.05) ? fallback : rng.pick(ids)
  }

  /// Mostly a pending hold of the model, else any hold, else any id issued for a hold.
  mutating func holdId(_ m: Model) -> String {
    let pending = m.holds.keys.sorted().filter { m.holds[$0]!.state == .pending }
    if !pending.isEmpty && rng.chance(0.7) { return rng.pick(pending) }
    return pickOr(holdIds, "no-such-hold")
  }

  mutating func next(_ m: Model, now: Int64) -> Command {
    let c = make(m, now: now)
    issued.append(c)
    switch c {
    case .postEntry(let e): entryIds.append(e.id)
    case .reverseEntry(let r): entryIds.append(r.id)
    case .placeHold(let h): holdIds.append(h.id)
    default: break
    }
    return c
  }

  mutating func make(_ m: Model, now: Int64) -> Command {
    let roll = rng.int(0...99)
    switch roll {
    case 0..<8 where !issued.isEmpty:
      return rng.pick(issued)  // an exact repeat: duplicate, or refused again
    case 0..<34:
      let id = rng.chance(0.07) && !entryIds.isEmpty ? rng.pick(entryIds) : fresh("e")
      var legs = legs(m, currency: currency())
      var assert: String?
      if rng.chance(0.1) {
        assert = rng.chance(0.7) ? m.accounts[legs[0].account]!.spec.currency : "JPY"
      }
      if rng.chance(0.05) { legs[0].currency = "USD" }
      return post(
        id, legs, currency: assert, ref: ref(), valueDate: rng.chance(0.2) ? 19_000 : nil,
        metadata: metadata())
    case 34..<48:
      let id = rng.chance(0.05) && !holdIds.isEmpty ? rng.pick(holdIds) : fresh("h")
      let deadline: Int64? =
        rng.chance(0.5) ? now + Int64(rng.int(-1...5)) * oneSecond + 1 : nil
      return hold(
        id, legs(m, currency: currency()), ref: ref(), deadline: deadline,
        metadata: metadata())
    case 48..<60:
      let id = holdId(m)
      let legs = m.holds[id]?.placed.legs ?? []
      let top = legs.map(\.amountMinor).max().map { Int($0) } ?? 10
      switch rng.int(0...2) {
      case 0: return capture(id)
      case 1: return capture(id, .uniform(Int128(rng.int(0...top + 1))))
      default:
        return capture(id, .perLeg(legs.map { _ in Int128(rng.int(-1...top)) }))
      }
    case 60..<67:
      return release(holdId(m))
    case 67..<73:
      return .expireHolds(asOfNanos: now + Int64(rng.int(-2...6)) * oneSecond)
    case 73..<81:
      let known = m.entries.keys.sorted()
      let target: String
      if rng.chance(0.1) && !holdIds.isEmpty {
        target = rng.pick(holdIds)
      } else if rng.chance(0.7) && !known.isEmpty {
        target = rng.pick(known)
      } else {
        target = pickOr(entryIds, "none")
      }
      return reverse(fresh("r"), of: target, metadata: metadata())
    case 81..<84:
      return close(rng.pick(m.accounts.keys.sorted()))
    case 84..<87:
      switch rng.int(0...4) {
      case 0: return .openAccount(rng.pick(baseAccounts))
      case 1:
        var a = rng.pick(baseAccounts)
        a.noOverdraft.toggle()
        return .openAccount(a)
      case 2: return open(fresh("extra"), currency(), normal: rng.chance(0.5) ? .debit : .credit)
      case 3: return open(fresh("extra"), partner: "nobody")
      default: return open(fresh("extra"), "XYZ")
      }
    default:
      return malformed(m, now: now)
    }
  }

  mutating func malformed(_ m: Model, now: Int64) -> Command {
    let cur = currency()
    let legs = legs(m, currency: cur)
    let x = legs[0].amountMinor
    switch rng.int(0...11) {
    case 0: return post(rng.pick(["bad id", "", String(repeating: "i", count: 65), "é"]), legs)
    case 1: return post(fresh("e"), [legs[0]])
    case 2: return post(fresh("e"), [debit(legs[0].account, 0), credit(legs[1].account, 0)])
    case 3: return post(fresh("e"), [debit(legs[0].account, x), credit(legs[1].account, -x)])
    case 4: return post(fresh("e"), [debit(legs[0].account, x), credit(legs[0].account, x)])
    case 5: return post(fresh("e"), [debit(legs[0].account, x), credit("ghost", x)])
    case 6: return post(fresh("e"), [debit(legs[0].account, x), credit(legs[1].account, x + 1)])
    case 7:
      let other = m.names(in: cur == "EUR" ? "USD" : "EUR")
      return post(fresh("e"), [debit(legs[0].account, x), credit(rng.pick(other), x)])
    case 8:
      return post(
        fresh("e"), [debit(legs[0].account, x, currency: "GBP"), credit(legs[1].account, x)])
    case 9:
      let ref = rng.chance(0.5) ? "bad\nref" : String(repeating: "r", count: 129)
      return post(fresh("e"), legs, ref: ref)
    case 10: return hold(fresh("h"), legs, deadline: now - Int64(rng.int(0...3)) * oneSecond)
    default:
      return rng.pick([
        capture("ghost-hold"), release("bad hold"), reverse(fresh("r"), of: "ghost-entry"),
        close("ghost"), hold(fresh("h"), [debit(legs[0].account, x)]),
      ])
    }
  }
}

// MARK: - The property

private func outcomeMatches(_ e: Expect, _ o: Outcome, next: UInt64) -> Bool {
  switch (e, o) {
  case (.accept(let bodies), .applied(let first, let count)):
    return first == next && count == bodies.count
  case (.duplicate(let s), .duplicate(let seq)): return s == seq
  case (.reject(let code), .rejected(let r)): return r.code == code
  default: return false
  }
}

private func isAccepted(_ o: Outcome) -> Bool {
  if case .applied = o { return true }
  return false
}

/// Runs one seeded scenario; returns false after recording an issue when the model and the
/// engine part ways.
private func runScenario(_ rng: inout Xoshiro, batches: Int, maxBatch: Int) throws {
  try withLedger { ledger in
    var model = Model()
    var source = CommandSource(rng: rng)
    var stats = (applied: 0, duplicate: 0, rejected: 0)
    var codes: [RejectionCode: Int] = [:]
    let setup: [Command] =
      [partner("acme", name: "Acme")] + baseAccounts.map { Command.openAccount($0) }
    for c in setup {
      guard case .accept(let bodies) = model.decide(c, now: t0) else {
        Issue.record("model refused setup \(c)")
        return
      }
      bodies.forEach { model.apply($0) }
    }
    try applyAll(ledger, setup)

    for b in 0..<batches {
      let now = t0 + Int64(b + 1) * oneSecond
      var commands: [Command] = []
      // Commands are generated against the model as it stands before the batch.
      for _ in 0..<source.rng.int(1...maxBatch) { commands.append(source.next(model, now: now)) }
      let headBefore = model.seq
      let outcomes = try ledger.apply(commands, now: now)
      #expect(outcomes.count == commands.count)
      var expectedEvents: [EventBody] = []
      for (i, (command, outcome)) in zip(commands, outcomes).enumerated() {
        let expected = model.decide(command, now: now)
        if !outcomeMatches(expected, outcome, next: model.seq + 1) {
          let where_ = "batch \(b) command \(i): \(command)"
          Issue.record("model: \(expected), engine: \(outcome)\n\(where_)")
          // After an acceptance disagreement the model cannot follow the engine any more.
          if case .accept = expected { return }
          if isAccepted(outcome) { return }
        }
        switch outcome {
        case .applied:
          stats.applied += 1
          if case .accept(let bodies) = expected {
            expectedEvents += bodies
            bodies.forEach { model.apply($0) }
          }
        case .duplicate: stats.duplicate += 1
        case .rejected(let r):
          stats.rejected += 1
          codes[r.code, default: 0] += 1
        }
      }
      // The events appended are exactly the model's, in order.
      let stored = try ledger.log(fromSeq: headBefore + 1, limit: 100_000).map(\.event.body)
      #expect(stored == expectedEvents, "batch \(b) events")
      #expect(ledger.head.seq == model.seq)
      // Balances agree with the model, and debits equal credits per currency.
      let views = try ledger.allAccounts()
      #expect(views.count == model.accounts.count)
      var totals: [String: MBalance] = [:]
      for v in views {
        let mine = model.accounts[v.record.name]
        #expect(MBalance(v.balances) == mine?.b, "batch \(b): \(v.record.name)")
        #expect((v.record.status == .closed) == (mine?.closed ?? false))
        var t = totals[v.record.currency] ?? MBalance()
        t.pd += v.balances.postedDebits
        t.pc += v.balances.postedCredits
        t.qd += v.balances.pendingDebits
        t.qc += v.balances.pendingCredits
        totals[v.record.currency] = t
      }
      for (currency, t) in totals {
        #expect(t.pd == t.pc, "posted \(currency) after batch \(b)")
        #expect(t.qd == t.qc, "pending \(currency) after batch \(b)")
      }
    }
    print(
      "  scenario: \(model.seq) events, \(stats.applied) applied, \(stats.duplicate) duplicate, "
        + "\(stats.rejected) rejected, \(model.holds.count) holds, \(model.entries.count) entries"
        + "\n  rejections: "
        + codes.sorted { $0.value > $1.value }.map { "\($0.key.name) \($0.value)" }.joined(
          separator: ", "))
    // Enough of each outcome for the run to mean something.
    #expect(stats.applied > batches && stats.rejected > batches / 2 && stats.duplicate > 0)

    // Holds and reversal links agree too.
    for id in model.holds.keys.sorted() {
      let h = try ledger.hold(id)
      #expect(h?.state == model.holds[id]?.state, "hold \(id)")
      #expect(h?.capturedMinor == model.holds[id]?.captured, "hold \(id)")
      #expect(h?.resolvedSeq == model.holds[id]?.resolvedSeq, "hold \(id)")
    }
    for id in model.entries.keys.sorted() {
      #expect(try ledger.idRecord(id)?.reversedBySeq == model.reversedBy[id] ?? 0, "entry \(id)")
    }

    // verify, rebuild, verify: nothing changes.
    let report = try ledger.verify()
    #expect(report.ok, "\(report.problems)")
    #expect(report.events == model.seq)
    let before = try ledger.allAccounts()
    #expect(try ledger.rebuild() == model.seq)
    #expect(try ledger.verify().ok)
    #expect(try ledger.allAccounts() == before)

    // History: balances as of random seqs equal the model's snapshots.
    for _ in 0..<40 {
      let s = UInt64(source.rng.int(0...Int(model.seq)))
      for name in model.accounts.keys.sorted() {
        let view = try ledger.balance(name, asOfSeq: s)
        let want = model.snapshots[Int(s)][name] ?? MBalance()
        #expect(view.map { MBalance($0.balances) } == want, "\(name) as of seq \(s)")
      }
    }
    rng = source.rng
  }
}

@Suite("Property: random command streams against a model")
struct PropertyTests {
  @Test("Random batches keep the engine equal to the model; verify and rebuild agree")
  func randomBatchesMatchTheModel() async {
    await seededCheck("ledger model", seed: 0x7A11_7000_0000_0001, count: 8) { rng, i in
      // Alternate small and large batches.
      try runScenario(&rng, batches: 50, maxBatch: i % 2 == 0 ? 8 : 40)
    }
  }
}
