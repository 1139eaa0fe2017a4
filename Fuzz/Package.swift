// swift-tools-version:6.1
import PackageDescription

// The libFuzzer driver. Built only by tools/fuzz, with `-sanitize=fuzzer,address` and its own
// scratch path (.build-fuzz), so the root package's build and tests never link libFuzzer.
let package = Package(
  name: "TallyFuzz",
  platforms: [.macOS(.v15)],
  dependencies: [
    // `name:` so the product can be named by package "Tally" whatever the checkout is called.
    .package(name: "Tally", path: "..")
  ],
  targets: [
    .executableTarget(
      name: "tally-fuzz",
      dependencies: [.product(name: "TallyFuzzTargets", package: "Tally")],
      path: "Sources/tally-fuzz",
      // ld.gold stops with an internal error on the sanitized objects; lld links them.
      linkerSettings: [.unsafeFlags(["-use-ld=lld"])])
  ]
)
