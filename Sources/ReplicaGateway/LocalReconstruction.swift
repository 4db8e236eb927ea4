import CLibUV
import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaImageIO
import ReplicaProtocol

/// `replica-link reconstruct`: plans the same graph as the server and runs it on a local worker pool, with the
/// same scheduler and the same state in SQLite, so an interrupted run resumes where it stopped.
///
/// The work folder is laid out as a project: `images` (a link to the photos' folder), `work/` (the stages'
/// results and `job.log`) and `reconstruct.sqlite` (the job and its tasks).
public final class LocalReconstruction {
    /// What the run reports to a person; stderr by default.
    public var report: (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
    private let options: ReconstructOptions
    private let environment: [String: String]

    public init(options: ReconstructOptions, environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.options = options
        self.environment = environment
    }

    /// A reason to stop before starting, with the exit status it calls for.
    struct Refusal: Error {
        var message: String
        var status: Int32
    }

    /// Runs to the end (or to an interruption) and returns the process's exit status (`ReconstructExit`).
    public func run() -> Int32 {
        do {
            let detail = try detailLevel()
            let photos = try listPhotos()
            let folder = try prepareWorkFolder()
            return try execute(photos: photos, detail: detail, folder: folder)
        } catch let refusal as Refusal {
            report("replica-link: " + refusal.message)
            return refusal.status
        } catch {
            report("replica-link: \(error)")
            return ReconstructExit.failed
        }
    }

    // MARK: - Before the run

    private func detailLevel() throws -> DetailLevel {
        guard options.outputPath == nil else {
            throw Refusal(message: "--output: no stage of this build makes a model yet; the pipeline ends with "
                          + "\(PipelineStage.allCases.last!.rawValue)", status: ReconstructExit.usage)
        }
        guard let detail = DetailLevel(rawValue: options.detail), detail != .custom else {
            throw Refusal(message: "--detail must be preview, reduced, medium, full or raw, not '\(options.detail)'",
                          status: ReconstructExit.usage)
        }
        return detail
    }

    /// The photos of the images folder, by content; other files (notes, ground truth) are named and left out.
    private func listPhotos() throws -> [String] {
        let directory = absolute(options.imagesDirectory)
        guard let status = try? FileSystem.status(directory), status.isDirectory else {
            throw Refusal(message: "--images: \(directory) is not a folder", status: ReconstructExit.noInput)
        }
        var photos: [String] = [], others: [String] = []
        for name in try FileSystem.list(directory).sorted() where !name.hasPrefix(".") {
            let path = directory + "/" + name
            guard (try? FileSystem.status(path))?.isRegularFile == true else { continue }
            if Self.looksLikePhoto(path) { photos.append(name) } else { others.append(name) }
        }
        if !others.isEmpty { report("Not photos, left out: " + others.joined(separator: ", ")) }
        guard !photos.isEmpty else {
            throw Refusal(message: "--images: \(directory) holds no photo", status: ReconstructExit.noInput)
        }
        return photos
    }

    private static func looksLikePhoto(_ path: String) -> Bool {
        guard let handle = FileHandle(forReadingAtPath: path) else { return false }
        defer { try? handle.close() }
        let head = (try? handle.read(upToCount: 16)) ?? Data()
        return ImageFormatDetection.detect([UInt8](head)) != nil
    }

    /// Makes (or reopens) the work folder: `images` must link to this run's photos, so two runs never mix.
    private func prepareWorkFolder() throws -> String {
        let images = absolute(options.imagesDirectory)
        let folder: String
        if let given = options.workDirectory {
            folder = absolute(given)
            try FileSystem.ensureDirectory(folder)
        } else {
            let temporary = environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            let base = temporary + "/replica-reconstruct-XXXXXX"
            var template = Array(base.utf8CString)
            guard mkdtemp(&template) != nil else {
                throw Refusal(message: "cannot make a work folder under \(base): \(String(cString: strerror(errno)))",
                              status: ReconstructExit.failed)
            }
            folder = String(cString: template)
        }
        let link = folder + "/images"
        if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link) {
            guard target == images else {
                throw Refusal(message: "--work-dir: \(folder) holds the work of \(target), not of \(images); "
                              + "choose another folder", status: ReconstructExit.usage)
            }
        } else {
            try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: images)
        }
        try FileSystem.ensureDirectory(folder + "/work")
        report("Work folder: \(folder)")
        return folder
    }

    private func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        return URL(fileURLWithPath: full).standardizedFileURL.path
    }

    // MARK: - The run

    private func execute(photos: [String], detail: DetailLevel, folder: String) throws -> Int32 {
        let sink = try LogFileSink(path: folder + "/reconstruct.log", toStandardError: false)
        defer { sink.close() }
        let logger = Logger(sink: sink, minimumLevel: options.logLevel)
        let database = try Database(path: folder + "/reconstruct.sqlite")
        let projects = ProjectStore(database: database)
        let jobs = JobStore(database: database)
        let project = try localProject(projects, folder: folder)
        var computeOptions = ComputeOptions()
        computeOptions.detail = detail
        computeOptions.isObjectMaskingEnabled = options.objectMasking

        let loop = UnsafeMutablePointer<uv_loop_t>.allocate(capacity: 1)
        uv_loop_init(loop)
        defer {
            uv_loop_close(loop)
            loop.deallocate()
        }
        let library = ProjectLibrary(projectsDirectory: (folder as NSString).deletingLastPathComponent)
        let scheduler = JobScheduler(jobs: jobs, projects: projects, library: library, files: WorkPool(loop: loop),
                                     logger: logger)
        let workers = WorkerPool(loop: loop, options: workerOptions(folder: folder), logger: logger)
        workers.delegate = scheduler
        scheduler.dispatcher = workers
        let run = RunState(display: makeDisplay(), workers: workers, loop: loop)
        scheduler.onChange = { run.show($0) }

        guard let outcome = try resumeOrSubmit(scheduler, jobs: jobs, project: project, photos: photos,
                                               options: computeOptions) else {
            report("Already done: the work folder holds this reconstruction's results.")
            return ReconstructExit.success
        }
        run.jobID = outcome
        run.installSignals()
        workers.start()
        uv_run(loop, UV_RUN_DEFAULT)
        return try conclude(run, jobs: jobs, folder: folder)
    }

    /// The one project of a work folder, made on the first run.
    private func localProject(_ projects: ProjectStore, folder: String) throws -> ProjectDTO {
        if let project = try projects.list().first { return project }
        let id = UUID().uuidString.lowercased()
        try projects.insertProject(id: id, name: (folder as NSString).lastPathComponent, images: [])
        return try projects.existing(id: id)
    }

    /// Takes up this reconstruction's unfinished job, or plans a new one; nil when an equal job already finished.
    private func resumeOrSubmit(_ scheduler: JobScheduler, jobs: JobStore, project: ProjectDTO, photos: [String],
                                options computeOptions: ComputeOptions) throws -> String? {
        let previous = try jobs.jobs(projectID: project.id).first
        let same = previous.map { $0.options == computeOptions && $0.lastStage == options.stopAfter } ?? false
        if let previous, same, previous.state == .completed, try photosUnchanged(jobs, previous, photos) {
            return nil
        }
        if let previous, same, previous.state.isActive, try photosUnchanged(jobs, previous, photos) {
            try scheduler.resume()
            report("Resuming the run this work folder was left with.")
            return previous.id
        }
        if let previous, previous.state.isActive {
            try jobs.finishJob(id: previous.id, state: .cancelled)
        }
        return try scheduler.submit(project: project, images: photos, options: computeOptions,
                                    lastStage: options.stopAfter, pairing: options.pairing).id
    }

    private func photosUnchanged(_ jobs: JobStore, _ job: JobRecord, _ photos: [String]) throws -> Bool {
        let planned = try jobs.tasks(jobID: job.id).filter { $0.stage == .preProcessing }.compactMap(\.image)
        return planned == photos
    }

    private func workerOptions(folder: String) -> WorkerPoolOptions {
        let command = options.workerCommand ?? CommandTemplate.defaultWorkerCommand(
            executablePath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                ?? CommandLine.arguments[0])
        return WorkerPoolOptions(command: command, count: options.workers, logDirectory: folder)
    }

    private func makeDisplay() -> ProgressDisplay {
        let style = options.progressStyle ?? (ProgressDisplay.isTerminal(fd: 2) ? .bar : .lines)
        return ProgressDisplay(style: style, columns: ProgressDisplay.terminalColumns(fd: 2) ?? 80)
    }

    /// The final report and exit status, once the loop has ended.
    private func conclude(_ run: RunState, jobs: JobStore, folder: String) throws -> Int32 {
        if run.interrupted {
            run.display.finish("Interrupted; run again with --work-dir \(folder) to resume.")
            return ReconstructExit.interrupted
        }
        guard let jobID = run.jobID, let job = try jobs.job(id: jobID) else { return ReconstructExit.failed }
        let leftOut = try jobs.warnings(jobID: jobID).filter { $0.message.contains("was left out") }.count
        switch job.state {
        case .completed:
            let note = leftOut == 0 ? "" : "; \(leftOut) photo\(leftOut == 1 ? "" : "s") left out (see work/job.log)"
            run.display.finish("Done in \(ProgressDisplay.formatDuration(run.elapsed))\(note). "
                               + "Results in \(folder)/work")
            return ReconstructExit.success
        case .failed where run.workersUnavailable:
            run.display.finish("Failed: \(job.errorMessage)")
            return ReconstructExit.unavailable
        default:
            let reason = job.errorMessage.isEmpty ? "the job ended as \(job.state)" : job.errorMessage
            run.display.finish("Failed: \(reason)")
            return ReconstructExit.failed
        }
    }
}

/// The run's moving parts on the loop thread: the display, and stopping the pool when the job ends or a
/// signal arrives.
private final class RunState {
    let display: ProgressDisplay
    let workers: WorkerPool
    let loop: UnsafeMutablePointer<uv_loop_t>
    var jobID: String?
    var interrupted = false
    var workersUnavailable = false
    private var stopping = false
    private var startingFraction: Double?
    private let started = Date()
    private var signals: [UnsafeMutablePointer<uv_signal_t>] = []

    init(display: ProgressDisplay, workers: WorkerPool, loop: UnsafeMutablePointer<uv_loop_t>) {
        self.display = display
        self.workers = workers
        self.loop = loop
    }

    var elapsed: Double { Date().timeIntervalSince(started) }

    func show(_ snapshot: JobSnapshot) {
        guard snapshot.jobID == jobID else { return }
        if snapshot.state.isActive {
            // A resumed run starts part-way: the estimate comes from this run's own pace.
            let start = startingFraction ?? snapshot.progress
            startingFraction = start
            let gained = start < 1 ? (snapshot.progress - start) / (1 - start) : 1
            let unit = snapshot.stage == PipelineStage.preProcessing.rawValue ? "photos" : "tasks"
            let detail = snapshot.stageTotal > 0 ? "\(snapshot.stageFinished)/\(snapshot.stageTotal) \(unit)" : nil
            display.update(ProgressSnapshot(
                stage: snapshot.stage.isEmpty ? "Queued" : snapshot.stage, fraction: snapshot.progress,
                elapsed: elapsed,
                estimate: ProgressDisplay.estimateRemaining(fraction: gained, elapsed: elapsed),
                detail: detail))
        } else {
            workersUnavailable = snapshot.errorMessage.hasPrefix(JobScheduler.workersUnavailable)
            stop()
        }
    }

    func installSignals() {
        for number in [SIGINT, SIGTERM] {
            let handle = UnsafeMutablePointer<uv_signal_t>.allocate(capacity: 1)
            uv_signal_init(loop, handle)
            handle.pointee.data = Unmanaged.passUnretained(self).toOpaque()
            uv_signal_start(handle, { handle, _ in
                let run = Unmanaged<RunState>.fromOpaque(handle!.pointee.data).takeUnretainedValue()
                run.interrupted = true
                run.stop()
            }, number)
            signals.append(handle)
        }
    }

    /// Stops the workers (tasks in flight go back to pending) and closes the signal handles, so the loop ends.
    func stop() {
        guard !stopping else { return }
        stopping = true
        for handle in signals {
            uv_close(UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)) { $0?.deallocate() }
        }
        signals = []
        workers.shutdown {}
    }
}
