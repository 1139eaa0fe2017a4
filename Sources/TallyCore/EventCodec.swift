/// The canonical binary encoding of events, byte for byte as in docs/FORMAT.md.
/// Hashes cover exactly these bytes, so encoding must be deterministic and decoding strict:
/// any byte sequence that is not the canonical encoding of some event is refused.
public enum EventCodec {
  /// Format version, the first byte of every event.
  public static let version: UInt8 = 1
  /// The version of a `recon_imported` event that records its text encoding, lines in
  /// another currency and camt.054 (docs/FORMAT.md); every other type is version 1 only.
  public static let reconImportedVersion: UInt8 = 2

  /// The version byte `body` is written with.
  static func version(of body: EventBody) -> UInt8 {
    if case .reconImported(let r) = body, r.header.textEncoding != nil {
      return reconImportedVersion
    }
    return version
  }
  /// version(1) + type(1) + seq(8) + timestamp(8).
  public static let headerBytes = 18

  public static func encode(_ event: Event) -> [UInt8] {
    var w = ByteWriter(capacity: 160)
    encode(event, into: &w)
    return w.bytes
  }

  public static func encode(_ event: Event, into w: inout ByteWriter) {
    let v = version(of: event.body)
    w.u8(v)
    w.u8(event.body.type.rawValue)
    w.u64(event.seq)
    w.i64(event.timestampNanos)
    switch event.body {
    case .partnerCreated(let p):
      w.str(p.id)
      w.str(p.name)
      metadata(p.metadata, &w)
    case .assetDeclared(let a):
      w.str(a.code)
      w.u8(a.scale)
      w.str(a.name)
    case .accountOpened(let a):
      w.str(a.name)
      w.str(a.partner)
      w.str(a.currency)
      w.u8(a.normalSide.rawValue)
      w.u8((a.noOverdraft ? 1 : 0) | (a.limitMinor != nil ? 2 : 0))
      if let l = a.limitMinor { w.i128(l) }
      metadata(a.metadata, &w)
    case .accountClosed(let name):
      w.str(name)
    case .entryPosted(let e):
      w.str(e.id)
      legs(e.legs, &w)
      w.optionalStr(e.ref)
      if let d = e.valueDateDays {
        w.u8(1)
        w.i32(d)
      } else {
        w.u8(0)
      }
      w.optionalStr(e.reversalOf)
      metadata(e.metadata, &w)
    case .holdPlaced(let h):
      w.str(h.id)
      legs(h.legs, &w)
      w.optionalStr(h.ref)
      if let d = h.deadlineNanos {
        w.u8(1)
        w.i64(d)
      } else {
        w.u8(0)
      }
      metadata(h.metadata, &w)
    case .holdCaptured(let c):
      w.str(c.holdId)
      w.u16(UInt16(c.amountsMinor.count))
      for a in c.amountsMinor { w.i128(a) }
    case .holdReleased(let id), .holdExpired(let id):
      w.str(id)
    case .reconImported(let r):
      w.str(r.account)
      header(r.header, &w)
      w.u32(r.part)
      w.u32(r.parts)
      w.u16(UInt16(r.lines.count))
      for l in r.lines {
        line(l, &w)
        if v == reconImportedVersion {
          w.optionalStr(l.currency)
        } else {
          precondition(l.currency == nil, "a version-1 recon_imported has no line currency")
        }
      }
    case .reconMatched(let m):
      w.str(m.account)
      w.u16(UInt16(m.matches.count))
      for x in m.matches { match(x, &w) }
    case .reconResolved(let r):
      w.u64(r.item)
      w.str(r.reason)
      w.str(r.by)
      w.optionalStr(r.entry)
    case .reconUnmatched(let u):
      w.u64(u.item)
      w.optionalStr(u.reason)
      w.str(u.by)
    }
  }

  public static func match(_ x: ReconMatch, _ w: inout ByteWriter) {
    w.u8(x.rule.rawValue)
    w.u8(x.state.rawValue)
    w.u16(UInt16(x.items.count))
    for i in x.items { w.u64(i) }
    w.u16(UInt16(x.entries.count))
    for e in x.entries { w.str(e) }
    w.i128(x.amountDifferenceMinor)
    w.u8((x.currencyDiffers ? 1 : 0) | (x.directionDiffers ? 2 : 0))
  }

  public static func balance(_ b: ReconBalance?, _ w: inout ByteWriter) {
    guard let b else { return w.u8(0) }
    w.u8(1)
    w.i128(b.amountMinor)
    w.i32(b.dateDays)
  }

  public static func header(_ h: ReconStatementHeader, _ w: inout ByteWriter) {
    w.u8(h.format.rawValue)
    w.optionalStr(h.statementId)
    w.optionalStr(h.statementAccount)
    w.str(h.currency)
    balance(h.opening, &w)
    balance(h.closing, &w)
    w.i32(h.periodFromDays)
    w.i32(h.periodToDays)
    w.u32(h.linesRead)
    w.u32(h.duplicates)
    if let e = h.textEncoding {
      w.u8(e.rawValue)
    } else {
      precondition(h.format != .camt054, "camt054 is recorded in version-2 events only")
    }
  }

  public static func line(_ l: ReconLine, _ w: inout ByteWriter) {
    w.str(l.identity)
    w.str(l.source)
    w.i128(l.amountMinor)
    w.u8(l.direction.rawValue)
    w.i32(l.bookingDateDays)
    if let d = l.valueDateDays {
      w.u8(1)
      w.i32(d)
    } else {
      w.u8(0)
    }
    w.optionalStr(l.bankReference)
    w.optionalStr(l.endToEndId)
    w.optionalStr(l.reference)
    w.optionalStr(l.remittance)
  }

  public static func legs(_ legs: [Leg], _ w: inout ByteWriter) {
    w.u16(UInt16(legs.count))
    for l in legs {
      w.str(l.account)
      w.u8(l.side.rawValue)
      w.i128(l.amountMinor)
    }
  }

  public static func metadata(_ m: Metadata, _ w: inout ByteWriter) {
    w.u16(UInt16(m.pairs.count))
    for p in m.pairs {
      w.str(p.key)
      w.str(p.value)
    }
  }

  public static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Event {
    let r: Result<Event, DecodeError> = bytes.withUnsafeBytes { buf in
      do throws(DecodeError) { return .success(try decode(buf)) } catch { return .failure(error) }
    }
    return try r.get()
  }

  public static func decode(_ buf: UnsafeRawBufferPointer) throws(DecodeError) -> Event {
    var r = ByteReader(buf)
    let v = try r.u8("version")
    guard v == version || v == reconImportedVersion else {
      throw DecodeError(offset: 0, reason: "unknown format version \(v)")
    }
    let t = try r.u8("type")
    guard let type = EventType(rawValue: t) else {
      throw DecodeError(offset: 1, reason: "unknown event type \(t)")
    }
    guard v == version || type == .reconImported else {
      throw DecodeError(offset: 0, reason: "format version \(v) for event type \(t)")
    }
    let seq = try r.u64("seq")
    let ts = try r.i64("timestamp")
    let body: EventBody
    switch type {
    case .partnerCreated:
      let id = try r.str("partner id")
      let name = try r.str("partner name")
      body = .partnerCreated(PartnerCreated(id: id, name: name, metadata: try metadata(&r)))
    case .assetDeclared:
      let code = try r.str("asset code")
      let scale = try r.u8("asset scale")
      body = .assetDeclared(AssetDeclared(code: code, scale: scale, name: try r.str("name")))
    case .accountOpened:
      let name = try r.str("account")
      let partner = try r.str("partner")
      let currency = try r.str("currency")
      let side = try side(&r)
      let flags = try r.u8("flags")
      guard flags & ~3 == 0 else {
        throw DecodeError(offset: r.offset - 1, reason: "unknown account flags \(flags)")
      }
      let limit: Int128? = flags & 2 != 0 ? try r.i128("limit") : nil
      body = .accountOpened(
        AccountOpened(
          name: name, partner: partner, currency: currency, normalSide: side,
          noOverdraft: flags & 1 != 0, limitMinor: limit, metadata: try metadata(&r)))
    case .accountClosed:
      body = .accountClosed(name: try r.str("account"))
    case .entryPosted:
      let id = try r.str("entry id")
      let legs = try legs(&r)
      let ref = try r.optionalStr("ref")
      let date: Int32? = try presence(&r, "value date") ? try r.i32("value date") : nil
      let rev = try r.optionalStr("reversal of")
      body = .entryPosted(
        EntryPosted(
          id: id, legs: legs, ref: ref, valueDateDays: date, reversalOf: rev,
          metadata: try metadata(&r)))
    case .holdPlaced:
      let id = try r.str("hold id")
      let legs = try legs(&r)
      let ref = try r.optionalStr("ref")
      let deadline: Int64? = try presence(&r, "deadline") ? try r.i64("deadline") : nil
      body = .holdPlaced(
        HoldPlaced(
          id: id, legs: legs, ref: ref, deadlineNanos: deadline, metadata: try metadata(&r)))
    case .holdCaptured:
      let id = try r.str("hold id")
      let n = Int(try r.u16("amount count"))
      var amounts = [Int128]()
      amounts.reserveCapacity(min(n, r.remaining / 16))
      for _ in 0..<n { amounts.append(try r.i128("amount")) }
      body = .holdCaptured(HoldCaptured(holdId: id, amountsMinor: amounts))
    case .holdReleased:
      body = .holdReleased(holdId: try r.str("hold id"))
    case .holdExpired:
      body = .holdExpired(holdId: try r.str("hold id"))
    case .reconImported:
      let account = try r.str("account")
      let h = try header(&r, version: v)
      let part = try r.u32("part")
      let partsAt = r.offset
      let parts = try r.u32("parts")
      guard part < parts else {
        throw DecodeError(offset: partsAt, reason: "part \(part) of \(parts)")
      }
      let n = Int(try r.u16("line count"))
      var lines = [ReconLine]()
      lines.reserveCapacity(min(n, r.remaining))
      for _ in 0..<n {
        var l = try line(&r)
        if v == reconImportedVersion {
          let at = r.offset
          l.currency = try r.optionalStr("line currency")
          // Canonical: the statement's own currency is written as absent.
          if let c = l.currency, c == h.currency || c.isEmpty {
            throw DecodeError(offset: at, reason: "line currency \(c) is the statement's")
          }
        }
        lines.append(l)
      }
      body = .reconImported(
        ReconImported(account: account, header: h, part: part, parts: parts, lines: lines))
    case .reconMatched:
      let account = try r.str("account")
      let n = Int(try r.u16("match count"))
      var matches = [ReconMatch]()
      matches.reserveCapacity(min(n, r.remaining))
      for _ in 0..<n { matches.append(try match(&r)) }
      body = .reconMatched(ReconMatched(account: account, matches: matches))
    case .reconResolved:
      let item = try r.u64("item")
      let reason = try r.str("reason")
      let by = try r.str("by")
      body = .reconResolved(
        ReconResolved(item: item, reason: reason, by: by, entry: try r.optionalStr("entry")))
    case .reconUnmatched:
      let item = try r.u64("item")
      let reason = try r.optionalStr("reason")
      body = .reconUnmatched(ReconUnmatched(item: item, reason: reason, by: try r.str("by")))
    }
    try r.expectEnd("event")
    return Event(seq: seq, timestampNanos: ts, body: body)
  }

  /// Reads seq and timestamp without decoding the payload (for binary search by time).
  public static func header(_ buf: UnsafeRawBufferPointer) throws(DecodeError)
    -> (seq: UInt64, timestampNanos: Int64)
  {
    var r = ByteReader(buf)
    _ = try r.u8("version")
    _ = try r.u8("type")
    return (try r.u64("seq"), try r.i64("timestamp"))
  }

  public static func presence(_ r: inout ByteReader, _ what: StaticString) throws(DecodeError)
    -> Bool
  {
    switch try r.u8(what) {
    case 0: return false
    case 1: return true
    case let b: throw DecodeError(offset: r.offset - 1, reason: "presence byte \(b) in \(what)")
    }
  }

  public static func match(_ r: inout ByteReader) throws(DecodeError) -> ReconMatch {
    let ruleByte = try r.u8("rule")
    guard let rule = ReconRule(rawValue: ruleByte) else {
      throw DecodeError(offset: r.offset - 1, reason: "rule byte \(ruleByte)")
    }
    let stateByte = try r.u8("state")
    guard let state = ReconState(rawValue: stateByte), state == .matched || state == .discrepancy
    else { throw DecodeError(offset: r.offset - 1, reason: "match state byte \(stateByte)") }
    let k = Int(try r.u16("item count"))
    var items = [UInt64]()
    items.reserveCapacity(min(k, r.remaining / 8))
    for _ in 0..<k { items.append(try r.u64("item")) }
    let m = Int(try r.u16("entry count"))
    var entries = [String]()
    entries.reserveCapacity(min(m, r.remaining / 2))
    for _ in 0..<m { entries.append(try r.str("entry")) }
    let diff = try r.i128("amount difference")
    let flags = try r.u8("flags")
    guard flags & ~3 == 0 else {
      throw DecodeError(offset: r.offset - 1, reason: "unknown match flags \(flags)")
    }
    return ReconMatch(
      rule: rule, state: state, items: items, entries: entries,
      amountDifferenceMinor: diff, currencyDiffers: flags & 1 != 0,
      directionDiffers: flags & 2 != 0)
  }

  public static func balance(_ r: inout ByteReader, _ what: StaticString) throws(DecodeError)
    -> ReconBalance?
  {
    guard try presence(&r, what) else { return nil }
    let amount = try r.i128(what)
    return ReconBalance(amountMinor: amount, dateDays: try r.i32(what))
  }

  public static func header(_ r: inout ByteReader, version v: UInt8 = version)
    throws(DecodeError) -> ReconStatementHeader
  {
    let f = try r.u8("format")
    guard let format = ReconFormat(rawValue: f), v == reconImportedVersion || format != .camt054
    else {
      throw DecodeError(offset: r.offset - 1, reason: "statement format byte \(f)")
    }
    let id = try r.optionalStr("statement id")
    let account = try r.optionalStr("statement account")
    let currency = try r.str("currency")
    let opening = try balance(&r, "opening balance")
    let closing = try balance(&r, "closing balance")
    let from = try r.i32("period from")
    let to = try r.i32("period to")
    let read = try r.u32("lines read")
    let duplicates = try r.u32("duplicates")
    var encoding: ReconTextEncoding?
    if v == reconImportedVersion {
      let e = try r.u8("text encoding")
      guard let known = ReconTextEncoding(rawValue: e) else {
        throw DecodeError(offset: r.offset - 1, reason: "text encoding byte \(e)")
      }
      encoding = known
    }
    return ReconStatementHeader(
      format: format, statementId: id, statementAccount: account, currency: currency,
      opening: opening, closing: closing, periodFromDays: from, periodToDays: to,
      linesRead: read, duplicates: duplicates, textEncoding: encoding)
  }

  public static func line(_ r: inout ByteReader) throws(DecodeError) -> ReconLine {
    let identity = try r.str("identity")
    let source = try r.str("source")
    let amount = try r.i128("amount")
    let d = try r.u8("direction")
    guard let direction = ReconDirection(rawValue: d) else {
      throw DecodeError(offset: r.offset - 1, reason: "direction byte \(d)")
    }
    let booking = try r.i32("booking date")
    let value: Int32? = try presence(&r, "value date") ? try r.i32("value date") : nil
    return ReconLine(
      identity: identity, source: source, amountMinor: amount, direction: direction,
      bookingDateDays: booking, valueDateDays: value,
      bankReference: try r.optionalStr("bank reference"),
      endToEndId: try r.optionalStr("end-to-end id"), reference: try r.optionalStr("reference"),
      remittance: try r.optionalStr("remittance"))
  }

  /// What reconciliation reads of an `entry_posted` event for one account: its id, ref,
  /// value date, timestamp and the account's leg, without decoding the other legs, the
  /// reversal link or the metadata. Nil when no leg is on `account` (UTF-8 bytes of the
  /// name). Reads exactly what `decode` reads, with the same checks, for those fields.
  public static func entryPosting(_ buf: UnsafeRawBufferPointer, account: [UInt8])
    throws(DecodeError) -> EntryPosting?
  {
    var r = ByteReader(buf)
    let v = try r.u8("version")
    guard v == version else {
      throw DecodeError(offset: 0, reason: "unknown format version \(v)")
    }
    let t = try r.u8("type")
    guard t == EventType.entryPosted.rawValue else {
      throw DecodeError(offset: 1, reason: "event type \(t) is not entry_posted")
    }
    let seq = try r.u64("seq")
    let ts = try r.i64("timestamp")
    let id = try r.str("entry id")
    let n = Int(try r.u16("leg count"))
    var leg: (side: Side, amount: Int128)?
    for _ in 0..<n {
      let name = try r.strBytes("leg account")
      let side = try side(&r)
      let amount = try r.i128("leg amount")
      if leg == nil && name.elementsEqual(account) { leg = (side, amount) }
    }
    guard let leg else { return nil }
    let ref = try r.optionalStr("ref")
    let date: Int32? = try presence(&r, "value date") ? try r.i32("value date") : nil
    return EntryPosting(
      seq: seq, timestampNanos: ts, id: id, ref: ref, valueDateDays: date, side: leg.side,
      amountMinor: leg.amount)
  }

  public static func side(_ r: inout ByteReader) throws(DecodeError) -> Side {
    let b = try r.u8("side")
    guard let s = Side(rawValue: b) else {
      throw DecodeError(offset: r.offset - 1, reason: "side byte \(b)")
    }
    return s
  }

  public static func legs(_ r: inout ByteReader) throws(DecodeError) -> [Leg] {
    let n = Int(try r.u16("leg count"))
    var legs = [Leg]()
    legs.reserveCapacity(min(n, r.remaining / 19))
    for _ in 0..<n {
      let account = try r.str("leg account")
      let side = try side(&r)
      legs.append(Leg(account: account, side: side, amountMinor: try r.i128("leg amount")))
    }
    return legs
  }

  public static func metadata(_ r: inout ByteReader) throws(DecodeError) -> Metadata {
    let n = Int(try r.u16("metadata count"))
    var pairs = [MetadataPair]()
    pairs.reserveCapacity(min(n, r.remaining / 4))
    for _ in 0..<n {
      let at = r.offset
      let k = try r.str("metadata key")
      let v = try r.str("metadata value")
      if let last = pairs.last, !last.key.utf8.lexicographicallyPrecedes(k.utf8) {
        throw DecodeError(offset: at, reason: "metadata keys not sorted and unique")
      }
      pairs.append(MetadataPair(k, v))
    }
    return Metadata(sortedUnique: pairs)
  }
}

/// One account's leg of an entry, with the entry fields reconciliation needs
/// (`EventCodec.entryPosting`).
public struct EntryPosting: Equatable, Sendable {
  public var seq: UInt64
  public var timestampNanos: Int64
  public var id: String
  public var ref: String?
  public var valueDateDays: Int32?
  public var side: Side
  public var amountMinor: Int128
}
