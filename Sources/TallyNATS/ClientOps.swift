import NIOCore
import TallyProtocol

/// What the client writes: validated arguments in, protocol bytes out.
enum ClientOps {
  static let crlf: [UInt8] = [0x0D, 0x0A]

  /// `CONNECT {json}` then `PING`: the server's `PONG` confirms it accepted the connection.
  static func connect(name: String, into buffer: inout ByteBuffer) {
    let options: JSONValue = .object(
      JSONObject([
        ("verbose", .bool(false)), ("pedantic", .bool(false)), ("tls_required", .bool(false)),
        ("name", .string(name)), ("lang", .string("swift")), ("version", .string("0.1.0")),
        ("protocol", .number("1")), ("headers", .bool(true)), ("no_responders", .bool(true)),
      ]))
    buffer.writeString("CONNECT ")
    buffer.writeString(JSONWriter.serialize(options))
    buffer.writeBytes(crlf)
    buffer.writeString("PING\r\n")
  }

  /// `PUB subject [reply] size` or, with headers, `HPUB subject [reply] hdrSize totalSize`,
  /// then the payload. `headerBlock` is an encoded header block (`HeaderBlock.encode`).
  static func publish(
    subject: String, replyTo: String?, headerBlock: [UInt8]?, payload: [UInt8],
    into buffer: inout ByteBuffer
  ) {
    let reply = replyTo.map { " " + $0 } ?? ""
    if let headerBlock {
      let total = headerBlock.count + payload.count
      buffer.writeString("HPUB \(subject)\(reply) \(headerBlock.count) \(total)\r\n")
      buffer.writeBytes(headerBlock)
    } else {
      buffer.writeString("PUB \(subject)\(reply) \(payload.count)\r\n")
    }
    buffer.writeBytes(payload)
    buffer.writeBytes(crlf)
  }

  static func subscribe(subject: String, queue: String?, sid: UInt64, into buffer: inout ByteBuffer)
  {
    let group = queue.map { " " + $0 } ?? ""
    buffer.writeString("SUB \(subject)\(group) \(sid)\r\n")
  }

  static func unsubscribe(sid: UInt64, into buffer: inout ByteBuffer) {
    buffer.writeString("UNSUB \(sid)\r\n")
  }

  // MARK: Validation

  /// A subject: dot-separated non-empty tokens of printable ASCII or UTF-8 without spaces or
  /// control bytes. Wildcards (`*` alone, `>` alone and last) only where `wildcards` is set.
  static func checkSubject(_ subject: String, wildcards: Bool, what: String = "subject")
    throws(NATSError)
  {
    let bytes = Array(subject.utf8)
    let shown = HeaderBlock.quoted(subject)
    guard !bytes.isEmpty else { throw NATSError(.invalid, "empty \(what)") }
    guard bytes.count <= NATSLimits.subjectBytesMax else {
      throw NATSError(
        .invalid, "\(what) of \(bytes.count) bytes is longer than \(NATSLimits.subjectBytesMax)")
    }
    guard bytes.allSatisfy({ $0 > 0x20 && $0 != 0x7F }) else {
      throw NATSError(.invalid, "\(what) \(shown) contains spaces or control characters")
    }
    let tokens = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
    for (index, token) in tokens.enumerated() {
      guard !token.isEmpty else { throw NATSError(.invalid, "\(what) \(shown) has an empty token") }
      let isStar = token.elementsEqual([UInt8(ascii: "*")])
      let isTail = token.elementsEqual([UInt8(ascii: ">")])
      if isStar || isTail {
        guard wildcards else {
          throw NATSError(.invalid, "\(what) \(shown) must not contain wildcards")
        }
        if isTail && index != tokens.count - 1 {
          throw NATSError(.invalid, "\(what) \(shown): '>' must be the last token")
        }
      }
    }
  }

  /// A queue group name: one token without spaces or control characters.
  static func checkQueue(_ queue: String) throws(NATSError) {
    let bytes = Array(queue.utf8)
    guard !bytes.isEmpty, bytes.count <= NATSLimits.labelBytesMax,
      bytes.allSatisfy({ $0 > 0x20 && $0 != 0x7F })
    else {
      throw NATSError(
        .invalid,
        "queue group \(HeaderBlock.quoted(queue)) must be 1...\(NATSLimits.labelBytesMax) "
          + "bytes without spaces")
    }
  }
}
