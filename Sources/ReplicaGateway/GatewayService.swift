import CLibUV
import Foundation
import ReplicaCore
import ReplicaHTTP

/// The running gateway: its data directory, database, auth state and HTTP server on one libuv loop.
///
/// `start()` prepares everything and binds the port on the calling thread; `run()` then serves on whichever
/// thread calls it, until SIGINT/SIGTERM (when `handleSignals`) or `requestStop()` from any thread.
public final class GatewayService {
    public let configuration: GatewayConfiguration
    public private(set) var logger: Logger
    private let clock: WallClock
    private let ownsSink: LogFileSink?
    private let loop: UnsafeMutablePointer<uv_loop_t>
    private var server: HTTPServer?
    private var workers: WorkerPool?
    private(set) var gateway: Gateway?
    private var pins: PinStore?
    private var stopSignal: UnsafeMutablePointer<uv_async_t>?
    private var signals: [UnsafeMutablePointer<uv_signal_t>] = []
    private var purgeTimer: UnsafeMutablePointer<uv_timer_t>?
    /// Told of a PIN made while running (after too many wrong guesses), for the console.
    public var onPinRegenerated: ((String) -> Void)?

    /// Seconds between purges of expired sessions.
    static let purgeInterval: UInt64 = 600

    /// `logSink` nil writes to stderr and `<data-dir>/logs/gateway.log`.
    public init(configuration: GatewayConfiguration, clock: WallClock = SystemClock(), logSink: LogSink? = nil) throws {
        try configuration.validate()
        self.configuration = configuration
        self.clock = clock
        try GatewayService.prepareDirectories(configuration)
        if let logSink {
            ownsSink = nil
            logger = Logger(sink: logSink, minimumLevel: configuration.logLevel)
        } else {
            let sink = try LogFileSink(path: configuration.dataDirectory + "/logs/gateway.log")
            ownsSink = sink
            logger = Logger(sink: sink, minimumLevel: configuration.logLevel)
        }
        loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        uv_loop_init(loop)
    }

    deinit {
        uv_loop_close(loop)
        loop.deallocate()
        ownsSink?.close()
    }

    /// The port bound, after `start()`.
    public var port: Int { server?.boundPort ?? 0 }

    /// The PIN in force, after `start()`; for the console, never for the logs.
    public var pin: String { pins?.pin ?? "" }

    /// Opens the stores and binds the port; throws what stops the server from starting.
    public func start(handleSignals: Bool = false) throws {
        _ = raiseOpenFileLimit()
        let database = try Database(path: configuration.dataDirectory + "/replica.sqlite")
        let pins = try PinStore(dataDirectory: configuration.dataDirectory, fixedPin: configuration.fixedPin)
        let auth = Authenticator(sessions: try SessionStore(database: database, clock: clock), pins: pins,
                                 throttle: try LoginThrottle(database: database, clock: clock), logger: logger)
        auth.onPinRegenerated = { [weak self] in self?.onPinRegenerated?($0) }
        let projects = ProjectStore(database: database, clock: clock)
        let library = ProjectLibrary(projectsDirectory: configuration.effectiveProjectsDirectory)
        let report = try library.repair(store: projects, logger: logger)
        if report != ProjectLibrary.RepairReport() { logger.info("project library repaired", report.metadata) }
        let files = WorkPool(loop: loop)
        let scheduler = JobScheduler(jobs: JobStore(database: database, clock: clock), projects: projects,
                                     library: library, files: files, logger: logger, clock: clock)
        let workers = WorkerPool(loop: loop, options: workerOptions(), logger: logger)
        workers.delegate = scheduler
        scheduler.dispatcher = workers
        try scheduler.resume()
        let gateway = Gateway(logger: logger, auth: auth, projects: projects, library: library,
                              pool: files, uploadLimits: configuration.uploads, clock: clock, scheduler: scheduler)
        let tls = try configuration.tlsCertificatePath.map {
            try TLSContext(certificatePath: $0, keyPath: configuration.tlsKeyPath!)
        }
        let server = try HTTPServer(loop: loop, options: httpOptions(), tls: tls, logger: logger)
        server.delegate = gateway
        try server.listen(host: configuration.host, port: configuration.port,
                          fallbackPorts: configuration.portFallbackCount)
        self.server = server
        self.gateway = gateway
        self.workers = workers
        workers.start()
        self.pins = pins
        installStopSignal()
        if handleSignals { installSignalHandlers() }
        startPurgeTimer(auth)
        logger.info("listening", ["http.host": configuration.host, "http.port": "\(server.boundPort)",
                                  "http.tls": tls == nil ? "off" : "on", "data.dir": configuration.dataDirectory,
                                  "workers": "\(configuration.workers)"])
    }

    /// Serves until stopped; returns once in-flight responses are done and the loop is empty.
    public func run() {
        uv_run(loop, UV_RUN_DEFAULT)
        logger.info("stopped")
        // The process usually exits next: write out what is still queued.
        ownsSink?.close()
    }

    /// Begins a graceful stop; safe from any thread.
    public func requestStop() {
        if let stopSignal { uv_async_send(stopSignal) }
    }

    /// The worker pool as configured: `--workers` processes of `--worker-command`, logs beside the gateway's.
    private func workerOptions() -> WorkerPoolOptions {
        let executable = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
            ?? CommandLine.arguments[0]
        var options = WorkerPoolOptions(command: configuration.workerCommand
                                            ?? CommandTemplate.defaultWorkerCommand(executablePath: executable),
                                        count: configuration.workers,
                                        logDirectory: configuration.dataDirectory + "/logs")
        configuration.workerTiming.apply(to: &options)
        return options
    }

    private func httpOptions() -> HTTPServerOptions {
        var options = HTTPServerOptions()
        let limits = configuration.http
        limits.headDeadline.map { options.headDeadline = $0 }
        limits.keepAliveIdleTimeout.map { options.keepAliveIdleTimeout = $0 }
        limits.bodyInactivityTimeout.map { options.bodyInactivityTimeout = $0 }
        limits.maxConnections.map { options.maxConnections = $0 }
        limits.maxConnectionsPerAddress.map { options.maxConnectionsPerAddress = $0 }
        limits.sweepInterval.map { options.sweepInterval = $0 }
        limits.shutdownGracePeriod.map { options.shutdownGracePeriod = $0 }
        return options
    }

    /// Makes the data directory and its logs; the projects directory only with a new data directory (no
    /// database yet), so a library on a disk that failed to mount is reported, not silently replaced.
    private static func prepareDirectories(_ configuration: GatewayConfiguration) throws {
        let path = configuration.dataDirectory
        var directories = [path, path + "/logs"]
        if !FileManager.default.fileExists(atPath: path + "/replica.sqlite") {
            directories.append(configuration.effectiveProjectsDirectory)
        }
        for directory in directories {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            } catch {
                throw OptionsError("cannot create data directory \(directory): \(error.localizedDescription)")
            }
        }
    }

    // MARK: Stopping

    private func installStopSignal() {
        let async = UnsafeMutablePointer<uv_async_t>.allocate(capacity: 1)
        uv_async_init(loop, async) { handle in
            Unmanaged<GatewayService>.fromOpaque(handle!.pointee.data).takeUnretainedValue().beginShutdown()
        }
        async.pointee.data = Unmanaged.passUnretained(self).toOpaque()
        stopSignal = async
    }

    private func installSignalHandlers() {
        for number in [SIGINT, SIGTERM] {
            let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            uv_signal_init(loop, handle)
            handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            uv_signal_start(handle, { handle, number in
                let service = Unmanaged<GatewayService>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
                service.logger.info("signal received, stopping", ["signal": "\(number)"])
                service.beginShutdown()
            }, number)
            signals.append(handle)
        }
    }

    private func startPurgeTimer(_ auth: Authenticator) {
        let timer = UnsafeMutablePointer<uv_timer_t>.allocate(capacity: 1)
        uv_timer_init(loop, timer)
        timer.pointee.data = Unmanaged.passRetained(auth).toOpaque()
        let interval = GatewayService.purgeInterval * 1000
        uv_timer_start(timer, { timer in
            Unmanaged<Authenticator>.fromOpaque(timer!.pointee.data).takeUnretainedValue().purge()
        }, interval, interval)
        purgeTimer = timer
    }

    private func beginShutdown() {
        guard let server else { return }
        self.server = nil
        for handle in signals { closeHandle(handle) }
        signals = []
        if let purgeTimer {
            Unmanaged<Authenticator>.fromOpaque(purgeTimer.pointee.data).release()
            closeHandle(purgeTimer)
            self.purgeTimer = nil
        }
        // The workers stop with the server: their tasks in flight go back to pending, for the next start.
        workers?.shutdown { [self] in workers = nil }
        server.shutdown { [self] in
            if let stopSignal { closeHandle(stopSignal) }
            stopSignal = nil
            gateway = nil
        }
    }

    private func closeHandle<T>(_ handle: UnsafeMutablePointer<T>) {
        uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { $0?.deallocate() }
    }
}

/// The worker pool's timing as a configuration value; not on the command line, tests shorten it. Each nil keeps
/// the protocol's default (`WorkerPoolOptions`).
public struct WorkerTimingSetting: Equatable, Sendable {
    /// Seconds without a line before a worker counts as hung.
    public var silenceTimeout: Double?
    /// Seconds a new worker has to say hello.
    public var helloTimeout: Double?
    /// Seconds before the first restart of a failed worker.
    public var restartDelay: Double?
    /// Extra environment variables for the workers (tests tell a fake worker how to misbehave).
    public var environment: [String: String] = [:]

    public init() {}

    func apply(to options: inout WorkerPoolOptions) {
        silenceTimeout.map { options.silenceTimeout = $0 }
        helloTimeout.map { options.helloTimeout = $0 }
        restartDelay.map { options.restartDelay = $0 }
        options.environment.merge(environment) { $1 }
    }
}
