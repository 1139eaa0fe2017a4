import Glibc
import Logging
import TallyProtocol

/// `--log-format json`: one JSON object per line on stderr, written with one `write(2)`
/// so lines from several threads never interleave. Fields: `ts` (RFC 3339, UTC,
/// microseconds), `level`, `logger`, `msg`, `source`, then the metadata's keys (a key that
/// would shadow one of these is prefixed with `meta.`).
public struct JSONLogHandler: LogHandler {
  public var logLevel: Logger.Level
  public var metadata: Logger.Metadata = [:]
  public var metadataProvider: Logger.MetadataProvider?
  let label: String
  let fd: Int32

  static let reserved: Set<String> = ["ts", "level", "logger", "msg", "source"]

  public init(label: String, level: Logger.Level, fd: Int32 = 2) {
    self.label = label
    self.logLevel = level
    self.fd = fd
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    var all = metadata
    if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
    if let m = event.metadata { all.merge(m) { _, new in new } }
    let line = Self.line(
      nowNanos: Self.wallClockNanos(), level: event.level, label: label,
      message: "\(event.message)", source: event.source, metadata: all)
    var bytes = Array(line.utf8)
    bytes.append(UInt8(ascii: "\n"))
    bytes.withUnsafeBytes { raw in
      var done = 0
      while done < raw.count {
        let n = write(fd, raw.baseAddress! + done, raw.count - done)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }  // stderr gone: a log line is not worth failing for
        done += n
      }
    }
  }

  /// The line for one record (no newline); a pure function, for tests.
  public static func line(
    nowNanos: Int64, level: Logger.Level, label: String, message: String, source: String,
    metadata: Logger.Metadata
  ) -> String {
    var members: [(key: String, value: JSONValue)] = [
      ("ts", .string(rfc3339(nowNanos))), ("level", .string(level.rawValue)),
      ("logger", .string(label)), ("msg", .string(message)), ("source", .string(source)),
    ]
    for key in metadata.keys.sorted() {
      let name = reserved.contains(key) ? "meta." + key : key
      members.append((name, value(metadata[key]!)))
    }
    return JSONWriter.serialize(.object(JSONObject(members)))
  }

  static func value(_ v: Logger.Metadata.Value) -> JSONValue {
    switch v {
    case .string(let s): .string(s)
    case .stringConvertible(let s): .string(s.description)
    case .array(let a): .array(a.map(value))
    case .dictionary(let d): .object(JSONObject(d.keys.sorted().map { ($0, value(d[$0]!)) }))
    }
  }

  /// `2026-12-07T06:20:22.123456Z` for nanoseconds since the epoch.
  public static func rfc3339(_ nanos: Int64) -> String {
    var secs = time_t(nanos / 1_000_000_000)
    var tm = tm()
    gmtime_r(&secs, &tm)
    func pad(_ v: Int32, _ width: Int) -> String {
      let s = String(v)
      return String(repeating: "0", count: max(0, width - s.count)) + s
    }
    let micros = Int32((nanos % 1_000_000_000) / 1000)
    return "\(pad(tm.tm_year + 1900, 4))-\(pad(tm.tm_mon + 1, 2))-\(pad(tm.tm_mday, 2))T"
      + "\(pad(tm.tm_hour, 2)):\(pad(tm.tm_min, 2)):\(pad(tm.tm_sec, 2)).\(pad(micros, 6))Z"
  }

  static func wallClockNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
  }
}
