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
    .library(name: "TallyStore", targets: ["TallyStore"]),
    .library(name: "TallyCore", targets: ["TallyCore"]),
    .library(name: "TallyWorkload", targets: ["TallyWorkload"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", exact: "1.8.2"),
    .package(url: "https://github.com/x-sheep/swift-property-based", exact: "2.0.1"),
    .package(url: "https://github.com/swiftlang/swift-subprocess", exact: "1.0.2"),
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
    .target(
      name: "TallyStore", dependencies: ["TallyCore", "TallyCrypto", "CLMDB"],
      swiftSettings: strict),
    .executableTarget(
      name: "tally",
      dependencies: [
        "TallyCore", "TallyStore", "TallyProtocol",
        .product(name: "ArgumentParser", package: "swift-argument-parser"),
      ],
      swiftSettings: strict),
    .target(
      name: "TallyWorkload", dependencies: ["TallyCore", "TallyStore"], swiftSettings: strict),
    .executableTarget(
      name: "tally-bench", dependencies: ["TallyCore", "TallyStore", "TallyWorkload"],
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
      ]),
    .testTarget(name: "TallyProtocolTests", dependencies: ["TallyProtocol"]),
    .testTarget(
      name: "TallyStoreTests",
      dependencies: [
        "TallyCore", "TallyStore", "TallyCrypto", "CLMDB", "TallyTestSupport",
        .product(name: "PropertyBased", package: "swift-property-based"),
      ]),
    .testTarget(
      name: "TallyCLITests",
      dependencies: [
        "TallyCore", "TallyStore",
        .product(name: "Subprocess", package: "swift-subprocess"),
      ]),
  ]
)
