import ArgumentParser
import TallyCore
import TallyStore

struct Reverse: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Reverse an entry: a new entry with every leg mirrored (at most once per entry).")
  @OptionGroup var global: GlobalOptions
  @Argument(help: "Id of the entry to reverse.") var entry: String
  @Option(help: "Id of the new, reversing entry (default: ENTRY.reversal).") var id: String?
  @Option(name: .customLong("meta"), help: "Metadata key=value (repeatable), e.g. reason=…")
  var meta: [String] = []

  func run() throws {
    if let online = try global.online() {
      defer { online.close() }
      return try online.show(
        "ENTRY.REVERSE",
        body([
          ("id", .string(id ?? "\(entry).reversal")), ("entry", .string(entry)),
          ("metadata", metadataJSON(try parseMetadata(meta, json: global.json))),
        ]))
    }
    let ledger = try global.open()
    let newId = id ?? "\(entry).reversal"
    let spec = ReverseSpec(
      id: newId, entryId: entry, metadata: try parseMetadata(meta, json: global.json))
    _ = try applyOne(ledger, .reverseEntry(spec), json: global.json, what: "reversal \(newId)")
  }
}
