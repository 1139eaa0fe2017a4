import ArgumentParser
import Glibc
import TallyCore
import TallyProtocol
import TallyReconcile
import TallyStore

/// `tally recon …`: statement import, status, items, resolution and unmatching
/// (docs/RECONCILIATION.md), on a data directory or through `tallyd` (`RECON.*`). The JSON
/// is the same both ways (`Views`).
struct ReconCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "recon", abstract: "Reconcile an account against its statements.",
    subcommands: [Import.self, Status.self, Items.self, Resolve.self, Unmatch.self])

  /// Who acts, offline: `--by`, or the user running the command. Online the server records
  /// the key, so `--by` is refused there rather than silently dropped.
  static func who(_ by: String?, online: Bool) throws -> String {
    if online, by != nil { throw usage("--by is recorded by the server (the key); drop it") }
    return by ?? "cli:" + (ProcessInfoLite.user ?? "unknown")
  }

  struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Import a statement file (csv, camt053, camt054 or mt940) and match its new lines.",
      discussion: """
        A file may hold several statements (days, accounts, currencies). Those for the \
        account's IBAN (its `iban` metadata; without it, the first statement's account) are \
        imported for --account; --map IBAN_OR_ID=ACCOUNT sends another identifier's \
        statements to another account; the others are reported as skipped. All or nothing.
        """)
    @OptionGroup var global: GlobalOptions
    @Option(help: "The ledger account the statements are for (optional with --map).")
    var account: String?
    @Option(help: "csv, camt053, camt054 or mt940.") var format: String
    @Option(
      name: .customLong("map"),
      help: ArgumentHelp(
        "Import the statements of an account identifier for a ledger account (repeatable).",
        valueName: "IBAN_OR_ID=ACCOUNT"))
    var maps: [String] = []
    @Option(
      help: """
        How to read the file's bytes: utf-8, iso-8859-1 or windows-1252 (default: mt940 \
        UTF-8 when valid, else windows-1252; csv and camt UTF-8).
        """)
    var encoding: String?
    @Option(help: "Days a value date may differ for the amount-and-date and sum rules (0…31).")
    var toleranceDays: Int32 = Limits.reconToleranceDaysDefault
    @Argument(help: "The statement file.") var file: String

    func validate() throws {
      if ReconFormat(name: format) == nil {
        throw ValidationError("--format must be csv, camt053, camt054 or mt940")
      }
      if toleranceDays < 0 || toleranceDays > Limits.reconToleranceDaysMax {
        throw ValidationError("--tolerance-days must be 0…\(Limits.reconToleranceDaysMax)")
      }
      if let encoding, ReconTextEncoding(name: encoding) == nil {
        throw ValidationError("--encoding must be utf-8, iso-8859-1 or windows-1252")
      }
      if account == nil && maps.isEmpty {
        throw ValidationError("give --account, or --map for each account identifier")
      }
      _ = try routing()
    }

    /// `--account` and the `--map` pairs; an identifier mapped twice is refused.
    func routing() throws -> ReconRouting {
      var map = [String: String]()
      var seen = [String: String]()
      for m in maps {
        guard let eq = m.firstIndex(of: "="), eq != m.startIndex, m.index(after: eq) != m.endIndex
        else {
          throw ValidationError("--map takes IBAN_OR_ID=ACCOUNT, not \(m)")
        }
        let id = String(m[..<eq])
        let key = Machine.normalisedIBAN(id)
        if let earlier = seen[key] {
          throw ValidationError("--map names \(id) twice (\(earlier) and \(m))")
        }
        seen[key] = m
        map[id] = String(m[m.index(after: eq)...])
      }
      return ReconRouting(account: account, map: map)
    }

    func run() throws {
      // One byte past the limit is enough to refuse it (STATEMENT_INVALID, code TOO_LARGE,
      // as the parser would), before a server is even contacted.
      guard let bytes = readFile(file, max: StatementParser.bytesMax + 1) else {
        throw usage("cannot read \(file)")
      }
      if bytes.count > StatementParser.bytesMax {
        throw report(
          Rejection(
            .statementInvalid,
            "TOO_LARGE at input: the file has more than \(StatementParser.bytesMax) bytes; "
              + "at most \(StatementParser.bytesMax) are accepted",
            ["code": StatementError.tooLarge, "location": "input"]), json: global.json)
      }
      if let online = try global.online() {
        defer { online.close() }
        let routing = try routing()
        // UTF-8 text travels as a JSON string; other bytes (an MT940 in Windows-1252) in
        // base64, so the server reads the same bytes as an import on a data directory.
        let statement: (String, JSONValue) =
          String(validating: bytes, as: UTF8.self).map { ("statement", .string($0)) }
          ?? ("statement_base64", .string(Base64.encode(bytes)))
        if ProgressBar.enabled(noProgress: global.noProgress) {
          FileHandleOut.stderr("sending \(file) (\(bytes.count) bytes)…")
        }
        return try online.show(
          "RECON.IMPORT",
          body([
            ("account", account.map { .string($0) }), ("format", .string(format)),
            statement, ("tolerance_days", jnum(toleranceDays)),
            (
              "map",
              routing.map.isEmpty
                ? nil
                : .object(
                  JSONObject(
                    routing.map.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
            ),
            ("encoding", encoding.map { .string($0) }),
          ]))
      }
      let ledger = try global.open()
      // On a terminal, each phase as it ends, with its time (stderr; stdout stays the result).
      let progress =
        ProgressBar.enabled(noProgress: global.noProgress)
        ? ImportProgress(file: file, bytes: bytes.count) : nil
      let routing = try routing()
      let result: Result<ReconImportReport, Rejection>
      do {
        result = try ledger.importStatements(
          bytes, format: ReconFormat(name: format)!,
          encoding: encoding.flatMap(ReconTextEncoding.init(name:)), routing: routing,
          now: nowNanos(), toleranceDays: toleranceDays,
          progress: progress.map { p in { p.report($0) } })
      } catch { throw fail(error) }
      switch result {
      case .failure(let r): throw report(r, json: global.json)
      case .success(let rep):
        if global.json {
          print(JSONWriter.serialize(.object(Views.reconImport(rep))))
        } else {
          var scales = [String: UInt8]()
          for name in Set(rep.statements.map(\.account) + [rep.account]) {
            do { scales[name] = try ledger.account(name)?.record.scale } catch { throw fail(error) }
          }
          print(
            render(rep) { name, minor in Amount.formatDecimal(minor, scale: scales[name] ?? 0) })
        }
      }
    }

    func render(_ r: ReconImportReport, _ f: (String, Int128) -> String) -> String {
      var out = [String]()
      func matched(_ byRule: [ReconRule: Int]) -> String {
        ReconRule.allCases.map { "\($0) \(byRule[$0] ?? 0)" }.joined(separator: ", ")
      }
      func checks(_ account: String, _ c: [(String, ReconBalanceCheck?)]) {
        for (name, c) in c {
          guard let c else { continue }
          out.append(
            "  \(name) balance \(CivilTime.formatDate(c.dateDays)): statement "
              + "\(f(account, c.statementMinor)), ledger \(f(account, c.ledgerMinor)) at seq "
              + "\(c.asOfSeq)"
              + (c.differenceMinor == 0
                ? " (agree)" : " — DIFFERENCE \(f(account, c.differenceMinor))"))
        }
      }
      for s in r.statements {
        out.append(
          "statement \(s.index) \(s.statementId ?? "(no id)") (\(s.source)) of "
            + "\(s.statementAccount ?? "(no account)") \(s.currency) → \(s.account): "
            + "\(s.linesRead) lines read, \(s.new) new, \(s.duplicates) duplicate")
        out.append(
          "  matched: \(matched(s.matchedByRule)); \(s.discrepancies) discrepancies"
            + (s.foreignCurrency > 0 ? " (\(s.foreignCurrency) in another currency)" : "")
            + ", \(s.unmatched) unmatched")
        checks(s.account, [("opening", s.opening), ("closing", s.closing)])
        if let implied = s.continuityImpliedMinor {
          out.append(
            "  continuity: the lines lead to \(f(s.account, implied)), the statement prints "
              + "\(f(s.account, s.continuityPrintedMinor ?? 0)) (lines missing or repeated)")
        }
      }
      for s in r.skipped {
        out.append(
          "skipped statement \(s.index) \(s.statementId ?? "(no id)") (\(s.source)) of "
            + "\(s.statementAccount ?? "(no account)") \(s.currency), \(s.lines) lines: another "
            + "account (--map \(s.statementAccount ?? "ID")=ACCOUNT imports it)")
      }
      for g in r.gaps {
        out.append(
          "GAP on \(g.account) between "
            + (g.fromImportSeq.map { "the statement imported at seq \($0) and statement " }
              ?? "statements \(g.fromStatement) and ") + "\(g.toStatement): "
            + "closing \(f(g.account, g.closing.amountMinor)) on "
            + "\(CivilTime.formatDate(g.closing.dateDays)), next opening "
            + "\(f(g.account, g.opening.amountMinor)) on "
            + "\(CivilTime.formatDate(g.opening.dateDays)) (difference "
            + "\(f(g.account, g.differenceMinor)))")
      }
      out.append(
        "total: \(r.statements.count) statements, \(r.linesRead) lines read, \(r.new) new, "
          + "\(r.duplicates) duplicate; matched: \(matched(r.matchedByRule)); "
          + "\(r.discrepancies) discrepancies, \(r.unmatched) unmatched (read as "
          + "\(r.textEncoding))")
      return out.joined(separator: "\n")
    }
  }

  /// Progress lines of an import on a terminal: what each phase did and how long it took.
  final class ImportProgress {
    var last: Int64

    init(file: String, bytes: Int) {
      last = monotonicNanos()
      FileHandleOut.stderr("importing \(file) (\(bytes) bytes)…")
    }

    func report(_ phase: ReconImportPhase) {
      let now = monotonicNanos()
      let ms = (now - last) / 1_000_000
      last = now
      let what =
        switch phase {
        case .parsed(let lines): "parsed \(lines) lines"
        case .itemsAppended(let new, let duplicates): "\(new) new, \(duplicates) duplicate"
        case .candidatesRead(let n, let all):
          all
            ? "a line is left for rule 3: read all \(n) open postings in the window"
            : "read \(n) candidate postings (named by a line or of a line's amount)"
        case .matched(let n): "\(n) matches found; appending in write groups…"
        case .committed: "committed"
        }
      FileHandleOut.stderr("  \(what) (\(ms) ms)")
    }
  }

  struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Counts and amounts per reconciliation state of an account.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The ledger account.") var account: String

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show("RECON.STATUS", body([("account", .string(account))]))
      }
      let ledger = try global.open(.readOnly)
      let st: ReconStatus?
      do { st = try ledger.reconStatus(account) } catch { throw fail(error) }
      guard let st else {
        throw report(
          Rejection(.accountNotFound, "account \(account) does not exist", ["account": account]),
          json: global.json)
      }
      if global.json {
        print(JSONWriter.serialize(.object(Views.reconStatus(st))))
      } else {
        print(
          table(
            ["STATE", "COUNT", "AMOUNT"],
            Views.reconStatusRows(st).map {
              [$0.0, String($0.1), Amount.formatDecimal($0.2, scale: st.account.scale)]
            }))
      }
    }
  }

  struct Items: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "List an account's items (or, for missing_from_statement, postings).")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The ledger account.") var account: String
    @Option(help: "unmatched, matched, discrepancy, resolved or missing_from_statement.")
    var state: String?
    @Option(help: "Start after this item number (or seq, for missing_from_statement).")
    var after: UInt64 = 0
    @Option(help: "At most this many (1…10000).") var limit: Int = Limits.pageLimitDefault

    func validate() throws {
      if let state, state != "missing_from_statement", ReconState(name: state) == nil {
        throw ValidationError("--state must be a state name or missing_from_statement")
      }
      try checkPageLimit(limit)
    }

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show(
          "RECON.ITEMS",
          body([
            ("account", .string(account)), ("state", jstr(state)), ("after", jnum(after)),
            ("limit", jnum(limit)),
          ]))
      }
      let ledger = try global.open(.readOnly)
      let notFound = Rejection(
        .accountNotFound, "account \(account) does not exist", ["account": account])
      let scale: UInt8
      do {
        guard let a = try ledger.account(account) else {
          throw report(notFound, json: global.json)
        }
        scale = a.record.scale
      } catch let e as StoreError { throw fail(e) }
      if state == Views.missingFromStatement {
        let page: (postings: [MissingPosting], next: UInt64?)?
        do { page = try ledger.reconMissing(account, after: after, limit: limit) } catch {
          throw fail(error)
        }
        guard let page else { throw report(notFound, json: global.json) }
        return emit(
          page.postings.map(Views.missingPosting), next: page.next, scale: scale,
          header: ["SEQ", "ID", "AMOUNT", "DIRECTION", "DATE"])
      }
      let page: (items: [ReconItemRecord], next: UInt64?)?
      do {
        page = try ledger.reconItems(
          account, state: state.flatMap(ReconState.init(name:)), after: after, limit: limit)
      } catch { throw fail(error) }
      guard let page else { throw report(notFound, json: global.json) }
      emit(
        page.items.map(Views.reconItem), next: page.next, scale: scale,
        header: ["ITEM", "STATE", "AMOUNT", "DIRECTION", "SOURCE"])
    }

    /// The same object RECON.ITEMS answers, or a table.
    func emit(_ rows: [JSONObject], next: UInt64?, scale: UInt8, header: [String]) {
      if global.json {
        print(
          JSONWriter.serialize(.object(Views.reconItemsPage(account: account, rows, next: next))))
        return
      }
      func cell(_ o: JSONObject, _ k: String) -> String {
        switch o.members.first(where: { $0.0 == k })?.1 {
        case .string(let s)? where k == "amount":
          Int128(s).map { Amount.formatDecimal($0, scale: scale) } ?? s
        case .string(let s)?: s
        case .number(let s)?: s
        default: ""
        }
      }
      let keys =
        header.first == "SEQ"
        ? ["seq", "id", "amount", "direction", "date"]
        : ["item", "state", "amount", "direction", "source"]
      print(table(header, rows.map { r in keys.map { cell(r, $0) } }))
      if let next { print("more: --after \(next)") }
    }
  }

  struct Resolve: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Resolve an unmatched or discrepant item, with a reason (an event in the log).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The item number.") var item: UInt64
    @Option(help: "Why it is resolved.") var reason: String
    @Option(help: "The entry that corrects the difference, if one was posted.") var entry: String?
    @Option(help: "Who resolves it, offline (default: cli:$USER; online: the key).") var by: String?

    func run() throws {
      let online = try global.online()
      let who = try ReconCommand.who(by, online: online != nil)
      if let online {
        defer { online.close() }
        return try online.show(
          "RECON.RESOLVE",
          body([("item", jnum(item)), ("reason", .string(reason)), ("entry", jstr(entry))]))
      }
      let ledger = try global.open()
      _ = try applyOne(
        ledger, .reconResolve(ReconResolved(item: item, reason: reason, by: who, entry: entry)),
        json: global.json, what: "item \(item) resolved")
    }
  }

  struct Unmatch: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Undo the match an item is in (its items unmatched again; an event in the log).")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The item number.") var item: UInt64
    @Option(help: "Why.") var reason: String?
    @Option(help: "Who, offline (default: cli:$USER; online: the key).") var by: String?

    func run() throws {
      let online = try global.online()
      let who = try ReconCommand.who(by, online: online != nil)
      if let online {
        defer { online.close() }
        return try online.show(
          "RECON.UNMATCH", body([("item", jnum(item)), ("reason", jstr(reason))]))
      }
      let ledger = try global.open()
      _ = try applyOne(
        ledger, .reconUnmatch(ReconUnmatched(item: item, reason: reason, by: who)),
        json: global.json, what: "item \(item) unmatched")
    }
  }
}

enum ProcessInfoLite {
  static var user: String? { getenv("USER").map { String(cString: $0) } }
}

/// The whole file, or nil when it cannot be read or is larger than `max` bytes.
/// The file's first `max` bytes at most (a longer file is cut there, so the caller can
/// refuse it without reading it all); nil when it cannot be opened or read.
func readFile(_ path: String, max: Int) -> [UInt8]? {
  guard let f = fopen(path, "rb") else { return nil }
  defer { fclose(f) }
  var out = [UInt8]()
  var buf = [UInt8](repeating: 0, count: 1 << 16)
  while out.count < max {
    let n = fread(&buf, 1, min(buf.count, max - out.count), f)
    if n == 0 { break }
    out += buf[0..<n]
  }
  return ferror(f) == 0 ? out : nil
}
