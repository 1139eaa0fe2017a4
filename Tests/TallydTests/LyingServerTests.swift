import Foundation
import TallyAudit
import TallyClient
import TallyCore
import TallyCrypto
import TallyProtocol
import TallyTestSupport
import Testing

/// The auditor's tools against a lying server (docs/TESTING.md, "Lying-server audit").
///
/// One real `tallyd` with a few dozen events; a proxy in front of it rewrites its answers:
/// altered inclusion and consistency proofs, checkpoints of a forked log (signed with the
/// ledger's own key, as a compromised server would), checkpoints validly signed for another
/// origin, a rolled-back tree, and events of another seq. One export of the same log is
/// altered: an event changed, removed, reordered or duplicated, with the recorded hashes
/// left or recomputed by the liar. Every mutation must be refused by the Swift auditor
/// (`Auditor` in TallyClient, the code behind `tally --server … --vkey`), by the export
/// verifier (TallyAudit, the code behind `tally verify --export`), and by the independent
/// Python verifier, each with the reason expected; one case of each kind also goes through
/// the `tally` executable. The mutations are enumerated (kind × position) from a seed that
/// is printed.
@Suite("Lying-server audit", .serialized)
struct LyingServerTests {
  static let seed: UInt64 = {
    if let s = ProcessInfo.processInfo.environment["TALLY_LYING_SEED"], let n = UInt64(s) {
      return n
    }
    return 0x7A11_7C0F_FEE5
  }()

  @Test func everyLieOfTheServerIsRefusedWithItsReason() async throws {
    print("lying-server audit: seed \(Self.seed) (TALLY_LYING_SEED to repeat)")
    try await withFixture { server, admin in
      for i in 1...30 {
        try await admin.post(
          "lie-\(i)", debit: Fixture.cash, credit: Fixture.bob, amount: "\(100 + i)")
      }
      let k = try await admin.createKey(role: "auditor")
      let genuine = try await Genuine.load(server, key: k.key, secret: k.secret)
      let proxy = try LyingProxy(upstream: Int(server.port))
      defer { proxy.stop() }
      try await genuine.prefetchForLies()
      var rng = SplitMix64(seed: Self.seed)
      let lies = Lies(g: genuine).all(&rng)
      let exportLies = try await ExportLies.make(server, genuine, &rng)
      print("lying-server audit: \(lies.count) answer mutations, \(exportLies.count) exports")
      #expect(lies.count + exportLies.count >= 500)

      // 1. The Swift auditor, through the proxy, in process: every lie refused, with its code.
      var tally = Tally()
      for lie in lies {
        proxy.lie(lie.rewrite)
        let got = await genuine.audit(lie.scenario, port: proxy.port, key: k)
        tally.count(lie.kind, refused: got.map { $0.code == lie.expected } ?? false)
        #expect(
          got?.code == lie.expected,
          "\(lie.kind) at \(lie.position): expected \(lie.expected.rawValue), got "
            + (got.map(\.description) ?? "ACCEPTED")
        )
        #expect(got.map { !$0.message.isEmpty } ?? false)
      }
      // The same conversations unaltered are accepted: the refusals are the lies'.
      proxy.lie { _, _, line in line }
      for scenario in Set(lies.map(\.scenario)) {
        let got = await genuine.audit(scenario, port: proxy.port, key: k)
        #expect(
          got == nil, "the genuine answers of \(scenario) were refused: \(String(describing: got))")
      }

      // 2. The tally executable, one lie of each kind: exit 1, the code on stderr and in JSON.
      var seen = Set<String>()
      for lie in lies where seen.insert(lie.kind).inserted {
        proxy.lie(lie.rewrite)
        let r = try await genuine.cli(lie.scenario, port: proxy.port, key: k)
        tally.count(
          "tally " + lie.kind,
          refused: r.status == 1 && r.stderr.contains("refused \(lie.expected.rawValue): "))
        #expect(r.status == 1, "\(lie.kind): tally exited \(r.status): \(r.stderr)")
        #expect(
          r.stderr.contains("refused \(lie.expected.rawValue): "),
          "\(lie.kind): \(r.stderr)")
        #expect(r.stdout.contains("\"code\":\"\(lie.expected.rawValue)\""), "\(r.stdout)")
      }
      proxy.lie { _, _, line in line }
      for scenario in [
        Scenario.inclusion(seq: 3, size: genuine.head), .consistency(from: 5, to: genuine.head),
        .head(kept: 8),
      ] {
        let fine = try await genuine.cli(scenario, port: proxy.port, key: k)
        #expect(
          fine.status == 0 && fine.stdout.contains("\"verified\":true"), "\(scenario): \(fine)")
      }

      // A seq past the head is the server's refusal of the request, not a lie: exit 1 with
      // its code, as any online command.
      let past = try await runTally([
        "--server", "127.0.0.1:\(proxy.port)", "--key", k.key, "--secret", k.secret, "--json",
        "proof", "inclusion", "--seq", "\(genuine.head + 1)", "--vkey", genuine.vkey,
      ])
      #expect(past.status == 1 && past.stderr.contains("rejected: NOT_FOUND: "), "\(past)")
      #expect(past.stdout.contains("\"code\":\"NOT_FOUND\""), "\(past)")

      // 3. Forks among kept notes: `tally verify --vkey --checkpoint A --checkpoint B`.
      for lie in lies where lie.expected == .fork {
        guard case .head(let kept) = lie.scenario else { continue }
        let served = try Genuine.note(
          lie.rewrite("CHECKPOINT.GET", [:], genuine.checkpointLines[genuine.head]!))
        let a = genuine.file("kept-\(kept).note", genuine.notes[kept]!)
        let b = genuine.file("served.note", served)
        let r = try await runTally([
          "--json", "verify", "--vkey", genuine.vkey, "--checkpoint", a, "--checkpoint", b,
        ])
        tally.count("verify-checkpoints " + lie.kind, refused: r.status == 1)
        #expect(r.status == 1 && r.stdout.contains("\"kind\":\"fork\""), "\(lie.kind): \(r)")
      }

      // 4. Exports: the Swift export verifier in process, then the Python verifier.
      for e in exportLies {
        let report = ExportVerifier.verify(directory: e.dir, vkeys: [genuine.vkey], trusted: [])
        let first = report.firstDifference
        let named = e.names(
          kind: first?.kind.rawValue, seq: first?.seq, range: first.flatMap(Self.range),
          problems: report.problems.map(\.kind.rawValue))
        tally.count("export " + e.kind, refused: !report.ok && named)
        #expect(!report.ok, "\(e.kind) at \(e.position) verified")
        #expect(
          named,
          "\(e.kind) at \(e.position): expected \(e.expected), got "
            + "\(first.map(\.description) ?? "none"); \(report.problems.prefix(3))"
        )
      }
      // The tally executable on the first export of each kind: exit 1, the same difference.
      var exportKinds = Set<String>()
      for e in exportLies where exportKinds.insert(e.kind).inserted {
        let r = try await runTally([
          "--json", "verify", "--export", e.dir, "--vkey", genuine.vkey,
        ])
        let o =
          (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
        let first = o["first_difference"] as? [String: Any]
        let kinds = (o["problems"] as? [[String: Any]] ?? []).compactMap {
          $0["kind"] as? String
        }
        let named =
          e.names(
            kind: first?["kind"] as? String, seq: (first?["seq"] as? NSNumber)?.uint64Value,
            range: (first?["message"] as? String).flatMap(Self.range), problems: kinds)
        tally.count("tally export " + e.kind, refused: r.status == 1 && named)
        #expect(r.status == 1 && named, "tally verify --export, \(e.kind) at \(e.position): \(r)")
      }
      var cases = [[String]]()
      var expectations = [(String, String, (Int, [String: Any]) -> Bool)]()
      for lie in lies where lie.python {
        let (args, check) = try genuine.python(lie)
        cases.append(args)
        expectations.append((lie.kind, lie.position, check))
      }
      for e in exportLies {
        cases.append(["export", e.dir, "--vkey", genuine.vkey, "--json"])
        expectations.append(
          (
            "export " + e.kind, e.position,
            { status, o in
              let first = o["first_difference"] as? [String: Any]
              let range = (first?["range"] as? [Any])?.compactMap { ($0 as? NSNumber)?.uint64Value }
              let kinds = (o["problems"] as? [[String: Any]] ?? []).compactMap {
                $0["kind"] as? String
              }
              return status == 1
                && e.names(
                  kind: first?["kind"] as? String, seq: (first?["seq"] as? NSNumber)?.uint64Value,
                  range: range.flatMap { $0.count == 2 ? $0[0]...$0[1] : nil }, problems: kinds)
            }
          ))
      }
      let results = try await Python.batch(cases)
      try #require(results.count == cases.count)
      for (i, (kind, position, check)) in expectations.enumerated() {
        let (status, out) = results[i]
        let o = (try? JSONSerialization.jsonObject(with: Data(out.utf8))) as? [String: Any] ?? [:]
        let refused = check(status, o)
        tally.count("python " + kind, refused: refused)
        #expect(refused, "verify-py \(kind) at \(position): status \(status): \(out.prefix(600))")
      }
      print(tally.table())
    }
  }
}

extension LyingServerTests {
  /// The seq range of a `hashes_altered` first difference ("… within seq A…B; …").
  static func range(_ p: AuditProblem) -> ClosedRange<UInt64>? {
    p.kind == .hashesAltered ? range(p.message) : nil
  }

  static func range(_ message: String) -> ClosedRange<UInt64>? {
    guard let r = message.range(of: "within seq ") else { return nil }
    let rest = message[r.upperBound...].prefix { $0.isNumber || $0 == "…" }
    let parts = rest.split(separator: "…").compactMap { UInt64($0) }
    return parts.count == 2 && parts[0] <= parts[1] ? parts[0]...parts[1] : nil
  }
}

/// Mutations per kind and how many were refused, printed for docs/TESTING.md.
struct Tally {
  var rows = [String: (Int, Int)]()
  mutating func count(_ kind: String, refused: Bool) {
    var r = rows[kind] ?? (0, 0)
    r.0 += 1
    if refused { r.1 += 1 }
    rows[kind] = r
  }
  func table() -> String {
    rows.keys.sorted().map { "| \($0) | \(rows[$0]!.0) | \(rows[$0]!.1) |" }.joined(
      separator: "\n")
  }
}

/// Where an auditor's conversation starts: what it asks the server.
enum Scenario: Hashable, Sendable, CustomStringConvertible {
  /// The event at `seq` and its inclusion in the signed tree of `size`.
  case inclusion(seq: UInt64, size: UInt64)
  /// Signed trees of `from` and `to` and the consistency proof between them.
  case consistency(from: UInt64, to: UInt64)
  /// The head's checkpoint, with the genuine one of size `kept` kept from before.
  case head(kept: UInt64)

  var description: String {
    switch self {
    case .inclusion(let s, let n): "inclusion of seq \(s) in \(n)"
    case .consistency(let a, let b): "consistency \(a)→\(b)"
    case .head(let k): "head with \(k) kept"
    }
  }
}

/// One lie: a rewrite of the server's answers, the conversation it is told in, and the
/// refusal it must get.
struct Lie: Sendable {
  var kind: String
  var position: String
  var scenario: Scenario
  var expected: AnswerRefusal.Code
  var rewrite: LyingProxy.Rewrite
  /// False when the lie is in a part of an answer the Python verifier never reads (the JSON
  /// fields beside a checkpoint's note): an auditor saves the note, not the fields.
  var python = true
}
