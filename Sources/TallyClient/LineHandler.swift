import NIOCore
import TallyProtocol

/// Splits the inbound byte stream into lines at LF (the LF itself is dropped).
///
/// A line longer than `maxLineBytes` is a protocol error: without the bound a server (or
/// anything answering on the port) could make the client buffer without limit.
struct LineFramer: ByteToMessageDecoder {
  typealias InboundOut = ByteBuffer

  let maxLineBytes: Int
  /// How much of the current, still unterminated line has already been searched for LF, so
  /// a long line arriving in many reads is scanned once rather than once per read.
  private var scanned = 0

  init(maxLineBytes: Int) {
    self.maxLineBytes = maxLineBytes
  }

  mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws
    -> DecodingState
  {
    let view = buffer.readableBytesView
    let from = view.startIndex + scanned
    guard let newline = view[from...].firstIndex(of: UInt8(ascii: "\n")) else {
      scanned = view.count
      if scanned > maxLineBytes { throw tooLong() }
      return .needMoreData
    }
    let length = newline - view.startIndex
    if length > maxLineBytes { throw tooLong() }
    scanned = 0
    let line = buffer.readSlice(length: length)!
    buffer.moveReaderIndex(forwardBy: 1)
    context.fireChannelRead(Self.wrapInboundOut(line))
    return .continue
  }

  private func tooLong() -> TallyClientError {
    .protocolViolation("response line longer than \(maxLineBytes) bytes")
  }
}

/// What the client asks the handler to do, in the order it asked.
struct Exchange: Sendable {
  /// Bytes to send (a complete request line, or anything for `sendRaw`); `nil` sends nothing.
  var bytes: ByteBuffer?
  /// Receives the next unclaimed response line; `nil` when no response is expected.
  var response: EventLoopPromise<TallyResponse>?
}

/// Matches response lines to requests, first in first out, on the channel's event loop.
///
/// The promise of a request is queued in the same `write` that sends its bytes, so the order
/// of the queue is exactly the order of the requests on the wire, however many callers send
/// concurrently. The first line of a connection is the `HELLO` greeting and goes to `hello`.
final class ResponseHandler: ChannelDuplexHandler {
  typealias InboundIn = ByteBuffer
  typealias OutboundIn = Exchange
  typealias OutboundOut = ByteBuffer

  /// Bounds the queue of waiting calls on one connection.
  static let maxPending = 100_000
  /// Bounds the lines kept for `nextResponse()` that nobody has asked for yet (answers to
  /// `sendRaw` garbage, say).
  static let maxUnclaimed = 4_096

  private var hello: EventLoopPromise<JSONObject>?
  private var pending = CircularBuffer<EventLoopPromise<TallyResponse>>(initialCapacity: 16)
  private var unclaimed = CircularBuffer<TallyResponse>()
  /// Set by the first `sendRaw`. Before it, a line nobody asked for means the server and the
  /// client disagree about which response belongs to which request, so it closes the
  /// connection; after it, such lines are the answers to the raw bytes and are kept.
  private var raw = false
  /// Set once the connection is unusable; later calls then fail at once with
  /// `connectionClosed` (the calls waiting at that moment got the specific reason).
  private var closed = false

  init(hello: EventLoopPromise<JSONObject>) {
    self.hello = hello
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    let line = unwrapInboundIn(data)
    guard let text = String(validating: line.readableBytesView, as: UTF8.self) else {
      fail(context, .protocolViolation("response line is not valid UTF-8"))
      return
    }
    if let hello {
      self.hello = nil
      do {
        hello.succeed(try Self.parseHello(text))
      } catch {
        fail(context, error)
      }
      return
    }
    let response: TallyResponse
    do {
      response = try TallyResponse.parse(line: text)
    } catch {
      fail(context, error)
      return
    }
    if !pending.isEmpty {
      pending.removeFirst().succeed(response)
    } else if !raw {
      fail(context, TallyResponse.violation("response to no request", text))
    } else if unclaimed.count < Self.maxUnclaimed {
      unclaimed.append(response)
    } else {
      fail(context, .protocolViolation("more than \(Self.maxUnclaimed) unrequested responses"))
    }
  }

  func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
    let exchange = unwrapOutboundIn(data)
    if let response = exchange.response {
      // Lines nobody claimed yet are older than this request, so they are its answer first.
      if !unclaimed.isEmpty {
        response.succeed(unclaimed.removeFirst())
      } else if closed {
        response.fail(TallyClientError.connectionClosed)
      } else if pending.count >= Self.maxPending {
        response.fail(TallyClientError.tooManyInFlight(Self.maxPending))
        promise?.fail(TallyClientError.tooManyInFlight(Self.maxPending))
        return
      } else {
        pending.append(response)
      }
    }
    guard let bytes = exchange.bytes else {
      promise?.succeed(())
      return
    }
    if exchange.response == nil { raw = true }
    if closed {
      promise?.fail(TallyClientError.connectionClosed)
      return
    }
    context.write(wrapOutboundOut(bytes), promise: promise)
  }

  func channelInactive(context: ChannelHandlerContext) {
    failAll(.connectionClosed)
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    failAll(.connectionClosed)
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    // Socket errors (a reset, say) mean the connection is gone, like an orderly close.
    fail(context, error as? TallyClientError ?? .connectionClosed)
  }

  private func fail(_ context: ChannelHandlerContext, _ error: TallyClientError) {
    failAll(error)
    context.close(promise: nil)
  }

  private func failAll(_ error: TallyClientError) {
    closed = true
    hello?.fail(error)
    hello = nil
    while let waiting = pending.popFirst() {
      waiting.fail(error)
    }
  }

  /// `HELLO {json}` with at least a string `nonce`.
  static func parseHello(_ line: String) throws(TallyClientError) -> JSONObject {
    guard line.utf8.starts(with: "HELLO ".utf8) else {
      throw TallyResponse.violation("expected HELLO as the first line", line)
    }
    let greeting = try TallyResponse(ok: true, code: nil, body: String(line.dropFirst(6))).json()
    guard greeting["nonce"]?.stringValue != nil else {
      throw TallyResponse.violation("HELLO without a nonce", line)
    }
    return greeting
  }
}
