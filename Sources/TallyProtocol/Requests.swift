import TallyCore

/// One parsed request line. Bodies are validated for shape here (pure, fuzzable); rules
/// that need the ledger's state run in the engine.
public enum Request: Sendable {
  case ping
  case quit
  case auth(key: String, mac: String)
  case keyCreate(role: String, partner: String?, grants: [String])
  case keyRevoke(key: String)
  case keyList
  case partnerCreate(PartnerCreated)
  case partnerGet(id: String)
  case partnerList(after: String?, limit: Int)
  /// `partnerGiven` is false when the body named no partner: the platform for most keys,
  /// the key's own partner for a service key.
  case accountOpen(AccountOpened, partnerGiven: Bool)
  case accountGet(name: String)
  case accountClose(name: String)
  case accountList(partner: String?, after: String?, limit: Int)
  case entryPost(EntrySpec)
  /// Each entry decoded on its own: a malformed entry fails alone, the others still run.
  case entryBatch([Result<EntrySpec, Rejection>])
  case entryGet(id: String)
  case entryReverse(ReverseSpec)
  /// `ttlMillis` (instead of a deadline) becomes a deadline when the writer places the hold
  /// (`HoldSpec.ttlNanos`).
  case holdPlace(HoldSpec, ttlMillis: Int64?)
  case holdCapture(CaptureSpec)
  case holdRelease(id: String)
  case balanceGet(account: String, asOfSeq: UInt64?)
  /// `fromSeq` is the cursor: the `next` of the previous page.
  case statementGet(account: String, fromSeq: UInt64, toSeq: UInt64, limit: Int)
  case logHead
  case logRead(fromSeq: UInt64, limit: Int)
  /// Audit path of the event at `seq` in the tree of `size` events (nil: the head).
  case proofInclusion(seq: UInt64, size: UInt64?)
  case proofConsistency(from: UInt64, to: UInt64)
  /// A signed checkpoint of the tree of `size` events (nil: the head).
  case checkpointGet(size: UInt64?)
  /// Kept checkpoints (signed by the server on its interval) after size `after`.
  case checkpointList(after: UInt64, limit: Int)
  case stats
  /// One page of a partner's whole picture (nil partner: a service key's own).
  case partnerView(partner: String?, after: String?, limit: Int, asOfSeq: UInt64?)
  /// A statement file, its content inline (the request line limit bounds it).
  case reconImport(ReconImportRequest)
  case reconStatus(account: String)
  case reconItems(account: String, filter: ReconItemsFilter, after: UInt64, limit: Int)
  /// `by` is never taken from the request: the server records the key that asked.
  case reconResolve(item: UInt64, reason: String, entry: String?)
  case reconUnmatch(item: UInt64, reason: String?)
  /// Turns a caught-up read replica into the primary (docs/REPLICATION.md, "Fail-over").
  case replicaPromote

  /// Whether the request changes the ledger (goes through the writer).
  public var isWrite: Bool {
    switch self {
    case .keyCreate, .keyRevoke, .partnerCreate, .accountOpen, .accountClose, .entryPost,
      .entryBatch, .entryReverse, .holdPlace, .holdCapture, .holdRelease, .reconImport,
      .reconResolve, .reconUnmatch:
      true
    default: false
    }
  }
}

/// Which items `RECON.ITEMS` lists.
public enum ReconItemsFilter: Sendable, Equatable {
  case all
  case state(ReconState)
  /// Postings of the covered period that no statement line matches (paged by seq).
  case missingFromStatement
}

/// Limits of the request grammar (docs/PROTOCOL.md, "Limits").
public enum ProtocolLimits {
  /// Longest verb: `ACCOUNT.CLOSE` is 13; 32 leaves room without scanning garbage far.
  public static let verbBytesMax = 32
  /// Entries in one `ENTRY.BATCH` by default (a server flag may lower or raise it up to
  /// `Limits.commandsPerBatchMax`): 10,000 two-leg entries are about 1.3 MB of JSON.
  public static let batchEntriesDefault = 10_000
  /// Hold TTLs up to ten years.
  public static let holdTTLMillisMax: Int64 = 10 * 365 * 86_400 * 1000
}

public enum RequestParser {
  /// Parses one line (without its newline; a trailing CR is tolerated).
  public static func parse(_ line: some Collection<UInt8>, batchEntriesMax: Int)
    -> Result<Request, WireError>
  {
    var bytes = Array(line)
    if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
    if bytes.isEmpty { return .failure(WireError(.badRequest, "empty request line")) }
    guard String(validating: bytes, as: UTF8.self) != nil else {
      return .failure(
        WireError(.badRequest, "request line is not valid UTF-8", reason: "INVALID_UTF8"))
    }
    let space = bytes.firstIndex(of: UInt8(ascii: " ")) ?? bytes.count
    let verbBytes = bytes[0..<space]
    if verbBytes.isEmpty {
      return .failure(
        WireError(.badRequest, "a request starts with its verb", reason: "MISSING_VERB"))
    }
    guard verbBytes.count <= ProtocolLimits.verbBytesMax,
      verbBytes.allSatisfy({ ($0 >= 0x41 && $0 <= 0x5a) || $0 == 0x2e })
    else {
      return .failure(
        WireError(
          .unknownVerb, "unknown verb \(String(decoding: verbBytes.prefix(32), as: UTF8.self))"))
    }
    let verb = String(decoding: verbBytes, as: UTF8.self)
    var body: JSONObject?
    if space < bytes.count {
      // The line limit already bounds the bytes; members must fit the largest batch.
      // A statement travels as one string: only RECON.IMPORT may carry one that long.
      let limits = JSONLimits(
        maxBytes: bytes.count,
        maxStringBytes: verb == "RECON.IMPORT"
          ? max(bytes.count, JSONLimits.default.maxStringBytes)
          : JSONLimits.default.maxStringBytes,
        maxMembers: max(JSONLimits.default.maxMembers, batchEntriesMax))
      switch CommandDecoding.object(bytes[(space + 1)...], limits: limits) {
      case .failure(let r): return .failure(WireError(r))
      case .success(let o): body = o
      }
    }
    return parse(verb: verb, body: body, batchEntriesMax: batchEntriesMax)
  }

  static func parse(verb: String, body: JSONObject?, batchEntriesMax: Int)
    -> Result<Request, WireError>
  {
    let b = Body(verb: verb, object: body ?? JSONObject())
    do {
      switch verb {
      case "PING": try b.only([]); return .success(.ping)
      case "QUIT": try b.only([]); return .success(.quit)
      case "AUTH":
        try b.only(["key", "mac"])
        return .success(.auth(key: try b.string("key"), mac: try b.string("mac")))
      case "KEY.CREATE":
        try b.only(["role", "partner", "grants"])
        return .success(
          .keyCreate(
            role: try b.string("role"), partner: try b.optString("partner"),
            grants: try b.stringArray("grants", max: 64)))
      case "KEY.REVOKE":
        try b.only(["key"])
        return .success(.keyRevoke(key: try b.string("key")))
      case "KEY.LIST": try b.only([]); return .success(.keyList)
      case "PARTNER.CREATE":
        try b.only(["id", "name", "metadata"])
        return .success(
          .partnerCreate(
            PartnerCreated(
              id: try b.string("id"), name: try b.string("name"), metadata: try b.metadata())))
      case "PARTNER.GET":
        try b.only(["id"])
        return .success(.partnerGet(id: try b.string("id")))
      case "PARTNER.LIST":
        try b.only(["after", "limit"])
        return .success(.partnerList(after: try b.optString("after"), limit: try b.limit()))
      case "ACCOUNT.OPEN":
        try b.only([
          "account", "partner", "currency", "normal", "no_overdraft", "limit", "metadata",
        ])
        let normal = try b.optString("normal") ?? "debit"
        guard let side = Side(name: normal) else {
          throw WireError(
            .badRequest, "normal must be \"debit\" or \"credit\"", reason: "INVALID_FIELD",
            details: ["field": "normal"])
        }
        var limit: Int128?
        if b.object["limit"] != nil {
          switch CommandDecoding.amount(b.object["limit"], "limit") {
          case .failure(let r): throw WireError(r)
          case .success(let v): limit = v
          }
        }
        let partner = try b.optString("partner")
        return .success(
          .accountOpen(
            AccountOpened(
              name: try b.string("account"), partner: partner ?? Machine.platformPartner,
              currency: try b.string("currency"), normalSide: side,
              noOverdraft: try b.optBool("no_overdraft") ?? false, limitMinor: limit,
              metadata: try b.metadata()),
            partnerGiven: partner != nil))
      case "ACCOUNT.GET":
        try b.only(["account"])
        return .success(.accountGet(name: try b.string("account")))
      case "ACCOUNT.CLOSE":
        try b.only(["account"])
        return .success(.accountClose(name: try b.string("account")))
      case "ACCOUNT.LIST":
        try b.only(["partner", "after", "limit"])
        return .success(
          .accountList(
            partner: try b.optString("partner"), after: try b.optString("after"),
            limit: try b.limit()))
      case "ENTRY.POST":
        switch CommandDecoding.entry(b.object) {
        case .failure(let r): throw WireError(r)
        case .success(let e): return .success(.entryPost(e))
        }
      case "ENTRY.BATCH":
        try b.only(["entries"])
        guard case .array(let items)? = b.object["entries"] else {
          throw b.fieldError("entries", "entries must be an array of entry objects")
        }
        if items.isEmpty { throw b.fieldError("entries", "entries is empty") }
        if items.count > batchEntriesMax {
          throw WireError(
            .tooLarge, "at most \(batchEntriesMax) entries per batch, got \(items.count)",
            details: ["limit": String(batchEntriesMax)])
        }
        return .success(
          .entryBatch(
            items.map { item in
              guard case .object(let o) = item else {
                return .failure(Rejection(.invalidField, "each entry must be a JSON object"))
              }
              return CommandDecoding.entry(o)
            }))
      case "ENTRY.GET":
        try b.only(["id"])
        return .success(.entryGet(id: try b.string("id")))
      case "ENTRY.REVERSE":
        try b.only(["id", "entry", "metadata"])
        return .success(
          .entryReverse(
            ReverseSpec(
              id: try b.string("id"), entryId: try b.string("entry"), metadata: try b.metadata())
          ))
      case "HOLD.PLACE":
        try b.only(["id", "legs", "currency", "ref", "deadline", "ttl_ms", "metadata"])
        let legs: [LegSpec]
        switch CommandDecoding.legs(b.object["legs"]) {
        case .failure(let r): throw WireError(r)
        case .success(let l): legs = l
        }
        var deadline: Int64?
        if let d = try b.optString("deadline") {
          guard let ns = CivilTime.parseTimestamp(d) else {
            throw b.fieldError(
              "deadline", "deadline must be RFC 3339 UTC, e.g. 2026-12-01T00:00:00Z")
          }
          deadline = ns
        }
        let ttl = try b.optUInt("ttl_ms", max: UInt64(ProtocolLimits.holdTTLMillisMax))
        if deadline != nil && ttl != nil {
          throw b.fieldError("ttl_ms", "give deadline or ttl_ms, not both")
        }
        if ttl == 0 { throw b.fieldError("ttl_ms", "ttl_ms must be at least 1") }
        return .success(
          .holdPlace(
            HoldSpec(
              id: try b.string("id"), legs: legs, currency: try b.optString("currency"),
              ref: try b.optString("ref"), deadlineNanos: deadline, metadata: try b.metadata()),
            ttlMillis: ttl.map { Int64($0) }))
      case "HOLD.CAPTURE":
        try b.only(["id", "amount", "amounts"])
        var amounts = CaptureSpec.Amounts.full
        if b.object["amount"] != nil && b.object["amounts"] != nil {
          throw b.fieldError("amounts", "give amount or amounts, not both")
        }
        if b.object["amount"] != nil {
          switch CommandDecoding.amount(b.object["amount"], "amount") {
          case .failure(let r): throw WireError(r)
          case .success(let v): amounts = .uniform(v)
          }
        } else if let v = b.object["amounts"] {
          guard case .array(let items) = v, items.count <= Limits.legsPerEntryMax else {
            throw b.fieldError("amounts", "amounts must be an array of amount strings")
          }
          var out = [Int128]()
          for (i, item) in items.enumerated() {
            switch CommandDecoding.amount(item, "amounts[\(i)]") {
            case .failure(let r): throw WireError(r)
            case .success(let a): out.append(a)
            }
          }
          amounts = .perLeg(out)
        }
        return .success(.holdCapture(CaptureSpec(holdId: try b.string("id"), amounts: amounts)))
      case "HOLD.RELEASE":
        try b.only(["id"])
        return .success(.holdRelease(id: try b.string("id")))
      case "BALANCE.GET":
        try b.only(["account", "as_of_seq"])
        return .success(
          .balanceGet(account: try b.string("account"), asOfSeq: try b.optUInt("as_of_seq")))
      case "STATEMENT.GET":
        try b.only(["account", "from_seq", "to_seq", "cursor", "limit"])
        let cursor = try b.optUInt("cursor")
        let from = try b.optUInt("from_seq")
        if cursor != nil && from != nil {
          throw b.fieldError("cursor", "give from_seq or cursor, not both")
        }
        return .success(
          .statementGet(
            account: try b.string("account"), fromSeq: cursor ?? from ?? 1,
            toSeq: try b.optUInt("to_seq") ?? UInt64.max, limit: try b.limit()))
      case "LOG.HEAD": try b.only([]); return .success(.logHead)
      case "LOG.READ":
        try b.only(["from_seq", "limit"])
        return .success(.logRead(fromSeq: try b.optUInt("from_seq") ?? 1, limit: try b.limit()))
      case "PROOF.INCLUSION":
        try b.only(["seq", "size"])
        guard let seq = try b.optUInt("seq") else { throw b.fieldError("seq", "seq is required") }
        return .success(.proofInclusion(seq: seq, size: try b.optUInt("size")))
      case "PROOF.CONSISTENCY":
        try b.only(["from", "to"])
        guard let from = try b.optUInt("from") else {
          throw b.fieldError("from", "from is required")
        }
        guard let to = try b.optUInt("to") else { throw b.fieldError("to", "to is required") }
        return .success(.proofConsistency(from: from, to: to))
      case "CHECKPOINT.GET":
        try b.only(["size"])
        return .success(.checkpointGet(size: try b.optUInt("size")))
      case "CHECKPOINT.LIST":
        try b.only(["after", "limit"])
        return .success(.checkpointList(after: try b.optUInt("after") ?? 0, limit: try b.limit()))
      case "STATS": try b.only([]); return .success(.stats)
      case "PARTNER.VIEW":
        try b.only(["id", "after", "limit", "as_of_seq"])
        return .success(
          .partnerView(
            partner: try b.optString("id"), after: try b.optString("after"),
            limit: try b.limit(), asOfSeq: try b.optUInt("as_of_seq")))
      case "RECON.IMPORT":
        try b.only([
          "account", "format", "statement", "statement_base64", "tolerance_days", "map",
          "encoding",
        ])
        let name = try b.string("format")
        guard let format = ReconFormat(name: name) else {
          throw b.fieldError("format", "format must be csv, camt053, camt054 or mt940")
        }
        let statement: [UInt8]
        switch (try b.optString("statement"), try b.optString("statement_base64")) {
        case (let text?, nil): statement = Array(text.utf8)
        case (nil, let encoded?):
          guard let bytes = Base64.decode(encoded) else {
            throw b.fieldError("statement_base64", "statement_base64 is not canonical base64")
          }
          statement = bytes
        case (nil, nil): throw b.fieldError("statement", "statement is required")
        case (.some, .some):
          throw b.fieldError("statement_base64", "give statement or statement_base64, not both")
        }
        if statement.isEmpty { throw b.fieldError("statement", "statement is empty") }
        let tolerance = try b.optUInt("tolerance_days", max: UInt64(Limits.reconToleranceDaysMax))
        var encoding: ReconTextEncoding?
        if let e = try b.optString("encoding") {
          guard let known = ReconTextEncoding(name: e) else {
            throw b.fieldError("encoding", "encoding must be utf-8, iso-8859-1 or windows-1252")
          }
          encoding = known
        }
        let map = try b.reconMap()
        let account = try b.optString("account")
        if account == nil && map.isEmpty {
          throw b.fieldError("account", "account is required unless map is given")
        }
        return .success(
          .reconImport(
            ReconImportRequest(
              account: account, format: format, statement: statement,
              toleranceDays: tolerance.map { Int32($0) } ?? Limits.reconToleranceDaysDefault,
              map: map, encoding: encoding)))
      case "RECON.STATUS":
        try b.only(["account"])
        return .success(.reconStatus(account: try b.string("account")))
      case "RECON.ITEMS":
        try b.only(["account", "state", "after", "limit"])
        var filter = ReconItemsFilter.all
        if let name = try b.optString("state") {
          if name == "missing_from_statement" {
            filter = .missingFromStatement
          } else if let st = ReconState(name: name) {
            filter = .state(st)
          } else {
            throw b.fieldError(
              "state",
              "state must be unmatched, matched, discrepancy, resolved or missing_from_statement")
          }
        }
        return .success(
          .reconItems(
            account: try b.string("account"), filter: filter, after: try b.optUInt("after") ?? 0,
            limit: try b.limit()))
      case "RECON.RESOLVE":
        try b.only(["item", "reason", "entry"])
        guard let item = try b.optUInt("item") else {
          throw b.fieldError("item", "item is required")
        }
        return .success(
          .reconResolve(item: item, reason: try b.string("reason"), entry: try b.optString("entry"))
        )
      case "RECON.UNMATCH":
        try b.only(["item", "reason"])
        guard let item = try b.optUInt("item") else {
          throw b.fieldError("item", "item is required")
        }
        return .success(.reconUnmatch(item: item, reason: try b.optString("reason")))
      case "REPLICA.PROMOTE": try b.only([]); return .success(.replicaPromote)
      default:
        throw WireError(.unknownVerb, "unknown verb \(verb)")
      }
    } catch let e as WireError {
      return .failure(e)
    } catch {
      return .failure(WireError(.internal, "\(error)"))
    }
  }

  /// Field access with errors that name the field.
  struct Body {
    let verb: String
    let object: JSONObject

    func fieldError(_ f: String, _ message: String) -> WireError {
      WireError(.badRequest, message, reason: "INVALID_FIELD", details: ["field": f])
    }

    func only(_ allowed: Set<String>) throws(WireError) {
      for k in object.keys where !allowed.contains(k) {
        throw fieldError(k, "\(verb) takes no field \(k)")
      }
    }

    func optString(_ f: String) throws(WireError) -> String? {
      guard let v = object[f] else { return nil }
      guard case .string(let s) = v else { throw fieldError(f, "\(f) must be a string") }
      return s
    }

    func string(_ f: String) throws(WireError) -> String {
      guard let s = try optString(f) else { throw fieldError(f, "\(f) is required") }
      return s
    }

    func optBool(_ f: String) throws(WireError) -> Bool? {
      guard let v = object[f] else { return nil }
      guard case .bool(let x) = v else { throw fieldError(f, "\(f) must be true or false") }
      return x
    }

    /// A non-negative JSON integer (counts and seqs travel as numbers; amounts never do).
    func optUInt(_ f: String, max: UInt64 = UInt64.max) throws(WireError) -> UInt64? {
      guard let v = object[f] else { return nil }
      guard case .number(let text) = v, let n = UInt64(text), n <= max else {
        throw fieldError(f, "\(f) must be an integer 0…\(max)")
      }
      return n
    }

    func limit() throws(WireError) -> Int {
      guard let n = try optUInt("limit") else { return Limits.pageLimitDefault }
      guard n >= 1 && n <= UInt64(Limits.pageLimitMax) else {
        throw fieldError("limit", "limit must be 1…\(Limits.pageLimitMax)")
      }
      return Int(n)
    }

    /// RECON.IMPORT's `map`: an object of statement account identifiers (IBAN or other id)
    /// to ledger accounts; identifiers are compared without spaces and case, and one given
    /// twice that way is refused.
    func reconMap() throws(WireError) -> [String: String] {
      guard let v = object["map"] else { return [:] }
      guard case .object(let o) = v, o.members.count <= Limits.reconStatementsPerImportMax
      else {
        throw fieldError(
          "map", "map must be an object of at most \(Limits.reconStatementsPerImportMax) members")
      }
      var map = [String: String]()
      for (id, account) in o.members {
        guard case .string(let name) = account, !id.isEmpty else {
          throw fieldError("map", "map takes identifier: account name (a string)")
        }
        guard map.updateValue(name, forKey: Machine.normalisedIBAN(id)) == nil else {
          throw fieldError("map", "map names \(id.prefix(64)) twice")
        }
      }
      return map
    }

    func stringArray(_ f: String, max: Int) throws(WireError) -> [String] {
      guard let v = object[f] else { return [] }
      guard case .array(let items) = v, items.count <= max else {
        throw fieldError(f, "\(f) must be an array of at most \(max) strings")
      }
      var out = [String]()
      for item in items {
        guard case .string(let s) = item else { throw fieldError(f, "\(f) must hold strings") }
        out.append(s)
      }
      return out
    }

    func metadata() throws(WireError) -> Metadata {
      switch CommandDecoding.metadata(object["metadata"]) {
      case .failure(let r): throw WireError(r)
      case .success(let m): return m
      }
    }
  }
}

/// What `RECON.IMPORT` carries: a statement file and how to import it, as `tally recon import`
/// on a data directory takes them.
public struct ReconImportRequest: Equatable, Sendable {
  /// The account for statements `map` does not name (nil: only mapped ones are imported).
  public var account: String?
  public var format: ReconFormat
  /// The file's bytes: `statement` (UTF-8 text) or `statement_base64` (any bytes).
  public var statement: [UInt8]
  public var toleranceDays: Int32
  /// Statement account identifier (normalised: no spaces, upper case) → ledger account.
  public var map: [String: String]
  /// How to read the bytes as text (nil: the format's default).
  public var encoding: ReconTextEncoding?

  public init(
    account: String?, format: ReconFormat, statement: [UInt8], toleranceDays: Int32,
    map: [String: String] = [:], encoding: ReconTextEncoding? = nil
  ) {
    self.account = account
    self.format = format
    self.statement = statement
    self.toleranceDays = toleranceDays
    self.map = map
    self.encoding = encoding
  }
}
