import PropertyBased
import TallyTestSupport
import Testing

@testable import TallyReconcile

@Suite("Damaged statements")
struct FuzzTests {
  /// Randomly damaged fixtures either parse to a consistent statement or fail with a code;
  /// they never crash (no input reaches a precondition) and never give a partial statement.
  @Test(
    "Damaged inputs parse consistently or fail with a stable code",
    arguments: [
      ("statement.csv", StatementFormat.csv), ("statement.camt053.xml", .camt053),
      ("statement.mt940", .mt940),
    ])
  func damagedInputs(file: String, format: StatementFormat) async {
    let original = fixture(file)
    await seededCheck("damaged \(format)", seed: 0xF022_0000_0000_0001, count: 400) {
      (rng: inout Xoshiro) in
      var bytes = original
      for _ in 0..<rng.int(1...3) {
        let at = rng.int(0...(bytes.count - 1))
        switch rng.int(0...4) {
        case 0: bytes[at] = UInt8(rng.int(0...255))
        case 1: bytes[at] = rng.pick(Array(",;:\"'<>/&?+-|\\\n\r 0123456789CDRNF.".utf8))
        case 2: bytes.removeSubrange(at..<min(bytes.count, at + rng.int(1...40)))
        case 3: bytes.insert(contentsOf: bytes[at..<min(bytes.count, at + rng.int(1...40))], at: at)
        default: bytes.removeSubrange(at...)
        }
        if bytes.isEmpty { bytes = [0x20] }
      }
      do throws(StatementError) {
        let s = try StatementParser.parse(bytes, format: format, scale: testScale)
        #expect(s.lines.map(\.index) == s.lines.indices.map { $0 + 1 })
        #expect(s.lines.allSatisfy { $0.amountMinor > 0 && $0.currency == s.currency })
        #expect(Set(s.lines.map(\.identity)).count == s.lines.count)
        #expect(s.opening.map { $0.currency == s.currency } ?? true)
        #expect(s.closing.map { $0.currency == s.currency } ?? true)
      } catch {
        #expect(StatementError.codes.contains(error.code), "\(error)")
        #expect(!error.location.isEmpty && !error.message.isEmpty, "\(error)")
      }
    }
  }
}
