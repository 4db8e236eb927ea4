import Foundation
import ReplicaCore
import ReplicaEvaluation
import ReplicaGeometry
import ReplicaImageIO
import ReplicaProtocol
import ReplicaReconstruction
import ReplicaWorker
import XCTest

/// Image Alignment's tasks in a row on the CI-sized synthetic scene, whose true cameras are known: Pre-Processing,
/// features per photo, matching and verification of every pair, then structure from motion, and the model's
/// files checked against the truth; then Point Cloud Generation's, a depth map per photo and their fusion, and the
/// cloud checked against the true surface; then Mesh Generation's and Texture Mapping's, the textured model
/// seen from views between the photos.
final class ImageAlignmentTests: XCTestCase {
    private var folder = ""
    private var keepsFolder: Bool { ProcessInfo.processInfo.environment["KEEP_ALIGNMENT_FOLDER"] != nil }

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "alignment-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder + "/work", withIntermediateDirectories: true)
    }

    override func tearDown() {
        if !keepsFolder { try? FileManager.default.removeItem(atPath: folder) }
    }

    func testTheSyntheticRingAlignsAndItsPointCloudLiesOnTheTrueSurface() throws {
        let scene = SyntheticScene.make(.ci)
        try SceneWriter.write(scene, to: folder, format: .jpeg)
        let truth = try SceneTruthFile.read(folder: folder)
        let names = truth.images.map(\.name)
        let work = folder + "/work", sink = RecordingSink()

        for name in names {
            _ = try PreprocessTask(inputs: PreprocessInputs(image: name, maxDimension: 1024), workDirectory: work)
                .run(sink)
            // A 320-pixel photo holds few landmarks at the normal thresholds; high sensitivity finds enough.
            let inputs = DetectFeaturesInputs(image: name, maxFeatures: 4096, sensitivity: .high)
            _ = try DetectFeaturesTask(inputs: inputs, workDirectory: work).run(sink)
        }
        try checkTheWalkClosesThroughRetrieval(names: names, work: work)
        let pairs = SelectPairs.pairs(imageCount: names.count, selection: .exhaustive)
            .map { [names[$0.first], names[$0.second]] }
        let matched = try MatchPairsTask(inputs: MatchPairsInputs(block: "block-00000", pairs: pairs),
                                         workDirectory: work).run(sink)
        XCTAssertEqual(matched.data["pairs"], JSONValue.number(Double(pairs.count)))
        let mapped = try MapTask(inputs: MapInputs(images: names, blocks: ["block-00000"]), workDirectory: work)
            .run(sink)
        XCTAssertEqual(mapped.data["registeredImages"], JSONValue.number(12), "\(sink.warnings)")
        XCTAssertTrue(sink.warnings.allSatisfy { !$0.message.contains("could not be aligned") }, "\(sink.warnings)")
        for output in MapTask.outputs {
            XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/" + output), output)
        }

        // The exported model, read back as COLMAP would, against the truth: every camera, to half a degree (three
        // pixels at this focal length) and half a per cent of the camera path.
        let model = try COLMAPModel.read(folder: work + "/sparse/colmap")
        let cameras = try CameraMetrics.evaluate(estimated: model.images, truth: truth)
        XCTAssertEqual(cameras.registeredCount, 12)
        XCTAssertLessThan(try XCTUnwrap(cameras.rotationErrorDegrees).median, 0.5)
        XCTAssertLessThan(try XCTUnwrap(cameras.centerErrorFraction).median, 0.005)
        XCTAssertGreaterThan(model.points.count, 500)
        let statistics = try XCTUnwrap(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: work + "/sparse/statistics.json"))) as? [String: Any])
        XCTAssertLessThan(try XCTUnwrap(statistics["meanReprojectionErrorPixels"] as? Double), 1.0)
        // Photos 30° apart share a point with their neighbours on either side, rarely more.
        XCTAssertGreaterThan(try XCTUnwrap(statistics["meanTrackLength"] as? Double), 2.2)

        // transforms.json: one frame per photo, the focal length near the truth's.
        let transforms = try XCTUnwrap(try JSONSerialization.jsonObject(
            with: Data(contentsOf: URL(fileURLWithPath: work + "/sparse/transforms.json"))) as? [String: Any])
        let frames = try XCTUnwrap(transforms["frames"] as? [[String: Any]])
        XCTAssertEqual(Set(frames.compactMap { $0["file_path"] as? String }), Set(names.map { "images/" + $0 }))
        let focal = try XCTUnwrap(transforms["fl_x"] as? Double)
        XCTAssertEqual(focal, SceneSpec.ci.focalPixels, accuracy: 0.02 * SceneSpec.ci.focalPixels)

        try checkThePointCloud(names: names, work: work, truth: truth, cameras: model)
    }

    /// A depth map per photo, fused into `work/dense.ply`: the points, taken to the true world by the cameras'
    /// alignment, lie on the true surface and cover most of what the ring sees of it.
    private func checkThePointCloud(names: [String], work: String, truth: SceneTruth, cameras: SparseModel) throws {
        let sink = RecordingSink()
        for name in names {
            let outcome = try DepthMapTask(DepthMapTask.assignment(image: name, work: work)).run(sink)
            XCTAssertEqual(outcome.outputs, [DepthMapTask.output(for: name)])
            // Photos 30° apart: the object's pixels away from the silhouette find their plane.
            guard case .number(let found)? = outcome.data["depthPixels"] else { return XCTFail("no depthPixels") }
            XCTAssertGreaterThan(found, 4000, name)
        }
        XCTAssertThrowsError(try DepthMapTask(DepthMapTask.assignment(image: "../x.png", work: work)))
        let fused = try FuseTask(inputs: FuseInputs(images: names, masking: true), workDirectory: work).run(sink)
        XCTAssertEqual(fused.outputs, FuseTask.outputs)
        guard case .number(let count)? = fused.data["points"] else { return XCTFail("no point count") }
        XCTAssertGreaterThan(count, 10_000)
        // The cloud as other tools read it, in the truth's world.
        let ply = try PLY.read(path: work + "/dense.ply")
        XCTAssertEqual(Double(ply.vertices.count), count)
        XCTAssertNotNil(ply.colors)
        let alignment = try XCTUnwrap(try CameraMetrics.evaluate(estimated: cameras.images, truth: truth)
            .trueFromEstimated)
        let evaluation = try GeometryMetrics.evaluate(points: ply.vertices.map(alignment.apply), truth: truth,
                                                      options: GeometryMetricsOptions(truthSampleCount: 20_000,
                                                                                      resultSampleCount: 20_000))
        XCTAssertLessThan(try XCTUnwrap(evaluation.accuracy).median, 0.002 * evaluation.diagonal)
        let atOnePercent = try XCTUnwrap(evaluation.scores.first { $0.fraction == 0.01 })
        XCTAssertGreaterThan(atOnePercent.precision, 0.95)
        // One ring 20° up sees neither the top nor the bottom of the blob.
        XCTAssertGreaterThan(atOnePercent.recall, 0.6)
        XCTAssertTrue(FileManager.default.fileExists(atPath: work + "/dense/statistics.json"))
        try checkTheMesh(work: work, truth: truth, alignment: alignment)
    }

    /// The surface of that cloud at preview's budget: on the true surface as closely as the cloud, and covering
    /// what the cloud covers.
    private func checkTheMesh(work: String, truth: SceneTruth, alignment: Similarity3) throws {
        let outcome = try MeshTask(inputs: MeshInputs(maximumPolygons: 25_000, primitive: .triangle, masking: true),
                                   workDirectory: work).run(RecordingSink())
        XCTAssertEqual(outcome.outputs, MeshTask.outputs)
        let ply = try PLY.read(path: work + "/mesh.ply")
        XCTAssertLessThan(ply.triangles.count, 25_000)
        XCTAssertGreaterThan(ply.triangles.count, 5000)
        let mesh = TriangleMesh(vertices: ply.vertices.map(alignment.apply), triangles: ply.triangles)
        let evaluation = try GeometryMetrics.evaluate(mesh: mesh, truth: truth,
                                                      options: GeometryMetricsOptions(truthSampleCount: 20_000,
                                                                                      resultSampleCount: 20_000))
        XCTAssertLessThan(try XCTUnwrap(evaluation.accuracy).median, 0.003 * evaluation.diagonal)
        let atOnePercent = try XCTUnwrap(evaluation.scores.first { $0.fraction == 0.01 })
        XCTAssertGreaterThan(atOnePercent.precision, 0.9)
        XCTAssertGreaterThan(atOnePercent.recall, 0.6)
        try checkTheTexture(work: work, alignment: alignment)
    }

    /// Preview's maps for that mesh: each map at its side, and the textured model, seen from views between the
    /// photos that no photo was taken from, looking like the true object there.
    private func checkTheTexture(work: String, alignment: Similarity3) throws {
        let inputs = TextureInputs(maps: [.ambientOcclusion, .diffuseColor, .normal], dimension: 1024)
        let outcome = try TextureTask(inputs: inputs, workDirectory: work).run(RecordingSink())
        let maps = ["ambientOcclusion", "diffuseColor", "normal"].map { "texture/\($0)-0.png" }
        XCTAssertEqual(Set(outcome.outputs), Set([TextureTask.textured, TextureTask.manifest, TextureTask.statistics]
                                                 + maps))
        for (file, channels) in zip(maps, [1, 3, 3]) {
            let pixels = try ImageReader.decode(path: work + "/" + file, options: DecodeOptions(allowGrey: true))
                .pixels
            XCTAssertEqual([pixels.width, pixels.height, pixels.channels], [1024, 1024, channels], file)
        }
        let surface = try TexturedSurface(plyBytes: [UInt8](Data(contentsOf: URL(fileURLWithPath:
            work + "/" + TextureTask.textured))))
        XCTAssertEqual(surface.polygonCount, try SurfaceMesh(plyBytes: [UInt8](Data(contentsOf: URL(fileURLWithPath:
            work + "/mesh.ply")))).polygonCount)
        guard case .number(let before)? = outcome.data["seamDifferenceBefore"],
              case .number(let after)? = outcome.data["seamDifferenceAfter"] else { return XCTFail("no seam figures") }
        XCTAssertLessThan(after, before / 2)
        // The ring of 24 has the 12 photos' cameras at its even places and new ones between them.
        let between = SyntheticScene.make(SceneSpec(shape: .smoothBlob, viewCount: 24, width: 320, height: 240,
                                                    seed: 1, path: .rings(elevationsDegrees: [20])))
        let photos = SyntheticScene.make(.ci)
        XCTAssertLessThan((between.truth.images[2].centerInWorld - photos.truth.images[1].centerInWorld).length, 1e-9)
        let diffuse = try ImageReader.decode(path: work + "/texture/diffuseColor-0.png").pixels
        let triangles = surface.triangulated.map { SIMD3<Int32>(truncatingIfNeeded: $0) }
        let model = TexturedMesh(mesh: TriangleMesh(vertices: surface.positions.map { alignment.apply(Vector3($0)) },
                                                    triangles: triangles),
                                 textureCoordinates: surface.uvs.map { Vector2($0) }, texture: diffuse)
        var scores: [Double] = []
        for index in [1, 7, 13, 19] {
            let rendered = Rasterizer.render(model, from: between.truth.images[index], lighting: nil)
            scores.append(try XCTUnwrap(ImageMetrics.psnr(rendered.image, between.render(viewIndex: index),
                                                          mask: rendered.coverage)))
        }
        XCTAssertGreaterThan(scores.sorted()[1], 25, "held-out PSNR \(scores)")
    }

    /// Taken as a walk, the ring's photos are each paired with the next one, and retrieval finds the pair that
    /// closes it, the last photo with the first, 30° apart, which no window of neighbours holds.
    private func checkTheWalkClosesThroughRetrieval(names: [String], work: String) throws {
        let inputs = try RetrievePairsInputs(["images": .array(names.map(JSONValue.string)),
                                              "neighbours": .number(2), "window": .number(1)])
        XCTAssertEqual(inputs.window, 1)
        let outcome = try RetrievePairsTask(inputs: inputs, workDirectory: work).run(RecordingSink())
        let data = try Data(contentsOf: URL(fileURLWithPath: work + "/" + RetrievePairsTask.output))
        let pairs = Set(try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [[String]]))
        XCTAssertEqual(outcome.data["pairs"], .number(Double(pairs.count)))
        for index in names.indices.dropLast() {
            XCTAssertTrue(pairs.contains([names[index], names[index + 1]]), "window pair \(index)")
        }
        XCTAssertTrue(pairs.contains([names[0], names[11]]), "the loop's closing pair is missing: \(pairs)")
        XCTAssertLessThanOrEqual(pairs.count, 12 * 3)
        XCTAssertThrowsError(try RetrievePairsInputs(["images": .array([]), "neighbours": .number(2),
                                                      "window": .number(-1)]))
    }

    func testTooFewAlignedPhotosFailWithWhatToDo() throws {
        // Three copies of one photo: no baseline between any two, so no pair can start a model.
        var spec = SceneSpec.ci
        spec.viewCount = 1
        let scene = SyntheticScene.make(spec)
        try SceneWriter.write(scene, to: folder, format: .jpeg)
        let first = try SceneTruthFile.read(folder: folder).images[0].name
        let names = ["a.jpg", "b.jpg", "c.jpg"]
        for name in names {
            try FileManager.default.copyItem(atPath: folder + "/images/" + first, toPath: folder + "/images/" + name)
        }
        let work = folder + "/work", sink = RecordingSink()
        for name in names {
            _ = try PreprocessTask(inputs: PreprocessInputs(image: name, maxDimension: 1024), workDirectory: work)
                .run(sink)
            let inputs = DetectFeaturesInputs(image: name, maxFeatures: 4096, sensitivity: .normal)
            _ = try DetectFeaturesTask(inputs: inputs, workDirectory: work).run(sink)
        }
        _ = try MatchPairsTask(inputs: MatchPairsInputs(block: "b", pairs: [["a.jpg", "b.jpg"], ["a.jpg", "c.jpg"],
                                                                           ["b.jpg", "c.jpg"]]),
                               workDirectory: work).run(sink)
        XCTAssertThrowsError(try MapTask(inputs: MapInputs(images: names, blocks: ["b"]), workDirectory: work)
            .run(sink)) { error in
            guard case TaskError.failed(let message, let retryable, _) = error else { return XCTFail("\(error)") }
            XCTAssertFalse(retryable)
            XCTAssertTrue(message.contains("of 3 photos could be aligned"), message)
            XCTAssertTrue(message.contains("featureSensitivity"), message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/sparse/statistics.json"))
    }
}

extension DepthMapTask {
    /// The assignment the gateway sends for one photo's depth map.
    static func assignment(image: String, work: String) -> TaskAssignment {
        TaskAssignment(taskId: "depth-1", kind: .depth, workDirectory: work, inputs: ["image": .string(image)])
    }
}
