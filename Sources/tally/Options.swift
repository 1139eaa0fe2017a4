import ArgumentParser
import Glibc
import TallyCore
import TallyProtocol
import TallyStore

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
  @Option(name: .long, help: "Data directory (default: $TALLY_DATA or ./tally-data).")
  var data: String?

  @Flag(name: .long, help: "Print JSON instead of tables.")
  var json = false

  @Flag(
    name: .customLong("no-progress"),
    help: "No progress line on stderr (also: TALLY_NO_PROGRESS=1; never shown when piped).")
  var noProgress = false

  @Option(name: .long, help: "Run against a tallyd at HOST:PORT (default: $TALLY_SERVER).")
  var server: String?

  @Option(name: .long, help: "Key id for --server (default: $TALLY_KEY).")
  var key: String?

  @Option(name: .long, help: "Key secret for --server (default: $TALLY_SECRET).")
  var secret: String?

  static func env(_ name: String) -> String? {
    guard let v = getenv(name) else { return nil }
    let s = String(cString: v)
    return s.isEmpty ? nil : s
  }

  /// Set when the command should go through a server instead of the data directory.
  var serverAddress: String? { server ?? (data == nil ? Self.env("TALLY_SERVER") : nil) }
  var keyId: String? { key ?? Self.env("TALLY_KEY") }
  var secretText: String? { secret ?? Self.env("TALLY_SECRET") }

  /// Connected and authenticated, when `--server` (or `$TALLY_SERVER`) is set.
  func online() throws -> Online? {
    serverAddress == nil ? nil : try Online.connect(self)
  }

  var directory: String {
    if let data { return data }
    if let env = getenv("TALLY_DATA") { return String(cString: env) }
    return "tally-data"
  }

  /// Opens the data directory; read-write, a migration from an older format or a long
  /// journal replay shows progress.
  func open(_ mode: Ledger.Mode = .readWrite) throws -> Ledger {
    if server != nil {
      throw usage("this command works on a data directory (--data), not --server")
    }
    do {
      return try withProgress { (p) throws(StoreError) in
        try Ledger(path: directory, mode: mode, progress: p)
      }
    } catch {
      throw fail(error)
    }
  }
}

/// Terminates the process with an exit code after output was written.
struct CLIExit: Error {
  var code: Int32
  static let rejected = CLIExit(code: 1)
  static let usage = CLIExit(code: 2)
}

enum FileHandleOut {
  static func stderr(_ s: String) {
    activeProgressBar?.clear()
    var line = s
    if !line.hasSuffix("\n") { line += "\n" }
    _ = line.withCString { write(2, $0, strlen($0)) }
  }
}

/// Whether `--json` was given: errors are then also a JSON object on stdout, so a script
/// reading stdout always gets JSON. Set once in `Tally.main` before any command runs.
nonisolated(unsafe) var jsonOutput = false

/// `{"error":{"code","message","details":{}}}` on stdout, under `--json`.
func printJSONError(code: String, message: String) {
  guard jsonOutput else { return }
  print(
    JSONWriter.serialize(
      .object(
        JSONObject([
          (
            "error",
            .object(
              JSONObject([
                ("code", .string(code)), ("message", .string(message)),
                ("details", .object(JSONObject())),
              ]))
          )
        ]))))
}

/// Reports a store error (I/O, lock, format) and yields exit code 2.
func fail(_ error: StoreError) -> CLIExit {
  FileHandleOut.stderr("tally: error \(error.code): \(error)")
  printJSONError(code: error.code, message: error.description)
  return .usage
}

/// Reports a usage error (code `USAGE`) and yields exit code 2.
func usage(_ message: String) -> CLIExit {
  FileHandleOut.stderr("tally: \(message)")
  printJSONError(code: "USAGE", message: message)
  return .usage
}

/// Formats minor units of `currency` as a decimal for human tables (JSON keeps minor units):
/// ISO 4217's scale, else the declared asset's.
func decimalFormatter(_ currency: String, _ ledger: Ledger) throws -> (Int128) -> String {
  let scale: UInt8?
  do { scale = try ledger.reader.scale(of: currency) } catch { throw fail(error) }
  guard let scale else { throw fail(.corrupt("currency \(currency) is neither ISO nor declared")) }
  return { Amount.formatDecimal($0, scale: scale) }
}

/// Monotonic clock in ns, for durations only.
func monotonicNanos() -> Int64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// `--limit` of a paginated command: 1…`Limits.pageLimitMax`, as the server's `limit`.
func checkPageLimit(_ limit: Int) throws {
  if limit < 1 || limit > Limits.pageLimitMax {
    throw ValidationError("--limit must be 1…\(Limits.pageLimitMax)")
  }
}

/// Wall clock in ns: the CLI passes time into the engine; the engine never reads it.
func nowNanos() -> Int64 {
  var ts = timespec()
  clock_gettime(CLOCK_REALTIME, &ts)
  return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }

/// Parses repeated `--meta key=value` options.
func parseMetadata(_ items: [String], json: Bool) throws -> Metadata {
  var pairs = [(String, String)]()
  for item in items {
    guard let eq = item.firstIndex(of: "=") else {
      throw usage("--meta expects key=value, got \(item)")
    }
    pairs.append((String(item[..<eq]), String(item[item.index(after: eq)...])))
  }
  switch Metadata.make(pairs) {
  case .success(let m): return m
  case .failure(let r): throw report(r, json: json)
  }
}

/// Prints a rejection (JSON on stdout with --json, else on stderr) and yields exit code 1.
func report(_ r: Rejection, json: Bool, line: Int? = nil) -> CLIExit {
  if json {
    print(JSONWriter.serialize(.object(Views.rejection(r))))
  } else {
    FileHandleOut.stderr("rejected: \(r.code.name): \(r.message)")
  }
  return .rejected
}

/// Applies one command and reports its outcome: applied/duplicate on stdout, rejections as
/// exit code 1.
func applyOne(_ ledger: Ledger, _ command: Command, json: Bool, what: String) throws -> UInt64 {
  let outcome: Outcome
  do {
    outcome = try ledger.apply([command], now: nowNanos())[0]
  } catch {
    throw fail(error)
  }
  switch outcome {
  case .applied(let first, let count):
    if json {
      print(JSONWriter.serialize(.object(Views.outcome(outcome))))
    } else if count == 0 {
      print("\(what): nothing to do")
    } else if count == 1 {
      print("\(what): applied at seq \(first)")
    } else {
      print("\(what): applied \(count) events at seq \(first)…\(first + UInt64(count) - 1)")
    }
    return first
  case .duplicate(let seq):
    if json {
      print(JSONWriter.serialize(.object(Views.outcome(outcome))))
    } else {
      print("\(what): already applied at seq \(seq) (duplicate, nothing changed)")
    }
    return seq
  case .rejected(let r):
    throw report(r, json: json)
  }
}

/// Left-aligned text table.
func table(_ header: [String], _ rows: [[String]]) -> String {
  var widths = header.map(\.count)
  for r in rows {
    for (i, c) in r.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) }
  }
  func line(_ cells: [String]) -> String {
    cells.enumerated().map { i, c in
      i == cells.count - 1 ? c : c + String(repeating: " ", count: widths[i] - c.count)
    }.joined(separator: "  ")
  }
  return ([line(header)] + rows.map(line)).joined(separator: "\n")
}
