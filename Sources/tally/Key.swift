import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct KeyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "key",
    abstract: "API keys for tallyd: create (secret shown once), list, revoke.",
    discussion: """
      Keys live in the data directory but outside the log. Offline, these commands need the
      writer lock (stop tallyd first); online, use KEY.CREATE / KEY.REVOKE / KEY.LIST.
      """,
    subcommands: [Create.self, List.self, Revoke.self])

  struct Create: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Create a key; prints {\"key\",\"secret\"} once.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "admin, service, ops or auditor.") var role: String
    @Option(help: "The partner a service key is bound to.") var partner: String?
    @Option(help: "A platform account a service key may also use (repeatable).")
    var grant: [String] = []

    func validate() throws {
      guard let r = Role(rawValue: role) else {
        throw ValidationError("--role must be admin, service, ops or auditor")
      }
      if r == .service && partner == nil {
        throw ValidationError("a service key needs --partner")
      }
      if r != .service && (partner != nil || !grant.isEmpty) {
        throw ValidationError("only service keys take --partner or --grant")
      }
    }

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show(
          "KEY.CREATE",
          body([
            ("role", .string(role)), ("partner", jstr(partner)),
            ("grants", grant.isEmpty ? nil : .array(grant.map { .string($0) })),
          ]))
      }
      let ledger = try global.open()
      let result: Result<KeyRecord, Rejection>
      do {
        result = try ledger.createKey(
          role: Role(rawValue: role)!, partner: partner, grants: grant, now: nowNanos())
      } catch { throw fail(error) }
      switch result {
      case .failure(let r): throw report(r, json: global.json)
      case .success(let k):
        if global.json {
          var o = keyJSON(k)
          o.members.insert(("secret", .string(k.secret)), at: 1)
          print(JSONWriter.serialize(.object(o)))
        } else {
          print("key    \(k.id)")
          print("secret \(k.secret)")
          print("role   \(k.role.rawValue)\(k.partner.map { " (partner \($0))" } ?? "")")
          print("The secret is shown only now; tallyd stores it outside the log.")
        }
      }
    }
  }

  struct List: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List keys (never secrets).")
    @OptionGroup var global: GlobalOptions

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show("KEY.LIST")
      }
      let ledger = try global.open(.readOnly)
      let keys: [KeyRecord]
      do { keys = try ledger.keys() } catch { throw fail(error) }
      if global.json {
        let items = JSONValue.array(keys.map { .object(keyJSON($0)) })
        print(JSONWriter.serialize(.object(JSONObject([("keys", items)]))))
        return
      }
      print(
        table(
          ["KEY", "ROLE", "PARTNER", "GRANTS", "CREATED", "REVOKED"],
          keys.map {
            [
              $0.id, $0.role.rawValue, $0.partner ?? "-",
              $0.grants.isEmpty ? "-" : $0.grants.joined(separator: ","),
              CivilTime.formatTimestamp($0.createdNanos),
              $0.revokedNanos.map(CivilTime.formatTimestamp) ?? "-",
            ]
          }))
    }
  }

  struct Revoke: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Revoke a key.")
    @OptionGroup var global: GlobalOptions
    @Argument var key: String

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        return try online.show("KEY.REVOKE", body([("key", .string(key))]))
      }
      let ledger = try global.open()
      let k: KeyRecord?
      do { k = try ledger.revokeKey(key, now: nowNanos()) } catch { throw fail(error) }
      guard let k else {
        FileHandleOut.stderr("tally: no key \(key)")
        printJSONError(code: "NOT_FOUND", message: "no key \(key)")
        throw CLIExit.rejected
      }
      if global.json {
        print(JSONWriter.serialize(.object(keyJSON(k))))
      } else {
        print("key \(k.id) revoked")
      }
    }
  }
}

func keyJSON(_ k: KeyRecord) -> JSONObject {
  Views.key(
    id: k.id, role: k.role.rawValue, partner: k.partner, grants: k.grants,
    createdNanos: k.createdNanos, revokedNanos: k.revokedNanos)
}
