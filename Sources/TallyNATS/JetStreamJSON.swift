import TallyProtocol

/// Reading and writing the JSON of the JetStream API with TallyProtocol's parser and writer.
enum APIJSON {
  /// A reply is one NATS message, so it is bounded by `max_payload`; its strings include the
  /// base64 of a whole stored message.
  static let limits = JSONLimits(
    maxBytes: NATSLimits.payloadBytesHardMax, maxDepth: NATSLimits.apiReplyDepthMax,
    maxStringBytes: NATSLimits.payloadBytesHardMax, maxMembers: NATSLimits.apiReplyMembersMax)

  /// The reply object of an API call, or the `error` it carries as a `JetStreamError`.
  static func reply(_ payload: [UInt8], _ subject: String) throws(JetStreamError) -> JSONObject {
    let value: JSONValue
    do {
      value = try JSONParser.parse(payload, limits: limits)
    } catch {
      throw JetStreamError(.response, "reply to \(subject) is not JSON: \(error.message)")
    }
    guard let object = value.objectValue else {
      throw JetStreamError(.response, "reply to \(subject) is not a JSON object")
    }
    if let error = object["error"]?.objectValue {
      throw JetStreamError(
        code: error.int("code") ?? 0, errCode: error.int("err_code") ?? 0,
        description: error["description"]?.stringValue ?? "JetStream error without description")
    }
    return object
  }

  static func number(_ value: some BinaryInteger) -> JSONValue { .number(String(value)) }

  /// Nanoseconds, as the API counts durations; a duration beyond Int64 nanoseconds (292
  /// years) or below zero is refused.
  static func nanoseconds(_ duration: Duration, _ what: String) throws(JetStreamError) -> JSONValue
  {
    let (seconds, attoseconds) = duration.components
    let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
    let (total, overflow2) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
    guard !overflow, !overflow2, total >= 0 else {
      throw JetStreamError(.invalid, "\(what) must be between 0 and 292 years")
    }
    return .number(String(total))
  }

  static func missing(_ field: String, _ context: String) -> JetStreamError {
    JetStreamError(.response, "\(context): reply has no valid \"\(field)\"")
  }
}

extension JSONObject {
  func uint64(_ key: String) -> UInt64? {
    guard case .number(let text)? = self[key] else { return nil }
    return UInt64(text)
  }

  func int(_ key: String) -> Int? {
    guard case .number(let text)? = self[key] else { return nil }
    return Int(text)
  }

  func object(_ key: String) -> JSONObject? { self[key]?.objectValue }

  func string(_ key: String) -> String? { self[key]?.stringValue }
}
