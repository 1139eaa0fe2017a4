import TallyCore

/// The ledger's projections in memory, built by replaying the log: what `verify` compares
/// the stored projections with. Only `apply` runs against it (no `decide`), so it never
/// needs to read events back.
struct MemoryState: LedgerState {
  var partners: [String: PartnerRecord] = [:]
  var assets: [String: AssetRecord] = [:]
  var accounts: [String: AccountRecord] = [:]
  /// Indexed by account number - 1.
  var names: [String] = []
  var balanceRows: [(balances: Balances, seq: UInt64)] = []
  /// Per account: history rows and a digest over (seq, balances after) in seq order.
  var historyRows: [(count: UInt64, digest: UInt64)] = []
  /// Ids are not kept as strings (a ledger has millions): replay keeps a seeded 64-bit hash
  /// of each id with the seq that introduced it, and reads the event back from the log to
  /// confirm a hash match, so lookups and repeated ids are exact without trusting any
  /// projection. Every id record is also folded into an order-independent digest and count,
  /// compared with the same fold over the stored `ids` database.
  var idSeqs = IdIndex()
  /// Ids whose hash collided with another id's (exact, and almost always empty).
  var collidedIds: [String: UInt64] = [:]
  var idsDigest = IdsDigest()
  /// Entries reversed so far in the replay, with the reversing seq.
  var reversed: [String: UInt64] = [:]
  /// Reads a (verified) event of the log by seq.
  var logEvent: (UInt64) throws -> Event = { seq in
    throw ApplyError(seq: seq, reason: "replay cannot read the log")
  }

  /// The id an event introduces, with its kind.
  static func introducedId(_ e: Event) -> (String, IdRecord.Kind)? {
    switch e.body {
    case .entryPosted(let p): (p.id, .entry)
    case .holdPlaced(let h): (h.id, .hold)
    default: nil
    }
  }

  /// Seq and kind of the event that introduced `id`, read back from the log.
  func introduced(_ id: String) throws -> (seq: UInt64, kind: IdRecord.Kind)? {
    if let seq = collidedIds[id], let (_, kind) = Self.introducedId(try logEvent(seq)) {
      return (seq, kind)
    }
    guard let seq = idSeqs.find(IdsDigest.key(id)) else { return nil }
    guard let (found, kind) = Self.introducedId(try logEvent(seq)) else {
      throw ApplyError(seq: seq, reason: "id index of the replay points at a non-id event")
    }
    return found.bytesEqual(id) ? (seq, kind) : nil
  }
  var holds: [String: HoldRecord] = [:]
  var deadlines: [DeadlineKey: String] = [:]
  /// Reconciliation and partner views (MemoryStateViews.swift).
  var views = MemoryViews()

  struct DeadlineKey: Hashable {
    var deadline: Int64
    var seq: UInt64
  }

  func partner(_ id: String) throws -> PartnerRecord? { partners[id] }
  func asset(_ code: String) throws -> AssetRecord? { assets[code] }
  func account(_ name: String) throws -> AccountRecord? { accounts[name] }
  /// Name → number, kept apart from the records so the hot path copies no record.
  var numbers: [String: UInt64] = [:]
  func accountNumber(_ name: String) throws -> UInt64? { numbers[name] }
  /// Partner by account number - 1 (with `numbers`: the partner views copy no record).
  var partnerOf: [String] = []
  func accountPartner(_ name: String) throws -> String? {
    guard let n = numbers[name] else { return nil }
    let i = Int(n) - 1
    return i >= 0 && i < partnerOf.count ? partnerOf[i] : accounts[name]?.partner
  }

  func balances(_ number: UInt64) throws -> Balances {
    let i = Int(number) - 1
    return i >= 0 && i < balanceRows.count ? balanceRows[i].balances : .zero
  }

  func idRecord(_ id: String) throws -> IdRecord? {
    guard let (seq, kind) = try introduced(id) else { return nil }
    return IdRecord(seq: seq, kind: kind, reversedBySeq: reversed[id] ?? 0)
  }

  func event(at seq: UInt64) throws -> Event {
    throw ApplyError(seq: seq, reason: "replay does not read events back")
  }

  func hold(_ id: String) throws -> HoldRecord? { holds[id] }

  func holdsDue(asOfNanos: Int64, limit: Int) throws -> [String] {
    deadlines.keys.filter { $0.deadline <= asOfNanos }
      .sorted { ($0.deadline, $0.seq) < ($1.deadline, $1.seq) }.prefix(limit)
      .compactMap { deadlines[$0] }
  }

  var accountCount: UInt64 { UInt64(names.count) }

  mutating func putPartner(_ r: PartnerRecord) throws { partners[r.id] = r }
  mutating func putAsset(_ r: AssetRecord) throws { assets[r.code] = r }

  mutating func putAccount(_ r: AccountRecord) throws {
    if r.number == UInt64(names.count) + 1 {
      names.append(r.name)
      partnerOf.append(r.partner)
      balanceRows.append((.zero, 0))
      historyRows.append((0, Self.digestSeed))
    } else if r.number >= 1 && r.number <= UInt64(partnerOf.count) {
      partnerOf[Int(r.number) - 1] = r.partner
    }
    accounts[r.name] = r
    numbers[r.name] = r.number
  }

  mutating func putBalances(_ number: UInt64, _ b: Balances, seq: UInt64) throws {
    balanceRows[Int(number) - 1] = (b, seq)
  }

  mutating func putHistory(_ number: UInt64, seq: UInt64, _ b: Balances) throws {
    let i = Int(number) - 1
    historyRows[i].count += 1
    historyRows[i].digest = Self.digest(historyRows[i].digest, seq: seq, b)
  }

  /// Only reversals update an existing id record.
  mutating func putIdRecord(_ id: String, _ r: IdRecord) throws {
    var before = r
    before.reversedBySeq = reversed[id] ?? 0
    idsDigest.remove(id, before)
    idsDigest.add(id, r)
    reversed[id] = r.reversedBySeq
  }

  mutating func insertIdRecord(_ id: String, _ r: IdRecord) throws -> Bool {
    let key = IdsDigest.key(id)
    if let seq = idSeqs.find(key) {
      // Same hash: the same id (a repeat), or, rarely, another id (kept exactly).
      guard let (found, _) = Self.introducedId(try logEvent(seq)) else {
        throw ApplyError(seq: seq, reason: "id index of the replay points at a non-id event")
      }
      if found.bytesEqual(id) || collidedIds[id] != nil { return false }
      collidedIds[id] = r.seq
    } else {
      idSeqs.insert(key, r.seq)
    }
    idsDigest.sum &+= IdsDigest.fold(key, r)
    idsDigest.count += 1
    return true
  }
  mutating func putHold(_ r: HoldRecord) throws { holds[r.id] = r }

  mutating func addDeadline(_ deadlineNanos: Int64, placedSeq: UInt64, holdId: String) throws {
    deadlines[DeadlineKey(deadline: deadlineNanos, seq: placedSeq)] = holdId
  }

  mutating func removeDeadline(_ deadlineNanos: Int64, placedSeq: UInt64) throws {
    deadlines[DeadlineKey(deadline: deadlineNanos, seq: placedSeq)] = nil
  }

  static let digestSeed: UInt64 = 0x9e37_79b9_7f4a_7c15

  /// Order-sensitive 64-bit digest of history rows. Not cryptographic: it compares two
  /// computations of the same rows on this machine; a mismatch is then pinpointed.
  @inline(__always)
  static func digest(_ h: UInt64, seq: UInt64, _ b: Balances) -> UInt64 {
    var x = h
    @inline(__always) func mix(_ w: UInt64) {
      x = (x ^ w) &* 0xff51_afd7_ed55_8ccd
      x ^= x >> 33
    }
    mix(seq)
    for v in [b.postedDebits, b.postedCredits, b.pendingDebits, b.pendingCredits] {
      let u = UInt128(bitPattern: v)
      mix(UInt64(truncatingIfNeeded: u))
      mix(UInt64(truncatingIfNeeded: u >> 64))
    }
    return x
  }
}

/// Order-independent digest of a set of id records: the wrapping sum of a seeded 64-bit hash
/// of each (id, record). The seed is random per run, so no input can be crafted to cancel.
struct IdsDigest: Equatable {
  static let seed = UInt64.random(in: 1...UInt64.max)
  var sum: UInt64 = 0
  var count = 0

  @inline(__always)
  static func mix(_ x: inout UInt64, _ w: UInt64) {
    x = (x ^ w) &* 0xff51_afd7_ed55_8ccd
    x ^= x >> 33
    x = x &* 0xc4ce_b9fe_1a85_ec53
    x ^= x >> 29
  }

  /// One id record's share of the digest, from the id's key.
  static func fold(_ key: UInt64, _ r: IdRecord) -> UInt64 {
    var x = key
    mix(&x, r.seq)
    mix(&x, UInt64(r.kind.rawValue) << 56 | 0x1d)
    mix(&x, r.reversedBySeq)
    return x
  }

  static func hash(_ id: String, _ r: IdRecord) -> UInt64 { fold(key(id), r) }

  /// Seeded hash of the id's bytes (the replay's id index key).
  static func key(_ id: String) -> UInt64 {
    var x = seed
    @inline(__always) func mix(_ w: UInt64) { Self.mix(&x, w) }
    var id = id
    id.withUTF8 { buf in
      var i = 0
      while i + 8 <= buf.count {
        mix(UnsafeRawBufferPointer(buf).loadUnaligned(fromByteOffset: i, as: UInt64.self))
        i += 8
      }
      var tail: UInt64 = UInt64(buf.count) << 56
      var shift: UInt64 = 0
      while i < buf.count {
        tail |= UInt64(buf[i]) << shift
        shift += 8
        i += 1
      }
      mix(tail)
    }
    return x
  }

  mutating func add(_ id: String, _ r: IdRecord) { sum &+= Self.hash(id, r) }
  mutating func remove(_ id: String, _ r: IdRecord) { sum &-= Self.hash(id, r) }
}

/// Open-addressing table from an id's seeded 64-bit hash to a seq. The keys are already
/// uniformly distributed, so the low bits index the table directly (no second hash), and
/// linear probing keeps a lookup in one or two cache lines. Seqs are ≥ 1, so 0 marks a
/// free slot.
struct IdIndex {
  /// Key and seq side by side: one cache line per probe.
  private var slots: [(key: UInt64, seq: UInt64)] = []
  private(set) var count = 0

  mutating func reserve(_ n: Int) {
    var capacity = 1024
    while capacity < n * 2 { capacity <<= 1 }
    if capacity > slots.count { rehash(capacity) }
  }

  func find(_ key: UInt64) -> UInt64? {
    if slots.isEmpty { return nil }
    return slots.withUnsafeBufferPointer { s in
      let mask = s.count - 1
      var i = Int(truncatingIfNeeded: key) & mask
      // Bounded: the table is never more than half full, so a free slot ends every probe.
      while s[i].seq != 0 {
        if s[i].key == key { return s[i].seq }
        i = (i + 1) & mask
      }
      return nil
    }
  }

  /// Inserts a key that is not present.
  mutating func insert(_ key: UInt64, _ seq: UInt64) {
    precondition(seq != 0, "seqs start at 1")
    if (count + 1) * 2 > slots.count { rehash(max(1024, slots.count * 2)) }
    slots.withUnsafeMutableBufferPointer { s in
      let mask = s.count - 1
      var i = Int(truncatingIfNeeded: key) & mask
      while s[i].seq != 0 { i = (i + 1) & mask }
      s[i] = (key, seq)
    }
    count += 1
  }

  private mutating func rehash(_ capacity: Int) {
    let old = slots
    slots = Array(repeating: (0, 0), count: capacity)
    count = 0
    for slot in old where slot.seq != 0 { insert(slot.key, slot.seq) }
  }
}
