import TallyCore

/// The reconciliation and partner-view projections as replay computes them.
struct MemoryViews {
  struct LineKey: Hashable {
    var account: UInt64
    var identity: String
  }
  struct EntryKey: Hashable {
    var account: UInt64
    var seq: UInt64
  }
  struct PartnerAccount: Hashable {
    var partner: String
    var account: String
  }
  struct PartnerHold: Hashable {
    var partner: String
    var placedSeq: UInt64
  }
  var items: [UInt64: ReconItemRecord] = [:]
  /// Account number of each item (for the state index).
  var itemAccounts: [UInt64: UInt64] = [:]
  var lines: [LineKey: UInt64] = [:]
  var matches: [UInt64: ReconMatchRecord] = [:]
  var entries: [EntryKey: UInt64] = [:]
  var accounts: [UInt64: ReconAccountRecord] = [:]
  var partnerStats: [String: PartnerStats] = [:]
  var partnerAccounts = Set<PartnerAccount>()
  var partnerHolds: [PartnerHold: String] = [:]
  var itemCount: UInt64 = 0
  var matchCount: UInt64 = 0
}

extension MemoryState {
  func reconItem(_ number: UInt64) throws -> ReconItemRecord? { views.items[number] }

  func reconLineItem(account: UInt64, identity: String) throws -> UInt64? {
    views.lines[MemoryViews.LineKey(account: account, identity: identity)]
  }

  func reconMatch(_ number: UInt64) throws -> ReconMatchRecord? { views.matches[number] }

  func reconEntryMatch(account: UInt64, entrySeq: UInt64) throws -> UInt64? {
    views.entries[MemoryViews.EntryKey(account: account, seq: entrySeq)]
  }

  func reconAccount(_ number: UInt64) throws -> ReconAccountRecord? { views.accounts[number] }

  var reconItemCount: UInt64 { views.itemCount }
  var reconMatchCount: UInt64 { views.matchCount }

  mutating func putReconItem(_ r: ReconItemRecord, accountNumber: UInt64, previous: ReconState?)
    throws
  {
    views.items[r.number] = r
    views.itemAccounts[r.number] = accountNumber
    views.itemCount = max(views.itemCount, r.number)
  }

  mutating func putReconLine(account: UInt64, identity: String, item: UInt64) throws {
    views.lines[MemoryViews.LineKey(account: account, identity: identity)] = item
  }

  mutating func putReconMatch(_ r: ReconMatchRecord) throws {
    views.matches[r.number] = r
    views.matchCount = max(views.matchCount, r.number)
  }

  mutating func putReconEntry(account: UInt64, entrySeq: UInt64, match: UInt64?) throws {
    views.entries[MemoryViews.EntryKey(account: account, seq: entrySeq)] = match
  }

  mutating func putReconAccount(_ number: UInt64, _ r: ReconAccountRecord) throws {
    views.accounts[number] = r
  }

  func partnerStats(_ id: String) throws -> PartnerStats {
    views.partnerStats[id] ?? PartnerStats()
  }

  mutating func putPartnerStats(_ id: String, _ s: PartnerStats) throws {
    views.partnerStats[id] = s
  }

  mutating func putPartnerAccount(partner: String, account: String) throws {
    views.partnerAccounts.insert(MemoryViews.PartnerAccount(partner: partner, account: account))
  }

  mutating func putPartnerHold(partner: String, placedSeq: UInt64, holdId: String, open: Bool)
    throws
  {
    views.partnerHolds[MemoryViews.PartnerHold(partner: partner, placedSeq: placedSeq)] =
      open ? holdId : nil
  }
}
