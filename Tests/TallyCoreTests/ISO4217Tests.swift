import Testing

@testable import TallyCore

@Suite("ISO 4217 currency table")
struct ISO4217Tests {
  @Test(
    "Known minor-unit scales",
    arguments: [
      ("JPY", 0), ("EUR", 2), ("USD", 2), ("BHD", 3), ("KWD", 3), ("CLF", 4), ("GBP", 2),
    ] as [(String, UInt8)])
  func knownScales(code: String, scale: UInt8) {
    #expect(ISO4217.minorUnits(of: code) == scale)
  }

  @Test(
    "Zero, three and four decimal currencies and funds codes",
    arguments: [
      ("KRW", 0), ("ISK", 0), ("CLP", 0), ("VND", 0), ("XOF", 0), ("XAF", 0), ("XPF", 0),
      ("PYG", 0), ("UGX", 0), ("RWF", 0), ("KMF", 0), ("GNF", 0), ("DJF", 0), ("VUV", 0),
      ("BIF", 0), ("UYI", 0), ("IQD", 3), ("JOD", 3), ("LYD", 3), ("OMR", 3), ("TND", 3),
      ("UYW", 4), ("BOV", 2), ("COU", 2), ("MXV", 2), ("USN", 2), ("CHE", 2), ("CHW", 2),
      ("VES", 2), ("VED", 2), ("SLE", 2), ("ZWG", 2), ("MRU", 2), ("STN", 2), ("XCG", 2),
    ] as [(String, UInt8)])
  func otherScales(code: String, scale: UInt8) {
    #expect(ISO4217.minorUnits(of: code) == scale)
  }

  @Test(
    "Unknown or malformed codes return nil",
    arguments: [
      "ABC", "eur", "", "EURO", "EU", "Eur", " EUR", "EUR ", "E1R", "ÉUR", "EUR\u{0301}",
    ])
  func unknownCodes(code: String) {
    #expect(ISO4217.minorUnits(of: code) == nil)
  }

  @Test(
    "N.A. and withdrawn codes are not listed",
    arguments: [
      "XAU", "XAG", "XPT", "XPD", "XDR", "XBA", "XBB", "XBC", "XBD", "XSU", "XUA", "XTS",
      "XXX", "HRK", "SLL", "ZWL",
    ])
  func excludedCodes(code: String) {
    #expect(ISO4217.minorUnits(of: code) == nil)
  }

  @Test("Entries are sorted by code and unique")
  func entriesSortedAndUnique() {
    let codes = ISO4217.entries.map(\.code)
    for (previous, next) in zip(codes, codes.dropFirst()) {
      #expect(previous < next, "\(previous) should sort strictly before \(next)")
    }
  }

  @Test("Every code is three uppercase ASCII letters")
  func codesAreWellFormed() {
    for entry in ISO4217.entries {
      let bytes = Array(entry.code.utf8)
      #expect(bytes.count == 3, "\(entry.code)")
      #expect(bytes.allSatisfy { (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains($0) })
    }
  }

  @Test("Table size is plausible for ISO 4217 list one")
  func entryCount() {
    #expect((150...200).contains(ISO4217.entries.count))
  }

  @Test("Every entry is found by lookup with its own scale")
  func lookupMatchesEntries() {
    for entry in ISO4217.entries {
      #expect(ISO4217.minorUnits(of: entry.code) == entry.minorUnits, "\(entry.code)")
      #expect(entry.minorUnits <= 4, "\(entry.code)")
    }
  }
}
