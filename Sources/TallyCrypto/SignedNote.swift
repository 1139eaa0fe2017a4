import COpenSSL
import TallyCore

/// Ed25519 keys and C2SP signed notes (c2sp.org/signed-note), for checkpoints
/// (c2sp.org/tlog-checkpoint). Keys use the note formats: a verifier key is
/// `name+hash+base64(0x01 ‖ public key)`, a private key
/// `PRIVATE+KEY+name+hash+base64(0x01 ‖ seed)`, where hash is the first 4 bytes of
/// SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key) in hex.
public struct NoteSigner: Sendable {
  public let name: String
  public let seed: [UInt8]
  public let publicKey: [UInt8]

  /// A new random key (the seed from OpenSSL's CSPRNG).
  public static func generate(name: String) -> NoteSigner? {
    NoteSigner(name: name, seed: Secrets.random(32))
  }

  public init?(name: String, seed: [UInt8]) {
    guard seed.count == 32, Note.validName(name), let pub = Ed25519.publicKey(seed: seed) else {
      return nil
    }
    self.name = name
    self.seed = seed
    self.publicKey = pub
  }

  /// Parses `PRIVATE+KEY+name+hash+base64`.
  public init?(skey: String) {
    let parts = skey.split(separator: "+", maxSplits: 4, omittingEmptySubsequences: false)
    guard parts.count == 5, parts[0] == "PRIVATE", parts[1] == "KEY",
      let raw = Base64.decode(String(parts[4])), raw.count == 33, raw[0] == 1
    else { return nil }
    self.init(name: String(parts[2]), seed: Array(raw[1...]))
    guard Note.keyHashHex(name: name, publicKey: publicKey) == parts[3] else { return nil }
  }

  public var skey: String {
    "PRIVATE+KEY+\(name)+\(Note.keyHashHex(name: name, publicKey: publicKey))+"
      + Base64.encode([1] + seed)
  }

  public var vkey: String {
    "\(name)+\(Note.keyHashHex(name: name, publicKey: publicKey))+"
      + Base64.encode([1] + publicKey)
  }

  /// `text` (which must end in a newline) followed by a blank line and this key's signature
  /// line.
  public func sign(_ text: String) -> String? {
    guard text.hasSuffix("\n"), !text.contains("\n\n"),
      let sig = Ed25519.sign(seed: seed, message: Array(text.utf8))
    else { return nil }
    let hash = Note.keyHash(name: name, publicKey: publicKey)
    return text + "\n\u{2014} \(name) " + Base64.encode(hash + sig) + "\n"
  }
}

public enum Note {
  static func validName(_ name: String) -> Bool {
    !name.isEmpty && !name.contains("+")
      && !name.unicodeScalars.contains { $0.properties.isWhitespace }
  }

  static func keyHash(name: String, publicKey: [UInt8]) -> [UInt8] {
    let h = SHA256Hasher().hash(Array(name.utf8) + [0x0A, 0x01] + publicKey)
    return Array(h.bytes.prefix(4))
  }

  static func keyHashHex(name: String, publicKey: [UInt8]) -> String {
    keyHash(name: name, publicKey: publicKey).hex
  }

  /// The signed text of `note` when a signature line by the key `vkey` verifies; nil
  /// otherwise (malformed note or key, no line by that key, bad signature).
  public static func verify(_ note: String, vkey: String) -> String? {
    let parts = vkey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
    guard parts.count == 3, let raw = Base64.decode(String(parts[2])), raw.count == 33,
      raw[0] == 1
    else { return nil }
    let name = String(parts[0])
    let pub = Array(raw[1...])
    guard keyHashHex(name: name, publicKey: pub) == parts[1] else { return nil }
    guard let (text, sigBlock) = split(note) else { return nil }
    let hash = keyHash(name: name, publicKey: pub)
    for line in sigBlock.split(separator: "\n", omittingEmptySubsequences: false).dropLast() {
      let prefix = "\u{2014} \(name) "
      guard line.hasPrefix(prefix) else { continue }
      guard let sig = Base64.decode(String(line.dropFirst(prefix.count))), sig.count == 68,
        Array(sig.prefix(4)) == hash
      else { continue }
      if Ed25519.verify(publicKey: pub, message: Array(text.utf8), signature: Array(sig[4...])) {
        return text
      }
    }
    return nil
  }

  /// A note's signed text (up to and including the newline before the last blank line) and
  /// its signature block; nil when the note has no blank line or does not end in a newline.
  public static func split(_ note: String) -> (text: String, signatures: String)? {
    let bytes = Array(note.utf8)
    guard bytes.last == 0x0A, bytes.count >= 2 else { return nil }
    for i in stride(from: bytes.count - 2, through: 0, by: -1)
    where bytes[i] == 0x0A && bytes[i + 1] == 0x0A {
      return (
        String(decoding: bytes[...i], as: UTF8.self),
        String(decoding: bytes[(i + 2)...], as: UTF8.self)
      )
    }
    return nil
  }

  /// A C2SP tlog-checkpoint body: origin, tree size, base64 root, then extension lines.
  public static func checkpoint(origin: String, size: UInt64, root: Hash32, extensions: [String])
    -> String
  {
    ([origin, String(size), Base64.encode(root.bytes)] + extensions).joined(separator: "\n")
      + "\n"
  }
}

/// Ed25519 from OpenSSL's libcrypto.
enum Ed25519 {
  static func publicKey(seed: [UInt8]) -> [UInt8]? {
    guard
      let key = seed.withUnsafeBufferPointer({
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32)
      })
    else { return nil }
    defer { EVP_PKEY_free(key) }
    var out = [UInt8](repeating: 0, count: 32)
    var n = 32
    guard EVP_PKEY_get_raw_public_key(key, &out, &n) == 1, n == 32 else { return nil }
    return out
  }

  static func sign(seed: [UInt8], message: [UInt8]) -> [UInt8]? {
    guard
      let key = seed.withUnsafeBufferPointer({
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32)
      }), let ctx = EVP_MD_CTX_new()
    else { return nil }
    defer {
      EVP_MD_CTX_free(ctx)
      EVP_PKEY_free(key)
    }
    guard EVP_DigestSignInit(ctx, nil, nil, nil, key) == 1 else { return nil }
    var sig = [UInt8](repeating: 0, count: 64)
    var n = 64
    let ok = message.withUnsafeBufferPointer {
      EVP_DigestSign(ctx, &sig, &n, $0.baseAddress, $0.count)
    }
    return ok == 1 && n == 64 ? sig : nil
  }

  static func verify(publicKey: [UInt8], message: [UInt8], signature: [UInt8]) -> Bool {
    guard publicKey.count == 32, signature.count == 64,
      let key = publicKey.withUnsafeBufferPointer({
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, 32)
      }), let ctx = EVP_MD_CTX_new()
    else { return false }
    defer {
      EVP_MD_CTX_free(ctx)
      EVP_PKEY_free(key)
    }
    guard EVP_DigestVerifyInit(ctx, nil, nil, nil, key) == 1 else { return false }
    return message.withUnsafeBufferPointer {
      EVP_DigestVerify(ctx, signature, 64, $0.baseAddress, $0.count)
    } == 1
  }
}
