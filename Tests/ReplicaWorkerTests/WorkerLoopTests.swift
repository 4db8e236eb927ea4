import Foundation
import ReplicaCore
import ReplicaProtocol
import ReplicaTestSupport
import XCTest
@testable import ReplicaWorker

/// The worker's side of the protocol, driven over pipes in-process: handshake, heartbeats, the ways the loop
/// ends, and tasks the worker must refuse.
final class WorkerLoopTests: XCTestCase {
    private var harness: WorkerHarness!

    override func setUp() { harness = WorkerHarness() }
    override func tearDown() { harness.tearDown() }

    private func welcomed(heartbeatInterval: Double = 60, log: Logger = .silent) -> LoopRun {
        let run = harness.startLoop(heartbeatInterval: heartbeatInterval, log: log)
        XCTAssertEqual(harness.next()?.type, "hello")
        harness.send(.welcome(WorkerWelcome()))
        return run
    }

    func testHelloNamesTheWorkerAndNothingFollowsBeforeTheAnswer() throws {
        let run = harness.startLoop(heartbeatInterval: 0.05)
        guard case .hello(let hello) = harness.next() else { return XCTFail("no hello first") }
        XCTAssertEqual(hello, WorkerHello(protocolVersion: 1, workerVersion: "9.9-test", pid: 4242,
                                          capabilities: ["preprocess", "features", "retrieve", "match", "map", "depth",
                                                         "fuse", "mesh", "texture", "export"]))
        // Heartbeats start only after welcome, whatever their interval.
        XCTAssertNil(harness.next(includingHeartbeats: true, timeout: 0.3))
        harness.closeInput()
        XCTAssertEqual(run.status(), 0)
    }

    func testRejectExitsWith78AndWritesNothingMore() {
        let run = harness.startLoop(heartbeatInterval: 0.05)
        XCTAssertEqual(harness.next()?.type, "hello")
        harness.send(.reject(WorkerReject(reason: "replica-worker 9.9 speaks protocol 2, this speaks 1")))
        XCTAssertEqual(run.status(), WorkerProtocol.rejectedExitStatus)
        XCTAssertTrue(harness.waitForOutputEnd())
        XCTAssertEqual(harness.messages.map(\.type), ["hello"])
    }

    func testAFirstLineOtherThanWelcomeOrRejectIsAProtocolError() {
        let run = harness.startLoop()
        harness.send(.shutdown(WorkerShutdown()))
        XCTAssertEqual(run.status(), WorkerProtocol.protocolErrorExitStatus)
    }

    func testHeartbeatsCountUpWhileIdle() {
        let run = welcomed(heartbeatInterval: 0.05)
        var beats: [WorkerHeartbeat] = []
        while beats.count < 3, case .heartbeat(let beat)? = harness.next(includingHeartbeats: true, timeout: 5) {
            beats.append(beat)
        }
        XCTAssertEqual(beats, (0..<3).map { WorkerHeartbeat(sequence: $0, taskId: nil) })
        harness.closeInput()
        XCTAssertEqual(run.status(), 0)
    }

    func testShutdownExitsWith0AndStopsTheHeartbeats() {
        let run = welcomed(heartbeatInterval: 0.02)
        XCTAssertEqual(harness.next(includingHeartbeats: true)?.type, "heartbeat")
        harness.send(.shutdown(WorkerShutdown(reason: "the gateway is stopping")))
        XCTAssertEqual(run.status(), 0)
        // The loop closed its output before returning: whatever was written is all there will be.
        let written = harness.messages.count
        Thread.sleep(forTimeInterval: 0.1)
        XCTAssertEqual(harness.messages.count, written)
        XCTAssertNil(harness.failure)
    }

    func testTheEndOfInputExitsWith0() {
        let run = welcomed()
        harness.closeInput()
        XCTAssertEqual(run.status(), 0)
        XCTAssertEqual(harness.messages.map(\.type), ["hello"])
    }

    func testTheInputEndingInsideALineIsAProtocolError() {
        let run = welcomed()
        harness.write(Array(#"{"type":"shut"#.utf8))
        harness.closeInput()
        XCTAssertEqual(run.status(), WorkerProtocol.protocolErrorExitStatus)
    }

    func testAGarbageLineExitsWith76AndLogsWhereItWas() {
        let log = CapturingSink()
        let run = welcomed(log: Logger(sink: log))
        harness.write(Array("this is not JSON\n".utf8))
        XCTAssertEqual(run.status(), WorkerProtocol.protocolErrorExitStatus)
        let error = log.lines.first { $0.contains("protocol error") } ?? ""
        XCTAssertTrue(error.contains("line 2") && error.contains("byte 32"), error)
    }

    func testAnUnknownFieldIsAProtocolError() {
        let run = welcomed()
        harness.write(Array(#"{"reason":"x","type":"shutdown","urgent":true}"#.utf8) + [0x0A])
        XCTAssertEqual(run.status(), WorkerProtocol.protocolErrorExitStatus)
    }

    func testASecondTaskWhileOneRunsIsAProtocolError() throws {
        let project = TestProject()
        defer { project.remove() }
        let image = project.add(try Datasets.castle())
        let run = welcomed()
        // Both lines in one write: the reader has the second before any task could have ended.
        harness.write(try GatewayMessage.task(project.task("t-1", image: image, maxDimension: 2000)).encodeLine()
                      + GatewayMessage.task(project.task("t-2", image: image, maxDimension: 2000)).encodeLine())
        XCTAssertEqual(run.status(), WorkerProtocol.protocolErrorExitStatus)
        XCTAssertTrue(harness.waitForOutputEnd())
        XCTAssertFalse(harness.messages.contains { $0.type == "result" || $0.type == "failure" })
        XCTAssertFalse(project.workImages().contains { $0.hasSuffix(".partial") }, "\(project.workImages())")
    }

    func testATaskOfAnotherKindFailsWithoutRetry() {
        let run = welcomed()
        // A kind no worker of this build runs.
        harness.send(.task(TaskAssignment(taskId: "t-9", kind: "teleport", workDirectory: "/nowhere/work",
                                          inputs: [:])))
        guard case .failure(let failure)? = harness.answer().end else { return XCTFail("no failure") }
        XCTAssertEqual(failure.taskId, "t-9")
        XCTAssertFalse(failure.retryable)
        XCTAssertTrue(failure.message.contains("'teleport'"), failure.message)
        harness.send(.shutdown(WorkerShutdown()))
        XCTAssertEqual(run.status(), 0)
    }

    func testInputsThePreprocessTaskDoesNotDefineFailWithoutRetry() {
        let run = welcomed()
        let inputs: [[String: JSONValue]] = [
            ["image": .string("a.jpg")],
            ["image": .string("../a.jpg"), "maxDimension": .number(512)],
            ["image": .string("a.jpg"), "maxDimension": .number(0)],
            ["image": .string("a.jpg"), "maxDimension": .number(512.5)],
            ["image": .string("a.jpg"), "maxDimension": .number(512), "quality": .number(90)],
        ]
        for (index, fields) in inputs.enumerated() {
            harness.send(.task(TaskAssignment(taskId: TaskID("t-\(index)"), kind: .preprocess,
                                              workDirectory: "/nowhere/work", inputs: fields)))
            guard case .failure(let failure)? = harness.answer().end else { return XCTFail("no failure for \(fields)") }
            XCTAssertFalse(failure.retryable)
            XCTAssertTrue(failure.message.contains("inputs."), failure.message)
        }
        harness.closeInput()
        XCTAssertEqual(run.status(), 0)
    }
}
