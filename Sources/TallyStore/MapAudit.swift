import Glibc

/// A structural check of an LMDB data file before anything reads it through LMDB.
///
/// LMDB 0.9 keeps no page checksums and trusts every page it reads: a flipped bit in a page
/// header, a node offset or a child page number makes `liblmdb` itself assert
/// (`IS_LEAF(mp)` in `mdb_cursor_next`) or read through a wild pointer, and the process dies
/// of SIGABRT or SIGSEGV instead of reporting. Every byte of the map is untrusted input, so
/// an open walks the trees of the snapshot it will read, with bounds-checked reads of its own
/// (a private read-only mapping, no pointer leaves the file), and refuses the file with
/// `CORRUPT` naming the page when any structure LMDB relies on is broken. The page layouts are
/// `lmdb.h`/`mdb.c` 0.9's on a 64-bit little-endian machine (docs/FORMAT.md, "Reading the
/// map"). What the walk cannot see (a changed key or value that keeps the structure whole) is
/// content, which `verify` compares with the journal.
enum MapAudit {
  // Page layout (mdb.c): a 16-byte header, then the node offsets (`mp_ptrs`).
  static let pageHeaderBytes = 16
  static let nodeHeaderBytes = 8
  static let metaMagic: UInt32 = 0xBEEF_C0DE
  static let dataVersion: UInt32 = 1
  static let pBranch: UInt16 = 0x01
  static let pLeaf: UInt16 = 0x02
  static let pOverflow: UInt16 = 0x04
  static let pMeta: UInt16 = 0x08
  static let fBigData: UInt16 = 0x01
  static let fSubData: UInt16 = 0x02
  static let fDupData: UInt16 = 0x04
  static let integerKey: UInt16 = 0x08
  /// LMDB's cursor stack (`CURSOR_STACK`): no tree may be deeper.
  static let depthMax = 32
  /// A named database's record in the main database (`MDB_db`).
  static let dbRecordBytes = 48
  /// The page sizes LMDB may have been created with (it uses the OS page size).
  static let pageBytesAllowed: Set<Int> = [4096, 8192, 16384, 32768, 65536]
  /// Named databases at most (the environment's `maxdbs` bounds what the store opens;
  /// a main database holding more records than this is not one the store wrote).
  static let namedDatabasesMax = 64

  struct Failure: Error, CustomStringConvertible {
    var page: UInt64?
    var reason: String
    var description: String {
      if let page { return "page \(page): \(reason)" }
      return reason
    }
  }

  /// What the walk saw.
  struct Summary: Equatable {
    var pageBytes: Int
    var lastPage: UInt64
    var txnID: UInt64
    /// Named databases, with their entries.
    var databases: [String: UInt64]
    /// Root page and depth of each named database (tests aim damage with them).
    var roots: [String: Root]

    struct Root: Equatable {
      var page: UInt64
      var depth: Int
    }
  }

  /// Checks `file` (a `data.mdb`) as LMDB will read it at transaction `txnID` (the meta page
  /// carrying that id), or at the newest meta when `txnID` is nil or no meta carries it
  /// anymore (a live writer committed twice since; its pages are then still held by the
  /// caller's reader). Throws `.corrupt` naming the file and the page.
  static func check(file: String, txnID: UInt64?) throws(StoreError) -> Summary {
    try mapped(file) { (bytes) throws(Failure) in
      // A live writer rewrites a meta page in place when it commits: a walk that failed
      // while the metas changed under it is tried again (a bounded number of times), so a
      // meta read half-written is not taken for damage.
      var attempt = 0
      while true {
        let before = metaStamps(bytes)
        do throws(Failure) {
          var walker = try Walker(bytes, txnID: txnID)
          return try walker.run()
        } catch {
          attempt += 1
          if attempt >= Self.attemptsMax || metaStamps(bytes) == before { throw error }
        }
      }
    }
  }

  /// Walks tried while a writer commits under them (see `check`).
  static let attemptsMax = 3

  /// The transaction ids of both meta pages, as they are now (nil where unreadable).
  static func metaStamps(_ b: UnsafeRawBufferPointer) -> [UInt64?] {
    let psize = (try? Walker.u32(b, 40)).map(Int.init) ?? 4096
    return [0, psize].map { try? Walker.u64(b, $0 + 144) }
  }

  /// Checks the two meta pages only (magic, version, page size, last page inside the file):
  /// what must hold before `mdb_env_open`, which would otherwise size the map from a damaged
  /// last page (and a writer's map extend the file to it).
  static func checkMetas(file: String) throws(StoreError) {
    // An empty file is one LMDB has yet to initialise (a create cut short).
    var st = stat()
    if stat(file, &st) == 0 && st.st_size == 0 { return }
    _ = try mapped(file) { (bytes) throws(Failure) in try Walker(bytes, txnID: nil) }
  }

  static func mapped<R>(
    _ file: String, _ body: (UnsafeRawBufferPointer) throws(Failure) -> R
  ) throws(StoreError) -> R {
    let fd = open(file, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw .io("cannot open \(file): \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    if fstat(fd, &st) != 0 { throw .io("cannot stat \(file): \(String(cString: strerror(errno)))") }
    let size = Int(st.st_size)
    guard size >= 2 * 4096 else {
      throw .corrupt("\(file): \(size) bytes, less than LMDB's two meta pages")
    }
    guard let base = mmap(nil, size, PROT_READ, MAP_SHARED, fd, 0), base != MAP_FAILED else {
      throw .io("cannot map \(file): \(String(cString: strerror(errno)))")
    }
    defer { munmap(base, size) }
    let bytes = UnsafeRawBufferPointer(start: base, count: size)
    do {
      return try body(bytes)
    } catch {
      throw .corrupt(
        "\(file): \(error) (LMDB keeps no checksums: the map is damaged; restore a backup, or "
          + "move data.mdb away and open the directory read-write to rebuild it from the journal)")
    }
  }

  /// The walk over one mapped file; every read is bounds-checked against the file.
  struct Walker {
    let file: UnsafeRawBufferPointer
    let pageBytes: Int
    let lastPage: UInt64
    let txnID: UInt64
    let metaOffset: Int
    /// One bit per page up to `lastPage`: reached once, from one parent or list.
    var seen: [UInt64]

    init(_ file: UnsafeRawBufferPointer, txnID wanted: UInt64?) throws(Failure) {
      self.file = file
      // Both metas sit in the first two pages; the page size is in meta 0's free database
      // record (`md_pad`), and LMDB itself reads it from there.
      func meta(_ at: Int) throws(Failure) -> (txn: UInt64, last: UInt64, psize: Int)? {
        let flags = try Self.u16(file, at + 10)
        let magic = try Self.u32(file, at + 16)
        let version = try Self.u32(file, at + 20)
        guard flags & MapAudit.pMeta != 0, magic == MapAudit.metaMagic,
          version == MapAudit.dataVersion
        else { return nil }
        return (
          try Self.u64(file, at + 144), try Self.u64(file, at + 136),
          Int(try Self.u32(file, at + 40))
        )
      }
      guard let m0 = try meta(0) else {
        throw Failure(page: 0, reason: "meta page 0 is not an LMDB meta page")
      }
      let psize = m0.psize
      guard MapAudit.pageBytesAllowed.contains(psize), file.count >= 2 * psize else {
        throw Failure(page: 0, reason: "page size \(psize) is not one LMDB writes")
      }
      guard let m1 = try meta(psize) else {
        throw Failure(page: 1, reason: "meta page 1 is not an LMDB meta page")
      }
      let pages = UInt64(file.count / psize)
      for (i, m) in [m0, m1].enumerated() where m.last < 1 || m.last >= pages {
        throw Failure(
          page: UInt64(i), reason: "meta names last page \(m.last); the file holds \(pages) pages")
      }
      var pick = m0.txn < m1.txn ? (m1, psize) : (m0, 0)
      if let wanted {
        if m0.txn == wanted {
          pick = (m0, 0)
        } else if m1.txn == wanted {
          pick = (m1, psize)
        }
      }
      pageBytes = psize
      txnID = pick.0.txn
      metaOffset = pick.1
      let last = pick.0.last
      lastPage = last
      seen = [UInt64](repeating: 0, count: Int(last / 64) + 1)
    }

    static func u16(_ b: UnsafeRawBufferPointer, _ at: Int) throws(Failure) -> UInt16 {
      guard at >= 0, at <= b.count - 2 else { throw Failure(reason: "read past the file") }
      return UInt16(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt16.self))
    }
    static func u32(_ b: UnsafeRawBufferPointer, _ at: Int) throws(Failure) -> UInt32 {
      guard at >= 0, at <= b.count - 4 else { throw Failure(reason: "read past the file") }
      return UInt32(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt32.self))
    }
    static func u64(_ b: UnsafeRawBufferPointer, _ at: Int) throws(Failure) -> UInt64 {
      guard at >= 0, at <= b.count - 8 else { throw Failure(reason: "read past the file") }
      return UInt64(littleEndian: b.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    /// The `MDB_db` record at `at`.
    struct DB {
      var flags: UInt16
      var depth: Int
      var branchPages: UInt64
      var leafPages: UInt64
      var overflowPages: UInt64
      var entries: UInt64
      var root: UInt64
    }

    static func db(_ b: UnsafeRawBufferPointer, _ at: Int) throws(Failure) -> DB {
      DB(
        flags: try Self.u16(b, at + 4), depth: Int(try Self.u16(b, at + 6)),
        branchPages: try Self.u64(b, at + 8), leafPages: try Self.u64(b, at + 16),
        overflowPages: try Self.u64(b, at + 24), entries: try Self.u64(b, at + 32),
        root: try Self.u64(b, at + 40))
    }

    mutating func run() throws(Failure) -> Summary {
      let free = try Self.db(file, metaOffset + 40)
      let main = try Self.db(file, metaOffset + 88)
      guard free.flags == MapAudit.integerKey else {
        throw Failure(reason: "free database flags \(free.flags)")
      }
      guard main.flags == 0 else { throw Failure(reason: "main database flags \(main.flags)") }
      var named: [(String, DB)] = []
      try walk(main, "main") { (key, value, flags) throws(Failure) in
        guard flags & MapAudit.fSubData != 0, value.count == MapAudit.dbRecordBytes,
          named.count < MapAudit.namedDatabasesMax
        else {
          throw Failure(reason: "main database record \(Self.printable(key)) is not a database")
        }
        named.append((Self.printable(key), try Self.db(value, 0)))
      }
      var databases: [String: UInt64] = [:]
      var roots: [String: Summary.Root] = [:]
      for (name, d) in named {
        roots[name] = Summary.Root(page: d.root, depth: d.depth)
        guard d.flags == 0 else { throw Failure(reason: "database \(name) has flags \(d.flags)") }
        // A value larger than a page lives in overflow pages (`F_BIGDATA`, checked by the
        // walk); only the main database holds database records.
        try walk(d, name) { (_, _, flags) throws(Failure) in
          if flags & ~MapAudit.fBigData != 0 {
            throw Failure(reason: "database \(name) holds a node flagged \(flags)")
          }
        }
        databases[name] = d.entries
      }
      // Pages on the free list must be none of the trees' pages: a writer would reuse them.
      let lastPage = self.lastPage
      var listed: [UInt64] = []
      try walk(free, "free") { (key, value, _) throws(Failure) in
        guard key.count == 8, value.count >= 8, value.count % 8 == 0 else {
          throw Failure(reason: "free list record of \(key.count)/\(value.count) bytes")
        }
        let n = try Self.u64(value, 0)
        guard n == UInt64(value.count / 8 - 1) else {
          throw Failure(reason: "free list record counts \(n) pages in \(value.count) bytes")
        }
        for i in 1..<(value.count / 8) {
          let p = try Self.u64(value, i * 8)
          guard p >= 2, p <= lastPage else {
            throw Failure(reason: "free list names page \(p) (last page \(lastPage))")
          }
          listed.append(p)
        }
      }
      for p in listed { try mark(p, "on the free list and in use") }
      return Summary(
        pageBytes: pageBytes, lastPage: lastPage, txnID: txnID, databases: databases,
        roots: roots)
    }

    static func printable(_ b: UnsafeRawBufferPointer) -> String {
      let u = b.prefix(64).map { $0 >= 0x20 && $0 < 0x7f ? $0 : UInt8(ascii: "?") }
      return String(decoding: u, as: UTF8.self)
    }

    mutating func mark(_ page: UInt64, _ what: String) throws(Failure) {
      guard page >= 2, page <= lastPage else {
        throw Failure(page: page, reason: "\(what): past the last page \(lastPage)")
      }
      let (w, b) = (Int(page / 64), page % 64)
      if seen[w] & (1 << b) != 0 { throw Failure(page: page, reason: "\(what): reached twice") }
      seen[w] |= 1 << b
    }

    func page(_ p: UInt64) throws(Failure) -> UnsafeRawBufferPointer {
      let start = Int(p) * pageBytes
      guard start + pageBytes <= file.count else {
        throw Failure(page: p, reason: "past the end of the file")
      }
      return UnsafeRawBufferPointer(rebasing: file[start..<start + pageBytes])
    }

    struct Counts {
      var branch: UInt64 = 0
      var leaf: UInt64 = 0
      var overflow: UInt64 = 0
      var entries: UInt64 = 0
    }

    /// Walks one tree depth first; `leaf` sees every leaf node's key, value and flags.
    mutating func walk(
      _ d: DB, _ name: String,
      _ leaf: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UInt16) throws(Failure) -> Void
    ) throws(Failure) {
      let empty = UInt64.max  // P_INVALID
      if d.root == empty {
        guard d.depth == 0, d.entries == 0, d.branchPages == 0, d.leafPages == 0,
          d.overflowPages == 0
        else { throw Failure(reason: "database \(name) is empty but counts pages or entries") }
        return
      }
      guard d.depth >= 1, d.depth <= MapAudit.depthMax else {
        throw Failure(reason: "database \(name) has depth \(d.depth)")
      }
      var counts = Counts()
      try visit(d.root, level: 1, depth: d.depth, name, &counts, leaf)
      guard counts.branch == d.branchPages, counts.leaf == d.leafPages,
        counts.overflow == d.overflowPages, counts.entries == d.entries
      else {
        throw Failure(
          reason: "database \(name) counts \(d.branchPages)/\(d.leafPages)/\(d.overflowPages) "
            + "pages and \(d.entries) entries; its tree has \(counts.branch)/\(counts.leaf)/"
            + "\(counts.overflow) and \(counts.entries)")
      }
    }

    mutating func visit(
      _ p: UInt64, level: Int, depth: Int, _ name: String, _ counts: inout Counts,
      _ leaf: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, UInt16) throws(Failure) -> Void
    ) throws(Failure) {
      try mark(p, "a page of \(name)")
      let pg = try page(p)
      let isLeaf = level == depth
      guard try Self.u64(pg, 0) == p else {
        throw Failure(page: p, reason: "\(name): the page says it is page \(try Self.u64(pg, 0))")
      }
      let flags = try Self.u16(pg, 10)
      guard flags == (isLeaf ? MapAudit.pLeaf : MapAudit.pBranch) else {
        throw Failure(
          page: p, reason: "\(name): flags \(flags) where a \(isLeaf ? "leaf" : "branch") belongs")
      }
      let lower = Int(try Self.u16(pg, 12))
      let upper = Int(try Self.u16(pg, 14))
      guard lower >= MapAudit.pageHeaderBytes, (lower - MapAudit.pageHeaderBytes) % 2 == 0,
        lower <= upper, upper <= pageBytes
      else { throw Failure(page: p, reason: "\(name): bounds \(lower)…\(upper)") }
      let n = (lower - MapAudit.pageHeaderBytes) / 2
      // mdb.c asserts a branch has two children at least (mdb_page_search_root).
      guard n >= (isLeaf ? 1 : 2) else {
        throw Failure(page: p, reason: "\(name): \(n) nodes on a \(isLeaf ? "leaf" : "branch")")
      }
      if isLeaf { counts.leaf += 1 } else { counts.branch += 1 }
      var previousKey: UnsafeRawBufferPointer?
      for i in 0..<n {
        let off = Int(try Self.u16(pg, MapAudit.pageHeaderBytes + 2 * i))
        guard off >= upper, off + MapAudit.nodeHeaderBytes <= pageBytes else {
          throw Failure(page: p, reason: "\(name): node \(i) at \(off), outside \(upper)…")
        }
        let lo = UInt64(try Self.u16(pg, off))
        let hi = UInt64(try Self.u16(pg, off + 2))
        let nodeFlags = try Self.u16(pg, off + 4)
        let ksize = Int(try Self.u16(pg, off + 6))
        let keyAt = off + MapAudit.nodeHeaderBytes
        guard ksize <= Txn.keyBytesMax, keyAt + ksize <= pageBytes else {
          throw Failure(page: p, reason: "\(name): node \(i) has a key of \(ksize) bytes")
        }
        let key = UnsafeRawBufferPointer(rebasing: pg[keyAt..<keyAt + ksize])
        // Keys ascend within a page (LMDB's default order: bytes, then length); a branch's
        // first key is unused.
        if isLeaf || i > 0 {
          if name != "free", let prev = previousKey, !Self.ascending(prev, key) {
            throw Failure(page: p, reason: "\(name): node \(i) is out of key order")
          }
          previousKey = key
        }
        if !isLeaf {
          let child = lo | hi << 16 | UInt64(nodeFlags) << 32
          try visit(child, level: level + 1, depth: depth, name, &counts, leaf)
          continue
        }
        let dsize = Int(lo | hi << 16)
        let dataAt = keyAt + ksize
        guard nodeFlags & ~(MapAudit.fBigData | MapAudit.fSubData) == 0,
          nodeFlags & MapAudit.fDupData == 0
        else { throw Failure(page: p, reason: "\(name): node \(i) flags \(nodeFlags)") }
        counts.entries += 1
        if nodeFlags & MapAudit.fBigData != 0 {
          guard dataAt + 8 <= pageBytes else {
            throw Failure(page: p, reason: "\(name): node \(i) overflow number past the page")
          }
          let first = try Self.u64(pg, dataAt)
          let value = try overflow(first, bytes: dsize, name, &counts)
          try leaf(key, value, nodeFlags)
        } else {
          guard dataAt + dsize <= pageBytes else {
            throw Failure(page: p, reason: "\(name): node \(i) value of \(dsize) bytes")
          }
          try leaf(key, UnsafeRawBufferPointer(rebasing: pg[dataAt..<dataAt + dsize]), nodeFlags)
        }
      }
    }

    /// An overflow run's value bytes, after checking its header and marking its pages.
    mutating func overflow(_ first: UInt64, bytes: Int, _ name: String, _ counts: inout Counts)
      throws(Failure) -> UnsafeRawBufferPointer
    {
      let pg = try page(first)
      guard try Self.u64(pg, 0) == first, try Self.u16(pg, 10) == MapAudit.pOverflow else {
        throw Failure(page: first, reason: "\(name): not the overflow page a value names")
      }
      let pages = UInt64(try Self.u32(pg, 12))
      guard pages >= 1, pages <= lastPage, first <= lastPage - pages + 1,
        bytes <= Int(pages) * pageBytes - MapAudit.pageHeaderBytes
      else {
        throw Failure(
          page: first, reason: "\(name): overflow run of \(pages) pages, \(bytes) bytes")
      }
      for q in first..<(first + pages) { try mark(q, "an overflow page of \(name)") }
      counts.overflow += pages
      let start = Int(first) * pageBytes + MapAudit.pageHeaderBytes
      return UnsafeRawBufferPointer(rebasing: file[start..<start + bytes])
    }

    static func ascending(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
      let n = min(a.count, b.count)
      if n > 0 {
        let c = memcmp(a.baseAddress!, b.baseAddress!, n)
        if c != 0 { return c < 0 }
      }
      return a.count < b.count
    }
  }
}
