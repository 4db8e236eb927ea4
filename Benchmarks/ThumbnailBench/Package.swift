// swift-tools-version:6.0
import PackageDescription

// Our side of Benchmarks/thumbnails: one process that makes the thumbnails of many photos, and the pixel
// comparison against vipsthumbnail's. Built in release by that script.
let package = Package(
    name: "ThumbnailBench",
    dependencies: [
        // Named, so the product reference below does not depend on what the checkout's folder is called.
        .package(name: "ReplicaLink", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "thumbnail-bench",
                          dependencies: [.product(name: "ReplicaImageIO", package: "ReplicaLink")]),
    ]
)
