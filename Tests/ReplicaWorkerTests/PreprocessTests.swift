import Foundation
import ReplicaImageIO
import ReplicaProtocol
import XCTest
@testable import ReplicaWorker

/// The Pre-Processing task on real photos: the working copy, its sidecar, idempotence, bad input and
/// cancellation, both through the worker loop and called directly.
final class PreprocessTests: WorkerTaskTestCase {
    private func sidecar(_ stem: String) throws -> [String: JSONValue] {
        let data = try Data(contentsOf: project.work.appendingPathComponent("images/\(stem).json"))
        return try JSONDecoder().decode([String: JSONValue].self, from: data)
    }

    private func workBytes(_ path: String) throws -> Data {
        try Data(contentsOf: project.work.appendingPathComponent(path))
    }

    func testAPhotoBecomesAWorkingCopyWithASidecarTwiceAlike() throws {
        let original = try Datasets.castle()
        let image = project.add(original)
        let run = welcomed()
        // A stale temporary file from an earlier attempt goes away.
        try FileManager.default.createDirectory(at: project.work.appendingPathComponent("images"),
                                                withIntermediateDirectories: true)
        let stale = project.work.appendingPathComponent("images/\(image).jpg.partial")
        XCTAssertTrue(FileManager.default.createFile(atPath: stale.path, contents: Data("half".utf8)))

        harness.send(.task(project.task("t-1", image: image, maxDimension: 512)))
        // A cancel for another task crossed that task's end on the pipes, and is ignored.
        harness.send(.cancel(TaskCancel(taskId: "t-0")))
        let first = harness.answer()
        guard case .result(let result)? = first.end else { return XCTFail("no result: \(first.lines)") }
        XCTAssertEqual(result.outputs, ["images/\(image).jpg", "images/\(image).json"])
        XCTAssertEqual(project.workImages(), ["\(image).jpg", "\(image).json"].sorted())

        let fractions = first.lines.compactMap { line -> Double? in
            if case .progress(let progress) = line { return progress.fraction } else { return nil }
        }
        XCTAssertGreaterThanOrEqual(fractions.count, 3)
        XCTAssertEqual(fractions, fractions.sorted())
        XCTAssertEqual(fractions.last, 1)

        // The working copy: the longest side at the working size, the aspect ratio kept.
        let copy = try ImageReader.decode(path: project.work.appendingPathComponent(result.outputs[0]).path)
        XCTAssertEqual(copy.format, .jpeg)
        XCTAssertEqual(copy.pixels.width, 512)
        XCTAssertEqual(copy.pixels.height, Int((2128.0 * 512 / 2832).rounded()))

        // The sidecar agrees with the photo's own EXIF and with the result.
        let photo = try ImageReader.decode(path: original)
        let expectedPrior = FocalLengthPrior.focalLengthPixels(for: photo.metadata, imageWidth: copy.pixels.width,
                                                               imageHeight: copy.pixels.height)
        let facts = try sidecar(image)
        XCTAssertEqual(facts["image"], .string(image))
        XCTAssertEqual(facts["width"], .number(512))
        XCTAssertEqual(facts["height"], .number(Double(copy.pixels.height)))
        XCTAssertEqual(facts["originalWidth"], .number(2832))
        XCTAssertEqual(facts["originalHeight"], .number(2128))
        XCTAssertEqual(facts["maxDimension"], .number(512))
        XCTAssertEqual(facts["orientation"], .number(Double(photo.metadata.appliedOrientation)))
        XCTAssertEqual(facts["make"], photo.metadata.make.map(JSONValue.string) ?? .null)
        XCTAssertEqual(facts["model"], photo.metadata.model.map(JSONValue.string) ?? .null)
        XCTAssertEqual(facts["focalLengthMillimetres"],
                       photo.metadata.focalLengthMillimetres.map(JSONValue.number) ?? .null)
        XCTAssertEqual(facts["focalPixels"], expectedPrior.pixels.map(JSONValue.number) ?? .null)
        XCTAssertNotEqual(facts["focalSource"], .string("none"), "the castle's camera gives a prior")
        for key in ["focalPixels", "focalSource", "width", "height", "originalWidth", "originalHeight"] {
            XCTAssertEqual(result.data?[key], facts[key], key)
        }

        // A second run replaces the outputs with equal ones.
        let jpeg = try workBytes(result.outputs[0]), json = try workBytes(result.outputs[1])
        harness.send(.task(project.task("t-2", image: image, maxDimension: 512)))
        guard case .result(let again)? = harness.answer().end else { return XCTFail("no second result") }
        XCTAssertEqual(again.outputs, result.outputs)
        // Equal but for the time each run took.
        XCTAssertEqual(again.data?.filter { $0.key != "seconds" }, result.data?.filter { $0.key != "seconds" })
        XCTAssertGreaterThan(again.data?["seconds"].flatMap { if case .number(let n) = $0 { n } else { nil } } ?? 0, 0)
        XCTAssertEqual(try workBytes(result.outputs[0]), jpeg)
        XCTAssertEqual(try workBytes(result.outputs[1]), json)
        XCTAssertEqual(project.workImages(), ["\(image).jpg", "\(image).json"].sorted())

        harness.send(.shutdown(WorkerShutdown()))
        XCTAssertEqual(run.status(), 0)
    }

    func testAPhotoWithoutExifKeepsItsSizeAndWarns() throws {
        let image = project.add(try Datasets.temple())
        let sink = RecordingSink()
        let task = PreprocessTask(inputs: PreprocessInputs(image: image, maxDimension: 2048),
                                  workDirectory: project.work.path)
        let outcome = try task.run(sink)
        XCTAssertEqual(outcome.outputs, ["images/\(image).jpg", "images/\(image).json"])
        XCTAssertEqual(outcome.data["width"], .number(640))
        XCTAssertEqual(outcome.data["height"], .number(480))
        XCTAssertEqual(outcome.data["focalPixels"], .null)
        XCTAssertEqual(outcome.data["focalSource"], .string("none"))
        XCTAssertEqual(sink.warnings.map(\.image), [image])
        XCTAssertEqual(sink.progress.map(\.message), ["decoding", "resizing", "writing", "renaming", "done"])
        let facts = try sidecar(image)
        XCTAssertEqual(facts["format"], .string("png"))
        if case .string(let note)? = facts["focalNote"] { XCTAssertFalse(note.isEmpty) } else { XCTFail("no note") }
    }

    func testAFileThatIsNotAPhotoFailsWithoutRetryNamingIt() {
        project.add(name: "notes.jpg", bytes: Array("shopping list: flour, eggs\n".utf8))
        let run = welcomed()
        harness.send(.task(project.task("t-3", image: "notes.jpg", maxDimension: 512)))
        guard case .failure(let failure)? = harness.answer().end else { return XCTFail("no failure") }
        XCTAssertEqual(failure.taskId, "t-3")
        XCTAssertEqual(failure.image, "notes.jpg")
        XCTAssertFalse(failure.retryable)
        XCTAssertTrue(failure.message.contains("notes.jpg") && failure.message.contains("not a supported image"),
                      failure.message)
        XCTAssertFalse(failure.message.contains(project.root.path), "the message names the image, not a path")
        XCTAssertEqual(project.workImages(), [])
        harness.closeInput()
        XCTAssertEqual(run.status(), 0)
    }

    func testAMissingPhotoFailsAsRetryable() throws {
        let task = PreprocessTask(inputs: PreprocessInputs(image: "gone.jpg", maxDimension: 512),
                                  workDirectory: project.work.path)
        XCTAssertThrowsError(try task.run(RecordingSink())) { error in
            guard case .failed(let message, let retryable, let image) = error as? TaskError else {
                return XCTFail("\(error)")
            }
            XCTAssertTrue(retryable)
            XCTAssertEqual(image, "gone.jpg")
            XCTAssertTrue(message.contains("gone.jpg"), message)
        }
    }

    /// Stopping at each checkpoint in turn, including the last one after both temporary files were
    /// written: the task ends cancelled and leaves nothing behind, under either name.
    func testStoppingAtEachCheckpointLeavesNoFiles() throws {
        let image = project.add(try Datasets.temple())
        let task = PreprocessTask(inputs: PreprocessInputs(image: image, maxDimension: 320),
                                  workDirectory: project.work.path)
        for checkpoint in 0..<4 {
            let sink = RecordingSink(stopAfter: checkpoint)
            XCTAssertThrowsError(try task.run(sink)) { XCTAssertEqual($0 as? TaskError, .cancelled) }
            XCTAssertEqual(sink.progress.count, checkpoint)
            XCTAssertEqual(project.workImages(), [], "stopped at checkpoint \(checkpoint)")
        }
    }

    /// Through the loop the cancel races the task, so either end is right, but exactly one must come, and
    /// the worker must be idle and clean afterwards.
    func testCancelEndsTheTaskOnceAndLeavesTheWorkerIdle() throws {
        let image = project.add(try Datasets.castle())
        let run = welcomed()
        // One write: the cancel arrives before the decode is done, and mostly before the task starts.
        harness.write(try GatewayMessage.task(project.task("t-4", image: image, maxDimension: 2000)).encodeLine()
                      + GatewayMessage.cancel(TaskCancel(taskId: "t-4")).encodeLine())
        let ended = harness.answer()
        switch ended.end {
        case .failure(let failure)?:
            XCTAssertFalse(failure.retryable)
            XCTAssertEqual(failure.message, "the task was cancelled")
            XCTAssertEqual(project.workImages(), [])
        case .result(let result)?:
            XCTAssertEqual(project.workImages(), result.outputs.map { String($0.dropFirst("images/".count)) })
        default: XCTFail("no end: \(ended.lines)")
        }
        // Nothing more about t-4: the next line about a task is the next task's.
        harness.send(.task(project.task("t-5", image: image, maxDimension: 256)))
        let next = harness.answer()
        XCTAssertTrue(next.lines.allSatisfy { $0.taskID == "t-5" }, "\(next.lines)")
        XCTAssertEqual(next.end?.type, "result")
        harness.closeInput()
        XCTAssertEqual(run.status(), 0)
    }

    /// Shutdown while a task runs: the worker stops it, removes its temporary files and writes no answer.
    func testShutdownDuringATaskWritesNoAnswer() throws {
        let image = project.add(try Datasets.castle())
        let run = welcomed()
        harness.write(try GatewayMessage.task(project.task("t-6", image: image, maxDimension: 2000)).encodeLine()
                      + GatewayMessage.shutdown(WorkerShutdown()).encodeLine())
        XCTAssertEqual(run.status(), 0)
        XCTAssertTrue(harness.waitForOutputEnd())
        XCTAssertFalse(harness.messages.contains { $0.type == "result" || $0.type == "failure" })
        XCTAssertFalse(project.workImages().contains { $0.hasSuffix(".partial") }, "\(project.workImages())")
    }
}

extension WorkerMessage {
    /// The task a line is about; nil for `hello` and idle heartbeats.
    var taskID: TaskID? {
        switch self {
        case .hello: return nil
        case .progress(let progress): return progress.taskId
        case .warning(let warning): return warning.taskId
        case .result(let result): return result.taskId
        case .failure(let failure): return failure.taskId
        case .heartbeat(let beat): return beat.taskId
        }
    }
}
