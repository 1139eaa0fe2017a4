import Dispatch
import Foundation

#if canImport(Glibc)
  import Glibc
#endif

// Real nats-server processes for tests: one server, or a JetStream cluster of several, on
// free 127.0.0.1 ports with their store directories in a temp dir.
//
//     let server = try await NATSServerProcess.start(jetstream: true)
//     defer { server.remove() }          // stops it (SIGKILL if needed) and deletes its dir
//     ... connect to server.url ...
//     try await server.kill(); try await server.restart()   // same port, same store
//
// Every wait is bounded; a server that does not come up throws with the tail of its log.
// Blocking socket and process waits run on GCD threads, never on the Swift concurrency pool.

/// One nats-server child process.
public final class NATSServerProcess: @unchecked Sendable {
  public struct Failed: Error, CustomStringConvertible {
    public var description: String
  }

  /// The nats-server executable: `$NATS_SERVER_BIN`, else `/usr/sbin/nats-server`, else the
  /// first `nats-server` on `PATH`.
  public static func executable() throws -> String {
    if let path = ProcessInfo.processInfo.environment["NATS_SERVER_BIN"], !path.isEmpty {
      return path
    }
    var candidates = [
      "/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server",
    ]
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
      candidates.append("\(dir)/nats-server")
    }
    if let found = candidates.first(where: { access($0, X_OK) == 0 }) { return found }
    throw Failed(
      description: "nats-server not found (install it: tools/setup), looked at \(candidates)")
  }

  /// How long a start waits for the server to accept clients (and JetStream to answer).
  public static let startTimeout = 60.0
  /// How long `stop` waits after SIGTERM before SIGKILL.
  public static let stopTimeout = 10.0
  /// Starts retried with new ports when one was taken meanwhile.
  static let portClashRetries = 5

  /// Directory of this server: `server.conf`, `server.log`, `jetstream/`.
  public let root: String
  public let name: String
  public let jetstream: Bool
  /// The client port.
  public private(set) var port: Int
  /// The cluster (route) port, nil for a standalone server.
  public fileprivate(set) var clusterPort: Int?
  /// Route ports of the other members.
  var routes: [Int] = []
  var clusterName: String?
  public var url: String { "nats://127.0.0.1:\(port)" }
  public var storeDir: String { root + "/jetstream" }
  public var logPath: String { root + "/server.log" }
  var configPath: String { root + "/server.conf" }

  private let lock = NSLock()
  private var pid: pid_t = 0
  private var exited: Int32?

  init(root: String, name: String, jetstream: Bool, port: Int) {
    self.root = root
    self.name = name
    self.jetstream = jetstream
    self.port = port
  }

  /// Kills a still-running child and deletes the directory.
  deinit {
    killNow()
    removeTree(root)
  }

  /// Starts a standalone server (with JetStream unless told otherwise) and waits until it
  /// accepts clients and, with JetStream, until JetStream answers `$JS.API.INFO`.
  public static func start(jetstream: Bool = true) async throws -> NATSServerProcess {
    var lastError: (any Error)?
    for _ in 0..<portClashRetries {
      // Each try has its own directory: a failed one deletes its own when released.
      let server = NATSServerProcess(
        root: try makeTempDirectory("tally-nats"), name: "n1-\(uniqueSuffix())",
        jetstream: jetstream, port: try freePort())
      do {
        try server.writeConfig()
        try server.launch()
        try await server.waitReady(jetstreamReady: jetstream)
        return server
      } catch let error as Failed where error.description.contains("address already in use") {
        lastError = error
      }
    }
    throw lastError ?? Failed(description: "could not start nats-server")
  }

  /// The server's log so far.
  public func log() -> String {
    (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
  }

  public var isRunning: Bool { lock.withLock { pid != 0 && reapLocked() == nil } }

  /// SIGTERM, then SIGKILL if it has not exited within `stopTimeout`. Returns at once (so
  /// it can run in a `defer` of an async test without holding one of the few threads of
  /// the concurrency pool while JetStream shuts down); a GCD thread waits for the exit.
  /// `restart` and `kill` work right after it.
  public func stop() {
    let target = lock.withLock { pid }
    signal(SIGTERM)
    DispatchQueue.global().async { [self] in
      // Only this run's process: a `restart` meanwhile starts another under a new pid.
      let deadline = monotonicNow() + Self.stopTimeout
      while monotonicNow() < deadline {
        if lock.withLock({ pid != target || reapLocked() != nil }) { return }
        usleep(2_000)
      }
      lock.withLock {
        guard pid == target, target != 0, reapLocked() == nil else { return }
        _ = Glibc.kill(target, SIGKILL)
        var status: Int32 = 0
        while waitpid(target, &status, 0) < 0 && errno == EINTR {}
        exited = 128 + SIGKILL
      }
    }
  }

  /// SIGKILL; returns once the process has exited.
  public func kill() {
    killNow()
  }

  /// Starts the server again on the same ports with the same store directory (after `stop`
  /// or `kill`; a running one is killed first), and waits until it is ready.
  public func restart(jetstreamReady: Bool? = nil) async throws {
    if isRunning { kill() }
    try launch()
    try await waitReady(jetstreamReady: jetstreamReady ?? (jetstream && clusterPort == nil))
  }

  /// Kills the server if running and deletes its directory.
  public func remove() {
    killNow()
    removeTree(root)
  }

  // MARK: Process

  func writeConfig() throws {
    var text = """
      server_name: \(name)
      listen: 127.0.0.1:\(port)
      max_payload: 1048576

      """
    if jetstream {
      text += """
        jetstream {
          store_dir: "\(storeDir)"
          max_memory_store: 268435456
          max_file_store: 1073741824
        }

        """
    }
    if let clusterPort, let clusterName {
      let routeList = routes.map { "nats-route://127.0.0.1:\($0)" }.joined(separator: ", ")
      text += """
        cluster {
          name: \(clusterName)
          listen: 127.0.0.1:\(clusterPort)
          routes: [\(routeList)]
        }

        """
    }
    try text.write(toFile: configPath, atomically: true, encoding: .utf8)
  }

  func launch() throws {
    let exe = try Self.executable()
    let child: pid_t
    do {
      child = try spawnDetached(exe, ["-c", configPath], stdout: logPath, stderr: logPath)
    } catch { throw Failed(description: error.description) }
    lock.withLock {
      pid = child
      exited = nil
    }
  }

  /// Sends `sig` if the process is alive.
  public func signal(_ sig: Int32) {
    lock.withLock {
      if pid != 0 && reapLocked() == nil { _ = Glibc.kill(pid, sig) }
    }
  }

  /// The exit status once exited (reaping it), nil while running. Call with `lock` held.
  private func reapLocked() -> Int32? {
    if let exited { return exited }
    guard pid != 0 else { return nil }
    var status: Int32 = 0
    let r = waitpid(pid, &status, WNOHANG)
    if r == pid {
      let code = exitCode(waitStatus: status)
      exited = code
      return code
    }
    if r < 0 && errno == ECHILD {
      // Reaped elsewhere: it is gone, and its pid may already be another process's. Never
      // signal it again.
      exited = -1
      return exited
    }
    return nil
  }

  /// Waits (blocking) up to `timeout` seconds for the exit; true once exited.
  func waitExit(timeout: Double) -> Bool {
    let deadline = monotonicNow() + timeout
    while true {
      if lock.withLock({ pid == 0 || reapLocked() != nil }) { return true }
      if monotonicNow() > deadline { return false }
      usleep(2_000)
    }
  }

  /// Synchronous last-resort kill (deinit, failed start, remove).
  func killNow() {
    lock.withLock {
      guard pid != 0, reapLocked() == nil else { return }
      _ = Glibc.kill(pid, SIGKILL)
      var status: Int32 = 0
      while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
      exited = 128 + SIGKILL
    }
  }

  // MARK: Readiness

  /// Waits until the server sends `INFO` to a client, and (if `jetstreamReady`) until
  /// `$JS.API.INFO` answers without an error, i.e. JetStream is up (in a cluster: has a
  /// meta leader). Throws with the log's tail when the process exits or time runs out.
  func waitReady(jetstreamReady: Bool, timeout: Double = startTimeout) async throws {
    let deadline = monotonicNow() + timeout
    var lastProblem = "no answer"
    while true {
      if lock.withLock({ reapLocked() }) != nil {
        throw Failed(
          description: "nats-server \(name) exited during start (\(lastProblem)); log:\n"
            + String(log().suffix(3000)))
      }
      let (port, name) = (self.port, self.name)
      let probe = await offPool { NATSProbe.run(port: port, name: name, jetstream: jetstreamReady) }
      switch probe {
      case .ready:
        return
      case .notReady(let problem):
        lastProblem = problem
      }
      if monotonicNow() > deadline {
        killNow()
        throw Failed(
          description: "nats-server \(name) not ready within \(timeout)s (\(lastProblem)); log:\n"
            + String(log().suffix(3000)))
      }
      try await Task.sleep(for: .milliseconds(50))
    }
  }
}

/// A JetStream cluster of nats-server processes routed to each other on 127.0.0.1.
public final class NATSCluster: @unchecked Sendable {
  public let servers: [NATSServerProcess]
  public let root: String

  init(servers: [NATSServerProcess], root: String) {
    self.servers = servers
    self.root = root
  }

  /// The client URLs of all members, comma-separated.
  public var urls: String { servers.map(\.url).joined(separator: ",") }

  /// Starts `size` servers (`n1`…) with JetStream, routed to each other, and waits until
  /// each accepts clients and JetStream has a meta leader.
  public static func start(size: Int = 3) async throws -> NATSCluster {
    precondition(size >= 1)
    var lastError: (any Error)?
    for _ in 0..<NATSServerProcess.portClashRetries {
      // Each try has its own directory: a failed one deletes its own when released.
      let root = try makeTempDirectory("tally-nats-cluster")
      var servers: [NATSServerProcess] = []
      let clusterPorts = try (0..<size).map { _ in try freePort() }
      let suffix = uniqueSuffix()
      for index in 0..<size {
        let dir = root + "/n\(index + 1)"
        mkdir(dir, 0o755)
        let server = NATSServerProcess(
          root: dir, name: "n\(index + 1)-\(suffix)", jetstream: true, port: try freePort())
        server.clusterPort = clusterPorts[index]
        server.clusterName = "tally-test"
        server.routes = clusterPorts.enumerated().filter { $0.offset != index }.map(\.element)
        servers.append(server)
      }
      let cluster = NATSCluster(servers: servers, root: root)
      do {
        for server in servers {
          try server.writeConfig()
          try server.launch()
        }
        for server in servers { try await server.waitReady(jetstreamReady: false) }
        try await cluster.waitForMetaLeader()
        return cluster
      } catch let error as NATSServerProcess.Failed
        where error.description.contains("address already in use")
      {
        lastError = error
      }
    }
    throw lastError ?? NATSServerProcess.Failed(description: "could not start the cluster")
  }

  /// Waits (bounded) until JetStream of the running members answers `$JS.API.INFO`.
  public func waitForMetaLeader(timeout: Double = NATSServerProcess.startTimeout) async throws {
    let deadline = monotonicNow() + timeout
    var lastProblem = "no answer"
    while monotonicNow() < deadline {
      for server in servers where server.isRunning {
        let (port, name) = (server.port, server.name)
        switch await offPool({ NATSProbe.run(port: port, name: name, jetstream: true) }) {
        case .ready: return
        case .notReady(let problem): lastProblem = problem
        }
      }
      try await Task.sleep(for: .milliseconds(100))
    }
    throw NATSServerProcess.Failed(
      description: "JetStream cluster has no meta leader after \(timeout)s (\(lastProblem)); "
        + "logs:\n"
        + servers.map { "[\($0.name)] " + String($0.log().suffix(1500)) }
        .joined(separator: "\n"))
  }

  /// Stops every member (SIGTERM, then SIGKILL after a bound). Synchronous, like
  /// `NATSServerProcess.stop()`.
  public func stop() {
    for server in servers { server.signal(SIGTERM) }
    for server in servers { server.stop() }
  }

  deinit {
    for server in servers { server.killNow() }
    removeTree(root)
  }

  /// Kills every member and deletes the cluster's directory.
  public func remove() {
    for server in servers { server.killNow() }
    removeTree(root)
  }
}

// MARK: - Helpers

/// A port that was free on 127.0.0.1 a moment ago (bind to port 0, read it, close).
public func freePort() throws -> Int {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { throw NATSServerProcess.Failed(description: "socket: errno \(errno)") }
  defer { close(fd) }
  var address = sockaddr_in()
  address.sin_family = sa_family_t(AF_INET)
  address.sin_port = 0
  address.sin_addr.s_addr = inet_addr("127.0.0.1")
  let bound = withUnsafePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
      bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
    }
  }
  guard bound == 0 else { throw NATSServerProcess.Failed(description: "bind: errno \(errno)") }
  var length = socklen_t(MemoryLayout<sockaddr_in>.size)
  let named = withUnsafeMutablePointer(to: &address) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
  }
  guard named == 0 else {
    throw NATSServerProcess.Failed(description: "getsockname: errno \(errno)")
  }
  return Int(UInt16(bigEndian: address.sin_port))
}

/// Adds "close every descriptor from 3 up" to `actions` (glibc 2.34+; looked up at run time
/// because Swift's Glibc module does not declare it). Without it, marks every descriptor open
/// now close-on-exec instead.
public func closeInheritedDescriptors(_ actions: inout posix_spawn_file_actions_t) {
  typealias AddCloseFrom =
    @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
  if let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") {
    let addCloseFrom = unsafeBitCast(symbol, to: AddCloseFrom.self)
    if addCloseFrom(&actions, 3) == 0 { return }
  }
  guard let dir = opendir("/proc/self/fd") else { return }
  defer { closedir(dir) }
  while let entry = readdir(dir) {
    let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
      String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
    if let fd = Int32(name), fd >= 3 {
      _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
    }
  }
}

/// Distinguishes this test's servers from those of other tests (names are checked in INFO).
func uniqueSuffix() -> String {
  String(UInt32.random(in: 0...UInt32.max), radix: 36)
}

func makeTempDirectory(_ prefix: String) throws -> String {
  var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
  let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
  guard made != nil else {
    throw NATSServerProcess.Failed(description: "mkdtemp failed: errno \(errno)")
  }
  return String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

func monotonicNow() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Runs blocking `body` on a GCD thread and awaits it.
func offPool<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
  await withCheckedContinuation { (continuation: CheckedContinuation<T, Never>) in
    DispatchQueue.global().async { continuation.resume(returning: body()) }
  }
}

/// A blocking, bounded probe of a server over a raw socket: reads `INFO`; with `jetstream`
/// also sends `CONNECT`, subscribes an inbox and requests `$JS.API.INFO`.
enum NATSProbe {
  enum Result {
    case ready
    case notReady(String)
  }

  /// Bound of one probe (connect, each read).
  static let ioTimeoutMillis = 1000

  static func run(port: Int, name: String, jetstream: Bool) -> Result {
    let fd: Int32
    switch connectLoopback(port: port, timeoutMillis: ioTimeoutMillis) {
    case .success(let f): fd = f
    case .failure(let e): return .notReady(e.description)
    }
    defer { close(fd) }
    var received = [UInt8]()
    guard readUntil(fd, &received, contains: "\r\n"), received.starts(with: Array("INFO ".utf8))
    else {
      return .notReady("no INFO line")
    }
    // Another test's server may have taken the port: only ours has this name.
    guard String(decoding: received, as: UTF8.self).contains("\"server_name\":\"\(name)\"") else {
      return .notReady("another server answers on port \(port)")
    }
    guard jetstream else { return .ready }
    let request =
      "CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"no_responders\":true}\r\n"
      + "SUB _INBOX.probe 1\r\nPUB $JS.API.INFO _INBOX.probe 0\r\n\r\n"
    let bytes = Array(request.utf8)
    guard send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
      return .notReady("send failed")
    }
    // The reply: `MSG _INBOX.probe 1 <size>` or `HMSG … <hsize> <size>` (a 503 status).
    received = []
    guard readUntil(fd, &received, contains: "MSG _INBOX.probe") else {
      return .notReady("no reply to $JS.API.INFO")
    }
    let text = String(decoding: received, as: UTF8.self)
    guard let start = text.range(of: "MSG _INBOX.probe") else { return .notReady("no reply") }
    if text[..<start.lowerBound].hasSuffix("H") {
      return .notReady("$JS.API.INFO: no responders")
    }
    // The JSON payload ends with '}' and the message with CR LF.
    guard readUntil(fd, &received, contains: "}\r\n") else {
      return .notReady("$JS.API.INFO: reply cut off")
    }
    let reply = String(decoding: received, as: UTF8.self)
    if reply.contains("\"error\"") {
      return .notReady("$JS.API.INFO error: \(reply.suffix(300))")
    }
    return .ready
  }

  /// Reads until `received` contains `marker` (true), or EOF/timeout/64 KiB (false).
  static func readUntil(_ fd: Int32, _ received: inout [UInt8], contains marker: String) -> Bool {
    let needle = Array(marker.utf8)
    var chunk = [UInt8](repeating: 0, count: 4096)
    while received.count < 65_536 {
      if contains(received, needle) { return true }
      let n = recv(fd, &chunk, chunk.count, 0)
      if n <= 0 { return false }
      received.append(contentsOf: chunk[0..<n])
    }
    return contains(received, needle)
  }

  static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard haystack.count >= needle.count else { return false }
    for start in 0...(haystack.count - needle.count)
    where haystack[start..<start + needle.count].elementsEqual(needle) {
      return true
    }
    return false
  }
}
