import Foundation
import Subprocess
import Testing

#if canImport(System)
  import System
#else
  import SystemPackage
#endif

/// `tally recon` through real processes on a real data directory.
@Suite("recon")
struct ReconCLITests {
  static func statement(_ day: String) -> String {
    """
    booking_date,value_date,amount,currency,bank_ref,end_to_end_id,reference,description,account
    \(day),,100.00,EUR,B1,,seed,seed payment,DE89370400440532013000
    \(day),,9.99,EUR,B2,,,bank fee,DE89370400440532013000

    """
  }

  @Test("import matches by reference, re-import changes nothing, resolve and unmatch are events")
  func importStatusResolveUnmatch() async throws {
    try await withFundedLedger { s in
      let day = String(ISO8601DateFormatter().string(from: Date()).prefix(10))
      let file = s.file("st.csv")
      try Self.statement(day).write(toFile: file, atomically: true, encoding: .utf8)
      let first = try await s.okJSON(
        "recon", "import", "--account", "cash", "--format", "csv", file)
      #expect(try first.int("new") == 2)
      #expect(try first.obj("matched").int("reference") == 1)
      #expect(try first.int("unmatched") == 1)
      let before = try await s.snapshot(["cash"])
      let again = try await s.okJSON(
        "recon", "import", "--account", "cash", "--format", "csv", file)
      #expect(try again.int("new") == 0 && again.int("duplicate") == 2)
      #expect(try await s.snapshot(["cash"]) == before)

      var status = try await s.okJSON("recon", "status", "--account", "cash")
      #expect(try status.obj("counts").int("matched") == 1)
      #expect(try status.obj("counts").int("unmatched") == 1)
      #expect(try status.obj("counts").int("missing_from_statement") == 0)

      try await s.ok("recon", "resolve", "2", "--reason", "bank fee, booked later")
      try await s.ok("recon", "unmatch", "1", "--reason", "wrong pair")
      status = try await s.okJSON("recon", "status", "--account", "cash")
      #expect(try status.obj("counts").int("resolved") == 1)
      #expect(try status.obj("counts").int("unmatched") == 1)
      #expect(try status.obj("counts").int("missing_from_statement") == 1)
      let items = try await s.okJSON("recon", "items", "--account", "cash", "--state", "resolved")
      #expect(try items.arr("items").count == 1)
      // Tables show decimals in the account's currency; JSON keeps minor units.
      let table = try await s.tally("recon", "status", "--account", "cash")
      #expect(
        table.status == 0 && table.stdout.contains("resolved                1      9.99"),
        "\(table)")
      let list = try await s.tally("recon", "items", "--account", "cash", "--state", "resolved")
      #expect(list.stdout.contains("9.99") && !list.stdout.contains("999"), "\(list)")
      #expect(
        try items.arr("items").first.flatMap { ($0 as? [String: Any])?["amount"] as? String }
          == "999")
      try await s.ok("verify")
      try await s.ok("rebuild")
    }
  }

  @Test("import reports each phase on a terminal (stderr), and nothing extra when piped")
  func importProgressOnATerminal() async throws {
    // `script` (util-linux) gives the command a pseudo-terminal; without it there is no
    // terminal to test on, which is a failure here rather than a silent pass.
    let script = try #require(
      ["/usr/bin/script", "/bin/script"].first { FileManager.default.isExecutableFile(atPath: $0) },
      "util-linux script")
    try await withFundedLedger { s in
      let day = String(ISO8601DateFormatter().string(from: Date()).prefix(10))
      let file = s.file("st.csv")
      try Self.statement(day).write(toFile: file, atomically: true, encoding: .utf8)
      let tally = try TallyBinary.path()
      let command =
        [tally, "--data", s.data, "recon", "import", "--account", "cash"]
        + ["--format", "csv", file]
      let r = try await run(
        .path(FilePath(script)),
        arguments: ["-qec", command.map { "'\($0)'" }.joined(separator: " "), "/dev/null"],
        output: .string(limit: 1 << 20), error: .string(limit: 1 << 20))
      let out = r.standardOutput
      #expect(exitStatus(r.terminationStatus) == 0, "\(out)")
      for phase in ["parsed 2 lines", "2 new, 0 duplicate", "candidate postings", "committed"] {
        #expect(out.contains(phase), "\(phase): \(out)")
      }
      // Piped (not a terminal): stdout is only the summary, stderr is empty.
      let again = try await s.tally("recon", "import", "--account", "cash", "--format", "csv", file)
      #expect(again.status == 0 && again.stderr.isEmpty && !again.stdout.contains("committed"))
    }
  }

  @Test("a bad statement is STATEMENT_INVALID (exit 1) and changes nothing")
  func badStatementChangesNothing() async throws {
    try await withFundedLedger { s in
      let file = s.file("bad.csv")
      try "booking_date,amount,currency\n2024-02-30,1.00,EUR\n".write(
        toFile: file, atomically: true, encoding: .utf8)
      let before = try await s.snapshot(["cash"])
      let r = try await s.tally(
        "--json", "recon", "import", "--account", "cash", "--format", "csv", file)
      #expect(r.status == 1, "\(r)")
      #expect(r.stdout.contains("STATEMENT_INVALID") && r.stdout.contains("BAD_DATE"), "\(r)")
      #expect(try await s.snapshot(["cash"]) == before)
      // Over 64 MiB: STATEMENT_INVALID, code TOO_LARGE, and nothing changed.
      let huge = s.file("huge.csv")
      let line = "2024-03-01,1.00,EUR\n"
      try
        ("booking_date,amount,currency\n"
        + String(repeating: line, count: (64 << 20) / line.utf8.count + 1))
        .write(toFile: huge, atomically: false, encoding: .utf8)
      let big = try await s.tally(
        "--json", "recon", "import", "--account", "cash", "--format", "csv", huge)
      #expect(big.status == 1, "\(big.stderr)")
      #expect(big.stdout.contains("STATEMENT_INVALID") && big.stdout.contains("TOO_LARGE"))
      #expect(try await s.snapshot(["cash"]) == before)
      let wrong = try await s.tally("recon", "resolve", "99", "--reason", "x")
      #expect(wrong.status == 1 && wrong.stderr.contains("ITEM_NOT_FOUND"), "\(wrong)")
    }
  }
}
