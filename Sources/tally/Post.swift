import ArgumentParser
import Glibc
import TallyCore
import TallyProtocol
import TallyStore

struct Post: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Post an entry from legs on the command line, or many from a JSONL file.",
    discussion: """
      Legs: --debit ACCOUNT=AMOUNT --credit ACCOUNT=AMOUNT, amounts in the account currency's
      major unit (10.50 EUR); more decimals than the currency has is an error, never rounded.
      --file F.jsonl: one entry per line, the server's JSON shape, amounts as strings of minor
      units: {"id":"e1","legs":[{"account":"a","side":"debit","amount":"1050"},…]}
      """)

  @OptionGroup var global: GlobalOptions
  @Option(help: "Entry id (idempotency key), [A-Za-z0-9._:-], 1…64 bytes.") var id: String?
  @Option(help: "Debit leg ACCOUNT=AMOUNT (repeatable).") var debit: [String] = []
  @Option(help: "Credit leg ACCOUNT=AMOUNT (repeatable).") var credit: [String] = []
  @Option(help: "Assert every leg's account is in this currency.") var currency: String?
  @Option(help: "External reference.") var ref: String?
  @Option(name: .customLong("value-date"), help: "Value date, YYYY-MM-DD.") var valueDate: String?
  @Option(name: .customLong("meta"), help: "Metadata key=value (repeatable).")
  var meta: [String] = []
  @Option(help: "JSONL file of entries ('-' for stdin).") var file: String?
  @Option(help: "Entries per write transaction with --file (1…10000).") var batch: Int = 1000

  func validate() throws {
    if file != nil {
      if id != nil || !debit.isEmpty || !credit.isEmpty {
        throw ValidationError("--file cannot be combined with --id/--debit/--credit")
      }
      if batch < 1 || batch > 10_000 { throw ValidationError("--batch must be 1…10000") }
    } else if id == nil {
      throw ValidationError("--id is required (it makes the post idempotent)")
    }
  }

  func run() throws {
    if let online = try global.online() {
      defer { online.close() }
      if let file { return try postFileOnline(online, path: file, batch: batch) }
      let legs = try parseLegs(debit: debit, credit: credit, json: global.json) {
        try online.scale(of: $0)
      }
      return try online.show(
        "ENTRY.POST",
        body([
          ("id", jstr(id)), ("legs", legsJSON(legs)), ("currency", jstr(currency)),
          ("ref", jstr(ref)), ("value_date", jstr(valueDate)),
          ("metadata", metadataJSON(try parseMetadata(meta, json: global.json))),
        ]))
    }
    let ledger = try global.open()
    if let file {
      try global.withProgress { p in
        try PostFile(ledger: ledger, path: file, batch: batch, json: global.json, progress: p)
          .run()
      }
      return
    }
    let legs = try parseLegs(ledger, debit: debit, credit: credit, json: global.json)
    var days: Int32?
    if let valueDate {
      guard let d = CivilTime.parseDate(valueDate) else {
        throw report(Rejection(.invalidField, "value date must be YYYY-MM-DD"), json: global.json)
      }
      days = d
    }
    let spec = EntrySpec(
      id: id!, legs: legs, currency: currency, ref: ref, valueDateDays: days,
      metadata: try parseMetadata(meta, json: global.json))
    _ = try applyOne(ledger, .postEntry(spec), json: global.json, what: "entry \(id!)")
  }
}

/// `post --file`: streams a JSONL file in bounded memory, applying batches in input order,
/// so after a crash the log holds an exact prefix of the file (re-running it is safe:
/// entries already applied come back as duplicates).
struct PostFile {
  /// Longest accepted line: a 128-leg entry with full metadata fits in 48 KiB.
  static let lineBytesMax = 65_536
  static let rejectionsShownMax = 50

  let ledger: Ledger
  let path: String
  let batch: Int
  let json: Bool
  /// Sees the bytes read of a regular file, or the lines read of a pipe.
  let progress: ProgressHandler?

  static let progressBytes = ProgressPhase("post --file", .bytes)
  static let progressLines = ProgressPhase("post --file", .lines)

  struct Summary {
    var lines = 0
    var applied = 0
    var duplicate = 0
    var rejected = 0
    var rejections: [(line: Int, rejection: Rejection)] = []
    var firstSeq: UInt64?
    var lastSeq: UInt64?
  }

  func run() throws {
    let fp: UnsafeMutablePointer<FILE>? = path == "-" ? fdopen(0, "rb") : fopen(path, "rb")
    guard let fp else {
      throw usage("cannot open \(path): \(String(cString: strerror(errno)))")
    }
    defer { if path != "-" { fclose(fp) } }
    var summary = Summary()
    var pending: [(line: Int, command: Command)] = []
    pending.reserveCapacity(batch)
    // A regular file's size is known; a pipe's is not (its lines are counted instead).
    var st = stat()
    let fileBytes: UInt64? =
      fstat(fileno(fp), &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG ? UInt64(st.st_size) : nil

    func flush() throws {
      if pending.isEmpty { return }
      let outcomes: [Outcome]
      do {
        outcomes = try ledger.apply(pending.map(\.command), now: nowNanos())
      } catch {
        throw fail(error)
      }
      for (p, o) in zip(pending, outcomes) {
        switch o {
        case .applied(let first, _):
          summary.applied += 1
          if summary.firstSeq == nil { summary.firstSeq = first }
          summary.lastSeq = first
        case .duplicate: summary.duplicate += 1
        case .rejected(let r): reject(p.line, r)
        }
      }
      pending.removeAll(keepingCapacity: true)
      guard let progress else { return }
      // The stream's position: read ahead by at most the reader's 1 MiB chunk.
      if let fileBytes, case let at = ftello(fp), at >= 0 {
        progress(Self.progressBytes, UInt64(at), fileBytes)
      } else {
        progress(Self.progressLines, UInt64(summary.lines), 0)
      }
    }

    func reject(_ line: Int, _ r: Rejection) {
      summary.rejected += 1
      if summary.rejections.count < Self.rejectionsShownMax {
        summary.rejections.append((line, r))
      }
    }

    var reader = LineReader(fp: fp, lineBytesMax: Self.lineBytesMax)
    while let line = try reader.next() {
      summary.lines += 1
      switch line {
      case .tooLong:
        reject(
          summary.lines,
          Rejection(.lineTooLong, "line longer than \(Self.lineBytesMax) bytes"))
      case .line(let bytes):
        if bytes.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) {
          continue
        }
        switch CommandDecoding.entry(line: bytes) {
        case .success(let spec): pending.append((summary.lines, .postEntry(spec)))
        case .failure(let r): reject(summary.lines, r)
        }
      }
      if pending.count >= batch { try flush() }
    }
    try flush()
    activeProgressBar?.clear()  // the summary goes to stdout, maybe the same terminal
    printSummary(summary)
    if summary.rejected > 0 { throw CLIExit.rejected }
  }

  func printSummary(_ s: Summary) {
    if json {
      let o = JSONObject([
        ("lines", .number(String(s.lines))), ("applied", .number(String(s.applied))),
        ("duplicate", .number(String(s.duplicate))), ("rejected", .number(String(s.rejected))),
        ("first_seq", s.firstSeq.map { .number(String($0)) } ?? .null),
        ("last_seq", s.lastSeq.map { .number(String($0)) } ?? .null),
        (
          "rejections",
          .array(
            s.rejections.map { r in
              .object(
                JSONObject([
                  ("line", .number(String(r.line))), ("code", .string(r.rejection.code.name)),
                  ("message", .string(r.rejection.message)),
                ]))
            })
        ),
      ])
      print(JSONWriter.serialize(.object(o)))
      return
    }
    print(
      "\(s.lines) lines: \(s.applied) applied, \(s.duplicate) duplicate, \(s.rejected) rejected"
        + (s.firstSeq.map { " (seq \($0)…\(s.lastSeq!))" } ?? ""))
    for r in s.rejections {
      print("line \(r.line): \(r.rejection.code.name): \(r.rejection.message)")
    }
    if s.rejected > s.rejections.count {
      print("… and \(s.rejected - s.rejections.count) more rejected lines")
    }
  }
}

/// Reads lines of at most `lineBytesMax` bytes from a FILE in 1 MiB chunks; a longer line
/// is reported and skipped up to its newline, so memory stays bounded.
struct LineReader {
  enum Line {
    case line(ArraySlice<UInt8>)
    case tooLong
  }

  let fp: UnsafeMutablePointer<FILE>
  let lineBytesMax: Int
  var buffer = [UInt8]()
  var start = 0
  var eof = false
  var skipping = false

  init(fp: UnsafeMutablePointer<FILE>, lineBytesMax: Int) {
    self.fp = fp
    self.lineBytesMax = lineBytesMax
  }

  mutating func fill() throws {
    if start > 0 {
      buffer.removeFirst(start)
      start = 0
    }
    let chunk = 1 << 20
    let old = buffer.count
    buffer.append(contentsOf: repeatElement(0, count: chunk))
    let n = buffer.withUnsafeMutableBytes { fread($0.baseAddress! + old, 1, chunk, fp) }
    buffer.removeLast(chunk - n)
    if n == 0 {
      if ferror(fp) != 0 { throw usage("read error: \(String(cString: strerror(errno)))") }
      eof = true
    }
  }

  mutating func next() throws -> Line? {
    // Bounded: each iteration consumes input or reaches end of file.
    while true {
      if let nl = buffer[start...].firstIndex(of: 10) {
        let line = buffer[start..<nl]
        start = nl + 1
        if skipping {
          skipping = false
          continue
        }
        return line.count > lineBytesMax ? .tooLong : .line(line)
      }
      if buffer.count - start > lineBytesMax && !skipping {
        skipping = true
        start = buffer.count
        return .tooLong
      }
      if skipping { start = buffer.count }
      if eof {
        if start < buffer.count && !skipping {
          let line = buffer[start...]
          start = buffer.count
          return .line(line)
        }
        return nil
      }
      try fill()
    }
  }
}

/// `post --file` through the server: entries go in `ENTRY.BATCH` requests of `batch`, in
/// file order; each failed entry is reported with its line number. Bounded: one batch in
/// memory at a time.
func postFileOnline(_ online: Online, path: String, batch: Int) throws {
  guard let f = path == "-" ? fdopen(0, "r") : fopen(path, "r") else {
    throw usage("cannot open \(path): \(String(cString: strerror(errno)))")
  }
  defer { fclose(f) }
  var lineNo = 0
  var pending: [(Int, JSONValue)] = []
  var ok = 0
  var rejected = 0
  func flush() throws {
    if pending.isEmpty { return }
    let r = try online.call("ENTRY.BATCH", JSONObject([("entries", .array(pending.map(\.1)))]))
    guard case .array(let results)? = r["results"], results.count == pending.count else {
      throw usage("the server's batch answer does not match the request")
    }
    for ((n, _), res) in zip(pending, results) {
      if case .object(let o) = res, let e = o["error"]?.objectValue {
        rejected += 1
        let code = e["code"]?.stringValue ?? "?"
        FileHandleOut.stderr("line \(n): \(code): \(e["message"]?.stringValue ?? "")")
      } else {
        ok += 1
      }
    }
    pending.removeAll(keepingCapacity: true)
  }
  var buffer: UnsafeMutablePointer<CChar>?
  var capacity = 0
  defer { free(buffer) }
  while getline(&buffer, &capacity, f) > 0 {
    lineNo += 1
    let text = String(cString: buffer!).trimmingSuffixNewline()
    if text.allSatisfy({ $0 == " " || $0 == "\t" }) { continue }
    switch CommandDecoding.object(Array(text.utf8)) {
    case .failure(let r):
      rejected += 1
      FileHandleOut.stderr("line \(lineNo): \(r.code.name): \(r.message)")
    case .success(let o):
      pending.append((lineNo, .object(o)))
      if pending.count >= batch { try flush() }
    }
  }
  try flush()
  if online.json {
    print(#"{"ok":\#(ok),"rejected":\#(rejected)}"#)
  } else {
    print("posted \(ok) entries (new or already present), rejected \(rejected)")
  }
  if rejected > 0 { throw CLIExit.rejected }
}

extension String {
  func trimmingSuffixNewline() -> String {
    var s = Substring(self)
    while let last = s.last, last.isNewline { s = s.dropLast() }
    return String(s)
  }
}
