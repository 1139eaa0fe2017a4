import CLMDB
import Glibc
import TallyCore
import TallyCrypto

/// What `export` wrote.
public struct ExportSummary: Sendable, Equatable {
  public var from: UInt64
  public var to: UInt64
  public var events: UInt64
  /// Events before `from` included with inclusion proofs (accounts and holds referred to).
  public var context: Int
  public var bytes: UInt64
  public var checkpoint: Checkpoint
}

/// Why an export cannot be made.
public enum ExportError: Error, Equatable, Sendable {
  /// A range outside the log (or an empty log).
  case range(String)
  /// The output directory exists and is not empty, or cannot be written.
  case output(String)
  /// The directory has no signing key yet.
  case noSigningKey
}

extension LedgerQuerying {
  /// Writes the events `from…to` (default: the whole log) as an export (docs/FORMAT.md,
  /// "Export") into `directory`, which must not exist or be empty. Everything is read in one
  /// snapshot, so the export is consistent while a writer appends.
  public func export(
    to directory: String, fromSeq: UInt64?, toSeq: UInt64?,
    progress: ProgressHandler? = nil
  ) throws(StoreError) -> Result<ExportSummary, ExportError> {
    guard let signer = reader.signer else { return .failure(.noSigningKey) }
    return try reader.read { t -> Result<ExportSummary, ExportError> in
      let dbs = reader.dbs
      let head = try Ledger.readHead(t, dbs).seq
      let from = fromSeq ?? 1
      let to = toSeq ?? head
      guard head > 0 else { return .failure(.range("the log is empty: nothing to export")) }
      guard from >= 1, from <= to else {
        return .failure(.range("--from-seq must be 1…\(to), got \(from)"))
      }
      guard to <= head else { return .failure(.range("--to-seq \(to) > head \(head)")) }
      if let why = ExportWriter.prepare(directory) { return .failure(.output(why)) }
      var w = ExportWriter(directory: directory)
      let summary = try w.write(t, dbs, signer, from: from, to: to, progress: progress)
      return .success(summary)
    }
  }
}

/// Writes an export's files. Files are written whole, synced, then the directory synced.
struct ExportWriter {
  let directory: String
  var bytes: UInt64 = 0

  /// Creates `directory` or checks it is an empty directory; the reason when it cannot.
  static func prepare(_ directory: String) -> String? {
    if mkdir(directory, 0o755) == 0 { return nil }
    let err = errno
    guard err == EEXIST else {
      return "cannot create \(directory): \(String(cString: strerror(err)))"
    }
    guard let d = opendir(directory) else {
      return "\(directory) exists and is not a readable directory"
    }
    defer { closedir(d) }
    while let e = readdir(d) {
      let name = withUnsafeBytes(of: e.pointee.d_name) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
      }
      if name != "." && name != ".." {
        return "\(directory) is not empty: an export never overwrites files"
      }
    }
    return nil
  }

  init(directory: String) { self.directory = directory }

  mutating func write(
    _ t: Txn, _ dbs: DBs, _ signer: NoteSigner, from: UInt64, to: UInt64,
    progress: ProgressHandler?
  ) throws -> ExportSummary {
    let p = from - 1
    let checkpoint = try Checkpoint.sign(t, dbs, signer, size: to)

    // events and hashes, streamed; the accounts and holds they name are collected for the
    // context when the export does not start at seq 1.
    var events = try Sink(directory + "/events")
    var hashes = try Sink(directory + "/hashes")
    var accounts = Set<String>()
    var holds = Set<String>()
    let c = try t.cursor(dbs.log)
    defer { c.close() }
    var row = try withBytes(of: from.bigEndian) { (k) throws(StoreError) in
      try c.get(MDB_SET_RANGE, key: k)
    }
    var seq = from
    progress?(.export, 0, to - from + 1)
    while seq <= to {
      guard let (k, v) = row, k.count == 8,
        UInt64(bigEndian: k.loadUnaligned(as: UInt64.self)) == seq
      else {
        throw StoreError.corrupt("the log has no event at seq \(seq)")
      }
      guard let hv = try t.get(dbs.hashes, u64: seq), hv.count == 64 else {
        throw StoreError.corrupt("no hashes for seq \(seq)")
      }
      try events.u32(UInt32(v.count))
      try events.append(v)
      try hashes.append(hv)
      if p > 0 {
        switch try EventCodec.decode(v).body {
        case .entryPosted(let e): for l in e.legs { accounts.insert(l.account) }
        case .holdPlaced(let h): for l in h.legs { accounts.insert(l.account) }
        case .holdCaptured(let c): holds.insert(c.holdId)
        default: break
        }
      }
      if seq & 0xfff == 0 { progress?(.export, seq - from + 1, to - from + 1) }
      seq += 1
      row = try c.get(MDB_NEXT)
    }
    bytes += try events.close() + hashes.close()

    // context: the events before `from` that opened those accounts and placed those holds,
    // each with its audit path in the tree of size `to`.
    var contextSeqs = Set<UInt64>()
    var state = StoreState(txn: t, dbs: dbs, cache: BatchCache(accountCount: 0))
    for id in holds {
      guard let h = try state.hold(id), h.placedSeq < from else { continue }
      contextSeqs.insert(h.placedSeq)
      for l in h.legs { accounts.insert(l.account) }
    }
    for name in accounts {
      guard let a = try state.account(name), a.openedSeq < from else { continue }
      contextSeqs.insert(a.openedSeq)
    }
    let h = SHA256Hasher()
    let sub: SubtreeHash = { try Tree.subtree(t, dbs, level: $0, index: $1) }
    var context = try Sink(directory + "/context")
    for s in contextSeqs.sorted() {
      guard let v = try t.get(dbs.log, u64: s) else {
        throw StoreError.corrupt("the log has no event at seq \(s)")
      }
      try context.u32(UInt32(v.count))
      try context.append(v)
      let path = try Merkle.inclusionProof(h, index: s - 1, size: to, sub)
      try context.u8(UInt8(path.count))
      for node in path { try context.hash(node) }
    }
    bytes += try context.close()

    // prefix: chain[p] and the complete subtrees covering the first p leaves, largest first.
    var prefix = try Sink(directory + "/prefix")
    try prefix.u64(p)
    if p == 0 {
      try prefix.hash(.zero)
    } else {
      guard let hv = try t.get(dbs.hashes, u64: p), hv.count == 64 else {
        throw StoreError.corrupt("no hashes for seq \(p)")
      }
      try prefix.append(UnsafeRawBufferPointer(rebasing: hv[32..<64]))
      for level in stride(from: 63, through: 0, by: -1) where (p >> level) & 1 == 1 {
        try prefix.hash(try sub(level, (p >> level) - 1))
      }
    }
    bytes += try prefix.close()

    // tree: every complete subtree of ≥ 2 leaves inside leaves p ..< to, by level then index.
    var tree = try Sink(directory + "/tree")
    var level = 1
    while level < 64 && (UInt64(1) << level) <= to {
      let first = (p + (UInt64(1) << level) - 1) >> level
      let end = to >> level
      if first < end {
        guard let dbi = dbs.tree else { throw StoreError.corrupt("the tree database is missing") }
        let tc = try t.cursor(dbi)
        defer { tc.close() }
        var node = try withBytes(Tree.key(level, first)) { (k) throws(StoreError) in
          try tc.get(MDB_SET_RANGE, key: k)
        }
        var i = first
        while i < end {
          guard let (k, v) = node, k.count == 9, Int(k[0]) == level,
            UInt64(
              bigEndian: UnsafeRawBufferPointer(rebasing: k[1..<9]).loadUnaligned(
                as: UInt64.self)) == i, v.count == 32
          else { throw StoreError.corrupt("no tree node at level \(level), index \(i)") }
          try tree.append(v)
          i += 1
          node = try tc.get(MDB_NEXT)
        }
      }
      level += 1
    }
    bytes += try tree.close()

    var note = try Sink(directory + "/checkpoint")
    try note.text(checkpoint.note)
    bytes += try note.close()
    var vkey = try Sink(directory + "/vkey")
    try vkey.text(signer.vkey + "\n")
    bytes += try vkey.close()
    var manifest = try Sink(directory + "/manifest")
    try manifest.text(
      ExportManifest(
        origin: signer.name, from: from, to: to, events: to - from + 1,
        context: UInt64(contextSeqs.count)
      ).text)
    bytes += try manifest.close()
    try syncDirectory(directory)
    progress?(.export, to - from + 1, to - from + 1)
    return ExportSummary(
      from: from, to: to, events: to - from + 1, context: contextSeqs.count, bytes: bytes,
      checkpoint: checkpoint)
  }
}

/// A buffered, synced output file.
private struct Sink {
  let path: String
  let fd: Int32
  var buffer = [UInt8]()
  var written: UInt64 = 0

  init(_ path: String) throws(StoreError) {
    self.path = path
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw .io("cannot create \(path): \(String(cString: strerror(errno)))") }
    buffer.reserveCapacity(1 << 20)
  }

  mutating func append(_ b: UnsafeRawBufferPointer) throws(StoreError) {
    buffer.append(contentsOf: b)
    if buffer.count >= 1 << 20 { try flush() }
  }

  mutating func u8(_ v: UInt8) throws(StoreError) { try raw(of: v) }
  mutating func u32(_ v: UInt32) throws(StoreError) { try raw(of: v.bigEndian) }
  mutating func u64(_ v: UInt64) throws(StoreError) { try raw(of: v.bigEndian) }
  mutating func hash(_ h: Hash32) throws(StoreError) { try raw(of: h) }
  mutating func text(_ s: String) throws(StoreError) {
    buffer.append(contentsOf: s.utf8)
    if buffer.count >= 1 << 20 { try flush() }
  }

  private mutating func raw<T>(of value: T) throws(StoreError) {
    withUnsafeBytes(of: value) { buffer.append(contentsOf: $0) }
    if buffer.count >= 1 << 20 { try flush() }
  }

  mutating func flush() throws(StoreError) {
    var off = 0
    while off < buffer.count {
      let n = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
      if n < 0 {
        if errno == EINTR { continue }
        throw .io("cannot write \(path): \(String(cString: strerror(errno)))")
      }
      off += n
    }
    written += UInt64(buffer.count)
    buffer.removeAll(keepingCapacity: true)
  }

  /// Flushes, syncs and closes; the file's size.
  mutating func close() throws(StoreError) -> UInt64 {
    try flush()
    let ok = fsync(fd) == 0
    let err = errno
    Glibc.close(fd)
    guard ok else { throw .io("cannot sync \(path): \(String(cString: strerror(err)))") }
    return written
  }
}

func syncDirectory(_ path: String) throws(StoreError) {
  let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
  guard fd >= 0 else { throw .io("cannot open \(path): \(String(cString: strerror(errno)))") }
  defer { close(fd) }
  guard fsync(fd) == 0 else {
    throw .io("cannot sync \(path): \(String(cString: strerror(errno)))")
  }
}
