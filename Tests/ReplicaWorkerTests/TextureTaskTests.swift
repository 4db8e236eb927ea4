import Foundation
import ReplicaProtocol
import ReplicaWorker
import XCTest

/// The texture task's inputs and its refusals; the stage on a reconstructed mesh is in `ImageAlignmentTests`.
final class TextureTaskTests: XCTestCase {
    private var work = ""

    override func setUpWithError() throws {
        work = NSTemporaryDirectory() + "texture-" + UUID().uuidString + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: (work as NSString).deletingLastPathComponent)
    }

    private func refusal(_ inputs: [String: JSONValue]) -> String {
        do {
            _ = try TextureTask(TaskAssignment(taskId: "t", kind: .texture, workDirectory: work, inputs: inputs))
            return "accepted"
        } catch {
            guard case .failed(let message, let retryable, _) = error else { return "cancelled" }
            XCTAssertFalse(retryable)
            return message
        }
    }

    func testInputsAreReadInMapOrderAndCheckedOneByOne() throws {
        let good: [String: JSONValue] = ["maps": .array([.string("normal"), .string("diffuseColor")]),
                                         "dimension": .number(2048), "format": .string("jpeg"),
                                         "jpegQuality": .number(0.5), "maximumPages": .number(3)]
        XCTAssertEqual(refusal(good), "accepted")
        let task = try TextureTask(TaskAssignment(taskId: "t", kind: .texture, workDirectory: work, inputs: good))
        XCTAssertEqual(task.inputs, TextureInputs(maps: [.diffuseColor, .normal], dimension: 2048, maximumPages: 3,
                                                  format: .jpeg, jpegQuality: 0.5))
        let cases: [(String, JSONValue?, String)] = [
            ("maps", .array([]), "inputs.maps"), ("maps", .array([.string("gloss")]), "inputs.maps"),
            ("maps", .array([.string("normal"), .string("normal")]), "inputs.maps"), ("maps", nil, "inputs.maps"),
            ("dimension", .number(1000), "inputs.dimension"), ("dimension", .string("4K"), "inputs.dimension"),
            ("format", .string("webp"), "inputs.format"), ("jpegQuality", .number(1.5), "inputs.jpegQuality"),
            ("maximumPages", .number(0), "inputs.maximumPages"), ("maximumPages", .number(2.5), "inputs.maximumPages"),
            ("extra", .null, "inputs.extra"),
        ]
        for (key, value, expected) in cases {
            var inputs = good
            inputs[key] = value
            let message = refusal(inputs)
            XCTAssertTrue(message.contains(expected), "\(key): \(message)")
        }
    }

    func testAMissingOrDamagedMeshOrModelSaysToComputeAgain() throws {
        let task = TextureTask(inputs: TextureInputs(maps: [.diffuseColor], dimension: 1024), workDirectory: work)
        func failure() -> String {
            do {
                _ = try task.run(RecordingSink())
                return "succeeded"
            } catch {
                guard case .failed(let message, let retryable, _) = error else { return "cancelled" }
                XCTAssertFalse(retryable)
                return message
            }
        }
        XCTAssertTrue(failure().contains("work/mesh.ply"))
        try Data("ply\nformat ascii 1.0\nend_header\n".utf8).write(to: URL(fileURLWithPath: work + "/mesh.ply"))
        let damaged = failure()
        XCTAssertTrue(damaged.contains("damaged") && damaged.contains("compute again"), damaged)
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/" + TextureTask.textured))
    }
}
