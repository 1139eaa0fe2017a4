import Hummingbird
import NIOCore
import TallyProtocol
import TallyServer

/// `/healthz`, `/readyz` and `/metrics` (docs/OPERATIONS.md): no sign-in, nothing that
/// changes state, no ledger contents (counts, sizes and ages only).
enum OpsRoutes {
  static func add(to router: Router<BackOfficeContext>, server: TallyServer, config: HTTPConfig) {
    router.get("/healthz") { _, _ in
      text(.ok, "ok\n", "text/plain; charset=utf-8")
    }
    router.get("/readyz") { _, _ in
      let checks = server.readiness(minFreeBytes: config.readyMinFreeBytes)
      let ready = checks.allSatisfy(\.ok)
      let body = JSONObject([
        ("ready", .bool(ready)),
        (
          "checks",
          .array(
            checks.map {
              .object(
                JSONObject([
                  ("name", .string($0.name)), ("ok", .bool($0.ok)), ("detail", .string($0.detail)),
                ]))
            })
        ),
      ])
      return text(
        ready ? .ok : .serviceUnavailable, JSONWriter.serialize(.object(body)) + "\n",
        "application/json")
    }
    router.get("/metrics") { _, _ in
      guard let bytes = try await server.prometheusText() else {
        // The listener turns metrics on; a server without them is a wiring mistake.
        return text(.notFound, "metrics are off\n", "text/plain; charset=utf-8")
      }
      var r = Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
      r.headers[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
      return r
    }
  }

  static func text(_ status: HTTPResponse.Status, _ body: String, _ type: String) -> Response {
    var r = Response(status: status, body: .init(byteBuffer: ByteBuffer(string: body)))
    r.headers[.contentType] = type
    return r
  }
}
