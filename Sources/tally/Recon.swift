import ArgumentParser
import Glibc
import TallyCore
import TallyProtocol
import TallyStore

/// `tally recon …`: statement import, status, items, resolution and unmatching, on a data
/// directory (docs/RECONCILIATION.md). The server verbs are not built yet, so `--server`
/// is refused with a clear error rather than ignored.
struct ReconCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "recon", abstract: "Reconcile an account against its statements.",
    subcommands: [Import.self, Status.self, Items.self, Resolve.self, Unmatch.self])

  static func offlineOnly(_ global: GlobalOptions) throws {
    if try global.online() != nil {
      throw usage("recon works on a data directory (--data); RECON.* verbs are not served yet")
    }
  }

  static func n(_ v: some BinaryInteger) -> JSONValue { .number(String(v)) }
  static func amount(_ v: Int128) -> JSONValue { .string(String(v)) }

  struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Import a statement (csv, camt053 or mt940) and match its new lines.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The ledger account the statement is for.") var account: String
    @Option(help: "csv, camt053 or mt940.") var format: String
    @Option(help: "Days a value date may differ for the amount-and-date and sum rules (0…31).")
    var toleranceDays: Int32 = Ledger.reconToleranceDaysDefault
    @Argument(help: "The statement file.") var file: String

    func validate() throws {
      if ReconFormat(name: format) == nil {
        throw ValidationError("--format must be csv, camt053 or mt940")
      }
      if toleranceDays < 0 || toleranceDays > 31 {
        throw ValidationError("--tolerance-days must be 0…31")
      }
    }

    func run() throws {
      try ReconCommand.offlineOnly(global)
      guard let bytes = readFile(file, max: 64 << 20) else {
        throw usage("cannot read \(file) (missing, unreadable, or over 64 MiB)")
      }
      let ledger = try global.open()
      if isTerminal(2) { FileHandleOut.stderr("importing \(file) (\(bytes.count) bytes)…") }
      let result: Result<ReconImportReport, Rejection>
      do {
        result = try ledger.importStatement(
          bytes, format: ReconFormat(name: format)!, account: account, now: nowNanos(),
          toleranceDays: toleranceDays)
      } catch { throw fail(error) }
      switch result {
      case .failure(let r): throw report(r, json: global.json)
      case .success(let rep): print(render(rep))
      }
    }

    func render(_ r: ReconImportReport) -> String {
      func check(_ c: ReconBalanceCheck?) -> JSONValue {
        guard let c else { return .null }
        return .object(
          JSONObject([
            ("date", .string(CivilTime.formatDate(c.dateDays))),
            ("statement", amount(c.statementMinor)), ("ledger", amount(c.ledgerMinor)),
            ("difference", amount(c.differenceMinor)), ("as_of_seq", n(c.asOfSeq)),
          ]))
      }
      let rules = ReconRule.allCases.map { ($0.description, n(r.matchedByRule[$0] ?? 0)) }
      if global.json {
        return JSONWriter.serialize(
          .object(
            JSONObject([
              ("account", .string(r.account)), ("format", .string(r.format.description)),
              ("lines_read", n(r.linesRead)), ("new", n(r.new)), ("duplicate", n(r.duplicates)),
              ("matched", .object(JSONObject(rules))), ("discrepancies", n(r.discrepancies)),
              ("unmatched", n(r.unmatched)),
              ("first_item", r.firstItem.map { n($0) } ?? .null),
              ("last_item", r.lastItem.map { n($0) } ?? .null),
              ("first_seq", r.firstSeq.map { n($0) } ?? .null),
              ("last_seq", r.lastSeq.map { n($0) } ?? .null),
              ("opening", check(r.opening)), ("closing", check(r.closing)),
              (
                "continuity",
                r.continuityImpliedMinor.map { implied in
                  .object(
                    JSONObject([
                      ("implied_closing", amount(implied)),
                      ("printed_closing", amount(r.continuityPrintedMinor ?? 0)),
                    ]))
                } ?? .null
              ),
            ])))
      }
      var out = [
        "\(r.account): \(r.linesRead) lines read, \(r.new) new, \(r.duplicates) duplicate",
        "matched: "
          + ReconRule.allCases.map { "\($0) \(r.matchedByRule[$0] ?? 0)" }
          .joined(separator: ", ")
          + "; \(r.discrepancies) discrepancies, \(r.unmatched) unmatched",
      ]
      for (name, c) in [("opening", r.opening), ("closing", r.closing)] {
        guard let c else { continue }
        out.append(
          "\(name) balance \(CivilTime.formatDate(c.dateDays)): statement \(c.statementMinor), "
            + "ledger \(c.ledgerMinor)"
            + (c.differenceMinor == 0 ? " (agree)" : " — DIFFERENCE \(c.differenceMinor)"))
      }
      if let implied = r.continuityImpliedMinor {
        out.append(
          "continuity: the lines lead to \(implied), the statement prints "
            + "\(r.continuityPrintedMinor ?? 0) (lines missing or repeated)")
      }
      return out.joined(separator: "\n")
    }
  }

  struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Counts and amounts per reconciliation state of an account.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The ledger account.") var account: String

    func run() throws {
      try ReconCommand.offlineOnly(global)
      let ledger = try global.open(.readOnly)
      let st: ReconStatus?
      do { st = try ledger.reconStatus(account) } catch { throw fail(error) }
      guard let st else {
        throw report(
          Rejection(.accountNotFound, "account \(account) does not exist", ["account": account]),
          json: global.json)
      }
      var rows = ReconState.allCases.map { s in
        (s.description, st.record.counts[Int(s.rawValue)], st.record.amountsMinor[Int(s.rawValue)])
      }
      rows.append(("missing_from_statement", st.missingCount, st.missingAmountMinor))
      if global.json {
        print(
          JSONWriter.serialize(
            .object(
              JSONObject([
                ("account", .string(account)), ("statements", n(st.record.statements)),
                ("counts", .object(JSONObject(rows.map { ($0.0, n($0.1)) }))),
                ("amounts", .object(JSONObject(rows.map { ($0.0, amount($0.2)) }))),
              ]))))
      } else {
        print(
          table(["STATE", "COUNT", "AMOUNT"], rows.map { [$0.0, String($0.1), String($0.2)] }))
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
      if limit < 1 || limit > Limits.pageLimitMax {
        throw ValidationError("--limit must be 1…\(Limits.pageLimitMax)")
      }
    }

    func run() throws {
      try ReconCommand.offlineOnly(global)
      let ledger = try global.open(.readOnly)
      let notFound = Rejection(
        .accountNotFound, "account \(account) does not exist", ["account": account])
      if state == "missing_from_statement" {
        let page: (postings: [MissingPosting], next: UInt64?)?
        do { page = try ledger.reconMissing(account, after: after, limit: limit) } catch {
          throw fail(error)
        }
        guard let page else { throw report(notFound, json: global.json) }
        let rows = page.postings.map { p in
          JSONObject([
            ("seq", n(p.seq)), ("id", .string(p.id)), ("ref", p.ref.map { .string($0) } ?? .null),
            ("amount", amount(p.amountMinor)), ("direction", .string(p.direction.description)),
            ("date", .string(CivilTime.formatDate(p.dateDays))),
          ])
        }
        return emit(rows, next: page.next, header: ["SEQ", "ID", "AMOUNT", "DIRECTION", "DATE"])
      }
      let page: (items: [ReconItemRecord], next: UInt64?)?
      do {
        page = try ledger.reconItems(
          account, state: state.flatMap(ReconState.init(name:)), after: after, limit: limit)
      } catch { throw fail(error) }
      guard let page else { throw report(notFound, json: global.json) }
      let rows = page.items.map { i in
        var o = JSONObject([
          ("item", n(i.number)), ("state", .string(i.state.description)),
          ("match", i.match == 0 ? .null : n(i.match)), ("state_seq", n(i.stateSeq)),
        ])
        o.members += Views.reconLine(i.line).members
        if let r = i.resolution {
          o.members += [("reason", .string(r.reason)), ("by", .string(r.by))]
          o.members.append(("entry", r.entry.map { .string($0) } ?? .null))
        }
        return o
      }
      emit(rows, next: page.next, header: ["ITEM", "STATE", "AMOUNT", "DIRECTION", "SOURCE"])
    }

    func emit(_ rows: [JSONObject], next: UInt64?, header: [String]) {
      if global.json {
        print(
          JSONWriter.serialize(
            .object(
              JSONObject([
                ("items", .array(rows.map { .object($0) })),
                ("next", next.map { n($0) } ?? .null),
              ]))))
        return
      }
      func cell(_ o: JSONObject, _ k: String) -> String {
        switch o.members.first(where: { $0.0 == k })?.1 {
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
    @Option(help: "Who resolves it (default: cli:$USER).") var by: String?

    func run() throws {
      try ReconCommand.offlineOnly(global)
      let ledger = try global.open()
      let who = by ?? "cli:" + (ProcessInfoLite.user ?? "unknown")
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
    @Option(help: "Who (default: cli:$USER).") var by: String?

    func run() throws {
      try ReconCommand.offlineOnly(global)
      let ledger = try global.open()
      let who = by ?? "cli:" + (ProcessInfoLite.user ?? "unknown")
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
func readFile(_ path: String, max: Int) -> [UInt8]? {
  guard let f = fopen(path, "rb") else { return nil }
  defer { fclose(f) }
  var out = [UInt8]()
  var buf = [UInt8](repeating: 0, count: 1 << 16)
  while true {
    let n = fread(&buf, 1, buf.count, f)
    if n == 0 { break }
    out += buf[0..<n]
    if out.count > max { return nil }
  }
  return ferror(f) == 0 ? out : nil
}
