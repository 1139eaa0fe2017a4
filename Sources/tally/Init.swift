import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct Init: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Create and initialise a data directory (creates the platform partner).")

  @OptionGroup var global: GlobalOptions
  @Option(help: "Origin named in signed checkpoints (default: tally.ledger/<random>).")
  var origin: String?

  func run() throws {
    let ledger: Ledger
    do {
      ledger = try Ledger.create(at: global.directory, now: nowNanos(), origin: origin)
    } catch {
      throw fail(error)
    }
    if global.json {
      print(
        JSONWriter.serialize(
          .object(
            JSONObject([
              ("data", .string(global.directory)), ("seq", .number(String(ledger.head.seq))),
            ]))))
    } else {
      print(
        "initialised \(global.directory) (format \(Ledger.formatVersion)); "
          + "partner \(Machine.platformPartner) created at seq \(ledger.head.seq)")
    }
  }
}
