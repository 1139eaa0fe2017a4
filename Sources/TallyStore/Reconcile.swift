import CLMDB
import TallyCore
import TallyReconcile

extension Ledger {

  /// Parses `bytes` as a statement of `format` and imports it for `account` in one write
  /// transaction: new lines become items, the matching rules run over them against the
  /// account's unmatched entries, and every match is an event. A statement that does not
  /// parse, or an import the rules refuse, changes nothing.
  public func importStatement(
    _ bytes: [UInt8], format: ReconFormat, account: String, now: Int64,
    toleranceDays: Int32 = Limits.reconToleranceDaysDefault,
    progress: ((ReconImportPhase) -> Void)? = nil
  ) throws(StoreError) -> Result<ReconImportReport, Rejection> {
    switch try reader.parseStatement(bytes, format: format) {
    case .failure(let r): return .failure(r)
    case .success(let statement):
      progress?(.parsed(lines: statement.lines.count))
      return try importStatement(
        statement, format: format, account: account, now: now, toleranceDays: toleranceDays,
        progress: progress)
    }
  }

  static func parserFormat(_ f: ReconFormat) -> StatementFormat {
    switch f {
    case .csv: .csv
    case .camt053: .camt053
    case .mt940: .mt940
    }
  }

  /// Imports an already parsed statement (see `importStatement(_:format:account:now:)`).
  public func importStatement(
    _ st: Statement, format: ReconFormat, account: String, now: Int64,
    toleranceDays: Int32 = Limits.reconToleranceDaysDefault,
    progress: ((ReconImportPhase) -> Void)? = nil
  ) throws(StoreError) -> Result<ReconImportReport, Rejection> {
    guard toleranceDays >= 0 && toleranceDays <= Limits.reconToleranceDaysMax else {
      return .failure(
        Rejection(
          .invalidField, "tolerance_days must be 0…\(Limits.reconToleranceDaysMax)",
          ["field": "tolerance_days"]))
    }
    let spec = Self.importSpec(st, format: format, account: account)
    var report = ReconImportReport(
      account: account, format: format, statementId: st.statementId, linesRead: st.lines.count,
      new: 0, duplicates: 0, matchedByRule: [.reference: 0, .amountDate: 0, .sum: 0],
      discrepancies: 0, unmatched: 0)
    if let c = st.continuityDifference(), !c.overflowed {
      report.continuityImpliedMinor = c.implied
      report.continuityPrintedMinor = c.printed
    }
    var options = MatchOptions()
    options.toleranceDays = toleranceDays
    let result = try retryingMapFull { () throws(StoreError) in
      try applyOnce([.reconImport(spec)], scopes: nil, now: now) {
        state, _, imported in
        try self.afterImport(&state, spec, imported, options, &report, progress)
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

  static func importSpec(_ st: Statement, format: ReconFormat, account: String)
    -> ReconImportSpec
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
        direction: l.direction == .credit ? .credit : .debit, bookingDateDays: l.bookingDateDays,
        valueDateDays: l.valueDateDays, bankReference: l.bankReference, endToEndId: l.endToEndId,
        reference: l.reference, remittance: l.remittance)
    }
    if from > to { (from, to) = (0, 0) }  // no dates at all: an empty CSV statement
    func balance(_ b: StatementBalance?) -> ReconBalance? {
      b.map { ReconBalance(amountMinor: $0.amountMinor, dateDays: $0.dateDays) }
    }
    return ReconImportSpec(
      account: account,
      header: ReconStatementHeader(
        format: format, statementId: st.statementId, statementAccount: st.account,
        currency: st.currency, opening: balance(st.opening), closing: balance(st.closing),
        periodFromDays: from, periodToDays: to, linesRead: UInt32(clamping: st.lines.count),
        duplicates: 0),
      lines: lines)
  }

  /// Runs inside the import's write transaction once its lines are items: checks the
  /// statement's balances against the ledger, matches the new items, and returns the
  /// `recon_matched` events.
  func afterImport(
    _ state: inout StoreState, _ spec: ReconImportSpec, _ imported: [EventBody],
    _ options: MatchOptions, _ report: inout ReconImportReport,
    _ progress: ((ReconImportPhase) -> Void)?
  ) throws -> [EventBody] {
    guard let account = try state.account(spec.account) else { return [] }
    if let o = spec.header.opening {
      report.opening = try balanceCheck(&state, account, o, endOfDay: o.dateDays - 1)
    }
    if let c = spec.header.closing {
      report.closing = try balanceCheck(&state, account, c, endOfDay: c.dateDays)
    }
    var lines = [TallyReconcile.StatementLine]()
    var firstItem: UInt64?
    var number = state.reconItemCount
    for case .reconImported(let part) in imported {
      number -= UInt64(part.lines.count)
    }
    for case .reconImported(let part) in imported {
      for l in part.lines {
        number += 1
        if firstItem == nil { firstItem = number }
        lines.append(Self.matcherLine(l, item: number, currency: spec.header.currency))
      }
    }
    report.duplicates = spec.lines.count - lines.count
    report.new = lines.count
    report.firstItem = firstItem
    report.lastItem = lines.isEmpty ? nil : number
    progress?(.itemsAppended(new: report.new, duplicates: report.duplicates))
    if lines.isEmpty { return [] }
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
    progress?(.matched(outcomes.count))
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
        report.matchedByRule[r, default: 0] += ls.count
      case .discrepancy(let l, let e, let diff, let currencyDiffers, let directionDiffers):
        matches.append(
          ReconMatch(
            rule: .reference, state: .discrepancy, items: [UInt64(l)], entries: [e],
            amountDifferenceMinor: diff, currencyDiffers: currencyDiffers,
            directionDiffers: directionDiffers))
        report.discrepancies += 1
      }
    }
    report.unmatched =
      lines.count - report.discrepancies - report.matchedByRule.values.reduce(0, +)
    // Every match goes through the engine's own checks before it is an event. The chunks
    // are checked against the state before any of them, so no item or entry may appear in
    // two of them (the matcher uses each once; this makes sure).
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

  /// A ledger item line in the matcher's terms; the item number stands for the line index.
  static func matcherLine(_ l: ReconLine, item: UInt64, currency: String)
    -> TallyReconcile.StatementLine
  {
    TallyReconcile.StatementLine(
      index: Int(item), source: l.source, amountMinor: l.amountMinor, currency: currency,
      direction: l.direction == .credit ? .credit : .debit, bookingDateDays: l.bookingDateDays,
      valueDateDays: l.valueDateDays, bankReference: l.bankReference, endToEndId: l.endToEndId,
      reference: l.reference, remittance: l.remittance, identity: l.identity)
  }

  static let nanosPerDay: Int64 = 86_400_000_000_000

  /// The seq of the last event with a timestamp before `nanos` (0: none).
  static func lastSeq(before nanos: Int64, _ t: Txn, _ dbs: DBs, head: UInt64) throws -> UInt64 {
    var lo: UInt64 = 1
    var hi = head + 1
    while lo < hi {
      let mid = lo + (hi - lo) / 2
      guard let v = try t.get(dbs.log, u64: mid) else {
        throw StoreError.corrupt("log has no event at seq \(mid)")
      }
      if try EventCodec.header(v).timestampNanos < nanos { lo = mid + 1 } else { hi = mid }
    }
    return lo - 1
  }

  func balanceCheck(
    _ state: inout StoreState, _ a: AccountRecord, _ b: ReconBalance, endOfDay day: Int32
  ) throws -> ReconBalanceCheck {
    let (endNanos, o) = (Int64(day) + 1).multipliedReportingOverflow(by: Self.nanosPerDay)
    let seq =
      o ? head.seq : try Self.lastSeq(before: endNanos, state.txn, dbs, head: head.seq)
    try state.flushHistory()
    let (bal, _) = try Ledger.historyAt(state.txn, dbs, number: a.number, seq: seq)
    let ledger = bal.balance(normal: a.normalSide)
    let (diff, over) = b.amountMinor.subtractingReportingOverflow(ledger)
    return ReconBalanceCheck(
      dateDays: b.dateDays, statementMinor: b.amountMinor, ledgerMinor: ledger, asOfSeq: seq,
      differenceMinor: over ? .max : diff)
  }

  /// The account's postings not in a standing match, dated (value date, else the day of the
  /// event) within `fromDays…toDays`: entries, and holds captured with an amount on it.
  static func candidates(
    _ state: inout StoreState, _ a: AccountRecord, fromDays: Int32, toDays: Int32,
    filter: CandidateFilter?
  ) throws -> [LedgerCandidate] {
    var out = [LedgerCandidate]()
    let s = state
    // All of them: sized once, since growing an array of a million candidates copies it
    // into fresh pages again and again (a walk of the keys alone is cheap).
    if filter == nil {
      var rows = 0
      try historySeqs(s, a) { _ in rows += 1 }
      out.reserveCapacity(rows)
    }
    try postings(s, a) { p in
      if p.dateDays < fromDays || p.dateDays > toDays { return }
      if let filter, !filter.keeps(entryId: p.id, ref: p.ref, amountMinor: p.amountMinor) {
        return
      }
      if try s.reconEntryMatch(account: a.number, entrySeq: p.idSeq) != nil { return }
      out.append(
        LedgerCandidate(
          entryId: p.id, seq: p.seq, ref: p.ref, amountMinor: p.amountMinor,
          currency: a.currency, direction: p.direction == .credit ? .credit : .debit,
          dateDays: p.dateDays))
    }
    return out
  }

  /// The seqs of the account's history rows (events that changed its balances), in order:
  /// a walk of the keys only.
  static func historySeqs(
    _ state: StoreState, _ a: AccountRecord, _ body: (UInt64) throws -> Void
  ) throws {
    try state.flushHistory()
    let c = try state.txn.cursor(state.dbs.history)
    defer { c.close() }
    var row = try withBytes(of: (a.number.bigEndian, UInt64(1).bigEndian)) {
      (k) throws(StoreError) in try c.get(MDB_SET_RANGE, key: k)
    }
    while let (k, _) = row {
      guard k.count == 16, UInt64(bigEndian: k.loadUnaligned(as: UInt64.self)) == a.number
      else { break }
      try body(UInt64(bigEndian: k.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
      row = try c.get(MDB_NEXT)
    }
  }

  /// A movement of posted money on one account.
  struct Posting {
    var seq: UInt64
    /// Seq of the event that introduced the id (the entry, or the hold's placement).
    var idSeq: UInt64
    var id: String
    var ref: String?
    var amountMinor: Int128
    var direction: ReconDirection
    var dateDays: Int32
  }

  static func dayOf(_ nanos: Int64) -> Int32 {
    Int32(clamping: nanos >= 0 ? nanos / nanosPerDay : (nanos + 1) / nanosPerDay - 1)
  }

  /// Every posting on `a`, in seq order, from its history (one cursor walk and one log
  /// read per row). Pending-only rows (holds placed, released, expired) are skipped.
  static func postings(
    _ state: StoreState, _ a: AccountRecord, _ body: (Posting) throws -> Void
  ) throws {
    // The log through a cursor of its own: consecutive seqs (an account in most events)
    // step with MDB_NEXT instead of searching the tree again.
    let logCursor = try state.txn.cursor(state.dbs.log)
    defer { logCursor.close() }
    var previous: UInt64 = 0
    let name = Array(a.name.utf8)
    try historySeqs(state, a) { seq in
      let found =
        previous != 0 && seq == previous + 1
        ? try logCursor.get(MDB_NEXT)
        : try withBytes(of: seq.bigEndian) { (key) throws(StoreError) in
          try logCursor.get(MDB_SET_KEY, key: key)
        }
      previous = seq
      guard let (logKey, v) = found, logKey.count == 8,
        UInt64(bigEndian: logKey.loadUnaligned(as: UInt64.self)) == seq
      else { throw StoreError.corrupt("history names seq \(seq), which the log lacks") }
      let type = v.count > 1 ? v[1] : 0
      if type == EventType.entryPosted.rawValue {
        // The hot path: only the account's leg and the fields matching reads.
        guard let e = try EventCodec.entryPosting(v, account: name) else {
          throw StoreError.corrupt("history names entry seq \(seq), which has no leg on \(a.name)")
        }
        try body(
          Posting(
            seq: seq, idSeq: seq, id: e.id, ref: e.ref, amountMinor: e.amountMinor,
            direction: .of(leg: e.side, normal: a.normalSide),
            dateDays: e.valueDateDays ?? dayOf(e.timestampNanos)))
      } else if type == EventType.holdCaptured.rawValue {
        let event = try EventCodec.decode(v)
        switch event.body {
        case .holdCaptured(let cap):
          guard let hold = try state.hold(cap.holdId),
            case .holdPlaced(let placed) = try state.event(at: hold.placedSeq).body
          else { throw StoreError.corrupt("capture of unknown hold \(cap.holdId)") }
          for (l, amount) in zip(hold.legs, cap.amountsMinor)
          where l.account == a.name && amount > 0 {
            try body(
              Posting(
                seq: seq, idSeq: hold.placedSeq, id: hold.id, ref: placed.ref,
                amountMinor: amount, direction: .of(leg: l.side, normal: a.normalSide),
                dateDays: dayOf(event.timestampNanos)))
          }
        default: break
        }
      }
    }
  }
}

extension LedgerReader {
  /// Parses a statement without touching the ledger's log (custom assets' scales are read
  /// in a read transaction). Any thread may call it; the server parses on its read threads
  /// so that the writer only imports. A store failure while looking a currency up is thrown,
  /// never read as an unknown currency.
  public func parseStatement(_ bytes: [UInt8], format: ReconFormat) throws(StoreError)
    -> Result<Statement, Rejection>
  {
    // Each code once: a statement repeats its currency on every line.
    var known: [String: Int?] = [:]
    var failure: StoreError?
    let parsed: Result<Statement, StatementError>
    do throws(StatementError) {
      parsed = .success(
        try StatementParser.parse(bytes, format: Ledger.parserFormat(format)) { code in
          if let s = known[code] { return s }
          var s: Int?
          do throws(StoreError) { s = try self.scale(of: code).map(Int.init) } catch {
            failure = failure ?? error
          }
          known[code] = s
          return s
        })
    } catch {
      parsed = .failure(error)
    }
    if let failure { throw failure }
    switch parsed {
    case .success(let statement): return .success(statement)
    case .failure(let error):
      return .failure(
        Rejection(
          .statementInvalid, "\(error.code) at \(error.location): \(error.message)",
          ["code": error.code, "location": error.location]))
    }
  }
}
