import Glibc
import TallyCore
import TallyStore

/// The benchmark workload, shared by `tally-bench` (the side-by-side run with the C ceiling,
/// which mirrors it in C) and the package-benchmark suite, so both measure the same thing:
/// N accounts `acct-%07d` (EUR, debit-normal), then 2-leg entries `e-%012d` between
/// pseudo-random accounts.
public enum Workload {
  public static func accountName(_ n: Int) -> String {
    let digits = String(n)
    return "acct-" + String(repeating: "0", count: max(0, 7 - digits.count)) + digits
  }

  /// Entry `i` (1-based): debit account (i·7919 mod N) + 1, credit another, 1…1000 cents.
  public static func entry(_ i: Int, accounts: Int) -> Command {
    let a = (i &* 7919) % accounts + 1
    var b = (i &* 104_729 &+ 1) % accounts + 1
    if b == a { b = a % accounts + 1 }
    let amount = Int128(1 + i % 1000)
    let digits = String(i)
    let id = "e-" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    return .postEntry(
      EntrySpec(
        id: id,
        legs: [
          LegSpec(account: accountName(a), side: .debit, amountMinor: amount),
          LegSpec(account: accountName(b), side: .credit, amountMinor: amount),
        ]))
  }

  /// Opens accounts 1…`count` in batches of 10k (setup, not measured).
  public static func openAccounts(_ ledger: Ledger, count: Int) throws {
    var n = 1
    var commands = [Command]()
    commands.reserveCapacity(10_000)
    while n <= count {
      commands.removeAll(keepingCapacity: true)
      while n <= count && commands.count < 10_000 {
        commands.append(
          .openAccount(
            AccountOpened(
              name: accountName(n), partner: Machine.platformPartner, currency: "EUR",
              normalSide: .debit)))
        n += 1
      }
      for o in try ledger.apply(commands, now: wallNanos()) {
        if case .rejected(let r) = o { throw WorkloadError(description: "open failed: \(r)") }
      }
    }
  }

  public static func wallNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
  }

  public static func monotonicNanos() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
  }
}

public struct WorkloadError: Error, CustomStringConvertible {
  public var description: String
}
