// swift-tools-version:6.1
import PackageDescription

let package = Package(
  name: "TallyBenchmarks",
  platforms: [.macOS(.v15)],
  dependencies: [
    // `name:` so the products can be named by package "Tally": a path dependency's identity
    // is its folder's name, which is whatever the checkout is called.
    .package(name: "Tally", path: ".."),
    // The package's current name; its old one, package-benchmark, still resolves (same
    // commit) but its plugin warns that the legacy identifier is going away.
    .package(
      url: "https://github.com/ordo-one/benchmark", exact: "1.38.1",
      traits: ["MallocInterposer"]),
  ],
  targets: [
    .executableTarget(
      name: "LedgerBenchmarks",
      dependencies: [
        .product(name: "Benchmark", package: "benchmark"),
        .product(name: "TallyStore", package: "Tally"),
        .product(name: "TallyCore", package: "Tally"),
        .product(name: "TallyWorkload", package: "Tally"),
      ],
      path: "Benchmarks/LedgerBenchmarks",
      plugins: [
        .plugin(name: "BenchmarkPlugin", package: "benchmark")
      ]
    ),
    .executableTarget(
      name: "ProtocolBenchmarks",
      dependencies: [
        .product(name: "Benchmark", package: "benchmark"),
        .product(name: "TallyProtocol", package: "Tally"),
        .product(name: "TallyCore", package: "Tally"),
      ],
      path: "Benchmarks/ProtocolBenchmarks",
      plugins: [
        .plugin(name: "BenchmarkPlugin", package: "benchmark")
      ]
    ),
    .executableTarget(
      name: "ReconcileBenchmarks",
      dependencies: [
        .product(name: "Benchmark", package: "benchmark"),
        .product(name: "TallyReconcile", package: "Tally"),
        .product(name: "TallyCore", package: "Tally"),
      ],
      path: "Benchmarks/ReconcileBenchmarks",
      plugins: [
        .plugin(name: "BenchmarkPlugin", package: "benchmark")
      ]
    ),
  ]
)
