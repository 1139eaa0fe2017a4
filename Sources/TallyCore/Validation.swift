/// Field-level checks shared by the state machine and the parsers.
public enum Validate {
  /// `[A-Za-z0-9._:-]`, 1…`maxBytes` bytes.
  public static func id(_ s: String, maxBytes: Int) -> Bool {
    var s = s
    return s.withUTF8 { buf in
      if buf.isEmpty || buf.count > maxBytes { return false }
      for c in buf {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
          UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
          UInt8(ascii: ":"), UInt8(ascii: "-"):
          continue
        default:
          return false
        }
      }
      return true
    }
  }

  /// Custom asset codes: `[A-Z0-9_]`, 1…16 bytes.
  public static func assetCode(_ s: String) -> Bool {
    let u = s.utf8
    guard !u.isEmpty, u.count <= Limits.assetCodeBytesMax else { return false }
    return u.allSatisfy {
      ($0 >= 65 && $0 <= 90) || ($0 >= 48 && $0 <= 57) || $0 == UInt8(ascii: "_")
    }
  }

  /// Free text (names, refs): 1…max bytes, no control characters (C0, DEL, C1).
  public static func text(_ s: String, maxBytes: Int) -> Bool {
    let u = s.utf8
    guard !u.isEmpty, u.count <= maxBytes else { return false }
    return s.unicodeScalars.allSatisfy { $0.value >= 0x20 && !(0x7f...0x9f).contains($0.value) }
  }

  static func idRejection(_ what: String, _ value: String, maxBytes: Int) -> Rejection {
    Rejection(
      .invalidId, "\(what) must be 1…\(maxBytes) bytes of [A-Za-z0-9._:-]",
      ["field": what, "value": String(value.prefix(maxBytes + 8))])
  }
}

/// Amount text: minor units on the wire, decimal major units on the command line.
public enum Amount {
  /// Digits only, no sign, no leading zeros (except "0"), within Int128. The wire format:
  /// `"1050"` is 10.50 EUR.
  public static func parseMinor(_ s: String) -> Int128? {
    let u = Array(s.utf8)
    guard !u.isEmpty, u.count <= 39 else { return nil }
    if u.count > 1 && u[0] == UInt8(ascii: "0") { return nil }
    var v: Int128 = 0
    for c in u {
      guard c >= 48 && c <= 57 else { return nil }
      let (m, o1) = v.multipliedReportingOverflow(by: 10)
      let (a, o2) = m.addingReportingOverflow(Int128(c - 48))
      if o1 || o2 { return nil }
      v = a
    }
    return v
  }

  /// `"10.50"` at scale 2 → 1050. At most `scale` decimals (never rounds); digits only with
  /// an optional single point; no sign, no exponent, no separators.
  public static func parseDecimal(_ s: String, scale: UInt8) -> Result<Int128, Rejection> {
    let u = Array(s.utf8)
    let bad = Rejection(
      .invalidAmount, "amount \"\(s.prefix(48))\" is not a positive decimal number",
      ["value": String(s.prefix(48))])
    guard !u.isEmpty, u.count <= 60 else { return .failure(bad) }
    var intDigits = u[...]
    var fracDigits: ArraySlice<UInt8> = []
    if let dot = u.firstIndex(of: UInt8(ascii: ".")) {
      intDigits = u[..<dot]
      fracDigits = u[(dot + 1)...]
      if fracDigits.isEmpty { return .failure(bad) }
    }
    if intDigits.isEmpty { return .failure(bad) }
    if fracDigits.count > Int(scale) {
      return .failure(
        Rejection(
          .invalidAmount,
          "amount \(s) has \(fracDigits.count) decimals; the currency allows \(scale)",
          ["value": s, "scale": String(scale)]))
    }
    var v: Int128 = 0
    for c in intDigits + fracDigits + Array(repeating: 48, count: Int(scale) - fracDigits.count) {
      guard c >= 48 && c <= 57 else { return .failure(bad) }
      let (m, o1) = v.multipliedReportingOverflow(by: 10)
      let (a, o2) = m.addingReportingOverflow(Int128(c - 48))
      if o1 || o2 {
        return .failure(Rejection(.invalidAmount, "amount \(s) is out of range", ["value": s]))
      }
      v = a
    }
    return .success(v)
  }

  /// 1050 at scale 2 → "10.50"; negative values get a leading "-".
  public static func formatDecimal(_ minor: Int128, scale: UInt8) -> String {
    let negative = minor < 0
    let mag = minor.magnitude
    var digits = String(mag)
    if scale > 0 {
      let s = Int(scale)
      if digits.count <= s {
        digits = String(repeating: "0", count: s - digits.count + 1) + digits
      }
      digits.insert(".", at: digits.index(digits.endIndex, offsetBy: -s))
    }
    return negative ? "-" + digits : digits
  }
}

/// Proleptic Gregorian dates and RFC 3339 times, without Foundation (the core is pure).
public enum CivilTime {
  /// Days since 1970-01-01 for a valid civil date (H. Hinnant's algorithm).
  public static func days(year: Int, month: Int, day: Int) -> Int? {
    guard (1...12).contains(month), day >= 1, day <= daysInMonth(year, month),
      (1...9999).contains(year)
    else { return nil }
    let y = month <= 2 ? year - 1 : year
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let mp = (month + 9) % 12
    let doy = (153 * mp + 2) / 5 + day - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return era * 146_097 + doe - 719_468
  }

  public static func civil(days z0: Int) -> (year: Int, month: Int, day: Int) {
    let z = z0 + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
  }

  static func daysInMonth(_ y: Int, _ m: Int) -> Int {
    switch m {
    case 2: (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 ? 29 : 28
    case 4, 6, 9, 11: 30
    default: 31
    }
  }

  static func number(_ u: ArraySlice<UInt8>) -> Int? {
    guard !u.isEmpty, u.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
    return u.reduce(0) { $0 * 10 + Int($1 - 48) }
  }

  /// `YYYY-MM-DD` → days since epoch.
  public static func parseDate(_ s: String) -> Int32? {
    let u = Array(s.utf8)
    guard u.count == 10, u[4] == 45, u[7] == 45, let y = number(u[0..<4]),
      let m = number(u[5..<7]), let d = number(u[8..<10]),
      let days = days(year: y, month: m, day: d)
    else { return nil }
    return Int32(days)
  }

  public static func formatDate(_ days: Int32) -> String {
    let (y, m, d) = civil(days: Int(days))
    return pad(y, 4) + "-" + pad(m, 2) + "-" + pad(d, 2)
  }

  static func pad(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return String(repeating: "0", count: max(0, width - s.count)) + s
  }

  /// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (UTC only) → ns since epoch.
  public static func parseTimestamp(_ s: String) -> Int64? {
    let u = Array(s.utf8)
    guard u.count >= 20, u.last == UInt8(ascii: "Z"), u[10] == UInt8(ascii: "T"),
      u[13] == 58, u[16] == 58,
      let days = parseDate(String(decoding: u[0..<10], as: UTF8.self)),
      let hh = number(u[11..<13]), let mm = number(u[14..<16]), let ss = number(u[17..<19]),
      hh < 24, mm < 60, ss < 60
    else { return nil }
    var nanos = 0
    if u.count > 20 {
      guard u[19] == UInt8(ascii: "."), u.count - 21 >= 1, u.count - 21 <= 9,
        let f = number(u[20..<(u.count - 1)])
      else { return nil }
      nanos = f
      for _ in 0..<(9 - (u.count - 21)) { nanos *= 10 }
    } else if u.count != 20 {
      return nil
    }
    let secs = Int64(days) * 86_400 + Int64(hh * 3600 + mm * 60 + ss)
    // Nanoseconds since 1970 fit Int64 only for 1677…2262: anything else is refused.
    let (ns, o1) = secs.multipliedReportingOverflow(by: 1_000_000_000)
    let (total, o2) = ns.addingReportingOverflow(Int64(nanos))
    return o1 || o2 ? nil : total
  }

  /// ns since epoch → `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
  public static func formatTimestamp(_ nanos: Int64) -> String {
    var secs = nanos / 1_000_000_000
    var frac = nanos % 1_000_000_000
    if frac < 0 {
      frac += 1_000_000_000
      secs -= 1
    }
    var days = secs / 86_400
    var rem = secs % 86_400
    if rem < 0 {
      rem += 86_400
      days -= 1
    }
    return formatDate(Int32(days)) + "T" + pad(Int(rem / 3600), 2) + ":"
      + pad(Int(rem % 3600 / 60), 2) + ":" + pad(Int(rem % 60), 2) + "." + pad(Int(frac), 9)
      + "Z"
  }
}
