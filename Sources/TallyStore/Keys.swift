import CLMDB
import TallyCore
import TallyCrypto

/// What a key may do (docs/PROTOCOL.md, "Roles").
public enum Role: String, Sendable, CaseIterable, Equatable {
  /// Keys, partners, everything.
  case admin
  /// Bound to one partner: posts entries and holds on its own accounts (and platform
  /// accounts it was granted), reads only its own accounts.
  case service
  /// Reads everything, posts nothing.
  case ops
  /// Reads the log, hashes and head only.
  case auditor
}

/// An API key. The secret is stored here, in the `keys` database, which is not part of the
/// log: exports and checkpoints never contain it, and `rebuild` never touches it.
public struct KeyRecord: Sendable, Equatable {
  public var id: String
  public var role: Role
  /// The partner a `service` key is bound to; nil for the other roles.
  public var partner: String?
  /// Platform accounts a `service` key may also use in its entries and holds.
  public var grants: [String]
  /// 64 lower-case hex characters. The HMAC key is this text's bytes (docs/PROTOCOL.md).
  public var secret: String
  public var createdNanos: Int64
  public var revokedNanos: Int64?

  public var isRevoked: Bool { revokedNanos != nil }
}

public enum KeyLimits {
  /// Keys per ledger: KEY.LIST returns them all in one response, so bound it.
  public static let keysMax = 10_000
  /// Platform accounts one service key may be granted.
  public static let grantsPerKeyMax = 64
  /// Secret entropy: 32 random bytes, shown as 64 hex characters.
  public static let secretBytes = 32
}

enum KeyCodec {
  static let version: UInt8 = 1

  static func encode(_ k: KeyRecord) -> [UInt8] {
    var w = ByteWriter(capacity: 128)
    w.u8(version)
    w.u8(UInt8(Role.allCases.firstIndex(of: k.role)!))
    w.optionalStr(k.partner)
    w.u16(UInt16(k.grants.count))
    for g in k.grants { w.str(g) }
    w.str(k.secret)
    w.i64(k.createdNanos)
    w.i64(k.revokedNanos ?? 0)
    return w.bytes
  }

  static func decode(id: String, _ v: UnsafeRawBufferPointer) throws(DecodeError) -> KeyRecord {
    var r = ByteReader(v)
    let ver = try r.u8("key version")
    guard ver == version else { throw DecodeError(offset: 0, reason: "key version \(ver)") }
    let roleIndex = Int(try r.u8("role"))
    guard roleIndex < Role.allCases.count else {
      throw DecodeError(offset: 1, reason: "role \(roleIndex)")
    }
    let partner = try r.optionalStr("partner")
    var grants = [String]()
    for _ in 0..<Int(try r.u16("grants")) { grants.append(try r.str("grant")) }
    let secret = try r.str("secret")
    let created = try r.i64("created")
    let revoked = try r.i64("revoked")
    try r.expectEnd("key")
    return KeyRecord(
      id: id, role: Role.allCases[roleIndex], partner: partner, grants: grants, secret: secret,
      createdNanos: created, revokedNanos: revoked == 0 ? nil : revoked)
  }
}

extension LedgerQuerying {
  public func key(_ id: String) throws(StoreError) -> KeyRecord? {
    guard let dbi = reader.dbs.keys else { return nil }
    return try reader.read { t in
      guard let v = try t.get(dbi, string: id) else { return nil }
      do { return try KeyCodec.decode(id: id, v) } catch {
        throw StoreError.corrupt("key \(id): \(error)")
      }
    }
  }

  /// All keys in id order (at most `KeyLimits.keysMax` exist).
  public func keys() throws(StoreError) -> [KeyRecord] {
    guard let dbi = reader.dbs.keys else { return [] }
    return try reader.read { t in
      try Self.page(t, dbi, after: nil, limit: KeyLimits.keysMax) { k, v in
        try KeyCodec.decode(id: String(decoding: k, as: UTF8.self), v)
      }
    }
  }
}

extension Ledger {
  /// Creates a key with a random id and secret. A `service` key needs an existing partner;
  /// its grants must be existing platform accounts. Other roles take neither.
  public func createKey(role: Role, partner: String?, grants: [String] = [], now: Int64)
    throws(StoreError) -> Result<KeyRecord, Rejection>
  {
    precondition(!readOnly, "createKey on a read-only ledger")
    if role == .service {
      guard let partner else {
        return .failure(
          Rejection(.invalidField, "a service key needs a partner", ["field": "partner"]))
      }
      if try reader.readState({ s in try s.partner(partner) }) == nil {
        return .failure(
          Rejection(.partnerNotFound, "partner \(partner) does not exist", ["partner": partner]))
      }
      if grants.count > KeyLimits.grantsPerKeyMax {
        return .failure(
          Rejection(
            .invalidField, "at most \(KeyLimits.grantsPerKeyMax) grants", ["field": "grants"]))
      }
      for g in grants {
        let a = try reader.readState { s in try s.account(g) }
        guard let a else {
          return .failure(
            Rejection(.accountNotFound, "account \(g) does not exist", ["account": g]))
        }
        guard a.partner == Machine.platformPartner else {
          return .failure(
            Rejection(
              .invalidField, "grant \(g) is not a platform account", ["field": "grants"]))
        }
      }
    } else if partner != nil || !grants.isEmpty {
      return .failure(
        Rejection(
          .invalidField, "only service keys take a partner or grants", ["field": "partner"]))
    }
    guard let dbi = dbs.keys else { throw .corrupt("keys database is not open") }
    let record = KeyRecord(
      id: "key_" + Secrets.random(8).hex, role: role, partner: partner, grants: grants,
      secret: Secrets.random(KeyLimits.secretBytes).hex, createdNanos: now, revokedNanos: nil)
    let full = try writeAux { (t) throws(StoreError) -> Bool in
      if try t.count(dbi) >= KeyLimits.keysMax { return false }
      try t.put(dbi, string: record.id, KeyCodec.encode(record))
      return true
    }
    if !full {
      return .failure(
        Rejection(.invalidField, "at most \(KeyLimits.keysMax) keys", ["field": "key"]))
    }
    return .success(record)
  }

  /// Revokes a key (idempotent: revoking a revoked key keeps its first revocation time).
  public func revokeKey(_ id: String, now: Int64) throws(StoreError) -> KeyRecord? {
    precondition(!readOnly, "revokeKey on a read-only ledger")
    guard let dbi = dbs.keys else { throw .corrupt("keys database is not open") }
    return try writeAux { (t) throws(StoreError) -> KeyRecord? in
      guard let v = try t.get(dbi, string: id) else { return nil }
      var k: KeyRecord
      do { k = try KeyCodec.decode(id: id, v) } catch {
        throw StoreError.corrupt("key \(id): \(error)")
      }
      if k.revokedNanos == nil {
        k.revokedNanos = now
        try t.put(dbi, string: id, KeyCodec.encode(k))
      }
      return k
    }
  }

  /// One write transaction outside the log (keys, kept checkpoints). What it puts is
  /// appended to the aux journal and synced before LMDB commits: durable when this returns.
  func writeAux<R>(_ body: (AuxTxn) throws(StoreError) -> R) throws(StoreError) -> R {
    guard let aux else { throw .corrupt("write outside the log without the aux journal") }
    try growIfNeeded()
    let raw = try env.begin(readOnly: false)
    let r: R
    let t = AuxTxn(txn: Txn(txn: raw), dbs: dbs)
    do {
      r = try body(t)
      if !t.records.isEmpty {
        let end = try aux.append(t.records)
        try withBytes(of: UInt64(end).bigEndian) { (v) throws(StoreError) in
          try t.txn.put(dbs.meta, Self.metaKey("aux"), v)
        }
      }
    } catch {
      mdb_txn_abort(raw)
      throw error
    }
    try check(mdb_txn_commit(raw), "commit")
    return r
  }

  /// Opens the `keys` database, creating it in a read-write ledger (directories made before
  /// keys existed gain it on first read-write open; its absence is an empty key set).
  /// Opens a named database that older directories may lack: created in a read-write open,
  /// nil when absent in a read-only one.
  static func openNamed(_ env: Environment, _ name: String, create: Bool) throws(StoreError)
    -> MDB_dbi?
  {
    let raw = try env.begin(readOnly: !create)
    var h: MDB_dbi = 0
    let rc = mdb_dbi_open(raw, name, create ? UInt32(MDB_CREATE) : 0, &h)
    if rc == MDB_NOTFOUND {
      mdb_txn_abort(raw)
      return nil
    }
    if rc != 0 {
      mdb_txn_abort(raw)
      try check(rc, "dbi_open \(name)")
    }
    try check(mdb_txn_commit(raw), "commit")
    return h
  }
}

/// A write transaction on the keys and checkpoints tables that records each put for the aux
/// journal.
final class AuxTxn {
  let txn: Txn
  let dbs: DBs
  var records: [AuxJournal.Record] = []

  init(txn: Txn, dbs: DBs) {
    self.txn = txn
    self.dbs = dbs
  }

  private func table(_ dbi: MDB_dbi) -> AuxJournal.Table {
    if dbi == dbs.keys { return .keys }
    precondition(dbi == dbs.checkpoints, "aux write to a table outside the aux journal")
    return .checkpoints
  }

  func get(_ dbi: MDB_dbi, string key: String) throws(StoreError) -> UnsafeRawBufferPointer? {
    try txn.get(dbi, string: key)
  }

  func get(_ dbi: MDB_dbi, u64 key: UInt64) throws(StoreError) -> UnsafeRawBufferPointer? {
    try txn.get(dbi, u64: key)
  }

  func count(_ dbi: MDB_dbi) throws(StoreError) -> Int { try txn.count(dbi) }

  func put(_ dbi: MDB_dbi, string key: String, _ value: [UInt8]) throws(StoreError) {
    try txn.put(dbi, string: key, value)
    records.append(.init(table: table(dbi), key: Array(key.utf8), value: value))
  }

  func put(_ dbi: MDB_dbi, u64 key: UInt64, _ value: UnsafeRawBufferPointer) throws(StoreError) {
    try txn.put(dbi, u64: key, value)
    records.append(
      .init(
        table: table(dbi), key: withUnsafeBytes(of: key.bigEndian) { Array($0) },
        value: Array(value)))
  }
}
