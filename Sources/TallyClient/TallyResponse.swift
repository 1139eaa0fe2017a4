import TallyProtocol

/// Why a client operation failed.
public enum TallyClientError: Error, Equatable, Sendable, CustomStringConvertible {
  /// The connection is closed (by the server, by `close()`, or after an earlier failure);
  /// every call still waiting for its response fails with this.
  case connectionClosed
  /// The server sent something that is not the line protocol: a line that is neither
  /// `OK …` nor `ERR CODE {…}`, invalid UTF-8, a line over the length limit, a body that is
  /// not the expected JSON, or a missing `HELLO`. The connection is closed when it is found
  /// in the byte stream, since nothing after it can be matched to requests reliably.
  case protocolViolation(String)
  /// The server answered `ERR code body`. Thrown by `TallyResponse.result()` and
  /// `TallyClient.authenticate`; `call` itself returns `ERR` answers as values.
  case rejected(code: String, body: String)
  /// The request could not be sent as one protocol line (bad verb, LF in the body).
  case invalidRequest(String)
  /// A `HOST:PORT` text that does not parse.
  case invalidEndpoint(String)
  /// TCP connection could not be established.
  case connectFailed(String)
  /// No `HELLO` within the connect timeout.
  case timedOut(String)
  /// More calls waiting on one connection than the client accepts.
  case tooManyInFlight(Int)

  public var description: String {
    switch self {
    case .connectionClosed: "connection closed"
    case .protocolViolation(let why): "protocol violation: \(why)"
    case .rejected(let code, let body): "ERR \(code) \(body)"
    case .invalidRequest(let why): "invalid request: \(why)"
    case .invalidEndpoint(let why): "invalid endpoint: \(why)"
    case .connectFailed(let why): "connect failed: \(why)"
    case .timedOut(let why): "timed out: \(why)"
    case .tooManyInFlight(let limit): "more than \(limit) calls in flight on one connection"
    }
  }
}

/// One response line: `OK [json]` or `ERR CODE json`.
///
/// The body is kept as text and only parsed on demand (`json()`, `result()`), so callers that
/// only need the status, like a load generator, pay nothing for JSON.
public struct TallyResponse: Sendable, Equatable {
  /// `true` for `OK`, `false` for `ERR`.
  public let ok: Bool
  /// The error code of an `ERR` line (e.g. `NOT_FOUND`); `nil` for `OK`.
  public let code: String?
  /// The raw JSON text after the status (and code); empty for a bare `OK`.
  public let body: String

  public init(ok: Bool, code: String?, body: String) {
    self.ok = ok
    self.code = code
    self.body = body
  }

  /// Limits for parsing response bodies. Wider than the server's request limits: a batch
  /// answer carries one result per entry (up to 100,000) and can run to megabytes.
  public static let bodyLimits = JSONLimits(
    maxBytes: TallyClient.maxLineBytes, maxDepth: 32, maxStringBytes: 1 << 20,
    maxMembers: 1_000_000)

  /// Parses one response line, without its terminating LF.
  ///
  /// Only the framing is checked here; the body is validated as JSON by `json()`.
  public static func parse(line: String) throws(TallyClientError) -> TallyResponse {
    let utf8 = line.utf8
    if line == "OK" { return TallyResponse(ok: true, code: nil, body: "") }
    if utf8.starts(with: "OK ".utf8) {
      let body = String(line.dropFirst(3))
      guard !body.isEmpty else { throw violation("empty body after OK", line) }
      return TallyResponse(ok: true, code: nil, body: body)
    }
    guard utf8.starts(with: "ERR ".utf8) else {
      throw violation("expected OK or ERR", line)
    }
    let rest = line.dropFirst(4)
    guard let space = rest.firstIndex(of: " ") else {
      throw violation("ERR without a JSON body", line)
    }
    let code = String(rest[..<space])
    guard isValidCode(code) else { throw violation("malformed error code", line) }
    let body = String(rest[rest.index(after: space)...])
    guard !body.isEmpty else { throw violation("ERR without a JSON body", line) }
    return TallyResponse(ok: false, code: code, body: body)
  }

  /// The body as a JSON object; an empty object for a bare `OK`. Works for `ERR` bodies too.
  public func json() throws(TallyClientError) -> JSONObject {
    if body.isEmpty { return JSONObject() }
    let value: JSONValue
    do {
      value = try JSONParser.parse(body, limits: Self.bodyLimits)
    } catch {
      throw .protocolViolation("response body is not valid JSON: \(error)")
    }
    guard let object = value.objectValue else {
      throw .protocolViolation("response body is not a JSON object")
    }
    return object
  }

  /// The `OK` body as an object; an `ERR` answer is thrown as `TallyClientError.rejected`.
  public func result() throws(TallyClientError) -> JSONObject {
    guard ok else { throw .rejected(code: code ?? "", body: body) }
    return try json()
  }

  /// Codes are upper-case identifiers such as `NOT_FOUND`.
  static func isValidCode(_ code: String) -> Bool {
    !code.isEmpty && code.utf8.count <= 64
      && code.utf8.allSatisfy { byte in
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
          || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || byte == UInt8(ascii: "_")
      }
  }

  /// Quotes at most the start of the offending line: it may be huge or hostile.
  static func violation(_ why: String, _ line: String) -> TallyClientError {
    .protocolViolation("\(why): \(JSONWriter.quoted(String(line.prefix(80))))")
  }
}
