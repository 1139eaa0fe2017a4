import Glibc
import TallyCore
@_spi(Fuzzing) import TallyStore

/// Bytes read from disk: events (docs/FORMAT.md, "Event encoding") and journal segments.
enum RecordTargets {
  /// The event decoder. Encoding is canonical, so what decodes must encode to the same bytes.
  @Sendable static func event(_ data: [UInt8]) {
    let event: Event
    do throws(DecodeError) {
      event = try EventCodec.decode(data)
    } catch {
      FuzzCheck.expect(error.offset >= 0 && error.offset <= data.count, "offset \(error)")
      return
    }
    FuzzCheck.expect(EventCodec.encode(event) == data, "a decoded event re-encodes differently")
  }

  /// Bytes that start a whole segment file (header included); anything else is the records
  /// after a valid header for seq 1.
  static let segmentMagic = Array("TALLYJNL".utf8)

  /// A journal of one segment, written to a scratch directory and read back by the journal's
  /// own open and scan (headers, frames, leaf and chain hashes, the torn-tail rule).
  @Sendable static func journal(_ data: [UInt8]) {
    let directory = scratch.directory
    let path = directory + "/" + Journal.segmentFileName(firstSeq: 1)
    var file = data
    if !data.starts(with: segmentMagic) {
      file = Journal.firstSegmentHeader(capacityBytes: 4096 + data.count) + data
    }
    guard writeFile(file, to: path) else { return }
    do {
      if let result = try Journal.scanReadOnly(directory: directory) {
        FuzzCheck.expect(
          result.lastSeq <= UInt64(file.count / 96), "more records than fit in the file")
      }
    } catch {
      // A damaged journal is an error: the property is only that it is not a trap.
    }
  }

  /// One scratch directory per process for the segment file, removed at exit.
  static let scratch = Scratch()

  final class Scratch: Sendable {
    let directory: String
    init() {
      var template = Array("/tmp/tally-fuzz-journal-XXXXXX".utf8CString)
      let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
      precondition(made != nil, "cannot make a scratch directory")
      directory = String(cString: made!)
      atexit {
        let dir = RecordTargets.scratch.directory
        unlink(dir + "/" + Journal.segmentFileName(firstSeq: 1))
        rmdir(dir)
      }
    }
  }

  static func writeFile(_ bytes: [UInt8], to path: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var done = 0
    while done < bytes.count {
      let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
      if n <= 0 { return false }
      done += n
    }
    return true
  }
}
