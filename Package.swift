// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
  .unsafeFlags(["-warnings-as-errors"], .when(configuration: .debug)),
  // The rules (TallyCore) are generic over the state they run on; cross-module optimisation
  // lets the store's calls specialise them instead of going through witness tables.
  .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
]

let package = Package(
  name: "Tally",
  platforms: [.macOS(.v15)],
  products: [
    .executable(name: "tally", targets: ["tally"]),
    .executable(name: "tally-bench", targets: ["tally-bench"]),
    .executable(name: "tallyd", targets: ["tallyd"]),
    .executable(name: "tally-load", targets: ["tally-load"]),
    .library(name: "TallyClient", targets: ["TallyClient"]),
    .library(name: "TallyStore", targets: ["TallyStore"]),
    .library(name: "TallyCore", targets: ["TallyCore"]),
    .library(name: "TallyProtocol", targets: ["TallyProtocol"]),
    .library(name: "TallyWorkload", targets: ["TallyWorkload"]),
    .library(name: "TallyReconcile", targets: ["TallyReconcile"]),
    .library(name: "TallyNATS", targets: ["TallyNATS"]),
    // The fuzz targets, for the libFuzzer driver in Fuzz/ (and the corpus replay tests).
    .library(name: "TallyFuzzTargets", targets: ["TallyFuzzTargets"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    .package(url: "https://github.com/x-sheep/swift-property-based", exact: "2.0.1"),
    .package(url: "https://github.com/swiftlang/swift-subprocess", exact: "1.0.2"),
    .package(url: "https://github.com/apple/swift-nio", exact: "2.101.3"),
    .package(url: "https://github.com/apple/swift-log", exact: "1.16.2"),
    .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", exact: "0.2.0"),
    .package(url: "https://github.com/apple/swift-metrics", exact: "2.13.0"),
    .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
    .package(url: "https://github.com/swift-server/swift-service-lifecycle", exact: "2.13.0"),
    .package(url: "https://github.com/hummingbird-project/hummingbird", exact: "2.28.1"),
    .package(url: "https://github.com/hummingbird-project/swift-mustache", exact: "2.1.1"),
    .package(url: "https://github.com/vapor/multipart-kit", exact: "4.7.1"),
    .package(url: "https://github.com/apple/swift-http-types", exact: "1.8.0"),
  ],
  targets: [
    .systemLibrary(
      name: "CLMDB", path: "Sources/CLMDB", pkgConfig: "lmdb",
      providers: [.apt(["liblmdb-dev"])]),
    .systemLibrary(
      name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "libcrypto",
      providers: [.apt(["libssl-dev"])]),
    .target(name: "TallyCore", swiftSettings: strict),
    .target(name: "TallyCrypto", dependencies: ["TallyCore", "COpenSSL"], swiftSettings: strict),
    .target(name: "TallyProtocol", dependencies: ["TallyCore"], swiftSettings: strict),
    // Verifies exports with no database: only the files, a verifier key and checkpoints.
    .target(name: "TallyAudit", dependencies: ["TallyCore", "TallyCrypto"], swiftSettings: strict),
    .target(
      name: "TallyStore",
      dependencies: ["TallyCore", "TallyCrypto", "TallyReconcile", "TallyProtocol", "CLMDB"],
      swiftSettings: strict),
    // A NATS and JetStream client on SwiftNIO (the change stream and replicas).
    .target(
      name: "TallyNATS",
      dependencies: [
        "TallyProtocol",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict),
    .target(
      name: "TallyServer",
      dependencies: [
        "TallyCore", "TallyStore", "TallyProtocol", "TallyCrypto", "TallyReconcile", "TallyNATS",
        "TallyAudit",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "Prometheus", package: "swift-prometheus"),
      ],
      swiftSettings: strict),
    // The HTTP listener: the back office pages (server-rendered HTML) on Hummingbird.
    .target(
      name: "TallyHTTP",
      dependencies: [
        "TallyServer", "TallyCore", "TallyProtocol", "TallyCrypto",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "Mustache", package: "swift-mustache"),
        .product(name: "MultipartKit", package: "multipart-kit"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "HTTPTypes", package: "swift-http-types"),
      ],
      swiftSettings: strict),
    .executableTarget(
      name: "tallyd",
      dependencies: [
        "TallyServer", "TallyStore", "TallyAudit", "TallyHTTP",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "Logging", package: "swift-log"),
        .product(name: "CoreMetrics", package: "swift-metrics"),
        .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
      ],
      swiftSettings: strict),
    .target(
      name: "TallyClient",
      dependencies: [
        "TallyProtocol", "TallyCrypto", "TallyAudit",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ],
      swiftSettings: strict),
    .executableTarget(
      name: "tally-load",
      dependencies: [
        "TallyClient", "TallyProtocol",
        .product(name: "Histogram", package: "hdrhistogram-swift"),
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
        .product(name: "NIOCore", package: "swift-nio"),
      ],
      swiftSettings: strict),
    .executableTarget(
      name: "tally",
      dependencies: [
        "TallyCore", "TallyStore", "TallyProtocol", "TallyClient", "TallyAudit", "TallyReconcile",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: strict),
    .target(
      name: "TallyWorkload", dependencies: ["TallyCore", "TallyStore"], swiftSettings: strict),
    // Parses bank and partner statements (CSV, camt.053, MT940) into normalised lines.
    .target(name: "TallyReconcile", dependencies: ["TallyCore"], swiftSettings: strict),
    .executableTarget(
      name: "tally-bench",
      dependencies: ["TallyCore", "TallyStore", "TallyWorkload", "TallyReconcile"],
      swiftSettings: strict),
    // Fuzz targets: plain functions over bytes that drive the real parsers (Fuzz/README.md).
    .target(
      name: "TallyFuzzTargets",
      dependencies: [
        "TallyCore", "TallyCrypto", "TallyProtocol", "TallyServer", "TallyStore", "TallyAudit",
        "TallyReconcile",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
      ],
      swiftSettings: strict),
    // Seeded property checks shared by the test targets.
    .target(
      name: "TallyTestSupport",
      dependencies: [.product(name: "PropertyBased", package: "swift-property-based")],
      path: "Tests/TallyTestSupport"),
    .testTarget(
      name: "TallyCoreTests",
      dependencies: [
        "TallyCore", "TallyCrypto", "TallyTestSupport",
        .product(name: "PropertyBased", package: "swift-property-based"),
      ],
      // Public test vectors, read from the source tree by path (with their README).
      exclude: ["Vectors"]),
    .testTarget(name: "TallyProtocolTests", dependencies: ["TallyProtocol", "TallyTestSupport"]),
    // Replays the committed fuzz corpus (Fuzz/corpus, read from the source tree by path).
    .testTarget(name: "TallyFuzzTests", dependencies: ["TallyFuzzTargets"]),
    .testTarget(
      name: "TallyReconcileTests",
      dependencies: [
        "TallyReconcile", "TallyCore", "TallyStore", "TallyTestSupport",
        .product(name: "PropertyBased", package: "swift-property-based"),
      ],
      // Statement fixtures, read from the source tree by path.
      exclude: ["Fixtures"]),
    .testTarget(
      name: "TallyStoreTests",
      dependencies: [
        "TallyCore", "TallyStore", "TallyCrypto", "CLMDB", "TallyTestSupport",
        .product(name: "PropertyBased", package: "swift-property-based"),
      ],
      exclude: ["Fixtures"]),
    .testTarget(
      name: "TallyServerTests",
      dependencies: [
        "TallyServer", "TallyProtocol", "TallyCore", "TallyStore", "TallyTestSupport",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOEmbedded", package: "swift-nio"),
        .product(name: "NIOTestUtils", package: "swift-nio"),
      ]),
    .testTarget(
      name: "TallyHTTPTests",
      dependencies: [
        "TallyHTTP", "TallyServer", "TallyStore", "TallyCore", "TallyProtocol", "TallyCrypto",
        "TallyTestSupport",
        .product(name: "Hummingbird", package: "hummingbird"),
        .product(name: "HTTPTypes", package: "swift-http-types"),
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "Logging", package: "swift-log"),
      ]),
    .testTarget(
      name: "TallyNATSTests",
      dependencies: [
        "TallyNATS", "TallyTestSupport",
        .product(name: "NIOCore", package: "swift-nio"),
        .product(name: "NIOPosix", package: "swift-nio"),
      ]),
    .testTarget(
      name: "TallydTests",
      dependencies: [
        "TallyCore", "TallyProtocol", "TallyCrypto", "TallyClient", "TallyTestSupport", "TallyNATS",
        "TallyAudit",
        .product(name: "Subprocess", package: "swift-subprocess"),
      ]),
    .testTarget(
      name: "TallyCLITests",
      dependencies: [
        "TallyCore", "TallyStore", "TallyCrypto", "TallyTestSupport",
        .product(name: "Subprocess", package: "swift-subprocess"),
      ]),
  ]
)
