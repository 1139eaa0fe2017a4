import Foundation
import TallyCore
import Testing

/// Every wire limit of one real `tallyd` at its maximum (served) and one past it (the code
/// docs/PROTOCOL.md gives, and nothing changed: log head, chain and balances). The table in
/// docs/TESTING.md ("Limits at max and max + 1") says where the others are tested.
@Suite("Wire limits at max and max + 1", .serialized, .timeLimit(.minutes(10)))
struct LimitTableTests {
  /// One limit: a request at the maximum and one past it, with what each must answer.
  struct Row: CustomStringConvertible {
    var limit: String
    /// The request at the maximum, and the answer: "OK", or the code (and reason) of a
    /// rejection for another rule, which proves the limit itself let it through.
    var atMax: String
    var atMaxAnswer: String
    var pastMax: String
    /// `CODE` or `CODE/REASON`.
    var pastMaxAnswer: String
    var description: String { limit }
  }

  static let lineBytesMax = 131_072
  static let batchMax = 5
  static let connectionsMax = 6

  static func text(_ n: Int, _ c: Character = "x") -> String { String(repeating: c, count: n) }

  static func entry(
    _ id: String, legs: String = twoLegs("alice", "bob", "1"), extra: String = ""
  ) -> String {
    "{\"id\":\"\(id)\",\"legs\":\(legs)\(extra)}"
  }

  static func metadata(pairs: Int, keyBytes: Int? = nil, valueBytes: Int = 1) -> String {
    let members = (0..<pairs).map { i -> String in
      let key = keyBytes.map { text($0, "k") } ?? "k\(i)"
      return "\"\(key)\":\"\(text(valueBytes, "v"))\""
    }
    return ",\"metadata\":{\(members.joined(separator: ","))}"
  }

  static func legs(_ count: Int) -> String {
    let debits = count / 2
    let items = (0..<count).map { i in
      "{\"account\":\"leg-\(i)\",\"side\":\"\(i < debits ? "debit" : "credit")\","
        + "\"amount\":\"\(i < debits ? (count - debits) : debits)\"}"
    }
    return "[" + items.joined(separator: ",") + "]"
  }

  /// `ENTRY.GET` padded with spaces to exactly `total` bytes (without the newline).
  static func padded(_ total: Int) -> String {
    let head = #"ENTRY.GET {"id":"nope""#
    return head + text(total - head.utf8.count - 1, " ") + "}"
  }

  static func nested(_ depth: Int) -> String {
    // The body object is level 1; each array one more.
    "ENTRY.GET {\"id\":\"x\",\"z\":" + text(depth - 1, "[") + text(depth - 1, "]") + "}"
  }

  static let rows: [Row] = [
    Row(
      limit: "request line (--max-line-bytes \(lineBytesMax))",
      atMax: padded(lineBytesMax), atMaxAnswer: "NOT_FOUND/ENTRY_NOT_FOUND",
      pastMax: padded(lineBytesMax + 1), pastMaxAnswer: "LINE_TOO_LONG"),
    Row(
      limit: "JSON nesting (16)", atMax: nested(16), atMaxAnswer: "BAD_REQUEST/INVALID_FIELD",
      pastMax: nested(17), pastMaxAnswer: "BAD_REQUEST/INVALID_JSON"),
    Row(
      limit: "JSON string (64 KiB)",
      atMax: "ENTRY.GET {\"id\":\"x\",\"z\":\"\(text(65_536))\"}",
      atMaxAnswer: "BAD_REQUEST/INVALID_FIELD",
      pastMax: "ENTRY.GET {\"id\":\"x\",\"z\":\"\(text(65_537))\"}",
      pastMaxAnswer: "BAD_REQUEST/INVALID_JSON"),
    Row(
      limit: "legs per entry (\(Limits.legsPerEntryMax))",
      atMax: "ENTRY.POST " + entry("legs-max", legs: legs(Limits.legsPerEntryMax)),
      atMaxAnswer: "OK",
      pastMax: "ENTRY.POST " + entry("legs-over", legs: legs(Limits.legsPerEntryMax + 1)),
      pastMaxAnswer: "BAD_REQUEST/TOO_MANY_LEGS"),
    Row(
      limit: "legs per entry, minimum (\(Limits.legsPerEntryMin))",
      atMax: "ENTRY.POST " + entry("legs-min"), atMaxAnswer: "OK",
      pastMax: "ENTRY.POST "
        + entry("legs-one", legs: "[{\"account\":\"alice\",\"side\":\"debit\",\"amount\":\"1\"}]"),
      pastMaxAnswer: "BAD_REQUEST/TOO_FEW_LEGS"),
    Row(
      limit: "entry id (\(Limits.entryIdBytesMax) B)",
      atMax: "ENTRY.POST " + entry(text(Limits.entryIdBytesMax, "e")), atMaxAnswer: "OK",
      pastMax: "ENTRY.POST " + entry(text(Limits.entryIdBytesMax + 1, "e")),
      pastMaxAnswer: "BAD_REQUEST/INVALID_ID"),
    Row(
      limit: "hold id (\(Limits.entryIdBytesMax) B)",
      atMax: "HOLD.PLACE " + entry(text(Limits.entryIdBytesMax, "h")), atMaxAnswer: "OK",
      pastMax: "HOLD.PLACE " + entry(text(Limits.entryIdBytesMax + 1, "h")),
      pastMaxAnswer: "BAD_REQUEST/INVALID_ID"),
    Row(
      limit: "partner id (\(Limits.partnerIdBytesMax) B)",
      atMax: "PARTNER.CREATE {\"id\":\"\(text(Limits.partnerIdBytesMax, "p"))\",\"name\":\"P\"}",
      atMaxAnswer: "OK",
      pastMax:
        "PARTNER.CREATE {\"id\":\"\(text(Limits.partnerIdBytesMax + 1, "p"))\",\"name\":\"P\"}",
      pastMaxAnswer: "BAD_REQUEST/INVALID_ID"),
    Row(
      limit: "display name (\(Limits.displayNameBytesMax) B)",
      atMax: "PARTNER.CREATE {\"id\":\"named\",\"name\":\"\(text(Limits.displayNameBytesMax))\"}",
      atMaxAnswer: "OK",
      pastMax:
        "PARTNER.CREATE {\"id\":\"named2\",\"name\":\"\(text(Limits.displayNameBytesMax + 1))\"}",
      pastMaxAnswer: "BAD_REQUEST/INVALID_FIELD"),
    Row(
      limit: "account name (\(Limits.accountNameBytesMax) B)",
      atMax:
        "ACCOUNT.OPEN {\"account\":\"\(text(Limits.accountNameBytesMax, "a"))\","
        + "\"currency\":\"EUR\"}",
      atMaxAnswer: "OK",
      pastMax:
        "ACCOUNT.OPEN {\"account\":\"\(text(Limits.accountNameBytesMax + 1, "a"))\","
        + "\"currency\":\"EUR\"}",
      pastMaxAnswer: "BAD_REQUEST/INVALID_ID"),
    Row(
      limit: "ref (\(Limits.refBytesMax) B)",
      atMax: "ENTRY.POST " + entry("ref-max", extra: ",\"ref\":\"\(text(Limits.refBytesMax))\""),
      atMaxAnswer: "OK",
      pastMax: "ENTRY.POST "
        + entry("ref-over", extra: ",\"ref\":\"\(text(Limits.refBytesMax + 1))\""),
      pastMaxAnswer: "BAD_REQUEST/INVALID_FIELD"),
    Row(
      limit: "metadata pairs (\(Limits.metadataPairsMax))",
      atMax: "ENTRY.POST " + entry("md-pairs", extra: metadata(pairs: Limits.metadataPairsMax)),
      atMaxAnswer: "OK",
      pastMax: "ENTRY.POST "
        + entry("md-pairs-over", extra: metadata(pairs: Limits.metadataPairsMax + 1)),
      pastMaxAnswer: "BAD_REQUEST/INVALID_METADATA"),
    Row(
      limit: "metadata key (\(Limits.metadataKeyBytesMax) B)",
      atMax: "ENTRY.POST "
        + entry("md-key", extra: metadata(pairs: 1, keyBytes: Limits.metadataKeyBytesMax)),
      atMaxAnswer: "OK",
      pastMax: "ENTRY.POST "
        + entry(
          "md-key-over", extra: metadata(pairs: 1, keyBytes: Limits.metadataKeyBytesMax + 1)),
      pastMaxAnswer: "BAD_REQUEST/INVALID_METADATA"),
    Row(
      limit: "metadata value (\(Limits.metadataValueBytesMax) B)",
      atMax: "ENTRY.POST "
        + entry("md-value", extra: metadata(pairs: 1, valueBytes: Limits.metadataValueBytesMax)),
      atMaxAnswer: "OK",
      pastMax: "ENTRY.POST "
        + entry(
          "md-value-over",
          extra: metadata(pairs: 1, valueBytes: Limits.metadataValueBytesMax + 1)),
      pastMaxAnswer: "BAD_REQUEST/INVALID_METADATA"),
    Row(
      limit: "entries per ENTRY.BATCH (--max-batch \(batchMax))",
      atMax: "ENTRY.BATCH {\"entries\":["
        + (0..<batchMax).map { entry("batch-\($0)") }.joined(separator: ",") + "]}",
      atMaxAnswer: "OK",
      pastMax: "ENTRY.BATCH {\"entries\":["
        + (0...batchMax).map { entry("batch-over-\($0)") }.joined(separator: ",") + "]}",
      pastMaxAnswer: "TOO_LARGE"),
    Row(
      limit: "page size, LOG.READ (\(Limits.pageLimitMax))",
      atMax: "LOG.READ {\"limit\":\(Limits.pageLimitMax)}", atMaxAnswer: "OK",
      pastMax: "LOG.READ {\"limit\":\(Limits.pageLimitMax + 1)}",
      pastMaxAnswer: "BAD_REQUEST/INVALID_FIELD"),
    Row(
      limit: "page size, STATEMENT.GET (\(Limits.pageLimitMax))",
      atMax: "STATEMENT.GET {\"account\":\"alice\",\"limit\":\(Limits.pageLimitMax)}",
      atMaxAnswer: "OK",
      pastMax: "STATEMENT.GET {\"account\":\"alice\",\"limit\":\(Limits.pageLimitMax + 1)}",
      pastMaxAnswer: "BAD_REQUEST/INVALID_FIELD"),
    Row(
      limit: "page size, ACCOUNT.LIST (\(Limits.pageLimitMax))",
      atMax: "ACCOUNT.LIST {\"limit\":\(Limits.pageLimitMax)}", atMaxAnswer: "OK",
      pastMax: "ACCOUNT.LIST {\"limit\":\(Limits.pageLimitMax + 1)}",
      pastMaxAnswer: "BAD_REQUEST/INVALID_FIELD"),
    Row(
      limit: "page size, RECON.ITEMS (\(Limits.pageLimitMax))",
      atMax: "RECON.ITEMS {\"account\":\"cash\",\"limit\":\(Limits.pageLimitMax)}",
      atMaxAnswer: "OK",
      pastMax: "RECON.ITEMS {\"account\":\"cash\",\"limit\":\(Limits.pageLimitMax + 1)}",
      pastMaxAnswer: "BAD_REQUEST/INVALID_FIELD"),
    Row(
      limit: "recon resolution reason (\(Limits.reconReasonBytesMax) B)",
      atMax: "RECON.RESOLVE {\"item\":1,\"reason\":\"\(text(Limits.reconReasonBytesMax))\"}",
      atMaxAnswer: "OK",
      pastMax:
        "RECON.RESOLVE {\"item\":2,\"reason\":\"\(text(Limits.reconReasonBytesMax + 1))\"}",
      pastMaxAnswer: "BAD_REQUEST/INVALID_FIELD"),
    Row(
      limit: "recon tolerance_days (\(Limits.reconToleranceDaysMax))",
      atMax: importLine(
        "cash", statement("2026-01-05"),
        extra: ",\"tolerance_days\":\(Limits.reconToleranceDaysMax)"),
      atMaxAnswer: "OK",
      pastMax: importLine(
        "cash", statement("2026-01-06"),
        extra: ",\"tolerance_days\":\(Limits.reconToleranceDaysMax + 1)"),
      pastMaxAnswer: "BAD_REQUEST/INVALID_FIELD"),
  ]

  /// A CSV statement of two lines that match nothing (items to resolve).
  static func statement(_ day: String) -> String {
    "booking_date,amount,currency,reference,description\n"
      + "\(day),50.00,EUR,,one\n\(day),-2.50,EUR,,bank fee\n"
  }

  static func answer(_ r: Reply) -> String {
    if r.isOK { return "OK" }
    let code = r.code ?? "?"
    return r.reason.map { $0 == code ? code : "\(code)/\($0)" } ?? code
  }

  @Test func everyWireLimitServesItsMaximumAndRefusesOnePastItChangingNothing() async throws {
    let flags = [
      "--max-line-bytes", "\(Self.lineBytesMax)", "--max-batch", "\(Self.batchMax)",
      "--max-connections", "\(Self.connectionsMax)",
    ]
    try await withFixture(flags) { server, admin in
      // The accounts of the widest entry, opened in one pipelined burst.
      let count = Limits.legsPerEntryMax + 1
      for i in 0..<count {
        try await admin.send("ACCOUNT.OPEN {\"account\":\"leg-\(i)\",\"currency\":\"EUR\"}\n")
      }
      for _ in 0..<count { #expect(try await admin.readReply().isOK) }
      let accounts = Fixture.all + (0..<count).map { "leg-\($0)" }
      // Items 1 and 2 of cash, unmatched, for the resolution rows.
      try await admin.ok(importLine("cash", Self.statement("2026-01-02")))
      for row in Self.rows {
        let at = try await admin.request(row.atMax)
        #expect(Self.answer(at) == row.atMaxAnswer, "\(row) at max: \(at.raw.prefix(300))")
        let before = try await admin.state(accounts)
        let past = try await admin.request(row.pastMax)
        #expect(Self.answer(past) == row.pastMaxAnswer, "\(row) past max: \(past.raw.prefix(300))")
        let after = try await admin.state(accounts)
        #expect(after == before, "\(row): the refused request changed the ledger")
        // The connection still serves.
        #expect(try await admin.request("PING").isOK, "\(row)")
      }
      // Connections: the admin's and five more are served; the seventh is refused.
      var open = [LineConn]()
      for _ in 1..<Self.connectionsMax { open.append(try await server.connect()) }
      let before = try await admin.state(Fixture.all)
      let refused = try await server.connect(expectHello: false)
      let lines = try await refused.waitClosed(timeout: 30)
      #expect(
        lines.count == 1 && Reply(lines.first ?? "").code == "TOO_MANY_CONNECTIONS", "\(lines)")
      for c in open { #expect(try await c.request("PING").isOK) }
      #expect(try await admin.state(Fixture.all) == before)
      for c in open { c.close() }
    }
  }

  /// `--max-batch` and `--max-group` are at most `Limits.commandsPerBatchMax`: at it tallyd
  /// serves, one past it the flag is refused before anything is created.
  @Test func batchAndGroupFlagsStopAtTheCommandsPerBatchMaximum() async throws {
    let max = "\(Limits.commandsPerBatchMax)"
    try await withTallyd(["--max-batch", max, "--max-group", max]) { server in
      let admin = try await server.admin()
      #expect(try await admin.request("PING").isOK)
    }
    for flag in ["--max-batch", "--max-group"] {
      let dir = try makeTempDir("tallyd-limit")
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let r = try await run(
        try Binaries.tallyd(),
        [
          "--data", dir + "/data", "--initialize", "--listen", "127.0.0.1:0", flag,
          "\(Limits.commandsPerBatchMax + 1)",
        ])
      #expect(r.status == 64, "\(flag): \(r)")
      #expect(r.stderr.contains("\(flag) must be 1…\(max)"), "\(r.stderr)")
      #expect(!FileManager.default.fileExists(atPath: dir + "/data"), "\(flag) created the data")
    }
  }

  /// The snapshot copy's pace and the map's writeback sweep: 0 (off) and the maximum serve,
  /// one past the maximum (or below 0) is refused before anything is created.
  @Test func snapshotPaceAndWritebackFlagsHaveRanges() async throws {
    try await withTallyd([
      "--snapshot-copy-rate", "0", "--map-writeback", "3600", "--snapshot-method", "copy",
      "--snapshot-build-rate", "1048576",
    ]) { server in
      let admin = try await server.admin()
      #expect(try await admin.request("PING").isOK)
    }
    for (flag, bad, message) in [
      ("--snapshot-copy-rate", "1048577", "--snapshot-copy-rate must be 0…1048576"),
      ("--map-writeback", "3601", "--map-writeback must be 0…3600"),
      ("--snapshot-method", "replay", "--snapshot-method must be build or copy, not replay"),
      ("--snapshot-build-rate", "1048577", "--snapshot-build-rate must be 0…1048576"),
    ] {
      let dir = try makeTempDir("tallyd-limit")
      defer { try? FileManager.default.removeItem(atPath: dir) }
      let r = try await run(
        try Binaries.tallyd(),
        ["--data", dir + "/data", "--initialize", "--listen", "127.0.0.1:0", flag, bad])
      #expect(r.status == 64, "\(flag) \(bad): \(r)")
      #expect(r.stderr.contains(message), "\(r.stderr)")
      #expect(!FileManager.default.fileExists(atPath: dir + "/data"), "\(flag) created the data")
    }
  }
}
