import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct PartnerCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "partner", abstract: "Create and list partners.",
    subcommands: [Create.self, List.self])

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
      if limit < 1 || limit > Limits.pageLimitMax {
        throw ValidationError("--limit must be 1…\(Limits.pageLimitMax)")
      }
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
      if limit < 1 || limit > Limits.pageLimitMax {
        throw ValidationError("--limit must be 1…\(Limits.pageLimitMax)")
      }
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
