import Foundation
import Subprocess
import TallyTestSupport
import Testing

#if canImport(System)
  import System
#else
  import SystemPackage
#endif

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

// MARK: - Locating the built `tally`

/// The `tally` executable the tests run (see `Executables.locate`: `$TALLY_BIN`, next to the
/// test bundle, or under `.build`).
enum TallyBinary {
  static let located = Executables.locate("tally")

  static func path() throws -> String { try located.get() }
}

// MARK: - Running it

/// What one run of `tally` produced.
struct CLIResult: CustomStringConvertible {
  var arguments: [String]
  /// The exit code, or 128 + signal when killed by a signal.
  var status: Int32
  var stdout: String
  var stderr: String

  var description: String {
    "tally \(arguments.joined(separator: " ")) → exit \(status)\n"
      + "--- stdout\n\(stdout.prefix(4000))\n--- stderr\n\(stderr.prefix(4000))"
  }

  /// stdout parsed as one JSON object.
  func object(sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any] {
    try JSON.object(stdout, sourceLocation: sourceLocation)
  }

  /// stdout parsed as one JSON array.
  func array(sourceLocation: SourceLocation = #_sourceLocation) throws -> [Any] {
    let v = try JSON.parse(stdout, sourceLocation: sourceLocation)
    return try #require(
      v as? [Any], "not a JSON array: \(stdout.prefix(300))", sourceLocation: sourceLocation)
  }

  /// stdout as JSON Lines (one object a line).
  func lines(sourceLocation: SourceLocation = #_sourceLocation) throws -> [[String: Any]] {
    try stdout.split(separator: "\n", omittingEmptySubsequences: true).map {
      try JSON.object(String($0), sourceLocation: sourceLocation)
    }
  }
}

enum JSON {
  static func parse(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Any
  {
    let data = Data(text.utf8)
    do {
      return try JSONSerialization.jsonObject(with: data, options: [])
    } catch {
      Issue.record("invalid JSON (\(error)): \(text.prefix(500))", sourceLocation: sourceLocation)
      throw error
    }
  }

  static func object(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws
    -> [String: Any]
  {
    let v = try parse(text, sourceLocation: sourceLocation)
    return try #require(
      v as? [String: Any], "not a JSON object: \(text.prefix(300))", sourceLocation: sourceLocation)
  }
}

/// Typed access into parsed JSON, failing the test with the path when absent or mistyped.
extension Dictionary where Key == String, Value == Any {
  func str(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    try #require(
      self[key] as? String, "\(key) is not a string in \(self)", sourceLocation: sourceLocation)
  }
  func int(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
    // Reject strings and booleans: integers must be JSON numbers.
    let v = self[key]
    try #require(!(v is String), "\(key) is a string in \(self)", sourceLocation: sourceLocation)
    return try #require(
      v as? Int, "\(key) is not an integer in \(self)", sourceLocation: sourceLocation)
  }
  func obj(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [String: Any]
  {
    try #require(
      self[key] as? [String: Any], "\(key) is not an object in \(self)",
      sourceLocation: sourceLocation)
  }
  func arr(_ key: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Any] {
    try #require(
      self[key] as? [Any], "\(key) is not an array in \(self)", sourceLocation: sourceLocation)
  }
  func isNull(_ key: String) -> Bool { self.keys.contains(key) && self[key] is NSNull }
}

/// Runs the built `tally` with `arguments`, collecting stdout and stderr.
func runTally(
  _ arguments: [String], environment: [Environment.Key: String?] = [:], stdin: String? = nil
) async throws -> CLIResult {
  let path = try TallyBinary.path()
  // Fixed help width; no inherited data directory.
  var env: [Environment.Key: String?] = ["COLUMNS": "80", "LINES": "25", "TALLY_DATA": nil]
  for (k, v) in environment { env[k] = v }
  let limit = 256 << 20
  let r: ExecutionResult<Void, StringOutput<UTF8>, StringOutput<UTF8>>
  if let stdin {
    r = try await run(
      .path(FilePath(path)), arguments: Arguments(arguments),
      environment: .inherit.updating(env), input: .string(stdin),
      output: .string(limit: limit), error: .string(limit: limit))
  } else {
    r = try await run(
      .path(FilePath(path)), arguments: Arguments(arguments),
      environment: .inherit.updating(env), output: .string(limit: limit),
      error: .string(limit: limit))
  }
  return CLIResult(
    arguments: arguments, status: exitStatus(r.terminationStatus),
    stdout: r.standardOutput, stderr: r.standardError)
}

func exitStatus(_ s: TerminationStatus) -> Int32 {
  switch s {
  case .exited(let code): code
  case .signaled(let sig): 128 + sig
  }
}

// MARK: - A scratch ledger

/// A temporary directory holding one data directory (`…/data`), removed by `withLedger`.
struct Scratch: Sendable {
  let root: String
  var data: String { root + "/data" }

  init() throws {
    let base = FileManager.default.temporaryDirectory.path
    var template = Array("\(base)/tally-cli-XXXXXX".utf8CString)
    guard let p = mkdtemp(&template) else {
      throw POSIXError(.init(rawValue: errno) ?? .EIO)
    }
    root = String(cString: p)
  }

  func remove() { try? FileManager.default.removeItem(atPath: root) }

  func file(_ name: String) -> String { root + "/" + name }

  /// `tally --data DIR args…`.
  func tally(
    _ arguments: String..., environment: [Environment.Key: String?] = [:], stdin: String? = nil
  ) async throws -> CLIResult {
    try await runTally(["--data", data] + arguments, environment: environment, stdin: stdin)
  }

  func tally(_ arguments: [String], stdin: String? = nil) async throws -> CLIResult {
    try await runTally(["--data", data] + arguments, stdin: stdin)
  }

  /// Runs a command that must succeed (exit 0); returns its result.
  @discardableResult
  func ok(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation) async throws
    -> CLIResult
  {
    let r = try await tally(arguments)
    try #require(r.status == 0, "expected exit 0: \(r)", sourceLocation: sourceLocation)
    return r
  }

  /// `--json` variant of `ok`, stdout parsed as one object.
  func okJSON(_ arguments: String..., sourceLocation: SourceLocation = #_sourceLocation)
    async throws -> [String: Any]
  {
    let r = try await tally(["--json"] + arguments)
    try #require(r.status == 0, "expected exit 0: \(r)", sourceLocation: sourceLocation)
    return try r.object(sourceLocation: sourceLocation)
  }

  /// The state a rejected command must not change: log head and every record count, plus the
  /// full balances of the given accounts.
  func snapshot(_ accounts: [String], sourceLocation: SourceLocation = #_sourceLocation)
    async throws -> Snapshot
  {
    let s = try await okJSON("stats", sourceLocation: sourceLocation)
    var balances = [String: String]()
    for a in accounts {
      let r = try await tally("--json", "balance", a)
      try #require(r.status == 0, "balance \(a): \(r)", sourceLocation: sourceLocation)
      balances[a] = r.stdout
    }
    let counts = try s.obj("counts")
    return Snapshot(
      seq: try s.int("seq"), chain: try s.str("chain"),
      counts: counts.mapValues { "\($0)" }, balances: balances)
  }
}

struct Snapshot: Equatable, CustomStringConvertible {
  var seq: Int
  var chain: String
  var counts: [String: String]
  var balances: [String: String]
  var description: String {
    "seq \(seq) chain \(chain.prefix(16))… counts \(counts) balances \(balances)"
  }
}

/// Runs `body` with a fresh scratch directory, removed afterwards.
func withScratch<R>(_ body: (Scratch) async throws -> R) async throws -> R {
  let s = try Scratch()
  defer { s.remove() }
  return try await body(s)
}

/// A fresh initialised ledger with the accounts most tests use:
/// `cash` (EUR, debit), `alice` (EUR, credit, no_overdraft), `bob` (EUR, credit), funded with
/// `seed` (seq 5): cash → alice 100.00 EUR; then `capped` (EUR, credit, limit 50.00) and
/// `shut` (EUR, closed).
func withFundedLedger<R>(_ body: (Scratch) async throws -> R) async throws -> R {
  try await withScratch { s in
    try await s.ok("init")
    try await s.ok("account", "open", "cash", "--currency", "EUR")
    try await s.ok(
      "account", "open", "alice", "--currency", "EUR", "--normal", "credit", "--no-overdraft")
    try await s.ok("account", "open", "bob", "--currency", "EUR", "--normal", "credit")
    try await s.ok("post", "--id", "seed", "--debit", "cash=100.00", "--credit", "alice=100.00")
    try await s.ok(
      "account", "open", "capped", "--currency", "EUR", "--normal", "credit", "--limit", "50.00")
    try await s.ok("account", "open", "shut", "--currency", "EUR")
    try await s.ok("account", "close", "shut")
    return try await body(s)
  }
}

// MARK: - Small helpers

func isHex64(_ s: String) -> Bool {
  s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z`.
func epochSeconds(_ ts: String) -> Int? {
  let u = Array(ts.utf8)
  guard u.count >= 20, u.last == UInt8(ascii: "Z"), u[4] == 45, u[7] == 45, u[10] == 84,
    u[13] == 58, u[16] == 58
  else { return nil }
  func num(_ r: Range<Int>) -> Int32? { Int32(String(decoding: u[r], as: UTF8.self)) }
  guard let y = num(0..<4), let mo = num(5..<7), let d = num(8..<10), let h = num(11..<13),
    let mi = num(14..<16), let se = num(17..<19)
  else { return nil }
  var tmv = tm()
  tmv.tm_year = y - 1900
  tmv.tm_mon = mo - 1
  tmv.tm_mday = d
  tmv.tm_hour = h
  tmv.tm_min = mi
  tmv.tm_sec = se
  return Int(timegm(&tmv))
}

// MARK: - A raw child process (posix_spawn), for SIGKILL and for holding stdin open

func signalProcess(_ pid: pid_t, _ sig: Int32) { _ = kill(pid, sig) }

/// A child started with `posix_spawn`: stdout and stderr go to files (or /dev/null), stdin is
/// /dev/null or a pipe the test writes to. `kill` and `wait` act on the pid directly.
final class ChildProcess: @unchecked Sendable {
  let pid: pid_t
  private var stdinFD: Int32 = -1
  private var reaped: Int32?

  struct SpawnFailed: Error, CustomStringConvertible {
    var code: Int32
    var description: String { "posix_spawn failed: \(String(cString: strerror(code)))" }
  }

  init(
    path: String, arguments: [String], stdinPipe: Bool = false, stdoutPath: String = "/dev/null",
    stderrPath: String = "/dev/null"
  ) throws {
    signal(SIGPIPE, SIG_IGN)
    var fa = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&fa)
    defer { posix_spawn_file_actions_destroy(&fa) }
    var fds: [Int32] = [-1, -1]
    if stdinPipe {
      // Close-on-exec from birth (a socket pair; pipe2 is not imported): no other child
      // spawned meanwhile by a concurrent test may keep our end open.
      #if canImport(Glibc)
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
      #else
        let type = SOCK_STREAM
      #endif
      guard socketpair(AF_UNIX, type, 0, &fds) == 0 else { throw SpawnFailed(code: errno) }
      posix_spawn_file_actions_adddup2(&fa, fds[0], 0)
    } else {
      posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
    }
    posix_spawn_file_actions_addopen(&fa, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&fa, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
    defer { for p in argv { free(p) } }
    var child: pid_t = 0
    let rc = posix_spawn(&child, path, &fa, nil, argv, environ)
    if stdinPipe { close(fds[0]) }
    guard rc == 0 else {
      if stdinPipe { close(fds[1]) }
      throw SpawnFailed(code: rc)
    }
    pid = child
    stdinFD = stdinPipe ? fds[1] : -1
  }

  deinit {
    if stdinFD >= 0 { close(stdinFD) }
    if reaped == nil {
      signalProcess(pid, SIGKILL)
      var st: Int32 = 0
      waitpid(pid, &st, 0)
    }
  }

  func writeStdin(_ text: String) throws {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
      let n = bytes.withUnsafeBytes { write(stdinFD, $0.baseAddress, $0.count) }
      if n < 0 {
        if errno == EINTR { continue }
        throw SpawnFailed(code: errno)
      }
      bytes = bytes.dropFirst(n)
    }
  }

  func closeStdin() {
    if stdinFD >= 0 { close(stdinFD) }
    stdinFD = -1
  }

  func send(_ sig: Int32) {
    if reaped == nil { signalProcess(pid, sig) }
  }

  /// Waits for the child; returns its exit code, or 128 + signal.
  func wait() async throws -> Int32 {
    if let reaped { return reaped }
    while true {
      var st: Int32 = 0
      let r = waitpid(pid, &st, WNOHANG)
      if r == pid {
        let code = exitCode(waitStatus: st)
        reaped = code
        return code
      }
      if r < 0 && errno != EINTR { throw SpawnFailed(code: errno) }
      try await Task.sleep(for: .milliseconds(5))
    }
  }
}
