import TallyCore
import TallyProtocol
import TallyStore

/// Every server limit, its default and why (docs/PROTOCOL.md, "Limits"; each has a flag).
public struct ServerConfig: Sendable {
  public var host = "127.0.0.1"
  public var port = 7878
  /// A request line, newline excluded. 1 MiB holds a full `ENTRY.BATCH` of several
  /// thousand entries while bounding what one connection can make the server buffer.
  public var lineBytesMax = 1 << 20
  /// Entries in one `ENTRY.BATCH`.
  public var batchEntriesMax = ProtocolLimits.batchEntriesDefault
  /// Open connections; one more is answered `ERR TOO_MANY_CONNECTIONS` and closed.
  public var connectionsMax = 1024
  /// Requests read but not yet answered, per connection. At the limit the server stops
  /// reading that socket (backpressure) until answers go out; nothing is dropped.
  public var inflightPerConnectionMax = 128
  /// Commands waiting for the writer, over all connections. When full, connections stop
  /// reading their sockets until the writer drains.
  public var writeQueueCommandsMax = 65_536
  /// Commands applied in one transaction (one fsync) at most.
  public var groupCommandsMax = 16_384
  /// Seconds without a complete request before the server closes the connection
  /// (`ERR TIMEOUT`). Bytes that never make a line do not count: slow-loris safe.
  public var idleTimeoutSeconds: Int64 = 300
  /// Seconds a new connection has to authenticate.
  public var authTimeoutSeconds: Int64 = 10
  /// Failed AUTH attempts per connection before it is closed.
  public var authFailuresPerConnectionMax = 3
  /// Failed AUTH attempts per client address per minute before further attempts from it
  /// are refused without being checked.
  public var authFailuresPerAddressPerMinuteMax = 20
  /// How often the server appends expiry events for holds past their deadline.
  public var holdExpiryIntervalMillis: Int64 = 1000
  /// How often the server signs and keeps a checkpoint of the head (when it moved).
  public var checkpointIntervalSeconds: Int64 = 60
  /// When to copy the projections into a snapshot (bounds recovery after an OS crash to
  /// the journal written since; docs/FORMAT.md, "Snapshots").
  public var snapshots = SnapshotPolicy()
  /// Seconds the server takes to sweep the LMDB map's dirty pages back to disk, evenly, rather
  /// than leave them to the kernel's bursts (0: the kernel's own writeback only; see
  /// `MapWriteback`).
  public var mapWritebackSeconds = 5
  /// Threads that run read transactions (never the event loops, never the writer).
  public var readThreads = 2
  /// Event loop threads.
  public var eventLoopThreads = 1
  /// Seconds a graceful shutdown waits for in-flight requests before closing anyway.
  public var shutdownGraceSeconds: Int64 = 30
  /// Publishes every committed event to a JetStream stream when set (`--stream`).
  public var stream: ChangeStreamConfig?
  /// Serves as a read replica of the primary publishing to this stream (`--replica-of`):
  /// write verbs answer `READ_ONLY`; no expiry or checkpoint of its own.
  public var replica: ReplicaConfig?
  /// What `OK` means (`--durability`): synced locally, or also acknowledged by the stream.
  public var durability = Durability.local
  /// Record metrics (`/metrics`). Set with the HTTP listener: with nothing to scrape them,
  /// the hot path records nothing.
  public var metrics = false

  public init() {}
}
