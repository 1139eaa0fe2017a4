import Foundation
import Glibc
import TallyTestSupport
import Testing

/// SIGKILL `tallyd` while many connections post, again and again, then check what survived.
///
/// Each cycle opens 4 admin connections; each pipelines 4 `ENTRY.POST`s at a time (unique
/// ids, two legs between pre-opened accounts) until the connection dies. After a random
/// 10–150 ms the server is SIGKILLed and restarted on the same data directory, which
/// replays the journal's tail into the projections and cuts a torn tail. A request
/// answered `OK` is acknowledged (its seq and chain are recorded), one answered `ERR` was
/// refused, one without an answer is unknown: it may or may not have been applied.
///
/// At the end, over the protocol and then with `tally verify` on the stopped ledger:
/// every acknowledged entry is there at its seq with its chain, no refused one is, every
/// entry present is whole (exactly the legs sent), seqs run 1…head without gaps, the log
/// holds exactly the entries found, and balances are the sums of the entries present.
///
/// `TALLY_SEED=<n>` replays another seed (the ids, amounts and kill delays; the moment a
/// kill lands still depends on timing). `TALLY_CRASH_CYCLES=<n>` runs n cycles instead of
/// 100 (`tools/kill-cycles` runs the long campaign).
@Suite("tallyd crash consistency")
struct TallydCrashTests {
  static let defaultSeed: UInt64 = 0xC4A5_11ED
  static let cycles: Int = {
    if let s = getenv("TALLY_CRASH_CYCLES"), let v = Int(String(cString: s)), v > 0 { return v }
    return 100
  }()
  static let connections = 4
  static let pipeline = 4
  /// Bounds the work of one cycle whatever the machine's speed.
  static let postsPerClientMax = 2000
  static let accounts = (0..<6).map { "crash-\($0)" }

  @Test("SIGKILL under load 100 times: every OK survives, nothing half-applied, seqs unbroken")
  func killUnderLoad() async throws {
    let seed = crashSeed(Self.defaultSeed)
    print("crash: seed \(seed) (TALLY_SEED=\(seed) reproduces)")
    let started = monotonicSeconds()
    let server = try await TallydProcess.start()
    let clean: Bool
    do {
      clean = try await run(server, seed: seed)
    } catch {
      Issue.record(error, "server log tail:\n\(server.log().suffix(3000))")
      _ = try? await server.terminate(timeout: 5)
      clean = false
    }
    // A failed run keeps its data directory (and the server's logs) for a post-mortem.
    if clean { server.remove() } else { print("crash: data kept in \(server.root)") }
    print("crash: done in \(Int(monotonicSeconds() - started)) s")
  }

  /// The whole run; whether every check passed.
  private func run(_ server: TallydProcess, seed: UInt64) async throws -> Bool {
    var rng = SplitMix64(seed: seed)
    let setup = try await server.admin()
    for a in Self.accounts { try await setup.open(a) }
    setup.close()

    var records = [CrashRecord]()
    var problems = [String]()
    var maxAcked = 0
    for cycle in 0..<Self.cycles {
      var conns = [LineConn]()
      for _ in 0..<Self.connections { conns.append(try await server.admin()) }
      let delay = 10 + rng.below(141)
      let seeds = (0..<Self.connections).map { _ in rng.next() }
      let cycleRecords = await withTaskGroup(of: [CrashRecord].self) { group in
        for (k, conn) in conns.enumerated() {
          let clientSeed = seeds[k]
          group.addTask { await Self.client(conn, prefix: "c\(cycle)-\(k)-", seed: clientSeed) }
        }
        group.addTask {
          try? await Task.sleep(for: .milliseconds(delay))
          server.signal(SIGKILL)
          return []
        }
        var all = [CrashRecord]()
        for await r in group { all += r }
        return all
      }
      for c in conns { c.close() }
      // 128 + SIGKILL: the kill ended it, not a crash of its own before the kill.
      let status = try await server.kill()
      if status != 128 + SIGKILL {
        problems.append("cycle \(cycle): tallyd exited \(status) before it was killed")
      }
      records += cycleRecords
      var ok = 0
      var refused = 0
      var unknown = 0
      for r in cycleRecords {
        switch r.fate {
        case .acked(let seq, _):
          ok += 1
          maxAcked = max(maxAcked, seq)
        case .refused: refused += 1
        case .unknown: unknown += 1
        case .malformed(let line): problems.append("\(r.post.id): malformed answer \(line)")
        }
      }
      try await server.restart()
      let admin = try await server.admin()
      let head = try await admin.head()
      admin.close()
      // Caught here as well as at the end: the cycle that lost an acknowledged write.
      if head.seq < maxAcked {
        problems.append("cycle \(cycle): head \(head.seq) after restart < acknowledged \(maxAcked)")
      }
      if cycle % 10 == 9 || Self.cycles <= 30 {
        print(
          "crash: cycle \(cycle): killed after \(delay) ms; \(ok) OK, \(refused) ERR, "
            + "\(unknown) unknown; head after restart \(head.seq)")
      }
    }

    try await checkLedger(server, records, &problems)
    let acked = records.filter { if case .acked = $0.fate { true } else { false } }.count
    let unknown = records.filter { if case .unknown = $0.fate { true } else { false } }.count
    print("crash: \(records.count) posts sent: \(acked) acknowledged, \(unknown) unknown")
    // Without acknowledged writes there is nothing to lose, and without unanswered ones no
    // kill landed mid-write: either way the run would prove nothing.
    #expect(acked > 0, "no entry was acknowledged")
    #expect(unknown > 0, "no kill interrupted a request in flight")
    #expect(
      problems.isEmpty,
      "\(problems.count) problems:\n\(problems.prefix(30).joined(separator: "\n"))")

    let checkerCaughtAll = try await checkTheChecker(server, records)

    // The ledger as a whole, offline: stop the server, then `tally verify`.
    let head = try await finalHead(server)
    let stopped = try await server.terminate()
    #expect(stopped == 0, "tallyd exited \(stopped) on SIGTERM")
    let v = try await runTallyVerify(server.dataDir)
    #expect(v.status == 0, "tally verify exited \(v.status):\n\(v.output.prefix(3000))")
    let report = try #require(
      try? JSONSerialization.jsonObject(with: Data(v.output.utf8)) as? [String: Any],
      "verify --json printed: \(v.output.prefix(500))")
    #expect(report["ok"] as? Bool == true, "\(v.output.prefix(3000))")
    #expect(report["events"] as? Int == head.seq, "\(v.output.prefix(500))")
    let verifiedHead = report["head"] as? [String: Any]
    #expect(verifiedHead?["seq"] as? Int == head.seq)
    #expect(verifiedHead?["chain"] as? String == head.chain)
    return problems.isEmpty && checkerCaughtAll && stopped == 0 && v.status == 0
      && report["ok"] as? Bool == true && report["events"] as? Int == head.seq
      && verifiedHead?["chain"] as? String == head.chain
  }

  /// Feeds the checker records that contradict the ledger: it must flag each, or its
  /// silence above proves nothing.
  private func checkTheChecker(_ server: TallydProcess, _ records: [CrashRecord]) async throws
    -> Bool
  {
    let acked = records.compactMap { r -> (CrashPost, Int, String)? in
      if case .acked(let seq, let chain) = r.fate { (r.post, seq, chain) } else { nil }
    }
    try #require(acked.count >= 3)
    var ghost = acked[0].0
    ghost.id = "never-sent"
    var otherAmount = acked[2].0
    otherAmount.amount += 1
    let lies = [
      CrashRecord(post: ghost, fate: .acked(seq: acked[0].1, chain: acked[0].2)),
      CrashRecord(post: acked[0].0, fate: .refused("INSUFFICIENT_FUNDS")),
      CrashRecord(post: acked[1].0, fate: .acked(seq: acked[1].1 + 1, chain: acked[1].2)),
      CrashRecord(post: otherAmount, fate: .unknown),
    ]
    var found = [String]()
    try await checkLedger(server, lies, &found)
    let expected = [
      "never-sent: acknowledged at seq", "\(acked[0].0.id): refused INSUFFICIENT_FUNDS",
      "\(acked[1].0.id): acknowledged at seq", "\(otherAmount.id): present but not as sent",
      "log holds",
    ]
    let missed = expected.filter { prefix in !found.contains { $0.hasPrefix(prefix) } }
    #expect(missed.isEmpty, "the checker missed \(missed) in \(found)")
    return missed.isEmpty
  }

  private func finalHead(_ server: TallydProcess) async throws -> Head {
    let c = try await server.admin()
    defer { c.close() }
    return try await c.head()
  }

  /// Posts until the connection dies (or the per-cycle bound), recording each post's fate.
  private static func client(_ conn: LineConn, prefix: String, seed: UInt64) async
    -> [CrashRecord]
  {
    var rng = SplitMix64(seed: seed)
    var out = [CrashRecord]()
    var n = 0
    while n < postsPerClientMax {
      var batch = [CrashPost]()
      for _ in 0..<pipeline {
        let d = rng.below(accounts.count)
        let c = (d + 1 + rng.below(accounts.count - 1)) % accounts.count
        batch.append(
          CrashPost(
            id: prefix + String(n), debit: accounts[d], credit: accounts[c],
            amount: 1 + rng.below(999)))
        n += 1
      }
      let text = batch.map {
        entryLine($0.id, debit: $0.debit, credit: $0.credit, amount: String($0.amount)) + "\n"
      }.joined()
      do {
        try await conn.send(text, timeout: 10)
      } catch {
        // Some of it may have reached the server before the connection broke.
        return out + batch.map { CrashRecord(post: $0, fate: .unknown) }
      }
      for (i, post) in batch.enumerated() {
        let reply: Reply
        do {
          reply = try await conn.readReply(timeout: 10)
        } catch {
          return out + batch[i...].map { CrashRecord(post: $0, fate: .unknown) }
        }
        out.append(CrashRecord(post: post, fate: CrashFate(reply)))
      }
    }
    return out
  }

  /// Everything checkable over the protocol, against what the clients saw.
  private func checkLedger(
    _ server: TallydProcess, _ records: [CrashRecord], _ problems: inout [String]
  ) async throws {
    let c = try await server.admin()
    defer { c.close() }
    let head = try await c.head()

    // The log: seqs 1…head, each once, in order.
    var log = [(type: String, chain: String)]()
    var from = 1
    while true {
      let r = try await c.request("LOG.READ {\"from_seq\":\(from),\"limit\":2000}", timeout: 30)
      try #require(r.isOK, "LOG.READ: \(r.raw.prefix(300))")
      for case let e as [String: Any] in try r.arr("events") {
        let seq = try e.int("seq")
        if seq != log.count + 1 {
          problems.append("log: seq \(seq) where \(log.count + 1) was due")
        }
        log.append((try e.str("type"), try e.str("chain")))
      }
      guard let next = r.body["next"] as? Int else { break }
      try #require(next == log.count + 1, "LOG.READ next \(next) after \(log.count) events")
      from = next
    }
    if log.count != head.seq {
      problems.append("log: \(log.count) events, LOG.HEAD says \(head.seq)")
    }
    if log.last?.chain != head.chain {
      problems.append("log: last chain \(log.last?.chain ?? "-") is not the head's")
    }

    // Every id ever sent: absent, or whole and where it was acknowledged.
    var debits = [String: Int]()
    var credits = [String: Int]()
    var presentSeqs = Set<Int>()
    let chunk = 100
    for start in stride(from: 0, to: records.count, by: chunk) {
      let part = records[start..<min(start + chunk, records.count)]
      try await c.send(part.map { "ENTRY.GET {\"id\":\"\($0.post.id)\"}\n" }.joined())
      for rec in part {
        let r = try await c.readReply(timeout: 30)
        let p = rec.post
        if r.isErr && r.code == "NOT_FOUND" {
          if case .acked(let seq, _) = rec.fate {
            problems.append("\(p.id): acknowledged at seq \(seq), missing after the crashes")
          }
          continue
        }
        guard r.isOK else {
          problems.append("\(p.id): ENTRY.GET answered \(r.raw.prefix(200))")
          continue
        }
        let seq = r.body["seq"] as? Int ?? -1
        let chain = r.body["chain"] as? String ?? ""
        let legs = (r.body["legs"] as? [[String: Any]] ?? []).map {
          "\($0["account"] ?? "?") \($0["side"] ?? "?") \($0["amount"] ?? "?")"
        }
        let want = ["\(p.debit) debit \(p.amount)", "\(p.credit) credit \(p.amount)"]
        if r.body["type"] as? String != "entry_posted" || legs != want {
          problems.append("\(p.id): present but not as sent: \(r.raw.prefix(300))")
        }
        switch rec.fate {
        case .acked(let ackSeq, let ackChain):
          if seq != ackSeq || chain != ackChain {
            problems.append(
              "\(p.id): acknowledged at seq \(ackSeq) chain \(ackChain.prefix(12)), "
                + "found at seq \(seq) chain \(chain.prefix(12))")
          }
        case .refused(let code):
          problems.append("\(p.id): refused \(code), yet present at seq \(seq)")
        case .unknown, .malformed: break
        }
        if !(1...log.count).contains(seq) || log[seq - 1].type != "entry_posted"
          || log[seq - 1].chain != chain
        {
          problems.append("\(p.id): seq \(seq) chain \(chain.prefix(12)) does not match the log")
        }
        if !presentSeqs.insert(seq).inserted {
          problems.append("\(p.id): seq \(seq) holds two entries")
        }
        debits[p.debit, default: 0] += p.amount
        credits[p.credit, default: 0] += p.amount
      }
    }
    // Only these clients post, so every entry in the log is one of theirs.
    let entriesInLog = log.filter { $0.type == "entry_posted" }.count
    if entriesInLog != presentSeqs.count {
      problems.append("log holds \(entriesInLog) entries, ENTRY.GET found \(presentSeqs.count)")
    }

    for a in Self.accounts {
      let r = try await c.request("BALANCE.GET {\"account\":\"\(a)\"}")
      let posted = r.body["posted"] as? [String: Any]
      let d = posted?["debits"] as? String
      let cr = posted?["credits"] as? String
      if d != String(debits[a, default: 0]) || cr != String(credits[a, default: 0]) {
        problems.append(
          "\(a): posted \(d ?? "?")/\(cr ?? "?"), entries present sum to "
            + "\(debits[a, default: 0])/\(credits[a, default: 0])")
      }
    }
    print(
      "crash: after the last restart: head \(head.seq), \(presentSeqs.count) of "
        + "\(records.count) posts present")
  }

  /// `tally --data DIR verify --json`; its exit status and stdout.
  private func runTallyVerify(_ dataDir: String) async throws -> (status: Int32, output: String) {
    let r = try await runTally(["--data", dataDir, "verify", "--json"])
    return (r.status, r.stdout)
  }

}

private struct CrashPost: Sendable {
  var id: String
  var debit: String
  var credit: String
  var amount: Int
}

private enum CrashFate: Sendable {
  case acked(seq: Int, chain: String)
  case refused(String)
  /// No answer: the connection broke first.
  case unknown
  /// An answer that is neither a well-formed OK nor an ERR.
  case malformed(String)

  init(_ r: Reply) {
    if r.isOK, let seq = r.body["seq"] as? Int, let chain = r.body["chain"] as? String {
      self = .acked(seq: seq, chain: chain)
    } else if r.isErr, let code = r.code {
      self = .refused(code)
    } else {
      self = .malformed(String(r.raw.prefix(200)))
    }
  }
}

private struct CrashRecord: Sendable {
  var post: CrashPost
  var fate: CrashFate
}

private func crashSeed(_ defaultSeed: UInt64) -> UInt64 {
  if let s = getenv("TALLY_SEED"), let v = UInt64(String(cString: s)) { return v }
  return defaultSeed
}
