import TallyNATS
import TallyTestSupport
import Testing

// Core NATS against a real nats-server: publish/subscribe, request/reply, flush and limits.

@Suite("NATS connection", .timeLimit(.minutes(10)))
struct ConnectionTests {
  @Test func publishedMessagesArriveWithTheirHeadersAndPayload() async throws {
    try await withConnection { server, connection in
      let subscription = try await connection.subscribe("orders.>")
      let other = try await connect(server.url)
      defer { Task { await other.close() } }
      let headers = NATSHeaders([("Tally-Seq", "7"), ("X", "a"), ("X", "b: c")])
      let payload = (0...255).map { UInt8($0) }
      try other.publish("orders.eu.1", headers: headers, payload: payload)
      try other.publish("orders.us", payload: bytes("plain"))
      try other.publish("elsewhere", payload: bytes("not for us"))
      let got = try await subscription.collect(2)
      #expect(got[0].subject == "orders.eu.1")
      #expect(got[0].headers == headers)
      #expect(got[0].payload == payload)
      #expect(got[0].replyTo == nil && got[0].status == nil)
      #expect(got[1].subject == "orders.us" && got[1].payload == bytes("plain"))
      #expect(got[1].headers.isEmpty)
      #expect(connection.isConnected)
      #expect(connection.connectedServer?.port == server.port)
      #expect(connection.maxPayload == 1_048_576)
    }
  }

  @Test func aBatchIsPublishedInOrderAndAnInvalidMessageSendsNoneOfIt() async throws {
    try await withConnection { server, connection in
      let subscription = try await connection.subscribe("batch.>")
      let other = try await connect(server.url)
      defer { Task { await other.close() } }
      let batch = (0..<50).map { i in
        NATSConnection.Outgoing(
          subject: "batch.\(i % 3)", replyTo: i == 49 ? "_INBOX.x.\(i)" : nil,
          headers: i % 2 == 0 ? NATSHeaders([("N", String(i))]) : nil, payload: bytes("m\(i)"))
      }
      try other.publish(batch)
      let got = try await subscription.collect(50)
      #expect(got.map(\.payload) == (0..<50).map { bytes("m\($0)") })
      #expect(got.map(\.subject) == (0..<50).map { "batch.\($0 % 3)" })
      #expect(got[48].headers["N"] == "48" && got[49].headers.isEmpty)
      #expect(got[49].replyTo == "_INBOX.x.49" && got[48].replyTo == nil)
      // One bad subject, or one payload over max_payload, and nothing of the batch goes out.
      let tooBig = [UInt8](repeating: 1, count: try #require(other.maxPayload) + 1)
      for bad in [
        NATSConnection.Outgoing(subject: "batch.a b", payload: bytes("x")),
        NATSConnection.Outgoing(subject: "batch.big", payload: tooBig),
      ] {
        do {
          try other.publish([NATSConnection.Outgoing(subject: "batch.first", payload: [1]), bad])
          Issue.record("a batch with \(bad.subject) was sent")
        } catch let error as NATSError {
          #expect(error.code == .invalid || error.code == .payloadTooLarge, "\(error)")
        }
      }
      try other.publish([NATSConnection.Outgoing(subject: "batch.after", payload: [2])])
      let next = try await subscription.collect(1)
      #expect(next[0].subject == "batch.after", "a refused batch left \(next[0].subject)")
    }
  }

  @Test func requestGetsTheReplyOfAResponder() async throws {
    try await withConnection { server, connection in
      let responder = try await connect(server.url)
      defer { Task { await responder.close() } }
      let requests = try await responder.subscribe("svc.echo")
      let serving = Task {
        for try await request in requests {
          var headers = NATSHeaders()
          headers["Echo"] = request.headers["Ask"]
          try responder.publish(
            request.replyTo!, headers: headers, payload: request.payload.reversed())
        }
      }
      defer { serving.cancel() }
      for i in 0..<20 {
        let reply = try await connection.request(
          "svc.echo", headers: NATSHeaders([("Ask", "q\(i)")]), payload: bytes("abc\(i)"),
          timeout: .seconds(30))
        #expect(reply.payload == bytes("abc\(i)").reversed())
        #expect(reply.headers["Echo"] == "q\(i)")
      }
      // Concurrent requests share the inbox and each gets its own reply.
      try await withThrowingTaskGroup(of: Bool.self) { group in
        for i in 0..<50 {
          group.addTask {
            let reply = try await connection.request(
              "svc.echo", payload: bytes("\(i)"), timeout: .seconds(30))
            return reply.payload == Array(bytes("\(i)").reversed())
          }
        }
        for try await ok in group { #expect(ok) }
      }
    }
  }

  @Test func aRequestNobodyListensToFailsWithNoResponders() async throws {
    try await withConnection { _, connection in
      let start = ContinuousClock.now
      do {
        _ = try await connection.request("nobody.home", payload: [], timeout: .seconds(60))
        Issue.record("a request without responders succeeded")
      } catch let error as NATSError {
        #expect(error.code == .noResponders, "\(error)")
      }
      #expect(
        ContinuousClock.now - start < .seconds(30), "no responders must not wait out the timeout")
    }
  }

  @Test func aRequestWithoutAReplyTimesOut() async throws {
    try await withConnection { _, connection in
      let silent = try await connection.subscribe("svc.silent")
      defer { silent.unsubscribe() }
      let start = ContinuousClock.now
      do {
        _ = try await connection.request("svc.silent", payload: [], timeout: .milliseconds(300))
        Issue.record("a request without a reply succeeded")
      } catch let error as NATSError {
        #expect(error.code == .timeout, "\(error)")
      }
      // Bounded (no hang); the margin is for a loaded machine, not a speed check.
      #expect(ContinuousClock.now - start < .seconds(30))
    }
  }

  @Test func flushReturnsOnceTheServerProcessedEverythingBefore() async throws {
    try await withConnection { server, connection in
      let subscription = try await connection.subscribe("bulk")
      let publisher = try await connect(server.url)
      defer { Task { await publisher.close() } }
      for i in 0..<1000 { try publisher.publish("bulk", payload: bytes("\(i)")) }
      try await publisher.flush(timeout: .seconds(30))
      // The server wrote all 1000 to us before the PONG answering this PING.
      try await connection.flush(timeout: .seconds(30))
      let got = try await subscription.collect(1000, within: 5)
      #expect(got.map(\.payload) == (0..<1000).map { bytes("\($0)") })
    }
  }

  @Test func aConsumerPendingMaxBehindIsKeptAndOneMoreEndsTheSubscription() async throws {
    try await withConnection { server, connection in
      let pendingMax = 10
      let atMax = try await connection.subscribe("slow.a", pendingMax: pendingMax)
      let overMax = try await connection.subscribe("slow.b", pendingMax: pendingMax)
      let publisher = try await connect(server.url)
      defer { Task { await publisher.close() } }
      for i in 0..<pendingMax { try publisher.publish("slow.a", payload: [UInt8(i)]) }
      for i in 0...pendingMax { try publisher.publish("slow.b", payload: [UInt8(i)]) }
      try await publisher.flush(timeout: .seconds(30))
      try await connection.flush(timeout: .seconds(30))
      // At the limit: all kept, the subscription lives on.
      #expect(try await atMax.collect(pendingMax).map(\.payload) == (0..<10).map { [UInt8($0)] })
      try publisher.publish("slow.a", payload: [99])
      #expect(try await atMax.next()?.payload == [99])
      // One more: the buffered ones, then .slowConsumer; never a silent drop.
      var iterator = overMax.makeAsyncIterator()
      for i in 0..<pendingMax {
        #expect(try await iterator.next()?.payload == [UInt8(i)])
      }
      do {
        let extra = try await iterator.next()
        Issue.record("expected slow_consumer, got \(String(describing: extra))")
      } catch let error as NATSError {
        #expect(error.code == .slowConsumer, "\(error)")
      }
    }
  }

  @Test func pendingMaxMustBeBetweenOneAndTheLimit() async throws {
    try await withConnection { _, connection in
      for bad in [0, NATSLimits.subscriptionPendingMax + 1] {
        do {
          _ = try await connection.subscribe("p", pendingMax: bad)
          Issue.record("pendingMax \(bad) was accepted")
        } catch let error as NATSError {
          #expect(error.code == .invalid)
        }
      }
      let largest = try await connection.subscribe(
        "p", pendingMax: NATSLimits.subscriptionPendingMax)
      let smallest = try await connection.subscribe("p", pendingMax: 1)
      try connection.publish("p", payload: [1])
      #expect(try await largest.next()?.payload == [1])
      #expect(try await smallest.next()?.payload == [1])
    }
  }

  @Test func unsubscribeEndsIterationAndStopsDelivery() async throws {
    try await withConnection { _, connection in
      let subscription = try await connection.subscribe("u.x")
      try connection.publish("u.x", payload: [1])
      try await connection.flush(timeout: .seconds(30))
      subscription.unsubscribe()
      try connection.publish("u.x", payload: [2])
      var iterator = subscription.makeAsyncIterator()
      #expect(try await iterator.next()?.payload == [1], "buffered messages are still delivered")
      #expect(try await iterator.next() == nil)
    }
  }

  @Test func queueGroupMembersShareTheMessages() async throws {
    try await withConnection { _, connection in
      let a = try await connection.subscribe("work", queue: "workers")
      let b = try await connection.subscribe("work", queue: "workers")
      for i in 0..<100 { try connection.publish("work", payload: [UInt8(i)]) }
      try await connection.flush(timeout: .seconds(30))
      try await connection.flush(timeout: .seconds(30))
      a.unsubscribe()
      b.unsubscribe()
      var total = 0
      for subscription in [a, b] {
        for try await _ in subscription { total += 1 }
      }
      #expect(total == 100)
    }
  }

  @Test func aPayloadOfMaxPayloadIsSentAndOneByteMoreIsRefused() async throws {
    try await withConnection { _, connection in
      let max = try #require(connection.maxPayload)
      let subscription = try await connection.subscribe("big")
      try connection.publish("big", payload: [UInt8](repeating: 0xAB, count: max))
      #expect(try await subscription.next()?.payload.count == max)
      do {
        try connection.publish("big", payload: [UInt8](repeating: 0, count: max + 1))
        Issue.record("a payload over max_payload was accepted")
      } catch let error as NATSError {
        #expect(error.code == .payloadTooLarge)
      }
      // Headers count too.
      do {
        try connection.publish(
          "big", headers: NATSHeaders([("K", "v")]), payload: [UInt8](repeating: 0, count: max))
        Issue.record("headers + payload over max_payload were accepted")
      } catch let error as NATSError {
        #expect(error.code == .payloadTooLarge)
      }
      try await connection.flush(timeout: .seconds(30))
      #expect(connection.isConnected, "refused messages never reach the server")
    }
  }

  @Test(arguments: ["", "a b", "a.*", "a.>", "a..b", ".a", "a.", "tab\tbed"])
  func badPublishSubjectsAreRefused(_ subject: String) async throws {
    try await withConnection { _, connection in
      do {
        try connection.publish(subject, payload: [])
        Issue.record("subject \(subject.debugDescription) was accepted")
      } catch let error as NATSError {
        #expect(error.code == .invalid)
      }
      try await connection.flush(timeout: .seconds(30))
      #expect(connection.isConnected)
    }
  }

  @Test func afterCloseEverythingFailsWithClosedAndSubscriptionsEnd() async throws {
    try await withServer { server in
      let connection = try await connect(server.url)
      let subscription = try await connection.subscribe("c")
      await connection.close()
      #expect(!connection.isConnected)
      #expect(try await subscription.next() == nil)
      for attempt in 0..<3 {
        do {
          switch attempt {
          case 0: try connection.publish("c", payload: [])
          case 1: try await connection.flush(timeout: .seconds(1))
          default: _ = try await connection.request("c", payload: [], timeout: .seconds(1))
          }
          Issue.record("call \(attempt) succeeded after close")
        } catch let error as NATSError {
          #expect(error.code == .closed, "\(error)")
        }
      }
      await connection.close()
    }
  }

  @Test func connectingWhereNoServerListensFailsWithConnect() async throws {
    let port = try freePort()
    let start = ContinuousClock.now
    do {
      _ = try await NATSConnection.connect([NATSAddress(host: "127.0.0.1", port: port)])
      Issue.record("connected to a port nobody listens on")
    } catch {
      #expect(error.code == .connect, "\(error)")
      #expect(error.message.contains("127.0.0.1:\(port)"))
    }
    #expect(ContinuousClock.now - start < .seconds(30))
  }
}
