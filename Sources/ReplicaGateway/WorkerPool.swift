import CLibUV
import Foundation
import ReplicaCore
import ReplicaProtocol

/// How the pool starts and watches its workers.
struct WorkerPoolOptions: Equatable {
    /// The worker's argv; argv[0] without a slash is looked up in PATH. Default set by the caller.
    var command: [String]
    /// Worker processes kept running; 1...1024.
    var count: Int
    /// Where `worker-<n>.log` (n = 1...count, the slot) is written.
    var logDirectory: String
    /// A log file is rotated to `worker-<n>.log.1` (older ones shift to .2, .3; 3 kept) past this many bytes.
    var logFileLimit: UInt64 = 8 << 20
    /// Seconds to wait for `hello` after spawning; protocol: 30.
    var helloTimeout: Double = Double(WorkerProtocol.silenceTimeout)
    /// Seconds without any line from a worker before it is killed as hung; protocol: 30.
    var silenceTimeout: Double = Double(WorkerProtocol.silenceTimeout)
    /// Seconds between SIGTERM and SIGKILL of the process group in `terminate(taskId:)`; 1.5 (must be < 2).
    var terminateGrace: Double = 1.5
    /// Seconds `shutdown` waits for workers to exit before SIGKILL; protocol: 10.
    var shutdownGrace: Double = Double(WorkerProtocol.stopGracePeriod)
    /// Restart delay after a failed start or a crash: starts here, doubles each consecutive failure, capped.
    var restartDelay: Double = 0.5
    /// Seconds; the cap of the doubling restart delay, and the delay after exit status 78.
    var maximumRestartDelay: Double = 30
    /// Extra environment variables for the worker (the gateway's environment is inherited).
    var environment: [String: String] = [:]

    /// Throws an `OptionsError` naming the field that makes no sense.
    func validate() throws {
        guard let program = command.first, !program.isEmpty else {
            throw OptionsError("command must name the worker's program")
        }
        if command.contains(where: { $0.utf8.contains(0) }) {
            throw OptionsError("command must not contain NUL characters")
        }
        guard (1...1024).contains(count) else { throw OptionsError("count must be 1 to 1024 workers, not \(count)") }
        guard !logDirectory.isEmpty else { throw OptionsError("logDirectory must name a folder") }
        guard logFileLimit >= 1024 else {
            throw OptionsError("logFileLimit must be at least 1024 bytes, not \(logFileLimit)")
        }
        let seconds: [(String, Double)] = [
            ("helloTimeout", helloTimeout), ("silenceTimeout", silenceTimeout), ("shutdownGrace", shutdownGrace),
            ("restartDelay", restartDelay), ("maximumRestartDelay", maximumRestartDelay),
        ]
        for (name, value) in seconds where !(value > 0 && value <= 86_400) {
            throw OptionsError("\(name) must be more than 0 and at most 86400 seconds, not \(value)")
        }
        guard terminateGrace > 0 && terminateGrace < 2 else {
            throw OptionsError("terminateGrace must be more than 0 and less than 2 seconds, not \(terminateGrace)")
        }
        guard maximumRestartDelay >= restartDelay else {
            throw OptionsError("maximumRestartDelay (\(maximumRestartDelay) s) must not be below restartDelay "
                               + "(\(restartDelay) s)")
        }
        for (name, value) in environment
        where name.isEmpty || name.contains("=") || name.utf8.contains(0) || value.utf8.contains(0) {
            throw OptionsError("environment variable '\(name)' needs a name without '=' and no NUL characters")
        }
    }
}

/// How a task sent to a worker ended.
enum TaskEnd: Equatable {
    case result(TaskResult)
    case failure(TaskFailure)
    /// The worker crashed, hung, broke the protocol or its output ended: counts as an attempt, retryable.
    /// The string says what happened for a person: "replica-worker 2 (pid 4242) was killed by signal 9".
    case lost(String)
    /// Stopped on purpose (`terminate(taskId:)`, `shutdown`): does not count as an attempt.
    case stopped
}

/// What the pool tells the scheduler; every call comes on the loop thread.
protocol WorkerPoolDelegate: AnyObject {
    /// A worker became idle (after `welcome`, or after its task ended); the delegate may `dispatch` now.
    func workerPoolHasIdleWorker(_ pool: WorkerPool)
    func workerPool(_ pool: WorkerPool, progress: TaskProgress)
    func workerPool(_ pool: WorkerPool, warning: TaskWarning)
    /// Exactly once per dispatched task, before the worker is reported idle again.
    func workerPool(_ pool: WorkerPool, ended taskId: TaskID, _ end: TaskEnd)
    /// Every slot's latest start failed (spawn error, exit before hello, reject, hello timeout): nothing can run
    /// until the installation is fixed. Said once per such episode; the pool keeps retrying at its capped delay.
    func workerPool(_ pool: WorkerPool, cannotStart reason: String)
}

/// The gateway's supervisor of `replica-worker` processes on its libuv loop: spawns one per slot, speaks the
/// worker protocol with each, restarts them with a doubling delay, and stops them.
///
/// Every method is called on the loop thread and every delegate call comes on it. A started pool must have
/// finished `shutdown` before it is released.
final class WorkerPool {
    /// As given; validated by the caller.
    let options: WorkerPoolOptions
    weak var delegate: WorkerPoolDelegate?
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private let logger: Logger
    private let logWriter: WorkerLogWriter
    private let readBuffer = WorkerReadBuffer()
    private var slots: [WorkerSlot] = []
    /// Task ends decided by the pool itself, told on the next loop iteration rather than inside `dispatch`.
    private var notices: [(TaskID, TaskEnd)] = []
    private var noticeTimer: UnsafeMutablePointer<uv_timer_t>?
    /// Workers (spawned or not) whose handles are not all closed yet.
    private var openWorkers = 0
    private var openTimers = 0
    private var isStarted = false
    private var isShuttingDown = false
    private var shutdownCompletion: (() -> Void)?
    private var cannotStartSaid = false
    private var rejectionLogged = false

    /// A worker that lived this many seconds resets its slot's run of failures.
    static let stableLifetime = 60.0

    init(loop: UnsafeMutablePointer<uv_loop_t>, options: WorkerPoolOptions, logger: Logger) {
        do {
            try options.validate()
        } catch {
            preconditionFailure("the worker pool's options were not validated: \(error)")
        }
        // libuv writes to a worker's stdin with write(2): a worker that died would raise SIGPIPE and kill the
        // gateway. Ignored process-wide (as HTTPServer does), the write fails with EPIPE and only that worker goes.
        signal(SIGPIPE, SIG_IGN)
        self.loop = loop
        self.options = options
        self.logger = logger
        logWriter = WorkerLogWriter(logger: logger)
    }

    deinit {
        precondition(!isStarted || openWorkers + openTimers == 0,
                     "a started WorkerPool was released before its shutdown completed")
        logWriter.stop()
    }

    private var opaque: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    // MARK: - The scheduler's interface

    /// Spawns every slot's worker.
    func start() {
        precondition(!isStarted && !isShuttingDown, "WorkerPool.start called twice or after shutdown")
        isStarted = true
        Self.keepInheritedDescriptorsFromWorkers()
        if mkdir(options.logDirectory, 0o700) != 0 && errno != EEXIST {
            logger.error("cannot create the workers' log folder",
                         ["log.path": options.logDirectory, "error": String(cString: strerror(errno))])
        }
        noticeTimer = makeTimer()
        slots = (1...options.count).map { number in
            let log = WorkerLogFile(path: options.logDirectory + "/worker-\(number).log", limit: options.logFileLimit)
            return WorkerSlot(number: number, logFile: log, restartTimer: makeTimer())
        }
        for slot in slots { spawn(slot) }
    }

    /// Marks close-on-exec every descriptor above stderr that this process inherited without it (what its
    /// parent left open: a pipe a supervisor waits on, a socket). A worker would otherwise hold it open after the
    /// gateway died, and whoever waits for its end would wait for the orphaned workers too. The gateway's own
    /// descriptors are opened close-on-exec already; this only catches what came from outside.
    static func keepInheritedDescriptorsFromWorkers() {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for entry in entries {
            guard let descriptor = Int32(entry), descriptor > 2 else { continue }
            let flags = fcntl(descriptor, F_GETFD)
            if flags >= 0 && flags & FD_CLOEXEC == 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    /// Sends the task to an idle, welcomed worker whose hello listed `task.kind`; false when there is none.
    ///
    /// A task that cannot be written as a protocol line still counts as sent: it ends `.failure`, not
    /// retryable, on the next loop iteration.
    func dispatch(_ task: TaskAssignment) -> Bool {
        guard !isShuttingDown, let worker = idleWorker(for: task.kind) else { return false }
        precondition(!slots.contains { $0.worker?.task == task.taskId }, "task \(task.taskId) is already running")
        let line: [UInt8]
        do {
            line = try GatewayMessage.task(task).encodeLine()
        } catch {
            logger.error("a task cannot be sent to a worker", ["task.id": task.taskId.rawValue, "error": "\(error)"])
            let message = "the task cannot be sent to a worker: \(error)"
            notify(task.taskId, .failure(TaskFailure(taskId: task.taskId, message: message, retryable: false)))
            return true
        }
        worker.logger.debug("task sent", ["task.id": task.taskId.rawValue, "task.kind": task.kind.rawValue,
                                          "task.attempt": String(task.attempt)])
        worker.run(task.taskId, line: line)
        return true
    }

    /// Idle workers able to run `kind`.
    var workerCount: Int { options.count }

    func idleWorkers(for kind: TaskKind) -> Int {
        guard !isShuttingDown else { return 0 }
        return slots.filter { $0.worker.map { $0.isIdle && $0.capabilities.contains(kind) } ?? false }.count
    }

    /// Stops the worker running `taskId`: SIGTERM to its process group, SIGKILL of the group after
    /// `terminateGrace` if it has not exited; the task ends `.stopped`; the slot restarts at once (no backoff).
    /// Unknown or finished task: no-op.
    func terminate(taskId: TaskID) {
        slots.first { $0.worker?.task == taskId }?.worker?.terminate(grace: options.terminateGrace)
    }

    /// `shutdown` to every worker, then closes their stdin; SIGKILLs process groups still alive after
    /// `shutdownGrace`; tasks in flight end `.stopped`; no restarts; `completion` once every process has exited
    /// and every handle is closed (so `uv_run` can return). A pool never started completes at once.
    func shutdown(completion: @escaping () -> Void) {
        guard !isShuttingDown else { return }
        isShuttingDown = true
        shutdownCompletion = completion
        logger.info("stopping workers", ["workers": String(processIDs.count)])
        deliverNotices()
        if let noticeTimer { closeTimer(noticeTimer) }
        for slot in slots {
            closeTimer(slot.restartTimer)
            slot.worker?.shutdown(grace: options.shutdownGrace)
        }
        completeShutdownIfDone()
    }

    /// Live workers' pids (slot order), for tests and the status log.
    var processIDs: [Int32] {
        slots.compactMap { slot in slot.worker.flatMap { $0.hasExited ? nil : $0.pid } }
    }

    // MARK: - Starting and restarting

    private func idleWorker(for kind: TaskKind) -> WorkerProcess? {
        slots.lazy.compactMap(\.worker).first { $0.isIdle && $0.capabilities.contains(kind) }
    }

    private func spawn(_ slot: WorkerSlot) {
        guard !isShuttingDown else { return }
        let worker = WorkerProcess(slot: slot.number, loop: loop, options: options, logger: logger,
                                   logFile: slot.logFile, logWriter: logWriter, readBuffer: readBuffer)
        worker.owner = self
        openWorkers += 1
        do {
            try worker.spawn()
            slot.worker = worker
        } catch {
            logger.error("cannot start a worker", ["worker.slot": String(slot.number), "error": "\(error)"])
            slot.consecutiveFailures += 1
            scheduleRestart(slot, after: backoff(slot))
            startFailed(slot, reason: "\(options.command[0]) could not be started: \(error)")
        }
    }

    /// The doubling delay after the slot's latest failure, capped.
    private func backoff(_ slot: WorkerSlot) -> Double {
        let doublings = Double(max(0, slot.consecutiveFailures - 1))
        return min(options.maximumRestartDelay, options.restartDelay * pow(2, doublings))
    }

    private func scheduleRestart(_ slot: WorkerSlot, after delay: Double) {
        logger.info("restarting worker", ["worker.slot": String(slot.number), "restart.delay_s": "\(delay)"])
        uv_timer_start(slot.restartTimer, { timer in
            let pool = Unmanaged<WorkerPool>.fromOpaque(timer!.pointee.data).takeUnretainedValue()
            if let slot = pool.slots.first(where: { $0.restartTimer == timer }) { pool.spawn(slot) }
        }, UInt64((delay * 1000).rounded(.up)), 0)
    }

    /// Tells the delegate, once per episode, when no slot's latest start got as far as `welcome`.
    private func startFailed(_ slot: WorkerSlot, reason: String) {
        slot.latestStartFailed = true
        guard !cannotStartSaid, slots.allSatisfy(\.latestStartFailed) else { return }
        cannotStartSaid = true
        logger.error("no worker can start; retrying", ["reason": reason])
        delegate?.workerPool(self, cannotStart: reason)
    }

    // MARK: - Timers and notices

    private func makeTimer() -> UnsafeMutablePointer<uv_timer_t> {
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        timer.pointee.data = opaque
        openTimers += 1
        return timer
    }

    private func closeTimer(_ timer: UnsafeMutablePointer<uv_timer_t>) {
        let handle = UnsafeMutableRawPointer(timer).assumingMemoryBound(to: uv_handle_t.self)
        guard uv_is_closing(handle) == 0 else { return }
        uv_close(handle) { handle in
            let pool = Unmanaged<WorkerPool>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
            handle!.deallocate()
            pool.openTimers -= 1
            pool.completeShutdownIfDone()
        }
    }

    private func notify(_ taskId: TaskID, _ end: TaskEnd) {
        notices.append((taskId, end))
        guard let noticeTimer else { return }
        uv_timer_start(noticeTimer, { timer in
            Unmanaged<WorkerPool>.fromOpaque(timer!.pointee.data).takeUnretainedValue().deliverNotices()
        }, 0, 0)
    }

    private func deliverNotices() {
        let due = notices
        notices = []
        for (taskId, end) in due { delegate?.workerPool(self, ended: taskId, end) }
    }

    private func completeShutdownIfDone() {
        guard isShuttingDown, openWorkers == 0, openTimers == 0, let completion = shutdownCompletion else { return }
        shutdownCompletion = nil
        logWriter.stop()
        logger.info("workers stopped")
        completion()
    }
}

// MARK: - What the workers report

extension WorkerPool: WorkerProcessOwner {
    private func slot(of worker: WorkerProcess) -> WorkerSlot { slots[worker.slot - 1] }

    func workerWelcomed(_ worker: WorkerProcess) {
        slot(of: worker).latestStartFailed = false
        cannotStartSaid = false
        rejectionLogged = false
        if !isShuttingDown && worker.isIdle { delegate?.workerPoolHasIdleWorker(self) }
    }

    func workerRejected(_ worker: WorkerProcess, reason: String) {
        // The same wrong installation is rejected again at every restart: one error says it.
        if rejectionLogged {
            worker.logger.info("worker rejected", ["reason": reason])
        } else {
            rejectionLogged = true
            worker.logger.error("worker rejected: its protocol version is not this gateway's", ["reason": reason])
        }
    }

    func worker(_ worker: WorkerProcess, progress: TaskProgress) {
        delegate?.workerPool(self, progress: progress)
    }

    func worker(_ worker: WorkerProcess, warning: TaskWarning) {
        delegate?.workerPool(self, warning: warning)
    }

    func worker(_ worker: WorkerProcess, answered taskId: TaskID, _ end: TaskEnd) {
        slot(of: worker).consecutiveFailures = 0
        delegate?.workerPool(self, ended: taskId, end)
        if !isShuttingDown && worker.isIdle { delegate?.workerPoolHasIdleWorker(self) }
    }

    func workerIsGone(_ worker: WorkerProcess, _ departure: WorkerDeparture) {
        let slot = slot(of: worker)
        if slot.worker === worker { slot.worker = nil }
        if let (taskId, end) = departure.task {
            if case .lost(let reason) = end {
                worker.logger.warning("task lost with its worker", ["task.id": taskId.rawValue, "reason": reason])
            }
            delegate?.workerPool(self, ended: taskId, end)
        }
        guard !isShuttingDown else { return }
        if departure.stopRequest == .terminate { return scheduleRestart(slot, after: 0) }
        if departure.lifetime >= Self.stableLifetime { slot.consecutiveFailures = 0 }
        slot.consecutiveFailures += 1
        scheduleRestart(slot, after: departure.exitedAsRejected ? options.maximumRestartDelay : backoff(slot))
        if !departure.wasWelcomed { startFailed(slot, reason: departure.description) }
    }

    func workerClosed(_ worker: WorkerProcess) {
        openWorkers -= 1
        completeShutdownIfDone()
    }
}

/// One of the pool's places for a worker: its log file, its restart timer and its run of failures.
private final class WorkerSlot {
    /// 1...count, as in `worker-<n>.log`.
    let number: Int
    let logFile: WorkerLogFile
    let restartTimer: UnsafeMutablePointer<uv_timer_t>
    var worker: WorkerProcess?
    /// Crashes and failed starts since the last task run to its end (or a worker that lived a minute).
    var consecutiveFailures = 0
    /// The slot's latest worker did not get as far as `welcome`.
    var latestStartFailed = false

    init(number: Int, logFile: WorkerLogFile, restartTimer: UnsafeMutablePointer<uv_timer_t>) {
        self.number = number
        self.logFile = logFile
        self.restartTimer = restartTimer
    }
}
