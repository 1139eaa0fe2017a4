import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct Statement: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Events that touched an account, oldest first, paginated.")
  @OptionGroup var global: GlobalOptions
  @Argument var account: String
  @Option(name: .customLong("from-seq")) var fromSeq: UInt64?
  @Option(name: .customLong("to-seq")) var toSeq: UInt64?
  @Option(help: "From this time, RFC 3339 UTC (inclusive).") var from: String?
  @Option(help: "Until this time, RFC 3339 UTC (exclusive).") var to: String?
  @Option(help: "At most this many lines (1…10000).") var limit: Int = Limits.pageLimitDefault
  @Option(help: "Continue from a previous page's next cursor.") var cursor: UInt64?

  func validate() throws {
    try checkPageLimit(limit)
    if from != nil && fromSeq != nil { throw ValidationError("give --from or --from-seq") }
    if to != nil && toSeq != nil { throw ValidationError("give --to or --to-seq") }
  }

  func run() throws {
    if let online = try global.online() {
      defer { online.close() }
      if from != nil || to != nil { throw usage("online, give --from-seq/--to-seq, not times") }
      return try online.show(
        "STATEMENT.GET",
        body([
          ("account", .string(account)), ("from_seq", cursor == nil ? jnum(fromSeq) : nil),
          ("cursor", jnum(cursor)), ("to_seq", jnum(toSeq)), ("limit", jnum(limit)),
        ]))
    }
    let ledger = try global.open(.readOnly)
    var lo = fromSeq ?? 1
    var hi = toSeq ?? UInt64.max
    do {
      if let from {
        guard let ns = CivilTime.parseTimestamp(from) else {
          throw usage("--from must be RFC 3339 UTC")
        }
        lo = try ledger.firstSeq(atOrAfter: ns)
      }
      if let to {
        guard let ns = CivilTime.parseTimestamp(to) else {
          throw usage("--to must be RFC 3339 UTC")
        }
        hi = try ledger.firstSeq(atOrAfter: ns) - 1
      }
    } catch let e as StoreError {
      throw fail(e)
    }
    if let cursor { lo = max(lo, cursor) }
    let result: (account: AccountView, lines: [StatementLine], next: UInt64?)?
    do { result = try ledger.statement(account, fromSeq: lo, toSeq: hi, limit: limit) } catch {
      throw fail(error)
    }
    guard let result else {
      throw report(
        Rejection(.accountNotFound, "account \(account) does not exist", ["account": account]),
        json: global.json)
    }
    let a = result.account.record
    if global.json {
      let o = JSONObject([
        ("account", .string(a.name)), ("currency", .string(a.currency)),
        ("scale", .number(String(a.scale))),
        (
          "lines",
          .array(
            result.lines.map { l in
              var o = Views.statementLine(l)
              o.members.append(
                ("balance", .string(String(l.after.balance(normal: a.normalSide)))))
              return .object(o)
            })
        ),
        ("next_cursor", result.next.map { .number(String($0)) } ?? .null),
      ])
      print(JSONWriter.serialize(.object(o)))
      return
    }
    let f = { (v: Int128) in v == 0 ? "" : Amount.formatDecimal(v, scale: a.scale) }
    print("statement of \(a.name) (\(a.currency), normal \(a.normalSide))")
    print(
      table(
        ["SEQ", "TIME", "TYPE", "ID", "DEBIT", "CREDIT", "PENDING DR", "PENDING CR", "BALANCE"],
        result.lines.map { l in
          [
            String(l.seq), CivilTime.formatTimestamp(l.timestampNanos), l.type.description, l.id,
            f(l.delta.postedDebits), f(l.delta.postedCredits), f(l.delta.pendingDebits),
            f(l.delta.pendingCredits),
            Amount.formatDecimal(l.after.balance(normal: a.normalSide), scale: a.scale),
          ]
        }))
    if let next = result.next { print("more: --cursor \(next)") }
  }
}
