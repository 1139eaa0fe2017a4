import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import TallyServer

/// The request context of every route: Hummingbird's core storage and the peer's address
/// (sign-in failures are throttled per address, as AUTH's are).
public struct BackOfficeContext: RequestContext, RemoteAddressRequestContext {
  public var coreContext: CoreRequestContextStorage
  public let remoteAddress: SocketAddress?

  public init(source: ApplicationRequestContextSource) {
    coreContext = .init(source: source)
    remoteAddress = source.channel.remoteAddress
  }
}

/// Headers on every answer: nothing is cached (pages show balances and hold a CSRF token),
/// no page runs script or may be framed, and the browser sniffs no content type.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
  func handle(
    _ request: Request, context: Context, next: (Request, Context) async throws -> Response
  ) async throws -> Response {
    var response: Response
    do {
      response = try await next(request, context)
    } catch let e as HTTPError {
      response = Response(status: e.status, headers: e.headers)
      response.body = .init(byteBuffer: ByteBuffer(string: e.body ?? e.status.reasonPhrase))
      response.headers[.contentType] = "text/plain; charset=utf-8"
    }
    response.headers[.cacheControl] = "no-store"
    response.headers[.xContentTypeOptions] = "nosniff"
    response.headers[HTTPField.Name("X-Frame-Options")!] = "DENY"
    response.headers[HTTPField.Name("Referrer-Policy")!] = "no-referrer"
    response.headers[.contentSecurityPolicy] =
      "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; "
      + "frame-ancestors 'none'; base-uri 'none'"
    return response
  }
}

/// The routes of the HTTP listener: the back office, health, readiness and metrics.
public func buildRouter(server: TallyServer, config: HTTPConfig, logger: Logger) throws
  -> Router<BackOfficeContext>
{
  let router = Router(context: BackOfficeContext.self)
  router.add(middleware: SecurityHeadersMiddleware())
  let office = try BackOffice(server: server, config: config, logger: logger)
  office.addRoutes(to: router)
  OpsRoutes.add(to: router, server: server, config: config)
  return router
}

/// The HTTP listener (`tallyd --http`): a Hummingbird application, a swift-service-lifecycle
/// `Service`. `onListening` is told the bound port (useful with port 0).
public func makeHTTPApplication(
  server: TallyServer, config: HTTPConfig, logger: Logger,
  onListening: @escaping @Sendable (Int) async -> Void = { _ in }
) throws -> some ApplicationProtocol {
  let router = try buildRouter(server: server, config: config, logger: logger)
  return Application(
    router: router,
    configuration: .init(
      address: .hostname(config.host, port: config.port), serverName: "tallyd"),
    onServerRunning: { channel in await onListening(channel.localAddress?.port ?? config.port) },
    logger: logger)
}
