import Foundation
import Synchronization
import TallyNATS
import TallyTestSupport
import Testing

/// `--durability stream` and `REPLICA.PROMOTE` on a 3-server JetStream cluster: fail-over
/// without losing an acknowledged entry, and a fenced old primary (docs/REPLICATION.md).
@Suite(.serialized) struct FailoverTests {
  struct Acked: Sendable {
    var id: String
    var seq: Int
  }

  /// Posts `count` entries (ids `prefix`-n) on one connection, pipelined `window` at a time,
  /// recording each `OK`; stops quietly when the server goes away.
  static func postRecording(
    _ server: TallydProcess, prefix: String, count: Int, window: Int = 16,
    counter: AckCounter? = nil
  ) async -> [Acked] {
    var acked = [Acked]()
    guard let c = try? await server.admin() else { return acked }
    defer { c.close() }
    var next = 0
    while next < count {
      let n = min(window, count - next)
      let lines = (next..<(next + n)).map {
        entryLine("\(prefix)-\($0)", debit: Fixture.cash, credit: Fixture.bob, amount: "1") + "\n"
      }
      do {
        try await c.send(lines.joined(), timeout: 10)
        for i in 0..<n {
          let r = try await c.readReply(timeout: 30)
          if r.isOK, let seq = r.body["seq"] as? Int {
            acked.append(Acked(id: "\(prefix)-\(next + i)", seq: seq))
            counter?.count.add(1, ordering: .relaxed)
          }
        }
      } catch {
        return acked
      }
      next += n
    }
    return acked
  }

  @Test func promotingAReplicaAfterTheprimaryIsKilledLosesNoAcknowledgedEntry() async throws {
    let cluster = try await NATSCluster.start(size: 3)
    defer { cluster.stop() }
    let urls = cluster.urls
    let streamFlags = ["--stream-replicas", "3", "--durability", "stream"]
    let primary = try await TallydProcess.start(flags: ["--stream", urls] + streamFlags)
    defer { primary.remove() }
    let replica = try await TallydProcess.start(flags: ["--replica-of", urls] + streamFlags)
    defer { replica.remove() }
    do {
      let admin = try await primary.admin()
      try await buildFixture(admin)
      admin.close()
      // Load on 4 connections; the primary is SIGKILLed in the middle of it.
      let counter = AckCounter()
      let load = Task {
        await withTaskGroup(of: [Acked].self) { g in
          for c in 0..<4 {
            g.addTask {
              await Self.postRecording(primary, prefix: "f\(c)", count: 400, counter: counter)
            }
          }
          var all = [Acked]()
          for await part in g { all += part }
          return all
        }
      }
      // Kill while posts are being acknowledged (not before the first, not after the last).
      let killAt = Int.random(in: 100...800)
      let loadDeadline = monotonicSeconds() + 120
      while counter.count.load(ordering: .relaxed) < killAt && monotonicSeconds() < loadDeadline {
        try await Task.sleep(for: .milliseconds(5))
      }
      _ = try await primary.kill()
      let acked = await load.value
      #expect(acked.count > 0, "nothing was acknowledged before the kill")

      // Promote once the replica holds what the stream holds (bounded retries).
      let r = try await replica.admin()
      var promoted: Reply?
      let deadline = monotonicSeconds() + 60
      while monotonicSeconds() < deadline {
        let p = try await r.request("REPLICA.PROMOTE", timeout: 30)
        if p.isOK {
          promoted = p
          break
        }
        #expect(p.code == "NOT_CAUGHT_UP", "\(p)")
        try await Task.sleep(for: .milliseconds(200))
      }
      let p = try #require(promoted, "the replica was never promoted")
      #expect(p.body["promoted"] as? Bool == true)

      // Every acknowledged entry is on the new primary, at its seq.
      var missing = [String]()
      for a in acked {
        let e = try await r.request("ENTRY.GET {\"id\":\"\(a.id)\"}")
        if !e.isOK || e.body["seq"] as? Int != a.seq { missing.append("\(a.id)@\(a.seq): \(e)") }
      }
      #expect(
        missing.isEmpty,
        "\(missing.count) acknowledged entries lost:\n" + missing.prefix(5).joined(separator: "\n"))

      // The new primary takes writes (acknowledged by the stream).
      let w = try await r.request(
        entryLine("after-promote", debit: Fixture.cash, credit: Fixture.bob, amount: "1"),
        timeout: 30)
      #expect(w.isOK, "\(w)")
      r.close()

      // The old primary, restarted, is fenced: it refuses writes and says why.
      try await primary.restart()
      let old = try await primary.admin()
      let fenceDeadline = monotonicSeconds() + 30
      var refusal: Reply?
      while monotonicSeconds() < fenceDeadline {
        let x = try await old.request(
          entryLine(
            "on-old-\(Int(monotonicSeconds() * 1000))", debit: Fixture.cash,
            credit: Fixture.bob, amount: "1"), timeout: 30)
        if x.code == "READ_ONLY" {
          refusal = x
          break
        }
        try await Task.sleep(for: .milliseconds(100))
      }
      let x = try #require(refusal, "the old primary was not fenced")
      #expect(x.reason == "FENCED", "\(x)")
      old.close()
      _ = try await primary.terminate()
      _ = try await replica.terminate()
    } catch {
      _ = try? await primary.terminate(timeout: 5)
      _ = try? await replica.terminate(timeout: 5)
      throw error
    }
  }

  @Test func withoutTheStreamAWriteIsAnsweredNotReplicatedAndARetryLearnsTheOutcome()
    async throws
  {
    let nats = try await NATSServerProcess.start(jetstream: true)
    defer { nats.stop() }
    let flags = ["--stream", nats.url, "--durability", "stream", "--stream-ack-timeout", "1"]
    try await withFixture(flags) { server, admin in
      nats.kill()
      let r = try await admin.request(
        entryLine("nr-1", debit: Fixture.cash, credit: Fixture.bob, amount: "3"), timeout: 30)
      #expect(r.code == "NOT_REPLICATED", "\(r)")
      let seq = try #require(Int(r.details["seq"] as? String ?? ""), "\(r)")
      try await nats.restart()
      // The retry answers the original outcome once the stream has it.
      let deadline = monotonicSeconds() + 30
      var retried: Reply?
      while monotonicSeconds() < deadline {
        let x = try await admin.request(
          entryLine("nr-1", debit: Fixture.cash, credit: Fixture.bob, amount: "3"), timeout: 30)
        if x.isOK {
          retried = x
          break
        }
        #expect(x.code == "NOT_REPLICATED", "\(x)")
      }
      let x = try #require(retried)
      #expect(x.body["seq"] as? Int == seq)
    }
  }

  @Test func promotingAPrimaryIsRefused() async throws {
    try await withFixture { _, admin in
      let r = try await admin.request("REPLICA.PROMOTE")
      #expect(r.code == "BAD_REQUEST" && r.reason == "NOT_A_REPLICA", "\(r)")
      let s = try await admin.request("REPLICA.PROMOTE {\"x\":1}")
      #expect(s.code == "BAD_REQUEST", "\(s)")
    }
  }
}

final class AckCounter: Sendable {
  let count = Atomic<Int>(0)
}
