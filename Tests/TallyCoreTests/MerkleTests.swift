import Foundation
import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

/// RFC 9162 §2.1 against the public vectors (Tests/TallyCoreTests/Vectors/merkle.json) and
/// against a naive recursive implementation for random sizes.
@Suite("Merkle tree (RFC 9162)")
struct MerkleTests {
  struct Vectors: Decodable {
    struct Inclusion: Decodable {
      var leaf_index: UInt64
      var tree_size: UInt64
      var leaf_hash: String
      var path: [String]
      var root: String
      var why: String?
    }
    struct Consistency: Decodable {
      var size1: UInt64
      var size2: UInt64
      var proof: [String]
      var root1: String
      var root2: String
      var why: String?
    }
    var leaves_hex: [String]
    var leaf_hashes: [String]
    var roots: [String]
    var inclusion: [Inclusion]
    var consistency: [Consistency]
    var inclusion_invalid: [Inclusion]
    var consistency_invalid: [Consistency]
  }

  static let vectors: Vectors = {
    let dir = (#filePath as NSString).deletingLastPathComponent
    let data = FileManager.default.contents(atPath: dir + "/Vectors/merkle.json")!
    return try! JSONDecoder().decode(Vectors.self, from: data)
  }()

  static func hash(_ hex: String) -> Hash32 {
    let b = [UInt8](hex: hex)!
    return b.withUnsafeBytes { Hash32(raw: $0) }
  }

  let h = SHA256Hasher()
  var leaves: [Hash32] {
    Self.vectors.leaves_hex.map { Merkle.leaf(h, [UInt8](hex: $0)!) }
  }

  @Test func leafHashesAndRootsForSizesZeroToEightMatchTheVectors() throws {
    let v = Self.vectors
    #expect(leaves.map(\.hex) == v.leaf_hashes)
    for size in 0...8 {
      let tree = Merkle.subtrees(h, leaves: Array(leaves.prefix(size)))
      #expect(try Merkle.root(h, size: UInt64(size), tree).hex == v.roots[size], "size \(size)")
    }
  }

  @Test func inclusionProofsMatchTheVectorsAndVerify() throws {
    let tree = Merkle.subtrees(h, leaves: leaves)
    for c in Self.vectors.inclusion {
      let path = try Merkle.inclusionProof(h, index: c.leaf_index, size: c.tree_size, tree)
      #expect(path.map(\.hex) == c.path, "\(c.leaf_index)/\(c.tree_size)")
      #expect(
        Merkle.verifyInclusion(
          h, index: c.leaf_index, size: c.tree_size, leafHash: Self.hash(c.leaf_hash),
          path: c.path.map(Self.hash), root: Self.hash(c.root)))
    }
  }

  @Test func consistencyProofsMatchTheVectorsAndVerify() throws {
    let tree = Merkle.subtrees(h, leaves: leaves)
    for c in Self.vectors.consistency {
      let proof = try Merkle.consistencyProof(h, from: c.size1, to: c.size2, tree)
      #expect(proof.map(\.hex) == c.proof, "\(c.size1)→\(c.size2)")
      #expect(
        Merkle.verifyConsistency(
          h, size1: c.size1, size2: c.size2, proof: c.proof.map(Self.hash),
          root1: Self.hash(c.root1), root2: Self.hash(c.root2)))
    }
  }

  @Test func everyInvalidProofInTheVectorsIsRejected() {
    for c in Self.vectors.inclusion_invalid {
      #expect(
        !Merkle.verifyInclusion(
          h, index: c.leaf_index, size: c.tree_size, leafHash: Self.hash(c.leaf_hash),
          path: c.path.map(Self.hash), root: Self.hash(c.root)), "\(c.why ?? "")")
    }
    for c in Self.vectors.consistency_invalid {
      #expect(
        !Merkle.verifyConsistency(
          h, size1: c.size1, size2: c.size2, proof: c.proof.map(Self.hash),
          root1: Self.hash(c.root1), root2: Self.hash(c.root2)), "\(c.why ?? "")")
    }
  }

  /// MTH straight from RFC 9162's definition, over leaf hashes.
  func naiveRoot(_ l: ArraySlice<Hash32>) -> Hash32 {
    if l.isEmpty { return Merkle.emptyRoot(h) }
    if l.count == 1 { return l.first! }
    var k = 1
    while k * 2 < l.count { k *= 2 }
    return Merkle.node(
      h, naiveRoot(l.prefix(k)), naiveRoot(l.dropFirst(k)))
  }

  @Test func randomSizesAgreeWithTheNaiveDefinitionAndProofsVerify() throws {
    let seed = propertySeed(0x5eed_3e4c1e)
    print("Merkle property seed: \(seed) (set TALLY_SEED to replay)")
    var rng = SplitMix64(seed: seed)
    let all = (0..<2048).map { i in Merkle.leaf(h, Array("leaf-\(i)".utf8)) }
    let tree = Merkle.subtrees(h, leaves: all)
    for _ in 0..<60 {
      let size = UInt64(1 + rng.below(all.count))
      let root = try Merkle.root(h, size: size, tree)
      #expect(root == naiveRoot(all.prefix(Int(size))[...]), "size \(size)")
      let index = UInt64(rng.below(Int(size)))
      let path = try Merkle.inclusionProof(h, index: index, size: size, tree)
      #expect(
        Merkle.verifyInclusion(
          h, index: index, size: size, leafHash: all[Int(index)], path: path, root: root))
      // A proof for one leaf never verifies another.
      let other = (index + 1) % size
      if other != index {
        #expect(
          !Merkle.verifyInclusion(
            h, index: other, size: size, leafHash: all[Int(index)], path: path, root: root))
      }
      let from = UInt64(1 + rng.below(Int(size)))
      let proof = try Merkle.consistencyProof(h, from: from, to: size, tree)
      let oldRoot = naiveRoot(all.prefix(Int(from))[...])
      #expect(
        Merkle.verifyConsistency(
          h, size1: from, size2: size, proof: proof, root1: oldRoot, root2: root),
        "\(from)→\(size)")
      // A forked history: same size, another root, is refused.
      if from < size {
        let forged = Merkle.node(h, oldRoot, oldRoot)
        #expect(
          !Merkle.verifyConsistency(
            h, size1: from, size2: size, proof: proof, root1: forged, root2: root))
      }
    }
  }
}
