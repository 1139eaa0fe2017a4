import TallyCore
import Testing

@testable import TallyStore

/// A small ledger touching three accounts with every kind of balance change; each command
/// is its own batch at its own time (t0 + i s), so seq i+… has a known timestamp.
private func historyFixture(_ ledger: Ledger) throws -> [Command] {
  let commands: [Command] = [
    open("cash"),
    open("wallet", normal: .credit, noOverdraft: true),
    open("fees", normal: .credit),
    post("fund", [debit("cash", 1000), credit("wallet", 1000)], ref: "TOPUP", valueDate: 19000),
    post("fee-1", [debit("wallet", 25), credit("fees", 25)]),
    hold("auth", [debit("wallet", 300), credit("cash", 300)], ref: "AUTH"),
    capture("auth", .uniform(120)),
    hold("auth-2", [debit("wallet", 50), credit("fees", 50)]),
    release("auth-2"),
    reverse("fee-1-rev", of: "fee-1"),
    post("fee-2", [debit("wallet", 5), credit("fees", 5)]),
    hold("auth-3", [debit("wallet", 10), credit("fees", 10)], deadline: t0 + 100 * oneSecond),
    .expireHolds(asOfNanos: t0 + 100 * oneSecond),
  ]
  for (i, c) in commands.enumerated() {
    let out = try ledger.run(c, now: t0 + Int64(i + 1) * oneSecond)
    guard case .applied = out else { throw TestFailure("history fixture \(i): \(out)") }
  }
  return commands
}

@Suite("History: balances as of a seq, statements, time")
struct HistoryTests {
  @Test("balance(asOfSeq:) equals an independent replay up to that seq, for every seq")
  func balanceAsOfEverySeq() throws {
    try withLedger { ledger in
      _ = try historyFixture(ledger)
      let replay = try ReferenceReplay.of(ledger)
      let head = ledger.head.seq
      #expect(replay.after.count == Int(head) + 1)
      for name in ["cash", "wallet", "fees"] {
        var lastChange: UInt64 = 0
        for seq in 0...head {
          let view = try #require(try ledger.balance(name, asOfSeq: seq))
          let want = replay.after[Int(seq)][name] ?? .zero
          #expect(view.balances == want, "\(name) at seq \(seq)")
          let now = replay.after[Int(seq)][name] ?? .zero
          if seq > 0, now != replay.after[Int(seq) - 1][name] ?? .zero { lastChange = seq }
          // The seq of the view is the last event that moved the account.
          #expect(view.seq == lastChange, "\(name) at seq \(seq)")
        }
        // Beyond the head and without a seq: the current balances.
        #expect(try ledger.balance(name, asOfSeq: head + 1000)?.balances == replay.balances[name])
        #expect(try ledger.balance(name, asOfSeq: .max)?.balances == replay.balances[name])
        #expect(try ledger.balance(name, asOfSeq: nil) == ledger.account(name))
      }
      #expect(try ledger.balance("ghost", asOfSeq: 3) == nil)
    }
  }

  @Test("balance(asOfSeq:) before an account's first movement is zero with seq 0")
  func balanceBeforeFirstMovement() throws {
    try withLedger { ledger in
      _ = try historyFixture(ledger)
      let first = try #require(try ledger.statement("fees", fromSeq: 1, toSeq: .max, limit: 1))
      let firstSeq = try #require(first.lines.first?.seq)
      let before = try #require(try ledger.balance("fees", asOfSeq: firstSeq - 1))
      #expect(before.balances == .zero)
      #expect(before.seq == 0)
      #expect(try ledger.balance("fees", asOfSeq: firstSeq)?.seq == firstSeq)
    }
  }

  @Test("A statement lists each event that moved the account with its delta and balances after")
  func statementLines() throws {
    try withLedger { ledger in
      _ = try historyFixture(ledger)
      let replay = try ReferenceReplay.of(ledger)
      let st = try #require(try ledger.statement("wallet", fromSeq: 1, toSeq: .max, limit: 100))
      #expect(st.next == nil)
      #expect(st.account.balances == replay.balances["wallet"])
      let types = st.lines.map(\.type)
      #expect(
        types == [
          .entryPosted, .entryPosted, .holdPlaced, .holdCaptured, .holdPlaced, .holdReleased,
          .entryPosted, .entryPosted, .holdPlaced, .holdExpired,
        ])
      #expect(
        st.lines.map(\.id) == [
          "fund", "fee-1", "auth", "auth", "auth-2", "auth-2", "fee-1-rev", "fee-2", "auth-3",
          "auth-3",
        ])
      var prev = Balances.zero
      for line in st.lines {
        let after = try #require(replay.after[Int(line.seq)]["wallet"])
        #expect(line.after == after, "seq \(line.seq)")
        #expect(line.delta.postedDebits == after.postedDebits - prev.postedDebits)
        #expect(line.delta.postedCredits == after.postedCredits - prev.postedCredits)
        #expect(line.delta.pendingDebits == after.pendingDebits - prev.pendingDebits)
        #expect(line.delta.pendingCredits == after.pendingCredits - prev.pendingCredits)
        prev = after
      }
      // Specific lines: the funding, and the partial capture (−300 pending, +120 posted).
      #expect(
        st.lines[0].delta
          == Balances(
            postedDebits: 0, postedCredits: 1000, pendingDebits: 0, pendingCredits: 0))
      #expect(st.lines[0].ref == "TOPUP")
      #expect(st.lines[0].valueDateDays == 19000)
      #expect(
        st.lines[3].delta
          == Balances(
            postedDebits: 120, postedCredits: 0, pendingDebits: -300, pendingCredits: 0))
      #expect(st.lines[2].ref == "AUTH")
      // Timestamps are those of the events.
      let log = try ledger.log(fromSeq: 1, limit: 100)
      for line in st.lines {
        #expect(line.timestampNanos == log[Int(line.seq) - 1].event.timestampNanos)
      }
    }
  }

  @Test("Statement pages of `limit` lines chain through `next` to the full statement")
  func statementPagination() throws {
    try withLedger { ledger in
      _ = try historyFixture(ledger)
      let full = try #require(try ledger.statement("wallet", fromSeq: 1, toSeq: .max, limit: 100))
      for limit in 1...4 {
        var lines: [StatementLine] = []
        var from: UInt64 = 1
        var pages = 0
        while true {
          let page = try #require(
            try ledger.statement(
              "wallet", fromSeq: from, toSeq: .max,
              limit: limit))
          #expect(page.lines.count <= limit)
          lines += page.lines
          pages += 1
          guard let next = page.next else { break }
          #expect(next == full.lines[lines.count].seq)
          from = next
        }
        #expect(lines == full.lines, "limit \(limit)")
        #expect(pages == (full.lines.count + limit - 1) / limit)
      }
      // A window: only lines with seq in fromSeq…toSeq, deltas relative to the window start.
      let mid = full.lines[3].seq
      let window = try #require(
        try ledger.statement("wallet", fromSeq: mid, toSeq: full.lines[5].seq, limit: 100))
      #expect(window.lines == Array(full.lines[3...5]))
      #expect(window.next == nil)
      #expect(try ledger.statement("ghost", fromSeq: 1, toSeq: .max, limit: 10) == nil)
    }
  }

  @Test("firstSeq(atOrAfter:) finds the first event at or after a time")
  func firstSeqAtOrAfter() throws {
    try withLedger { ledger in
      _ = try historyFixture(ledger)
      let log = try ledger.log(fromSeq: 1, limit: 100)
      let head = ledger.head.seq
      #expect(try ledger.firstSeq(atOrAfter: .min) == 1)
      #expect(try ledger.firstSeq(atOrAfter: t0) == 1)
      #expect(try ledger.firstSeq(atOrAfter: t0 + 1) == 2)
      for rec in log {
        let ts = rec.event.timestampNanos
        #expect(try ledger.firstSeq(atOrAfter: ts) == rec.event.seq)
        #expect(try ledger.firstSeq(atOrAfter: ts + 1) == rec.event.seq + 1)
      }
      #expect(try ledger.firstSeq(atOrAfter: .max) == head + 1)
    }
  }

  @Test("log(fromSeq:limit:) pages the events with their hashes")
  func logPaging() throws {
    try withLedger { ledger in
      _ = try historyFixture(ledger)
      let all = try ledger.log(fromSeq: 0, limit: 1000)
      #expect(all.map(\.event.seq) == Array(1...ledger.head.seq))
      #expect(all.last?.chain == ledger.head.chain)
      #expect(try ledger.log(fromSeq: 5, limit: 3).map(\.event.seq) == [5, 6, 7])
      #expect(try ledger.log(fromSeq: ledger.head.seq + 1, limit: 3).isEmpty)
      for rec in all {
        #expect(EventCodec.encode(rec.event) == rec.bytes)
      }
    }
  }
}
