import Foundation

#if canImport(Glibc)
  import Glibc
#endif

/// Finds a built executable of this package for tests that run it. Looked up, in order:
/// 1. `$<NAME>_BIN` (the name upper-cased + `_BIN`, e.g. `$TALLYD_BIN`);
/// 2. next to the running test executable and in up to three of its parents
///    (`swift build --build-tests` puts products and the test bundle side by side, whatever
///    `--scratch-path` or configuration was used);
/// 3. `.build/{debug,release}` and `.build/<triple>/{debug,release}` under the package root.
public enum Executables {
  public struct NotFound: Error, CustomStringConvertible {
    public var name: String
    public var searched: [String]
    public var description: String {
      "the \(name) executable was not found; build it first (swift build --build-tests "
        + "[--scratch-path P]) or set \(name.uppercased())_BIN. Looked at:\n  "
        + searched.joined(separator: "\n  ")
    }
  }

  static func isExecutableFile(_ p: String) -> Bool {
    var st = stat()
    guard stat(p, &st) == 0 else { return false }
    return (st.st_mode & S_IFMT) == S_IFREG && access(p, X_OK) == 0
  }

  public static func locate(_ name: String) -> Result<String, NotFound> {
    var candidates = [String]()
    if let env = ProcessInfo.processInfo.environment[name.uppercased() + "_BIN"], !env.isEmpty {
      candidates.append(env)
    }
    var starts = [String]()
    if let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
      starts.append((link as NSString).deletingLastPathComponent)
    } else if let p = Bundle.main.executablePath {
      starts.append((p as NSString).deletingLastPathComponent)
    }
    if let a0 = CommandLine.arguments.first, a0.contains("/") {
      starts.append(((a0 as NSString).standardizingPath as NSString).deletingLastPathComponent)
    }
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
      starts.append((bundle.bundlePath as NSString).deletingLastPathComponent)
    }
    for start in starts {
      var dir = start
      for _ in 0..<4 {
        candidates.append(dir + "/" + name)
        let parent = (dir as NSString).deletingLastPathComponent
        if parent == dir { break }
        dir = parent
      }
    }
    var root = (#filePath as NSString).deletingLastPathComponent
    while root != "/" && !FileManager.default.fileExists(atPath: root + "/Package.swift") {
      root = (root as NSString).deletingLastPathComponent
    }
    let build = root + "/.build"
    for config in ["debug", "release"] { candidates.append("\(build)/\(config)/\(name)") }
    if let triples = try? FileManager.default.contentsOfDirectory(atPath: build) {
      for t in triples.sorted() where t.contains("-") {
        for config in ["debug", "release"] {
          candidates.append("\(build)/\(t)/\(config)/\(name)")
        }
      }
    }
    var seen = Set<String>()
    candidates = candidates.filter { seen.insert($0).inserted }
    if let found = candidates.first(where: isExecutableFile) { return .success(found) }
    return .failure(NotFound(name: name, searched: candidates))
  }
}
