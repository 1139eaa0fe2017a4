import Dispatch
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TallyHTTP
import TallyTestSupport

/// The back office over a real socket: the application runs on 127.0.0.1 (an ephemeral
/// port) and each request is one HTTP/1.1 exchange on a new connection, read to the close.
/// A client of our own rather than HummingbirdTesting, whose HTTP client would add a TLS
/// stack to the build for tests that never use TLS.
struct LiveClient: Sendable {
  let port: Int

  struct Response: Sendable {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer
  }

  struct Failed: Error, CustomStringConvertible { var description: String }

  func execute(
    uri: String, method: HTTPRequest.Method, headers: HTTPFields = HTTPFields(),
    body: ByteBuffer? = nil
  ) async throws -> Response {
    let fields = headers.map { ($0.name.rawName, $0.value) }
    let payload = body.map { Array($0.readableBytesView) }
    let port = self.port
    let a = try await Self.offPool {
      try HTTPExchange.run(
        port: port, method: method.rawValue, target: uri, headers: fields, body: payload)
    }
    var h = HTTPFields()
    for (name, value) in a.headers {
      if let n = HTTPField.Name(name) { h.append(HTTPField(name: n, value: value)) }
    }
    return Response(
      status: HTTPResponse.Status(code: a.status), headers: h, body: ByteBuffer(bytes: a.body))
  }

  /// Runs blocking socket IO on a GCD thread, never on the concurrency pool.
  static func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in
      DispatchQueue.global().async { c.resume(with: Result { try body() }) }
    }
  }
}

extension Office {
  /// Runs the back office on an ephemeral loopback port for `body`, then stops it.
  func live<R: Sendable>(
    _ config: HTTPConfig = HTTPConfig(), _ body: (LiveClient) async throws -> R
  ) async throws -> R {
    let (ports, bound) = AsyncStream<Int>.makeStream()
    var c = config
    c.port = 0
    let app = try makeHTTPApplication(
      server: server, config: c, logger: Logger(label: "test"),
      onListening: { port in bound.yield(port) })
    let running = Task { try await app.runService() }
    var it = ports.makeAsyncIterator()
    guard let port = await it.next() else { throw LiveClient.Failed(description: "not listening") }
    do {
      let r = try await body(LiveClient(port: port))
      running.cancel()
      _ = await running.result
      return r
    } catch {
      running.cancel()
      _ = await running.result
      throw error
    }
  }
}
