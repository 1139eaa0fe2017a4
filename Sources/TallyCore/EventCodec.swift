/// The canonical binary encoding of events, byte for byte as in docs/FORMAT.md.
/// Hashes cover exactly these bytes, so encoding must be deterministic and decoding strict:
/// any byte sequence that is not the canonical encoding of some event is refused.
public enum EventCodec {
  /// Format version, the first byte of every event.
  public static let version: UInt8 = 1
  /// version(1) + type(1) + seq(8) + timestamp(8).
  public static let headerBytes = 18

  public static func encode(_ event: Event) -> [UInt8] {
    var w = ByteWriter(capacity: 160)
    encode(event, into: &w)
    return w.bytes
  }

  public static func encode(_ event: Event, into w: inout ByteWriter) {
    w.u8(version)
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
    }
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
    guard v == version else {
      throw DecodeError(offset: 0, reason: "unknown format version \(v)")
    }
    let t = try r.u8("type")
    guard let type = EventType(rawValue: t) else {
      throw DecodeError(offset: 1, reason: "unknown event type \(t)")
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
      amounts.reserveCapacity(n)
      for _ in 0..<n { amounts.append(try r.i128("amount")) }
      body = .holdCaptured(HoldCaptured(holdId: id, amountsMinor: amounts))
    case .holdReleased:
      body = .holdReleased(holdId: try r.str("hold id"))
    case .holdExpired:
      body = .holdExpired(holdId: try r.str("hold id"))
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

  static func presence(_ r: inout ByteReader, _ what: StaticString) throws(DecodeError) -> Bool {
    switch try r.u8(what) {
    case 0: return false
    case 1: return true
    case let b: throw DecodeError(offset: r.offset - 1, reason: "presence byte \(b) in \(what)")
    }
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
    legs.reserveCapacity(n)
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
    pairs.reserveCapacity(n)
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
