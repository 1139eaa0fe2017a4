import Glibc
import TallyCore

/// A power-loss campaign: a recorded workload (entries in groups, keys, kept checkpoints, a
/// clean close and reopen), then crash images at random operations of it, each opened as
/// after a reboot and checked: it recovers, `verify` passes, and every entry and key that
/// was acknowledged before the crash point is there with its seq.
public enum PowerLossCampaign {
  public struct Report: Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var operations = 0
    public var images = 0
    /// Images whose crash point came before the directory was initialised (no journal yet).
    public var beforeInit = 0
    /// Images given the run's final `data.mdb`, newer than their journal.
    public var withFutureData = 0
    /// Images whose projections were restored from a snapshot, and rebuilt from the journal.
    public var restoredSnapshots = 0
    public var rebuilt = 0
    /// Images whose journal ended in a torn or zeroed record that recovery cut.
    public var tornTails = 0
    public var acknowledgedChecked = 0
    public var eventsRecovered = 0
    public var failures: [String] = []

    public var description: String {
      "seed \(seed): \(images) images over \(operations) recorded operations; "
        + "\(beforeInit) before init, \(withFutureData) with a newer data.mdb, \(tornTails) "
        + "torn tails cut, \(restoredSnapshots) restored from a snapshot, \(rebuilt) rebuilt; \(acknowledgedChecked) acknowledged entries and keys checked, "
        + "\(eventsRecovered) events recovered; \(failures.count) failures"
    }
  }

  struct Ack {
    var afterOp: Int
    var entries: [(id: String, seq: UInt64)]
    var keys: [String]
  }

  /// Runs the workload in `workDir/live` and checks `images` crash images (built one at a
  /// time in `workDir/image`). Bounded: `groups` write groups, then `images` images.
  public static func run(
    workDir: String, images: Int, seed: UInt64, groups: Int = 80,
    segmentBytes: Int = 32 << 10, progress: ((Int) -> Void)? = nil
  ) throws -> Report {
    var rng = SplitMix(seed: seed)
    var report = Report(seed: seed)
    let live = workDir + "/live"
    let recorder = RecordingFiles()
    var options = LedgerOptions()
    options.files = recorder
    options.segmentBytes = segmentBytes
    var acks = [Ack]()
    var now: Int64 = 1_700_000_000_000_000_000
    let accounts = (0..<16).map { "acct:\($0)" }
    do {
      var ledger: Ledger? = try Ledger.create(at: live, now: now, options: options)
      var setup = [Command]()
      for a in accounts {
        setup.append(
          .openAccount(
            AccountOpened(
              name: a, partner: Machine.platformPartner, currency: "EUR", normalSide: .debit)))
      }
      _ = try ledger!.apply(setup, now: now)
      var entry = 0
      for g in 0..<groups {
        now += 1_000_000
        if g == groups / 2 {
          // A clean close and a reopen: the marker goes and comes back.
          try ledger!.close()
          ledger = nil
          ledger = try Ledger(path: live, options: options)
        }
        if g % 17 == 5 {
          let k = try ledger!.createKey(role: .ops, partner: nil, now: now).get()
          acks.append(Ack(afterOp: recorder.count, entries: [], keys: [k.id]))
          continue
        }
        if g % 23 == 11 {
          _ = try ledger!.keepCheckpoint()
          continue
        }
        if g % 19 == 7 {
          // Both ways of making one, in turn: a copy of the live map, a build from the last.
          _ = try g / 19 % 2 == 0 ? ledger!.writeSnapshot() : ledger!.buildSnapshot()
          continue
        }
        var commands = [Command]()
        var ids = [String]()
        for _ in 0..<Int.random(in: 1...24, using: &rng) {
          entry += 1
          let id = "e-\(entry)"
          let from = accounts.randomElement(using: &rng)!
          var to = accounts.randomElement(using: &rng)!
          while to == from { to = accounts.randomElement(using: &rng)! }
          let amount = Int128(Int.random(in: 1...9_999, using: &rng))
          commands.append(
            .postEntry(
              EntrySpec(
                id: id,
                legs: [
                  LegSpec(account: to, side: .debit, amountMinor: amount),
                  LegSpec(account: from, side: .credit, amountMinor: amount),
                ])))
          ids.append(id)
        }
        let (outcomes, _) = try ledger!.applyWithReceipts(commands, now: now)
        var acked = [(id: String, seq: UInt64)]()
        for (i, o) in outcomes.enumerated() {
          guard case .applied(let first, _) = o else {
            report.failures.append("workload entry \(ids[i]) was not applied: \(o)")
            continue
          }
          acked.append((ids[i], first))
        }
        acks.append(Ack(afterOp: recorder.count, entries: acked, keys: []))
      }
      try ledger!.close()
      ledger = nil
    }
    let ops = recorder.ops
    report.operations = ops.count
    let builder = CrashImages(ops)
    let imageDir = workDir + "/image"
    let liveData = try readWholeFile(live + "/data.mdb")
    let signingKey = try readWholeFile(live + "/signing.key")
    for n in 0..<images {
      let k = Int.random(in: 1...ops.count, using: &rng)
      let files = builder.image(crashAfter: k, using: &rng)
      removeDirectoryTree(imageDir)
      try makeDirectory(imageDir)
      try makeDirectory(imageDir + "/journal")
      var hasLedgerID = false
      var hasMarker = false
      for (path, bytes) in files {
        guard path.hasPrefix(live + "/") else { continue }
        let rel = String(path.dropFirst(live.count + 1))
        if rel == "journal/ledger-id" { hasLedgerID = true }
        if rel == "journal/" + Ledger.markerName { hasMarker = true }
        var parent = ""
        for part in rel.split(separator: "/").dropLast() {
          parent += "/" + part
          try makeDirectory(imageDir + parent)
        }
        try writeScratchFile(imageDir + "/" + rel, bytes)
      }
      report.images += 1
      progress?(n + 1)
      if !hasLedgerID {
        report.beforeInit += 1
        continue
      }
      try writeScratchFile(imageDir + "/signing.key", signingKey)
      if hasMarker && Bool.random(using: &rng) {
        try writeScratchFile(imageDir + "/data.mdb", liveData)
        report.withFutureData += 1
      }
      var reopen = LedgerOptions()
      reopen.segmentBytes = segmentBytes
      reopen.bootID = "after-power-loss-\(n)"
      let where_ = "image \(n) (crash after op \(k) of \(ops.count))"
      do {
        let scan = try Journal.load(directory: imageDir + "/journal", files: JournalFiles())?
          .scanEnd()
        if case .torn? = scan?.end { report.tornTails += 1 }
        let ledger = try Ledger(path: imageDir, options: reopen)
        switch ledger.recovery {
        case .restoredSnapshot: report.restoredSnapshots += 1
        case .rebuilt: report.rebuilt += 1
        case .replayed: break
        }
        let v = try ledger.verify()
        if !v.ok { report.failures.append("\(where_): verify: \(v.problems)") }
        report.eventsRecovered += Int(ledger.head.seq)
        for ack in acks where ack.afterOp <= k {
          for (id, seq) in ack.entries {
            report.acknowledgedChecked += 1
            let found = try ledger.idRecord(id)
            if found?.seq != seq {
              report.failures.append(
                "\(where_): acknowledged entry \(id) at seq \(seq) is \(found.map { "at seq \($0.seq)" } ?? "missing")"
              )
            }
          }
          for id in ack.keys {
            report.acknowledgedChecked += 1
            if try ledger.key(id) == nil {
              report.failures.append("\(where_): acknowledged key \(id) is missing")
            }
          }
        }
        try ledger.close()
      } catch {
        report.failures.append("\(where_): \(error)")
      }
      if report.failures.count >= 20 { break }
    }
    removeDirectoryTree(imageDir)
    return report
  }

  /// A small seeded generator (SplitMix64): the same seed gives the same campaign.
  public struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return z ^ (z >> 31)
    }
  }
}

func readWholeFile(_ path: String) throws(StoreError) -> [UInt8] {
  let files = JournalFiles()
  let fd = try files.open(path, create: false)
  defer { files.close(fd) }
  return try files.read(fd, count: try files.size(fd), at: 0)
}

func makeDirectory(_ path: String) throws(StoreError) {
  if mkdir(path, 0o750) != 0 && errno != EEXIST {
    throw .io("cannot create \(path): \(String(cString: strerror(errno)))")
  }
}

/// Removes a directory and the files in it, one level of subdirectories deep (the layout
/// of a data directory).
/// Removes a scratch directory and everything under it (at most `depth` levels).
func removeDirectoryTree(_ path: String, depth: Int = 4) {
  guard depth > 0, let names = try? directoryNames(path) else { return }
  for n in names {
    let p = path + "/" + n
    if (try? directoryNames(p)) != nil {
      removeDirectoryTree(p, depth: depth - 1)
    } else {
      unlink(p)
    }
  }
  rmdir(path)
}
