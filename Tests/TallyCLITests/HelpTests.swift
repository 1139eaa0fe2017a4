import Testing

@Suite("tally --help")
struct HelpTests {
  static let golden = """
    OVERVIEW: Tally: an append-only, hash-chained double-entry ledger.

    Exit codes: 0 ok, 1 rejected or verification failed, 2 usage or I/O error.
    Global options (--data DIR, --json, --no-progress, --server HOST:PORT, --key,
    --secret) may come before or after the command. Long commands show progress on
    stderr when it is a terminal. With --server (or $TALLY_SERVER) commands run
    through tallyd and print its JSON answers.

    USAGE: tally <subcommand>

    OPTIONS:
      --version               Show the version.
      -h, --help              Show help information.

    SUBCOMMANDS:
      init                    Create and initialise a data directory (creates the
                              platform partner).
      partner                 Create, list and view partners.
      asset                   Declare and list custom assets (non-ISO currencies).
      account                 Open, close, show and list accounts.
      post                    Post an entry from legs on the command line, or many
                              from a JSONL file.
      hold                    Authorisation holds: place, capture, release, expire,
                              show.
      reverse                 Reverse an entry: a new entry with every leg mirrored
                              (at most once per entry).
      balance                 Balances of an account, now or as of a seq.
      statement               Events that touched an account, oldest first,
                              paginated.
      log                     Read the event log with each event's leaf and chain
                              hash.
      verify                  Recompute the chain, the tree and every projection
                              and compare; or check an export (--export).
      rebuild                 Recompute every projection from the log (all or
                              nothing), then verify.
      stats                   Log head, record counts and storage use.
      key                     API keys for tallyd: create (secret shown once),
                              list, revoke.
      proof                   RFC 9162 Merkle proofs over the log: inclusion of an
                              event, consistency of sizes.
      checkpoint              Print a signed checkpoint (C2SP tlog-checkpoint note)
                              of the log's Merkle tree.
      vkey                    Print the verifier key of the ledger's checkpoints
                              (name+hash+base64).
      signing-key             The checkpoint signing key: rotate it.
      export                  Write the log (or a range of it) as an export an
                              auditor verifies without LMDB.
      recon                   Reconcile an account against its statements.
      call                    Send one protocol request to the server and print its
                              answer (needs --server).
      promote                 Turn a caught-up read replica (tallyd --replica-of)
                              into the primary.
      backup                  Copy the data directory, even while tallyd writes to
                              it, and verify the copy.
      restore                 Lay a backup out as a new data directory and verify
                              it.

      See 'tally help <subcommand>' for detailed help.

    """

  static let subcommands = [
    "init", "partner", "asset", "account", "post", "hold", "reverse", "balance", "statement",
    "log", "verify", "rebuild", "stats", "key", "proof", "checkpoint", "vkey", "signing-key",
    "export", "recon", "call", "promote", "backup", "restore",
  ]

  @Test("root --help matches the golden text (80 columns) and lists every subcommand")
  func rootHelpIsGolden() async throws {
    let r = try await runTally(["--help"])
    #expect(r.status == 0, "\(r)")
    #expect(r.stderr.isEmpty, "\(r)")
    #expect(r.stdout == Self.golden, "\(r)")
    // Independent of the wrapping: the SUBCOMMANDS section names each one, in this order.
    let section = try #require(r.stdout.components(separatedBy: "SUBCOMMANDS:").last)
    let listed = section.split(separator: "\n").compactMap { line -> String? in
      guard line.hasPrefix("  "), !line.hasPrefix("   ") else { return nil }
      return line.split(separator: " ").first.map(String.init)
    }.filter { $0 != "See" }
    #expect(listed == Self.subcommands)
  }

  @Test("-h and `help` print the same root help")
  func helpAliases() async throws {
    let h = try await runTally(["-h"])
    #expect(h.status == 0)
    #expect(h.stdout == Self.golden)
    let help = try await runTally(["help"])
    #expect(help.status == 0)
    #expect(help.stdout == Self.golden)
  }

  @Test("every subcommand has its own help, exit 0", arguments: subcommands)
  func subcommandHelp(_ name: String) async throws {
    let r = try await runTally([name, "--help"])
    #expect(r.status == 0, "\(r)")
    #expect(r.stdout.contains("USAGE: tally \(name)"), "\(r)")
  }

  @Test("--version prints 0.1.0")
  func version() async throws {
    let r = try await runTally(["--version"])
    #expect(r.status == 0)
    #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "0.1.0")
  }
}
