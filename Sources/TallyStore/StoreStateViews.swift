import CLMDB
import TallyCore
import TallyCrypto

/// The reconciliation and partner-view parts of `LedgerState` over LMDB (docs/FORMAT.md,
/// "Storage": `recon_*` and `partner_*`).
extension StoreState {
  /// `recon_lines` key: account number ‖ SHA-256 of the line identity (identities can be
  /// longer than an LMDB key).
  static func lineKey(account: UInt64, identity: String) -> [UInt8] {
    var k = Records.u64Key(account)
    k.append(contentsOf: SHA256Hasher().hash(Array(identity.utf8)).bytes)
    return k
  }

  func reconItem(_ number: UInt64) throws -> ReconItemRecord? {
    guard let v = try txn.get(dbs.reconItems, u64: number) else { return nil }
    return try Records.decodeReconItem(number: number, v)
  }

  func reconLineItem(account: UInt64, identity: String) throws -> UInt64? {
    let key = Self.lineKey(account: account, identity: identity)
    guard let v = try withBytes(key, { (k) throws(StoreError) in try txn.get(dbs.reconLines, k) })
    else { return nil }
    guard v.count == 8 else { throw StoreError.corrupt("recon line value of \(v.count) bytes") }
    return UInt64(bigEndian: v.loadUnaligned(as: UInt64.self))
  }

  func reconMatch(_ number: UInt64) throws -> ReconMatchRecord? {
    guard let v = try txn.get(dbs.reconMatches, u64: number) else { return nil }
    return try Records.decodeReconMatch(number: number, v)
  }

  func reconEntryMatch(account: UInt64, entrySeq: UInt64) throws -> UInt64? {
    let key = Records.u64Key(account, entrySeq)
    guard
      let v = try withBytes(key, { (k) throws(StoreError) in try txn.get(dbs.reconEntries, k) })
    else { return nil }
    guard v.count == 8 else { throw StoreError.corrupt("recon entry value of \(v.count) bytes") }
    return UInt64(bigEndian: v.loadUnaligned(as: UInt64.self))
  }

  func reconAccount(_ number: UInt64) throws -> ReconAccountRecord? {
    guard let v = try txn.get(dbs.reconAccounts, u64: number) else { return nil }
    return try Records.decodeReconAccount(v)
  }

  var reconItemCount: UInt64 { cache.recon.items }
  var reconMatchCount: UInt64 { cache.recon.matches }

  mutating func putReconItem(
    _ r: ReconItemRecord, accountNumber: UInt64, previous: ReconState?
  ) throws {
    try withBytes(Records.encode(r)) { (v) throws(StoreError) in
      try txn.put(dbs.reconItems, u64: r.number, v)
    }
    if let previous, previous != r.state {
      let old = Records.reconIndexKey(account: accountNumber, state: previous, item: r.number)
      try withBytes(old) { (k) throws(StoreError) in try txn.delete(dbs.reconIndex, k) }
    }
    if previous != r.state {
      let new = Records.reconIndexKey(account: accountNumber, state: r.state, item: r.number)
      try withBytes(new) { (k) throws(StoreError) in
        try txn.put(dbs.reconIndex, k, UnsafeRawBufferPointer(start: nil, count: 0))
      }
    }
    if r.number > cache.recon.items {
      cache.recon.items = r.number
      cache.reconDirty = true
    }
  }

  mutating func putReconLine(account: UInt64, identity: String, item: UInt64) throws {
    try withBytes(Self.lineKey(account: account, identity: identity)) { (k) throws(StoreError) in
      try withBytes(of: item.bigEndian) { (v) throws(StoreError) in
        try txn.put(dbs.reconLines, k, v)
      }
    }
  }

  mutating func putReconMatch(_ r: ReconMatchRecord) throws {
    try withBytes(Records.encode(r)) { (v) throws(StoreError) in
      try txn.put(dbs.reconMatches, u64: r.number, v)
    }
    if r.number > cache.recon.matches {
      cache.recon.matches = r.number
      cache.reconDirty = true
    }
  }

  mutating func putReconEntry(account: UInt64, entrySeq: UInt64, match: UInt64?) throws {
    try withBytes(Records.u64Key(account, entrySeq)) { (k) throws(StoreError) in
      if let match {
        try withBytes(of: match.bigEndian) { (v) throws(StoreError) in
          try txn.put(dbs.reconEntries, k, v)
        }
      } else {
        try txn.delete(dbs.reconEntries, k)
      }
    }
  }

  mutating func putReconAccount(_ number: UInt64, _ r: ReconAccountRecord) throws {
    try withBytes(Records.encode(r)) { (v) throws(StoreError) in
      try txn.put(dbs.reconAccounts, u64: number, v)
    }
  }

  mutating func partnerStats(_ id: String) throws -> PartnerStats {
    if let s = cache.partnerStats[id] { return s }
    guard let v = try txn.get(dbs.partnerStats, string: id) else { return PartnerStats() }
    let s = try Records.decodePartnerStats(v)
    cache.partnerStats[id] = s
    return s
  }

  mutating func putPartnerStats(_ id: String, _ s: PartnerStats) throws {
    cache.partnerStats[id] = s
    cache.partnerDirty.append(id)
  }

  mutating func putPartnerAccount(partner: String, account: String) throws {
    try withBytes(Records.partnerKey(partner, account.utf8)) { (k) throws(StoreError) in
      try txn.put(dbs.partnerAccounts, k, UnsafeRawBufferPointer(start: nil, count: 0))
    }
  }

  mutating func putPartnerHold(partner: String, placedSeq: UInt64, holdId: String, open: Bool)
    throws
  {
    try withBytes(Records.partnerKey(partner, Records.u64Key(placedSeq))) {
      (k) throws(StoreError) in
      if open {
        try withBytes(Array(holdId.utf8)) { (v) throws(StoreError) in
          try txn.put(dbs.partnerHolds, k, v)
        }
      } else {
        try txn.delete(dbs.partnerHolds, k)
      }
    }
  }

  /// Partner counters and the reconciliation counts changed in this batch.
  func flushViews() throws {
    var flushed = Set<String>(minimumCapacity: cache.partnerDirty.count)
    for id in cache.partnerDirty where flushed.insert(id).inserted {
      guard let s = cache.partnerStats[id] else {
        throw StoreError.corrupt("stats of partner \(id) changed but not cached")
      }
      try txn.put(dbs.partnerStats, string: id, Records.encode(s))
    }
    if cache.reconDirty {
      try withBytes(Records.u64Key(cache.recon.items, cache.recon.matches)) {
        (v) throws(StoreError) in
        try txn.put(dbs.meta, Ledger.metaKey("recon"), v)
      }
    }
  }
}
