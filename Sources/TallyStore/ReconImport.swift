import TallyCore
import TallyReconcile

/// Which ledger account each statement of an input is imported for
/// (docs/RECONCILIATION.md, "Several statements in one input").
public struct ReconRouting: Equatable, Sendable {
  /// The account for the statements no `map` entry names: those that print its `iban`
  /// metadata, or, when it has none, the identifier of the first such statement (and those
  /// that print none). Nil: only mapped statements are imported.
  public var account: String?
  /// Statement account identifier (IBAN or other id as printed, compared without spaces and
  /// case) → ledger account.
  public var map: [String: String]

  public init(account: String?, map: [String: String] = [:]) {
    self.account = account
    self.map = map
  }

  /// Names longer than any the ledger or a statement can hold, refused before anything is
  /// planned or recorded (an intent stores each as a length-prefixed string).
  var rejection: Rejection? {
    if let a = account, a.utf8.count > Limits.accountNameBytesMax {
      return Rejection(
        .invalidField, "account is longer than \(Limits.accountNameBytesMax) bytes",
        ["field": "account"])
    }
    if map.count > Limits.reconStatementsPerImportMax {
      return Rejection(
        .invalidField, "map has more than \(Limits.reconStatementsPerImportMax) members",
        ["field": "map"])
    }
    for (id, a) in map
    where id.isEmpty || id.utf8.count > Limits.reconReferenceBytesMax
      || a.utf8.count > Limits.accountNameBytesMax
    {
      return Rejection(
        .invalidField,
        "map takes identifiers of 1…\(Limits.reconReferenceBytesMax) bytes and account names "
          + "of at most \(Limits.accountNameBytesMax)", ["field": "map"])
    }
    return nil
  }
}

extension Ledger {
  /// Parses `bytes` as a statement of `format` and imports it for `account` (see
  /// `importStatements`).
  public func importStatement(
    _ bytes: [UInt8], format: ReconFormat, account: String, now: Int64,
    toleranceDays: Int32 = Limits.reconToleranceDaysDefault,
    progress: ((ReconImportPhase) -> Void)? = nil
  ) throws(StoreError) -> Result<ReconImportReport, Rejection> {
    try importStatements(
      bytes, format: format, routing: ReconRouting(account: account), now: now,
      toleranceDays: toleranceDays, progress: progress)
  }

  /// Parses every statement of `bytes` and imports those `routing` gives an account for, in
  /// one write transaction: their new lines become items, the matching rules run over them
  /// against each account's unmatched entries, and every match is an event. An input that
  /// does not parse, or any statement the rules refuse, changes nothing.
  public func importStatements(
    _ bytes: [UInt8], format: ReconFormat, encoding: ReconTextEncoding? = nil,
    routing: ReconRouting, now: Int64, toleranceDays: Int32 = Limits.reconToleranceDaysDefault,
    progress: ((ReconImportPhase) -> Void)? = nil
  ) throws(StoreError) -> Result<ReconImportReport, Rejection> {
    let statements: [Statement]
    switch try reader.parseStatements(bytes, format: format, encoding: encoding) {
    case .failure(let r): return .failure(r)
    case .success(let s): statements = s
    }
    progress?(.parsed(lines: statements.reduce(0) { $0 + $1.lines.count }))
    let plan: ReconImportPlan
    switch try reader.planImport(
      statements, format: format, routing: routing, toleranceDays: toleranceDays,
      progress: progress)
    {
    case .failure(let r): return .failure(r)
    case .success(let p): plan = p
    }
    let intent = try reconIntents.write(
      plan,
      ReconIntent(
        afterSeq: plan.snapshotSeq, format: format, encoding: encoding,
        toleranceDays: toleranceDays, routing: routing, bytes: bytes))
    let report = try run(plan, now: now, progress: progress)
    if let intent { try reconIntents.remove(intent) }
    return .success(report)
  }

  /// Imports an already parsed statement for `account` (see `importStatements`).
  public func importStatement(
    _ st: Statement, format: ReconFormat, account: String, now: Int64,
    toleranceDays: Int32 = Limits.reconToleranceDaysDefault,
    progress: ((ReconImportPhase) -> Void)? = nil
  ) throws(StoreError) -> Result<ReconImportReport, Rejection> {
    try importStatements(
      [st], format: format, routing: ReconRouting(account: account), now: now,
      toleranceDays: toleranceDays, progress: progress)
  }

  static func parserFormat(_ f: ReconFormat) -> StatementFormat {
    switch f {
    case .csv: .csv
    case .camt053: .camt053
    case .mt940: .mt940
    case .camt054: .camt054
    }
  }

  static func parserEncoding(_ e: ReconTextEncoding) -> StatementTextEncoding {
    switch e {
    case .utf8: .utf8
    case .iso88591: .iso88591
    case .windows1252: .windows1252
    }
  }

  static func recordedEncoding(_ e: StatementTextEncoding) -> ReconTextEncoding {
    switch e {
    case .utf8: .utf8
    case .iso88591: .iso88591
    case .windows1252: .windows1252
    }
  }

  /// Imports already parsed statements (see `importStatements(_:format:…)`): plans the
  /// import against a snapshot, then applies it in write groups of one slice each, back to
  /// back (`importStep`). Without the input's bytes no intent is written: a crash midway may
  /// leave part of it (the bytes overload, and the server, resume instead).
  public func importStatements(
    _ statements: [Statement], format: ReconFormat, routing: ReconRouting, now: Int64,
    toleranceDays: Int32 = Limits.reconToleranceDaysDefault,
    progress: ((ReconImportPhase) -> Void)? = nil
  ) throws(StoreError) -> Result<ReconImportReport, Rejection> {
    switch try reader.planImport(
      statements, format: format, routing: routing, toleranceDays: toleranceDays,
      progress: progress)
    {
    case .failure(let r): return .failure(r)
    case .success(let plan): return .success(try run(plan, now: now, progress: progress))
    }
  }

  /// Applies every write group of `plan` in turn, synced once at the end.
  func run(
    _ plan: ReconImportPlan, now: Int64, progress: ((ReconImportPhase) -> Void)?
  ) throws(StoreError) -> ReconImportReport {
    let run = ReconImportRun(plan)
    let synced = syncEachGroup
    // Nothing is acknowledged before the end: one sync covers every group.
    syncEachGroup = false
    defer { syncEachGroup = synced }
    while !run.finished { try importStep(run, now: now) }
    try journal?.sync()
    progress?(.itemsAppended(new: run.report.new, duplicates: run.report.duplicates))
    progress?(.committed)
    return run.report
  }

  /// Consecutive statements (in input order) of one account whose balances do not join.
  static func gaps(_ specs: [ReconStatementSpec], _ reports: [ReconStatementReport])
    -> [ReconStatementGap]
  {
    var previous: [String: Int] = [:]
    var out = [ReconStatementGap]()
    for (k, st) in specs.enumerated() {
      defer { previous[st.account] = k }
      guard let p = previous[st.account], let closing = specs[p].header.closing,
        let opening = st.header.opening, closing.amountMinor != opening.amountMinor
      else { continue }
      out.append(
        gap(st.account, from: reports[p].index, to: reports[k].index, closing, opening))
    }
    return out
  }

  static func gap(
    _ account: String, from: Int, to: Int, fromImportSeq: UInt64? = nil,
    _ closing: ReconBalance, _ opening: ReconBalance
  ) -> ReconStatementGap {
    let (d, o) = opening.amountMinor.subtractingReportingOverflow(closing.amountMinor)
    return ReconStatementGap(
      account: account, fromStatement: from, toStatement: to, fromImportSeq: fromImportSeq,
      closing: closing, opening: opening, differenceMinor: o ? .max : d)
  }

  /// Gaps between the statement imported last on an account (before this input) and the
  /// input's first statement of that account: when the new one starts on or after the day of
  /// that one's closing balance (a later statement, not a backfill) and is not the same
  /// statement again, its opening must be that closing. `before` bounds the imports looked
  /// at (a resumed import is compared only with what came before its first run).
  static func gapsAfterEarlierImports(
    _ state: inout StoreState, _ specs: [ReconStatementSpec], _ reports: [ReconStatementReport],
    before: UInt64
  ) throws -> [ReconStatementGap] {
    var seen = Set<String>()
    var out = [ReconStatementGap]()
    for (k, st) in specs.enumerated() where seen.insert(st.account).inserted {
      guard let opening = st.header.opening, let account = try state.account(st.account),
        let last = try state.reconAccount(account.number)?.lastImportSeq, last != 0,
        last <= before
      else { continue }
      guard case .reconImported(let earlier) = try state.event(at: last).body else {
        throw StoreError.corrupt(
          "account \(st.account)'s last import seq \(last) is not a recon_imported event")
      }
      guard let closing = earlier.header.closing, opening.dateDays >= closing.dateDays,
        !Self.sameStatement(earlier.header, st.header), opening.amountMinor != closing.amountMinor
      else { continue }
      out.append(
        gap(st.account, from: 0, to: reports[k].index, fromImportSeq: last, closing, opening))
    }
    return out
  }

  /// The same bank statement again (a re-import): same id, balances and period.
  static func sameStatement(_ a: ReconStatementHeader, _ b: ReconStatementHeader) -> Bool {
    a.statementId == b.statementId && a.opening == b.opening && a.closing == b.closing
      && a.periodFromDays == b.periodFromDays && a.periodToDays == b.periodToDays
  }

  static func statementSpec(_ st: Statement, format: ReconFormat, account: String)
    -> ReconStatementSpec
  {
    var from = Int32.max
    var to = Int32.min
    for d in [st.opening?.dateDays, st.closing?.dateDays].compactMap({ $0 }) {
      from = min(from, d)
      to = max(to, d)
    }
    let lines = st.lines.map { l in
      from = min(from, l.bookingDateDays)
      to = max(to, l.bookingDateDays)
      return ReconLine(
        identity: l.identity, source: l.source, amountMinor: l.amountMinor,
        currency: l.currency == st.currency ? nil : l.currency,
        direction: l.direction == .credit ? .credit : .debit, bookingDateDays: l.bookingDateDays,
        valueDateDays: l.valueDateDays, bankReference: l.bankReference, endToEndId: l.endToEndId,
        reference: l.reference, remittance: l.remittance)
    }
    if from > to { (from, to) = (0, 0) }  // no dates at all: an empty CSV statement
    func balance(_ b: StatementBalance?) -> ReconBalance? {
      b.map { ReconBalance(amountMinor: $0.amountMinor, dateDays: $0.dateDays) }
    }
    return ReconStatementSpec(
      account: account,
      header: ReconStatementHeader(
        format: format, statementId: st.statementId, statementAccount: st.account,
        currency: st.currency, opening: balance(st.opening), closing: balance(st.closing),
        periodFromDays: from, periodToDays: to, linesRead: UInt32(clamping: st.lines.count),
        duplicates: 0, textEncoding: recordedEncoding(st.textEncoding)),
      lines: lines)
  }

  /// What a match did to one item, for the report.
  enum MatchEffect { case matched(ReconRule), discrepancy }

  /// Runs the rules over `lines` (new items of `account`) against its open postings.
  static func match(
    _ state: inout StoreState, _ account: AccountRecord, _ lines: [TallyReconcile.StatementLine],
    _ options: MatchOptions, _ progress: ((ReconImportPhase) -> Void)?,
    _ effect: (UInt64, MatchEffect) -> Void
  ) throws -> [ReconMatch] {
    var from = Int32.max
    var to = Int32.min
    for l in lines {
      from = min(from, l.valueDateDays ?? l.bookingDateDays)
      to = max(to, l.valueDateDays ?? l.bookingDateDays)
    }
    // First only the candidates rules 1 and 2 can use (a few per line); all of them only
    // when a line is left for rule 3. Either way the outcome is that of all candidates.
    let (fromDays, toDays) = (from - options.toleranceDays, to + options.toleranceDays)
    var candidates = try Self.candidates(
      &state, account, fromDays: fromDays, toDays: toDays, filter: CandidateFilter(lines: lines))
    progress?(.candidatesRead(candidates.count, all: false))
    var outcomes = Matcher.match(lines: lines, candidates: candidates, options: options)
    if CandidateFilter.leavesLines(outcomes, of: lines) {
      candidates = try Self.candidates(
        &state, account, fromDays: fromDays, toDays: toDays, filter: nil)
      progress?(.candidatesRead(candidates.count, all: true))
      outcomes = Matcher.match(lines: lines, candidates: candidates, options: options)
    }
    var matches = [ReconMatch]()
    for outcome in outcomes {
      switch outcome {
      case .matched(let rule, let ls, let entries):
        let r: ReconRule =
          switch rule {
          case .reference: .reference
          case .amountDate: .amountDate
          case .sum: .sum
          }
        matches.append(
          ReconMatch(rule: r, items: ls.map { UInt64($0) }.sorted(), entries: entries))
        for l in ls { effect(UInt64(l), .matched(r)) }
      case .discrepancy(let l, let e, let diff, let currencyDiffers, let directionDiffers):
        matches.append(
          ReconMatch(
            rule: .reference, state: .discrepancy, items: [UInt64(l)], entries: [e],
            amountDifferenceMinor: diff, currencyDiffers: currencyDiffers,
            directionDiffers: directionDiffers))
        effect(UInt64(l), .discrepancy)
      }
    }
    return matches
  }

  /// Every match goes through the engine's own checks before it is an event. The chunks are
  /// checked against the state before any of them, so no item or entry may appear in two of
  /// them (the matcher uses each once; this makes sure).
  static func matchEvents(
    _ state: inout StoreState, _ account: AccountRecord, _ matches: [ReconMatch]
  ) throws -> [EventBody] {
    var usedItems = Set<UInt64>()
    var usedEntries = Set<String>()
    for m in matches {
      for i in m.items where !usedItems.insert(i).inserted {
        throw StoreError.corrupt("the matcher used item \(i) twice")
      }
      for e in m.entries where !usedEntries.insert(e).inserted {
        throw StoreError.corrupt("the matcher used entry \(e) twice")
      }
    }
    var out = [EventBody]()
    var i = 0
    while i < matches.count {
      let chunk = Array(matches[i..<min(matches.count, i + Limits.reconMatchesPerEventMax)])
      i += chunk.count
      let command = Command.reconMatch(ReconMatched(account: account.name, matches: chunk))
      switch try Machine.decide(command, &state, now: 0) {
      case .accept(let bodies): out += bodies
      case .reject(let r): throw StoreError.corrupt("the matcher produced an invalid match: \(r)")
      case .duplicate: throw StoreError.corrupt("the matcher produced a duplicate match")
      }
    }
    return out
  }
}

extension ReconImportReport {
  /// Sets the totals from the statements (balances and continuity when there is one).
  mutating func total() {
    new = statements.reduce(0) { $0 + $1.new }
    duplicates = statements.reduce(0) { $0 + $1.duplicates }
    discrepancies = statements.reduce(0) { $0 + $1.discrepancies }
    foreignCurrency = statements.reduce(0) { $0 + $1.foreignCurrency }
    matchedByRule = [.reference: 0, .amountDate: 0, .sum: 0]
    for s in statements {
      for (rule, n) in s.matchedByRule { matchedByRule[rule, default: 0] += n }
    }
    for i in statements.indices {
      let s = statements[i]
      let matched = s.matchedByRule.values.reduce(0, +)
      statements[i].unmatched = s.new - s.discrepancies - matched
    }
    unmatched = statements.reduce(0) { $0 + $1.unmatched }
    firstItem = statements.compactMap(\.firstItem).min()
    lastItem = statements.compactMap(\.lastItem).max()
    if statements.count == 1 {
      let s = statements[0]
      (opening, closing) = (s.opening, s.closing)
      (continuityImpliedMinor, continuityPrintedMinor) =
        (s.continuityImpliedMinor, s.continuityPrintedMinor)
    }
  }
}
