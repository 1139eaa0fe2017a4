import TallyNATS
import TallyTestSupport
import Testing

// Losing the server: waiters fail at once, calls fail while it is down, and after the
// restart the connection is back with its subscriptions.

@Suite("NATS reconnect", .timeLimit(.minutes(10)))
struct ReconnectTests {
  @Test func aRestartedServerIsReconnectedAndSubscriptionsAreRenewed() async throws {
    try await withServer { server in
      let connection = try await connect(server.url)
      defer { Task { await connection.close() } }
      let subscription = try await connection.subscribe("events.>")
      let silent = try await connection.subscribe("svc.never")
      defer { silent.unsubscribe() }
      try connection.publish("events.before", payload: [1])
      #expect(try await subscription.next()?.subject == "events.before")

      // A request in flight when the server dies fails at once, not at its timeout.
      let inFlight = Task { () -> NATSError? in
        do {
          _ = try await connection.request("svc.never", payload: [], timeout: .seconds(30))
          return nil
        } catch let error as NATSError {
          return error
        } catch {
          return NATSError(.invalid, "unexpected \(error)")
        }
      }
      try await Task.sleep(for: .milliseconds(100))
      let killedAt = ContinuousClock.now
      server.kill()
      // "At once": well before the request's own 30 s timeout, with room for a loaded
      // machine (this is no speed measurement).
      let failure = try await within(20, "the in-flight request") { await inFlight.value }
      #expect(failure?.code == .disconnected, "\(String(describing: failure))")
      #expect(ContinuousClock.now - killedAt < .seconds(20))
      #expect(await eventually(20) { !connection.isConnected })

      // While it is down, calls fail at once with .disconnected.
      do {
        try connection.publish("events.down", payload: [])
        Issue.record("publish succeeded while disconnected")
      } catch let error as NATSError {
        #expect(error.code == .disconnected)
      }
      do {
        _ = try await connection.request("svc.never", payload: [], timeout: .seconds(30))
        Issue.record("request succeeded while disconnected")
      } catch let error as NATSError {
        #expect(error.code == .disconnected)
      }
      do {
        try await connection.flush(timeout: .seconds(30))
        Issue.record("flush succeeded while disconnected")
      } catch let error as NATSError {
        #expect(error.code == .disconnected)
      }

      try await server.restart()
      #expect(await eventually(30) { connection.isConnected }, "no reconnect")
      #expect(connection.reconnects == 1)
      #expect(connection.lastError?.code == .disconnected)
      // The subscription was renewed: messages from another connection reach it.
      let other = try await connect(server.url)
      defer { Task { await other.close() } }
      try await connection.flush(timeout: .seconds(5))
      try other.publish("events.after", payload: [2])
      let after = try await subscription.next()
      #expect(after?.subject == "events.after" && after?.payload == [2])
      // And publishing and requests work again.
      try connection.publish("events.mine", payload: [3])
      #expect(try await subscription.next()?.subject == "events.mine")
      do {
        _ = try await connection.request("nobody", payload: [], timeout: .seconds(5))
      } catch let error as NATSError {
        #expect(error.code == .noResponders, "the request inbox works again: \(error)")
      }
    }
  }

  @Test func afterTheLastReconnectAttemptTheConnectionClosesAndSubscriptionsFail() async throws {
    try await withServer { server in
      var options = testOptions()
      options.reconnectAttemptsMax = 3
      options.reconnectWait = .milliseconds(50)
      let connection = try await connect(server.url, options)
      let subscription = try await connection.subscribe("x")
      server.kill()
      let ended: NATSError? = try await within(30, "the subscription's end") {
        () async -> NATSError? in
        do throws(NATSError) {
          for try await _ in subscription {}
          return nil
        } catch {
          return error
        }
      }
      #expect(ended?.code == .closed, "\(String(describing: ended))")
      #expect(ended?.message.contains("3 attempts") == true, "\(String(describing: ended))")
      do {
        try connection.publish("x", payload: [])
        Issue.record("publish succeeded on a connection that gave up")
      } catch let error as NATSError {
        #expect(error.code == .closed)
      }
      await connection.close()
    }
  }
}
