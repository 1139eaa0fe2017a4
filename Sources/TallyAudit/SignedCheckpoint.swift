import TallyCore
import TallyCrypto

/// A checkpoint note whose signature verified under a verifier key, with its body parsed
/// (docs/FORMAT.md, "Checkpoints"): origin, tree size, root, and the `chain` extension line.
public struct SignedCheckpoint: Equatable, Sendable {
  public var origin: String
  public var size: UInt64
  public var root: Hash32
  /// The chain hash after the last event; nil when the note has no `chain` line.
  public var chain: Hash32?
  public var note: String

  /// Verifies `note` under one of `vkeys` (an auditor keeps every key the log has used) and
  /// parses its body; the reason when it cannot.
  public static func open(note: String, vkeys: [String]) -> Result<SignedCheckpoint, Refusal> {
    var why: Refusal = "no verifier key given"
    for vkey in vkeys {
      switch open(note: note, vkey: vkey) {
      case .success(let c): return .success(c)
      case .failure(let r): why = r
      }
    }
    return .failure(
      vkeys.count > 1
        ? "the signature verifies under none of the \(vkeys.count) verifier keys" : why)
  }

  /// Verifies `note` under `vkey` and parses its body; the reason when it cannot.
  public static func open(note: String, vkey: String) -> Result<SignedCheckpoint, Refusal> {
    guard let name = VerifierKey.name(vkey) else {
      return .failure("the verifier key is not of the form name+hash+base64")
    }
    guard let text = Note.verify(note, vkey: vkey) else {
      return .failure("the signature does not verify under the verifier key \(name)")
    }
    return parse(body: text, note: note).flatMap { c in
      c.origin == name
        ? .success(c) : .failure("origin \(c.origin) is not the verifier key's name \(name)")
    }
  }

  /// Parses a checkpoint body (the signed text) without checking any signature.
  public static func parse(body: String, note: String) -> Result<SignedCheckpoint, Refusal> {
    let lines = body.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
    guard lines.count >= 3 else { return .failure("a checkpoint has at least 3 lines") }
    let sizeText = String(lines[lines.startIndex + 1])
    guard let size = UInt64(sizeText), String(size) == sizeText else {
      return .failure("tree size \"\(sizeText)\" is not a decimal number")
    }
    guard let raw = Base64.decode(String(lines[lines.startIndex + 2])), raw.count == 32 else {
      return .failure("the root is not base64 of 32 bytes")
    }
    var chain: Hash32?
    for line in lines.dropFirst(3) where line.hasPrefix("chain ") {
      guard chain == nil, let c = Hash32(hex: String(line.dropFirst(6))) else {
        return .failure("bad chain line")
      }
      chain = c
    }
    return .success(
      SignedCheckpoint(
        origin: String(lines[lines.startIndex]), size: size,
        root: raw.withUnsafeBytes { Hash32(raw: $0) }, chain: chain, note: note))
  }
}

/// A verifier key `name+hash+base64(0x01 ‖ public key)`.
public enum VerifierKey {
  /// The key's name when `vkey` has the right shape.
  public static func name(_ vkey: String) -> String? {
    let parts = vkey.split(separator: "+", maxSplits: 2, omittingEmptySubsequences: false)
    guard parts.count == 3, !parts[0].isEmpty, parts[1].count == 8,
      let raw = Base64.decode(String(parts[2])), raw.count == 33, raw[0] == 1
    else { return nil }
    return String(parts[0])
  }
}

extension Hash32 {
  /// From 64 hex digits (lowercase, as Tally prints them).
  public init?(hex: String) {
    guard hex.utf8.count == 64, hex.lowercased() == hex, let b = [UInt8](hex: hex) else {
      return nil
    }
    self = b.withUnsafeBytes { Hash32(raw: $0) }
  }
}

/// Why a file, key or note was refused: a sentence for the auditor.
public struct Refusal: Error, Equatable, Sendable, CustomStringConvertible,
  ExpressibleByStringInterpolation
{
  public let reason: String
  public init(stringLiteral value: String) { reason = value }
  public init(stringInterpolation: DefaultStringInterpolation) {
    reason = String(stringInterpolation: stringInterpolation)
  }
  public var description: String { reason }
}
