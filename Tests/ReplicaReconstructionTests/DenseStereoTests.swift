import Foundation
import ReplicaEvaluation
import ReplicaGeometry
@testable import ReplicaReconstruction
import XCTest

/// Point Cloud Generation's parts on synthetic views with known depth: PatchMatch stereo, the depth map's file,
/// fusion, the sparse model's reading and view selection, and object masking.
final class DenseStereoTests: XCTestCase {
    /// A small ring around the bumpy sphere and its renders, with the true depth of each pixel.
    private static let ring: (scene: SyntheticScene, renders: [Rendering]) = {
        let spec = SceneSpec(shape: .smoothBlob, viewCount: 16, width: 240, height: 180, seed: 3,
                             path: .rings(elevationsDegrees: [-15, 25]))
        let scene = SyntheticScene.make(spec)
        return (scene, (0..<spec.viewCount).map { scene.rendering(viewIndex: $0) })
    }()

    private func stereoImage(_ index: Int) -> StereoImage {
        let (scene, renders) = Self.ring
        return StereoImage(undistorting: renders[index].image,
                           camera: SimpleRadialCamera(width: scene.spec.width, height: scene.spec.height,
                                                      focal: scene.spec.focalPixels),
                           camFromWorld: scene.truth.images[index].camFromWorld)
    }

    /// The views nearest to `index` by camera centre.
    private func nearest(_ index: Int, _ count: Int) -> [Int] {
        let centres = Self.ring.scene.truth.images.map(\.centerInWorld)
        return centres.indices.filter { $0 != index }
            .sorted { (centres[$0] - centres[index]).length < (centres[$1] - centres[index]).length }
            .prefix(count).map { $0 }
    }

    private func trueDepthRange(_ index: Int) -> ClosedRange<Double> {
        let depths = Self.ring.renders[index].depth.filter(\.isFinite)
        return (depths.min()! * 0.7)...(depths.max()! * 1.3)
    }

    func testPatchMatchFindsTheTrueDepthOfMostOfTheObject() throws {
        let reference = 0, sources = nearest(reference, 4)
        let map = try XCTUnwrap(PatchMatchStereo.depthMap(reference: stereoImage(reference),
                                                          sources: sources.map(stereoImage),
                                                          depthRange: trueDepthRange(reference)))
        let truth = Self.ring.renders[reference].depth
        var covered = 0, found = 0, close = 0, background = 0
        var errors: [Double] = []
        for (index, trueDepth) in truth.enumerated() {
            guard trueDepth.isFinite else {
                if map.depth[index] > 0 { background += 1 }
                continue
            }
            covered += 1
            guard map.depth[index] > 0 else { continue }
            found += 1
            let error = abs(Double(map.depth[index]) - trueDepth) / trueDepth
            errors.append(error)
            if error < 0.01 { close += 1 }
            // The normal faces the camera.
            let normal = SIMD3(map.normal[3 * index], map.normal[3 * index + 1], map.normal[3 * index + 2])
            XCTAssertEqual((normal * normal).sum(), 1, accuracy: 1e-3)
        }
        errors.sort()
        XCTAssertGreaterThan(Double(found) / Double(covered), 0.6, "share of the object with a depth")
        XCTAssertGreaterThan(Double(close) / Double(found), 0.85, "share of depths within 1 %")
        XCTAssertLessThan(errors[errors.count / 2], 0.002, "median relative depth error")
        // The black background has nothing to match; only windows straddling the silhouette, a band a window's
        // radius wide, get a depth there (fusion finds no other view that agrees with them).
        XCTAssertLessThan(Double(background), 0.15 * Double(covered))
    }

    func testADepthMapFileReadsBackAsWrittenAndRefusesDamage() throws {
        let camera = PinholeCamera(width: 3, height: 2, focalX: 100, focalY: 101, principalX: 1.5, principalY: 1.1)
        let pose = Rigid3(rotation: Matrix3(rotationAbout: Vector3(0, 1, 0), angle: 0.3), translation: Vector3(1, 2, 3))
        let map = DepthMap(camera: camera, camFromWorld: pose, depth: [0, 1, 2, 3, 4.5, 0],
                           normal: (0..<18).map { Float($0) / 18 }, cost: [2, 0.1, 0.2, 0.3, 0.4, 2],
                           rgb: (0..<18).map { UInt8($0 * 10) })
        let bytes = DepthMapFile.encode(map)
        XCTAssertEqual(try DepthMapFile.decode(bytes, path: "m"), map)
        XCTAssertThrowsError(try DepthMapFile.decode(Array(bytes.dropLast()), path: "m"))
        XCTAssertThrowsError(try DepthMapFile.decode(Array("not a map at all".utf8), path: "m"))
        var wrongSize = bytes
        wrongSize[8] = 4
        XCTAssertThrowsError(try DepthMapFile.decode(wrongSize, path: "m"))
    }

    /// Maps made from the true depth agree wherever the surface is seen three times; a false surface that one
    /// map alone holds finds no agreement and is dropped.
    func testFusionKeepsWhatThreeViewsAgreeOnAndDropsWhatOneAloneSees() throws {
        let (scene, renders) = Self.ring
        let views = [0, 1, 2, 3]
        var maps: [DepthMap?] = Array(repeating: nil, count: scene.truth.images.count)
        for index in views {
            let image = stereoImage(index)
            var depth = renders[index].depth.map { $0.isFinite ? Float($0) : 0 }
            // The normal of a sphere-like blob is near the direction from its centre; good enough to agree.
            var normals = [Float](repeating: 0, count: 3 * depth.count)
            let pose = scene.truth.images[index].camFromWorld
            for pixel in depth.indices where depth[pixel] > 0 {
                let x = Double(pixel % image.width) + 0.5, y = Double(pixel / image.width) + 0.5
                let ray = image.camera.ray(through: Vector2(x, y))
                let local = ray / ray.z * Double(depth[pixel])
                let outward = pose.rotation * (pose.inverse.apply(local)).normalized
                normals[3 * pixel] = Float(outward.x)
                normals[3 * pixel + 1] = Float(outward.y)
                normals[3 * pixel + 2] = Float(outward.z)
            }
            if index == 0 {
                // A false wall far behind the object, in this map only.
                for pixel in 0..<(image.width * 10) {
                    depth[pixel] = 20
                    normals[3 * pixel + 2] = -1
                }
            }
            maps[index] = DepthMap(camera: image.camera, camFromWorld: image.camFromWorld, depth: depth,
                                   normal: normals, cost: depth.map { $0 > 0 ? 0.1 : 2 }, rgb: image.rgb)
        }
        let neighbours = maps.indices.map { index in views.contains(index) ? views.filter { $0 != index } : [] }
        let cloud = try XCTUnwrap(DepthFusion.fuse(maps: maps, neighbours: neighbours))
        XCTAssertGreaterThan(cloud.count, 2000)
        let points = cloud.positions.map { Vector3(Double($0.x), Double($0.y), Double($0.z)) }
        let evaluation = try GeometryMetrics.evaluate(points: points, truth: scene.truth,
                                                      options: GeometryMetricsOptions(truthSampleCount: 2000,
                                                                                      resultSampleCount: 2000))
        XCTAssertEqual(try XCTUnwrap(evaluation.scores.first).precision, 1, accuracy: 1e-9,
                       "every point on the surface: the false wall is gone")
        XCTAssertLessThan(try XCTUnwrap(evaluation.accuracy).median, 0.001 * evaluation.diagonal)
        // Normals point out of the blob, towards the cameras.
        let outward = zip(cloud.positions, cloud.normals).filter { ($0.0 * $0.1).sum() > 0 }.count
        XCTAssertGreaterThan(Double(outward) / Double(cloud.count), 0.99)
    }

    func testTheSparseModelIsReadWithItsTracksAndNeighboursAreChosenByAngle() throws {
        let folder = NSTemporaryDirectory() + "stereo-scene-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Five cameras on an arc 10° apart around points near the origin; the first and last also have a
        // camera almost at the same place (no baseline) beside them.
        var images = "# Image list\n"
        var centres: [Vector3] = []
        for index in 0..<6 {
            let angle = index == 5 ? 0.2 * .pi / 180 : Double(index) * 10 * .pi / 180
            let centre = Vector3(5 * sin(angle), 0, -5 * cos(angle))
            centres.append(centre)
            let pose = SyntheticViews.lookingAtOrigin(from: centre)
            let q = SparseModelExport.quaternion(pose.rotation)
            let t = pose.translation
            images += "\(index + 1) \(q.w) \(q.x) \(q.y) \(q.z) \(t.x) \(t.y) \(t.z) 1 view-\(index).png\n\n"
        }
        var points = ""
        var generator = SplitMix64Generator(seed: 5)
        for index in 0..<40 {
            let p = Vector3(generator.unit() - 0.5, generator.unit() - 0.5, generator.unit() - 0.5)
            points += "\(index + 1) \(p.x) \(p.y) \(p.z) 128 128 128 0.5"
            for image in 1...6 { points += " \(image) \(index)" }
            points += "\n"
        }
        try "1 SIMPLE_RADIAL 640 480 500 320 240 0.01\n".write(toFile: folder + "/cameras.txt", atomically: true,
                                                               encoding: .utf8)
        try images.write(toFile: folder + "/images.txt", atomically: true, encoding: .utf8)
        try points.write(toFile: folder + "/points3D.txt", atomically: true, encoding: .utf8)

        let scene = try StereoScene.read(folder: folder)
        XCTAssertEqual(scene.views.map(\.name), (0..<6).map { "view-\($0).png" })
        XCTAssertEqual(scene.views[0].camera.radial, 0.01)
        XCTAssertEqual(scene.points.count, 40)
        XCTAssertEqual(scene.tracks[0], [0, 1, 2, 3, 4, 5])
        for (view, centre) in zip(scene.views, centres) {
            XCTAssertLessThan((view.camFromWorld.inverse.translation - centre).length, 1e-9)
        }
        var options = StereoViewSelectionOptions()
        options.maximumSources = 3
        let neighbourhood = try XCTUnwrap(StereoViewSelection.neighbourhood(of: 0, in: scene, options: options))
        // The twin at 0.2° has no baseline; views 10° and more away triangulate fully and come first, nearest
        // first only by the tie-break of their order.
        XCTAssertFalse(neighbourhood.sources.contains(5), "\(neighbourhood.sources)")
        XCTAssertEqual(neighbourhood.sources, [1, 2, 3])
        let depths = scene.points.map { scene.views[0].camFromWorld.apply($0).z }
        XCTAssertLessThanOrEqual(neighbourhood.depthRange.lowerBound, depths.min()!)
        XCTAssertGreaterThanOrEqual(neighbourhood.depthRange.upperBound, depths.max()!)

        try "1 OPENCV 640 480 500 500 320 240 0 0 0 0\n".write(toFile: folder + "/cameras.txt", atomically: true,
                                                                encoding: .utf8)
        XCTAssertThrowsError(try StereoScene.read(folder: folder)) { error in
            XCTAssertTrue("\(error)".contains("OPENCV"), "\(error)")
        }
    }

    /// A ball on a wide textured floor, seen from a ring of cameras above, with a stray clump off to the side:
    /// masking keeps the ball and drops the floor, the clump, and whatever lies outside most views.
    func testMaskingKeepsTheObjectAndDropsItsSupportAndStrays() {
        var cloud = OrientedPointCloud()
        var generator = SplitMix64Generator(seed: 9)
        func random() -> Float { Float(generator.unit()) }
        var isObject: [Bool] = []
        // The ball: radius 1, centre 1 above the floor at z = 0.
        for _ in 0..<20_000 {
            let v = SIMD3(random() - 0.5, random() - 0.5, random() - 0.5)
            let n = v / (v * v).sum().squareRoot()
            cloud.append(position: n + SIMD3(0, 0, 1), normal: n, color: SIMD3(200, 50, 50))
            isObject.append(true)
        }
        // The floor, 10 wide.
        for _ in 0..<30_000 {
            cloud.append(position: SIMD3(10 * random() - 5, 10 * random() - 5, 0.002 * random()),
                         normal: SIMD3(0, 0, 1), color: SIMD3(90, 90, 90))
            isObject.append(false)
        }
        // A stray clump, floating off to the side, within the views.
        for _ in 0..<300 {
            cloud.append(position: SIMD3(1.8, 0, 2.5) + SIMD3(random(), random(), random()) * 0.05,
                         normal: SIMD3(1, 0, 0), color: SIMD3(0, 0, 0))
            isObject.append(false)
        }
        let views = ringAbove(Vector3(0, 0, 1))
        // Sparse points where features are: on the ball, on the floor, and a few on the clump.
        let sparse = cloud.positions.enumerated().filter { $0.offset % 40 == 0 }
            .map { Vector3(Double($0.element.x), Double($0.element.y), Double($0.element.z)) }

        let (keep, report) = ObjectMasking.mask(cloud, views: views, sparsePoints: sparse)
        let keptObject = zip(keep, isObject).filter { $0.0 && $0.1 }.count
        let keptOther = zip(keep, isObject).filter { $0.0 && !$0.1 }.count
        XCTAssertGreaterThan(Double(keptObject) / 20_000, 0.97, "\(report)")
        XCTAssertLessThan(Double(keptOther) / Double(keptObject + keptOther), 0.01, "\(report)")
        XCTAssertEqual(report.plane?.normal.z ?? 0, 1, accuracy: 0.01, "the floor, facing the cameras")
        XCTAssertGreaterThan(report.outOfView, 0, "the floor's far corners are outside most views")
        XCTAssertGreaterThan(report.strays + report.unsupported, 0)
    }

    /// A plate seen only from above is all one plane with nothing standing on it: no support, so it stays.
    func testAFlatObjectSeenFromOneSideIsNotTakenForItsOwnSupport() {
        var cloud = OrientedPointCloud()
        var generator = SplitMix64Generator(seed: 4)
        for _ in 0..<10_000 {
            let x = Float(generator.unit()) * 2 - 1, y = Float(generator.unit()) * 2 - 1
            cloud.append(position: SIMD3(x, y, 0.001 * Float(generator.unit())), normal: SIMD3(0, 0, 1),
                         color: SIMD3(120, 120, 120))
        }
        let sparse = cloud.positions.enumerated().filter { $0.offset % 20 == 0 }
            .map { Vector3(Double($0.element.x), Double($0.element.y), Double($0.element.z)) }
        let (keep, report) = ObjectMasking.mask(cloud, views: ringAbove(Vector3(0, 0, 0)), sparsePoints: sparse)
        XCTAssertNil(report.plane)
        XCTAssertGreaterThan(Double(keep.filter { $0 }.count) / Double(cloud.count), 0.97, "\(report)")
    }

    /// Twelve cameras on a ring 35° above `target`, 6 away, looking at it.
    private func ringAbove(_ target: Vector3) -> [(camera: PinholeCamera, camFromWorld: Rigid3)] {
        let camera = PinholeCamera(width: 640, height: 480, focal: 600)
        return (0..<12).map { index in
            let azimuth = Double(index) * .pi / 6, elevation = 35.0 * .pi / 180
            let centre = Vector3(cos(elevation) * cos(azimuth), cos(elevation) * sin(azimuth), sin(elevation)) * 6
                + target
            let forward = (target - centre).normalized
            let right = forward.cross(Vector3(0, 0, 1)).normalized
            let rotation = Matrix3(rows: right, forward.cross(right), forward)
            return (camera, Rigid3(rotation: rotation, translation: -(rotation * centre)))
        }
    }
}
