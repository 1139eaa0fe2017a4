import TallyCore
import Testing

@testable import TallyServer

/// Subjects and names of the change stream (docs/REPLICATION.md, "Subjects").
@Suite struct ChangeStreamSubjectTests {
  @Test func subjectsRouteByPartnerAndType() {
    func subject(_ partners: [String], _ type: EventType) -> String {
      ChangeStreamPublisher.subject(prefix: "tally.events", partners: partners, type: type)
    }
    #expect(subject(["p1"], .entryPosted) == "tally.events.p1.entry_posted")
    #expect(subject(["platform", "p2"], .holdPlaced) == "tally.events.@multi.hold_placed")
    #expect(subject([], .assetDeclared) == "tally.events.@ledger.asset_declared")
    // A dot in a partner id would split the token: it is written %2E.
    #expect(subject(["acme.eu"], .accountOpened) == "tally.events.acme%2Eeu.account_opened")
  }

  @Test func streamNamesAndSubjectPrefixesAreChecked() {
    #expect(ChangeStreamConfig.isStreamName("TALLY"))
    #expect(ChangeStreamConfig.isStreamName("tally-prod_2"))
    for bad in ["", "a.b", "a b", "a*", "a>", String(repeating: "x", count: 65)] {
      #expect(!ChangeStreamConfig.isStreamName(bad), "\(bad)")
    }
    #expect(ChangeStreamConfig.isSubjectPrefix("tally.events"))
    #expect(ChangeStreamConfig.isSubjectPrefix("t"))
    for bad in ["", ".", "tally.", ".tally", "tally..events", "tally.*", "tally.>", "a b"] {
      #expect(!ChangeStreamConfig.isSubjectPrefix(bad), "\(bad)")
    }
  }

  @Test func pubAcksAreReadStrictly() {
    func parse(_ s: String) -> UInt64? {
      if case .success(let n) = PubAckReply.parse(Array(s.utf8)) { return n }
      return nil
    }
    #expect(parse(#"{"stream":"TALLY","seq":7}"#) == 7)
    #expect(parse(#"{"stream":"TALLY","seq":7,"duplicate":true}"#) == nil)
    #expect(
      parse(#"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 5"}}"#)
        == nil)
    #expect(parse("not json") == nil)
    #expect(parse(#"{"stream":"TALLY"}"#) == nil)
  }
}
