import TallyCore

extension Ledger {
  /// Compares the stored reconciliation and partner-view projections with the replay's,
  /// record by record (each database is scanned once, in key order).
  func compareViews(_ t: Txn, _ mem: MemoryState, _ problems: inout [VerifyProblem]) throws {
    func bad(_ m: String) { problems.append(VerifyProblem(kind: .projection, message: m)) }
    let v = mem.views
    let counts = try Self.readReconCounts(t, dbs)
    if counts.items != v.itemCount || counts.matches != v.matchCount {
      bad(
        "stored reconciliation counts (\(counts.items) items, \(counts.matches) matches) "
          + "differ from replay (\(v.itemCount), \(v.matchCount))")
    }
    func u64(_ b: UnsafeRawBufferPointer, _ at: Int = 0) -> UInt64 {
      UInt64(bigEndian: b.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }
    // recon_items and, from them, the expected state index.
    var seen = 0
    try Self.scan(t, dbs.reconItems) { k, val in
      seen += 1
      let n = k.count == 8 ? u64(k) : 0
      if (try? Records.decodeReconItem(number: n, val)) != v.items[n] {
        bad("reconciliation item \(n): record differs from replay")
      }
    }
    if seen != v.items.count { bad("\(seen) stored items, \(v.items.count) in replay") }
    var index = Set<[UInt8]>()
    for (n, item) in v.items {
      guard let a = v.itemAccounts[n] else { continue }
      index.insert(Records.reconIndexKey(account: a, state: item.state, item: n))
    }
    seen = 0
    try Self.scan(t, dbs.reconIndex) { k, val in
      seen += 1
      if !index.contains(Array(k)) || !val.isEmpty {
        bad("reconciliation state index has an entry the replay does not")
      }
    }
    if seen != index.count { bad("\(seen) stored state index entries, \(index.count) in replay") }
    // recon_lines
    var lines = [[UInt8]: UInt64](minimumCapacity: v.lines.count)
    for (key, item) in v.lines {
      lines[StoreState.lineKey(account: key.account, identity: key.identity)] = item
    }
    seen = 0
    try Self.scan(t, dbs.reconLines) { k, val in
      seen += 1
      if val.count != 8 || lines[Array(k)] != u64(val) {
        bad("reconciliation line identity index differs from replay")
      }
    }
    if seen != lines.count { bad("\(seen) stored line identities, \(lines.count) in replay") }
    // recon_matches
    seen = 0
    try Self.scan(t, dbs.reconMatches) { k, val in
      seen += 1
      let n = k.count == 8 ? u64(k) : 0
      if (try? Records.decodeReconMatch(number: n, val)) != v.matches[n] {
        bad("reconciliation match \(n): record differs from replay")
      }
    }
    if seen != v.matches.count { bad("\(seen) stored matches, \(v.matches.count) in replay") }
    // recon_entries
    seen = 0
    try Self.scan(t, dbs.reconEntries) { k, val in
      seen += 1
      guard k.count == 16, val.count == 8,
        v.entries[MemoryViews.EntryKey(account: u64(k), seq: u64(k, 8))] == u64(val)
      else { return bad("reconciliation entry link differs from replay") }
    }
    if seen != v.entries.count {
      bad("\(seen) stored entry links, \(v.entries.count) in replay")
    }
    // recon_accounts
    seen = 0
    try Self.scan(t, dbs.reconAccounts) { k, val in
      seen += 1
      let n = k.count == 8 ? u64(k) : 0
      if (try? Records.decodeReconAccount(val)) != v.accounts[n] {
        bad("reconciliation counts of account number \(n) differ from replay")
      }
    }
    if seen != v.accounts.count {
      bad("\(seen) stored reconciled accounts, \(v.accounts.count) in replay")
    }
    // partner_stats: partners without activity have no row.
    let active = v.partnerStats.filter { $0.value != PartnerStats() }
    seen = 0
    try Self.scan(t, dbs.partnerStats) { k, val in
      let id = String(decoding: k, as: UTF8.self)
      let stored = try? Records.decodePartnerStats(val)
      if stored == PartnerStats() { return }
      seen += 1
      if stored != active[id] { bad("partner \(id): stats differ from replay") }
    }
    if seen != active.count { bad("\(seen) stored partner stats, \(active.count) in replay") }
    // partner_accounts
    seen = 0
    try Self.scan(t, dbs.partnerAccounts) { k, val in
      seen += 1
      guard let zero = k.firstIndex(of: 0), val.isEmpty,
        v.partnerAccounts.contains(
          MemoryViews.PartnerAccount(
            partner: String(decoding: UnsafeRawBufferPointer(rebasing: k[..<zero]), as: UTF8.self),
            account: String(
              decoding: UnsafeRawBufferPointer(rebasing: k[(zero + 1)...]), as: UTF8.self)))
      else { return bad("partner account index has an entry the replay does not") }
    }
    if seen != v.partnerAccounts.count {
      bad("\(seen) stored partner accounts, \(v.partnerAccounts.count) in replay")
    }
    // partner_holds
    seen = 0
    try Self.scan(t, dbs.partnerHolds) { k, val in
      seen += 1
      guard let zero = k.firstIndex(of: 0), k.count == zero + 9,
        v.partnerHolds[
          MemoryViews.PartnerHold(
            partner: String(decoding: UnsafeRawBufferPointer(rebasing: k[..<zero]), as: UTF8.self),
            placedSeq: u64(k, zero + 1))] == String(decoding: val, as: UTF8.self)
      else { return bad("partner open-hold index has an entry the replay does not") }
    }
    if seen != v.partnerHolds.count {
      bad("\(seen) stored partner open holds, \(v.partnerHolds.count) in replay")
    }
  }
}
