import TallyAudit
import TallyCore
import TallyCrypto
import TallyProtocol

/// Why an audited request failed: the server lied (its answer was refused, with the code of
/// `AnswerRefusal`), or the exchange itself failed (an `ERR`, a closed connection).
public enum AuditorError: Error, Equatable, Sendable, CustomStringConvertible {
  case refused(AnswerRefusal)
  case client(TallyClientError)

  public var description: String {
    switch self {
    case .refused(let r): "refused \(r.code.rawValue): \(r.message)"
    case .client(let e): "\(e)"
    }
  }
}

/// An auditor's view of a server that it does not trust (docs/AUDIT.md): every checkpoint
/// is verified under the verifier keys kept from a trusted channel and compared with the
/// checkpoints already seen, and every proof is checked against a verified checkpoint.
/// Nothing the server answers is returned unless it verified.
public struct Auditor: Sendable {
  public let client: TallyClient
  public let vkeys: [String]
  /// Checkpoints seen before (verified under `vkeys` when they were kept).
  public let kept: [SignedCheckpoint]

  public init(client: TallyClient, vkeys: [String], kept: [SignedCheckpoint]) {
    self.client = client
    self.vkeys = vkeys
    self.kept = kept
  }

  /// `CHECKPOINT.GET` of `size` (nil: the head), verified: signed by a kept key, of the size
  /// asked, no fork of a kept checkpoint, for the head not smaller than one, and proven
  /// consistent with every kept checkpoint of another size.
  public func checkpoint(size: UInt64?) async throws(AuditorError) -> SignedCheckpoint {
    let o = try await call("CHECKPOINT.GET", [("size", size.map { .number(String($0)) })])
    guard let note = o["note"]?.stringValue else {
      throw .refused(AnswerRefusal(.malformed, "the checkpoint answer has no note"))
    }
    let c = try ServerAnswers.checkpoint(note: note, size: size, vkeys: vkeys, kept: kept)
      .get(or: AuditorError.refused)
    // The JSON fields repeat the note; a client reading them must not be told another tree.
    guard try u64(o, "size") == c.size, try hash(o, "root") == c.root,
      try hash(o, "chain") == c.chain
    else {
      throw .refused(
        AnswerRefusal(.answerMismatch, "the answer's size, root or chain is not the signed note's"))
    }
    for k in kept where k.size != c.size {
      let (old, new) = k.size < c.size ? (k, c) : (c, k)
      let p = try await consistencyAnswer(from: old.size, to: new.size)
      try ServerAnswers.consistency(old: old, new: new, proof: p).get(or: AuditorError.refused)
    }
    return c
  }

  /// The event at `seq` (its canonical bytes) and a proof that it is in the verified tree of
  /// `size` (nil: the head).
  public func inclusion(seq: UInt64, size: UInt64?) async throws(AuditorError)
    -> (bytes: [UInt8], checkpoint: SignedCheckpoint)
  {
    let signed = try await checkpoint(size: size)
    // The proof first: a seq past the tree is the server's NOT_FOUND (the caller's mistake),
    // not a lie.
    let o = try await call(
      "PROOF.INCLUSION", [("seq", .number(String(seq))), ("size", .number(String(signed.size)))])
    let log = try await call(
      "LOG.READ", [("from_seq", .number(String(seq))), ("limit", .number("1"))])
    guard let events = log["events"]?.arrayValue, events.count == 1,
      let e = events[0].objectValue, let hex = e["bytes"]?.stringValue,
      let bytes = [UInt8](hex: hex)
    else {
      throw .refused(AnswerRefusal(.malformed, "LOG.READ did not answer one event in hex"))
    }
    let p = InclusionAnswer(
      leafIndex: try u64(o, "leaf_index"), treeSize: try u64(o, "tree_size"),
      leafHash: try hash(o, "leaf_hash"), path: try path(o, "path"), root: try hash(o, "root"))
    try ServerAnswers.inclusion(seq: seq, eventBytes: bytes, proof: p, signed: signed)
      .get(or: AuditorError.refused)
    return (bytes, signed)
  }

  /// Verified checkpoints of `from` and `to` and a proof that the second extends the first.
  public func consistency(from: UInt64, to: UInt64) async throws(AuditorError)
    -> (old: SignedCheckpoint, new: SignedCheckpoint)
  {
    let old = try await checkpoint(size: from)
    let new = try await checkpoint(size: to)
    let p = try await consistencyAnswer(from: from, to: to)
    try ServerAnswers.consistency(old: old, new: new, proof: p).get(or: AuditorError.refused)
    return (old, new)
  }

  private func consistencyAnswer(from: UInt64, to: UInt64) async throws(AuditorError)
    -> ConsistencyAnswer
  {
    let o = try await call(
      "PROOF.CONSISTENCY", [("from", .number(String(from))), ("to", .number(String(to)))])
    return ConsistencyAnswer(
      from: try u64(o, "from"), to: try u64(o, "to"), path: try path(o, "path"),
      rootFrom: try hash(o, "root_from"), rootTo: try hash(o, "root_to"))
  }

  private func call(_ verb: String, _ members: [(String, JSONValue?)]) async throws(AuditorError)
    -> JSONObject
  {
    let body = JSONObject(members.compactMap { k, v in v.map { (k, $0) } })
    do {
      return try await client.call(verb, body).result()
    } catch {
      throw .client(error)
    }
  }

  private func u64(_ o: JSONObject, _ key: String) throws(AuditorError) -> UInt64 {
    guard case .number(let text)? = o[key], let n = UInt64(text), String(n) == text else {
      throw .refused(AnswerRefusal(.malformed, "\(key) is not a non-negative integer"))
    }
    return n
  }

  private func hash(_ o: JSONObject, _ key: String) throws(AuditorError) -> Hash32 {
    guard let text = o[key]?.stringValue, let h = Hash32(hex: text) else {
      throw .refused(AnswerRefusal(.malformed, "\(key) is not 64 lowercase hex digits"))
    }
    return h
  }

  private func path(_ o: JSONObject, _ key: String) throws(AuditorError) -> [Hash32] {
    guard let items = o[key]?.arrayValue, items.count <= 64 else {
      throw .refused(AnswerRefusal(.malformed, "\(key) is not an array of at most 64 hashes"))
    }
    var out = [Hash32]()
    for item in items {
      guard let text = item.stringValue, let h = Hash32(hex: text) else {
        throw .refused(AnswerRefusal(.malformed, "a hash of \(key) is not 64 lowercase hex digits"))
      }
      out.append(h)
    }
    return out
  }
}

extension Result {
  fileprivate func get<E: Error>(or wrap: (Failure) -> E) throws(E) -> Success {
    switch self {
    case .success(let s): return s
    case .failure(let f): throw wrap(f)
    }
  }
}
