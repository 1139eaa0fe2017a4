import TallyCore
import Testing

@testable import TallyStore

@Suite("Queries")
struct QueryTests {
  @Test("accounts(after:limit:partner:) pages in name order and filters by partner")
  func accountPaging() throws {
    try withLedger { ledger in
      try applyAll(
        ledger,
        [partner("acme", name: "Acme")]
          + ["d", "a", "c", "e", "b"].map { open($0, partner: $0 < "c" ? "acme" : "platform") })
      #expect(try ledger.allAccounts().map(\.record.name) == ["a", "b", "c", "d", "e"])
      var names: [String] = []
      var after: String?
      while true {
        let page = try ledger.accounts(after: after, limit: 2)
        #expect(page.count <= 2)
        guard let last = page.last else { break }
        names += page.map(\.record.name)
        after = last.record.name
      }
      #expect(names == ["a", "b", "c", "d", "e"])
      #expect(try ledger.accounts(after: "bb", limit: 10).map(\.record.name) == ["c", "d", "e"])
      #expect(
        try ledger.accounts(after: nil, limit: 10, partner: "acme").map(\.record.name)
          == ["a", "b"])
      #expect(try ledger.accounts(after: "zzz", limit: 10).isEmpty)
      #expect(try ledger.accounts(after: nil, limit: 0).isEmpty)
    }
  }

  @Test("partners(after:limit:) and assets(after:limit:) page in key order")
  func partnerAndAssetPaging() throws {
    try withLedger { ledger in
      try applyAll(
        ledger,
        ["b", "d", "a"].map { partner($0, name: $0.uppercased()) }
          + ["TOK2", "TOK1", "TOK3"].map {
            .declareAsset(AssetDeclared(code: $0, scale: 4, name: $0))
          })
      #expect(try ledger.partners().map(\.id) == ["a", "b", "d", "platform"])
      #expect(try ledger.partners(after: nil, limit: 2).map(\.id) == ["a", "b"])
      #expect(try ledger.partners(after: "b", limit: 2).map(\.id) == ["d", "platform"])
      #expect(try ledger.partners(after: "c", limit: 10).map(\.id) == ["d", "platform"])
      #expect(try ledger.assets(after: "TOK1", limit: 1).map(\.code) == ["TOK2"])
      #expect(try ledger.assets(after: "TOK3", limit: 5).isEmpty)
      #expect(try ledger.asset("TOK2")?.scale == 4)
      #expect(try ledger.asset("NOPE") == nil)
    }
  }

  @Test("Account views carry the record as opened and numbers in order of opening")
  func accountRecords() throws {
    try withLedger { ledger in
      let seqs = try applyAll(
        ledger,
        [
          open(
            "first", "USD", normal: .credit, noOverdraft: true, limit: 42,
            metadata: meta(("k", "v"))),
          open("second"),
        ])
      let v = try #require(try ledger.account("first"))
      #expect(
        v.record
          == AccountRecord(
            number: 1, name: "first", partner: "platform", currency: "USD", scale: 2,
            normalSide: .credit, noOverdraft: true, limitMinor: 42, status: .open,
            openedSeq: seqs[0], closedSeq: 0, metadata: meta(("k", "v"))))
      #expect(v.balances == .zero)
      #expect(try ledger.account("second")?.record.number == 2)
      #expect(try ledger.account("nope") == nil)
      #expect(try ledger.hold("nope") == nil)
      #expect(try ledger.idRecord("nope") == nil)
    }
  }
}
