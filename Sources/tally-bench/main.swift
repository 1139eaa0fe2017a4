// Engine throughput driver for tools/ceiling/compare.sh: the workload of `TallyWorkload`
// (mirrored by tools/ceiling/ceiling.c), durable, one write transaction per batch.
// Usage: tally-bench --dir DIR --accounts N --entries M --batch B [--proofs N [--threads T]]
//        tally-bench --dir DIR --proofs N [--threads T] [--warmup W]   (an existing ledger)
//        tally-bench --dir DIR --power-loss-images N [--seed S] [--groups G]
//        tally-bench --dir DIR --recovery-entries M [--accounts N] [--snapshot-tail T]
//          (OS-crash recovery, verify; with a snapshot T entries before the end)
//        tally-bench --dir DIR --recon-lines N --recon-entries M [--recon-statement-out F]
//          (statement import; with F, only the ledger and the statement file F are made)
import Dispatch
import Glibc
import TallyCore
import TallyStore
import TallyWorkload

func argument(_ name: String) -> String? {
  let args = CommandLine.arguments
  guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
  return args[i + 1]
}

func die(_ message: String) -> Never {
  _ = "tally-bench: \(message)\n".withCString { write(2, $0, strlen($0)) }
  exit(2)
}

if let lines = argument("--recon-lines").flatMap(Int.init),
  let entries = argument("--recon-entries").flatMap(Int.init), let dir = argument("--dir")
{
  reconBench(
    dir: dir, lines: lines, entries: entries, statementOut: argument("--recon-statement-out"))
  exit(0)
}

if let images = argument("--power-loss-images").flatMap(Int.init), let dir = argument("--dir") {
  let seed = argument("--seed").flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
  powerLossBench(
    dir: dir, images: images, seed: seed, groups: argument("--groups").flatMap(Int.init) ?? 300)
}

if let entries = argument("--recovery-entries").flatMap(Int.init), let dir = argument("--dir") {
  recoveryBench(
    dir: dir, entries: entries, accounts: argument("--accounts").flatMap(Int.init) ?? 10_000,
    snapshotTail: argument("--snapshot-tail").flatMap(Int.init))
  exit(0)
}

guard let dir = argument("--dir") else {
  die(
    "usage: tally-bench --dir DIR --accounts N --entries M --batch B [--proofs N [--threads T]]"
  )
}

let ledger: Ledger
if argument("--entries") == nil {
  // Proofs only, on an existing ledger, read-only.
  do { ledger = try Ledger(path: dir, mode: .readOnly) } catch { die("\(error)") }
} else {
  guard let accounts = argument("--accounts").flatMap(Int.init),
    let entries = argument("--entries").flatMap(Int.init),
    let batch = argument("--batch").flatMap(Int.init), accounts >= 2, entries >= 1, batch >= 1,
    batch <= Limits.commandsPerBatchMax
  else {
    die("usage: tally-bench --dir DIR --accounts N --entries M --batch B [--proofs N]")
  }
  ledger = writeEntries(dir: dir, accounts: accounts, entries: entries, batch: batch)
}

func writeEntries(dir: String, accounts: Int, entries: Int, batch: Int) -> Ledger {
  let ledger: Ledger
  do {
    // Phase 1, untimed: open the accounts.
    ledger = try Ledger.create(at: dir, now: Workload.wallNanos())
    try Workload.openAccounts(ledger, count: accounts)
  } catch {
    die("\(error)")
  }

  // Phase 2, timed: entries in batches, commands built inside the timed loop.
  let start = Workload.monotonicNanos()
  var i = 1
  var commands = [Command]()
  commands.reserveCapacity(batch)
  do {
    while i <= entries {
      commands.removeAll(keepingCapacity: true)
      while i <= entries && commands.count < batch {
        commands.append(Workload.entry(i, accounts: accounts))
        i += 1
      }
      for o in try ledger.apply(commands, now: Workload.wallNanos()) {
        if case .rejected(let r) = o { die("entry rejected: \(r)") }
      }
    }
  } catch {
    die("\(error)")
  }
  let seconds = Double(Workload.monotonicNanos() - start) / 1e9
  var usage = rusage()
  getrusage(RUSAGE_SELF.rawValue, &usage)
  let rate = Int(Double(entries) / seconds)
  let millis = Int(seconds * 1000)
  let fraction = String(millis % 1000)
  let s = "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
  print(
    #"{"engine":"tally","accounts":\#(accounts),"entries":\#(entries),"batch":\#(batch),"#
      + #""seconds":\#(s),"entries_per_sec":\#(rate),"peak_rss_kb":\#(usage.ru_maxrss)}"#)
  return ledger
}

// Phase 3 (optional, --proofs N): N inclusion proofs for random seqs and N consistency proofs
// from random sizes, each against the head, each in its own read transaction as a server
// request would be, on --threads T threads (default 1; tallyd serves reads on 2) through the
// shared read-only `LedgerReader`. Rates are totals over all threads.
if let proofs = argument("--proofs").flatMap(Int.init), proofs > 0 {
  let threads = max(1, argument("--threads").flatMap(Int.init) ?? 1)
  let head = ledger.head.seq
  let reader = ledger.reader
  func run(_ kind: Int, count proofs: Int) -> Int64 {
    let t0 = Workload.monotonicNanos()
    DispatchQueue.concurrentPerform(iterations: threads) { t in
      var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(t) &* 0x1234_5678_9ABC_DEF1
      func nextSeq() -> UInt64 {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return 1 + (state >> 11) % head
      }
      do {
        for _ in 0..<(proofs / threads) {
          if kind == 0 {
            guard case .success = try reader.inclusionProof(seq: nextSeq(), size: nil) else {
              die("inclusion proof refused")
            }
          } else {
            guard case .success = try reader.consistencyProof(from: nextSeq(), to: head) else {
              die("consistency proof refused")
            }
          }
        }
      } catch {
        die("\(error)")
      }
    }
    return Workload.monotonicNanos() - t0
  }
  // --warmup W: W untimed proofs of each kind first (a long-running server has the pages
  // its proofs touch mapped already; a fresh process takes a page fault on each first touch).
  if let warmup = argument("--warmup").flatMap(Int.init), warmup > 0 {
    _ = run(0, count: warmup)
    _ = run(1, count: warmup)
  }
  let done = Double(proofs / threads * threads)
  let inclusionRate = Int(done * 1e9 / Double(max(run(0, count: proofs), 1)))
  let consistencyRate = Int(done * 1e9 / Double(max(run(1, count: proofs), 1)))
  print(
    #"{"tree_size":\#(head),"proofs":\#(Int(done)),"threads":\#(threads),"#
      + #""inclusion_per_sec":\#(inclusionRate),"consistency_per_sec":\#(consistencyRate)}"#)
}
