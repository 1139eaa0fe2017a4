import TallyCore

/// JSON shapes of results, shared by the CLI's `--json` output and the server's responses.
/// Amounts are strings of integer minor units; field names are part of the contract.
public enum Views {
  static func s(_ v: String) -> JSONValue { .string(v) }
  static func n(_ v: some BinaryInteger) -> JSONValue { .number(String(v)) }
  static func amount(_ v: Int128) -> JSONValue { .string(String(v)) }

  public static func rejection(_ r: Rejection) -> JSONObject {
    JSONObject([
      (
        "error",
        .object(
          JSONObject([
            ("code", s(r.code.name)), ("message", s(r.message)),
            (
              "details",
              .object(
                JSONObject(r.details.sorted { $0.key < $1.key }.map { ($0.key, s($0.value)) }))
            ),
          ]))
      )
    ])
  }

  public static func outcome(_ o: Outcome) -> JSONObject {
    switch o {
    case .applied(let first, let count):
      JSONObject([("result", s("applied")), ("seq", n(first)), ("events", n(count))])
    case .duplicate(let seq):
      JSONObject([("result", s("duplicate")), ("seq", n(seq)), ("events", n(0))])
    case .rejected(let r):
      rejection(r)
    }
  }

  public static func metadata(_ m: Metadata) -> JSONValue {
    .object(JSONObject(m.pairs.map { ($0.key, s($0.value)) }))
  }

  /// `{"account","currency","scale","posted":{"debits","credits"},"pending":{…},"balance",
  /// "available","seq",…}`.
  public static func balance(_ v: AccountView) -> JSONObject {
    let a = v.record
    let b = v.balances
    let available = b.available(normal: a.normalSide).map(amount) ?? .null
    return JSONObject([
      ("account", s(a.name)), ("currency", s(a.currency)), ("scale", n(a.scale)),
      ("normal_side", s(a.normalSide.description)),
      (
        "posted",
        .object(
          JSONObject([("debits", amount(b.postedDebits)), ("credits", amount(b.postedCredits))]))
      ),
      (
        "pending",
        .object(
          JSONObject([("debits", amount(b.pendingDebits)), ("credits", amount(b.pendingCredits))]))
      ),
      ("balance", amount(b.balance(normal: a.normalSide))), ("available", available),
      ("seq", n(v.seq)),
    ])
  }

  public static func account(_ v: AccountView) -> JSONObject {
    let a = v.record
    var o = balance(v)
    o.members.insert(
      contentsOf: [
        ("partner", s(a.partner)),
        ("status", s(a.status == .open ? "open" : "closed")),
        ("no_overdraft", .bool(a.noOverdraft)),
        ("limit", a.limitMinor.map(amount) ?? .null),
        ("number", n(a.number)),
        ("opened_seq", n(a.openedSeq)),
        ("closed_seq", a.closedSeq == 0 ? .null : n(a.closedSeq)),
        ("metadata", metadata(a.metadata)),
      ], at: 1)
    return o
  }

  public static func legs(_ legs: [Leg]) -> JSONValue {
    .array(
      legs.map {
        .object(
          JSONObject([
            ("account", s($0.account)), ("side", s($0.side.description)),
            ("amount", amount($0.amountMinor)),
          ]))
      })
  }

  public static func hold(_ h: HoldRecord) -> JSONObject {
    JSONObject([
      ("id", s(h.id)), ("state", s(h.state.description)), ("legs", legs(h.legs)),
      ("deadline", h.deadlineNanos.map { s(CivilTime.formatTimestamp($0)) } ?? .null),
      ("placed_seq", n(h.placedSeq)),
      ("resolved_seq", h.resolvedSeq == 0 ? .null : n(h.resolvedSeq)),
      ("captured", .array(h.capturedMinor.map(amount))),
    ])
  }

  public static func event(_ e: Event) -> JSONObject {
    var o = JSONObject([
      ("seq", n(e.seq)), ("timestamp", s(CivilTime.formatTimestamp(e.timestampNanos))),
      ("timestamp_ns", n(e.timestampNanos)), ("type", s(e.body.type.description)),
    ])
    func opt(_ k: String, _ v: String?) { if let v { o.members.append((k, s(v))) } }
    switch e.body {
    case .partnerCreated(let p):
      o.members += [("id", s(p.id)), ("name", s(p.name)), ("metadata", metadata(p.metadata))]
    case .assetDeclared(let a):
      o.members += [("code", s(a.code)), ("scale", n(a.scale)), ("name", s(a.name))]
    case .accountOpened(let a):
      o.members += [
        ("account", s(a.name)), ("partner", s(a.partner)), ("currency", s(a.currency)),
        ("normal_side", s(a.normalSide.description)), ("no_overdraft", .bool(a.noOverdraft)),
        ("limit", a.limitMinor.map(amount) ?? .null), ("metadata", metadata(a.metadata)),
      ]
    case .accountClosed(let name):
      o.members.append(("account", s(name)))
    case .entryPosted(let p):
      o.members += [("id", s(p.id)), ("legs", legs(p.legs))]
      opt("ref", p.ref)
      opt("value_date", p.valueDateDays.map(CivilTime.formatDate))
      opt("reversal_of", p.reversalOf)
      o.members.append(("metadata", metadata(p.metadata)))
    case .holdPlaced(let h):
      o.members += [("id", s(h.id)), ("legs", legs(h.legs))]
      opt("ref", h.ref)
      opt("deadline", h.deadlineNanos.map(CivilTime.formatTimestamp))
      o.members.append(("metadata", metadata(h.metadata)))
    case .holdCaptured(let c):
      o.members += [("hold", s(c.holdId)), ("amounts", .array(c.amountsMinor.map(amount)))]
    case .holdReleased(let id), .holdExpired(let id):
      o.members.append(("hold", s(id)))
    case .reconImported(let r):
      o.members += [
        ("account", s(r.account)), ("statement", .object(reconHeader(r.header))),
        ("part", n(r.part)), ("parts", n(r.parts)),
        ("lines", .array(r.lines.map { .object(reconLine($0)) })),
      ]
    case .reconMatched(let m):
      o.members += [
        ("account", s(m.account)), ("matches", .array(m.matches.map { .object(reconMatch($0)) })),
      ]
    case .reconResolved(let r):
      o.members += [("item", n(r.item)), ("reason", s(r.reason)), ("by", s(r.by))]
      opt("entry", r.entry)
    case .reconUnmatched(let u):
      o.members.append(("item", n(u.item)))
      opt("reason", u.reason)
      o.members.append(("by", s(u.by)))
    }
    return o
  }

  static func date(_ d: Int32?) -> JSONValue { d.map { s(CivilTime.formatDate($0)) } ?? .null }

  public static func reconBalance(_ b: ReconBalance?) -> JSONValue {
    guard let b else { return .null }
    return .object(JSONObject([("amount", amount(b.amountMinor)), ("date", date(b.dateDays))]))
  }

  public static func reconHeader(_ h: ReconStatementHeader) -> JSONObject {
    JSONObject([
      ("format", s(h.format.description)), ("id", h.statementId.map(s) ?? .null),
      ("statement_account", h.statementAccount.map(s) ?? .null), ("currency", s(h.currency)),
      ("opening", reconBalance(h.opening)), ("closing", reconBalance(h.closing)),
      ("from", date(h.periodFromDays)), ("to", date(h.periodToDays)),
      ("lines_read", n(h.linesRead)), ("duplicates", n(h.duplicates)),
      ("text_encoding", h.textEncoding.map { s($0.description) } ?? .null),
    ])
  }

  public static func reconLine(_ l: ReconLine) -> JSONObject {
    JSONObject([
      ("source", s(l.source)), ("amount", amount(l.amountMinor)),
      // Null: the statement's (and account's) currency; else the line's own.
      ("currency", l.currency.map(s) ?? .null),
      ("direction", s(l.direction.description)), ("booking_date", date(l.bookingDateDays)),
      ("value_date", date(l.valueDateDays)), ("bank_ref", l.bankReference.map(s) ?? .null),
      ("end_to_end_id", l.endToEndId.map(s) ?? .null),
      ("reference", l.reference.map(s) ?? .null), ("remittance", l.remittance.map(s) ?? .null),
      ("identity", s(l.identity)),
    ])
  }

  public static func reconMatch(_ m: ReconMatch) -> JSONObject {
    var o = JSONObject([
      ("rule", s(m.rule.description)), ("state", s(m.state.description)),
      ("items", .array(m.items.map { n($0) })), ("entries", .array(m.entries.map(s))),
    ])
    if m.state == .discrepancy {
      o.members += [
        ("amount_difference", amount(m.amountDifferenceMinor)),
        ("currency_differs", .bool(m.currencyDiffers)),
        ("direction_differs", .bool(m.directionDiffers)),
      ]
    }
    return o
  }

  public static func statementLine(_ l: StatementLine) -> JSONObject {
    var o = JSONObject([
      ("seq", n(l.seq)), ("timestamp", s(CivilTime.formatTimestamp(l.timestampNanos))),
      ("type", s(l.type.description)), ("id", s(l.id)),
      (
        "posted",
        .object(
          JSONObject([
            ("debits", amount(l.delta.postedDebits)), ("credits", amount(l.delta.postedCredits)),
          ]))
      ),
      (
        "pending",
        .object(
          JSONObject([
            ("debits", amount(l.delta.pendingDebits)),
            ("credits", amount(l.delta.pendingCredits)),
          ]))
      ),
    ])
    if let ref = l.ref { o.members.append(("ref", s(ref))) }
    if let d = l.valueDateDays { o.members.append(("value_date", s(CivilTime.formatDate(d)))) }
    return o
  }

  /// An API key, without its secret: `{"key","role","partner","grants","created","revoked"}`.
  public static func key(
    id: String, role: String, partner: String?, grants: [String], createdNanos: Int64,
    revokedNanos: Int64?
  ) -> JSONObject {
    JSONObject([
      ("key", s(id)), ("role", s(role)), ("partner", partner.map(s) ?? .null),
      ("grants", .array(grants.map(s))),
      ("created", s(CivilTime.formatTimestamp(createdNanos))),
      ("revoked", revokedNanos.map { s(CivilTime.formatTimestamp($0)) } ?? .null),
    ])
  }

  /// `{"leaf_index","tree_size","leaf_hash","path":[hex…],"root"}` (hashes lowercase hex).
  public static func inclusionProof(
    leafIndex: UInt64, treeSize: UInt64, leafHash: String, path: [String], root: String
  ) -> JSONObject {
    JSONObject([
      ("leaf_index", n(leafIndex)), ("tree_size", n(treeSize)), ("leaf_hash", s(leafHash)),
      ("path", .array(path.map(s))), ("root", s(root)),
    ])
  }

  /// `{"from","to","path":[hex…],"root_from","root_to"}`.
  public static func consistencyProof(
    from: UInt64, to: UInt64, path: [String], rootFrom: String, rootTo: String
  ) -> JSONObject {
    JSONObject([
      ("from", n(from)), ("to", n(to)), ("path", .array(path.map(s))),
      ("root_from", s(rootFrom)), ("root_to", s(rootTo)),
    ])
  }

  /// `{"size","root","chain","note"}`: a signed checkpoint, hashes in hex, the note as text.
  public static func checkpoint(size: UInt64, root: String, chain: String, note: String)
    -> JSONObject
  {
    JSONObject([("size", n(size)), ("root", s(root)), ("chain", s(chain)), ("note", s(note))])
  }
}
