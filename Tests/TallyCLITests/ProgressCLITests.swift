import Foundation
import Subprocess
import Testing

#if canImport(System)
  import System
#else
  import SystemPackage
#endif

/// The progress line of the long commands: never a byte of it when stderr is not a terminal;
/// on a terminal (a pseudo-terminal made by `script`), a line with a rate, cleared at the end.
@Suite("progress")
struct ProgressCLITests {
  /// A ledger of a few thousand entries (more than one verify chunk), posted in one file:
  /// 5,000 × 1 cent on top of the funded ledger's 100.00 EUR.
  func withLedger(_ body: (Scratch) async throws -> Void) async throws {
    try await withFundedLedger { s in
      var text = ""
      for i in 0..<5_000 {
        text +=
          #"{"id":"p\#(i)","legs":[{"account":"cash","side":"debit","amount":"1"},"#
          + #"{"account":"bob","side":"credit","amount":"1"}]}"# + "\n"
      }
      try Data(text.utf8).write(to: URL(fileURLWithPath: s.file("entries.jsonl")))
      let post = try await s.tally("post", "--file", s.file("entries.jsonl"))
      #expect(post.status == 0, "\(post)")
      #expect(post.stderr.isEmpty, "post --file piped writes nothing to stderr: \(post)")
      #expect(post.stdout.hasPrefix("5000 lines: 5000 applied"), "\(post)")
      try await body(s)
    }
  }

  /// No escape sequence and no carriage return: nothing a progress line writes.
  func expectNoProgressBytes(_ r: CLIResult, sourceLocation: SourceLocation = #_sourceLocation) {
    for (name, text) in [("stdout", r.stdout), ("stderr", r.stderr)] {
      #expect(
        !text.contains("\u{1B}") && !text.contains("\r"), "\(name) has progress bytes: \(r)",
        sourceLocation: sourceLocation)
    }
  }

  /// `verify`'s human output with the measured rate taken out.
  func withoutRate(_ text: String) -> String {
    text.replacingOccurrences(
      of: #"\(\d+ events/s\)"#, with: "(RATE events/s)", options: .regularExpression)
  }

  @Test("verify piped prints exactly its report: nothing on stderr, the same as --no-progress")
  func verifyPipedIsUnchanged() async throws {
    try await withLedger { s in
      let head = try await s.okJSON("stats")
      let seq = try head.int("seq")
      let chain = try head.str("chain")
      let plain = try await s.tally("verify")
      #expect(plain.status == 0, "\(plain)")
      #expect(plain.stderr.isEmpty, "\(plain)")
      expectNoProgressBytes(plain)
      // Exactly the report's lines: events, accounts, the head, the rate and the totals.
      #expect(
        withoutRate(plain.stdout)
          == "ok: \(seq) events, 5 accounts, chain head \(chain) (RATE events/s)\n"
          + "  EUR: debits 15000 = credits 15000 (minor units)\n", "\(plain)")
      let off = try await s.tally("verify", "--no-progress")
      #expect(off.status == 0 && off.stderr.isEmpty, "\(off)")
      #expect(withoutRate(off.stdout) == withoutRate(plain.stdout))
      // --no-progress is a global option: it may come first, like --json.
      let first = try await s.tally("--no-progress", "verify")
      #expect(first.status == 0 && first.stderr.isEmpty, "\(first)")
      let json = try await s.tally("--json", "verify")
      #expect(json.status == 0 && json.stderr.isEmpty, "\(json)")
      expectNoProgressBytes(json)
      #expect(try json.object()["ok"] as? Bool == true)
    }
  }

  @Test("rebuild, export and a failing verify piped write no progress bytes either")
  func otherCommandsPipedAreQuiet() async throws {
    try await withLedger { s in
      let rebuild = try await s.tally("rebuild")
      #expect(rebuild.status == 0 && rebuild.stderr.isEmpty, "\(rebuild)")
      expectNoProgressBytes(rebuild)
      let export = try await s.tally("export", "--out", s.file("export"))
      #expect(export.status == 0 && export.stderr.isEmpty, "\(export)")
      expectNoProgressBytes(export)
      // A refused export: its error alone on stderr.
      let refused = try await s.tally("export", "--out", s.file("export"))
      #expect(refused.status == 2, "\(refused)")
      #expect(refused.stderr.hasPrefix("tally: ") && refused.stderr.hasSuffix("\n"), "\(refused)")
      expectNoProgressBytes(refused)
    }
  }

  @Test("An unknown --no-progress value or misspelling is a usage error, nothing changes")
  func badFlagIsUsage() async throws {
    try await withLedger { s in
      let before = try await s.snapshot(["cash", "bob"])
      let r = try await s.tally("verify", "--no-progres")
      #expect(r.status == 2, "\(r)")
      #expect(r.stderr.contains("--no-progres"), "\(r)")
      let value = try await s.tally("verify", "--no-progress=1")
      #expect(value.status == 2, "a flag takes no value: \(value)")
      #expect(try await s.snapshot(["cash", "bob"]) == before)
    }
  }

  // MARK: on a terminal

  static let script = "/usr/bin/script"

  /// Runs `tally args…` under a pseudo-terminal (`script -q -e -c`): stdout and stderr are
  /// the terminal, whose bytes come back as one string.
  func onTerminal(
    _ s: Scratch, _ arguments: [String], environment: [Environment.Key: String?] = [:]
  ) async throws -> (status: Int32, screen: String) {
    let tally = try TallyBinary.path()
    let command = ([tally, "--data", s.data] + arguments).map { "'\($0)'" }.joined(separator: " ")
    var env: [Environment.Key: String?] = [
      "TERM": "xterm", "TALLY_NO_PROGRESS": nil, "TALLY_DATA": nil, "COLUMNS": "200",
    ]
    for (k, v) in environment { env[k] = v }
    let r = try await run(
      .path(FilePath(Self.script)), arguments: ["-q", "-e", "-c", command, "/dev/null"],
      environment: .inherit.updating(env), output: .string(limit: 16 << 20),
      error: .string(limit: 1 << 20))
    return (exitStatus(r.terminationStatus), r.standardOutput)
  }

  @Test(
    "verify on a terminal draws a progress line with a rate and clears it before the report",
    .enabled(if: FileManager.default.isExecutableFile(atPath: script)))
  func verifyOnTerminalShowsProgress() async throws {
    try await withLedger { s in
      let (status, screen) = try await onTerminal(s, ["verify"])
      #expect(status == 0, "\(screen)")
      #expect(screen.contains("\rverify: log and chain ["), "\(screen.debugDescription)")
      #expect(
        screen.range(of: #"\d+ events/s  ETA "#, options: .regularExpression) != nil,
        "a rate and an ETA: \(screen.debugDescription)")
      #expect(screen.contains("verify: projections ["), "\(screen.debugDescription)")
      #expect(screen.contains("verify: tree ["), "\(screen.debugDescription)")
      // The line is erased, then the report starts at the line's beginning.
      let cleared = try #require(screen.range(of: "\r\u{1B}[Kok: "), "\(screen.debugDescription)")
      #expect(!screen[cleared.upperBound...].contains("\u{1B}"), "nothing drawn after the end")
    }
  }

  @Test(
    "On a terminal, --no-progress, TALLY_NO_PROGRESS=1 and TERM=dumb each turn progress off",
    .enabled(if: FileManager.default.isExecutableFile(atPath: script)))
  func terminalOptOuts() async throws {
    try await withLedger { s in
      let runs = [
        try await onTerminal(s, ["verify", "--no-progress"]),
        try await onTerminal(s, ["verify"], environment: ["TALLY_NO_PROGRESS": "1"]),
        try await onTerminal(s, ["verify"], environment: ["TERM": "dumb"]),
      ]
      for (status, screen) in runs {
        #expect(status == 0, "\(screen)")
        #expect(screen.hasPrefix("ok: "), "\(screen.debugDescription)")
        #expect(!screen.contains("verify: log"), "\(screen.debugDescription)")
        #expect(!screen.contains("\u{1B}"), "\(screen.debugDescription)")
      }
    }
  }

  @Test(
    "rebuild, export and post --file on a terminal draw their own progress lines",
    .enabled(if: FileManager.default.isExecutableFile(atPath: script)))
  func rebuildAndExportOnTerminal() async throws {
    try await withLedger { s in
      let (rs, rebuild) = try await onTerminal(s, ["rebuild"])
      #expect(rs == 0, "\(rebuild)")
      #expect(rebuild.contains("\rrebuild ["), "\(rebuild.debugDescription)")
      #expect(rebuild.contains("rebuilt projections from"), "\(rebuild.debugDescription)")
      let (es, export) = try await onTerminal(s, ["export", "--out", s.file("export")])
      #expect(es == 0, "\(export)")
      #expect(export.contains("\rexport ["), "\(export.debugDescription)")
      #expect(export.contains("exported seq 1…"), "\(export.debugDescription)")
      // post --file of a regular file: its bytes read against its size.
      let (ps, post) = try await onTerminal(s, ["post", "--file", s.file("entries.jsonl")])
      #expect(ps == 0, "\(post)")
      #expect(post.contains("\rpost --file ["), "\(post.debugDescription)")
      #expect(post.contains(" MiB/s  ETA "), "\(post.debugDescription)")
      #expect(
        post.contains("\r\u{1B}[K5000 lines: 0 applied, 5000 duplicate"), "\(post.debugDescription)"
      )
    }
  }
}
