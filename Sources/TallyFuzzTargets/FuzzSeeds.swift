import TallyCore
import TallyCrypto
@_spi(Fuzzing) import TallyStore

/// Seed inputs that only real encoders and keys can make: journal segments with correct
/// hashes, notes and checkpoints signed by the fuzz key, AUTH lines with the right MAC, an
/// export manifest. `tools/fuzz --seed` writes them next to the seeds taken from fixtures.
public enum FuzzSeeds {
  /// `events` are encoded events (the golden vectors of docs/FORMAT.md), used for journals.
  public static func seeds(for target: String, events: [[UInt8]]) -> [[UInt8]] {
    switch target {
    case "journal": journal(events)
    case "note": note()
    case "checkpoint": checkpoint()
    case "manifest": manifest()
    case "auth": auth()
    default: []
    }
  }

  static func journal(_ events: [[UInt8]]) -> [[UInt8]] {
    var records = [UInt8]()
    var chain = Hash32.zero
    var seq: UInt64 = 1
    var prefixes = [[UInt8]]()
    for e in events where !e.isEmpty {
      let f = Journal.frameBytes(seq: seq, syncedThrough: seq - 1, chainBefore: chain, event: e)
      records += f.bytes
      chain = f.chain
      seq += 1
      prefixes.append(records)
    }
    guard let all = prefixes.last else { return [] }
    let one = prefixes[0]
    let whole = Journal.firstSegmentHeader(capacityBytes: 4096 + all.count + 256) + all
      + [UInt8](repeating: 0, count: 256)
    var torn = all
    torn.removeLast(20)
    var flipped = all
    flipped[all.count / 2] ^= 0x01
    return [one, all, whole, torn, flipped, one + [UInt8](repeating: 0, count: 96), []]
  }

  static func signer() -> NoteSigner { AuditTargets.signer }

  static func note() -> [[UInt8]] {
    let s = signer()
    var out = [[UInt8]]()
    for text in ["hello\n", "If you think cryptography is the answer\nto your problem\n"] {
      if let n = s.sign(text) { out.append(Array(n.utf8)) }
    }
    // A signing key, then a note under it.
    if let n = s.sign("key first\n") { out.append(Array((s.skey + "\n" + n).utf8)) }
    out.append(Array((s.vkey + "\n" + (s.sign("x\n") ?? "")).utf8))
    return out
  }

  static func checkpoint() -> [[UInt8]] {
    let s = signer()
    let root = SHA256Hasher().hash(Array("root".utf8))
    var out = [[UInt8]]()
    for (size, ext) in [(UInt64(0), [String]()), (16, ["chain " + root.hex]), (7, ["other x"])] {
      let body = Note.checkpoint(origin: s.name, size: size, root: root, extensions: ext)
      if let n = s.sign(body) { out.append(Array(n.utf8)) }
      out.append(Array(body.utf8))
    }
    return out
  }

  static func manifest() -> [[UInt8]] {
    [
      ExportManifest(origin: "tally.example/ledger", from: 1, to: 16, events: 16, context: 0),
      ExportManifest(origin: "o", from: 5, to: 4, events: 0, context: 3),
      ExportManifest(origin: "x y", from: 1, to: UInt64.max, events: 9, context: 1),
    ].map { Array($0.text.utf8) }
  }

  static func auth() -> [[UInt8]] {
    func mac(_ role: String) -> String {
      Secrets.hmacSHA256(
        key: Array("secret-\(role)".utf8), message: Array(ProtocolTargets.authNonce.utf8)
      ).hex
    }
    func authLine(_ key: String, _ mac: String) -> String {
      "AUTH {\"key\":\"\(key)\",\"mac\":\"\(mac)\"}"
    }
    let sessions: [[String]] = [
      ["PING", authLine("key_admin", mac("admin")), "KEY.LIST", "LOG.HEAD", "QUIT"],
      [authLine("key_service", mac("service").uppercased()), "KEY.CREATE {\"role\":\"ops\"}",
       "BALANCE.GET {\"account\":\"cash\"}", authLine("key_service", mac("service"))],
      [authLine("key_ops", "00"), authLine("key_ops", mac("admin")), "PING",
       authLine("key_ops", mac("ops"))],
      ["LOG.HEAD", authLine("key_limited", "00"), "PING"],
      [authLine("key_auditor", mac("auditor")), "ENTRY.POST {\"id\":\"e1\"}", "CHECKPOINT.GET"],
    ]
    return sessions.map { Array(($0.joined(separator: "\n") + "\n").utf8) }
  }
}
