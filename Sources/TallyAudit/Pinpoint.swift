import TallyCore
import TallyCrypto

/// The complete-subtree hashes an export records (`prefix`, `hashes` leaves, `tree`), as a
/// `SubtreeHash` over the whole tree of `n` leaves. Nothing here is trusted: the descent in
/// `Pinpoint` checks every pair of children against a node it already trusts.
struct ClaimedTree {
  let p: UInt64
  let n: UInt64
  let prefix: [(level: Int, hash: Hash32)]
  let hashes: MappedFile?
  let tree: MappedFile?
  private var levelStart = [Int](repeating: 0, count: 65)

  struct Missing: Error {}

  init(
    p: UInt64, n: UInt64, prefix: [(level: Int, hash: Hash32)], hashes: MappedFile?,
    tree: MappedFile?
  ) {
    self.p = p
    self.n = n
    self.prefix = prefix
    self.hashes = hashes
    self.tree = tree
    var total = 0
    for level in 1..<64 {
      levelStart[level] = total
      total += Int(max(0, Int64(n >> level) - Int64(Self.first(p, level))))
    }
  }

  /// The first index at `level` of a subtree lying after the first p leaves: ⌈p / 2^level⌉.
  static func first(_ p: UInt64, _ level: Int) -> UInt64 {
    (p >> level) + (p & ((UInt64(1) << level) - 1) == 0 ? 0 : 1)
  }

  /// A prefix subtree root, when (level, index) is one.
  func prefixNode(_ level: Int, _ index: UInt64) -> Hash32? {
    guard (p >> level) & 1 == 1, (p >> level) - 1 == index else { return nil }
    return prefix.first { $0.level == level }?.hash
  }

  func subtree(_ level: Int, _ index: UInt64) throws -> Hash32 {
    let lo = index << level
    let hi = lo + (UInt64(1) << level)
    if hi <= p {
      guard let h = prefixNode(level, index) else { throw Missing() }
      return h
    }
    if lo >= p {
      if level == 0 {
        let i = Int(lo - p)
        guard let b = hashes?.bytes, b.count >= (i + 1) * 64 else { throw Missing() }
        return Hash32(raw: UnsafeRawBufferPointer(rebasing: b[(i * 64)..<(i * 64 + 32)]))
      }
      let first = Self.first(p, level)
      guard index >= first, index < n >> level, let b = tree?.bytes else { throw Missing() }
      let o = (levelStart[level] + Int(index - first)) * 32
      guard b.count >= o + 32 else { throw Missing() }
      return Hash32(raw: UnsafeRawBufferPointer(rebasing: b[o..<(o + 32)]))
    }
    return Merkle.node(
      SHA256Hasher(), try subtree(level - 1, 2 * index), try subtree(level - 1, 2 * index + 1))
  }
}

/// Finds the first event where an export differs from a signed root (docs/FORMAT.md, end of
/// "Verifying an export").
enum Pinpoint {
  static func locate(
    events: MappedFile, from: UInt64, size: UInt64, root: Hash32, against: String,
    tree: ClaimedTree
  ) -> AuditProblem {
    let h = SHA256Hasher()
    let p = from - 1
    if size == p {
      return AuditProblem(
        .prefix, seq: p, "the export's prefix (the first \(p) events) does not match \(against)")
    }
    // The export's own leaves, up to the size of the trusted tree.
    var leaves = [Hash32]()
    var headers = [UInt64]()
    var walker = RecordWalker(events)
    while UInt64(leaves.count) < size - p, case .record(let b) = walker.next() {
      leaves.append(h.leaf(b))
      headers.append((try? EventCodec.header(b).seq) ?? 0)
    }
    func recomputed(_ level: Int, _ index: UInt64) throws -> Hash32 {
      let lo = index << level
      let hi = lo + (UInt64(1) << level)
      if hi <= p {
        guard let x = tree.prefixNode(level, index) else { throw ClaimedTree.Missing() }
        return x
      }
      if level == 0 {
        let i = Int(lo - p)
        guard i < leaves.count else { throw ClaimedTree.Missing() }
        return leaves[i]
      }
      return Merkle.node(
        h, try recomputed(level - 1, 2 * index), try recomputed(level - 1, 2 * index + 1))
    }
    let claimed: SubtreeHash = { try tree.subtree($0, $1) }

    // Descend from the trusted root, trusting a pair of recorded children only when they
    // hash to the node above.
    var lo: UInt64 = 0
    var hi = size
    var trusted = root
    while hi - lo > 1 {
      let k = UInt64(1) << (63 - (hi - lo - 1).leadingZeroBitCount)
      guard let left = try? Merkle.rangeHash(h, lo: lo, hi: lo + k, claimed),
        let right = try? Merkle.rangeHash(h, lo: lo + k, hi: hi, claimed),
        Merkle.node(h, left, right) == trusted
      else {
        let a = max(lo, p) + 1
        return AuditProblem(
          .hashesAltered, seq: a,
          "the first difference from \(against) is within seq \(a)…\(hi); the export's "
            + "recorded hashes were altered too, so it cannot be narrowed further")
      }
      if (try? Merkle.rangeHash(h, lo: lo, hi: lo + k, recomputed)) != left {
        hi = lo + k
        trusted = left
      } else {
        lo += k
        trusted = right
      }
    }
    if lo < p {
      return AuditProblem(
        .prefix, seq: lo + 1, "the export's prefix differs from \(against) at seq \(lo + 1)")
    }

    // Classify the leaf: compare its neighbours with the genuine ones.
    let seq = lo + 1
    let i = Int(lo - p)
    let mine = i < leaves.count ? leaves[i] : nil
    let mineNext = i + 1 < leaves.count ? leaves[i + 1] : nil
    var genuineNext: Hash32?
    if lo + 1 < size, let leaf = try? claimed(0, lo + 1),
      let path = try? Merkle.inclusionProof(h, index: lo + 1, size: size, claimed),
      Merkle.rootFromInclusion(h, index: lo + 1, size: size, leafHash: leaf, path: path) == root
    {
      genuineNext = leaf
    }
    guard let mine else {
      return AuditProblem(
        .missing, seq: seq, "the export ends before seq \(seq), which \(against) covers")
    }
    if let g = genuineNext, mine == g, mineNext == trusted {
      return AuditProblem(
        .reordered, seq: seq, "events seq \(seq) and \(seq + 1) are swapped")
    }
    if let g = genuineNext, mine == g {
      return AuditProblem(
        .missing, seq: seq,
        "seq \(seq) was removed: the event at its position is the signed seq \(seq + 1)")
    }
    if mineNext == trusted {
      return AuditProblem(
        .inserted, seq: seq,
        "an event (claiming seq \(headers[i])) was inserted before seq \(seq)")
    }
    return AuditProblem(
      .altered, seq: seq, "the event at seq \(seq) differs from the one \(against) signed")
  }
}
