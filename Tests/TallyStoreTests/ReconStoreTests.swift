import TallyCore
import Testing

@testable import TallyStore

/// Reconciliation on a real LMDB directory: import, the matching rules, states, resolution,
/// unmatching, missing postings, balance checks, verify and rebuild.
@Suite struct ReconStoreTests {
  static let iban = "DE89370400440532013000"
  /// 2023-11-14, the day of `t0`.
  static let day: Int32 = 19675

  /// The platform's bank account (debit normal, mirrors the bank), a partner's wallet, and
  /// postings each rule should find, plus one no statement line has.
  static func setUp(_ l: Ledger) throws {
    let out = try l.apply(
      [
        partner("acme"),
        open("bank", metadata: meta(("iban", "DE89 3704 0044 0532 0130 00"))),
        open("acme:wallet", normal: .credit, partner: "acme"),
        post("e-ref", [debit("bank", 150_000), credit("acme:wallet", 150_000)], ref: "INV-1001"),
        post("e-amt", [debit("bank", 42_000), credit("acme:wallet", 42_000)], valueDate: day),
        post("e-sum1", [debit("bank", 10_000), credit("acme:wallet", 10_000)]),
        post("e-sum2", [debit("bank", 20_000), credit("acme:wallet", 20_000)]),
        post("e-disc", [debit("bank", 5_000), credit("acme:wallet", 5_000)], ref: "INV-9"),
        post("e-missing", [debit("bank", 1_234), credit("acme:wallet", 1_234)]),
      ], now: t0)
    for o in out {
      guard case .applied = o else { throw TestFailure("setup: \(o)") }
    }
  }

  static let csv = """
    booking_date,value_date,amount,currency,bank_ref,end_to_end_id,reference,description,account
    2023-11-14,2023-11-14,1500.00,EUR,BR1,,INV-1001,rent,DE89370400440532013000
    2023-11-14,2023-11-14,420.00,EUR,BR2,,,transfer,DE89370400440532013000
    2023-11-14,2023-11-14,300.00,EUR,BR3,,,two payments,DE89370400440532013000
    2023-11-14,2023-11-14,55.00,EUR,BR4,,INV-9,short paid,DE89370400440532013000
    2023-11-14,2023-11-14,77.77,EUR,BR5,,,unknown,DE89370400440532013000

    """

  func importCSV(_ l: Ledger, _ text: String = csv, account: String = "bank") throws
    -> Result<ReconImportReport, Rejection>
  {
    try l.importStatement(Array(text.utf8), format: .csv, account: account, now: t0 + oneSecond)
  }

  @Test func importMatchesEachRuleAndRecordsIt() throws {
    try withLedger { l in
      try Self.setUp(l)
      guard case .success(let r) = try importCSV(l) else { throw TestFailure("import failed") }
      #expect(r.linesRead == 5 && r.new == 5 && r.duplicates == 0)
      #expect(r.matchedByRule[.reference] == 1)
      #expect(r.matchedByRule[.amountDate] == 1)
      #expect(r.matchedByRule[.sum] == 1)
      #expect(r.discrepancies == 1)
      #expect(r.unmatched == 1)
      let items = try #require(try l.reconItems("bank", state: nil, after: 0, limit: 100))
      #expect(items.items.map(\.state) == [.matched, .matched, .matched, .discrepancy, .unmatched])
      let disc = items.items[3]
      let m = try #require(try l.reconMatch(disc.match))
      #expect(m.match.rule == .reference && m.match.amountDifferenceMinor == 500)
      #expect(m.match.entries == ["e-disc"])
      let sum = try #require(try l.reconMatch(items.items[2].match))
      #expect(sum.match.rule == .sum && Set(sum.match.entries) == ["e-sum1", "e-sum2"])
      let st = try #require(try l.reconStatus("bank"))
      #expect(st.record.counts == [1, 3, 1, 0])
      #expect(st.missingCount == 1 && st.missingAmountMinor == 1_234)
      let missing = try #require(try l.reconMissing("bank", after: 0, limit: 10))
      #expect(missing.postings.map(\.id) == ["e-missing"])
      #expect(try l.verify().ok)
    }
  }

  @Test func reimportingChangesNothing() throws {
    try withLedger { l in
      try Self.setUp(l)
      _ = try importCSV(l)
      let head = try l.currentHead()
      guard case .success(let again) = try importCSV(l) else { throw TestFailure("re-import") }
      #expect(again.new == 0 && again.duplicates == 5 && again.firstSeq == nil)
      #expect(try l.currentHead() == head)
    }
  }

  @Test func resolveAndUnmatchAreEventsAndMoveStates() throws {
    try withLedger { l in
      try Self.setUp(l)
      _ = try importCSV(l)
      let out = try l.apply(
        [
          .reconResolve(ReconResolved(item: 4, reason: "short payment accepted", by: "ops-1")),
          .reconUnmatch(ReconUnmatched(item: 3, reason: "wrong pair", by: "ops-1")),
          .reconResolve(ReconResolved(item: 1, reason: "x", by: "ops-1")),
          .reconResolve(ReconResolved(item: 99, reason: "x", by: "ops-1")),
        ], now: t0 + 2 * oneSecond)
      guard case .applied = out[0], case .applied = out[1] else {
        throw TestFailure("\(out)")
      }
      guard case .rejected(let r1) = out[2], case .rejected(let r2) = out[3] else {
        throw TestFailure("\(out)")
      }
      #expect(r1.code == .itemState && r2.code == .itemNotFound)
      let st = try #require(try l.reconStatus("bank"))
      // item 3 back to unmatched, its two entries missing again.
      #expect(st.record.counts == [2, 2, 0, 1])
      #expect(st.missingCount == 3)
      #expect(try l.verify().ok)
      let before = try l.reconItems("bank", state: nil, after: 0, limit: 100)?.items
      _ = try l.rebuild()
      #expect(try l.reconItems("bank", state: nil, after: 0, limit: 100)?.items == before)
      #expect(try l.verify().ok)
    }
  }

  @Test func partnerViewShowsAccountsTotalsAndCounts() throws {
    try withLedger { l in
      try Self.setUp(l)
      let v = try #require(try l.partnerView("acme", after: nil, limit: 10))
      #expect(v.accounts.map(\.record.name) == ["acme:wallet"])
      #expect(v.stats.entries == 6)
      #expect(v.totals.first?.postedMinor == 228_234)
      #expect(try l.verify().ok)
    }
  }

  @Test func partnerViewsRecentActivityIsTheLastMovedAccountsLatestFirst() throws {
    try withLedger { l in
      // 13 wallets; w00 and w01 never move; w02…w12 move in that order, then w05 again.
      var cmds: [Command] = [partner("p"), open("bank")]
      for i in 0..<13 {
        cmds.append(open("p:w\(i < 10 ? "0" : "")\(i)", normal: .credit, partner: "p"))
      }
      for i in 2..<13 {
        let w = "p:w\(i < 10 ? "0" : "")\(i)"
        cmds.append(post("e\(i)", [debit("bank", 100), credit(w, 100)]))
      }
      cmds.append(post("e-again", [debit("bank", 7), credit("p:w05", 7)]))
      for o in try l.apply(cmds, now: t0) {
        guard case .applied = o else { throw TestFailure("setup: \(o)") }
      }
      let head = try l.currentHead().seq
      let v = try #require(try l.partnerView("p", after: nil, limit: 3))
      // Latest first: w05 (the last event), then w12 down to w03 (w05 once); w02 falls off.
      #expect(
        v.recentAccounts.map(\.record.name)
          == [
            "p:w05", "p:w12", "p:w11", "p:w10", "p:w09", "p:w08", "p:w07", "p:w06", "p:w04",
            "p:w03",
          ])
      #expect(v.recentAccounts.first?.seq == head)
      #expect(v.recentAccounts.map(\.seq) == v.recentAccounts.map(\.seq).sorted(by: >))
      #expect(v.recentAccounts.first?.balances.balance(normal: .credit) == 107)
      // The same on the next page of accounts.
      let page2 = try #require(
        try l.partnerView("p", after: v.nextAccount, limit: 3, asOfSeq: v.asOfSeq))
      #expect(page2.recentAccounts == v.recentAccounts)
      // As of an earlier seq: only what had moved by then (w02…w04 moved at head-11…head-9).
      let early = try #require(try l.partnerView("p", after: nil, limit: 3, asOfSeq: head - 9))
      #expect(early.recentAccounts.map(\.record.name) == ["p:w04", "p:w03", "p:w02"])
      #expect(early.recentAccounts.first?.seq == head - 9)
    }
  }

  @Test func badStatementsAreRefusedAndChangeNothing() throws {
    try withLedger { l in
      try Self.setUp(l)
      let head = try l.currentHead()
      let header =
        "booking_date,value_date,amount,currency,bank_ref,end_to_end_id,reference,description,"
        + "account\n"
      let cases: [(String, String, RejectionCode, String?)] = [
        (
          header + "2023-11-14,,1.234,EUR,B,,,x,\(Self.iban)\n", "bank", .statementInvalid,
          "BAD_AMOUNT"
        ),
        (
          header + "2023-13-14,,1.00,EUR,B,,,x,\(Self.iban)\n", "bank", .statementInvalid,
          "BAD_DATE"
        ),
        (header + "2023-11-14,,\"1.00,EUR\n", "bank", .statementInvalid, "TRUNCATED"),
        (header + "2023-11-14,,1.00,USD,B,,,x,\(Self.iban)\n", "bank", .currencyMismatch, nil),
        (
          header + "2023-11-14,,1.00,EUR,B,,,x,DE00999999999999999999\n", "bank",
          .statementAccountMismatch, nil
        ),
        (header + "2023-11-14,,1.00,EUR,B,,,x,\(Self.iban)\n", "nope", .accountNotFound, nil),
      ]
      for (text, account, code, parserCode) in cases {
        guard case .failure(let r) = try importCSV(l, text, account: account) else {
          throw TestFailure("accepted: \(text)")
        }
        #expect(r.code == code, "\(r)")
        if let parserCode { #expect(r.details["code"] == parserCode, "\(r)") }
      }
      #expect(try l.currentHead() == head)
      #expect(try l.reconStatus("bank")?.record == ReconAccountRecord())
      #expect(try l.verify().ok)
    }
  }
}
