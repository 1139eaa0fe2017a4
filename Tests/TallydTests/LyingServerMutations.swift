import Foundation
import TallyAudit
import TallyCore
import TallyCrypto
import TallyProtocol
import TallyTestSupport
import Testing

/// The lies told in answers: kinds × positions (seqs, sizes, path hashes), with the seeded
/// generator choosing which digit or leaf each one alters.
struct Lies {
  let g: Genuine

  func all(_ rng: inout SplitMix64) -> [Lie] {
    let n = g.head
    var out = [Lie]()
    let inclusions: [(UInt64, UInt64)] = [
      (1, n), (2, n), (5, 8), (12, 20), (17, 33), (n / 2, n), (n - 1, n), (n, n), (7, 7),
    ]
    for (s, size) in inclusions { out += inclusion(s, size, &rng) }
    let consistencies: [(UInt64, UInt64)] = [
      (1, n), (3, 8), (8, 16), (5, n), (16, n), (n - 1, n), (7, 13), (20, 33), (2, 3),
    ]
    for (a, b) in consistencies { out += consistency(a, b, &rng) }
    for k: UInt64 in [2, 3, 8, 15, 20, 27, n - 1] { out += headLies(k, &rng) }
    return out
  }

  /// A signed checkpoint answer line for a tree (a liar holding the key, or another key).
  func checkpointLine(_ signer: NoteSigner, size: UInt64, root: Hash32, chain: Hash32) -> String {
    let body = Note.checkpoint(
      origin: signer.name, size: size, root: root, extensions: ["chain \(chain.hex)"])
    let note = signer.sign(body)!
    return "OK "
      + JSONWriter.serialize(
        .object(
          JSONObject([
            ("size", .number(String(size))), ("root", .string(root.hex)),
            ("chain", .string(chain.hex)), ("note", .string(note)),
          ])))
  }

  /// Root and chain of the first `size` leaves with leaf `i` replaced: a forked log.
  func forked(_ size: UInt64, at i: Int) -> (root: Hash32, chain: Hash32) {
    var leaves = Array(g.leaves.prefix(Int(size)))
    leaves[i] = SHA256Hasher().leaf(Array("forged event \(i)".utf8))
    return (mth(leaves[...]), chainHash(leaves[...]))
  }

  func genuine(_ size: UInt64) -> SignedCheckpoint { g.signedCheckpoint(size) }

  /// The number of hashes in the `path` of an answer line.
  func pathCount(_ line: String) -> Int {
    (Reply(line).body["path"] as? [Any])?.count ?? 0
  }

  func only(_ verb: String, _ f: @escaping @Sendable (String, [String: UInt64]) -> String)
    -> LyingProxy.Rewrite
  {
    { v, fields, line in v == verb ? f(line, fields) : line }
  }

  /// Lies about checkpoints, in any conversation that asks for the one of `size`.
  func checkpointLies(
    _ size: UInt64, _ where_: String, _ scenario: Scenario, _ rng: inout SplitMix64
  )
    -> [Lie]
  {
    let c = genuine(size)
    let liar = g.signer
    let foreign = NoteSigner.generate(name: "tally.ledger/elsewhere")!
    let sameSeed = NoteSigner(name: "tally.ledger/elsewhere", seed: liar.seed)!
    let digit = rng.below(64)
    let fork = forked(size, at: rng.below(Int(size)))
    let forkLine = checkpointLine(liar, size: size, root: fork.root, chain: fork.chain)
    let other = size > 1 ? size - 1 : size + 1
    let otherLine = g.checkpointLines[other]!
    func onSize(_ make: @escaping @Sendable (String) -> String) -> LyingProxy.Rewrite {
      { v, fields, line in
        v == "CHECKPOINT.GET" && (fields["size"] ?? 0) == size ? make(line) : line
      }
    }
    func lie(_ kind: String, _ code: AnswerRefusal.Code, _ r: @escaping LyingProxy.Rewrite) -> Lie {
      Lie(kind: kind, position: where_, scenario: scenario, expected: code, rewrite: r)
    }
    let note = g.notes[size]!
    var lines = note.components(separatedBy: "\n")
    let sigLine = lines.count - 2
    var sig = Array(lines[sigLine])
    let at = sig.count - 3 - rng.below(40)
    sig[at] = sig[at] == "A" ? "B" : "A"
    lines[sigLine] = String(sig)
    let badSig = lines.joined(separator: "\n")
    var sized = note.components(separatedBy: "\n")
    sized[1] = String(size + 1)
    let badSize = sized.joined(separator: "\n")
    var rooted = note.components(separatedBy: "\n")
    rooted[2] = Base64.encode(fork.root.bytes)
    let badRoot = rooted.joined(separator: "\n")
    let unsigned = Note.split(note)!.text + "\n"
    func withNote(_ text: String) -> @Sendable (String) -> String {
      { line in editOK(line) { $0[set: "note"] = .string(text) } }
    }
    return [
      lie("checkpoint.signature_altered", .signature, onSize(withNote(badSig))),
      lie("checkpoint.size_altered", .signature, onSize(withNote(badSize))),
      lie("checkpoint.root_altered", .signature, onSize(withNote(badRoot))),
      lie("checkpoint.unsigned", .signature, onSize(withNote(unsigned))),
      lie(
        "checkpoint.other_origin_other_key", .signature,
        onSize { _ in checkpointLine(foreign, size: size, root: c.root, chain: c.chain!) }),
      lie(
        "checkpoint.other_origin_same_key", .signature,
        onSize { _ in checkpointLine(sameSeed, size: size, root: c.root, chain: c.chain!) }),
      {
        var l = lie(
          "checkpoint.json_root_altered", .answerMismatch,
          onSize { line in editOK(line) { $0[set: "root"] = .string(flipHex(c.root.hex, digit)) } }
        )
        l.python = false
        return l
      }(),
      lie("checkpoint.other_size", .wrongSize, onSize { _ in otherLine }),
    ]
      + (scenario.isInclusion
        ? [lie("checkpoint.forked_log", .answerMismatch, onSize { _ in forkLine })] : [])
  }

  /// Lies about the audit path (`path`) of `verb`'s answer: each hash altered (one hex digit),
  /// each removed, and one hash added; kinds `KIND.path_hash_altered`, `_removed`, `_added`.
  func pathLies(
    _ kind: String, _ verb: String, hashes: Int, _ at: String, _ code: AnswerRefusal.Code,
    _ rng: inout SplitMix64,
    _ lie: (String, String, AnswerRefusal.Code, @escaping LyingProxy.Rewrite) -> Void
  ) {
    for j in 0..<hashes {
      let d = rng.below(64)
      lie(
        "\(kind).path_hash_altered", "\(at) hash \(j)", code,
        only(verb) { line, _ in
          editOK(line) { o in
            var p = o["path"]!.arrayValue!
            p[j] = .string(flipHex(p[j].stringValue!, d))
            o[set: "path"] = .array(p)
          }
        })
      lie(
        "\(kind).path_hash_removed", "\(at) hash \(j)", code,
        only(verb) { line, _ in
          editOK(line) { o in
            var p = o["path"]!.arrayValue!
            p.remove(at: j)
            o[set: "path"] = .array(p)
          }
        })
    }
    let extra = SHA256Hasher().leaf(Array("extra \(rng.next())".utf8)).hex
    lie(
      "\(kind).path_hash_added", at, code,
      only(verb) { line, _ in
        editOK(line) { o in o[set: "path"] = .array(o["path"]!.arrayValue! + [.string(extra)]) }
      })
  }

  func inclusion(_ s: UInt64, _ size: UInt64, _ rng: inout SplitMix64) -> [Lie] {
    let scenario = Scenario.inclusion(seq: s, size: size)
    let at = "seq \(s) size \(size)"
    let proof = pathCount(g.inclusionLinesSync(s, size))
    var out = [Lie]()
    func lie(
      _ kind: String, _ pos: String, _ code: AnswerRefusal.Code, _ r: @escaping LyingProxy.Rewrite
    ) {
      out.append(Lie(kind: kind, position: pos, scenario: scenario, expected: code, rewrite: r))
    }
    let proofVerb = "PROOF.INCLUSION"
    pathLies("inclusion", proofVerb, hashes: proof, at, .inclusion, &rng, lie)
    for delta in [-1, 1] where (delta < 0 && s > 1) || (delta > 0 && s < size) {
      lie(
        "inclusion.leaf_index_altered", "\(at) by \(delta)", .answerMismatch,
        only(proofVerb) { line, _ in
          editOK(line) { $0[set: "leaf_index"] = .number(String(Int(s) - 1 + delta)) }
        })
    }
    for delta in [-1, 1] where delta > 0 || size > s {
      lie(
        "inclusion.tree_size_altered", "\(at) by \(delta)", .wrongSize,
        only(proofVerb) { line, _ in
          editOK(line) { $0[set: "tree_size"] = .number(String(Int(size) + delta)) }
        })
    }
    let d = rng.below(64)
    lie(
      "inclusion.leaf_hash_altered", at, .answerMismatch,
      only(proofVerb) { line, _ in
        editOK(line) { o in o[set: "leaf_hash"] = .string(flipHex(o["leaf_hash"]!.stringValue!, d))
        }
      })
    lie(
      "inclusion.root_altered", at, .answerMismatch,
      only(proofVerb) { line, _ in
        editOK(line) { o in o[set: "root"] = .string(flipHex(o["root"]!.stringValue!, d)) }
      })
    // The event itself: its timestamp's last bit (it still decodes), then also the proof's
    // leaf hash made to match it; another seq's event; bytes that do not decode.
    var altered = g.events[Int(s) - 1]
    altered[17] ^= 0x01
    let alteredHex = altered.hex
    let alteredLeaf = SHA256Hasher().leaf(altered).hex
    @Sendable func withBytes(_ hex: String) -> @Sendable (String, [String: UInt64]) -> String {
      { line, _ in
        editOK(line) { o in
          var e = o["events"]!.arrayValue![0].objectValue!
          e[set: "bytes"] = .string(hex)
          o[set: "events"] = .array([.object(e)])
        }
      }
    }
    lie("event.altered", at, .answerMismatch, only("LOG.READ", withBytes(alteredHex)))
    let rehashed: LyingProxy.Rewrite = { v, f, line in
      if v == "LOG.READ" { return withBytes(alteredHex)(line, f) }
      if v == proofVerb {
        return editOK(line) { $0[set: "leaf_hash"] = .string(alteredLeaf) }
      }
      return line
    }
    lie("event.altered_and_leaf_rehashed", at, .inclusion, rehashed)
    lie(
      "event.undecodable", at, .wrongEvent,
      only("LOG.READ", withBytes(Array(g.events[Int(s) - 1].dropLast()).hex)))
    let neighbour = s < size ? s + 1 : s - 1
    if neighbour >= 1 && neighbour != s {
      let neighbourLog = g.logLines[neighbour]!
      lie(
        "event.other_seq", "\(at) gives \(neighbour)", .wrongEvent,
        only("LOG.READ") { _, _ in neighbourLog })
      let neighbourProof = g.inclusionLinesSync(neighbour, size)
      lie(
        "event.other_seq_with_its_proof", "\(at) gives \(neighbour)", .wrongEvent,
        { v, _, line in
          v == "LOG.READ" ? neighbourLog : v == proofVerb ? neighbourProof : line
        })
    }
    out += checkpointLies(size, at, scenario, &rng)
    return out
  }

  func consistency(_ a: UInt64, _ b: UInt64, _ rng: inout SplitMix64) -> [Lie] {
    let scenario = Scenario.consistency(from: a, to: b)
    let at = "from \(a) to \(b)"
    var out = [Lie]()
    func lie(
      _ kind: String, _ pos: String, _ code: AnswerRefusal.Code, _ r: @escaping LyingProxy.Rewrite
    ) {
      out.append(Lie(kind: kind, position: pos, scenario: scenario, expected: code, rewrite: r))
    }
    let verb = "PROOF.CONSISTENCY"
    let length = pathCount(g.consistencyLines[[a, b]] ?? "OK {}")
    pathLies("consistency", verb, hashes: length, at, .inconsistent, &rng, lie)
    lie(
      "consistency.from_altered", at, .wrongSize,
      only(verb) { line, _ in editOK(line) { $0[set: "from"] = .number(String(a + 1)) } })
    lie(
      "consistency.to_altered", at, .wrongSize,
      only(verb) { line, _ in editOK(line) { $0[set: "to"] = .number(String(b - 1)) } })
    let d = rng.below(64)
    for field in ["root_from", "root_to"] {
      lie(
        "consistency.\(field)_altered", at, .answerMismatch,
        only(verb) { line, _ in
          editOK(line) { o in o[set: field] = .string(flipHex(o[field]!.stringValue!, d)) }
        })
    }
    // A forked log of size b, signed with the ledger's key, and the proof's root made to
    // match it: no path leads from the kept prefix to it.
    let i = rng.below(Int(b))
    let fork = forked(b, at: i)
    let forkLine = checkpointLine(g.signer, size: b, root: fork.root, chain: fork.chain)
    lie(
      "consistency.forked_log", "\(at) leaf \(i)", .inconsistent,
      { v, f, line in
        if v == "CHECKPOINT.GET" && f["size"] == b { return forkLine }
        if v == verb { return editOK(line) { $0[set: "root_to"] = .string(fork.root.hex) } }
        return line
      })
    out += checkpointLies(a, at + " (old)", scenario, &rng).filter {
      $0.kind != "checkpoint.other_size"
    }
    return out
  }

  func headLies(_ k: UInt64, _ rng: inout SplitMix64) -> [Lie] {
    let scenario = Scenario.head(kept: k)
    let at = "kept \(k) head \(g.head)"
    var out = [Lie]()
    func lie(
      _ kind: String, _ pos: String, _ code: AnswerRefusal.Code, _ r: @escaping LyingProxy.Rewrite
    ) {
      out.append(Lie(kind: kind, position: pos, scenario: scenario, expected: code, rewrite: r))
    }
    let older = UInt64(1 + rng.below(Int(k) - 1))
    let olderLine = g.checkpointLines[older]!
    lie(
      "head.rolled_back", "\(at) served \(older)", .rollback,
      { v, f, line in v == "CHECKPOINT.GET" && f["size"] == nil ? olderLine : line })
    let i = rng.below(Int(k))
    let fork = forked(k, at: i)
    let sameSize = checkpointLine(g.signer, size: k, root: fork.root, chain: fork.chain)
    lie(
      "head.forked_same_size", "\(at) leaf \(i)", .fork,
      { v, f, line in v == "CHECKPOINT.GET" && f["size"] == nil ? sameSize : line })
    let c = genuine(k)
    var chainOnly = c.chain!
    chainOnly = SHA256Hasher().hash(chainOnly.bytes + Array("other history".utf8))
    let chainLine = checkpointLine(g.signer, size: k, root: c.root, chain: chainOnly)
    lie(
      "head.forked_chain_only", at, .fork,
      { v, f, line in v == "CHECKPOINT.GET" && f["size"] == nil ? chainLine : line })
    let longFork = forked(g.head, at: i)
    let longLine = checkpointLine(
      g.signer, size: g.head, root: longFork.root, chain: longFork.chain)
    lie(
      "head.forked_extension", "\(at) leaf \(i)", .inconsistent,
      { v, f, line in
        if v == "CHECKPOINT.GET" && f["size"] == nil { return longLine }
        if v == "PROOF.CONSISTENCY" {
          return editOK(line) { $0[set: "root_to"] = .string(longFork.root.hex) }
        }
        return line
      })
    let j = rng.below(max(1, pathCount(g.consistencyLines[[k, g.head]] ?? "OK {}")))
    let d = rng.below(64)
    lie(
      "head.consistency_path_altered", "\(at) hash \(j)", .inconsistent,
      { v, _, line in
        v == "PROOF.CONSISTENCY"
          ? editOK(line) { o in
            var p = o["path"]!.arrayValue!
            p[j] = .string(flipHex(p[j].stringValue!, d))
            o[set: "path"] = .array(p)
          } : line
      })
    return out
  }
}

extension Scenario {
  var isInclusion: Bool {
    if case .inclusion = self { return true }
    return false
  }
}

extension Genuine {
  /// A prefetched inclusion answer (see `prefetchNeighbours`).
  func inclusionLinesSync(_ seq: UInt64, _ size: UInt64) -> String {
    inclusionLines[[seq, size]] ?? "OK {}"
  }

  /// Fetches the inclusion and consistency answers the lies are built from.
  func prefetchForLies() async throws {
    let n = head
    for (s, size): (UInt64, UInt64) in [
      (1, n), (2, n), (5, 8), (12, 20), (17, 33), (n / 2, n), (n - 1, n), (n, n), (7, 7),
    ] {
      _ = try await inclusionLine(s, size)
      if s < size { _ = try await inclusionLine(s + 1, size) }
      if s > 1 { _ = try await inclusionLine(s - 1, size) }
    }
    for (a, b): (UInt64, UInt64) in [
      (1, n), (3, 8), (8, 16), (5, n), (16, n), (n - 1, n), (7, 13), (20, 33), (2, 3),
    ] {
      _ = try await consistencyLine(a, b)
    }
    for k: UInt64 in [2, 3, 8, 15, 20, 27, n - 1] { _ = try await consistencyLine(k, n) }
  }
}

/// One altered copy of the genuine export, and the first difference a verifier must name.
struct ExportLie {
  var kind: String
  var position: String
  var dir: String
  /// The first difference a verifier may name (kind and seq), or, for hashes the liar
  /// recomputed, `hashes_altered` with a seq range that holds `seq`.
  var expectedKinds: Set<String>
  var seq: UInt64
  /// When a record is missing or extra (past the signed tree, or with hashes recomputed
  /// for one record more or less), a verifier may stop at the count instead: no first
  /// difference, but a `count` problem (with `sequence` ones where the seqs skip).
  var countSuffices = false

  var expected: String {
    "\(expectedKinds.sorted().joined(separator: "|")) at seq \(seq)"
      + (countSuffices ? " or a count problem" : "")
  }

  func names(kind: String?, seq s: UInt64?, range: ClosedRange<UInt64>?, problems: [String])
    -> Bool
  {
    if countSuffices && kind == nil {
      return problems.contains("count")
    }
    guard let kind, expectedKinds.contains(kind) else { return false }
    if kind == "hashes_altered" { return range?.contains(seq) ?? false }
    return s == seq
  }
}

enum ExportLies {
  /// Exports the log once (beside the running server), then writes every altered copy: each
  /// event changed, removed, swapped with the next, or duplicated, with the `hashes` file as
  /// exported or recomputed by the liar from the altered events.
  static func make(_ server: TallydProcess, _ g: Genuine, _ rng: inout SplitMix64) async throws
    -> [ExportLie]
  {
    let base = g.scratch + "/export"
    let r = try await runTally(["--data", server.dataDir, "export", "--out", base])
    try #require(r.status == 0, "\(r)")
    let files = try FileManager.default.contentsOfDirectory(atPath: base)
    var contents = [String: Data]()
    for f in files { contents[f] = try Data(contentsOf: URL(fileURLWithPath: base + "/" + f)) }
    let records = g.events
    try #require(records.count == Int(g.head))
    var out = [ExportLie]()
    var serial = 0
    func write(
      _ kind: String, _ pos: String, _ events: [[UInt8]], rehash: Bool, _ k: String,
      _ seq: UInt64
    ) throws {
      serial += 1
      let dir = g.scratch + "/x\(serial)"
      try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: false)
      for (name, data) in contents {
        var d = data
        if name == "events" {
          d = Data(
            events.flatMap { e in withUnsafeBytes(of: UInt32(e.count).bigEndian, Array.init) + e })
        } else if name == "hashes" && rehash {
          let h = SHA256Hasher()
          var chain = Hash32.zero
          var bytes = [UInt8]()
          for e in events {
            let leaf = h.leaf(e)
            chain = h.hash(chain.bytes + leaf.bytes)
            bytes += leaf.bytes + chain.bytes
          }
          d = Data(bytes)
        }
        try d.write(to: URL(fileURLWithPath: dir + "/" + name))
      }
      var kinds: Set<String> = rehash ? ["hashes_altered"] : [k]
      // A duplicate of the second-to-last event takes the last leaf's place: nothing signed
      // follows it, so "inserted" cannot be told from "altered" there.
      if k == "inserted" && !rehash && seq == g.head { kinds.insert("altered") }
      // Past the signed tree, the extra record is what follows its last leaf.
      if k == "inserted" && seq > g.head { kinds.insert("inserted") }
      out.append(
        ExportLie(
          kind: kind + (rehash ? " (hashes recomputed)" : ""), position: pos, dir: dir,
          expectedKinds: kinds, seq: seq,
          countSuffices: (k == "inserted" && seq > g.head)
            || (rehash && (k == "inserted" || k == "missing"))))
    }
    for rehash in [false, true] {
      for i in 0..<records.count {
        let seq = UInt64(i + 1)
        var changed = records
        // A bit of the timestamp's low byte: the event still decodes, in order.
        changed[i][17] ^= UInt8(1) << UInt8(rng.below(3))
        try write("event_changed", "seq \(seq)", changed, rehash: rehash, "altered", seq)
        var removed = records
        removed.remove(at: i)
        try write("event_removed", "seq \(seq)", removed, rehash: rehash, "missing", seq)
        if i + 1 < records.count {
          var swapped = records
          swapped.swapAt(i, i + 1)
          try write("events_reordered", "seq \(seq)", swapped, rehash: rehash, "reordered", seq)
        }
        var doubled = records
        doubled.insert(records[i], at: i + 1)
        try write("event_duplicated", "seq \(seq)", doubled, rehash: rehash, "inserted", seq + 1)
      }
    }
    return out
  }
}
