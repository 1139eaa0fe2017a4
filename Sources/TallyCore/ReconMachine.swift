/// Reconciliation's rules: what an import, a match, a resolution and an unmatch may do
/// (decide), and how their events change the projections (apply).
extension Machine {
  /// `ACCOUNT_NOT_FOUND` for a bad or unknown account name, else the record.
  static func reconAccount<S: LedgerState>(_ name: String, _ state: inout S) throws
    -> Result<AccountRecord, Rejection>
  {
    guard Validate.id(name, maxBytes: Limits.accountNameBytesMax) else {
      return .failure(
        Validate.idRejection("account", name, maxBytes: Limits.accountNameBytesMax))
    }
    guard let a = try state.account(name) else {
      return .failure(
        Rejection(.accountNotFound, "account \(name) does not exist", ["account": name]))
    }
    return .success(a)
  }

  /// Spaces removed, ASCII letters upper-cased: how IBANs are compared.
  public static func normalisedIBAN(_ s: String) -> String {
    String(
      String.UnicodeScalarView(
        s.unicodeScalars.filter { $0 != " " }.map {
          $0.value >= 0x61 && $0.value <= 0x7A ? Unicode.Scalar($0.value - 0x20)! : $0
        }))
  }

  static func optionalText(_ s: String?, max: Int) -> Bool {
    guard let s else { return true }
    return s.utf8.count <= max
  }

  static func checkLine(_ l: ReconLine) -> Rejection? {
    let at = ["line": String(l.source.prefix(64))]
    if l.amountMinor <= 0 {
      return Rejection(.invalidAmount, "\(l.source.prefix(64)): amount must be positive", at)
    }
    if l.identity.utf8.isEmpty || l.identity.utf8.count > Limits.reconIdentityBytesMax
      || l.source.utf8.count > Limits.reconReferenceBytesMax
    {
      return Rejection(.invalidField, "\(l.source.prefix(64)): identity or source too long", at)
    }
    for (name, v) in [
      ("bank_ref", l.bankReference), ("end_to_end_id", l.endToEndId), ("reference", l.reference),
    ] where !optionalText(v, max: Limits.reconReferenceBytesMax) {
      return Rejection(
        .invalidField,
        "\(l.source.prefix(64)): \(name) longer than \(Limits.reconReferenceBytesMax) bytes",
        at.merging(["field": name]) { a, _ in a })
    }
    if !optionalText(l.remittance, max: Limits.reconRemittanceBytesMax) {
      return Rejection(
        .invalidField,
        "\(l.source.prefix(64)): remittance longer than \(Limits.reconRemittanceBytesMax) bytes",
        at.merging(["field": "remittance"]) { a, _ in a })
    }
    return nil
  }

  /// A currency code as statements carry it: 1–16 bytes of `A–Z`, `0–9`, `_`.
  static func currencyCode(_ s: String) -> Bool {
    let u = s.utf8
    return !u.isEmpty && u.count <= 16
      && u.allSatisfy { ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x5F }
  }

  /// The checks of one statement of an import, in the documented order: its account, its
  /// currency, its printed account, its fields, each line.
  static func checkStatement<S: LedgerState>(_ st: ReconStatementSpec, _ state: inout S) throws
    -> Result<AccountRecord, Rejection>
  {
    let account: AccountRecord
    switch try reconAccount(st.account, &state) {
    case .failure(let r): return .failure(r)
    case .success(let a): account = a
    }
    let h = st.header
    if h.currency != account.currency {
      return .failure(
        Rejection(
          .currencyMismatch,
          "the statement is in \(h.currency.prefix(24)); account \(account.name) is in "
            + account.currency,
          ["account": account.name, "currency": account.currency]))
    }
    if let iban = account.metadata["iban"], let printed = h.statementAccount,
      normalisedIBAN(iban) != normalisedIBAN(printed)
    {
      return .failure(
        Rejection(
          .statementAccountMismatch,
          "the statement is for \(printed.prefix(64)); account \(account.name) is \(iban)",
          ["account": account.name, "statement_account": String(printed.prefix(64))]))
    }
    if !optionalText(h.statementId, max: Limits.reconReferenceBytesMax)
      || !optionalText(h.statementAccount, max: Limits.reconReferenceBytesMax)
      || h.periodFromDays > h.periodToDays
      || (h.textEncoding == nil && h.format == .camt054)
    {
      return .failure(
        Rejection(.invalidField, "statement id, account or period out of range"))
    }
    for l in st.lines {
      if let r = checkLine(l) { return .failure(r) }
      if let c = l.currency, c == h.currency || !currencyCode(c) || h.textEncoding == nil {
        return .failure(
          Rejection(
            .invalidField, "\(l.source.prefix(64)): line currency \(c.prefix(24)) is invalid",
            ["line": String(l.source.prefix(64)), "field": "currency"]))
      }
    }
    return .success(account)
  }

  static func decideReconImport<S: LedgerState>(_ spec: ReconImportSpec, _ state: inout S)
    throws -> Decision
  {
    let total = spec.statements.reduce(0) { $0 + $1.lines.count }
    if total > Limits.reconLinesPerImportMax {
      return .reject(
        Rejection(
          .statementInvalid,
          "\(total) lines; at most \(Limits.reconLinesPerImportMax) per import",
          ["code": "TOO_LARGE", "location": "input"]))
    }
    if spec.statements.isEmpty || spec.statements.count > Limits.reconStatementsPerImportMax {
      return .reject(
        Rejection(
          .statementInvalid,
          "\(spec.statements.count) statements; 1…\(Limits.reconStatementsPerImportMax) per "
            + "import", ["code": "TOO_LARGE", "location": "input"]))
    }
    var accounts = [AccountRecord]()
    for (k, st) in spec.statements.enumerated() {
      switch try checkStatement(st, &state) {
      case .success(let a): accounts.append(a)
      case .failure(var r):
        // Which statement, when the import has several (1-based, in input order).
        if spec.statements.count > 1 { r.details["statement"] = String(k + 1) }
        return .reject(r)
      }
    }
    // Every check passed: from here on only duplicates are left out, within the import (per
    // account, across its statements) and against what the account already has.
    var seen = [UInt64: Set<String>]()
    var out = [EventBody]()
    for (st, account) in zip(spec.statements, accounts) {
      var fresh = [ReconLine]()
      fresh.reserveCapacity(st.lines.count)
      for l in st.lines {
        guard seen[account.number, default: []].insert(l.identity).inserted,
          try state.reconLineItem(account: account.number, identity: l.identity) == nil
        else { continue }
        fresh.append(l)
      }
      // A slice's part 0 is appended even when another import took all its lines meanwhile:
      // it records the statement (its balances, its period) as planned.
      if fresh.isEmpty && st.slice?.part != 0 { continue }
      if let slice = st.slice {
        // One slice of a statement imported in several groups: one event, numbered as
        // planned. Lines imported meanwhile by another import were left out just above.
        guard slice.part < slice.parts, st.lines.count <= Limits.reconLinesPerEventMax else {
          return .reject(Rejection(.invalidField, "a statement slice is out of range"))
        }
        out.append(
          .reconImported(
            ReconImported(
              account: account.name, header: st.header, part: slice.part, parts: slice.parts,
              lines: fresh)))
        continue
      }
      var header = st.header
      header.linesRead = UInt32(st.lines.count)
      header.duplicates = UInt32(st.lines.count - fresh.count)
      let per = Limits.reconLinesPerEventMax
      let parts = (fresh.count + per - 1) / per
      out += (0..<parts).map { p in
        .reconImported(
          ReconImported(
            account: account.name, header: header, part: UInt32(p), parts: UInt32(parts),
            lines: Array(fresh[(p * per)..<min(fresh.count, (p + 1) * per)])))
      }
    }
    return .accept(out)
  }

  static func decideReconMatch<S: LedgerState>(_ m: ReconMatched, _ state: inout S) throws
    -> Decision
  {
    let account: AccountRecord
    switch try reconAccount(m.account, &state) {
    case .failure(let r): return .reject(r)
    case .success(let a): account = a
    }
    if m.matches.isEmpty || m.matches.count > Limits.reconMatchesPerEventMax {
      return .reject(
        Rejection(
          .invalidField, "1…\(Limits.reconMatchesPerEventMax) matches per event",
          ["field": "matches"]))
    }
    var items = Set<UInt64>()
    var entries = Set<String>()
    for x in m.matches {
      let shapeOK =
        !x.items.isEmpty && !x.entries.isEmpty && x.items.count <= Limits.reconMatchPartsMax
        && x.entries.count <= Limits.reconMatchPartsMax
        && (x.state == .matched
          || (x.state == .discrepancy && x.rule == .reference && x.items.count == 1
            && x.entries.count == 1))
        && (x.state == .discrepancy
          || (x.amountDifferenceMinor == 0 && !x.currencyDiffers && !x.directionDiffers))
      guard shapeOK else {
        return .reject(Rejection(.invalidField, "a match's shape is invalid", ["field": "matches"]))
      }
      for i in x.items {
        guard let rec = try state.reconItem(i), rec.account == account.name else {
          return .reject(
            Rejection(.itemNotFound, "item \(i) does not exist", ["item": String(i)]))
        }
        guard rec.state == .unmatched, items.insert(i).inserted else {
          return .reject(
            Rejection(
              .itemState, "item \(i) is \(rec.state), not unmatched",
              ["item": String(i), "state": rec.state.description]))
        }
      }
      for e in x.entries {
        guard Validate.id(e, maxBytes: Limits.entryIdBytesMax), let rec = try state.idRecord(e),
          try movesOn(account.name, try state.event(at: rec.seq), &state)
        else {
          return .reject(
            Rejection(
              .entryNotFound, "entry \(e.prefix(64)) has no posting on \(account.name)",
              ["entry": String(e.prefix(64))]))
        }
        guard try state.reconEntryMatch(account: account.number, entrySeq: rec.seq) == nil,
          entries.insert(e).inserted
        else {
          return .reject(
            Rejection(.itemState, "entry \(e) is already matched", ["entry": e]))
        }
      }
    }
    return .accept([.reconMatched(m)])
  }

  /// Whether an entry (or a captured hold) posted money on the account.
  static func movesOn<S: LedgerState>(_ account: String, _ event: Event, _ state: inout S)
    throws -> Bool
  {
    switch event.body {
    case .entryPosted(let e): return e.legs.contains { $0.account == account }
    case .holdPlaced(let h):
      guard let hold = try state.hold(h.id), hold.state == .captured else { return false }
      return zip(hold.legs, hold.capturedMinor).contains { $0.account == account && $1 > 0 }
    default: return false
    }
  }

  static func decideReconResolve<S: LedgerState>(_ r: ReconResolved, _ state: inout S) throws
    -> Decision
  {
    guard let item = try state.reconItem(r.item) else {
      return .reject(
        Rejection(.itemNotFound, "item \(r.item) does not exist", ["item": String(r.item)]))
    }
    guard Validate.text(r.reason, maxBytes: Limits.reconReasonBytesMax) else {
      return .reject(
        Rejection(
          .invalidField, "reason must be 1…\(Limits.reconReasonBytesMax) bytes of text",
          ["field": "reason"]))
    }
    guard Validate.text(r.by, maxBytes: Limits.reconByBytesMax) else {
      return .reject(
        Rejection(
          .invalidField, "by must be 1…\(Limits.reconByBytesMax) bytes of text", ["field": "by"]))
    }
    if let e = r.entry {
      guard Validate.id(e, maxBytes: Limits.entryIdBytesMax), try state.idRecord(e) != nil else {
        return .reject(
          Rejection(
            .entryNotFound, "entry \(e.prefix(64)) does not exist", ["entry": String(e.prefix(64))]
          ))
      }
    }
    switch item.state {
    case .unmatched, .discrepancy: return .accept([.reconResolved(r)])
    case .resolved where item.resolution == r: return .duplicate(seq: item.stateSeq)
    case .resolved, .matched:
      return .reject(
        Rejection(
          .itemState, "item \(r.item) is \(item.state)",
          ["item": String(r.item), "state": item.state.description]))
    }
  }

  static func decideReconUnmatch<S: LedgerState>(_ u: ReconUnmatched, _ state: inout S) throws
    -> Decision
  {
    guard let item = try state.reconItem(u.item) else {
      return .reject(
        Rejection(.itemNotFound, "item \(u.item) does not exist", ["item": String(u.item)]))
    }
    guard Validate.text(u.by, maxBytes: Limits.reconByBytesMax),
      u.reason.map({ Validate.text($0, maxBytes: Limits.reconReasonBytesMax) }) ?? true
    else {
      return .reject(
        Rejection(.invalidField, "by or reason is empty or too long", ["field": "reason"]))
    }
    switch item.state {
    // A line in another currency starts in discrepancy without a match: there is nothing
    // to undo (it is resolved instead).
    case .discrepancy where item.match == 0:
      return .reject(
        Rejection(
          .itemState, "item \(u.item) is in discrepancy without a match (reason CURRENCY)",
          ["item": String(u.item), "state": item.state.description]))
    case .matched, .discrepancy: return .accept([.reconUnmatched(u)])
    // Unmatched by an earlier unmatch (a retry): the original seq.
    case .unmatched where item.stateSeq != item.importedSeq:
      return .duplicate(seq: item.stateSeq)
    case .unmatched, .resolved:
      return .reject(
        Rejection(
          .itemState, "item \(u.item) is \(item.state), not in a match",
          ["item": String(u.item), "state": item.state.description]))
    }
  }

  // MARK: - apply

  static func reconAccountNumber<S: LedgerState>(_ name: String, _ seq: UInt64, _ state: inout S)
    throws -> AccountRecord
  {
    guard let a = try state.account(name) else {
      throw ApplyError(seq: seq, reason: "reconciling unknown account \(name)")
    }
    return a
  }

  /// Moves an item's amount between the per-state counters of its account.
  static func count(
    _ r: inout ReconAccountRecord, from: ReconState?, to: ReconState, _ amount: Int128,
    _ seq: UInt64
  ) throws {
    if let from {
      let i = Int(from.rawValue)
      guard r.counts[i] > 0 else { throw ApplyError(seq: seq, reason: "item counts below zero") }
      r.counts[i] -= 1
      r.amountsMinor[i] -= amount
    }
    let j = Int(to.rawValue)
    r.counts[j] += 1
    let (v, o) = r.amountsMinor[j].addingReportingOverflow(amount)
    if o { throw ApplyError(seq: seq, reason: "reconciled amounts overflow") }
    r.amountsMinor[j] = v
  }

  static func changeUnreconciled<S: LedgerState>(
    _ partner: String, by delta: Int, _ seq: UInt64, _ state: inout S
  ) throws {
    if delta == 0 { return }
    var st = try state.partnerStats(partner)
    let (v, o) =
      delta > 0
      ? st.unreconciled.addingReportingOverflow(UInt64(delta))
      : st.unreconciled.subtractingReportingOverflow(UInt64(-delta))
    if o { throw ApplyError(seq: seq, reason: "partner \(partner) unreconciled out of range") }
    st.unreconciled = v
    try state.putPartnerStats(partner, st)
  }

  static func applyReconImported<S: LedgerState>(
    _ r: ReconImported, _ seq: UInt64, _ state: inout S
  ) throws {
    let a = try reconAccountNumber(r.account, seq, &state)
    var acct = try state.reconAccount(a.number) ?? ReconAccountRecord()
    if r.part == 0 { acct.statements += 1 }
    acct.periodFromDays = min(acct.periodFromDays, r.header.periodFromDays)
    acct.periodToDays = max(acct.periodToDays, r.header.periodToDays)
    acct.lastImportSeq = seq
    for l in r.lines {
      if try state.reconLineItem(account: a.number, identity: l.identity) != nil {
        throw ApplyError(seq: seq, reason: "line \(l.source) imported twice")
      }
      let number = state.reconItemCount + 1
      // A line in another currency is never matched: it waits in discrepancy (reason
      // CURRENCY) for a person to resolve.
      let initial: ReconState = l.isForeignCurrency ? .discrepancy : .unmatched
      try state.putReconLine(account: a.number, identity: l.identity, item: number)
      try state.putReconItem(
        ReconItemRecord(
          number: number, account: a.name, line: l, importedSeq: seq, state: initial,
          stateSeq: seq),
        accountNumber: a.number, previous: nil)
      try count(&acct, from: nil, to: initial, l.accountAmountMinor, seq)
    }
    try state.putReconAccount(a.number, acct)
    try changeUnreconciled(a.partner, by: r.lines.count, seq, &state)
  }

  static func applyReconMatched<S: LedgerState>(
    _ m: ReconMatched, _ seq: UInt64, _ state: inout S
  ) throws {
    let a = try reconAccountNumber(m.account, seq, &state)
    var acct = try state.reconAccount(a.number) ?? ReconAccountRecord()
    var closed = 0
    for x in m.matches {
      let number = state.reconMatchCount + 1
      for i in x.items {
        guard var rec = try state.reconItem(i), rec.account == a.name,
          rec.apply(.match(number, x.state), seq: seq)
        else { throw ApplyError(seq: seq, reason: "item \(i) cannot be matched") }
        try state.putReconItem(rec, accountNumber: a.number, previous: .unmatched)
        try count(&acct, from: .unmatched, to: x.state, rec.line.accountAmountMinor, seq)
        if !x.state.isOpen { closed += 1 }
      }
      for e in x.entries {
        guard let id = try state.idRecord(e),
          try state.reconEntryMatch(account: a.number, entrySeq: id.seq) == nil
        else { throw ApplyError(seq: seq, reason: "entry \(e) cannot be matched") }
        try state.putReconEntry(account: a.number, entrySeq: id.seq, match: number)
      }
      try state.putReconMatch(
        ReconMatchRecord(number: number, account: a.name, match: x, matchedSeq: seq, undoneSeq: 0))
    }
    try state.putReconAccount(a.number, acct)
    try changeUnreconciled(a.partner, by: -closed, seq, &state)
  }

  static func applyReconResolved<S: LedgerState>(
    _ r: ReconResolved, _ seq: UInt64, _ state: inout S
  ) throws {
    guard var rec = try state.reconItem(r.item) else {
      throw ApplyError(seq: seq, reason: "resolving unknown item \(r.item)")
    }
    let a = try reconAccountNumber(rec.account, seq, &state)
    let previous = rec.state
    guard rec.apply(.resolve(r), seq: seq) else {
      throw ApplyError(seq: seq, reason: "item \(r.item) cannot be resolved")
    }
    try state.putReconItem(rec, accountNumber: a.number, previous: previous)
    var acct = try state.reconAccount(a.number) ?? ReconAccountRecord()
    try count(&acct, from: previous, to: .resolved, rec.line.accountAmountMinor, seq)
    try state.putReconAccount(a.number, acct)
    try changeUnreconciled(a.partner, by: -1, seq, &state)
  }

  static func applyReconUnmatched<S: LedgerState>(
    _ u: ReconUnmatched, _ seq: UInt64, _ state: inout S
  ) throws {
    guard let item = try state.reconItem(u.item), item.match != 0,
      var match = try state.reconMatch(item.match), match.undoneSeq == 0
    else { throw ApplyError(seq: seq, reason: "item \(u.item) is in no standing match") }
    let a = try reconAccountNumber(item.account, seq, &state)
    var acct = try state.reconAccount(a.number) ?? ReconAccountRecord()
    var reopened = 0
    for i in match.match.items {
      guard var rec = try state.reconItem(i) else {
        throw ApplyError(seq: seq, reason: "match \(match.number) names unknown item \(i)")
      }
      let previous = rec.state
      guard rec.apply(.unmatch, seq: seq) else {
        throw ApplyError(seq: seq, reason: "item \(i) cannot be unmatched")
      }
      try state.putReconItem(rec, accountNumber: a.number, previous: previous)
      try count(&acct, from: previous, to: .unmatched, rec.line.accountAmountMinor, seq)
      if !previous.isOpen { reopened += 1 }
    }
    for e in match.match.entries {
      guard let id = try state.idRecord(e) else {
        throw ApplyError(seq: seq, reason: "match \(match.number) names unknown entry \(e)")
      }
      try state.putReconEntry(account: a.number, entrySeq: id.seq, match: nil)
    }
    match.undoneSeq = seq
    try state.putReconMatch(match)
    try state.putReconAccount(a.number, acct)
    try changeUnreconciled(a.partner, by: reopened, seq, &state)
  }
}
