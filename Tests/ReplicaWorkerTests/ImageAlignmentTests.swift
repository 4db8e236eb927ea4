import Foundation
import ReplicaCore
import ReplicaEvaluation
import ReplicaGeometry
import ReplicaProtocol
import ReplicaReconstruction
import ReplicaWorker
import XCTest

/// Image Alignment's tasks in a row on the CI-sized synthetic scene, whose true cameras are known: Pre-Processing,
/// features per photo, matching and verification of every pair, then structure from motion, and the model's
/// files checked against the truth.
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

    func testTheSyntheticRingAlignsWithinTolerances() throws {
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
