import TallyCore
import TallyCrypto
import TallyProtocol
import TallyStore

/// Turns requests into response lines: reads (run on the read threads, in LMDB read
/// transactions) and the formatting of write results (run on the event loop).
enum Execute {
  static func n(_ v: some BinaryInteger) -> JSONValue { .number(String(v)) }
  static func s(_ v: String) -> JSONValue { .string(v) }
  static func opt(_ v: String?) -> JSONValue { v.map { .string($0) } ?? .null }

  static func accountNotFound(_ name: String) -> WireError {
    WireError(Rejection(.accountNotFound, "account \(name) does not exist", ["account": name]))
  }

  static func key(_ k: KeyRecord) -> JSONObject {
    Views.key(
      id: k.id, role: k.role.rawValue, partner: k.partner, grants: k.grants,
      createdNanos: k.createdNanos, revokedNanos: k.revokedNanos)
  }

  static func partner(_ p: PartnerRecord) -> JSONObject {
    JSONObject([
      ("id", s(p.id)), ("name", s(p.name)), ("metadata", Views.metadata(p.metadata)),
      ("created_seq", n(p.createdSeq)),
    ])
  }

  static func receipt(id: String, _ r: Receipt) -> JSONObject {
    JSONObject([
      ("id", s(id)), ("seq", n(r.seq)), ("ts", n(r.timestampNanos)), ("chain", s(r.chain.hex)),
    ])
  }

  /// A read, as `principal`, answered from one snapshot.
  static func read(
    _ request: Request, _ p: Principal?, _ reader: LedgerReader, _ server: ServerInfo
  ) throws(StoreError) -> String {
    let scope = p?.scope
    /// The account, if the caller may see it.
    func visibleAccount(_ name: String) throws(StoreError) -> AccountView? {
      guard let v = try reader.account(name) else { return nil }
      if let scope, !scope.canRead(v.record) { return nil }
      return v
    }
    switch request {
    case .ping:
      return WireOK.line(JSONObject([("pong", .bool(true))]))
    case .keyList:
      return WireOK.line(JSONObject([("keys", .array(try reader.keys().map { .object(key($0)) }))]))
    case .partnerGet(let id):
      guard scope == nil || scope?.partner == id, let rec = try reader.partner(id) else {
        return WireError(
          Rejection(.partnerNotFound, "partner \(id) does not exist", ["partner": id])
        ).line
      }
      return WireOK.line(partner(rec))
    case .partnerList(let after, let limit):
      var items: [PartnerRecord]
      if let scope {
        let own = try reader.partner(scope.partner)
        items = own.map { [$0] } ?? []
        if let after { items = items.filter { $0.id > after } }
      } else {
        items = try reader.partners(after: after, limit: limit)
      }
      let next = items.count == limit ? items.last?.id : nil
      return WireOK.line(
        JSONObject([("partners", .array(items.map { .object(partner($0)) })), ("next", opt(next))]))
    case .accountGet(let name):
      guard let v = try visibleAccount(name) else { return accountNotFound(name).line }
      return WireOK.line(Views.account(v))
    case .accountList(let partnerFilter, let after, let limit):
      var filter = partnerFilter
      if let scope {
        if let f = partnerFilter, f != scope.partner {
          return WireError(
            Rejection(.partnerNotFound, "partner \(f) does not exist", ["partner": f])
          ).line
        }
        filter = scope.partner
      }
      let views = try reader.accounts(after: after, limit: limit, partner: filter)
      let next = views.count == limit ? views.last?.record.name : nil
      return WireOK.line(
        JSONObject([
          ("accounts", .array(views.map { .object(Views.account($0)) })), ("next", opt(next)),
        ]))
    case .balanceGet(let name, let asOf):
      guard try visibleAccount(name) != nil, let v = try reader.balance(name, asOfSeq: asOf)
      else { return accountNotFound(name).line }
      return WireOK.line(Views.balance(v))
    case .statementGet(let name, let from, let to, let limit):
      guard try visibleAccount(name) != nil,
        let st = try reader.statement(name, fromSeq: from, toSeq: to, limit: limit)
      else { return accountNotFound(name).line }
      return WireOK.line(
        JSONObject([
          ("account", .object(Views.balance(st.account))),
          ("lines", .array(st.lines.map { .object(Views.statementLine($0)) })),
          ("next", st.next.map { n($0) } ?? .null),
        ]))
    case .entryGet(let id):
      let notFound = WireError(
        Rejection(.entryNotFound, "entry \(id) does not exist", ["entry": id]))
      guard let rec = try reader.idRecord(id), rec.kind == .entry else { return notFound.line }
      if let scope, try !reader.visible(id: id, to: scope) { return notFound.line }
      guard let log = try reader.log(fromSeq: rec.seq, limit: 1).first, log.event.seq == rec.seq
      else { throw StoreError.corrupt("entry \(id) points at a missing seq \(rec.seq)") }
      var o = Views.event(log.event)
      o.members.append(("chain", s(log.chain.hex)))
      o.members.append(("reversed_by_seq", rec.reversedBySeq == 0 ? .null : n(rec.reversedBySeq)))
      return WireOK.line(o)
    case .logHead:
      let h = try reader.currentHead()
      return WireOK.line(
        JSONObject([("seq", n(h.seq)), ("ts", n(h.timestampNanos)), ("chain", s(h.chain.hex))]))
    case .logRead(let from, let limit):
      let records = try reader.log(fromSeq: from, limit: limit)
      let head = try reader.currentHead()
      let last = records.last?.event.seq ?? 0
      return WireOK.line(
        JSONObject([
          (
            "events",
            .array(
              records.map { r in
                .object(
                  JSONObject([
                    ("seq", n(r.event.seq)), ("ts", n(r.event.timestampNanos)),
                    ("type", s(r.event.body.type.description)), ("bytes", s(r.bytes.hex)),
                    ("leaf", s(r.leaf.hex)), ("chain", s(r.chain.hex)),
                  ]))
              })
          ),
          ("next", records.count == limit && last < head.seq ? n(last + 1) : .null),
        ]))
    case .proofInclusion(let seq, let size):
      switch try reader.inclusionProof(seq: seq, size: size) {
      case .failure(.outOfRange(let why)):
        return WireError(.notFound, why, reason: "OUT_OF_RANGE").line
      case .success(let p):
        return WireOK.line(
          Views.inclusionProof(
            leafIndex: p.leafIndex, treeSize: p.treeSize, leafHash: p.leafHash.hex,
            path: p.path.map(\.hex), root: p.root.hex))
      }
    case .proofConsistency(let from, let to):
      switch try reader.consistencyProof(from: from, to: to) {
      case .failure(.outOfRange(let why)):
        return WireError(.notFound, why, reason: "OUT_OF_RANGE").line
      case .success(let p):
        return WireOK.line(
          Views.consistencyProof(
            from: p.from, to: p.to, path: p.path.map(\.hex), rootFrom: p.rootFrom.hex,
            rootTo: p.rootTo.hex))
      }
    case .checkpointGet(let size):
      switch try reader.checkpoint(size: size) {
      case nil:
        return WireError(.internal, "the ledger has no signing key").line
      case .failure(.outOfRange(let why))?:
        return WireError(.notFound, why, reason: "OUT_OF_RANGE").line
      case .success(let c)?:
        return WireOK.line(
          Views.checkpoint(size: c.size, root: c.root.hex, chain: c.chain.hex, note: c.note))
      }
    case .checkpointList(let after, let limit):
      let kept = try reader.checkpoints(after: after, limit: limit)
      return WireOK.line(
        JSONObject([
          (
            "checkpoints",
            .array(kept.map { .object(JSONObject([("size", n($0.0)), ("note", s($0.1))])) })
          ),
          ("next", kept.count == limit ? kept.last.map { n($0.0) } ?? .null : .null),
        ]))
    case .stats:
      let st = try reader.stats()
      return WireOK.line(
        JSONObject([
          (
            "head",
            .object(
              JSONObject([
                ("seq", n(st.head.seq)), ("ts", n(st.head.timestampNanos)),
                ("chain", s(st.head.chain.hex)),
              ]))
          ),
          ("format_version", n(st.formatVersion)),
          ("counts", .object(JSONObject(st.counts.map { ($0.name, n($0.entries)) }))),
          ("map_bytes", n(st.mapBytes)), ("used_bytes", n(st.usedBytes)),
          ("server", .object(server.snapshot())),
          (
            "stream",
            server.replication.stream.withLock { $0 }.map { .object($0.snapshot()) } ?? .null
          ),
          (
            "replica",
            server.replication.replica.withLock { $0 }.map { .object($0.snapshot()) } ?? .null
          ),
        ]))
    case .partnerView(let id, let after, let limit, let asOf):
      // A service key sees its own partner: any other is answered as if it did not exist.
      let wanted = id ?? scope?.partner
      guard let wanted else {
        return WireError(
          .badRequest, "PARTNER.VIEW needs id", reason: "INVALID_FIELD", details: ["field": "id"]
        ).line
      }
      let notFound = WireError(
        Rejection(.partnerNotFound, "partner \(wanted) does not exist", ["partner": wanted]))
      if let scope, scope.partner != wanted { return notFound.line }
      guard let v = try reader.partnerView(wanted, after: after, limit: limit, asOfSeq: asOf)
      else { return notFound.line }
      return WireOK.line(Views.partnerView(v))
    case .reconStatus(let name):
      guard let st = try reader.reconStatus(name) else { return accountNotFound(name).line }
      return WireOK.line(Views.reconStatus(st))
    case .reconItems(let name, let filter, let after, let limit):
      switch filter {
      case .missingFromStatement:
        guard let page = try reader.reconMissing(name, after: after, limit: limit) else {
          return accountNotFound(name).line
        }
        return WireOK.line(
          Views.reconItemsPage(
            account: name, page.postings.map(Views.missingPosting), next: page.next))
      case .all, .state:
        var state: ReconState?
        if case .state(let st) = filter { state = st }
        guard let page = try reader.reconItems(name, state: state, after: after, limit: limit)
        else { return accountNotFound(name).line }
        return WireOK.line(
          Views.reconItemsPage(account: name, page.items.map(Views.reconItem), next: page.next))
      }
    default:
      preconditionFailure("write request routed to the read path")
    }
  }

  /// The response to a single-command write (everything but ENTRY.BATCH and keys).
  static func writeLine(_ request: Request, _ outcome: Outcome, _ receipt: Receipt?) -> String {
    switch outcome {
    case .rejected(let r): return WireError(r).line
    case .applied, .duplicate:
      return WireOK.line(writeBody(request, outcome, receipt))
    }
  }

  static func writeBody(_ request: Request, _ outcome: Outcome, _ receipt: Receipt?)
    -> JSONObject
  {
    switch request {
    case .partnerCreate(let p): return seqBody("id", p.id, outcome)
    case .accountOpen(let a, _): return seqBody("account", a.name, outcome)
    case .accountClose(let name): return seqBody("account", name, outcome)
    case .reconResolve(let item, _, _), .reconUnmatch(let item, _):
      return JSONObject([("item", n(item)), ("seq", seq(outcome).map { n($0) } ?? .null)])
    default:
      let id: String
      switch request {
      case .entryPost(let e): id = e.id
      case .entryReverse(let r): id = r.id
      case .holdPlace(let h, _): id = h.id
      case .holdCapture(let c): id = c.holdId
      case .holdRelease(let h): id = h
      default: preconditionFailure("not a single-command write")
      }
      guard let receipt else { return seqBody("id", id, outcome) }
      return Self.receipt(id: id, receipt)
    }
  }

  /// Where a single-command write landed (nil: it appended nothing).
  static func seq(_ o: Outcome) -> UInt64? {
    switch o {
    case .applied(let first, let count): count > 0 ? first : nil
    case .duplicate(let s): s
    case .rejected: nil
    }
  }

  static func seqBody(_ k: String, _ v: String, _ o: Outcome) -> JSONObject {
    JSONObject([(k, s(v)), ("seq", seq(o).map { n($0) } ?? .null)])
  }
}
