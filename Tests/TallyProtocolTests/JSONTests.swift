import TallyTestSupport
import Testing

@testable import TallyProtocol

// MARK: Helpers

/// The sample ledger line from the protocol docs; also the benchmark input.
private let ledgerLine =
  #"{"id":"e-000001","legs":[{"account":"acct-1","side":"debit","amount":"1050"},"#
  + #"{"account":"acct-2","side":"credit","amount":"1050"}]}"#

private func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

private func parseError(_ input: [UInt8], limits: JSONLimits = .default) -> JSONError? {
  do throws(JSONError) {
    _ = try JSONParser.parse(input, limits: limits)
    return nil
  } catch {
    return error
  }
}

private func parseOK(
  _ text: String, limits: JSONLimits = .default,
  sourceLocation: SourceLocation = #_sourceLocation
) -> JSONValue? {
  do throws(JSONError) {
    return try JSONParser.parse(text, limits: limits)
  } catch {
    Issue.record("\(JSONWriter.quoted(text)) failed: \(error)", sourceLocation: sourceLocation)
    return nil
  }
}

/// Checks kind and offset, and that the message ends with the offset as documented.
private func expectFailure(
  _ input: [UInt8], _ kind: JSONError.Kind, at offset: Int, limits: JSONLimits = .default,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  let error = parseError(input, limits: limits)
  let context = "input \(input) gave \(error.map(String.init(describing:)) ?? "success")"
  #expect(error?.kind == kind, "\(context)", sourceLocation: sourceLocation)
  #expect(error?.offset == offset, "\(context)", sourceLocation: sourceLocation)
  if let error {
    #expect(error.message.hasSuffix("at byte \(offset)"), sourceLocation: sourceLocation)
  }
}

/// Same as the byte version, and also checks the `String` overload agrees.
private func expectFailure(
  _ text: String, _ kind: JSONError.Kind, at offset: Int, limits: JSONLimits = .default,
  sourceLocation: SourceLocation = #_sourceLocation
) {
  expectFailure(bytes(text), kind, at: offset, limits: limits, sourceLocation: sourceLocation)
  var stringError: JSONError?
  do throws(JSONError) {
    _ = try JSONParser.parse(text, limits: limits)
  } catch {
    stringError = error
  }
  #expect(
    stringError == parseError(bytes(text), limits: limits), sourceLocation: sourceLocation)
}

private func nested(_ depth: Int, open: String, close: String, inner: String = "") -> String {
  String(repeating: open, count: depth) + inner + String(repeating: close, count: depth)
}

// MARK: Round trips and API

@Test func sampleLedgerLineRoundTripsByteForByte() throws {
  let value = try JSONParser.parse(ledgerLine)
  #expect(JSONWriter.serialize(value) == ledgerLine)
  let legs = value.objectValue?["legs"]?.arrayValue
  #expect(legs?.count == 2)
  #expect(legs?.first?.objectValue?["amount"] == .string("1050"))
  #expect(value.objectValue?.keys == ["id", "legs"])
}

@Test func prettyInputSerializesCompactlyInMemberOrder() throws {
  let text =
    " {\n\t\"z\" : [ 1 , -0 , 1.5e10 , true , false , null ] ,\r\n \"a\" : { } ,"
    + " \"m\" : [ ] , \"s\" : \"x\" } "
  let value = try JSONParser.parse(text)
  let compact = #"{"z":[1,-0,1.5e10,true,false,null],"a":{},"m":[],"s":"x"}"#
  #expect(JSONWriter.serialize(value) == compact)
  #expect(value.objectValue?.keys == ["z", "a", "m", "s"])
}

@Test(arguments: [
  "null", "true", "false", "0", "-0", "\"\"", "[]", "{}", "[[[]]]", #"{"a":{"b":[{}]}}"#,
  #""é 😀 \u2028 \u0000""#, #"[1.50,1E+2,-12.34E-5]"#, #"{"":""}"#,
])
func scalarAndContainerRoundTrips(text: String) throws {
  let value = try JSONParser.parse(text)
  #expect(try JSONParser.parse(JSONWriter.serialize(value)) == value)
}

@Test func numbersKeepTheirRawText() throws {
  #expect(try JSONParser.parse("1.50") == .number("1.50"))
  #expect(try JSONParser.parse("1.50") != .number("1.5"))
  let big = "123456789012345678901234567890.000000000000000000001e-400"
  #expect(try JSONParser.parse(big) == .number(big))
}

@Test func accessorsOnlyMatchTheirOwnCase() throws {
  #expect(JSONValue.string("1").stringValue == "1")
  #expect(JSONValue.number("1").stringValue == nil)
  #expect(JSONValue.bool(false).boolValue == false)
  #expect(JSONValue.null.boolValue == nil)
  #expect(JSONValue.array([.null]).arrayValue == [.null])
  #expect(JSONValue.object(JSONObject()).arrayValue == nil)
  #expect(JSONValue.object(JSONObject([("k", .null)])).objectValue?["k"] == .null)
  #expect(JSONValue.string("x").objectValue == nil)
}

@Test func objectLookupOrderAndEquality() {
  let object = JSONObject([("b", .number("2")), ("a", .string("1"))])
  #expect(object["a"] == .string("1"))
  #expect(object["missing"] == nil)
  #expect(object.keys == ["b", "a"])
  // Equality is order-sensitive, mirroring the deterministic serialization.
  #expect(object != JSONObject([("a", .string("1")), ("b", .number("2"))]))
  #expect(object == JSONObject([("b", .number("2")), ("a", .string("1"))]))
  #expect(JSONObject() == JSONObject([]))
}

@Test func contiguousAndNonContiguousInputsAgree() throws {
  let raw = bytes(ledgerLine)
  let expected = try JSONParser.parse(raw)
  #expect(try JSONParser.parse(raw[...]) == expected)
  #expect(try JSONParser.parse(ledgerLine.utf8) == expected)
  // A lazy map has no contiguous storage, which exercises the copy-once path.
  #expect(try JSONParser.parse(raw.lazy.map { $0 }) == expected)
  #expect(throws: JSONError.self) { try JSONParser.parse(raw.dropLast().lazy.map { $0 }) }
}

@Test func errorDescriptionNamesKindAndOffset() {
  let error = parseError(bytes(#"{"amount":"1","amount":"100"}"#))
  #expect(error?.message == #"duplicate key "amount" at byte 14"#)
  #expect(error?.description == #"duplicateKey: duplicate key "amount" at byte 14"#)
}

// MARK: Syntax

@Test func syntaxErrorsReportWhereTheyWereFound() {
  expectFailure(#"{"a" 1}"#, .syntax, at: 5)
  expectFailure("[1,]", .syntax, at: 3)
  expectFailure(#"{"a":1,}"#, .syntax, at: 7)
  expectFailure("{'a':1}", .syntax, at: 1)
  expectFailure("['a']", .syntax, at: 1)
  expectFailure("[1 2]", .syntax, at: 3)
  expectFailure("[1,,2]", .syntax, at: 3)
  expectFailure("[,]", .syntax, at: 1)
  expectFailure("{1:2}", .syntax, at: 1)
  expectFailure(#"{"a"::1}"#, .syntax, at: 5)
  expectFailure(#"{"a":1]"#, .syntax, at: 6)
  expectFailure("[1}", .syntax, at: 2)
  expectFailure("// comment\n1", .syntax, at: 0)
  expectFailure("/* c */ 1", .syntax, at: 0)
  expectFailure("[1/*c*/]", .syntax, at: 2)
  expectFailure("NaN", .syntax, at: 0)
  expectFailure("[Infinity]", .syntax, at: 1)
  expectFailure("-Infinity", .syntax, at: 1)
  expectFailure("True", .syntax, at: 0)
  expectFailure("tRUE", .syntax, at: 1)
  expectFailure("nul", .syntax, at: 3)
  expectFailure("[nulL]", .syntax, at: 4)
  expectFailure("undefined", .syntax, at: 0)
}

@Test func truncatedDocumentsFailAtTheEnd() {
  expectFailure("[", .syntax, at: 1)
  expectFailure("[1", .syntax, at: 2)
  expectFailure("[1,", .syntax, at: 3)
  expectFailure("{", .syntax, at: 1)
  expectFailure(#"{"a""#, .syntax, at: 4)
  expectFailure(#"{"a":"#, .syntax, at: 5)
  expectFailure(#"{"a":1"#, .syntax, at: 6)
  expectFailure(#"{"a":1,"#, .syntax, at: 7)
  expectFailure(#""abc"#, .syntax, at: 4)
  expectFailure(#""ab\"#, .syntax, at: 4)
  expectFailure(#""\u00e9"#, .syntax, at: 7)
}

@Test func stringsRejectRawControlCharactersAndBadEscapes() {
  expectFailure("\"a\nb\"", .syntax, at: 2)
  expectFailure("\"\t\"", .syntax, at: 1)
  expectFailure([0x22, 0x00, 0x22], .syntax, at: 1)
  expectFailure([0x22, 0x1F, 0x22], .syntax, at: 1)
  expectFailure("\"\\n\u{1}\"", .syntax, at: 3)  // also on the escape (slow) path
  expectFailure(#""\x""#, .syntax, at: 1)
  expectFailure(#""\'""#, .syntax, at: 1)
  expectFailure(#""\U0041""#, .syntax, at: 1)
  expectFailure(#""\u12""#, .syntax, at: 1)
  expectFailure(#""ab\u12G4""#, .syntax, at: 3)
  expectFailure(#""\u 123""#, .syntax, at: 1)
  // DEL and escaped NUL are fine; the writer restores the escape.
  #expect(parseOK("\"\u{7F}\"") == .string("\u{7F}"))
  #expect(parseOK(#""a\u0000b""#) == .string("a\u{0}b"))
  #expect(JSONWriter.serialize(.string("a\u{0}b")) == #""a\u0000b""#)
}

@Test func escapesDecode() {
  let text = #""\"\\\/\b\f\n\r\t\u0041\u00e9\u20AC\uFFFF""#
  #expect(parseOK(text) == .string("\"\\/\u{8}\u{C}\n\r\t" + "A\u{E9}\u{20AC}\u{FFFF}"))
}

// MARK: Numbers

@Test(arguments: [
  "0", "-0", "1.5e10", "-12.34E-5", "10", "0.0", "-0.0e-0", "1E+2", "1e-0", "0e0",
  "123456789012345678901234567890", "9.999e999",
])
func validNumbers(text: String) throws {
  #expect(try JSONParser.parse(text) == .number(text))
  #expect(try JSONParser.parse("[\(text)]") == .array([.number(text)]))
  #expect(JSONParser.isValidNumber(text))
}

struct BadNumber: Sendable, CustomTestStringConvertible {
  var text: String
  var kind: JSONError.Kind
  var offset: Int
  var testDescription: String { "\(text) → \(kind)@\(offset)" }
}

@Test(arguments: [
  BadNumber(text: "01", kind: .syntax, offset: 1),
  BadNumber(text: "-01", kind: .syntax, offset: 2),
  BadNumber(text: "00", kind: .syntax, offset: 1),
  BadNumber(text: "1.", kind: .syntax, offset: 2),
  BadNumber(text: ".5", kind: .syntax, offset: 0),
  BadNumber(text: "+1", kind: .syntax, offset: 0),
  BadNumber(text: "-", kind: .syntax, offset: 1),
  BadNumber(text: "1e", kind: .syntax, offset: 2),
  BadNumber(text: "1e+", kind: .syntax, offset: 3),
  BadNumber(text: "1.e5", kind: .syntax, offset: 2),
  BadNumber(text: "1.5e", kind: .syntax, offset: 4),
  BadNumber(text: "--1", kind: .syntax, offset: 1),
  BadNumber(text: "- 1", kind: .syntax, offset: 1),
  BadNumber(text: "-a", kind: .syntax, offset: 1),
  BadNumber(text: "[01]", kind: .syntax, offset: 2),
  BadNumber(text: "[1.]", kind: .syntax, offset: 3),
  BadNumber(text: "[1e]", kind: .syntax, offset: 3),
  BadNumber(text: "0x10", kind: .trailingData, offset: 1),
  BadNumber(text: "1.5.2", kind: .trailingData, offset: 3),
])
func invalidNumbers(number: BadNumber) {
  expectFailure(number.text, number.kind, at: number.offset)
  #expect(!JSONParser.isValidNumber(number.text))
}

@Test func isValidNumberRejectsNonNumbers() {
  for text in ["", " 1", "1 ", "1,", "NaN", "1_000", "１"] {
    #expect(!JSONParser.isValidNumber(text), "\(text)")
  }
}

// MARK: Whitespace, empty input, trailing data

@Test func onlyTheFourRFCWhitespaceBytesAreAllowed() {
  #expect(parseOK(" \t\r\n[ \t\r\n1 \t\r\n, \t\r\n2 ]\n") == .array([.number("1"), .number("2")]))
  expectFailure("\u{0B}1", .syntax, at: 0)  // vertical tab
  expectFailure("\u{0C}1", .syntax, at: 0)  // form feed
  expectFailure("[1,\u{0C}2]", .syntax, at: 3)
  expectFailure("\u{A0}1", .syntax, at: 0)  // no-break space
  expectFailure("\u{FEFF}{}", .syntax, at: 0)  // byte order mark
  expectFailure("[\u{2028}]", .syntax, at: 1)
  expectFailure("1\u{0B}", .trailingData, at: 1)
}

@Test func emptyInput() {
  expectFailure("", .empty, at: 0)
  expectFailure("   ", .empty, at: 3)
  expectFailure(" \t\r\n", .empty, at: 4)
  expectFailure([UInt8](), .empty, at: 0)
}

@Test func trailingData() {
  expectFailure("{} {}", .trailingData, at: 3)
  expectFailure("1 2", .trailingData, at: 2)
  expectFailure(#""a"x"#, .trailingData, at: 3)
  expectFailure("null,", .trailingData, at: 4)
  expectFailure("[]]", .trailingData, at: 2)
  expectFailure("truex", .trailingData, at: 4)
  expectFailure("{}\n\u{0}", .trailingData, at: 3)
  expectFailure([0x31, 0x20, 0xFF], .trailingData, at: 2)
}

// MARK: Duplicate keys

@Test func duplicateKeysAreRejectedAtEveryLevel() {
  expectFailure(#"{"amount":"1","amount":"100"}"#, .duplicateKey, at: 14)
  expectFailure(#"{"a":{"b":1,"b":2}}"#, .duplicateKey, at: 12)
  expectFailure(#"[{"x":1},{"x":1,"y":2,"x":3}]"#, .duplicateKey, at: 22)
  expectFailure(#"{"a":[[{"b":{"c":1,"c":1}}]]}"#, .duplicateKey, at: 19)
  // Found at the key, before the (invalid) value is looked at.
  expectFailure(#"{"a":1,"a":x}"#, .duplicateKey, at: 7)
  // The same key in different objects is fine.
  #expect(parseOK(#"[{"a":1},{"a":2}]"#) != nil)
  #expect(parseOK(#"{"a":{"a":{"a":1}}}"#) != nil)
}

@Test func duplicateKeysAreComparedAfterUnescaping() {
  expectFailure(#"{"a":1,"\u0061":2}"#, .duplicateKey, at: 7)
  expectFailure(#"{"\/":1,"/":2}"#, .duplicateKey, at: 8)
  // Canonically equivalent spellings of "é" are one key (see Parser.isDuplicate).
  expectFailure(#"{"é":1,"e\u0301":2}"#, .duplicateKey, at: 8)
  // Different case is a different key.
  #expect(parseOK(#"{"a":1,"A":2}"#) != nil)
}

@Test func duplicateKeysInLargeObjectsUseTheSetPath() {
  let keys = (0..<40).map { "\"k\($0)\":\($0)" }
  #expect(parseOK("{" + keys.joined(separator: ",") + "}")?.objectValue?.keys.count == 40)
  for duplicate in [0, 15, 16, 39] {
    let prefix = "{" + keys.joined(separator: ",") + ","
    expectFailure(prefix + "\"k\(duplicate)\":0}", .duplicateKey, at: prefix.utf8.count)
  }
  // A repeat of an early key, after the switch to the Set, must still be caught.
  let early = "{" + keys[0..<20].joined(separator: ",") + ","
  let late = early + "\"k3\":0," + keys[20...].joined(separator: ",") + "}"
  expectFailure(late, .duplicateKey, at: early.utf8.count)
}

// MARK: Limits

@Test func depthLimitAtMaxAndMaxPlusOne() {
  let maxDepth = JSONLimits.default.maxDepth
  #expect(parseOK(nested(maxDepth, open: "[", close: "]")) != nil)
  expectFailure(nested(maxDepth + 1, open: "[", close: "]"), .tooDeep, at: maxDepth)
  #expect(parseOK(nested(maxDepth, open: #"{"a":"#, close: "}", inner: "1")) != nil)
  expectFailure(
    nested(maxDepth + 1, open: #"{"a":"#, close: "}", inner: "1"), .tooDeep, at: maxDepth * 5)
  let three = JSONLimits(maxDepth: 3)
  #expect(parseOK(#"[{"a":[1]}]"#, limits: three) != nil)
  expectFailure(#"[{"a":[{}]}]"#, .tooDeep, at: 7, limits: three)
  let flat = JSONLimits(maxDepth: 0)
  #expect(parseOK("1", limits: flat) == .number("1"))
  expectFailure("[]", .tooDeep, at: 0, limits: flat)
}

@Test func hugeNestingStopsAtTheLimitWithoutDeepRecursion() {
  expectFailure(String(repeating: "[", count: 500_000), .tooDeep, at: 16)
  expectFailure(String(repeating: #"{"a":"#, count: 100_000), .tooDeep, at: 80)
}

@Test func sizeLimitAtMaxAndMaxPlusOne() {
  let limits = JSONLimits(maxBytes: 10)
  #expect(parseOK(#""12345678""#, limits: limits) == .string("12345678"))
  expectFailure(#""123456789""#, .tooLarge, at: 10, limits: limits)
  let oversized = [UInt8](repeating: 0x20, count: (1 << 20) + 1)
  expectFailure(oversized, .tooLarge, at: 1 << 20)
  // Checked before the copy on the non-contiguous path as well.
  do throws(JSONError) {
    _ = try JSONParser.parse(oversized.lazy.map { $0 })
    Issue.record("oversized input was accepted")
  } catch {
    #expect(error.kind == .tooLarge && error.offset == 1 << 20)
  }
}

@Test func stringLimitAtMaxAndMaxPlusOne() {
  let four = JSONLimits(maxStringBytes: 4)
  #expect(parseOK(#""abcd""#, limits: four) == .string("abcd"))
  expectFailure(#""abcde""#, .stringTooLong, at: 5, limits: four)
  expectFailure(#""abcdefgh"#, .stringTooLong, at: 5, limits: four)  // before end of input
  // Keys count too.
  expectFailure(#"{"abcde":1}"#, .stringTooLong, at: 6, limits: four)
  // Multi-byte characters count in UTF-8 bytes; one that straddles the limit is too long.
  #expect(parseOK(#""abé""#, limits: four) == .string("abé"))
  expectFailure(#""abcé""#, .stringTooLong, at: 5, limits: four)
  // After unescaping: "\n" is one byte, "\u00e9" two, a surrogate pair four.
  #expect(parseOK(#""a\nbc""#, limits: four) == .string("a\nbc"))
  expectFailure(#""a\nbcd""#, .stringTooLong, at: 6, limits: four)
  #expect(parseOK(#""ab\u00e9""#, limits: four) == .string("abé"))
  expectFailure(#""abc\u00e9""#, .stringTooLong, at: 4, limits: four)
  #expect(parseOK(#""\uD83D\uDE00""#, limits: four) == .string("😀"))
  expectFailure(#""\uD83D\uDE00""#, .stringTooLong, at: 1, limits: JSONLimits(maxStringBytes: 3))
  expectFailure(#""\n\nabc""#, .stringTooLong, at: 7, limits: four)
  expectFailure("\"\\n\\né\"", .stringTooLong, at: 5, limits: JSONLimits(maxStringBytes: 3))
  let zero = JSONLimits(maxStringBytes: 0)
  #expect(parseOK(#"{"":""}"#, limits: zero) != nil)
  expectFailure(#""a""#, .stringTooLong, at: 1, limits: zero)
  let defaultMax = JSONLimits.default.maxStringBytes
  let longest = String(repeating: "x", count: defaultMax)
  #expect(parseOK("\"\(longest)\"")?.stringValue?.utf8.count == defaultMax)
  expectFailure("\"\(longest)x\"", .stringTooLong, at: 1 + defaultMax)
}

@Test func memberLimitAtMaxAndMaxPlusOne() {
  let three = JSONLimits(maxMembers: 3)
  #expect(parseOK("[1,2,3]", limits: three)?.arrayValue?.count == 3)
  expectFailure("[1,2,3,4]", .tooManyMembers, at: 7, limits: three)
  #expect(parseOK(#"{"a":1,"b":2,"c":3}"#, limits: three) != nil)
  expectFailure(#"{"a":1,"b":2,"c":3,"d":4}"#, .tooManyMembers, at: 19, limits: three)
  // The default allows 10 000 per container, checked per container, not in total.
  let array = "[" + Array(repeating: "0", count: 10_000).joined(separator: ",")
  #expect(parseOK(array + "]")?.arrayValue?.count == 10_000)
  expectFailure(array + ",0]", .tooManyMembers, at: array.utf8.count + 1)
  let members = (0..<10_000).map { "\"\($0)\":[0]" }.joined(separator: ",")
  #expect(parseOK("{" + members + "}")?.objectValue?.members.count == 10_000)
  let over = "{" + members + ","
  expectFailure(over + #""x":1}"#, .tooManyMembers, at: over.utf8.count)
}

// MARK: UTF-8

@Test(
  arguments: [
    [0xC0, 0x80],  // overlong NUL
    [0xC1, 0xBF],  // overlong
    [0xE0, 0x80, 0x80],  // overlong 3-byte
    [0xE0, 0x9F, 0xBF],  // overlong 3-byte (U+07FF)
    [0xF0, 0x80, 0x80, 0x80],  // overlong 4-byte
    [0xF0, 0x8F, 0xBF, 0xBF],  // overlong 4-byte (U+FFFF)
    [0xED, 0xA0, 0x80],  // UTF-8 encoded surrogate U+D800
    [0xED, 0xBF, 0xBF],  // UTF-8 encoded surrogate U+DFFF
    [0xF4, 0x90, 0x80, 0x80],  // U+110000
    [0xF5, 0x80, 0x80, 0x80],  // lead byte beyond U+10FFFF
    [0xF8, 0x88, 0x80, 0x80, 0x80],  // 5-byte form
    [0xFE], [0xFF],
    [0x80],  // lone continuation
    [0xBF, 0x80],
    [0xC3],  // truncated 2-byte
    [0xE2, 0x82],  // truncated 3-byte
    [0xF0, 0x9F, 0x98],  // truncated 4-byte
    [0xE2, 0x28, 0xA1],  // bad second byte
    [0xC3, 0x41],
  ] as [[UInt8]])
func invalidUTF8InStringsIsRejected(sequence: [UInt8]) {
  expectFailure([0x22] + sequence + [0x22], .invalidUTF8, at: 1)
  expectFailure(bytes(#"{"ok":"#) + [0x22, 0x61] + sequence + [0x22, 0x7D], .invalidUTF8, at: 8)
  expectFailure([0x22] + sequence + [0x3A, 0x22], .invalidUTF8, at: 1)
  // After an escape the slow path validates the same way.
  expectFailure(bytes(#""\n"#) + sequence + [0x22], .invalidUTF8, at: 3)
  // Keys too.
  expectFailure([0x7B, 0x22] + sequence + bytes(#"":1}"#), .invalidUTF8, at: 2)
}

@Test(
  arguments: [
    [0xC2, 0x80], [0xDF, 0xBF],  // U+0080, U+07FF
    [0xE0, 0xA0, 0x80], [0xED, 0x9F, 0xBF],  // U+0800, U+D7FF
    [0xEE, 0x80, 0x80], [0xEF, 0xBF, 0xBF],  // U+E000, U+FFFF
    [0xF0, 0x90, 0x80, 0x80], [0xF4, 0x8F, 0xBF, 0xBF],  // U+10000, U+10FFFF
  ] as [[UInt8]])
func boundaryUTF8IsAccepted(sequence: [UInt8]) throws {
  let value = try JSONParser.parse([0x22] + sequence + [0x22])
  #expect(value.stringValue.map { Array($0.utf8) } == sequence)
  #expect(Array(JSONWriter.serialize(value).utf8) == [0x22] + sequence + [0x22])
}

@Test func nonASCIIOutsideStrings() {
  expectFailure([0x5B, 0xFF, 0x5D], .invalidUTF8, at: 1)
  expectFailure([0x5B, 0x31, 0x2C, 0xC0, 0x80, 0x5D], .invalidUTF8, at: 3)
  expectFailure([0xED, 0xA0, 0x80], .invalidUTF8, at: 0)
  // Well-formed but not JSON: a syntax error.
  expectFailure("[é]", .syntax, at: 1)
  #expect(
    parseError(bytes("[é]"))?.message
      == "unexpected character U+00E9, expected a value at byte 1")
}

// MARK: Surrogates

@Test func surrogatePairsDecode() {
  #expect(parseOK(#""\uD83D\uDE00""#) == .string("😀"))
  #expect(parseOK(#""\ud83d\ude00""#) == .string("😀"))
  #expect(parseOK(#""\uD800\uDC00""#) == .string("\u{10000}"))
  #expect(parseOK(#""\uDBFF\uDFFF""#) == .string("\u{10FFFF}"))
  #expect(parseOK(#""x\uD834\uDD1Ey""#) == .string("x\u{1D11E}y"))
  #expect(parseOK(#""\uD7FF\uE000""#) == .string("\u{D7FF}\u{E000}"))
}

@Test func loneSurrogatesAreRejected() {
  expectFailure(#""\uD83D""#, .syntax, at: 1)
  expectFailure(#""ab\uD83D""#, .syntax, at: 3)
  expectFailure(#""\uD83Dx""#, .syntax, at: 1)
  expectFailure(#""\uD83D\u0041""#, .syntax, at: 1)
  expectFailure(#""\uD83D\uD83D""#, .syntax, at: 1)
  expectFailure(#""\uD83D\n""#, .syntax, at: 1)
  expectFailure(#""\uD83D\uDE""#, .syntax, at: 1)
  expectFailure(#""\uDE00""#, .syntax, at: 1)
  expectFailure(#""\uDE00\uD83D""#, .syntax, at: 1)
  expectFailure(#"{"\uDFFF":1}"#, .syntax, at: 2)
  #expect(parseError(bytes(#""\uDE00""#))?.message == #"unpaired surrogate \uDE00 at byte 1"#)
}

// MARK: Writer

@Test func writerEscapesOnlyWhatItMust() {
  #expect(JSONWriter.quoted(#"a"b\c/d"#) == #""a\"b\\c/d""#)
  #expect(JSONWriter.quoted("\n\r\t\u{8}\u{C}") == #""\n\r\t\b\f""#)
  #expect(JSONWriter.quoted("\u{0}\u{1}\u{1B}\u{1F}") == #""\u0000\u0001\u001b\u001f""#)
  #expect(JSONWriter.quoted("\u{7F}é😀\u{2028}e\u{301}") == "\"\u{7F}é😀\u{2028}e\u{301}\"")
  #expect(JSONWriter.quoted("") == #""""#)
  for code in 0..<0x20 {
    let text = "<\(Character(Unicode.Scalar(UInt8(code))))>"
    #expect(parseOK(JSONWriter.quoted(text)) == .string(text))
  }
}

@Test func writerBuildsHandMadeValuesDeterministically() {
  let entry = JSONValue.object(
    JSONObject([
      ("id", .string("e-1")),
      ("amount", .number("10.50")),
      ("tags", .array([.null, .bool(true), .bool(false), .array([]), .object(JSONObject())])),
      ("memo\n", .string("say \"hi\"")),
    ]))
  let expected =
    #"{"id":"e-1","amount":10.50,"tags":[null,true,false,[],{}],"#
    + #""memo\n":"say \"hi\""}"#
  #expect(JSONWriter.serialize(entry) == expected)
  var writer = JSONWriter()
  writer.write(entry)
  writer.write(.number("1"))
  #expect(writer.string == expected + "1")
  #expect(writer.bytes == Array((expected + "1").utf8))
  #expect(JSONWriter().bytes.isEmpty)
}

// MARK: Fuzz

/// Bytes that matter to the grammar, so random inputs get past the first byte more often.
private let interestingBytes: [UInt8] =
  Array(#"{}[]:,"\/ -+.eE0123456789truefalsnu"#.utf8)
  + [
    0x09, 0x0A, 0x0D, 0x00, 0x1F, 0x7F, 0x80, 0xBF, 0xC0, 0xC3, 0xA9, 0xED, 0xA0, 0xF0, 0xF4, 0xFF,
  ]

private let fuzzScalars: [Unicode.Scalar] = [
  "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{0}", "\u{1F}", "\u{7F}", "é", "e",
  "\u{301}", "€", "\u{2028}", "\u{FFFF}", "😀", "\u{10FFFF}",
]

private func randomString(_ rng: inout SplitMix64) -> String {
  var text = String.UnicodeScalarView()
  for _ in 0..<Int.random(in: 0...6, using: &rng) {
    text.append(fuzzScalars[Int.random(in: 0..<fuzzScalars.count, using: &rng)])
  }
  return String(text)
}

private func randomNumber(_ rng: inout SplitMix64) -> String {
  var text = Bool.random(using: &rng) ? "-" : ""
  if Int.random(in: 0..<4, using: &rng) == 0 {
    text += "0"
  } else {
    text += String(Int.random(in: 1...999_999, using: &rng))
  }
  if Bool.random(using: &rng) { text += "." + String(Int.random(in: 0...999, using: &rng)) }
  if Bool.random(using: &rng) {
    text += ["e", "E", "e+", "E-"][Int.random(in: 0..<4, using: &rng)]
    text += String(Int.random(in: 0...400, using: &rng))
  }
  return text
}

private func randomValue(_ rng: inout SplitMix64, depth: Int) -> JSONValue {
  switch Int.random(in: 0..<(depth >= 5 ? 5 : 7), using: &rng) {
  case 0: return .null
  case 1: return .bool(Bool.random(using: &rng))
  case 2: return .number(randomNumber(&rng))
  case 3, 4: return .string(randomString(&rng))
  case 5:
    return .array(
      (0..<Int.random(in: 0...4, using: &rng)).map { _ in randomValue(&rng, depth: depth + 1) })
  default:
    var object = JSONObject()
    var used = Set<String>()  // same (canonical) equality the parser uses for duplicates
    for _ in 0..<Int.random(in: 0...4, using: &rng) {
      let key = randomString(&rng)
      if used.insert(key).inserted {
        object.members.append((key: key, value: randomValue(&rng, depth: depth + 1)))
      }
    }
    return .object(object)
  }
}

private func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
  var output = input
  for _ in 0..<Int.random(in: 1...3, using: &rng) {
    let byte = interestingBytes[Int.random(in: 0..<interestingBytes.count, using: &rng)]
    let position = Int.random(in: 0...output.count, using: &rng)
    switch Int.random(in: 0..<5, using: &rng) {
    case 0 where position < output.count: output[position] = byte
    case 1: output.insert(byte, at: position)
    case 2 where position < output.count: output.remove(at: position)
    case 3:
      let length = Int.random(in: 0...(output.count - position), using: &rng)
      output.insert(contentsOf: output[position..<position + length], at: position)
    default: output.removeSubrange(position...)
    }
  }
  return output
}

private struct FuzzStats {
  var accepted = 0
  var rejected = 0
}

/// The fuzz oracle: any input either parses to a value that survives a write/parse round trip
/// unchanged, or fails with an in-range offset and a message naming that offset.
private func check(_ input: [UInt8], _ limits: JSONLimits, _ stats: inout FuzzStats) {
  do throws(JSONError) {
    let value = try JSONParser.parse(input, limits: limits)
    stats.accepted += 1
    let text = JSONWriter.serialize(value)
    // Compact output is never longer and never deeper, so the same limits must accept it.
    #expect(text.utf8.count <= input.count, "\(input)")
    let again = try JSONParser.parse(text, limits: limits)
    #expect(again == value, "\(input)")
    #expect(JSONWriter.serialize(again) == text, "\(input)")
  } catch {
    stats.rejected += 1
    #expect(error.offset >= 0 && error.offset <= input.count, "\(input): \(error)")
    #expect(error.message.hasSuffix("at byte \(error.offset)"), "\(input): \(error)")
  }
}

@Test func seededFuzzNeverCrashesAndRoundTrips() {
  let seed: UInt64 = 0x7A11_5EED_2024_0001
  print("JSON fuzz seed: 0x\(String(seed, radix: 16))")
  var rng = SplitMix64(seed: seed)
  let tight = JSONLimits(maxBytes: 64, maxDepth: 3, maxStringBytes: 5, maxMembers: 3)
  var stats = FuzzStats()

  for round in 0..<20_000 {
    var input: [UInt8] = []
    for _ in 0..<Int.random(in: 0...32, using: &rng) {
      input.append(
        Bool.random(using: &rng)
          ? interestingBytes[Int.random(in: 0..<interestingBytes.count, using: &rng)]
          : UInt8.random(in: 0...255, using: &rng))
    }
    check(input, round % 4 == 0 ? tight : .default, &stats)
  }

  for round in 0..<20_000 {
    let value = randomValue(&rng, depth: 0)
    let text = JSONWriter.serialize(value)
    #expect((try? JSONParser.parse(text)) == value, "\(text)")
    check(mutate(Array(text.utf8), &rng), round % 4 == 0 ? tight : .default, &stats)
  }
  print("JSON fuzz: \(stats.accepted) accepted, \(stats.rejected) rejected")
  // Guards against a generator change that silently stops exercising one side.
  #expect(stats.accepted > 2_000 && stats.rejected > 20_000)
}

@Test func generatedNumbersAreValid() {
  var rng = SplitMix64(seed: 42)
  for _ in 0..<2_000 {
    let text = randomNumber(&rng)
    #expect(JSONParser.isValidNumber(text), "\(text)")
  }
}
