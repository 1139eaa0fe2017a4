import Glibc
import TallyProtocol

/// The outcome of the last `tally verify` of a data directory, kept in it
/// (`verify-last.json`) so the back office's audit page can show when the ledger was last
/// verified, to which head, and what was found. Written atomically (a temporary file,
/// synced, renamed); read as untrusted input (bounded, strictly parsed).
public struct VerifyRecord: Sendable, Equatable {
  public static let fileName = "verify-last.json"
  /// A record is a few hundred bytes; more is not one of ours.
  static let fileBytesMax = 64 << 10
  /// Problems kept in the record (the first is the one that matters).
  static let problemsMax = 10

  public var ok: Bool
  public var events: UInt64
  public var headSeq: UInt64
  public var chainHex: String
  /// Problems found (at most `problemsMax`), or the error that stopped the verification.
  public var problems: [String]
  public var finishedNanos: Int64
  public var millis: Int64

  public init(
    ok: Bool, events: UInt64, headSeq: UInt64, chainHex: String, problems: [String],
    finishedNanos: Int64, millis: Int64
  ) {
    self.ok = ok
    self.events = events
    self.headSeq = headSeq
    self.chainHex = chainHex
    self.problems = Array(problems.prefix(Self.problemsMax))
    self.finishedNanos = finishedNanos
    self.millis = millis
  }

  public init(_ r: VerifyReport, finishedNanos: Int64, millis: Int64) {
    self.init(
      ok: r.ok, events: r.events, headSeq: r.head.seq, chainHex: r.head.chain.hex,
      problems: r.problems.map(\.description), finishedNanos: finishedNanos, millis: millis)
  }

  var json: String {
    func n(_ v: some BinaryInteger) -> JSONValue { .number(String(v)) }
    return JSONWriter.serialize(
      .object(
        JSONObject([
          ("ok", .bool(ok)), ("events", n(events)), ("head_seq", n(headSeq)),
          ("chain", .string(chainHex)), ("problems", .array(problems.map { .string($0) })),
          ("finished_ns", n(finishedNanos)), ("millis", n(millis)),
        ])))
  }

  /// Replaces the directory's record.
  public func write(toDirectory dir: String) throws(StoreError) {
    let path = dir + "/" + Self.fileName
    let tmp = path + ".tmp"
    let bytes = Array((json + "\n").utf8)
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw .io("cannot write \(tmp): \(String(cString: strerror(errno)))") }
    var done = 0
    while done < bytes.count {
      let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, bytes.count - done) }
      if n < 0 && errno == EINTR { continue }
      if n <= 0 {
        let why = String(cString: strerror(errno))
        close(fd)
        unlink(tmp)
        throw .io("cannot write \(tmp): \(why)")
      }
      done += n
    }
    let synced = fsync(fd) == 0
    close(fd)
    guard synced, rename(tmp, path) == 0 else {
      let why = String(cString: strerror(errno))
      unlink(tmp)
      throw .io("cannot write \(path): \(why)")
    }
  }

  /// The directory's record; nil when none was written. A record that is not one
  /// (oversized, not our JSON) is `CORRUPT`.
  public static func read(fromDirectory dir: String) throws(StoreError) -> VerifyRecord? {
    let path = dir + "/" + fileName
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
      if errno == ENOENT { return nil }
      throw .io("cannot read \(path): \(String(cString: strerror(errno)))")
    }
    defer { close(fd) }
    var bytes = [UInt8](repeating: 0, count: fileBytesMax + 1)
    var count = 0
    while count < bytes.count {
      let n = bytes.withUnsafeMutableBytes {
        Glibc.read(fd, $0.baseAddress! + count, $0.count - count)
      }
      if n < 0 && errno == EINTR { continue }
      if n < 0 { throw .io("cannot read \(path): \(String(cString: strerror(errno)))") }
      if n == 0 { break }
      count += n
    }
    guard count <= fileBytesMax else { throw .corrupt("\(path) is over \(fileBytesMax) bytes") }
    func bad(_ why: String) -> StoreError { .corrupt("\(path) is not a verify record: \(why)") }
    let value: JSONValue
    do { value = try JSONParser.parse(bytes[0..<count]) } catch { throw bad("\(error)") }
    guard case .object(let o) = value else { throw bad("not an object") }
    func uint(_ k: String) throws(StoreError) -> UInt64 {
      guard case .number(let s)? = o[k], let v = UInt64(s) else { throw bad("no \(k)") }
      return v
    }
    func int(_ k: String) throws(StoreError) -> Int64 {
      guard case .number(let s)? = o[k], let v = Int64(s) else { throw bad("no \(k)") }
      return v
    }
    guard case .bool(let ok)? = o["ok"] else { throw bad("no ok") }
    guard case .string(let chain)? = o["chain"] else { throw bad("no chain") }
    guard case .array(let ps)? = o["problems"] else { throw bad("no problems") }
    var problems = [String]()
    for p in ps {
      guard case .string(let s) = p else { throw bad("a problem that is not a string") }
      problems.append(s)
    }
    return VerifyRecord(
      ok: ok, events: try uint("events"), headSeq: try uint("head_seq"), chainHex: chain,
      problems: problems, finishedNanos: try int("finished_ns"), millis: try int("millis"))
  }
}
