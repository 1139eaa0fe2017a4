import Glibc
import TallyCore
import TallyCrypto

extension Journal {
  /// Reads a journal directory read-only as an open does: every segment header, then every
  /// record from seq 1 (frame, length, leaf hash, seq, chain, the search for durable records
  /// after a bad one). Returns how the scan ended; a damaged journal throws, never traps.
  /// For the fuzzers, which write arbitrary segment bytes and read them back through here.
  @_spi(Fuzzing) public static func scanReadOnly(directory: String) throws -> ScanResult? {
    guard let journal = try load(directory: directory, files: JournalFiles()) else {
      return nil
    }
    return try journal.scan { _ in }
  }

  /// The 4096-byte header of a valid first segment (seq 1, no chain before it) of
  /// `capacityBytes`, so that fuzzed record bytes behind it get past the header check.
  @_spi(Fuzzing) public static func firstSegmentHeader(capacityBytes: Int) -> [UInt8] {
    SegmentHeader(
      ledgerID: [UInt8](repeating: 0x5A, count: JournalFormat.ledgerIDBytes), firstSeq: 1,
      chainBefore: .zero, capacityBytes: UInt64(capacityBytes)
    ).encode()
  }

  /// One record's frame (padded to 8 bytes) with correct leaf and chain hashes.
  @_spi(Fuzzing) public static func frameBytes(
    seq: UInt64, syncedThrough: UInt64, chainBefore: Hash32, event: [UInt8]
  ) -> (bytes: [UInt8], chain: Hash32) {
    let hasher = SHA256Hasher()
    let leaf = hasher.leaf(event)
    let chain = hasher.chain(chainBefore, leaf)
    var w = ByteWriter()
    JournalFormat.frame(
      &w, seq: seq, syncedThrough: syncedThrough, leaf: leaf, chain: chain, event: event)
    return (w.bytes, chain)
  }

  /// The file name of the segment that starts at `firstSeq`.
  @_spi(Fuzzing) public static func segmentFileName(firstSeq: UInt64) -> String {
    JournalFormat.segmentName(firstSeq)
  }
}
