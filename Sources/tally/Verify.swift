import ArgumentParser
import Glibc
import TallyCore
import TallyProtocol
import TallyStore

struct Verify: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract:
      "Recompute the chain, the tree and every projection and compare; or check an export (--export).",
    discussion: """
      Exit 0 when everything verifies, 1 naming the first bad seq or account.
      With --export DIR --vkey KEY, verify an export instead, without any database: \
      signature, every event, leaves, chain, root, double entry per currency, and \
      consistency with each --checkpoint FILE kept earlier; the first altered, missing, \
      inserted or reordered event is named. With --vkey and --checkpoint files only, check \
      their signatures and that no two of one size differ (a fork).
      """)
  @OptionGroup var global: GlobalOptions
  @Option(help: "An export directory to verify (no data directory is opened).")
  var export: String?
  @Option(
    help:
      "A verifier key (name+hash+base64) or a file of them, one per line (repeatable: keep every key the log has used)."
  )
  var vkey: [String] = []
  @Option(help: "A checkpoint note kept earlier (repeatable).") var checkpoint: [String] = []

  func run() throws {
    if export != nil || !vkey.isEmpty || !checkpoint.isEmpty {
      guard !vkey.isEmpty else { throw usage("--export and --checkpoint need --vkey KEY") }
      if let export {
        return try VerifyExport.run(
          directory: export, vkeyArguments: vkey, checkpointFiles: checkpoint, json: global.json)
      }
      guard !checkpoint.isEmpty else {
        throw usage("--vkey needs --export DIR or --checkpoint FILE")
      }
      return try VerifyExport.checkpointsOnly(
        vkeyArguments: vkey, checkpointFiles: checkpoint, json: global.json)
    }
    if global.server != nil {
      throw usage("this command works on a data directory (--data), not --server")
    }
    let start = nowNanos()
    let ledger: Ledger
    do {
      ledger = try global.withProgress { (p) throws(StoreError) in
        try Ledger(path: global.directory, mode: .readOnly, progress: p)
      }
    } catch {
      // A damaged store is a verification that failed (exit 1), not a usage error.
      if case .corrupt = error {
        keep(
          VerifyRecord(
            ok: false, events: 0, headSeq: 0, chainHex: "", problems: ["\(error.code): \(error)"],
            finishedNanos: nowNanos(), millis: (nowNanos() - start) / 1_000_000))
      }
      throw failVerify(error)
    }
    let report: VerifyReport
    do {
      report = try global.withProgress { (p) throws(StoreError) in try ledger.verify(progress: p) }
    } catch {
      keep(
        VerifyRecord(
          ok: false, events: 0, headSeq: ledger.head.seq, chainHex: ledger.head.chain.hex,
          problems: ["\(error.code): \(error)"], finishedNanos: nowNanos(),
          millis: (nowNanos() - start) / 1_000_000))
      throw failVerify(error)
    }
    keep(VerifyRecord(report, finishedNanos: nowNanos(), millis: (nowNanos() - start) / 1_000_000))
    let seconds = Double(nowNanos() - start) / 1e9
    if global.json {
      let o = JSONObject([
        ("ok", .bool(report.ok)), ("events", .number(String(report.events))),
        ("accounts", .number(String(report.accounts))),
        (
          "head",
          .object(
            JSONObject([
              ("seq", .number(String(report.head.seq))), ("chain", .string(report.head.chain.hex)),
            ]))
        ),
        (
          "journal",
          .object(
            JSONObject([
              ("seq", .number(String(report.journalSeq))),
              ("torn", report.journalTorn.map { .string($0) } ?? .null),
            ]))
        ),
        (
          "problems",
          .array(
            report.problems.map { p in
              .object(
                JSONObject([
                  ("kind", .string(p.kind.rawValue)),
                  ("seq", p.seq.map { .number(String($0)) } ?? .null),
                  ("account", p.account.map { .string($0) } ?? .null),
                  ("message", .string(p.message)),
                ]))
            })
        ),
        (
          "totals",
          .array(
            report.totals.map { t in
              .object(
                JSONObject([
                  ("currency", .string(t.currency)), ("debits", .string(String(t.debits))),
                  ("credits", .string(String(t.credits))),
                ]))
            })
        ),
      ])
      print(JSONWriter.serialize(.object(o)))
    } else if report.ok {
      print(
        "ok: \(report.events) events, \(report.accounts) accounts, chain head "
          + "\(report.head.chain.hex) (\(Int(Double(report.events) / max(seconds, 1e-9)))"
          + " events/s)")
      for t in report.totals {
        print("  \(t.currency): debits \(t.debits) = credits \(t.credits) (minor units)")
      }
      if report.journalSeq > report.head.seq {
        print(
          "  journal: \(report.journalSeq - report.head.seq) record(s) past the projections' head "
            + "(a writer is running, or the next read-write open replays them)")
      }
      if let torn = report.journalTorn {
        print("  journal: torn tail after seq \(report.journalSeq), never acknowledged: \(torn)")
      }
    } else {
      print("FAILED: \(report.problems.count) problem(s)")
      for p in report.problems { print("  \(p)") }
    }
    if !report.ok { throw CLIExit.rejected }
  }
}

extension Verify {
  /// `fail`, but a store found damaged (`CORRUPT`) is a failed verification: exit 1.
  func failVerify(_ error: StoreError) -> CLIExit {
    let exit = fail(error)
    if case .corrupt = error { return .rejected }
    return exit
  }

  /// Keeps the outcome in the data directory for the back office's audit page. A directory
  /// it cannot write to (read-only media) is said on stderr; the verification stands.
  func keep(_ record: VerifyRecord) {
    do { try record.write(toDirectory: global.directory) } catch {
      FileHandleOut.stderr(
        "tally: note: the result was not kept in \(VerifyRecord.fileName): \(error)")
    }
  }
}

struct Rebuild: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Recompute every projection from the log (all or nothing), then verify.")
  @OptionGroup var global: GlobalOptions

  func run() throws {
    let ledger = try global.open()
    let before: VerifyReport
    do {
      before = try global.withProgress { (p) throws(StoreError) in try ledger.verify(progress: p) }
    } catch { throw fail(error) }
    // The journal is the log: rebuild recomputes everything else from it (the LMDB copy of
    // the log and its hashes included), and cannot repair the journal itself.
    if let p = before.problems.first, p.kind == .journal || p.kind == .decode || p.kind == .replay {
      print("cannot rebuild: the log itself does not verify: \(p)")
      throw CLIExit.rejected
    }
    let events: UInt64
    do {
      events = try global.withProgress { (p) throws(StoreError) in try ledger.rebuild(progress: p) }
    } catch { throw fail(error) }
    let after: VerifyReport
    do {
      after = try global.withProgress { (p) throws(StoreError) in try ledger.verify(progress: p) }
    } catch { throw fail(error) }
    if global.json {
      print(
        #"{"events":\#(events),"differences_before":\#(before.problems.count),"ok":\#(after.ok)}"#)
    } else {
      print(
        "rebuilt projections from \(events) events; \(before.problems.count) difference(s) "
          + "before, verify \(after.ok ? "ok" : "FAILED") after")
      for p in before.problems { print("  fixed: \(p)") }
    }
    if !after.ok { throw CLIExit.rejected }
  }
}

struct StatsCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "stats", abstract: "Log head, record counts and storage use.")
  @OptionGroup var global: GlobalOptions

  func run() throws {
    if let online = try global.online() {
      defer { online.close() }
      return try online.show("STATS")
    }
    let ledger = try global.open(.readOnly)
    let s: Stats
    do { s = try ledger.stats() } catch { throw fail(error) }
    if global.json {
      var o = JSONObject([
        ("seq", .number(String(s.head.seq))), ("chain", .string(s.head.chain.hex)),
        ("last_timestamp", .string(CivilTime.formatTimestamp(s.head.timestampNanos))),
        ("format_version", .number(String(s.formatVersion))),
        ("map_bytes", .number(String(s.mapBytes))), ("used_bytes", .number(String(s.usedBytes))),
      ])
      o.members.append(
        ("counts", .object(JSONObject(s.counts.map { ($0.name, .number(String($0.entries))) }))))
      print(JSONWriter.serialize(.object(o)))
      return
    }
    print("head      seq \(s.head.seq) at \(CivilTime.formatTimestamp(s.head.timestampNanos))")
    print("chain     \(s.head.chain.hex)")
    print("format    \(s.formatVersion)")
    print("storage   \(s.usedBytes >> 20) MiB used of a \(s.mapBytes >> 20) MiB map")
    print(table(["DATABASE", "RECORDS"], s.counts.map { [$0.name, String($0.entries)] }))
  }
}
