import TallyCore
import TallyCrypto

/// Why an answer of a server was refused: a stable code and a sentence for the auditor.
///
/// The codes never change (tests and scripts branch on them):
/// - `MALFORMED`: the answer is not of the documented shape (docs/PROTOCOL.md);
/// - `SIGNATURE`: the checkpoint does not verify under any verifier key kept, or names
///   another origin than the key's;
/// - `WRONG_SIZE`: a checkpoint or proof of another tree size than the one asked for;
/// - `ANSWER_MISMATCH`: two parts of the answer disagree (the JSON fields and the signed
///   note, a proof's root and the checkpoint's, the leaf of the event and the proof's);
/// - `WRONG_EVENT`: the event bytes are not those of the seq asked for;
/// - `INCLUSION`: the audit path does not lead from the leaf to the signed root;
/// - `ROLLBACK`: the server's tree is smaller than one already seen;
/// - `FORK`: a signed tree of the size of a kept one, with another root;
/// - `INCONSISTENT`: the consistency proof does not show that the signed tree extends the
///   kept one (a fork or a rewritten history; a liar cannot be told from a forger here).
public struct AnswerRefusal: Error, Equatable, Sendable, CustomStringConvertible {
  public enum Code: String, Sendable, CaseIterable {
    case malformed = "MALFORMED"
    case signature = "SIGNATURE"
    case wrongSize = "WRONG_SIZE"
    case answerMismatch = "ANSWER_MISMATCH"
    case wrongEvent = "WRONG_EVENT"
    case inclusion = "INCLUSION"
    case rollback = "ROLLBACK"
    case fork = "FORK"
    case inconsistent = "INCONSISTENT"
  }
  public var code: Code
  public var message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public var description: String { "\(code.rawValue): \(message)" }
}

/// A `PROOF.INCLUSION` answer as values.
public struct InclusionAnswer: Equatable, Sendable {
  public var leafIndex: UInt64
  public var treeSize: UInt64
  public var leafHash: Hash32
  public var path: [Hash32]
  public var root: Hash32
  public init(leafIndex: UInt64, treeSize: UInt64, leafHash: Hash32, path: [Hash32], root: Hash32) {
    self.leafIndex = leafIndex
    self.treeSize = treeSize
    self.leafHash = leafHash
    self.path = path
    self.root = root
  }
}

/// A `PROOF.CONSISTENCY` answer as values.
public struct ConsistencyAnswer: Equatable, Sendable {
  public var from: UInt64
  public var to: UInt64
  public var path: [Hash32]
  public var rootFrom: Hash32
  public var rootTo: Hash32
  public init(from: UInt64, to: UInt64, path: [Hash32], rootFrom: Hash32, rootTo: Hash32) {
    self.from = from
    self.to = to
    self.path = path
    self.rootFrom = rootFrom
    self.rootTo = rootTo
  }
}

/// The checks an auditor makes on what a server answers (docs/AUDIT.md, "The checks"): pure
/// functions of the answers, the verifier keys and the checkpoints kept, so that a server
/// that lies in any part of an answer is refused, with the reason.
public enum ServerAnswers {
  /// A checkpoint note the server gave for a tree of `size` (nil: its head): it verifies
  /// under one of `vkeys` with the key's origin, is of the size asked, is no fork of a
  /// checkpoint in `kept`, and, for the head, is not smaller than any of them. Consistency
  /// with a kept checkpoint of another size needs a proof: see `consistency`.
  public static func checkpoint(
    note: String, size: UInt64?, vkeys: [String], kept: [SignedCheckpoint]
  ) -> Result<SignedCheckpoint, AnswerRefusal> {
    let c: SignedCheckpoint
    switch SignedCheckpoint.open(note: note, vkeys: vkeys) {
    case .failure(let why): return .failure(AnswerRefusal(.signature, why.reason))
    case .success(let s): c = s
    }
    if let size, c.size != size {
      return .failure(
        AnswerRefusal(.wrongSize, "asked for a checkpoint of size \(size), got size \(c.size)"))
    }
    for k in kept {
      if size == nil && k.size > c.size {
        return .failure(
          AnswerRefusal(
            .rollback,
            "the server's tree has \(c.size) events, fewer than the \(k.size) of a checkpoint "
              + "already seen: its log was rolled back"))
      }
      if k.size == c.size && (k.root != c.root || k.chain != c.chain) {
        return .failure(
          AnswerRefusal(
            .fork,
            "two signed trees of size \(c.size): root \(c.root.hex) now, \(k.root.hex) kept "
              + "(keep both notes: they prove a fork)"))
      }
    }
    return .success(c)
  }

  /// An inclusion proof of the event at `seq` (its bytes `eventBytes`, as `LOG.READ` gave
  /// them) in the tree of the verified checkpoint `signed`.
  public static func inclusion(
    seq: UInt64, eventBytes: [UInt8], proof: InclusionAnswer, signed: SignedCheckpoint
  ) -> Result<Void, AnswerRefusal> {
    let event: Event
    do { event = try EventCodec.decode(eventBytes) } catch {
      return .failure(AnswerRefusal(.wrongEvent, "the event bytes of seq \(seq) do not decode"))
    }
    guard event.seq == seq else {
      return .failure(
        AnswerRefusal(.wrongEvent, "asked for seq \(seq), the event bytes are of seq \(event.seq)"))
    }
    guard seq >= 1, proof.leafIndex == seq - 1 else {
      return .failure(
        AnswerRefusal(
          .answerMismatch, "the proof is for leaf index \(proof.leafIndex), not \(seq &- 1)"))
    }
    guard proof.treeSize == signed.size else {
      return .failure(
        AnswerRefusal(
          .wrongSize,
          "the proof is in a tree of \(proof.treeSize), the checkpoint's has \(signed.size)"))
    }
    let h = SHA256Hasher()
    let leaf = h.leaf(eventBytes)
    guard leaf == proof.leafHash else {
      return .failure(
        AnswerRefusal(
          .answerMismatch,
          "SHA-256(0x00 ‖ event) is \(leaf.hex), the proof's leaf_hash \(proof.leafHash.hex)"))
    }
    guard proof.root == signed.root else {
      return .failure(
        AnswerRefusal(
          .answerMismatch,
          "the proof's root \(proof.root.hex) is not the signed root \(signed.root.hex)"))
    }
    guard
      Merkle.verifyInclusion(
        h, index: proof.leafIndex, size: signed.size, leafHash: leaf, path: proof.path,
        root: signed.root)
    else {
      return .failure(
        AnswerRefusal(
          .inclusion,
          "the audit path (\(proof.path.count) hashes) does not lead from leaf \(proof.leafIndex) "
            + "to the signed root of the tree of \(signed.size)"))
    }
    return .success(())
  }

  /// A consistency proof that the verified checkpoint `new` extends the kept (or verified)
  /// checkpoint `old`.
  public static func consistency(
    old: SignedCheckpoint, new: SignedCheckpoint, proof: ConsistencyAnswer
  ) -> Result<Void, AnswerRefusal> {
    if new.size < old.size {
      return .failure(
        AnswerRefusal(
          .rollback,
          "the server's tree has \(new.size) events, fewer than the \(old.size) already seen"))
    }
    guard proof.from == old.size, proof.to == new.size else {
      return .failure(
        AnswerRefusal(
          .wrongSize,
          "asked for a proof from \(old.size) to \(new.size), got one from \(proof.from) "
            + "to \(proof.to)"))
    }
    guard proof.rootFrom == old.root, proof.rootTo == new.root else {
      return .failure(
        AnswerRefusal(.answerMismatch, "the proof's roots are not those of the two checkpoints"))
    }
    if old.size == new.size {
      return old.root == new.root && old.chain == new.chain && proof.path.isEmpty
        ? .success(())
        : .failure(AnswerRefusal(.fork, "two signed trees of size \(new.size) with other roots"))
    }
    guard
      Merkle.verifyConsistency(
        SHA256Hasher(), size1: old.size, size2: new.size, proof: proof.path, root1: old.root,
        root2: new.root)
    else {
      return .failure(
        AnswerRefusal(
          .inconsistent,
          "the consistency proof (\(proof.path.count) hashes) does not show that the signed "
            + "tree of \(new.size) extends the one of \(old.size): a fork or a rewritten history"))
    }
    return .success(())
  }
}
