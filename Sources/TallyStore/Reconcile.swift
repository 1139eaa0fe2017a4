import CLMDB
import TallyCore
import TallyReconcile

extension Ledger {

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

  /// The statement's balance against the ledger's posted balance at the end of `day`, in a
  /// state whose log ends at `head`.
  static func balanceCheck(
    _ state: inout StoreState, head: UInt64, _ a: AccountRecord, _ b: ReconBalance,
    endOfDay day: Int32
  ) throws -> ReconBalanceCheck {
    let (endNanos, o) = (Int64(day) + 1).multipliedReportingOverflow(by: Self.nanosPerDay)
    let seq = o ? head : try Self.lastSeq(before: endNanos, state.txn, state.dbs, head: head)
    try state.flushHistory()
    let (bal, _) = try Ledger.historyAt(state.txn, state.dbs, number: a.number, seq: seq)
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
    try parsing { scale throws(StatementError) in
      try StatementParser.parse(bytes, format: Ledger.parserFormat(format), scale: scale)
    }
  }

  /// Parses every statement of an input (see `parseStatement`); `encoding` nil reads MT940
  /// as UTF-8 when valid, else as Windows-1252, and the other formats as UTF-8.
  public func parseStatements(
    _ bytes: [UInt8], format: ReconFormat, encoding: ReconTextEncoding? = nil
  ) throws(StoreError) -> Result<[Statement], Rejection> {
    try parsing { scale throws(StatementError) in
      try StatementParser.parseAll(
        bytes, format: Ledger.parserFormat(format),
        encoding: encoding.map(Ledger.parserEncoding), scale: scale)
    }
  }

  /// Runs a parse with the ledger's currency scales (each code looked up once: a statement
  /// repeats its currency on every line); a parse error is `STATEMENT_INVALID`.
  private func parsing<T>(
    _ parse: ((String) -> Int?) throws(StatementError) -> T
  ) throws(StoreError) -> Result<T, Rejection> {
    var known: [String: Int?] = [:]
    var failure: StoreError?
    let parsed: Result<T, StatementError>
    do throws(StatementError) {
      parsed = .success(
        try parse { code in
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
    case .success(let value): return .success(value)
    case .failure(let error):
      return .failure(
        Rejection(
          .statementInvalid, "\(error.code) at \(error.location): \(error.message)",
          ["code": error.code, "location": error.location]))
    }
  }
}
