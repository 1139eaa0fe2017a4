import TallyProtocol

/// One operation received from a server.
enum ServerOp: Sendable {
  case info(ServerInfo)
  /// `MSG` or `HMSG` for subscription `sid`.
  case message(sid: UInt64, NATSMessage)
  case ping
  case pong
  case ok
  /// `-ERR 'text'`, the text without its quotes.
  case err(String)
}

/// The fields of a server's `INFO` the client uses.
struct ServerInfo: Sendable, Equatable {
  var serverID = ""
  var serverName = ""
  var version = ""
  /// The largest message (headers and payload) the server accepts.
  var maxPayload = 1024 * 1024
  var headers = false
  var jetStream = false
  /// Client URLs of the other cluster members (`host:port`).
  var connectURLs: [String] = []
  /// The server is in lame duck mode (shutting down soon).
  var lameDuck = false

  /// Parses the JSON of an `INFO` line. Unknown fields are ignored; a missing or invalid
  /// `max_payload` is an error, because the decoder's bound depends on it.
  static func parse(_ json: some Collection<UInt8>) throws(NATSError) -> ServerInfo {
    let value: JSONValue
    do {
      value = try JSONParser.parse(
        json, limits: JSONLimits(maxBytes: NATSLimits.controlLineBytesMax))
    } catch {
      throw NATSError(.protocolError, "INFO is not valid JSON: \(error.message)")
    }
    guard let object = value.objectValue else {
      throw NATSError(.protocolError, "INFO is not a JSON object")
    }
    var info = ServerInfo()
    info.serverID = object["server_id"]?.stringValue ?? ""
    info.serverName = object["server_name"]?.stringValue ?? ""
    info.version = object["version"]?.stringValue ?? ""
    guard case .number(let text)? = object["max_payload"], let maxPayload = Int(text),
      maxPayload > 0
    else {
      throw NATSError(.protocolError, "INFO has no positive integer max_payload")
    }
    info.maxPayload = min(maxPayload, NATSLimits.payloadBytesHardMax)
    info.headers = object["headers"]?.boolValue ?? false
    info.jetStream = object["jetstream"]?.boolValue ?? false
    info.lameDuck = object["ldm"]?.boolValue ?? false
    info.connectURLs = (object["connect_urls"]?.arrayValue ?? []).compactMap(\.stringValue)
    return info
  }
}
