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

/// The candidates rules 1 and 2 can use for a set of lines: those whose id or ref one of
/// the lines names, and those of an amount one of the lines has. When rules 1 and 2 match
/// every line, `Matcher.match` over only these gives exactly what it gives over all
/// candidates (rule 3 runs on lines left over); otherwise match again over all of them.
/// This lets a store hold a few candidates per line instead of an account's whole history.
public struct CandidateFilter: Sendable {
  let references: Set<String>
  let amounts: Set<Int128>

  public init(lines: [StatementLine]) {
    var references = Set<String>(minimumCapacity: lines.count * 2)
    var amounts = Set<Int128>(minimumCapacity: lines.count)
    for l in lines {
      for r in [l.endToEndId, l.reference, l.bankReference] { if let r { references.insert(r) } }
      amounts.insert(l.amountMinor)
    }
    self.references = references
    self.amounts = amounts
  }

  public func keeps(entryId: String, ref: String?, amountMinor: Int128) -> Bool {
    amounts.contains(amountMinor) || references.contains(entryId)
      || (ref.map { references.contains($0) } ?? false)
  }

  /// Whether `outcomes` leave a line unmatched, so rule 3 may need other candidates.
  public static func leavesLines(_ outcomes: [MatchOutcome], of lines: [StatementLine]) -> Bool {
    var used = 0
    for o in outcomes {
      switch o {
      case .matched(_, let ls, _): used += ls.count
      case .discrepancy: used += 1
      }
    }
    return used < lines.count
  }
}

public enum Matcher {
  /// Matches `lines` against `candidates`; each line and entry is used at most once.
  /// Lines and entries not named in the outcome stay unmatched.
  public static func match(
    lines: [StatementLine], candidates: [LedgerCandidate], options: MatchOptions = MatchOptions()
  ) -> [MatchOutcome] {
    var out = [MatchOutcome]()
    var lineUsed = Set<Int>(minimumCapacity: lines.count)
    var entryUsed = Set<String>(minimumCapacity: min(lines.count, candidates.count))

    // Rule 1: exact reference. The lines' references are indexed (the statement is the
    // smaller side); each candidate's id and ref are looked up once.
    var byReference = [String: [Int]](minimumCapacity: lines.count * 2)
    for (j, line) in lines.enumerated() {
      // Each distinct reference of the line once (at most three, no Set needed).
      let e = line.endToEndId
      let r = line.reference == e ? nil : line.reference
      let b = line.bankReference == e || line.bankReference == r ? nil : line.bankReference
      for key in [e, r, b] { if let key { byReference[key, default: []].append(j) } }
    }
    var namedBy = [[Int]](repeating: [], count: lines.count)
    for (i, c) in candidates.enumerated() {
      if let hit = byReference[c.entryId] {
        for j in hit where namedBy[j].last != i { namedBy[j].append(i) }
      }
      if let r = c.ref, r != c.entryId, let hit = byReference[r] {
        for j in hit where namedBy[j].last != i { namedBy[j].append(i) }
      }
    }
    for (j, line) in lines.enumerated() {
      var named = namedBy[j]
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

    // Rule 2: amount, currency, direction and date, unique on both sides. Both sides are
    // indexed by (amount, currency, direction), so each line looks at its equals only.
    func open(_ c: LedgerCandidate) -> Bool { !entryUsed.contains(c.entryId) }
    var linesByKey = [Key: [Int]](minimumCapacity: lines.count - lineUsed.count)
    var lineAmounts = Set<Int128>(minimumCapacity: lines.count - lineUsed.count)
    for (i, l) in lines.enumerated() where !lineUsed.contains(l.index) {
      linesByKey[Key(l.amountMinor, l.currency, l.direction), default: []].append(i)
      lineAmounts.insert(l.amountMinor)
    }
    // Cheapest test first: most candidates have no open line of their amount.
    var entriesByKey = [Key: [Int]](minimumCapacity: linesByKey.count)
    for (i, c) in candidates.enumerated() where lineAmounts.contains(c.amountMinor) {
      let key = Key(c.amountMinor, c.currency, c.direction)
      if linesByKey[key] != nil && open(c) { entriesByKey[key, default: []].append(i) }
    }
    for line in lines where !lineUsed.contains(line.index) {
      let key = Key(line.amountMinor, line.currency, line.direction)
      var fit: LedgerCandidate?
      var fits = 0
      for i in entriesByKey[key] ?? []
      where open(candidates[i]) && near(line, candidates[i], options) {
        fits += 1
        fit = candidates[i]
        if fits > 1 { break }
      }
      guard fits == 1, let c = fit else { continue }
      var rivals = 0
      for j in linesByKey[key] ?? []
      where !lineUsed.contains(lines[j].index) && near(lines[j], c, options) {
        rivals += 1
        if rivals > 1 { break }
      }
      guard rivals == 1 else { continue }
      out.append(.matched(rule: .amountDate, lines: [line.index], entries: [c.entryId]))
      lineUsed.insert(line.index)
      entryUsed.insert(c.entryId)
    }

    // Rule 3a: one line to several entries, among the open entries of its currency and
    // direction closest by date (sorted once; each line looks around its own date).
    // Only candidates that could join a sum: an open line's group, dates and amounts.
    let rest = lines.filter { !lineUsed.contains($0.index) }
    if rest.isEmpty { return out }
    let groups = Set(rest.map { Group($0.currency, $0.direction) })
    let first = (rest.map(date).min() ?? 0) - options.toleranceDays
    let last = (rest.map(date).max() ?? 0) + options.toleranceDays
    let largest = rest.map(\.amountMinor).max() ?? 0
    let entryWindow = Window(
      candidates.indices.filter {
        let c = candidates[$0]
        return c.dateDays >= first && c.dateDays <= last && c.amountMinor < largest && open(c)
          && groups.contains(Group(c.currency, c.direction))
      },
      group: {
        Group(candidates[$0].currency, candidates[$0].direction)
      }, date: { candidates[$0].dateDays })
    for line in lines where !lineUsed.contains(line.index) {
      let pool = entryWindow.closest(
        Group(line.currency, line.direction), to: date(line), within: options.toleranceDays,
        count: options.candidatesMax, scanMax: options.candidatesMax * 8
      ) { open(candidates[$0]) && candidates[$0].amountMinor < line.amountMinor }
      guard pool.count >= 2,
        let parts = uniqueSubset(
          pool.map { candidates[$0].amountMinor }, target: line.amountMinor, options)
      else { continue }
      let ids = parts.map { candidates[pool[$0]].entryId }
      out.append(.matched(rule: .sum, lines: [line.index], entries: ids))
      lineUsed.insert(line.index)
      entryUsed.formUnion(ids)
    }
    // Rule 3b: several lines to one entry.
    let lineWindow = Window(
      lines.indices.filter { !lineUsed.contains(lines[$0].index) },
      group: { Group(lines[$0].currency, lines[$0].direction) }, date: { date(lines[$0]) })
    let open3b = lines.filter { !lineUsed.contains($0.index) }
    guard open3b.count >= 2 else { return out }
    // An entry that two or more open lines sum to is larger than the smallest of them.
    let smallest = open3b.map(\.amountMinor).min() ?? 0
    for c in candidates
    where c.dateDays >= first && c.dateDays <= last && c.amountMinor > smallest && open(c) {
      let pool = lineWindow.closest(
        Group(c.currency, c.direction), to: c.dateDays, within: options.toleranceDays,
        count: options.candidatesMax, scanMax: options.candidatesMax * 8
      ) { !lineUsed.contains(lines[$0].index) && lines[$0].amountMinor < c.amountMinor }
      guard pool.count >= 2,
        let parts = uniqueSubset(pool.map { lines[$0].amountMinor }, target: c.amountMinor, options)
      else { continue }
      let indexes = parts.map { lines[pool[$0]].index }.sorted()
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

  /// The positions of the only subset of 2…partsMax of `amounts` (closest first) summing to
  /// `target`; nil when there is none, more than one, or the search exceeds `stepsMax` (then
  /// it cannot tell, which counts as ambiguous).
  static func uniqueSubset(_ amounts: [Int128], target: Int128, _ o: MatchOptions) -> [Int]? {
    var found: [Int]?
    var count = 0
    var steps = 0
    var chosen = [Int]()
    // Depth-first over increasing positions; bounded by stepsMax.
    func visit(_ start: Int, _ sum: Int128) -> Bool {
      for k in start..<amounts.count {
        steps += 1
        if steps > o.stepsMax { return false }
        let s = sum + amounts[k]
        if s > target { continue }
        chosen.append(k)
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
    return f
  }
}

/// Rule 2's index key.
struct Key: Hashable {
  let amount: Int128
  let currency: String
  let direction: StatementDirection
  init(_ amount: Int128, _ currency: String, _ direction: StatementDirection) {
    self.amount = amount
    self.currency = currency
    self.direction = direction
  }
}

/// Rule 3's grouping: currency and direction.
struct Group: Hashable {
  let currency: String
  let direction: StatementDirection
  init(_ currency: String, _ direction: StatementDirection) {
    self.currency = currency
    self.direction = direction
  }
}

/// Items (by position) per group, sorted by date, to find those closest to a date.
struct Window {
  private var sorted = [Group: [(date: Int32, item: Int)]]()

  init(_ items: [Int], group: (Int) -> Group, date: (Int) -> Int32) {
    for i in items { sorted[group(i), default: []].append((date(i), i)) }
    for k in sorted.keys { sorted[k]!.sort { ($0.date, $0.item) < ($1.date, $1.item) } }
  }

  /// Up to `count` items of `group` within `within` days of `day` that pass `keep`, closest
  /// first (ties: earlier position first), looking at no more than `scanMax` items.
  func closest(
    _ group: Group, to day: Int32, within: Int32, count: Int, scanMax: Int,
    keep: (Int) -> Bool
  ) -> [Int] {
    guard let a = sorted[group], !a.isEmpty else { return [] }
    // First position with date ≥ day.
    var lo = 0
    var hi = a.count
    while lo < hi {
      let mid = (lo + hi) / 2
      if a[mid].date < day { lo = mid + 1 } else { hi = mid }
    }
    var left = lo - 1
    var right = lo
    var out = [Int]()
    var scanned = 0
    while out.count < count && scanned < scanMax {
      let dl = left >= 0 ? Int64(day) - Int64(a[left].date) : Int64.max
      let dr = right < a.count ? Int64(a[right].date) - Int64(day) : Int64.max
      let d = min(dl, dr)
      if d > Int64(within) { break }
      let take: Int
      if dr <= dl {
        take = a[right].item
        right += 1
      } else {
        take = a[left].item
        left -= 1
      }
      scanned += 1
      if keep(take) { out.append(take) }
    }
    return out
  }
}
