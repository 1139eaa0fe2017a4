import CLMDB
import Foundation
import TallyCore
import TallyStore

#if canImport(Glibc)
  import Glibc
#elseif canImport(Darwin)
  import Darwin
#endif

/// Direct writes into a data directory's LMDB environment through the LMDB C API, bypassing
/// the engine: the way a disk fault or an attacker would change it. The layouts are the
/// documented ones (docs/FORMAT.md, "Storage"): `log` keyed by big-endian u64, `history` by
/// big-endian (u64 account number, u64 seq), a history row being 4 × i128 big-endian.
enum Tamper {
  struct Failed: Error, CustomStringConvertible {
    var description: String
  }

  static func check(_ rc: Int32, _ what: String) throws {
    if rc != 0 { throw Failed(description: "\(what): \(String(cString: mdb_strerror(rc)))") }
  }

  /// Runs `body` in one LMDB transaction on `dataDir` (write: committed, holding the writer
  /// lock like any writer; read: aborted).
  static func transaction<R>(
    _ dataDir: String, write: Bool, _ body: (OpaquePointer, (String) throws -> MDB_dbi) throws -> R
  ) throws -> R {
    var lockFD: Int32 = -1
    if write {
      lockFD = open(dataDir + "/tally.lock", O_RDWR | O_CLOEXEC)
      guard lockFD >= 0, flock(lockFD, LOCK_EX | LOCK_NB) == 0 else {
        if lockFD >= 0 { close(lockFD) }
        throw Failed(description: "cannot take the writer lock of \(dataDir)")
      }
    }
    defer { if lockFD >= 0 { close(lockFD) } }
    var env: OpaquePointer?
    try check(mdb_env_create(&env), "env_create")
    defer { mdb_env_close(env) }
    try check(mdb_env_set_maxdbs(env, 16), "set_maxdbs")
    try check(mdb_env_open(env, dataDir, write ? 0 : UInt32(MDB_RDONLY), 0o640), "env_open")
    var txn: OpaquePointer?
    try check(mdb_txn_begin(env, nil, write ? 0 : UInt32(MDB_RDONLY), &txn), "txn_begin")
    let dbi: (String) throws -> MDB_dbi = { name in
      var h: MDB_dbi = 0
      try check(mdb_dbi_open(txn, name, 0, &h), "dbi_open \(name)")
      return h
    }
    let result: R
    do {
      result = try body(txn!, dbi)
    } catch {
      mdb_txn_abort(txn)
      throw error
    }
    if write { try check(mdb_txn_commit(txn), "commit") } else { mdb_txn_abort(txn) }
    return result
  }

  static func get(_ txn: OpaquePointer, _ dbi: MDB_dbi, u64 key: UInt64) throws -> [UInt8]? {
    var k = key.bigEndian
    return try withUnsafeMutableBytes(of: &k) { kb in
      var kv = MDB_val(mv_size: 8, mv_data: kb.baseAddress)
      var v = MDB_val()
      let rc = mdb_get(txn, dbi, &kv, &v)
      if rc == MDB_NOTFOUND { return nil }
      try check(rc, "get")
      return Array(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
    }
  }

  static func put(_ txn: OpaquePointer, _ dbi: MDB_dbi, u64 key: UInt64, _ value: [UInt8]) throws {
    var k = key.bigEndian
    var value = value
    try withUnsafeMutableBytes(of: &k) { kb in
      try value.withUnsafeMutableBytes { vb in
        var kv = MDB_val(mv_size: 8, mv_data: kb.baseAddress)
        var vv = MDB_val(mv_size: vb.count, mv_data: vb.baseAddress)
        try check(mdb_put(txn, dbi, &kv, &vv, 0), "put")
      }
    }
  }

  /// The stored bytes of the event at `seq`.
  static func eventBytes(_ dataDir: String, seq: UInt64) throws -> [UInt8] {
    try transaction(dataDir, write: false) { txn, dbi in
      guard let v = try get(txn, try dbi("log"), u64: seq) else {
        throw Failed(description: "no event at seq \(seq)")
      }
      return v
    }
  }

  /// XORs byte `offset` (from the end when negative) of the stored event at `seq` with `mask`.
  static func flipEventByte(_ dataDir: String, seq: UInt64, offset: Int, mask: UInt8 = 0x01) throws
  {
    try transaction(dataDir, write: true) { txn, dbi in
      let log = try dbi("log")
      guard var bytes = try get(txn, log, u64: seq) else {
        throw Failed(description: "no event at seq \(seq)")
      }
      bytes[offset >= 0 ? offset : bytes.count + offset] ^= mask
      try put(txn, log, u64: seq, bytes)
    }
  }

  /// The journal's records as (segment path, frame offset, seq, event length), walking the
  /// documented frames (docs/FORMAT.md, "The journal").
  static func journalRecords(_ dataDir: String) throws -> [(String, Int, UInt64, Int)] {
    let dir = dataDir + "/journal"
    let names = try FileManager.default.contentsOfDirectory(atPath: dir)
      .filter { $0.hasSuffix(".seg") }.sorted()
    var out = [(String, Int, UInt64, Int)]()
    for n in names {
      let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + n)))
      func u32(_ o: Int) -> Int { bytes[o..<(o + 4)].reduce(0) { $0 << 8 | Int($1) } }
      func u64(_ o: Int) -> UInt64 { bytes[o..<(o + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
      var o = 4096
      while o + 88 <= bytes.count && u32(o) == 0x544A_5231 {
        let len = u32(o + 4)
        out.append((dir + "/" + n, o, u64(o + 8), len))
        o += 88 + (len + 7) & ~7
      }
    }
    return out
  }

  /// Writes `bytes` at `offset` of `path` (a torn write a crash could leave).
  static func writeAt(_ path: String, _ offset: Int, _ bytes: [UInt8]) throws {
    let fd = open(path, O_WRONLY)
    guard fd >= 0 else { throw Failed(description: "cannot open \(path)") }
    defer { close(fd) }
    let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, off_t(offset)) }
    guard n == bytes.count else { throw Failed(description: "short write to \(path)") }
  }

  /// Flips one byte of the event bytes of record `seq` in the journal (the log itself).
  static func flipJournalByte(_ dataDir: String, seq: UInt64, offset: Int, mask: UInt8 = 0x01)
    throws
  {
    guard let (path, at, _, len) = try journalRecords(dataDir).first(where: { $0.2 == seq }) else {
      throw Failed(description: "no journal record for seq \(seq)")
    }
    let pos = at + 88 + (offset >= 0 ? offset : len + offset)
    let fd = open(path, O_RDWR)
    guard fd >= 0 else { throw Failed(description: "cannot open \(path)") }
    defer { close(fd) }
    var b: UInt8 = 0
    guard pread(fd, &b, 1, off_t(pos)) == 1 else { throw Failed(description: "read \(path)") }
    b ^= mask
    guard pwrite(fd, &b, 1, off_t(pos)) == 1 else { throw Failed(description: "write \(path)") }
  }

  /// Adds `delta` to the stored posted credits of account `number` (the second i128 of its
  /// last `history` row, which holds its balances now).
  static func addToPostedCredits(_ dataDir: String, accountNumber number: UInt64, _ delta: Int128)
    throws
  {
    try transaction(dataDir, write: true) { txn, dbi in
      let history = try dbi("history")
      var cursor: OpaquePointer?
      try check(mdb_cursor_open(txn, history, &cursor), "cursor_open")
      defer { mdb_cursor_close(cursor) }
      // The last key of the account: seek past (number, max), step back.
      var seek = [UInt8](repeating: 0, count: 16)
      for i in 0..<8 { seek[i] = UInt8(truncatingIfNeeded: (number + 1) >> (56 - 8 * UInt64(i))) }
      var k = MDB_val()
      var v = MDB_val()
      let rc = seek.withUnsafeMutableBytes { sb -> Int32 in
        k = MDB_val(mv_size: 16, mv_data: sb.baseAddress)
        return mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE)
      }
      try check(
        mdb_cursor_get(cursor, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV), "cursor_get")
      let key = Array(UnsafeRawBufferPointer(start: k.mv_data, count: k.mv_size))
      var row = Array(UnsafeRawBufferPointer(start: v.mv_data, count: v.mv_size))
      var n: UInt64 = 0
      for b in key.prefix(8) { n = n << 8 | UInt64(b) }
      guard key.count == 16, n == number, row.count == 64 else {
        throw Failed(description: "no 64-byte history row for account \(number)")
      }
      var c: UInt128 = 0
      for b in row[16..<32] { c = c << 8 | UInt128(b) }
      var w = UInt128(bitPattern: Int128(bitPattern: c) + delta)
      for i in (16..<32).reversed() {
        row[i] = UInt8(truncatingIfNeeded: w)
        w >>= 8
      }
      try key.withUnsafeBytes { kb in
        try row.withUnsafeBytes { rb in
          var kk = MDB_val(mv_size: 16, mv_data: UnsafeMutableRawPointer(mutating: kb.baseAddress))
          var vv = MDB_val(mv_size: 64, mv_data: UnsafeMutableRawPointer(mutating: rb.baseAddress))
          try check(mdb_put(txn, history, &kk, &vv, 0), "put history")
        }
      }
    }
  }

  /// Opens debit-normal accounts in one batch through the engine's public API (a fast
  /// fixture for the crash test).
  static func openAccounts(_ dataDir: String, _ names: [String], currency: String) throws {
    let ledger = try Ledger(path: dataDir, mode: .readWrite)
    let commands = names.map {
      Command.openAccount(
        AccountOpened(
          name: $0, partner: Machine.platformPartner, currency: currency, normalSide: .debit))
    }
    let now = Int64(Date().timeIntervalSince1970 * 1e9)
    let outcomes = try withExtendedLifetime(ledger) { try ledger.apply(commands, now: now) }
    for (name, o) in zip(names, outcomes) {
      guard case .applied = o else { throw Failed(description: "open \(name): \(o)") }
    }
  }

  /// The committed head seq, read in-process (read-only, no writer lock): cheap enough to poll
  /// while another process writes.
  static func headSeq(_ dataDir: String) throws -> UInt64 {
    let ledger = try Ledger(path: dataDir, mode: .readOnly)
    return try withExtendedLifetime(ledger) { try ledger.currentHead().seq }
  }
}
