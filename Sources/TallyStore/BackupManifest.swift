import TallyCore
import TallyCrypto
import TallyProtocol

/// `BACKUP.json`: what a backup directory holds and the head it restores to
/// (docs/BACKUP.md, "The manifest"). Written last: a directory without it is no backup.
public struct BackupManifest: Equatable, Sendable {
  public static let fileName = "BACKUP.json"
  public static let format = "tally-backup"
  public static let version = 1
  /// A manifest lists a few dozen files; 1 MiB bounds the read of a damaged or foreign one.
  static let fileBytesMax = 1 << 20

  /// One file of the backup: its path inside the backup directory, size and SHA-256.
  public struct File: Equatable, Sendable {
    public var path: String
    public var bytes: Int
    public var sha256: Hash32
  }

  /// The backup an incremental one continues: where it was, its head, and the SHA-256 of
  /// its manifest (so a base replaced by another backup is refused).
  public struct Base: Equatable, Sendable {
    public var path: String
    public var head: LogHead
    public var manifestSHA256: Hash32
  }

  public var createdNanos: Int64
  /// The journal's ledger id (`journal/ledger-id`).
  public var ledgerID: [UInt8]
  /// The checkpoint origin (the signing key's name), when the ledger has a key.
  public var origin: String?
  public var head: LogHead
  public var base: Base?
  public var files: [File]

  public var totalBytes: Int { files.reduce(0) { $0 + $1.bytes } }

  func encode() -> [UInt8] {
    func head(_ h: LogHead) -> JSONValue {
      .object(
        JSONObject([
          ("seq", .number(String(h.seq))), ("chain", .string(h.chain.hex)),
          ("timestamp_ns", .number(String(h.timestampNanos))),
        ]))
    }
    let base: JSONValue =
      self.base.map { b in
        .object(
          JSONObject([
            ("path", .string(b.path)), ("head", head(b.head)),
            ("manifest_sha256", .string(b.manifestSHA256.hex)),
          ]))
      } ?? .null
    let files: [JSONValue] = self.files.map { f in
      .object(
        JSONObject([
          ("path", .string(f.path)), ("bytes", .number(String(f.bytes))),
          ("sha256", .string(f.sha256.hex)),
        ]))
    }
    let o = JSONObject([
      ("format", .string(Self.format)), ("version", .number(String(Self.version))),
      ("created", .string(CivilTime.formatTimestamp(createdNanos))),
      ("created_ns", .number(String(createdNanos))), ("ledger_id", .string(ledgerID.hex)),
      ("origin", origin.map { .string($0) } ?? .null), ("head", head(self.head)),
      ("base", base), ("files", .array(files)),
    ])
    return Array((JSONWriter.serialize(.object(o)) + "\n").utf8)
  }

  /// The manifest in `bytes`, or why it is not one this tally reads.
  static func decode(_ bytes: [UInt8]) -> Result<BackupManifest, ManifestProblem> {
    let value: JSONValue
    do { value = try JSONParser.parse(bytes) } catch {
      return .failure(.init("it is not JSON: \(error)"))
    }
    do throws(ManifestProblem) {
      let o = try Self.object(value, "the manifest")
      guard o["format"]?.stringValue == Self.format else {
        throw ManifestProblem("format is not \"\(Self.format)\"")
      }
      let version = try Self.int(o["version"], "version")
      guard version == Self.version else {
        throw ManifestProblem("version \(version); this tally reads \(Self.version)")
      }
      guard let id = o["ledger_id"]?.stringValue.flatMap({ [UInt8](hex: $0) }),
        id.count == JournalFormat.ledgerIDBytes
      else { throw ManifestProblem("ledger_id is not 32 hex digits") }
      var files = [File]()
      guard let list = o["files"]?.arrayValue else { throw ManifestProblem("files is missing") }
      for item in list {
        let f = try Self.object(item, "a files entry")
        guard let path = f["path"]?.stringValue, BackupLayout.isFilePath(path) else {
          throw ManifestProblem("a files entry has a path this tally does not write")
        }
        files.append(
          File(
            path: path, bytes: try Self.int(f["bytes"], "bytes of \(path)"),
            sha256: try Self.hash(f["sha256"], "sha256 of \(path)")))
      }
      var base: Base?
      if let b = o["base"], b != .null {
        let bo = try Self.object(b, "base")
        guard let path = bo["path"]?.stringValue, !path.isEmpty else {
          throw ManifestProblem("base has no path")
        }
        base = Base(
          path: path, head: try Self.head(bo["head"], "base head"),
          manifestSHA256: try Self.hash(bo["manifest_sha256"], "base manifest_sha256"))
      }
      let origin: String?
      switch o["origin"] {
      case .string(let s)?: origin = s
      case .null?, nil: origin = nil
      default: throw ManifestProblem("origin is not a string")
      }
      return .success(
        BackupManifest(
          createdNanos: Int64(try Self.int(o["created_ns"], "created_ns")), ledgerID: id,
          origin: origin, head: try Self.head(o["head"], "head"), base: base, files: files))
    } catch {
      return .failure(error)
    }
  }

  private static func object(_ v: JSONValue?, _ what: String) throws(ManifestProblem)
    -> JSONObject
  {
    guard let o = v?.objectValue else { throw ManifestProblem("\(what) is not an object") }
    return o
  }

  /// A non-negative integer that fits an `Int` (sizes, counts, seqs below 2^63).
  private static func int(_ v: JSONValue?, _ what: String) throws(ManifestProblem) -> Int {
    guard case .number(let text)? = v, let n = Int(text), n >= 0 else {
      throw ManifestProblem("\(what) is not a non-negative integer")
    }
    return n
  }

  private static func hash(_ v: JSONValue?, _ what: String) throws(ManifestProblem) -> Hash32 {
    guard let b = v?.stringValue.flatMap({ [UInt8](hex: $0) }), b.count == 32 else {
      throw ManifestProblem("\(what) is not 64 hex digits")
    }
    return Hash32(bytes: b)
  }

  private static func head(_ v: JSONValue?, _ what: String) throws(ManifestProblem) -> LogHead {
    let o = try object(v, what)
    guard case .number(let ts)? = o["timestamp_ns"], let timestamp = Int64(ts) else {
      throw ManifestProblem("\(what) timestamp_ns is not an integer")
    }
    return LogHead(
      seq: UInt64(try int(o["seq"], "\(what) seq")), timestampNanos: timestamp,
      chain: try hash(o["chain"], "\(what) chain"))
  }
}

/// Why a manifest was not read.
public struct ManifestProblem: Error, Equatable, Sendable, CustomStringConvertible {
  public var description: String
  init(_ d: String) { description = d }
}

/// The files a backup holds, by their path inside the backup directory (the same path as in
/// a data directory, except `checkpoint`, which restore does not lay out).
enum BackupLayout {
  static let dataFile = "data.mdb"
  static let journalDir = "journal"
  static let checkpointFile = "checkpoint"
  static let retiredKeyPrefix = SigningKey.fileName + ".retired-"

  /// Whether `path` is one a backup writes: anything else in a manifest is refused before a
  /// file is opened (no `..`, no absolute path, no other directory).
  static func isFilePath(_ path: String) -> Bool {
    let parts = path.split(separator: "/", omittingEmptySubsequences: false)
    if parts.count == 2 && parts[0] == Substring(journalDir) {
      let name = String(parts[1])
      return name == Journal.ledgerIDFile || name == AuxJournal.fileName
        || JournalFormat.segmentFirstSeq(name) != nil
    }
    guard parts.count == 1 else { return false }
    let name = String(parts[0])
    if name.hasPrefix(retiredKeyPrefix) {
      let hash = name.dropFirst(retiredKeyPrefix.count)
      return !hash.isEmpty
        && hash.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }
    return name == dataFile || name == SigningKey.fileName || name == checkpointFile
  }
}
