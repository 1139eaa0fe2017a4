import TallyCore

/// JSON request bodies → commands. The same shapes serve `tally post --file` and the
/// server. Strict: unknown fields, wrong types and number-typed amounts are rejected.
public enum CommandDecoding {
  /// Parses one line (a JSON object) into an entry.
  public static func entry(line: some Collection<UInt8>) -> Result<EntrySpec, Rejection> {
    switch object(line) {
    case .failure(let r): return .failure(r)
    case .success(let o): return entry(o)
    }
  }

  public static func object(
    _ line: some Collection<UInt8>, limits: JSONLimits = .default
  ) -> Result<JSONObject, Rejection> {
    let value: JSONValue
    do {
      value = try JSONParser.parse(line, limits: limits)
    } catch {
      return .failure(Rejection(.invalidJson, error.message, ["offset": String(error.offset)]))
    }
    guard case .object(let o) = value else {
      return .failure(Rejection(.invalidJson, "expected a JSON object"))
    }
    return .success(o)
  }

  static func field(_ name: String) -> [String: String] { ["field": name] }

  static func checkKeys(_ o: JSONObject, _ allowed: Set<String>, _ path: String)
    -> Rejection?
  {
    for k in o.keys where !allowed.contains(k) {
      return Rejection(.invalidField, "unknown field \(path)\(k)", field(path + k))
    }
    return nil
  }

  static func string(_ o: JSONObject, _ key: String, _ path: String, required: Bool)
    -> Result<String?, Rejection>
  {
    guard let v = o[key] else {
      return required
        ? .failure(Rejection(.invalidField, "\(path)\(key) is required", field(path + key)))
        : .success(nil)
    }
    guard case .string(let s) = v else {
      return .failure(Rejection(.invalidField, "\(path)\(key) must be a string", field(path + key)))
    }
    return .success(s)
  }

  /// Amounts travel as strings of integer minor units: `"1050"`. A missing amount or one of
  /// another JSON type (a number) is a field error; a string that is not a positive integer
  /// of minor units is a bad amount.
  public static func amount(_ v: JSONValue?, _ path: String) -> Result<Int128, Rejection> {
    guard let v else {
      return .failure(Rejection(.invalidField, "\(path) is required", field(path)))
    }
    guard case .string(let s) = v else {
      return .failure(
        Rejection(
          .invalidField, "\(path) must be a string of minor units, e.g. \"1050\"",
          field(path)))
    }
    guard let a = Amount.parseMinor(s) else {
      return .failure(
        Rejection(
          .invalidAmount, "\(path) \"\(s.prefix(48))\" is not an integer of minor units",
          field(path)))
    }
    return .success(a)
  }

  public static func metadata(_ v: JSONValue?) -> Result<Metadata, Rejection> {
    guard let v else { return .success(.empty) }
    guard case .object(let o) = v else {
      return .failure(Rejection(.invalidMetadata, "metadata must be an object of strings"))
    }
    var pairs = [(String, String)]()
    for (k, value) in o.members {
      guard case .string(let s) = value else {
        return .failure(
          Rejection(.invalidMetadata, "metadata values must be strings", ["key": k]))
      }
      pairs.append((k, s))
    }
    return Metadata.make(pairs)
  }

  public static func legs(_ v: JSONValue?) -> Result<[LegSpec], Rejection> {
    guard case .array(let items)? = v else {
      return .failure(Rejection(.invalidField, "legs must be an array", field("legs")))
    }
    if items.count > Limits.legsPerEntryMax {
      return .failure(
        Rejection(.tooManyLegs, "at most \(Limits.legsPerEntryMax) legs, got \(items.count)"))
    }
    var legs = [LegSpec]()
    legs.reserveCapacity(items.count)
    for (i, item) in items.enumerated() {
      let path = "legs[\(i)]."
      guard case .object(let o) = item else {
        return .failure(Rejection(.invalidField, "legs[\(i)] must be an object", field("legs")))
      }
      if let r = checkKeys(o, ["account", "side", "amount", "currency"], path) {
        return .failure(r)
      }
      let account: String
      switch string(o, "account", path, required: true) {
      case .failure(let r): return .failure(r)
      case .success(let s): account = s ?? ""
      }
      let side: Side
      switch string(o, "side", path, required: true) {
      case .failure(let r): return .failure(r)
      case .success(let s):
        guard let s, let parsed = Side(name: s) else {
          return .failure(
            Rejection(
              .invalidField, "\(path)side must be \"debit\" or \"credit\"",
              field(path + "side")))
        }
        side = parsed
      }
      let amount: Int128
      switch Self.amount(o["amount"], path + "amount") {
      case .failure(let r): return .failure(r)
      case .success(let a): amount = a
      }
      let currency: String?
      switch string(o, "currency", path, required: false) {
      case .failure(let r): return .failure(r)
      case .success(let c): currency = c
      }
      legs.append(LegSpec(account: account, side: side, amountMinor: amount, currency: currency))
    }
    return .success(legs)
  }

  public static func entry(_ o: JSONObject) -> Result<EntrySpec, Rejection> {
    if let r = checkKeys(o, ["id", "legs", "currency", "ref", "value_date", "metadata"], "") {
      return .failure(r)
    }
    do {
      let id = try string(o, "id", "", required: true).get() ?? ""
      let legs = try Self.legs(o["legs"]).get()
      let currency = try string(o, "currency", "", required: false).get()
      let ref = try string(o, "ref", "", required: false).get()
      var date: Int32?
      if let d = try string(o, "value_date", "", required: false).get() {
        guard let days = CivilTime.parseDate(d) else {
          return .failure(
            Rejection(.invalidField, "value_date must be YYYY-MM-DD", field("value_date")))
        }
        date = days
      }
      let md = try metadata(o["metadata"]).get()
      return .success(
        EntrySpec(
          id: id, legs: legs, currency: currency, ref: ref, valueDateDays: date, metadata: md))
    } catch {
      return .failure(error)
    }
  }
}
