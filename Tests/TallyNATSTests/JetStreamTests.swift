import TallyNATS
import TallyTestSupport
import Testing

// JetStream against a real nats-server: streams, publishing with its checks, stored
// messages, and pull consumers.

func withJetStream<R>(_ body: (NATSConnection, JetStream) async throws -> R) async throws -> R {
  try await withConnection { _, connection in
    // The suite runs beside hundreds of other tests that fsync: a stream create on file storage
    // can wait on the disk for seconds there, so the tests give the API more than the default 5 s.
    try await body(connection, JetStream(connection, timeout: .seconds(30)))
  }
}

@Suite("JetStream", .timeLimit(.minutes(10)))
struct JetStreamTests {
  @Test func streamsAreCreatedEnsuredInspectedAndDeleted() async throws {
    try await withJetStream { _, js in
      let config = JetStream.StreamConfig(
        name: "LEDGER", subjects: ["ledger.>"], duplicateWindow: .seconds(60))
      #expect(try await js.streamInfo("LEDGER") == nil)
      let created = try await js.createStream(config)
      #expect(created.name == "LEDGER" && created.subjects == ["ledger.>"])
      #expect(created.replicas == 1 && created.messages == 0 && created.lastSeq == 0)
      #expect(created.clusterLeader == nil)
      _ = try await js.publish("ledger.a", payload: [1])
      let ensured = try await js.ensureStream(config)
      #expect(ensured.messages == 1 && ensured.lastSeq == 1, "ensure returns the existing one")
      // Another configuration is refused, and the stream is left as it is.
      var other = config
      other.subjects = ["other.>"]
      do {
        _ = try await js.ensureStream(other)
        Issue.record("ensureStream accepted other subjects")
      } catch let error as JetStreamError {
        #expect(error.kind == .mismatch, "\(error)")
        #expect(error.description.contains("subjects"))
      }
      #expect(try await js.streamInfo("LEDGER")?.subjects == ["ledger.>"])
      try await js.deleteStream("LEDGER")
      #expect(try await js.streamInfo("LEDGER") == nil)
      do {
        try await js.deleteStream("LEDGER")
        Issue.record("deleting a missing stream succeeded")
      } catch let error as JetStreamError {
        #expect(error.errCode == JetStreamError.streamNotFound, "\(error)")
      }
      // ensureStream creates when missing.
      #expect(try await js.ensureStream(config).messages == 0)
    }
  }

  @Test func publishReturnsIncreasingSequences() async throws {
    try await withJetStream { _, js in
      _ = try await js.createStream(.init(name: "SEQ", subjects: ["seq.*"], storage: .memory))
      var seqs: [UInt64] = []
      for i in 0..<10 {
        let ack = try await js.publish("seq.\(i % 3)", payload: bytes("m\(i)"))
        #expect(ack.stream == "SEQ" && !ack.duplicate)
        seqs.append(ack.seq)
      }
      #expect(seqs == Array(1...10))
      let info = try #require(try await js.streamInfo("SEQ"))
      #expect(info.messages == 10 && info.firstSeq == 1 && info.lastSeq == 10)
    }
  }

  @Test func theSameMsgIdTwiceIsStoredOnce() async throws {
    try await withJetStream { _, js in
      _ = try await js.createStream(.init(name: "DUP", subjects: ["dup"]))
      let first = try await js.publish("dup", payload: [1], msgId: "entry-1")
      let again = try await js.publish("dup", payload: [1], msgId: "entry-1")
      #expect(!first.duplicate && again.duplicate)
      #expect(first.seq == 1 && again.seq == 1)
      let next = try await js.publish("dup", payload: [2], msgId: "entry-2")
      #expect(next.seq == 2 && !next.duplicate)
      #expect(try await js.streamInfo("DUP")?.messages == 2)
    }
  }

  @Test func aWrongExpectedLastSequenceIsRefusedAndAppendsNothing() async throws {
    try await withJetStream { _, js in
      _ = try await js.createStream(.init(name: "EXP", subjects: ["exp"]))
      #expect(try await js.publish("exp", payload: [1], expectedLastSequence: 0).seq == 1)
      #expect(try await js.publish("exp", payload: [2], expectedLastSequence: 1).seq == 2)
      for wrong: UInt64 in [0, 1, 3] {
        do {
          _ = try await js.publish("exp", payload: [9], expectedLastSequence: wrong)
          Issue.record("expected last sequence \(wrong) was accepted")
        } catch let error as JetStreamError {
          #expect(
            error.kind == .api && error.errCode == JetStreamError.wrongLastSequence, "\(error)")
          #expect(error.code == 400)
        }
      }
      do {
        _ = try await js.publish("exp", payload: [9], expectedStream: "OTHER")
        Issue.record("a wrong expected stream was accepted")
      } catch let error as JetStreamError {
        #expect(error.errCode == JetStreamError.streamNotMatch, "\(error)")
      }
      let info = try #require(try await js.streamInfo("EXP"))
      #expect(info.messages == 2 && info.lastSeq == 2)
      #expect(
        try await js.publish("exp", payload: [3], expectedLastSequence: 2, expectedStream: "EXP")
          .seq == 3)
    }
  }

  @Test func publishingWhereNoStreamListensIsATransportError() async throws {
    try await withJetStream { _, js in
      do {
        _ = try await js.publish("no.stream.here", payload: [])
        Issue.record("a publish without a stream was acknowledged")
      } catch let error as JetStreamError {
        #expect(error.kind == .transport && error.transport?.code == .noResponders, "\(error)")
      }
    }
  }

  @Test func storedMessagesRoundTripHeadersAndEveryByteValue() async throws {
    try await withJetStream { _, js in
      _ = try await js.createStream(.init(name: "GET", subjects: ["get.*"]))
      let payload = (0...255).map { UInt8($0) }
      let headers = NATSHeaders([
        ("Tally-Seq", "1"), ("Tally-Chain", "ab:cd"), ("Multi", "1"),
        ("Multi", "2"),
      ])
      _ = try await js.publish("get.a", headers: headers, payload: payload, msgId: "g1")
      _ = try await js.publish("get.b", payload: [])
      _ = try await js.publish("get.a", payload: bytes("last on a"))
      let first = try #require(try await js.getMessage(stream: "GET", seq: 1))
      #expect(first.subject == "get.a" && first.seq == 1)
      #expect(first.payload == payload)
      #expect(first.headers["Tally-Seq"] == "1" && first.headers["Tally-Chain"] == "ab:cd")
      #expect(first.headers.values("Multi") == ["1", "2"])
      #expect(first.headers["Nats-Msg-Id"] == "g1")
      #expect(!first.timestamp.isEmpty)
      let empty = try #require(try await js.getMessage(stream: "GET", seq: 2))
      #expect(empty.payload.isEmpty && empty.headers.isEmpty)
      let last = try #require(try await js.lastMessage(stream: "GET", subject: "get.a"))
      #expect(last.seq == 3 && last.payload == bytes("last on a"))
      #expect(try await js.getMessage(stream: "GET", seq: 4) == nil)
      #expect(try await js.lastMessage(stream: "GET", subject: "get.zzz") == nil)
    }
  }

  @Test func aDurablePullConsumerFetchesFromItsStartAndRecordsAcks() async throws {
    try await withJetStream { connection, js in
      _ = try await js.createStream(.init(name: "PULL", subjects: ["pull.>"]))
      for i in 1...10 { _ = try await js.publish("pull.\(i)", payload: [UInt8(i)]) }
      var config = JetStream.ConsumerConfig(durableName: "reader")
      config.deliverPolicy = .byStartSequence(4)
      config.ackWait = .seconds(30)
      let created = try await js.createConsumer(stream: "PULL", config)
      #expect(created.name == "reader" && created.stream == "PULL")
      #expect(created.numPending == 7)

      let batch = try await js.fetch(
        stream: "PULL", consumer: "reader", batch: 3, expires: .seconds(2))
      #expect(batch.map(\.streamSeq) == [4, 5, 6])
      #expect(batch.map(\.consumerSeq) == [1, 2, 3])
      #expect(batch.map(\.message.payload) == [[4], [5], [6]])
      #expect(batch.allSatisfy { $0.deliveries == 1 && $0.stream == "PULL" })
      #expect(batch.map(\.pending) == [6, 5, 4])
      let pendingAcks = try #require(try await js.consumerInfo(stream: "PULL", name: "reader"))
      #expect(pendingAcks.numAckPending == 3 && pendingAcks.deliveredStreamSeq == 6)
      #expect(pendingAcks.ackFloorStreamSeq < 4)

      try batch[0].ack()
      try await batch[1].ackSync(timeout: .seconds(5))
      try await batch[2].ackSync(timeout: .seconds(5))
      let acked = try #require(try await js.consumerInfo(stream: "PULL", name: "reader"))
      #expect(acked.numAckPending == 0 && acked.ackFloorStreamSeq == 6, "\(acked)")
      #expect(acked.numPending == 4)

      let rest = try await js.fetch(
        stream: "PULL", consumer: "reader", batch: 10, expires: .seconds(1))
      #expect(rest.map(\.streamSeq) == [7, 8, 9, 10])
      for message in rest { try message.ack() }
      try await connection.flush(timeout: .seconds(5))
      #expect(
        try await eventually(20) {
          try await js.consumerInfo(stream: "PULL", name: "reader")?.ackFloorStreamSeq == 10
        })
      #expect(try await js.consumerInfo(stream: "PULL", name: "nobody") == nil)
      try await js.deleteConsumer(stream: "PULL", name: "reader")
      #expect(try await js.consumerInfo(stream: "PULL", name: "reader") == nil)
    }
  }

  @Test func fetchingFromAnEmptyStreamReturnsNothingWithinTheExpiry() async throws {
    try await withJetStream { _, js in
      _ = try await js.createStream(.init(name: "EMPTY", subjects: ["empty"]))
      var config = JetStream.ConsumerConfig()
      config.ackPolicy = .none
      config.inactiveThreshold = .seconds(30)
      let consumer = try await js.createConsumer(stream: "EMPTY", config)
      let start = ContinuousClock.now
      let got = try await js.fetch(
        stream: "EMPTY", consumer: consumer.name, batch: 5, expires: .milliseconds(500))
      let elapsed = ContinuousClock.now - start
      #expect(got.isEmpty)
      // It waits for the expiry, and no hang past it (the margin is for a loaded machine).
      #expect(elapsed >= .milliseconds(400) && elapsed < .seconds(30), "\(elapsed)")
      // noWait answers at once.
      let quick = ContinuousClock.now
      let none = try await js.fetch(
        stream: "EMPTY", consumer: consumer.name, batch: 5, expires: .seconds(60), noWait: true)
      // Without waiting out the 60 s expiry (the bound leaves room for a loaded machine).
      #expect(none.isEmpty && ContinuousClock.now - quick < .seconds(30))
    }
  }

  @Test func fetchRefusesABatchOverTheLimit() async throws {
    try await withJetStream { _, js in
      do {
        _ = try await js.fetch(
          stream: "S", consumer: "C", batch: NATSLimits.fetchBatchMax + 1, expires: .seconds(1))
        Issue.record("a batch over the limit was accepted")
      } catch let error as JetStreamError {
        #expect(error.kind == .invalid)
      }
      // JetStream's API subscription swallows pulls for a consumer that does not exist, so
      // this one ends at its own bound: expires plus the API timeout.
      let quick = JetStream(js.connection, timeout: .milliseconds(500))
      do {
        _ = try await quick.fetch(
          stream: "NOPE", consumer: "C", batch: 1, expires: .milliseconds(100))
        Issue.record("a fetch on a missing stream returned")
      } catch let error as JetStreamError {
        // Never a hang: a timeout (or an error status, should the server answer one).
        #expect(
          (error.kind == .transport && error.transport?.code == .timeout) || error.kind == .api,
          "\(error)")
      }
    }
  }
}
