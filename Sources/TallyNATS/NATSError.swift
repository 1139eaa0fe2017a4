/// A failure of the NATS client, with a stable code a caller can branch on.
///
/// The codes never change meaning: `rawValue` is what logs and tests compare.
public struct NATSError: Error, Sendable, CustomStringConvertible, Equatable {
  public enum Code: String, Sendable {
    /// No server of the list could be connected to (or the handshake failed).
    case connect
    /// The connection was closed (by `close()`, or after it gave up reconnecting).
    case closed
    /// The connection is lost for now and reconnecting; or it was lost while waiting.
    case disconnected
    /// The server did not answer in time.
    case timeout
    /// The server sent something that is not the NATS protocol, or broke one of its limits.
    case protocolError = "protocol"
    /// The server answered `-ERR`.
    case server
    /// A request found no subscriber (a 503 status reply).
    case noResponders = "no_responders"
    /// The message is larger than the server's `max_payload`.
    case payloadTooLarge = "payload_too_large"
    /// A subscription's consumer fell `pendingMax` messages behind; it was ended.
    case slowConsumer = "slow_consumer"
    /// An argument is malformed (a subject, header, size or limit).
    case invalid
    /// A bound of `NATSLimits` on work in flight was reached (writes not yet on the socket,
    /// requests or flushes waiting); try again later.
    case overloaded
    /// The waiting task was cancelled.
    case cancelled
  }

  public var code: Code
  public var message: String

  public init(_ code: Code, _ message: String) {
    self.code = code
    self.message = message
  }

  public init(code: Code, message: String) {
    self.init(code, message)
  }

  public var description: String { "nats \(code.rawValue): \(message)" }

  /// `error` itself if it is a `NATSError`, else a `.disconnected` error describing it (what
  /// NIO reports are socket failures, i.e. a lost connection).
  static func wrap(_ error: any Error, _ context: String) -> NATSError {
    if let error = error as? NATSError { return error }
    if error is CancellationError { return NATSError(.cancelled, "\(context): cancelled") }
    return NATSError(.disconnected, "\(context): \(error)")
  }
}
