import TallyNATS
import TallyTestSupport
import Testing

// Helpers for tests against real nats-server processes: bounded waits and connections with
// short reconnect waits.

struct TimedOut: Error, CustomStringConvertible {
  var description: String
}

/// Runs `body`, failing with `TimedOut` if it takes longer than `seconds` (the body is then
/// cancelled; every wait of the client honours cancellation).
func within<T: Sendable>(
  _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
  try await withThrowingTaskGroup(of: T?.self) { group in
    group.addTask { try await body() }
    group.addTask {
      try await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
      return nil
    }
    defer { group.cancelAll() }
    guard let first = try await group.next(), let value = first else {
      throw TimedOut(description: "\(what): not done within \(seconds) s")
    }
    return value
  }
}

/// Options for tests: reconnect quickly, for up to about 20 s.
func testOptions(_ name: String = "tally-tests") -> NATSConnection.Options {
  NATSConnection.Options(
    // Generous: the suite runs many servers and tests at once on few cores, and a
    // subscribe waits for a PONG within this bound.
    name: name, connectTimeout: .seconds(30), reconnectWait: .milliseconds(100),
    reconnectAttemptsMax: 200)
}

func connect(_ urls: String, _ options: NATSConnection.Options = testOptions()) async throws
  -> NATSConnection
{
  try await NATSConnection.connect(try NATSAddress.parseList(urls), options: options)
}

extension NATSSubscription {
  /// The next message, waiting at most `seconds`.
  func next(within seconds: Double = 5) async throws -> NATSMessage? {
    try await TallyNATSTests.within(seconds, "next message on \(subject)") {
      var iterator = self.makeAsyncIterator()
      return try await iterator.next()
    }
  }

  /// Exactly `count` messages, waiting at most `seconds` in all.
  func collect(_ count: Int, within seconds: Double = 5) async throws -> [NATSMessage] {
    try await TallyNATSTests.within(seconds, "\(count) messages on \(subject)") {
      var iterator = self.makeAsyncIterator()
      var messages: [NATSMessage] = []
      while messages.count < count, let message = try await iterator.next() {
        messages.append(message)
      }
      return messages
    }
  }
}

/// Polls `condition` every 20 ms for at most `seconds`; true once it holds.
func eventually(
  _ seconds: Double, _ condition: @Sendable () async throws -> Bool
) async rethrows -> Bool {
  let clock = ContinuousClock()
  let deadline = clock.now + .milliseconds(Int(seconds * 1000))
  while clock.now < deadline {
    if try await condition() { return true }
    try? await Task.sleep(for: .milliseconds(20))
  }
  return try await condition()
}

/// Runs `body` with a fresh JetStream server, then stops it.
func withServer<R>(
  jetstream: Bool = true, _ body: (NATSServerProcess) async throws -> R
) async throws -> R {
  let server = try await NATSServerProcess.start(jetstream: jetstream)
  defer { server.stop() }
  return try await body(server)
}

/// Runs `body` with a connection to a fresh JetStream server, then closes both.
func withConnection<R>(
  _ body: (NATSServerProcess, NATSConnection) async throws -> R
) async throws -> R {
  try await withServer { server in
    let connection = try await connect(server.url)
    do {
      let result = try await body(server, connection)
      await connection.close()
      return result
    } catch {
      await connection.close()
      throw error
    }
  }
}

func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
