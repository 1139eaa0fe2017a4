import ArgumentParser
import TallyCore
import TallyProtocol
import TallyStore

struct CheckpointCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "checkpoint",
    abstract: "Print a signed checkpoint (C2SP tlog-checkpoint note) of the log's Merkle tree.")
  @OptionGroup var global: GlobalOptions
  @Option(help: "Tree size (default: the log's head).") var size: UInt64?

  func run() throws {
    if let online = try global.online() {
      defer { online.close() }
      let o = try online.call("CHECKPOINT.GET", body([("size", jnum(size))]))
      if global.json { return print(JSONWriter.serialize(.object(o))) }
      return print(o["note"]?.stringValue ?? "", terminator: "")
    }
    let ledger = try global.open(.readOnly)
    let r: Result<Checkpoint, ProofError>?
    do { r = try ledger.checkpoint(size: size) } catch { throw fail(error) }
    guard let r else {
      throw usage("this directory has no signing key yet; open it read-write once (tallyd)")
    }
    switch r {
    case .failure(.outOfRange(let why)): throw usage(why)
    case .success(let c):
      if global.json {
        print(
          JSONWriter.serialize(
            .object(
              Views.checkpoint(
                size: c.size, root: c.root.hex, chain: c.chain.hex, note: c.note))))
      } else {
        print(c.note, terminator: "")
      }
    }
  }
}

struct VKey: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vkey",
    abstract: "Print the verifier key of the ledger's checkpoints (name+hash+base64).")
  @OptionGroup var global: GlobalOptions

  func run() throws {
    let ledger = try global.open(.readOnly)
    guard let vkey = ledger.verifierKey else {
      throw usage("this directory has no signing key yet; open it read-write once (tallyd)")
    }
    print(vkey)
  }
}
