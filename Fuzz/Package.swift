// swift-tools-version:6.0
import PackageDescription

// libFuzzer targets for every image decoder and every parser of outside input (HTTP requests, multipart bodies,
// the worker protocol's lines, compute options), built against the root package's libraries.
// Build and run them with Fuzz/run (the sanitizer flags go on the command line, not here); see Fuzz/README.md.

/// One executable per entry point. `-parse-as-library`: the files have no top-level code, libFuzzer drives them.
func fuzzTarget(_ name: String, _ library: String = "ReplicaImageIO") -> Target {
    .executableTarget(name: name, dependencies: ["FuzzSupport", .product(name: library, package: "ReplicaLink")],
                      swiftSettings: [.unsafeFlags(["-parse-as-library"])])
}

let package = Package(
    name: "ReplicaFuzz",
    dependencies: [
        // Named, so the product reference below does not depend on what the checkout's folder is called.
        .package(name: "ReplicaLink", path: ".."),
    ],
    targets: [
        // libFuzzer's entry points, declared for Swift; the symbols come from the -sanitize=fuzzer runtime.
        .systemLibrary(name: "CLibFuzzer"),
        .target(name: "FuzzSupport",
                dependencies: ["CLibFuzzer", .product(name: "ReplicaImageIO", package: "ReplicaLink")]),
        fuzzTarget("fuzz-jpeg"),
        fuzzTarget("fuzz-png"),
        fuzzTarget("fuzz-tiff"),
        fuzzTarget("fuzz-heif"),
        fuzzTarget("fuzz-raw"),
        fuzzTarget("fuzz-exif"),
        fuzzTarget("fuzz-reader"),
        fuzzTarget("fuzz-http", "ReplicaCore"),
        fuzzTarget("fuzz-multipart", "ReplicaCore"),
        fuzzTarget("fuzz-json-lines", "ReplicaProtocol"),
        fuzzTarget("fuzz-compute-options", "ReplicaProtocol"),
    ]
)
