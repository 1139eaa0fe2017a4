import Glibc
import PropertyBased
import TallyTestSupport
import Testing

@testable import TallyCore

private let firstDay = -719_162  // 0001-01-01
private let lastDay = 2_932_896  // 9999-12-31
private let secondNanos: Int64 = 1_000_000_000

@Suite("CivilTime dates")
struct CivilDateTests {
  @Test(
    "Known civil dates map to their day numbers",
    arguments: [
      (1970, 1, 1, 0), (1969, 12, 31, -1), (2000, 1, 1, 10957), (2000, 2, 29, 11016),
      (2000, 3, 1, 11017), (2024, 2, 29, 19782), (2026, 1, 1, 20454), (1, 1, 1, firstDay),
      (9999, 12, 31, lastDay), (1900, 3, 1, -25508),
    ] as [(Int, Int, Int, Int)])
  func knownDates(year: Int, month: Int, day: Int, days: Int) {
    #expect(CivilTime.days(year: year, month: month, day: day) == days)
    let c = CivilTime.civil(days: days)
    #expect(c.year == year && c.month == month && c.day == day)
  }

  @Test(
    "Impossible dates and years outside 1…9999 have no day number",
    arguments: [
      (2023, 2, 29), (1900, 2, 29), (2100, 2, 29), (2024, 4, 31), (2024, 6, 31), (2024, 13, 1),
      (2024, 0, 1), (2024, 1, 0), (2024, 1, 32), (0, 1, 1), (10000, 1, 1), (-1, 6, 1),
    ] as [(Int, Int, Int)])
  func impossibleDates(year: Int, month: Int, day: Int) {
    #expect(CivilTime.days(year: year, month: month, day: day) == nil)
  }

  @Test(
    "parseDate reads YYYY-MM-DD only",
    arguments: [
      ("1970-01-01", 0), ("2024-02-29", 19782), ("0001-01-01", Int32(firstDay)),
      ("9999-12-31", Int32(lastDay)),
    ] as [(String, Int32)])
  func parseDate(text: String, days: Int32) {
    #expect(CivilTime.parseDate(text) == days)
    #expect(CivilTime.formatDate(days) == text)
  }

  @Test(
    "parseDate refuses other spellings and impossible dates",
    arguments: [
      "", "2024-2-29", "2024/02/29", "2024-02-30", "2023-02-29", "0000-01-01", " 2024-01-01",
      "2024-01-01 ", "20240101", "2024-01-0a", "+024-01-01", "2024-00-10", "2024-01-01T00",
    ])
  func parseDateRefuses(text: String) {
    #expect(CivilTime.parseDate(text) == nil, "\(text.debugDescription)")
  }

  @Test("Every day number in 0001…9999 round-trips through civil date and text (seeded)")
  func dayRoundTrip() async {
    await seededCheck("civil day round trip", seed: 0xDA75_0000_0000_0003, count: 20_000) {
      rng in
      let d = rng.int(firstDay...lastDay)
      let c = CivilTime.civil(days: d)
      #expect(CivilTime.days(year: c.year, month: c.month, day: c.day) == d)
      #expect(CivilTime.parseDate(CivilTime.formatDate(Int32(d))) == Int32(d))
    }
  }

  @Test("Consecutive day numbers are consecutive calendar days across leap years")
  func successorIsNextCalendarDay() throws {
    // 1896-01-01 … 1905-12-31 covers the 1900 non-leap century and 2000 is covered below.
    for start in [-27028, 10592] {
      var previous = CivilTime.civil(days: start)
      for d in (start + 1)...(start + 3700) {
        let c = CivilTime.civil(days: d)
        let monthLength = try #require(
          (28...31).last {
            CivilTime.days(year: previous.year, month: previous.month, day: $0) != nil
          })
        if previous.day < monthLength {
          #expect(c.year == previous.year && c.month == previous.month && c.day == previous.day + 1)
        } else if previous.month < 12 {
          #expect(c.year == previous.year && c.month == previous.month + 1 && c.day == 1)
        } else {
          #expect(c.year == previous.year + 1 && c.month == 1 && c.day == 1)
        }
        previous = c
      }
    }
  }
}

@Suite("CivilTime timestamps")
struct CivilTimestampTests {
  @Test(
    "RFC 3339 UTC timestamps parse to nanoseconds since the epoch",
    arguments: [
      ("1970-01-01T00:00:00Z", 0), ("2024-01-01T00:00:00Z", 1_704_067_200 * secondNanos),
      ("2024-01-01T00:00:00.5Z", 1_704_067_200 * secondNanos + 500_000_000),
      ("1970-01-01T00:00:00.000000001Z", 1), ("1970-01-01T00:00:01.123456789Z", 1_123_456_789),
      ("1969-12-31T23:59:59.999999999Z", -1), ("2262-04-11T23:47:16.854775807Z", Int64.max),
    ] as [(String, Int64)])
  func parses(text: String, nanos: Int64) {
    #expect(CivilTime.parseTimestamp(text) == nanos)
  }

  @Test(
    "Non-UTC, malformed or out-of-range clock fields are refused",
    arguments: [
      "", "2024-01-01", "2024-01-01T00:00:00", "2024-01-01T00:00:00z", "2024-01-01 00:00:00Z",
      "2024-01-01T00:00:00+01:00", "2024-01-01T24:00:00Z", "2024-01-01T23:60:00Z",
      "2024-01-01T23:59:60Z", "2024-01-01T00:00:00.Z", "2024-01-01T00:00:00.1234567890Z",
      "2024-01-01T0:00:00Z", "2024-02-30T00:00:00Z", "2024-01-01T00:00:00,5Z",
      "2024-01-01T00-00-00Z", "2024-01-01T00:00:00.-5Z",
    ])
  func refuses(text: String) {
    #expect(CivilTime.parseTimestamp(text) == nil, "\(text.debugDescription)")
  }

  @Test(
    "formatTimestamp writes nine fraction digits in UTC",
    arguments: [
      (0, "1970-01-01T00:00:00.000000000Z"), (-1, "1969-12-31T23:59:59.999999999Z"),
      (1_704_067_200 * secondNanos + 5, "2024-01-01T00:00:00.000000005Z"),
      (Int64.max, "2262-04-11T23:47:16.854775807Z"),
      (Int64.min, "1677-09-21T00:12:43.145224192Z"),
    ] as [(Int64, String)])
  func formats(nanos: Int64, text: String) {
    #expect(CivilTime.formatTimestamp(nanos) == text)
  }

  @Test("Timestamps round-trip through text across the Int64 range (seeded)")
  func roundTrip() async {
    await seededCheck("timestamp round trip", seed: 0x7157_0000_0000_0004, count: 20_000) {
      rng in
      let n = rng.draw(Gen.int64(in: (Int64.min + secondNanos)...Int64.max))
      #expect(CivilTime.parseTimestamp(CivilTime.formatTimestamp(n)) == n)
      let whole = n / secondNanos * secondNanos
      #expect(CivilTime.parseTimestamp(CivilTime.formatTimestamp(whole)) == whole)
    }
  }

  /// Regression: `parseTimestamp` once trapped on Int64 overflow for well-formed timestamps
  /// outside 1677-09-21…2262-04-11; it returns nil.
  @Test(
    "parseTimestamp returns nil, not a trap, for timestamps outside the Int64 nanosecond range",
    .bug(id: "parseTimestamp-int64-overflow", "secs * 1e9 traps outside 1677…2262"),
    arguments: [
      "9999-12-31T23:59:59Z", "2262-04-11T23:47:16.854775808Z", "1000-01-01T00:00:00Z",
      "1677-09-21T00:12:43.145224191Z",
    ])
  func outOfRangeDoesNotTrap(text: String) async {
    await #expect(processExitsWith: .success) { [text] in
      let parsed = CivilTime.parseTimestamp(text)
      if parsed != nil { exit(3) }
    }
  }
}
