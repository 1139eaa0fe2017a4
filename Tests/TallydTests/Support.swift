import Dispatch
import Foundation
import Glibc
import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

// End-to-end support: real `tallyd` processes on 127.0.0.1 and a raw line client.
//
// Typical use:
//
//     try await withTallyd(["--max-batch", "3"]) { server in
//       let admin = try await server.admin()          // connected + authenticated
//       let r = try await admin.request("PING")       // one line out, one line in
//       #expect(r.isOK && r.body["pong"] as? Bool == true)
//     }
//
// `withTallyd` stops the server (SIGTERM, then SIGKILL) and removes its directory whether the
// body returns or throws. Blocking socket and process waits run on GCD threads (never on the
// Swift concurrency pool), so many tests can wait at once on a 2-core machine.

// MARK: - Locating built executables

/// The executables the tests run (see `Executables.locate`).
enum Binaries {
  static let tallydLocated = Executables.locate("tallyd")
  static let tallyLocated = Executables.locate("tally")
  static let tallyLoadLocated = Executables.locate("tally-load")

  /// Path of the built `tallyd`.
  static func tallyd() throws -> String { try tallydLocated.get() }
  /// Path of the built `tally` CLI.
  static func tally() throws -> String { try tallyLocated.get() }
  /// Path of the built `tally-load` generator.
  static func tallyLoad() throws -> String { try tallyLoadLocated.get() }
}

// MARK: - Running the CLI

/// Runs the built `tally` with `arguments` (and `environment` added to this process's, minus
/// any `TALLY_SERVER`, `TALLY_KEY`, `TALLY_SECRET` the caller does not set) and waits.
func runTally(_ arguments: [String], environment: [String: String] = [:]) async throws
  -> (status: Int32, stdout: String, stderr: String)
{
  try await run(try Binaries.tally(), arguments, environment: environment)
}

/// Runs the executable at `exe` as `runTally` runs the CLI.
func run(_ exe: String, _ arguments: [String], environment: [String: String] = [:]) async throws
  -> (status: Int32, stdout: String, stderr: String)
{
  try await offPool {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for k in ["TALLY_SERVER", "TALLY_KEY", "TALLY_SECRET", "TALLY_DATA"] { env[k] = nil }
    env.merge(environment) { $1 }
    p.environment = env
    // stdout through a pipe, stderr to a file: nothing the child writes can block it.
    let errPath = FileManager.default.temporaryDirectory.path + "/tally-stderr-\(UUID())"
    _ = FileManager.default.createFile(atPath: errPath, contents: nil)
    defer { try? FileManager.default.removeItem(atPath: errPath) }
    let out = Pipe()
    p.standardOutput = out
    p.standardError = FileHandle(forWritingAtPath: errPath)
    try p.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    let errText = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
    return (p.terminationStatus, String(decoding: outData, as: UTF8.self), errText)
  }
}

// MARK: - Blocking work off the concurrency pool

/// Runs blocking `body` on a GCD thread and awaits it, so blocked tests do not starve the
/// (small) Swift concurrency pool.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
  try await withCheckedThrowingContinuation { (k: CheckedContinuation<T, any Error>) in
    DispatchQueue.global().async {
      do { k.resume(returning: try body()) } catch { k.resume(throwing: error) }
    }
  }
}

/// Monotonic seconds.
func monotonicSeconds() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

// MARK: - Scratch directories

/// A fresh directory under the system temp dir, e.g. `/tmp/tallyd-e2e-Ab12Cd`.
func makeTempDir(_ prefix: String = "tallyd-e2e") throws -> String {
  let base = FileManager.default.temporaryDirectory.path
  var template = Array("\(base)/\(prefix)-XXXXXX".utf8CString)
  guard let p = mkdtemp(&template) else { throw POSIXError(.init(rawValue: errno) ?? .EIO) }
  return String(cString: p)
}

// MARK: - A tallyd process

/// One `tallyd` child process serving a data directory on 127.0.0.1 and an OS-chosen port.
///
/// Layout under `root` (a fresh temp dir unless given): `data/` (the ledger), `port` (the
/// port file), `stdout.log` and `stderr.log` (appended across restarts).
///
/// - `start(flags:root:)` launches `tallyd --data ROOT/data --listen 127.0.0.1:0 --port-file
///   ROOT/port --initialize FLAGS…`, waits (bounded) until it listens, and reads the first
///   admin key from its stdout.
/// - `terminate()` sends SIGTERM and waits; `kill()` sends SIGKILL and waits; `restart()`
///   starts it again on the same data directory (same admin key, new port).
/// - `remove()` deletes `root`. `deinit` SIGKILLs a still-running child as a last resort.
final class TallydProcess: @unchecked Sendable {
  struct StartFailed: Error, CustomStringConvertible {
    var description: String
  }

  /// Directory holding everything of this server.
  let root: String
  /// The ledger directory (`--data`).
  var dataDir: String { root + "/data" }
  var portFile: String { root + "/port" }
  var stdoutPath: String { root + "/stdout.log" }
  var stderrPath: String { root + "/stderr.log" }
  /// Extra flags given at start (reused by `restart`).
  private(set) var flags: [String]
  /// The bound port of the current run.
  private(set) var port: UInt16 = 0
  /// The process id of the current run (0 when none).
  private(set) var pid: pid_t = 0
  /// The first admin key printed by `--initialize`.
  private(set) var adminKey = ""
  private(set) var adminSecret = ""
  private var exited: Int32?
  private let lock = NSLock()

  /// How long `start` waits for the port file.
  static let startTimeout = 30.0

  private init(root: String, flags: [String]) {
    self.root = root
    self.flags = flags
  }

  /// Starts a server. `root` defaults to a new temp directory; pass an existing one to serve
  /// a data directory left by an earlier process (its admin key is then read from
  /// `stdout.log`, which `--initialize` wrote on the first run).
  static func start(flags: [String] = [], root: String? = nil) async throws -> TallydProcess {
    // Tests run many servers at once on few cores: a connection may legitimately sit
    // unauthenticated for longer than the production default, so the auth timeout is long
    // unless a test sets it.
    let all = flags.contains("--auth-timeout") ? flags : flags + ["--auth-timeout", "300"]
    let p = TallydProcess(root: try root ?? makeTempDir(), flags: all)
    do {
      try await p.launch(initialize: true)
    } catch {
      p.killNow()
      throw error
    }
    return p
  }

  /// Starts the server again on the same data directory (after `terminate` or `kill`), with
  /// `flags` if given, else the previous ones. The port changes. `listenTimeout` bounds the
  /// wait for it to listen (an open that first finishes an interrupted import takes longer).
  func restart(flags: [String]? = nil, listenTimeout: Double = startTimeout) async throws {
    if pid != 0 && exited == nil { try await kill() }
    if let flags { self.flags = flags }
    try await launch(initialize: false, listenTimeout: listenTimeout)
  }

  private func launch(initialize: Bool, listenTimeout: Double = startTimeout) async throws {
    let exe = try Binaries.tallyd()
    unlink(portFile)
    let stdoutBefore = fileSize(stdoutPath)
    var args = ["--data", dataDir, "--listen", "127.0.0.1:0", "--port-file", portFile]
    if initialize { args.append("--initialize") }
    args += flags
    let child: pid_t
    do {
      child = try spawnDetached(exe, args, stdout: stdoutPath, stderr: stderrPath)
    } catch { throw StartFailed(description: error.description) }
    lock.withLock {
      pid = child
      exited = nil
    }
    // Listening: the port file exists and stdout (fully buffered into a file, flushed after
    // the "listening" line) has the key lines.
    let deadline = monotonicSeconds() + listenTimeout
    while true {
      if let status = try reapIfExited() {
        throw StartFailed(
          description: "tallyd exited with \(status) before listening; stderr:\n"
            + (log().suffix(3000)))
      }
      let out = readFile(stdoutPath).map { String($0.dropFirst(stdoutBefore)) } ?? ""
      if let text = readFile(portFile), text.hasSuffix("\n"),
        let p = UInt16(text.trimmingCharacters(in: .whitespacesAndNewlines)), p != 0,
        out.contains("tallyd listening")
      {
        port = p
        break
      }
      if monotonicSeconds() > deadline {
        killNow()
        throw StartFailed(
          description: "tallyd did not listen within \(listenTimeout)s; stderr:\n"
            + log().suffix(3000))
      }
      try await Task.sleep(for: .milliseconds(10))
    }
    if adminKey.isEmpty {
      let all = readFile(stdoutPath) ?? ""
      for line in all.split(separator: "\n") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        guard parts.count == 2 else { continue }
        if parts[0] == "key" { adminKey = String(parts[1]) }
        if parts[0] == "secret" { adminSecret = String(parts[1]) }
      }
      guard !adminKey.isEmpty, !adminSecret.isEmpty else {
        throw StartFailed(description: "no admin key in tallyd's stdout:\n\(all)")
      }
    }
  }

  /// The exit status if the child has exited (reaping it), else nil.
  @discardableResult
  func reapIfExited() throws -> Int32? {
    try lock.withLock {
      if let exited { return exited }
      guard pid != 0 else { return nil }
      var st: Int32 = 0
      let r = waitpid(pid, &st, WNOHANG)
      if r == pid {
        let code = exitCode(waitStatus: st)
        exited = code
        return code
      }
      if r < 0 && errno != EINTR {
        throw StartFailed(description: "waitpid: \(String(cString: strerror(errno)))")
      }
      return nil
    }
  }

  /// Whether the current run is still alive.
  var isRunning: Bool { (try? reapIfExited()) == nil && pid != 0 }

  /// Sends `sig` to the current run (if alive).
  func signal(_ sig: Int32) {
    if isRunning { _ = Glibc.kill(pid, sig) }
  }

  /// Waits up to `timeout` seconds for the process to exit; returns its status (exit code,
  /// or 128 + signal), nil on timeout.
  func waitExit(timeout: Double) async throws -> Int32? {
    let deadline = monotonicSeconds() + timeout
    while true {
      if let s = try reapIfExited() { return s }
      if monotonicSeconds() > deadline { return nil }
      try await Task.sleep(for: .milliseconds(5))
    }
  }

  /// Graceful stop: SIGTERM, then wait up to `timeout` s (SIGKILL after that). Returns the
  /// exit status (128 + 9 if it had to be killed).
  @discardableResult
  func terminate(timeout: Double = 20) async throws -> Int32 {
    if let s = try reapIfExited() { return s }
    signal(SIGTERM)
    if let s = try await waitExit(timeout: timeout) { return s }
    return try await kill()
  }

  /// SIGKILL and wait. Returns the exit status (137 when the kill did it).
  @discardableResult
  func kill() async throws -> Int32 {
    if let s = try reapIfExited() { return s }
    signal(SIGKILL)
    while true {
      if let s = try await waitExit(timeout: 10) { return s }
    }
  }

  /// Synchronous last-resort kill (deinit, failed start).
  func killNow() {
    lock.withLock {
      guard pid != 0, exited == nil else { return }
      _ = Glibc.kill(pid, SIGKILL)
      var st: Int32 = 0
      while waitpid(pid, &st, 0) < 0 && errno == EINTR {}
      exited = 128 + SIGKILL
    }
  }

  deinit { killNow() }

  /// Resident memory of the current run in KiB (from /proc), nil when unavailable.
  func residentKiB() -> Int? {
    guard isRunning, let status = readFile("/proc/\(pid)/status") else { return nil }
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
      return Int(
        line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    }
    return nil
  }

  /// Deletes the whole directory (call after the process stopped).
  func remove() { try? FileManager.default.removeItem(atPath: root) }

  /// The server's stderr so far (its log).
  func log() -> String { readFile(stderrPath) ?? "" }

  /// A raw connection to the server; HELLO read unless `expectHello` is false.
  func connect(expectHello: Bool = true) async throws -> LineConn {
    try await LineConn.connect(port: port, expectHello: expectHello)
  }

  /// A connection authenticated with the first admin key.
  func admin(sourceLocation: SourceLocation = #_sourceLocation) async throws -> LineConn {
    try await connect(key: adminKey, secret: adminSecret, sourceLocation: sourceLocation)
  }

  /// A connection authenticated with `key`/`secret` (the AUTH must answer OK).
  func connect(key: String, secret: String, sourceLocation: SourceLocation = #_sourceLocation)
    async throws -> LineConn
  {
    let c = try await connect()
    let r = try await c.auth(key: key, secret: secret)
    try #require(r.isOK, "AUTH failed: \(r.raw)", sourceLocation: sourceLocation)
    return c
  }

  private func fileSize(_ path: String) -> Int {
    var st = stat()
    return stat(path, &st) == 0 ? Int(st.st_size) : 0
  }
}

func readFile(_ path: String) -> String? {
  guard let d = FileManager.default.contents(atPath: path) else { return nil }
  return String(decoding: d, as: UTF8.self)
}

/// Starts a `tallyd` with `flags`, runs `body`, then always stops it (SIGTERM, SIGKILL after
/// a grace period) and removes its directory. When `body` returns, the server must exit 0.
func withTallyd<R>(
  _ flags: [String] = [], _ body: (TallydProcess) async throws -> R
) async throws -> R {
  let server = try await TallydProcess.start(flags: flags)
  do {
    let r = try await body(server)
    // docs/PROTOCOL.md: on SIGTERM it finishes, closes every connection and exits 0.
    let status = try await server.terminate()
    #expect(status == 0, "tallyd exited \(status) on SIGTERM; log:\n\(server.log().suffix(2000))")
    server.remove()
    return r
  } catch {
    _ = try? await server.terminate(timeout: 5)
    server.remove()
    throw error
  }
}

// MARK: - Comments

/// Lets a test write `#expect(ok, "\(n) problems:\n" + list.joined())`: a comment built
/// from an interpolated literal and a `String`.
func + (lhs: Comment, rhs: String) -> Comment {
  Comment(rawValue: lhs.rawValue + rhs)
}

// MARK: - Responses

/// One response line, split: `OK {json}`, `ERR CODE {json}` or `HELLO {json}`.
struct Reply: CustomStringConvertible {
  /// The line as received, without `\n`.
  var raw: String
  /// `OK`, `ERR`, `HELLO`, or the first word of anything else.
  var kind: String
  /// For `ERR`: the code (`NOT_FOUND`, …); nil otherwise.
  var code: String?
  /// The JSON object body, as `JSONSerialization` parsed it (empty when unparsable).
  var body: [String: Any]

  var isOK: Bool { kind == "OK" }
  var isErr: Bool { kind == "ERR" }
  /// `reason` of an error body.
  var reason: String? { body["reason"] as? String }
  /// `message` of an error body.
  var message: String? { body["message"] as? String }
  var details: [String: Any] { body["details"] as? [String: Any] ?? [:] }
  var description: String { raw }

  init(_ line: String) {
    raw = line
    var rest = Substring(line)
    func word() -> Substring {
      let w = rest.prefix { $0 != " " }
      rest = rest.dropFirst(w.count).drop { $0 == " " }
      return w
    }
    kind = String(word())
    if kind == "ERR" { code = String(word()) }
    body = (try? JSONSerialization.jsonObject(with: Data(rest.utf8))) as? [String: Any] ?? [:]
  }

  // Typed access, failing the test (with the line) when absent or mistyped.

  // The body's typed accessors (below), on the reply itself.
  func str(_ k: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    try body.str(k, sourceLocation: sourceLocation)
  }
  func int(_ k: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
    try body.int(k, sourceLocation: sourceLocation)
  }
  func obj(_ k: String, sourceLocation: SourceLocation = #_sourceLocation) throws
    -> [String: Any]
  { try body.obj(k, sourceLocation: sourceLocation) }
  func arr(_ k: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Any] {
    try body.arr(k, sourceLocation: sourceLocation)
  }
  func isNull(_ k: String) -> Bool { body.isNull(k) }
}

/// A JSON integer (a number, never a string).
func jsonInt(_ v: Any?, _ what: String, sourceLocation: SourceLocation = #_sourceLocation)
  throws -> Int
{
  try #require(!(v is String), "\(what) is a string", sourceLocation: sourceLocation)
  return try #require(v as? Int, "\(what) is not an integer", sourceLocation: sourceLocation)
}

/// Typed access into nested JSON objects.
extension Dictionary where Key == String, Value == Any {
  func str(_ k: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> String {
    try #require(self[k] as? String, "\(k) not a string in \(self)", sourceLocation: sourceLocation)
  }
  func int(_ k: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> Int {
    try jsonInt(self[k], "\(k) in \(self)", sourceLocation: sourceLocation)
  }
  func obj(_ k: String, sourceLocation: SourceLocation = #_sourceLocation) throws
    -> [String: Any]
  {
    try #require(
      self[k] as? [String: Any], "\(k) not an object in \(self)", sourceLocation: sourceLocation)
  }
  func arr(_ k: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> [Any] {
    try #require(self[k] as? [Any], "\(k) not an array in \(self)", sourceLocation: sourceLocation)
  }
  func isNull(_ k: String) -> Bool { keys.contains(k) && self[k] is NSNull }
}

// MARK: - A raw line connection

/// A blocking TCP client speaking lines, over POSIX sockets, for sending anything (garbage,
/// half lines, huge pipelines) and reading exactly what comes back.
///
/// - `connect(port:expectHello:)` connects to 127.0.0.1:port and (by default) reads the
///   `HELLO` line, keeping it in `hello` and its `nonce`.
/// - `send(_:)` writes all bytes (bounded by `timeout`); `trySend` writes what fits.
/// - `readLine(timeout:)` returns the next line without `\n` (nil at EOF), throwing
///   `LineConn.Failure.timeout` when none arrives in time.
/// - `request(_:)` = send line + `\n`, read one reply. `auth(key:secret:)` computes the MAC
///   over the HELLO nonce.
/// - `waitClosed(timeout:)` reads until EOF, returning the lines that came before it.
/// Not for concurrent use from several tasks at once.
final class LineConn: @unchecked Sendable {
  enum Failure: Error, CustomStringConvertible {
    case connect(Int32)
    case timeout(String)
    case closed(String)
    case io(String, Int32)
    case protocolError(String)
    var description: String {
      switch self {
      case .connect(let e): "connect: \(String(cString: strerror(e)))"
      case .timeout(let what): "timed out: \(what)"
      case .closed(let what): "connection closed: \(what)"
      case .io(let what, let e): "\(what): \(String(cString: strerror(e)))"
      case .protocolError(let s): "protocol: \(s)"
      }
    }
  }

  /// Default seconds to wait for a line (a loaded 2-core machine can be slow).
  static let defaultTimeout = 60.0

  private(set) var fd: Int32
  private var buffer = [UInt8]()
  private var eof = false
  /// The `HELLO` line, if read at connect.
  private(set) var hello: Reply?
  /// The nonce from `HELLO` (empty when not read).
  var nonce: String { hello?.body["nonce"] as? String ?? "" }

  private init(fd: Int32) { self.fd = fd }

  deinit { if fd >= 0 { Glibc.close(fd) } }

  /// `receiveBuffer` (bytes) shrinks the socket's receive buffer, so a client that does not
  /// read fills up quickly (for backpressure tests).
  static func connect(port: UInt16, expectHello: Bool = true, receiveBuffer: Int32? = nil)
    async throws -> LineConn
  {
    let c = try await offPool { () throws -> LineConn in
      Glibc.signal(SIGPIPE, SIG_IGN)
      let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
      let fd = socket(AF_INET, type, 0)
      guard fd >= 0 else { throw Failure.io("socket", errno) }
      var one: Int32 = 1
      setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
      if var size = receiveBuffer {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
      }
      var addr = sockaddr_in()
      addr.sin_family = sa_family_t(AF_INET)
      addr.sin_port = port.bigEndian
      addr.sin_addr.s_addr = inet_addr("127.0.0.1")
      let rc = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
          Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
      }
      guard rc == 0 else {
        let e = errno
        Glibc.close(fd)
        throw Failure.connect(e)
      }
      return LineConn(fd: fd)
    }
    if expectHello {
      guard let line = try await c.readLine() else { throw Failure.closed("before HELLO") }
      let r = Reply(line)
      guard r.kind == "HELLO" else { throw Failure.protocolError("expected HELLO, got \(line)") }
      c.hello = r
    }
    return c
  }

  // MARK: sending

  /// Writes every byte or throws (`timeout` when the peer does not read for that long,
  /// `io` when the connection is gone).
  func send(_ bytes: [UInt8], timeout: Double = LineConn.defaultTimeout) async throws {
    let n = try await trySend(bytes, timeout: timeout)
    if n < bytes.count {
      throw Failure.timeout("sent \(n) of \(bytes.count) bytes")
    }
  }

  func send(_ text: String, timeout: Double = LineConn.defaultTimeout) async throws {
    try await send(Array(text.utf8), timeout: timeout)
  }

  /// Writes as much of `bytes` as the peer accepts within `timeout` seconds; returns the
  /// count written. Throws only when the connection is broken.
  func trySend(_ bytes: [UInt8], timeout: Double) async throws -> Int {
    let fd = self.fd
    return try await offPool {
      var off = 0
      let deadline = monotonicSeconds() + timeout
      while off < bytes.count {
        var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let left = Int32(max(0, (deadline - monotonicSeconds()) * 1000))
        let pr = poll(&p, 1, min(left, 100))
        if pr < 0 && errno != EINTR { throw Failure.io("poll", errno) }
        if pr <= 0 {
          if monotonicSeconds() >= deadline { break }
          continue
        }
        let flags = Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)
        let n = bytes[off...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, flags) }
        if n < 0 {
          if errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK { continue }
          throw Failure.io("send", errno)
        }
        off += n
      }
      return off
    }
  }

  // MARK: receiving

  /// The next line without its `\n` (a `\r` before it is kept), or nil at EOF. Throws
  /// `timeout` when no full line arrives within `timeout` seconds.
  func readLine(timeout: Double = LineConn.defaultTimeout) async throws -> String? {
    if let line = takeLine() { return line }
    if eof { return nil }
    let fd = self.fd
    let deadline = monotonicSeconds() + timeout
    while true {
      let (chunk, atEOF) = try await offPool { () throws -> ([UInt8], Bool) in
        while true {
          let left = deadline - monotonicSeconds()
          if left <= 0 { return ([], false) }
          var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
          let pr = poll(&p, 1, Int32(min(left * 1000 + 1, 1000)))
          if pr < 0 && errno != EINTR { throw Failure.io("poll", errno) }
          if pr <= 0 { continue }
          var buf = [UInt8](repeating: 0, count: 1 << 16)
          let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
          if n < 0 {
            if errno == EINTR || errno == EAGAIN { continue }
            // A reset after the server's last answer: treat as EOF.
            if errno == ECONNRESET { return ([], true) }
            throw Failure.io("recv", errno)
          }
          if n == 0 { return ([], true) }
          return (Array(buf[0..<n]), false)
        }
      }
      buffer += chunk
      if atEOF { eof = true }
      if let line = takeLine() { return line }
      if eof { return nil }
      if chunk.isEmpty && monotonicSeconds() >= deadline {
        let partial = String(decoding: buffer.prefix(200), as: UTF8.self)
        throw Failure.timeout("no line within \(timeout)s (buffered: \(partial))")
      }
    }
  }

  private func takeLine() -> String? {
    guard let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) else { return nil }
    let line = String(decoding: buffer[0..<nl], as: UTF8.self)
    buffer.removeSubrange(0...nl)
    return line
  }

  /// The next line as a `Reply`; throws `closed` at EOF.
  func readReply(timeout: Double = LineConn.defaultTimeout) async throws -> Reply {
    guard let line = try await readLine(timeout: timeout) else {
      throw Failure.closed("expected a reply")
    }
    return Reply(line)
  }

  /// `count` replies, in order (for pipelined requests).
  func readReplies(_ count: Int, timeout: Double = LineConn.defaultTimeout) async throws
    -> [Reply]
  {
    var out = [Reply]()
    out.reserveCapacity(count)
    for _ in 0..<count { out.append(try await readReply(timeout: timeout)) }
    return out
  }

  /// Sends `line` + `\n` and reads one reply.
  func request(_ line: String, timeout: Double = LineConn.defaultTimeout) async throws -> Reply {
    try await send(line + "\n")
    return try await readReply(timeout: timeout)
  }

  /// `AUTH` with the MAC of this connection's HELLO nonce.
  func auth(key: String, secret: String) async throws -> Reply {
    try await request(authLine(key: key, secret: secret))
  }

  /// The `AUTH {…}` line for this connection's nonce.
  func authLine(key: String, secret: String) -> String {
    let mac = Secrets.hmacSHA256(key: Array(secret.utf8), message: Array(nonce.utf8)).hex
    return "AUTH {\"key\":\"\(key)\",\"mac\":\"\(mac)\"}"
  }

  /// Reads until the server closes; returns the lines received before EOF. Throws
  /// `timeout` if the connection is still open after `timeout` seconds. `sending` is written
  /// first (e.g. the request whose answer ends the connection).
  func waitClosed(timeout: Double = LineConn.defaultTimeout, sending: String? = nil)
    async throws -> [String]
  {
    if let sending { try await send(sending) }
    let deadline = monotonicSeconds() + timeout
    var lines = [String]()
    while true {
      let left = deadline - monotonicSeconds()
      if left <= 0 { throw Failure.timeout("connection still open; got \(lines)") }
      guard let line = try await readLine(timeout: left) else { return lines }
      lines.append(line)
    }
  }

  /// Whether the server closed the connection: EOF seen, or seen within `within` seconds
  /// with no line in between (a line arriving means "open" and is kept for `readLine`).
  func isClosed(within: Double = 0.2) async throws -> Bool {
    if eof && buffer.isEmpty { return true }
    do {
      if let line = try await readLine(timeout: within) {
        buffer = Array((line + "\n").utf8) + buffer
        return false
      }
      return true
    } catch Failure.timeout {
      return false
    }
  }

  /// Shuts down the write side (the server sees EOF) but keeps reading possible.
  func shutdownWrite() { Glibc.shutdown(fd, Int32(SHUT_WR)) }

  /// Closes the socket now.
  func close() {
    if fd >= 0 { Glibc.close(fd) }
    fd = -1
  }
}

// MARK: - Ledger helpers over a connection

/// The log head: `LOG.HEAD`'s seq and chain.
struct Head: Equatable, CustomStringConvertible {
  var seq: Int
  var chain: String
  var description: String { "seq \(seq) chain \(chain.prefix(16))…" }
}

/// What a rejected write must not change: the log head and raw `BALANCE.GET` answers.
struct LedgerState: Equatable, CustomStringConvertible {
  var head: Head
  var balances: [String: String]
  /// Head and, per account (sorted), the posted/pending columns of its balance.
  var description: String {
    let parts = balances.keys.sorted().map { k -> String in
      let r = Reply(balances[k] ?? "")
      let p = r.body["posted"] as? [String: Any] ?? [:]
      let q = r.body["pending"] as? [String: Any] ?? [:]
      let cols = [p["debits"], p["credits"], q["debits"], q["credits"]]
        .map { $0 as? String ?? "?" }.joined(separator: "/")
      return r.isOK ? "\(k) \(cols)" : "\(k) \(r.raw.prefix(60))"
    }
    return "\(head) [\(parts.joined(separator: ", "))]"
  }
}

extension LineConn {
  /// Sends `line`, requires `OK`, returns the reply.
  @discardableResult
  func ok(
    _ line: String, timeout: Double = LineConn.defaultTimeout,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> Reply {
    let r = try await request(line, timeout: timeout)
    try #require(
      r.isOK, "expected OK for \(line.prefix(300)): \(r.raw)",
      sourceLocation: sourceLocation)
    return r
  }

  /// Sends `line`, requires `ERR code`, returns the reply.
  @discardableResult
  func err(_ code: String, _ line: String, sourceLocation: SourceLocation = #_sourceLocation)
    async throws -> Reply
  {
    let r = try await request(line)
    #expect(
      r.isErr && r.code == code, "expected ERR \(code) for \(line.prefix(300)): \(r.raw)",
      sourceLocation: sourceLocation)
    return r
  }

  /// `LOG.HEAD` (any role may ask).
  func head(sourceLocation: SourceLocation = #_sourceLocation) async throws -> Head {
    let r = try await ok("LOG.HEAD", sourceLocation: sourceLocation)
    return Head(
      seq: try r.int("seq", sourceLocation: sourceLocation),
      chain: try r.str("chain", sourceLocation: sourceLocation))
  }

  /// Head plus the raw `BALANCE.GET` line of each account (needs a reading role).
  func state(_ accounts: [String] = [], sourceLocation: SourceLocation = #_sourceLocation)
    async throws -> LedgerState
  {
    let h = try await head(sourceLocation: sourceLocation)
    var b = [String: String]()
    for a in accounts {
      b[a] = try await request("BALANCE.GET {\"account\":\"\(a)\"}").raw
    }
    return LedgerState(head: h, balances: b)
  }

  /// `ACCOUNT.OPEN` of an account (platform unless `partner`), requiring OK.
  func open(
    _ name: String, currency: String = "EUR", normal: String = "debit", partner: String? = nil,
    extra: String = "", sourceLocation: SourceLocation = #_sourceLocation
  ) async throws {
    var body = "\"account\":\"\(name)\",\"currency\":\"\(currency)\",\"normal\":\"\(normal)\""
    if let partner { body += ",\"partner\":\"\(partner)\"" }
    if !extra.isEmpty { body += "," + extra }
    try await ok("ACCOUNT.OPEN {\(body)}", sourceLocation: sourceLocation)
  }

  /// `ENTRY.POST` of a two-leg entry debiting `debit`, crediting `credit` by `amount`.
  @discardableResult
  func post(
    _ id: String, debit: String, credit: String, amount: String,
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> Reply {
    try await ok(
      entryLine(id, debit: debit, credit: credit, amount: amount),
      sourceLocation: sourceLocation)
  }

  /// `KEY.CREATE`, requiring OK; returns (key id, secret).
  func createKey(
    role: String, partner: String? = nil, grants: [String] = [],
    sourceLocation: SourceLocation = #_sourceLocation
  ) async throws -> (key: String, secret: String) {
    var body = "\"role\":\"\(role)\""
    if let partner { body += ",\"partner\":\"\(partner)\"" }
    if !grants.isEmpty {
      body += ",\"grants\":[" + grants.map { "\"\($0)\"" }.joined(separator: ",") + "]"
    }
    let r = try await ok("KEY.CREATE {\(body)}", sourceLocation: sourceLocation)
    return (
      try r.str("key", sourceLocation: sourceLocation),
      try r.str("secret", sourceLocation: sourceLocation)
    )
  }
}

/// The JSON of a two-leg entry.
func entryJSON(_ id: String, debit: String, credit: String, amount: String) -> String {
  "{\"id\":\"\(id)\",\"legs\":[{\"account\":\"\(debit)\",\"side\":\"debit\","
    + "\"amount\":\"\(amount)\"},{\"account\":\"\(credit)\",\"side\":\"credit\","
    + "\"amount\":\"\(amount)\"}]}"
}

/// `ENTRY.POST` line of a two-leg entry.
func entryLine(_ id: String, debit: String, credit: String, amount: String) -> String {
  "ENTRY.POST " + entryJSON(id, debit: debit, credit: credit, amount: amount)
}

/// Lower-case hex of 64 characters.
func isHex64(_ s: String) -> Bool {
  s.utf8.count == 64 && s.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
}
