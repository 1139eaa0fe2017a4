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
    switch try reader.parseStatements(bytes, format: format, encoding: encoding) {
    case .failure(let r): return .failure(r)
    case .success(let statements):
      progress?(.parsed(lines: statements.reduce(0) { $0 + $1.lines.count }))
      return try importStatements(
        statements, format: format, routing: routing, now: now, toleranceDays: toleranceDays,
        progress: progress)
    }
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

  /// Imports already parsed statements (see `importStatements(_:format:…)`).
  public func importStatements(
    _ statements: [Statement], format: ReconFormat, routing: ReconRouting, now: Int64,
    toleranceDays: Int32 = Limits.reconToleranceDaysDefault,
    progress: ((ReconImportPhase) -> Void)? = nil
  ) throws(StoreError) -> Result<ReconImportReport, Rejection> {
    guard toleranceDays >= 0 && toleranceDays <= Limits.reconToleranceDaysMax else {
      return .failure(
        Rejection(
          .invalidField, "tolerance_days must be 0…\(Limits.reconToleranceDaysMax)",
          ["field": "tolerance_days"]))
    }
    let (routed, skipped) = try route(statements, routing)
    var report = ReconImportReport(
      account: routing.account ?? routed.first?.1 ?? "", format: format,
      statementId: statements.count == 1 ? statements[0].statementId : nil,
      linesRead: routed.reduce(0) { $0 + statements[$1.0].lines.count }, new: 0, duplicates: 0,
      matchedByRule: [.reference: 0, .amountDate: 0, .sum: 0], discrepancies: 0, unmatched: 0)
    report.textEncoding = statements.first.map { Self.recordedEncoding($0.textEncoding) } ?? .utf8
    report.skipped = skipped.map { k in
      let st = statements[k]
      return ReconSkippedStatement(
        index: k + 1, source: st.source, statementId: st.statementId,
        statementAccount: st.account, currency: st.currency, lines: st.lines.count)
    }
    var specs = [ReconStatementSpec]()
    for (k, account) in routed {
      var st = statements[k]
      // A CSV has no balances and no declared currency: its first record's currency is the
      // statement's. When that record is a foreign one, the account's currency is.
      if st.format == .csv, let currency = try self.account(account)?.record.currency,
        st.currency != currency, st.lines.contains(where: { $0.currency == currency })
      {
        st.currency = currency
      }
      specs.append(Self.statementSpec(st, format: format, account: account))
      var r = ReconStatementReport(
        index: k + 1, source: st.source, statementId: st.statementId,
        statementAccount: st.account, account: account, currency: st.currency,
        linesRead: st.lines.count)
      if let c = st.continuityDifference(), !c.overflowed {
        r.continuityImpliedMinor = c.implied
        r.continuityPrintedMinor = c.printed
      }
      report.statements.append(r)
    }
    report.gaps = Self.gaps(specs, report.statements)
    let spec = ReconImportSpec(statements: specs)
    var options = MatchOptions()
    options.toleranceDays = toleranceDays
    // A retry after the map grew starts the counts again.
    let before = report
    let result = try retryingMapFull { () throws(StoreError) in
      try applyOnce([.reconImport(spec)], scopes: nil, now: now) {
        state, _, imported in
        report = before
        return try self.afterImport(&state, spec, imported, options, &report, progress)
      }
    }
    switch result.outcomes[0] {
    case .rejected(let r): return .failure(r)
    case .duplicate:
      progress?(.committed)
      return .success(report)
    case .applied(let first, let count):
      if count > 0 {
        report.firstSeq = first
        report.lastSeq = first + UInt64(count) - 1
      }
      progress?(.committed)
      return .success(report)
    }
  }

  /// Which statements go to which account, in input order, and which are skipped.
  func route(_ statements: [Statement], _ routing: ReconRouting) throws(StoreError)
    -> (routed: [(Int, String)], skipped: [Int])
  {
    let map = Dictionary(
      routing.map.map { (Machine.normalisedIBAN($0.key), $0.value) },
      uniquingKeysWith: { a, _ in a })
    var routed = [(Int, String)]()
    var skipped = [Int]()
    var own: String?
    if let name = routing.account, let iban = try account(name)?.record.metadata["iban"] {
      own = Machine.normalisedIBAN(iban)
    }
    for (k, st) in statements.enumerated() {
      let id = st.account.map(Machine.normalisedIBAN)
      if let id, let mapped = map[id] {
        routed.append((k, mapped))
        continue
      }
      guard let account = routing.account else {
        skipped.append(k)
        continue
      }
      if own == nil { own = id }
      if id == nil || id == own {
        routed.append((k, account))
      } else {
        skipped.append(k)
      }
    }
    // Nothing is for the account: import them all for it, so that the rules refuse the
    // first with the reason (STATEMENT_ACCOUNT_MISMATCH, naming both) rather than nothing
    // happening quietly.
    if routed.isEmpty, let account = routing.account {
      return (skipped.map { ($0, account) }, [])
    }
    return (routed, skipped)
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
      let (d, o) = opening.amountMinor.subtractingReportingOverflow(closing.amountMinor)
      out.append(
        ReconStatementGap(
          account: st.account, fromStatement: reports[p].index, toStatement: reports[k].index,
          closing: closing, opening: opening, differenceMinor: o ? .max : d))
    }
    return out
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

  /// Runs inside the import's write transaction once its lines are items: checks each
  /// statement's balances against the ledger, matches the new items of each account, and
  /// returns the `recon_matched` events. Lines in another currency are not matched.
  func afterImport(
    _ state: inout StoreState, _ spec: ReconImportSpec, _ imported: [EventBody],
    _ options: MatchOptions, _ report: inout ReconImportReport,
    _ progress: ((ReconImportPhase) -> Void)?
  ) throws -> [EventBody] {
    for (k, st) in spec.statements.enumerated() {
      guard let account = try state.account(st.account) else { continue }
      if let o = st.header.opening {
        report.statements[k].opening = try balanceCheck(
          &state, account, o, endOfDay: o.dateDays - 1)
      }
      if let c = st.header.closing {
        report.statements[k].closing = try balanceCheck(&state, account, c, endOfDay: c.dateDays)
      }
    }
    // Which statement each new item came from: the events follow the statements' order, and
    // part 0 starts the next statement (of that account) that holds its first line.
    var number = state.reconItemCount
    for case .reconImported(let part) in imported {
      number -= UInt64(part.lines.count)
    }
    var accounts = [String]()
    var lines = [String: [TallyReconcile.StatementLine]]()
    var statementOf = [UInt64: Int]()
    var k = -1
    for case .reconImported(let part) in imported {
      if part.part == 0, let first = part.lines.first?.identity {
        k += 1
        while spec.statements[k].account != part.account
          || !spec.statements[k].lines.contains(where: { $0.identity == first })
        {
          k += 1
        }
      }
      var r = report.statements[k]
      for l in part.lines {
        number += 1
        statementOf[number] = k
        r.new += 1
        r.firstItem = r.firstItem ?? number
        r.lastItem = number
        if l.isForeignCurrency {
          r.foreignCurrency += 1
          r.discrepancies += 1
          continue
        }
        if lines[part.account] == nil { accounts.append(part.account) }
        lines[part.account, default: []].append(
          Self.matcherLine(l, item: number, currency: spec.statements[k].header.currency))
      }
      report.statements[k] = r
    }
    for i in report.statements.indices {
      report.statements[i].duplicates = report.statements[i].linesRead - report.statements[i].new
    }
    let new = report.statements.reduce(0) { $0 + $1.new }
    progress?(.itemsAppended(new: new, duplicates: report.linesRead - new))
    var out = [EventBody]()
    var matchCount = 0
    for name in accounts {
      guard let account = try state.account(name), let ls = lines[name] else { continue }
      let matches = try match(&state, account, ls, options, progress) { item, effect in
        let s = statementOf[item]!
        switch effect {
        case .matched(let rule): report.statements[s].matchedByRule[rule, default: 0] += 1
        case .discrepancy: report.statements[s].discrepancies += 1
        }
      }
      matchCount += matches.count
      out += try Self.matchEvents(&state, account, matches)
    }
    progress?(.matched(matchCount))
    report.total()
    return out
  }

  /// What a match did to one item, for the report.
  enum MatchEffect { case matched(ReconRule), discrepancy }

  /// Runs the rules over `lines` (new items of `account`) against its open postings.
  func match(
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
