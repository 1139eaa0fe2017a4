import Foundation
import Subprocess
import Testing

#if canImport(System)
  import System
#else
  import SystemPackage
#endif

/// The independent Python verifier (`tools/verify-py/`, written from docs/FORMAT.md alone)
/// against exports and proofs made by the Swift code: it must accept them and agree with
/// `tally verify --export` on every figure, and reject tampered copies.
@Suite("Python verifier against Swift exports", .serialized)
struct PythonVerifierTests {
  /// `tools/verify-py/run`, found from this file's path (the package root is two levels up).
  static let script: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.appendingPathComponent("tools/verify-py/run").path
  }()

  func python(_ arguments: [String]) async throws -> CLIResult {
    let limit = 64 << 20
    let r = try await run(
      .path(FilePath("/bin/bash")), arguments: Arguments([Self.script] + arguments),
      output: .string(limit: limit), error: .string(limit: limit))
    return CLIResult(
      arguments: arguments, status: exitStatus(r.terminationStatus),
      stdout: r.standardOutput, stderr: r.standardError)
  }

  /// A ledger with two currencies, a multi-currency entry, holds captured in part and
  /// released, and a reversal: every event type the verifier's books look at.
  func ledger(_ s: Scratch) async throws {
    try await s.ok("init")
    try await s.ok("partner", "create", "acme", "--name", "Acme")
    try await s.ok("account", "open", "cash", "--currency", "EUR")
    try await s.ok("account", "open", "usd-cash", "--currency", "USD")
    try await s.ok("account", "open", "acme:wallet", "--currency", "EUR", "--normal", "credit")
    try await s.ok("account", "open", "acme:usd", "--currency", "USD", "--normal", "credit")
    for i in 1...30 {
      try await s.ok(
        "post", "--id", "e-\(i)", "--debit", "cash=\(i).25", "--credit", "acme:wallet=\(i).25")
    }
    try await s.ok(
      "post", "--id", "fx-1", "--debit", "cash=9.00", "--credit", "acme:wallet=9.00",
      "--debit", "usd-cash=10.00", "--credit", "acme:usd=10.00")
    try await s.ok(
      "hold", "place", "--id", "h-1", "--debit", "acme:wallet=5.00", "--credit", "cash=5.00")
    try await s.ok(
      "hold", "place", "--id", "h-2", "--debit", "acme:wallet=3.00", "--credit", "cash=3.00")
    try await s.ok("hold", "capture", "h-1", "--amount", "2.00")
    try await s.ok("hold", "release", "h-2")
    try await s.ok("reverse", "e-3")
  }

  @Test("accepts a full and a partial export and agrees with tally verify --export")
  func acceptsExports() async throws {
    try await withScratch { s in
      try await ledger(s)
      let vkey = try await s.ok("vkey").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
      for (name, range) in [
        ("full", [String]()), ("part", ["--from-seq", "20", "--to-seq", "38"]),
        // After both holds were placed: the context carries the hold_placed event of the
        // capture in range, and the accounts of that hold's legs.
        ("late", ["--from-seq", "40"]),
      ] {
        let dir = s.file(name)
        let export = try await s.tally(["export", "--out", dir] + range)
        try #require(export.status == 0, "\(export)")
        let swift = try await runTally(["--json", "verify", "--export", dir, "--vkey", vkey])
        #expect(swift.status == 0, "\(swift)")
        let py = try await python(["export", dir, "--vkey", vkey, "--json"])
        #expect(py.status == 0, "\(py)")
        let a = try swift.object()
        let b = try py.object()
        #expect(b["ok"] as? Bool == true)
        for key in ["events", "from", "to"] {
          #expect("\(a[key] ?? "")" == "\(b[key] ?? "-")", "\(name) \(key)")
        }
        for key in ["root", "chain"] {
          #expect(a[key] as? String == b[key] as? String, "\(name) \(key)")
        }
        let totals = { (o: [String: Any]) -> [String] in
          ((o["totals"] as? [[String: Any]]) ?? []).map {
            "\($0["currency"] ?? "") \($0["debits"] ?? "") \($0["credits"] ?? "")"
          }.sorted()
        }
        #expect(totals(a) == totals(b), "\(name) totals")
        #expect(!totals(b).isEmpty)
        if name == "late" {
          let manifest = try String(contentsOfFile: dir + "/manifest", encoding: .utf8)
          #expect(!manifest.contains("\ncontext 0\n"), "\(manifest)")
        }
      }
    }
  }

  @Test("rejects tampered copies: an altered event, a removed one, a forged checkpoint")
  func rejectsTampering() async throws {
    try await withScratch { s in
      try await ledger(s)
      let vkey = try await s.ok("vkey").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
      let dir = s.file("export")
      try await s.ok("export", "--out", dir)
      let events = try Data(contentsOf: URL(fileURLWithPath: dir + "/events"))
      var records = [Data]()
      var o = 0
      while o < events.count {
        let n = events[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) }
        records.append(events[(o + 4)..<(o + 4 + n)])
        o += 4 + n
      }
      func copy(_ name: String, _ edit: (inout [Data]) -> Void) throws -> String {
        let to = s.file(name)
        try FileManager.default.copyItem(atPath: dir, toPath: to)
        var r = records
        edit(&r)
        var out = Data()
        for rec in r {
          out.append(contentsOf: withUnsafeBytes(of: UInt32(rec.count).bigEndian, Array.init))
          out.append(rec)
        }
        try out.write(to: URL(fileURLWithPath: to + "/events"))
        return to
      }
      // seq 12 is entry e-6. Its bytes end with the second leg's i128 amount, then three
      // absent optionals (ref, value date, reversal of) and an empty metadata count: 5 bytes.
      // Change the amount's last byte: the event still decodes, but differs from the signed one.
      let altered = try copy("altered") { r in
        var e = Data(r[11])
        e[e.count - 6] ^= 0x01
        r[11] = e
      }
      let removed = try copy("removed") { r in r.remove(at: 11) }
      for (what, d, kind) in [("altered", altered, "altered"), ("removed", removed, "missing")] {
        let py = try await python(["export", d, "--vkey", vkey, "--json"])
        #expect(py.status == 1, "\(what): \(py)")
        let o = try py.object()
        #expect(o["ok"] as? Bool == false, "\(what)")
        let first = o["first_difference"] as? [String: Any]
        #expect("\(first?["seq"] ?? "")" == "12", "\(what): \(o)")
        #expect(first?["kind"] as? String == kind, "\(what): \(o)")
      }
      // The altered amount unbalances e-6: a double-entry problem at its seq, no decode one.
      let kinds =
        ((try await python(["export", altered, "--vkey", vkey, "--json"]).object())[
          "problems"] as? [[String: Any]] ?? []).map { "\($0["kind"] ?? "") \($0["seq"] ?? "")" }
      #expect(kinds.contains("double_entry 12") && !kinds.contains("decode 12"), "\(kinds)")
      // A checkpoint that claims another size no longer verifies.
      let forged = s.file("forged")
      try FileManager.default.copyItem(atPath: dir, toPath: forged)
      let note = try String(contentsOfFile: forged + "/checkpoint", encoding: .utf8)
      var lines = note.components(separatedBy: "\n")
      lines[1] = String(Int(lines[1])! + 1)
      try lines.joined(separator: "\n").write(
        toFile: forged + "/checkpoint", atomically: true, encoding: .utf8)
      let py = try await python(["export", forged, "--vkey", vkey])
      #expect(py.status == 1, "\(py)")
      // A key of another ledger does not verify the genuine export.
      try await withScratch { other in
        try await other.ok("init")
        let foreign = try await other.ok("vkey").stdout.trimmingCharacters(
          in: .whitespacesAndNewlines)
        let r = try await python(["export", dir, "--vkey", foreign])
        #expect(r.status == 1, "\(r)")
      }
    }
  }

  @Test("checks the CLI's inclusion and consistency proofs, and rejects a wrong path")
  func checksProofs() async throws {
    try await withScratch { s in
      try await ledger(s)
      let vkey = try await s.ok("vkey").stdout.trimmingCharacters(in: .whitespacesAndNewlines)
      try await s.ok("checkpoint", "--size", "20").stdout.write(
        toFile: s.file("cp20"), atomically: true, encoding: .utf8)
      try await s.ok("checkpoint", "--size", "37").stdout.write(
        toFile: s.file("cp37"), atomically: true, encoding: .utf8)
      let incl = try await s.ok("proof", "inclusion", "--seq", "13", "--size", "37", "--json")
      try incl.stdout.write(toFile: s.file("incl.json"), atomically: true, encoding: .utf8)
      let log = try await s.okJSON("log", "--from-seq", "13", "--limit", "1", "--hex")
      let bytes = try #require(log["bytes"] as? String, "\(log)")
      let ok = try await python([
        "inclusion", "--proof", s.file("incl.json"), "--vkey", vkey, "--checkpoint",
        s.file("cp37"), "--event-hex", bytes,
      ])
      #expect(ok.status == 0, "\(ok)")
      let cons = try await s.ok("proof", "consistency", "--from", "20", "--to", "37", "--json")
      try cons.stdout.write(toFile: s.file("cons.json"), atomically: true, encoding: .utf8)
      let ok2 = try await python([
        "consistency", "--proof", s.file("cons.json"), "--vkey", vkey, "--old", s.file("cp20"),
        "--new", s.file("cp37"),
      ])
      #expect(ok2.status == 0, "\(ok2)")
      // One hash of the path changed: both proofs fail.
      for file in ["incl.json", "cons.json"] {
        var text = try String(contentsOfFile: s.file(file), encoding: .utf8)
        let range = try #require(text.range(of: #""path":[""#))
        let i = text.index(range.upperBound, offsetBy: 0)
        let c = text[i] == "0" ? "1" : "0"
        text.replaceSubrange(i...i, with: c)
        try text.write(toFile: s.file("bad-" + file), atomically: true, encoding: .utf8)
      }
      let bad = try await python(["inclusion", "--proof", s.file("bad-incl.json")])
      #expect(bad.status == 1, "\(bad)")
      let bad2 = try await python(["consistency", "--proof", s.file("bad-cons.json")])
      #expect(bad2.status == 1, "\(bad2)")
    }
  }
}
