import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct PartnerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "partner", abstract: "Create, list and view partners.",
    subcommands: [Create.self, List.self, View.self])

  struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a partner.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Partner id, [A-Za-z0-9._:-], 1…64 bytes.") var id: String
    @Option(help: "Display name (default: the id).") var name: String?
    @Option(name: .customLong("meta"), help: "Metadata key=value (repeatable).")
    var meta: [String] = []

    func run() throws {
      let md = try parseMetadata(meta, json: global.json)
      if let online = try global.online() {
        defer { online.close() }
        return try online.show(
          "PARTNER.CREATE",
          body([
            ("id", .string(id)), ("name", .string(name ?? id)), ("metadata", metadataJSON(md)),
          ]))
      }
      let ledger = try global.open()
      let p = PartnerCreated(id: id, name: name ?? id, metadata: md)
      _ = try applyOne(ledger, .createPartner(p), json: global.json, what: "partner \(id)")
    }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List partners in id order.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Start after this partner id (pagination cursor).") var after: String?
    @Option(help: "At most this many (1…10000).") var limit: Int = Limits.pageLimitDefault

    func validate() throws {
      try checkPageLimit(limit)
    }

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show(
          "PARTNER.LIST", body([("after", jstr(after)), ("limit", jnum(limit))]))
      }
      let ledger = try global.open(.readOnly)
      let partners: [PartnerRecord]
      do { partners = try ledger.partners(after: after, limit: limit) } catch { throw fail(error) }
      if global.json {
        print(
          JSONWriter.serialize(
            .array(
              partners.map {
                .object(
                  JSONObject([
                    ("id", .string($0.id)), ("name", .string($0.name)),
                    ("created_seq", .number(String($0.createdSeq))),
                    ("metadata", Views.metadata($0.metadata)),
                  ]))
              })))
      } else {
        print(
          table(
            ["PARTNER", "NAME", "SEQ"],
            partners.map { [$0.id, $0.name, String($0.createdSeq)] }))
      }
    }
  }
}

extension PartnerCommand {
  struct View: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "A partner's whole picture: accounts, totals per currency, open holds, activity.",
      discussion: """
        Pages list accounts in name order. Every figure of a page comes from one snapshot; \
        pass the first page's as_of_seq with --as-of-seq on the following pages so that all \
        of them show the same moment.
        """)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "The partner id.") var id: String
    @Option(help: "Start after this account name (pagination cursor).") var after: String?
    @Option(help: "At most this many accounts (1…10000).") var limit: Int = Limits.pageLimitDefault
    @Option(help: "Balances as of this seq (default: the head).") var asOfSeq: UInt64?

    func validate() throws {
      try checkPageLimit(limit)
    }

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show(
          "PARTNER.VIEW",
          body([
            ("id", .string(id)), ("after", jstr(after)), ("limit", jnum(limit)),
            ("as_of_seq", jnum(asOfSeq)),
          ]))
      }
      let ledger = try global.open(.readOnly)
      let view: PartnerView?
      do { view = try ledger.partnerView(id, after: after, limit: limit, asOfSeq: asOfSeq) } catch {
        throw fail(error)
      }
      guard let v = view else {
        throw report(
          Rejection(.partnerNotFound, "partner \(id) does not exist", ["partner": id]),
          json: global.json)
      }
      if global.json {
        print(JSONWriter.serialize(.object(Views.partnerView(v))))
        return
      }
      let st = v.stats
      var out = [
        "partner \(v.partner.id) (\(v.partner.name)) as of seq \(v.asOfSeq)",
        "entries \(st.entries), holds \(st.holds) (\(st.openHolds) open), "
          + "unreconciled items \(st.unreconciled), last activity "
          + (st.lastActivitySeq == 0
            ? "none"
            : "seq \(st.lastActivitySeq) at \(CivilTime.formatTimestamp(st.lastActivityNanos))"),
        "",
        table(
          ["CURRENCY", "ACCOUNTS", "POSTED", "PENDING IN", "PENDING OUT", "AVAILABLE"],
          try v.totals.map { t in
            let f = try decimalFormatter(t.currency, ledger)
            return [
              t.currency, String(t.accounts), f(t.postedMinor), f(t.pendingInMinor),
              f(t.pendingOutMinor), f(t.availableMinor),
            ]
          }),
        "",
        table(
          ["ACCOUNT", "CURRENCY", "STATUS", "BALANCE", "AVAILABLE"],
          v.accounts.map { a in
            let f = { (x: Int128) in Amount.formatDecimal(x, scale: a.record.scale) }
            return [
              a.record.name, a.record.currency, a.record.status == .open ? "open" : "closed",
              f(a.balances.balance(normal: a.record.normalSide)),
              a.balances.available(normal: a.record.normalSide).map(f) ?? "-",
            ]
          }),
      ]
      if let next = v.nextAccount {
        out.append("more: --after \(next) --as-of-seq \(v.asOfSeq)")
      }
      if !v.openHolds.isEmpty {
        out.append("")
        out.append(
          table(
            ["HOLD", "DEADLINE", "PLACED SEQ"],
            v.openHolds.map { h in
              [
                h.id, h.deadlineNanos.map { CivilTime.formatTimestamp($0) } ?? "-",
                String(h.placedSeq),
              ]
            }))
      }
      print(out.joined(separator: "\n"))
    }
  }
}

struct AssetCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "asset", abstract: "Declare and list custom assets (non-ISO currencies).",
    subcommands: [Declare.self, List.self])

  struct Declare: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Declare a custom asset.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Asset code, [A-Z0-9_], 1…16 bytes, not an ISO 4217 code.") var code: String
    @Option(help: "Decimal places of the minor unit, 0…18.") var scale: UInt8
    @Option(help: "Display name (default: the code).") var name: String?

    func run() throws {
      let ledger = try global.open()
      let a = AssetDeclared(code: code, scale: scale, name: name ?? code)
      _ = try applyOne(ledger, .declareAsset(a), json: global.json, what: "asset \(code)")
    }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List declared assets in code order.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Start after this asset code (pagination cursor).") var after: String?
    @Option(help: "At most this many (1…10000).") var limit: Int = Limits.pageLimitDefault

    func validate() throws {
      try checkPageLimit(limit)
    }

    func run() throws {
      let ledger = try global.open(.readOnly)
      let assets: [AssetRecord]
      do { assets = try ledger.assets(after: after, limit: limit) } catch { throw fail(error) }
      if global.json {
        print(
          JSONWriter.serialize(
            .array(
              assets.map {
                .object(
                  JSONObject([
                    ("code", .string($0.code)), ("scale", .number(String($0.scale))),
                    ("name", .string($0.name)),
                    ("declared_seq", .number(String($0.declaredSeq))),
                  ]))
              })))
      } else {
        print(
          table(
            ["ASSET", "SCALE", "NAME", "SEQ"],
            assets.map { [$0.code, String($0.scale), $0.name, String($0.declaredSeq)] }))
      }
    }
  }
}
