import ArgumentParser
import Glibc
import TallyCore
import TallyProtocol
import TallyStore

struct BackupCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "backup",
    abstract: "Copy the data directory, even while tallyd writes to it, and verify the copy.",
    discussion: """
      DIR gets a compacted copy of data.mdb (one read transaction), the journal up to that \
      copy's head, aux.log, the signing keys, a checkpoint signed at the head, and \
      BACKUP.json (every file's size and SHA-256), written last after the copy was laid out, \
      opened and fully verified. Every entry acknowledged before the backup started is in it. \
      With --since OLD (an earlier backup of this ledger) only the journal written since OLD \
      is copied; restore then needs OLD too. DIR holds secrets (keys): it is made mode 0700. \
      See docs/BACKUP.md.
      """)
  @OptionGroup var global: GlobalOptions
  @Option(help: "Backup directory (created; must be empty if it exists).") var out: String
  @Option(help: "An earlier backup of this ledger: copy only the journal written since it.")
  var since: String?

  func run() throws {
    let ledger = try global.open(.readOnly)
    let start = monotonicNanos()
    let s: BackupSummary
    do {
      s = try global.withProgress { (p) throws(BackupError) in
        try ledger.backup(to: out, since: since.map(absolutePath), now: nowNanos(), progress: p)
      }
    } catch {
      throw fail(error)
    }
    let seconds = Double(monotonicNanos() - start) / 1e9
    let m = s.manifest
    if global.json {
      print(
        JSONWriter.serialize(
          .object(
            JSONObject([
              ("out", .string(out)), ("head", headJSON(m.head)),
              ("bytes", .number(String(m.totalBytes))), ("files", .number(String(m.files.count))),
              ("data_bytes", .number(String(s.dataBytes))),
              ("journal_bytes", .number(String(s.journalBytes))),
              ("base", m.base.map { .string($0.path) } ?? .null),
              ("verified_events", .number(String(s.verifiedEvents))),
              ("seconds", .number(String(format1: seconds))),
              ("copy_seconds", .number(String(format1: Double(s.copyNanos) / 1e9))),
              ("verify_seconds", .number(String(format1: Double(s.verifyNanos) / 1e9))),
            ]))))
    } else {
      print(
        "backup \(out): head seq \(m.head.seq), chain \(m.head.chain.hex), \(m.totalBytes) bytes")
      print(
        "  \(m.files.count) files (data.mdb \(s.dataBytes), journal \(s.journalBytes) bytes), "
          + "\(s.verifiedEvents) events verified, \(String(format1: seconds)) s (copy "
          + "\(String(format1: Double(s.copyNanos) / 1e9)) s, verify "
          + "\(String(format1: Double(s.verifyNanos) / 1e9)) s)"
          + (m.base.map { ", incremental since \($0.path) (seq \($0.head.seq))" } ?? ""))
    }
  }
}

struct RestoreCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "restore",
    abstract: "Lay a backup out as a new data directory and verify it.",
    discussion: """
      Checks every file of BACKUP (and of the backups it continues) against its manifest \
      before writing anything, lays them out in --data NEW (which must not exist or be \
      empty), opens and fully verifies the result, and prints its head. On any failure NEW \
      is left as it was. See docs/BACKUP.md.
      """)
  @Argument(help: "The backup directory (the newest, for a chain of incrementals).")
  var backup: String
  @OptionGroup var global: GlobalOptions

  func validate() throws {
    if global.data == nil { throw ValidationError("restore needs --data NEW (the new directory)") }
  }

  func run() throws {
    let start = monotonicNanos()
    let s: RestoreSummary
    do {
      s = try global.withProgress { (p) throws(BackupError) in
        try Backup.restore(from: absolutePath(backup), to: global.directory, progress: p)
      }
    } catch {
      throw fail(error)
    }
    let seconds = Double(monotonicNanos() - start) / 1e9
    if global.json {
      print(
        JSONWriter.serialize(
          .object(
            JSONObject([
              ("data", .string(s.directory)), ("head", headJSON(s.head)),
              ("backups", .array(s.backups.map { .string($0) })),
              ("verified_events", .number(String(s.verifiedEvents))),
              ("seconds", .number(String(format1: seconds))),
            ]))))
    } else {
      print("restored \(s.directory): head seq \(s.head.seq), chain \(s.head.chain.hex)")
      print(
        "  from \(s.backups.joined(separator: " + ")), \(s.verifiedEvents) events verified, "
          + "\(String(format1: seconds)) s")
    }
  }
}

private func headJSON(_ h: LogHead) -> JSONValue {
  .object(
    JSONObject([
      ("seq", .number(String(h.seq))), ("chain", .string(h.chain.hex)),
      ("timestamp", .string(CivilTime.formatTimestamp(h.timestampNanos))),
    ]))
}

/// A backup records its base by absolute path, so a chain restores from any directory.
private func absolutePath(_ p: String) -> String {
  if p.hasPrefix("/") { return p }
  guard let cwd = getcwd(nil, 0) else { return p }
  defer { free(cwd) }
  return String(cString: cwd) + "/" + p
}

/// Reports a backup or restore error: exit 1 when the backup is not what it claims (as a
/// failed `verify`), 2 for operating errors.
func fail(_ error: BackupError) -> CLIExit {
  FileHandleOut.stderr("tally: error \(error.code): \(error)")
  printJSONError(code: error.code, message: error.description)
  return error.isIntegrityFailure ? .rejected : .usage
}
