import Glibc
import TallyCore

/// Power-loss images built from a recording of the journal's file operations
/// (`RecordingFiles`): what the disk could hold if the machine had stopped after operation
/// `k`. Everything synced before `k` is there; of what was written after its file's last
/// sync, each 512-byte sector independently is or is not (torn writes); of the names
/// created, renamed or removed after their directory's last sync, a random prefix took
/// effect (ext4 commits metadata in order).
///
/// LMDB's own writes are not recorded: an image holds either no `data.mdb`, or (when the
/// unsynced marker is on its disk) the final `data.mdb` of the run, newer than anything the
/// image's journal holds. Recovery must trust neither (docs/FORMAT.md, "Crashes and
/// recovery").
public struct CrashImages {
  public static let sectorBytes = 512

  struct FileModel {
    var durable: [UInt8] = []
    var pending: [Pending] = []
  }

  enum Pending {
    case write(offset: Int, bytes: [UInt8])
    case truncate(Int)
  }

  enum NameOp {
    case bind(String, Int)
    case unbind(String)
  }

  let ops: [RecordingFiles.Op]

  public init(_ ops: [RecordingFiles.Op]) { self.ops = ops }

  public var count: Int { ops.count }

  static func parent(_ path: String) -> String {
    guard let i = path.lastIndex(of: "/") else { return "." }
    return String(path[..<i])
  }

  static func apply(_ p: Pending, to content: inout [UInt8]) {
    switch p {
    case .write(let offset, let bytes):
      if content.count < offset + bytes.count {
        content.append(contentsOf: repeatElement(0, count: offset + bytes.count - content.count))
      }
      content.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    case .truncate(let n):
      if n < content.count {
        content.removeLast(content.count - n)
      } else {
        content.append(contentsOf: repeatElement(0, count: n - content.count))
      }
    }
  }

  /// The files (recorded path → bytes) the disk holds after a crash following `ops[0..<k]`.
  public func image(crashAfter k: Int, using rng: inout some RandomNumberGenerator)
    -> [String: [UInt8]]
  {
    var files = [Int: FileModel]()
    var live = [String: Int]()
    var durableNames = [String: Int]()
    var pendingNames = [(dir: String, op: NameOp)]()
    var nextInode = 0
    for op in ops.prefix(k) {
      switch op {
      case .create(let path):
        nextInode += 1
        files[nextInode] = FileModel()
        live[path] = nextInode
        pendingNames.append((Self.parent(path), .bind(path, nextInode)))
      case .write(let path, let offset, let bytes):
        guard let i = live[path] else { continue }
        files[i]!.pending.append(.write(offset: offset, bytes: bytes))
      case .truncate(let path, let size):
        guard let i = live[path] else { continue }
        files[i]!.pending.append(.truncate(size))
      case .sync(let path):
        guard let i = live[path] else { continue }
        var f = files[i]!
        for p in f.pending { Self.apply(p, to: &f.durable) }
        f.pending.removeAll()
        files[i] = f
      case .rename(let from, let to):
        guard let i = live.removeValue(forKey: from) else { continue }
        live[to] = i
        pendingNames.append((Self.parent(from), .unbind(from)))
        pendingNames.append((Self.parent(to), .bind(to, i)))
      case .unlink(let path):
        live.removeValue(forKey: path)
        pendingNames.append((Self.parent(path), .unbind(path)))
      case .syncDirectory(let dir):
        var rest = [(dir: String, op: NameOp)]()
        for p in pendingNames {
          if p.dir == dir {
            switch p.op {
            case .bind(let name, let i): durableNames[name] = i
            case .unbind(let name): durableNames.removeValue(forKey: name)
            }
          } else {
            rest.append(p)
          }
        }
        pendingNames = rest
      }
    }
    // A prefix of the name operations not yet made durable.
    var names = durableNames
    let taken = pendingNames.isEmpty ? 0 : Int.random(in: 0...pendingNames.count, using: &rng)
    for p in pendingNames.prefix(taken) {
      switch p.op {
      case .bind(let name, let i): names[name] = i
      case .unbind(let name): names.removeValue(forKey: name)
      }
    }
    var out = [String: [UInt8]]()
    for (name, i) in names {
      guard let f = files[i] else { continue }
      var content = f.durable
      for p in f.pending {
        switch p {
        case .truncate:
          if Bool.random(using: &rng) { Self.apply(p, to: &content) }
        case .write(let offset, let bytes):
          // Each sector of the write lands or not, independently.
          var o = 0
          while o < bytes.count {
            let sectorEnd = min(
              bytes.count, ((offset + o) / Self.sectorBytes + 1) * Self.sectorBytes - offset)
            if Bool.random(using: &rng) {
              Self.apply(
                .write(offset: offset + o, bytes: Array(bytes[o..<sectorEnd])), to: &content)
            }
            o = sectorEnd
          }
        }
      }
      out[name] = content
    }
    return out
  }
}

/// Writes `bytes` to `path` (created, truncated) without syncing: images are scratch data.
public func writeScratchFile(_ path: String, _ bytes: [UInt8]) throws(StoreError) {
  let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o640)
  if fd < 0 { throw .io("cannot create \(path): \(String(cString: strerror(errno)))") }
  defer { close(fd) }
  var done = 0
  while done < bytes.count {
    let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
    if n <= 0 { throw .io("cannot write \(path): \(String(cString: strerror(errno)))") }
    done += n
  }
}
