import Glibc
import TallyFuzzTargets

// libFuzzer's entry when the program has its own main (-sanitize=fuzzer links it; its own
// main is left out because this one is defined).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
  _ argc: UnsafeMutablePointer<Int32>,
  _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
  _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The target this run drives; set once before libFuzzer starts, read by its callback.
nonisolated(unsafe) var selected: FuzzTarget?

/// Names the target in the runs libFuzzer starts itself.
let targetVariable = "TALLY_FUZZ_TARGET"

/// `tally-fuzz --list` | `tally-fuzz TARGET [libFuzzer options and corpus folders]`
@main
enum FuzzMain {
  static func main() {
    let args = CommandLine.arguments
    guard args.count >= 2 else { usage() }
    if args[1] == "--list" {
      for t in FuzzTargets.all { print("\(t.name)\t\(t.summary)") }
      return
    }
    if args[1] == "--seed" {
      guard args.count >= 4 else { usage() }
      seed(target: args[2], into: args[3], eventFiles: Array(args.dropFirst(4)))
      return
    }
    // libFuzzer runs itself again for -merge (and -fork) with its own options only: the
    // target travels to those runs in the environment.
    var options = Array(args.dropFirst(2))
    var target = FuzzTargets.named(args[1])
    if target != nil {
      setenv(targetVariable, args[1], 1)
    } else if let name = getenv(targetVariable).map({ String(cString: $0) }) {
      target = FuzzTargets.named(name)
      options = Array(args.dropFirst(1))
    }
    guard let target else {
      warn("tally-fuzz: unknown target \(args[1])\n")
      usage()
    }
    selected = target
    var cArgs: [UnsafeMutablePointer<CChar>?] = ([args[0]] + options).map { strdup($0) }
    cArgs.append(nil)
    var argc = Int32(cArgs.count - 1)
    let rc = cArgs.withUnsafeMutableBufferPointer { buf in
      var argv = buf.baseAddress
      return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        let bytes = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
        selected!.run(bytes)
        return 0
      }
    }
    exit(rc)
  }

  /// Writes the seeds only real encoders and keys make (`FuzzSeeds`) into `folder`, as
  /// `gen-N`; `eventFiles` hold encoded events, the records of the journal seeds.
  static func seed(target: String, into folder: String, eventFiles: [String]) {
    let events = eventFiles.compactMap(readFile)
    for (i, bytes) in FuzzSeeds.seeds(for: target, events: events).enumerated() {
      let path = folder + "/gen-\(i)"
      guard let f = fopen(path, "wb") else {
        warn("tally-fuzz: cannot write \(path)\n")
        exit(1)
      }
      _ = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, bytes.count, f) }
      fclose(f)
    }
  }

  static func readFile(_ path: String) -> [UInt8]? {
    guard let f = fopen(path, "rb") else { return nil }
    defer { fclose(f) }
    var out = [UInt8]()
    var chunk = [UInt8](repeating: 0, count: 65_536)
    while true {
      let n = chunk.withUnsafeMutableBytes { fread($0.baseAddress, 1, 65_536, f) }
      if n == 0 { break }
      out += chunk[0..<n]
    }
    return out
  }

  static func warn(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
  }

  static func usage() -> Never {
    warn(
      "usage: tally-fuzz --list | tally-fuzz TARGET [libFuzzer options] [corpus…]\n"
        + "       tally-fuzz --seed TARGET FOLDER [EVENT_FILE…]\n")
    exit(2)
  }
}
