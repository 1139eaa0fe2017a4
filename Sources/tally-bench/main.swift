// Engine throughput driver for tools/ceiling/compare.sh: the same workload as the C ceiling
// (2-leg transfers between pseudo-random accounts), durable, one write transaction per batch.
// Usage: tally-bench --dir DIR --accounts N --entries M --batch B
import Glibc
import TallyCore
import TallyStore

func argument(_ name: String) -> String? {
  let args = CommandLine.arguments
  guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
  return args[i + 1]
}

func die(_ message: String) -> Never {
  _ = "tally-bench: \(message)\n".withCString { write(2, $0, strlen($0)) }
  exit(2)
}

func monotonicNanos() -> Int64 {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

func wallNanos() -> Int64 {
  var ts = timespec()
  clock_gettime(CLOCK_REALTIME, &ts)
  return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

guard let dir = argument("--dir"), let accounts = argument("--accounts").flatMap(Int.init),
  let entries = argument("--entries").flatMap(Int.init),
  let batch = argument("--batch").flatMap(Int.init), accounts >= 2, entries >= 1, batch >= 1,
  batch <= Limits.commandsPerBatchMax
else {
  die("usage: tally-bench --dir DIR --accounts N --entries M --batch B")
}

func name(_ n: Int) -> String {
  let digits = String(n)
  return "acct-" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits
}

let ledger: Ledger
do {
  ledger = try Ledger.create(at: dir, now: wallNanos())
  // Phase 1, untimed: open the accounts.
  var n = 1
  while n <= accounts {
    var commands = [Command]()
    while n <= accounts && commands.count < 10_000 {
      commands.append(
        .openAccount(
          AccountOpened(
            name: name(n), partner: Machine.platformPartner, currency: "EUR",
            normalSide: .debit)))
      n += 1
    }
    for o in try ledger.apply(commands, now: wallNanos()) {
      if case .rejected(let r) = o { die("open failed: \(r)") }
    }
  }
} catch {
  die("\(error)")
}

// Phase 2, timed: entries in batches, commands built inside the timed loop.
let start = monotonicNanos()
var i = 1
var commands = [Command]()
commands.reserveCapacity(batch)
do {
  while i <= entries {
    commands.removeAll(keepingCapacity: true)
    while i <= entries && commands.count < batch {
      let a = (i &* 7919) % accounts + 1
      var b = (i &* 104_729 &+ 1) % accounts + 1
      if b == a { b = a % accounts + 1 }
      let amount = Int128(1 + i % 1000)
      let digits = String(i)
      let id = "e-" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits
      commands.append(
        .postEntry(
          EntrySpec(
            id: id,
            legs: [
              LegSpec(account: name(a), side: .debit, amountMinor: amount),
              LegSpec(account: name(b), side: .credit, amountMinor: amount),
            ])))
      i += 1
    }
    for o in try ledger.apply(commands, now: wallNanos()) {
      if case .rejected(let r) = o { die("entry rejected: \(r)") }
    }
  }
} catch {
  die("\(error)")
}
let seconds = Double(monotonicNanos() - start) / 1e9
var usage = rusage()
getrusage(RUSAGE_SELF.rawValue, &usage)
let rate = Int(Double(entries) / seconds)

let millis = Int(seconds * 1000)
let fraction = String(millis % 1000)
let s = "\(millis / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction

print(
  #"{"engine":"tally","accounts":\#(accounts),"entries":\#(entries),"batch":\#(batch),"#
    + #""seconds":\#(s),"entries_per_sec":\#(rate),"peak_rss_kb":\#(usage.ru_maxrss)}"#)
