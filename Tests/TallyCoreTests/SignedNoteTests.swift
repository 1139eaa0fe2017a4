import Foundation
import TallyCore
import TallyCrypto
import Testing

/// C2SP signed notes and tlog checkpoints against the public vectors
/// (Tests/TallyCoreTests/Vectors/note.json): keys parse and re-encode, signing reproduces the
/// published notes byte for byte, and a verifier accepts exactly the valid ones.
@Suite("Signed notes (C2SP)")
struct SignedNoteTests {
  struct Vectors: Decodable {
    struct NoteCase: Decodable {
      var name: String
      var note: String
      var valid: Bool
    }
    var key_hash_hex: String
    var key_name: String
    var notes: [NoteCase]
    var skey: String
    var vkey: String
  }

  static let vectors: Vectors = {
    let dir = (#filePath as NSString).deletingLastPathComponent
    let data = FileManager.default.contents(atPath: dir + "/Vectors/note.json")!
    return try! JSONDecoder().decode(Vectors.self, from: data)
  }()

  @Test func theKeysParseAndReEncodeExactly() throws {
    let v = Self.vectors
    let signer = try #require(NoteSigner(skey: v.skey))
    #expect(signer.name == v.key_name)
    #expect(signer.skey == v.skey)
    #expect(signer.vkey == v.vkey)
    #expect(v.vkey.split(separator: "+")[1] == Substring(v.key_hash_hex))
    // A key whose hash does not match its name and key is refused.
    #expect(NoteSigner(skey: v.skey.replacingOccurrences(of: "c74f20a3", with: "c74f20a4")) == nil)
  }

  @Test func signingReproducesThePublishedNotesByteForByte() throws {
    let v = Self.vectors
    let signer = try #require(NoteSigner(skey: v.skey))
    for c in v.notes where c.valid {
      let end = try #require(c.note.range(of: "\n\n", options: .backwards)).lowerBound
      let text = String(c.note[..<end]) + "\n"
      #expect(signer.sign(text) == c.note, "\(c.name)")
    }
  }

  @Test func theVerifierAcceptsExactlyTheValidNotes() {
    let v = Self.vectors
    for c in v.notes {
      #expect((Note.verify(c.note, vkey: v.vkey) != nil) == c.valid, "\(c.name)")
    }
    // Another key never verifies them.
    let other = NoteSigner.generate(name: v.key_name)!
    for c in v.notes { #expect(Note.verify(c.note, vkey: other.vkey) == nil, "\(c.name)") }
  }

  @Test func aCheckpointOfTheEightLeafTreeIsThePublishedOne() throws {
    let v = Self.vectors
    let signer = try #require(NoteSigner(skey: v.skey))
    let h = SHA256Hasher()
    let leaves = [
      "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
      "606162636465666768696a6b6c6d6e6f",
    ].map { Merkle.leaf(h, [UInt8](hex: $0)!) }
    let root = try Merkle.root(h, size: 8, Merkle.subtrees(h, leaves: leaves))
    let body = Note.checkpoint(
      origin: "example.com/ledger", size: 8, root: root,
      extensions: ["chain " + String(repeating: "0", count: 64)])
    let published = try #require(v.notes.first { $0.name == "checkpoint-size-8" })
    #expect(signer.sign(body) == published.note)
  }

  @Test func base64IsStrict() {
    #expect(Base64.encode([]) == "" && Base64.decode("") == [])
    #expect(Base64.encode(Array("f".utf8)) == "Zg==")
    #expect(Base64.encode(Array("fo".utf8)) == "Zm8=")
    #expect(Base64.encode(Array("foo".utf8)) == "Zm9v")
    #expect(Base64.decode("Zm8=") == Array("fo".utf8))
    for bad in ["Zm8", "Zm=8", "Zh==", "Z===", "Zm9v!A==", "====", "Zm8=Zm8="] {
      #expect(Base64.decode(bad) == nil, "\(bad)")
    }
  }
}
