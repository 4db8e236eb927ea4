import Foundation
import ReplicaEvaluation
import ReplicaGeometry
import ReplicaImageIO
import XCTest

/// The synthetic scenes: determinism, coverage of the surface by the cameras, and the written truth.
final class SyntheticSceneTests: XCTestCase {
    private func small(_ shape: SyntheticShape, seed: UInt64 = 1, path: CameraPath = .walk) -> SceneSpec {
        SceneSpec(shape: shape, viewCount: 3, width: 96, height: 72, seed: seed, path: path)
    }

    func testTheSameSeedGivesTheSameBytesAndAnotherSeedOthers() {
        for shape in SyntheticShape.allCases {
            let first = SyntheticScene.make(small(shape)).render(viewIndex: 1)
            XCTAssertEqual(first, SyntheticScene.make(small(shape)).render(viewIndex: 1), "\(shape)")
            XCTAssertNotEqual(first, SyntheticScene.make(small(shape, seed: 2)).render(viewIndex: 1), "\(shape)")
        }
    }

    func testTheCIPresetRendersTwelveTexturedViewsInSeconds() {
        let start = Date()
        let scene = SyntheticScene.make(.ci)
        let renderings = (0..<12).map { scene.rendering(viewIndex: $0) }
        XCTAssertLessThan(Date().timeIntervalSince(start), 30, "seconds for the CI scene")
        for rendering in renderings {
            let covered = rendering.coverage.filter { $0 }.count
            XCTAssertGreaterThan(covered, 320 * 240 / 10, "the object fills a good part of the view")
            XCTAssertLessThan(covered, 320 * 240, "the object fits in the view")
            XCTAssertGreaterThan(Self.meanGradient(rendering), 4, "the surface is textured, not flat")
        }
        // The same surface lit but uncoloured changes far less from pixel to pixel.
        let plain = TexturedMesh(mesh: scene.models[0].mesh)
        let untextured = Rasterizer.rendering([plain], from: scene.truth.images[0])
        XCTAssertGreaterThan(Self.meanGradient(renderings[0]), 3 * Self.meanGradient(untextured))
    }

    func testEveryTrueVertexProjectsInsideSomeImageAndMostAreSeen() throws {
        let scene = SyntheticScene.make(.ci)
        let mesh = try XCTUnwrap(scene.truth.mesh)
        let renderings = (0..<scene.truth.images.count).map { scene.rendering(viewIndex: $0) }
        var seen = 0
        for vertex in mesh.vertices {
            var inside = false, visible = false
            for (index, image) in scene.truth.images.enumerated() {
                guard let pixel = image.project(vertex), image.camera.contains(pixel) else { continue }
                inside = true
                let depth = renderings[index].depth[Int(pixel.y) * image.camera.width + Int(pixel.x)]
                if abs(depth - image.camFromWorld.apply(vertex).z) < 0.05 { visible = true }
            }
            XCTAssertTrue(inside, "vertex \(vertex) is in no image")
            if visible { seen += 1 }
        }
        // One ring at 20° elevation sees the top and sides but not the underside.
        XCTAssertGreaterThan(Double(seen) / Double(mesh.vertices.count), 0.6)
    }

    func testRingsLookAtTheObjectFromTheirElevations() {
        let spec = SceneSpec(shape: .notchedBlock, viewCount: 6, width: 64, height: 48, seed: 3,
                             path: .rings(elevationsDegrees: [10, 50]))
        let scene = SyntheticScene.make(spec)
        let box = scene.truth.boundingBox!
        let center = (box.min + box.max) / 2
        for (index, image) in scene.truth.images.enumerated() {
            let pixel = image.project(center)!
            XCTAssertEqual(pixel.x, 32, accuracy: 1e-9)
            XCTAssertEqual(pixel.y, 24, accuracy: 1e-9)
            let offset = image.centerInWorld - center
            let elevation = asin(offset.z / offset.length) * 180 / .pi
            XCTAssertEqual(elevation, index < 3 ? 10 : 50, accuracy: 1e-9)
        }
    }

    func testViewsThatDoNotDivideEvenlyStillFillEveryRing() {
        let spec = SceneSpec(shape: .smoothBlob, viewCount: 5, width: 32, height: 24, seed: 3,
                             path: .rings(elevationsDegrees: [0, 45]))
        let scene = SyntheticScene.make(spec)
        let box = scene.truth.boundingBox!
        let centers = scene.truth.images.map { $0.centerInWorld - (box.min + box.max) / 2 }
        let elevations = centers.map { (asin($0.z / $0.length) * 180 / .pi).rounded() }
        XCTAssertEqual(elevations, [0, 0, 45, 45, 45])
        for (a, b) in [(0, 1), (2, 3), (3, 4), (2, 4)] {
            XCTAssertGreaterThan((centers[a] - centers[b]).length, 1, "views \(a) and \(b) are apart")
        }
    }

    func testTheBlockIsClosedAndTheGroundSceneIncludesTheGround() throws {
        let block = try XCTUnwrap(SyntheticScene.make(small(.notchedBlock)).truth.mesh)
        // A closed mesh uses each directed edge once and its reverse once.
        var edges: [SIMD2<Int32>: Int] = [:]
        for t in block.triangles {
            for edge in [SIMD2(t.x, t.y), SIMD2(t.y, t.z), SIMD2(t.z, t.x)] { edges[edge, default: 0] += 1 }
        }
        XCTAssertTrue(edges.allSatisfy { $0.value == 1 && edges[SIMD2($0.key.y, $0.key.x)] == 1 })
        let ground = try XCTUnwrap(SyntheticScene.make(small(.objectOnGround)).truth.mesh)
        XCTAssertGreaterThan(ground.bounds!.max.x - ground.bounds!.min.x, 7.9, "the 8-unit ground is in the truth")
    }

    func testSpecsAreValidated() {
        XCTAssertNoThrow(try SceneSpec.ci.validate())
        XCTAssertNoThrow(try SceneSpec.benchmark.validate())
        var spec = SceneSpec.ci
        spec.viewCount = 0
        XCTAssertThrowsError(try spec.validate())
        spec = .ci
        spec.path = .rings(elevationsDegrees: [])
        XCTAssertThrowsError(try spec.validate())
        spec = .ci
        spec.fieldOfViewDegrees = 170
        XCTAssertThrowsError(try spec.validate())
    }

    func testAWrittenSceneReadsBackAsItsTruth() throws {
        let folder = NSTemporaryDirectory() + "scene-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let scene = SyntheticScene.make(small(.notchedBlock))
        try SceneWriter.write(scene, to: folder, format: .both)

        XCTAssertEqual(try SceneTruthFile.read(folder: folder), scene.truth)
        let jpeg = try XCTUnwrap(FileManager.default.contents(atPath: folder + "/images/view-000.jpg"))
        let metadata = [UInt8](jpeg).withUnsafeBytes { ExifReader.readJPEG($0) }
        XCTAssertEqual(metadata.make, "Replica Link")
        XCTAssertEqual(metadata.model, "synthetic")
        let focal35 = scene.spec.focalPixels * 36 / Double(scene.spec.width)
        XCTAssertEqual(metadata.focalLength35mmMillimetres, focal35.rounded())
        let png = try XCTUnwrap(FileManager.default.contents(atPath: folder + "/images/view-002.png"))
        let decoded = try ImageReader.decode(data: [UInt8](png), name: "view-002.png")
        XCTAssertEqual(decoded.pixels, scene.render(viewIndex: 2))
    }

    func testPLYRoundTripsInBothEncodingsWithColours() throws {
        let path = NSTemporaryDirectory() + "mesh-\(UUID().uuidString).ply"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let vertices = [Vector3(0.1, -2.5, 3e-7), Vector3(1, 0, 0), Vector3(0, 1, 1.0 / 3)]
        let colors: [SIMD3<UInt8>] = [SIMD3(0, 128, 255), SIMD3(1, 2, 3), SIMD3(250, 0, 9)]
        for encoding in [PLY.Encoding.ascii, .binaryLittleEndian] {
            try PLY.write(path: path, vertices: vertices, colors: colors, triangles: [SIMD3(0, 1, 2)],
                          encoding: encoding)
            let read = try PLY.read(path: path)
            XCTAssertEqual(read.vertices, vertices)
            XCTAssertEqual(read.colors, colors)
            XCTAssertEqual(read.triangles, [SIMD3(0, 1, 2)])
        }
        FileManager.default.createFile(atPath: path, contents: Data("ply\nformat ascii 1.0\nelement vertex 2\n".utf8))
        XCTAssertThrowsError(try PLY.read(path: path))
    }

    /// The mean absolute difference of green between horizontally adjacent pixels that both show the surface.
    private static func meanGradient(_ rendering: Rendering) -> Double {
        let image = rendering.image
        var total = 0, count = 0
        for y in 0..<image.height { for x in 0..<(image.width - 1) {
            let pixel = y * image.width + x
            guard rendering.coverage[pixel], rendering.coverage[pixel + 1] else { continue }
            total += abs(Int(image.bytes[3 * pixel + 1]) - Int(image.bytes[3 * pixel + 4]))
            count += 1
        } }
        return Double(total) / Double(count)
    }
}
