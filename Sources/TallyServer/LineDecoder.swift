import NIOCore

/// One framed request: a complete line, or the news that a line went over the limit.
public enum Frame: Equatable, Sendable {
  /// The line without its newline.
  case line(ByteBuffer)
  /// A line longer than the limit; its bytes up to the next newline are discarded.
  case tooLong
}

/// Splits the stream at `\n`, bounded. NIO's `LineBasedFrameDecoder` has no length cap and
/// `maximumBufferSize` closes without a reply, so this decoder turns an over-long line into
/// `.tooLong` (answered `ERR LINE_TOO_LONG`) and skips to the next newline: the framing
/// stays trustworthy, so the connection stays open. It never holds more than
/// `lineBytesMax + 2` unconsumed bytes of one line. A CR before the LF does not count.
public struct LineDecoder: ByteToMessageDecoder {
  public typealias InboundOut = Frame

  let lineBytesMax: Int
  /// Discarding the rest of an over-long line.
  var skipping = false
  /// Bytes already searched for a newline in the current line (avoids rescanning).
  var scanned = 0

  public init(lineBytesMax: Int) {
    precondition(lineBytesMax > 0)
    self.lineBytesMax = lineBytesMax
  }

  public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer)
    throws -> DecodingState
  {
    let readable = buffer.readableBytes
    if readable == 0 { return .needMoreData }
    let newline = buffer.readableBytesView.dropFirst(scanned).firstIndex(of: UInt8(ascii: "\n"))
    if skipping {
      guard let nl = newline else {
        buffer.moveReaderIndex(forwardBy: readable)
        scanned = 0
        return .needMoreData
      }
      buffer.moveReaderIndex(to: nl + 1)
      skipping = false
      scanned = 0
      return .continue
    }
    guard let nl = newline else {
      // +1: the line may still end in CR LF, and the CR does not count.
      if readable > lineBytesMax + 1 {
        buffer.moveReaderIndex(forwardBy: readable)
        skipping = true
        scanned = 0
        context.fireChannelRead(wrapInboundOut(.tooLong))
        return .continue
      }
      scanned = readable
      return .needMoreData
    }
    let length = nl - buffer.readerIndex
    scanned = 0
    let endsInCR = length > 0 && buffer.getInteger(at: nl - 1, as: UInt8.self) == UInt8(ascii: "\r")
    if length - (endsInCR ? 1 : 0) > lineBytesMax {
      buffer.moveReaderIndex(to: nl + 1)
      context.fireChannelRead(wrapInboundOut(.tooLong))
      return .continue
    }
    let line = buffer.readSlice(length: length)!
    buffer.moveReaderIndex(forwardBy: 1)
    context.fireChannelRead(wrapInboundOut(.line(line)))
    return .continue
  }

  /// A last line without a newline is not a request: the client closed mid-line.
  public mutating func decodeLast(
    context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
  ) throws -> DecodingState {
    while try decode(context: context, buffer: &buffer) == .continue {}
    buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
    return .needMoreData
  }
}
