import NIOCore
import NIOEmbedded
import Testing

@testable import TallyServer

// NIOTestUtils' `ByteToMessageDecoderVerifier` would add generic checks (every split of the
// input gives the same frames), but this target does not depend on NIOTestUtils; the split
// test below covers the same ground for the inputs that matter here.

/// The most unconsumed bytes the wrapped decoder left behind when it asked for more data:
/// what the connection buffers for a line that has not ended yet.
final class HeldBytes {
  var max = 0
}

/// Wraps `LineDecoder` to observe how much it leaves buffered between reads (the handler's
/// cumulation buffer is internal to NIO, so it is measured from inside the decoder).
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

/// A channel decoding lines of at most `max` bytes, and what it has buffered.
struct DecoderHarness {
  let channel: EmbeddedChannel
  let held = HeldBytes()

  init(max: Int) {
    channel = EmbeddedChannel(
      handler: ByteToMessageHandler(
        MeasuredLineDecoder(inner: LineDecoder(lineBytesMax: max), held: held)))
  }

  func write(_ bytes: [UInt8]) throws {
    try channel.writeInbound(channel.allocator.buffer(bytes: bytes))
  }

  func write(_ text: String) throws { try write(Array(text.utf8)) }

  /// Every frame decoded so far, lines as strings (`nil` for `.tooLong`).
  func frames() throws -> [String?] {
    var out = [String?]()
    while let f = try channel.readInbound(as: Frame.self) {
      switch f {
      case .line(let b): out.append(String(buffer: b))
      case .tooLong: out.append(nil)
      }
    }
    return out
  }
}

@Suite("LineDecoder")
struct LineDecoderTests {
  @Test("a line split over several writes comes out whole, once")
  func splitLine() throws {
    let h = DecoderHarness(max: 64)
    try h.write("PI")
    #expect(try h.frames().isEmpty)
    try h.write("N")
    try h.write("G\nLOG.")
    #expect(try h.frames() == ["PING"])
    try h.write("HEAD\n")
    #expect(try h.frames() == ["LOG.HEAD"])
  }

  @Test("many lines in one write come out as many frames, in order")
  func manyLinesOneWrite() throws {
    let h = DecoderHarness(max: 64)
    let lines = (0..<50).map { "LINE \($0)" }
    try h.write(lines.joined(separator: "\n") + "\n")
    #expect(try h.frames() == lines)
  }

  @Test("every split point of a stream gives the same frames")
  func everySplitPoint() throws {
    // The CR counts toward the limit: "AUTH {}\r" is exactly 8 bytes.
    let input = Array(("PING\n\nAUTH {}\r\n" + String(repeating: "x", count: 9) + "\nQUIT\n").utf8)
    let want: [String?] = ["PING", "", "AUTH {}\r", nil, "QUIT"]
    for cut in 0...input.count {
      let h = DecoderHarness(max: 8)
      try h.write(Array(input[..<cut]))
      try h.write(Array(input[cut...]))
      #expect(try h.frames() == want, "split at \(cut)")
    }
    // One byte at a time as well.
    let h = DecoderHarness(max: 8)
    for b in input { try h.write([b]) }
    #expect(try h.frames() == want)
  }

  @Test("a line of exactly the limit is accepted, in one write or byte by byte")
  func exactlyTheLimit() throws {
    let line = String(repeating: "a", count: 16)
    let h = DecoderHarness(max: 16)
    try h.write(line + "\n")
    #expect(try h.frames() == [line])
    // Without its newline yet, a full-length line must still be waited for, not cut off.
    for ch in line { try h.write(String(ch)) }
    #expect(try h.frames().isEmpty)
    try h.write("\n")
    #expect(try h.frames() == [line])
  }

  @Test("one byte over the limit gives one tooLong, and the next line decodes normally")
  func oneOverTheLimit() throws {
    let h = DecoderHarness(max: 16)
    try h.write(String(repeating: "b", count: 17) + "\nPING\n")
    #expect(try h.frames() == [nil, "PING"])
    // The same, with the newline arriving later than the excess: N+1 bytes might still be
    // N and a CR, so the verdict waits for the next byte.
    try h.write(String(repeating: "b", count: 17))
    #expect(try h.frames().isEmpty)
    try h.write("\nQUIT\n")
    #expect(try h.frames() == [nil, "QUIT"])
    // Two bytes over with no newline yet is decided at once.
    try h.write(String(repeating: "b", count: 18))
    #expect(try h.frames() == [nil])
    try h.write("\nPING\n")
    #expect(try h.frames() == ["PING"])
  }

  @Test("a CR before the newline does not count toward the limit")
  func crDoesNotCount() throws {
    let h = DecoderHarness(max: 16)
    let line = String(repeating: "c", count: 16)
    try h.write(line + "\r\n")
    #expect(try h.frames() == [line + "\r"])
    try h.write(line + "x\r\n")
    #expect(try h.frames() == [nil])
  }

  @Test("an over-long line in many small chunks gives one tooLong and stays bounded")
  func overLongInChunks() throws {
    let max = 32
    let h = DecoderHarness(max: max)
    // 100 KiB of one line, 7 bytes at a time: far more than the limit.
    let chunk = Array("0123456".utf8)
    for _ in 0..<(100 * 1024 / chunk.count) { try h.write(chunk) }
    try h.write("tail\nSTATS\n")
    #expect(try h.frames() == [nil, "STATS"])
    // The decoder may hold one line's worth (plus the byte that proves it too long), never
    // the whole over-long line.
    #expect(h.held.max <= max + 1, "held \(h.held.max) bytes for a \(max)-byte limit")
  }

  @Test("a huge write without a newline is dropped at once, not buffered")
  func hugeWriteDropped() throws {
    let h = DecoderHarness(max: 1024)
    try h.write([UInt8](repeating: 0x41, count: 1 << 20))
    #expect(try h.frames() == [nil])
    #expect(h.held.max == 0)
    try h.write("\nPING\n")
    #expect(try h.frames() == ["PING"])
  }

  @Test("CRLF keeps its CR for the parser; empty lines are frames too")
  func crlfAndEmptyLines() throws {
    let h = DecoderHarness(max: 16)
    try h.write("PING\r\n\n\r\nQUIT\n")
    #expect(try h.frames() == ["PING\r", "", "\r", "QUIT"])
  }

  @Test("at EOF a partial last line is dropped, complete lines before it still arrive")
  func eofDropsPartialLine() throws {
    let h = DecoderHarness(max: 16)
    try h.write("PING\nPAR")
    #expect(try h.frames() == ["PING"])
    h.channel.pipeline.fireUserInboundEventTriggered(ChannelEvent.inputClosed)
    #expect(try h.frames().isEmpty)
    let left = try h.channel.finish()
    #expect(left.isClean, "\(left)")
  }
}
