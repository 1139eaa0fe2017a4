/// The `manifest` file of an export (docs/FORMAT.md, "Export"): `key value` lines in a fixed
/// order, each ending with a newline.
public struct ExportManifest: Equatable, Sendable {
  public static let version: UInt64 = 1
  public var origin: String
  public var from: UInt64
  public var to: UInt64
  public var events: UInt64
  public var context: UInt64

  public init(origin: String, from: UInt64, to: UInt64, events: UInt64, context: UInt64) {
    self.origin = origin
    self.from = from
    self.to = to
    self.events = events
    self.context = context
  }

  public var text: String {
    "tally-export \(Self.version)\norigin \(origin)\nfrom \(from)\nto \(to)\nevents \(events)\n"
      + "context \(context)\n"
  }

  /// Parses a manifest file's bytes; nil unless they are valid UTF-8 and exactly what `text`
  /// would print. (Decoding them leniently first would replace invalid bytes with U+FFFD and
  /// accept a file that `text` never wrote.)
  public init?(parsing bytes: some Collection<UInt8>) {
    guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
    self.init(parsing: text)
  }

  /// Parses a manifest; nil unless `text` is exactly what `text` would print.
  public init?(parsing text: String) {
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    guard lines.count == 7, lines[6].isEmpty else { return nil }
    var values = [String]()
    for (line, key) in zip(lines, ["tally-export", "origin", "from", "to", "events", "context"]) {
      guard line.hasPrefix(key + " ") else { return nil }
      values.append(String(line.dropFirst(key.count + 1)))
    }
    guard values[0] == String(Self.version), let from = UInt64(values[2]),
      let to = UInt64(values[3]), let events = UInt64(values[4]), let context = UInt64(values[5])
    else { return nil }
    self.init(origin: values[1], from: from, to: to, events: events, context: context)
    guard self.text == text else { return nil }
  }
}
