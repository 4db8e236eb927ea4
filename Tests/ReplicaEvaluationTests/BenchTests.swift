import Foundation
import ReplicaEvaluation
import ReplicaGeometry
import XCTest

/// `replica-bench` end to end: a CI-sized scene renders in seconds, and its own truth, handed back as a result,
/// scores perfectly on every table.
final class BenchTests: XCTestCase {
    private var folder = ""

    override func setUp() {
        folder = NSTemporaryDirectory() + "bench-\(UUID().uuidString)"
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// The truth as a sparse model: every 40th surface vertex, seen wherever it projects into an image.
    private func sparseModel(of truth: SceneTruth) -> SparseModel {
        let mesh = truth.mesh!
        let points = stride(from: 0, to: mesh.vertices.count, by: 40).map { index -> SparsePoint in
            let position = mesh.vertices[index]
            let track = truth.images.enumerated().compactMap { imageIndex, image -> SparsePoint.Observation? in
                guard let pixel = image.project(position), image.camera.contains(pixel) else { return nil }
                return SparsePoint.Observation(imageIndex: imageIndex, pixel: pixel)
            }
            return SparsePoint(position: position, track: track)
        }
        return SparseModel(images: truth.images, points: points.filter { $0.track.count >= 2 })
    }

    func testTheCISceneRendersAndItsTruthScoresPerfectly() throws {
        let started = Date()
        let line = try Bench.render(Bench.RenderOptions(spec: .ci, format: .both, folder: folder))
        let seconds = Date().timeIntervalSince(started)
        XCTAssertTrue(line.hasPrefix("12 views of 320×240"), line)
        XCTAssertLessThan(seconds, 120, "a CI scene must render in well under a minute even unoptimised")
        let images = try FileManager.default.contentsOfDirectory(atPath: folder + "/images")
        XCTAssertEqual(images.filter { $0.hasSuffix(".png") }.count, 12)
        XCTAssertEqual(images.filter { $0.hasSuffix(".jpg") }.count, 12)

        let truth = try SceneTruthFile.read(folder: folder)
        try COLMAPModel.write(sparseModel(of: truth), to: folder + "/sparse")
        try PLY.write(path: folder + "/points.ply", vertices: truth.mesh!.vertices)
        let summary = try Bench.evaluate(Bench.EvaluateOptions(
            truth: folder, cameras: folder + "/sparse", points: folder + "/points.ply", surfaceSamples: 20_000))

        let cameras = try XCTUnwrap(summary.cameras)
        XCTAssertEqual(cameras.registeredFraction, 1)
        XCTAssertEqual(try XCTUnwrap(cameras.rotationErrorDegrees).max, 0, accuracy: 1e-6)
        XCTAssertEqual(try XCTUnwrap(cameras.centerErrorFraction).max, 0, accuracy: 1e-9)
        let structure = try XCTUnwrap(summary.structure)
        XCTAssertGreaterThan(structure.points, 20)
        XCTAssertGreaterThanOrEqual(structure.meanTrackLength, 2)
        XCTAssertEqual(try XCTUnwrap(structure.meanReprojectionErrorPixels), 0, accuracy: 1e-6)
        let geometry = try XCTUnwrap(summary.geometry)
        XCTAssertEqual(geometry.scores.map(\.fScore), [1, 1, 1])

        let tables = Bench.tables(summary)
        for heading in ["rotation", "track", "F-score"] {
            XCTAssertTrue(tables.contains(heading), "no \(heading) in:\n\(tables)")
        }
    }

    /// The object's mesh coloured from the photos: each vertex takes the pixel it lands on in the first view that
    /// sees it, as a texturing stage would.
    private func colouredFromPhotos(_ scene: SyntheticScene) -> (TriangleMesh, [SIMD3<UInt8>]) {
        let mesh = scene.models[0].mesh
        let renderings = scene.truth.images.indices.map { scene.rendering(viewIndex: $0) }
        let colors = mesh.vertices.map { vertex -> SIMD3<UInt8> in
            for (view, rendering) in zip(scene.truth.images, renderings) {
                let depth = view.camFromWorld.apply(vertex).z
                guard let pixel = view.project(vertex), view.camera.contains(pixel) else { continue }
                let (x, y) = (Int(pixel.x), Int(pixel.y))
                let offset = y * view.camera.width + x
                guard abs(rendering.depth[offset] - depth) < 0.01 else { continue }
                let bytes = rendering.image.bytes
                return SIMD3(bytes[offset * 3], bytes[offset * 3 + 1], bytes[offset * 3 + 2])
            }
            return SIMD3(128, 128, 128)
        }
        return (mesh, colors)
    }

    func testAppearanceRendersAColouredResultFromTheTrueViews() throws {
        // Smaller than the CI preset: the unoptimised test build renders every view twice here.
        let scene = SyntheticScene.make(SceneSpec(shape: .smoothBlob, viewCount: 6, width: 160, height: 120, seed: 3,
                                                  path: .rings(elevationsDegrees: [20])))
        try SceneWriter.write(scene, to: folder, format: .png)
        let (mesh, colors) = colouredFromPhotos(scene)
        let good = folder + "/good.ply", grey = folder + "/grey.ply"
        try PLY.write(path: good, vertices: mesh.vertices, colors: colors, triangles: mesh.triangles)
        try PLY.write(path: grey, vertices: mesh.vertices, colors: colors.map { _ in SIMD3(128, 128, 128) },
                      triangles: mesh.triangles)

        let heldOut = ["view-001.png", "view-004.png"]
        let summary = try Bench.evaluate(Bench.EvaluateOptions(truth: folder, mesh: good, views: heldOut,
                                                                                surfaceSamples: 5000))
        let appearance = try XCTUnwrap(summary.appearance)
        XCTAssertEqual(appearance.views.map(\.name), heldOut)
        let psnr = try XCTUnwrap(appearance.psnrDecibels), ssim = try XCTUnwrap(appearance.ssim)
        XCTAssertGreaterThan(psnr.minimum, 20, "vertex colours taken from the photos render back close to them")
        XCTAssertGreaterThan(ssim.minimum, 0.6)
        XCTAssertEqual(try XCTUnwrap(summary.geometry).scores.map(\.fScore), [1, 1, 1])

        let flat = try XCTUnwrap(Bench.evaluate(Bench.EvaluateOptions(truth: folder, mesh: grey, views: heldOut,
                                                                        surfaceSamples: 5000))
            .appearance)
        XCTAssertLessThan(try XCTUnwrap(flat.psnrDecibels).median, psnr.median - 5, "a grey model looks worse")
        XCTAssertLessThan(try XCTUnwrap(flat.ssim).median, ssim.median)
        XCTAssertTrue(Bench.tables(summary).contains("SSIM"), Bench.tables(summary))
    }

    func testTheTruthOfEachKindIsToldByItsPath() throws {
        XCTAssertThrowsError(try Bench.evaluate(Bench.EvaluateOptions(truth: folder + "/missing"))) { error in
            XCTAssertTrue("\(error)".contains("does not exist"), "\(error)")
        }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        XCTAssertThrowsError(try Bench.evaluate(Bench.EvaluateOptions(truth: folder))) { error in
            XCTAssertTrue("\(error)".contains("render"), "\(error)")
        }
    }
}
