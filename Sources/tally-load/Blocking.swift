import Synchronization
import TallyClient
import TallyProtocol

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// `--blocking`: each connection on a thread of its own, one request in flight, with plain
/// blocking `write` and `read` on its socket, closed loop. This is how a synchronous service
/// posts (one call, wait, the next). It costs the generator no event loop: on a 2-core
/// machine that shares its cores with the server, the NIO client's epoll wake and task hops
/// are tens of microseconds a round trip, the same order as the server's own work at one
/// request in flight.
func runBlockingLoad(_ config: LoadConfig, log: @Sendable (String) -> Void) throws(LoadError)
  -> Report
{
  var connections = [BlockingConnection]()
  for _ in 0..<config.connections {
    do {
      connections.append(try BlockingConnection(config))
    } catch {
      for c in connections { c.close() }
      throw error
    }
  }
  log(
    "tally-load: \(config.connections) blocking connections ready; running "
      + "\(config.warmupSeconds) s warmup + \(config.durationSeconds) s")
  let start = monotonicNanos() + 20_000_000
  let measureFrom = start + Int64(config.warmupSeconds) * 1_000_000_000
  let end = measureFrom + Int64(config.durationSeconds) * 1_000_000_000
  let perConnection = (0..<config.connections).map { _ in ConnectionStats() }
  let lost = Atomic<Int>(0)
  var threads = [pthread_t]()
  for (i, c) in connections.enumerated() {
    let work = ThreadWork {
      var generator = EntryGenerator(
        runID: config.runID, connection: i, slot: 0, stride: 1, accounts: config.accounts,
        hotPercent: config.hotPercent, entriesPerRequest: config.entriesPerRequest)
      while monotonicNanos() < start { usleep(1_000) }
      // Bounded by the end of the run: every round trip either answers or times out.
      while true {
        let sent = monotonicNanos()
        if sent >= end { break }
        let (verb, body) = generator.nextRequest()
        let response: TallyResponse
        do {
          response = try c.call(verb, body)
        } catch let error as LoadError {
          if sent >= measureFrom || error.code == "NO_RESPONSE" {
            perConnection[i].state.withLock {
              $0.errors[error.code, default: 0] += config.entriesPerRequest
            }
          }
          lost.add(1, ordering: .relaxed)
          return
        } catch {
          preconditionFailure("call throws LoadError only")
        }
        let done = monotonicNanos()
        guard sent >= measureFrom else { continue }
        let outcome = Outcome(response, entries: config.entriesPerRequest)
        perConnection[i].state.withLock { stats in
          stats.requests += 1
          stats.record(latencyNanos: done - sent)
          stats.entries += outcome.accepted
          for (code, count) in outcome.failed { stats.errors[code, default: 0] += count }
        }
      }
    }
    threads.append(work.start())
  }
  for t in threads { pthread_join(t, nil) }
  for c in connections { c.close() }
  var total = Stats()
  for stats in perConnection {
    stats.state.withLock { total.merge($0) }
  }
  return Report(config: config, stats: total, connectionsLost: lost.load(ordering: .relaxed))
}

/// Why a blocking connection failed, with the code it is counted under.
struct LoadError: Error, CustomStringConvertible {
  var code: String
  var description: String
}

func monotonicNanos() -> Int64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

/// A closure run on a new pthread.
final class ThreadWork: @unchecked Sendable {
  let body: () -> Void
  init(_ body: @escaping () -> Void) { self.body = body }

  func start() -> pthread_t {
    let box = Unmanaged.passRetained(self).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
      &thread, nil,
      { raw in
        let work = Unmanaged<ThreadWork>.fromOpaque(raw!).takeRetainedValue()
        work.body()
        return nil
      }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
    return thread
  }
}

/// One connection with blocking I/O: `HELLO` read, `AUTH` sent when there is a key, then
/// request and answer lines. A read waits at most 30 s (`SO_RCVTIMEO`): a server that stops
/// answering ends the connection (`NO_RESPONSE`), never the run's bound.
final class BlockingConnection: @unchecked Sendable {
  private let fd: Int32
  private var buffer = [UInt8](repeating: 0, count: 1 << 16)
  private var start = 0
  private var filled = 0

  init(_ config: LoadConfig) throws(LoadError) {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    var found: UnsafeMutablePointer<addrinfo>?
    let host = config.endpoint.host
    guard getaddrinfo(host, String(config.endpoint.port), &hints, &found) == 0, let a = found
    else {
      throw LoadError(code: "CONNECTION_CLOSED", description: "cannot resolve \(host)")
    }
    defer { freeaddrinfo(found) }
    fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
    guard fd >= 0 else {
      throw LoadError(code: "CONNECTION_CLOSED", description: "socket: \(errno)")
    }
    var one: Int32 = 1
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    var timeout = timeval(tv_sec: 30, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    guard connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0 else {
      let e = errno
      Glibc.close(fd)
      throw LoadError(
        code: "CONNECTION_CLOSED", description: "connect to \(config.endpoint): errno \(e)")
    }
    do throws(LoadError) {
      let hello = try readLine()
      guard hello.hasPrefix("HELLO ") else {
        throw LoadError(code: "PROTOCOL_VIOLATION", description: "expected HELLO: \(hello)")
      }
      if let key = config.key, let secret = config.secret {
        guard
          let nonce = (try? JSONParser.parse(String(hello.dropFirst(6))))?.objectValue?["nonce"]?
            .stringValue
        else {
          throw LoadError(code: "PROTOCOL_VIOLATION", description: "HELLO without a nonce")
        }
        let request = JSONWriter.serialize(
          .object(
            JSONObject([
              ("key", .string(key)),
              ("mac", .string(TallyClient.mac(secret: secret, nonce: nonce))),
            ])))
        let answer = try call("AUTH", request)
        guard answer.ok else {
          throw LoadError(code: answer.code ?? "ERR", description: "AUTH: \(answer.body)")
        }
      }
    } catch {
      Glibc.close(fd)
      throw error
    }
  }

  func close() { Glibc.close(fd) }

  func call(_ verb: String, _ body: String) throws(LoadError) -> TallyResponse {
    let line = Array((verb + " " + body + "\n").utf8)
    // Bounded: each round writes at least one byte or stops with its errno.
    let failed: Int32? = line.withUnsafeBytes { b in
      var offset = 0
      while offset < b.count {
        let n = write(fd, b.baseAddress! + offset, b.count - offset)
        if n <= 0 { return errno }
        offset += n
      }
      return nil
    }
    if let failed {
      throw LoadError(code: "CONNECTION_CLOSED", description: "write: errno \(failed)")
    }
    let answer = try readLine()
    do {
      return try TallyResponse.parse(line: answer)
    } catch {
      throw LoadError(code: "PROTOCOL_VIOLATION", description: "\(error)")
    }
  }

  /// The next line, without its LF; at most `TallyClient.maxLineBytes`.
  private func readLine() throws(LoadError) -> String {
    var line = [UInt8]()
    while true {
      if let nl = buffer[start..<filled].firstIndex(of: 0x0A) {
        line += buffer[start..<nl]
        start = nl + 1
        return String(decoding: line, as: UTF8.self)
      }
      line += buffer[start..<filled]
      start = 0
      filled = 0
      if line.count > TallyClient.maxLineBytes {
        throw LoadError(code: "PROTOCOL_VIOLATION", description: "answer line over the limit")
      }
      let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
      if n == 0 {
        throw LoadError(code: "CONNECTION_CLOSED", description: "the server closed")
      }
      if n < 0 {
        let e = errno
        throw LoadError(
          code: e == EAGAIN || e == EWOULDBLOCK ? "NO_RESPONSE" : "CONNECTION_CLOSED",
          description: "read: errno \(e)")
      }
      filled = n
    }
  }
}
