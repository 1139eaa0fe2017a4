import Glibc
import TallyCore
import TallyCrypto

/// The state kept outside the log (API keys, kept checkpoints) as an append-only file,
/// `journal/aux.log`, synced on every append: LMDB holds it for queries, but LMDB is written
/// without syncs and rebuilt from the journals after an OS crash, so this file is what
/// makes a created key or a kept checkpoint durable (docs/FORMAT.md, "The aux journal").
///
/// A record: magic `TAX1` (u32), body length (u32), body, SHA-256 of the three before it.
/// The body: table (u8: 1 keys, 2 checkpoints), key length (u16), key, value length (u32),
/// value. A later record for the same table and key replaces the earlier one.
final class AuxJournal {
  enum Table: UInt8 {
    case keys = 1
    case checkpoints = 2
  }

  struct Record: Equatable {
    var table: Table
    var key: [UInt8]
    var value: [UInt8]
    /// The file offset just after this record.
    var end: Int = 0
  }

  static let fileName = "aux.log"
  static let magic: UInt32 = 0x5441_5831  // "TAX1"
  /// The whole file is read at open; 1 GiB bounds that (a kept checkpoint is ~300 bytes).
  static let fileBytesMax = 1 << 30
  static let bodyBytesMax = 1 << 20

  let path: String
  let files: JournalFiles
  private var fd: Int32
  private(set) var size: Int

  private init(path: String, files: JournalFiles, fd: Int32, size: Int) {
    self.path = path
    self.files = files
    self.fd = fd
    self.size = size
  }

  deinit { files.close(fd) }

  /// Opens (creating when absent) and reads every record. A torn last record is cut when
  /// `repair` (a read-write open) and ignored otherwise; a bad record that a good one
  /// follows is corruption.
  static func open(directory: String, files: JournalFiles, repair: Bool) throws(StoreError)
    -> (AuxJournal?, [Record])
  {
    let path = directory + "/" + fileName
    if !fileExists(path) && !repair { return (nil, []) }
    let fd = try files.open(path, create: repair)
    let total: Int
    let bytes: [UInt8]
    do throws(StoreError) {
      total = try files.size(fd)
      guard total <= fileBytesMax else { throw StoreError.corrupt("\(path) is over 1 GiB") }
      bytes = try files.read(fd, count: total, at: 0)
    } catch {
      files.close(fd)
      throw error
    }
    var records = [Record]()
    var o = 0
    var bad: String?
    while o < bytes.count {
      switch parse(bytes, at: o) {
      case .success(let r):
        records.append(r)
        o = r.end
      case .failure(let why):
        bad = why.description
      }
      if bad != nil { break }
    }
    if let bad {
      // Torn (never acknowledged) unless a good record follows.
      var p = o + 1
      while p + 8 <= bytes.count {
        if case .success = parse(bytes, at: p) {
          files.close(fd)
          throw .corrupt(
            "\(path): record at offset \(o) is bad (\(bad)) and a good one follows at \(p)")
        }
        p += 1
      }
      if repair {
        do throws(StoreError) {
          try files.truncate(fd, to: o)
          try files.sync(fd)
        } catch {
          files.close(fd)
          throw error
        }
      }
    }
    return (AuxJournal(path: path, files: files, fd: fd, size: o), records)
  }

  static func parse(_ b: [UInt8], at o: Int) -> Result<Record, ParseFailure> {
    guard o + 8 <= b.count else { return .failure("truncated record") }
    let magic = b.withUnsafeBytes {
      UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: o, as: UInt32.self))
    }
    guard magic == Self.magic else { return .failure("bad magic") }
    let len = Int(
      b.withUnsafeBytes {
        UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: o + 4, as: UInt32.self))
      })
    guard len >= 7, len <= bodyBytesMax, o + 8 + len + 32 <= b.count else {
      return .failure("truncated record")
    }
    let sum = b.withUnsafeBytes {
      SHA256Hasher().hash(UnsafeRawBufferPointer(rebasing: $0[o..<(o + 8 + len)]))
    }
    let stored = b.withUnsafeBytes {
      Hash32(raw: UnsafeRawBufferPointer(rebasing: $0[(o + 8 + len)..<(o + 8 + len + 32)]))
    }
    guard sum == stored else { return .failure("checksum mismatch") }
    let body = o + 8
    guard let table = Table(rawValue: b[body]) else {
      return .failure(ParseFailure("unknown table \(b[body])"))
    }
    let kl = Int(b[body + 1]) << 8 | Int(b[body + 2])
    guard 3 + kl + 4 <= len else { return .failure("key runs past the record") }
    let key = Array(b[(body + 3)..<(body + 3 + kl)])
    let vo = body + 3 + kl
    let vl = b.withUnsafeBytes {
      Int(UInt32(bigEndian: $0.loadUnaligned(fromByteOffset: vo, as: UInt32.self)))
    }
    guard 3 + kl + 4 + vl == len else { return .failure("value length does not fit the record") }
    return .success(
      Record(
        table: table, key: key, value: Array(b[(vo + 4)..<(vo + 4 + vl)]), end: o + 8 + len + 32))
  }

  struct ParseFailure: Error, ExpressibleByStringLiteral, CustomStringConvertible {
    var description: String
    init(stringLiteral s: String) { description = s }
    init(_ s: String) { description = s }
  }

  /// Appends `records` and syncs: durable when this returns.
  func append(_ records: [Record]) throws(StoreError) -> Int {
    var w = ByteWriter(capacity: 512)
    for r in records {
      let start = w.bytes.count
      w.u32(Self.magic)
      w.u32(UInt32(3 + r.key.count + 4 + r.value.count))
      w.u8(r.table.rawValue)
      w.u16(UInt16(r.key.count))
      w.raw(r.key)
      w.u32(UInt32(r.value.count))
      w.raw(r.value)
      let sum = w.bytes.withUnsafeBytes {
        SHA256Hasher().hash(UnsafeRawBufferPointer(rebasing: $0[start...]))
      }
      w.raw(sum.bytes)
    }
    do throws(StoreError) {
      try withBytes(w.bytes) { (b) throws(StoreError) in try files.write(fd, b, at: size) }
    } catch {
      // What a failed write put down (on a full disk, part of a record) is cut again, so it
      // cannot be read back as a record after a crash, and its space is freed.
      try? files.truncate(fd, to: size)
      throw error
    }
    try files.sync(fd)
    size += w.bytes.count
    return size
  }
}

extension AuxJournal.ParseFailure: Equatable {}
