import TallyCore

/// Layouts of the reconciliation and partner-view projections (docs/FORMAT.md, "Storage").
extension Records {
  // MARK: recon_items (key: u64 item number)

  static func encode(_ r: ReconItemRecord) -> [UInt8] {
    var w = ByteWriter(capacity: 256)
    w.str(r.account)
    w.u64(r.importedSeq)
    w.u8(r.state.rawValue)
    w.u64(r.match)
    w.u64(r.stateSeq)
    if let res = r.resolution {
      w.u8(1)
      w.str(res.reason)
      w.str(res.by)
      w.optionalStr(res.entry)
    } else {
      w.u8(0)
    }
    EventCodec.line(r.line, &w)
    // A line in another currency than its statement's: its currency after the line (records
    // of lines in the account's currency end with the line, as they always have).
    if let c = r.line.currency { w.str(c) }
    return w.bytes
  }

  static func decodeReconItem(number: UInt64, _ buf: UnsafeRawBufferPointer)
    throws(DecodeError) -> ReconItemRecord
  {
    var r = ByteReader(buf)
    let account = try r.str("account")
    let imported = try r.u64("imported seq")
    let s = try r.u8("state")
    guard let state = ReconState(rawValue: s) else {
      throw DecodeError(offset: r.offset - 1, reason: "item state \(s)")
    }
    let match = try r.u64("match")
    let stateSeq = try r.u64("state seq")
    var resolution: ReconResolved?
    if try EventCodec.presence(&r, "resolution") {
      let reason = try r.str("reason")
      let by = try r.str("by")
      resolution = ReconResolved(
        item: number, reason: reason, by: by, entry: try r.optionalStr("entry"))
    }
    var line = try EventCodec.line(&r)
    if !r.isAtEnd { line.currency = try r.str("line currency") }
    try r.expectEnd("recon item")
    return ReconItemRecord(
      number: number, account: account, line: line, importedSeq: imported, state: state,
      match: match, stateSeq: stateSeq, resolution: resolution)
  }

  // MARK: recon_matches (key: u64 match number)

  static func encode(_ m: ReconMatchRecord) -> [UInt8] {
    var w = ByteWriter(capacity: 128)
    w.str(m.account)
    w.u64(m.matchedSeq)
    w.u64(m.undoneSeq)
    // The match exactly as its event carries it.
    EventCodec.match(m.match, &w)
    return w.bytes
  }

  static func decodeReconMatch(number: UInt64, _ buf: UnsafeRawBufferPointer)
    throws(DecodeError) -> ReconMatchRecord
  {
    var r = ByteReader(buf)
    let account = try r.str("account")
    let matched = try r.u64("matched seq")
    let undone = try r.u64("undone seq")
    let m = try EventCodec.match(&r)
    try r.expectEnd("recon match")
    return ReconMatchRecord(
      number: number, account: account, match: m, matchedSeq: matched, undoneSeq: undone)
  }

  // MARK: recon_accounts (key: u64 account number)

  static func encode(_ a: ReconAccountRecord) -> [UInt8] {
    var w = ByteWriter(capacity: 128)
    w.u64(a.statements)
    w.i32(a.periodFromDays)
    w.i32(a.periodToDays)
    w.u64(a.lastImportSeq)
    for i in 0..<4 {
      w.u64(a.counts[i])
      w.i128(a.amountsMinor[i])
    }
    return w.bytes
  }

  static func decodeReconAccount(_ buf: UnsafeRawBufferPointer) throws(DecodeError)
    -> ReconAccountRecord
  {
    var r = ByteReader(buf)
    var a = ReconAccountRecord()
    a.statements = try r.u64("statements")
    a.periodFromDays = try r.i32("period from")
    a.periodToDays = try r.i32("period to")
    a.lastImportSeq = try r.u64("last import seq")
    for i in 0..<4 {
      a.counts[i] = try r.u64("count")
      a.amountsMinor[i] = try r.i128("amount")
    }
    try r.expectEnd("recon account")
    return a
  }

  // MARK: partner_stats (key: partner id)

  static func encode(_ s: PartnerStats) -> [UInt8] {
    var w = ByteWriter(capacity: 48)
    w.u64(s.entries)
    w.u64(s.holds)
    w.u64(s.openHolds)
    w.u64(s.unreconciled)
    w.u64(s.lastActivitySeq)
    w.i64(s.lastActivityNanos)
    return w.bytes
  }

  static func decodePartnerStats(_ buf: UnsafeRawBufferPointer) throws(DecodeError)
    -> PartnerStats
  {
    var r = ByteReader(buf)
    var s = PartnerStats()
    s.entries = try r.u64("entries")
    s.holds = try r.u64("holds")
    s.openHolds = try r.u64("open holds")
    s.unreconciled = try r.u64("unreconciled")
    s.lastActivitySeq = try r.u64("last activity seq")
    s.lastActivityNanos = try r.i64("last activity")
    try r.expectEnd("partner stats")
    return s
  }

  // MARK: keys

  /// `partner ‖ 0x00 ‖ rest`: ids never contain 0x00, so one partner's keys are contiguous.
  static func partnerKey(_ partner: String, _ rest: some Sequence<UInt8>) -> [UInt8] {
    var k = Array(partner.utf8)
    k.append(0)
    k.append(contentsOf: rest)
    return k
  }

  static func u64Key(_ values: UInt64...) -> [UInt8] {
    var w = ByteWriter(capacity: 8 * values.count)
    for v in values { w.u64(v) }
    return w.bytes
  }

  /// `recon_index`: account ‖ state ‖ item.
  static func reconIndexKey(account: UInt64, state: ReconState, item: UInt64) -> [UInt8] {
    var w = ByteWriter(capacity: 17)
    w.u64(account)
    w.u8(state.rawValue)
    w.u64(item)
    return w.bytes
  }
}
