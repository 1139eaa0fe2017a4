import Glibc
import NIOCore
import NIOPosix
import Synchronization
import TallyCore
import TallyStore

/// What `/metrics`, `/healthz` and `/readyz` read (docs/OPERATIONS.md). Reads that touch
/// LMDB run on the read threads, never on the caller's (an event loop or a task).
extension TallyServer {
  /// Nil unless the server was configured with `metrics`.
  public var metrics: ServerMetrics? { context.writer.metrics }

  /// Sets the levels (queue, connections, sizes, ages, lags) and renders every metric in
  /// the Prometheus text format. Nil when metrics are off.
  public func prometheusText() async throws -> [UInt8]? {
    guard let m = metrics else { return nil }
    let reader = context.reader
    let stats = try await context.readPool.runIfActive { try reader.stats() }
    let recon = try await context.readPool.runIfActive { try reader.reconTotals() }
    let info = context.info
    let writer = context.writer
    m.queueDepth.record(writer.queue.depth)
    m.inflight.record(max(0, info.inflight.load(ordering: .relaxed)))
    let byRole = info.connectionsByRole.withLock { $0 }
    var authenticated = 0
    for role in Role.allCases {
      let n = max(0, byRole[role] ?? 0)
      authenticated += n
      m.connections[role.rawValue]?.record(n)
    }
    m.connections["none"]?.record(
      max(0, info.connections.load(ordering: .relaxed) - authenticated))
    m.headSeq.record(Int64(clamping: stats.head.seq))
    m.mapBytes.record(stats.mapBytes)
    m.mapUsedBytes.record(stats.usedBytes)
    m.journalBytes.record((try? journal?.fileBytes()) ?? 0)
    let keptNanos = writer.checkpointKeptNanos.load(ordering: .relaxed)
    m.checkpointAge.record(
      keptNanos == 0 ? -1 : max(0, (Writer.now() - keptNanos) / 1_000_000_000))
    m.checkpointSize.record(Int64(clamping: writer.checkpointKeptSize.load(ordering: .relaxed)))
    for state in ReconState.allCases {
      m.reconItems[state]?.record(Int64(clamping: recon[Int(state.rawValue)]))
    }
    let stream = context.replication.stream.withLock { $0 }
    m.streamLag.record(stream.map { Int64(clamping: $0.lagEvents) } ?? -1)
    let follower = context.replication.replica.withLock { $0 }
    m.replicaLag.record(follower.map { Int64(clamping: $0.lagEvents) } ?? -1)
    m.uptime.record((NIODeadline.now() - info.started).nanoseconds / 1_000_000_000)
    let refusal = writer.refusalState()
    for reason in ServerMetrics.refusalReasons {
      m.writesRefused[reason]?.record(refusal?.reason == reason ? 1 : 0)
    }
    m.writesRefusedSeconds.record(
      refusal?.sinceNanos.map { max(0, (Writer.now() - $0) / 1_000_000_000) } ?? 0)
    return m.registry.emitToBuffer()
  }

  /// One readiness check: its name, whether it passes, and what it saw.
  public struct ReadinessCheck: Sendable, Equatable {
    public var name: String
    public var ok: Bool
    public var detail: String
  }

  /// Ready when recovered and serving, writable (a primary whose journal takes writes, whose
  /// last write did not fail for want of space or map — or space was freed since — and that
  /// is not fenced; a replica still applying), and the data directory's filesystem has at
  /// least `minFreeBytes` free.
  public func readiness(minFreeBytes: Int) -> [ReadinessCheck] {
    var checks = [ReadinessCheck]()
    let up = serving.load(ordering: .acquiring) && !context.shuttingDown.load(ordering: .acquiring)
    checks.append(
      ReadinessCheck(
        name: "recovered", ok: up,
        detail: up ? "recovered and serving" : "starting or shutting down"))
    if let follower = context.replication.replica.withLock({ $0 }) {
      let refusal = follower.refusal
      checks.append(
        ReadinessCheck(
          name: "replica", ok: refusal == nil,
          detail: refusal.map { "refused the stream at \($0)" }
            ?? "read replica, \(follower.lagEvents) events behind the stream"))
    } else {
      var why: String?
      if journal?.isPoisoned == true {
        why = "the journal failed a write or sync: restart to recover (see the server log)"
      } else if let refused = context.writer.refusal.withLock({ $0 }),
        !refused.spaceReturned(freeNow: freeBytes(dataPath))
      {
        why =
          refused.reason == "NO_SPACE"
          ? "writes are refused: the filesystem is full (UNAVAILABLE NO_SPACE); they resume "
            + "by themselves once space is freed"
          : "writes are refused: the LMDB map is at --map-max-mib (UNAVAILABLE MAP_FULL)"
      } else if let refusal = context.replication.writeRefusal(context.config) {
        why = "writes are refused: \(refusal.line)"
      } else if let stop = context.replication.stream.withLock({ $0 })?.stopReason {
        why = "the change stream stopped: \(stop)"
      }
      checks.append(ReadinessCheck(name: "writable", ok: why == nil, detail: why ?? "primary"))
    }
    var fs = statvfs()
    if statvfs(dataPath, &fs) == 0 {
      let free = Int(fs.f_bavail) &* Int(fs.f_frsize)
      checks.append(
        ReadinessCheck(
          name: "disk", ok: free >= minFreeBytes,
          detail: "\(free >> 20) MiB free, floor \(minFreeBytes >> 20) MiB"))
    } else {
      checks.append(
        ReadinessCheck(
          name: "disk", ok: false,
          detail: "cannot stat \(dataPath): \(String(cString: strerror(errno)))"))
    }
    return checks
  }
}
