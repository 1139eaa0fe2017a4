// Matching statement lines against ledger entries (docs/RECONCILIATION.md, "Matching"): a
// pure function of the lines, the candidates and the options, so that replaying the same
// import gives the same matches. The rules run in a fixed order; each match records the rule
// that made it; ambiguous candidates are never matched automatically.

/// A ledger entry's movement on the reconciled account, in the statement's terms.
public struct LedgerCandidate: Equatable, Sendable {
  public var entryId: String
  public var seq: UInt64
  /// The entry's `ref`, if any.
  public var ref: String?
  /// Minor units on the reconciled account (> 0).
  public var amountMinor: Int128
  public var currency: String
  /// Which way money moved on the bank's side: for an account that mirrors a bank account
  /// (debit normal), a ledger debit is money in, i.e. `credit` on the statement.
  public var direction: StatementDirection
  /// The entry's value date, or the day of its timestamp.
  public var dateDays: Int32

  public init(
    entryId: String, seq: UInt64, ref: String?, amountMinor: Int128, currency: String,
    direction: StatementDirection, dateDays: Int32
  ) {
    self.entryId = entryId
    self.seq = seq
    self.ref = ref
    self.amountMinor = amountMinor
    self.currency = currency
    self.direction = direction
    self.dateDays = dateDays
  }
}

/// The rule that made a match, in the order the rules run.
public enum MatchRule: String, Sendable, CaseIterable {
  /// 1: a line's end-to-end id, reference or bank reference equals an entry's id or ref,
  /// with equal amount, currency and direction.
  case reference
  /// 2: equal amount, currency and direction, dates within the tolerance, and exactly one
  /// candidate on each side.
  case amountDate = "amount_date"
  /// 3: one line to several entries, or several lines to one entry, whose amounts sum
  /// exactly, within the date window; exactly one such combination.
  case sum
}

public struct MatchOptions: Sendable, Equatable {
  /// Days a value date may differ for rules 2 and 3.
  public var toleranceDays: Int32 = 2
  /// At most this many parts in a rule-3 combination.
  public var partsMax = 4
  /// At most this many candidates considered per rule-3 search (the closest by date).
  public var candidatesMax = 24
  /// At most this many subsets visited per rule-3 search; beyond it, no match (ambiguous).
  public var stepsMax = 20_000
  public init() {}
}

/// What matching concluded.
public enum MatchOutcome: Equatable, Sendable {
  /// Lines (statement indexes) and entries (ids) matched by `rule`.
  case matched(rule: MatchRule, lines: [Int], entries: [String])
  /// The line's reference names the entry, but amount, currency or direction differ.
  case discrepancy(
    line: Int, entry: String, amountDifferenceMinor: Int128, currencyDiffers: Bool,
    directionDiffers: Bool)
}

public enum Matcher {
  /// Matches `lines` against `candidates`; each line and entry is used at most once.
  /// Lines and entries not named in the outcome stay unmatched.
  public static func match(
    lines: [StatementLine], candidates: [LedgerCandidate], options: MatchOptions = MatchOptions()
  ) -> [MatchOutcome] {
    var out = [MatchOutcome]()
    var lineUsed = Set<Int>()
    var entryUsed = Set<String>()

    // Rule 1: exact reference.
    var byKey = [String: [Int]]()
    for (i, c) in candidates.enumerated() {
      byKey[c.entryId, default: []].append(i)
      if let r = c.ref, r != c.entryId { byKey[r, default: []].append(i) }
    }
    for line in lines {
      var named = [Int]()
      for key in [line.endToEndId, line.reference, line.bankReference].compactMap({ $0 }) {
        for i in byKey[key] ?? [] where !named.contains(i) { named.append(i) }
      }
      named.removeAll { entryUsed.contains(candidates[$0].entryId) }
      guard !named.isEmpty else { continue }
      let exact = named.filter { same(line, candidates[$0]) }
      if exact.count == 1 {
        let c = candidates[exact[0]]
        out.append(.matched(rule: .reference, lines: [line.index], entries: [c.entryId]))
        lineUsed.insert(line.index)
        entryUsed.insert(c.entryId)
      } else if exact.isEmpty && named.count == 1 {
        let c = candidates[named[0]]
        out.append(
          .discrepancy(
            line: line.index, entry: c.entryId,
            amountDifferenceMinor: line.amountMinor - c.amountMinor,
            currencyDiffers: line.currency != c.currency,
            directionDiffers: line.direction != c.direction))
        lineUsed.insert(line.index)
        entryUsed.insert(c.entryId)
      }
      // Several candidates with the same reference: ambiguous, left for ops.
    }

    // Rule 2: amount, currency, direction and date, unique on both sides.
    func open(_ c: LedgerCandidate) -> Bool { !entryUsed.contains(c.entryId) }
    for line in lines where !lineUsed.contains(line.index) {
      let fits = candidates.filter { open($0) && same(line, $0) && near(line, $0, options) }
      guard fits.count == 1, let c = fits.first else { continue }
      let rivals = lines.filter {
        !lineUsed.contains($0.index) && same($0, c) && near($0, c, options)
      }
      guard rivals.count == 1 else { continue }
      out.append(.matched(rule: .amountDate, lines: [line.index], entries: [c.entryId]))
      lineUsed.insert(line.index)
      entryUsed.insert(c.entryId)
    }

    // Rule 3a: one line to several entries.
    for line in lines where !lineUsed.contains(line.index) {
      let pool = candidates.filter {
        open($0) && $0.currency == line.currency && $0.direction == line.direction
          && near(line, $0, options)
      }
      guard
        let parts = uniqueSubset(
          pool.map(\.amountMinor), target: line.amountMinor,
          order: pool.map { abs(Int64($0.dateDays) - Int64(date(line))) }, options)
      else { continue }
      let ids = parts.map { pool[$0].entryId }
      out.append(.matched(rule: .sum, lines: [line.index], entries: ids))
      lineUsed.insert(line.index)
      entryUsed.formUnion(ids)
    }
    // Rule 3b: several lines to one entry.
    for c in candidates where open(c) {
      let pool = lines.filter {
        !lineUsed.contains($0.index) && $0.currency == c.currency && $0.direction == c.direction
          && near($0, c, options)
      }
      guard
        let parts = uniqueSubset(
          pool.map(\.amountMinor), target: c.amountMinor,
          order: pool.map { abs(Int64(date($0)) - Int64(c.dateDays)) }, options)
      else { continue }
      let indexes = parts.map { pool[$0].index }
      out.append(.matched(rule: .sum, lines: indexes, entries: [c.entryId]))
      lineUsed.formUnion(indexes)
      entryUsed.insert(c.entryId)
    }
    return out
  }

  static func same(_ l: StatementLine, _ c: LedgerCandidate) -> Bool {
    l.amountMinor == c.amountMinor && l.currency == c.currency && l.direction == c.direction
  }

  static func date(_ l: StatementLine) -> Int32 { l.valueDateDays ?? l.bookingDateDays }

  static func near(_ l: StatementLine, _ c: LedgerCandidate, _ o: MatchOptions) -> Bool {
    abs(Int64(date(l)) - Int64(c.dateDays)) <= Int64(o.toleranceDays)
  }

  /// The positions of the only subset of 2…partsMax amounts summing to `target`, among the
  /// `candidatesMax` closest by `order`; nil when there is none, more than one, or the search
  /// exceeds `stepsMax` (then it cannot tell, which counts as ambiguous).
  static func uniqueSubset(
    _ amounts: [Int128], target: Int128, order: [Int64], _ o: MatchOptions
  ) -> [Int]? {
    let picked = amounts.indices.sorted { (order[$0], $0) < (order[$1], $1) }
      .prefix(o.candidatesMax).filter { amounts[$0] < target }
    var found: [Int]?
    var count = 0
    var steps = 0
    var chosen = [Int]()
    // Depth-first over increasing positions; bounded by stepsMax.
    func visit(_ start: Int, _ sum: Int128) -> Bool {
      for k in start..<picked.count {
        steps += 1
        if steps > o.stepsMax { return false }
        let s = sum + amounts[picked[k]]
        if s > target { continue }
        chosen.append(picked[k])
        if s == target && chosen.count >= 2 {
          count += 1
          found = chosen
          if count > 1 { return false }
        } else if s < target && chosen.count < o.partsMax {
          if !visit(k + 1, s) { return false }
        }
        chosen.removeLast()
      }
      return true
    }
    guard visit(0, 0), count == 1, let f = found else { return nil }
    return f.sorted()
  }
}
