import Foundation
import ReplicaImageIO
import ReplicaProtocol
import ReplicaReconstruction
import XCTest
@testable import ReplicaWorker

/// The Feature Detection task: after Pre-Processing through the worker loop, without its input, with bad
/// inputs, on a featureless image, and stopped at each checkpoint.
final class DetectFeaturesTaskTests: WorkerTaskTestCase {
    private func featuresTask(_ id: TaskID, image: String, maxFeatures: Int = 8192,
                              sensitivity: String = "normal") -> TaskAssignment {
        TaskAssignment(taskId: id, kind: .features, workDirectory: project.work.path,
                       inputs: ["image": .string(image), "maxFeatures": .number(Double(maxFeatures)),
                                "sensitivity": .string(sensitivity)])
    }

    private func featureFiles() -> [String] {
        let folder = project.work.appendingPathComponent("features").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).sorted()
    }

    /// A working copy written where Pre-Processing would put it.
    private func addWorkingCopy(_ name: String, _ pixels: PixelBuffer) throws {
        let folder = project.work.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let bytes = try JPEGEncoder.encode(pixels, quality: 95)
        XCTAssertTrue(FileManager.default.createFile(atPath: folder.appendingPathComponent("\(name).jpg").path,
                                                     contents: Data(bytes)))
    }

    func testPreProcessingThenFeaturesWritesASiftFileWithTheReportedCount() throws {
        let image = project.add(try Datasets.photo("bundler_kermit", "kermit000.jpg"))
        let run = welcomed()
        harness.send(.task(project.task("t-1", image: image, maxDimension: 640)))
        guard case .result? = harness.answer().end else { return XCTFail("Pre-Processing gave no result") }

        harness.send(.task(featuresTask("t-2", image: image)))
        let answer = harness.answer()
        guard case .result(let result)? = answer.end else { return XCTFail("no result: \(answer.lines)") }
        XCTAssertEqual(result.outputs, ["features/\(image).sift"])
        XCTAssertEqual(featureFiles(), ["\(image).sift"])
        let messages = answer.lines.compactMap { line -> String? in
            if case .progress(let progress) = line { return progress.message } else { return nil }
        }
        XCTAssertEqual(messages, ["decoding", "detecting", "writing", "done"])
        XCTAssertFalse(answer.lines.contains { $0.type == "warning" }, "\(answer.lines)")

        let features = try FeatureSet.read(path: project.work.appendingPathComponent(result.outputs[0]).path)
        XCTAssertGreaterThan(features.count, 300)
        XCTAssertEqual(result.data?["features"], .number(Double(features.count)))
        XCTAssertEqual(result.data?["width"], .number(640))
        XCTAssertEqual(result.data?["height"], .number(480))
        XCTAssertEqual(features.width, 640)
        XCTAssertEqual(features.height, 480)

        // A budget is honoured, and high sensitivity finds more than normal on the same image.
        harness.send(.task(featuresTask("t-3", image: image, maxFeatures: 50)))
        guard case .result(let small)? = harness.answer().end else { return XCTFail("no result for a budget") }
        XCTAssertEqual(small.data?["features"], .number(50))
        harness.send(.task(featuresTask("t-4", image: image, sensitivity: "high")))
        guard case .result(let high)? = harness.answer().end else { return XCTFail("no high-sensitivity result") }
        guard case .number(let highCount)? = high.data?["features"] else { return XCTFail("no count") }
        XCTAssertGreaterThan(Int(highCount), features.count)
        XCTAssertEqual(featureFiles(), ["\(image).sift"], "no temporary file is left")

        harness.send(.shutdown(WorkerShutdown()))
        XCTAssertEqual(run.status(), 0)
    }

    func testAMissingWorkingCopyFailsWithoutRetryNamingTheImage() {
        let run = welcomed()
        harness.send(.task(featuresTask("t-5", image: "IMG_9.JPG")))
        guard case .failure(let failure)? = harness.answer().end else { return XCTFail("no failure") }
        XCTAssertFalse(failure.retryable)
        XCTAssertEqual(failure.image, "IMG_9.JPG")
        XCTAssertTrue(failure.message.contains("Pre-Processing") && failure.message.contains("IMG_9.JPG")
                      && failure.message.contains("missing"), failure.message)
        XCTAssertEqual(featureFiles(), [])
        harness.closeInput()
        XCTAssertEqual(run.status(), 0)
    }

    func testBadInputsAreRefusedNamingTheField() {
        let good: [String: JSONValue] = ["image": .string("a.jpg"), "maxFeatures": .number(8192),
                                         "sensitivity": .string("high")]
        XCTAssertEqual(try DetectFeaturesInputs(good),
                       DetectFeaturesInputs(image: "a.jpg", maxFeatures: 8192, sensitivity: .high))
        let cases: [(change: (inout [String: JSONValue]) -> Void, field: String)] = [
            ({ $0["colour"] = .bool(true) }, "inputs.colour"),
            ({ $0["image"] = nil }, "inputs.image"),
            ({ $0["image"] = .number(3) }, "inputs.image"),
            ({ $0["image"] = .string("../a.jpg") }, "inputs.image"),
            ({ $0["maxFeatures"] = nil }, "inputs.maxFeatures"),
            ({ $0["maxFeatures"] = .string("100") }, "inputs.maxFeatures"),
            ({ $0["maxFeatures"] = .number(10.5) }, "inputs.maxFeatures"),
            ({ $0["maxFeatures"] = .number(0) }, "inputs.maxFeatures"),
            ({ $0["maxFeatures"] = .number(65_537) }, "inputs.maxFeatures"),
            ({ $0["sensitivity"] = nil }, "inputs.sensitivity"),
            ({ $0["sensitivity"] = .string("extreme") }, "inputs.sensitivity"),
        ]
        for (change, field) in cases {
            var inputs = good
            change(&inputs)
            XCTAssertThrowsError(try DetectFeaturesInputs(inputs), "\(inputs)") { error in
                guard case .failed(let message, let retryable, _) = error as? TaskError else {
                    return XCTFail("\(error)")
                }
                XCTAssertFalse(retryable)
                XCTAssertTrue(message.hasPrefix(field), "\(message) should name \(field)")
            }
        }

        // Through the loop the refusal is the task's failure, and the worker goes on.
        let run = welcomed()
        harness.send(.task(featuresTask("t-6", image: "a.jpg", sensitivity: "extreme")))
        guard case .failure(let failure)? = harness.answer().end else { return XCTFail("no failure") }
        XCTAssertFalse(failure.retryable)
        XCTAssertTrue(failure.message.contains("'normal' or 'high'"), failure.message)
        harness.closeInput()
        XCTAssertEqual(run.status(), 0)
    }

    func testAFlatImageWarnsAndStillGivesAResultWithNoFeatures() throws {
        try addWorkingCopy("wall.png", PixelBuffer(width: 400, height: 300, channels: 3,
                                                   bytes: [UInt8](repeating: 90, count: 400 * 300 * 3)))
        let sink = RecordingSink()
        let task = DetectFeaturesTask(inputs: DetectFeaturesInputs(image: "wall.png", maxFeatures: 100,
                                                                   sensitivity: .normal),
                                      workDirectory: project.work.path)
        let outcome = try task.run(sink)
        XCTAssertEqual(outcome.outputs, ["features/wall.png.sift"])
        XCTAssertEqual(outcome.data, ["features": .number(0), "width": .number(400), "height": .number(300)])
        XCTAssertEqual(sink.warnings.count, 1)
        XCTAssertEqual(sink.warnings.first?.image, "wall.png")
        XCTAssertEqual(sink.warnings.first?.message,
                       "no features found in wall.png; the photo may be blurred or textureless")
        let features = try FeatureSet.read(path: project.work.appendingPathComponent(outcome.outputs[0]).path)
        XCTAssertEqual(features, FeatureSet(width: 400, height: 300, keypoints: [], descriptors: []))
    }

    /// Stopping at each checkpoint ends the task cancelled with no file under either name, and a stale
    /// temporary file from an earlier attempt goes away. A stop asked after "detecting" is seen by the
    /// detection itself, between octaves.
    func testStoppingAtEachCheckpointLeavesNoFile() throws {
        let photo = try ImageReader.decode(path: try Datasets.photo("bundler_kermit", "kermit000.jpg")).pixels
        try addWorkingCopy("k.jpg", photo)
        let folder = project.work.appendingPathComponent("features")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        XCTAssertTrue(FileManager.default.createFile(atPath: folder.appendingPathComponent("k.jpg.sift.partial").path,
                                                     contents: Data("half".utf8)))
        let task = DetectFeaturesTask(inputs: DetectFeaturesInputs(image: "k.jpg", maxFeatures: 200,
                                                                   sensitivity: .normal),
                                      workDirectory: project.work.path)
        for checkpoint in 0..<3 {
            let sink = RecordingSink(stopAfter: checkpoint)
            XCTAssertThrowsError(try task.run(sink)) { XCTAssertEqual($0 as? TaskError, .cancelled) }
            XCTAssertEqual(sink.progress.count, checkpoint)
            XCTAssertEqual(featureFiles(), [], "stopped at checkpoint \(checkpoint)")
        }
        let outcome = try task.run(RecordingSink())
        XCTAssertEqual(outcome.data["features"], .number(200))
        XCTAssertEqual(featureFiles(), ["k.jpg.sift"])
    }
}
