import Foundation
import Testing

/// `tally recon import` of real-world bank files through the real binary on a real data
/// directory: several statements per file, `--map`, skipped statements, `--encoding`, the gap
/// report, lines in another currency and camt.054 (fixtures in Tests/TallyReconcileTests).
@Suite("recon files")
struct ReconFilesCLITests {
  static let eurIBAN = "DE89370400440532013000"
  static let usdIBAN = "DE44500105175407324931"

  static func fixture(_ name: String) throws -> Data {
    let dir = (#filePath as NSString).deletingLastPathComponent
    return try Data(
      contentsOf: URL(fileURLWithPath: dir + "/../TallyReconcileTests/Fixtures/" + name))
  }

  /// Writes the fixture `name` to `path`; returns `path`.
  static func copy(_ name: String, to path: String) throws -> String {
    try fixture(name).write(to: URL(fileURLWithPath: path))
    return path
  }

  /// A ledger with a EUR bank account (its IBAN in metadata, printed with spaces) and a USD
  /// one without, plus an entry the first MT940 line names.
  static func withBankAccounts<R>(_ body: (Scratch) async throws -> R) async throws -> R {
    try await withFundedLedger { s in
      try await s.ok(
        "account", "open", "bank-eur", "--currency", "EUR", "--meta",
        "iban=DE89 3704 0044 0532 0130 00")
      try await s.ok("account", "open", "bank-usd", "--currency", "USD")
      try await s.ok("account", "open", "fx-usd", "--currency", "USD", "--normal", "credit")
      try await s.ok(
        "post", "--id", "INV-2001", "--debit", "bank-eur=150.00", "--credit", "alice=150.00",
        "--value-date", "2024-03-11")
      return try await body(s)
    }
  }

  func items(_ s: Scratch, _ account: String, _ state: String) async throws -> [[String: Any]] {
    let page = try await s.okJSON("recon", "items", "--account", account, "--state", state)
    return try page.arr("items").map { try #require($0 as? [String: Any]) }
  }

  @Test("MT940 of three messages: the account's two imported, the other skipped, then mapped")
  func multiStatementSkipThenMap() async throws {
    try await Self.withBankAccounts { s in
      let file = try Self.copy("multi.mt940", to: s.file("multi.sta"))
      let first = try await s.okJSON(
        "recon", "import", "--account", "bank-eur", "--format", "mt940", file)
      #expect(try first.str("text_encoding") == "windows-1252")
      #expect(try first.int("lines_read") == 3 && first.int("new") == 3)
      #expect(try first.obj("matched").int("reference") == 1)
      let statements = try first.arr("statements").map { try #require($0 as? [String: Any]) }
      #expect(
        try statements.map { try $0.str("statement_id") } == [
          "DAY-0311/00011/001", "DAY-0312/00012/001",
        ])
      #expect(try statements.map { try $0.int("new") } == [2, 1])
      #expect(try statements.map { try $0.str("account") } == ["bank-eur", "bank-eur"])
      let skipped = try first.arr("skipped").map { try #require($0 as? [String: Any]) }
      #expect(skipped.count == 1)
      #expect(try skipped[0].str("statement_account") == Self.usdIBAN)
      #expect(try skipped[0].int("index") == 3 && skipped[0].str("source") == "line 21")
      #expect(try first.arr("gaps").isEmpty)
      // Each statement's closing balance is checked against the ledger on its own day.
      #expect(try statements[1].obj("closing").str("statement") == "110000")
      let unmatched = try await items(s, "bank-eur", "unmatched")
      #expect(
        unmatched.compactMap { $0["remittance"] as? String }.contains(
          "Gebühr € 12,50 “Kontoführung”"))

      // The same file again changes nothing.
      let before = try await s.snapshot(["bank-eur", "bank-usd"])
      let again = try await s.okJSON(
        "recon", "import", "--account", "bank-eur", "--format", "mt940", file)
      #expect(try again.int("new") == 0 && again.int("duplicate") == 3)
      #expect(try await s.snapshot(["bank-eur", "bank-usd"]) == before)

      // Mapped, the USD statement goes to the USD account; the EUR ones are duplicates.
      let mapped = try await s.okJSON(
        "recon", "import", "--account", "bank-eur", "--map",
        "de44 5001 0517 5407 3249 31=bank-usd", "--format", "mt940", file)
      #expect(try mapped.int("new") == 1 && mapped.int("duplicate") == 3)
      #expect(try mapped.arr("skipped").isEmpty)
      let usd = try await s.okJSON("recon", "status", "--account", "bank-usd")
      #expect(try usd.obj("counts").int("unmatched") == 1)
      #expect(try usd.obj("amounts").str("unmatched") == "2000")
      let table = try await s.tally(
        "recon", "import", "--account", "bank-eur", "--format", "mt940", file)
      #expect(table.status == 0 && table.stdout.contains("skipped statement 3"), "\(table)")
      #expect(table.stdout.contains("(read as windows-1252)"), "\(table)")
      try await s.ok("verify")
      try await s.ok("rebuild")
    }
  }

  @Test("--map alone imports only the statements it names")
  func mapWithoutAccount() async throws {
    try await Self.withBankAccounts { s in
      let file = try Self.copy("multi.mt940", to: s.file("multi.sta"))
      let r = try await s.okJSON(
        "recon", "import", "--map", "\(Self.usdIBAN)=bank-usd", "--format", "mt940", file)
      #expect(try r.int("new") == 1 && r.arr("skipped").count == 2)
      let none = try await s.tally("recon", "import", "--format", "mt940", file)
      #expect(none.status != 0 && none.stderr.contains("--account"), "\(none)")
      let twice = try await s.tally(
        "recon", "import", "--map", "A=bank-usd", "--map", "a=bank-eur", "--format", "mt940",
        file)
      #expect(twice.status != 0 && twice.stderr.contains("twice"), "\(twice)")
      let malformed = try await s.tally(
        "recon", "import", "--map", "bank-usd", "--format", "mt940", file)
      #expect(malformed.status != 0 && malformed.stderr.contains("IBAN_OR_ID=ACCOUNT"))
    }
  }

  @Test("A gap between consecutive statements is reported, in JSON and in the table")
  func gapIsReported() async throws {
    try await Self.withBankAccounts { s in
      var text = String(decoding: try Self.fixture("multi.mt940"), as: UTF8.self)
      // The second day opens with 1,200.00 where the first closed with 1,137.50.
      text = text.replacingOccurrences(of: ":60F:C240311EUR1137,50", with: ":60F:C240311EUR1200,00")
        .replacingOccurrences(of: ":62F:C240312EUR1100,00", with: ":62F:C240312EUR1162,50")
      let file = s.file("gap.sta")
      try text.write(toFile: file, atomically: true, encoding: .utf8)
      let r = try await s.okJSON(
        "recon", "import", "--account", "bank-eur", "--format", "mt940", file)
      let gaps = try r.arr("gaps").map { try #require($0 as? [String: Any]) }
      #expect(gaps.count == 1)
      #expect(try gaps[0].str("account") == "bank-eur")
      #expect(try gaps[0].int("from_statement") == 1 && gaps[0].int("to_statement") == 2)
      #expect(gaps[0]["from_import_seq"] is NSNull)
      #expect(try gaps[0].obj("closing").str("amount") == "113750")
      #expect(try gaps[0].obj("opening").str("amount") == "120000")
      #expect(try gaps[0].str("difference") == "6250")
      #expect(try r.str("text_encoding") == "utf-8")
      let again = s.file("gap2.sta")
      try text.replacingOccurrences(of: "DAY-", with: "D-").replacingOccurrences(
        of: "BR200", with: "BX200"
      ).write(toFile: again, atomically: true, encoding: .utf8)
      let table = try await s.tally(
        "recon", "import", "--account", "bank-eur", "--format", "mt940", again)
      #expect(
        table.status == 0
          && table.stdout.contains("GAP on bank-eur between statements 1 and 2")
          && table.stdout.contains("difference 62.50"), "\(table)")
    }
  }

  @Test("A gap against the statement imported before: later statements only, not re-imports")
  func gapAgainstEarlierImport() async throws {
    try await Self.withBankAccounts { s in
      let text = String(decoding: try Self.fixture("multi.mt940"), as: UTF8.self)
      // The fixture's messages: DAY-0311 (closes 1,137.50 on 2024-03-11), DAY-0312 (opens
      // with that), then a USD one.
      let messages = text.components(separatedBy: "-}")
      let day11 = messages[0] + "-}\n"
      let day12 = messages[1] + "-}\n"
      func write(_ name: String, _ content: String) throws -> String {
        let file = s.file(name)
        try content.write(toFile: file, atomically: true, encoding: .utf8)
        return file
      }
      func importing(_ file: String) async throws -> [String: Any] {
        try await s.okJSON("recon", "import", "--account", "bank-eur", "--format", "mt940", file)
      }
      let first = try await importing(try write("d11.sta", day11))
      #expect(try first.int("new") == 2 && first.arr("gaps").isEmpty)
      let lastImport = try await s.okJSON("recon", "status", "--account", "bank-eur")
        .int("last_import_seq")

      // The next day's statement opens with 1,200.00: a statement is missing in between.
      let skewed = day12.replacingOccurrences(
        of: ":60F:C240311EUR1137,50", with: ":60F:C240311EUR1200,00"
      ).replacingOccurrences(of: ":62F:C240312EUR1100,00", with: ":62F:C240312EUR1162,50")
      let second = try await importing(try write("d12.sta", skewed))
      let gaps = try second.arr("gaps").map { try #require($0 as? [String: Any]) }
      #expect(gaps.count == 1)
      #expect(try gaps[0].int("from_statement") == 0 && gaps[0].int("to_statement") == 1)
      #expect(try gaps[0].int("from_import_seq") == lastImport)
      #expect(try gaps[0].obj("closing").str("amount") == "113750")
      #expect(try gaps[0].obj("opening").str("amount") == "120000")
      #expect(try gaps[0].str("difference") == "6250")
      #expect(try second.int("new") == 1)

      // A statement that joins the last one imported: no gap. Its table says nothing either.
      let day13 = day12.replacingOccurrences(of: "DAY-0312", with: "DAY-0313")
        .replacingOccurrences(of: ":28C:00012/001", with: ":28C:00013/001")
        .replacingOccurrences(of: ":60F:C240311EUR1137,50", with: ":60F:C240312EUR1162,50")
        .replacingOccurrences(
          of: "2403120312D37,50NTRFPO-88//BR2003", with: "2403130313D2,50NTRFPO-89//BR2004"
        )
        .replacingOccurrences(of: ":62F:C240312EUR1100,00", with: ":62F:C240313EUR1160,00")
      let third = try await importing(try write("d13.sta", day13))
      #expect(try third.int("new") == 1 && third.arr("gaps").isEmpty)

      // The same statement again, and an older one (a backfill), are not compared.
      let again = try await importing(try write("d13b.sta", day13))
      #expect(try again.int("duplicate") == 1 && again.arr("gaps").isEmpty)
      let older = try await importing(try write("d11b.sta", day11))
      #expect(try older.arr("gaps").isEmpty)

      // The table names the earlier import by its seq.
      let skipped = day13.replacingOccurrences(of: "DAY-0313", with: "DAY-0314")
        .replacingOccurrences(of: ":28C:00013/001", with: ":28C:00014/001")
        .replacingOccurrences(of: ":60F:C240312EUR1162,50", with: ":60F:C240313EUR1200,00")
        .replacingOccurrences(
          of: "2403130313D2,50NTRFPO-89//BR2004", with: "2403140314D2,50NTRFPO-90//BR2006"
        )
        .replacingOccurrences(of: ":62F:C240313EUR1160,00", with: ":62F:C240314EUR1197,50")
      let last = try await s.okJSON("recon", "status", "--account", "bank-eur")
        .int("last_import_seq")
      let table = try await s.tally(
        "recon", "import", "--account", "bank-eur", "--format", "mt940",
        try write("d14.sta", skipped))
      #expect(
        table.status == 0
          && table.stdout.contains(
            "GAP on bank-eur between the statement imported at seq \(last) and statement 1")
          && table.stdout.contains("difference 40.00"), "\(table)")
      try await s.ok("verify")
    }
  }

  @Test("--encoding: utf-8 refuses the Latin-1 byte where it is; iso-8859-1 is recorded")
  func encodingOption() async throws {
    try await Self.withBankAccounts { s in
      let file = try Self.copy("multi.mt940", to: s.file("multi.sta"))
      let before = try await s.snapshot(["bank-eur"])
      let strict = try await s.tally(
        "--json", "recon", "import", "--account", "bank-eur", "--encoding", "utf-8", "--format",
        "mt940", file)
      #expect(strict.status == 1, "\(strict)")
      let error = try strict.object().obj("error")
      #expect(error["code"] as? String == "STATEMENT_INVALID", "\(strict)")
      #expect(strict.stdout.contains("MALFORMED") && strict.stdout.contains("line 7"), "\(strict)")
      #expect(try await s.snapshot(["bank-eur"]) == before)
      let bad = try await s.tally(
        "recon", "import", "--account", "bank-eur", "--encoding", "latin9", "--format", "mt940",
        file)
      #expect(bad.status != 0 && bad.stderr.contains("--encoding"), "\(bad)")
      #expect(try await s.snapshot(["bank-eur"]) == before)
      let latin1 = try await s.okJSON(
        "recon", "import", "--account", "bank-eur", "--encoding", "iso-8859-1", "--format",
        "mt940", file)
      #expect(try latin1.str("text_encoding") == "iso-8859-1" && latin1.int("new") == 3)
      let log = try await s.tally("--json", "log", "--limit", "100")
      #expect(log.stdout.contains("\"text_encoding\":\"iso-8859-1\""), "\(log.stdout.suffix(800))")
      let camt = try Self.copy("multi.camt053.xml", to: s.file("multi.xml"))
      let camtLatin = try await s.tally(
        "--json", "recon", "import", "--account", "bank-eur", "--encoding", "windows-1252",
        "--format", "camt053", camt)
      #expect(camtLatin.status == 1 && camtLatin.stdout.contains("UNSUPPORTED"), "\(camtLatin)")
      try await s.ok("verify")
    }
  }

  @Test("A camt.053 entry in USD is an item in USD, in discrepancy with reason CURRENCY")
  func foreignCurrencyLine() async throws {
    try await Self.withBankAccounts { s in
      let file = try Self.copy("multi.camt053.xml", to: s.file("multi.xml"))
      let r = try await s.okJSON(
        "recon", "import", "--account", "bank-eur", "--format", "camt053", file)
      #expect(try r.int("new") == 4 && r.int("foreign_currency") == 1)
      // Its reference is the bank's (no InstrId): the entry matches by amount and date.
      #expect(try r.int("discrepancies") == 1 && r.obj("matched").int("amount_date") == 1)
      #expect(try r.arr("statements").count == 2 && r.arr("gaps").isEmpty)
      let discrepant = try await items(s, "bank-eur", "discrepancy")
      #expect(discrepant.count == 1)
      let item = discrepant[0]
      #expect(item["currency"] as? String == "USD" && item["amount"] as? String == "2500")
      #expect(item["discrepancy_reason"] as? String == "CURRENCY")
      #expect(item["match"] is NSNull)
      // Counted, never summed with the account's euros.
      let status = try await s.okJSON("recon", "status", "--account", "bank-eur")
      #expect(try status.obj("counts").int("discrepancy") == 1)
      #expect(try status.obj("amounts").str("discrepancy") == "0")
      // There is no match to undo; a person resolves it.
      let number = try #require(item["item"] as? Int)
      let before = try await s.snapshot(["bank-eur"])
      let unmatch = try await s.tally("recon", "unmatch", String(number))
      #expect(unmatch.status == 1 && unmatch.stderr.contains("ITEM_STATE"), "\(unmatch)")
      #expect(try await s.snapshot(["bank-eur"]) == before)
      try await s.ok("recon", "resolve", String(number), "--reason", "card fee in USD, booked")
      let resolved = try await items(s, "bank-eur", "resolved")
      #expect(resolved.first?["discrepancy_reason"] as? String == "CURRENCY")
      try await s.ok("verify")
      try await s.ok("rebuild")

      // The same lines from a CSV are duplicates (same identities), the USD record included.
      let csv = try Self.copy("foreign.csv", to: s.file("foreign.csv"))
      let again = try await s.okJSON(
        "recon", "import", "--account", "bank-eur", "--format", "csv", csv)
      #expect(try again.int("new") == 0 && again.int("duplicate") == 4)
    }
  }

  @Test("camt.054 notifications import through the same rules, mapped per account")
  func camt054() async throws {
    try await Self.withBankAccounts { s in
      let file = try Self.copy("notification.camt054.xml", to: s.file("ntf.xml"))
      let r = try await s.okJSON(
        "recon", "import", "--account", "bank-eur", "--map", "\(Self.usdIBAN)=bank-usd",
        "--format", "camt054", file)
      #expect(try r.str("format") == "camt054" && r.int("new") == 3)
      #expect(try r.int("foreign_currency") == 1 && r.obj("matched").int("amount_date") == 1)
      let statements = try r.arr("statements").map { try #require($0 as? [String: Any]) }
      #expect(try statements.map { try $0.str("account") } == ["bank-eur", "bank-usd"])
      #expect(statements.allSatisfy { $0["opening"] is NSNull })
      // The later camt.053 of the same day repeats two of its lines: duplicates.
      let stmt = try Self.copy("multi.camt053.xml", to: s.file("multi.xml"))
      let later = try await s.okJSON(
        "recon", "import", "--account", "bank-eur", "--format", "camt053", stmt)
      #expect(try later.int("duplicate") == 2 && later.int("new") == 2)
      try await s.ok("verify")
      try await s.ok("rebuild")
    }
  }

  @Test("A refused statement refuses the whole file: code, statement index, nothing changed")
  func refusedStatementChangesNothing() async throws {
    try await Self.withBankAccounts { s in
      let file = try Self.copy("multi.mt940", to: s.file("multi.sta"))
      let before = try await s.snapshot(["bank-eur", "bank-usd"])
      // The USD statement mapped to a EUR account: CURRENCY_MISMATCH on statement 3.
      let currency = try await s.tally(
        "--json", "recon", "import", "--account", "bank-eur", "--map", "\(Self.usdIBAN)=cash",
        "--format", "mt940", file)
      #expect(currency.status == 1, "\(currency)")
      let e = try currency.object().obj("error")
      #expect(e["code"] as? String == "CURRENCY_MISMATCH", "\(currency)")
      #expect((e["details"] as? [String: Any])?["statement"] as? String == "3", "\(currency)")
      #expect(try await s.snapshot(["bank-eur", "bank-usd"]) == before)
      // Mapped to an account that does not exist.
      let missing = try await s.tally(
        "--json", "recon", "import", "--account", "bank-eur", "--map",
        "\(Self.usdIBAN)=nowhere", "--format", "mt940", file)
      #expect(missing.status == 1 && missing.stdout.contains("ACCOUNT_NOT_FOUND"), "\(missing)")
      #expect(try await s.snapshot(["bank-eur", "bank-usd"]) == before)
      // No statement is for the account (its IBAN is another): the first is refused.
      let other = try await s.tally(
        "--json", "recon", "import", "--account", "bank-usd", "--format", "mt940", file)
      #expect(other.status == 1 && other.stdout.contains("CURRENCY_MISMATCH"), "\(other)")
      try await s.ok(
        "account", "open", "bank-other", "--currency", "EUR", "--meta",
        "iban=FR7630006000011234567890189")
      let mismatch = try await s.tally(
        "--json", "recon", "import", "--account", "bank-other", "--format", "mt940", file)
      #expect(
        mismatch.status == 1 && mismatch.stdout.contains("STATEMENT_ACCOUNT_MISMATCH"),
        "\(mismatch)")
      let after = try await s.snapshot(["bank-eur", "bank-usd"])
      #expect(after.chain != before.chain)  // the account opened, nothing else
      #expect(after.seq == before.seq + 1)
    }
  }
}
