import Foundation
import Testing

@Suite("post --file")
struct PostFileTests {
  static func entry(_ id: String, _ debit: String, _ credit: String, _ amount: String, pad: Int = 0)
    -> String
  {
    "{\"id\":\"\(id)\"," + String(repeating: " ", count: pad)
      + #""legs":[{"account":"\#(debit)","side":"debit","amount":"\#(amount)"},"#
      + #"{"account":"\#(credit)","side":"credit","amount":"\#(amount)"}]}"#
  }

  /// A valid entry line of exactly `bytes` bytes (padded with JSON whitespace).
  static func entry(_ id: String, amount: String, bytes: Int) -> String {
    let bare = entry(id, "cash", "alice", amount)
    let line = entry(id, "cash", "alice", amount, pad: bytes - bare.utf8.count)
    precondition(line.utf8.count == bytes)
    return line
  }

  enum Expect: Equatable {
    case applied(String)
    case duplicate
    case rejected(String)
    case blank
  }

  /// Line by line: content, then what the summary must say about it.
  static let mixed: [(String, Expect)] = [
    (entry("f1", "cash", "alice", "100"), .applied("f1")),  // 1
    ("", .blank),  // 2
    (entry("f2", "cash", "alice", "200"), .applied("f2")),  // 3
    (entry("f1", "cash", "alice", "100"), .duplicate),  // 4: same id, same content
    (#"{"id":"f3", legs"#, .rejected("INVALID_JSON")),  // 5
    (
      #"{"id":"f4","legs":[{"account":"cash","side":"debit","amount":300},"#
        + #"{"account":"alice","side":"credit","amount":300}]}"#,
      .rejected("INVALID_FIELD")
    ),  // 6: amounts must be strings (a number is a field of the wrong type)
    ("   \t", .blank),  // 7
    (entry("f5", amount: "500", bytes: 70_000), .rejected("LINE_TOO_LONG")),  // 8
    (entry("f-edge", amount: "700", bytes: 65_536), .applied("f-edge")),  // 9: exactly the limit
    (entry("f-over", amount: "800", bytes: 65_537), .rejected("LINE_TOO_LONG")),  // 10: one over
    (
      #"{"id":"f-unbal","legs":[{"account":"cash","side":"debit","amount":"1"},"#
        + #"{"account":"alice","side":"credit","amount":"2"}]}"#,
      .rejected("UNBALANCED")
    ),  // 11
    (entry("f2", "cash", "alice", "201"), .rejected("ID_CONFLICT")),  // 12
    // 13: longer than the 1 MiB read chunk
    (entry("f-huge", amount: "900", bytes: 1_500_000), .rejected("LINE_TOO_LONG")),
    (entry("f-ghost", "cash", "ghost", "1"), .rejected("ACCOUNT_NOT_FOUND")),  // 14
    (entry("f6", "cash", "alice", "600") + "\r", .applied("f6")),  // 15: CRLF line ending
    (entry("f7", "cash", "alice", "1000"), .applied("f7")),  // 16: last line, no newline
  ]

  static var mixedText: String { mixed.map(\.0).joined(separator: "\n") }

  static let appliedIds = mixed.compactMap { if case .applied(let id) = $0.1 { id } else { nil } }
  static let rejections = mixed.enumerated().compactMap { i, l -> (Int, String)? in
    if case .rejected(let code) = l.1 { (i + 1, code) } else { nil }
  }
  static let duplicates = mixed.filter { $0.1 == .duplicate }.count

  @Test(
    "mixed file: counts, rejection line numbers, exit 1; re-run is all duplicates, nothing appended"
  )
  func mixedFile() async throws {
    try await withFundedLedger { s in
      let path = s.file("mixed.jsonl")
      try Self.mixedText.write(toFile: path, atomically: true, encoding: .utf8)
      let before = try await s.snapshot(["cash", "alice"])

      let r = try await s.tally("--json", "post", "--file", path, "--batch", "2")
      #expect(r.status == 1, "\(r)")
      let o = try r.object()
      #expect(try o.int("lines") == Self.mixed.count)
      #expect(try o.int("applied") == Self.appliedIds.count)
      #expect(try o.int("duplicate") == Self.duplicates)
      #expect(try o.int("rejected") == Self.rejections.count)
      #expect(try o.int("first_seq") == before.seq + 1)
      #expect(try o.int("last_seq") == before.seq + Self.appliedIds.count)
      let rej = try o.arr("rejections").map { try #require($0 as? [String: Any]) }
      #expect(try rej.map { try $0.int("line") } == Self.rejections.map(\.0))
      #expect(try rej.map { try $0.str("code") } == Self.rejections.map(\.1))
      #expect(try rej.allSatisfy { !(try $0.str("message")).isEmpty })

      // exactly the applied lines were appended, in file order
      let log = try await s.tally("--json", "log", "--from-seq", String(before.seq + 1)).lines()
      #expect(try log.map { try $0.str("id") } == Self.appliedIds)
      #expect(
        try log.map { try $0.str("type") }
          == Array(repeating: "entry_posted", count: Self.appliedIds.count))
      let total = 100 + 200 + 700 + 600 + 1000
      #expect(try await s.okJSON("balance", "alice").str("balance") == String(10000 + total))
      let after = try await s.snapshot(["cash", "alice"])
      #expect(after.seq == before.seq + Self.appliedIds.count)

      // the same file again: nothing new
      let again = try await s.tally("--json", "post", "--file", path)
      #expect(again.status == 1, "\(again)")
      let a = try again.object()
      #expect(try a.int("applied") == 0)
      #expect(try a.int("duplicate") == Self.appliedIds.count + Self.duplicates)
      #expect(try a.int("rejected") == Self.rejections.count)
      #expect(a.isNull("first_seq"))
      #expect(a.isNull("last_seq"))
      #expect(try await s.snapshot(["cash", "alice"]) == after)

      // human summary
      let h = try await s.tally("post", "--file", path)
      #expect(h.status == 1)
      #expect(
        h.stdout.hasPrefix(
          "\(Self.mixed.count) lines: 0 applied, \(Self.appliedIds.count + Self.duplicates)"
            + " duplicate, \(Self.rejections.count) rejected\n"
        ), "\(h)")
      for (line, code) in Self.rejections {
        #expect(h.stdout.contains("line \(line): \(code): "), "line \(line) \(code): \(h)")
      }
      #expect(try await s.snapshot(["cash", "alice"]) == after)
      #expect(try await s.tally("verify").status == 0)
    }
  }

  @Test("a file without rejections exits 0, and 0 again when re-run (all duplicates)")
  func cleanFile() async throws {
    try await withFundedLedger { s in
      let path = s.file("clean.jsonl")
      let lines = (1...25).map { Self.entry("c\($0)", "cash", "bob", String($0 * 10)) }
      try
        (lines[0..<10].joined(separator: "\n") + "\n\n\n" + lines[10...].joined(separator: "\n")
        + "\n")
        .write(toFile: path, atomically: true, encoding: .utf8)
      let first = try await s.tally("--json", "post", "--file", path, "--batch", "7")
      #expect(first.status == 0, "\(first)")
      let o = try first.object()
      #expect(try o.int("lines") == 27)
      #expect(try o.int("applied") == 25)
      #expect(try o.int("duplicate") == 0)
      #expect(try o.int("rejected") == 0)
      #expect(try o.arr("rejections").isEmpty)
      let after = try await s.snapshot(["cash", "bob"])
      #expect(
        try await s.okJSON("balance", "bob").str("balance") == String((1...25).reduce(0, +) * 10))
      let again = try await s.tally("--json", "post", "--file", path)
      #expect(again.status == 0, "\(again)")
      let a = try again.object()
      #expect(try a.int("applied") == 0)
      #expect(try a.int("duplicate") == 25)
      #expect(try a.int("rejected") == 0)
      #expect(try await s.snapshot(["cash", "bob"]) == after)
      let human = try await s.tally("post", "--file", path)
      #expect(human.status == 0)
      #expect(human.stdout == "27 lines: 0 applied, 25 duplicate, 0 rejected\n", "\(human)")
    }
  }

  @Test("--file - reads standard input")
  func stdin() async throws {
    try await withFundedLedger { s in
      let text =
        Self.entry("s1", "cash", "bob", "123") + "\n" + Self.entry("s2", "cash", "bob", "877")
        + "\n"
      let r = try await s.tally(["--json", "post", "--file", "-"], stdin: text)
      #expect(r.status == 0, "\(r)")
      #expect(try r.object().int("applied") == 2)
      #expect(try await s.okJSON("balance", "bob").str("balance") == "1000")
    }
  }
  @Test("at most 50 rejections are listed; the count has them all")
  func rejectionsCapped() async throws {
    try await withFundedLedger { s in
      let path = s.file("bad.jsonl")
      let text =
        (1...60).map { "not json \($0)" }.joined(separator: "\n") + "\n"
        + Self.entry("ok", "cash", "bob", "1") + "\n"
      try text.write(toFile: path, atomically: true, encoding: .utf8)
      let r = try await s.tally("--json", "post", "--file", path)
      #expect(r.status == 1)
      let o = try r.object()
      #expect(try o.int("rejected") == 60)
      #expect(try o.int("applied") == 1)
      let listed = try o.arr("rejections").map { try #require($0 as? [String: Any]) }
      #expect(listed.count == 50)
      #expect(try listed.map { try $0.int("line") } == Array(1...50))
      #expect(try listed.allSatisfy { try $0.str("code") == "INVALID_JSON" })
      let h = try await s.tally("post", "--file", path)
      #expect(h.status == 1)
      #expect(h.stdout.contains("… and 10 more rejected lines"), "\(h)")
    }
  }
}
