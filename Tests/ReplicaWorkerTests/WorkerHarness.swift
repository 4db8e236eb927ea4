import Foundation
import ReplicaCore
import ReplicaProtocol
import ReplicaTestSupport
import XCTest
@testable import ReplicaWorker

#if canImport(Glibc)
import Glibc
#endif

/// Plays the gateway against a `WorkerLoop` or a `replica-worker` process over two pipes: writes gateway
/// lines, and reads the worker's lines on a thread of its own, as the gateway would.
final class WorkerHarness: @unchecked Sendable {
    /// The gateway's ends: it writes tasks to `toWorker` and reads answers from `fromWorker`.
    private let toWorker: Int32
    private let fromWorker: Int32
    private let condition = NSCondition()
    private var received: [WorkerMessage] = []
    private var cursor = 0
    private var readerFailure: String?
    private var outputEnded = false
    private var inputClosed = false
    /// Whether the worker's ends are still this harness's to close: no loop or process took them.
    private var holdsWorkerEnds = true

    /// The worker's ends, to hand to a `WorkerLoop` or a child process.
    let workerInput: Int32
    let workerOutput: Int32

    init() {
        signal(SIGPIPE, SIG_IGN)
        var down: [Int32] = [0, 0], up: [Int32] = [0, 0]
        precondition(pipe(&down) == 0 && pipe(&up) == 0, "cannot make pipes")
        (workerInput, toWorker) = (down[0], down[1])
        (fromWorker, workerOutput) = (up[0], up[1])
        // A child process must not inherit the gateway's ends, or its input would never end.
        for descriptor in [toWorker, fromWorker] { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        let thread = Thread { [self] in readLines() }
        thread.name = "test-gateway-reader"
        thread.start()
    }

    // MARK: - Writing

    func send(_ message: GatewayMessage) {
        write(try! message.encodeLine())
    }

    /// Raw bytes, for lines the protocol refuses; several lines in one call arrive in one `write(2)`.
    func write(_ bytes: [UInt8]) {
        let count = bytes.withUnsafeBytes { Glibc.write(toWorker, $0.baseAddress!, $0.count) }
        precondition(count == bytes.count, "short write to the worker")
    }

    /// The end of the worker's input, as when the gateway exits.
    func closeInput() {
        condition.lock(); defer { condition.unlock() }
        guard !inputClosed else { return }
        inputClosed = true
        close(toWorker)
    }

    // MARK: - Reading

    private func readLines() {
        var reader = JSONLineReader()
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fromWorker, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count <= 0 { break }
            reader.feed(chunk[0..<count])
            do {
                while let line = try reader.nextLine() { deliver(try WorkerMessage.decode(line)) }
            } catch {
                fail("\(error)")
                return
            }
        }
        do { try reader.finish() } catch { fail("\(error)") }
        condition.lock(); outputEnded = true; condition.broadcast(); condition.unlock()
    }

    private func deliver(_ message: WorkerMessage) {
        condition.lock(); received.append(message); condition.broadcast(); condition.unlock()
    }

    private func fail(_ why: String) {
        condition.lock(); readerFailure = why; outputEnded = true; condition.broadcast(); condition.unlock()
    }

    /// Every line the worker wrote so far.
    var messages: [WorkerMessage] {
        condition.lock(); defer { condition.unlock() }
        return received
    }

    /// Why the worker's output could not be read, if it could not.
    var failure: String? {
        condition.lock(); defer { condition.unlock() }
        return readerFailure
    }

    /// The next line not yet returned, heartbeats skipped unless asked for; nil when none comes in time.
    func next(includingHeartbeats: Bool = false, timeout: Double = 10) -> WorkerMessage? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock(); defer { condition.unlock() }
        while true {
            while cursor < received.count {
                let message = received[cursor]
                cursor += 1
                if includingHeartbeats || message.type != "heartbeat" { return message }
            }
            if outputEnded || !condition.wait(until: deadline) { return nil }
        }
    }

    /// Lines up to and including the task's `result` or `failure`, heartbeats skipped.
    func answer(timeout: Double = 10) -> (lines: [WorkerMessage], end: WorkerMessage?) {
        var lines: [WorkerMessage] = []
        while let message = next(timeout: timeout) {
            lines.append(message)
            if message.type == "result" || message.type == "failure" { return (lines, message) }
        }
        return (lines, nil)
    }

    /// Waits until the worker's output ends (its write end closed everywhere).
    func waitForOutputEnd(timeout: Double = 10) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock(); defer { condition.unlock() }
        while !outputEnded { if !condition.wait(until: deadline) { return false } }
        return true
    }

    // MARK: - An in-process loop

    /// Runs a loop on the worker's ends; the returned semaphore is signalled with `status` set when it ends.
    func startLoop(heartbeatInterval: Double = 60, log: Logger = .silent) -> LoopRun {
        let loop = WorkerLoop(input: workerInput, output: workerOutput, heartbeatInterval: heartbeatInterval,
                              workerVersion: "9.9-test", pid: 4242, log: log)
        let run = LoopRun()
        holdsWorkerEnds = false
        let thread = Thread { [self] in
            let status = loop.run()
            // The loop has joined its threads, so the worker's ends are no one's any more.
            close(workerOutput)
            close(workerInput)
            run.finish(status)
        }
        thread.start()
        return run
    }

    /// Closes the worker's ends here once a child process holds its own copies.
    func closeWorkerEnds() {
        holdsWorkerEnds = false
        close(workerInput)
        close(workerOutput)
    }

    /// Ends the test's side: the worker's input, then (once its output ended) the gateway's read end.
    func tearDown() {
        if holdsWorkerEnds { closeWorkerEnds() }
        closeInput()
        if waitForOutputEnd() { close(fromWorker) }
    }
}

/// The exit status of a loop running on another thread.
final class LoopRun: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var value: Int32?

    func finish(_ status: Int32) {
        lock.lock(); value = status; lock.unlock()
        done.signal()
    }

    /// The status, once the loop returned within `timeout` seconds; nil if it still runs.
    func status(timeout: Double = 10) -> Int32? {
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        done.signal()
        lock.lock(); defer { lock.unlock() }
        return value
    }
}

/// A project folder in the temporary directory: `images/` with the given photos linked in, and `work/`.
struct TestProject {
    let root: URL
    var images: URL { root.appendingPathComponent("images") }
    var work: URL { root.appendingPathComponent("work") }

    init() {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("replica-worker-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: root.appendingPathComponent("images"),
                                                 withIntermediateDirectories: true)
        try! FileManager.default.createDirectory(at: root.appendingPathComponent("work"),
                                                 withIntermediateDirectories: true)
    }

    /// Links a photo from elsewhere into `images/` under its own name; returns that name.
    @discardableResult
    func add(_ path: String) -> String {
        let name = URL(fileURLWithPath: path).lastPathComponent
        try! FileManager.default.createSymbolicLink(atPath: images.appendingPathComponent(name).path,
                                                    withDestinationPath: path)
        return name
    }

    /// Writes `bytes` as `images/<name>`.
    func add(name: String, bytes: [UInt8]) {
        precondition(FileManager.default.createFile(atPath: images.appendingPathComponent(name).path,
                                                    contents: Data(bytes)), "cannot write a test image")
    }

    /// The names in `work/images/`, sorted.
    func workImages() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: work.appendingPathComponent("images").path)) ?? [])
            .sorted()
    }

    func task(_ id: TaskID, image: String, maxDimension: Int) -> TaskAssignment {
        TaskAssignment(taskId: id, kind: .preprocess, workDirectory: work.path,
                       inputs: ["image": .string(image), "maxDimension": .number(Double(maxDimension))])
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}

/// The shared photo sets, `../shared/datasets` from the package root.
enum Datasets {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets")

    /// A photo of a set, by folder and name; skips the test when it is not on this machine.
    static func photo(_ folder: String, _ name: String) throws -> String {
        let path = root.appendingPathComponent(folder).appendingPathComponent(name).path
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("the shared photo \(path) is not on this machine")
        }
        return path
    }

    /// A 2832×2128 JPEG from a Kodak camera, with EXIF.
    static func castle() throws -> String { try photo("sceaux_castle/images", "100_7100.JPG") }
    /// A 640×480 PNG without EXIF.
    static func temple() throws -> String { try photo("middlebury_templeSparseRing", "templeSR0001.png") }
}

/// A sink that records what a task reports, and asks it to stop after a given number of progress reports.
final class RecordingSink: TaskSink {
    var progress: [(fraction: Double, message: String)] = []
    var warnings: [(message: String, image: String?)] = []
    /// Stop is asked once this many progress reports were made; nil: never.
    var stopAfter: Int?

    init(stopAfter: Int? = nil) { self.stopAfter = stopAfter }

    func progress(_ fraction: Double, _ message: String) { progress.append((fraction, message)) }
    func warning(_ message: String, image: String?) { warnings.append((message, image)) }
    var shouldStop: Bool { stopAfter.map { progress.count >= $0 } ?? false }
}

/// A test of one task runner: a harness playing the gateway and a project folder, made fresh for each test.
class WorkerTaskTestCase: XCTestCase {
    var harness: WorkerHarness!
    var project: TestProject!

    override func setUp() {
        harness = WorkerHarness()
        project = TestProject()
    }

    override func tearDown() {
        harness.tearDown()
        project.remove()
    }

    /// A worker loop past its handshake.
    func welcomed() -> LoopRun {
        let run = harness.startLoop(heartbeatInterval: 0.1)
        XCTAssertEqual(harness.next()?.type, "hello")
        harness.send(.welcome(WorkerWelcome()))
        return run
    }
}
