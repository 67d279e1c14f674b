// swift-tools-version:6.0
import PackageDescription

// No module-wide CPU or optimisation flags: the CPU-specific code lives in
// CSisaKernels, compiled per function for AVX-512, AVX2+FMA and portable C
// and chosen at run time, so one binary runs (with the same bits) on any
// x86-64 or arm64 machine, and the package can be used as a dependency.
let package = Package(
    name: "sisa",
    // Linux is the target; macOS 15 is the first with the Synchronization
    // module (Atomic) the worker pool uses.
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "sisa", targets: ["sisa"]),
        .library(name: "SisaEngine", targets: ["SisaEngine"]),
        .library(name: "SisaCoordinator", targets: ["SisaCoordinator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // Matrix products, reductions and element-wise maps with fixed bits on every CPU.
        .target(name: "CSisaKernels"),
        .target(
            name: "SisaEngine",
            dependencies: [
                "CSisaKernels",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite"),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd"),
        .target(
            name: "SisaCoordinator",
            dependencies: [
                "SisaEngine", "CSQLite", "CZstd",
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        // `sisa serve`: deletion requests, queries and status over HTTP (Hummingbird 2).
        .target(
            name: "SisaServer",
            dependencies: [
                "SisaEngine", "SisaCoordinator",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .executableTarget(
            name: "sisa",
            dependencies: [
                "SisaEngine", "SisaCoordinator", "SisaServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(
            name: "SisaEngineTests",
            dependencies: ["SisaEngine", "CSisaKernels"],
            // Reference data made once by transformers and tokenizers (Fixtures/generate), read by path.
            exclude: ["Fixtures"]
        ),
        .testTarget(
            name: "SisaCoordinatorTests",
            dependencies: ["SisaCoordinator", "SisaEngine"]
        ),
        // The router in process (Hummingbird's testing library): roles, 405s, sessions, the spec.
        .testTarget(
            name: "SisaServerTests",
            dependencies: [
                "SisaServer", "SisaCoordinator", "SisaEngine",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
