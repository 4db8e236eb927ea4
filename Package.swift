// swift-tools-version:6.0
import PackageDescription

// Layers, lowest first; an import may only point down this list (see docs/ARCHITECTURE.md):
//   C shims (CLibUV, COpenSSL, CSQLite) → ReplicaCore, ReplicaProtocol → ReplicaHTTP → ReplicaGateway
//   → executables
let package = Package(
    name: "ReplicaLink",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "replica-link", targets: ["replica-link"]),
        .executable(name: "replica-worker", targets: ["replica-worker"]),
        .executable(name: "replica-bench", targets: ["replica-bench"]),
        // For the fuzzing package in Fuzz/, which builds the decoders and parsers with sanitizers.
        .library(name: "ReplicaImageIO", targets: ["ReplicaImageIO"]),
        .library(name: "ReplicaCore", targets: ["ReplicaCore"]),
        .library(name: "ReplicaProtocol", targets: ["ReplicaProtocol"]),
    ],
    targets: [
        .systemLibrary(name: "CLibUV", pkgConfig: "libuv", providers: [.apt(["libuv1-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTIFF", pkgConfig: "libtiff-4", providers: [.apt(["libtiff-dev"])]),
        .systemLibrary(name: "CHeif", pkgConfig: "libheif", providers: [.apt(["libheif-dev"])]),
        // No pkgConfig: libraw.pc adds -fopenmp, which the Swift driver does not take; the module map links it.
        .systemLibrary(name: "CLibRaw", providers: [.apt(["libraw-dev"])]),
        .systemLibrary(name: "CExif", pkgConfig: "libexif", providers: [.apt(["libexif-dev"])]),
        // No pkgConfig: Debian's libvlfeat-dev ships no .pc file; the module map links libvl by name.
        .systemLibrary(name: "CVLFeat", path: "Sources/CVLFeat", providers: [.apt(["libvlfeat-dev"])]),
        // No pkgConfig either: Debian's libmeshoptimizer-dev ships only CMake files.
        .systemLibrary(name: "CMeshOptimizer", path: "Sources/CMeshOptimizer",
                       providers: [.apt(["libmeshoptimizer-dev"])]),
        // A vectorised column convolution under VLFeat's own name, which libvl's SIFT then calls (see the file).
        .target(name: "CVLFeatKernels", dependencies: ["CVLFeat"]),
        // OpenBLAS (found with pkg-config: its CBLAS header lives in a per-variant folder) and LAPACKE.
        .systemLibrary(name: "CLinearAlgebra", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "liblapacke-dev"])]),
        // renameat2 (no-clobber renames), which glibc hides behind _GNU_SOURCE.
        .systemLibrary(name: "CFileSystem"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // assimp: the tests read every exported format back with it (ReplicaTestSupport); the product does not link it.
        .systemLibrary(name: "CAssimp", pkgConfig: "assimp", providers: [.apt(["libassimp-dev"])]),

        // No I/O: HTTP parsing, routing, the API's error shape, options and their validation.
        // CRC-32 comes from zlib, whose tuned loop is several times a byte-wise table's speed.
        .target(name: "ReplicaCore", dependencies: ["CZlib"]),
        // The API's DTOs and, later, the worker protocol's messages.
        .target(name: "ReplicaProtocol"),
        // Every photo format the API accepts: detection by content, decoding with EXIF and orientation,
        // resizing, JPEG encoding and thumbnails. Shared by the gateway and the workers.
        .target(name: "ReplicaImageIO",
                dependencies: ["CTurboJPEG", "CPNG", "CTIFF", "CHeif", "CLibRaw", "CExif"]),
        // The only module that touches libuv: loop, TCP, connections, limits, TLS.
        .target(name: "ReplicaHTTP", dependencies: ["ReplicaCore", "ReplicaProtocol", "CLibUV", "COpenSSL"]),
        // The exchange formats, written here: GLB, USDZ, OBJ and binary FBX. The workers write the GLB and USDZ; the
        // gateway converts the GLB to OBJ and FBX on request.
        // Optimised in debug builds too, as Reconstruction is: the tests convert models of 100,000s of triangles.
        .target(name: "ReplicaExport", dependencies: ["ReplicaCore", "ReplicaImageIO"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        // Routes, auth, sessions, configuration; SQLite lives here.
        .target(name: "ReplicaGateway",
                dependencies: ["ReplicaCore", "ReplicaProtocol", "ReplicaHTTP", "ReplicaImageIO", "ReplicaExport",
                               "CSQLite", "COpenSSL", "CFileSystem", "CLibUV"],
                // The web interface's page, script and style, compiled in: no file to lose beside the binary.
                resources: [.embedInCode("Web/index.html"), .embedInCode("Web/app.js"),
                            .embedInCode("Web/app.css")]),

        .executableTarget(name: "replica-link", dependencies: ["ReplicaGateway", "ReplicaHTTP"]),
        // The worker's side of the worker protocol and its task runners, one file per pipeline step.
        .target(name: "ReplicaWorker",
                dependencies: ["ReplicaProtocol", "ReplicaImageIO", "ReplicaCore", "ReplicaReconstruction",
                               "ReplicaExport"]),
        // Vectors, rotations, rigid motions, pinhole cameras and meshes: the vocabulary of every geometric stage.
        .target(name: "ReplicaGeometry"),
        // Ground truth and how close a result is to it: synthetic scenes, the datasets' truth, the metrics.
        .target(name: "ReplicaEvaluation", dependencies: ["ReplicaGeometry", "ReplicaImageIO"]),
        // Reconstruction: features, matching, geometry, SfM, bundle adjustment. SIFT comes from VLFeat, dense
        // linear algebra from OpenBLAS and LAPACKE;
        // ReplicaCore only for OptionsError, which every options struct's validate() throws.
        // Optimised in debug builds too: the tests run its stereo, matching and bundle adjustment on real images,
        // tens of times slower unoptimised.
        .target(name: "ReplicaReconstruction",
                dependencies: ["ReplicaGeometry", "ReplicaImageIO", "ReplicaCore", "CVLFeat", "CVLFeatKernels",
                               "CLinearAlgebra", "CMeshOptimizer"],
                swiftSettings: [.unsafeFlags(["-O"], .when(configuration: .debug))]),
        .executableTarget(name: "replica-bench", dependencies: ["ReplicaEvaluation", "ReplicaExport"]),
        .executableTarget(name: "replica-worker", dependencies: ["ReplicaWorker", "ReplicaProtocol"]),

        .target(name: "ReplicaTestSupport", dependencies: ["ReplicaCore", "CAssimp"], path: "Tests/ReplicaTestSupport"),
        .testTarget(name: "ReplicaCoreTests", dependencies: ["ReplicaCore", "ReplicaTestSupport"]),
        .testTarget(name: "ReplicaProtocolTests", dependencies: ["ReplicaProtocol"]),
        .testTarget(name: "ReplicaImageIOTests", dependencies: ["ReplicaImageIO", "CTurboJPEG", "CPNG", "CTIFF",
                                                               "CHeif", "CExif", "ReplicaTestSupport"]),
        .testTarget(name: "ReplicaHTTPTests",
                    dependencies: ["ReplicaHTTP", "ReplicaCore", "ReplicaTestSupport", "CLibUV"],
                    // The malformed-request table, shared with scripts/http-oracle.
                    resources: [.copy("EdgeCases")]),
        .testTarget(name: "ReplicaGatewayTests",
                    dependencies: ["ReplicaGateway", "ReplicaHTTP", "ReplicaCore", "ReplicaProtocol",
                                   "ReplicaImageIO", "ReplicaTestSupport", "ReplicaEvaluation",
                                   "ReplicaReconstruction", "ReplicaExport"],
                    exclude: ["Fixtures"],
                    resources: [.copy("Golden")]),
        .testTarget(name: "ReplicaEvaluationTests",
                    dependencies: ["ReplicaEvaluation", "ReplicaGeometry", "ReplicaImageIO"]),
        .testTarget(name: "ReplicaWorkerTests",
                    dependencies: ["ReplicaWorker", "ReplicaProtocol", "ReplicaImageIO", "ReplicaTestSupport",
                                   "ReplicaReconstruction", "ReplicaEvaluation", "ReplicaCore"]),
        .testTarget(name: "ReplicaExportTests",
                    dependencies: ["ReplicaExport", "ReplicaCore", "ReplicaImageIO", "ReplicaTestSupport"]),
        .testTarget(name: "ReplicaReconstructionTests",
                    dependencies: ["ReplicaReconstruction", "ReplicaImageIO", "ReplicaGeometry", "ReplicaEvaluation"]),
    ],
    swiftLanguageModes: [.v5]
)
