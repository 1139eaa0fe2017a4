import Testing

@testable import TallyCore

private func metadataRejection(_ pairs: [(String, String)]) -> Rejection? {
  if case .failure(let r) = Metadata.make(pairs) { return r }
  return nil
}

private func metadata(_ pairs: [(String, String)]) -> Metadata? {
  try? Metadata.make(pairs).get()
}

@Suite("Metadata limits")
struct MetadataTests {
  @Test("32 pairs are accepted; 33 are INVALID_METADATA")
  func pairCount() {
    let pairs = (0..<33).map { (String(format2: $0), "v") }
    #expect(metadata(Array(pairs.prefix(32)))?.pairs.count == 32)
    #expect(metadataRejection(pairs)?.code == .invalidMetadata)
  }

  @Test("Keys of 64 bytes are accepted; 65 bytes and empty keys are INVALID_METADATA")
  func keyLength() {
    #expect(metadata([(String(repeating: "k", count: 64), "v")]) != nil)
    #expect(metadataRejection([(String(repeating: "k", count: 65), "v")])?.code == .invalidMetadata)
    #expect(metadataRejection([("", "v")])?.code == .invalidMetadata)
    // Bytes, not characters: 32 × "é" is 64 bytes, 33 × "é" is 66.
    #expect(metadata([(String(repeating: "é", count: 32), "v")]) != nil)
    let tooLong = metadataRejection([(String(repeating: "é", count: 33), "v")])
    #expect(tooLong?.code == .invalidMetadata)
  }

  @Test("Values of 0 and 512 bytes are accepted; 513 bytes is INVALID_METADATA")
  func valueLength() {
    #expect(metadata([("k", "")]) != nil)
    #expect(metadata([("k", String(repeating: "v", count: 512))]) != nil)
    let r = metadataRejection([("k", String(repeating: "v", count: 513))])
    #expect(r?.code == .invalidMetadata)
    #expect(r?.details["key"] == "k")
    let euros = metadataRejection([("k", String(repeating: "€", count: 171))])
    #expect(euros?.code == .invalidMetadata)
  }

  @Test("Repeated keys are INVALID_METADATA")
  func repeatedKeys() {
    let r = metadataRejection([("a", "1"), ("b", "2"), ("a", "3")])
    #expect(r?.code == .invalidMetadata)
    #expect(r?.details["key"] == "a")
  }

  @Test("Pairs are sorted by the keys' UTF-8 bytes so equal metadata is equal")
  func sortedByBytes() {
    let m = metadata([("é", "4"), ("b", "3"), ("a", "2"), ("B", "1")])
    #expect(m?.pairs.map(\.key) == ["B", "a", "b", "é"])
    #expect(m == metadata([("B", "1"), ("a", "2"), ("b", "3"), ("é", "4")]))
    #expect(m?["b"] == "3")
    #expect(m?["c"] == nil)
  }
}

@Suite("Field validation")
struct FieldValidationTests {
  @Test("Ids are 1…max bytes of [A-Za-z0-9._:-]")
  func ids() {
    #expect(Validate.id("acme:wallet-1_A.b", maxBytes: 64))
    #expect(Validate.id(String(repeating: "a", count: 64), maxBytes: 64))
    #expect(!Validate.id(String(repeating: "a", count: 65), maxBytes: 64))
    for bad in ["", "a b", "a/b", "é", "a\u{0}", "a+b", "a@b", "a#b", "ａ"] {
      #expect(!Validate.id(bad, maxBytes: 64), "\(bad.debugDescription)")
    }
  }

  @Test("Asset codes are 1…16 bytes of [A-Z0-9_]")
  func assetCodes() {
    #expect(Validate.assetCode("BTC"))
    #expect(Validate.assetCode("USDC_2"))
    #expect(Validate.assetCode(String(repeating: "A", count: 16)))
    for bad in ["", "btc", "BT-C", "BTC ", String(repeating: "A", count: 17), "ÉUR"] {
      #expect(!Validate.assetCode(bad), "\(bad.debugDescription)")
    }
  }

  @Test("Text is 1…max bytes without C0 controls or DEL")
  func text() {
    #expect(Validate.text("Acme Payments — EU", maxBytes: 256))
    #expect(Validate.text(String(repeating: "x", count: 128), maxBytes: 128))
    #expect(!Validate.text(String(repeating: "x", count: 129), maxBytes: 128))
    for bad in ["", "a\nb", "a\tb", "\u{7f}", "a\u{0}"] {
      #expect(!Validate.text(bad, maxBytes: 128), "\(bad.debugDescription)")
    }
  }
}

extension String {
  /// Two-digit zero-padded decimal ("07").
  init(format2 v: Int) { self = v < 10 ? "0\(v)" : "\(v)" }
}
