import Foundation
import TallyTestSupport
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// SIGKILL `tally post --file` mid-run, again and again: after each kill the ledger verifies
/// and holds exactly a prefix of the file, in order; finishing the file applies the rest once.
///
/// Size and seed: `TALLY_CRASH_ENTRIES` (default 200,000 entries over 100 accounts) and
/// `TALLY_CRASH_SEED` (default below) drive the file and the kill delays (100…1500 ms,
/// counted from the run's first new commit so that every kill lands while it is writing,
/// not while it re-reads the prefix already applied). Each round prints its delay and prefix.
@Suite("crash consistency")
struct CrashTests {
  static let defaultSeed: UInt64 = 0x7A11_2026
  static let accounts = 100
  static let rounds = 5

  struct Line {
    var debit: Int
    var credit: Int
    var amount: Int
  }

  static func id(_ i: Int) -> String {
    let s = String(i)
    return "e-" + String(repeating: "0", count: max(0, 6 - s.count)) + s
  }

  static func account(_ n: Int) -> String { n < 10 ? "a0\(n)" : "a\(n)" }

  static func legsJSON(_ l: Line) -> String {
    #"[{"account":"\#(account(l.debit))","side":"debit","amount":"\#(l.amount)"},"#
      + #"{"account":"\#(account(l.credit))","side":"credit","amount":"\#(l.amount)"}]"#
  }

  /// Whether a parsed `log --json` event is entry `index` (0-based) of the file at `seq`.
  static func matches(_ e: [String: Any], seq: Int, index: Int, lines: [Line]) -> Bool {
    guard lines.indices.contains(index), (e["seq"] as? Int) == seq,
      (e["type"] as? String) == "entry_posted", (e["id"] as? String) == id(index + 1),
      let legs = e["legs"] as? [[String: Any]], legs.count == 2
    else { return false }
    let want = lines[index]
    let amount = String(want.amount)
    return (legs[0]["account"] as? String) == account(want.debit)
      && (legs[0]["side"] as? String) == "debit" && (legs[0]["amount"] as? String) == amount
      && (legs[1]["account"] as? String) == account(want.credit)
      && (legs[1]["side"] as? String) == "credit" && (legs[1]["amount"] as? String) == amount
  }

  /// The file, and where each of its lines starts.
  struct File {
    var bytes: [UInt8]
    var starts: [Int]
    var count: Int { starts.count }
    /// Line `index` (0-based) without `{`, `}` and the newline: `"id":…,"legs":[…]`.
    func inner(_ index: Int) -> Range<Int> {
      let end = index + 1 < starts.count ? starts[index + 1] - 1 : bytes.count - 1
      return (starts[index] + 1)..<(end - 1)
    }
  }

  /// The file: entry i (`e-00000i`) moves a random amount between two distinct accounts.
  static func generate(entries: Int, accounts: Int, rng: inout SplitMix64) -> (File, [Line]) {
    var lines = [Line]()
    lines.reserveCapacity(entries)
    var text = [UInt8]()
    text.reserveCapacity(entries * 130)
    var starts = [Int]()
    starts.reserveCapacity(entries)
    for i in 1...entries {
      starts.append(text.count)
      let d = Int(rng.next() % UInt64(accounts))
      let c = (d + 1 + Int(rng.next() % UInt64(accounts - 1))) % accounts
      let line = Line(debit: d, credit: c, amount: 1 + Int(rng.next() % 99_999))
      lines.append(line)
      text += Array(#"{"id":"\#(id(i))","legs":\#(legsJSON(line))}"#.utf8)
      text.append(10)
    }
    return (File(bytes: text, starts: starts), lines)
  }

  @Test("the prefix check itself: accepts an exact prefix, flags a different event")
  func prefixCheckerSelfTest() async throws {
    try await withScratch { s in
      try await s.ok("init")
      for n in 0..<3 { try await s.ok("account", "open", Self.account(n), "--currency", "EUR") }
      let firstSeq = try await s.okJSON("stats").int("seq") + 1
      var rng = SplitMix64(seed: 1)
      let (file, lines) = Self.generate(entries: 5, accounts: 3, rng: &rng)
      // apply lines 1…3 only
      let three = Array(file.bytes[0..<file.starts[3]])
      try Data(three).write(to: URL(fileURLWithPath: s.file("three.jsonl")))
      try await s.ok("post", "--file", s.file("three.jsonl"))
      let good = try await Self.checkPrefix(s, firstSeq: firstSeq, file: file, lines: lines)
      #expect(good.count == 3)
      #expect(good.differences.isEmpty, "\(good.differences)")
      // entry 4 with other legs than line 4 of the file: must be flagged
      let l4 = lines[3]
      try await s.ok(
        "post", "--id", Self.id(4), "--debit", "\(Self.account(l4.debit))=\(l4.amount + 1)",
        "--credit", "\(Self.account(l4.credit))=\(l4.amount + 1)")
      let bad = try await Self.checkPrefix(s, firstSeq: firstSeq, file: file, lines: lines)
      #expect(bad.count == 4)
      #expect(bad.differences.count == 1, "\(bad.differences)")
      #expect(
        bad.differences.first?.hasPrefix("seq \(firstSeq + 3) is not line 4 of the file") == true)
    }
  }

  /// Runs `tally --data DIR args…` with stdout to a file (large outputs, read in one go).
  static func tallyBytes(_ s: Scratch, _ arguments: [String]) async throws -> (
    status: Int32, stdout: [UInt8]
  ) {
    let out = s.file("page.out")
    let child = try ChildProcess(
      path: try TallyBinary.path(), arguments: ["--data", s.data] + arguments, stdoutPath: out)
    let status = try await child.wait()
    return (status, Array(try Data(contentsOf: URL(fileURLWithPath: out))))
  }

  /// Reads the whole log from `firstSeq` with `log --json --from-seq S --limit 10000`, page by
  /// page, and checks it is exactly entries 1…K of the file in order (seq, type, id and legs
  /// of every event), nothing else, and that the head is the last of them. Returns K and the
  /// differences found (at most 5 described).
  ///
  /// Each line is first compared with the bytes of the file's line as the JSON writer embeds
  /// them (`{"seq":S,"timestamp":…,"type":"entry_posted","id":…,"legs":[…],"metadata":{},`
  /// …, fast); a line that differs is parsed and compared field by field, so only a real
  /// difference, not a key order or spacing, fails the test.
  static func checkPrefix(_ s: Scratch, firstSeq: Int, file: File, lines: [Line]) async throws
    -> (count: Int, differences: [String])
  {
    var count = 0
    var differences = [String]()
    let typeKey = Array(#","type":"entry_posted","#.utf8)
    let after = Array(#","metadata":{},"leaf":""#.utf8)
    let seqKey = Array(#"{"seq":"#.utf8)
    while true {
      let r = try await tallyBytes(
        s, ["--json", "log", "--from-seq", String(firstSeq + count), "--limit", "10000"])
      try #require(r.status == 0, "log exit \(r.status)")
      let base = count
      var failures = [String]()
      let onPage = r.stdout.withUnsafeBytes { p -> Int in
        guard let start = p.baseAddress else { return 0 }
        return file.bytes.withUnsafeBytes { f -> Int in
          var n = 0
          var lo = 0
          while lo < p.count {
            let nl = memchr(start + lo, 10, p.count - lo)
            let hi = nl.map { UnsafeRawPointer($0) - start } ?? p.count
            let index = base + n
            let seq = firstSeq + index
            var ok = false
            if index < file.count, hi - lo > 64, memcmp(start + lo, seqKey, seqKey.count) == 0 {
              // {"seq":<digits>,
              var i = lo + seqKey.count
              var v = 0
              while i < hi, p[i] >= 48, p[i] <= 57 {
                v = v * 10 + Int(p[i] - 48)
                i += 1
              }
              if v == seq {
                // the type key follows the two timestamps: `,"type":"entry_posted",`
                var j = i
                while j + typeKey.count <= hi,
                  p[j] != UInt8(ascii: ",") || memcmp(start + j, typeKey, typeKey.count) != 0
                {
                  j += 1
                }
                let k = j + typeKey.count
                let inner = file.inner(index)
                ok =
                  k + inner.count + after.count <= hi
                  && memcmp(start + k, f.baseAddress! + inner.lowerBound, inner.count) == 0
                  && memcmp(start + k + inner.count, after, after.count) == 0
              }
            }
            if !ok {
              let text = String(
                decoding: UnsafeRawBufferPointer(rebasing: p[lo..<hi]), as: UTF8.self)
              let e = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
              if e == nil || !matches(e!, seq: seq, index: index, lines: lines) {
                failures.append(
                  "seq \(seq) is not line \(index + 1) of the file: \(text.prefix(400))")
              }
            }
            n += 1
            lo = hi + 1
          }
          return n
        }
      }
      differences += failures
      count += onPage
      if onPage < 10_000 { break }
    }
    // nothing else: the head is the last entry, one id per entry
    let stats = try await s.okJSON("stats")
    let head = try stats.int("seq")
    if head != firstSeq - 1 + count {
      differences.append("head seq \(head) is not the last entry (\(firstSeq - 1 + count))")
    }
    let ids = try stats.obj("counts").int("ids")
    if ids != count { differences.append("\(ids) ids stored for \(count) entries") }
    return (count, differences)
  }

  /// `checkPrefix` as an expectation.
  static func expectPrefix(
    _ s: Scratch, firstSeq: Int, file: File, lines: [Line], _ round: String,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> Int {
    let (count, differences) = try await checkPrefix(
      s, firstSeq: firstSeq, file: file, lines: lines)
    let shown = differences.prefix(5).joined(separator: "\n")
    #expect(
      differences.isEmpty,
      "\(round): \(differences.count) differences from the file prefix:\n\(shown)",
      sourceLocation: sourceLocation)
    return count
  }

  @Test(
    "SIGKILL post --file five times: each time verify passes and the log is an exact file prefix",
    .timeLimit(.minutes(5)))
  func killAndResume() async throws {
    let env = ProcessInfo.processInfo.environment
    let entries = env["TALLY_CRASH_ENTRIES"].flatMap(Int.init) ?? 200_000
    let seed = env["TALLY_CRASH_SEED"].flatMap { UInt64($0) } ?? Self.defaultSeed
    var rng = SplitMix64(seed: seed)
    let started = Date()
    func elapsed() -> String { String(format: "%.1f s", Date().timeIntervalSince(started)) }
    print("crash test: \(entries) entries over \(Self.accounts) accounts, TALLY_CRASH_SEED=\(seed)")

    try await withScratch { s in
      try await s.ok("init")
      // The accounts in one batch through the engine (the fixture, not what is under test:
      // 100 `account open` processes take half a minute when the other suites run alongside).
      try Tamper.openAccounts(s.data, (0..<Self.accounts).map(Self.account), currency: "EUR")
      try #require(try await s.tally("verify").status == 0)
      let opened = try await s.tally("--json", "account", "list", "--limit", "1000").array()
      try #require(opened.count == Self.accounts)
      let firstSeq = try await s.okJSON("stats").int("seq") + 1

      let (file, lines) = Self.generate(entries: entries, accounts: Self.accounts, rng: &rng)
      let path = s.file("entries.jsonl")
      try Data(file.bytes).write(to: URL(fileURLWithPath: path))
      let tally = try TallyBinary.path()
      print("crash test: \(elapsed()): ledger and file ready")

      var k = 0
      for round in 1...Self.rounds {
        let delay = 100 + Int(rng.next() % 1401)
        let child = try ChildProcess(
          path: tally, arguments: ["--data", s.data, "post", "--file", path, "--batch", "1000"],
          stderrPath: s.file("round-\(round).err"))
        // Wait for this run's first new commit (the head moves past the prefix)…
        var moved = false
        for _ in 0..<12_000 {
          let head = Int(try Tamper.headSeq(s.data))
          if head > firstSeq - 1 + k {
            moved = true
            break
          }
          try await Task.sleep(for: .milliseconds(5))
        }
        #expect(moved, "round \(round): the writer never committed")
        // …then let it write for the random delay, and kill it.
        try await Task.sleep(for: .milliseconds(delay))
        child.send(SIGKILL)
        let status = try await child.wait()
        #expect(
          status == 128 + SIGKILL,
          "round \(round): the writer was not killed mid-run (status \(status))")

        let v = try await s.tally("verify")
        #expect(v.status == 0, "round \(round): verify after SIGKILL: \(v)")
        let now = try await Self.expectPrefix(
          s, firstSeq: firstSeq, file: file, lines: lines, "round \(round)")
        print(
          "crash test: \(elapsed()): round \(round): SIGKILL \(delay) ms after its first commit"
            + " → entries 1…\(now) applied (+\(now - k))"
        )
        #expect(
          now > k, "round \(round): no progress, or committed entries were lost (\(k) → \(now))")
        k = now
      }
      #expect(k < entries, "the file finished before a kill; raise TALLY_CRASH_ENTRIES")

      // Finish the file: the rest is applied once, the prefix comes back as duplicates.
      let finish = try await s.tally("--json", "post", "--file", path, "--batch", "1000")
      #expect(finish.status == 0, "\(finish)")
      let o = try finish.object()
      #expect(try o.int("lines") == entries)
      #expect(try o.int("applied") == entries - k)
      #expect(try o.int("duplicate") == k)
      #expect(try o.int("rejected") == 0)
      print("crash test: \(elapsed()): finished the file")

      let all = try await Self.expectPrefix(
        s, firstSeq: firstSeq, file: file, lines: lines, "final")
      #expect(all == entries)
      let v = try await s.tally("--json", "verify")
      #expect(v.status == 0, "\(v)")
      #expect(try v.object().int("events") == firstSeq - 1 + entries)

      // Every balance is the sum of the file.
      var expected = [Int](repeating: 0, count: Self.accounts)
      for l in lines {
        expected[l.debit] += l.amount
        expected[l.credit] -= l.amount
      }
      let list = try await s.tally("--json", "account", "list", "--limit", "1000").array()
      let got = try list.map { try #require($0 as? [String: Any]) }
      #expect(got.count == Self.accounts)
      for a in got {
        let name = try a.str("account")
        let n = try #require(Int(name.dropFirst()))
        #expect(try a.str("balance") == String(expected[n]), "\(name)")
      }
      print("crash test: \(elapsed()): done")
    }
  }
}
