import TallyCore
import TallyCrypto

/// An event as a replica receives it: its canonical bytes and the hashes the primary says
/// it has (docs/REPLICATION.md, "Read replicas").
public struct ReplicatedEvent: Sendable {
  public var seq: UInt64
  public var bytes: [UInt8]
  public var leaf: Hash32
  public var chain: Hash32
  public init(seq: UInt64, bytes: [UInt8], leaf: Hash32, chain: Hash32) {
    self.seq = seq
    self.bytes = bytes
    self.leaf = leaf
    self.chain = chain
  }
}

/// Why a replica refused an event: the seq, and what did not hold. Nothing of the group it
/// came in was applied.
public struct ReplicationRefusal: Error, Sendable, Equatable, CustomStringConvertible {
  public var seq: UInt64
  public var reason: String
  public var description: String { "seq \(seq): \(reason)" }
  public init(seq: UInt64, reason: String) {
    self.seq = seq
    self.reason = reason
  }
}

extension Ledger {
  /// Appends events received from the primary, as one write group: each must come next
  /// (seq = head + 1, timestamp after the head's), decode to that seq, and have the leaf and
  /// chain hashes this ledger computes from its own chain. The events before the first that
  /// does not are appended, and then that one is refused (`ReplicationRefusal`, naming its
  /// seq): nothing from it on is written. Journal records first, LMDB after, exactly like a
  /// live group (`syncEachGroup` decides whether it syncs here).
  public func appendReplicated(_ events: [ReplicatedEvent]) throws -> LogHead {
    guard let journal else { throw StoreError.corrupt("append on a ledger without its journal") }
    if closed { throw StoreError.io("the ledger is closed") }
    precondition(events.count <= Limits.commandsPerBatchMax, "group over the limit")
    if events.isEmpty { return head }
    var batch = [ReplayRecord]()
    batch.reserveCapacity(events.count)
    groupBuffer.bytes.removeAll(keepingCapacity: true)
    let syncedThrough = journal.syncedThroughForNextGroup
    var h = head
    var refusal: ReplicationRefusal?
    for e in events {
      do {
        let r = try check(e, after: h, syncedThrough: syncedThrough)
        batch.append(r)
        h = LogHead(seq: r.event.seq, timestampNanos: r.event.timestampNanos, chain: r.chain)
      } catch {
        refusal = error
        break
      }
    }
    if !batch.isEmpty { try commitReplicated(batch, to: h) }
    if let refusal { throw refusal }
    return head
  }

  /// Checks `e` as the event after `h`; frames it into the group buffer and returns the
  /// head after it, or throws the refusal naming its seq (nothing framed).
  private func check(_ e: ReplicatedEvent, after h: LogHead, syncedThrough: UInt64)
    throws(ReplicationRefusal) -> ReplayRecord
  {
    func refuse(_ why: String) -> ReplicationRefusal { ReplicationRefusal(seq: e.seq, reason: why) }
    guard e.seq == h.seq + 1 else {
      throw refuse("expected seq \(h.seq + 1) (the replica's head is \(h.seq))")
    }
    let event: Event
    do { event = try EventCodec.decode(e.bytes) } catch {
      throw refuse("the event does not decode: \(error)")
    }
    guard event.seq == e.seq else { throw refuse("the event carries seq \(event.seq)") }
    guard event.timestampNanos > h.timestampNanos else {
      throw refuse("timestamp \(event.timestampNanos) is not after \(h.timestampNanos)")
    }
    let leaf = hasher.leaf(e.bytes)
    guard leaf == e.leaf else {
      throw refuse("leaf hash \(e.leaf.hex) differs from the event's \(leaf.hex)")
    }
    let chain = hasher.chain(h.chain, leaf)
    guard chain == e.chain else {
      throw refuse("chain hash \(e.chain.hex) differs from this ledger's \(chain.hex)")
    }
    JournalFormat.frame(
      &groupBuffer, seq: e.seq, syncedThrough: syncedThrough, leaf: leaf, chain: chain,
      event: e.bytes)
    return ReplayRecord(event: event, bytes: e.bytes, leaf: leaf, chain: chain)
  }

  /// Appends the checked group framed in `groupBuffer`: journal first (the projections never
  /// hold an event the journal lacks), then LMDB.
  private func commitReplicated(_ batch: [ReplayRecord], to h: LogHead) throws {
    guard let journal else { throw StoreError.corrupt("append on a ledger without its journal") }
    let before = head
    try withBytes(groupBuffer.bytes) { (b) throws(StoreError) in
      try journal.append(
        b, first: before.seq + 1, last: h.seq, chainBefore: before.chain, chainAfter: h.chain)
    }
    do {
      try applyReplay(batch)
    } catch {
      // Nothing of the group is in LMDB: take its records back.
      if head.seq == before.seq {
        try journal.unappend(
          groupBytes: groupBuffer.bytes.count, toSeq: before.seq, chain: before.chain)
      }
      throw error
    }
    let bytes = groupBuffer.bytes.count
    snapshotProgress.withLock { $0.bytes += bytes }
    if syncEachGroup { try journal.sync() }
  }
}
