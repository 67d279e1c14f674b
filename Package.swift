// swift-tools-version:6.0
import PackageDescription

// The numerical kernels are compiled for AVX2+FMA (every machine this project
// runs on has them) and without bounds checks: they work on raw pointers whose
// extents are checked once per call, not once per element.
let kernelFlags: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "haswell", "-Ounchecked", "-enforce-exclusivity=unchecked"]),
]

let package = Package(
    name: "sisa",
    products: [
        .executable(name: "sisa", targets: ["sisa"]),
        .library(name: "SisaEngine", targets: ["SisaEngine"]),
        .library(name: "SisaCoordinator", targets: ["SisaCoordinator"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Debian's libopenblas-dev: cblas_sgemm for every matrix product.
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .target(
            name: "SisaEngine",
            dependencies: [
                "COpenBLAS",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: kernelFlags
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
        .executableTarget(
            name: "sisa",
            dependencies: [
                "SisaEngine", "SisaCoordinator",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "SisaEngineTests",
            dependencies: ["SisaEngine"],
            swiftSettings: [.unsafeFlags(["-target-cpu", "haswell"])]
        ),
        .testTarget(
            name: "SisaCoordinatorTests",
            dependencies: ["SisaCoordinator", "SisaEngine"]
        ),
    ],
    swiftLanguageModes: [.v5]
)
