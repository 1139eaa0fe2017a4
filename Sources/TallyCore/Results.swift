/// What reads and writes return: plain values shared by the store, the CLI and the server.

/// Result of one command in a batch.
public enum Outcome: Equatable, Sendable {
  /// Appended `count` events starting at `firstSeq` (count may be 0, e.g. nothing expired).
  case applied(firstSeq: UInt64, count: Int)
  /// Same id, same content: the original seq; nothing appended.
  case duplicate(seq: UInt64)
  case rejected(Rejection)
}

/// An account with its balances at some seq.
public struct AccountView: Equatable, Sendable {
  public init(record: AccountRecord, balances: Balances, seq: UInt64) {
    self.record = record
    self.balances = balances
    self.seq = seq
  }
  public var record: AccountRecord
  public var balances: Balances
  /// Seq of the last event that changed these balances (0: none yet).
  public var seq: UInt64
}

/// One line of an account statement: what one event did to the account.
public struct StatementLine: Equatable, Sendable {
  public init(
    seq: UInt64, timestampNanos: Int64, type: EventType, id: String, ref: String?,
    valueDateDays: Int32?, delta: Balances, after: Balances
  ) {
    self.seq = seq
    self.timestampNanos = timestampNanos
    self.type = type
    self.id = id
    self.ref = ref
    self.valueDateDays = valueDateDays
    self.delta = delta
    self.after = after
  }
  public var seq: UInt64
  public var timestampNanos: Int64
  public var type: EventType
  /// Entry or hold id.
  public var id: String
  public var ref: String?
  public var valueDateDays: Int32?
  /// Change of each column caused by this event.
  public var delta: Balances
  public var after: Balances
}
