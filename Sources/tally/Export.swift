import ArgumentParser
import Glibc
import TallyAudit
import TallyCore
import TallyProtocol
import TallyStore

struct Export: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write the log (or a range of it) as an export an auditor verifies without LMDB.",
    discussion: """
      DIR gets the event bytes, their leaf and chain hashes, the Merkle nodes, a checkpoint \
      signed for the last exported seq, and, when --from-seq > 1, the earlier events the \
      range refers to with their inclusion proofs (docs/FORMAT.md, "Export"). DIR must not \
      exist or be empty. Verify with `tally verify --export DIR --vkey KEY`.
      """)
  @OptionGroup var global: GlobalOptions
  @Option(help: "Output directory (created; must be empty if it exists).") var out: String
  @Option(name: .customLong("from-seq"), help: "First seq (default 1).") var fromSeq: UInt64?
  @Option(name: .customLong("to-seq"), help: "Last seq (default: the head).") var toSeq: UInt64?

  func run() throws {
    let ledger = try global.open(.readOnly)
    let start = nowNanos()
    let r: Result<ExportSummary, ExportError>
    do {
      r = try global.withProgress { (p) throws(StoreError) in
        try ledger.export(to: out, fromSeq: fromSeq, toSeq: toSeq, progress: p)
      }
    } catch {
      throw fail(error)
    }
    let s: ExportSummary
    switch r {
    case .success(let v): s = v
    case .failure(.range(let why)), .failure(.output(let why)): throw usage(why)
    case .failure(.noSigningKey):
      throw usage(noSigningKey)
    }
    let seconds = Double(nowNanos() - start) / 1e9
    if global.json {
      print(
        JSONWriter.serialize(
          .object(
            JSONObject([
              ("out", .string(out)), ("from", .number(String(s.from))),
              ("to", .number(String(s.to))), ("events", .number(String(s.events))),
              ("context", .number(String(s.context))), ("bytes", .number(String(s.bytes))),
              ("root", .string(s.checkpoint.root.hex)),
              ("chain", .string(s.checkpoint.chain.hex)),
            ]))))
    } else {
      print(
        "exported seq \(s.from)…\(s.to) (\(s.events) events, \(s.context) context) to \(out): "
          + "\(s.bytes >> 20) MiB in \(String(format1: seconds)) s")
      print("checkpoint size \(s.to), root \(s.checkpoint.root.hex)")
      print("verify with: tally verify --export \(out) --vkey KEY")
    }
  }
}

/// `tally verify --export DIR --vkey KEY [--checkpoint FILE]…`: no data directory is opened.
enum VerifyExport {
  /// Each `--vkey` is a file holding one key per line, or else the key itself.
  static func keys(_ arguments: [String]) throws -> [String] {
    var out = [String]()
    for a in arguments {
      // A key file by that name first: a path may contain '+' too.
      if access(a, F_OK) != 0 && a.contains("+") {
        out.append(a)
      } else {
        out += try readSmallFile(a).split(whereSeparator: { $0 == "\n" || $0 == "\r\n" })
          .map { String($0).trimmingNewline() }.filter { !$0.isEmpty }
      }
    }
    return out
  }

  static func run(directory: String, vkeyArguments: [String], checkpointFiles: [String], json: Bool)
    throws
  {
    let vkeys = try keys(vkeyArguments)
    var notes = [TrustedNote]()
    for f in checkpointFiles { notes.append(TrustedNote(source: f, note: try readSmallFile(f))) }
    let start = nowNanos()
    let report = ExportVerifier.verify(directory: directory, vkeys: vkeys, trusted: notes)
    let seconds = Double(nowNanos() - start) / 1e9
    FileHandleOut.stderr(
      "verify: \(report.events) events in \(String(format1: seconds)) s "
        + "(\(Int(Double(report.events) / max(seconds, 1e-9))) events/s)")
    if json {
      print(JSONWriter.serialize(.object(object(report))))
    } else {
      if report.ok {
        print(
          "ok: \(report.events) events (seq \(report.from)…\(report.to)), root "
            + "\(report.root.hex), chain \(report.chain.hex)")
        for t in report.totals {
          print("  \(t.currency): debits \(t.debits) = credits \(t.credits) (minor units)")
        }
      } else {
        print("FAILED: \(report.problemCount) problem(s)")
        for p in report.problems { print("  \(p)") }
        if report.problemCount > report.problems.count {
          print("  … and \(report.problemCount - report.problems.count) more")
        }
        if let d = report.firstDifference { print("first difference: \(d)") }
      }
      for c in report.checkpoints {
        print("  checkpoint \(c.source): \(c.status.rawValue): \(c.message)")
      }
    }
    if !report.ok { throw CLIExit.rejected }
  }

  static func problem(_ p: AuditProblem) -> JSONValue {
    .object(
      JSONObject([
        ("kind", .string(p.kind.rawValue)), ("seq", p.seq.map { .number(String($0)) } ?? .null),
        ("message", .string(p.message)),
      ]))
  }

  static func object(_ r: ExportReport) -> JSONObject {
    JSONObject([
      ("ok", .bool(r.ok)), ("events", .number(String(r.events))),
      ("from", .number(String(r.from))), ("to", .number(String(r.to))),
      ("root", .string(r.root.hex)), ("chain", .string(r.chain.hex)),
      (
        "totals",
        .array(
          r.totals.map {
            .object(
              JSONObject([
                ("currency", .string($0.currency)), ("debits", .string(String($0.debits))),
                ("credits", .string(String($0.credits))),
              ]))
          })
      ),
      ("problem_count", .number(String(r.problemCount))),
      ("problems", .array(r.problems.map(problem))),
      ("first_difference", r.firstDifference.map(problem) ?? .null),
      (
        "checkpoints",
        .array(
          r.checkpoints.map {
            .object(
              JSONObject([
                ("source", .string($0.source)),
                ("size", $0.size.map { .number(String($0)) } ?? .null),
                ("status", .string($0.status.rawValue)), ("message", .string($0.message)),
              ]))
          })
      ),
    ])
  }
}

extension VerifyExport {
  /// Without an export: the kept checkpoints' signatures, and forks among them (two signed
  /// trees of one size with different roots).
  static func checkpointsOnly(vkeyArguments: [String], checkpointFiles: [String], json: Bool)
    throws
  {
    let vkeys = try keys(vkeyArguments)
    var problems = [AuditProblem]()
    var opened = [(String, SignedCheckpoint)]()
    for f in checkpointFiles {
      switch SignedCheckpoint.open(note: try readSmallFile(f), vkeys: vkeys) {
      case .success(let c): opened.append((f, c))
      case .failure(let why): problems.append(AuditProblem(.signature, "\(f): \(why)"))
      }
    }
    for (i, a) in opened.enumerated() {
      // One size, two signed notes: the chain line commits to the same events as the root,
      // so a different chain is a second history too.
      for b in opened[(i + 1)...]
      where a.1.size == b.1.size && (a.1.root != b.1.root || a.1.chain != b.1.chain) {
        problems.append(
          AuditProblem(
            .fork, seq: a.1.size,
            "\(a.0) and \(b.0) are both signed for size \(a.1.size) with different roots or "
              + "chains: "
              + "the log was forked"))
      }
    }
    if json {
      print(
        JSONWriter.serialize(
          .object(
            JSONObject([
              ("ok", .bool(problems.isEmpty)),
              ("problem_count", .number(String(problems.count))),
              ("problems", .array(problems.map(problem))),
              (
                "checkpoints",
                .array(
                  opened.map {
                    .object(
                      JSONObject([
                        ("source", .string($0.0)), ("size", .number(String($0.1.size))),
                        ("status", .string("valid")), ("root", .string($0.1.root.hex)),
                        ("message", .string("the signature verifies")),
                      ]))
                  })
              ),
            ]))))
    } else if problems.isEmpty {
      print("ok: \(opened.count) checkpoint(s) verify; no two of one size differ")
      print("  (checkpoints of different sizes need a consistency proof: tally proof consistency)")
    } else {
      print("FAILED: \(problems.count) problem(s)")
      for p in problems { print("  \(p)") }
    }
    if !problems.isEmpty { throw CLIExit.rejected }
  }
}

/// Reads a small text file (a key, a checkpoint), at most 64 KiB.
func readSmallFile(_ path: String) throws -> String {
  guard let f = fopen(path, "r") else {
    throw usage("cannot read \(path): \(String(cString: strerror(errno)))")
  }
  defer { fclose(f) }
  var buf = [UInt8](repeating: 0, count: 65_537)
  let n = fread(&buf, 1, buf.count, f)
  guard n <= 65_536 else { throw usage("\(path) is larger than 64 KiB") }
  return String(decoding: buf[0..<n], as: UTF8.self)
}

extension String {
  func trimmingNewline() -> String {
    var s = self
    while let last = s.unicodeScalars.last, last == "\n" || last == "\r" {
      s.unicodeScalars.removeLast()
    }
    return s
  }

  init(format1 v: Double) {
    let tenths = Int((v * 10).rounded())
    self = "\(tenths / 10).\(tenths % 10)"
  }
}
