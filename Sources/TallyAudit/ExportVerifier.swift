import Dispatch
import TallyCore
import TallyCrypto

/// One thing wrong with an export.
public struct AuditProblem: Equatable, Sendable, CustomStringConvertible {
  public enum Kind: String, Sendable {
    case file, manifest, signature, decode, sequence, timestamp, leaf, chain, root, context
    case doubleEntry = "double_entry"
    case checkpoint, fork, prefix
    case altered, missing, inserted, reordered
    case hashesAltered = "hashes_altered"
  }
  public var kind: Kind
  public var seq: UInt64?
  public var message: String

  public init(_ kind: Kind, seq: UInt64? = nil, _ message: String) {
    self.kind = kind
    self.seq = seq
    self.message = message
  }

  public var description: String {
    "\(kind.rawValue)\(seq.map { " at seq \($0)" } ?? ""): \(message)"
  }
}

/// Posted debits and credits of one currency over the export, in minor units.
public struct CurrencyTotal: Equatable, Sendable {
  public var currency: String
  public var debits: Int128
  public var credits: Int128
}

/// How a checkpoint the auditor kept relates to the export.
public struct CheckpointCheck: Equatable, Sendable {
  public enum Status: String, Sendable {
    /// The export's first `size` events have exactly that root (and chain).
    case consistent
    /// Signed, but the export's history differs from it.
    case inconsistent
    /// Two validly signed trees of one size with different roots.
    case fork
    /// Outside the export's range: nothing can be concluded from this export.
    case cannotCheck = "cannot_check"
    /// The note does not verify under the key, or is not a checkpoint.
    case invalid
  }
  public var source: String
  public var size: UInt64?
  public var status: Status
  public var message: String
}

/// A checkpoint text the auditor kept, with where it came from (a file name).
public struct TrustedNote: Sendable {
  public var source: String
  public var note: String
  public init(source: String, note: String) {
    self.source = source
    self.note = note
  }
}

/// The result of verifying an export.
public struct ExportReport: Sendable {
  public var from: UInt64 = 0
  public var to: UInt64 = 0
  /// Event records read from `events`.
  public var events: UInt64 = 0
  public var root = Hash32.zero
  public var chain = Hash32.zero
  public var totals = [CurrencyTotal]()
  /// The first problems (at most `ExportVerifier.problemLimit`); `problemCount` counts all.
  public var problems = [AuditProblem]()
  public var problemCount = 0
  public var checkpoints = [CheckpointCheck]()
  /// Where the export first differs from a signed root, when it does.
  public var firstDifference: AuditProblem?
  public var ok: Bool { problemCount == 0 }

  mutating func add(_ p: AuditProblem) {
    problemCount += 1
    if problems.count < ExportVerifier.problemLimit { problems.append(p) }
  }
}

/// Verifies an export directory (docs/FORMAT.md, "Verifying an export") with no database:
/// the files, a verifier key the auditor trusts, and checkpoints the auditor kept.
public enum ExportVerifier {
  public static let problemLimit = 100

  public static func verify(directory: String, vkeys: [String], trusted: [TrustedNote])
    -> ExportReport
  {
    var report = ExportReport()
    for vkey in vkeys where VerifierKey.name(vkey) == nil {
      report.add(
        AuditProblem(.signature, "the verifier key \(vkey) is not of the form name+hash+base64"))
    }
    let keyName = vkeys.lazy.compactMap(VerifierKey.name).first
    func map(_ name: String) -> MappedFile? {
      switch MappedFile.open(directory + "/" + name) {
      case .success(let f): return f
      case .failure(let why):
        report.add(AuditProblem(.file, why.reason))
        return nil
      }
    }
    let manifestFile = map("manifest")
    let checkpointFile = map("checkpoint")
    let prefixFile = map("prefix")
    let contextFile = map("context")
    let hashesFile = map("hashes")
    let treeFile = map("tree")
    guard let eventsFile = map("events"), let checkpointFile, let prefixFile else {
      return report
    }

    // The export's checkpoint: its signature, or at least its claims.
    let signed: SignedCheckpoint?
    let claimed: SignedCheckpoint
    switch SignedCheckpoint.open(note: checkpointFile.text, vkeys: vkeys) {
    case .success(let c):
      signed = c
      claimed = c
    case .failure(let why):
      report.add(AuditProblem(.signature, "the export's checkpoint: \(why)"))
      signed = nil
      guard case .success(let c) = SignedCheckpoint.parseUnverified(note: checkpointFile.text)
      else {
        report.add(AuditProblem(.checkpoint, "the export's checkpoint is not a checkpoint"))
        return report
      }
      claimed = c
    }
    let n = claimed.size

    // prefix: p, chain[p], the subtree roots of the first p leaves.
    let pb = prefixFile.bytes
    guard pb.count >= 40 else {
      report.add(AuditProblem(.prefix, "the prefix file is shorter than 40 bytes"))
      return report
    }
    let p = prefixFile.u64(at: 0)
    let chain0 = Hash32(raw: UnsafeRawBufferPointer(rebasing: pb[8..<40]))
    guard pb.count == 40 + 32 * p.nonzeroBitCount, p <= n else {
      report.add(
        AuditProblem(
          .prefix,
          "the prefix file does not hold \(p.nonzeroBitCount) subtree roots for p = \(p) "
            + "(or p exceeds the checkpoint's size \(n))"))
      return report
    }
    var frontier = [Hash32](repeating: .zero, count: 64)
    var prefixNodes = [(level: Int, hash: Hash32)]()
    var off = 40
    for level in stride(from: 63, through: 0, by: -1) where (p >> level) & 1 == 1 {
      frontier[level] = Hash32(raw: UnsafeRawBufferPointer(rebasing: pb[off..<(off + 32)]))
      prefixNodes.append((level, frontier[level]))
      off += 32
    }
    let from = p + 1
    report.from = from
    report.to = n
    let expected = n - p

    // manifest
    var manifest: ExportManifest?
    if let manifestFile {
      manifest = ExportManifest(parsing: manifestFile.bytes)
      if let m = manifest {
        var wrong = [String]()
        if let keyName, m.origin != keyName { wrong.append("origin \(m.origin) ≠ key \(keyName)") }
        if m.origin != claimed.origin { wrong.append("origin ≠ the checkpoint's") }
        if m.from != from { wrong.append("from \(m.from) ≠ prefix \(p) + 1") }
        if m.to != n { wrong.append("to \(m.to) ≠ the checkpoint's size \(n)") }
        if m.events != expected { wrong.append("events \(m.events) ≠ to − from + 1") }
        if !wrong.isEmpty {
          report.add(AuditProblem(.manifest, wrong.joined(separator: "; ")))
        }
      } else {
        report.add(AuditProblem(.manifest, "the manifest is not exactly the documented lines"))
      }
    }
    if let hashesFile, hashesFile.bytes.count != Int(expected) * 64 {
      report.add(
        AuditProblem(
          .file,
          "the hashes file has \(hashesFile.bytes.count) bytes, expected \(expected) × 64"))
    }

    // The checkpoints the auditor kept: signature first, then which sizes to watch.
    var kept = [(source: String, c: SignedCheckpoint)]()
    for t in trusted {
      switch SignedCheckpoint.open(note: t.note, vkeys: vkeys) {
      case .success(let c): kept.append((t.source, c))
      case .failure(let why):
        report.checkpoints.append(
          CheckpointCheck(source: t.source, size: nil, status: .invalid, message: why.reason))
        report.add(AuditProblem(.signature, "\(t.source): \(why)"))
      }
    }
    // The export's own size too: records beyond it must not hide that 1…n match.
    let watch = Set(kept.map(\.c.size).filter { $0 >= p && $0 <= n } + [n])

    // context: earlier events with their audit paths to the signed root.
    var books = Books()
    let h = SHA256Hasher()
    var contextRecords = 0
    if let contextFile {
      var walker = RecordWalker(contextFile)
      var k = 0
      defer { contextRecords = k }
      contextLoop: while true {
        switch walker.next() {
        case .end: break contextLoop
        case .truncated:
          report.add(AuditProblem(.context, "the context file is truncated"))
          break contextLoop
        case .record(let bytes):
          k += 1
          let event: Event
          do { event = try EventCodec.decode(bytes) } catch {
            report.add(AuditProblem(.context, "context record \(k) does not decode: \(error)"))
            break contextLoop
          }
          let leaf = h.leaf(bytes)
          let b = contextFile.bytes
          let o = walker.offset
          guard o < b.count, b.count - o - 1 >= Int(b[o]) * 32 else {
            report.add(AuditProblem(.context, "context record \(k) has a truncated audit path"))
            break contextLoop
          }
          let path = (0..<Int(b[o])).map {
            Hash32(raw: UnsafeRawBufferPointer(rebasing: b[(o + 1 + 32 * $0)..<(o + 33 + 32 * $0)]))
          }
          walker.offset = o + 1 + 32 * path.count
          if event.seq == 0 || event.seq > p {
            report.add(
              AuditProblem(.context, seq: event.seq, "a context event must precede the export"))
          } else if Merkle.rootFromInclusion(
            h, index: event.seq - 1, size: n, leafHash: leaf, path: path) != claimed.root
          {
            report.add(
              AuditProblem(
                .context, seq: event.seq, "its audit path does not lead to the checkpoint's root"))
          }
          books.record(event)
        }
      }
    }

    if let m = manifest, contextFile != nil, m.context != UInt64(contextRecords) {
      report.add(
        AuditProblem(
          .manifest, "context \(m.context) ≠ the \(contextRecords) records of the context file"))
    }

    // The two passes over `events`, one per core: hashes (leaf, chain, tree) and the books.
    let hashing = HashPass(
      events: eventsFile, hashes: hashesFile, from: from, chain: chain0, frontier: frontier,
      watch: watch)
    let box = HashPassBox()
    let done = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
      box.result = hashing.run()
      done.signal()
    }
    let decoded = books.run(eventsFile, from: from)
    done.wait()
    guard let hashed = box.result else { return report }
    for p in hashed.problems.merged(with: decoded.problems) { report.add(p) }
    report.problemCount += hashed.dropped + decoded.dropped
    report.events = hashed.records
    report.totals = books.totals
    report.chain = hashed.chain
    report.root = hashed.roots[hashed.size] ?? Merkle.emptyRoot(h)
    if hashed.records != expected {
      report.add(
        AuditProblem(
          .file,
          "events holds \(hashed.records) records, the checkpoint covers \(expected) "
            + "(seq \(from)…\(n))"))
    }

    // The export against its own checkpoint.
    var mismatch: (size: UInt64, root: Hash32, what: String)?
    if hashed.size == n {
      if report.root != claimed.root {
        report.add(AuditProblem(.root, "the recomputed root differs from the checkpoint's"))
        if signed != nil { mismatch = (n, claimed.root, "the export's signed checkpoint") }
      }
      if let c = claimed.chain, c != report.chain {
        report.add(AuditProblem(.chain, seq: n, "the chain differs from the checkpoint's"))
      }
    } else if hashed.size > n, hashed.roots[n] == claimed.root {
      // Events 1…n are exactly the signed ones: the rest were added after.
      report.add(
        AuditProblem(
          .inserted, seq: n + 1,
          "\(hashed.size - n) record(s) follow seq \(n), the last the checkpoint signs"))
      report.firstDifference = AuditProblem(
        .inserted, seq: n + 1, "records follow seq \(n), the last the checkpoint signs")
    } else if signed != nil {
      mismatch = (n, claimed.root, "the export's signed checkpoint")
    }

    // The export against the checkpoints the auditor kept.
    let exportGenuine = signed != nil && hashed.size == n && report.root == claimed.root
    for (source, c) in kept.sorted(by: { $0.c.size < $1.c.size }) {
      if c.size < p || c.size > n {
        let why =
          c.size < p
          ? "size \(c.size) precedes the export (it starts after seq \(p)); ask for an export "
            + "from seq \(c.size + 1) or earlier"
          : "size \(c.size) is beyond the export (to seq \(n)); ask for an export to seq "
            + "\(c.size) or later"
        report.checkpoints.append(
          CheckpointCheck(source: source, size: c.size, status: .cannotCheck, message: why))
        report.add(AuditProblem(.checkpoint, "\(source): cannot check: \(why)"))
        continue
      }
      let got = hashed.roots[c.size]
      let chainOK = c.chain == nil || hashed.chains[c.size] == c.chain
      if got == c.root && chainOK {
        report.checkpoints.append(
          CheckpointCheck(
            source: source, size: c.size, status: .consistent,
            message: "the export's first \(c.size) events have this root and chain"))
        continue
      }
      if signed != nil && c.size == n && c.root != claimed.root {
        report.checkpoints.append(
          CheckpointCheck(
            source: source, size: c.size, status: .fork,
            message: "two validly signed trees of size \(n) with different roots"))
        report.add(
          AuditProblem(
            .fork, seq: n,
            "\(source) and the export's checkpoint are both signed for size \(n) with "
              + "different roots: the log was forked"))
      } else if exportGenuine {
        report.checkpoints.append(
          CheckpointCheck(
            source: source, size: c.size, status: .fork,
            message: "the signed tree of size \(n) does not extend this one"))
        report.add(
          AuditProblem(
            .fork, seq: c.size,
            "the export's signed tree of size \(n) does not extend \(source) (size \(c.size)): "
              + "the log was forked or rewritten"))
      } else {
        report.checkpoints.append(
          CheckpointCheck(
            source: source, size: c.size, status: .inconsistent,
            message: "the export's first \(c.size) events do not have this root"))
        report.add(
          AuditProblem(.checkpoint, "\(source): the export differs from it (size \(c.size))"))
      }
      // A fork is proven by the two signed notes; the earlier root alone cannot say where
      // the histories part (the export's nodes belong to the other history): no descent.
      if !exportGenuine && (mismatch == nil || c.size < mismatch!.size) {
        mismatch = (c.size, c.root, source)
      }
    }
    // Same-size checkpoints among those kept.
    for (i, a) in kept.enumerated() {
      for b in kept[(i + 1)...] where a.c.size == b.c.size && a.c.root != b.c.root {
        report.add(
          AuditProblem(
            .fork, seq: a.c.size,
            "\(a.source) and \(b.source) are both signed for size \(a.c.size) with different "
              + "roots: the log was forked"))
      }
    }

    // Where the export first differs from a signed root.
    if let m = mismatch {
      let tree = ClaimedTree(
        p: p, n: n, prefix: prefixNodes, hashes: hashesFile, tree: treeFile)
      report.firstDifference = Pinpoint.locate(
        events: eventsFile, from: from, size: m.size, root: m.root, against: m.what, tree: tree)
      if let d = report.firstDifference { report.add(d) }
    }
    return report
  }
}

extension SignedCheckpoint {
  /// The body of a note parsed without verifying its signature (to report what it claims).
  static func parseUnverified(note: String) -> Result<SignedCheckpoint, Refusal> {
    guard let (text, _) = Note.split(note) else {
      return .failure("no blank line before the signatures")
    }
    return parse(body: text, note: note)
  }
}

/// The root of a tree of `size` leaves from its frontier (the complete subtrees at the bits
/// of `size`): H(S₁, H(S₂, … H(Sₖ₋₁, Sₖ))), largest first.
func foldRoot(_ h: SHA256Hasher, _ frontier: [Hash32], size: UInt64) -> Hash32 {
  if size == 0 { return Merkle.emptyRoot(h) }
  var root: Hash32?
  for level in 0..<64 where (size >> level) & 1 == 1 {
    root = root.map { Merkle.node(h, frontier[level], $0) } ?? frontier[level]
  }
  return root!
}

final class HashPassBox: @unchecked Sendable {
  var result: HashPass.Result?
}

/// Leaf, chain and tree over `events`, compared with `hashes`.
struct HashPass: @unchecked Sendable {
  let events: MappedFile
  let hashes: MappedFile?
  let from: UInt64
  let chain: Hash32
  let frontier: [Hash32]
  /// Tree sizes whose root and chain to keep.
  let watch: Set<UInt64>

  struct Result {
    var records: UInt64 = 0
    /// p + records.
    var size: UInt64 = 0
    var chain = Hash32.zero
    var roots = [UInt64: Hash32]()
    var chains = [UInt64: Hash32]()
    var problems = [AuditProblem]()
    var dropped = 0
  }

  func run() -> Result {
    let h = SHA256Hasher()
    var r = Result()
    var chain = self.chain
    var f = frontier
    var size = from - 1
    var leafMismatches = 0
    var chainReported = false
    func note(_ p: AuditProblem) {
      if r.problems.count < ExportVerifier.problemLimit {
        r.problems.append(p)
      } else {
        r.dropped += 1
      }
    }
    func keep() {
      if watch.contains(size) {
        r.roots[size] = foldRoot(h, f, size: size)
        r.chains[size] = chain
      }
    }
    keep()
    let hb = hashes?.bytes
    var walker = RecordWalker(events)
    loop: while true {
      switch walker.next() {
      case .end: break loop
      case .truncated:
        note(AuditProblem(.file, seq: size + 1, "the events file ends inside a record"))
        break loop
      case .record(let bytes):
        let leaf = h.leaf(bytes)
        chain = h.chain(chain, leaf)
        let i = Int(size - (from - 1))
        if let hb, hb.count >= (i + 1) * 64 {
          let recorded = Hash32(raw: UnsafeRawBufferPointer(rebasing: hb[(i * 64)..<(i * 64 + 32)]))
          if recorded != leaf {
            leafMismatches += 1
            if leafMismatches <= 5 {
              note(
                AuditProblem(
                  .leaf, seq: size + 1,
                  "the event at this position does not hash to the recorded leaf"))
            }
          }
          if !chainReported && leafMismatches == 0
            && Hash32(raw: UnsafeRawBufferPointer(rebasing: hb[(i * 64 + 32)..<(i * 64 + 64)]))
              != chain
          {
            chainReported = true
            note(AuditProblem(.chain, seq: size + 1, "the recorded chain hash differs"))
          }
        }
        Merkle.append(h, &f, index: size, leaf: leaf) { (_, _, _) throws(Never) in }
        size += 1
        keep()
      }
    }
    if leafMismatches > 5 {
      note(
        AuditProblem(
          .leaf, "\(leafMismatches) events in all do not hash to their recorded leaves"))
    }
    r.records = size - (from - 1)
    r.size = size
    r.chain = chain
    r.roots[size] = foldRoot(h, f, size: size)
    r.chains[size] = chain
    return r
  }
}

extension [AuditProblem] {
  /// Both lists in seq order (problems without a seq first), stable.
  func merged(with other: [AuditProblem]) -> [AuditProblem] {
    (self + other).enumerated().sorted { a, b in
      let sa = a.element.seq ?? 0
      let sb = b.element.seq ?? 0
      return sa != sb ? sa < sb : a.offset < b.offset
    }.map(\.element)
  }
}
