import Foundation
import TallyCrypto
import Testing

// End-to-end tests of `tally export` and `tally verify --export / --checkpoint`
// (docs/FORMAT.md, "Export" and "Verifying an export"), running the real binary.

// MARK: - SHA-256

/// The hashes these tests recompute (as an auditor would, or as an attacker rewriting
/// `hashes` would), through the package's OpenSSL SHA-256 (checked against the golden
/// vectors of docs/FORMAT.md in `referenceHashes`).
enum PlainSHA256 {
  static func hash(_ bytes: [UInt8]) -> [UInt8] { SHA256Hasher().hash(bytes).bytes }
}

// MARK: - Reading and rewriting export files

enum ExportKit {
  struct Failed: Error, CustomStringConvertible {
    var description: String
  }

  static let files = [
    "checkpoint", "context", "events", "hashes", "manifest", "prefix", "tree", "vkey",
  ]

  static func read(_ path: String) throws -> [UInt8] {
    guard let d = FileManager.default.contents(atPath: path) else {
      throw Failed(description: "cannot read \(path)")
    }
    return [UInt8](d)
  }

  static func text(_ path: String) throws -> String {
    String(decoding: try read(path), as: UTF8.self)
  }

  static func write(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
  }

  static func write(_ path: String, text: String) throws { try write(path, Array(text.utf8)) }

  static func copy(_ from: String, _ to: String) throws {
    try FileManager.default.copyItem(atPath: from, toPath: to)
  }

  static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

  static func listing(_ dir: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
  }

  /// A big-endian unsigned integer of `width` bytes at `at`.
  static func be(_ b: [UInt8], _ at: Int, _ width: Int) -> UInt64 {
    var v: UInt64 = 0
    for i in at..<(at + width) { v = v << 8 | UInt64(b[i]) }
    return v
  }

  static func u32(_ v: Int) -> [UInt8] {
    (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) }
  }

  /// The records of an `events` file: `u32` length ‖ bytes, with no trailing bytes.
  static func records(_ b: [UInt8]) throws -> [[UInt8]] {
    var out = [[UInt8]]()
    var i = 0
    while i < b.count {
      guard b.count - i >= 4 else { throw Failed(description: "truncated record length") }
      let n = Int(be(b, i, 4))
      guard b.count - i - 4 >= n else { throw Failed(description: "truncated record") }
      out.append(Array(b[(i + 4)..<(i + 4 + n)]))
      i += 4 + n
    }
    return out
  }

  static func encode(_ records: [[UInt8]]) -> [UInt8] { records.flatMap { u32($0.count) + $0 } }

  /// The records of a `context` file: event bytes and audit path.
  static func contextRecords(_ b: [UInt8]) throws -> [(event: [UInt8], path: [[UInt8]])] {
    var out = [(event: [UInt8], path: [[UInt8]])]()
    var i = 0
    while i < b.count {
      guard b.count - i >= 4 else { throw Failed(description: "truncated context length") }
      let n = Int(be(b, i, 4))
      i += 4
      guard b.count - i >= n + 1 else { throw Failed(description: "truncated context event") }
      let event = Array(b[i..<(i + n)])
      i += n
      let k = Int(b[i])
      i += 1
      guard b.count - i >= 32 * k else { throw Failed(description: "truncated audit path") }
      let path = (0..<k).map { Array(b[(i + 32 * $0)..<(i + 32 * $0 + 32)]) }
      i += 32 * k
      out.append((event, path))
    }
    return out
  }

  /// An event's seq (offset 2) and type (offset 1).
  static func seq(_ event: [UInt8]) -> Int { Int(be(event, 2, 8)) }
  static func eventType(_ event: [UInt8]) -> UInt8 { event[1] }
  static func timestamp(_ event: [UInt8]) -> Int64 { Int64(bitPattern: be(event, 10, 8)) }

  /// The first payload field (a `str` for every event type: id, code, account, hold id).
  static func firstString(_ event: [UInt8]) -> String {
    let n = Int(be(event, 18, 2))
    return String(decoding: event[20..<(20 + n)], as: UTF8.self)
  }

  // Hashes (docs/FORMAT.md, "Hashes" and "Merkle tree").

  static func leaf(_ event: [UInt8]) -> [UInt8] { PlainSHA256.hash([0] + event) }
  static func node(_ l: [UInt8], _ r: [UInt8]) -> [UInt8] { PlainSHA256.hash([1] + l + r) }
  static func chain(_ previous: [UInt8], _ leaf: [UInt8]) -> [UInt8] {
    PlainSHA256.hash(previous + leaf)
  }

  /// RFC 9162 MTH of a range of leaf hashes.
  static func mth(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
    if leaves.isEmpty { return PlainSHA256.hash([]) }
    if leaves.count == 1 { return leaves[leaves.startIndex] }
    var k = 1
    while k * 2 < leaves.count { k *= 2 }
    let mid = leaves.startIndex + k
    return node(mth(leaves[..<mid]), mth(leaves[mid...]))
  }

  /// RFC 9162 §2.1.3.2: the root an audit path leads to from a leaf, nil when malformed.
  static func rootFromInclusion(index: Int, size: Int, leaf: [UInt8], path: [[UInt8]])
    -> [UInt8]?
  {
    guard index < size else { return nil }
    var fn = index
    var sn = size - 1
    var r = leaf
    for p in path {
      if sn == 0 { return nil }
      if fn & 1 == 1 || fn == sn {
        r = node(p, r)
        while fn & 1 == 0 && fn != 0 {
          fn >>= 1
          sn >>= 1
        }
      } else {
        r = node(r, p)
      }
      fn >>= 1
      sn >>= 1
    }
    return sn == 0 ? r : nil
  }

  static func hex(_ b: [UInt8]) -> String {
    let digits = Array("0123456789abcdef")
    return String(b.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
  }

  static func unhex(_ s: String) -> [UInt8] {
    let u = Array(s.utf8)
    func v(_ c: UInt8) -> UInt8 { c >= 97 ? c - 87 : c >= 65 ? c - 55 : c - 48 }
    return stride(from: 0, to: u.count - 1, by: 2).map { v(u[$0]) << 4 | v(u[$0 + 1]) }
  }

  /// Leaf hashes and chain hashes of `events` from chain `start`.
  static func hashes(of events: [[UInt8]], start: [UInt8]) -> (leaves: [[UInt8]], chains: [[UInt8]])
  {
    var chain = start
    var leaves = [[UInt8]]()
    var chains = [[UInt8]]()
    for e in events {
      let l = leaf(e)
      chain = self.chain(chain, l)
      leaves.append(l)
      chains.append(chain)
    }
    return (leaves, chains)
  }

  /// Rewrites an export's `hashes` to match its `events` (leaf and chain from `prefix`'s
  /// chain), as an attacker who alters events and wants the file to agree would.
  static func rewriteHashes(_ dir: String) throws {
    let prefix = try read(dir + "/prefix")
    let events = try records(try read(dir + "/events"))
    let h = hashes(of: events, start: Array(prefix[8..<40]))
    try write(dir + "/hashes", zip(h.leaves, h.chains).flatMap { $0 + $1 })
  }

  /// Leaves `lo ..< hi` of every subtree root in `prefix` for p events, largest first.
  static func prefixRanges(_ p: Int) -> [Range<Int>] {
    stride(from: 62, through: 0, by: -1).filter { (p >> $0) & 1 == 1 }.map { l in
      ((p >> (l + 1)) << (l + 1))..<((p >> l) << l)
    }
  }

  /// Leaves of every node in `tree` for an export of p…n, in file order.
  static func treeRanges(p: Int, n: Int) -> [Range<Int>] {
    var out = [Range<Int>]()
    var level = 1
    while 1 << level <= n {
      let first = (p + (1 << level) - 1) >> level
      let end = n >> level
      if first < end {
        for i in first..<end { out.append((i << level)..<((i + 1) << level)) }
      }
      level += 1
    }
    return out
  }

  // Event payloads (docs/FORMAT.md, "Event").

  /// For `entry_posted` and `hold_placed`: each leg's account, side byte and amount offset.
  static func legs(_ e: [UInt8]) -> [(account: String, side: UInt8, amountAt: Int)] {
    var i = 18
    i += 2 + Int(be(e, i, 2))  // id
    let count = Int(be(e, i, 2))
    i += 2
    var out = [(account: String, side: UInt8, amountAt: Int)]()
    for _ in 0..<count {
      let n = Int(be(e, i, 2))
      let name = String(decoding: e[(i + 2)..<(i + 2 + n)], as: UTF8.self)
      i += 2 + n
      let side = e[i]
      i += 1
      out.append((name, side, i))
      i += 16
    }
    return out
  }

  /// For `hold_captured`: the offsets of the captured amounts.
  static func capturedAmountOffsets(_ e: [UInt8]) -> [Int] {
    var i = 18
    i += 2 + Int(be(e, i, 2))  // hold id
    let count = Int(be(e, i, 2))
    i += 2
    return (0..<count).map { i + 16 * $0 }
  }

  static func i128(_ b: [UInt8], at: Int) -> Int128 {
    var v: UInt128 = 0
    for x in b[at..<(at + 16)] { v = v << 8 | UInt128(x) }
    return Int128(bitPattern: v)
  }

  static func setI128(_ b: inout [UInt8], at: Int, _ value: Int128) {
    var v = UInt128(bitPattern: value)
    for i in (at..<(at + 16)).reversed() {
      b[i] = UInt8(truncatingIfNeeded: v)
      v >>= 8
    }
  }

  /// The seq range `A…B` in a `hashes_altered` message ("… within seq A…B; …").
  static func seqRange(_ message: String) -> ClosedRange<Int>? {
    guard let r = message.range(of: "within seq ") else { return nil }
    let parts = message[r.upperBound...].split(separator: "…", maxSplits: 1)
    guard parts.count == 2, let a = Int(parts[0]),
      let b = Int(String(parts[1].prefix { $0.isNumber })), a <= b
    else { return nil }
    return a...b
  }

  static func major(_ minor: Int, scale: Int) -> String {
    if scale == 0 { return String(minor) }
    var unit = 1
    for _ in 0..<scale { unit *= 10 }
    let frac = String(minor % unit)
    return "\(minor / unit)." + String(repeating: "0", count: scale - frac.count) + frac
  }

  static func popcount(_ v: Int) -> Int { v.nonzeroBitCount }
}

// MARK: - Running verify

/// One `tally --json verify --export …` (or `--checkpoint`-only) run.
struct ExportVerdict: CustomStringConvertible {
  var result: CLIResult
  var json: [String: Any]

  var status: Int32 { result.status }
  var ok: Bool? { json["ok"] as? Bool }
  var problems: [[String: Any]] {
    (json["problems"] as? [Any] ?? []).compactMap { $0 as? [String: Any] }
  }
  var kinds: Set<String> { Set(problems.compactMap { $0["kind"] as? String }) }
  func of(_ kind: String) -> [[String: Any]] {
    problems.filter { ($0["kind"] as? String) == kind }
  }
  func seqs(_ kind: String) -> [Int] { of(kind).compactMap { $0["seq"] as? Int } }
  func messages(_ kind: String) -> [String] { of(kind).compactMap { $0["message"] as? String } }
  var first: [String: Any]? { json["first_difference"] as? [String: Any] }
  var firstKind: String? { first?["kind"] as? String }
  var firstSeq: Int? { first?["seq"] as? Int }
  var checkpoints: [[String: Any]] {
    (json["checkpoints"] as? [Any] ?? []).compactMap { $0 as? [String: Any] }
  }
  func checkpoint(_ source: String) -> [String: Any]? {
    checkpoints.first { ($0["source"] as? String) == source }
  }
  func status(of source: String) -> String? { checkpoint(source)?["status"] as? String }
  var totals: [[String: String]] {
    (json["totals"] as? [Any] ?? []).compactMap { $0 as? [String: Any] }.map { t in
      t.compactMapValues { $0 as? String }
    }
  }
  var description: String { result.description }
}

func verifyExport(
  _ dir: String, vkey: String, checkpoints: [String] = [],
  sourceLocation: SourceLocation = #_sourceLocation
) async throws -> ExportVerdict {
  var args = ["--json", "verify", "--export", dir, "--vkey", vkey]
  for c in checkpoints { args += ["--checkpoint", c] }
  let r = try await runTally(args)
  try #require(
    r.status == 0 || r.status == 1, "verify must exit 0 or 1: \(r)",
    sourceLocation: sourceLocation)
  return ExportVerdict(result: r, json: try r.object(sourceLocation: sourceLocation))
}

func verifyCheckpoints(
  vkey: String, _ files: [String], sourceLocation: SourceLocation = #_sourceLocation
) async throws -> ExportVerdict {
  var args = ["--json", "verify", "--vkey", vkey]
  for c in files { args += ["--checkpoint", c] }
  let r = try await runTally(args)
  try #require(
    r.status == 0 || r.status == 1, "verify must exit 0 or 1: \(r)",
    sourceLocation: sourceLocation)
  return ExportVerdict(result: r, json: try r.object(sourceLocation: sourceLocation))
}

/// A verification that passed: exit 0, ok, no problem.
func expectVerified(_ v: ExportVerdict, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(v.status == 0, "\(v)", sourceLocation: sourceLocation)
  #expect(v.ok == true, "\(v)", sourceLocation: sourceLocation)
  #expect(v.json["problem_count"] as? Int == 0, "\(v)", sourceLocation: sourceLocation)
  #expect(v.problems.isEmpty, "\(v)", sourceLocation: sourceLocation)
}

/// A verification that failed: exit 1, not ok, problems counted and listed.
func expectRefused(_ v: ExportVerdict, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(v.status == 1, "\(v)", sourceLocation: sourceLocation)
  #expect(v.ok == false, "\(v)", sourceLocation: sourceLocation)
  #expect(!v.problems.isEmpty, "\(v)", sourceLocation: sourceLocation)
  if let count = v.json["problem_count"] as? Int {
    #expect(count >= v.problems.count && count > 0, "\(v)", sourceLocation: sourceLocation)
  }
}

// MARK: - A ledger whose postings the test keeps track of

struct ModelLeg: Sendable {
  var account: String
  var debit: Bool
  var minor: Int
  static func dr(_ account: String, _ minor: Int) -> ModelLeg {
    ModelLeg(account: account, debit: true, minor: minor)
  }
  static func cr(_ account: String, _ minor: Int) -> ModelLeg {
    ModelLeg(account: account, debit: false, minor: minor)
  }
}

/// Drives a data directory through the CLI and computes the posted debits and credits per
/// currency the way docs/FORMAT.md's step 5 defines them (entries and captured amounts).
struct ModelLedger {
  let data: String
  var currencyOf = [String: String]()
  var scales = ["EUR": 2, "USD": 2, "JPY": 0]
  var debits = [String: Int]()
  var credits = [String: Int]()

  init(data: String) { self.data = data }

  /// `tally --data D --json args…`, which must be applied; its seq.
  @discardableResult
  func applied(_ args: [String], sourceLocation: SourceLocation = #_sourceLocation) async throws
    -> Int
  {
    let r = try await runTally(["--data", data, "--json"] + args)
    try #require(r.status == 0, "expected exit 0: \(r)", sourceLocation: sourceLocation)
    let o = try r.object(sourceLocation: sourceLocation)
    try #require(o["result"] as? String == "applied", "\(r)", sourceLocation: sourceLocation)
    return try o.int("seq", sourceLocation: sourceLocation)
  }

  func scale(_ account: String) -> Int { scales[currencyOf[account] ?? ""] ?? 2 }

  func legArgs(_ legs: [ModelLeg]) -> [String] {
    legs.flatMap {
      [
        $0.debit ? "--debit" : "--credit",
        "\($0.account)=\(ExportKit.major($0.minor, scale: scale($0.account)))",
      ]
    }
  }

  mutating func book(_ legs: [ModelLeg]) {
    for l in legs {
      let c = currencyOf[l.account]!
      if l.debit { debits[c, default: 0] += l.minor } else { credits[c, default: 0] += l.minor }
    }
  }

  mutating func resetTotals() {
    debits = [:]
    credits = [:]
  }

  /// The totals as `verify --json` prints them: by currency code.
  var totals: [[String: String]] {
    Set(debits.keys).union(credits.keys).sorted().map {
      ["currency": $0, "debits": String(debits[$0] ?? 0), "credits": String(credits[$0] ?? 0)]
    }
  }

  @discardableResult
  mutating func open(
    _ name: String, _ currency: String, _ extra: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> Int {
    let seq = try await applied(
      ["account", "open", name, "--currency", currency] + extra, sourceLocation: sourceLocation)
    currencyOf[name] = currency
    return seq
  }

  @discardableResult
  mutating func post(
    _ id: String, _ legs: [ModelLeg], _ extra: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> Int {
    let seq = try await applied(
      ["post", "--id", id] + legArgs(legs) + extra, sourceLocation: sourceLocation)
    book(legs)
    return seq
  }

  @discardableResult
  func hold(_ id: String, _ legs: [ModelLeg], sourceLocation: SourceLocation = #_sourceLocation)
    async throws -> Int
  {
    try await applied(
      ["hold", "place", "--id", id] + legArgs(legs), sourceLocation: sourceLocation)
  }

  /// The legs of a hold in event order, from `hold show`.
  func holdLegs(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws
    -> [ModelLeg]
  {
    let r = try await runTally(["--data", data, "--json", "hold", "show", id])
    try #require(r.status == 0, "\(r)", sourceLocation: sourceLocation)
    return try r.object().arr("legs").map { any in
      let o = try #require(any as? [String: Any])
      return ModelLeg(
        account: try o.str("account"), debit: try o.str("side") == "debit",
        minor: try #require(Int(try o.str("amount"))))
    }
  }

  /// Captures `numerator / denominator` of every leg (all of it by default), per leg.
  @discardableResult
  mutating func capture(
    _ id: String, _ numerator: Int = 1, _ denominator: Int = 1,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> Int {
    var legs = try await holdLegs(id, sourceLocation: sourceLocation)
    for i in legs.indices { legs[i].minor = legs[i].minor * numerator / denominator }
    var args = ["hold", "capture", id]
    if numerator != denominator {
      args += [
        "--amounts",
        legs.map { ExportKit.major($0.minor, scale: scale($0.account)) }.joined(separator: ","),
      ]
    }
    let seq = try await applied(args, sourceLocation: sourceLocation)
    book(legs)
    return seq
  }

  /// Captures the same amount on every leg (`--amount`).
  @discardableResult
  mutating func capture(
    _ id: String, uniform minor: Int, sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> Int {
    var legs = try await holdLegs(id, sourceLocation: sourceLocation)
    for i in legs.indices { legs[i].minor = minor }
    let seq = try await applied(
      ["hold", "capture", id, "--amount", ExportKit.major(minor, scale: scale(legs[0].account))],
      sourceLocation: sourceLocation)
    book(legs)
    return seq
  }
}

// MARK: - Scratch helpers

extension Scratch {
  /// `tally --data DIR args…` on another data directory.
  func tally(at data: String, _ arguments: [String]) async throws -> CLIResult {
    try await runTally(["--data", data] + arguments)
  }

  /// `export --out ROOT/name extra…` (on `data`, default the scratch's), which must succeed.
  func exportOK(
    _ name: String, _ extra: [String] = [], data: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> (dir: String, summary: [String: Any]) {
    let dir = file(name)
    let r = try await tally(at: data ?? self.data, ["--json", "export", "--out", dir] + extra)
    try #require(r.status == 0, "export: \(r)", sourceLocation: sourceLocation)
    return (dir, try r.object(sourceLocation: sourceLocation))
  }

  func verifierKey(data: String? = nil, sourceLocation: SourceLocation = #_sourceLocation)
    async throws -> String
  {
    let r = try await tally(at: data ?? self.data, ["vkey"])
    try #require(r.status == 0, "vkey: \(r)", sourceLocation: sourceLocation)
    try #require(r.stdout.hasSuffix("\n") && r.stdout.filter { $0 == "\n" }.count == 1)
    return String(r.stdout.dropLast())
  }

  /// `checkpoint [--size N]` as printed, kept in ROOT/name; the path.
  func keepCheckpoint(
    _ name: String, size: Int? = nil, data: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> String {
    let r = try await tally(
      at: data ?? self.data, ["checkpoint"] + (size.map { ["--size", String($0)] } ?? []))
    try #require(r.status == 0, "checkpoint: \(r)", sourceLocation: sourceLocation)
    let path = file(name)
    try ExportKit.write(path, text: r.stdout)
    return path
  }

  func headSeq(data: String? = nil, sourceLocation: SourceLocation = #_sourceLocation)
    async throws -> Int
  {
    let r = try await tally(at: data ?? self.data, ["--json", "stats"])
    try #require(r.status == 0, "stats: \(r)", sourceLocation: sourceLocation)
    return try r.object().int("seq")
  }

  /// Posts `count` entries `prefix-1…` from a JSONL file (one process): `amount` minor units
  /// (plus the line number when `varying`) from `debit` to `credit`.
  func postMany(
    _ prefix: String, count: Int, debit: String, credit: String, amount: Int = 100,
    varying: Bool = false, data: String? = nil, sourceLocation: SourceLocation = #_sourceLocation
  ) async throws {
    var text = ""
    for i in 1...count {
      let a = String(amount + (varying ? i : 0))
      text +=
        #"{"id":"\#(prefix)-\#(i)","legs":[{"account":"\#(debit)","side":"debit","amount":""#
        + a + #""},{"account":"\#(credit)","side":"credit","amount":""# + a + "\"}]}\n"
    }
    let path = file("\(prefix).jsonl")
    try ExportKit.write(path, text: text)
    let r = try await tally(at: data ?? self.data, ["--json", "post", "--file", path])
    try #require(r.status == 0, "post --file: \(r)", sourceLocation: sourceLocation)
    #expect(try r.object().int("applied") == count, sourceLocation: sourceLocation)
  }
}

// MARK: - Tests

@Suite("export and verify --export")
struct ExportTests {
  @Test("the SHA-256 the tests use matches FIPS 180-4 and the golden vectors of FORMAT.md")
  func referenceHashes() {
    #expect(
      ExportKit.hex(PlainSHA256.hash(Array("abc".utf8)))
        == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    #expect(
      ExportKit.hex(PlainSHA256.hash([]))
        == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    #expect(
      ExportKit.hex(
        PlainSHA256.hash(
          Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
        == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    // seq 1 and 2 of docs/FORMAT.md, "Golden vectors"
    let e1 = ExportKit.unhex(
      "01010000000000000001187b16d8ed8f00000008706c6174666f726d0008506c6174666f726d0000")
    let e2 = ExportKit.unhex(
      "01030000000000000002187b16d8ed8f00010004636173680008706c6174666f726d000345555200000000")
    let h = ExportKit.hashes(of: [e1, e2], start: [UInt8](repeating: 0, count: 32))
    #expect(
      ExportKit.hex(h.leaves[0])
        == "325cdbfc64e6c35c8927c113caffbaddda3f103f9bba7084f539ad67e6a7daac")
    #expect(
      ExportKit.hex(h.chains[0])
        == "93fb76ffff83688cb9cb121080b4c864fc890de9ab167ccbf446e553eb6023a4")
    #expect(
      ExportKit.hex(h.leaves[1])
        == "ec6831039c55feeb87e555dfaa06dccd68edeee98f07176bbc152c802cd48294")
    #expect(
      ExportKit.hex(h.chains[1])
        == "e57d185f636cb579c9ddcb27caf7b549f9f2fd4143265b3d1acaebec0974b6dc")
    #expect(ExportKit.seq(e2) == 2 && ExportKit.firstString(e2) == "cash")
  }

  // MARK: 1. Round trip

  @Test("round trip: several currencies, holds captured and released; files as documented")
  func roundTrip() async throws {
    try await withScratch { s in
      var m = ModelLedger(data: s.data)
      let origin = "test.ledger/export-rt"
      try await s.ok("init", "--origin", origin)
      try await s.ok("partner", "create", "merchant")
      try await s.ok("asset", "declare", "GOLD", "--scale", "3")
      m.scales["GOLD"] = 3
      try await m.open("eur-cash", "EUR")
      try await m.open("eur-alice", "EUR", ["--normal", "credit", "--no-overdraft"])
      try await m.open("eur-fx", "EUR", ["--normal", "credit"])
      try await m.open("usd-fx", "USD")
      try await m.open("usd-cash", "USD")
      try await m.open("usd-bob", "USD", ["--normal", "credit", "--partner", "merchant"])
      try await m.open("gold-vault", "GOLD")
      try await m.open("gold-alice", "GOLD", ["--normal", "credit"])
      try await m.open("jpy-a", "JPY")
      try await m.open("jpy-b", "JPY", ["--normal", "credit"])
      try await m.post("e1", [.dr("eur-cash", 100_00), .cr("eur-alice", 100_00)])
      try await m.post(
        "e2", [.dr("usd-cash", 250_00), .cr("usd-bob", 250_00)], ["--ref", "INV-2"])
      // one entry in two currencies, balanced per currency (an FX trade through positions)
      try await m.post(
        "fx1",
        [
          .dr("eur-alice", 20_00), .cr("eur-fx", 20_00), .dr("usd-fx", 21_70),
          .cr("usd-bob", 21_70),
        ],
        ["--meta", "rate=1.085"])
      try await m.post("g1", [.dr("gold-vault", 1_250), .cr("gold-alice", 1_250)])
      try await m.post("y1", [.dr("jpy-a", 1500), .cr("jpy-b", 1500)])
      // holds: partially captured, released, captured per leg across currencies, pending
      try await m.hold("h1", [.dr("eur-alice", 30_00), .cr("eur-fx", 30_00)])
      try await m.capture("h1", uniform: 12_34)
      try await m.hold("h2", [.dr("usd-bob", 10_00), .cr("usd-cash", 10_00)])
      try await s.ok("hold", "release", "h2")
      try await m.hold(
        "h3",
        [.dr("eur-alice", 5_00), .cr("eur-fx", 5_00), .dr("usd-fx", 6_00), .cr("usd-bob", 6_00)])
      try await m.capture("h3", 2, 5)
      try await m.hold("h4", [.dr("eur-alice", 1_00), .cr("eur-fx", 1_00)])
      // a reversal is an entry with every leg mirrored
      try await s.ok("reverse", "g1")
      m.book([.cr("gold-vault", 1_250), .dr("gold-alice", 1_250)])
      try await m.post("e3", [.dr("eur-cash", 7_77), .cr("eur-alice", 7_77)])

      let expectedTotals = m.totals
      #expect(expectedTotals.map { $0["currency"] } == ["EUR", "GOLD", "JPY", "USD"])
      // EUR: 100.00 + 20.00 + 12.34 + 2.00 + 7.77
      #expect(expectedTotals[0]["debits"] == "14211")
      #expect(expectedTotals.allSatisfy { $0["debits"] == $0["credits"] })

      let head = try await s.headSeq()
      let cp = try await s.okJSON("checkpoint")
      #expect(try cp.int("size") == head)
      let cpText = try await s.ok("checkpoint", "--size", String(head)).stdout
      let vkeyOut = try await s.ok("vkey").stdout
      let vkey = try await s.verifierKey()
      #expect(vkey.hasPrefix(origin + "+"))

      let (dir, summary) = try await s.exportOK("exp")
      #expect(try summary.int("from") == 1)
      #expect(try summary.int("to") == head)
      #expect(try summary.int("events") == head)
      #expect(try summary.int("context") == 0)
      #expect(try summary.str("root") == (try cp.str("root")))
      #expect(try summary.str("chain") == (try cp.str("chain")))

      // The files, as docs/FORMAT.md describes them.
      #expect(try ExportKit.listing(dir) == ExportKit.files)
      #expect(
        try ExportKit.text(dir + "/manifest")
          == "tally-export 1\norigin \(origin)\nfrom 1\nto \(head)\nevents \(head)\ncontext 0\n")
      #expect(try ExportKit.text(dir + "/checkpoint") == cpText)
      #expect(try ExportKit.text(dir + "/checkpoint") == (try cp.str("note")))
      #expect(cpText.hasPrefix("\(origin)\n\(head)\n"))
      #expect(try ExportKit.text(dir + "/vkey") == vkeyOut)
      let hashesFile = try ExportKit.read(dir + "/hashes")
      #expect(hashesFile.count == 64 * head)
      #expect(try ExportKit.read(dir + "/prefix") == [UInt8](repeating: 0, count: 40))
      #expect(try ExportKit.read(dir + "/context").isEmpty)
      let treeFile = try ExportKit.read(dir + "/tree")
      #expect(treeFile.count == 32 * (head - ExportKit.popcount(head)))

      // Recomputed independently: seqs, timestamps, leaves, chain, root, tree nodes.
      let events = try ExportKit.records(try ExportKit.read(dir + "/events"))
      #expect(events.count == head)
      #expect(events.map(ExportKit.seq) == Array(1...head))
      #expect(
        zip(events, events.dropFirst()).allSatisfy {
          ExportKit.timestamp($0) < ExportKit.timestamp($1)
        })
      #expect(events.map(ExportKit.eventType).filter { $0 == 7 }.count == 2)  // two captures
      let h = ExportKit.hashes(of: events, start: [UInt8](repeating: 0, count: 32))
      #expect(zip(h.leaves, h.chains).flatMap { $0 + $1 } == hashesFile)
      #expect(ExportKit.hex(h.chains.last!) == (try cp.str("chain")))
      #expect(ExportKit.hex(ExportKit.mth(h.leaves[...])) == (try cp.str("root")))
      let nodes = ExportKit.treeRanges(p: 0, n: head).flatMap { ExportKit.mth(h.leaves[$0]) }
      #expect(nodes == treeFile)

      // verify --export
      let v = try await verifyExport(dir, vkey: vkey)
      expectVerified(v)
      #expect(v.json["events"] as? Int == head)
      #expect(v.json["from"] as? Int == 1)
      #expect(v.json["to"] as? Int == head)
      #expect(v.json["root"] as? String == (try cp.str("root")))
      #expect(v.json["chain"] as? String == (try cp.str("chain")))
      #expect(v.totals == expectedTotals, "\(v)")
      #expect(v.isFirstDifferenceNull)
      #expect(v.checkpoints.isEmpty)
      // the same totals as the ledger's own verify
      let dbVerify = try await s.okJSON("verify")
      let dbTotals = try dbVerify.arr("totals").compactMap { $0 as? [String: Any] }.map {
        $0.compactMapValues { $0 as? String }
      }
      #expect(dbTotals == expectedTotals)

      // the human form
      let text = try await runTally(["verify", "--export", dir, "--vkey", vkey])
      #expect(text.status == 0, "\(text)")
      #expect(
        text.stdout.hasPrefix(
          "ok: \(head) events (seq 1…\(head)), root \(try cp.str("root")), chain "
            + "\(try cp.str("chain"))\n"), "\(text)")
      for t in expectedTotals {
        #expect(
          text.stdout.contains(
            "  \(t["currency"]!): debits \(t["debits"]!) = credits \(t["credits"]!) (minor units)"
          ), "\(text)")
      }

      // exporting is read-only: the ledger still verifies and is unchanged
      #expect(try await s.headSeq() == head)
      #expect(try await s.tally("verify").status == 0)
    }
  }

  // MARK: 2. Partial exports

  /// A ledger where the range `from…to` captures holds placed before it, posts on accounts
  /// opened before it, and opens an account of its own; `head > to`.
  struct PartialFixture {
    var from = 0
    var to = 0
    var head = 0
    /// The seqs the context must hold: openings of alice, bob, cash, usd-a, usd-b; hA, hU.
    var contextSeqs = [Int]()
    var rangeTotals = [[String: String]]()
  }

  static func partialLedger(_ s: Scratch) async throws -> PartialFixture {
    var f = PartialFixture()
    var m = ModelLedger(data: s.data)
    try await s.ok("init", "--origin", "test.ledger/export-partial")
    var opened = [String: Int]()
    for (name, currency, extra) in [
      ("cash", "EUR", []), ("alice", "EUR", ["--normal", "credit"]),
      ("bob", "EUR", ["--normal", "credit"]), ("usd-a", "USD", []),
      ("usd-b", "USD", ["--normal", "credit"]), ("idle", "EUR", []),
    ] {
      opened[name] = try await m.open(name, currency, extra)
    }
    try await m.post("s1", [.dr("cash", 100_00), .cr("alice", 100_00)])
    try await m.post("u1", [.dr("usd-a", 50_00), .cr("usd-b", 50_00)])
    let hA = try await m.hold("hA", [.dr("alice", 20_00), .cr("bob", 20_00)])
    try await m.hold("hB", [.dr("alice", 10_00), .cr("bob", 10_00)])
    let hU = try await m.hold("hU", [.dr("usd-b", 5_00), .cr("usd-a", 5_00)])
    try await m.post("s2", [.dr("cash", 1_00), .cr("bob", 1_00)])
    m.resetTotals()
    f.from = try await m.capture("hA", uniform: 7_50)
    try await s.ok("hold", "release", "hB")
    try await m.post("s3", [.dr("alice", 3_00), .cr("bob", 3_00)])
    try await m.open("late", "EUR", ["--normal", "credit"])
    try await m.post("s4", [.dr("cash", 4_00), .cr("late", 4_00)])
    try await m.capture("hU")
    f.to = try await m.post("s5", [.dr("usd-a", 2_00), .cr("usd-b", 2_00)])
    f.rangeTotals = m.totals
    for i in 1...5 { try await m.post("tail-\(i)", [.dr("cash", i * 100), .cr("alice", i * 100)]) }
    f.head = try await s.headSeq()
    f.contextSeqs =
      (["alice", "bob", "cash", "usd-a", "usd-b"].map { opened[$0]! } + [hA, hU]).sorted()
    return f
  }

  @Test("partial exports: context, prefix and tree as documented; a range ending before head")
  func partialExports() async throws {
    try await withScratch { s in
      let f = try await Self.partialLedger(s)
      #expect(
        f.rangeTotals == [
          ["currency": "EUR", "debits": "1450", "credits": "1450"],
          ["currency": "USD", "debits": "700", "credits": "700"],
        ])
      #expect(f.from > 1 && f.to < f.head)
      let vkey = try await s.verifierKey()
      let full = try await s.exportOK("full")
      let fullEvents = try ExportKit.records(try ExportKit.read(full.dir + "/events"))
      let fullHashes = try ExportKit.read(full.dir + "/hashes")
      let leaves = ExportKit.hashes(of: fullEvents, start: [UInt8](repeating: 0, count: 32))
      #expect(zip(leaves.leaves, leaves.chains).flatMap { $0 + $1 } == fullHashes)

      let cpTo = try await s.okJSON("checkpoint", "--size", String(f.to))
      let cpToText = try await s.ok("checkpoint", "--size", String(f.to)).stdout
      let (dir, summary) = try await s.exportOK(
        "part", ["--from-seq", String(f.from), "--to-seq", String(f.to)])
      let p = f.from - 1
      let count = f.to - f.from + 1
      #expect(try summary.int("from") == f.from)
      #expect(try summary.int("to") == f.to)
      #expect(try summary.int("events") == count)
      #expect(try summary.int("context") == f.contextSeqs.count)
      #expect(try summary.str("root") == (try cpTo.str("root")))
      #expect(try summary.str("chain") == (try cpTo.str("chain")))
      #expect(try ExportKit.listing(dir) == ExportKit.files)
      #expect(
        try ExportKit.text(dir + "/manifest")
          == "tally-export 1\norigin test.ledger/export-partial\nfrom \(f.from)\nto \(f.to)\n"
          + "events \(count)\ncontext \(f.contextSeqs.count)\n")

      // the checkpoint covers exactly `to` (not the head)
      let note = try ExportKit.text(dir + "/checkpoint")
      #expect(note == cpToText)
      #expect(note.split(separator: "\n", omittingEmptySubsequences: false)[1] == "\(f.to)")

      // events and hashes: the slice from…to of the full export
      #expect(
        try ExportKit.records(try ExportKit.read(dir + "/events")) == Array(fullEvents[p..<f.to]))
      #expect(try ExportKit.read(dir + "/hashes") == Array(fullHashes[(64 * p)..<(64 * f.to)]))

      // prefix: p, chain[p], the subtree roots of the first p leaves, largest first
      let prefix = try ExportKit.read(dir + "/prefix")
      #expect(prefix.count == 40 + 32 * ExportKit.popcount(p))
      #expect(ExportKit.be(prefix, 0, 8) == UInt64(p))
      #expect(Array(prefix[8..<40]) == leaves.chains[p - 1])
      let roots = ExportKit.prefixRanges(p).flatMap { ExportKit.mth(leaves.leaves[$0]) }
      #expect(Array(prefix[40...]) == roots)

      // tree: every complete subtree of ≥ 2 leaves inside p ..< to
      let tree = try ExportKit.read(dir + "/tree")
      let ranges = ExportKit.treeRanges(p: p, n: f.to)
      #expect(!ranges.isEmpty)
      #expect(tree == ranges.flatMap { ExportKit.mth(leaves.leaves[$0]) })

      // context: the openings and placements the range refers to, with valid audit paths
      let context = try ExportKit.contextRecords(try ExportKit.read(dir + "/context"))
      #expect(context.map { ExportKit.seq($0.event) } == f.contextSeqs)
      let root = ExportKit.unhex(try cpTo.str("root"))
      for c in context {
        let seq = ExportKit.seq(c.event)
        #expect(c.event == fullEvents[seq - 1])
        #expect(
          ExportKit.rootFromInclusion(
            index: seq - 1, size: f.to, leaf: ExportKit.leaf(c.event), path: c.path) == root,
          "audit path of seq \(seq)")
      }
      #expect(!context.contains { ExportKit.firstString($0.event) == "idle" })
      #expect(!context.contains { ExportKit.firstString($0.event) == "hB" })

      let v = try await verifyExport(dir, vkey: vkey)
      expectVerified(v)
      #expect(v.json["from"] as? Int == f.from)
      #expect(v.json["to"] as? Int == f.to)
      #expect(v.json["events"] as? Int == count)
      #expect(v.json["root"] as? String == (try cpTo.str("root")))
      #expect(v.json["chain"] as? String == (try cpTo.str("chain")))
      #expect(v.totals == f.rangeTotals, "\(v)")

      // Other starts, to the head: p = from − 1 of every shape (0, powers of two, odd).
      let cpHead = try await s.okJSON("checkpoint")
      for from in [2, 3, 8, 9, 16, 17, f.head] where from <= f.head {
        let e = try await s.exportOK("from-\(from)", ["--from-seq", String(from)])
        #expect(try e.summary.int("events") == f.head - from + 1)
        #expect(
          try ExportKit.read(e.dir + "/prefix").count
            == 40 + 32 * ExportKit.popcount(from - 1), "from \(from)")
        #expect(try ExportKit.read(e.dir + "/hashes").count == 64 * (f.head - from + 1))
        let manifest = try ExportKit.text(e.dir + "/manifest")
        #expect(manifest.contains("\nfrom \(from)\nto \(f.head)\nevents \(f.head - from + 1)\n"))
        let v = try await verifyExport(e.dir, vkey: vkey)
        expectVerified(v)
        #expect(v.json["from"] as? Int == from)
        #expect(v.json["root"] as? String == (try cpHead.str("root")), "from \(from)")
      }
    }
  }

  @Test("a partial export's context is checked: audit paths and the events it must hold")
  func partialContextChecked() async throws {
    try await withScratch { s in
      let f = try await Self.partialLedger(s)
      let vkey = try await s.verifierKey()
      let (dir, _) = try await s.exportOK(
        "part", ["--from-seq", String(f.from), "--to-seq", String(f.to)])
      expectVerified(try await verifyExport(dir, vkey: vkey))

      // one byte of an audit path
      let bent = s.file("bent")
      try ExportKit.copy(dir, bent)
      var bytes = try ExportKit.read(bent + "/context")
      let firstLength = Int(ExportKit.be(bytes, 0, 4))
      #expect(bytes[4 + firstLength] > 0)  // the first record has an audit path
      bytes[4 + firstLength + 1 + 5] ^= 0x01
      try ExportKit.write(bent + "/context", bytes)
      let v1 = try await verifyExport(bent, vkey: vkey)
      expectRefused(v1)
      #expect(v1.seqs("context") == [f.contextSeqs[0]], "\(v1)")
      #expect(v1.messages("context").first?.contains("does not lead to the checkpoint") == true)

      // no context at all: the capture and the legs refer to nothing known
      let bare = s.file("bare")
      try ExportKit.copy(dir, bare)
      try ExportKit.write(bare + "/context", [])
      let v2 = try await verifyExport(bare, vkey: vkey)
      expectRefused(v2)
      #expect(v2.seqs("double_entry").contains(f.from), "\(v2)")
      #expect(v2.messages("double_entry").contains { $0.contains("captures hold hA") }, "\(v2)")
      #expect(
        v2.messages("double_entry").contains { $0.contains("not opened before") }, "\(v2)")
      // the events themselves are genuine
      #expect(v2.seqs("leaf").isEmpty && !v2.kinds.contains("root"), "\(v2)")

      // a context event claiming a seq inside the export
      let inside = s.file("inside")
      try ExportKit.copy(dir, inside)
      let events = try ExportKit.records(try ExportKit.read(dir + "/events"))
      let original = try ExportKit.read(dir + "/context")
      try ExportKit.write(
        inside + "/context", original + ExportKit.u32(events[0].count) + events[0] + [0])
      let v3 = try await verifyExport(inside, vkey: vkey)
      expectRefused(v3)
      #expect(v3.seqs("context") == [f.from], "\(v3)")
    }
  }

  // MARK: 3. Kept checkpoints

  @Test("checkpoints kept earlier: consistent, or cannot_check outside the export's range")
  func keptCheckpoints() async throws {
    try await withFundedLedger { s in
      let vkey = try await s.verifierKey()
      let cp3 = try await s.keepCheckpoint("cp3", size: 3)
      let cp8 = try await s.keepCheckpoint("cp8")
      #expect(try ExportKit.text(cp8).split(separator: "\n")[1] == "8")
      #expect(try ExportKit.text(cp3).split(separator: "\n")[1] == "3")
      try await s.postMany("k", count: 10, debit: "cash", credit: "bob")
      let cp18 = try await s.keepCheckpoint("cp18")
      let cp9 = try await s.keepCheckpoint("cp9", size: 9)
      #expect(try await s.headSeq() == 18)

      // the whole log: every kept checkpoint is consistent
      let full = try await s.exportOK("full")
      let v = try await verifyExport(full.dir, vkey: vkey, checkpoints: [cp18, cp3, cp8])
      expectVerified(v)
      #expect(v.checkpoints.count == 3)
      for (cp, size) in [(cp3, 3), (cp8, 8), (cp18, 18)] {
        #expect(v.status(of: cp) == "consistent", "\(v)")
        #expect(v.checkpoint(cp)?["size"] as? Int == size)
      }
      // the export's own checkpoint, kept, is consistent too
      let own = try await verifyExport(
        full.dir, vkey: vkey, checkpoints: [full.dir + "/checkpoint"])
      expectVerified(own)
      #expect(own.status(of: full.dir + "/checkpoint") == "consistent")

      // from seq 10 (p = 9): size 8 precedes it, size 9 = p is the boundary
      let late = try await s.exportOK("late", ["--from-seq", "10"])
      let vl = try await verifyExport(late.dir, vkey: vkey, checkpoints: [cp8, cp9, cp18])
      expectRefused(vl)
      #expect(vl.status(of: cp8) == "cannot_check", "\(vl)")
      #expect(vl.status(of: cp9) == "consistent", "\(vl)")
      #expect(vl.status(of: cp18) == "consistent", "\(vl)")
      #expect(vl.kinds == ["checkpoint"], "\(vl)")
      #expect(
        vl.messages("checkpoint").allSatisfy { $0.contains(cp8) && $0.contains("cannot check") })
      #expect(
        (vl.checkpoint(cp8)?["message"] as? String)?.contains("from seq 9 or earlier") == true)
      #expect(vl.isFirstDifferenceNull)
      // without the kept checkpoint that cannot be checked, the same export verifies
      expectVerified(try await verifyExport(late.dir, vkey: vkey, checkpoints: [cp9, cp18]))

      // to seq 12: size 18 is beyond it
      let early = try await s.exportOK("early", ["--to-seq", "12"])
      let ve = try await verifyExport(early.dir, vkey: vkey, checkpoints: [cp8, cp18])
      expectRefused(ve)
      #expect(ve.status(of: cp18) == "cannot_check", "\(ve)")
      #expect(ve.checkpoint(cp18)?["size"] as? Int == 18)
      #expect(ve.status(of: cp8) == "consistent", "\(ve)")
      #expect((ve.checkpoint(cp18)?["message"] as? String)?.contains("beyond the export") == true)

      // an export altered before a kept checkpoint's size: inconsistent with it, and the
      // first difference is found against the smaller signed tree
      let bad = s.file("bad")
      try ExportKit.copy(full.dir, bad)
      var events = try ExportKit.records(try ExportKit.read(bad + "/events"))
      #expect(ExportKit.firstString(events[4]) == "seed")
      events[4][20] ^= 0x20  // "seed" → "Seed"
      try ExportKit.write(bad + "/events", ExportKit.encode(events))
      let vb = try await verifyExport(bad, vkey: vkey, checkpoints: [cp3, cp8])
      expectRefused(vb)
      #expect(vb.status(of: cp3) == "consistent", "\(vb)")
      #expect(vb.status(of: cp8) == "inconsistent", "\(vb)")
      #expect(vb.firstKind == "altered" && vb.firstSeq == 5, "\(vb)")
      #expect((vb.first?["message"] as? String)?.contains(cp8) == true, "\(vb)")
    }
  }

  // MARK: 4. Tamper pinpointing

  /// A funded ledger plus 32 entries `t-1…t-32` (seq 9…40), exported whole.
  static func tamperFixture(_ s: Scratch) async throws -> (dir: String, vkey: String, n: Int) {
    try await s.postMany("t", count: 32, debit: "cash", credit: "bob", varying: true)
    let (dir, summary) = try await s.exportOK("exp")
    let n = try summary.int("to")
    #expect(n == 40)
    let vkey = try await s.verifierKey()
    return (dir, vkey, n)
  }

  /// Copies the export to ROOT/name, lets `change` rewrite its event records; the copy.
  static func tampered(
    _ s: Scratch, _ dir: String, _ name: String, _ change: (inout [[UInt8]]) throws -> Void
  ) throws -> String {
    let copy = s.file(name)
    try ExportKit.copy(dir, copy)
    var events = try ExportKit.records(try ExportKit.read(copy + "/events"))
    try change(&events)
    try ExportKit.write(copy + "/events", ExportKit.encode(events))
    return copy
  }

  static let middle = 21

  static func position(_ at: String, n: Int) -> Int {
    switch at {
    case "first": 1
    case "last": n
    case "penultimate": n - 1
    default: middle
    }
  }

  @Test(
    "an altered event is pinpointed: altered at that seq", arguments: ["first", "middle", "last"])
  func alteredEvent(_ at: String) async throws {
    try await withFundedLedger { s in
      let (dir, vkey, n) = try await Self.tamperFixture(s)
      let k = Self.position(at, n: n)
      let copy = try Self.tampered(s, dir, "altered") { events in
        let byte = events[k - 1][20]
        try #require((65...90).contains(byte) || (97...122).contains(byte))
        events[k - 1][20] ^= 0x20  // an id's first letter changes case: still decodes
      }
      let v = try await verifyExport(copy, vkey: vkey)
      expectRefused(v)
      #expect(v.firstKind == "altered", "\(v)")
      #expect(v.firstSeq == k, "\(v)")
      #expect(v.seqs("leaf") == [k], "\(v)")
      #expect(v.kinds.contains("root"), "\(v)")
      #expect(!v.kinds.contains("decode") && !v.kinds.contains("sequence"), "\(v)")
      // the human form names it too
      let text = try await runTally(["verify", "--export", copy, "--vkey", vkey])
      #expect(text.status == 1)
      #expect(text.stdout.hasPrefix("FAILED: "), "\(text)")
      #expect(text.stdout.contains("first difference: altered at seq \(k): "), "\(text)")
      // the untouched export still verifies
      expectVerified(try await verifyExport(dir, vkey: vkey))
    }
  }

  @Test("an undecodable event: a decode problem and altered at that seq")
  func undecodableEvent() async throws {
    try await withFundedLedger { s in
      let (dir, vkey, _) = try await Self.tamperFixture(s)
      let k = Self.middle
      let copy = try Self.tampered(s, dir, "garbled") { events in
        events[k - 1][1] = 0xEE  // unknown event type
      }
      let v = try await verifyExport(copy, vkey: vkey)
      expectRefused(v)
      #expect(v.seqs("decode") == [k], "\(v)")
      #expect(v.firstKind == "altered" && v.firstSeq == k, "\(v)")
    }
  }

  @Test("a removed event is pinpointed: missing at that seq", arguments: ["middle", "last"])
  func missingEvent(_ at: String) async throws {
    try await withFundedLedger { s in
      let (dir, vkey, n) = try await Self.tamperFixture(s)
      let k = Self.position(at, n: n)
      let copy = try Self.tampered(s, dir, "missing") { events in events.remove(at: k - 1) }
      let v = try await verifyExport(copy, vkey: vkey)
      expectRefused(v)
      #expect(v.firstKind == "missing", "\(v)")
      #expect(v.firstSeq == k, "\(v)")
      #expect(v.json["events"] as? Int == n - 1)
      #expect(v.messages("file").contains { $0.contains("holds \(n - 1) records") }, "\(v)")
      if k < n { #expect(v.seqs("sequence").contains(k), "\(v)") }
    }
  }

  @Test(
    "two swapped events are pinpointed: reordered at the first",
    arguments: ["first", "middle", "penultimate"])
  func reorderedEvents(_ at: String) async throws {
    try await withFundedLedger { s in
      let (dir, vkey, n) = try await Self.tamperFixture(s)
      let k = Self.position(at, n: n)
      let copy = try Self.tampered(s, dir, "swapped") { events in events.swapAt(k - 1, k) }
      let v = try await verifyExport(copy, vkey: vkey)
      expectRefused(v)
      #expect(v.firstKind == "reordered", "\(v)")
      #expect(v.firstSeq == k, "\(v)")
      #expect(v.seqs("sequence").contains(k), "\(v)")
      #expect(v.json["events"] as? Int == n)
    }
  }

  @Test(
    "an event inserted is pinpointed: inserted before that seq", arguments: ["first", "middle"])
  func insertedEvent(_ at: String) async throws {
    try await withFundedLedger { s in
      let (dir, vkey, n) = try await Self.tamperFixture(s)
      let k = Self.position(at, n: n)
      let copy = try Self.tampered(s, dir, "inserted") { events in
        events.insert(events[4], at: k - 1)  // a copy of seq 5
      }
      let v = try await verifyExport(copy, vkey: vkey)
      expectRefused(v)
      #expect(v.firstKind == "inserted", "\(v)")
      #expect(v.firstSeq == k, "\(v)")
      #expect((v.first?["message"] as? String)?.contains("claiming seq 5") == true, "\(v)")
      #expect(v.json["events"] as? Int == n + 1)
    }
  }

  @Test("an altered event with hashes rewritten to match: hashes_altered around that seq")
  func hashesRewritten() async throws {
    try await withFundedLedger { s in
      let (dir, vkey, n) = try await Self.tamperFixture(s)
      let k = Self.middle
      let copy = try Self.tampered(s, dir, "rewritten") { events in events[k - 1][20] ^= 0x20 }
      try ExportKit.rewriteHashes(copy)
      #expect(try ExportKit.read(copy + "/hashes") != (try ExportKit.read(dir + "/hashes")))
      let v = try await verifyExport(copy, vkey: vkey)
      expectRefused(v)
      // the files agree with each other: no leaf or chain record differs…
      #expect(v.seqs("leaf").isEmpty, "\(v)")
      #expect(v.of("chain").allSatisfy { ($0["seq"] as? Int) == n }, "\(v)")
      // …but not with the signed root
      #expect(v.kinds.contains("root"), "\(v)")
      #expect(v.firstKind == "hashes_altered", "\(v)")
      let range = try #require(ExportKit.seqRange(v.first?["message"] as? String ?? ""), "\(v)")
      #expect(range.contains(k), "\(range) in \(v)")
      #expect(range.count < n, "\(range): narrowed below the whole log")
      #expect(v.firstSeq == range.lowerBound)
    }
  }

  @Test("an event appended after the signed size is not reported as an altered genuine event")
  func appendedEvent() async throws {
    try await withFundedLedger { s in
      let (dir, vkey, n) = try await Self.tamperFixture(s)
      let copy = try Self.tampered(s, dir, "appended") { events in events.append(events[4]) }
      let v = try await verifyExport(copy, vkey: vkey)
      expectRefused(v)
      #expect(v.messages("file").contains { $0.contains("holds \(n + 1) records") }, "\(v)")
      // Events 1…n are exactly the signed ones; naming seq n as altered is wrong.
      #expect(!(v.firstKind == "altered" && v.firstSeq == n), "\(v)")
      #expect(v.firstKind == "inserted" && v.firstSeq == n + 1, "\(v)")
    }
  }

  // MARK: 5. Signatures and keys

  @Test("the wrong verifier key, an edited checkpoint, a key file, a malformed key")
  func signaturesAndKeys() async throws {
    try await withScratch { s in
      try await s.ok("init", "--origin", "test.ledger/sig")
      try await s.ok("account", "open", "cash", "--currency", "EUR")
      try await s.ok("account", "open", "bob", "--currency", "EUR", "--normal", "credit")
      try await s.postMany("s", count: 5, debit: "cash", credit: "bob")
      let vkey = try await s.verifierKey()
      let (dir, _) = try await s.exportOK("exp")
      expectVerified(try await verifyExport(dir, vkey: vkey))
      let cp4 = try await s.keepCheckpoint("cp4", size: 4)

      // another ledger with the same origin: same name, another key
      let other = s.file("other")
      #expect(try await s.tally(at: other, ["init", "--origin", "test.ledger/sig"]).status == 0)
      let otherKey = try await s.verifierKey(data: other)
      #expect(otherKey != vkey && otherKey.hasPrefix("test.ledger/sig+"))
      let w = try await verifyExport(dir, vkey: otherKey)
      expectRefused(w)
      #expect(w.kinds.contains("signature"), "\(w)")
      #expect(w.messages("signature").contains { $0.contains("the export's checkpoint") })
      #expect(!w.kinds.contains("manifest"), "same origin: only the signature differs: \(w)")
      // a kept checkpoint under the wrong key is invalid
      let wk = try await verifyExport(dir, vkey: otherKey, checkpoints: [cp4])
      #expect(wk.status(of: cp4) == "invalid", "\(wk)")

      // another origin: the signature and the manifest's origin
      let third = s.file("third")
      #expect(try await s.tally(at: third, ["init", "--origin", "test.ledger/third"]).status == 0)
      let w3 = try await verifyExport(dir, vkey: try await s.verifierKey(data: third))
      expectRefused(w3)
      #expect(w3.kinds.contains("signature") && w3.kinds.contains("manifest"), "\(w3)")

      // the export's checkpoint with its size edited
      let edited = s.file("edited")
      try ExportKit.copy(dir, edited)
      let note = try ExportKit.text(edited + "/checkpoint")
      #expect(note.hasPrefix("test.ledger/sig\n8\n"))
      try ExportKit.write(
        edited + "/checkpoint",
        text: note.replacingOccurrences(of: "test.ledger/sig\n8\n", with: "test.ledger/sig\n7\n"))
      let ve = try await verifyExport(edited, vkey: vkey)
      expectRefused(ve)
      #expect(ve.messages("signature").contains { $0.contains("the export's checkpoint") }, "\(ve)")

      // a kept checkpoint with its size edited: invalid, the export is otherwise fine
      let cpEdited = s.file("cp4-edited")
      try ExportKit.write(
        cpEdited,
        text: try ExportKit.text(cp4).replacingOccurrences(
          of: "test.ledger/sig\n4\n", with: "test.ledger/sig\n5\n"))
      #expect(try ExportKit.text(cpEdited) != (try ExportKit.text(cp4)))
      let vk = try await verifyExport(dir, vkey: vkey, checkpoints: [cpEdited, cp4])
      expectRefused(vk)
      #expect(vk.status(of: cpEdited) == "invalid", "\(vk)")
      #expect(vk.checkpoint(cpEdited)?["size"] is NSNull, "\(vk)")
      #expect(vk.status(of: cp4) == "consistent", "\(vk)")
      #expect(vk.messages("signature").contains { $0.contains(cpEdited) }, "\(vk)")
      #expect(vk.kinds == ["signature"], "\(vk)")

      // a file holding the key works as the key itself
      let keyFile = s.file("trusted.vkey")
      try ExportKit.write(keyFile, text: vkey + "\n")
      let literal = try await runTally(["--json", "verify", "--export", dir, "--vkey", vkey])
      let fromFile = try await runTally(["--json", "verify", "--export", dir, "--vkey", keyFile])
      #expect(literal.status == 0 && fromFile.status == 0, "\(literal)\n\(fromFile)")
      #expect(fromFile.stdout == literal.stdout)
      let exportCopy = try await runTally(
        ["--json", "verify", "--export", dir, "--vkey", dir + "/vkey"])
      #expect(exportCopy.stdout == literal.stdout)
      // and a wrong key from a file fails the same way as the literal
      let otherFile = s.file("other.vkey")
      try ExportKit.write(otherFile, text: otherKey + "\n")
      let wrongFile = try await runTally(
        ["--json", "verify", "--export", dir, "--vkey", otherFile])
      let wrongLiteral = try await runTally(
        ["--json", "verify", "--export", dir, "--vkey", otherKey])
      #expect(wrongFile.status == 1 && wrongFile.stdout == wrongLiteral.stdout)

      // malformed keys
      let m1 = try await verifyExport(dir, vkey: "test.ledger/sig+1234+AAAA")
      expectRefused(m1)
      #expect(m1.messages("signature").contains { $0.contains("not of the form") }, "\(m1)")
      // right shape, a changed public key byte
      // (the base64 may itself contain "+": split at the first two only)
      var parts = vkey.split(separator: "+", maxSplits: 2).map(String.init)
      try #require(parts.count == 3)
      var b64 = Array(parts[2])
      try #require(b64.count == 44)
      b64[20] = b64[20] == "A" ? "B" : "A"
      parts[2] = String(b64)
      let m2 = try await verifyExport(dir, vkey: parts.joined(separator: "+"))
      expectRefused(m2)
      #expect(m2.kinds.contains("signature"), "\(m2)")
      // an empty key file
      let empty = s.file("empty.vkey")
      try ExportKit.write(empty, [])
      expectRefused(try await verifyExport(dir, vkey: empty))
      // a key file that does not exist: a usage error
      let missing = try await runTally(["verify", "--export", dir, "--vkey", s.file("no-such-key")])
      #expect(missing.status == 2, "\(missing)")
      #expect(missing.stderr.contains("cannot read"), "\(missing)")
      // no key at all
      let none = try await runTally(["verify", "--export", dir])
      #expect(none.status == 2, "\(none)")
      #expect(none.stderr.contains("--vkey"), "\(none)")
    }
  }

  // MARK: 6. Forks

  @Test("two copies of a data directory that diverge: a fork, with or without an export")
  func forks() async throws {
    try await withScratch { s in
      try await s.ok("init", "--origin", "test.ledger/fork")
      try await s.ok("account", "open", "cash", "--currency", "EUR")
      try await s.ok("account", "open", "bob", "--currency", "EUR", "--normal", "credit")
      try await s.ok("post", "--id", "shared", "--debit", "cash=1.00", "--credit", "bob=1.00")
      let shared = try await s.headSeq()
      #expect(shared == 4)

      let b = s.file("data-b")
      try ExportKit.copy(s.data, b)
      if ExportKit.exists(b + "/tally.lock") {
        try FileManager.default.removeItem(atPath: b + "/tally.lock")
      }
      let vkey = try await s.verifierKey()
      #expect(try await s.verifierKey(data: b) == vkey)

      try await s.postMany("a", count: 3, debit: "cash", credit: "bob", amount: 100)
      try await s.postMany("b", count: 3, debit: "cash", credit: "bob", amount: 200, data: b)
      #expect(try await s.headSeq() == 7)
      #expect(try await s.headSeq(data: b) == 7)
      let cpA7 = try await s.keepCheckpoint("a7")
      let cpB7 = try await s.keepCheckpoint("b7", data: b)
      let cpB4 = try await s.keepCheckpoint("b4", size: 4, data: b)
      #expect(try ExportKit.text(cpA7) != (try ExportKit.text(cpB7)))
      try await s.postMany("a2", count: 3, debit: "cash", credit: "bob", amount: 300)
      let cpA10 = try await s.keepCheckpoint("a10")

      // checkpoints only: two signed trees of size 7 with different roots
      let f = try await verifyCheckpoints(vkey: vkey, [cpA7, cpB7])
      expectRefused(f)
      #expect(f.kinds == ["fork"], "\(f)")
      #expect(f.seqs("fork") == [7], "\(f)")
      #expect(f.checkpoints.map { $0["size"] as? Int } == [7, 7])
      #expect((f.checkpoints[0]["root"] as? String) != (f.checkpoints[1]["root"] as? String))
      let text = try await runTally([
        "verify", "--vkey", vkey, "--checkpoint", cpA7, "--checkpoint", cpB7,
      ])
      #expect(text.status == 1)
      #expect(
        text.stdout.contains("FAILED") && text.stdout.contains("the log was forked"), "\(text)")
      // no fork among one history's checkpoints, nor between sizes
      let fine = try await verifyCheckpoints(vkey: vkey, [cpA7, cpA10, cpB4, cpA7])
      #expect(fine.status == 0 && fine.ok == true && fine.problems.isEmpty, "\(fine)")
      // a checkpoint that does not verify is reported, not taken for a fork
      let forged = s.file("forged")
      try ExportKit.write(
        forged, text: try ExportKit.text(cpB7).replacingOccurrences(of: "\n7\n", with: "\n6\n"))
      let fv = try await verifyCheckpoints(vkey: vkey, [cpA7, forged])
      expectRefused(fv)
      #expect(fv.kinds == ["signature"], "\(fv)")

      // A's whole log (size 10) against B's checkpoints
      let ea = try await s.exportOK("a-full")
      let v = try await verifyExport(ea.dir, vkey: vkey, checkpoints: [cpB7, cpB4])
      expectRefused(v)
      #expect(v.status(of: cpB7) == "fork", "\(v)")
      #expect(v.status(of: cpB4) == "consistent", "\(v)")
      #expect(v.kinds.contains("fork") && v.seqs("fork").contains(7), "\(v)")
      #expect(!v.kinds.contains("leaf") && !v.kinds.contains("root"), "the export is genuine: \(v)")
      expectVerified(try await verifyExport(ea.dir, vkey: vkey, checkpoints: [cpA7, cpA10]))

      // A's first 7 events against B's checkpoint of the same size
      let a7 = try await s.exportOK("a-7", ["--to-seq", "7"])
      let v7 = try await verifyExport(a7.dir, vkey: vkey, checkpoints: [cpB7])
      expectRefused(v7)
      #expect(v7.status(of: cpB7) == "fork", "\(v7)")
      #expect(v7.seqs("fork") == [7], "\(v7)")
      // and B's export against A's checkpoint
      let eb = try await s.exportOK("b-full", data: b)
      let vb = try await verifyExport(eb.dir, vkey: vkey, checkpoints: [cpA7])
      expectRefused(vb)
      #expect(vb.status(of: cpA7) == "fork", "\(vb)")
      // both copies still verify on their own
      #expect(try await s.tally(at: b, ["verify"]).status == 0)
      #expect(try await s.tally("verify").status == 0)
    }
  }

  // MARK: 7. Bad inputs

  @Test("export refuses bad ranges and non-empty output directories, changing nothing")
  func exportRefusals() async throws {
    try await withFundedLedger { s in
      let head = try await s.headSeq()
      #expect(head == 8)
      for (args, message) in [
        (["--from-seq", "0"], "--from-seq must be 1…\(head), got 0"),
        (["--from-seq", "5", "--to-seq", "3"], "--from-seq must be 1…3, got 5"),
        (["--to-seq", "\(head + 1)"], "--to-seq \(head + 1) > head \(head)"),
        (["--from-seq", "\(head + 1)"], "--from-seq must be 1…\(head), got \(head + 1)"),
        (["--from-seq", "-1"], "--from-seq"),
      ] {
        let out = s.file("out")
        let r = try await s.tally(["export", "--out", out] + args)
        #expect(r.status == 2, "\(r)")
        #expect(r.stderr.contains(message), "\(r)")
        #expect(r.stdout.isEmpty, "\(r)")
        #expect(!ExportKit.exists(out), "nothing is created: \(r)")
      }
      let j = try await s.tally("--json", "export", "--out", s.file("out"), "--to-seq", "99")
      #expect(j.status == 2)
      let error = try j.object().obj("error")
      #expect(try error.str("code") == "USAGE")
      #expect(try error.str("message") == "--to-seq 99 > head \(head)")

      // an output directory that is not empty: refused, its content untouched
      let busy = s.file("busy")
      try FileManager.default.createDirectory(atPath: busy, withIntermediateDirectories: false)
      try ExportKit.write(busy + "/events", text: "keep me")
      let r = try await s.tally("export", "--out", busy)
      #expect(r.status == 2, "\(r)")
      #expect(r.stderr.contains("is not empty"), "\(r)")
      #expect(try ExportKit.listing(busy) == ["events"])
      #expect(try ExportKit.text(busy + "/events") == "keep me")
      // a regular file in the way
      let plain = s.file("plain")
      try ExportKit.write(plain, text: "a file")
      let rf = try await s.tally("export", "--out", plain)
      #expect(rf.status == 2, "\(rf)")
      #expect(try ExportKit.text(plain) == "a file")
      // a parent that does not exist
      let deep = try await s.tally("export", "--out", s.file("no/such/dir"))
      #expect(deep.status == 2 && deep.stderr.contains("cannot create"), "\(deep)")
      // an empty existing directory is fine
      let empty = s.file("empty")
      try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: false)
      #expect(try await s.tally("export", "--out", empty).status == 0)
      #expect(try ExportKit.listing(empty) == ExportKit.files)
      // and exporting again into it is refused, leaving the export as it was
      let before = try ExportKit.files.map { try ExportKit.read(empty + "/" + $0) }
      #expect(try await s.tally("export", "--out", empty, "--from-seq", "2").status == 2)
      #expect(try ExportKit.files.map { try ExportKit.read(empty + "/" + $0) } == before)
      #expect(try await s.headSeq() == head)
    }
  }

  @Test("verify --export with a file missing, a truncated or an empty events file")
  func damagedFiles() async throws {
    try await withFundedLedger { s in
      let vkey = try await s.verifierKey()
      let (dir, _) = try await s.exportOK("exp", ["--from-seq", "3"])
      expectVerified(try await verifyExport(dir, vkey: vkey))
      // every file the verifier reads
      for name in ExportKit.files where name != "vkey" {
        let copy = s.file("without-\(name)")
        try ExportKit.copy(dir, copy)
        try FileManager.default.removeItem(atPath: copy + "/" + name)
        let v = try await verifyExport(copy, vkey: vkey)
        expectRefused(v)
        #expect(v.messages("file").contains { $0.contains(copy + "/" + name + ":") }, "\(v)")
      }
      // the export's own copy of the key is for convenience only: never trusted nor needed
      let noKey = s.file("without-vkey")
      try ExportKit.copy(dir, noKey)
      try FileManager.default.removeItem(atPath: noKey + "/vkey")
      expectVerified(try await verifyExport(noKey, vkey: vkey))

      let n = 8
      // cut inside the last record
      let cut = s.file("cut")
      try ExportKit.copy(dir, cut)
      let events = try ExportKit.read(dir + "/events")
      try ExportKit.write(cut + "/events", Array(events.dropLast(3)))
      let vc = try await verifyExport(cut, vkey: vkey)
      expectRefused(vc)
      #expect(vc.messages("file").contains { $0.contains("ends inside a record") }, "\(vc)")
      #expect(vc.firstKind == "missing" && vc.firstSeq == n, "\(vc)")
      // trailing bytes after the last record
      let trailing = s.file("trailing")
      try ExportKit.copy(dir, trailing)
      try ExportKit.write(trailing + "/events", events + [0, 0])
      let vt = try await verifyExport(trailing, vkey: vkey)
      expectRefused(vt)
      #expect(vt.kinds.contains("file"), "\(vt)")
      // an empty events file
      let hollow = s.file("hollow")
      try ExportKit.copy(dir, hollow)
      try ExportKit.write(hollow + "/events", [])
      let vh = try await verifyExport(hollow, vkey: vkey)
      expectRefused(vh)
      #expect(vh.json["events"] as? Int == 0)
      #expect(vh.firstKind == "missing" && vh.firstSeq == 3, "\(vh)")
      // hashes cut short
      let short = s.file("short")
      try ExportKit.copy(dir, short)
      try ExportKit.write(
        short + "/hashes", Array(try ExportKit.read(dir + "/hashes").dropLast(64)))
      let vs = try await verifyExport(short, vkey: vkey)
      expectRefused(vs)
      #expect(vs.messages("file").contains { $0.contains("hashes") }, "\(vs)")
      // a manifest that is not the documented lines
      let odd = s.file("odd")
      try ExportKit.copy(dir, odd)
      try ExportKit.write(
        odd + "/manifest", text: try ExportKit.text(dir + "/manifest") + "extra 1\n")
      let vo = try await verifyExport(odd, vkey: vkey)
      expectRefused(vo)
      #expect(vo.kinds == ["manifest"], "\(vo)")
      // a prefix of the wrong length
      let bent = s.file("bent")
      try ExportKit.copy(dir, bent)
      try ExportKit.write(bent + "/prefix", Array(try ExportKit.read(dir + "/prefix").dropLast(32)))
      let vp = try await verifyExport(bent, vkey: vkey)
      expectRefused(vp)
      #expect(vp.kinds.contains("prefix"), "\(vp)")
    }
  }

  @Test("the manifest's context count is checked against the context file")
  func manifestContextCount() async throws {
    try await withFundedLedger { s in
      let vkey = try await s.verifierKey()
      let (dir, summary) = try await s.exportOK("exp", ["--from-seq", "5"])
      let c = try summary.int("context")
      #expect(c > 0)
      let copy = s.file("copy")
      try ExportKit.copy(dir, copy)
      let manifest = try ExportKit.text(dir + "/manifest")
      #expect(manifest.hasSuffix("\ncontext \(c)\n"))
      try ExportKit.write(
        copy + "/manifest",
        text: manifest.replacingOccurrences(of: "\ncontext \(c)\n", with: "\ncontext \(c + 5)\n"))
      let v = try await verifyExport(copy, vkey: vkey)
      #expect(v.status == 1 && v.kinds.contains("manifest"), "\(v)")
    }
  }

  // MARK: 8. Double entry

  @Test("an unbalanced entry with consistent hashes: double_entry at its seq, root differs")
  func unbalancedEntry() async throws {
    try await withScratch { s in
      var m = ModelLedger(data: s.data)
      try await s.ok("init", "--origin", "test.ledger/books")
      try await m.open("cash", "EUR")
      try await m.open("alice", "EUR", ["--normal", "credit"])
      try await m.open("usd-a", "USD")
      try await m.open("usd-b", "USD", ["--normal", "credit"])
      try await m.post("d0", [.dr("cash", 5_00), .cr("alice", 5_00)])
      let k = try await m.post(
        "de-1", [.dr("cash", 10_00), .cr("alice", 10_00), .dr("usd-a", 3_00), .cr("usd-b", 3_00)])
      try await m.post("d2", [.dr("usd-a", 1_00), .cr("usd-b", 1_00)])
      let vkey = try await s.verifierKey()
      let (dir, _) = try await s.exportOK("exp")
      expectVerified(try await verifyExport(dir, vkey: vkey))

      func unbalance(_ events: inout [[UInt8]]) throws {
        let e = events[k - 1]
        try #require(ExportKit.eventType(e) == 5 && ExportKit.firstString(e) == "de-1")
        let legs = ExportKit.legs(e)
        try #require(legs.map(\.account) == ["cash", "usd-a", "alice", "usd-b"])
        try #require(legs[0].side == 0 && ExportKit.i128(e, at: legs[0].amountAt) == 10_00)
        ExportKit.setI128(&events[k - 1], at: legs[0].amountAt, 10_01)
      }

      // with hashes rewritten to agree
      let forged = try Self.tampered(s, dir, "forged", unbalance)
      try ExportKit.rewriteHashes(forged)
      let v = try await verifyExport(forged, vkey: vkey)
      expectRefused(v)
      #expect(v.seqs("double_entry") == [k], "\(v)")
      #expect(
        v.messages("double_entry").first
          == "entry de-1 does not balance in EUR: debits − credits = 1", "\(v)")
      #expect(v.kinds.contains("root"), "\(v)")
      #expect(v.seqs("leaf").isEmpty, "\(v)")
      #expect(v.firstKind == "hashes_altered", "\(v)")
      #expect(ExportKit.seqRange(v.first?["message"] as? String ?? "")?.contains(k) == true)
      // the unbalanced entry is not in the totals
      #expect(
        v.totals == [
          ["currency": "EUR", "debits": "500", "credits": "500"],
          ["currency": "USD", "debits": "100", "credits": "100"],
        ], "\(v)")

      // the same edit, hashes left alone
      let plain = try Self.tampered(s, dir, "plain", unbalance)
      let vp = try await verifyExport(plain, vkey: vkey)
      expectRefused(vp)
      #expect(vp.seqs("leaf") == [k], "\(vp)")
      #expect(vp.seqs("double_entry") == [k], "\(vp)")
      #expect(vp.firstKind == "altered" && vp.firstSeq == k, "\(vp)")

      // a leg naming an account never opened
      let ghost = try Self.tampered(s, dir, "ghost") { events in
        let legs = ExportKit.legs(events[k - 1])
        let at = legs[2].amountAt - 1 - 5  // the name "alice"
        try #require(String(decoding: events[k - 1][at..<(at + 5)], as: UTF8.self) == "alice")
        events[k - 1][at + 4] = UInt8(ascii: "x")  // "alicx"
      }
      try ExportKit.rewriteHashes(ghost)
      let vg = try await verifyExport(ghost, vkey: vkey)
      expectRefused(vg)
      #expect(vg.seqs("double_entry") == [k], "\(vg)")
      #expect(
        vg.messages("double_entry").first?.contains("account alicx, not opened before") == true)
    }
  }

  @Test("an unbalanced or excessive capture of a hold placed before a partial export")
  func unbalancedCapture() async throws {
    try await withScratch { s in
      let f = try await Self.partialLedger(s)
      let vkey = try await s.verifierKey()
      let (dir, _) = try await s.exportOK(
        "part", ["--from-seq", String(f.from), "--to-seq", String(f.to)])
      expectVerified(try await verifyExport(dir, vkey: vkey))
      // the first exported event is the capture of hA (20.00 held per leg; 7.50 captured)
      let events = try ExportKit.records(try ExportKit.read(dir + "/events"))
      try #require(ExportKit.eventType(events[0]) == 7 && ExportKit.firstString(events[0]) == "hA")
      let offsets = ExportKit.capturedAmountOffsets(events[0])
      try #require(offsets.count == 2)
      #expect(offsets.map { ExportKit.i128(events[0], at: $0) } == [7_50, 7_50])

      // one leg changed: unbalanced
      let one = try Self.tampered(s, dir, "one") { ev in
        ExportKit.setI128(&ev[0], at: offsets[1], 7_00)
      }
      try ExportKit.rewriteHashes(one)
      let v1 = try await verifyExport(one, vkey: vkey)
      expectRefused(v1)
      #expect(v1.seqs("double_entry") == [f.from], "\(v1)")
      #expect(
        v1.messages("double_entry").first?.contains("the capture of hA does not balance in EUR")
          == true, "\(v1)")

      // both legs more than was held: balanced, but beyond the hold
      let both = try Self.tampered(s, dir, "both") { ev in
        for o in offsets { ExportKit.setI128(&ev[0], at: o, 20_01) }
      }
      try ExportKit.rewriteHashes(both)
      let v2 = try await verifyExport(both, vkey: vkey)
      expectRefused(v2)
      #expect(v2.seqs("double_entry") == [f.from], "\(v2)")
      #expect(v2.messages("double_entry").first?.contains("outside 0…2000") == true, "\(v2)")
      #expect(v2.kinds.contains("root"))
    }
  }

  // MARK: A larger log

  @Test("3,000 events: a partial export at unaligned bounds verifies; a deep alteration is found")
  func largerLog() async throws {
    try await withFundedLedger { s in
      try await s.postMany("big", count: 3000, debit: "cash", credit: "bob", varying: true)
      let head = try await s.headSeq()
      #expect(head == 3008)
      let vkey = try await s.verifierKey()
      let cp1500 = try await s.keepCheckpoint("cp1500", size: 1500)
      let cp2777 = try await s.keepCheckpoint("cp2777", size: 2777)
      let (dir, summary) = try await s.exportOK("part", ["--from-seq", "1001", "--to-seq", "2777"])
      #expect(try summary.int("events") == 1777)
      #expect(try ExportKit.read(dir + "/prefix").count == 40 + 32 * ExportKit.popcount(1000))
      let v = try await verifyExport(dir, vkey: vkey, checkpoints: [cp1500, cp2777])
      expectVerified(v)
      #expect(v.status(of: cp1500) == "consistent" && v.status(of: cp2777) == "consistent")
      // 1777 entries of cash → bob, amounts 100 + line: lines 1001−8 … 2777−8
      let sum = (993...2769).reduce(0) { $0 + 100 + $1 }
      #expect(v.totals == [["currency": "EUR", "debits": String(sum), "credits": String(sum)]])

      let k = 2345
      let copy = try Self.tampered(s, dir, "deep") { events in
        #expect(ExportKit.seq(events[k - 1001]) == k)
        events[k - 1001][20] ^= 0x20
      }
      let vd = try await verifyExport(copy, vkey: vkey, checkpoints: [cp1500])
      expectRefused(vd)
      #expect(vd.status(of: cp1500) == "consistent", "\(vd)")
      #expect(vd.firstKind == "altered" && vd.firstSeq == k, "\(vd)")
      #expect(vd.seqs("leaf") == [k], "\(vd)")
    }
  }
}

extension ExportVerdict {
  var isFirstDifferenceNull: Bool { json["first_difference"] is NSNull }
}
