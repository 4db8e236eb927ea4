import Foundation
import ReplicaProtocol
import XCTest

/// The real `replica-worker` executable over real pipes, as the gateway starts it.
final class WorkerProcessTests: XCTestCase {
    /// The built executable, beside the test bundle.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("replica-worker")
    }

    func testTheExecutableShakesHandsAndPreprocessesAPhoto() throws {
        let project = TestProject()
        defer { project.remove() }
        let image = project.add(try Datasets.castle())
        let harness = WorkerHarness()
        defer { harness.tearDown() }
        let process = Process()
        process.executableURL = Self.executable
        process.standardInput = FileHandle(fileDescriptor: harness.workerInput, closeOnDealloc: false)
        process.standardOutput = FileHandle(fileDescriptor: harness.workerOutput, closeOnDealloc: false)
        process.standardError = FileHandle.nullDevice
        try process.run()
        harness.closeWorkerEnds()

        guard case .hello(let hello)? = harness.next() else { return XCTFail("no hello") }
        XCTAssertEqual(hello.pid, Int(process.processIdentifier))
        XCTAssertEqual(hello.capabilities, ["preprocess", "features", "retrieve", "match", "map", "depth", "fuse",
                                            "mesh", "texture", "export"])
        XCTAssertEqual(hello.workerVersion, APIVersion.current)
        harness.send(.welcome(WorkerWelcome()))
        harness.send(.task(project.task("p-1", image: image, maxDimension: 256)))
        guard case .result(let result)? = harness.answer().end else { return XCTFail("no result") }
        XCTAssertEqual(result.outputs, ["images/\(image).jpg", "images/\(image).json"])
        XCTAssertEqual(project.workImages(), ["\(image).jpg", "\(image).json"].sorted())

        harness.closeInput()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0)
    }
}
