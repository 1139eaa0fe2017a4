/// A failure of a JetStream call.
///
/// When JetStream answered with an error, `code` is its HTTP-like status (400, 404, 503…)
/// and `errCode` its stable error code (10059 stream not found, 10071 wrong last
/// sequence…); both are 0 when the failure happened before JetStream answered, and then
/// `transport` holds the connection's error (a timeout, no responders, a lost connection).
public struct JetStreamError: Error, Sendable, CustomStringConvertible {
  public enum Kind: String, Sendable {
    /// JetStream answered with an `error` object (or a status such as 409 during a fetch).
    case api
    /// The request did not get an answer: see `transport`.
    case transport
    /// The answer is not what the JetStream API documents.
    case response
    /// An argument was refused before anything was sent.
    case invalid
    /// `ensureStream` found a stream of that name with another configuration.
    case mismatch
  }

  public var kind: Kind
  public var code: Int
  public var errCode: Int
  public var description: String
  public var transport: NATSError?

  public init(code: Int, errCode: Int, description: String) {
    self.kind = .api
    self.code = code
    self.errCode = errCode
    self.description = description
    self.transport = nil
  }

  init(_ kind: Kind, _ description: String, transport: NATSError? = nil) {
    self.kind = kind
    self.code = 0
    self.errCode = 0
    self.description = description
    self.transport = transport
  }

  // JetStream's own error codes this client branches on (nats-server `errors.json`).
  /// `stream not found`.
  public static let streamNotFound = 10059
  /// `stream name already in use with a different configuration`.
  public static let streamNameInUse = 10058
  /// `no message found`.
  public static let messageNotFound = 10037
  /// `consumer not found`.
  public static let consumerNotFound = 10014
  /// `wrong last sequence: N` (the `Nats-Expected-Last-Sequence` check failed).
  public static let wrongLastSequence = 10071
  /// `expected stream does not match` (the `Nats-Expected-Stream` check failed).
  public static let streamNotMatch = 10060
}
