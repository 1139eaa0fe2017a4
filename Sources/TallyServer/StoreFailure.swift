import TallyProtocol
import TallyStore

/// How a store failure reaches a client (docs/PROTOCOL.md, `UNAVAILABLE`). Out of space,
/// a map at its limit and I/O errors are conditions a client can act on (wait and retry,
/// or go elsewhere): each has its own reason and says whether a retry can succeed. Anything
/// else (a corrupt record, an LMDB error that is a bug) stays `INTERNAL`.
enum StoreFailure {
  /// The reason of an `UNAVAILABLE` answer, or nil for a failure answered `INTERNAL`.
  static func reason(_ e: StoreError) -> String? {
    switch e {
    case .noSpace: "NO_SPACE"
    case .mapFull: "MAP_FULL"
    case .io: "IO"
    default: nil
    }
  }

  /// Only out of space clears by itself: the writer's state is as it was before the
  /// request, and the first write after space is freed succeeds. A map at its limit needs
  /// a larger `--map-max-mib`, and an I/O error stopped the journal: both need a restart.
  static func retryable(_ e: StoreError) -> Bool {
    if case .noSpace = e { return true }
    return false
  }

  /// The answer to a request whose write (`write` true) or read failed with `e`.
  static func wireError(_ e: StoreError, write: Bool) -> WireError {
    guard let reason = reason(e) else {
      return WireError(
        .internal,
        write
          ? "the write failed and was not applied; see the server log"
          : "the read failed; see the server log")
    }
    let retryable = retryable(e)
    let message: String
    switch e {
    case .noSpace:
      message =
        (write ? "the write was not applied" : "the read failed")
        + ": the data directory's filesystem is full; retry once space is freed"
    case .mapFull:
      message =
        (write ? "the write was not applied" : "the read failed")
        + ": the LMDB map is at its limit (--map-max-mib); raise it and restart the server"
    default:
      // A failed sync (or a write that could not be taken back) leaves the outcome to what
      // recovery finds on disk: only a restart tells.
      message =
        write
        ? "an I/O error stopped writes; whether this write reached the log is known after a "
          + "restart: retry it with the same id then"
        : "the read failed: an I/O error stopped the store; restart the server"
    }
    return WireError(
      .unavailable, "\(message) (see the server log)", reason: reason,
      details: ["retryable": retryable ? "true" : "false"])
  }
}
