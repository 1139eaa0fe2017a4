import Foundation
import TallyAudit
import TallyClient
import TallyCore
import TallyCrypto
import TallyProtocol
import TallyTestSupport
import Testing

/// The genuine log, its checkpoints and proofs, read once from the real server, and the
/// signing key (a lying server that holds it can sign a forked log).
final class Genuine: @unchecked Sendable {
  let head: UInt64
  let events: [[UInt8]]
  let leaves: [Hash32]
  let vkey: String
  let signer: NoteSigner
  let scratch: String
  /// `CHECKPOINT.GET {"size":s}` answers and their notes, for every size.
  var checkpointLines = [UInt64: String]()
  var notes = [UInt64: String]()
  var logLines = [UInt64: String]()
  var inclusionLines = [[UInt64]: String]()
  var consistencyLines = [[UInt64]: String]()
  private let conn: LineConn

  private init(head: UInt64, events: [[UInt8]], signer: NoteSigner, conn: LineConn) throws {
    self.head = head
    self.events = events
    let h = SHA256Hasher()
    leaves = events.map { h.leaf($0) }
    self.signer = signer
    vkey = signer.vkey
    self.conn = conn
    scratch = try makeTempDir("tally-lying")
  }

  static func load(_ server: TallydProcess, key: String, secret: String) async throws -> Genuine {
    let conn = try await server.connect(key: key, secret: secret)
    let head = UInt64(try await conn.head().seq)
    let log = try await conn.ok("LOG.READ {\"limit\":10000}")
    let events = try (log.body["events"] as? [[String: Any]] ?? []).map { e in
      try #require([UInt8](hex: e["bytes"] as? String ?? ""))
    }
    try #require(events.count == Int(head))
    let skey = try String(contentsOfFile: server.dataDir + "/signing.key", encoding: .utf8)
    let signer = try #require(NoteSigner(skey: skey.trimmingCharacters(in: .newlines)))
    let g = try Genuine(head: head, events: events, signer: signer, conn: conn)
    for s in 1...head {
      let r = try await conn.ok("CHECKPOINT.GET {\"size\":\(s)}")
      g.checkpointLines[s] = r.raw
      g.notes[s] = try r.str("note")
      g.logLines[s] = try await conn.ok("LOG.READ {\"from_seq\":\(s),\"limit\":1}").raw
    }
    return g
  }

  func inclusionLine(_ seq: UInt64, _ size: UInt64) async throws -> String {
    if let l = inclusionLines[[seq, size]] { return l }
    let l = try await conn.ok("PROOF.INCLUSION {\"seq\":\(seq),\"size\":\(size)}").raw
    inclusionLines[[seq, size]] = l
    return l
  }

  func consistencyLine(_ from: UInt64, _ to: UInt64) async throws -> String {
    if let l = consistencyLines[[from, to]] { return l }
    let l = try await conn.ok("PROOF.CONSISTENCY {\"from\":\(from),\"to\":\(to)}").raw
    consistencyLines[[from, to]] = l
    return l
  }

  func file(_ name: String, _ text: String) -> String {
    let path = scratch + "/" + name
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
  }

  func signedCheckpoint(_ size: UInt64) -> SignedCheckpoint {
    try! SignedCheckpoint.open(note: notes[size]!, vkey: vkey).get()
  }

  /// What the Swift auditor concludes from the conversation `scenario` through the proxy:
  /// nil when everything verified.
  func audit(_ scenario: Scenario, port: UInt16, key: (key: String, secret: String)) async
    -> AnswerRefusal?
  {
    let client: TallyClient
    do {
      client = try await TallyClient.connect(to: Endpoint(host: "127.0.0.1", port: Int(port)))
      _ = try await client.authenticate(key: key.key, secret: key.secret)
    } catch {
      return AnswerRefusal(.malformed, "test: cannot connect through the proxy: \(error)")
    }
    var kept = [SignedCheckpoint]()
    if case .head(let k) = scenario { kept = [signedCheckpoint(k)] }
    let auditor = Auditor(client: client, vkeys: [vkey], kept: kept)
    defer { Task { await client.close() } }
    do {
      switch scenario {
      case .inclusion(let s, let n): _ = try await auditor.inclusion(seq: s, size: n)
      case .consistency(let a, let b): _ = try await auditor.consistency(from: a, to: b)
      case .head: _ = try await auditor.checkpoint(size: nil)
      }
      return nil
    } catch {
      if case .refused(let r) = error { return r }
      return AnswerRefusal(.malformed, "test: the exchange failed: \(error)")
    }
  }

  /// The same conversation through the `tally` executable.
  func cli(_ scenario: Scenario, port: UInt16, key: (key: String, secret: String)) async throws
    -> (status: Int32, stdout: String, stderr: String)
  {
    var args = [
      "--server", "127.0.0.1:\(port)", "--key", key.key, "--secret", key.secret, "--json",
    ]
    switch scenario {
    case .inclusion(let s, let n):
      args += ["proof", "inclusion", "--seq", "\(s)", "--size", "\(n)", "--vkey", vkey]
    case .consistency(let a, let b):
      args += ["proof", "consistency", "--from", "\(a)", "--to", "\(b)", "--vkey", vkey]
    case .head(let k):
      args += ["checkpoint", "--vkey", vkey, "--kept", file("kept-\(k).note", notes[k]!)]
    }
    return try await runTally(args)
  }

  /// The verify-py command for `lie` (the files the auditor would have saved from the
  /// server's altered answers) and what its JSON answer must say.
  func python(_ lie: Lie) throws -> ([String], (Int, [String: Any]) -> Bool) {
    let id = UUID().uuidString.prefix(8)
    func served(_ verb: String, _ fields: [String: UInt64], _ line: String) -> String {
      lie.rewrite(verb, fields, line)
    }
    var args: [String]
    switch lie.scenario {
    case .inclusion(let s, let n):
      let cp = try Self.note(served("CHECKPOINT.GET", ["size": n], checkpointLines[n]!))
      let log = Reply(served("LOG.READ", ["from_seq": s, "limit": 1], logLines[s]!))
      let bytes = ((log.body["events"] as? [[String: Any]])?.first?["bytes"] as? String) ?? ""
      let proof = served("PROOF.INCLUSION", ["seq": s, "size": n], inclusionLines[[s, n]]!)
      args = [
        "inclusion", "--proof", file("incl-\(id).json", String(proof.dropFirst(3))), "--vkey",
        vkey, "--checkpoint", file("cp-\(id).note", cp), "--event-hex", bytes, "--seq", "\(s)",
      ]
    case .consistency(let a, let b):
      let old = try Self.note(served("CHECKPOINT.GET", ["size": a], checkpointLines[a]!))
      let new = try Self.note(served("CHECKPOINT.GET", ["size": b], checkpointLines[b]!))
      let proof = served("PROOF.CONSISTENCY", ["from": a, "to": b], consistencyLines[[a, b]]!)
      args = [
        "consistency", "--proof", file("cons-\(id).json", String(proof.dropFirst(3))), "--vkey",
        vkey, "--old", file("old-\(id).note", old), "--new", file("new-\(id).note", new),
      ]
    case .head(let k):
      let new = try Self.note(served("CHECKPOINT.GET", [:], checkpointLines[head]!))
      let body = Note.split(new).map(\.text) ?? ""
      let c = SignedCheckpoint.parse(body: body, note: new)
      let size = (try? c.get().size) ?? head
      var proof: String
      if size > k {
        proof = String(
          served("PROOF.CONSISTENCY", ["from": k, "to": size], consistencyLines[[k, head]]!)
            .dropFirst(3))
      } else {
        // The server cannot prove anything here; what it would have to show.
        let rootTo = (try? c.get().root.hex) ?? Hash32.zero.hex
        proof =
          "{\"from\":\(k),\"to\":\(size),\"path\":[],"
          + "\"root_from\":\"\(signedCheckpoint(k).root.hex)\",\"root_to\":\"\(rootTo)\"}"
      }
      args = [
        "consistency", "--proof", file("head-\(id).json", proof), "--vkey", vkey, "--old",
        file("kept-\(id).note", notes[k]!), "--new", file("served-\(id).note", new),
      ]
    }
    let allowed = Self.pythonKinds[lie.expected] ?? []
    return (
      args + ["--json"],
      { status, o in
        let kinds = (o["problems"] as? [[String: Any]] ?? []).compactMap { $0["kind"] as? String }
        return status == 1 && o["ok"] as? Bool == false && !kinds.isEmpty
          && kinds.allSatisfy { allowed.contains($0) }
      }
    )
  }

  /// The problem kinds of verify-py that name each refusal of the Swift auditor.
  static let pythonKinds: [AnswerRefusal.Code: Set<String>] = [
    .signature: ["signature", "checkpoint"],
    .wrongSize: ["checkpoint", "inclusion", "consistency"],
    .answerMismatch: ["leaf", "checkpoint", "inclusion", "consistency", "event"],
    .wrongEvent: ["event", "leaf", "decode", "inclusion"],
    .inclusion: ["inclusion"],
    .rollback: ["consistency"],
    .fork: ["fork", "consistency"],
    .inconsistent: ["consistency", "checkpoint"],
  ]

  /// The note of a `CHECKPOINT.GET` answer line.
  static func note(_ line: String) throws -> String {
    try Reply(line).str("note")
  }
}

/// verify-py's own `main`, many cases in one process (tools/verify-py/batch.py).
enum Python {
  static let script: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("tools/verify-py/batch.py").path
  }()

  static func batch(_ cases: [[String]]) async throws -> [(Int, String)] {
    let input = try makeTempDir("tally-lying-py") + "/cases.jsonl"
    let lines = try cases.map {
      String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self)
    }
    try (lines.joined(separator: "\n") + "\n").write(
      toFile: input, atomically: true, encoding: .utf8)
    let r = try await run("/usr/bin/env", ["python3", script], stdinPath: input)
    return r.split(separator: "\n").map { line in
      let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] ?? [:]
      return ((o["status"] as? Int) ?? -1, (o["stdout"] as? String) ?? "")
    }
  }

  private static func run(_ exe: String, _ args: [String], stdinPath: String) async throws
    -> String
  {
    try await offPool {
      let p = Process()
      p.executableURL = URL(fileURLWithPath: exe)
      p.arguments = args
      p.standardInput = FileHandle(forReadingAtPath: stdinPath)
      let out = Pipe()
      p.standardOutput = out
      try p.run()
      let data = out.fileHandleForReading.readDataToEndOfFile()
      p.waitUntilExit()
      return String(decoding: data, as: UTF8.self)
    }
  }
}

// MARK: - Editing answers

/// `OK` + the object of `line` after `edit`.
func editOK(_ line: String, _ edit: (inout JSONObject) -> Void) -> String {
  guard line.hasPrefix("OK "), var o = try? JSONParser.parse(String(line.dropFirst(3))).objectValue
  else { return line }
  edit(&o)
  return "OK " + JSONWriter.serialize(.object(o))
}

extension JSONObject {
  subscript(set key: String) -> JSONValue? {
    get { self[key] }
    set {
      guard let newValue else {
        members.removeAll { $0.key == key }
        return
      }
      if let i = members.firstIndex(where: { $0.key == key }) {
        members[i].value = newValue
      } else {
        members.append((key, newValue))
      }
    }
  }
}

/// `hex` with the digit at `index` changed.
func flipHex(_ hex: String, _ index: Int) -> String {
  var chars = Array(hex)
  let i = index % chars.count
  chars[i] = chars[i] == "0" ? "1" : "0"
  return String(chars)
}

/// RFC 9162 Merkle tree hash of `leaves`.
func mth(_ leaves: ArraySlice<Hash32>) -> Hash32 {
  let h = SHA256Hasher()
  if leaves.isEmpty { return h.hash() }
  if leaves.count == 1 { return leaves.first! }
  var k = 1
  while k * 2 < leaves.count { k *= 2 }
  let mid = leaves.startIndex + k
  return Merkle.node(h, mth(leaves[..<mid]), mth(leaves[mid...]))
}

/// The chain after `leaves`.
func chainHash(_ leaves: ArraySlice<Hash32>) -> Hash32 {
  let h = SHA256Hasher()
  var c = Hash32.zero
  for l in leaves { c = h.hash(c.bytes + l.bytes) }
  return c
}
