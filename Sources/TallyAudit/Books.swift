import TallyCore

/// The decoding pass over an export: strict decoding, seq and timestamp order, and double
/// entry per currency (docs/FORMAT.md, "Verifying an export", steps 2 and 5). Keeps only
/// each account's currency and each pending hold's legs.
struct Books {
  private var currencyOf = [String: Int]()
  private var currencies = [String]()
  private var currencyIndex = [String: Int]()
  private var holds = [String: [(currency: Int, side: Side, amount: Int128)]]()
  private var debits = [Int128]()
  private var credits = [Int128]()
  private var problems = [AuditProblem]()
  private var dropped = 0
  /// Reused per event: the legs being checked, and the net amount per currency.
  private var scratch = [(currency: Int, side: Side, amount: Int128)]()
  private var sums = [(currency: Int, net: Int128)]()

  var totals: [CurrencyTotal] {
    currencies.indices.map {
      CurrencyTotal(currency: currencies[$0], debits: debits[$0], credits: credits[$0])
    }.sorted { $0.currency < $1.currency }
  }

  private mutating func note(_ p: AuditProblem) {
    if problems.count < ExportVerifier.problemLimit { problems.append(p) } else { dropped += 1 }
  }

  private mutating func currency(_ code: String) -> Int {
    if let i = currencyIndex[code] { return i }
    currencies.append(code)
    debits.append(0)
    credits.append(0)
    currencyIndex[code] = currencies.count - 1
    return currencies.count - 1
  }

  /// An event before the export (from `context`): what it opened or placed.
  mutating func record(_ e: Event) {
    switch e.body {
    case .accountOpened(let a): currencyOf[a.name] = currency(a.currency)
    case .holdPlaced(let hp):
      if resolve(hp.legs, seq: e.seq) { holds[hp.id] = scratch }
    default: break
    }
  }

  /// Legs with their accounts' currencies, in `scratch`; false (and a problem) when an
  /// account is unknown or an amount is not positive.
  private mutating func resolve(_ legs: [Leg], seq: UInt64) -> Bool {
    scratch.removeAll(keepingCapacity: true)
    for l in legs {
      guard let c = currencyOf[l.account] else {
        note(
          AuditProblem(
            .doubleEntry, seq: seq, "a leg names account \(l.account), not opened before"))
        return false
      }
      guard l.amountMinor > 0 else {
        note(AuditProblem(.doubleEntry, seq: seq, "a leg amount is not positive"))
        return false
      }
      scratch.append((c, l.side, l.amountMinor))
    }
    return true
  }

  /// Whether amounts balance per currency; a problem naming the first unbalanced one.
  private mutating func balanced(
    _ legs: [(currency: Int, side: Side, amount: Int128)], _ amounts: [Int128]?, seq: UInt64,
    what: @autoclosure () -> String
  ) -> Bool {
    sums.removeAll(keepingCapacity: true)
    for (i, l) in legs.enumerated() {
      let a = amounts?[i] ?? l.amount
      let signed = l.side == .debit ? a : -a
      if let j = sums.firstIndex(where: { $0.currency == l.currency }) {
        let (v, o) = sums[j].net.addingReportingOverflow(signed)
        guard !o else {
          note(AuditProblem(.doubleEntry, seq: seq, "\(what()): amounts overflow"))
          return false
        }
        sums[j].net = v
      } else {
        sums.append((l.currency, signed))
      }
    }
    if let bad = sums.first(where: { $0.net != 0 }) {
      note(
        AuditProblem(
          .doubleEntry, seq: seq,
          "\(what()) does not balance in \(currencies[bad.currency]): debits − credits = "
            + "\(bad.net)"))
      return false
    }
    return true
  }

  private mutating func post(
    _ legs: [(currency: Int, side: Side, amount: Int128)], _ amounts: [Int128]?
  ) {
    for (i, l) in legs.enumerated() {
      let a = amounts?[i] ?? l.amount
      if l.side == .debit { debits[l.currency] += a } else { credits[l.currency] += a }
    }
  }

  /// Decodes every record of `events` (seq `from` onwards) and keeps the books.
  mutating func run(_ events: MappedFile, from: UInt64) -> (problems: [AuditProblem], dropped: Int)
  {
    var walker = RecordWalker(events)
    var position = from
    var previousSeq = from - 1
    var previousTime: Int64?
    loop: while true {
      switch walker.next() {
      case .end, .truncated: break loop  // the hash pass reports a truncation
      case .record(let bytes):
        defer { position += 1 }
        let e: Event
        do { e = try EventCodec.decode(bytes) } catch {
          note(AuditProblem(.decode, seq: position, "the event does not decode: \(error)"))
          previousSeq += 1
          continue
        }
        if e.seq != previousSeq + 1 {
          note(
            AuditProblem(
              .sequence, seq: position,
              e.seq > previousSeq + 1
                ? "seq \(e.seq) follows seq \(previousSeq): "
                  + (e.seq == previousSeq + 2
                    ? "seq \(previousSeq + 1) is missing"
                    : "seq \(previousSeq + 1)…\(e.seq - 1) are missing")
                : "seq \(e.seq) follows seq \(previousSeq): out of order or repeated"))
        }
        previousSeq = e.seq
        if let t = previousTime, e.timestampNanos <= t {
          note(
            AuditProblem(
              .timestamp, seq: position, "the timestamp does not increase (\(e.timestampNanos))"))
        }
        previousTime = e.timestampNanos
        apply(e, seq: position)
      }
    }
    return (problems, dropped)
  }

  private mutating func apply(_ e: Event, seq: UInt64) {
    switch e.body {
    case .accountOpened(let a):
      if currencyOf[a.name] != nil {
        note(AuditProblem(.doubleEntry, seq: seq, "account \(a.name) is opened twice"))
      }
      currencyOf[a.name] = currency(a.currency)
    case .entryPosted(let entry):
      guard resolve(entry.legs, seq: seq),
        balanced(scratch, nil, seq: seq, what: "entry \(entry.id)")
      else { return }
      post(scratch, nil)
    case .holdPlaced(let hp):
      guard resolve(hp.legs, seq: seq), balanced(scratch, nil, seq: seq, what: "hold \(hp.id)")
      else { return }
      if holds[hp.id] != nil {
        note(AuditProblem(.doubleEntry, seq: seq, "hold \(hp.id) is placed twice"))
      }
      holds[hp.id] = scratch
    case .holdCaptured(let c):
      guard let legs = holds.removeValue(forKey: c.holdId) else {
        note(AuditProblem(.doubleEntry, seq: seq, "captures hold \(c.holdId), not pending"))
        return
      }
      guard c.amountsMinor.count == legs.count else {
        note(
          AuditProblem(
            .doubleEntry, seq: seq,
            "captures \(c.amountsMinor.count) amounts for a hold of \(legs.count) legs"))
        return
      }
      for (a, l) in zip(c.amountsMinor, legs) where a < 0 || a > l.amount {
        note(
          AuditProblem(
            .doubleEntry, seq: seq, "a captured amount is outside 0…\(l.amount) (\(a))"))
        return
      }
      guard balanced(legs, c.amountsMinor, seq: seq, what: "the capture of \(c.holdId)") else {
        return
      }
      post(legs, c.amountsMinor)
    case .holdReleased(let id), .holdExpired(let id):
      // Moves no money: only the hold stops being capturable.
      holds.removeValue(forKey: id)
    case .partnerCreated, .assetDeclared, .accountClosed: break
    // Reconciliation records statements and matches; it moves no money.
    case .reconImported, .reconMatched, .reconResolved, .reconUnmatched: break
    }
  }
}
