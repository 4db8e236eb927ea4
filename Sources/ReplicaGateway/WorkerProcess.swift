import CLibUV
import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaProtocol

/// What a worker process tells its pool; every call comes on the loop thread.
protocol WorkerProcessOwner: AnyObject {
    func workerWelcomed(_ worker: WorkerProcess)
    func workerRejected(_ worker: WorkerProcess, reason: String)
    func worker(_ worker: WorkerProcess, progress: TaskProgress)
    func worker(_ worker: WorkerProcess, warning: TaskWarning)
    /// The task ended with the worker's own `result` or `failure`; the worker is idle again.
    func worker(_ worker: WorkerProcess, answered taskId: TaskID, _ end: TaskEnd)
    /// The process has exited and its pipes have ended: the slot is free.
    func workerIsGone(_ worker: WorkerProcess, _ departure: WorkerDeparture)
    /// Every handle of the worker is closed.
    func workerClosed(_ worker: WorkerProcess)
}

/// How a worker process ended, as its pool needs it to end the task and restart the slot.
struct WorkerDeparture {
    /// The task it was running and how that ends; nil when it was idle.
    var task: (id: TaskID, end: TaskEnd)?
    var wasWelcomed: Bool
    var stopRequest: WorkerProcess.StopRequest?
    /// Exit status 78: its hello was rejected, or its installation is wrong in some other way.
    var exitedAsRejected: Bool
    /// Seconds from the spawn to the exit.
    var lifetime: Double
    /// "replica-worker 2 (pid 4242) was killed by signal 9", for a person.
    var description: String
}

/// One `replica-worker` process: its pipes, its timers and its side of the protocol's state.
///
/// The object keeps itself alive until libuv has closed every one of its handles, whatever its pool does.
final class WorkerProcess {
    enum Phase: Equatable {
        /// Spawned; waiting for `hello`.
        case handshaking
        /// `reject` sent; waiting for the exit.
        case rejected
        /// `welcome` sent; runs tasks.
        case ready
        /// Broken or killed: nothing it writes counts any more.
        case ending
    }

    /// Why the gateway itself is stopping the worker; either way its task ends `.stopped`.
    enum StopRequest: Equatable { case terminate, shutdown }

    /// Seconds the pipes may stay open after the exit (or the exit may lag behind stdout's end) before the
    /// worker is treated as gone: a process left in its group could otherwise hold them open for ever.
    static let drainTimeout = 1.0

    let slot: Int
    let name: String
    let logFile: WorkerLogFile
    weak var owner: WorkerProcessOwner?
    private(set) var logger: Logger
    private(set) var pid: Int32 = 0
    private(set) var phase = Phase.handshaking
    private(set) var capabilities: Set<TaskKind> = []
    /// The task dispatched and not yet answered.
    private(set) var task: TaskID?
    private(set) var hasExited = false
    private(set) var stopRequest: StopRequest?
    private var wasWelcomed = false
    private var killReason: String?
    /// The reason sent in `reject`, for the description of the exit that follows.
    private var rejection: String?
    private var exitStatus: (status: Int64, signal: Int32) = (0, 0)
    private var startedAt: UInt64 = 0
    private var lines = JSONLineReader()
    private var finished = false

    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let options: WorkerPoolOptions
    private let readBuffer: WorkerReadBuffer
    private let logWriter: WorkerLogWriter
    private let process = UnsafeMutablePointer<uv_process_t>.allocate(capacity: 1)
    private let input = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
    private let output = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
    private let errors = UnsafeMutablePointer<uv_pipe_t>.allocate(capacity: 1)
    /// `hello` within `helloTimeout`, then a line within `silenceTimeout`.
    private let livenessTimer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
    /// SIGKILL of the group once a stop's grace period is over.
    private let killTimer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
    private let drainTimer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
    private var inputOpen = true, inputShuttingDown = false, outputOpen = true, errorsOpen = true
    private var openHandles = 0
    private var retained: Unmanaged<WorkerProcess>?

    init(slot: Int, loop: UnsafeMutablePointer<uv_loop_t>, options: WorkerPoolOptions, logger: Logger,
         logFile: WorkerLogFile, logWriter: WorkerLogWriter, readBuffer: WorkerReadBuffer) {
        self.slot = slot
        self.name = "replica-worker \(slot)"
        self.loop = loop
        self.options = options
        self.logger = logger.with("worker.slot", String(slot))
        self.logFile = logFile
        self.logWriter = logWriter
        self.readBuffer = readBuffer
    }

    /// Welcomed, running nothing, not being stopped and not exited: a task may be sent.
    var isIdle: Bool { phase == .ready && task == nil && stopRequest == nil && !hasExited }

    private var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    // MARK: - Spawning

    /// Starts the process as the leader of a process group of its own; on failure every handle is closed.
    func spawn() throws(UVError) {
        retained = Unmanaged.passRetained(self)
        for pipe in [input, output, errors] {
            uv_pipe_init(loop, pipe, 0)
            pipe.pointee.data = opaque
        }
        for timer in [livenessTimer, killTimer, drainTimer] {
            uv_timer_init(loop, timer)
            timer.pointee.data = opaque
        }
        openHandles = 6
        let status = startProcess()
        process.pointee.data = opaque
        openHandles += 1
        guard status == 0 else {
            closeAll()
            throw UVError(status, "spawn \(options.command[0])")
        }
        pid = process.pointee.pid
        logger = logger.with("worker.pid", String(pid))
        startedAt = uv_now(loop)
        uv_read_start(asStream(output), WorkerProcess.allocateCallback, WorkerProcess.outputCallback)
        uv_read_start(asStream(errors), WorkerProcess.allocateCallback, WorkerProcess.errorsCallback)
        restartLiveness(options.helloTimeout)
        logWriter.note("\(name) started, pid \(pid)", to: logFile)
        logger.info("worker spawned")
    }

    /// `uv_spawn` with three pipes. libuv makes them with CLOEXEC on the gateway's ends, so no other child
    /// inherits them, and `UV_PROCESS_DETACHED` makes the worker a session and process group of its own.
    private func startProcess() -> Int32 {
        let arguments = CStringArray(options.command)
        let environment = CStringArray(Self.environment(adding: options.environment))
        var stdio = [pipeContainer(input, UV_READABLE_PIPE), pipeContainer(output, UV_WRITABLE_PIPE),
                     pipeContainer(errors, UV_WRITABLE_PIPE)]
        return stdio.withUnsafeMutableBufferPointer { stdio in
            var spawnOptions = uv_process_options_t()
            spawnOptions.exit_cb = WorkerProcess.exitCallback
            spawnOptions.file = UnsafePointer(arguments.pointers[0])
            spawnOptions.args = arguments.base
            spawnOptions.env = environment.base
            spawnOptions.flags = UV_PROCESS_DETACHED.rawValue
            spawnOptions.stdio_count = Int32(stdio.count)
            spawnOptions.stdio = stdio.baseAddress
            return uv_spawn(loop, process, &spawnOptions)
        }
    }

    private func pipeContainer(_ pipe: UnsafeMutablePointer<uv_pipe_t>,
                               _ direction: uv_stdio_flags) -> uv_stdio_container_t {
        var container = uv_stdio_container_t()
        container.flags = uv_stdio_flags(rawValue: UV_CREATE_PIPE.rawValue | direction.rawValue)
        container.data.stream = asStream(pipe)
        return container
    }

    /// The gateway's environment with the options' variables added or replaced, as `NAME=value` strings.
    static func environment(adding extra: [String: String]) -> [String] {
        var merged = ProcessInfo.processInfo.environment
        merged.merge(extra) { _, added in added }
        return merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    // MARK: - Stopping on purpose

    /// SIGTERM to the group, SIGKILL of the group after `grace` seconds; the task ends `.stopped`.
    func terminate(grace: Double) {
        guard !finished, task != nil, stopRequest == nil else { return }
        stopRequest = .terminate
        uv_timer_stop(livenessTimer)
        logger.info("terminating worker", ["task.id": task?.rawValue ?? ""])
        guard !hasExited else { return }
        signalGroup(SIGTERM)
        uv_timer_start(killTimer, WorkerProcess.killCallback, milliseconds(grace), 0)
    }

    /// `shutdown` (to a welcomed worker), the end of its stdin, and SIGKILL of the group after `grace`.
    func shutdown(grace: Double) {
        guard !finished, !hasExited else { return }
        let alreadyTerminating = stopRequest == .terminate
        if stopRequest == nil { stopRequest = .shutdown }
        uv_timer_stop(livenessTimer)
        // Before `welcome`, `shutdown` would be a protocol error for the worker; the end of stdin says the same.
        if phase == .ready { send(.shutdown(WorkerShutdown(reason: "the gateway is stopping"))) }
        closeInputAfterWrites()
        if !alreadyTerminating { uv_timer_start(killTimer, WorkerProcess.killCallback, milliseconds(grace), 0) }
    }

    private func killTimerFired() {
        logger.warning("worker did not exit in time; killing its process group",
                       ["worker.stop": stopRequest == .terminate ? "terminate" : "shutdown"])
        signalGroup(SIGKILL)
    }

    /// Kills the group for good: a protocol error, silence, a failed write or output that ended early.
    private func abandon(_ reason: String) {
        guard !finished, phase != .ending else { return }
        phase = .ending
        killReason = reason
        uv_timer_stop(livenessTimer)
        signalGroup(SIGKILL)
    }

    private func signalGroup(_ signal: Int32) {
        guard !finished, pid > 0 else { return }
        // The group is the worker's own (UV_PROCESS_DETACHED): children it started die with it.
        _ = kill(-pid, signal)
    }

    // MARK: - Sending

    /// Sends the task's line (encoded by the pool) to an idle worker.
    func run(_ taskId: TaskID, line: [UInt8]) {
        precondition(isIdle, "a task was sent to a worker that is not idle")
        task = taskId
        write(line)
    }

    /// Messages the gateway builds from constants; one that cannot be encoded is a bug here.
    private func send(_ message: GatewayMessage) {
        do {
            write(try message.encodeLine())
        } catch {
            preconditionFailure("the gateway built a line the protocol refuses: \(error)")
        }
    }

    /// Queues the line on stdin; the buffer lives until libuv's callback.
    private func write(_ line: [UInt8]) {
        guard inputOpen, !inputShuttingDown else { return }
        let pending = PendingWrite(worker: self, line: line)
        let request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
        request.pointee.data = Unmanaged.passRetained(pending).toOpaque()
        var buffer = uv_buf_init(pending.storage, UInt32(line.count))
        let status = uv_write(request, asStream(input), &buffer, 1, WorkerProcess.writeCallback)
        if status < 0 {
            Unmanaged<PendingWrite>.fromOpaque(request.pointee.data).release()
            request.deallocate()
            writeFailed(status)
        }
    }

    /// A failed write means the worker is gone or going: handled as a crash.
    fileprivate func writeFailed(_ status: Int32) {
        guard !hasExited, stopRequest == nil else { return }
        logger.warning("cannot write to the worker; killing it", ["error": UVError(status, "write").description])
        abandon("was killed: its input could not be written (\(UVError(status, "write").name))")
    }

    /// Closes stdin once the queued lines are written, so the worker reads them before the end of its input.
    private func closeInputAfterWrites() {
        guard inputOpen, !inputShuttingDown else { return }
        inputShuttingDown = true
        let request = UnsafeMutablePointer<uv_shutdown_t>.allocate(capacity: 1)
        request.pointee.data = opaque
        let status = uv_shutdown(request, asStream(input)) { request, _ in
            let worker = Unmanaged<WorkerProcess>.fromOpaque(request!.pointee.data).takeUnretainedValue()
            request!.deallocate()
            worker.closeInput()
        }
        if status < 0 {
            request.deallocate()
            closeInput()
        }
    }

    private func closeInput() {
        guard inputOpen else { return }
        inputOpen = false
        closeHandle(input)
    }

    // MARK: - Reading

    private func received(_ bytes: UnsafeRawBufferPointer) {
        // After terminate or a kill nothing the worker says changes how its task ends.
        guard phase != .ending, stopRequest != .terminate else { return }
        lines.feed(bytes)
        do {
            while phase != .ending, stopRequest != .terminate, let line = try lines.nextLine() {
                if phase == .ready && stopRequest == nil { restartLiveness(options.silenceTimeout) }
                try handle(try WorkerMessage.decode(line))
            }
        } catch {
            logger.error("protocol error from a worker; killing it", ["error": "\(error)"])
            abandon("was killed after a protocol error: \(error)")
        }
    }

    private func handle(_ message: WorkerMessage) throws(OrderError) {
        switch (phase, message) {
        case (.handshaking, .hello(let hello)): return answer(hello)
        case (.handshaking, _): throw OrderError("the first line is '\(message.type)', not hello")
        case (_, .hello): throw OrderError("hello after the handshake")
        case (.rejected, _): throw OrderError("'\(message.type)' after its hello was rejected")
        case (_, .heartbeat): return
        default: break
        }
        guard let current = task, let named = Self.taskID(of: message), named == current else {
            let named = Self.taskID(of: message)?.rawValue ?? "?"
            throw OrderError("'\(message.type)' about task \(named), which is not its current task"
                             + (task.map { " (\($0))" } ?? " (it has none)"))
        }
        switch message {
        case .progress(let progress): owner?.worker(self, progress: progress)
        case .warning(let warning): owner?.worker(self, warning: warning)
        case .result(let result): answered(.result(result))
        case .failure(let failure): answered(.failure(failure))
        case .hello, .heartbeat: break
        }
    }

    private static func taskID(of message: WorkerMessage) -> TaskID? {
        switch message {
        case .progress(let progress): return progress.taskId
        case .warning(let warning): return warning.taskId
        case .result(let result): return result.taskId
        case .failure(let failure): return failure.taskId
        case .hello, .heartbeat: return nil
        }
    }

    private func answer(_ hello: WorkerHello) {
        let answer = WorkerProtocol.answer(to: hello)
        send(answer)
        if case .reject(let reject) = answer {
            phase = .rejected
            rejection = reject.reason
            owner?.workerRejected(self, reason: reject.reason)
            return
        }
        phase = .ready
        wasWelcomed = true
        capabilities = Set(hello.capabilities)
        restartLiveness(options.silenceTimeout)
        let kinds = hello.capabilities.map(\.rawValue).joined(separator: ",")
        logger.info("worker welcomed", ["worker.capabilities": kinds, "worker.version": hello.workerVersion])
        owner?.workerWelcomed(self)
    }

    private func answered(_ end: TaskEnd) {
        guard let current = task else { return }
        task = nil
        owner?.worker(self, answered: current, end)
    }

    private func outputEnded(_ status: Int32) {
        if status != UV_EOF.rawValue {
            logger.debug("reading a worker's output failed", ["error": UVError(status, "read").description])
        }
        do {
            try lines.finish()
        } catch {
            // After a kill or a stop a cut line is expected; otherwise the worker died in the middle of one.
            if phase != .ending && stopRequest == nil {
                logger.warning("a worker's output ended inside a line", ["error": "\(error)"])
            }
        }
        outputOpen = false
        closeHandle(output)
        departIfDone()
    }

    private func errorsEnded() {
        errorsOpen = false
        closeHandle(errors)
        departIfDone()
    }

    // MARK: - Timers and the exit

    private func restartLiveness(_ seconds: Double) {
        uv_timer_start(livenessTimer, WorkerProcess.livenessCallback, milliseconds(seconds), 0)
    }

    private func livenessExpired() {
        switch phase {
        case .handshaking:
            logger.warning("worker did not say hello in time; killing it",
                           ["worker.timeout_s": "\(options.helloTimeout)"])
            abandon("was killed: no hello within \(options.helloTimeout) s")
        case .rejected:
            logger.warning("rejected worker did not exit; killing it")
            abandon("was killed: it did not exit after its hello was rejected")
        case .ready:
            logger.warning("worker hung; killing it", ["worker.silence_s": "\(options.silenceTimeout)",
                                                      "task.id": task?.rawValue ?? "none"])
            abandon("was killed as hung: no line for \(options.silenceTimeout) s")
        case .ending:
            break
        }
    }

    private func exited(status: Int64, signal: Int32) {
        hasExited = true
        exitStatus = (status, signal)
        uv_timer_stop(livenessTimer)
        closeInput()
        let expected = stopRequest != nil || killReason != nil || (phase == .rejected && status == 78)
        let metadata: Logger.Metadata = ["worker.exit": exitDescription(short: true)]
        if expected { logger.info("worker exited", metadata) } else { logger.warning("worker exited", metadata) }
        departIfDone()
    }

    /// Gone once the exit is known and both pipes have ended; the drain timer bounds the wait for either.
    private func departIfDone() {
        guard !finished else { return }
        if hasExited && !outputOpen && !errorsOpen { return depart() }
        // Only the exit or the end of stdout starts the wait; a worker may close its stderr and carry on.
        guard hasExited || !outputOpen, uv_is_active(asHandle(drainTimer)) == 0 else { return }
        uv_timer_start(drainTimer, WorkerProcess.drainCallback, milliseconds(Self.drainTimeout), 0)
    }

    private func drainExpired() {
        guard hasExited else {
            logger.warning("a worker's output ended but it did not exit; killing it")
            return abandon("was killed: its output ended but it did not exit")
        }
        // A process left in the group still holds the pipes; `depart` kills the group.
        outputOpen = false
        errorsOpen = false
        closeHandle(output)
        closeHandle(errors)
        depart()
    }

    private func depart() {
        finished = true
        phase = .ending
        // Children left in the group have no one else to stop them. The leader is reaped, but its pid stays
        // allocated while any member lives, so this cannot reach a stranger's group; an empty group is ESRCH.
        _ = kill(-pid, SIGKILL)
        let departure = departure()
        logWriter.note(departure.description, to: logFile)
        closeAll()
        owner?.workerIsGone(self, departure)
    }

    private func departure() -> WorkerDeparture {
        var description = "\(name) (pid \(pid)) \(killReason ?? exitDescription(short: false))"
        if killReason == nil, let rejection { description += " after its hello was rejected: \(rejection)" }
        let end: TaskEnd = stopRequest != nil ? .stopped : .lost(description)
        return WorkerDeparture(task: task.map { ($0, end) }, wasWelcomed: wasWelcomed, stopRequest: stopRequest,
                               exitedAsRejected: exitStatus.signal == 0 && exitStatus.status == 78,
                               lifetime: Double(uv_now(loop) - startedAt) / 1000, description: description)
    }

    private func exitDescription(short: Bool) -> String {
        let (status, signal) = exitStatus
        if signal != 0 { return short ? "signal \(signal)" : "was killed by signal \(signal)" }
        return short ? "status \(status)" : "exited with status \(status)"
    }

    // MARK: - Handles

    private func closeAll() {
        closeHandle(process)
        for pipe in [input, output, errors] { closeHandle(pipe) }
        for timer in [livenessTimer, killTimer, drainTimer] { closeHandle(timer) }
        inputOpen = false
    }

    private func closeHandle<Handle>(_ handle: UnsafeMutablePointer<Handle>) {
        guard uv_is_closing(asHandle(handle)) == 0 else { return }
        uv_close(asHandle(handle), WorkerProcess.closeCallback)
    }

    /// The handles' memory goes only when the last one is closed, so `uv_is_closing` may still ask any of them.
    private func handleClosed() {
        openHandles -= 1
        guard openHandles == 0 else { return }
        process.deallocate()
        for pipe in [input, output, errors] { pipe.deallocate() }
        for timer in [livenessTimer, killTimer, drainTimer] { timer.deallocate() }
        owner?.workerClosed(self)
        retained?.release()
        retained = nil
    }

    // MARK: - libuv callbacks

    private static func from(_ data: UnsafeMutableRawPointer?) -> WorkerProcess {
        Unmanaged<WorkerProcess>.fromOpaque(data!).takeUnretainedValue()
    }

    private static let allocateCallback: uv_alloc_cb = { handle, _, buffer in
        buffer!.pointee = from(handle!.pointee.data).readBuffer.buffer
    }

    private static let outputCallback: uv_read_cb = { stream, count, buffer in
        let worker = from(stream!.pointee.data)
        if count < 0 { return worker.outputEnded(Int32(count)) }
        if count > 0 { worker.received(UnsafeRawBufferPointer(start: buffer!.pointee.base, count: count)) }
    }

    private static let errorsCallback: uv_read_cb = { stream, count, buffer in
        let worker = from(stream!.pointee.data)
        if count < 0 { return worker.errorsEnded() }
        let bytes = UnsafeRawBufferPointer(start: buffer!.pointee.base, count: count)
        worker.logWriter.append(bytes, to: worker.logFile)
    }

    private static let exitCallback: uv_exit_cb = { process, status, signal in
        from(process!.pointee.data).exited(status: status, signal: signal)
    }

    private static let writeCallback: uv_write_cb = { request, status in
        let pending = Unmanaged<PendingWrite>.fromOpaque(request!.pointee.data).takeRetainedValue()
        request!.deallocate()
        if status < 0 && status != UV_ECANCELED.rawValue { pending.worker.writeFailed(status) }
    }

    private static let livenessCallback: uv_timer_cb = { from($0!.pointee.data).livenessExpired() }
    private static let killCallback: uv_timer_cb = { from($0!.pointee.data).killTimerFired() }
    private static let drainCallback: uv_timer_cb = { from($0!.pointee.data).drainExpired() }

    private static let closeCallback: uv_close_cb = { from($0!.pointee.data).handleClosed() }
}

/// A line from the worker that is well formed but out of order: a second hello, a task that is not its own.
private struct OrderError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = "worker protocol: " + description }
}

/// One line on its way to a worker's stdin: the bytes libuv reads until the write's callback.
private final class PendingWrite {
    let worker: WorkerProcess
    let storage: UnsafeMutablePointer<CChar>

    init(worker: WorkerProcess, line: [UInt8]) {
        self.worker = worker
        storage = UnsafeMutablePointer<CChar>.allocate(capacity: max(line.count, 1))
        line.withUnsafeBytes { bytes in
            guard let source = bytes.baseAddress else { return }
            UnsafeMutableRawPointer(storage).copyMemory(from: source, byteCount: bytes.count)
        }
    }

    deinit { storage.deallocate() }
}

/// The buffer every pipe of a pool reads into; each read callback consumes it before the next read.
final class WorkerReadBuffer {
    static let size = 64 << 10
    private let storage = UnsafeMutablePointer<CChar>.allocate(capacity: WorkerReadBuffer.size)
    var buffer: uv_buf_t { uv_buf_init(storage, UInt32(Self.size)) }

    deinit { storage.deallocate() }
}

/// NUL-terminated copies of strings and the NULL-terminated array of them that `uv_spawn` takes.
private final class CStringArray {
    let pointers: [UnsafeMutablePointer<CChar>?]
    let base: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>

    init(_ strings: [String]) {
        pointers = strings.map { strdup($0) } + [nil]
        base = .allocate(capacity: pointers.count)
        base.initialize(from: pointers, count: pointers.count)
    }

    deinit {
        for pointer in pointers { free(pointer) }
        base.deallocate()
    }
}

private func milliseconds(_ seconds: Double) -> UInt64 { UInt64(max(0, (seconds * 1000).rounded(.up))) }

// libuv's handle types share a common prefix; these casts view one as another, as its C API expects.
private func asHandle<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_handle_t> {
    UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: uv_handle_t.self)
}

private func asStream<T>(_ pointer: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<uv_stream_t> {
    UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: uv_stream_t.self)
}
