import Glibc
import TallyCore
import TallyProtocol
import TallyTestSupport
import Testing

func parse(_ line: String, batchEntriesMax: Int = 10_000) -> Result<Request, WireError> {
  RequestParser.parse(Array(line.utf8), batchEntriesMax: batchEntriesMax)
}

let legsJSON =
  #"[{"account":"cash","side":"debit","amount":"100"},"#
  + #"{"account":"sales","side":"credit","amount":"100"}]"#
let entryJSON = #"{"id":"e1","legs":\#(legsJSON)}"#

/// Lines the parser accepts, with the request each must become.
let acceptedLines: [(String, Request)] = [
  ("PING", .ping),
  ("PING\r", .ping),
  ("PING {}", .ping),
  ("QUIT", .quit),
  (#"AUTH {"key":"k1","mac":"ab"}"#, .auth(key: "k1", mac: "ab")),
  (#"KEY.CREATE {"role":"ops"}"#, .keyCreate(role: "ops", partner: nil, grants: [])),
  (
    #"KEY.CREATE {"role":"service","partner":"p1","grants":["fees"]}"#,
    .keyCreate(role: "service", partner: "p1", grants: ["fees"])
  ),
  (#"KEY.REVOKE {"key":"k1"}"#, .keyRevoke(key: "k1")),
  ("KEY.LIST", .keyList),
  (
    #"PARTNER.CREATE {"id":"p1","name":"One","metadata":{"k":"v"}}"#,
    .partnerCreate(
      PartnerCreated(id: "p1", name: "One", metadata: try! Metadata.make([("k", "v")]).get()))
  ),
  (#"PARTNER.GET {"id":"p1"}"#, .partnerGet(id: "p1")),
  ("PARTNER.LIST", .partnerList(after: nil, limit: Limits.pageLimitDefault)),
  (#"PARTNER.LIST {"after":"p1","limit":1}"#, .partnerList(after: "p1", limit: 1)),
  (
    #"ACCOUNT.OPEN {"account":"cash","currency":"EUR"}"#,
    .accountOpen(
      AccountOpened(
        name: "cash", partner: Machine.platformPartner, currency: "EUR", normalSide: .debit),
      partnerGiven: false)
  ),
  // Naming the platform is not the same as naming no partner (a service key's default).
  (
    #"ACCOUNT.OPEN {"account":"cash","partner":"platform","currency":"EUR"}"#,
    .accountOpen(
      AccountOpened(
        name: "cash", partner: Machine.platformPartner, currency: "EUR", normalSide: .debit),
      partnerGiven: true)
  ),
  (
    #"ACCOUNT.OPEN {"account":"p1:w","partner":"p1","currency":"EUR","normal":"credit","#
      + #""no_overdraft":true,"limit":"500"}"#,
    .accountOpen(
      AccountOpened(
        name: "p1:w", partner: "p1", currency: "EUR", normalSide: .credit, noOverdraft: true,
        limitMinor: 500),
      partnerGiven: true)
  ),
  (#"ACCOUNT.GET {"account":"cash"}"#, .accountGet(name: "cash")),
  (#"ACCOUNT.CLOSE {"account":"cash"}"#, .accountClose(name: "cash")),
  (
    #"ACCOUNT.LIST {"partner":"p1","limit":10000}"#,
    .accountList(partner: "p1", after: nil, limit: 10_000)
  ),
  ("ENTRY.POST " + entryJSON, .entryPost(Samples.entry)),
  (
    #"ENTRY.BATCH {"entries":[\#(entryJSON),5]}"#,
    .entryBatch([
      .success(Samples.entry),
      .failure(Rejection(.invalidField, "each entry must be a JSON object")),
    ])
  ),
  (#"ENTRY.GET {"id":"e1"}"#, .entryGet(id: "e1")),
  (
    #"ENTRY.REVERSE {"id":"r1","entry":"e1"}"#,
    .entryReverse(ReverseSpec(id: "r1", entryId: "e1"))
  ),
  (
    #"HOLD.PLACE {"id":"h1","legs":\#(legsJSON),"ttl_ms":60000}"#,
    .holdPlace(HoldSpec(id: "h1", legs: Samples.legs), ttlMillis: 60_000)
  ),
  (
    #"HOLD.PLACE {"id":"h1","legs":\#(legsJSON),"deadline":"2026-12-01T00:00:00Z"}"#,
    .holdPlace(
      HoldSpec(id: "h1", legs: Samples.legs, deadlineNanos: 1_796_083_200 * 1_000_000_000),
      ttlMillis: nil)
  ),
  (#"HOLD.CAPTURE {"id":"h1"}"#, .holdCapture(CaptureSpec(holdId: "h1", amounts: .full))),
  (
    #"HOLD.CAPTURE {"id":"h1","amount":"5"}"#,
    .holdCapture(CaptureSpec(holdId: "h1", amounts: .uniform(5)))
  ),
  (
    #"HOLD.CAPTURE {"id":"h1","amounts":["1","2"]}"#,
    .holdCapture(CaptureSpec(holdId: "h1", amounts: .perLeg([1, 2])))
  ),
  (#"HOLD.RELEASE {"id":"h1"}"#, .holdRelease(id: "h1")),
  (#"BALANCE.GET {"account":"cash"}"#, .balanceGet(account: "cash", asOfSeq: nil)),
  (#"BALANCE.GET {"account":"cash","as_of_seq":7}"#, .balanceGet(account: "cash", asOfSeq: 7)),
  (
    #"STATEMENT.GET {"account":"cash"}"#,
    .statementGet(
      account: "cash", fromSeq: 1, toSeq: UInt64.max, limit: Limits.pageLimitDefault)
  ),
  (
    #"STATEMENT.GET {"account":"cash","cursor":3,"to_seq":9,"limit":2}"#,
    .statementGet(account: "cash", fromSeq: 3, toSeq: 9, limit: 2)
  ),
  (
    #"STATEMENT.GET {"account":"cash","from_seq":4}"#,
    .statementGet(
      account: "cash", fromSeq: 4, toSeq: UInt64.max, limit: Limits.pageLimitDefault)
  ),
  ("LOG.HEAD", .logHead),
  ("LOG.READ", .logRead(fromSeq: 1, limit: Limits.pageLimitDefault)),
  (#"LOG.READ {"from_seq":5,"limit":1}"#, .logRead(fromSeq: 5, limit: 1)),
  (#"PROOF.INCLUSION {"seq":3}"#, .proofInclusion(seq: 3, size: nil)),
  (#"PROOF.INCLUSION {"seq":3,"size":8}"#, .proofInclusion(seq: 3, size: 8)),
  (#"PROOF.CONSISTENCY {"from":2,"to":8}"#, .proofConsistency(from: 2, to: 8)),
  ("CHECKPOINT.GET", .checkpointGet(size: nil)),
  (#"CHECKPOINT.GET {"size":5}"#, .checkpointGet(size: 5)),
  ("CHECKPOINT.LIST", .checkpointList(after: 0, limit: Limits.pageLimitDefault)),
  ("STATS", .stats),
  ("REPLICA.PROMOTE", .replicaPromote),
  (
    "PARTNER.VIEW",
    .partnerView(partner: nil, after: nil, limit: Limits.pageLimitDefault, asOfSeq: nil)
  ),
  (
    #"PARTNER.VIEW {"id":"p1","after":"p1:a","limit":2,"as_of_seq":9}"#,
    .partnerView(partner: "p1", after: "p1:a", limit: 2, asOfSeq: 9)
  ),
  (
    #"RECON.IMPORT {"account":"cash","format":"mt940","statement":":20:X\n"}"#,
    .reconImport(
      ReconImportRequest(
        account: "cash", format: .mt940, statement: Array(":20:X\n".utf8),
        toleranceDays: Limits.reconToleranceDaysDefault))
  ),
  (
    #"RECON.IMPORT {"account":"cash","format":"camt053","statement":"<x/>","tolerance_days":0}"#,
    .reconImport(
      ReconImportRequest(
        account: "cash", format: .camt053, statement: Array("<x/>".utf8), toleranceDays: 0))
  ),
  (
    #"RECON.IMPORT {"map":{"de89 3704":"bank"},"format":"mt940","statement_base64":"OjIwOuk=","#
      + #""encoding":"iso-8859-1"}"#,
    .reconImport(
      ReconImportRequest(
        account: nil, format: .mt940, statement: [0x3A, 0x32, 0x30, 0x3A, 0xE9],
        toleranceDays: Limits.reconToleranceDaysDefault, map: ["DE893704": "bank"],
        encoding: .iso88591))
  ),
  (#"RECON.STATUS {"account":"cash"}"#, .reconStatus(account: "cash")),
  (
    #"RECON.ITEMS {"account":"cash"}"#,
    .reconItems(account: "cash", filter: .all, after: 0, limit: Limits.pageLimitDefault)
  ),
  (
    #"RECON.ITEMS {"account":"cash","state":"discrepancy","after":4,"limit":3}"#,
    .reconItems(account: "cash", filter: .state(.discrepancy), after: 4, limit: 3)
  ),
  (
    #"RECON.ITEMS {"account":"cash","state":"missing_from_statement"}"#,
    .reconItems(
      account: "cash", filter: .missingFromStatement, after: 0, limit: Limits.pageLimitDefault)
  ),
  (
    #"RECON.RESOLVE {"item":3,"reason":"fee","entry":"fix-1"}"#,
    .reconResolve(item: 3, reason: "fee", entry: "fix-1")
  ),
  (#"RECON.UNMATCH {"item":3}"#, .reconUnmatch(item: 3, reason: nil)),
]

/// A refused line: its code, its reason, and (when the error names one) the field.
struct Refusal: Sendable, CustomStringConvertible {
  var line: String
  var code: WireCode
  var reason: String
  var field: String? = nil
  var description: String { line }
}

let refusedLines: [Refusal] = [
  Refusal(
    line: #"RECON.IMPORT {"account":"cash","format":"pdf","statement":"x"}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "format"),
  Refusal(
    line: #"RECON.IMPORT {"account":"cash","format":"csv","statement":""}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "statement"),
  Refusal(
    line: #"RECON.IMPORT {"account":"cash","format":"csv","statement":"x","tolerance_days":32}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "tolerance_days"),
  Refusal(
    line: #"RECON.IMPORT {"account":"cash","format":"csv","statement":"x","by":"me"}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "by"),
  Refusal(
    line: #"RECON.ITEMS {"account":"cash","state":"open"}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "state"),
  Refusal(
    line: #"RECON.RESOLVE {"item":1,"reason":"r","by":"me"}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "by"),
  Refusal(
    line: #"RECON.RESOLVE {"reason":"r"}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "item"),
  Refusal(
    line: #"RECON.UNMATCH {"item":-1}"#, code: .badRequest, reason: "INVALID_FIELD", field: "item"),
  Refusal(line: "", code: .badRequest, reason: "BAD_REQUEST"),
  Refusal(line: "\r", code: .badRequest, reason: "BAD_REQUEST"),
  Refusal(line: "ping", code: .unknownVerb, reason: "UNKNOWN_VERB"),
  Refusal(line: "Ping {}", code: .unknownVerb, reason: "UNKNOWN_VERB"),
  Refusal(line: "FOO", code: .unknownVerb, reason: "UNKNOWN_VERB"),
  Refusal(line: "PING.", code: .unknownVerb, reason: "UNKNOWN_VERB"),
  Refusal(line: "ENTRY-POST {}", code: .unknownVerb, reason: "UNKNOWN_VERB"),
  Refusal(line: String(repeating: "A", count: 33), code: .unknownVerb, reason: "UNKNOWN_VERB"),
  // A verb with a space and nothing after it: the body is there but is not JSON.
  Refusal(line: "PING ", code: .badRequest, reason: "INVALID_JSON"),
  Refusal(line: "LOG.HEAD ", code: .badRequest, reason: "INVALID_JSON"),
  Refusal(line: "PING []", code: .badRequest, reason: "INVALID_JSON"),
  Refusal(line: "PING 5", code: .badRequest, reason: "INVALID_JSON"),
  Refusal(line: #"PING "x""#, code: .badRequest, reason: "INVALID_JSON"),
  Refusal(line: "PING {} x", code: .badRequest, reason: "INVALID_JSON"),
  Refusal(line: #"ENTRY.GET {"id":"a","id":"b"}"#, code: .badRequest, reason: "INVALID_JSON"),
  Refusal(line: #"ENTRY.GET {"id":"a""#, code: .badRequest, reason: "INVALID_JSON"),
  Refusal(
    line: #"PING {"x":1}"#, code: .badRequest, reason: "INVALID_FIELD", field: "x"),
  Refusal(
    line: #"ENTRY.GET {"id":"e1","extra":true}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "extra"),
  Refusal(line: #"AUTH {"key":"k"}"#, code: .badRequest, reason: "INVALID_FIELD", field: "mac"),
  Refusal(
    line: #"AUTH {"key":1,"mac":"m"}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "key"),
  Refusal(
    line: #"KEY.CREATE {"role":"admin","grants":"fees"}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "grants"),
  Refusal(
    line: #"LOG.READ {"limit":0}"#, code: .badRequest, reason: "INVALID_FIELD", field: "limit"),
  Refusal(
    line: #"LOG.READ {"limit":10001}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "limit"),
  Refusal(
    line: #"LOG.READ {"limit":"5"}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "limit"),
  Refusal(
    line: #"LOG.READ {"from_seq":-1}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "from_seq"),
  Refusal(
    line: #"LOG.READ {"from_seq":1.5}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "from_seq"),
  Refusal(
    line: #"PARTNER.LIST {"limit":0}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "limit"),
  Refusal(
    line: #"ACCOUNT.OPEN {"account":"a","currency":"EUR","normal":"up"}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "normal"),
  Refusal(
    line: #"ACCOUNT.OPEN {"account":"a","currency":"EUR","no_overdraft":"yes"}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "no_overdraft"),
  Refusal(
    line: #"ACCOUNT.OPEN {"account":"a","currency":"EUR","limit":500}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "limit"),
  Refusal(line: "ENTRY.POST", code: .badRequest, reason: "INVALID_FIELD", field: "id"),
  Refusal(
    line: #"ENTRY.POST {"legs":\#(legsJSON)}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "id"),
  Refusal(
    line: #"ENTRY.POST {"id":"e1","legs":\#(legsJSON),"memo":"x"}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "memo"),
  // An amount must travel as a string: a JSON number is a type error, not a bad amount.
  Refusal(
    line: #"ENTRY.POST {"id":"e1","legs":[{"account":"a","side":"debit","amount":100},"#
      + #"{"account":"b","side":"credit","amount":"100"}]}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "legs[0].amount"),
  // A string that is not an integer of minor units is a bad amount.
  Refusal(
    line: #"ENTRY.POST {"id":"e1","legs":[{"account":"a","side":"debit","amount":"1.5"},"#
      + #"{"account":"b","side":"credit","amount":"1.5"}]}"#,
    code: .invalidAmount, reason: "INVALID_AMOUNT", field: "legs[0].amount"),
  Refusal(
    line: #"ENTRY.POST {"id":"e1","legs":[{"account":"a","side":"up","amount":"1"},"#
      + #"{"account":"b","side":"credit","amount":"1"}]}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "legs[0].side"),
  Refusal(
    line: #"ENTRY.POST {"id":"e1","legs":{}}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "legs"),
  Refusal(
    line: #"ENTRY.POST {"id":"e1","legs":\#(legsJSON),"value_date":"2026-13-01"}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "value_date"),
  Refusal(
    line: #"ENTRY.POST {"id":"e1","legs":\#(legsJSON),"metadata":{"k":1}}"#,
    code: .badRequest, reason: "INVALID_METADATA"),
  Refusal(
    line: #"ENTRY.BATCH {"entries":[]}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "entries"),
  Refusal(
    line: #"ENTRY.BATCH {"entries":{}}"#, code: .badRequest, reason: "INVALID_FIELD",
    field: "entries"),
  Refusal(
    line: #"HOLD.PLACE {"id":"h1","legs":\#(legsJSON),"deadline":"2026-12-01T00:00:00Z","#
      + #""ttl_ms":1000}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "ttl_ms"),
  Refusal(
    line: #"HOLD.PLACE {"id":"h1","legs":\#(legsJSON),"ttl_ms":0}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "ttl_ms"),
  Refusal(
    line: #"HOLD.PLACE {"id":"h1","legs":\#(legsJSON),"ttl_ms":315360000001}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "ttl_ms"),
  Refusal(
    line: #"HOLD.PLACE {"id":"h1","legs":\#(legsJSON),"deadline":"tomorrow"}"#,
    code: .badRequest, reason: "INVALID_FIELD", field: "deadline"),
  Refusal(
    line: #"HOLD.CAPTURE {"id":"h1","amount":"1","amounts":["1"]}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "amounts"),
  Refusal(
    line: #"HOLD.CAPTURE {"id":"h1","amount":5}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "amount"),
  Refusal(
    line: #"STATEMENT.GET {"account":"a","cursor":1,"from_seq":1}"#, code: .badRequest,
    reason: "INVALID_FIELD", field: "cursor"),
]

@Suite("RequestParser")
struct RequestParserTests {
  @Test("every verb parses into its request, fields and defaults included")
  func acceptedTable() {
    for (line, want) in acceptedLines {
      switch parse(line) {
      case .success(let got):
        #expect(Samples.same(got, want), "\(line)\n got  \(got)\n want \(want)")
      case .failure(let e):
        Issue.record("\(line) refused: \(e.line)")
      }
    }
  }

  @Test("the accepted table covers every verb")
  func acceptedCoversEveryVerb() {
    let verbs = Set(acceptedLines.map { Samples.verb(of: $0.1) })
    #expect(verbs == Set(Samples.all.map(Samples.verb(of:))))
  }

  @Test("malformed lines are refused with the documented code, reason and field")
  func refusedTable() {
    for r in refusedLines {
      switch parse(r.line) {
      case .success(let got):
        Issue.record("\(r.line) accepted as \(got), expected \(r.code.rawValue)")
      case .failure(let e):
        #expect(e.code == r.code, "\(r.line): \(e.line)")
        #expect(e.reason == r.reason, "\(r.line): \(e.line)")
        if let f = r.field { #expect(e.details["field"] == f, "\(r.line): \(e.line)") }
        #expect(!e.message.isEmpty, "\(r.line)")
      }
    }
  }

  @Test("more entries than the batch limit is TOO_LARGE, naming the limit")
  func batchOverLimit() {
    let line = #"ENTRY.BATCH {"entries":[\#(entryJSON),\#(entryJSON),\#(entryJSON)]}"#
    guard case .failure(let e) = parse(line, batchEntriesMax: 2) else {
      Issue.record("a batch of 3 accepted with a limit of 2")
      return
    }
    #expect(e.code == .tooLarge)
    #expect(e.details["limit"] == "2")
    // At the limit it is accepted.
    guard case .success(.entryBatch(let items)) = parse(line, batchEntriesMax: 3) else {
      Issue.record("a batch of 3 refused with a limit of 3")
      return
    }
    #expect(items.count == 3)
  }

  @Test("a statement may use the whole line; other strings keep the 64 KiB string limit")
  func statementStringLimit() {
    let long = String(repeating: "booking_date,amount,currency\\n", count: 4000)  // ~120 KB
    let line = #"RECON.IMPORT {"account":"cash","format":"csv","statement":"\#(long)"}"#
    guard case .success(.reconImport(let r)) = parse(line) else {
      Issue.record("a 120 KB statement refused")
      return
    }
    #expect(r.statement.count == 4000 * 29)
    let name = String(repeating: "n", count: 70_000)
    guard case .failure(let e) = parse(#"PARTNER.CREATE {"id":"p","name":"\#(name)"}"#) else {
      Issue.record("a 70 KB name accepted")
      return
    }
    #expect(e.code == .badRequest)
  }

  @Test("invalid UTF-8 anywhere in the line is BAD_REQUEST INVALID_UTF8")
  func invalidUTF8() {
    let cases: [[UInt8]] = [
      Array("PING ".utf8) + [0xFF],
      [0xC3],
      Array("ENTRY.GET {\"id\":\"".utf8) + [0xC0, 0xAF] + Array("\"}".utf8),
      // An encoded surrogate (U+D800) is not UTF-8.
      Array("AUTH {\"key\":\"".utf8) + [0xED, 0xA0, 0x80] + Array("\",\"mac\":\"\"}".utf8),
      Array("PI".utf8) + [0x80] + Array("NG".utf8),
    ]
    for bytes in cases {
      guard case .failure(let e) = RequestParser.parse(bytes, batchEntriesMax: 10) else {
        Issue.record("accepted \(bytes)")
        continue
      }
      #expect(e.code == .badRequest, "\(bytes)")
      #expect(e.reason == "INVALID_UTF8", "\(bytes)")
    }
  }

  @Test("a seeded fuzz of 20,000 lines: never crashes, never INTERNAL, verbs kept")
  func fuzz() {
    let seed = fuzzSeed()
    print("RequestParser fuzz: seed \(seed) (TALLY_SEED=\(seed) reproduces)")
    var rng = SplitMix64(seed: seed)
    let verbs = Samples.all.map(Samples.verb(of:))
    let accepted = acceptedLines.map { (Array($0.0.utf8), $0.1) }
    let valid = accepted.map(\.0) + refusedLines.map { Array($0.line.utf8) }
    var parsed = 0
    var codes = [WireCode: Int]()
    for i in 0..<20_000 {
      let label = "seed \(seed) case \(i)"
      let line: [UInt8]
      if rng.below(4) == 0 {
        // Whitespace between JSON tokens changes nothing: the same request must come out.
        let (original, want) = accepted[rng.below(accepted.count)]
        line = spaced(original, &rng)
        let got = RequestParser.parse(line, batchEntriesMax: 4)
        #expect(
          Samples.same(got, .success(want)),
          "\(label): \(String(decoding: line, as: UTF8.self)) → \(got)")
      } else {
        line = fuzzLine(&rng, verbs: verbs, valid: valid)
      }
      let result = RequestParser.parse(line, batchEntriesMax: 4)
      let shown = String(decoding: line.prefix(200), as: UTF8.self)
      switch result {
      case .success(let r):
        parsed += 1
        // The request is the verb the line named (a CR at the end is allowed).
        let verb = line.prefix { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") }
        #expect(
          Array(Samples.verb(of: r).utf8) == Array(verb), "\(label): \(shown) parsed as \(r)")
      case .failure(let e):
        codes[e.code, default: 0] += 1
        // INTERNAL would mean an error escaped the parser's own error handling.
        #expect(e.code != .internal, "\(label): \(shown) → \(e.line)")
        #expect(!e.message.isEmpty, "\(label)")
      }
      // Parsing is a pure function of the bytes.
      let again = RequestParser.parse(line, batchEntriesMax: 4)
      #expect(Samples.same(again, result), "\(label): \(shown)")
    }
    print("RequestParser fuzz: \(parsed) accepted, refused by code: \(codes)")
    // The generator must reach past the verb and JSON checks, or the fuzz proves little.
    #expect(parsed > 2000)
    #expect((codes[.badRequest] ?? 0) > 2000)
  }
}

/// `line` with JSON whitespace added after structural characters outside strings.
func spaced(_ line: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
  let blanks: [UInt8] = [0x20, 0x09, 0x0D]
  var out = [UInt8]()
  var inString = false
  var escaped = false
  var inBody = false
  for b in line {
    out.append(b)
    if !inBody {
      inBody = b == UInt8(ascii: " ")
      continue
    }
    if inString {
      if escaped {
        escaped = false
      } else if b == UInt8(ascii: "\\") {
        escaped = true
      } else if b == UInt8(ascii: "\"") {
        inString = false
      }
      continue
    }
    if b == UInt8(ascii: "\"") {
      inString = true
    } else if "{}[]:,".utf8.contains(b) && rng.below(2) == 0 {
      for _ in 0...rng.below(2) { out.append(blanks[rng.below(blanks.count)]) }
    }
  }
  return out
}

func fuzzSeed() -> UInt64 {
  if let s = getenv("TALLY_SEED"), let v = UInt64(String(cString: s)) { return v }
  return 0x5EED_F022
}

/// One fuzz line, at most 300 bytes: random bytes, a verb with JSON-ish noise, or a mutated
/// table line (which reaches deep into the field checks).
func fuzzLine(_ rng: inout SplitMix64, verbs: [String], valid: [[UInt8]]) -> [UInt8] {
  let jsonish = Array(#"{}[]":,0123456789-.eE truefalsnul\"idlegsamountaccountside"#.utf8)
  switch rng.below(3) {
  case 0:
    return (0..<rng.below(64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
  case 1:
    var line = Array(verbs[rng.below(verbs.count)].utf8)
    if rng.below(4) != 0 { line.append(UInt8(ascii: " ")) }
    for _ in 0..<rng.below(80) { line.append(jsonish[rng.below(jsonish.count)]) }
    return line
  default:
    var line = valid[rng.below(valid.count)]
    for _ in 0...rng.below(4) {
      let at = line.isEmpty ? 0 : rng.below(line.count)
      switch rng.below(4) {
      case 0 where !line.isEmpty: line[at] = UInt8(truncatingIfNeeded: rng.next())
      case 1: line.insert(jsonish[rng.below(jsonish.count)], at: at)
      case 2 where !line.isEmpty: line.remove(at: at)
      default: line = Array(line.prefix(at))
      }
    }
    return Array(line.prefix(300))
  }
}
