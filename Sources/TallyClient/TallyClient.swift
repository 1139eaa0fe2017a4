import NIOCore
import NIOPosix
import TallyCore
import TallyCrypto
import TallyProtocol

/// One connection to a `tallyd` server, speaking the newline-delimited line protocol.
///
/// Calls may be made concurrently from any number of tasks: each is written as one request
/// line and answered by the response line in the same position, so many requests can be in
/// flight on one connection (pipelining). If the connection closes, every call still waiting
/// fails with `TallyClientError.connectionClosed`.
///
/// ```swift
/// let client = try await TallyClient.connect(to: Endpoint(parsing: "127.0.0.1:7878"))
/// _ = try await client.authenticate(key: keyID, secret: secret)
/// let entry = try await client.call("ENTRY.POST", body).result()
/// await client.close()
/// ```
public final class TallyClient: Sendable {
  /// Longest response line accepted; a longer one closes the connection as a protocol error.
  public static let maxLineBytes = 64 << 20

  /// The body of the server's `HELLO` greeting (`server`, `version`, `nonce`).
  public let hello: JSONObject
  /// The address this client connected to.
  public let endpoint: Endpoint
  private let channel: any Channel

  private init(channel: any Channel, hello: JSONObject, endpoint: Endpoint) {
    self.channel = channel
    self.hello = hello
    self.endpoint = endpoint
  }

  deinit {
    // A client dropped without `close()` must not keep its socket open.
    channel.close(promise: nil)
  }

  /// Connects and waits for the `HELLO` greeting.
  public static func connect(
    host: String, port: Int,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    timeout: TimeAmount = .seconds(10)
  ) async throws(TallyClientError) -> TallyClient {
    try await connect(to: Endpoint(host: host, port: port), group: group, timeout: timeout)
  }

  /// Connects and waits for the `HELLO` greeting, for at most `timeout` in all.
  public static func connect(
    to endpoint: Endpoint,
    group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
    timeout: TimeAmount = .seconds(10)
  ) async throws(TallyClientError) -> TallyClient {
    let loop = group.next()
    let hello = loop.makePromise(of: JSONObject.self)
    let channel: any Channel
    do {
      channel = try await ClientBootstrap(group: loop)
        .connectTimeout(timeout)
        .channelInitializer { channel in
          channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(
              ByteToMessageHandler(LineFramer(maxLineBytes: maxLineBytes)))
            try channel.pipeline.syncOperations.addHandler(ResponseHandler(hello: hello))
          }
        }
        .connect(host: endpoint.host, port: endpoint.port).get()
    } catch {
      hello.fail(TallyClientError.connectionClosed)
      throw .connectFailed("\(endpoint): \(error)")
    }
    let deadline = loop.scheduleTask(in: timeout) {
      hello.fail(TallyClientError.timedOut("no HELLO from \(endpoint) within \(timeout)"))
      channel.close(promise: nil)
    }
    do {
      let greeting = try await hello.futureResult.get()
      deadline.cancel()
      return TallyClient(channel: channel, hello: greeting, endpoint: endpoint)
    } catch {
      deadline.cancel()
      try? await channel.close()
      throw error as? TallyClientError ?? .connectionClosed
    }
  }

  /// The `nonce` of the greeting, which `AUTH` signs.
  public var nonce: String { hello["nonce"]?.stringValue ?? "" }

  /// `AUTH` with an HMAC-SHA256 of the nonce. The secret is the text printed when the key was
  /// created, used as it is (its UTF-8 bytes are the HMAC key; it is not hex-decoded).
  ///
  /// Returns the granted `{"role", "partner"}`; an `ERR` answer throws `.rejected`.
  public func authenticate(key: String, secret: String) async throws(TallyClientError)
    -> JSONObject
  {
    let request: JSONValue = .object(
      JSONObject([
        ("key", .string(key)), ("mac", .string(Self.mac(secret: secret, nonce: nonce))),
      ]))
    return try await call("AUTH", JSONWriter.serialize(request)).result()
  }

  /// Lowercase hex HMAC-SHA256 of `nonce` keyed by `secret`, both as UTF-8 text.
  public static func mac(secret: String, nonce: String) -> String {
    Secrets.hmacSHA256(key: Array(secret.utf8), message: Array(nonce.utf8)).hex
  }

  /// Sends `VERB body` and returns its response, `OK` or `ERR` alike.
  ///
  /// `body` is raw JSON text and is sent as given (the server validates it); it must not
  /// contain a line break. The verb is upper-case letters, digits, `.` and `_`.
  ///
  /// The call stays on the caller's actor while it waits. An actor whose executor is this
  /// connection's (`executor`) therefore sends and receives without any thread switch.
  public func call(
    _ verb: String, _ body: String? = nil, isolation: isolated (any Actor)? = #isolation
  ) async throws(TallyClientError) -> TallyResponse {
    let response = send(verb, body)
    do {
      return try await withCheckedThrowingContinuation(isolation: isolation) { continuation in
        response.whenComplete { continuation.resume(with: $0) }
      }
    } catch {
      throw error as? TallyClientError ?? .connectionClosed
    }
  }

  /// The event loop this connection lives on.
  public var eventLoop: any EventLoop { channel.eventLoop }

  /// An executor running on this connection's event loop, for an actor that drives the
  /// connection (`nonisolated var unownedExecutor: UnownedSerialExecutor { client.executor }`).
  /// The event loop group must outlive such an actor; the default singleton group always does.
  public var executor: UnownedSerialExecutor {
    channel.eventLoop.executor.asUnownedSerialExecutor()
  }

  /// `call` without `async`: sends the request at once and returns the future response,
  /// failed with a `TallyClientError`.
  ///
  /// Called on `eventLoop` itself, the write happens at once instead of being handed to the
  /// loop's thread.
  public func send(_ verb: String, _ body: String? = nil) -> EventLoopFuture<TallyResponse> {
    guard Self.isValidVerb(verb) else {
      let quoted = JSONWriter.quoted(String(verb.prefix(64)))
      return channel.eventLoop.makeFailedFuture(
        TallyClientError.invalidRequest("verb must be [A-Z0-9._]{1,64}, got \(quoted)"))
    }
    let bodyBytes = body?.utf8.count ?? 0
    if let body, body.utf8.contains(where: { $0 == 0x0A || $0 == 0x0D }) {
      return channel.eventLoop.makeFailedFuture(
        TallyClientError.invalidRequest("a request body must not contain a line break"))
    }
    var buffer = channel.allocator.buffer(capacity: verb.utf8.count + bodyBytes + 2)
    buffer.writeString(verb)
    if let body {
      buffer.writeInteger(UInt8(ascii: " "))
      buffer.writeString(body)
    }
    buffer.writeInteger(UInt8(ascii: "\n"))
    return exchange(Exchange(bytes: buffer, response: nil))
  }

  /// Sends `VERB` with `body` serialized by `JSONWriter`.
  public func call(
    _ verb: String, _ body: JSONObject, isolation: isolated (any Actor)? = #isolation
  ) async throws(TallyClientError) -> TallyResponse {
    try await call(verb, JSONWriter.serialize(.object(body)), isolation: isolation)
  }

  /// Writes bytes as they are, with no response expected, e.g. malformed input in tests.
  /// Whatever the server answers to them is read with `nextResponse()`, in order.
  public func sendRaw(_ bytes: [UInt8]) async throws(TallyClientError) {
    var buffer = channel.allocator.buffer(capacity: bytes.count)
    buffer.writeBytes(bytes)
    do {
      try await channel.writeAndFlush(Exchange(bytes: buffer, response: nil)).get()
    } catch {
      throw .connectionClosed
    }
  }

  /// The next response line nobody has claimed yet: the answer to bytes sent by `sendRaw`.
  ///
  /// Only meaningful while no `call` is in flight, since responses are handed out in order.
  public func nextResponse() async throws(TallyClientError) -> TallyResponse {
    do {
      return try await exchange(Exchange(bytes: nil, response: nil)).get()
    } catch {
      throw error as? TallyClientError ?? .connectionClosed
    }
  }

  /// Closes the connection; calls still waiting fail with `connectionClosed`.
  public func close() async {
    try? await channel.close()
  }

  /// Queues a response promise (and sends the bytes, if any) in one step on the event loop.
  private func exchange(_ request: Exchange) -> EventLoopFuture<TallyResponse> {
    var request = request
    let response = channel.eventLoop.makePromise(of: TallyResponse.self)
    request.response = response
    // The write fails without reaching the handler once the channel is closed; the call
    // must not wait forever for a response that cannot come.
    channel.writeAndFlush(request).whenFailure { error in
      response.fail(error as? TallyClientError ?? .connectionClosed)
    }
    return response.futureResult
  }

  static func isValidVerb(_ verb: String) -> Bool {
    !verb.isEmpty && verb.utf8.count <= 64
      && verb.utf8.allSatisfy { byte in
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
          || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
          || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
      }
  }
}
