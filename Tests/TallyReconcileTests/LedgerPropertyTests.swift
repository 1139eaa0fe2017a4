import PropertyBased
import Synchronization
import TallyCore
import TallyStore
import TallyTestSupport
import Testing

@testable import TallyReconcile

// Reconciliation through a real ledger (LMDB in a temporary directory), on random
// statements and random postings built to fire each rule, to be ambiguous, partial or
// discrepant: the CSV, camt.053 and MT940 versions of one statement give identical states,
// a re-import changes nothing, and `rebuild` recomputes exactly the states the import left.
// Beside it, the claim the store's candidate filter rests on, checked directly.

/// One posting on the bank account, in the scenario's terms.
struct ScenarioPosting {
  var id: String
  var ref: String?
  var amount: Int128
  /// Statement terms: `credit` is money in (a debit on the debit-normal bank account).
  var direction: StatementDirection
  var valueDays: Int32
}

enum Scenario {
  /// Postings for a model statement: per line, at random, one that its reference names
  /// (rule 1), one of the same amount near its date (rule 2), two that sum to it (rule 3),
  /// one its reference names with another amount (a discrepancy), or none; plus noise.
  static func postings(_ m: ModelStatement, _ rng: inout Xoshiro) -> [ScenarioPosting] {
    var out = [ScenarioPosting]()
    func add(_ ref: String?, _ amount: Int128, _ d: StatementDirection, _ days: Int32) {
      out.append(
        ScenarioPosting(
          id: "e\(out.count + 1)", ref: ref, amount: amount, direction: d, valueDays: days))
    }
    for l in m.lines {
      let near = l.value + Int32(rng.int(-2...2))
      switch rng.int(0...5) {
      case 0:
        if let r = l.endToEndId ?? l.reference { add(r, l.amount, l.direction, l.value) }
      case 1: add(nil, l.amount, l.direction, near)
      case 2 where l.amount >= 2:
        let part = rng.amount(1...(l.amount - 1))
        add(nil, part, l.direction, near)
        add(nil, l.amount - part, l.direction, l.value)
      case 3:
        if let r = l.reference { add(r, l.amount + rng.amount(1...500), l.direction, l.value) }
      case 4:
        // Two of the same amount and date: rule 2 must leave the line alone.
        add(nil, l.amount, l.direction, l.value)
        add(nil, l.amount, l.direction, l.value)
      default: break
      }
    }
    for _ in 0..<rng.int(0...6) {
      let days = (m.lines.first?.value ?? m.openingDays) + Int32(rng.int(-4...30))
      add(
        rng.chance(0.3) ? RandomStatement.ref(&rng, 1...12) : nil,
        RandomStatement.amount(&rng, m.scale), rng.chance(0.5) ? .credit : .debit, days)
    }
    return out
  }

  static func commands(_ m: ModelStatement, _ postings: [ScenarioPosting]) -> [Command] {
    var out: [Command] = [
      .createPartner(PartnerCreated(id: "acme", name: "Acme", metadata: .empty)),
      .openAccount(
        AccountOpened(
          name: "bank", partner: Machine.platformPartner, currency: m.currency,
          normalSide: .debit, noOverdraft: false, limitMinor: nil, metadata: .empty)),
      .openAccount(
        AccountOpened(
          name: "acme:wallet", partner: "acme", currency: m.currency, normalSide: .credit,
          noOverdraft: false, limitMinor: nil, metadata: .empty)),
      .openAccount(
        AccountOpened(
          name: "acme:fees", partner: "acme", currency: m.currency, normalSide: .debit,
          noOverdraft: false, limitMinor: nil, metadata: .empty)),
    ]
    for (n, p) in postings.enumerated() {
      if n % 3 == 1 {
        // An entry elsewhere between two of the bank's, so its history is not every seq.
        out.append(
          .postEntry(
            EntrySpec(
              id: "x\(n)",
              legs: [
                LegSpec(account: "acme:fees", side: .debit, amountMinor: 7, currency: nil),
                LegSpec(account: "acme:wallet", side: .credit, amountMinor: 7, currency: nil),
              ], currency: nil, ref: nil, valueDateDays: p.valueDays, metadata: .empty)))
      }
      let bank: Side = p.direction == .credit ? .debit : .credit
      let other: Side = bank == .debit ? .credit : .debit
      out.append(
        .postEntry(
          EntrySpec(
            id: p.id,
            legs: [
              LegSpec(account: "bank", side: bank, amountMinor: p.amount, currency: nil),
              LegSpec(account: "acme:wallet", side: other, amountMinor: p.amount, currency: nil),
            ], currency: nil, ref: p.ref, valueDateDays: p.valueDays, metadata: .empty)))
    }
    return out
  }

  static func candidates(_ m: ModelStatement, _ postings: [ScenarioPosting])
    -> [LedgerCandidate]
  {
    postings.enumerated().map { i, p in
      LedgerCandidate(
        entryId: p.id, seq: UInt64(i + 4), ref: p.ref, amountMinor: p.amount,
        currency: m.currency, direction: p.direction, dateDays: p.valueDays)
    }
  }
}

/// Everything reconciliation keeps for the bank account, sources aside (they name lines or
/// elements of the format read).
struct ReconSnapshot: Equatable, CustomStringConvertible {
  var items: [String]
  var counts: [UInt64]
  var amounts: [Int128]
  var missing: [String]

  var description: String {
    (items + ["counts \(counts) amounts \(amounts)"] + missing).joined(separator: "\n")
  }

  static func of(_ l: Ledger) throws -> ReconSnapshot {
    var items = [String]()
    var after: UInt64 = 0
    while true {
      guard let page = try l.reconItems("bank", state: nil, after: after, limit: 1000) else {
        throw LedgerTestFailure("no bank account")
      }
      for it in page.items {
        var row =
          "\(it.number) \(it.state) \(it.line.identity) \(it.line.amountMinor)"
          + " resolution=\(String(describing: it.resolution))"
        if it.match != 0, let m = try l.reconMatch(it.match) {
          row +=
            " match \(m.match.rule) \(m.match.state) items \(m.match.items)"
            + " entries \(m.match.entries) diff \(m.match.amountDifferenceMinor)"
            + " undone \(m.undoneSeq != 0)"
        }
        items.append(row)
      }
      guard let next = page.next else { break }
      after = next
    }
    guard let st = try l.reconStatus("bank"),
      let missing = try l.reconMissing("bank", after: 0, limit: 10_000)
    else { throw LedgerTestFailure("no bank account") }
    return ReconSnapshot(
      items: items, counts: st.record.counts, amounts: st.record.amountsMinor,
      missing: missing.postings.map { "\($0.seq) \($0.id) \($0.amountMinor)" })
  }
}

struct LedgerTestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ d: String) { description = d }
}

/// A ledger in a new temporary directory, removed afterwards with everything in it.
func withScratchLedger<R>(_ body: (Ledger) throws -> R) throws -> R {
  try withTempDir { dir in
    let l = try Ledger.create(at: dir.ledgerPath, now: 1_700_000_000_000_000_000)
    return try withExtendedLifetime(l) { try body(l) }
  }
}

@Suite("Reconciliation through a ledger, on random statements")
struct LedgerPropertyTests {
  static let now: Int64 = 1_700_000_000_000_000_000

  @Test("CSV, camt.053 and MT940 give identical states; re-import and rebuild change nothing")
  func formatsAgreeAndRebuildReproduces() async {
    let coverage = Coverage()
    await seededCheck("ledger recon", seed: 0x5EC0_2C11_E000_0002, count: 60) { rng in
      let model = RandomStatement.make(&rng)
      let postings = Scenario.postings(model, &rng)
      let setup = Scenario.commands(model, postings)
      let inputs: [(ReconFormat, [UInt8])] = [
        (.camt053, CamtWriter.write(model, &rng)), (.mt940, MT940Writer.write(model, &rng)),
        (.csv, CSVWriter.write(model, &rng)),
      ]
      var first: (ReconFormat, ReconSnapshot, ReconImportReport)?
      for (format, bytes) in inputs {
        try withScratchLedger { l in
          for o in try l.apply(setup, now: Self.now) {
            guard case .applied = o else { throw LedgerTestFailure("setup: \(o)") }
          }
          let report: ReconImportReport
          switch try l.importStatement(
            bytes, format: format, account: "bank", now: Self.now + 1_000_000_000)
          {
          case .failure(let r): throw LedgerTestFailure("\(format) import refused: \(r)")
          case .success(let r): report = r
          }
          #expect(report.new == model.lines.count, "\(format)")
          let snap = try ReconSnapshot.of(l)
          if let (f0, s0, r0) = first {
            // CSV carries no balances, so its period is only its lines' days: its missing
            // postings are among the others'. camt.053 and MT940 carry the same period.
            var (a, b) = (snap, s0)
            if format == .csv || f0 == .csv {
              let (csv, other) = format == .csv ? (a, b) : (b, a)
              #expect(Set(csv.missing).isSubset(of: other.missing), "\(format) vs \(f0)")
              a.missing = []
              b.missing = []
            }
            #expect(a == b, "\(format) differs from \(f0):\n\(snap)\n---\n\(s0)")
            #expect(report.matchedByRule == r0.matchedByRule, "\(format) vs \(f0)")
            #expect(report.discrepancies == r0.discrepancies && report.unmatched == r0.unmatched)
          } else {
            first = (format, snap, report)
            coverage.add(report)
          }
          // The same statement again: nothing new, nothing moves.
          let head = l.head
          guard
            case .success(let again) = try l.importStatement(
              bytes, format: format, account: "bank", now: Self.now + 2_000_000_000)
          else { throw LedgerTestFailure("re-import refused") }
          #expect(again.new == 0 && again.duplicates == model.lines.count, "\(format)")
          #expect(l.head == head, "\(format): a re-import appended events")
          #expect(try ReconSnapshot.of(l) == snap, "\(format): a re-import changed states")
          // Every state is a projection of the log.
          _ = try l.rebuild()
          #expect(try ReconSnapshot.of(l) == snap, "\(format): rebuild gave other states")
          #expect(try l.verify().ok, "\(format): verify")
        }
      }
    }
    // The scenarios reach every outcome, so the agreement above is about something.
    #expect(coverage.reached, "\(coverage)")
  }

  @Test("Rules 1 and 2 over the filtered candidates give what they give over all of them")
  func candidateFilterKeepsWhatRulesOneAndTwoUse() async {
    await seededCheck("candidate filter", seed: 0x5EC0_2C11_E000_0003, count: 400) { rng in
      let model = RandomStatement.make(&rng)
      let lines = model.expectedLines
      let all = Scenario.candidates(model, Scenario.postings(model, &rng))
      let filter = CandidateFilter(lines: lines)
      let kept = all.filter {
        filter.keeps(entryId: $0.entryId, ref: $0.ref, amountMinor: $0.amountMinor)
      }
      var options = MatchOptions()
      options.toleranceDays = Int32(rng.int(0...3))
      let full = Matcher.match(lines: lines, candidates: all, options: options)
      let part = Matcher.match(lines: lines, candidates: kept, options: options)
      if !CandidateFilter.leavesLines(part, of: lines) {
        #expect(part == full, "filtered \(kept.count) of \(all.count)")
      } else {
        // Rules 1 and 2 alone: the outcomes before any rule-3 match are the same.
        #expect(
          part.filter { !$0.isSum } == full.filter { !$0.isSum },
          "rules 1 and 2 differ")
      }
    }
  }
}

extension MatchOutcome {
  var isSum: Bool {
    if case .matched(.sum, _, _) = self { return true }
    return false
  }
}

/// Which outcomes the random scenarios reached, over all cases.
final class Coverage: Sendable, CustomStringConvertible {
  let reference = Atomic<Int>(0)
  let amountDate = Atomic<Int>(0)
  let sum = Atomic<Int>(0)
  let discrepancies = Atomic<Int>(0)
  let unmatched = Atomic<Int>(0)

  func add(_ r: ReconImportReport) {
    reference.add(r.matchedByRule[.reference] ?? 0, ordering: .relaxed)
    amountDate.add(r.matchedByRule[.amountDate] ?? 0, ordering: .relaxed)
    sum.add(r.matchedByRule[.sum] ?? 0, ordering: .relaxed)
    discrepancies.add(r.discrepancies, ordering: .relaxed)
    unmatched.add(r.unmatched, ordering: .relaxed)
  }

  var counts: [Int] {
    [
      reference.load(ordering: .relaxed), amountDate.load(ordering: .relaxed),
      sum.load(ordering: .relaxed), discrepancies.load(ordering: .relaxed),
      unmatched.load(ordering: .relaxed),
    ]
  }
  var reached: Bool { counts.allSatisfy { $0 > 0 } }
  var description: String {
    "reference, amount_date, sum, discrepancies, unmatched: \(counts)"
  }
}
