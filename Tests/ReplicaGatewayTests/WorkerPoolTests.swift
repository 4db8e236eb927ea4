import CLibUV
import Foundation
import ReplicaCore
import ReplicaImageIO
import ReplicaProtocol
import XCTest
@testable import ReplicaGateway

/// The gateway's worker pool against `Fixtures/fake-worker.py`, which misbehaves on request, and against the
/// real `replica-worker`. Every misbehaviour test ends with a restarted worker running a task to its result.
final class WorkerPoolTests: XCTestCase {
    // MARK: - Options

    func testOptionsNameTheFieldThatMakesNoSense() throws {
        let valid = WorkerPoolOptions(command: ["replica-worker"], count: 2, logDirectory: "/tmp/logs")
        XCTAssertNoThrow(try valid.validate())
        let broken: [(String, (inout WorkerPoolOptions) -> Void)] = [
            ("command", { $0.command = [] }), ("command", { $0.command = [""] }),
            ("count", { $0.count = 0 }), ("count", { $0.count = 1025 }),
            ("logDirectory", { $0.logDirectory = "" }), ("logFileLimit", { $0.logFileLimit = 100 }),
            ("helloTimeout", { $0.helloTimeout = 0 }), ("silenceTimeout", { $0.silenceTimeout = .nan }),
            ("terminateGrace", { $0.terminateGrace = 2 }), ("terminateGrace", { $0.terminateGrace = 0 }),
            ("shutdownGrace", { $0.shutdownGrace = -1 }), ("restartDelay", { $0.restartDelay = 0 }),
            ("maximumRestartDelay", { $0.maximumRestartDelay = 0.1 }),
            ("environment", { $0.environment = ["A=B": "1"] }),
        ]
        for (field, breakIt) in broken {
            var options = valid
            breakIt(&options)
            XCTAssertThrowsError(try options.validate(), field) { error in
                XCTAssertTrue("\(error)".contains(field), "\(error) does not name \(field)")
            }
        }
    }

    // MARK: - Workers that behave

    func testWorkersShakeHandsRunTasksAndInheritNothingOfTheGateway() throws {
        let harness = PoolHarness(modes: ["ok"], count: 2)
        defer { harness.stop() }
        let descriptorsBefore = PoolHarness.pipesAndSockets(of: getpid())
        // What a parent might leave open without close-on-exec: the pool must not hand it on.
        let inheritedMarker = NSTemporaryDirectory() + "pool-inherited-\(UUID().uuidString)"
        let inherited = open(inheritedMarker, O_WRONLY | O_CREAT, 0o600)
        XCTAssertGreaterThan(inherited, 2)
        defer { close(inherited); unlink(inheritedMarker) }
        harness.start()
        XCTAssertTrue(harness.run { harness.pool.idleWorkers(for: "fake-echo") == 2 })
        let pids = harness.pool.processIDs
        XCTAssertEqual(Set(pids).count, 2)
        for pid in pids {
            XCTAssertEqual(getpgid(pid), pid, "each worker leads a process group of its own")
            XCTAssertEqual(getsid(pid), pid, "each worker is a session of its own")
        }
        // A kind these workers do not announce.
        XCTAssertEqual(harness.pool.idleWorkers(for: "unheard-of"), 0)
        XCTAssertFalse(harness.pool.dispatch(harness.task("t-0", kind: "unheard-of")))
        let gatewayEnds = PoolHarness.pipesAndSockets(of: getpid()).subtracting(descriptorsBefore)
        XCTAssertGreaterThanOrEqual(gatewayEnds.count, 6, "three pipe ends per worker")

        let inputs: [String: JSONValue] = ["image": .string("a.jpg"), "number": .number(7)]
        XCTAssertTrue(harness.pool.dispatch(harness.task("t-1", inputs: inputs)))
        XCTAssertTrue(harness.pool.dispatch(harness.task("t-2", inputs: inputs)))
        XCTAssertEqual(harness.pool.idleWorkers(for: "fake-echo"), 0)
        XCTAssertFalse(harness.pool.dispatch(harness.task("t-3")), "no worker is idle")
        XCTAssertTrue(harness.run { harness.events.end(of: "t-1") != nil && harness.events.end(of: "t-2") != nil })

        for id: TaskID in ["t-1", "t-2"] {
            guard case .result(let result)? = harness.events.end(of: id) else { return XCTFail("no result for \(id)") }
            XCTAssertEqual(result.data?["echo"], .object(inputs))
            XCTAssertTrue(harness.events.progress.contains(TaskProgress(taskId: id, fraction: 0.5, message: "halfway")))
            // The second worker was spawned while the first one's pipes were open: none may have leaked into it.
            guard case .array(let descriptors)? = result.data?["descriptors"] else { return XCTFail("no descriptors") }
            for case .string(let target) in descriptors {
                XCTAssertFalse(gatewayEnds.contains(target), "\(id)'s worker inherited the gateway's \(target)")
                XCTAssertFalse(target.hasPrefix(harness.logDirectory), "\(id)'s worker inherited \(target)")
                XCTAssertNotEqual(target, inheritedMarker, "\(id)'s worker inherited what the gateway's parent left")
            }
        }
        XCTAssertEqual(harness.events.idleReports, 4, "two after welcome, two after the tasks")
        XCTAssertTrue(harness.events.eachEndPrecedesTheNextIdleReport())
        XCTAssertEqual(harness.log.lines(containing: "worker spawned").count, 2)
        let capabilities = "worker.capabilities=preprocess,features,retrieve,match,map,depth,fuse,mesh,texture,"
            + "export,fake-echo"
        XCTAssertEqual(harness.log.lines(containing: capabilities).count, 2)
    }

    func testLinesWrittenInPiecesAreReassembled() throws {
        let harness = PoolHarness(modes: ["split"])
        defer { harness.stop() }
        harness.start()
        guard case .result(let result)? = harness.runTask("t-1", inputs: ["piece": .string("of cake")]) else {
            return XCTFail("no result from a worker that writes its lines in pieces")
        }
        XCTAssertEqual(result.data?["echo"], .object(["piece": .string("of cake")]))
        XCTAssertEqual(harness.events.progress.map(\.taskId), ["t-1"])
    }

    // MARK: - Workers that misbehave

    func testACrashMidwayLosesTheTaskAndTheSlotRestarts() throws {
        let harness = PoolHarness(modes: ["crash-midway", "crash-midway", "ok"])
        defer { harness.stop() }
        harness.start()
        XCTAssertTrue(harness.run { harness.pool.processIDs.count == 1 })
        let firstPid = harness.pool.processIDs[0]
        XCTAssertEqual(harness.runTask("t-1"), .lost("replica-worker 1 (pid \(firstPid)) exited with status 3"))
        XCTAssertEqual(harness.events.progress.map(\.taskId), ["t-1"], "progress before the crash was passed on")

        XCTAssertTrue(harness.run { harness.pool.idleWorkers(for: "fake-echo") == 1 })
        let secondPid = harness.pool.processIDs[0]
        XCTAssertEqual(harness.runTask("t-2", inputs: ["crash": .string("signal")]),
                       .lost("replica-worker 1 (pid \(secondPid)) was killed by signal 9"))

        guard case .result? = harness.runTask("t-3") else { return XCTFail("the restarted worker ran no task") }
        XCTAssertEqual(harness.log.lines(containing: "warning \"worker exited\"").count, 2)
        XCTAssertEqual(harness.log.lines(containing: "task lost with its worker").count, 2)
    }

    func testAnAnswerWrittenJustBeforeTheExitStillCounts() throws {
        // The exit's callback and the last bytes of stdout race; the slot is gone only after both.
        let harness = PoolHarness(modes: ["answer-then-exit", "ok"])
        defer { harness.stop() }
        harness.start()
        XCTAssertTrue(harness.run { harness.pool.processIDs.count == 1 })
        let firstPid = harness.pool.processIDs[0]
        guard case .result? = harness.runTask("t-1") else {
            return XCTFail("the answer before the exit was lost: \(String(describing: harness.events.end(of: "t-1")))")
        }
        // Until its exit is seen the worker looks idle; the next task waits for its successor.
        XCTAssertTrue(harness.run { harness.pool.processIDs.count == 1 && harness.pool.processIDs[0] != firstPid })
        guard case .result? = harness.runTask("t-2") else { return XCTFail("the restarted worker ran no task") }
        XCTAssertEqual(harness.log.lines(containing: "worker.exit=\"status 3\"").count, 1)
        XCTAssertEqual(harness.log.lines(containing: "restart.delay_s=0.05").count, 1, "the answer reset the backoff")
    }

    func testASilentWorkerIsKilledAsHungAndReplaced() throws {
        let harness = PoolHarness(modes: ["hang", "ok"])
        defer { harness.stop() }
        harness.start()
        let started = Date()
        guard case .lost(let reason)? = harness.runTask("t-1") else {
            return XCTFail("the hung worker's task was not lost")
        }
        XCTAssertTrue(reason.contains("was killed as hung: no line for 1.0 s"), reason)
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(started), 0.9, "killed before its silence was over")
        XCTAssertEqual(harness.log.lines(containing: "worker hung").count, 1)
        guard case .result? = harness.runTask("t-2") else { return XCTFail("the restarted worker ran no task") }
    }

    func testProtocolErrorsKillTheWorkerAndLoseItsTask() throws {
        let harness = PoolHarness(modes: ["garbage", "other-task", "ok"])
        defer { harness.stop() }
        harness.start()
        guard case .lost(let garbage)? = harness.runTask("t-1") else { return XCTFail("garbage did not lose the task") }
        XCTAssertTrue(garbage.contains("was killed after a protocol error"), garbage)
        XCTAssertTrue(garbage.contains("not valid JSON"), garbage)

        guard case .lost(let stranger)? = harness.runTask("t-2") else {
            return XCTFail("a line about another task did not lose the task")
        }
        XCTAssertTrue(stranger.contains("about task t-2-other, which is not its current task (t-2)"), stranger)

        guard case .result? = harness.runTask("t-3") else { return XCTFail("the restarted worker ran no task") }
        let errors = harness.log.lines(containing: "protocol error from a worker")
        XCTAssertEqual(errors.count, 2)
        XCTAssertTrue(errors.allSatisfy { $0.contains("worker.pid=") && $0.contains("error=") }, "\(errors)")
    }

    func testAWorkerFloodingItsPipeIsKilledAtTheLineLimitAndReplaced() throws {
        let harness = PoolHarness(modes: ["stdout-flood", "ok"])
        defer { harness.stop() }
        harness.start()
        guard case .lost(let reason)? = harness.runTask("t-1") else {
            return XCTFail("the flood did not lose the task")
        }
        XCTAssertTrue(reason.contains("was killed after a protocol error"), reason)
        XCTAssertTrue(reason.contains("longer than \(WorkerProtocol.maximumLineLength) bytes"), reason)
        guard case .result? = harness.runTask("t-2") else { return XCTFail("the restarted worker ran no task") }
    }

    func testAWorkerOverItsMemoryLimitIsKilledByTheKernelAndReplaced() throws {
        let cgroup = try MemoryCgroup(megabytes: 96)
        defer { cgroup.remove() }
        // Each worker moves itself into the cgroup, then becomes the fake, as a `--worker-command` wrapper would.
        let harness = PoolHarness(modes: ["memory-hog", "ok"], prefix: [
            "/bin/sh", "-c", "echo $$ > \(cgroup.path)/cgroup.procs && exec \"$0\" \"$@\"",
        ]) { $0.silenceTimeout = 10 }
        defer { harness.stop() }
        harness.start()
        XCTAssertTrue(harness.run { harness.pool.processIDs.count == 1 })
        let pid = harness.pool.processIDs[0]
        XCTAssertEqual(harness.runTask("t-1", inputs: ["megabytes": .number(512)], timeout: 30),
                       .lost("replica-worker 1 (pid \(pid)) was killed by signal 9"))
        XCTAssertGreaterThanOrEqual(cgroup.kills, 1, "the kernel's OOM killer did not act in the cgroup")
        guard case .result? = harness.runTask("t-2", inputs: ["megabytes": .number(8)], timeout: 30) else {
            return XCTFail("the restarted worker ran no task")
        }
    }

    func testAWorkerOfAnotherProtocolVersionIsRejectedAndReportedOnce() throws {
        let harness = PoolHarness(modes: ["wrong-version", "wrong-version", "ok"]) { $0.maximumRestartDelay = 0.3 }
        defer { harness.stop() }
        harness.start()
        XCTAssertTrue(harness.run { harness.events.cannotStart.count == 1 })
        let reason = harness.events.cannotStart[0]
        XCTAssertTrue(reason.contains("exited with status 78 after its hello was rejected: replica-worker 2.0 speaks "
                                      + "protocol 2, this replica-link speaks 1"), reason)
        guard case .result? = harness.runTask("t-1") else { return XCTFail("the fixed worker ran no task") }

        XCTAssertEqual(harness.events.cannotStart.count, 1, "one episode, said once")
        XCTAssertEqual(harness.log.lines(containing: "error \"worker rejected:").count, 1)
        XCTAssertEqual(harness.log.lines(containing: "info \"worker rejected\"").count, 1)
        XCTAssertEqual(harness.log.lines(containing: "worker.exit=\"status 78\"").count, 2)
        XCTAssertEqual(harness.log.lines(containing: "restart.delay_s=0.3").count, 2, "exit 78 waits the capped delay")
        // The fake exits 78 only when the reject it read names both versions; its stderr says it did.
        XCTAssertEqual(harness.workerLog(1).components(separatedBy: "rejected as expected").count - 1, 2)
    }

    func testFailedStartsBackOffAndAreReportedOnce() throws {
        let harness = PoolHarness(modes: ["silent", "exit-early", "exit-early", "ok"]) {
            $0.helloTimeout = 0.5
            $0.maximumRestartDelay = 1
        }
        defer { harness.stop() }
        harness.start()
        guard case .result? = harness.runTask("t-1", timeout: 8) else { return XCTFail("no worker started") }
        XCTAssertEqual(harness.events.cannotStart.count, 1)
        XCTAssertTrue(harness.events.cannotStart[0].contains("was killed: no hello within 0.5 s"),
                      harness.events.cannotStart[0])
        let delays = harness.log.lines(containing: "restarting worker").compactMap { line in
            line.components(separatedBy: "restart.delay_s=").last?.components(separatedBy: " ").first
        }
        XCTAssertEqual(delays, ["0.05", "0.1", "0.2"])
    }

    func testAProgramThatCannotBeSpawnedIsReportedOnceAndRetried() throws {
        let harness = PoolHarness(modes: [], count: 2, command: ["/nonexistent/replica-worker"]) {
            $0.restartDelay = 0.02
            $0.maximumRestartDelay = 0.05
        }
        defer { harness.stop() }
        harness.start()
        XCTAssertTrue(harness.run { harness.log.lines(containing: "cannot start a worker").count >= 8 })
        XCTAssertEqual(harness.events.cannotStart.count, 1)
        XCTAssertTrue(harness.events.cannotStart[0].contains("ENOENT"), harness.events.cannotStart[0])
        XCTAssertEqual(harness.pool.processIDs, [])
        XCTAssertEqual(harness.pool.idleWorkers(for: "fake-echo"), 0)
    }

    // MARK: - Stopping

    func testTerminateKillsTheWholeProcessGroupAndRestartsAtOnce() throws {
        // A restart delay far beyond the test's waits: a terminated slot must not back off.
        let harness = PoolHarness(modes: ["spawn-child", "ok"]) {
            $0.restartDelay = 20
            $0.maximumRestartDelay = 20
        }
        defer { harness.stop() }
        harness.start()
        let pidFile = harness.directory.appendingPathComponent("child.pid").path
        XCTAssertTrue(harness.run { harness.pool.idleWorkers(for: "fake-echo") == 1 })
        let workerPid = harness.pool.processIDs[0]
        XCTAssertTrue(harness.pool.dispatch(harness.task("t-1", inputs: ["pidFile": .string(pidFile),
                                                                         "sleep": .number(30)])))
        XCTAssertTrue(harness.run { FileManager.default.fileExists(atPath: pidFile) })
        let childPid = try XCTUnwrap(Int32(try String(contentsOfFile: pidFile, encoding: .utf8)))
        XCTAssertEqual(getpgid(childPid), workerPid, "the child is in the worker's group")

        let terminated = Date()
        harness.pool.terminate(taskId: "t-1")
        XCTAssertTrue(harness.run { harness.events.end(of: "t-1") != nil })
        XCTAssertEqual(harness.events.end(of: "t-1"), .stopped)
        XCTAssertLessThan(Date().timeIntervalSince(terminated), 2)
        XCTAssertTrue(PoolHarness.isGone(workerPid))
        XCTAssertTrue(PoolHarness.isGone(childPid), "the worker's child outlived the terminate")

        guard case .result? = harness.runTask("t-2", timeout: 3) else { return XCTFail("the slot did not restart") }
        XCTAssertLessThan(Date().timeIntervalSince(terminated), 5)
        let pids = harness.pool.processIDs
        harness.pool.terminate(taskId: "t-2")
        harness.pool.terminate(taskId: "never-sent")
        harness.run(timeout: 0.3) { false }
        XCTAssertEqual(harness.pool.processIDs, pids, "terminating a finished or unknown task changes nothing")
    }

    func testShutdownStopsEveryWorkerAndLeavesTheLoopEmpty() throws {
        let harness = PoolHarness(modes: ["ok", "hang"], count: 2) {
            $0.silenceTimeout = 20
            $0.shutdownGrace = 0.5
        }
        harness.start()
        XCTAssertTrue(harness.run { harness.pool.idleWorkers(for: "fake-echo") == 2 })
        XCTAssertTrue(harness.pool.dispatch(harness.task("t-1", inputs: ["sleep": .number(20)])))
        harness.run(timeout: 0.3) { false }
        let pids = harness.pool.processIDs
        XCTAssertEqual(pids.count, 2)

        let stopping = Date()
        XCTAssertTrue(harness.stop(), "shutdown did not complete or left handles on the loop")
        XCTAssertLessThan(Date().timeIntervalSince(stopping), 3)
        XCTAssertEqual(harness.events.end(of: "t-1"), .stopped)
        XCTAssertEqual(harness.pool.processIDs, [])
        for pid in pids { XCTAssertTrue(PoolHarness.isGone(pid), "worker \(pid) is still there") }
        XCTAssertEqual(harness.log.lines(containing: "worker did not exit in time").count, 1, "the hung one")
        XCTAssertEqual(harness.log.lines(containing: "worker spawned").count, 2, "no restarts")
        XCTAssertFalse(harness.pool.dispatch(harness.task("t-2")))
    }

    // MARK: - The worker's log

    func testAWorkersStderrGoesToItsLogRotatedAtTheLimit() throws {
        let harness = PoolHarness(modes: ["stderr-flood", "ok"]) {
            $0.logFileLimit = 4096
            $0.environment = ["FAKE_WORKER_STDERR_BYTES": "40000"]
        }
        defer { harness.stop() }
        harness.start()
        let path = harness.logDirectory + "/worker-1.log"
        XCTAssertTrue(harness.run { harness.workerLog(1).contains("stderr flood done") })
        let generations = [path + ".3", path + ".2", path + ".1", path]
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".4"), "only three rotations are kept")
        var numbers: [Int] = []
        for file in generations {
            let text = try String(contentsOfFile: file, encoding: .utf8)
            XCTAssertLessThanOrEqual(text.utf8.count, 4096, file)
            XCTAssertTrue(text.hasSuffix("\n"), "\(file) ends inside a line")
            numbers += text.split(separator: "\n").compactMap { line in
                line.hasPrefix("stderr line ") ? Int(line.split(separator: " ")[2]) : nil
            }
        }
        XCTAssertGreaterThan(numbers.count, 300, "four files of the flood's lines")
        XCTAssertEqual(numbers, Array(numbers[0]..<(numbers[0] + numbers.count)), "a line was lost or repeated")
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        XCTAssertEqual((attributes[.posixPermissions] as? NSNumber)?.intValue, 0o600)
        guard case .result? = harness.runTask("t-1") else { return XCTFail("the flooding worker ran no task") }
    }

    // MARK: - The real worker

    func testTheRealWorkerShakesHandsAndPreprocessesAPhoto() throws {
        let executable = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("replica-worker").path
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: executable), "build replica-worker first")
        let harness = PoolHarness(modes: [], command: [executable]) { $0.silenceTimeout = 30 }
        defer { harness.stop() }
        let images = harness.directory.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        var pixels = PixelBuffer(width: 160, height: 120, channels: 3)
        for index in pixels.bytes.indices { pixels.bytes[index] = UInt8(truncatingIfNeeded: index &* 7) }
        try Data(try JPEGEncoder.encode(pixels, quality: 90)).write(to: images.appendingPathComponent("x.jpg"))
        try FileManager.default.createDirectory(at: harness.directory.appendingPathComponent("work"),
                                                withIntermediateDirectories: true)
        harness.start()

        let inputs: [String: JSONValue] = ["image": .string("x.jpg"), "maxDimension": .number(64)]
        guard case .result(let result)? = harness.runTask("p-1", kind: .preprocess, inputs: inputs, timeout: 20) else {
            return XCTFail("no result: \(String(describing: harness.events.end(of: "p-1")))")
        }
        XCTAssertEqual(result.outputs, ["images/x.jpg.jpg", "images/x.jpg.json"])
        XCTAssertEqual(result.data?["width"], .number(64))
        XCTAssertEqual(result.data?["height"], .number(48))
        for output in result.outputs {
            let file = harness.directory.appendingPathComponent("work").appendingPathComponent(output).path
            XCTAssertTrue(FileManager.default.fileExists(atPath: file), output)
        }
        XCTAssertTrue(harness.stop())
        XCTAssertEqual(harness.log.lines(containing: "worker.exit=\"status 0\"").count, 1)
    }
}

// MARK: - Harness

/// A loop, a temporary folder and a pool, driven from the test's thread with a deadline on every wait.
/// A memory cgroup (v1, as this machine mounts it) below the test's own, with a hard limit; the test is skipped
/// where there is none to make.
private struct MemoryCgroup {
    let path: String

    init(megabytes: Int) throws {
        let own = (try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8))?
            .split(separator: "\n").first { $0.split(separator: ":").dropFirst().first == "memory" }
            .map { String($0.split(separator: ":", maxSplits: 2)[2]) }
        guard let own, FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory" + own) else {
            throw XCTSkip("no cgroup v1 memory controller here")
        }
        path = "/sys/fs/cgroup/memory\(own == "/" ? "" : own)/replica-test-\(UUID().uuidString)"
        guard mkdir(path, 0o755) == 0 else { throw XCTSkip("cannot make a memory cgroup: errno \(errno)") }
        try "\(megabytes << 20)".write(toFile: path + "/memory.limit_in_bytes", atomically: false, encoding: .utf8)
    }

    /// OOM kills in the cgroup so far.
    var kills: Int {
        let control = (try? String(contentsOfFile: path + "/memory.oom_control", encoding: .utf8)) ?? ""
        return control.split(separator: "\n").first { $0.hasPrefix("oom_kill ") }
            .flatMap { Int($0.split(separator: " ")[1]) } ?? 0
    }

    /// Removes the cgroup once its processes are gone.
    func remove() {
        for _ in 0..<100 where rmdir(path) != 0 { usleep(50_000) }
    }
}

private final class PoolHarness {
    /// Pools whose shutdown never completed: kept, since releasing a started pool is a precondition failure.
    nonisolated(unsafe) static var abandoned: [PoolHarness] = []

    static let fakeWorker = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/fake-worker.py").path

    let directory: URL
    let logDirectory: String
    let events = PoolEvents()
    let log = CapturedLog()
    let pool: WorkerPool
    private let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
    /// Wakes `UV_RUN_ONCE` every 10 ms, so a wait checks its condition and deadline even when nothing happens.
    private let tick = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
    private var stopped = false

    /// `modes` is the fake's queue: each start takes the first, the last stays.
    /// `prefix` goes before the fake's own command line (a wrapper that moves it into a cgroup, say).
    init(modes: [String], count: Int = 1, command: [String]? = nil, prefix: [String] = [],
         configure: (inout WorkerPoolOptions) -> Void = { _ in }) {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("pool-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logDirectory = directory.appendingPathComponent("logs").path
        let queue = directory.appendingPathComponent("modes").path
        _ = FileManager.default.createFile(atPath: queue, contents: Data(modes.joined(separator: "\n").utf8))
        var options = WorkerPoolOptions(command: command ?? prefix + ["python3", Self.fakeWorker, "@" + queue],
                                        count: count, logDirectory: logDirectory)
        options.helloTimeout = 2
        options.silenceTimeout = 1
        options.restartDelay = 0.05
        options.maximumRestartDelay = 0.4
        options.shutdownGrace = 2
        configure(&options)
        uv_loop_init(loop)
        uv_timer_init(loop, tick)
        uv_timer_start(tick, { _ in }, 10, 10)
        pool = WorkerPool(loop: loop, options: options, logger: Logger(sink: log, minimumLevel: .debug))
        pool.delegate = events
    }

    func start() { pool.start() }

    /// Runs the loop until `condition` holds; false when `timeout` seconds pass first.
    @discardableResult
    func run(timeout: Double = 5, until condition: () -> Bool) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while !condition() {
            if Date() >= deadline { return false }
            uv_run(loop, UV_RUN_ONCE)
        }
        return true
    }

    func task(_ id: TaskID, kind: TaskKind = "fake-echo", inputs: [String: JSONValue] = [:]) -> TaskAssignment {
        TaskAssignment(taskId: id, kind: kind, workDirectory: directory.appendingPathComponent("work").path,
                       inputs: inputs)
    }

    /// Waits for an idle worker, sends it the task and waits for the task's end.
    func runTask(_ id: TaskID, kind: TaskKind = "fake-echo", inputs: [String: JSONValue] = [:],
                 timeout: Double = 5) -> TaskEnd? {
        guard run(timeout: timeout, until: { pool.idleWorkers(for: kind) > 0 }) else { return nil }
        guard pool.dispatch(task(id, kind: kind, inputs: inputs)) else { return nil }
        run(timeout: timeout) { events.end(of: id) != nil }
        return events.end(of: id)
    }

    /// The text of `worker-<slot>.log` as written so far.
    func workerLog(_ slot: Int) -> String {
        (try? String(contentsOfFile: logDirectory + "/worker-\(slot).log", encoding: .utf8)) ?? ""
    }

    /// Shuts the pool down; true when it completed and left no handle on the loop, so `uv_run` returns.
    @discardableResult
    func stop() -> Bool {
        guard !stopped else { return true }
        stopped = true
        var completed = false
        pool.shutdown { completed = true }
        run(timeout: 15) { completed }
        uv_close(UnsafeMutableRawPointer(tick).assumingMemoryBound(to: uv_handle_t.self)) { $0?.deallocate() }
        uv_run(loop, UV_RUN_NOWAIT)
        let empty = completed && uv_loop_alive(loop) == 0
        XCTAssertTrue(completed, "the pool's shutdown did not complete")
        XCTAssertTrue(empty, "handles are left on the loop")
        if empty {
            XCTAssertEqual(uv_run(loop, UV_RUN_DEFAULT), 0)
            XCTAssertEqual(uv_loop_close(loop), 0)
        } else {
            Self.abandoned.append(self)
        }
        try? FileManager.default.removeItem(at: directory)
        return empty
    }

    /// No such process, or a zombie: this container's init does not reap the orphans a killed worker leaves.
    static func isGone(_ pid: Int32) -> Bool {
        if kill(pid, 0) != 0 && errno == ESRCH { return true }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state == "Z" || state == "X"
    }

    /// The pipes and sockets a process holds, as `/proc/<pid>/fd` names them (`pipe:[123]`, `socket:[456]`).
    static func pipesAndSockets(of pid: Int32) -> Set<String> {
        let folder = "/proc/\(pid)/fd"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return Set(names.compactMap { name in
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: folder + "/" + name),
                  target.hasPrefix("pipe:") || target.hasPrefix("socket:") else { return nil }
            return target
        })
    }
}

/// What the pool told its delegate, in order.
private final class PoolEvents: WorkerPoolDelegate {
    enum Event: Equatable {
        case idle
        case ended(TaskID)
    }

    private(set) var sequence: [Event] = []
    private(set) var progress: [TaskProgress] = []
    private(set) var warnings: [TaskWarning] = []
    private(set) var ends: [(TaskID, TaskEnd)] = []
    private(set) var cannotStart: [String] = []

    var idleReports: Int { sequence.filter { $0 == .idle }.count }

    func end(of id: TaskID) -> TaskEnd? {
        let found = ends.filter { $0.0 == id }
        XCTAssertLessThanOrEqual(found.count, 1, "task \(id) ended more than once")
        return found.first?.1
    }

    /// After a task's end, the next thing said is that a worker is idle, never the other way round.
    func eachEndPrecedesTheNextIdleReport() -> Bool {
        zip(sequence, sequence.dropFirst()).allSatisfy { pair in
            if case .ended = pair.0 { return pair.1 == .idle }
            return true
        }
    }

    func workerPoolHasIdleWorker(_ pool: WorkerPool) { sequence.append(.idle) }
    func workerPool(_ pool: WorkerPool, progress: TaskProgress) { self.progress.append(progress) }
    func workerPool(_ pool: WorkerPool, warning: TaskWarning) { warnings.append(warning) }
    func workerPool(_ pool: WorkerPool, cannotStart reason: String) { cannotStart.append(reason) }

    func workerPool(_ pool: WorkerPool, ended taskId: TaskID, _ end: TaskEnd) {
        sequence.append(.ended(taskId))
        ends.append((taskId, end))
    }
}

/// The pool's log lines, as an operator would read them.
private final class CapturedLog: LogSink, @unchecked Sendable {
    private let lock = NSLock()
    private var captured: [String] = []

    func write(line: String, level: LogLevel) {
        lock.lock(); defer { lock.unlock() }
        captured.append(line)
    }

    func lines(containing text: String) -> [String] {
        lock.lock(); defer { lock.unlock() }
        return captured.filter { $0.contains(text) }
    }
}
