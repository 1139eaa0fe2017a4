/// Every limit of the NATS and JetStream client, in one place, with the reason for its value.
///
/// Each bounds memory or time that a server (or a peer pretending to be one) or a careless
/// caller could otherwise make the client spend without end. Tests exercise the ones a caller
/// can reach at `max` and `max + 1`.
public enum NATSLimits {
  /// Longest control line accepted from a server (`INFO`, `MSG`, `HMSG`, `-ERR`), without its
  /// CR LF. `MSG` lines echo subjects that clients sent, which nats-server bounds by its
  /// `max_control_line` (4 KiB by default); `INFO` lists the client URL of every cluster member
  /// (about 25 bytes each) next to about 600 bytes of other fields, so 64 KiB holds the `INFO`
  /// of a cluster of 2,000 servers while bounding what a broken peer can make us buffer.
  public static let controlLineBytesMax = 64 * 1024

  /// Longest control line the client sends: nats-server's default `max_control_line`. The
  /// server answers a longer one with `-ERR` and closes the connection, so it is refused here
  /// as `.invalid` before anything is written.
  public static let outgoingControlLineBytesMax = 4096

  /// Largest message (headers and payload) accepted in either direction whatever `INFO`
  /// says: nats-server refuses a `max_payload` above 64 MiB. Until `INFO` arrives this is also
  /// the decoder's bound; after it, the server's `max_payload` is.
  public static let payloadBytesHardMax = 64 * 1024 * 1024

  /// The default `pendingMax` of a subscription: messages delivered but not yet consumed.
  /// 65,536 small messages are a few MiB; a consumer further behind than that is not keeping
  /// up, and the subscription ends with `.slowConsumer` rather than growing.
  public static let subscriptionPendingDefault = 65_536
  /// The largest `pendingMax` a subscription may ask for: a million buffered messages is
  /// already a GiB at 1 KiB each.
  public static let subscriptionPendingMax = 1_048_576

  /// Live subscriptions on one connection. All of them are sent again in one burst after a
  /// reconnect (about 64 bytes each, so 4 MiB of `SUB` lines at most).
  public static let subscriptionsMax = 65_536

  /// Requests waiting for their reply on one connection. Each holds a continuation and a
  /// timer; more than this in flight means the caller is not waiting for answers.
  public static let requestsInFlightMax = 65_536

  /// `flush` calls waiting for their `PONG`, for the same reason as `requestsInFlightMax`.
  public static let flushesInFlightMax = 4_096

  /// Bytes handed to the event loop for writing but not yet written to the socket. When the
  /// server does not read (or the network stalls), `publish` fails with `.overloaded` rather
  /// than queueing without end. 64 MiB is 64 messages of the default 1 MiB `max_payload`.
  public static let pendingWriteBytesMax = 64 * 1024 * 1024

  /// Servers remembered by one connection: the configured ones and those the cluster
  /// announced in `INFO` (`connect_urls`). Bounds one reconnect round.
  public static let serversMax = 64

  /// The default bound of connection attempts in one outage (over all servers) before the
  /// connection gives up and closes. With the default 2 s wait per round and one server that
  /// is about two minutes, long enough to ride out a server restart.
  public static let reconnectAttemptsDefault = 60

  /// Messages asked for in one JetStream `fetch`. All of them are held in memory until the
  /// call returns; 10,000 messages of 1 KiB are 10 MiB.
  public static let fetchBatchMax = 10_000

  /// Longest subject (or reply subject) the client sends: half a control line, so that a
  /// subject and a reply subject of this length still fit one `HPUB` line.
  public static let subjectBytesMax = outgoingControlLineBytesMax / 2

  /// Queue group names and the connection's `name` in `CONNECT`: short labels; 256 bytes
  /// keeps them a small part of a control line.
  public static let labelBytesMax = 256

  /// Stream and consumer names: JetStream's own maximum (`JSMaxNameLen` in nats-server).
  public static let jetStreamNameBytesMax = 255

  /// The longest pull (`fetch`'s `expires`): the caller waits this long for a batch, and
  /// JetStream keeps the pull request that long.
  public static let fetchExpiresMax: Duration = .seconds(3600)

  /// Status messages a pull may bring besides its batch (heartbeats, the final 404/408),
  /// kept in the pull's subscription buffer on top of `batch`.
  static let fetchStatusSlack = 16

  /// Members of one object or array in a JetStream API reply. The largest replies (stream
  /// info listing deleted sequences or subjects) stay far below; the parser's default of
  /// 10,000 could refuse a legitimate list of subjects.
  static let apiReplyMembersMax = 100_000

  /// Nesting of a JetStream API reply: at most five levels today; room for growth.
  static let apiReplyDepthMax = 32

  /// Failure reasons remembered while connecting, for the error of a failed (re)connect.
  static let connectFailuresKept = 8
}
