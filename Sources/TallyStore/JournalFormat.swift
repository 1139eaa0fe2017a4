import TallyCore
import TallyCrypto

/// The journal's on-disk layout (docs/FORMAT.md, "The journal"). Big-endian throughout.
///
/// A segment is a preallocated file `journal/<first seq, 20 digits>.seg`: a 4096-byte header,
/// then records back to back, each padded to 8 bytes, then zeros to the segment's capacity.
/// A record is an 88-byte frame header and the canonical event bytes (docs/FORMAT.md, "Event
/// encoding"), so the leaf and chain hashes are those of the log itself.
public enum JournalFormat {
  static let segmentMagic: [UInt8] = Array("TALLYJNL".utf8)
  static let version: UInt32 = 1
  /// The header takes one 4 KiB block so that records start block-aligned.
  static let headerBytes = 4096
  /// Bytes of the header the checksum covers: magic 8, version 4, header size 4, ledger id
  /// 16, first seq 8, chain before 32, capacity 8.
  static let headerFieldBytes = 80
  static let recordMagic: UInt32 = 0x544A_5231  // "TJR1"
  /// magic 4, event length 4, seq 8, synced-through 8, leaf 32, chain 32.
  static let recordHeaderBytes = 88
  /// One event's bytes at most. The largest legal event (1,000 statement lines with every
  /// text field at its limit) is under 8 MiB; 64 MiB bounds what a reader allocates.
  static let eventBytesMax = 64 << 20
  /// A new segment's capacity: 64 MiB holds ~250k two-leg entries and is preallocated in
  /// ~0.2 s on this class of disk. A group that does not fit in the rest of a segment starts
  /// the next one; a group larger than this gets a segment of its own size.
  public static let segmentBytesDefault = 64 << 20
  /// The first segment's capacity; each next one doubles, up to `segmentBytesDefault`.
  static let segmentBytesFirst = 1 << 20
  static let ledgerIDBytes = 16

  static func padded(_ n: Int) -> Int { (n + 7) & ~7 }

  static func segmentName(_ firstSeq: UInt64) -> String {
    let digits = String(firstSeq)
    return String(repeating: "0", count: max(0, 20 - digits.count)) + digits + ".seg"
  }

  /// The first seq a segment's name gives, nil for any other name.
  static func segmentFirstSeq(_ name: String) -> UInt64? {
    guard name.hasSuffix(".seg"), name.utf8.count == 24 else { return nil }
    return UInt64(name.prefix(20))
  }

  /// Appends one record's frame and its event bytes, padded to 8 bytes.
  static func frame(
    _ w: inout ByteWriter, seq: UInt64, syncedThrough: UInt64, leaf: Hash32, chain: Hash32,
    event: [UInt8]
  ) {
    // The largest legal event is far below this; a reader refuses anything over it.
    precondition(event.count >= 1 && event.count <= eventBytesMax, "event size out of range")
    w.u32(recordMagic)
    w.u32(UInt32(event.count))
    w.u64(seq)
    w.u64(syncedThrough)
    withUnsafeBytes(of: leaf) { w.bytes.append(contentsOf: $0) }
    withUnsafeBytes(of: chain) { w.bytes.append(contentsOf: $0) }
    w.bytes.append(contentsOf: event)
    let pad = padded(event.count) - event.count
    if pad > 0 { w.bytes.append(contentsOf: repeatElement(0, count: pad)) }
  }

  static func recordBytes(eventBytes: Int) -> Int { recordHeaderBytes + padded(eventBytes) }
}

/// A segment's header.
struct SegmentHeader: Equatable {
  var ledgerID: [UInt8]
  var firstSeq: UInt64
  /// chain[firstSeq - 1]: the chain hash this segment continues.
  var chainBefore: Hash32
  var capacityBytes: UInt64

  func encode() -> [UInt8] {
    var w = ByteWriter(capacity: JournalFormat.headerBytes)
    w.raw(JournalFormat.segmentMagic)
    w.u32(JournalFormat.version)
    w.u32(UInt32(JournalFormat.headerBytes))
    w.raw(ledgerID)
    w.u64(firstSeq)
    w.raw(chainBefore.bytes)
    w.u64(capacityBytes)
    precondition(w.bytes.count == JournalFormat.headerFieldBytes)
    w.raw(SHA256Hasher().hash(w.bytes).bytes)
    w.bytes.append(contentsOf: repeatElement(0, count: JournalFormat.headerBytes - w.bytes.count))
    return w.bytes
  }

  enum DecodeFailure: Error, Equatable {
    /// All zeros: a segment whose header never reached the disk.
    case empty
    case invalid(String)
  }

  static func decode(_ b: [UInt8]) -> Result<SegmentHeader, DecodeFailure> {
    let n = JournalFormat.headerFieldBytes
    guard b.count >= n + 32 else {
      return b.allSatisfy({ $0 == 0 }) ? .failure(.empty) : .failure(.invalid("header truncated"))
    }
    if b[0..<(n + 32)].allSatisfy({ $0 == 0 }) { return .failure(.empty) }
    guard Array(b[0..<8]) == JournalFormat.segmentMagic else {
      return .failure(.invalid("not a journal segment (bad magic)"))
    }
    let sum = b.withUnsafeBytes { SHA256Hasher().hash(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
    let stored = b.withUnsafeBytes {
      Hash32(raw: UnsafeRawBufferPointer(rebasing: $0[n..<(n + 32)]))
    }
    guard sum == stored else { return .failure(.invalid("header checksum mismatch")) }
    return b.withUnsafeBytes { raw in
      let version = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
      guard version == JournalFormat.version else {
        return .failure(.invalid("segment version \(version), this tally reads 1"))
      }
      let hb = UInt32(bigEndian: raw.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
      guard hb == UInt32(JournalFormat.headerBytes) else {
        return .failure(.invalid("header size \(hb)"))
      }
      let id = Array(b[16..<32])
      let first = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 32, as: UInt64.self))
      let chain = Hash32(raw: UnsafeRawBufferPointer(rebasing: raw[40..<72]))
      let cap = UInt64(bigEndian: raw.loadUnaligned(fromByteOffset: 72, as: UInt64.self))
      guard first >= 1, cap >= UInt64(JournalFormat.headerBytes), cap <= 1 << 40 else {
        return .failure(.invalid("first seq \(first) or capacity \(cap) out of range"))
      }
      return .success(
        SegmentHeader(ledgerID: id, firstSeq: first, chainBefore: chain, capacityBytes: cap))
    }
  }
}

/// A record read back from a segment. `event` points into the mapped segment and is valid
/// only during the callback that receives it.
public struct JournalRecord {
  public var seq: UInt64
  /// The highest seq whose sync had completed when this record was written: every record up
  /// to it was acknowledged-durable before this one reached the disk.
  public var syncedThrough: UInt64
  public var leaf: Hash32
  public var chain: Hash32
  public var event: UnsafeRawBufferPointer
}

/// How a frame at some offset reads.
enum FrameRead {
  /// A complete record whose leaf hash matches its bytes. `next` is the next frame's offset.
  case record(JournalRecord, next: Int)
  /// Zeros where a frame would start (the end of what was written, or a zeroed record).
  case zero
  /// Anything else: a torn, truncated or altered record.
  case bad(String)
}

extension JournalFormat {
  /// Reads the frame at `offset` of a mapped segment of `limit` bytes and checks its magic,
  /// length and leaf hash (not the chain, which needs the previous record).
  static func readFrame(
    _ seg: UnsafeRawBufferPointer, at offset: Int, limit: Int, hasher: SHA256Hasher
  ) -> FrameRead {
    if offset + recordHeaderBytes > limit {
      let rest = UnsafeRawBufferPointer(rebasing: seg[offset..<limit])
      return rest.allSatisfy { $0 == 0 } ? .zero : .bad("truncated frame at the segment's end")
    }
    let magic = UInt32(bigEndian: seg.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    if magic != recordMagic {
      let head = UnsafeRawBufferPointer(rebasing: seg[offset..<(offset + recordHeaderBytes)])
      return magic == 0 && head.allSatisfy({ $0 == 0 }) ? .zero : .bad("bad frame magic")
    }
    let len = Int(UInt32(bigEndian: seg.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)))
    guard len >= 1, len <= eventBytesMax else { return .bad("event length \(len) out of range") }
    let end = offset + recordHeaderBytes + len
    guard end <= limit else { return .bad("record runs past the segment's end") }
    let seq = UInt64(bigEndian: seg.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self))
    let synced = UInt64(bigEndian: seg.loadUnaligned(fromByteOffset: offset + 16, as: UInt64.self))
    let leaf = Hash32(raw: UnsafeRawBufferPointer(rebasing: seg[(offset + 24)..<(offset + 56)]))
    let chain = Hash32(raw: UnsafeRawBufferPointer(rebasing: seg[(offset + 56)..<(offset + 88)]))
    let event = UnsafeRawBufferPointer(rebasing: seg[(offset + recordHeaderBytes)..<end])
    guard hasher.leaf(event) == leaf else {
      return .bad("leaf hash does not match the event (event altered)")
    }
    guard synced < seq else { return .bad("synced-through \(synced) not below seq \(seq)") }
    return .record(
      JournalRecord(seq: seq, syncedThrough: synced, leaf: leaf, chain: chain, event: event),
      next: offset + recordHeaderBytes + padded(len))
  }
}
