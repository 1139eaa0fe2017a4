import CLMDB
import Glibc
import TallyCore
import TallyCrypto
import TallyTestSupport
import Testing

@testable import TallyStore

// MARK: - Time

/// 2023-11-14T22:13:20Z: the clock of most tests (timestamps only need to be increasing,
/// which the ledger guarantees by itself).
let t0: Int64 = 1_700_000_000_000_000_000
let oneSecond: Int64 = 1_000_000_000

// MARK: - Temporary directories (TempDir, removeTree: TallyTestSupport)

struct TestFailure: Error, CustomStringConvertible {
  var description: String
  init(_ description: String) { self.description = description }
}

/// Runs `body` with a freshly created ledger in a new temporary directory; closes the ledger
/// and removes the directory afterwards.
func withLedger<R>(now: Int64 = t0, _ body: (Ledger) throws -> R) throws -> R {
  try withTempDir { dir in
    let ledger = try Ledger.create(at: dir.ledgerPath, now: now)
    return try withExtendedLifetime(ledger) { try body(ledger) }
  }
}

// MARK: - Building commands

func meta(_ pairs: (String, String)...) -> Metadata {
  switch Metadata.make(pairs) {
  case .success(let m): return m
  case .failure(let r): preconditionFailure("test metadata is invalid: \(r)")
  }
}

func debit(_ account: String, _ amount: Int128, currency: String? = nil) -> LegSpec {
  LegSpec(account: account, side: .debit, amountMinor: amount, currency: currency)
}

func credit(_ account: String, _ amount: Int128, currency: String? = nil) -> LegSpec {
  LegSpec(account: account, side: .credit, amountMinor: amount, currency: currency)
}

func partner(_ id: String, name: String = "Partner", metadata: Metadata = .empty) -> Command {
  .createPartner(PartnerCreated(id: id, name: name, metadata: metadata))
}

func asset(_ code: String, scale: UInt8, name: String = "Asset") -> Command {
  .declareAsset(AssetDeclared(code: code, scale: scale, name: name))
}

func open(
  _ name: String, _ currency: String = "EUR", normal: Side = .debit, noOverdraft: Bool = false,
  limit: Int128? = nil, partner: String = Machine.platformPartner, metadata: Metadata = .empty
) -> Command {
  .openAccount(
    AccountOpened(
      name: name, partner: partner, currency: currency, normalSide: normal,
      noOverdraft: noOverdraft, limitMinor: limit, metadata: metadata))
}

func close(_ name: String) -> Command { .closeAccount(name: name) }

func post(
  _ id: String, _ legs: [LegSpec], currency: String? = nil, ref: String? = nil,
  valueDate: Int32? = nil, metadata: Metadata = .empty
) -> Command {
  .postEntry(
    EntrySpec(
      id: id, legs: legs, currency: currency, ref: ref, valueDateDays: valueDate,
      metadata: metadata))
}

/// A two-leg entry moving `amount` from `from` (credited) to `to` (debited).
func transfer(_ id: String, from: String, to: String, _ amount: Int128) -> Command {
  post(id, [debit(to, amount), credit(from, amount)])
}

func hold(
  _ id: String, _ legs: [LegSpec], currency: String? = nil, ref: String? = nil,
  deadline: Int64? = nil, metadata: Metadata = .empty
) -> Command {
  .placeHold(
    HoldSpec(
      id: id, legs: legs, currency: currency, ref: ref, deadlineNanos: deadline,
      metadata: metadata))
}

func capture(_ id: String, _ amounts: CaptureSpec.Amounts = .full) -> Command {
  .captureHold(CaptureSpec(holdId: id, amounts: amounts))
}

func release(_ id: String) -> Command { .releaseHold(holdId: id) }

func reverse(_ id: String, of entry: String, metadata: Metadata = .empty) -> Command {
  .reverseEntry(ReverseSpec(id: id, entryId: entry, metadata: metadata))
}

/// `count` distinct valid names of `bytes` bytes.
func names(_ count: Int, bytes: Int, prefix: String = "n") -> [String] {
  (0..<count).map { i in
    let stem = "\(prefix)\(i)-"
    return stem + String(repeating: "x", count: max(0, bytes - stem.utf8.count))
  }
}

// MARK: - Applying

extension Ledger {
  /// Applies one command and returns its outcome.
  func run(_ command: Command, now: Int64 = t0) throws -> Outcome {
    let out = try apply([command], now: now)
    guard out.count == 1 else { throw TestFailure("one command, \(out.count) outcomes") }
    return out[0]
  }

  /// Balances of `name` now (zero columns when the account has none yet).
  func balances(_ name: String) throws -> Balances {
    guard let v = try account(name) else { throw TestFailure("no account \(name)") }
    return v.balances
  }

  func allAccounts() throws -> [AccountView] { try accounts(after: nil, limit: 1_000_000) }
}

/// Applies `commands` in one batch and requires every one to be applied; returns the seq of
/// the first event of each.
@discardableResult
func applyAll(
  _ ledger: Ledger, _ commands: [Command], now: Int64 = t0,
  sourceLocation: SourceLocation = #_sourceLocation
) throws -> [UInt64] {
  let out = try ledger.apply(commands, now: now)
  var seqs = [UInt64]()
  for (i, o) in out.enumerated() {
    guard case .applied(let first, _) = o else {
      Issue.record("command \(i) \(commands[i]) → \(o)", sourceLocation: sourceLocation)
      throw TestFailure("setup command \(i) not applied")
    }
    seqs.append(first)
  }
  return seqs
}

/// Applies one command, requires it to append exactly one event, and returns its seq.
@discardableResult
func expectApplied(
  _ ledger: Ledger, _ command: Command, now: Int64 = t0,
  sourceLocation: SourceLocation = #_sourceLocation
) throws -> UInt64 {
  let before = ledger.head.seq
  let out = try ledger.run(command, now: now)
  guard case .applied(let first, let count) = out else {
    Issue.record("expected applied, got \(out)", sourceLocation: sourceLocation)
    throw TestFailure("not applied: \(out)")
  }
  #expect(first == before + 1, sourceLocation: sourceLocation)
  #expect(count == 1, sourceLocation: sourceLocation)
  #expect(ledger.head.seq == before + 1, sourceLocation: sourceLocation)
  return first
}

// MARK: - Snapshots and rejections

/// Everything a command could change: the head (seq, timestamp, chain), every account with
/// its balances, and the number of rows in each database.
struct Snapshot: Equatable {
  var head: LogHead
  var accounts: [AccountView]
  var counts: [String: Int]
}

func snapshot(_ ledger: Ledger) throws -> Snapshot {
  let stats = try ledger.stats()
  return Snapshot(
    head: try ledger.currentHead(), accounts: try ledger.allAccounts(),
    counts: Dictionary(uniqueKeysWithValues: stats.counts.map { ($0.name, $0.entries) }))
}

/// Applies `command` alone, expects the rejection `code`, and proves nothing changed: same log
/// length, same chain head, same accounts and balances, same row counts.
@discardableResult
func expectRejected(
  _ ledger: Ledger, _ command: Command, code: RejectionCode, now: Int64 = t0,
  sourceLocation: SourceLocation = #_sourceLocation
) throws -> Rejection? {
  let before = try snapshot(ledger)
  let out = try ledger.run(command, now: now)
  let after = try snapshot(ledger)
  #expect(after.head.seq == before.head.seq, "log grew", sourceLocation: sourceLocation)
  #expect(after.head.chain == before.head.chain, "chain moved", sourceLocation: sourceLocation)
  #expect(after == before, "a rejected command changed the ledger", sourceLocation: sourceLocation)
  #expect(ledger.head == before.head, sourceLocation: sourceLocation)
  guard case .rejected(let r) = out else {
    Issue.record("expected \(code.name), got \(out)", sourceLocation: sourceLocation)
    return nil
  }
  #expect(r.code == code, "\(r)", sourceLocation: sourceLocation)
  return r
}

/// Applies `command` and expects `.duplicate(seq:)` with nothing appended.
func expectDuplicate(
  _ ledger: Ledger, _ command: Command, of seq: UInt64, now: Int64 = t0,
  sourceLocation: SourceLocation = #_sourceLocation
) throws {
  let before = try snapshot(ledger)
  let out = try ledger.run(command, now: now)
  #expect(out == .duplicate(seq: seq), sourceLocation: sourceLocation)
  #expect(
    try snapshot(ledger) == before, "a duplicate changed the ledger",
    sourceLocation: sourceLocation)
}

// MARK: - An independent replay of balances from the log

/// Balances computed from the events of the log with plain arithmetic (not the engine's
/// `Balances` helpers): the reference the history and statement tests compare with.
struct ReferenceReplay {
  var balances: [String: Balances] = [:]
  var holds: [String: [Leg]] = [:]
  /// Balances of every account after each seq (index = seq).
  var after: [[String: Balances]] = [[:]]

  mutating func apply(_ event: Event) {
    func add(_ legs: [Leg], pending: Bool, sign: Int128, amounts: [Int128]? = nil) {
      for (i, l) in legs.enumerated() {
        var b = balances[l.account] ?? .zero
        let a = (amounts?[i] ?? l.amountMinor) * sign
        switch (pending, l.side) {
        case (false, .debit): b.postedDebits += a
        case (false, .credit): b.postedCredits += a
        case (true, .debit): b.pendingDebits += a
        case (true, .credit): b.pendingCredits += a
        }
        balances[l.account] = b
      }
    }
    switch event.body {
    case .accountOpened(let a): balances[a.name] = .zero
    case .entryPosted(let e): add(e.legs, pending: false, sign: 1)
    case .holdPlaced(let h):
      holds[h.id] = h.legs
      add(h.legs, pending: true, sign: 1)
    case .holdCaptured(let c):
      let legs = holds[c.holdId] ?? []
      add(legs, pending: true, sign: -1)
      add(legs, pending: false, sign: 1, amounts: c.amountsMinor)
    case .holdReleased(let id), .holdExpired(let id):
      add(holds[id] ?? [], pending: true, sign: -1)
    default: break
    }
    precondition(after.count == Int(event.seq), "events out of order")
    after.append(balances)
  }

  static func of(_ ledger: Ledger) throws -> ReferenceReplay {
    var r = ReferenceReplay()
    var from: UInt64 = 1
    while true {
      let page = try ledger.log(fromSeq: from, limit: 1000)
      for rec in page { r.apply(rec.event) }
      guard let last = page.last else { break }
      from = last.event.seq + 1
    }
    return r
  }
}

// MARK: - Tampering (raw LMDB writes behind the engine's back)

/// Runs `body` in a raw LMDB write transaction on the ledger's environment and commits it.
func tamper(_ ledger: Ledger, _ body: (Txn, DBs) throws -> Void) throws {
  let raw = try ledger.env.begin(readOnly: false)
  do {
    try body(Txn(txn: raw), ledger.dbs)
  } catch {
    mdb_txn_abort(raw)
    throw error
  }
  try check(mdb_txn_commit(raw), "commit")
}

/// A copy of the value stored under a u64 key.
func storedValue(_ t: Txn, _ dbi: MDB_dbi, u64 key: UInt64) throws -> [UInt8]? {
  try t.get(dbi, u64: key).map { Array($0) }
}

func putValue(_ t: Txn, _ dbi: MDB_dbi, u64 key: UInt64, _ value: [UInt8]) throws {
  try value.withUnsafeBytes { v in try t.put(dbi, u64: key, v) }
}

/// Rewrites the last history row of account `number` (its balances now) with `change`;
/// returns the row's seq.
@discardableResult
func tamperLastHistoryRow(
  _ t: Txn, _ dbs: DBs, _ number: UInt64, _ change: (inout Balances) -> Void
)
  throws -> UInt64
{
  let (b0, seq) = try Ledger.historyAt(t, dbs, number: number, seq: .max)
  var b = b0
  change(&b)
  var w = ByteWriter()
  Records.write(b, &w)
  try historyKey(number, seq).withUnsafeBytes { k in
    try w.bytes.withUnsafeBytes { v in try t.put(dbs.history, k, v) }
  }
  return seq
}

/// The history key (account number, seq).
func historyKey(_ number: UInt64, _ seq: UInt64) -> [UInt8] {
  var w = ByteWriter(capacity: 16)
  w.u64(number)
  w.u64(seq)
  return w.bytes
}
