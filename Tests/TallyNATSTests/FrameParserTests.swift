import NIOCore
import Testing

@testable import TallyNATS

// The decoder on raw bytes: framing across reads, bounds, and malformed input.

/// Feeds `chunks` one after the other, as separate reads, and returns every operation.
func parse(_ chunks: [[UInt8]], parser: inout FrameParser) throws(NATSError) -> [ServerOp] {
  var buffer = ByteBuffer()
  var ops: [ServerOp] = []
  for chunk in chunks {
    buffer.writeBytes(chunk)
    while let op = try parser.next(&buffer) { ops.append(op) }
    buffer.discardReadBytes()
  }
  return ops
}

func parse(_ chunks: [[UInt8]]) throws(NATSError) -> [ServerOp] {
  var parser = FrameParser()
  return try parse(chunks, parser: &parser)
}

func parse(_ text: String) throws(NATSError) -> [ServerOp] { try parse([bytes(text)]) }

/// A printable summary of an operation, for comparisons.
func summary(_ op: ServerOp) -> String {
  switch op {
  case .info(let info): return "INFO \(info.serverName) \(info.maxPayload)"
  case .ping: return "PING"
  case .pong: return "PONG"
  case .ok: return "+OK"
  case .err(let text): return "-ERR \(text)"
  case .message(let sid, let m):
    let headers = m.headers.fields.map { "\($0.name)=\($0.value)" }.joined(separator: ",")
    return "MSG \(m.subject) \(sid) \(m.replyTo ?? "-") [\(headers)] \(m.status ?? 0) "
      + "\(m.statusDescription ?? "-") \(m.payload)"
  }
}

func hmsg(_ subject: String, sid: Int, reply: String? = nil, header: String, payload: [UInt8])
  -> [UInt8]
{
  let h = bytes(header)
  let r = reply.map { " " + $0 } ?? ""
  return bytes("HMSG \(subject) \(sid)\(r) \(h.count) \(h.count + payload.count)\r\n") + h
    + payload + bytes("\r\n")
}

@Suite("NATS frame decoder")
struct FrameParserTests {
  static let stream: [UInt8] =
    bytes("INFO {\"server_name\":\"s\",\"max_payload\":1048576,\"headers\":true}\r\n")
    + bytes("MSG a.b 7 5\r\nhello\r\n") + bytes("MSG a.c 8 _INBOX.x 0\r\n\r\n")
    + hmsg(
      "h.x", sid: 9, reply: "r.1", header: "NATS/1.0\r\nK: v\r\nK: w\r\n\r\n", payload: [0, 13, 10])
    + bytes("PING\r\nPONG\r\n+OK\r\n-ERR 'Unknown Subject'\r\n")

  @Test func operationsSplitAtEveryByteDecodeAsInOneRead() throws {
    let whole = try parse([Self.stream]).map(summary)
    #expect(whole.count == 8)
    #expect(whole[1] == "MSG a.b 7 - [] 0 - [104, 101, 108, 108, 111]")
    #expect(whole[2] == "MSG a.c 8 _INBOX.x [] 0 - []")
    #expect(whole[3] == "MSG h.x 9 r.1 [K=v,K=w] 0 - [0, 13, 10]")
    #expect(whole[7] == "-ERR Unknown Subject")
    let bytewise = try parse(Self.stream.map { [$0] }).map(summary)
    #expect(bytewise == whole)
    // Every split into two reads, too.
    for cut in 1..<Self.stream.count {
      let two = try parse([Array(Self.stream[..<cut]), Array(Self.stream[cut...])]).map(summary)
      #expect(two == whole, "split at \(cut)")
    }
  }

  @Test func aMessageWaitsForItsWholePayloadAndTrailer() throws {
    var parser = FrameParser()
    var buffer = ByteBuffer(bytes: bytes("MSG s 1 4\r\nab"))
    #expect(try parser.next(&buffer) == nil)
    buffer.writeBytes(bytes("cd"))
    #expect(try parser.next(&buffer) == nil, "the CR LF after the payload is still missing")
    buffer.writeBytes(bytes("\r\nPI"))
    let op = try #require(try parser.next(&buffer))
    #expect(summary(op) == "MSG s 1 - [] 0 - [97, 98, 99, 100]")
    #expect(try parser.next(&buffer) == nil)
    buffer.writeBytes(bytes("NG\r\n"))
    #expect(try parser.next(&buffer).map(summary) == "PING")
  }

  @Test func statusHeadersAreParsed() throws {
    let input =
      hmsg("_INBOX.a.1", sid: 1, header: "NATS/1.0 503\r\n\r\n", payload: [])
      + hmsg("i.2", sid: 2, header: "NATS/1.0 404 No Messages\r\n\r\n", payload: [])
      + hmsg(
        "i.3", sid: 2,
        header: "NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\n\r\n", payload: [])
      + hmsg("i.4", sid: 2, header: "NATS/1.0 100 Idle Heartbeat\r\n\r\n", payload: [])
    let ops = try parse([input]).map(summary)
    #expect(
      ops == [
        "MSG _INBOX.a.1 1 - [] 503 - []",
        "MSG i.2 2 - [] 404 No Messages []",
        "MSG i.3 2 - [Nats-Pending-Messages=3] 408 Request Timeout []",
        "MSG i.4 2 - [] 100 Idle Heartbeat []",
      ])
  }

  @Test func aControlLineOfTheLimitIsAcceptedAndOneByteMoreIsAProtocolError() throws {
    let max = NATSLimits.controlLineBytesMax
    let atMax = "-ERR '" + String(repeating: "x", count: max - 7) + "'"
    #expect(atMax.utf8.count == max)
    #expect(try parse(atMax + "\r\n").count == 1)
    let over = "-ERR '" + String(repeating: "x", count: max - 6) + "'"
    #expect(throws: NATSError.self) { try parse(over + "\r\n") }
    // Without any newline, the decoder gives up once the line can no longer fit.
    var parser = FrameParser()
    var buffer = ByteBuffer(bytes: [UInt8](repeating: 0x41, count: max + 1))
    #expect(try parser.next(&buffer) == nil, "max + 1 bytes may still end in CR LF")
    buffer.writeBytes([0x41])
    do {
      _ = try parser.next(&buffer)
      Issue.record("an unterminated line of max + 2 bytes was accepted")
    } catch {
      #expect(error.code == .protocolError)
    }
  }

  @Test(arguments: [
    "MSG a 1 abc\r\n", "MSG a 1 -1\r\n", "MSG a 1\r\n", "MSG a x 1\r\nx\r\n",
    "MSG a 1 2 3 4\r\n", "MSG a 1 3\r\nabcd\r\n", "HMSG a 1 30 20\r\n", "HMSG a 1 2 5\r\n",
    "HMSG a 1 15 15\r\nNATS/1.0\r\nX\r\n\r\n\r\n", "HMSG a 1 12 12\r\nHTTP/1.1\r\n\r\n\r\n",
    "WHAT\r\n", "INFO {\r\n", "INFO {\"max_payload\":\"big\"}\r\n",
    "MSG a 1 99999999999999999999\r\n",
  ])
  func malformedInputIsAProtocolError(_ input: String) {
    do {
      let ops = try parse(input)
      // Some inputs only fail once their payload is due; none may produce an operation.
      #expect(ops.isEmpty, "\(input.debugDescription) gave \(ops.map(summary))")
      var parser = FrameParser()
      var buffer = ByteBuffer(bytes: bytes(input) + [UInt8](repeating: 0x20, count: 64))
      _ = try parser.next(&buffer)
      Issue.record("\(input.debugDescription) was accepted")
    } catch {
      #expect(error.code == .protocolError, "\(error)")
    }
  }

  @Test func infoSetsThePayloadBoundToMaxPayload() throws {
    var parser = FrameParser()
    let info = bytes("INFO {\"max_payload\":16,\"headers\":true}\r\n")
    let ok = bytes("MSG a 1 16\r\n") + [UInt8](repeating: 7, count: 16) + bytes("\r\n")
    #expect(try parse([info, ok], parser: &parser).count == 2)
    #expect(parser.payloadBytesMax == 16)
    do {
      _ = try parse([bytes("MSG a 1 17\r\n")], parser: &parser)
      Issue.record("a message over max_payload was accepted")
    } catch {
      #expect(error.code == .protocolError)
      #expect(error.message.contains("max_payload"))
    }
    var hparser = FrameParser()
    _ = try parse([info], parser: &hparser)
    let header = "NATS/1.0\r\n\r\n"
    #expect(throws: NATSError.self) {
      try parse(
        [hmsg("a", sid: 1, header: header, payload: [UInt8](repeating: 1, count: 5))],
        parser: &hparser)
    }
  }
}

@Suite("NATS values")
struct ValueTests {
  @Test func addressListsParse() throws {
    let list = try NATSAddress.parseList("nats://127.0.0.1:4222, localhost:4223,[::1]:4224")
    #expect(
      list == [
        NATSAddress(host: "127.0.0.1", port: 4222), NATSAddress(host: "localhost", port: 4223),
        NATSAddress(host: "::1", port: 4224),
      ])
    #expect(list[2].description == "[::1]:4224")
    #expect(try NATSAddress.parseList("NATS://h:65535") == [NATSAddress(host: "h", port: 65535)])
  }

  @Test(arguments: [
    "", " ", "nats://h", "h", "h:0", "h:65536", "h:-1", "h:12a", "http://h:1", ",", "h:1,",
    "nats://:4222", "[::1:4222", "a b:1",
  ])
  func badAddressListsThrowInvalid(_ text: String) {
    #expect {
      try NATSAddress.parseList(text)
    } throws: { error in
      (error as? NATSError)?.code == .invalid
    }
  }

  @Test func subjectsOfTheLimitAreAcceptedAndOneByteMoreIsNot() throws {
    let max = NATSLimits.subjectBytesMax
    try ClientOps.checkSubject(String(repeating: "s", count: max), wildcards: false)
    #expect(throws: NATSError.self) {
      try ClientOps.checkSubject(String(repeating: "s", count: max + 1), wildcards: false)
    }
    try ClientOps.checkSubject("a.*.>", wildcards: true)
    #expect(throws: NATSError.self) { try ClientOps.checkSubject("a.>.b", wildcards: true) }
  }

  @Test func headerBlocksRoundTrip() throws {
    var headers = NATSHeaders([("Nats-Msg-Id", "1"), ("X", "a: b"), ("X", "c")])
    #expect(headers["X"] == "a: b")
    #expect(headers.values("X") == ["a: b", "c"])
    #expect(headers["x"] == nil, "names are case-sensitive, as nats-server's")
    let block = try HeaderBlock.encode(headers)
    #expect(
      String(decoding: block, as: UTF8.self)
        == "NATS/1.0\r\nNats-Msg-Id: 1\r\nX: a: b\r\nX: c\r\n\r\n")
    #expect(try HeaderBlock.parse(block).headers == headers)
    headers["X"] = "only"
    #expect(headers.fields.map(\.name) == ["Nats-Msg-Id", "X"])
    headers["Nats-Msg-Id"] = nil
    #expect(headers == NATSHeaders([("X", "only")]))
  }

  @Test(arguments: [("", "v"), ("a b", "v"), ("a:b", "v"), ("k", "line\r\nbreak"), ("k", "\u{1}")])
  func badHeadersAreRefused(_ field: (String, String)) {
    #expect {
      try HeaderBlock.encode(NATSHeaders([field]))
    } throws: { error in
      (error as? NATSError)?.code == .invalid
    }
  }

  @Test func ackSubjectsOfBothFormsGiveTheDeliveryMetadata() throws {
    let old = try JetStream.AckMetadata(replySubject: "$JS.ACK.S.C.2.17.5.1700000000000000000.3")
    #expect(old.stream == "S" && old.consumer == "C")
    #expect(old.deliveries == 2 && old.streamSeq == 17 && old.consumerSeq == 5 && old.pending == 3)
    let new = try JetStream.AckMetadata(
      replySubject: "$JS.ACK.hub.ACCHASH.S.C.1.9.8.1700000000000000000.0.r4nd0m")
    #expect(new.stream == "S" && new.consumer == "C")
    #expect(new.deliveries == 1 && new.streamSeq == 9 && new.consumerSeq == 8 && new.pending == 0)
    #expect(
      try JetStream.AckMetadata(replySubject: "$JS.ACK.S.C.1.18446744073709551615.1.0.0")
        .streamSeq == UInt64.max)
    for bad in [
      "$JS.ACK.S.C.1.2.3", "$JS.NAK.S.C.1.2.3.4.5", "$JS.ACK.S.C.x.2.3.4.5", "a.b",
      "$JS.ACK.S.C.1.18446744073709551616.1.0.0", "$JS.ACK.S.C.1.-2.1.0.0", "$JS.ACK.S.C.1..1.0.0",
    ] {
      #expect(throws: JetStreamError.self) { try JetStream.AckMetadata(replySubject: bad) }
    }
  }

  @Test func base64RoundTripsEveryByteAndRefusesNonCanonicalText() {
    let all = (0...255).map { UInt8($0) }
    for count in 0...all.count {
      let slice = Array(all.prefix(count))
      #expect(Base64.decode(Base64.encode(slice)) == slice)
    }
    #expect(Base64.decode("aGk=") == bytes("hi"))
    for bad in ["a", "aGk", "aG=k", "a===", "aGl=", "aG!=", "=aGk"] {
      #expect(Base64.decode(bad) == nil, "\(bad)")
    }
  }
}
