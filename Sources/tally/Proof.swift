import ArgumentParser
import TallyClient
import TallyCore
import TallyProtocol
import TallyStore

struct ProofCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "proof",
    abstract: "RFC 9162 Merkle proofs over the log: inclusion of an event, consistency of sizes.",
    subcommands: [Inclusion.self, Consistency.self])

  struct Inclusion: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Audit path of the event at --seq in the tree of --size events (default: all).")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The event's seq (its leaf index is seq - 1).") var seq: UInt64
    @Option(help: "Tree size (default: the log's head).") var size: UInt64?
    @OptionGroup var audit: AuditOptions

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        guard let auditor = try audit.auditor(online) else {
          return try online.show(
            "PROOF.INCLUSION", body([("seq", jnum(seq)), ("size", jnum(size))]))
        }
        let (seq, size) = (seq, size)
        let r = try audited { () async throws(AuditorError) in
          try await auditor.inclusion(seq: seq, size: size)
        }
        if global.json {
          var o = checkpointJSON(r.checkpoint)
          o.members.insert(("seq", .number(String(seq))), at: 1)
          o.members.insert(("bytes", .string(r.bytes.hex)), at: 2)
          return print(JSONWriter.serialize(.object(o)))
        }
        return print(
          "verified: seq \(seq) is in the signed tree of \(r.checkpoint.size) events, root "
            + r.checkpoint.root.hex)
      }
      try audit.offline()
      let ledger = try global.open(.readOnly)
      let r: Result<InclusionProof, ProofError>
      do { r = try ledger.inclusionProof(seq: seq, size: size) } catch { throw fail(error) }
      switch r {
      case .failure(.outOfRange(let why)): throw usage(why)
      case .success(let p):
        let o = Views.inclusionProof(
          leafIndex: p.leafIndex, treeSize: p.treeSize, leafHash: p.leafHash.hex,
          path: p.path.map(\.hex), root: p.root.hex)
        if global.json {
          print(JSONWriter.serialize(.object(o)))
        } else {
          print("leaf index \(p.leafIndex) (seq \(seq)) in a tree of \(p.treeSize)")
          print("leaf hash  \(p.leafHash.hex)")
          print("root       \(p.root.hex)")
          for (i, h) in p.path.enumerated() { print("path[\(i)]    \(h.hex)") }
        }
      }
    }
  }

  struct Consistency: ParsableCommand {
    static let configuration = CommandConfiguration(
      abstract: "Proof that the tree of --from events is a prefix of the tree of --to events.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The earlier tree size (1…to).") var from: UInt64
    @Option(help: "The later tree size (≤ the head).") var to: UInt64
    @OptionGroup var audit: AuditOptions

    func run() throws {
      if let online = try global.online() {
        defer { online.close() }
        guard let auditor = try audit.auditor(online) else {
          return try online.show(
            "PROOF.CONSISTENCY", body([("from", jnum(from)), ("to", jnum(to))]))
        }
        let (from, to) = (from, to)
        let r = try audited { () async throws(AuditorError) in
          try await auditor.consistency(from: from, to: to)
        }
        if global.json {
          return print(
            JSONWriter.serialize(
              .object(
                JSONObject([
                  ("verified", .bool(true)), ("from", .object(checkpointJSON(r.old))),
                  ("to", .object(checkpointJSON(r.new))),
                ]))))
        }
        return print(
          "verified: the signed tree of \(to) events (root \(r.new.root.hex)) extends the one "
            + "of \(from) (root \(r.old.root.hex))")
      }
      try audit.offline()
      let ledger = try global.open(.readOnly)
      let r: Result<ConsistencyProof, ProofError>
      do { r = try ledger.consistencyProof(from: from, to: to) } catch { throw fail(error) }
      switch r {
      case .failure(.outOfRange(let why)): throw usage(why)
      case .success(let p):
        let o = Views.consistencyProof(
          from: p.from, to: p.to, path: p.path.map(\.hex), rootFrom: p.rootFrom.hex,
          rootTo: p.rootTo.hex)
        if global.json {
          print(JSONWriter.serialize(.object(o)))
        } else {
          print("tree \(p.from) root \(p.rootFrom.hex)")
          print("tree \(p.to) root \(p.rootTo.hex)")
          for (i, h) in p.path.enumerated() { print("path[\(i)] \(h.hex)") }
        }
      }
    }
  }
}
