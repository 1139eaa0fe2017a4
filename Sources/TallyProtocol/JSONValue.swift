/// A parsed (or hand-built) JSON document.
///
/// Equality is structural and order-sensitive for object members, so two values are equal
/// exactly when `JSONWriter` would serialize them to the same text (modulo the Unicode
/// canonical equivalence that Swift `String` equality applies to strings and keys).
public enum JSONValue: Equatable, Sendable {
  case null
  case bool(Bool)
  /// The raw RFC 8259 number text exactly as it appeared in the input, e.g. `"-12.34E-5"`.
  ///
  /// It is never converted to `Double`: ledger amounts must not be rounded or lose digits,
  /// and keeping the text makes serialization byte-for-byte faithful. Equality compares the
  /// text, so `1.0` and `1` are different values. Values produced by `JSONParser` always
  /// hold valid number text; for hand-built values check with `JSONParser.isValidNumber(_:)`.
  case number(String)
  case string(String)
  case array([JSONValue])
  case object(JSONObject)
}

/// A JSON object that keeps its members in insertion (document) order.
///
/// Order is kept, rather than using a `Dictionary`, so that serialization is deterministic
/// and reproduces the sender's member order. Objects in the protocol are small, so lookups are
/// a linear scan.
public struct JSONObject: Equatable, Sendable {
  /// The members in insertion order. Keys are unique in objects produced by `JSONParser`;
  /// keeping hand-built objects free of duplicates is the caller's responsibility.
  public var members: [(key: String, value: JSONValue)]

  public init(_ members: [(key: String, value: JSONValue)] = []) {
    self.members = members
  }

  /// The value of the first member named `key`, or `nil` if there is none.
  public subscript(key: String) -> JSONValue? {
    for member in members where member.key == key {
      return member.value
    }
    return nil
  }

  /// The member names in insertion order.
  public var keys: [String] {
    members.map(\.key)
  }

  /// Written by hand because tuples cannot conform to `Equatable`. Member order matters.
  public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
    guard lhs.members.count == rhs.members.count else { return false }
    for (left, right) in zip(lhs.members, rhs.members)
    where left.key != right.key || left.value != right.value {
      return false
    }
    return true
  }
}

extension JSONValue {
  /// The string payload, only for `.string` (a `.number` is not a string).
  public var stringValue: String? {
    if case .string(let value) = self { return value }
    return nil
  }

  /// The object payload, only for `.object`.
  public var objectValue: JSONObject? {
    if case .object(let value) = self { return value }
    return nil
  }

  /// The elements, only for `.array`.
  public var arrayValue: [JSONValue]? {
    if case .array(let value) = self { return value }
    return nil
  }

  /// The boolean payload, only for `.bool`.
  public var boolValue: Bool? {
    if case .bool(let value) = self { return value }
    return nil
  }
}
