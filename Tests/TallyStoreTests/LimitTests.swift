import TallyCore
import Testing

@testable import TallyStore

/// Every limit at its maximum (accepted, and stored intact) and one past it (refused).
@Suite("Limits at max and max + 1")
struct LimitTests {
  @Test("128 legs are applied; 129 legs are TOO_MANY_LEGS")
  func legCount() throws {
    try withLedger { ledger in
      let accounts = names(129, bytes: 10, prefix: "leg")
      try applyAll(ledger, accounts.map { open($0) } + [open("sink", normal: .credit)])
      let legs128 = accounts.prefix(127).map { debit($0, 1) } + [credit("sink", 127)]
      #expect(legs128.count == Limits.legsPerEntryMax)
      let seq = try expectApplied(ledger, post("wide", legs128))
      let stored = try #require(try ledger.log(fromSeq: seq, limit: 1).first)
      guard case .entryPosted(let e) = stored.event.body else {
        Issue.record("stored \(stored.event.body.type)")
        return
      }
      #expect(e.legs.count == 128)
      #expect(try ledger.balances("sink").postedCredits == 127)
      let legs129 = accounts.prefix(128).map { debit($0, 1) } + [credit("sink", 128)]
      try expectRejected(ledger, post("wider", legs129), code: .tooManyLegs)
      try expectRejected(ledger, hold("wider-h", legs129), code: .tooManyLegs)
    }
  }

  @Test("Account names of 128 bytes are accepted; 129 bytes are INVALID_ID")
  func accountNameLength() throws {
    try withLedger { ledger in
      let name128 = String(repeating: "n", count: 128)
      try expectApplied(ledger, open(name128))
      try expectApplied(ledger, open("other", normal: .credit))
      try expectApplied(ledger, post("e", [debit(name128, 5), credit("other", 5)]))
      #expect(try ledger.account(name128)?.balances.postedDebits == 5)
      try expectRejected(ledger, open(name128 + "n"), code: .invalidId)
      try expectRejected(
        ledger, post("e2", [debit(name128 + "n", 5), credit("other", 5)]), code: .invalidId)
      try expectRejected(ledger, close(name128 + "n"), code: .invalidId)
    }
  }

  @Test("Entry, hold and partner ids of 64 bytes are accepted; 65 bytes are INVALID_ID")
  func idLength() throws {
    try withLedger { ledger in
      let id64 = String(repeating: "i", count: 64)
      let id65 = id64 + "i"
      try applyAll(ledger, [open("a"), open("b", normal: .credit)])
      try expectApplied(ledger, post(id64, [debit("a", 1), credit("b", 1)]))
      try expectRejected(ledger, post(id65, [debit("a", 1), credit("b", 1)]), code: .invalidId)
      let hold64 = String(repeating: "h", count: 64)
      try expectApplied(ledger, hold(hold64, [debit("a", 1), credit("b", 1)]))
      try expectRejected(
        ledger, hold(hold64 + "h", [debit("a", 1), credit("b", 1)]), code: .invalidId)
      try expectApplied(ledger, capture(hold64))
      try expectApplied(ledger, partner(String(repeating: "p", count: 64)))
      try expectRejected(ledger, partner(String(repeating: "p", count: 65)), code: .invalidId)
      let rev64 = String(repeating: "r", count: 64)
      try expectApplied(ledger, reverse(rev64, of: id64))
      try expectRejected(ledger, reverse(rev64 + "r", of: id64), code: .invalidId)
      #expect(try ledger.idRecord(id64)?.reversedBySeq != 0)
    }
  }

  @Test("Metadata at 32 pairs, 64-byte keys and 512-byte values is stored intact")
  func metadataAtTheLimits() throws {
    try withLedger { ledger in
      var pairs = (0..<31).map { (String(repeating: "k", count: 40) + "\($0)", "v\($0)") }
      pairs.append((String(repeating: "K", count: 64), String(repeating: "é", count: 256)))
      let m = try Metadata.make(pairs).get()
      #expect(m.pairs.count == Limits.metadataPairsMax)
      try applyAll(ledger, [open("a", metadata: m), open("b", normal: .credit)])
      let seq = try expectApplied(ledger, post("e", [debit("a", 1), credit("b", 1)], metadata: m))
      let stored = try #require(try ledger.log(fromSeq: seq, limit: 1).first?.event.body)
      guard case .entryPosted(let e) = stored else {
        Issue.record("stored \(stored.type)")
        return
      }
      #expect(e.metadata == m)
      #expect(e.metadata[String(repeating: "K", count: 64)]?.utf8.count == 512)
      #expect(try ledger.account("a")?.record.metadata == m)
      #expect(try ledger.verify().ok)
    }
  }

  /// Metadata is validated when the command is built (docs/RULES.md, validation order 1):
  /// an over-limit `Metadata` value cannot be constructed, so no command carrying it can
  /// reach `apply`.
  @Test("33 pairs, 65-byte keys and 513-byte values are INVALID_METADATA when building")
  func metadataPastTheLimits() {
    func code(_ pairs: [(String, String)]) -> RejectionCode? {
      if case .failure(let r) = Metadata.make(pairs) { return r.code }
      return nil
    }
    #expect(code((0..<33).map { ("k\($0)", "v") }) == .invalidMetadata)
    #expect(code([(String(repeating: "k", count: 65), "v")]) == .invalidMetadata)
    #expect(code([("k", String(repeating: "v", count: 513))]) == .invalidMetadata)
    #expect(code((0..<32).map { ("k\($0)", "v") }) == nil)
    #expect(code([(String(repeating: "k", count: 64), String(repeating: "v", count: 512))]) == nil)
  }

  @Test("Asset scale 18 is declared and usable; scale 19 is INVALID_FIELD")
  func assetScale() throws {
    try withLedger { ledger in
      try expectApplied(ledger, asset("WEI18", scale: 18))
      try applyAll(ledger, [open("w1", "WEI18"), open("w2", "WEI18", normal: .credit)])
      #expect(try ledger.account("w1")?.record.scale == 18)
      let oneMajor: Int128 = 1_000_000_000_000_000_000
      try expectApplied(ledger, post("e", [debit("w1", oneMajor), credit("w2", oneMajor)]))
      #expect(try ledger.balances("w1").balance(normal: .debit) == oneMajor)
      try expectRejected(ledger, asset("WEI19", scale: 19), code: .invalidField)
      #expect(try ledger.assets().map(\.code) == ["WEI18"])
    }
  }

  @Test("Asset codes of 16 bytes are declared; 17 bytes are INVALID_FIELD and change nothing")
  func assetCodeLength() throws {
    try withLedger { ledger in
      let code = String(repeating: "A", count: Limits.assetCodeBytesMax)
      try expectApplied(ledger, asset(code, scale: 2))
      let head = ledger.head
      try expectRejected(ledger, asset(code + "B", scale: 2), code: .invalidField)
      #expect(ledger.head == head)
      #expect(try ledger.assets().map(\.code) == [code])
    }
  }

  @Test("Ref of 128 bytes is accepted; 129 bytes is INVALID_FIELD")
  func refLength() throws {
    try withLedger { ledger in
      try applyAll(ledger, [open("a"), open("b", normal: .credit)])
      let ref = String(repeating: "r", count: 128)
      try expectApplied(ledger, post("e", [debit("a", 1), credit("b", 1)], ref: ref))
      try expectRejected(
        ledger, post("e2", [debit("a", 1), credit("b", 1)], ref: ref + "r"), code: .invalidField)
    }
  }

  @Test("Display names of 256 bytes are accepted; 257 bytes are INVALID_FIELD")
  func displayNameLength() throws {
    try withLedger { ledger in
      let name = String(repeating: "€", count: 85) + "x"  // 256 bytes
      #expect(name.utf8.count == Limits.displayNameBytesMax)
      try expectApplied(ledger, partner("p1", name: name))
      try expectRejected(ledger, partner("p2", name: name + "x"), code: .invalidField)
      try expectApplied(ledger, asset("A16_ABCDEFGHIJKL", scale: 2, name: name))
      try expectRejected(ledger, asset("A17_ABCDEFGHIJKLM", scale: 2), code: .invalidField)
    }
  }
}
