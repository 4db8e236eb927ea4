import Foundation
import ReplicaCore
import ReplicaProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The worker's side of the worker protocol over two file descriptors: the handshake, then one task at a
/// time, with heartbeats from a thread of their own and the gateway's lines read on a third.
///
/// `run()` returns the process's exit status: 0 after `shutdown` or the end of the input, 76 after a line the
/// worker cannot accept, 78 after `reject`. The loop never closes the descriptors it was given.
public final class WorkerLoop: @unchecked Sendable {
    /// The task kinds this worker runs, as `hello` announces them.
    public static let capabilities: [TaskKind] = [.preprocess, .features, .retrieve, .match, .map, .depth, .fuse,
                                                    .mesh, .texture, .export]

    private let input: Int32
    private let output: LineWriter
    private let heartbeatInterval: Double
    private let workerVersion: String
    private let pid: Int
    private let log: Logger
    private var lines = JSONLineReader()
    private let state: LoopState

    /// `heartbeatInterval` is in seconds; tests shorten it.
    public init(input: Int32, output: Int32, heartbeatInterval: Double = Double(WorkerProtocol.heartbeatInterval),
                workerVersion: String = APIVersion.current, pid: Int = Int(getpid()),
                log: Logger = Logger(sink: StandardErrorSink())) {
        precondition(heartbeatInterval > 0, "heartbeats need a positive interval")
        self.input = input
        self.output = LineWriter(descriptor: output)
        state = LoopState(output: self.output)
        self.heartbeatInterval = heartbeatInterval
        self.workerVersion = workerVersion
        self.pid = pid
        self.log = log.with("worker.pid", String(pid))
    }

    /// Speaks the protocol until the gateway ends it; the exit status the process should end with.
    public func run() -> Int32 {
        output.send(.hello(WorkerHello(workerVersion: workerVersion, pid: pid, capabilities: Self.capabilities)))
        switch readMessage() {
        case .message(.welcome): break
        case .message(.reject(let reject)):
            log.error("the gateway rejected this worker", ["reason": reject.reason])
            return WorkerProtocol.rejectedExitStatus
        case .message(let other):
            return protocolError("the first line from the gateway is '\(other.type)', not welcome or reject")
        case .end(let status): return status
        }
        log.info("worker ready")

        let readerDone = startThread("replica-worker-reader") { self.readGatewayLines() }
        let heartbeatDone = startThread("replica-worker-heartbeat") { self.beat() }
        let status = executeTasks()
        state.stop(status: status)
        readerDone.wait()
        heartbeatDone.wait()
        return status
    }

    // MARK: - Reading the gateway's lines

    private enum Read {
        case message(GatewayMessage)
        /// The loop is over, with this exit status.
        case end(Int32)
    }

    /// The next message, or how the input ended: 0 at its end between lines, 76 for a bad line.
    private func readMessage() -> Read {
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            do {
                if let line = try lines.nextLine() { return .message(try GatewayMessage.decode(line)) }
            } catch {
                return .end(protocolError("\(error)"))
            }
            let count = chunk.withUnsafeMutableBytes { read(input, $0.baseAddress!, $0.count) }
            if count < 0 && errno == EINTR { continue }
            if count < 0 { log.error("cannot read from the gateway", ["error": String(cString: strerror(errno))]) }
            if count <= 0 { return endOfInput() }
            lines.feed(chunk[0..<count])
        }
    }

    private func endOfInput() -> Read {
        do {
            try lines.finish()
        } catch {
            return .end(protocolError("\(error)"))
        }
        log.info("the gateway closed the worker's input; exiting")
        return .end(0)
    }

    /// Hands tasks to the executing thread and acts on cancel and shutdown at once, while a task runs.
    private func readGatewayLines() {
        while true {
            switch readMessage() {
            case .end(let status):
                state.stop(status: status)
                return
            case .message(.task(let assignment)):
                guard state.assign(assignment) else {
                    state.stop(status: protocolError("task \(assignment.taskId) arrived while a task was running"))
                    return
                }
            case .message(.cancel(let cancel)):
                state.cancel(cancel.taskId)
            case .message(.shutdown(let shutdown)):
                log.info("the gateway asked the worker to shut down", ["reason": shutdown.reason ?? "none"])
                state.stop(status: 0)
                return
            case .message(let other):
                state.stop(status: protocolError("'\(other.type)' after the handshake"))
                return
            }
        }
    }

    private func protocolError(_ description: String) -> Int32 {
        log.error("protocol error from the gateway; exiting", ["error": description])
        return WorkerProtocol.protocolErrorExitStatus
    }

    // MARK: - Running tasks

    /// Runs the tasks the reader hands over, one at a time, until the loop stops.
    private func executeTasks() -> Int32 {
        while true {
            switch state.nextTask() {
            case .stop(let status): return status
            case .run(let assignment, let flag):
                let answer = execute(assignment, flag: flag)
                // After shutdown, the end of input or a protocol error the task is the gateway's to re-queue.
                if let status = state.finishTask() { return status }
                output.send(answer)
            }
        }
    }

    /// The task's `result` or `failure`, its progress and warnings written as it goes.
    private func execute(_ assignment: TaskAssignment, flag: CancellationFlag) -> WorkerMessage {
        let taskLog = log.with("task.id", assignment.taskId.rawValue).with("task.kind", assignment.kind.rawValue)
        taskLog.info("task started", ["task.attempt": String(assignment.attempt)])
        let sink = ProtocolSink(taskId: assignment.taskId, output: output, flag: flag)
        let answer: WorkerMessage
        let started = DispatchTime.now().uptimeNanoseconds
        do throws(TaskError) {
            var outcome = try runTask(assignment, sink: sink)
            // The task's own time, for the job's statistics and the benchmarks: stored with its result.
            outcome.data["seconds"] = .number(Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9)
            answer = .result(TaskResult(taskId: assignment.taskId, outputs: outcome.outputs, data: outcome.data))
        } catch {
            answer = .failure(Self.failure(error, taskId: assignment.taskId))
        }
        taskLog.info("task ended", ["task.answer": answer.type])
        return answer
    }

    private static func failure(_ error: TaskError, taskId: TaskID) -> TaskFailure {
        switch error {
        case .cancelled:
            return TaskFailure(taskId: taskId, message: "the task was cancelled", retryable: false)
        case .failed(let message, let retryable, let image):
            return TaskFailure(taskId: taskId, message: message, retryable: retryable, image: image)
        }
    }

    private func runTask(_ assignment: TaskAssignment, sink: TaskSink) throws(TaskError) -> TaskOutcome {
        switch assignment.kind {
        case .preprocess: return try PreprocessTask(assignment).run(sink)
        case .features: return try DetectFeaturesTask(assignment).run(sink)
        case .retrieve: return try RetrievePairsTask(assignment).run(sink)
        case .match: return try MatchPairsTask(assignment).run(sink)
        case .map: return try MapTask(assignment).run(sink)
        case .depth: return try DepthMapTask(assignment).run(sink)
        case .fuse: return try FuseTask(assignment).run(sink)
        case .mesh: return try MeshTask(assignment).run(sink)
        case .texture: return try TextureTask(assignment).run(sink)
        case .export: return try ExportTask(assignment).run(sink)
        default:
            throw TaskError.failed(message: "this worker cannot run tasks of kind '\(assignment.kind)'",
                                   retryable: false, image: nil)
        }
    }

    // MARK: - Heartbeats

    private func beat() {
        var sequence = 0
        while state.waitWhileRunning(seconds: heartbeatInterval) {
            output.send(.heartbeat(WorkerHeartbeat(sequence: sequence, taskId: state.currentTaskID)))
            sequence += 1
        }
    }

    /// Starts `body` on a thread of its own; the semaphore is signalled when it returns.
    private func startThread(_ name: String, _ body: @escaping @Sendable () -> Void) -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            body()
            done.signal()
        }
        thread.name = name
        thread.start()
        return done
    }
}

/// What the three threads share: the task handed over, the current task's cancellation flag, and whether
/// and with which status the loop stops.
private final class LoopState: @unchecked Sendable {
    enum Next {
        case run(TaskAssignment, CancellationFlag)
        case stop(Int32)
    }

    private let condition = NSCondition()
    private let output: LineWriter
    /// A task handed over that the executing thread has not picked up yet; a cancel may already reach it.
    private var pending: (assignment: TaskAssignment, flag: CancellationFlag)?
    private var current: (id: TaskID, flag: CancellationFlag)?
    private var exitStatus: Int32?

    init(output: LineWriter) { self.output = output }

    /// Hands a task over; false when one is already pending or running, which the protocol forbids.
    func assign(_ assignment: TaskAssignment) -> Bool {
        condition.lock(); defer { condition.unlock() }
        guard pending == nil, current == nil else { return false }
        pending = (assignment, CancellationFlag())
        condition.broadcast()
        return true
    }

    /// Raises the flag of the task `id` names, running or about to; a cancel for another task crossed its end.
    func cancel(_ id: TaskID) {
        condition.lock(); defer { condition.unlock() }
        if current?.id == id { current?.flag.raise() }
        if pending?.assignment.taskId == id { pending?.flag.raise() }
    }

    /// Ends the loop with `status` (the first status given wins) and stops the current task. The output
    /// closes at once: after `shutdown` not even a heartbeat or the task's progress may follow.
    func stop(status: Int32) {
        condition.lock(); defer { condition.unlock() }
        if exitStatus == nil { exitStatus = status }
        output.close()
        current?.flag.raise()
        condition.broadcast()
    }

    /// Waits for a task or for the loop to stop.
    func nextTask() -> Next {
        condition.lock(); defer { condition.unlock() }
        while true {
            if let exitStatus { return .stop(exitStatus) }
            if let (assignment, flag) = pending {
                pending = nil
                current = (assignment.taskId, flag)
                return .run(assignment, flag)
            }
            condition.wait()
        }
    }

    /// Marks the worker idle; the exit status when the loop stopped meanwhile, so nothing more is written.
    func finishTask() -> Int32? {
        condition.lock(); defer { condition.unlock() }
        current = nil
        return exitStatus
    }

    var currentTaskID: TaskID? {
        condition.lock(); defer { condition.unlock() }
        return current?.id
    }

    /// Sleeps `seconds` unless the loop stops first; true while it still runs.
    func waitWhileRunning(seconds: Double) -> Bool {
        condition.lock(); defer { condition.unlock() }
        let deadline = Date(timeIntervalSinceNow: seconds)
        while exitStatus == nil, condition.wait(until: deadline) {}
        return exitStatus == nil
    }
}

/// A task's sink in the worker: progress and warnings become protocol lines about the task.
private final class ProtocolSink: TaskSink {
    let taskId: TaskID
    let output: LineWriter
    let flag: CancellationFlag

    init(taskId: TaskID, output: LineWriter, flag: CancellationFlag) {
        self.taskId = taskId
        self.output = output
        self.flag = flag
    }

    func progress(_ fraction: Double, _ message: String) {
        output.send(.progress(TaskProgress(taskId: taskId, fraction: fraction, message: message)))
    }

    func warning(_ message: String, image: String?) {
        output.send(.warning(TaskWarning(taskId: taskId, message: message, image: image)))
    }

    var shouldStop: Bool { flag.isRaised }
}

/// Writes whole protocol lines to one descriptor, one writer at a time; after `close()` it writes nothing.
final class LineWriter: @unchecked Sendable {
    private let descriptor: Int32
    private let lock = NSLock()
    private var closed = false

    init(descriptor: Int32) { self.descriptor = descriptor }

    /// Writes the message's line. A message that cannot be encoded is a bug in this worker, so it traps; a
    /// gateway that went away closes the writer, and the reader then sees the input end.
    func send(_ message: WorkerMessage) {
        let line: [UInt8]
        do {
            line = try message.encodeLine()
        } catch {
            preconditionFailure("the worker built a line the protocol refuses: \(error)")
        }
        lock.lock(); defer { lock.unlock() }
        guard !closed else { return }
        var written = 0
        while written < line.count {
            let count = line.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, line.count - written) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { closed = true; return }
            written += count
        }
    }

    func close() {
        lock.lock(); closed = true; lock.unlock()
    }
}
