import PropertyBased
import TallyTestSupport
import Testing

@testable import TallyReconcile

@Suite("Amounts, dates and UTF-8")
struct FieldTests {
  @Test(
    "Decimal text becomes exact minor units",
    arguments: [
      ("10.50", 2, UInt8(ascii: "."), Int128(1050)), ("10", 2, UInt8(ascii: "."), 1000),
      ("0.01", 2, UInt8(ascii: "."), 1), ("007", 0, UInt8(ascii: "."), 7),
      ("1,5", 3, UInt8(ascii: ","), 1500), ("1.2345", 4, UInt8(ascii: "."), 12345),
      ("170141183460469231731687303715884105727", 0, UInt8(ascii: "."), Int128.max),
    ])
  func exactAmounts(text: String, scale: Int, separator: UInt8, minor: Int128) {
    #expect(Amounts.parse(text[...].utf8, scale: scale, separator: separator) == .success(minor))
  }

  @Test("Refused: more decimals than the scale (never rounded), syntax, overflow")
  func refusedAmounts() {
    let dot = UInt8(ascii: ".")
    #expect(
      Amounts.parse("1.005"[...].utf8, scale: 2, separator: dot) == .failure(.tooManyDecimals(3)))
    #expect(
      Amounts.parse("1.50"[...].utf8, scale: 0, separator: dot) == .failure(.tooManyDecimals(2)))
    for bad in ["", ".", "1.", ".5", "1..2", "1.2.3", "-1", "+1", "1e2", " 1", "1 ", "١"] {
      #expect(Amounts.parse(bad[...].utf8, scale: 2, separator: dot) == .failure(.syntax), "\(bad)")
    }
    #expect(
      Amounts.parse("170141183460469231731687303715884105728"[...].utf8, scale: 0, separator: dot)
        == .failure(.outOfRange))
    #expect(
      Amounts.parse("17014118346046923173168730371588410572"[...].utf8, scale: 2, separator: dot)
        == .failure(.outOfRange))
    #expect(
      Amounts.parse("1,"[...].utf8, scale: 2, separator: 44, trailingSeparator: true)
        == .success(100))
    #expect(
      Amounts.parse("1"[...].utf8, scale: 2, separator: 44, separatorRequired: true)
        == .failure(.syntax))
  }

  @Test("Dates: ISO dates and date-times, MT940 YYMMDD in 2000–2099")
  func dates() {
    #expect(Dates.iso("2024-02-29") == day("2024-02-29"))
    #expect(Dates.iso("2023-02-29") == nil)
    #expect(Dates.isoDateOrDateTime("2024-03-01T23:59:59.123+14:00") == day("2024-03-01"))
    #expect(Dates.isoDateOrDateTime("2024-03-01T24:00:00") == nil)
    #expect(Dates.isoDateOrDateTime("2024-03-01Tnoon") == nil)
    #expect(Dates.yymmdd(Array("991231".utf8)[...]) == day("2099-12-31"))
    #expect(Dates.yymmdd(Array("000101".utf8)[...]) == day("2000-01-01"))
    #expect(Dates.yymmdd(Array("000230".utf8)[...]) == nil)
  }

  @Test("The UTF-8 check agrees with the standard library on random bytes")
  func utf8CheckAgreesWithStdlib() async {
    await seededCheck("utf-8 check", seed: 0x0717_F800_0000_0001, count: 2000) { rng in
      var bytes = [UInt8]()
      for _ in 0..<rng.int(0...12) {
        switch rng.int(0...3) {
        case 0: bytes.append(UInt8(rng.int(0...0x7F)))
        case 1: bytes += Array(rng.pick(["é", "€", "𝄞", "\n", "ß"]).utf8)
        case 2: bytes.append(UInt8(rng.int(0x80...0xFF)))
        default: bytes += [0xED, UInt8(rng.int(0x80...0xBF)), 0x80]  // surrogates and near
        }
      }
      let valid = String(validating: bytes, as: UTF8.self) != nil
      #expect((UTF8Check.firstInvalidLine(bytes) == nil) == valid, "\(bytes)")
    }
  }

  @Test("The UTF-8 check names the line of the first bad byte")
  func utf8CheckLine() {
    #expect(UTF8Check.firstInvalidLine(Array("a\nb\nc".utf8) + [0xC3]) == 3)
    #expect(UTF8Check.firstInvalidLine([0xE2, 0x82]) == 1)
    #expect(UTF8Check.firstInvalidLine([0xF4, 0x90, 0x80, 0x80]) == 1)  // above U+10FFFF
    #expect(UTF8Check.firstInvalidLine([0xC0, 0x80]) == 1)  // overlong NUL
    #expect(UTF8Check.firstInvalidLine(Array("ok €\n𝄞".utf8)) == nil)
  }

  @Test("Text.value of a String trims exactly as of its Substring (spaces, marks, CRLF)")
  func valueFastPathAgrees() async {
    let parts = ["a", "É", " ", "\t", "\r\n", "\n", "\u{301}", "x y", "|", "😀", "\r"]
    await seededCheck("text value", seed: 0x7E47_0000_0000_0001, count: 5000) { rng in
      var s = ""
      for _ in 0..<rng.int(0...6) { s += rng.pick(parts) }
      #expect(Text.value(s) == Text.value(s[...]), "\(Array(s.unicodeScalars))")
    }
  }
}
