import TallyCore
import Testing

@testable import TallyStore

/// EUR and USD cash and FX position accounts.
private func fxFixture(_ ledger: Ledger) throws {
  try applyAll(
    ledger,
    [
      open("eur-cash"), open("eur-fx", normal: .credit), open("usd-cash", "USD"),
      open("usd-fx", "USD", normal: .credit),
    ])
}

@Suite("Multi-currency")
struct MultiCurrencyTests {
  @Test("An FX entry balanced per currency is applied")
  func fxEntryBalancedPerCurrency() throws {
    try withLedger { ledger in
      try fxFixture(ledger)
      // Customer pays 100.00 EUR, receives 110.00 USD; the rate goes in metadata.
      try expectApplied(
        ledger,
        post(
          "fx-1",
          [
            debit("eur-cash", 10_000), credit("eur-fx", 10_000), debit("usd-fx", 11_000),
            credit("usd-cash", 11_000),
          ], metadata: meta(("rate", "1.10"))))
      #expect(try ledger.balances("eur-cash").balance(normal: .debit) == 10_000)
      #expect(try ledger.balances("usd-cash").balance(normal: .debit) == -11_000)
      let report = try ledger.verify()
      #expect(report.ok)
      let totals = Dictionary(uniqueKeysWithValues: report.totals.map { ($0.currency, $0) })
      #expect(totals["EUR"]?.debits == 10_000 && totals["EUR"]?.credits == 10_000)
      #expect(totals["USD"]?.debits == 11_000 && totals["USD"]?.credits == 11_000)
    }
  }

  @Test("An entry balanced in total but not per currency is UNBALANCED")
  func balancedOnlyInTotal() throws {
    try withLedger { ledger in
      try fxFixture(ledger)
      let r = try expectRejected(
        ledger,
        post(
          "fx-bad",
          [
            debit("eur-cash", 10_000), credit("eur-fx", 9_000), debit("usd-fx", 11_000),
            credit("usd-cash", 12_000),
          ]), code: .unbalanced)
      #expect(r?.details["currency"] == "EUR")
      try expectRejected(
        ledger, post("fx-bad2", [debit("eur-cash", 100), credit("usd-cash", 100)]),
        code: .unbalanced)
    }
  }

  @Test("Currency assertions must match the accounts: CURRENCY_MISMATCH otherwise")
  func currencyAssertions() throws {
    try withLedger { ledger in
      try fxFixture(ledger)
      let r = try expectRejected(
        ledger,
        post("e", [debit("eur-cash", 1, currency: "USD"), credit("eur-fx", 1)]),
        code: .currencyMismatch)
      #expect(r?.details["account"] == "eur-cash")
      #expect(r?.details["currency"] == "EUR")
      try expectRejected(
        ledger, post("e", [debit("usd-cash", 1), credit("usd-fx", 1)], currency: "EUR"),
        code: .currencyMismatch)
      try expectRejected(
        ledger,
        post(
          "e",
          [
            debit("eur-cash", 1, currency: "EUR"), credit("eur-fx", 1),
            debit("usd-fx", 1, currency: "EUR"), credit("usd-cash", 1),
          ]), code: .currencyMismatch)
      // Matching assertions are applied.
      try expectApplied(
        ledger,
        post("ok", [debit("eur-cash", 1, currency: "EUR"), credit("eur-fx", 1)], currency: "EUR"))
    }
  }

  @Test("A custom asset declared with scale 8 is usable in accounts and entries")
  func customAsset() throws {
    try withLedger { ledger in
      try expectRejected(ledger, open("btc-a", "BTC"), code: .unknownCurrency)
      let seq = try expectApplied(ledger, asset("BTC", scale: 8, name: "Bitcoin"))
      #expect(
        try ledger.assets() == [
          AssetRecord(code: "BTC", scale: 8, name: "Bitcoin", declaredSeq: seq)
        ])
      try applyAll(ledger, [open("btc-a", "BTC"), open("btc-b", "BTC", normal: .credit)])
      #expect(try ledger.account("btc-a")?.record.scale == 8)
      #expect(try ledger.account("btc-a")?.record.currency == "BTC")
      let satoshis = try Amount.parseDecimal("0.00000001", scale: 8).get()
      #expect(satoshis == 1)
      try expectApplied(
        ledger, post("sat", [debit("btc-a", satoshis, currency: "BTC"), credit("btc-b", satoshis)]))
      let coin = try Amount.parseDecimal("21000000", scale: 8).get()
      try expectApplied(ledger, post("coins", [debit("btc-a", coin), credit("btc-b", coin)]))
      let b = try ledger.balances("btc-a").balance(normal: .debit)
      #expect(Amount.formatDecimal(b, scale: 8) == "21000000.00000001")
      // A BTC leg does not balance a EUR leg.
      try applyAll(ledger, [open("eur")])
      try expectRejected(
        ledger, post("mix", [debit("eur", 1), credit("btc-b", 1)]),
        code: .unbalanced)
    }
  }

  @Test("JPY accounts have scale 0 and take whole yen")
  func yenHasScaleZero() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("jpy-a", "JPY"), open("jpy-b", "JPY", normal: .credit)])
      #expect(try ledger.account("jpy-a")?.record.scale == 0)
      let yen = try Amount.parseDecimal("1500", scale: 0).get()
      if case .success = Amount.parseDecimal("1500.5", scale: 0) {
        Issue.record("JPY accepted a decimal")
      }
      try expectApplied(ledger, post("y", [debit("jpy-a", yen), credit("jpy-b", yen)]))
      #expect(try ledger.balances("jpy-b").balance(normal: .credit) == 1500)
      #expect(try ledger.account("jpy-b")?.record.scale == 0)
      // Three-decimal currencies keep their own scale.
      try applyAll(ledger, [open("kwd", "KWD")])
      #expect(try ledger.account("kwd")?.record.scale == 3)
    }
  }

  @Test("An FX hold captures per leg when each currency stays balanced")
  func fxHoldCapture() throws {
    try withLedger { ledger in
      try fxFixture(ledger)
      let legs = [
        debit("eur-cash", 1000), credit("eur-fx", 1000), debit("usd-fx", 1100),
        credit("usd-cash", 1100),
      ]
      try expectApplied(ledger, hold("fx-h", legs))
      // Balanced in total (600 + 660 = 1260 each way) but not per currency.
      try expectRejected(ledger, capture("fx-h", .perLeg([600, 660, 660, 600])), code: .unbalanced)
      try expectRejected(ledger, capture("fx-h", .uniform(500)), code: .invalidField)
      try expectApplied(ledger, capture("fx-h", .perLeg([600, 600, 660, 660])))
      #expect(try ledger.balances("eur-cash").balance(normal: .debit) == 600)
      #expect(try ledger.balances("usd-cash").balance(normal: .debit) == -660)
      #expect(try ledger.balances("usd-fx").pendingDebits == 0)
      #expect(try ledger.verify().ok)
    }
  }
}
