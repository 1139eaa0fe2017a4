import PropertyBased
import TallyTestSupport
import Testing

@testable import TallyCore

private func decimal(_ s: String, _ scale: UInt8) -> Int128? {
  if case .success(let v) = Amount.parseDecimal(s, scale: scale) { return v }
  return nil
}

private func decimalRejection(_ s: String, _ scale: UInt8) -> Rejection? {
  if case .failure(let r) = Amount.parseDecimal(s, scale: scale) { return r }
  return nil
}

private let int128MaxDigits = "170141183460469231731687303715884105727"
private let int128MinDigits = "170141183460469231731687303715884105728"

@Suite("Amount.parseDecimal")
struct ParseDecimalTests {
  @Test(
    "Decimals up to the scale convert exactly to minor units",
    arguments: [
      ("10.50", 2, 1050), ("10.5", 2, 1050), ("10", 2, 1000), ("0.01", 2, 1), ("1", 0, 1),
      ("0", 2, 0), ("0.00", 2, 0), ("250.00", 2, 25000), ("1.000", 3, 1000),
      ("0.00000001", 8, 1), ("21000000.00000000", 8, 2_100_000_000_000_000),
      ("1.000000000000000001", 18, 1_000_000_000_000_000_001),
    ] as [(String, UInt8, Int128)])
  func convertsExactly(text: String, scale: UInt8, minor: Int128) {
    #expect(decimal(text, scale) == minor)
  }

  @Test("More decimals than the scale is INVALID_AMOUNT, never rounded")
  func moreDecimalsThanScaleIsRejected() throws {
    let r = try #require(decimalRejection("10.505", 2))
    #expect(r.code == .invalidAmount)
    #expect(r.details["scale"] == "2")
    #expect(r.details["value"] == "10.505")
    #expect(decimalRejection("10.500", 2)?.code == .invalidAmount)
    #expect(decimalRejection("1.5", 0)?.code == .invalidAmount)
    #expect(decimalRejection("0.000000001", 8)?.code == .invalidAmount)
  }

  @Test(
    "Malformed decimal text is INVALID_AMOUNT",
    arguments: [
      "", ".5", "5.", ".", "-1", "+1", "1e3", "1E3", " 1", "1 ", "1,000", "1_000", "1.2.3",
      "0x10", "١", "½", "1.-5", "--1", "NaN", "inf", "1\u{0}",
    ])
  func malformedIsRejected(text: String) {
    let r = decimalRejection(text, 2)
    #expect(r?.code == .invalidAmount, "\(text.debugDescription) → \(String(describing: r))")
  }

  @Test("Values at Int128.max parse; one more is INVALID_AMOUNT")
  func int128Boundary() {
    #expect(decimal(int128MaxDigits, 0) == Int128.max)
    #expect(decimal("17014118346046923173168730371588410572.7", 1) == Int128.max)
    #expect(decimalRejection(int128MinDigits, 0)?.code == .invalidAmount)
    #expect(decimalRejection("17014118346046923173168730371588410572.8", 1)?.code == .invalidAmount)
    // Scaling up can overflow even when the digits fit.
    #expect(decimalRejection("170141183460469231731687303715884105", 4)?.code == .invalidAmount)
    #expect(
      decimal("17014118346046923173168730371588410", 4)
        == 170_141_183_460_469_231_731_687_303_715_884_100_000)
  }

  @Test("Text longer than 60 bytes is rejected")
  func lengthLimit() {
    let sixty = String(repeating: "0", count: 59) + "1"
    #expect(decimal(sixty, 0) == 1)
    #expect(decimalRejection("0" + sixty, 0)?.code == .invalidAmount)
  }
}

@Suite("Amount.parseMinor")
struct ParseMinorTests {
  @Test(
    "Canonical minor-unit text parses",
    arguments: [("0", 0), ("1", 1), ("1050", 1050), ("9", 9), ("100", 100)] as [(String, Int128)])
  func parses(text: String, value: Int128) {
    #expect(Amount.parseMinor(text) == value)
  }

  @Test(
    "Leading zeros, signs, separators and non-digits are refused",
    arguments: [
      "", "00", "007", "01", "-1", "+1", "-0", " 1", "1 ", "1.0", "1,0", "1e3", "0x1", "١",
    ])
  func refuses(text: String) {
    #expect(Amount.parseMinor(text) == nil, "\(text.debugDescription)")
  }

  @Test("Int128.max parses; 2^127 and longer text overflow to nil")
  func overflowAt2To127() {
    #expect(Amount.parseMinor(int128MaxDigits) == Int128.max)
    #expect(Amount.parseMinor(int128MinDigits) == nil)
    #expect(Amount.parseMinor("999999999999999999999999999999999999999") == nil)
    #expect(Amount.parseMinor("1" + String(repeating: "0", count: 39)) == nil)
    let thirtyEightNines = String(repeating: "9", count: 38)
    #expect(Amount.parseMinor(thirtyEightNines).map { String($0) } == thirtyEightNines)
  }

  @Test("parseMinor(String(v)) == v for every non-negative Int128 (seeded)")
  func roundTrip() async {
    await seededCheck("parseMinor round trip", seed: 0x4D49_4E4F_5200_0001, count: 2000) { rng in
      let v = rng.draw(Gen.int128(in: 0...Int128.max))
      let small = Int128(rng.int(0...1_000_000))
      #expect(Amount.parseMinor(String(v)) == v)
      #expect(Amount.parseMinor(String(small)) == small)
    }
  }
}

@Suite("Amount.formatDecimal")
struct FormatDecimalTests {
  @Test(
    "Minor units format with exactly `scale` decimals",
    arguments: [
      (1050, 2, "10.50"), (5, 2, "0.05"), (0, 2, "0.00"), (0, 0, "0"), (7, 0, "7"),
      (-5, 2, "-0.05"), (-1050, 2, "-10.50"), (100, 2, "1.00"), (1, 18, "0.000000000000000001"),
      (123_456, 3, "123.456"), (-1, 0, "-1"),
    ] as [(Int128, UInt8, String)])
  func formats(minor: Int128, scale: UInt8, text: String) {
    #expect(Amount.formatDecimal(minor, scale: scale) == text)
  }

  @Test("The extremes of Int128 format without trapping")
  func extremes() {
    #expect(Amount.formatDecimal(.max, scale: 0) == int128MaxDigits)
    #expect(Amount.formatDecimal(.min, scale: 0) == "-" + int128MinDigits)
    #expect(Amount.formatDecimal(.min, scale: 2) == "-1701411834604692317316873037158841057.28")
    #expect(Amount.formatDecimal(.max, scale: 18) == "170141183460469231731.687303715884105727")
  }

  @Test("parseDecimal inverts formatDecimal for every scale 0…18 (seeded)")
  func roundTrip() async {
    await seededCheck("formatDecimal round trip", seed: 0x464D_5400_0000_0002, count: 3000) {
      rng in
      let scale = UInt8(rng.int(0...18))
      let v =
        rng.chance(0.5)
        ? rng.draw(Gen.int128(in: 0...Int128.max)) : Int128(rng.int(0...100_000_000))
      let text = Amount.formatDecimal(v, scale: scale)
      #expect(decimal(text, scale) == v, "\(v) at scale \(scale) → \(text)")
      #expect(text.utf8.filter { $0 == UInt8(ascii: ".") }.count == (scale > 0 ? 1 : 0))
      if v > 0 {
        #expect(Amount.formatDecimal(-v, scale: scale) == "-" + text)
      }
    }
  }
}
