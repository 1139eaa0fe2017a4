import Glibc
import PropertyBased
import Synchronization
import Testing

// Deterministic property checks, shared by the test targets.
//
// PropertyBased's `propertyCheck` seeds every run from the system generator, and its
// `.fixedSeed` trait always records an issue, so it cannot give a deterministic suite. These
// checks use its generators (`Gen…run(using:)`) with a `Xoshiro` derived from a fixed seed;
// `TALLY_SEED=<n>` in the environment runs another seed. Every issue is tagged with the seed
// and case, and the check stops after the first failing case.

/// The seed of a property check: `TALLY_SEED` when set, else `defaultSeed`.
public func propertySeed(_ defaultSeed: UInt64) -> UInt64 {
  if let s = getenv("TALLY_SEED"), let v = UInt64(String(cString: s)) { return v }
  return defaultSeed
}

/// A xoshiro256** generator whose state derives from `seed` and `index` (splitmix64).
public func seededRNG(_ seed: UInt64, _ index: Int) -> Xoshiro {
  var x = seed ^ (UInt64(truncatingIfNeeded: index) &* 0xD1B5_4A32_D192_ED03)
  func next() -> UInt64 {
    x &+= 0x9E37_79B9_7F4A_7C15
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  return Xoshiro(seed: (next(), next(), next(), next()))
}

extension Xoshiro {
  /// A uniform value of a PropertyBased generator.
  public mutating func draw<T, S>(_ gen: Generator<T, S>) -> T { gen.run(using: &self) }
  public mutating func int(_ range: ClosedRange<Int>) -> Int { draw(Gen.int(in: range)) }
  public mutating func amount(_ range: ClosedRange<Int128>) -> Int128 {
    draw(Gen.int128(in: range))
  }
  public mutating func chance(_ p: Float) -> Bool { draw(Gen.bool(p)) }
  public mutating func pick<T: Sendable>(_ items: [T]) -> T { draw(Gen.element(of: items))! }
}

final class IssueCounter: Sendable {
  let count = Atomic<Int>(0)
}

/// Runs `body` for `count` cases (with the case index), each with a `Xoshiro` derived from
/// the seed; prints the seed; tags every issue with seed and case; stops after the first
/// failing case.
public func seededCheck(
  _ name: String, seed defaultSeed: UInt64, count: Int,
  _ body: @escaping (inout Xoshiro, Int) throws -> Void
) async {
  let seed = propertySeed(defaultSeed)
  print("property \(name): seed \(seed), \(count) cases (TALLY_SEED=\(seed) reproduces)")
  nonisolated(unsafe) let body = body
  for i in 0..<count {
    let counter = IssueCounter()
    let label = Comment(
      rawValue: "property \(name): seed \(seed), case \(i) (TALLY_SEED=\(seed) reproduces)")
    let tag = IssueHandlingTrait.compactMapIssues { issue in
      var issue = issue
      issue.comments.append(label)
      counter.count.add(1, ordering: .relaxed)
      return issue
    }
    do {
      try await tag.provideScope(for: Test.current!, testCase: Test.Case.current) {
        var rng = seededRNG(seed, i)
        try body(&rng, i)
      }
    } catch {
      Issue.record(error, label)
      return
    }
    if counter.count.load(ordering: .relaxed) > 0 { return }
  }
}

/// `seededCheck` for bodies that do not need the case index.
public func seededCheck(
  _ name: String, seed defaultSeed: UInt64, count: Int,
  _ body: @escaping (inout Xoshiro) throws -> Void
) async {
  await seededCheck(name, seed: defaultSeed, count: count) { rng, _ in try body(&rng) }
}
