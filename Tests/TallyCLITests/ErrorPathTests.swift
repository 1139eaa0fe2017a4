import Foundation
import Testing

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// A command the engine or the CLI must refuse with a stable code and exit code.
struct Refusal: CustomTestStringConvertible, Sendable {
  var name: String
  var arguments: [String]
  var code: String
  var exit: Int32
  var testDescription: String { "\(name): \(code) exit \(exit)" }
}

@Suite("error paths")
struct ErrorPathTests {
  static let accounts = ["cash", "alice", "bob", "capped", "shut"]

  static let refusals: [Refusal] = [
    Refusal(
      name: "more decimals than the scale",
      arguments: ["post", "--id", "x", "--debit", "cash=10.505", "--credit", "alice=10.505"],
      code: "INVALID_AMOUNT", exit: 1),
    Refusal(
      name: "decimals on a scale-0 currency",
      arguments: ["account", "open", "yen", "--currency", "JPY", "--limit", "1.5"],
      code: "INVALID_AMOUNT", exit: 1),
    Refusal(
      name: "not a number",
      arguments: ["post", "--id", "x", "--debit", "cash=1e3", "--credit", "alice=1e3"],
      code: "INVALID_AMOUNT", exit: 1),
    Refusal(
      name: "zero amount",
      arguments: ["post", "--id", "x", "--debit", "cash=0.00", "--credit", "alice=0.00"],
      code: "INVALID_AMOUNT", exit: 1),
    Refusal(
      name: "unknown account",
      arguments: ["post", "--id", "x", "--debit", "cash=1", "--credit", "ghost=1"],
      code: "ACCOUNT_NOT_FOUND", exit: 1),
    Refusal(
      name: "unbalanced",
      arguments: ["post", "--id", "x", "--debit", "cash=1.00", "--credit", "alice=1.01"],
      code: "UNBALANCED", exit: 1),
    Refusal(
      name: "overdraft",
      arguments: ["post", "--id", "x", "--debit", "alice=100.01", "--credit", "bob=100.01"],
      code: "INSUFFICIENT_FUNDS", exit: 1),
    Refusal(
      name: "over the limit",
      arguments: ["post", "--id", "x", "--debit", "cash=50.01", "--credit", "capped=50.01"],
      code: "LIMIT_EXCEEDED", exit: 1),
    Refusal(
      name: "closed account",
      arguments: ["post", "--id", "x", "--debit", "cash=1", "--credit", "shut=1"],
      code: "ACCOUNT_CLOSED", exit: 1),
    Refusal(
      name: "same id, different content",
      arguments: ["post", "--id", "seed", "--debit", "cash=100.01", "--credit", "alice=100.01"],
      code: "ID_CONFLICT", exit: 1),
    Refusal(
      name: "one leg", arguments: ["post", "--id", "x", "--debit", "cash=1"], code: "TOO_FEW_LEGS",
      exit: 1),
    Refusal(
      name: "same account twice",
      arguments: ["post", "--id", "x", "--debit", "cash=1", "--credit", "cash=1"],
      code: "DUPLICATE_LEG", exit: 1),
    Refusal(
      name: "bad id",
      arguments: ["post", "--id", "has space", "--debit", "cash=1", "--credit", "alice=1"],
      code: "INVALID_ID", exit: 1),
    Refusal(
      name: "currency assertion",
      arguments: [
        "post", "--id", "x", "--debit", "cash=1", "--credit", "alice=1", "--currency", "USD",
      ],
      code: "CURRENCY_MISMATCH", exit: 1),
    Refusal(
      name: "bad value date",
      arguments: [
        "post", "--id", "x", "--debit", "cash=1", "--credit", "alice=1", "--value-date",
        "2026-02-30",
      ],
      code: "INVALID_FIELD", exit: 1),
    Refusal(
      name: "account exists with another currency",
      arguments: ["account", "open", "cash", "--currency", "USD"],
      code: "ALREADY_EXISTS", exit: 1),
    Refusal(
      name: "unknown currency", arguments: ["account", "open", "x", "--currency", "XQQ"],
      code: "UNKNOWN_CURRENCY", exit: 1),
    Refusal(
      name: "unknown partner",
      arguments: ["account", "open", "x", "--currency", "EUR", "--partner", "nobody"],
      code: "PARTNER_NOT_FOUND", exit: 1),
    Refusal(
      name: "close with a balance", arguments: ["account", "close", "alice"],
      code: "ACCOUNT_NOT_EMPTY", exit: 1),
    Refusal(
      name: "balance of an unknown account", arguments: ["balance", "ghost"],
      code: "ACCOUNT_NOT_FOUND", exit: 1),
    Refusal(
      name: "statement of an unknown account", arguments: ["statement", "ghost"],
      code: "ACCOUNT_NOT_FOUND", exit: 1),
    Refusal(
      name: "show an unknown account", arguments: ["account", "show", "ghost"],
      code: "ACCOUNT_NOT_FOUND", exit: 1),
    Refusal(
      name: "unknown hold", arguments: ["hold", "show", "ghost"], code: "HOLD_NOT_FOUND", exit: 1),
    Refusal(
      name: "reverse an unknown entry", arguments: ["reverse", "ghost"], code: "ENTRY_NOT_FOUND",
      exit: 1),
    Refusal(
      name: "hold deadline in the past",
      arguments: [
        "hold", "place", "--id", "h", "--debit", "alice=1", "--credit", "cash=1", "--deadline",
        "2020-01-01T00:00:00Z",
      ],
      code: "INVALID_DEADLINE", exit: 1),
  ]

  @Test(
    "a refused command exits 1 with its code (human on stderr, JSON on stdout) and changes nothing",
    arguments: refusals)
  func refusedChangesNothing(_ c: Refusal) async throws {
    try await withFundedLedger { s in
      let before = try await s.snapshot(Self.accounts)

      let human = try await s.tally(c.arguments)
      #expect(human.status == c.exit, "\(human)")
      #expect(human.stderr.contains("rejected: \(c.code): "), "\(human)")
      #expect(human.stdout.isEmpty, "\(human)")

      let json = try await s.tally(["--json"] + c.arguments)
      #expect(json.status == c.exit, "\(json)")
      #expect(json.stderr.isEmpty, "\(json)")
      let o = try json.object()
      #expect(Set(o.keys) == ["error"])
      let e = try o.obj("error")
      #expect(try e.str("code") == c.code)
      #expect(!(try e.str("message")).isEmpty)
      #expect(e["details"] is [String: Any], "\(e)")

      let after = try await s.snapshot(Self.accounts)
      #expect(after == before)
    }
  }

  @Test("INVALID_AMOUNT for 10.505 EUR names the scale and the value")
  func invalidAmountDetails() async throws {
    try await withFundedLedger { s in
      let r = try await s.tally(
        "--json", "post", "--id", "x", "--debit", "cash=10.505", "--credit", "alice=10.505")
      #expect(r.status == 1)
      let e = try r.object().obj("error")
      #expect(try e.obj("details").str("scale") == "2")
      #expect(try e.obj("details").str("value") == "10.505")
      #expect(try e.str("message").contains("3 decimals"))
    }
  }

  @Test(
    "the same id with the same content is a duplicate: exit 0, the original seq, nothing appended")
  func duplicateSameContent() async throws {
    try await withFundedLedger { s in
      let before = try await s.snapshot(Self.accounts)
      let human = try await s.tally(
        "post", "--id", "seed", "--debit", "cash=100.00", "--credit", "alice=100.00")
      #expect(human.status == 0, "\(human)")
      #expect(
        human.stdout.contains("entry seed: already applied at seq 5 (duplicate, nothing changed)"),
        "\(human)")
      // 100 and 100.00 are the same amount: still a duplicate
      let json = try await s.tally(
        "--json", "post", "--id", "seed", "--debit", "cash=100", "--credit", "alice=100")
      #expect(json.status == 0, "\(json)")
      let o = try json.object()
      #expect(try o.str("result") == "duplicate")
      #expect(try o.int("seq") == 5)
      #expect(try o.int("events") == 0)
      #expect(try await s.snapshot(Self.accounts) == before)
    }
  }

  @Test("ID_CONFLICT names the differing field and the original seq")
  func idConflictDetails() async throws {
    try await withFundedLedger { s in
      let r = try await s.tally(
        "--json", "post", "--id", "seed", "--debit", "cash=100.00", "--credit", "alice=100.00",
        "--ref", "other")
      #expect(r.status == 1, "\(r)")
      let e = try r.object().obj("error")
      #expect(try e.str("code") == "ID_CONFLICT")
      #expect(try e.obj("details").str("field") == "ref")
      #expect(try e.obj("details").str("seq") == "5")
    }
  }

  static let usageErrors: [(String, [String])] = [
    ("post without --id", ["post", "--debit", "cash=1", "--credit", "alice=1"]),
    ("unknown subcommand", ["frobnicate"]),
    ("unknown option", ["balance", "cash", "--frobnicate"]),
    ("--file with --id", ["post", "--file", "x.jsonl", "--id", "x"]),
    ("--batch out of range", ["post", "--file", "x.jsonl", "--batch", "0"]),
    ("statement --limit 0", ["statement", "cash", "--limit", "0"]),
    ("log --limit over the page maximum", ["log", "--limit", "10001"]),
    ("--as-of-seq past the head", ["balance", "cash", "--as-of-seq", "999"]),
    ("--debit without =", ["post", "--id", "x", "--debit", "cash", "--credit", "alice=1"]),
    (
      "--ttl 0",
      ["hold", "place", "--id", "h", "--debit", "alice=1", "--credit", "cash=1", "--ttl", "0"]
    ),
    (
      "--deadline not RFC 3339",
      [
        "hold", "place", "--id", "h", "--debit", "alice=1", "--credit", "cash=1", "--deadline",
        "tomorrow",
      ]
    ),
    ("--normal sideways", ["account", "open", "x", "--currency", "EUR", "--normal", "sideways"]),
    ("post --file that does not exist", ["post", "--file", "/nonexistent/entries.jsonl"]),
    ("no subcommand", []),
  ]

  @Test("usage errors exit 2 and change nothing", arguments: usageErrors)
  func usageErrorsExit2(_ name: String, _ arguments: [String]) async throws {
    try await withFundedLedger { s in
      let before = try await s.snapshot(Self.accounts)
      let r = try await s.tally(arguments)
      #expect(r.status == 2, "\(name): \(r)")
      #expect(!r.stderr.isEmpty, "\(name): \(r)")
      let j = try await s.tally(["--json"] + arguments)
      #expect(j.status == 2, "\(name): \(j)")
      #expect(try await s.snapshot(Self.accounts) == before)
    }
  }

  @Test("post without --id says --id is required")
  func missingIdMessage() async throws {
    try await withFundedLedger { s in
      let r = try await s.tally("post", "--debit", "cash=1", "--credit", "alice=1")
      #expect(r.status == 2)
      #expect(r.stderr.contains("--id is required"), "\(r)")
    }
  }

  @Test("an unknown subcommand is named in the error, exit 2")
  func unknownSubcommandNamed() async throws {
    let bare = try await runTally(["frobnicate"])
    #expect(bare.status == 2, "\(bare)")
    #expect(bare.stderr.contains("frobnicate"), "\(bare)")
  }

  /// Bug: with the global `--data DIR` before it (the documented form), an unknown subcommand
  /// is reported as "Unknown option '--data'" — the reorder of global options moves `--data`
  /// behind the unknown word, and the root command then rejects `--data` instead of naming
  /// the subcommand.
  @Test("an unknown subcommand after --data DIR is named in the error (not '--data')")
  func unknownSubcommandAfterGlobalOptions() async throws {
    try await withFundedLedger { s in
      let r = try await s.tally("frobnicate")
      #expect(r.status == 2, "\(r)")
      #expect(r.stderr.contains("frobnicate"), "\(r)")
      #expect(!r.stderr.contains("Unknown option '--data'"), "\(r)")
    }
  }

  @Test(
    "a missing data directory is NOT_INITIALIZED, exit 2, for readers and writers alike",
    arguments: [
      ["balance", "cash"], ["post", "--id", "x", "--debit", "cash=1", "--credit", "alice=1"],
      ["verify"],
      ["stats"], ["log"], ["account", "list"], ["rebuild"],
    ])
  func missingDataDirectory(_ arguments: [String]) async throws {
    try await withScratch { s in
      let r = try await s.tally(arguments)
      #expect(r.status == 2, "\(r)")
      #expect(r.stderr.contains("error NOT_INITIALIZED"), "\(r)")
      #expect(r.stdout.isEmpty, "\(r)")
      // and nothing was created behind our back
      #expect(!FileManager.default.fileExists(atPath: s.data + "/data.mdb"))
    }
  }

  @Test("init twice: ALREADY_INITIALIZED, exit 2, the ledger untouched")
  func initTwice() async throws {
    try await withFundedLedger { s in
      let before = try await s.snapshot(Self.accounts)
      let r = try await s.tally("init")
      #expect(r.status == 2, "\(r)")
      #expect(r.stderr.contains("error ALREADY_INITIALIZED"), "\(r)")
      let j = try await s.tally("--json", "init")
      #expect(j.status == 2, "\(j)")
      #expect(try await s.snapshot(Self.accounts) == before)
    }
  }

  @Test("a second writer while another holds the lock: LOCKED, exit 2; readers still work")
  func lockedByAnotherProcess() async throws {
    try await withFundedLedger { s in
      let before = try await s.snapshot(Self.accounts)
      // Hold the writer lock (DIR/tally.lock, flock) the way a running tally does.
      let fd = open(s.data + "/tally.lock", O_RDWR | O_CLOEXEC)
      try #require(fd >= 0)
      defer { close(fd) }
      try #require(flock(fd, LOCK_EX | LOCK_NB) == 0)
      for args in [
        ["post", "--id", "x", "--debit", "cash=1", "--credit", "alice=1"],
        ["account", "open", "z", "--currency", "EUR"],
        ["hold", "expire"], ["rebuild"], ["--json", "reverse", "seed"],
      ] {
        let r = try await s.tally(args)
        #expect(r.status == 2, "\(r)")
        #expect(r.stderr.contains("error LOCKED"), "\(r)")
      }
      // read-only commands do not need the lock
      #expect(try await s.tally("verify").status == 0)
      #expect(try await s.tally("balance", "alice").status == 0)
      #expect(try await s.snapshot(Self.accounts) == before)
      // released: writing works again
      flock(fd, LOCK_UN)
      try await s.ok("post", "--id", "x", "--debit", "cash=1", "--credit", "alice=1")
    }
  }

  @Test(
    "LOCKED while a real tally writer is running (post --file - waiting on stdin) names its pid")
  func lockedByRunningTally() async throws {
    try await withFundedLedger { s in
      let line =
        #"{"id":"from-stdin","legs":[{"account":"cash","side":"debit","amount":"100"},"#
        + #"{"account":"alice","side":"credit","amount":"100"}]}"#
      let writer = try ChildProcess(
        path: try TallyBinary.path(),
        arguments: ["--data", s.data, "--json", "post", "--file", "-"],
        stdinPipe: true)
      // Deterministic: wait until the child holds the flock (our non-blocking flock fails).
      let fd = open(s.data + "/tally.lock", O_RDWR | O_CLOEXEC)
      try #require(fd >= 0)
      defer { close(fd) }
      var held = false
      for _ in 0..<6000 {  // up to a minute on a loaded machine
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
          held = true
          break
        }
        flock(fd, LOCK_UN)
        try await Task.sleep(for: .milliseconds(10))
      }
      try #require(held, "the writer never took the lock")
      let r = try await s.tally(
        "post", "--id", "second", "--debit", "cash=1", "--credit", "alice=1")
      #expect(r.status == 2, "\(r)")
      #expect(r.stderr.contains("error LOCKED"), "\(r)")
      #expect(r.stderr.contains("(pid \(writer.pid))"), "\(r)")
      // the first writer finishes normally
      try writer.writeStdin(line + "\n")
      writer.closeStdin()
      let status = try await writer.wait()
      #expect(status == 0)
      let b = try await s.okJSON("balance", "alice")
      #expect(try b.str("balance") == "10100")
      try await s.ok("post", "--id", "second", "--debit", "cash=1", "--credit", "alice=1")
    }
  }

  @Test("--json rejections are exactly one JSON object on stdout with error.code/message/details")
  func jsonErrorShape() async throws {
    try await withFundedLedger { s in
      let r = try await s.tally(
        "--json", "post", "--id", "x", "--debit", "alice=500", "--credit", "bob=500")
      #expect(r.status == 1)
      #expect(r.stderr.isEmpty)
      #expect(r.stdout.split(separator: "\n").count == 1)
      let e = try r.object().obj("error")
      #expect(Set(e.keys) == ["code", "message", "details"])
      #expect(try e.str("code") == "INSUFFICIENT_FUNDS")
      #expect(try e.obj("details").str("account") == "alice")
    }
  }

  /// Bug: `parseMetadata` reports its rejection with `json: false`, so `--json` callers get
  /// human text on stderr and an empty stdout for an invalid `--meta`.
  @Test("--json with invalid --meta reports INVALID_METADATA as a JSON object")
  func jsonInvalidMetadata() async throws {
    try await withFundedLedger { s in
      let before = try await s.snapshot(Self.accounts)
      let r = try await s.tally(
        "--json", "post", "--id", "m", "--debit", "cash=1", "--credit", "alice=1", "--meta", "k=1",
        "--meta", "k=2")
      #expect(r.status == 1, "\(r)")
      #expect(try await s.snapshot(Self.accounts) == before)
      let o = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any]
      #expect((o?["error"] as? [String: Any])?["code"] as? String == "INVALID_METADATA", "\(r)")
    }
  }
  /// Bug: `CivilTime.parseTimestamp` (Sources/TallyCore/Validation.swift) overflows Int64
  /// nanoseconds for instants outside 1677-09-21…2262-04-11 and traps, so these CLI options
  /// crash the process (SIGILL, exit 132, a Swift runtime backtrace) instead of being refused
  /// as a usage error (exit 2).
  @Test(
    "RFC 3339 times outside the representable range are usage errors (exit 2), not crashes",
    arguments: [
      ["hold", "expire", "--as-of", "9999-12-31T23:59:59Z"],
      [
        "hold", "place", "--id", "h", "--debit", "alice=1", "--credit", "cash=1", "--deadline",
        "2300-01-01T00:00:00Z",
      ],
      ["statement", "alice", "--from", "1000-01-01T00:00:00Z"],
    ])
  func outOfRangeTimestamps(_ arguments: [String]) async throws {
    try await withFundedLedger { s in
      let before = try await s.snapshot(Self.accounts)
      let r = try await s.tally(arguments)
      #expect(
        r.status == 2, "expected a usage error, got exit \(r.status)\n\(r.stderr.prefix(300))")
      #expect(!r.stderr.contains("Swift runtime failure"), "\(r.stderr.prefix(300))")
      #expect(try await s.snapshot(Self.accounts) == before)
    }
  }

  @Test("operating errors under --json: exit 2, the code on stderr and as JSON on stdout")
  func jsonOperatingErrors() async throws {
    try await withScratch { s in
      let r = try await s.tally("--json", "balance", "cash")
      #expect(r.status == 2)
      #expect(r.stderr.hasPrefix("tally: error NOT_INITIALIZED: "), "\(r)")
      let error = try r.object()["error"] as? [String: Any]
      #expect(error?["code"] as? String == "NOT_INITIALIZED", "\(r)")
      #expect((error?["message"] as? String)?.isEmpty == false, "\(r)")
    }
  }

  @Test("usage errors under --json: exit 2 and a USAGE error object on stdout")
  func jsonUsageErrors() async throws {
    try await withScratch { s in
      let r = try await s.tally("--json", "post", "--debit", "a=1")
      #expect(r.status == 2)
      let error = try r.object()["error"] as? [String: Any]
      #expect(error?["code"] as? String == "USAGE", "\(r)")
    }
  }
}
