import ArgumentParser
import TallyClient
import TallyCore
import TallyProtocol
import TallyStore

struct CheckpointCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "checkpoint",
    abstract: "Print a signed checkpoint (C2SP tlog-checkpoint note) of the log's Merkle tree.")
  @OptionGroup var global: GlobalOptions
  @Option(help: "Tree size (default: the log's head).") var size: UInt64?
  @OptionGroup var audit: AuditOptions

  func run() throws {
    if let online = try global.online() {
      defer { online.close() }
      if let auditor = try audit.auditor(online) {
        let size = size
        let c = try audited { () async throws(AuditorError) in
          try await auditor.checkpoint(size: size)
        }
        if global.json { return print(JSONWriter.serialize(.object(checkpointJSON(c)))) }
        return print(c.note, terminator: "")
      }
      let o = try online.call("CHECKPOINT.GET", body([("size", jnum(size))]))
      if global.json { return print(JSONWriter.serialize(.object(o))) }
      return print(o["note"]?.stringValue ?? "", terminator: "")
    }
    try audit.offline()
    let ledger = try global.open(.readOnly)
    let r: Result<Checkpoint, ProofError>?
    do { r = try ledger.checkpoint(size: size) } catch { throw fail(error) }
    guard let r else {
      throw usage(noSigningKey)
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

/// Why a checkpoint, a verifier key or an export cannot be made yet.
let noSigningKey = "this directory has no signing key yet; open it read-write once (tallyd)"

struct VKey: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "vkey",
    abstract: "Print the verifier key of the ledger's checkpoints (name+hash+base64).")
  @OptionGroup var global: GlobalOptions

  func run() throws {
    let ledger = try global.open(.readOnly)
    guard let vkey = ledger.verifierKey else {
      throw usage(noSigningKey)
    }
    print(vkey)
  }
}

struct SigningKeyCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "signing-key",
    abstract: "The checkpoint signing key: rotate it.",
    subcommands: [Rotate.self])

  struct Rotate: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Replace the signing key; the head is signed by the old and the new key.",
      discussion: """
        Needs the writer lock (stop tallyd first). The origin stays; the key hash changes. \
        The old private key is kept as signing.key.retired-<hash> in the data directory. \
        Prints the old and new verifier keys and the handover checkpoint (kept, also in \
        CHECKPOINT.LIST). Publish the new verifier key to auditors; see docs/AUDIT.md.
        """)
    @OptionGroup var global: GlobalOptions

    func run() throws {
      let ledger = try global.open()
      let r: KeyRotation
      do { r = try ledger.rotateSigningKey() } catch { throw fail(error) }
      if global.json {
        print(
          JSONWriter.serialize(
            .object(
              JSONObject([
                ("old_vkey", .string(r.oldVerifierKey)), ("new_vkey", .string(r.newVerifierKey)),
                ("size", .number(String(r.handover.size))), ("handover", .string(r.handover.note)),
                ("retired_key_file", .string(r.retiredKeyFile)),
              ]))))
      } else {
        print("old verifier key  \(r.oldVerifierKey)")
        print("new verifier key  \(r.newVerifierKey)")
        print("retired key kept  \(r.retiredKeyFile)")
        print("handover checkpoint (signed by both keys, size \(r.handover.size)):")
        print(r.handover.note, terminator: "")
      }
    }
  }
}
