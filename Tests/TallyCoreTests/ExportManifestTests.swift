import TallyCore
import Testing

@Suite("Export manifest")
struct ExportManifestTests {
  static let manifest = ExportManifest(
    origin: "tally.example/ledger", from: 1, to: 16, events: 16, context: 0)

  @Test func theBytesTallyWritesParseBack() {
    #expect(ExportManifest(parsing: Array(Self.manifest.text.utf8)) == Self.manifest)
  }

  /// Found by fuzzing: the verifier decoded the file leniently, so invalid UTF-8 in the
  /// origin became U+FFFD and a manifest tally never wrote was taken as exact.
  @Test func invalidUTF8IsNotAManifest() {
    var bytes = Array(Self.manifest.text.utf8)
    let at = bytes.firstIndex(of: UInt8(ascii: "/"))!
    bytes.insert(contentsOf: [0x94, 0x86, 0xD1], at: at)
    #expect(ExportManifest(parsing: bytes) == nil)
    // The same file decoded leniently parses: what the fix stops the verifier from doing.
    #expect(ExportManifest(parsing: String(decoding: bytes, as: UTF8.self)) != nil)
  }
}
