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
  die("usage: tally-bench --dir DIR --accounts N --entries M --batch B")
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
