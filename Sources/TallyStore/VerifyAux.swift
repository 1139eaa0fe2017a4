import TallyCore
import TallyCrypto

extension Ledger {
  /// Checks `aux.log` against the `keys` and `checkpoints` tables: every record up to what
  /// LMDB says it holds (meta `aux`) must read back whole, and the last value of each key
  /// there must be LMDB's row, with no row LMDB holds missing from it. A damaged record in
  /// that range is an acknowledged key or kept checkpoint that an OS crash would lose (the
  /// tables are rebuilt from this file then), so it is reported, not skipped.
  func verifyAux(_ t: Txn, journal: Journal, _ problems: inout [VerifyProblem]) throws {
    func bad(_ m: String) { problems.append(VerifyProblem(kind: .aux, message: m)) }
    let applied: UInt64
    if let v = try t.get(dbs.meta, Self.metaKey("aux")) {
      guard v.count == 8 else { return bad("meta aux is \(v.count) bytes, not 8") }
      applied = UInt64(bigEndian: v.loadUnaligned(as: UInt64.self))
    } else {
      applied = 0
    }
    let (file, records): (AuxJournal?, [AuxJournal.Record])
    do {
      (file, records) = try AuxJournal.open(
        directory: journal.directory, files: options.files, repair: false)
    } catch {
      return bad("\(error)")
    }
    let good = UInt64(file?.size ?? 0)
    if good < applied {
      return bad(
        "\(AuxJournal.fileName): the record at offset \(good) is damaged or missing; the "
          + "keys and checkpoints tables hold \(applied) bytes of it")
    }
    guard let keys = dbs.keys, let checkpoints = dbs.checkpoints else { return }
    var latest: [AuxJournal.Table: [[UInt8]: [UInt8]]] = [.keys: [:], .checkpoints: [:]]
    for r in records where UInt64(r.end) <= applied {
      latest[r.table, default: [:]][r.key] = r.value
    }
    for (table, dbi) in [(AuxJournal.Table.keys, keys), (.checkpoints, checkpoints)] {
      let rows = latest[table] ?? [:]
      var seen = 0
      try Self.scan(t, dbi) { k, v in
        seen += 1
        guard let value = rows[Array(k)] else {
          return bad(
            "\(table) row \(String(decoding: k.prefix(64), as: UTF8.self)) is not in "
              + "\(AuxJournal.fileName)")
        }
        if value != Array(v) {
          bad(
            "\(table) row \(String(decoding: k.prefix(64), as: UTF8.self)) differs from "
              + "\(AuxJournal.fileName)")
        }
      }
      if seen != rows.count {
        bad("\(rows.count) \(table) records in \(AuxJournal.fileName), \(seen) rows in LMDB")
      }
    }
  }
}

extension Ledger {
  /// Checks every snapshot a recovery could restore (`DIR/snapshots/<seq>/`) as a recovery
  /// would (`checkSnapshot`: its description whole and of this ledger, its `data.mdb` of the
  /// size and SHA-256 described, structurally sound, holding the head described), and that
  /// the head it holds is this log's: the chain hash at its seq. A damaged snapshot loses no
  /// data (an OS crash would then rebuild from the journal), but it is damage on this disk
  /// that nothing else reads until a recovery needs it, so it is reported. Skipped, as a
  /// recovery skips them: a directory without a description (a snapshot being written, or
  /// one a crash interrupted), and snapshots past `head` or gone meanwhile (a server writing
  /// beside this read-only open).
  func verifySnapshots(
    _ t: Txn, head: LogHead, journal: Journal, _ problems: inout [VerifyProblem]
  ) throws {
    let dir = snapshotsDir
    let seqs = (try directoryNames(dir) ?? []).compactMap { Self.snapshotSeq($0) }.sorted()
    for seq in seqs where seq <= head.seq {
      let d = dir + "/" + Self.snapshotName(seq)
      let described = d + "/" + Self.snapshotFileName
      guard fileExists(described) else { continue }
      func bad(_ m: String) {
        // Removed by a server meanwhile: not damage.
        guard fileExists(described) else { return }
        problems.append(
          VerifyProblem(
            kind: .snapshot, seq: seq,
            message: "snapshots/\(Self.snapshotName(seq)): \(m); a recovery would not use it"))
      }
      let info: SnapshotInfo
      do {
        switch try Self.checkSnapshot(d, seq: seq, ledgerID: journal.ledgerID) {
        case .failure(let why):
          bad("\(why)")
          continue
        case .success(let i): info = i
        }
      } catch {
        bad("\(error)")
        continue
      }
      if seq > 0 {
        guard let v = try t.get(dbs.hashes, u64: seq), v.count == 64 else {
          bad("the log has no hashes at its head")
          continue
        }
        if Hash32(raw: UnsafeRawBufferPointer(rebasing: v[32..<64])) != info.head.chain {
          bad("its head's chain hash is not the log's at seq \(seq)")
        }
      }
    }
  }
}
