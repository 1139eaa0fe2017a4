import Logging
import Synchronization
import TallyProtocol

/// What `OK` promises (`--durability`; docs/REPLICATION.md, "Durability modes").
public enum Durability: String, Sendable, CaseIterable {
  /// The group is in the local journal, synced.
  case local
  /// The group is in the local journal, synced, and acknowledged by the stream (on a quorum
  /// of a replicated JetStream stream).
  case stream
}

/// The server's place in replication: a primary publishing its log (`stream`), a read
/// replica following one (`replica`), or neither. A promotion turns the second into the
/// first while serving.
final class Replication: Sendable {
  let stream = Mutex<ChangeStreamPublisher?>(nil)
  let replica = Mutex<ReplicaFollower?>(nil)
  /// This server's HOST:PORT once listening (what a primary announces in `Tally-Primary`).
  let address = Mutex<String?>(nil)
  /// Set by the server: turns this replica into the primary (`REPLICA.PROMOTE`).
  let promoter = Mutex<(@Sendable () async -> String)?>(nil)

  /// The answer line of `REPLICA.PROMOTE`.
  func promote() async -> String {
    guard let p = promoter.withLock({ $0 }) else {
      return WireError(.internal, "promotion is not available").line
    }
    return await p()
  }

  /// Why a write verb may not run here, if it may not: on a replica (`READ_ONLY`, naming the
  /// primary when known), or on a primary in `--durability stream` whose stream was taken
  /// over by another primary (`READ_ONLY`, reason `FENCED`).
  func writeRefusal(_ config: ServerConfig) -> WireError? {
    if let follower = replica.withLock({ $0 }) {
      var details = [String: String]()
      if let primary = follower.primaryAddress { details["primary"] = primary }
      return WireError(
        .readOnly, "this server is a read replica: send writes to the primary",
        details: details)
    }
    if config.durability == .stream, let stream = stream.withLock({ $0 }),
      let why = stream.fencedReason
    {
      return WireError(
        .readOnly, "this server was fenced and takes no writes: \(why)", reason: "FENCED")
    }
    return nil
  }
}

/// Runs `session` again and again until `isStopping`, waiting `waitNanos` after each end (a
/// lost connection, NATS down): the loop of the publisher and of the replica. `final` turns
/// the error that ends it for good into its handling (and returns true); any other error is
/// logged as `what: reconnecting` and handed to `lost` (for STATS).
func reconnecting(
  _ what: String, logger: Logger, waitNanos: Int64, isStopping: () -> Bool,
  session: () async throws -> Void, lost: (String) -> Void, final: (any Error) -> Bool
) async {
  while !isStopping() {
    do {
      try await session()
    } catch {
      if final(error) { return }
      lost("\(error)")
      logger.warning("\(what): reconnecting", metadata: ["error": "\(error)"])
    }
    if isStopping() { break }
    try? await Task.sleep(for: .nanoseconds(waitNanos))
  }
}
