import TallyAudit
import TallyCore
import TallyCrypto

/// What an auditor reads: signed notes, signed checkpoints and export manifests.
enum AuditTargets {
  /// The signer whose notes and checkpoints the seeds carry (a fixed seed: reproducible).
  static let signer = NoteSigner(name: "fuzz.tally.example", seed: Array(repeating: 7, count: 32))!
  /// The published C2SP signed-note test key (Tests/TallyCoreTests/Vectors/note.json).
  static let vectorsVKey = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"

  /// The note (the input as text) under the fuzz key and the C2SP vectors' key; its first
  /// line also as a signing key and as a verifier key for the rest.
  @Sendable static func note(_ data: [UInt8]) {
    let text = String(decoding: data, as: UTF8.self)
    for vkey in [signer.vkey, vectorsVKey] {
      if let signed = Note.verify(text, vkey: vkey) {
        FuzzCheck.expect(Note.split(text)?.text == signed, "verified text is not the note's")
      }
    }
    if let (body, _) = Note.split(text) {
      FuzzCheck.expect(text.utf8.starts(with: body.utf8), "split text is not a prefix")
    }
    let firstLine = String(text.prefix { $0 != "\n" })
    let rest = String(text.drop { $0 != "\n" }.dropFirst())
    if let key = NoteSigner(skey: firstLine) {
      FuzzCheck.expect(key.skey == firstLine, "a parsed signing key re-encodes differently")
      if let signed = key.sign(rest.hasSuffix("\n") ? rest : rest + "\n") {
        FuzzCheck.expect(Note.verify(signed, vkey: key.vkey) != nil, "own note fails to verify")
      }
    }
    _ = VerifierKey.name(firstLine)
    _ = Note.verify(rest, vkey: firstLine)
  }

  /// A signed checkpoint under the fuzz key, and its body parsed on its own.
  @Sendable static func checkpoint(_ data: [UInt8]) {
    let text = String(decoding: data, as: UTF8.self)
    if case .success(let c) = SignedCheckpoint.open(note: text, vkeys: [signer.vkey]) {
      FuzzCheck.expect(c.origin == signer.name, "a checkpoint of another origin opened")
    }
    if case .success(let c) = SignedCheckpoint.parse(body: text, note: text) {
      FuzzCheck.expect(text.hasPrefix(c.origin + "\n"), "origin is not the first line")
    }
  }

  /// An export's manifest: parses only when it prints back byte for byte.
  @Sendable static func manifest(_ data: [UInt8]) {
    if let m = ExportManifest(parsing: data) {
      FuzzCheck.expect(Array(m.text.utf8) == data, "a manifest parsed but prints differently")
    }
  }
}
