import Glibc
import TallyCore
import TallyReconcile
import TallyStore
import TallyWorkload

/// `tally-bench --dir DIR --recon-lines N --recon-entries M`: M entries on one bank account
/// (untimed), then one CSV statement of N lines — half matched by reference, half by amount
/// and date — imported and matched (timed: parse, plan against a snapshot, then the write
/// groups of 1,000 lines and their matches, one sync at the end).
/// With `statementOut`, only the ledger is built and the statement written there, for an
/// import through tallyd (tools/bench-recon-stall.sh).
func reconBench(dir: String, lines: Int, entries: Int, statementOut: String? = nil) {
  guard lines >= 2, entries >= lines else { die("--recon-entries must be ≥ --recon-lines ≥ 2") }
  let now = Workload.wallNanos()
  let day = Int32(now / 86_400_000_000_000)
  let ledger: Ledger
  do {
    ledger = try Ledger.create(at: dir, now: now)
    _ = try ledger.apply(
      [
        .openAccount(
          AccountOpened(name: "bank", partner: "platform", currency: "EUR", normalSide: .debit)),
        .openAccount(
          AccountOpened(name: "other", partner: "platform", currency: "EUR", normalSide: .credit)),
      ], now: now)
    var i = 0
    while i < entries {
      var batch = [Command]()
      for k in i..<min(entries, i + 10_000) {
        batch.append(
          .postEntry(
            EntrySpec(
              id: "e\(k)",
              legs: [
                LegSpec(account: "bank", side: .debit, amountMinor: Int128(100 + k)),
                LegSpec(account: "other", side: .credit, amountMinor: Int128(100 + k)),
              ], ref: "R\(k)", valueDateDays: day)))
      }
      _ = try ledger.apply(batch, now: Workload.wallNanos())
      i += batch.count
    }
  } catch { die("\(error)") }
  // Line j stands for entry j * step: even lines name its ref, odd lines only its amount.
  let step = entries / lines
  var csv = "booking_date,value_date,amount,currency,bank_ref,end_to_end_id,reference,description\n"
  let date = "\(CivilTime.formatDate(day))"
  for j in 0..<lines {
    let k = j * step
    let minor = 100 + k
    let amount = "\(minor / 100).\(minor % 100 < 10 ? "0" : "")\(minor % 100)"
    csv += "\(date),\(date),\(amount),EUR,B\(j),,\(j % 2 == 0 ? "R\(k)" : ""),line \(j)\n"
  }
  let bytes = Array(csv.utf8)
  if let statementOut {
    guard let f = fopen(statementOut, "w"), fwrite(bytes, 1, bytes.count, f) == bytes.count,
      fclose(f) == 0
    else { die("cannot write \(statementOut)") }
    do { try ledger.close() } catch { die("\(error)") }
    print(
      "recon: ledger with \(entries) entries on bank; statement of \(lines) lines in \(statementOut)"
    )
    return
  }
  let start = Workload.monotonicNanos()
  var phases = [(String, Int64)]()
  var last = start
  let result: Result<ReconImportReport, Rejection>
  do {
    result = try ledger.importStatement(
      bytes, format: .csv, account: "bank", now: Workload.wallNanos()
    ) { phase in
      let t = Workload.monotonicNanos()
      let name =
        switch phase {
        case .parsed: "parse"
        case .itemsAppended: "groups"
        case .candidatesRead(_, let all): all ? "all-candidates" : "candidates"
        case .matched: "match"
        case .committed: "sync"
        }
      phases.append((name, t - last))
      last = t
    }
  } catch { die("\(error)") }
  let ns = Workload.monotonicNanos() - start
  guard case .success(let r) = result else { die("import refused: \(result)") }
  var usage = rusage()
  getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
  let ms = ns / 1_000_000
  print(
    "recon: \(lines) lines against \(entries) entries in \(ms) ms = "
      + "\(Int64(lines) * 1_000_000_000 / max(ns, 1)) lines/s; matched reference \(r.matchedByRule[.reference] ?? 0), "
      + "amount_date \(r.matchedByRule[.amountDate] ?? 0), sum \(r.matchedByRule[.sum] ?? 0), "
      + "unmatched \(r.unmatched); peak RSS \(usage.ru_maxrss / 1024) MiB; "
      + "statement \(bytes.count) bytes")
  print("phases (ms): " + phases.map { "\($0.0) \($0.1 / 1_000_000)" }.joined(separator: ", "))
}
