import CLMDB
import TallyCore
import TallyCrypto

/// The RFC 9162 Merkle tree over the log's leaf hashes (docs/FORMAT.md, "Merkle tree").
///
/// Leaf i (0-based) is the leaf hash of the event at seq i + 1, kept in `hashes`. The `tree`
/// database keeps every complete subtree above the leaves: key `u8 level ‖ u64 index`
/// (level ≥ 1, leaves `index·2^level ..< (index+1)·2^level`), value its 32-byte hash. It is
/// written in the same transaction as the events, one node per closed subtree: O(1)
/// amortised per event. Any root or proof for any past size is O(log n) lookups.
enum Tree {
  /// Highest level a u64-indexed tree can have.
  static let levelsMax = 64

  static func key(_ level: Int, _ index: UInt64) -> [UInt8] {
    var w = ByteWriter(capacity: 9)
    w.u8(UInt8(level))
    w.u64(index)
    return w.bytes
  }

  /// Appends leaf `index` (whose hash is `leaf`): stores each complete subtree it closes.
  /// `frontier[level]` holds the last complete subtree at that level still waiting for its
  /// right sibling.
  static func append(
    _ t: Txn, _ tree: MDB_dbi, _ h: SHA256Hasher, _ frontier: inout [Hash32], index: UInt64,
    leaf: Hash32
  ) throws(StoreError) {
    try Merkle.append(h, &frontier, index: index, leaf: leaf) {
      (level, i, node) throws(StoreError) in
      var hash = node
      try withBytes(key(level, i)) { (k) throws(StoreError) in
        try withUnsafeBytes(of: &hash) { (v) throws(StoreError) in try t.put(tree, k, v) }
      }
    }
  }

  /// The hash of complete subtree (level, index), read in `t`.
  static func subtree(_ t: Txn, _ dbs: DBs, level: Int, index: UInt64) throws -> Hash32 {
    if level == 0 {
      guard let v = try t.get(dbs.hashes, u64: index + 1), v.count == 64 else {
        throw StoreError.corrupt("no leaf hash for seq \(index + 1)")
      }
      return Hash32(raw: v)
    }
    guard let tree = dbs.tree else { throw StoreError.corrupt("the tree database is missing") }
    let v = try withBytes(key(level, index)) { (k) throws(StoreError) in try t.get(tree, k) }
    guard let v, v.count == 32 else {
      throw StoreError.corrupt("no tree node at level \(level), index \(index)")
    }
    return Hash32(raw: v)
  }

  /// The frontier for a tree of `size` leaves, read from the store.
  static func frontier(_ t: Txn, _ dbs: DBs, size: UInt64) throws -> [Hash32] {
    var f = [Hash32](repeating: .zero, count: levelsMax)
    for level in 0..<levelsMax where (size >> level) & 1 == 1 {
      f[level] = try subtree(t, dbs, level: level, index: (size >> level) - 1)
    }
    return f
  }

  /// Builds the whole tree from `hashes` (migration from format 1, rebuild). Empties it first.
  static func build(_ t: Txn, _ dbs: DBs, _ h: SHA256Hasher, size: UInt64) throws -> [Hash32] {
    guard let tree = dbs.tree else { throw StoreError.corrupt("the tree database is missing") }
    try check(mdb_drop(t.txn, tree, 0), "drop tree")
    var f = [Hash32](repeating: .zero, count: levelsMax)
    var seq: UInt64 = 0
    try Ledger.scan(t, dbs.hashes) { k, v in
      seq += 1
      guard k.count == 8, UInt64(bigEndian: k.loadUnaligned(as: UInt64.self)) == seq,
        v.count == 64
      else { throw StoreError.corrupt("hashes are not contiguous at seq \(seq)") }
      try append(t, tree, h, &f, index: seq - 1, leaf: Hash32(raw: v))
    }
    guard seq == size else { throw StoreError.corrupt("hashes end at \(seq), head is \(size)") }
    return f
  }
}

extension Tree {
  /// Recomputes every complete subtree from the leaf hashes and compares it with the stored
  /// one; the first difference, or a stored node count other than n − popcount(n), is a
  /// problem.
  static func verify(
    _ t: Txn, _ dbs: DBs, _ h: SHA256Hasher, size: UInt64, _ progress: ProgressHandler? = nil
  ) throws -> VerifyProblem? {
    guard let tree = dbs.tree else {
      return VerifyProblem(kind: .projection, message: "the Merkle tree is missing")
    }
    var f = [Hash32](repeating: .zero, count: levelsMax)
    var seq: UInt64 = 0
    var bad: VerifyProblem?
    progress?(.verifyTree, 0, size)
    try Ledger.scan(t, dbs.hashes) { _, v in
      if bad != nil { return }
      seq += 1
      if seq & 0xfff == 0 { progress?(.verifyTree, seq, size) }
      var node = Hash32(raw: v)
      var i = seq - 1
      var level = 0
      while i & 1 == 1 {
        node = Merkle.node(h, f[level], node)
        i >>= 1
        level += 1
        let stored = try withBytes(key(level, i)) { (k) throws(StoreError) in try t.get(tree, k) }
        guard let stored, stored.count == 32, Hash32(raw: stored) == node else {
          bad = VerifyProblem(
            kind: .projection, seq: seq,
            message: "Merkle node level \(level) index \(i) differs from the leaves")
          return
        }
      }
      f[level] = node
    }
    progress?(.verifyTree, seq, size)
    if let bad { return bad }
    let expected = Int(size) - size.nonzeroBitCount
    let count = try t.count(tree)
    if count != expected {
      return VerifyProblem(
        kind: .projection, message: "the Merkle tree has \(count) nodes, expected \(expected)")
    }
    return nil
  }
}

/// An inclusion proof (RFC 9162 §2.1.3): the audit path of a leaf in a tree of `treeSize`.
public struct InclusionProof: Equatable, Sendable {
  /// seq − 1.
  public var leafIndex: UInt64
  public var treeSize: UInt64
  public var leafHash: Hash32
  /// Leaf level first.
  public var path: [Hash32]
  public var root: Hash32
}

/// A consistency proof (RFC 9162 §2.1.4) between two tree sizes.
public struct ConsistencyProof: Equatable, Sendable {
  public var from: UInt64
  public var to: UInt64
  public var path: [Hash32]
  public var rootFrom: Hash32
  public var rootTo: Hash32
}

/// Why a proof cannot be made.
public enum ProofError: Error, Equatable, Sendable {
  /// A seq or size beyond the log's head (or zero where it must be positive).
  case outOfRange(String)
}

extension LedgerReader {
  /// Subtree hashes for proofs in a tree of `size` leaves read in `t`, with the tree's
  /// frontier (its right edge) from the cache (see `edge`).
  func proofSubtrees(_ t: Txn, size: UInt64) throws -> SubtreeHash {
    let dbs = self.dbs
    var nodes = edge.withLock { $0.size == size ? $0.nodes : nil }
    if nodes == nil {
      let f = try Tree.frontier(t, dbs, size: size)
      edge.withLock { $0 = (size, f) }
      nodes = f
    }
    let frontier = nodes!
    return { [self] level, index in
      if (size >> level) & 1 == 1 && index == (size >> level) - 1 { return frontier[level] }
      guard level >= LedgerReader.upperCacheLevel else {
        return try Tree.subtree(t, dbs, level: level, index: index)
      }
      let key = UInt64(level) << 56 | index
      if let h = self.upper.withLock({ $0[key] }) { return h }
      let h = try Tree.subtree(t, dbs, level: level, index: index)
      self.upper.withLock { if $0.count < LedgerReader.upperCacheMax { $0[key] = h } }
      return h
    }
  }
}

extension LedgerQuerying {
  /// The root of the tree of the first `size` events (size ≤ head).
  public func treeRoot(size: UInt64) throws(StoreError) -> Result<Hash32, ProofError> {
    try reader.read { t in
      let head = try Ledger.readHead(t, reader.dbs).seq
      guard size <= head else { return .failure(.outOfRange("size \(size) > head \(head)")) }
      let h = SHA256Hasher()
      let dbs = reader.dbs
      return .success(
        try Merkle.root(h, size: size) { try Tree.subtree(t, dbs, level: $0, index: $1) })
    }
  }

  /// Proof that the event at `seq` is in the tree of `size` events (default: the head).
  public func inclusionProof(seq: UInt64, size: UInt64?) throws(StoreError)
    -> Result<InclusionProof, ProofError>
  {
    try reader.read { t in
      let dbs = reader.dbs
      let head = try Ledger.readHead(t, dbs).seq
      let n = size ?? head
      guard n <= head else { return .failure(.outOfRange("size \(n) > head \(head)")) }
      guard seq >= 1 && seq <= n else {
        return .failure(.outOfRange("seq \(seq) is not in a tree of size \(n)"))
      }
      let h = SHA256Hasher()
      let sub = try reader.proofSubtrees(t, size: n)
      let leaf = try sub(0, seq - 1)
      let path = try Merkle.inclusionProof(h, index: seq - 1, size: n, sub)
      // The path's siblings and the leaf already determine the root: fold them.
      guard
        let root = Merkle.rootFromInclusion(h, index: seq - 1, size: n, leafHash: leaf, path: path)
      else { throw StoreError.corrupt("the audit path of seq \(seq) does not fold to a root") }
      return .success(
        InclusionProof(leafIndex: seq - 1, treeSize: n, leafHash: leaf, path: path, root: root))
    }
  }

  /// Proof that the tree of `from` events is a prefix of the tree of `to` events.
  public func consistencyProof(from: UInt64, to: UInt64) throws(StoreError)
    -> Result<ConsistencyProof, ProofError>
  {
    try reader.read { t in
      let dbs = reader.dbs
      let head = try Ledger.readHead(t, dbs).seq
      guard to <= head else { return .failure(.outOfRange("to \(to) > head \(head)")) }
      guard from >= 1 && from <= to else {
        return .failure(.outOfRange("from must be 1…to, got \(from)"))
      }
      let h = SHA256Hasher()
      let sub = try reader.proofSubtrees(t, size: to)
      return .success(
        ConsistencyProof(
          from: from, to: to, path: try Merkle.consistencyProof(h, from: from, to: to, sub),
          rootFrom: try Merkle.root(h, size: from, sub), rootTo: try Merkle.root(h, size: to, sub)))
    }
  }
}
