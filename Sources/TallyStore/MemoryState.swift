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
  /// Ids are not kept one by one (a ledger has millions): replay folds every id record into
  /// an order-independent digest and count, compared with the same fold over the stored
  /// `ids` database. Reversal lookups read the stored record (`storedId`); a stored record
  /// that points elsewhere than the log does makes the digests differ.
  var idsDigest = IdsDigest()
  /// Entries reversed so far in the replay, with the reversing seq.
  var reversed: [String: UInt64] = [:]
  var storedId: (String) throws -> IdRecord? = { _ in nil }
  var holds: [String: HoldRecord] = [:]
  var deadlines: [DeadlineKey: String] = [:]

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

  func balances(_ number: UInt64) throws -> Balances {
    let i = Int(number) - 1
    return i >= 0 && i < balanceRows.count ? balanceRows[i].balances : .zero
  }

  func idRecord(_ id: String) throws -> IdRecord? {
    guard var r = try storedId(id) else { return nil }
    r.reversedBySeq = reversed[id] ?? 0
    return r
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
      balanceRows.append((.zero, 0))
      historyRows.append((0, Self.digestSeed))
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

  /// A repeated id cannot be seen here; it shows as a digest or count mismatch.
  mutating func insertIdRecord(_ id: String, _ r: IdRecord) throws -> Bool {
    idsDigest.add(id, r)
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

  static func hash(_ id: String, _ r: IdRecord) -> UInt64 {
    var x = seed
    @inline(__always) func mix(_ w: UInt64) {
      x = (x ^ w) &* 0xff51_afd7_ed55_8ccd
      x ^= x >> 33
      x = x &* 0xc4ce_b9fe_1a85_ec53
      x ^= x >> 29
    }
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
    mix(r.seq)
    mix(UInt64(r.kind.rawValue) << 56 | 0x1d)
    mix(r.reversedBySeq)
    return x
  }

  mutating func add(_ id: String, _ r: IdRecord) { sum &+= Self.hash(id, r) }
  mutating func remove(_ id: String, _ r: IdRecord) { sum &-= Self.hash(id, r) }
}
