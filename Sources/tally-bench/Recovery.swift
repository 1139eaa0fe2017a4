import Glibc
import TallyCore
import TallyStore
import TallyWorkload

/// `--power-loss-images N`: the crash-image campaign (docs/FORMAT.md, "Crashes and
/// recovery") in DIR, printing its report as JSON; exits 1 on any failure.
func powerLossBench(dir: String, images: Int, seed: UInt64, groups: Int) {
  let start = Workload.monotonicNanos()
  let report: PowerLossCampaign.Report
  do {
    report = try PowerLossCampaign.run(
      workDir: dir, images: images, seed: seed, groups: groups
    ) { n in
      if n % 100 == 0 { _ = "power-loss: \(n) images\n".withCString { write(2, $0, strlen($0)) } }
    }
  } catch {
    die("\(error)")
  }
  let seconds = Double(Workload.monotonicNanos() - start) / 1e9
  print(
    #"{"seed":\#(report.seed),"operations":\#(report.operations),"images":\#(report.images),"#
      + #""before_init":\#(report.beforeInit),"with_newer_data_mdb":\#(report.withFutureData),"#
      + #""torn_tails":\#(report.tornTails),"restored_snapshots":\#(report.restoredSnapshots),"#
      + #""rebuilt":\#(report.rebuilt),"acknowledged_checked":\#(report.acknowledgedChecked),"#
      + #""failures":\#(report.failures.count),"seconds":\#(Int(seconds))}"#)
  for f in report.failures { _ = "  \(f)\n".withCString { write(2, $0, strlen($0)) } }
  exit(report.failures.isEmpty ? 0 : 1)
}

/// `--recovery-entries M`: writes M entries (batch 10,000, 10k accounts), closes, then
/// marks the projections as written by another boot and reopens: the time of that open is
/// the recovery after an OS crash (every event replayed from the journal into new
/// projections). Then `verify` on the result, timed. Prints both rates.
/// With `snapshotTail` T, a snapshot is written T entries before the end (timed): the
/// recovery then restores it and replays only those T entries.
func recoveryBench(dir: String, entries: Int, accounts: Int, snapshotTail: Int? = nil) {
  var snapshotJSON = ""
  do {
    let ledger = try Ledger.create(at: dir, now: Workload.wallNanos())
    try Workload.openAccounts(ledger, count: accounts)
    var i = 1
    while i <= entries {
      var commands = [Command]()
      while i <= entries && commands.count < 10_000 {
        commands.append(Workload.entry(i, accounts: accounts))
        i += 1
      }
      _ = try ledger.apply(commands, now: Workload.wallNanos())
      if let tail = snapshotTail, snapshotJSON.isEmpty, i > entries - tail {
        let s0 = Workload.monotonicNanos()
        guard let info = try ledger.writeSnapshot() else { die("no snapshot written") }
        let secs = Double(Workload.monotonicNanos() - s0) / 1e9
        snapshotJSON =
          #""snapshot_seq":\#(info.head.seq),"snapshot_bytes":\#(info.bytes),"#
          + #""snapshot_seconds":\#(secs),"#
      }
    }
    try ledger.close()
  } catch {
    die("\(error)")
  }
  let marker = dir + "/journal/lmdb-unsynced"
  let fd = open(marker, O_WRONLY | O_CREAT | O_TRUNC, 0o640)
  guard fd >= 0 else { die("cannot write \(marker)") }
  _ = "another-boot\n".withCString { write(fd, $0, strlen($0)) }
  close(fd)
  var usage = rusage()
  let t0 = Workload.monotonicNanos()
  let ledger: Ledger
  do { ledger = try Ledger(path: dir) } catch { die("\(error)") }
  let t1 = Workload.monotonicNanos()
  let events = ledger.head.seq
  let how = "\(ledger.recovery)"
  let report: VerifyReport
  do { report = try ledger.verify() } catch { die("\(error)") }
  let t2 = Workload.monotonicNanos()
  if !report.ok { die("verify failed: \(report.problems)") }
  getrusage(RUSAGE_SELF.rawValue, &usage)
  let rebuild = Double(t1 - t0) / 1e9
  let verify = Double(t2 - t1) / 1e9
  print(
    #"{"events":\#(events),"recovery":"\#(how)",\#(snapshotJSON)"rebuild_seconds":\#(rebuild),"#
      + #""rebuild_events_per_sec":\#(Int(Double(events) / rebuild)),"#
      + #""verify_seconds":\#(verify),"verify_events_per_sec":\#(Int(Double(events) / verify)),"#
      + #""peak_rss_kb":\#(usage.ru_maxrss)}"#)
}
