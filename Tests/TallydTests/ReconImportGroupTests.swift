import Foundation
import Synchronization
import Testing

// A large RECON.IMPORT through a real tallyd: applied in bounded write groups between other
// clients' posts, and all or nothing across SIGKILL (docs/RECONCILIATION.md, "Imports in write
// groups").

/// A CSV statement for `cash` of `count` payments out that no posting mirrors (the fixture's
/// postings on `cash` are all money in), each with its own bank reference.
func largeStatement(_ count: Int, day: String) -> String {
  var s = "booking_date,amount,currency,bank_ref\n"
  s.reserveCapacity(count * 40)
  for i in 1...count {
    s += "\(day),-\(1 + i / 100).\(i % 100 < 10 ? "0" : "")\(i % 100),EUR,G\(i)\n"
  }
  return s
}

@Suite("tallyd imports in write groups", .timeLimit(.minutes(5)))
struct ReconImportGroupTests {
  static let flags = ["--max-line-bytes", "16777216"]

  @Test func postsAreAnsweredBetweenTheGroupsOfALargeImport() async throws {
    try await withFixture(Self.flags) { server, admin in
      let lines = 100_000
      let importer = try await server.admin()
      defer { importer.close() }
      try await importer.send(importLine("cash", largeStatement(lines, day: todayUTC())) + "\n")
      let done = Atomic<Bool>(false)
      async let answer: Reply = {
        defer { done.store(true, ordering: .releasing) }
        return try await importer.readReply(timeout: 240)
      }()
      // Post, one entry per request, until the import answers; note each post's seq and
      // whether it was answered before the import was.
      var posts = [(seq: Int, beforeImport: Bool)]()
      var n = 0
      while !done.load(ordering: .acquiring) {
        n += 1
        let r = try await admin.post("during-\(n)", debit: "cash", credit: "bob", amount: "1")
        posts.append((try r.int("seq"), !done.load(ordering: .acquiring)))
      }
      let imported = try await answer
      #expect(imported.isOK, "\(imported)")
      #expect(try imported.int("new") == lines, "\(imported)")
      let (first, last) = (try imported.int("first_seq"), try imported.int("last_seq"))
      // Some posts were committed between the import's first and last group, and answered
      // while it was still running: the writer was never held for the whole import.
      let between = posts.filter { $0.seq > first && $0.seq < last && $0.beforeImport }
      #expect(
        !between.isEmpty,
        "no post between the import's seqs \(first)…\(last): \(posts.prefix(20))")
      let counts = try await reconCounts(admin, "cash")
      #expect(counts["unmatched"] == lines, "\(counts)")
    }
  }

  @Test func sigkillMidImportLeavesAllOrNothingAndARetryChangesNothing() async throws {
    try await withFixture(Self.flags) { server, admin in
      // Generous waits: a debug build under the parallel suite can take seconds per answer
      // while a 60k-line import is planned and applied (and resumed after the restart).
      let patience = 300.0
      let lines = 60_000
      let statement = largeStatement(lines, day: todayUTC())
      let before = try await admin.ok("LOG.HEAD", timeout: patience).int("seq")
      let importer = try await server.admin()
      try await importer.send(importLine("cash", statement) + "\n")
      // Kill once the import's groups have begun to land (or after a bound, wherever it is).
      let deadline = monotonicSeconds() + 60
      while monotonicSeconds() < deadline {
        if try await admin.ok("LOG.HEAD", timeout: patience).int("seq") > before + 3 { break }
        try await Task.sleep(nanoseconds: 2_000_000)
      }
      let midway = try await admin.ok("LOG.HEAD", timeout: patience).int("seq")
      _ = try await server.kill()
      importer.close()
      admin.close()

      // The open finishes the interrupted import before it listens.
      try await server.restart(listenTimeout: patience)
      let after = try await server.admin()
      defer { after.close() }
      let counts = try await reconCounts(after, "cash", timeout: patience)
      let items = counts["unmatched", default: 0] + counts["matched", default: 0]
      print("import killed at seq \(midway) (before: \(before)); after restart: \(counts)")
      #expect(items == 0 || items == lines, "a part of the import is visible: \(counts)")
      let head = try await after.ok("LOG.HEAD", timeout: patience).int("seq")

      // Retried: every line already in, or all of them new; either way once. (A debug build
      // on a loaded machine may take longer than a reply's default wait to plan it.)
      func importAgain() async throws -> Reply {
        let r = try await after.request(importLine("cash", statement), timeout: patience)
        #expect(r.isOK, "\(r)")
        return r
      }
      let retry = try await importAgain()
      if items == lines {
        #expect(try retry.int("new") == 0 && retry.int("duplicate") == lines, "\(retry)")
        #expect(
          try await after.ok("LOG.HEAD", timeout: patience).int("seq") == head,
          "a retry appended events")
      } else {
        #expect(try retry.int("new") == lines, "\(retry)")
      }
      let again = try await importAgain()
      #expect(try again.int("new") == 0 && again.isNull("first_seq"), "\(again)")

      let stopped = try await server.terminate()
      #expect(stopped == 0)
      let v = try await runTally(["--data", server.dataDir, "verify", "--json"])
      #expect(v.status == 0, "tally verify: \(v.stdout.prefix(2000)) \(v.stderr.prefix(2000))")
    }
  }

  @Test func aMultiStatementFileWithMapAndEncodingImportsOnlineAsOffline() async throws {
    try await withFixture { server, admin in
      try await admin.open("bank-2")
      // Two MT940 messages, one per account, narrative in Windows-1252 (0x80 is "€").
      let day = todayUTC()
      let yymmdd = String(day.replacingOccurrences(of: "-", with: "").dropFirst(2))
      let mmdd = String(yymmdd.dropFirst(2))
      func message(_ ref: String, _ acct: String, _ amount: String, _ bankRef: String) -> String {
        ":20:\(ref)\r\n:25:\(acct)\r\n:28C:1/1\r\n:60F:C\(yymmdd)EUR0,00\r\n"
          + ":61:\(yymmdd)\(mmdd)C\(amount)NTRFNONREF//\(bankRef)\r\n:86:Zahlung 5 \u{80}\r\n"
          + ":62F:C\(yymmdd)EUR\(amount)\r\n-\r\n"
      }
      let text = message("S1", "DE111", "7,00", "B1") + message("S2", "DE222", "8,00", "B2")
      // The narrative byte 0x80 alone: not UTF-8, so it travels in base64.
      var bytes = [UInt8]()
      for u in text.unicodeScalars { bytes.append(u == "\u{80}" ? 0x80 : UInt8(u.value)) }
      let line =
        "RECON.IMPORT {\"map\":{\"DE111\":\"cash\",\"DE222\":\"bank-2\"},\"format\":\"mt940\","
        + "\"encoding\":\"windows-1252\",\"statement_base64\":\""
        + Data(bytes).base64EncodedString() + "\"}"
      let r = try await admin.ok(line)
      #expect(try r.int("new") == 2 && r.str("text_encoding") == "windows-1252", "\(r)")
      let statements = try r.arr("statements")
      #expect(statements.count == 2, "\(r)")
      #expect(try await reconCounts(admin, "bank-2")["unmatched"] == 1)
      // The same request again: nothing new.
      let again = try await admin.ok(line)
      #expect(try again.int("new") == 0 && again.int("duplicate") == 2, "\(again)")
      // Neither account nor map: a field error, nothing changed.
      try await expectNoChange(admin) {
        let bad = try await admin.request(
          #"RECON.IMPORT {"format":"csv","statement":"booking_date,amount,currency\n"}"#)
        #expect(bad.code == "BAD_REQUEST" && bad.raw.contains("INVALID_FIELD"), "\(bad)")
        let b64 = try await admin.request(
          #"RECON.IMPORT {"account":"cash","format":"csv","statement_base64":"%%"}"#)
        #expect(b64.code == "BAD_REQUEST" && b64.raw.contains("statement_base64"), "\(b64)")
      }
    }
  }
}
