import TallyCrypto
import Testing

@testable import TallyCore

/// The golden vectors of docs/FORMAT.md: fixed events → exact bytes, leaf hash, chain hash.
/// The expected values come from tools/vectors/format_vectors.py, an independent Python
/// implementation written from the document; the Swift encoder must agree byte for byte.
struct GoldenVectorTests {
  static let t0: Int64 = 1_764_028_800_000_000_000  // 2025-11-25T00:00:00Z

  static func md(_ pairs: [(String, String)]) -> Metadata {
    try! Metadata.make(pairs).get()
  }

  static func day(_ s: String) -> Int32 { CivilTime.parseDate(s)! }

  static let events: [Event] = [
    Event(
      seq: 1, timestampNanos: t0,
      body: .partnerCreated(PartnerCreated(id: "platform", name: "Platform"))),
    Event(
      seq: 2, timestampNanos: t0 + 1,
      body: .accountOpened(
        AccountOpened(name: "cash", partner: "platform", currency: "EUR", normalSide: .debit))),
    Event(
      seq: 3, timestampNanos: t0 + 2,
      body: .accountOpened(
        AccountOpened(
          name: "alice", partner: "platform", currency: "EUR", normalSide: .credit,
          noOverdraft: true, limitMinor: 100_000, metadata: md([("kyc", "full")])))),
    Event(
      seq: 4, timestampNanos: t0 + 1000,
      body: .entryPosted(
        EntryPosted(
          id: "e-1",
          legs: [
            Leg(account: "cash", side: .debit, amountMinor: 1050),
            Leg(account: "alice", side: .credit, amountMinor: 1050),
          ], ref: "INV-7", valueDateDays: CivilTime.parseDate("2025-11-25"),
          metadata: md([("country", "DE"), ("channel", "card")])))),
    Event(
      seq: 5, timestampNanos: t0 + 2000,
      body: .holdPlaced(
        HoldPlaced(
          id: "h-1",
          legs: [
            Leg(account: "alice", side: .debit, amountMinor: 500),
            Leg(account: "cash", side: .credit, amountMinor: 500),
          ], deadlineNanos: t0 + 86_400 * 1_000_000_000))),
    Event(
      seq: 6, timestampNanos: t0 + 3000,
      body: .holdCaptured(HoldCaptured(holdId: "h-1", amountsMinor: [200, 200]))),
    Event(
      seq: 7, timestampNanos: t0 + 4000,
      body: .entryPosted(
        EntryPosted(
          id: "e-1.reversal",
          legs: [
            Leg(account: "cash", side: .credit, amountMinor: 1050),
            Leg(account: "alice", side: .debit, amountMinor: 1050),
          ], ref: "INV-7", valueDateDays: CivilTime.parseDate("2025-11-25"),
          reversalOf: "e-1"))),
    Event(
      seq: 8, timestampNanos: t0 + 5000,
      body: .assetDeclared(AssetDeclared(code: "USDC", scale: 6, name: "USD Coin"))),
    Event(seq: 9, timestampNanos: t0 + 6000, body: .accountClosed(name: "dormant")),
    Event(seq: 10, timestampNanos: t0 + 7000, body: .holdReleased(holdId: "h-2")),
    Event(seq: 11, timestampNanos: t0 + 8000, body: .holdExpired(holdId: "h-3")),
    Event(
      seq: 12, timestampNanos: t0 + 9000,
      body: .reconImported(
        ReconImported(
          account: "cash",
          header: ReconStatementHeader(
            format: .camt053, statementId: "STMT-2025-11-25", statementAccount: nil,
            currency: "EUR", opening: ReconBalance(amountMinor: -2500, dateDays: day("2025-11-24")),
            closing: ReconBalance(amountMinor: -550, dateDays: day("2025-11-25")),
            periodFromDays: day("2025-11-24"), periodToDays: day("2025-11-25"), linesRead: 3,
            duplicates: 1),
          part: 0, parts: 1,
          lines: [
            ReconLine(
              identity: "|BR-1|E2E-INV-7|2025-11-25|2025-11-25|credit|1050|EUR|1",
              source: "Stmt/Ntry[1]", amountMinor: 1050, direction: .credit,
              bookingDateDays: day("2025-11-25"), valueDateDays: day("2025-11-25"),
              bankReference: "BR-1", endToEndId: "E2E-INV-7", reference: "INV-7",
              remittance: "Invoice INV-7"),
            ReconLine(
              identity: "|||2025-11-25||credit|900|EUR|1", source: "Stmt/Ntry[3]",
              amountMinor: 900, direction: .credit, bookingDateDays: day("2025-11-25")),
          ]))),
    Event(
      seq: 13, timestampNanos: t0 + 10000,
      body: .reconMatched(
        ReconMatched(
          account: "cash",
          matches: [
            ReconMatch(rule: .reference, items: [1], entries: ["e-1"]),
            ReconMatch(
              rule: .reference, state: .discrepancy, items: [2], entries: ["e-1.reversal"],
              amountDifferenceMinor: -150, directionDiffers: true),
          ]))),
    Event(
      seq: 14, timestampNanos: t0 + 11000,
      body: .reconResolved(
        ReconResolved(item: 2, reason: "bank fee withheld", by: "ops", entry: "e-fee-1"))),
    Event(
      seq: 15, timestampNanos: t0 + 12000,
      body: .reconUnmatched(ReconUnmatched(item: 1, reason: "wrong entry", by: "ops"))),
    // Version 2: a camt.054 notification read as windows-1252, one line booked in USD.
    Event(
      seq: 16, timestampNanos: t0 + 13000,
      body: .reconImported(
        ReconImported(
          account: "cash",
          header: ReconStatementHeader(
            format: .camt054, statementId: "NTFCTN-7", statementAccount: nil, currency: "EUR",
            opening: nil, closing: nil, periodFromDays: day("2025-11-26"),
            periodToDays: day("2025-11-26"), linesRead: 2, duplicates: 0,
            textEncoding: .windows1252),
          part: 0, parts: 1,
          lines: [
            ReconLine(
              identity: "|BR-9||2025-11-26||credit|700|EUR|1", source: "Ntfctn/Ntry[1]",
              amountMinor: 700, direction: .credit, bookingDateDays: day("2025-11-26"),
              bankReference: "BR-9", remittance: "Café Müller"),
            ReconLine(
              identity: "|BR-10||2025-11-26||debit|1200|USD|1", source: "Ntfctn/Ntry[2]",
              amountMinor: 1200, currency: "USD", direction: .debit,
              bookingDateDays: day("2025-11-26"), bankReference: "BR-10"),
          ]))),
  ]

  /// (seq, event bytes, leaf hash, chain hash), hex.
  static let expected: [(UInt64, String, String, String)] = [
    (
      1, "01010000000000000001187b16d8ed8f00000008706c6174666f726d0008506c6174666f726d0000",
      "325cdbfc64e6c35c8927c113caffbaddda3f103f9bba7084f539ad67e6a7daac",
      "93fb76ffff83688cb9cb121080b4c864fc890de9ab167ccbf446e553eb6023a4"
    ),
    (
      2, "01030000000000000002187b16d8ed8f00010004636173680008706c6174666f726d000345555200000000",
      "ec6831039c55feeb87e555dfaa06dccd68edeee98f07176bbc152c802cd48294",
      "e57d185f636cb579c9ddcb27caf7b549f9f2fd4143265b3d1acaebec0974b6dc"
    ),
    (
      3,
      "01030000000000000003187b16d8ed8f00020005616c6963650008706c6174666f726d00034555520103000000000000000000000000000186a0000100036b7963000466756c6c",
      "b9ab7a8a73330fe48bafd476d7bb652ee206cbdcc7255401cbcc992c53aab65b",
      "53a680e91272d3226327f4bb2658778d84e387b125b78ac7ff00837c2b45d7db"
    ),
    (
      4,
      "01050000000000000004187b16d8ed8f03e80003652d310002000463617368000000000000000000000000000000041a0005616c696365010000000000000000000000000000041a010005494e562d370100004fc100000200076368616e6e656c0004636172640007636f756e74727900024445",
      "7665e93d5ea1d4cdc56079284ef8386a22e337addba243998a3197a915c109c0",
      "d57dbc6a87537b308d028eba56d6142d5770995b00374c0d16157ec6f4a11895"
    ),
    (
      5,
      "01060000000000000005187b16d8ed8f07d00003682d3100020005616c69636500000000000000000000000000000001f400046361736801000000000000000000000000000001f40001187b656d7ede00000000",
      "824936b5e02ea92588ba74c4e7fdd4306c2dc6094c318a0c031d65221813b713",
      "4aaf827abea3f7b0331e5b7637face942b9b9bfd043f685e14be264f68fbb3a6"
    ),
    (
      6,
      "01070000000000000006187b16d8ed8f0bb80003682d310002000000000000000000000000000000c8000000000000000000000000000000c8",
      "033310561e30ea1aef0e021c15b7cc83a78127b8a784cee67608a32a2e90968a",
      "d3ff55caf7077d3a6487f1ea565fd898d5ea5673d55bccd74a08ab378747e573"
    ),
    (
      7,
      "01050000000000000007187b16d8ed8f0fa0000c652d312e726576657273616c0002000463617368010000000000000000000000000000041a0005616c696365000000000000000000000000000000041a010005494e562d370100004fc1010003652d310000",
      "0d3189344190863ec0aa29a1259108a9e3966ffc5688b6e3864569c49c51297a",
      "82111bd203a35e68ba0d3e6e2144839831d6e63e89e9f330f20f6498592f912c"
    ),
    (
      8, "01020000000000000008187b16d8ed8f138800045553444306000855534420436f696e",
      "9dffaad5260ebde29f6d83b9777ddb6c19a2d4481c25c6efbde837a4168ceda6",
      "c3797e6e61c153e24e474e54323a7e1e3b8fe28fe5aec38b5040a9caa9f905c0"
    ),
    (
      9, "01040000000000000009187b16d8ed8f17700007646f726d616e74",
      "b5dae2e6afa2831f4d3cc3a755ac042979481bc61b7bcbea9a85c1b6f5a12708",
      "4d3eca0f7e85e90f3b476fc3223999b7dfee229b02f447408132f702208391d9"
    ),
    (
      10, "0108000000000000000a187b16d8ed8f1b580003682d32",
      "58606634132fb20081a94e71e550c2531fa560c1502c0baf600f72ac0d7af6c5",
      "14c522ce7d6c9199c45ba189e78a5fd9374abc64b3484cd0c7bd62c3e415fef7"
    ),
    (
      11, "0109000000000000000b187b16d8ed8f1f400003682d33",
      "98ce24aee49c72ecbc8021e8efd1765f59538b898e9eb5d86bc02f48f6924641",
      "f04f080b4a78672ddd9fbda139434689edc325fe93c1f5c75b15a012df58514a"
    ),
    (
      12,
      "010a000000000000000c187b16d8ed8f23280004636173680101000f53544d542d323032352d31312d323500000345555201fffffffffffffffffffffffffffff63c00004fc001fffffffffffffffffffffffffffffdda00004fc100004fc000004fc100000003000000010000000000000001000200377c42522d317c4532452d494e562d377c323032352d31312d32357c323032352d31312d32357c6372656469747c313035307c4555527c31000c53746d742f4e7472795b315d0000000000000000000000000000041a0100004fc10100004fc101000442522d310100094532452d494e562d37010005494e562d3701000d496e766f69636520494e562d37001f7c7c7c323032352d31312d32357c7c6372656469747c3930307c4555527c31000c53746d742f4e7472795b335d000000000000000000000000000003840100004fc10000000000",
      "72721b0db918ad2126fa50a84d12d796f66b29712527707add216c552e0f196e",
      "087499ba9ff0ec78370750990435b354fbeb8662f2b3d926ae196bc18730e154"
    ),
    (
      13,
      "010b000000000000000d187b16d8ed8f2710000463617368000201010001000000000000000100010003652d3100000000000000000000000000000000000102000100000000000000020001000c652d312e726576657273616cffffffffffffffffffffffffffffff6a02",
      "99e0c9241ddeaeda95da9d34c2e58a0df62ffb793d10c81512fa4cd81d63708d",
      "813c25629cba3ede9c5519d100f305b020d8ce0d7831682e469deb52e8fa59dd"
    ),
    (
      14,
      "010c000000000000000e187b16d8ed8f2af80000000000000002001162616e6b20666565207769746868656c6400036f7073010007652d6665652d31",
      "80bda3f67ed659da0061830dd9844a277e30d2c0bcee65c16387459859391562",
      "176cb21df716056517bad0cccceb29fc58d8a76a2a75d7bac9588f279652c031"
    ),
    (
      15,
      "010d000000000000000f187b16d8ed8f2ee0000000000000000101000b77726f6e6720656e74727900036f7073",
      "bced89a4f8a497b6a300d155d6575970163d2727caefc7a77534de9ea82b6371",
      "d27407f7aa5f01a6633dad0cae531241b8a69e07f667d1287dd77df583bb043e"
    ),
    (
      16,
      "020a0000000000000010187b16d8ed8f32c8000463617368030100084e544643544e2d37000003455552000000004fc200004fc20000000200000000020000000000000001000200237c42522d397c7c323032352d31312d32367c7c6372656469747c3730307c4555527c31000e4e746663746e2f4e7472795b315d000000000000000000000000000002bc0100004fc20001000442522d39000001000d436166c3a9204dc3bc6c6c65720000247c42522d31307c7c323032352d31312d32367c7c64656269747c313230307c5553447c31000e4e746663746e2f4e7472795b325d000000000000000000000000000004b00000004fc20001000542522d3130000000010003555344",
      "f3dcf930cb33ca13cb83daf422cb38962b433acf32027ce3cb6da2bbe738afcc",
      "1aa0017ed57ee962da3e1ad0ef0ca2ab5dd4cad0e7751500e77e0fb3c6377cee"
    ),
  ]

  @Test func encodingMatchesTheGoldenBytes() {
    #expect(Self.events.count == Self.expected.count)
    for (event, want) in zip(Self.events, Self.expected) {
      #expect(event.seq == want.0)
      #expect(EventCodec.encode(event).hex == want.1, "seq \(event.seq)")
    }
  }

  @Test func goldenBytesDecodeToTheSameEvents() throws {
    for (event, want) in zip(Self.events, Self.expected) {
      let bytes = try #require([UInt8](hex: want.1))
      #expect(try EventCodec.decode(bytes) == event, "seq \(event.seq)")
    }
  }

  @Test func decodingTheEncodingGivesTheSameEvents() throws {
    for event in Self.events {
      #expect(try EventCodec.decode(EventCodec.encode(event)) == event, "seq \(event.seq)")
    }
  }

  @Test func leafAndChainHashesMatchTheGoldenVectors() {
    let hasher = SHA256Hasher()
    var chain = Hash32.zero
    for (event, want) in zip(Self.events, Self.expected) {
      let leaf = hasher.leaf(EventCodec.encode(event))
      chain = hasher.chain(chain, leaf)
      #expect(leaf.hex == want.2, "leaf of seq \(event.seq)")
      #expect(chain.hex == want.3, "chain of seq \(event.seq)")
    }
  }

  @Test func chainStartsFromThirtyTwoZeroBytes() {
    #expect(Hash32.zero.bytes == [UInt8](repeating: 0, count: 32))
  }

  @Test func sha256OfEmptyInputIsTheKnownValue() {
    // FIPS 180-2 test vector: SHA-256("").
    #expect(
      SHA256Hasher().hash([]).hex
        == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
  }
}
