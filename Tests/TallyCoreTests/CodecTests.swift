import PropertyBased
import TallyCrypto
import TallyTestSupport
import Testing

@testable import TallyCore

// MARK: - Random events

private let textAlphabet: [String] = [
  "a", "b", "z", "A", "Q", "0", "9", "-", ":", ".", "_", " ", "é", "€", "𝄞", "\u{0}", "\u{301}",
  "日", "\n", "\"",
]
private let idAlphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-")
  .map(String.init)

extension Xoshiro {
  mutating func text(_ length: ClosedRange<Int>) -> String {
    (0..<int(length)).map { _ in pick(textAlphabet) }.joined()
  }

  mutating func id(_ length: ClosedRange<Int> = 1...20) -> String {
    (0..<int(length)).map { _ in pick(idAlphabet) }.joined()
  }

  mutating func amount() -> Int128 {
    switch int(0...3) {
    case 0: draw(Gen.int128())
    case 1: Int128(int(-1000...1000))
    case 2: pick([Int128.max, Int128.min, 0, -1, 1])
    default: draw(Gen.int128(in: 1...Int128.max))
    }
  }

  mutating func metadata() -> Metadata {
    var pairs: [(String, String)] = []
    var keys = Set<[UInt8]>()
    for _ in 0..<int(0...5) {
      let key = chance(0.7) ? id(1...12) : text(1...6)
      guard keys.insert(Array(key.utf8)).inserted else { continue }
      pairs.append((key, text(0...20)))
    }
    switch Metadata.make(pairs) {
    case .success(let m): return m
    // Keys equal under Unicode canonical equivalence are refused: use ASCII keys only.
    case .failure: return (try? Metadata.make(pairs.enumerated().map { ("k\($0)", $1.1) }).get())!
    }
  }

  mutating func legs() -> [Leg] {
    (0..<int(0...6)).map { _ in
      Leg(account: id(), side: chance(0.5) ? .debit : .credit, amountMinor: amount())
    }
  }

  mutating func optionalText() -> String? { chance(0.5) ? text(0...10) : nil }

  mutating func eventBody(_ type: EventType) -> EventBody {
    switch type {
    case .partnerCreated:
      .partnerCreated(PartnerCreated(id: id(), name: text(0...12), metadata: metadata()))
    case .assetDeclared:
      .assetDeclared(
        AssetDeclared(code: id(1...16), scale: draw(Gen.uint8()), name: text(0...12)))
    case .accountOpened:
      .accountOpened(
        AccountOpened(
          name: id(), partner: id(), currency: id(1...5),
          normalSide: chance(0.5) ? .debit : .credit,
          noOverdraft: chance(0.5), limitMinor: chance(0.5) ? amount() : nil,
          metadata: metadata()))
    case .accountClosed: .accountClosed(name: id())
    case .entryPosted:
      .entryPosted(
        EntryPosted(
          id: id(), legs: legs(), ref: optionalText(),
          valueDateDays: chance(0.5) ? draw(Gen.int32()) : nil,
          reversalOf: chance(0.3) ? id() : nil, metadata: metadata()))
    case .holdPlaced:
      .holdPlaced(
        HoldPlaced(
          id: id(), legs: legs(), ref: optionalText(),
          deadlineNanos: chance(0.5) ? draw(Gen.int64()) : nil, metadata: metadata()))
    case .holdCaptured:
      .holdCaptured(
        HoldCaptured(holdId: id(), amountsMinor: (0..<int(0...6)).map { _ in amount() }))
    case .holdReleased: .holdReleased(holdId: id())
    case .holdExpired: .holdExpired(holdId: id())
    case .reconImported: .reconImported(reconImported())
    case .reconMatched:
      .reconMatched(
        ReconMatched(
          account: id(),
          matches: (0..<int(0...3)).map { _ in
            ReconMatch(
              rule: pick(ReconRule.allCases), state: chance(0.5) ? .matched : .discrepancy,
              items: (0..<int(0...3)).map { _ in draw(Gen.uint64()) },
              entries: (0..<int(0...3)).map { _ in id() }, amountDifferenceMinor: amount(),
              currencyDiffers: chance(0.5), directionDiffers: chance(0.5))
          }))
    case .reconResolved:
      .reconResolved(
        ReconResolved(
          item: draw(Gen.uint64()), reason: text(0...12), by: text(0...8),
          entry: chance(0.5) ? id() : nil))
    case .reconUnmatched:
      .reconUnmatched(
        ReconUnmatched(item: draw(Gen.uint64()), reason: optionalText(), by: text(0...8)))
    }
  }

  /// Version 1 (no text encoding: no camt054, no line currency) or version 2.
  mutating func reconImported() -> ReconImported {
    let v2 = chance(0.5)
    let currency = id(1...5)
    return ReconImported(
      account: id(),
      header: ReconStatementHeader(
        format: pick(v2 ? ReconFormat.allCases : [.csv, .camt053, .mt940]),
        statementId: optionalText(), statementAccount: optionalText(), currency: currency,
        opening: chance(0.5) ? reconBalance() : nil,
        closing: chance(0.5) ? reconBalance() : nil, periodFromDays: draw(Gen.int32()),
        periodToDays: draw(Gen.int32()), linesRead: draw(Gen.uint32()),
        duplicates: draw(Gen.uint32()), textEncoding: v2 ? pick(ReconTextEncoding.allCases) : nil),
      part: 0, parts: UInt32(int(1...4)),
      lines: (0..<int(0...4)).map { _ in
        var l = reconLine()
        if v2 && chance(0.4) { l.currency = currency + "X" }
        return l
      })
  }

  mutating func reconBalance() -> ReconBalance {
    ReconBalance(amountMinor: amount(), dateDays: draw(Gen.int32()))
  }

  mutating func reconLine() -> ReconLine {
    ReconLine(
      identity: text(0...30), source: text(0...8), amountMinor: amount(),
      direction: chance(0.5) ? .credit : .debit, bookingDateDays: draw(Gen.int32()),
      valueDateDays: chance(0.5) ? draw(Gen.int32()) : nil, bankReference: optionalText(),
      endToEndId: optionalText(), reference: optionalText(), remittance: optionalText())
  }

  mutating func event(_ type: EventType? = nil) -> Event {
    Event(
      seq: draw(Gen.uint64()), timestampNanos: draw(Gen.int64()),
      body: eventBody(type ?? pick(EventType.allCases)))
  }
}

private func decodeError(_ bytes: [UInt8]) -> DecodeError? {
  do throws(DecodeError) {
    _ = try EventCodec.decode(bytes)
    return nil
  } catch {
    return error
  }
}

private func header(_ seq: UInt64, _ ts: Int64, type: EventType) -> ByteWriter {
  var w = ByteWriter()
  w.u8(EventCodec.version)
  w.u8(type.rawValue)
  w.u64(seq)
  w.i64(ts)
  return w
}

/// One small, valid event of each type, for the strictness tests.
private let samples: [Event] = {
  let md = (try? Metadata.make([("k", "v"), ("a", "")]).get())!
  let legs = [
    Leg(account: "a", side: .debit, amountMinor: 1050),
    Leg(account: "b", side: .credit, amountMinor: 1050),
  ]
  let bodies: [EventBody] = [
    .partnerCreated(PartnerCreated(id: "p", name: "P", metadata: md)),
    .assetDeclared(AssetDeclared(code: "BTC", scale: 8, name: "Bitcoin")),
    .accountOpened(
      AccountOpened(
        name: "a", partner: "p", currency: "EUR", normalSide: .credit, noOverdraft: true,
        limitMinor: 500, metadata: md)),
    .accountClosed(name: "a"),
    .entryPosted(
      EntryPosted(
        id: "e", legs: legs, ref: "R", valueDateDays: 19782, reversalOf: "o", metadata: md)),
    .holdPlaced(HoldPlaced(id: "h", legs: legs, ref: "R", deadlineNanos: 99, metadata: md)),
    .holdCaptured(HoldCaptured(holdId: "h", amountsMinor: [10, 10])),
    .holdReleased(holdId: "h"),
    .holdExpired(holdId: "h"),
  ]
  return bodies.enumerated().map { Event(seq: UInt64($0 + 1), timestampNanos: 1000, body: $1) }
}()

// MARK: - Tests

@Suite("EventCodec")
struct CodecTests {
  @Test("Golden vector: an entry encodes byte for byte, with its leaf and chain hashes")
  func goldenEntry() {
    let event = Event(
      seq: 7, timestampNanos: 1_700_000_000_000_000_000,
      body: .entryPosted(
        EntryPosted(
          id: "e-1",
          legs: [
            Leg(account: "a", side: .debit, amountMinor: 1050),
            Leg(account: "b", side: .credit, amountMinor: 1050),
          ])))
    let bytes = EventCodec.encode(event)
    #expect(
      bytes.hex
        == "0105000000000000000717979cfe362a00000003652d3100020001610000000000000000000000"
        + "00000000041a000162010000000000000000000000000000041a0000000000")
    // SHA-256(0x00 || bytes) and SHA-256(32 zero bytes || leaf), computed with Python hashlib.
    let hasher = SHA256Hasher()
    let leaf = hasher.leaf(bytes)
    #expect(leaf.hex == "72bc19bffa90547604b4b6b8f6a4896db89988db8ba2b28b3c0cb75d427e17b3")
    #expect(
      hasher.chain(.zero, leaf).hex
        == "1e02b4a91649cc7e530ade626909fab0420657e97b031252ec80dd92580dac5e")
  }

  @Test("Golden vector: account_closed is version, type, seq, timestamp, name")
  func goldenClosed() {
    let bytes = EventCodec.encode(
      Event(seq: 1, timestampNanos: -2, body: .accountClosed(name: "ab")))
    #expect(
      bytes == [1, 4, 0, 0, 0, 0, 0, 0, 0, 1, 255, 255, 255, 255, 255, 255, 255, 254, 0, 2, 97, 98])
  }

  @Test("Every event type round-trips: decode(encode(e)) == e and re-encoding is identical")
  func roundTripEveryType() async {
    await seededCheck("event round trip", seed: 0xC0DE_C000_0000_0005, count: 3000) { rng in
      for type in EventType.allCases {
        let event = rng.event(type)
        let bytes = EventCodec.encode(event)
        let decoded: Event
        do {
          decoded = try EventCodec.decode(bytes)
        } catch {
          Issue.record("\(type) failed to decode: \(error)")
          continue
        }
        #expect(decoded == event)
        #expect(decoded.body.type == type)
        #expect(EventCodec.encode(decoded) == bytes)
        let h = bytes.withUnsafeBytes { try? EventCodec.header($0) }
        #expect(h?.seq == event.seq && h?.timestampNanos == event.timestampNanos)
      }
    }
  }

  @Test("entryPosting reads of an entry what decode reads: id, ref, value date, the leg")
  func entryPostingAgreesWithDecode() async {
    await seededCheck("entry posting", seed: 0xC0DE_C000_0000_0007, count: 3000) { rng in
      let event = rng.event(.entryPosted)
      guard case .entryPosted(let e) = event.body else { return }
      let bytes = EventCodec.encode(event)
      for leg in e.legs + [Leg(account: "no-such-account", side: .debit, amountMinor: 1)] {
        let p = try bytes.withUnsafeBytes {
          try EventCodec.entryPosting($0, account: Array(leg.account.utf8))
        }
        guard let first = e.legs.first(where: { $0.account == leg.account }) else {
          #expect(p == nil)
          continue
        }
        #expect(
          p
            == EntryPosting(
              seq: event.seq, timestampNanos: event.timestampNanos, id: e.id, ref: e.ref,
              valueDateDays: e.valueDateDays, side: first.side, amountMinor: first.amountMinor))
      }
      // Truncated before the fields it reads: refused, never a partial posting.
      guard let firstLeg = e.legs.first else { return }
      let account = Array(firstLeg.account.utf8)
      for n in [0, 1, 9, 17, 19] where n < bytes.count {
        #expect(
          (try? Array(bytes[0..<n]).withUnsafeBytes {
            try EventCodec.entryPosting($0, account: account)
          }) == nil)
      }
      // Another event type is refused.
      let other = EventCodec.encode(rng.event(.accountClosed))
      #expect(
        (try? other.withUnsafeBytes { try EventCodec.entryPosting($0, account: account) })
          == nil)
    }
  }

  @Test("Every proper prefix of a valid event is refused as truncated")
  func truncatedIsRefused() {
    for event in samples {
      let bytes = EventCodec.encode(event)
      for n in 0..<bytes.count {
        let e = decodeError(Array(bytes[0..<n]))
        #expect(e != nil, "\(event.body.type) prefix \(n)/\(bytes.count) decoded")
        #expect(e.map { $0.reason.hasPrefix("truncated") } ?? false, "\(String(describing: e))")
      }
    }
  }

  @Test("Trailing bytes after a valid event are refused")
  func trailingIsRefused() {
    for event in samples {
      let bytes = EventCodec.encode(event)
      for extra in [[0], [1], [0, 0, 0, 0]] as [[UInt8]] {
        let e = decodeError(bytes + extra)
        #expect(e?.offset == bytes.count)
        #expect(e?.reason.contains("trailing") == true)
      }
    }
  }

  @Test("Unknown format versions are refused at byte 0", arguments: [0, 2, 255] as [UInt8])
  func unknownVersion(version: UInt8) {
    var bytes = EventCodec.encode(samples[3])
    bytes[0] = version
    #expect(decodeError(bytes)?.offset == 0)
  }

  @Test("Unknown event types are refused at byte 1", arguments: [0, 14, 255] as [UInt8])
  func unknownType(type: UInt8) {
    var bytes = EventCodec.encode(samples[3])
    bytes[1] = type
    #expect(decodeError(bytes)?.offset == 1)
  }

  @Test("A side byte other than 0 or 1 is refused, in an account and in a leg")
  func badSideByte() {
    var w = header(1, 1, type: .accountOpened)
    w.str("a")
    w.str("p")
    w.str("EUR")
    let sideOffset = w.bytes.count
    w.u8(2)
    w.u8(0)
    w.u16(0)
    let e = decodeError(w.bytes)
    #expect(e?.offset == sideOffset)
    #expect(e?.reason.contains("side") == true)

    var l = header(1, 1, type: .entryPosted)
    l.str("e")
    l.u16(1)
    l.str("a")
    let legSide = l.bytes.count
    l.u8(7)
    l.i128(1)
    l.u8(0)
    l.u8(0)
    l.u8(0)
    l.u16(0)
    #expect(decodeError(l.bytes)?.offset == legSide)
  }

  @Test("Account flags beyond no_overdraft and limit are refused")
  func unknownAccountFlags() {
    var w = header(1, 1, type: .accountOpened)
    w.str("a")
    w.str("p")
    w.str("EUR")
    w.u8(0)
    w.u8(4)
    w.u16(0)
    #expect(decodeError(w.bytes)?.reason.contains("flags") == true)
  }

  @Test("Presence bytes other than 0 or 1 are refused (ref, value date, reversal, deadline)")
  func badPresenceBytes() {
    func entry(ref: UInt8, date: UInt8, rev: UInt8) -> [UInt8] {
      var w = header(1, 1, type: .entryPosted)
      w.str("e")
      w.u16(0)
      w.u8(ref)
      if ref == 1 { w.str("r") }
      w.u8(date)
      if date == 1 { w.i32(5) }
      w.u8(rev)
      if rev == 1 { w.str("o") }
      w.u16(0)
      return w.bytes
    }
    #expect(decodeError(entry(ref: 1, date: 1, rev: 1)) == nil)
    #expect(decodeError(entry(ref: 2, date: 0, rev: 0)) != nil)
    #expect(decodeError(entry(ref: 0, date: 2, rev: 0)) != nil)
    #expect(decodeError(entry(ref: 0, date: 0, rev: 255)) != nil)
    var h = header(1, 1, type: .holdPlaced)
    h.str("h")
    h.u16(0)
    h.u8(0)
    h.u8(3)
    h.u16(0)
    #expect(decodeError(h.bytes)?.reason.contains("deadline") == true)
  }

  @Test(
    "Metadata keys out of byte order or repeated are refused",
    arguments: [["b", "a"], ["a", "a"], ["a", "c", "b"], ["é", "z"], ["", ""]])
  func unsortedMetadata(keys: [String]) {
    var w = header(1, 1, type: .partnerCreated)
    w.str("p")
    w.str("P")
    w.u16(UInt16(keys.count))
    for k in keys {
      w.str(k)
      w.str("v")
    }
    let e = decodeError(w.bytes)
    #expect(e?.reason.contains("sorted") == true, "\(keys): \(String(describing: e))")
  }

  @Test("Metadata keys in UTF-8 byte order decode")
  func sortedMetadataDecodes() throws {
    var w = header(1, 1, type: .partnerCreated)
    w.str("p")
    w.str("P")
    let keys = ["", "B", "a", "z", "é"]
    w.u16(UInt16(keys.count))
    for k in keys {
      w.str(k)
      w.str("v")
    }
    let event = try EventCodec.decode(w.bytes)
    guard case .partnerCreated(let p) = event.body else {
      Issue.record("decoded \(event.body.type)")
      return
    }
    #expect(p.metadata.pairs.map(\.key) == keys)
  }

  @Test("Invalid UTF-8 in a string field is refused")
  func invalidUTF8() {
    for bad in [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xc0, 0xaf]] as [[UInt8]] {
      var w = header(1, 1, type: .accountClosed)
      w.u16(UInt16(bad.count))
      w.raw(bad)
      let e = decodeError(w.bytes)
      #expect(e?.reason.contains("UTF-8") == true, "\(bad)")
      #expect(e?.offset == 20)
    }
  }

  @Test("50,000 random and mutated inputs never crash decode; what decodes is canonical")
  func fuzz() async {
    let valid = samples.map { EventCodec.encode($0) }
    await seededCheck("decode fuzz", seed: 0xF022_0000_0000_0006, count: 50) { rng in
      var decoded = 0
      for _ in 0..<1000 {
        var bytes: [UInt8]
        switch rng.int(0...3) {
        case 0:
          bytes = (0..<rng.int(0...120)).map { _ in rng.draw(Gen.uint8()) }
        case 1:
          // A valid header, then noise: reaches the per-type decoders.
          bytes =
            [1, UInt8(rng.int(1...9))]
            + (0..<rng.int(16...100)).map { _ in
              UInt8(rng.int(0...3))
            }
        case 2:
          bytes = rng.pick(valid)
          for _ in 0..<rng.int(1...3) {
            bytes[rng.int(0...(bytes.count - 1))] = rng.draw(Gen.uint8())
          }
        default:
          bytes = EventCodec.encode(rng.event())
          let cut = rng.int(0...bytes.count)
          bytes = Array(bytes[0..<cut]) + (rng.chance(0.5) ? [rng.draw(Gen.uint8())] : [])
        }
        do throws(DecodeError) {
          let event = try EventCodec.decode(bytes)
          decoded += 1
          #expect(EventCodec.encode(event) == bytes, "non-canonical bytes decoded: \(bytes.hex)")
        } catch {
          #expect(error.offset >= 0 && error.offset <= bytes.count)
        }
      }
      // Some inputs must decode, or the canonical check above proves nothing.
      #expect(decoded > 0)
    }
  }
}
