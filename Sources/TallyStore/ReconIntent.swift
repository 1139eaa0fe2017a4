import Glibc
import TallyCore
import TallyCrypto
import TallyReconcile

/// The durable record of an import in progress (docs/FORMAT.md, "Import intents"): the input
/// and how to import it, written and synced before the import's first write group and removed
/// after its last one is synced. An interrupted import (a crash between its groups) is
/// resumed from it on the next read-write open, so a crash leaves all of it or none of it.
public struct ReconIntent: Equatable, Sendable {
  /// The log's head when the import was planned: its events all come after it.
  public var afterSeq: UInt64
  public var format: ReconFormat
  public var encoding: ReconTextEncoding?
  public var toleranceDays: Int32
  public var routing: ReconRouting
  public var bytes: [UInt8]

  public init(
    afterSeq: UInt64, format: ReconFormat, encoding: ReconTextEncoding?, toleranceDays: Int32,
    routing: ReconRouting, bytes: [UInt8]
  ) {
    self.afterSeq = afterSeq
    self.format = format
    self.encoding = encoding
    self.toleranceDays = toleranceDays
    self.routing = routing
    self.bytes = bytes
  }

  static let magic: [UInt8] = Array("TRI1".utf8)

  /// `TRI1`, u64 after seq, u8 format, u8 encoding (255: none), i32 tolerance days, optional
  /// str account, u32 map count and (str identifier, str account) pairs in identifier order,
  /// u64 input size and the input, then SHA-256 of all the bytes before it.
  func encoded() -> [UInt8] {
    var w = ByteWriter(capacity: bytes.count + 256)
    w.raw(Self.magic)
    w.u64(afterSeq)
    w.u8(format.rawValue)
    w.u8(encoding?.rawValue ?? 255)
    w.i32(toleranceDays)
    w.optionalStr(routing.account)
    w.u32(UInt32(routing.map.count))
    for (id, account) in routing.map.sorted(by: { $0.key < $1.key }) {
      w.str(id)
      w.str(account)
    }
    w.u64(UInt64(bytes.count))
    w.raw(bytes)
    w.raw(SHA256Hasher().hash(w.bytes).bytes)
    return w.bytes
  }

  /// Nil when the file is torn or not an intent (a crash while it was written: the import
  /// had not started, since its first group waits for the intent's sync).
  static func decode(_ file: [UInt8]) -> ReconIntent? {
    guard file.count > 36, Array(file.prefix(4)) == magic else { return nil }
    let body = Array(file.dropLast(32))
    guard SHA256Hasher().hash(body).bytes == Array(file.suffix(32)) else { return nil }
    return body.withUnsafeBytes { raw -> ReconIntent? in
      var r = ByteReader(raw)
      do throws(DecodeError) {
        _ = try r.u32("magic")
        let after = try r.u64("after seq")
        guard let format = ReconFormat(rawValue: try r.u8("format")) else { return nil }
        let e = try r.u8("encoding")
        let tolerance = try r.i32("tolerance")
        let account = try r.optionalStr("account")
        var map = [String: String]()
        for _ in 0..<(try r.u32("map count")) { map[try r.str("id")] = try r.str("account") }
        var encoding: ReconTextEncoding?
        if e != 255 {
          guard let known = ReconTextEncoding(rawValue: e) else { return nil }
          encoding = known
        }
        guard let n = Int(exactly: try r.u64("input size")), r.remaining == n else { return nil }
        return ReconIntent(
          afterSeq: after, format: format, encoding: encoding, toleranceDays: tolerance,
          routing: ReconRouting(account: account, map: map), bytes: Array(body.suffix(n)))
      } catch {
        return nil
      }
    }
  }
}

/// Where a data directory keeps its import intents: `DIR/recon-intents/<n>.intent`.
public struct ReconIntents: Sendable {
  public let directory: String
  let files: JournalFiles

  /// Writes and syncs `intent` (file and directory) under a fresh name, returned.
  public func write(_ intent: ReconIntent) throws(StoreError) -> String {
    if !fileExists(directory) {
      try files.mkdir(directory)
      try files.syncDirectory(Self.parent(of: directory))
    }
    let name = "\(UInt64.random(in: 1...UInt64.max).hexPadded).intent"
    let tmp = directory + "/" + name + ".tmp"
    let fd = try files.open(tmp, create: true)
    do throws(StoreError) {
      try files.truncate(fd, to: 0)
      try withBytes(intent.encoded()) { (b) throws(StoreError) in try files.write(fd, b, at: 0) }
      try files.sync(fd)
    } catch {
      files.close(fd)
      throw error
    }
    files.close(fd)
    try files.rename(tmp, directory + "/" + name)
    try files.syncDirectory(directory)
    return name
  }

  static func parent(of path: String) -> String {
    guard let slash = path.lastIndex(of: "/") else { return "." }
    return slash == path.startIndex ? "/" : String(path[..<slash])
  }

  /// Writes the intent of `plan` unless it appends nothing (every line a duplicate, no
  /// match: a retry), which a crash cannot leave half done.
  public func write(_ plan: ReconImportPlan, _ intent: ReconIntent) throws(StoreError)
    -> String?
  {
    if plan.freshCount == 0 && plan.matches.isEmpty { return nil }
    return try write(intent)
  }

  /// Removes an intent once its import is synced.
  public func remove(_ name: String) throws(StoreError) {
    try files.unlink(directory + "/" + name)
    try files.syncDirectory(directory)
  }

  /// The intents left by interrupted imports, oldest name first. A `.tmp` file is a write
  /// cut short before its rename (its import had not begun): removed. A file under an
  /// intent's name was synced before it got that name, so one that does not decode is
  /// damage, and an interrupted import must not be dropped silently: `CORRUPT`, naming it.
  func pending() throws(StoreError) -> [(name: String, intent: ReconIntent)] {
    var out = [(String, ReconIntent)]()
    for name in try directoryNames(directory) ?? [] {
      let path = directory + "/" + name
      guard name.hasSuffix(".intent") else {
        try files.unlink(path)
        continue
      }
      guard let intent = ReconIntent.decode(try readWholeFile(path)) else {
        throw .corrupt(
          "\(path) is not a whole import intent (length, magic or checksum): an import may "
            + "have been interrupted; restore the file from a backup, or move it away to open "
            + "the directory without finishing that import")
      }
      out.append((name, intent))
    }
    return out
  }
}

extension UInt64 {
  fileprivate var hexPadded: String {
    let h = String(self, radix: 16)
    return String(repeating: "0", count: 16 - h.count) + h
  }
}

extension Ledger {
  /// This directory's import intents.
  public var reconIntents: ReconIntents {
    ReconIntents(directory: path + "/recon-intents", files: options.files)
  }

  /// Finishes every import a crash interrupted (see `ReconIntent`), oldest first, and
  /// returns what each did. Run by every read-write open, before anything else is written.
  /// Its lines already in are duplicates; those of its items still unmatched are matched
  /// again with the rest, so the outcome is what an uninterrupted import would have done
  /// against the ledger as it is now.
  @discardableResult
  public func resumeReconImports() throws(StoreError) -> [ReconImportReport] {
    var reports = [ReconImportReport]()
    for (name, intent) in try reconIntents.pending() {
      let parsed = try reader.parseStatements(
        intent.bytes, format: intent.format, encoding: intent.encoding)
      let plan: Result<ReconImportPlan, Rejection>
      switch parsed {
      case .failure(let r): plan = .failure(r)
      case .success(let statements):
        plan = try reader.planImport(
          statements, format: intent.format, routing: intent.routing,
          toleranceDays: intent.toleranceDays, adoptAfterSeq: intent.afterSeq)
      }
      switch plan {
      case .failure(let r):
        // It was accepted once against an earlier state, and what the checks read (accounts,
        // their currency and `iban`, asset scales) never changes: keep the intent, say so.
        throw .corrupt("the interrupted import \(name) is now refused: \(r)")
      case .success(let p):
        reports.append(try run(p, now: Self.wallClockNanos(), progress: nil))
      }
      try reconIntents.remove(name)
    }
    return reports
  }

  /// Nanoseconds since the epoch (CLOCK_REALTIME): the `now` of events written here.
  public static func wallClockNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
  }
}
