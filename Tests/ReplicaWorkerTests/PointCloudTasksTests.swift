import Foundation
import ReplicaProtocol
import ReplicaWorker
import XCTest

/// Point Cloud Generation's tasks where there is little or nothing to work with: their inputs, a photo the
/// model left out, and a fusion without depth maps. The stage on real views is in `ImageAlignmentTests`.
final class PointCloudTasksTests: XCTestCase {
    private var work = ""

    override func setUpWithError() throws {
        work = NSTemporaryDirectory() + "dense-" + UUID().uuidString + "/work"
        try FileManager.default.createDirectory(atPath: work + "/sparse", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: work + "/dense/depth", withIntermediateDirectories: true)
        // A model that placed no photo.
        for name in ["cameras.txt", "images.txt", "points3D.txt"] {
            try "# empty\n".write(toFile: work + "/sparse/" + name, atomically: true, encoding: .utf8)
        }
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: (work as NSString).deletingLastPathComponent)
    }

    func testInputsAreCheckedAndNamed() {
        func refusal(_ kind: TaskKind, _ inputs: [String: JSONValue]) -> String {
            let assignment = TaskAssignment(taskId: "t", kind: kind, workDirectory: work, inputs: inputs)
            do {
                _ = kind == .depth ? try DepthMapTask(assignment).image : "\(try FuseTask(assignment).inputs)"
                return "accepted"
            } catch {
                guard case .failed(let message, let retryable, _) = error else { return "cancelled" }
                XCTAssertFalse(retryable)
                return message
            }
        }
        XCTAssertTrue(refusal(.depth, [:]).contains("inputs.image"))
        XCTAssertTrue(refusal(.depth, ["image": .string("a/b.jpg")]).contains("without a folder"))
        XCTAssertTrue(refusal(.depth, ["image": .string("a.jpg"), "extra": .bool(true)]).contains("inputs.extra"))
        XCTAssertTrue(refusal(.fuse, ["images": .array([.string("a.jpg")])]).contains("inputs.masking"))
        XCTAssertTrue(refusal(.fuse, ["images": .string("a.jpg"), "masking": .bool(false)]).contains("inputs.images"))
        XCTAssertEqual(refusal(.fuse, ["images": .array([]), "masking": .bool(true)]), "accepted")
    }

    func testAPhotoTheModelLeftOutGetsNoDepthMapAndLosesAnOldOne() throws {
        let stale = work + "/" + DepthMapTask.output(for: "a.jpg")
        try Data("a map from an earlier computation".utf8).write(to: URL(fileURLWithPath: stale))
        let outcome = try DepthMapTask(image: "a.jpg", workDirectory: work).run(RecordingSink())
        XCTAssertEqual(outcome.outputs, [])
        XCTAssertEqual(outcome.data["aligned"], .bool(false))
        XCTAssertFalse(FileManager.default.fileExists(atPath: stale))
    }

    func testFusionWithoutADepthMapFailsWithWhatToDo() {
        XCTAssertThrowsError(try FuseTask(inputs: FuseInputs(images: ["a.jpg"], masking: false), workDirectory: work)
            .run(RecordingSink())) { error in
            guard case TaskError.failed(let message, let retryable, _) = error else { return XCTFail("\(error)") }
            XCTAssertFalse(retryable)
            XCTAssertTrue(message.contains("no photo has a depth map"), message)
            XCTAssertTrue(message.contains("compute again"), message)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/dense.ply"))
    }
}
