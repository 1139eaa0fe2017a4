import TallyCore

/// Calendar dates of the three formats → days since 1970-01-01 (TallyCore's `CivilTime`).
enum Dates {
  /// `YYYY-MM-DD`.
  static func iso(_ s: Substring) -> Int32? {
    let u = Array(s.utf8)
    guard u.count == 10, u[4] == 0x2D, u[7] == 0x2D, let y = number(u[0..<4]),
      let m = number(u[5..<7]), let d = number(u[8..<10]),
      let days = CivilTime.days(year: y, month: m, day: d)
    else { return nil }
    return Int32(days)
  }

  /// `YYYY-MM-DD`, or `YYYY-MM-DDThh:mm:ss` (or a space for `T`) with an optional fraction
  /// and zone: the date as printed, with no conversion between zones (a statement's date is
  /// the bank's booking day).
  static func isoDateOrDateTime(_ s: Substring) -> Int32? {
    let u = Array(s.utf8)
    if u.count == 10 { return iso(s) }
    guard u.count >= 19, u[10] == UInt8(ascii: "T") || u[10] == UInt8(ascii: " "),
      u[13] == 0x3A, u[16] == 0x3A, let hh = number(u[11..<13]), let mm = number(u[14..<16]),
      let ss = number(u[17..<19]), hh < 24, mm < 60, ss < 61,
      u[19...].allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ".:+-Z".utf8.contains($0) })
    else { return nil }
    return iso(s.prefix(10))
  }

  /// MT940 `YYMMDD`; the century is always 20 (2000–2099).
  static func yymmdd(_ u: ArraySlice<UInt8>) -> Int32? {
    guard u.count == 6, let yy = number(u.prefix(2)), let m = number(u.dropFirst(2).prefix(2)),
      let d = number(u.suffix(2)), let days = CivilTime.days(year: 2000 + yy, month: m, day: d)
    else { return nil }
    return Int32(days)
  }

  /// MT940 entry date `MMDD` next to the value date `valueDays`: the year (the value date's,
  /// one before or one after) that puts it nearest the value date, so a December value date
  /// with a January entry date books in the next year.
  static func mmddNear(_ u: ArraySlice<UInt8>, valueDays: Int32) -> Int32? {
    guard u.count == 4, let m = number(u.prefix(2)), let d = number(u.suffix(2)) else {
      return nil
    }
    let year = CivilTime.civil(days: Int(valueDays)).year
    var best: Int?
    for y in [year - 1, year, year + 1] {
      guard let days = CivilTime.days(year: y, month: m, day: d) else { continue }
      if best == nil || abs(days - Int(valueDays)) < abs(best! - Int(valueDays)) { best = days }
    }
    return best.map { Int32($0) }
  }

  static func format(_ days: Int32) -> String { CivilTime.formatDate(days) }

  private static func number(_ u: ArraySlice<UInt8>) -> Int? {
    guard !u.isEmpty, u.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
    return u.reduce(0) { $0 * 10 + Int($1 - 0x30) }
  }
}
