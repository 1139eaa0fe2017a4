import TallyCore

/// An import being applied by the single writer, one bounded write group (`Ledger.importStep`)
/// at a time, so that other clients' groups run in between (docs/RECONCILIATION.md, "Imports
/// in write groups"). Only the writer thread touches it between `init` and `finished`.
public final class ReconImportRun: @unchecked Sendable {
  let plan: ReconImportPlan
  /// The report so far; complete once `finished`.
  public internal(set) var report: ReconImportReport
  /// The next slice to append.
  var next = 0
  /// Position → item number made by this import (0: none, or left out as a duplicate).
  var itemOf: [UInt64]
  /// Planned matches by the step that applies them: the step of their last line's slice.
  var matchesByStep: [[(account: String, match: ReconMatch)]]
  public internal(set) var finished = false
  /// Matches planned but not applied: an item or an entry was matched, resolved or imported
  /// by someone else between the snapshot and the group (revalidation).
  public internal(set) var matchesDropped = 0

  public init(_ plan: ReconImportPlan) {
    self.plan = plan
    report = plan.report
    itemOf = [UInt64](repeating: 0, count: plan.statementOf.count)
    for (p, item) in plan.adopted { itemOf[p] = item }
    var stepOf = [Int](repeating: 0, count: plan.statementOf.count)
    for (s, slice) in plan.slices.enumerated() {
      for p in slice.firstPosition..<(slice.firstPosition + slice.spec.lines.count) {
        stepOf[p] = s
      }
    }
    matchesByStep = Array(repeating: [], count: plan.steps)
    for (account, ms) in plan.matches {
      for m in ms {
        matchesByStep[m.items.map { stepOf[Int($0)] }.max() ?? 0].append((account, m))
      }
    }
  }
}

extension Ledger {
  /// Applies the next write group of `run`: one slice of new lines (at most
  /// `Limits.reconLinesPerGroupMax`) and the planned matches whose lines are all items now,
  /// each revalidated against the state. Its events are appended like any group's (synced
  /// with the next sync, or now when `syncEachGroup`).
  public func importStep(_ run: ReconImportRun, now: Int64) throws(StoreError) {
    precondition(!run.finished, "import step after the last")
    let step = run.next
    let planned = run.matchesByStep[step]
    var itemOf = run.itemOf
    var report = run.report
    var dropped = 0
    var seqs: (UInt64, UInt64)?
    let (itemsBefore, reportBefore) = (run.itemOf, run.report)
    /// The planned matches of this step still possible, as events (inside the transaction).
    func matches(_ state: inout StoreState) throws -> [EventBody] {
      var byAccount = [(AccountRecord, [ReconMatch])]()
      for (name, m) in planned {
        guard let account = try state.account(name) else { continue }
        guard let valid = try Self.revalidate(&state, account, m, itemOf) else {
          dropped += 1
          continue
        }
        for p in m.items {
          let k = run.plan.statementOf[Int(p)]
          if valid.state == .matched {
            report.statements[k].matchedByRule[valid.rule, default: 0] += 1
          } else {
            report.statements[k].discrepancies += 1
          }
        }
        if byAccount.last?.0.name == name {
          byAccount[byAccount.count - 1].1.append(valid)
        } else {
          byAccount.append((account, [valid]))
        }
      }
      var out = [EventBody]()
      for (account, ms) in byAccount { out += try Self.matchEvents(&state, account, ms) }
      return out
    }
    let result = try retryingMapFull { () throws(StoreError) in
      (itemOf, report, dropped) = (itemsBefore, reportBefore, 0)
      if run.plan.slices.isEmpty {
        // Nothing new to append (a resumed import whose lines are all in): matches only.
        let bodies = try reader.read(waitDurable: false) { t in
          var state = StoreState(txn: t, dbs: dbs, cache: BatchCache(accountCount: 0))
          return try matches(&state)
        }
        return try applyOnce(
          bodies.compactMap { b -> Command? in
            guard case .reconMatched(let m) = b else { return nil }
            return .reconMatch(m)
          }, scopes: nil, now: now)
      }
      let slice = run.plan.slices[step]
      return try applyOnce(
        [.reconImport(ReconImportSpec(statements: [slice.spec]))], scopes: nil, now: now
      ) { state, _, imported in
        Self.recordItems(
          state.reconItemCount, imported, slice, &itemOf, &report.statements[slice.statement])
        return try matches(&state)
      }
    }
    for o in result.outcomes {
      switch o {
      case .rejected(let r):
        // Checked on the snapshot and unchanged since (accounts, currencies and their
        // `iban` never change; revalidation left out what did): a rejection here is a bug.
        throw .corrupt("an import step was refused after planning: \(r)")
      case .duplicate: continue
      case .applied(let first, let count) where count > 0:
        let last = first + UInt64(count) - 1
        seqs = (min(seqs?.0 ?? first, first), max(seqs?.1 ?? last, last))
      case .applied: continue
      }
    }
    if let (first, last) = seqs {
      report.firstSeq = report.firstSeq ?? first
      report.lastSeq = last
    }
    run.itemOf = itemOf
    run.report = report
    run.matchesDropped += dropped
    run.next += 1
    if run.next >= run.plan.steps {
      run.finished = true
      for i in run.report.statements.indices {
        let s = run.report.statements[i]
        run.report.statements[i].duplicates = s.linesRead - s.new
      }
      run.report.total()
    }
  }

  /// Numbers the lines of `slice` the group made items (in order, ending at `itemCount`);
  /// lines another import made items of meanwhile were left out and stay 0.
  static func recordItems(
    _ itemCount: UInt64, _ imported: [EventBody], _ slice: ReconImportPlan.Slice,
    _ itemOf: inout [UInt64], _ r: inout ReconStatementReport
  ) {
    var lines = [ReconLine]()
    for case .reconImported(let part) in imported { lines += part.lines }
    var number = itemCount - UInt64(lines.count)
    var j = 0
    for (i, l) in slice.spec.lines.enumerated() where j < lines.count {
      guard lines[j].identity == l.identity else { continue }
      j += 1
      number += 1
      itemOf[slice.firstPosition + i] = number
      r.new += 1
      r.firstItem = r.firstItem ?? number
      r.lastItem = number
      if l.isForeignCurrency {
        r.foreignCurrency += 1
        r.discrepancies += 1
      }
    }
  }

  /// A planned match (items as positions) as it can be applied now, or nil when one of its
  /// lines is not an item of this import or not unmatched any more, or one of its entries is
  /// in a standing match: what a concurrent import, match or resolution changed since the
  /// snapshot. Nothing is ever matched twice: the engine's checks run on what this returns.
  static func revalidate(
    _ state: inout StoreState, _ account: AccountRecord, _ m: ReconMatch, _ itemOf: [UInt64]
  ) throws -> ReconMatch? {
    var out = m
    out.items = []
    for p in m.items {
      let item = itemOf[Int(p)]
      guard item != 0, let rec = try state.reconItem(item), rec.account == account.name,
        rec.state == .unmatched
      else { return nil }
      out.items.append(item)
    }
    out.items.sort()
    for e in m.entries {
      guard let id = try state.idRecord(e),
        try state.reconEntryMatch(account: account.number, entrySeq: id.seq) == nil
      else { return nil }
    }
    return out
  }
}
