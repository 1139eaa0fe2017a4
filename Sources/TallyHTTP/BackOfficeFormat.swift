import TallyCore
import TallyProtocol

/// A protocol answer, parsed: `OK {json}` or `ERR CODE {json}`.
enum Answer {
  case ok(JSONObject)
  case error(code: String, reason: String, message: String)

  init(line: String) {
    let ok = line.hasPrefix("OK ")
    let rest: Substring
    var code = "INTERNAL"
    if ok {
      rest = line.dropFirst(3)
    } else if line.hasPrefix("ERR "), let sp = line.dropFirst(4).firstIndex(of: " ") {
      code = String(line[line.index(line.startIndex, offsetBy: 4)..<sp])
      rest = line[line.index(after: sp)...]
    } else {
      self = .error(code: code, reason: code, message: "unreadable answer")
      return
    }
    // The server wrote these lines; one that does not parse is a defect, shown as such.
    guard let v = try? JSONParser.parse(String(rest), limits: .unlimitedForTrustedAnswers),
      let o = v.objectValue
    else {
      self = .error(code: "INTERNAL", reason: "INTERNAL", message: "unreadable answer")
      return
    }
    if ok {
      self = .ok(o)
    } else {
      self = .error(
        code: code, reason: o["reason"]?.stringValue ?? code,
        message: o["message"]?.stringValue ?? "")
    }
  }
}

extension JSONLimits {
  /// Answers come from this process, bounded by the page sizes asked for: no limit
  /// beyond the largest a socket answer may be.
  static var unlimitedForTrustedAnswers: JSONLimits {
    JSONLimits(maxBytes: 64 << 20, maxStringBytes: 64 << 20, maxMembers: 1 << 20)
  }
}

extension JSONValue {
  /// A JSON string or number as text ("" for null or anything else).
  var text: String {
    switch self {
    case .string(let s): s
    case .number(let n): n
    case .bool(let b): b ? "true" : "false"
    default: ""
    }
  }
}

extension JSONObject {
  func text(_ key: String) -> String { self[key]?.text ?? "" }
  func object(_ key: String) -> JSONObject { self[key]?.objectValue ?? JSONObject() }
  func array(_ key: String) -> [JSONValue] { self[key]?.arrayValue ?? [] }
}

/// Money as people read it: integer minor units with the currency's exponent, never a float.
enum Money {
  /// `"-123456"` with 2 decimals → `"-1,234.56"`; text that is not an integer is shown as
  /// given (it came from the server, so this does not happen).
  static func format(_ minor: String, scale: Int) -> String {
    guard let v = Int128(minor) else { return minor }
    let negative = v < 0
    let digits = String(v.magnitude)
    let s = max(0, min(scale, 38))
    let padded = String(repeating: "0", count: max(0, s + 1 - digits.count)) + digits
    let cut = padded.index(padded.endIndex, offsetBy: -s)
    let whole = String(padded[..<cut])
    var grouped = ""
    for (i, ch) in whole.enumerated() {
      if i > 0 && (whole.count - i) % 3 == 0 { grouped.append(",") }
      grouped.append(ch)
    }
    let frac = s > 0 ? "." + padded[cut...] : ""
    return (negative ? "-" : "") + grouped + frac
  }

  /// The exponent of `currency` (ISO 4217), or `fallback` (an asset's declared scale).
  static func scale(_ currency: String, fallback: Int) -> Int {
    ISO4217.minorUnits(of: currency).map(Int.init) ?? fallback
  }
}

/// A balance-over-time line chart as SVG, drawn with integer arithmetic only.
enum BalanceChart {
  static let width: Int128 = 600
  static let height: Int128 = 160

  /// `points` are (seq, balance in minor units) in seq order. Coordinates are integers;
  /// no text from the ledger reaches the SVG but numbers this function formats.
  static func svg(_ points: [(seq: UInt64, balance: Int128)]) -> String {
    let head =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" role=\"img\" "
      + "aria-label=\"balance over time\" viewBox=\"0 0 \(width) \(height)\" "
      + "width=\"\(width)\" height=\"\(height)\">"
    guard !points.isEmpty else { return head + "</svg>" }
    let lo = min(points.map(\.balance).min()!, 0)
    let hi = max(points.map(\.balance).max()!, 0)
    let span = hi - lo == 0 ? 1 : hi - lo
    let n = Int128(points.count)
    func x(_ i: Int) -> Int128 { n == 1 ? width / 2 : Int128(i) * (width - 1) / (n - 1) }
    func y(_ b: Int128) -> Int128 {
      // (b - lo) ≤ span ≤ 2^127 / height would overflow only for balances near Int128's
      // bounds; scale down first in that case (exact enough for a picture).
      let shift = span > Int128.max / height ? span / (Int128.max / height) + 1 : 1
      return (height - 1) - ((b - lo) / shift) * (height - 1) / (span / shift)
    }
    var path = ""
    for (i, p) in points.enumerated() {
      path += (i == 0 ? "" : " ") + "\(x(i)),\(y(p.balance))"
    }
    let zero = y(0)
    return head
      + "<line x1=\"0\" y1=\"\(zero)\" x2=\"\(width)\" y2=\"\(zero)\" class=\"axis\"/>"
      + "<polyline fill=\"none\" stroke=\"currentColor\" stroke-width=\"2\" points=\"\(path)\"/>"
      + "</svg>"
  }
}
