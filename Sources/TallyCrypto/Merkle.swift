/// RFC 9162 §2.1 Merkle tree hashes, inclusion proofs and consistency proofs, as pure
/// functions over a source of complete-subtree hashes.
///
/// The tree over n leaves is the RFC's: MTH({}) = SHA-256(), MTH({d}) = SHA-256(0x00 || d),
/// and for n > 1 with k the largest power of two smaller than n,
/// MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])).
///
/// Every subtree the RFC's recursions visit either is a complete, aligned subtree (2^level
/// leaves starting at a multiple of 2^level) or splits into one such left part and a
/// smaller right part. So a store that keeps each complete subtree's hash, addressed by
/// `(level, index)` (leaves `index·2^level ..< (index+1)·2^level`), answers any root or
/// proof for any tree size in O(log n) lookups. `SubtreeHash` is that lookup.
public typealias SubtreeHash = (_ level: Int, _ index: UInt64) throws -> Hash32

public enum Merkle {
  /// Hash of the empty tree: SHA-256 of nothing.
  public static func emptyRoot(_ h: SHA256Hasher) -> Hash32 { h.hash() }

  /// Interior node: SHA-256(0x01 || left || right).
  public static func node(_ h: SHA256Hasher, _ left: Hash32, _ right: Hash32) -> Hash32 {
    var l = left
    var r = right
    var prefix: UInt8 = 1
    return withUnsafeBytes(of: &prefix) { p in
      withUnsafeBytes(of: &l) { lb in withUnsafeBytes(of: &r) { rb in h.hash(p, lb, rb) } }
    }
  }

  /// Leaf: SHA-256(0x00 || data).
  public static func leaf(_ h: SHA256Hasher, _ data: [UInt8]) -> Hash32 {
    var prefix: UInt8 = 0
    return withUnsafeBytes(of: &prefix) { p in data.withUnsafeBytes { d in h.hash(p, d) } }
  }

  /// The largest power of two strictly smaller than `n` (n ≥ 2).
  @inline(__always)
  static func split(_ n: UInt64) -> UInt64 {
    precondition(n >= 2, "split of a tree with fewer than 2 leaves")
    return 1 << (63 - (n - 1).leadingZeroBitCount)
  }

  /// MTH(D[lo:hi]) for a range the RFC's recursions reach (see the type's comment).
  public static func rangeHash(
    _ h: SHA256Hasher, lo: UInt64, hi: UInt64, _ subtree: SubtreeHash
  ) throws -> Hash32 {
    precondition(hi > lo, "empty range")
    let n = hi - lo
    if n & (n - 1) == 0 && lo % n == 0 {
      return try subtree(n.trailingZeroBitCount, lo / n)
    }
    let k = split(n)
    let left = try rangeHash(h, lo: lo, hi: lo + k, subtree)
    return node(h, left, try rangeHash(h, lo: lo + k, hi: hi, subtree))
  }

  /// The root of the first `size` leaves.
  public static func root(_ h: SHA256Hasher, size: UInt64, _ subtree: SubtreeHash) throws
    -> Hash32
  {
    size == 0 ? emptyRoot(h) : try rangeHash(h, lo: 0, hi: size, subtree)
  }

  /// PATH(m, D[n]) (RFC 9162 §2.1.3.1): the audit path of leaf `index` in the tree of `size`
  /// leaves, leaf-side first.
  public static func inclusionProof(
    _ h: SHA256Hasher, index: UInt64, size: UInt64, _ subtree: SubtreeHash
  ) throws -> [Hash32] {
    precondition(index < size, "leaf index outside the tree")
    var path = [Hash32]()
    // Walk down from the root, collecting siblings root-side first, then reverse.
    var lo: UInt64 = 0
    var hi = size
    while hi - lo > 1 {
      let k = split(hi - lo)
      if index < lo + k {
        path.append(try rangeHash(h, lo: lo + k, hi: hi, subtree))
        hi = lo + k
      } else {
        path.append(try rangeHash(h, lo: lo, hi: lo + k, subtree))
        lo += k
      }
    }
    return path.reversed()
  }

  /// PROOF(m, D[n]) (RFC 9162 §2.1.4.1): proves the tree of `from` leaves is a prefix of the
  /// tree of `to` leaves. Empty when `from` is 0 or equals `to`.
  public static func consistencyProof(
    _ h: SHA256Hasher, from: UInt64, to: UInt64, _ subtree: SubtreeHash
  ) throws -> [Hash32] {
    precondition(from <= to, "consistency from a larger tree")
    if from == 0 || from == to { return [] }
    var proof = [Hash32]()
    try subproof(h, m: from, lo: 0, hi: to, complete: true, &proof, subtree)
    return proof
  }

  /// SUBPROOF(m, D[lo:hi], b) without recursion depth beyond log n.
  static func subproof(
    _ h: SHA256Hasher, m: UInt64, lo: UInt64, hi: UInt64, complete: Bool,
    _ out: inout [Hash32], _ subtree: SubtreeHash
  ) throws {
    let n = hi - lo
    if m == n {
      if !complete { out.append(try rangeHash(h, lo: lo, hi: hi, subtree)) }
      return
    }
    let k = split(n)
    if m <= k {
      try subproof(h, m: m, lo: lo, hi: lo + k, complete: complete, &out, subtree)
      out.append(try rangeHash(h, lo: lo + k, hi: hi, subtree))
    } else {
      try subproof(h, m: m - k, lo: lo + k, hi: hi, complete: false, &out, subtree)
      out.append(try rangeHash(h, lo: lo, hi: lo + k, subtree))
    }
  }

  /// RFC 9162 §2.1.3.2: whether `path` proves leaf `index` (hash `leafHash`) is in the tree of
  /// `size` leaves with root `root`.
  public static func verifyInclusion(
    _ h: SHA256Hasher, index: UInt64, size: UInt64, leafHash: Hash32, path: [Hash32],
    root: Hash32
  ) -> Bool {
    rootFromInclusion(h, index: index, size: size, leafHash: leafHash, path: path) == root
  }

  /// The root that `path` leads to from leaf `index` in a tree of `size` leaves (RFC 9162
  /// §2.1.3.2's computation), or nil when the path has the wrong shape. Also how a proof's
  /// root is produced without reading the tree again.
  public static func rootFromInclusion(
    _ h: SHA256Hasher, index: UInt64, size: UInt64, leafHash: Hash32, path: [Hash32]
  ) -> Hash32? {
    guard index < size else { return nil }
    var fn = index
    var sn = size - 1
    var r = leafHash
    for p in path {
      if sn == 0 { return nil }
      if fn & 1 == 1 || fn == sn {
        r = node(h, p, r)
        if fn & 1 == 0 {
          while fn & 1 == 0 && fn != 0 {
            fn >>= 1
            sn >>= 1
          }
        }
      } else {
        r = node(h, r, p)
      }
      fn >>= 1
      sn >>= 1
    }
    return sn == 0 ? r : nil
  }

  /// RFC 9162 §2.1.4.2: whether `proof` shows the tree of `size1` leaves with root `root1` is
  /// a prefix of the tree of `size2` leaves with root `root2`.
  public static func verifyConsistency(
    _ h: SHA256Hasher, size1: UInt64, size2: UInt64, proof: [Hash32], root1: Hash32,
    root2: Hash32
  ) -> Bool {
    if size1 > size2 { return false }
    if size1 == size2 { return proof.isEmpty && root1 == root2 }
    if size1 == 0 { return proof.isEmpty }
    if proof.isEmpty { return false }
    var p = proof[...]
    // When size1 is a power of two, its root is the first node of the path.
    if size1 & (size1 - 1) == 0 { p = [root1] + p }
    guard let first = p.first else { return false }
    var fn = size1 - 1
    var sn = size2 - 1
    while fn & 1 == 1 {
      fn >>= 1
      sn >>= 1
    }
    var fr = first
    var sr = first
    for c in p.dropFirst() {
      if sn == 0 { return false }
      if fn & 1 == 1 || fn == sn {
        fr = node(h, c, fr)
        sr = node(h, c, sr)
        if fn & 1 == 0 {
          while fn & 1 == 0 && fn != 0 {
            fn >>= 1
            sn >>= 1
          }
        }
      } else {
        sr = node(h, sr, c)
      }
      fn >>= 1
      sn >>= 1
    }
    return fr == root1 && sr == root2 && sn == 0
  }

  /// Appends leaf `index` (hash `leaf`) to a frontier, where `frontier[level]` is the last
  /// complete subtree at that level still waiting for its right sibling: combines it with
  /// each subtree it closes, calling `closed(level, index, hash)` for every new node
  /// (level ≥ 1). O(1) amortised.
  @inlinable
  public static func append<E: Error>(
    _ h: SHA256Hasher, _ frontier: inout [Hash32], index: UInt64, leaf: Hash32,
    closed: (Int, UInt64, Hash32) throws(E) -> Void
  ) throws(E) {
    var node = leaf
    var i = index
    var level = 0
    while i & 1 == 1 {
      node = Merkle.node(h, frontier[level], node)
      i >>= 1
      level += 1
      try closed(level, i, node)
    }
    frontier[level] = node
  }

  /// Complete-subtree hashes computed from leaf hashes in memory: for tests, exports and
  /// verifiers that hold the leaves. O(n) memory.
  public static func subtrees(_ h: SHA256Hasher, leaves: [Hash32]) -> SubtreeHash {
    var levels = [leaves]
    while let last = levels.last, last.count > 1 {
      var next = [Hash32]()
      next.reserveCapacity(last.count / 2)
      var i = 0
      while i + 1 < last.count {
        next.append(node(h, last[i], last[i + 1]))
        i += 2
      }
      levels.append(next)
    }
    let table = levels
    return { level, index in
      guard level < table.count, index < UInt64(table[level].count) else {
        throw MerkleError.missingSubtree(level: level, index: index)
      }
      return table[level][Int(index)]
    }
  }
}

public enum MerkleError: Error, Equatable, Sendable {
  /// A complete subtree the computation needed is not available.
  case missingSubtree(level: Int, index: UInt64)
}
