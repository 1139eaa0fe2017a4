import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct AccountCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "account", abstract: "Open, close, show and list accounts.",
    subcommands: [Open.self, Close.self, Show.self, List.self])

  struct Open: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Open an account.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Account id, [A-Za-z0-9._:-], 1…128 bytes.") var name: String
    @Option(help: "ISO 4217 code or declared asset.") var currency: String
    @Option(help: "Owning partner (default: platform).")
    var partner: String = Machine.platformPartner
    @Option(name: .customLong("normal"), help: "Normal side: debit (assets, expenses) or credit.")
    var normal: String = "debit"
    @Flag(name: .customLong("no-overdraft"), help: "Available balance may not go below zero.")
    var noOverdraft = false
    @Option(help: "Ceiling on balance plus pending inflows, in major units (e.g. 1000.00).")
    var limit: String?
    @Option(name: .customLong("meta"), help: "Metadata key=value (repeatable).")
    var meta: [String] = []

    func validate() throws {
      if Side(name: normal) == nil { throw ValidationError("--normal must be debit or credit") }
    }

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        var limitJSON: JSONValue?
        if let limit {
          guard let scale = ISO4217.minorUnits(of: currency) else {
            throw usage(
              "online, --limit needs an ISO 4217 currency; use tally call ACCOUNT.OPEN")
          }
          switch Amount.parseDecimal(limit, scale: scale) {
          case .success(let v): limitJSON = .string(String(v))
          case .failure(let r): throw report(r, json: global.json)
          }
        }
        return try online.show(
          "ACCOUNT.OPEN",
          body([
            ("account", .string(name)), ("currency", .string(currency)),
            ("partner", .string(partner)), ("normal", .string(normal)),
            ("no_overdraft", .bool(noOverdraft)), ("limit", limitJSON),
            ("metadata", metadataJSON(try parseMetadata(meta, json: global.json))),
          ]))
      }
      let ledger = try global.open()
      var limitMinor: Int128?
      if let limit {
        let scale: UInt8
        if let s = ISO4217.minorUnits(of: currency) {
          scale = s
        } else if let a = try? ledger.asset(currency) {
          scale = a.scale
        } else {
          throw report(
            Rejection(.unknownCurrency, "\(currency) is neither ISO 4217 nor a declared asset"),
            json: global.json)
        }
        switch Amount.parseDecimal(limit, scale: scale) {
        case .success(let v): limitMinor = v
        case .failure(let r): throw report(r, json: global.json)
        }
      }
      let a = AccountOpened(
        name: name, partner: partner, currency: currency, normalSide: Side(name: normal)!,
        noOverdraft: noOverdraft, limitMinor: limitMinor,
        metadata: try parseMetadata(meta, json: global.json))
      _ = try applyOne(ledger, .openAccount(a), json: global.json, what: "account \(name)")
    }
  }

  struct Close: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Close an account (needs a zero balance and no open holds).")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show("ACCOUNT.CLOSE", body([("account", .string(name))]))
      }
      let ledger = try global.open()
      _ = try applyOne(
        ledger, .closeAccount(name: name), json: global.json, what: "account \(name)")
    }
  }

  struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show an account and its balances.")
    @OptionGroup var global: GlobalOptions
    @Argument var name: String

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show("ACCOUNT.GET", body([("account", .string(name))]))
      }
      let ledger = try global.open(.readOnly)
      let view: AccountView?
      do { view = try ledger.account(name) } catch { throw fail(error) }
      guard let view else {
        throw report(
          Rejection(.accountNotFound, "account \(name) does not exist"), json: global.json)
      }
      if global.json {
        print(JSONWriter.serialize(.object(Views.account(view))))
        return
      }
      let a = view.record
      let b = view.balances
      let f = { (v: Int128) in Amount.formatDecimal(v, scale: a.scale) }
      var rows: [[String]] = [
        ["account", a.name], ["partner", a.partner],
        ["currency", "\(a.currency) (scale \(a.scale))"],
        ["normal side", a.normalSide.description],
        ["status", a.status == .open ? "open" : "closed (seq \(a.closedSeq))"],
        ["flags", a.noOverdraft ? "no_overdraft" : "-"],
        ["limit", a.limitMinor.map(f) ?? "-"], ["opened at seq", String(a.openedSeq)],
        ["posted", "debits \(f(b.postedDebits))  credits \(f(b.postedCredits))"],
        ["pending", "debits \(f(b.pendingDebits))  credits \(f(b.pendingCredits))"],
        ["balance", f(b.balance(normal: a.normalSide))],
        ["available", b.available(normal: a.normalSide).map(f) ?? "overflow"],
        ["last change", "seq \(view.seq)"],
      ]
      for p in a.metadata.pairs { rows.append(["meta \(p.key)", p.value]) }
      print(table(["FIELD", "VALUE"], rows))
    }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List accounts in name order.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Only this partner's accounts.") var partner: String?
    @Option(help: "Start after this account name (pagination cursor).") var after: String?
    @Option(help: "At most this many (1…10000).") var limit: Int = Limits.pageLimitDefault

    func validate() throws {
      try checkPageLimit(limit)
    }

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show(
          "ACCOUNT.LIST",
          body([("partner", jstr(partner)), ("after", jstr(after)), ("limit", jnum(limit))]))
      }
      let ledger = try global.open(.readOnly)
      let views: [AccountView]
      do {
        views = try ledger.accounts(after: after, limit: limit, partner: partner)
      } catch { throw fail(error) }
      if global.json {
        print(JSONWriter.serialize(.array(views.map { .object(Views.account($0)) })))
        return
      }
      print(
        table(
          ["ACCOUNT", "PARTNER", "CUR", "NORMAL", "STATUS", "BALANCE", "AVAILABLE"],
          views.map { v in
            let a = v.record
            let f = { (x: Int128) in Amount.formatDecimal(x, scale: a.scale) }
            return [
              a.name, a.partner, a.currency, a.normalSide.description,
              a.status == .open ? "open" : "closed", f(v.balances.balance(normal: a.normalSide)),
              v.balances.available(normal: a.normalSide).map(f) ?? "overflow",
            ]
          }))
    }
  }
}
