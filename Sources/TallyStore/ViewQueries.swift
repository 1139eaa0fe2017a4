import CLMDB
import TallyCore

extension LedgerQuerying {
  /// Open holds listed at most in a partner view.
  public static var partnerHoldsMax: Int { 100 }

  /// One page of `partner`'s view: nil when the partner does not exist (or, with `asOfSeq`,
  /// did not yet exist then).
  public func partnerView(
    _ id: String, after: String?, limit: Int, asOfSeq: UInt64? = nil
  ) throws(StoreError) -> PartnerView? {
    try reader.readState { s in
      let dbs = reader.dbs
      guard let v = try s.txn.get(dbs.partners, string: id) else { return nil }
      let partner = try Records.decodePartner(id: id, v)
      let head = try Ledger.readHead(s.txn, dbs).seq
      let asOf = min(asOfSeq ?? head, head)
      if partner.createdSeq > asOf { return nil }
      var totals: [String: PartnerTotal] = [:]
      var order: [String] = []
      var page: [AccountView] = []
      var recent: [AccountView] = []
      var next: String?
      let prefix = Records.partnerKey(id, [])
      let c = try s.txn.cursor(dbs.partnerAccounts)
      defer { c.close() }
      var row = try withBytes(prefix) { (k) throws(StoreError) in try c.get(MDB_SET_RANGE, key: k) }
      // Bounded by the partner's accounts: one history seek each.
      while let (k, _) = row, k.count > prefix.count, k.starts(with: prefix) {
        let name = String(
          decoding: UnsafeRawBufferPointer(rebasing: k[prefix.count...]), as: UTF8.self)
        row = try c.get(MDB_NEXT)
        guard let a = try s.account(name), a.openedSeq <= asOf else { continue }
        let (b, seq) = try Ledger.historyAt(s.txn, dbs, number: a.number, seq: asOf)
        let pendingIn = a.normalSide == .debit ? b.pendingDebits : b.pendingCredits
        let pendingOut = a.normalSide == .debit ? b.pendingCredits : b.pendingDebits
        var t =
          totals[a.currency]
          ?? PartnerTotal(
            currency: a.currency, accounts: 0, postedMinor: 0, pendingInMinor: 0,
            pendingOutMinor: 0, availableMinor: 0)
        if totals[a.currency] == nil { order.append(a.currency) }
        t.accounts += 1
        // Sums of in-range balances of one partner stay far inside Int128; wrapping here
        // would be a corrupt store, so overflow traps rather than printing a wrong total.
        t.postedMinor += b.balance(normal: a.normalSide)
        t.pendingInMinor += pendingIn
        t.pendingOutMinor += pendingOut
        t.availableMinor += b.balance(normal: a.normalSide) - pendingOut
        totals[a.currency] = t
        if seq > 0 {
          // The latest changes, kept sorted (seq descending): at most `recentMax`, so an
          // insertion is a few comparisons whatever the partner's size.
          let view = AccountView(record: a, balances: b, seq: seq)
          if recent.count < PartnerView.recentMax {
            recent.append(view)
          } else if seq > recent[recent.count - 1].seq {
            recent[recent.count - 1] = view
          }
          var i = recent.count - 1
          while i > 0 && recent[i].seq > recent[i - 1].seq {
            recent.swapAt(i, i - 1)
            i -= 1
          }
        }
        if after.map({ name.utf8.lexicographicallyPrecedes($0.utf8) || name == $0 }) ?? false {
          continue
        }
        if page.count < limit {
          page.append(AccountView(record: a, balances: b, seq: seq))
        } else if next == nil {
          next = page.last?.record.name
        }
      }
      var holds: [HoldRecord] = []
      let hc = try s.txn.cursor(dbs.partnerHolds)
      defer { hc.close() }
      var hrow = try withBytes(prefix) { (k) throws(StoreError) in
        try hc.get(MDB_SET_RANGE, key: k)
      }
      while let (k, v) = hrow, k.starts(with: prefix), holds.count < Self.partnerHoldsMax {
        let holdId = String(decoding: v, as: UTF8.self)
        guard let hv = try s.txn.get(dbs.holds, string: holdId) else {
          throw StoreError.corrupt("partner \(id) lists unknown hold \(holdId)")
        }
        holds.append(try Records.decodeHold(id: holdId, hv))
        hrow = try hc.get(MDB_NEXT)
      }
      let stats = try s.partnerStats(id)
      return PartnerView(
        partner: partner, stats: stats, asOfSeq: asOf,
        totals: order.sorted().compactMap { totals[$0] }, accounts: page, nextAccount: next,
        openHolds: holds, recentAccounts: recent)
    }
  }

  /// Reconciliation counts of an account: nil when the account does not exist.
  public func reconStatus(_ name: String) throws(StoreError) -> ReconStatus? {
    try reader.readState { s in
      guard let a = try s.account(name) else { return nil }
      let rec = try s.reconAccount(a.number) ?? ReconAccountRecord()
      var count: UInt64 = 0
      var amount: Int128 = 0
      if rec.statements > 0 {
        try Self.missing(s, a, rec) { p in
          count += 1
          amount += p.amountMinor
          return true
        }
      }
      return ReconStatus(
        account: a, record: rec, missingCount: count, missingAmountMinor: amount)
    }
  }

  /// Postings within the covered period in no standing match, in seq order; `body`
  /// returns false to stop.
  static func missing(
    _ s: StoreState, _ a: AccountRecord, _ rec: ReconAccountRecord,
    _ body: (MissingPosting) throws -> Bool
  ) throws {
    var going = true
    try Ledger.postings(s, a) { p in
      guard going, p.dateDays >= rec.periodFromDays, p.dateDays <= rec.periodToDays else {
        return
      }
      if try s.reconEntryMatch(account: a.number, entrySeq: p.idSeq) != nil { return }
      going = try body(
        MissingPosting(
          seq: p.seq, id: p.id, ref: p.ref, amountMinor: p.amountMinor, direction: p.direction,
          dateDays: p.dateDays))
    }
  }

  /// Items of an account in item order after `after`, of one state or all; nil when the
  /// account does not exist.
  public func reconItems(_ name: String, state: ReconState?, after: UInt64, limit: Int)
    throws(StoreError) -> (items: [ReconItemRecord], next: UInt64?)?
  {
    try reader.readState { s in
      guard let a = try s.account(name) else { return nil }
      var numbers: [UInt64] = []
      let c = try s.txn.cursor(reader.dbs.reconIndex)
      defer { c.close() }
      for st in state.map({ [$0] }) ?? ReconState.allCases {
        let start = Records.reconIndexKey(account: a.number, state: st, item: after &+ 1)
        var row = try withBytes(start) { (k) throws(StoreError) in
          try c.get(MDB_SET_RANGE, key: k)
        }
        var taken = 0
        // One more than a page tells whether another page follows.
        while let (k, _) = row, k.count == 17, taken <= limit,
          UInt64(bigEndian: k.loadUnaligned(as: UInt64.self)) == a.number, k[8] == st.rawValue
        {
          numbers.append(UInt64(bigEndian: k.loadUnaligned(fromByteOffset: 9, as: UInt64.self)))
          taken += 1
          row = try c.get(MDB_NEXT)
        }
      }
      numbers.sort()
      let page = numbers.prefix(limit)
      var items: [ReconItemRecord] = []
      for n in page {
        guard let item = try s.reconItem(n) else {
          throw StoreError.corrupt("state index names unknown item \(n)")
        }
        items.append(item)
      }
      return (items, numbers.count > limit ? page.last : nil)
    }
  }

  /// `missing_from_statement` postings after seq `after`, at most `limit`; nil when the
  /// account does not exist.
  public func reconMissing(_ name: String, after: UInt64, limit: Int) throws(StoreError)
    -> (postings: [MissingPosting], next: UInt64?)?
  {
    try reader.readState { s in
      guard let a = try s.account(name) else { return nil }
      let rec = try s.reconAccount(a.number) ?? ReconAccountRecord()
      var out: [MissingPosting] = []
      var more = false
      if rec.statements > 0 {
        try Self.missing(s, a, rec) { p in
          if p.seq <= after { return true }
          if out.count == limit {
            more = true
            return false
          }
          out.append(p)
          return true
        }
      }
      return (out, more ? out.last?.seq : nil)
    }
  }

  /// One item by number (nil: none).
  public func reconItem(_ number: UInt64) throws(StoreError) -> ReconItemRecord? {
    try reader.readState { s in try s.reconItem(number) }
  }

  public func reconMatch(_ number: UInt64) throws(StoreError) -> ReconMatchRecord? {
    try reader.readState { s in try s.reconMatch(number) }
  }
}

extension LedgerQuerying {
  /// Reconciliation items over all accounts, by state (indexed by `ReconState.rawValue`):
  /// one pass over the accounts that have imported statements, not over the items.
  public func reconTotals() throws(StoreError) -> [UInt64] {
    try reader.read { t in
      let c = try t.cursor(reader.dbs.reconAccounts)
      defer { c.close() }
      var totals: [UInt64] = [0, 0, 0, 0]
      var row = try c.get(MDB_FIRST)
      while let (_, v) = row {
        let a = try Records.decodeReconAccount(v)
        for i in 0..<totals.count { totals[i] &+= a.counts[i] }
        row = try c.get(MDB_NEXT)
      }
      return totals
    }
  }
}
