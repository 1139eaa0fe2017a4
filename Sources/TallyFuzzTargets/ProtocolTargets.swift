import NIOCore
import NIOEmbedded
import TallyProtocol
import TallyServer
import TallyStore

/// The wire side of tallyd: framing, request lines, JSON bodies and AUTH.
enum ProtocolTargets {
  /// Entries one ENTRY.BATCH may carry here: small, so that the bound is reached.
  static let batchEntriesMax = 16

  /// The line decoder on the bytes after a 2-byte prefix (the line limit, then the size of
  /// the chunks the bytes arrive in), checked against a model of the framing; then every
  /// line through the request parser.
  @Sendable static func request(_ data: [UInt8]) {
    guard data.count >= 2 else { return }
    // 1…128 exercises over-long lines; 512…65,024 lets real request bodies through.
    let lineBytesMax = data[0] < 128 ? 1 + Int(data[0]) : (Int(data[0]) - 127) * 512
    let chunkBytes = 1 + Int(data[1] % 64)
    let input = Array(data.dropFirst(2))
    let frames = decodeLines(input, lineBytesMax: lineBytesMax, chunkBytes: chunkBytes)
    let expected = modelFrames(input, lineBytesMax: lineBytesMax)
    FuzzCheck.expect(frames == expected, "frames differ from the framing model")
    for case .line(let buffer) in frames {
      switch RequestParser.parse(buffer.readableBytesView, batchEntriesMax: batchEntriesMax) {
      case .success(.entryBatch(let entries)):
        FuzzCheck.expect(entries.count <= batchEntriesMax, "batch over its bound")
      case .success, .failure:
        break
      }
    }
  }

  /// Feeds `input` to a real `LineDecoder` in a NIO pipeline, `chunkBytes` at a time, then
  /// closes the input (a last line without a newline is dropped). Between reads the decoder
  /// holds at most `lineBytesMax + 2` bytes of an unfinished line (its documented bound).
  static func decodeLines(_ input: [UInt8], lineBytesMax: Int, chunkBytes: Int) -> [Frame] {
    let held = HeldBytes()
    let channel = EmbeddedChannel(
      handler: ByteToMessageHandler(
        MeasuredLineDecoder(inner: LineDecoder(lineBytesMax: lineBytesMax), held: held)))
    var frames = [Frame]()
    do {
      var start = 0
      while start < input.count {
        let end = min(start + chunkBytes, input.count)
        try channel.writeInbound(channel.allocator.buffer(bytes: input[start..<end]))
        while let f = try channel.readInbound(as: Frame.self) { frames.append(f) }
        start = end
      }
      channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
      while let f = try channel.readInbound(as: Frame.self) { frames.append(f) }
      let left = try channel.finish()
      FuzzCheck.expect(left.isClean, "the decoder left frames behind: \(left)")
    } catch {
      FuzzCheck.expect(false, "the line decoder threw \(error)")
    }
    FuzzCheck.expect(held.max <= lineBytesMax + 2, "held \(held.max) bytes of one line")
    return frames
  }

  /// The most bytes the decoder left unconsumed when it asked for more data.
  final class HeldBytes {
    var max = 0
  }

  /// `LineDecoder` observed from inside (the handler's buffer is internal to NIO).
  struct MeasuredLineDecoder: ByteToMessageDecoder {
    typealias InboundOut = Frame
    var inner: LineDecoder
    let held: HeldBytes

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws
      -> DecodingState
    {
      let state = try inner.decode(context: context, buffer: &buffer)
      if state == .needMoreData { held.max = Swift.max(held.max, buffer.readableBytes) }
      return state
    }

    mutating func decodeLast(
      context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
    ) throws -> DecodingState {
      try inner.decodeLast(context: context, buffer: &buffer, seenEOF: seenEOF)
    }
  }

  /// The framing as docs/PROTOCOL.md states it: lines end at LF; a line longer than the limit
  /// (a CR before the LF not counted) is one `tooLong`; an unterminated last line is dropped,
  /// unless it is already over the limit plus a possible CR.
  static func modelFrames(_ input: [UInt8], lineBytesMax: Int) -> [Frame] {
    var frames = [Frame]()
    var start = 0
    while start < input.count {
      guard let nl = input[start...].firstIndex(of: UInt8(ascii: "\n")) else {
        if input.count - start > lineBytesMax + 1 { frames.append(.tooLong) }
        break
      }
      let line = input[start..<nl]
      let counted = line.count - (line.last == UInt8(ascii: "\r") ? 1 : 0)
      if counted > lineBytesMax {
        frames.append(.tooLong)
      } else {
        frames.append(.line(ByteBuffer(bytes: line)))
      }
      start = nl + 1
    }
    return frames
  }

  /// The strict JSON parser. A document it accepts is written back and must reparse to an
  /// equal value (the writer's escaping and the parser agree).
  @Sendable static func json(_ data: [UInt8]) {
    let value: JSONValue
    do throws(JSONError) {
      value = try JSONParser.parse(data)
    } catch {
      FuzzCheck.expect(error.offset >= 0 && error.offset <= data.count, "error offset \(error)")
      return
    }
    let written = JSONWriter.serialize(value)
    do throws(JSONError) {
      let again = try JSONParser.parse(written)
      FuzzCheck.expect(again == value, "written JSON reparses to another value")
    } catch {
      FuzzCheck.expect(false, "written JSON does not reparse: \(error)")
    }
  }

  /// The keys the AUTH target knows: one per role, `key_<role>` with secret `secret-<role>`.
  static let keys: [String: (secret: String, role: Role)] = Dictionary(
    uniqueKeysWithValues: Role.allCases.map { r in
      ("key_\(r.rawValue)", ("secret-\(r.rawValue)", r))
    })
  /// The nonce of the fuzzed connection (a real one is 32 random bytes in hex).
  static let authNonce = String(repeating: "a5", count: 32)
  /// AUTHs from this key are answered as rate limited.
  static let rateLimitedKey = "key_limited"

  /// Request lines (at most `linesMax`) through a connection's session as the connection
  /// handler drives it: admit each parsed request, resolve an AUTH at once with the real MAC
  /// check, stop once the session closes. Checks the role matrix holds for what runs.
  @Sendable static func auth(_ data: [UInt8]) {
    let linesMax = 64
    var session = Session(nonce: authNonce, authFailuresMax: 3)
    let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
    for line in lines.prefix(linesMax) {
      guard case .success(let request) = RequestParser.parse(line, batchEntriesMax: 16) else {
        continue
      }
      let wasReady = session.principal != nil
      switch session.admit(request) {
      case .run(let principal):
        if let principal {
          FuzzCheck.expect(wasReady, "ran as a principal before AUTH")
          FuzzCheck.expect(Access.allowed(request, principal.role), "role matrix bypassed")
        } else {
          FuzzCheck.expect(!wasReady, "ran without a principal after AUTH")
          if case .ping = request {} else { FuzzCheck.expect(false, "ran before AUTH") }
        }
      case .authenticate(let key, let mac):
        FuzzCheck.expect(!wasReady, "a second AUTH was checked")
        var principal: Principal?
        if let k = keys[key], Authenticator.macMatches(mac, secret: k.secret, nonce: authNonce) {
          principal = Principal(
            keyId: key, role: k.role, scope: k.role == .service ? Scope(partner: "p1") : nil)
        }
        switch session.authResult(principal, rateLimited: key == rateLimitedKey) {
        case .accepted(let p):
          FuzzCheck.expect(p == principal && key != rateLimitedKey, "accepted a bad AUTH")
        case .rejected(_, let close):
          FuzzCheck.expect(principal == nil || key == rateLimitedKey, "refused a good AUTH")
          if close { FuzzCheck.expect(session.state == .closing, "closing but still open") }
        }
      case .refuse:
        break
      case .quit:
        FuzzCheck.expect(session.state == .closing, "QUIT left the session open")
      case .drop:
        FuzzCheck.expect(session.state == .closing, "dropped on an open session")
      }
      if session.state == .closing {
        FuzzCheck.expect(session.admit(.ping) == .drop, "a closing session still answers")
        return
      }
    }
  }
}
