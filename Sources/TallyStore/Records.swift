import TallyCore

/// Binary layouts of projection records (docs/FORMAT.md, "Projections"). Projections are
/// rebuildable from the log, so these may change with the store's format version.
enum Records {
  static let version: UInt8 = 1

  // MARK: accounts (key: account name)

  static func encode(_ a: AccountRecord) -> [UInt8] {
    var w = ByteWriter(capacity: 96)
    w.u8(version)
    w.u64(a.number)
    w.str(a.partner)
    w.str(a.currency)
    w.u8(a.scale)
    w.u8(a.normalSide.rawValue)
    w.u8((a.noOverdraft ? 1 : 0) | (a.limitMinor != nil ? 2 : 0) | (a.status == .closed ? 4 : 0))
    if let l = a.limitMinor { w.i128(l) }
    w.u64(a.openedSeq)
    w.u64(a.closedSeq)
    EventCodec.metadata(a.metadata, &w)
    return w.bytes
  }

  static func decodeAccount(name: String, _ buf: UnsafeRawBufferPointer) throws(DecodeError)
    -> AccountRecord
  {
    var r = ByteReader(buf)
    guard try r.u8("record version") == version else {
      throw DecodeError(offset: 0, reason: "account record version")
    }
    let number = try r.u64("number")
    let partner = try r.str("partner")
    let currency = try r.str("currency")
    let scale = try r.u8("scale")
    let side = try EventCodec.side(&r)
    let flags = try r.u8("flags")
    let limit: Int128? = flags & 2 != 0 ? try r.i128("limit") : nil
    let opened = try r.u64("opened seq")
    let closed = try r.u64("closed seq")
    let md = try EventCodec.metadata(&r)
    try r.expectEnd("account record")
    return AccountRecord(
      number: number, name: name, partner: partner, currency: currency, scale: scale,
      normalSide: side, noOverdraft: flags & 1 != 0, limitMinor: limit,
      status: flags & 4 != 0 ? .closed : .open, openedSeq: opened, closedSeq: closed,
      metadata: md)
  }

  // MARK: balances (key: account number u64 BE) and history (key: number || seq)

  static func write(_ b: Balances, _ w: inout ByteWriter) {
    w.i128(b.postedDebits)
    w.i128(b.postedCredits)
    w.i128(b.pendingDebits)
    w.i128(b.pendingCredits)
  }

  static func readBalances(_ r: inout ByteReader) throws(DecodeError) -> Balances {
    Balances(
      postedDebits: try r.i128(), postedCredits: try r.i128(), pendingDebits: try r.i128(),
      pendingCredits: try r.i128())
  }

  static func decodeHistory(_ buf: UnsafeRawBufferPointer) throws(DecodeError) -> Balances {
    var r = ByteReader(buf)
    let b = try readBalances(&r)
    try r.expectEnd("history")
    return b
  }

  // MARK: ids (key: entry or hold id)

  static func encode(_ r: IdRecord) -> [UInt8] {
    var w = ByteWriter(capacity: 17)
    w.u64(r.seq)
    w.u8(r.kind.rawValue)
    w.u64(r.reversedBySeq)
    return w.bytes
  }

  static func decodeId(_ buf: UnsafeRawBufferPointer) throws(DecodeError) -> IdRecord {
    var r = ByteReader(buf)
    let seq = try r.u64()
    guard let kind = IdRecord.Kind(rawValue: try r.u8()) else {
      throw DecodeError(offset: 8, reason: "id kind")
    }
    let rev = try r.u64()
    try r.expectEnd("id record")
    return IdRecord(seq: seq, kind: kind, reversedBySeq: rev)
  }

  // MARK: partners, assets

  static func encode(_ p: PartnerRecord) -> [UInt8] {
    var w = ByteWriter()
    w.str(p.name)
    w.u64(p.createdSeq)
    EventCodec.metadata(p.metadata, &w)
    return w.bytes
  }

  static func decodePartner(id: String, _ buf: UnsafeRawBufferPointer) throws(DecodeError)
    -> PartnerRecord
  {
    var r = ByteReader(buf)
    let name = try r.str()
    let seq = try r.u64()
    let md = try EventCodec.metadata(&r)
    try r.expectEnd("partner record")
    return PartnerRecord(id: id, name: name, metadata: md, createdSeq: seq)
  }

  static func encode(_ a: AssetRecord) -> [UInt8] {
    var w = ByteWriter()
    w.u8(a.scale)
    w.str(a.name)
    w.u64(a.declaredSeq)
    return w.bytes
  }

  static func decodeAsset(code: String, _ buf: UnsafeRawBufferPointer) throws(DecodeError)
    -> AssetRecord
  {
    var r = ByteReader(buf)
    let scale = try r.u8()
    let name = try r.str()
    let seq = try r.u64()
    try r.expectEnd("asset record")
    return AssetRecord(code: code, scale: scale, name: name, declaredSeq: seq)
  }

  // MARK: holds (key: hold id)

  static func encode(_ h: HoldRecord) -> [UInt8] {
    var w = ByteWriter()
    w.u8(h.state.rawValue)
    w.u64(h.placedSeq)
    w.u64(h.resolvedSeq)
    if let d = h.deadlineNanos {
      w.u8(1)
      w.i64(d)
    } else {
      w.u8(0)
    }
    EventCodec.legs(h.legs, &w)
    w.u16(UInt16(h.capturedMinor.count))
    for c in h.capturedMinor { w.i128(c) }
    return w.bytes
  }

  static func decodeHold(id: String, _ buf: UnsafeRawBufferPointer) throws(DecodeError)
    -> HoldRecord
  {
    var r = ByteReader(buf)
    guard let state = HoldState(rawValue: try r.u8()) else {
      throw DecodeError(offset: 0, reason: "hold state")
    }
    let placed = try r.u64()
    let resolved = try r.u64()
    let deadline: Int64? = try r.u8() == 1 ? try r.i64() : nil
    let legs = try EventCodec.legs(&r)
    let n = Int(try r.u16())
    var captured = [Int128]()
    for _ in 0..<n { captured.append(try r.i128()) }
    try r.expectEnd("hold record")
    return HoldRecord(
      id: id, legs: legs, deadlineNanos: deadline, state: state, placedSeq: placed,
      resolvedSeq: resolved, capturedMinor: captured)
  }

  /// Deadline index key: the deadline with its sign bit flipped (so byte order is numeric
  /// order for negative values too), then the placing seq.
  static func deadlineKey(_ d: Int64, _ seq: UInt64) -> [UInt8] {
    var w = ByteWriter(capacity: 16)
    w.u64(UInt64(bitPattern: d) ^ (1 << 63))
    w.u64(seq)
    return w.bytes
  }

  static func decodeDeadlineKey(_ buf: UnsafeRawBufferPointer) throws(DecodeError)
    -> (Int64, UInt64)
  {
    var r = ByteReader(buf)
    let d = Int64(bitPattern: try r.u64() ^ (1 << 63))
    return (d, try r.u64())
  }
}
