import NIOCore

/// Splits the bytes a server sends into `ServerOp`s. Pure: bytes in, operations out.
///
/// Bounded: a control line longer than `NATSLimits.controlLineBytesMax`, or a message larger
/// than `payloadBytesMax` (the server's own `max_payload` once `INFO` has set it), is a
/// protocol error, as is anything that is not the NATS protocol. The caller closes the
/// connection on any error: once framing is in doubt, no later byte can be trusted.
struct FrameParser {
  /// The largest message (headers and payload) accepted; `INFO` lowers it to `max_payload`.
  var payloadBytesMax = NATSLimits.payloadBytesHardMax
  /// A `MSG`/`HMSG` line was read and its payload is awaited.
  private var awaiting: Awaiting?
  /// Bytes of the current, unterminated control line already searched for LF.
  private var scanned = 0

  private struct Awaiting {
    var sid: UInt64
    var subject: String
    var replyTo: String?
    /// 0 for `MSG`; for `HMSG` the size of the header block at the start of the payload.
    var headerBytes: Int
    var totalBytes: Int
    var isHMSG: Bool
  }

  /// The next complete operation, consuming its bytes; nil when more bytes are needed.
  mutating func next(_ buffer: inout ByteBuffer) throws(NATSError) -> ServerOp? {
    while true {
      if let awaiting {
        return try payload(awaiting, &buffer)
      }
      let view = buffer.readableBytesView
      let from = view.startIndex + scanned
      guard let newline = view[from...].firstIndex(of: UInt8(ascii: "\n")) else {
        // +1: a CR may still come before the LF, and it does not count.
        if view.count > NATSLimits.controlLineBytesMax + 1 { throw tooLong() }
        scanned = view.count
        return nil
      }
      var line = view[view.startIndex..<newline]
      if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
      if line.count > NATSLimits.controlLineBytesMax { throw tooLong() }
      let op = try controlLine(line)
      buffer.moveReaderIndex(to: newline + 1)
      scanned = 0
      if let op { return op }
      // A MSG/HMSG line: its payload follows (maybe already in the buffer).
    }
  }

  /// Parses one control line; nil for `MSG`/`HMSG`, whose payload comes next.
  private mutating func controlLine(_ line: ByteBufferView.SubSequence) throws(NATSError)
    -> ServerOp?
  {
    let verbEnd = line.firstIndex { $0 == 0x20 || $0 == 0x09 } ?? line.endIndex
    let verb = String(decoding: line[line.startIndex..<verbEnd], as: UTF8.self).uppercased()
    let rest = line[verbEnd...].drop { $0 == 0x20 || $0 == 0x09 }
    switch verb {
    case "MSG", "HMSG":
      try messageLine(rest, isHMSG: verb == "HMSG")
      return nil
    case "PING":
      return .ping
    case "PONG":
      return .pong
    case "+OK":
      return .ok
    case "-ERR":
      var text = Substring(String(decoding: rest, as: UTF8.self)).trimmingSpaces()
      if text.count >= 2, text.first == "'", text.last == "'" {
        text = text.dropFirst().dropLast()
      }
      return .err(String(text))
    case "INFO":
      let info = try ServerInfo.parse(rest)
      payloadBytesMax = info.maxPayload
      return .info(info)
    default:
      let shown = String(decoding: line.prefix(32), as: UTF8.self)
      throw NATSError(.protocolError, "unknown operation in line \"\(shown)\"")
    }
  }

  /// `MSG subject sid [reply] size` or `HMSG subject sid [reply] hdrSize totalSize`.
  private mutating func messageLine(
    _ rest: ByteBufferView.SubSequence, isHMSG: Bool
  ) throws(NATSError) {
    let verb = isHMSG ? "HMSG" : "MSG"
    let args = rest.split(omittingEmptySubsequences: true) { $0 == 0x20 || $0 == 0x09 }
    let sizes = isHMSG ? 2 : 1
    guard args.count == 2 + sizes || args.count == 3 + sizes else {
      throw NATSError(.protocolError, "\(verb) with \(args.count) arguments")
    }
    guard let sid = UInt64(decimal: args[1]) else {
      throw NATSError(.protocolError, "\(verb) with a bad subscription id")
    }
    let replyTo = args.count == 3 + sizes ? String(decoding: args[2], as: UTF8.self) : nil
    guard let totalBytes = Int(decimal: args[args.count - 1]) else {
      throw NATSError(.protocolError, "\(verb) with a bad size")
    }
    var headerBytes = 0
    if isHMSG {
      guard let h = Int(decimal: args[args.count - 2]), h <= totalBytes,
        h >= HeaderBlock.version.count + 4
      else {
        throw NATSError(.protocolError, "HMSG with a bad header size")
      }
      headerBytes = h
    }
    guard totalBytes <= payloadBytesMax else {
      throw NATSError(
        .protocolError,
        "\(verb) of \(totalBytes) bytes exceeds max_payload (\(payloadBytesMax) bytes)")
    }
    awaiting = Awaiting(
      sid: sid, subject: String(decoding: args[0], as: UTF8.self), replyTo: replyTo,
      headerBytes: headerBytes, totalBytes: totalBytes, isHMSG: isHMSG)
  }

  /// The payload of the awaited message and its CR LF, once all of it is buffered.
  private mutating func payload(
    _ awaiting: Awaiting, _ buffer: inout ByteBuffer
  ) throws(NATSError) -> ServerOp? {
    guard buffer.readableBytes >= awaiting.totalBytes + 2 else { return nil }
    let start = buffer.readerIndex
    guard buffer.getInteger(at: start + awaiting.totalBytes, as: UInt8.self) == 0x0D,
      buffer.getInteger(at: start + awaiting.totalBytes + 1, as: UInt8.self) == 0x0A
    else {
      throw NATSError(
        .protocolError, "payload of \(awaiting.totalBytes) bytes is not followed by CR LF")
    }
    var message = NATSMessage(
      subject: awaiting.subject, replyTo: awaiting.replyTo, payload: [])
    if awaiting.isHMSG {
      let block = buffer.readableBytesView.prefix(awaiting.headerBytes)
      let parsed = try HeaderBlock.parse(block)
      message.headers = parsed.headers
      message.status = parsed.status
      message.statusDescription = parsed.statusDescription
      buffer.moveReaderIndex(forwardBy: awaiting.headerBytes)
    }
    message.payload = buffer.readBytes(length: awaiting.totalBytes - awaiting.headerBytes) ?? []
    buffer.moveReaderIndex(forwardBy: 2)
    self.awaiting = nil
    return .message(sid: awaiting.sid, message)
  }

  private func tooLong() -> NATSError {
    NATSError(
      .protocolError,
      "control line longer than \(NATSLimits.controlLineBytesMax) bytes")
  }
}

/// The pipeline's only protocol handler: framing, via `FrameParser`.
struct FrameDecoder: ByteToMessageDecoder {
  typealias InboundOut = ServerOp
  var parser = FrameParser()

  mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws
    -> DecodingState
  {
    guard let op = try parser.next(&buffer) else { return .needMoreData }
    context.fireChannelRead(wrapInboundOut(op))
    return .continue
  }

  /// What is left at EOF is a cut-off operation: nothing to deliver.
  mutating func decodeLast(
    context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool
  ) throws -> DecodingState {
    while try decode(context: context, buffer: &buffer) == .continue {}
    buffer.moveReaderIndex(forwardBy: buffer.readableBytes)
    return .needMoreData
  }
}

extension FixedWidthInteger {
  /// Only ASCII digits, at most 19 of them (no sign, no spaces): sizes and ids on the wire.
  init?(decimal bytes: some Collection<UInt8>) {
    guard !bytes.isEmpty, bytes.count <= 19 else { return nil }
    var value: Self = 0
    for byte in bytes {
      guard byte >= 0x30 && byte <= 0x39 else { return nil }
      let (shifted, o1) = value.multipliedReportingOverflow(by: 10)
      let (sum, o2) = shifted.addingReportingOverflow(Self(byte - 0x30))
      guard !o1 && !o2 else { return nil }
      value = sum
    }
    self = value
  }
}
