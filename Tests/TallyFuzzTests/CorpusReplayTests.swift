import Foundation
import TallyFuzzTargets
import Testing

/// Every committed corpus input (Fuzz/corpus/TARGET/*) through its target: an input that once
/// crashed stays fixed, and the targets keep running on the seeds. A target traps on a
/// finding, so a regression stops this test process with the target's message.
@Suite("Fuzz corpus replay")
struct CorpusReplayTests {
  static let corpus: String = {
    let here = (#filePath as NSString).deletingLastPathComponent
    return ((here as NSString).appendingPathComponent("../../Fuzz/corpus") as NSString)
      .standardizingPath
  }()

  static func inputs(_ target: String) -> [String] {
    let dir = corpus + "/" + target
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.filter { !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
  }

  @Test("Each target replays its committed corpus", arguments: FuzzTargets.all.map(\.name))
  func replays(target name: String) throws {
    let target = try #require(FuzzTargets.named(name))
    let files = Self.inputs(name)
    // A target without a corpus would replay nothing and prove nothing.
    #expect(!files.isEmpty, "Fuzz/corpus/\(name) holds \(files.count) inputs")
    for path in files {
      let data = try #require(FileManager.default.contents(atPath: path), "\(path)")
      target.run(Array(data))
    }
  }

  @Test func everyCorpusFolderNamesATarget() throws {
    let folders = try FileManager.default.contentsOfDirectory(atPath: Self.corpus)
    let names = Set(FuzzTargets.all.map(\.name))
    #expect(Set(folders.filter { !$0.hasPrefix(".") }) == names)
  }
}
