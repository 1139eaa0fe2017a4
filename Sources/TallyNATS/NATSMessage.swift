/// A message delivered to a subscription or as the reply to a request.
public struct NATSMessage: Sendable {
  public var subject: String
  public var replyTo: String?
  public var headers: NATSHeaders
  public var payload: [UInt8]
  /// The status of a status message (`NATS/1.0 503`): 503 no responders, 404 and 408 at the
  /// end of a JetStream pull, 100 a heartbeat. `nil` for ordinary messages.
  public var status: Int?
  public var statusDescription: String?

  public init(
    subject: String, replyTo: String? = nil, headers: NATSHeaders = NATSHeaders(),
    payload: [UInt8], status: Int? = nil, statusDescription: String? = nil
  ) {
    self.subject = subject
    self.replyTo = replyTo
    self.headers = headers
    self.payload = payload
    self.status = status
    self.statusDescription = statusDescription
  }
}
