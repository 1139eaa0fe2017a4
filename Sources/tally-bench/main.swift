// Engine throughput driver for tools/ceiling/compare.sh: the workload of `TallyWorkload`
// (mirrored by tools/ceiling/ceiling.c), durable, one write transaction per batch.
// Usage: tally-bench --dir DIR --accounts N --entries M --batch B
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

guard let dir = argument("--dir"), let accounts = argument("--accounts").flatMap(Int.init),
  let entries = argument("--entries").flatMap(Int.init),
  let batch = argument("--batch").flatMap(Int.init), accounts >= 2, entries >= 1, batch >= 1,
  batch <= Limits.commandsPerBatchMax
else {
  die("usage: tally-bench --dir DIR --accounts N --entries M --batch B [--proofs N]")
}

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

// Phase 3 (optional, --proofs N): N inclusion proofs for random seqs and N consistency proofs
// from random sizes, each against the head, each in its own read transaction as a server
// request would be.
if let proofs = argument("--proofs").flatMap(Int.init), proofs > 0 {
  let head = ledger.head.seq
  var state: UInt64 = 0x9E37_79B9_7F4A_7C15
  func nextSeq() -> UInt64 {
    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
    return 1 + (state >> 11) % head
  }
  do {
    let t0 = Workload.monotonicNanos()
    for _ in 0..<proofs {
      guard case .success = try ledger.inclusionProof(seq: nextSeq(), size: nil) else {
        die("inclusion proof refused")
      }
    }
    let t1 = Workload.monotonicNanos()
    for _ in 0..<proofs {
      guard case .success = try ledger.consistencyProof(from: nextSeq(), to: head) else {
        die("consistency proof refused")
      }
    }
    let t2 = Workload.monotonicNanos()
    let inclusionRate = Int(Double(proofs) * 1e9 / Double(max(t1 - t0, 1)))
    let consistencyRate = Int(Double(proofs) * 1e9 / Double(max(t2 - t1, 1)))
    print(
      #"{"tree_size":\#(head),"proofs":\#(proofs),"#
        + #""inclusion_per_sec":\#(inclusionRate),"consistency_per_sec":\#(consistencyRate)}"#)
  } catch {
    die("\(error)")
  }
}
