import Dispatch
import ServiceLifecycle
import TallyServer

/// The line-protocol server as a service of the group: already started (recovered and
/// bound) when the group runs; on graceful shutdown (or cancellation) it stops accepting,
/// drains the connections and the writer, keeps a last checkpoint and closes the ledger.
struct LedgerService: Service {
  let server: TallyServer

  func run() async throws {
    // Returns at graceful shutdown; throws when cancelled. Both mean: stop now.
    try? await gracefulShutdown()
    // `shutdown` blocks (it joins the writer's threads): off the concurrency pool.
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
      DispatchQueue.global().async {
        server.shutdown()
        done.resume()
      }
    }
  }
}
