import TallyCore
import TallyReconcile

/// What an import will do, worked out in a read transaction off the writer
/// (docs/RECONCILIATION.md, "Imports in write groups"): the statements' checks, the lines the
/// snapshot does not have yet, cut into slices of one event each, the balance checks, and the
/// matches the rules find against the snapshot. The writer then applies it slice by slice,
/// revalidating every line and every match against the state it writes to.
public struct ReconImportPlan: Sendable {
  /// The report as planned: balance checks, continuity, gaps, skipped statements. The counts
  /// of new lines, duplicates and matches are those the writer applies.
  var report: ReconImportReport
  /// Slices of at most `Limits.reconLinesPerGroupMax` lines, in the order they are appended;
  /// each is one `recon_imported` event and one write group.
  var slices: [Slice]
  /// Lines planned: 1…`freshCount` are the slices' lines in order (their position); above
  /// that, lines an interrupted run of this import already made items of (`adopted`).
  var freshCount: Int
  /// Position → statement (index into `report.statements`), for every position.
  var statementOf: [Int]
  /// Items adopted when resuming an interrupted import: position → item number.
  var adopted: [Int: UInt64]
  /// Matches found against the snapshot, per account; `items` hold positions.
  var matches: [(account: String, matches: [ReconMatch])]
  /// The head of the snapshot planned against: every event of the import comes after it.
  public let snapshotSeq: UInt64

  struct Slice: Sendable {
    var statement: Int
    var spec: ReconStatementSpec
    var firstPosition: Int
  }

  /// Lines the snapshot did not have, over all statements.
  public var newLinesPlanned: Int { freshCount }
  /// Write groups the writer will run.
  public var steps: Int { max(slices.count, 1) }
}

extension LedgerReader {
  /// Plans the import of parsed statements (see `ReconImportPlan`). Any thread may call it;
  /// a refused import is the rejection the writer would have answered. `adoptAfterSeq` is for
  /// resuming an interrupted import only: its items imported after that seq that are still
  /// unmatched join the matching again.
  public func planImport(
    _ statements: [Statement], format: ReconFormat, routing: ReconRouting,
    toleranceDays: Int32 = Limits.reconToleranceDaysDefault, adoptAfterSeq: UInt64? = nil,
    progress: ((ReconImportPhase) -> Void)? = nil
  ) throws(StoreError) -> Result<ReconImportPlan, Rejection> {
    guard toleranceDays >= 0 && toleranceDays <= Limits.reconToleranceDaysMax else {
      return .failure(
        Rejection(
          .invalidField, "tolerance_days must be 0…\(Limits.reconToleranceDaysMax)",
          ["field": "tolerance_days"]))
    }
    if let r = routing.rejection { return .failure(r) }
    let (routed, skipped) = try route(statements, routing)
    var report = ReconImportReport(
      account: routing.account ?? routed.first?.1 ?? "", format: format,
      statementId: statements.count == 1 ? statements[0].statementId : nil,
      linesRead: routed.reduce(0) { $0 + statements[$1.0].lines.count }, new: 0, duplicates: 0,
      matchedByRule: [.reference: 0, .amountDate: 0, .sum: 0], discrepancies: 0, unmatched: 0)
    report.textEncoding =
      statements.first.map { Ledger.recordedEncoding($0.textEncoding) } ?? .utf8
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
      specs.append(Ledger.statementSpec(st, format: format, account: account))
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
    report.gaps = Ledger.gaps(specs, report.statements)
    var options = MatchOptions()
    options.toleranceDays = toleranceDays
    return try read(waitDurable: false) { t in
      var state = StoreState(txn: t, dbs: dbs, cache: BatchCache(accountCount: 0))
      let head = try Ledger.readHead(t, dbs)
      return try Self.plan(
        &state, head: head.seq, ReconImportSpec(statements: specs), report, options,
        adoptAfterSeq, progress)
    }
  }

  /// The checks, the new lines and the matches, against one snapshot.
  static func plan(
    _ state: inout StoreState, head: UInt64, _ spec: ReconImportSpec,
    _ report: ReconImportReport, _ options: MatchOptions, _ adoptAfterSeq: UInt64?,
    _ progress: ((ReconImportPhase) -> Void)?
  ) throws -> Result<ReconImportPlan, Rejection> {
    var report = report
    // The engine's own decision on the snapshot: its checks, and the lines it does not have.
    let imported: [EventBody]
    switch try Machine.decide(.reconImport(spec), &state, now: 0) {
    case .reject(let r): return .failure(r)
    case .duplicate: imported = []
    case .accept(let bodies): imported = bodies
    }
    for (k, st) in spec.statements.enumerated() {
      guard let account = try state.account(st.account) else { continue }
      if let o = st.header.opening {
        report.statements[k].opening = try Ledger.balanceCheck(
          &state, head: head, account, o, endOfDay: o.dateDays - 1)
      }
      if let c = st.header.closing {
        report.statements[k].closing = try Ledger.balanceCheck(
          &state, head: head, account, c, endOfDay: c.dateDays)
      }
    }
    report.gaps =
      try Ledger.gapsAfterEarlierImports(
        &state, spec.statements, report.statements, before: adoptAfterSeq ?? head)
      + report.gaps
    var plan = ReconImportPlan(
      report: report, slices: [], freshCount: 0, statementOf: [0], adopted: [:], matches: [],
      snapshotSeq: head)
    // Which statement each event holds lines of: the events follow the statements' order,
    // and part 0 starts the next statement (of that account) that holds its first line.
    var fresh = [[ReconLine]](repeating: [], count: spec.statements.count)
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
      fresh[k] += part.lines
    }
    var accounts = [String]()
    var lines = [String: [TallyReconcile.StatementLine]]()
    func add(_ l: ReconLine, _ position: Int, _ k: Int) {
      let st = spec.statements[k]
      if lines[st.account] == nil { accounts.append(st.account) }
      lines[st.account, default: []].append(
        Ledger.matcherLine(l, item: UInt64(position), currency: st.header.currency))
    }
    for (k, ls) in fresh.enumerated() where !ls.isEmpty {
      var header = spec.statements[k].header
      header.linesRead = UInt32(spec.statements[k].lines.count)
      header.duplicates = UInt32(spec.statements[k].lines.count - ls.count)
      let per = Limits.reconLinesPerGroupMax
      let parts = (ls.count + per - 1) / per
      for p in 0..<parts {
        let slice = Array(ls[(p * per)..<min(ls.count, (p + 1) * per)])
        plan.slices.append(
          ReconImportPlan.Slice(
            statement: k,
            spec: ReconStatementSpec(
              account: spec.statements[k].account, header: header, lines: slice,
              slice: (UInt32(p), UInt32(parts))),
            firstPosition: plan.freshCount + 1))
        for l in slice {
          plan.freshCount += 1
          plan.statementOf.append(k)
          if !l.isForeignCurrency { add(l, plan.freshCount, k) }
        }
      }
    }
    if let after = adoptAfterSeq {
      // Resuming: the interrupted run's items that are still unmatched are matched again.
      var position = plan.freshCount
      for (k, st) in spec.statements.enumerated() {
        guard let account = try state.account(st.account) else { continue }
        for l in st.lines where !l.isForeignCurrency {
          guard let item = try state.reconLineItem(account: account.number, identity: l.identity),
            let rec = try state.reconItem(item), rec.importedSeq > after,
            rec.state == .unmatched, !plan.adopted.values.contains(item)
          else { continue }
          position += 1
          plan.adopted[position] = item
          plan.statementOf.append(k)
          add(l, position, k)
        }
      }
    }
    for name in accounts {
      guard let account = try state.account(name), let ls = lines[name] else { continue }
      let found = try Ledger.match(&state, account, ls, options, progress) { _, _ in }
      if !found.isEmpty { plan.matches.append((name, found)) }
    }
    progress?(.matched(plan.matches.reduce(0) { $0 + $1.matches.count }))
    return .success(plan)
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
}
