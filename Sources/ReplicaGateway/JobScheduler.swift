import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaProtocol

/// What the scheduler needs of a worker pool: `WorkerPool` is the real one; tests use a fake.
protocol TaskDispatcher: AnyObject {
    /// Sends the task to an idle worker that runs its kind; false when there is none.
    func dispatch(_ task: TaskAssignment) -> Bool
    func idleWorkers(for kind: TaskKind) -> Int
    /// The workers the pool runs, busy or not: what a job's plan divides its work for.
    var workerCount: Int { get }
    /// Stops the task's worker; the task then ends `.stopped`.
    func terminate(taskId: TaskID)
}

extension WorkerPool: TaskDispatcher {}

/// A job's state at one moment, for the command line's progress display.
struct JobSnapshot: Equatable {
    var jobID: String
    var state: JobState
    var progress: Double
    /// The stage running now (`processingStage`), empty once the job has ended.
    var stage: String
    /// Tasks of the current stage finished, and how many it has.
    var stageFinished: Int
    var stageTotal: Int
    var errorMessage: String
}

/// Runs jobs: keeps each active job's graph in memory (its truth stays in SQLite), hands ready tasks to idle
/// workers, follows their progress and answers, and keeps the project's status, progress and stage current.
///
/// Fairness: each idle worker takes a ready task of the job with the fewest tasks running, the oldest job first
/// among equals, so one job alone uses every worker, several jobs share them, and none waits behind another.
/// Everything runs on the loop thread.
final class JobScheduler: WorkerPoolDelegate {
    /// Limits of the scheduler.
    struct Options {
        /// Attempts of one task (failures that may pass, crashes, hangs) before its job fails; default 3.
        var maximumAttempts = 3
        /// Seconds between writes of a job's progress to the database while tasks report it; default 0.5.
        var progressWriteInterval = 0.5
    }

    private let jobs: JobStore
    private let projects: ProjectStore
    private let library: ProjectLibrary
    private let files: WorkPool?
    private let logger: Logger
    private let clock: WallClock
    private let options: Options
    weak var dispatcher: TaskDispatcher?
    private var active: [String: ActiveJob] = [:]
    /// Active jobs' ids, oldest first.
    private var order: [String] = []
    /// Told of every change of a job, for the command line.
    var onChange: ((JobSnapshot) -> Void)?

    /// `files` runs the appends to each project's `work/job.log`; nil writes no project log.
    init(jobs: JobStore, projects: ProjectStore, library: ProjectLibrary, files: WorkPool?, logger: Logger,
         clock: WallClock = SystemClock(), options: Options = Options()) {
        self.jobs = jobs
        self.projects = projects
        self.library = library
        self.files = files
        self.logger = logger
        self.clock = clock
        self.options = options
    }

    /// Whether the project has a job queued or processing.
    func isBusy(projectID: String) -> Bool { active.values.contains { $0.record.projectID == projectID } }

    // MARK: - Submitting, resuming, cancelling

    /// Plans and queues a job for the project's `images`; the project becomes `queued`.
    @discardableResult
    func submit(project: ProjectDTO, images: [String], options: ComputeOptions,
                lastStage: PipelineStage? = nil, pairing: PairSelectionStrategy = .automatic) throws -> JobRecord {
        let record = JobRecord(id: UUID().uuidString.lowercased(), projectID: project.id, options: options,
                               lastStage: lastStage, state: .queued, progress: 0, errorMessage: "",
                               createdAt: clock.now)
        let planned = JobPlanner.plan(images: images, options: options, lastStage: lastStage, pairing: pairing,
                                      workers: dispatcher?.workerCount ?? 1)
        let tasks = try jobs.database.transaction {
            let tasks = try jobs.insertJob(record, tasks: planned)
            try projects.updateComputation(projectID: project.id, status: "queued", progress: 0, stage: "",
                                           errorMessage: "")
            return tasks
        }
        let job = ActiveJob(record: record, folder: library.folder(project.name), tasks: tasks)
        activate(job)
        jobLog(job).info("job queued", ["job.detail": options.detail.rawValue, "job.tasks": "\(tasks.count)"])
        appendToProjectLog(job, "job \(record.id) queued: detail \(options.detail.rawValue), "
                           + "\(images.count) photo\(images.count == 1 ? "" : "s")")
        pump()
        return record
    }

    /// Takes up the jobs a previous run left queued or processing: finished tasks stay finished, the rest run.
    func resume() throws {
        for record in try jobs.activeJobs() {
            guard let project = try projects.project(id: record.projectID) else { continue }
            let job = ActiveJob(record: record, folder: library.folder(project.name),
                                tasks: try jobs.tasks(jobID: record.id))
            activate(job)
            jobLog(job).info("job resumed", ["job.tasks.finished": "\(job.finishedCount)",
                                            "job.tasks": "\(job.tasks.count)"])
            if job.finishedCount == job.tasks.count { try complete(job) }
        }
        try settleOrphanedStatuses()
        pump()
    }

    /// A project marked queued or processing with no job behind it (its job row is gone, or the index was
    /// edited by hand) would wait for ever: it is ready again.
    private func settleOrphanedStatuses() throws {
        for project in try projects.list() where project.status == "queued" || project.status == "processing" {
            guard !isBusy(projectID: project.id) else { continue }
            try projects.updateComputation(projectID: project.id, status: "ready", progress: 0, stage: "",
                                           errorMessage: "")
            logger.warning("project had no job behind its status; it is ready again",
                           ["project.id": project.id, "project.status": project.status])
        }
    }

    /// Cancels the project's queued or processing job: queued tasks are dropped, running ones stopped, and the
    /// project is `ready` again. False when it has none.
    func cancel(projectID: String) throws -> Bool {
        guard let job = active.values.first(where: { $0.record.projectID == projectID }) else { return false }
        try jobs.database.transaction {
            try jobs.finishJob(id: job.record.id, state: .cancelled)
            try projects.updateComputation(projectID: projectID, status: "ready", progress: 0, stage: "",
                                           errorMessage: "")
        }
        end(job, state: .cancelled, message: "")
        jobLog(job).info("job cancelled")
        appendToProjectLog(job, "job \(job.record.id) cancelled")
        return true
    }

    // MARK: - Handing out tasks

    /// Gives ready tasks to idle workers until either runs out. A job whose next task no idle worker can run
    /// (a kind only some workers have) waits without holding up the others.
    func pump() {
        guard let dispatcher else { return }
        var waiting = Set<String>()
        while let job = nextJob(skipping: waiting), let taskID = job.ready.first, let task = job.tasks[taskID] {
            let assignment = TaskAssignment(taskId: Self.wireID(job: job.record.id, task: taskID), kind: task.kind,
                                            workDirectory: job.folder + "/work", inputs: task.inputs,
                                            attempt: task.attempts + 1)
            guard dispatcher.idleWorkers(for: task.kind) > 0, dispatcher.dispatch(assignment) else {
                waiting.insert(job.record.id)
                continue
            }
            job.ready.removeFirst()
            job.running[taskID] = 0
            if job.record.state == .queued { start(job) }
        }
    }

    /// The job whose turn it is: fewest tasks running, then oldest, among those with a task ready.
    private func nextJob(skipping waiting: Set<String>) -> ActiveJob? {
        var best: ActiveJob?
        for id in order where !waiting.contains(id) {
            guard let job = active[id], !job.ready.isEmpty else { continue }
            if best == nil || job.running.count < best!.running.count { best = job }
        }
        return best
    }

    private func start(_ job: ActiveJob) {
        job.record.state = .processing
        do {
            try jobs.markStarted(jobID: job.record.id)
        } catch {
            jobLog(job).error("cannot record the job's start", ["error": "\(error)"])
        }
        writeProgress(job)
    }

    // MARK: - Answers from workers

    func workerPoolHasIdleWorker(_ pool: WorkerPool) { pump() }

    func workerPool(_ pool: WorkerPool, progress: TaskProgress) { taskProgressed(progress) }

    func workerPool(_ pool: WorkerPool, warning: TaskWarning) { taskWarned(warning) }

    func workerPool(_ pool: WorkerPool, ended taskId: TaskID, _ end: TaskEnd) { taskEnded(taskId, end) }

    func workerPool(_ pool: WorkerPool, cannotStart reason: String) { workersCannotStart(reason) }

    func taskProgressed(_ progress: TaskProgress) {
        guard let (job, taskID) = lookup(progress.taskId), let old = job.running[taskID] else { return }
        job.running[taskID] = max(old, min(1, max(0, progress.fraction)))
        if clock.now - job.lastWrite >= options.progressWriteInterval { writeProgress(job) }
    }

    func taskWarned(_ warning: TaskWarning) {
        guard let (job, taskID) = lookup(warning.taskId) else { return }
        let image = warning.image ?? job.tasks[taskID]?.image
        record(warning: warning.message, image: image, in: job)
    }

    /// A task's end: done, skipped, tried again, or the end of its job.
    func taskEnded(_ taskId: TaskID, _ end: TaskEnd) {
        guard let (job, taskID) = lookup(taskId), job.running.removeValue(forKey: taskID) != nil,
              let task = job.tasks[taskID] else { return }
        do {
            switch end {
            case .result(let result):
                if task.kind == .map, let data = result.data { reportAlignment(data, of: job) }
                if task.kind == .fuse, let data = result.data { reportPointCloud(data, of: job) }
                if task.kind == .mesh, let data = result.data { reportMesh(data, of: job) }
                if task.kind == .texture, let data = result.data { reportTexture(data, of: job) }
                if task.kind == .export, let data = result.data { reportExport(data, of: job) }
                try finish(task, in: job, state: .done, result: result.data, message: "")
            case .failure(let failure) where !failure.retryable:
                try refuse(task, in: job, message: failure.message, image: failure.image ?? task.image)
            case .failure(let failure):
                try retry(task, in: job, message: failure.message)
            case .lost(let reason):
                try retry(task, in: job, message: reason)
            case .stopped:
                job.ready.insert(taskID, at: 0)
            }
        } catch {
            jobLog(job).error("cannot record a task's end", ["task.id": taskId.rawValue, "error": "\(error)"])
            fail(job, message: "The server could not record the progress of the computation (\(error)). "
                 + "Compute again; if it happens again, see the server's log.")
        }
        pump()
    }

    /// A failure for want of disk space says so first, in words a user acts on, whichever step met it; the
    /// step's own message (with the path and the system's words) follows for the log reader.
    static func sayingTheDiskIsFull(_ message: String) -> String {
        let full = ["No space left on device", "Disk quota exceeded"].contains { message.contains($0) }
        return full ? "Not enough free disk space for the computation: free some space and compute again. "
            + "(\(message))" : message
    }

    /// How the message of a job that failed for want of workers begins.
    static let workersUnavailable = "No reconstruction worker could start"

    /// No worker can start at all: the active jobs cannot finish, so they fail with what to fix.
    func workersCannotStart(_ reason: String) {
        let message = Self.workersUnavailable + ": \(reason). Check that replica-worker is installed "
            + "(or what --worker-command runs) and compute again."
        for id in order { if let job = active[id] { fail(job, message: message) } }
    }

    // MARK: - Task outcomes

    private func finish(_ task: TaskRecord, in job: ActiveJob, state: TaskState, result: [String: JSONValue]?,
                        message: String) throws {
        try jobs.finishTask(id: task.id, state: state, attempts: task.attempts, result: result, message: message)
        job.markFinished(task.id, state: state, result: result)
        if state == .skipped, let image = task.image { try skipDependents(of: task.id, image: image, in: job) }
        if job.finishedCount == job.tasks.count {
            try complete(job)
        } else {
            writeProgress(job)
        }
    }

    /// The later tasks of a photo that was left out are left out with it, before they are handed out.
    private func skipDependents(of taskID: Int64, image: String, in job: ActiveJob) throws {
        for dependent in job.dependents(of: taskID) {
            guard let later = job.tasks[dependent], later.image == image, later.state == .pending,
                  job.running[dependent] == nil else { continue }
            job.ready.removeAll { $0 == dependent }
            let message = "left out with its photo"
            try jobs.finishTask(id: dependent, state: .skipped, attempts: later.attempts, result: nil, message: message)
            job.markFinished(dependent, state: .skipped, result: nil)
            try skipDependents(of: dependent, image: image, in: job)
        }
    }

    /// A failure that would happen again: a photo that cannot be read (by Pre-Processing, or by a later task of
    /// that photo alone) is left out with its later tasks; anything else ends the job.
    private func refuse(_ task: TaskRecord, in job: ActiveJob, message: String, image: String?) throws {
        guard task.image != nil, let image else {
            let place = image.map { " on \($0)" } ?? ""
            return fail(job, message: "\(task.stage.rawValue) failed\(place): \(message)")
        }
        record(warning: "\(image) was left out: \(message)", image: image, in: job)
        let skippedBefore = job.skippedCount(of: task.stage)
        if task.stage == .preProcessing && skippedBefore + 1 == job.total(of: task.stage) {
            try jobs.finishTask(id: task.id, state: .skipped, attempts: task.attempts, result: nil, message: message)
            return fail(job, message: JobPlanner.noUsablePhotos(count: job.total(of: task.stage),
                                                                example: (image, message)))
        }
        try finish(task, in: job, state: .skipped, result: nil, message: message)
    }

    /// A failure that may pass (or a worker lost): run the task again, up to the limit of attempts.
    private func retry(_ task: TaskRecord, in job: ActiveJob, message: String) throws {
        let attempts = task.attempts + 1
        job.tasks[task.id]?.attempts = attempts
        try jobs.countAttempt(taskID: task.id, attempts: attempts, message: message)
        jobLog(job).warning("task attempt failed", ["task.id": "\(task.id)", "task.attempt": "\(attempts)",
                                                    "image": task.image ?? "", "error": message])
        guard attempts < options.maximumAttempts else {
            let place = task.image.map { " on \($0)" } ?? ""
            return fail(job, message: "\(task.stage.rawValue) failed\(place) \(attempts) times; the last time: "
                        + "\(message). The worker logs (logs/worker-<n>.log in the data directory) say more; "
                        + "compute again once the cause is fixed.")
        }
        job.ready.insert(task.id, at: 0)
    }

    /// Image Alignment's figures, for whoever reads the job's log: the model's full statistics are in
    /// `work/sparse/statistics.json`.
    private func reportAlignment(_ data: [String: JSONValue], of job: ActiveJob) {
        func number(_ key: String) -> Double {
            if case .number(let value)? = data[key] { return value }
            return .nan
        }
        let line = String(format: "Image Alignment: %.0f of %.0f photos aligned, %.0f points, mean track %.2f "
                          + "images, mean reprojection error %.2f px, %.1f s", number("registeredImages"),
                          number("images"), number("points"), number("meanTrackLength"),
                          number("meanReprojectionError"), number("seconds"))
        jobLog(job).info("alignment finished", ["alignment": line])
        appendToProjectLog(job, line)
    }

    /// Point Cloud Generation's figures, in the job's log and the project's: the cloud's full statistics are in
    /// `work/dense/statistics.json`.
    private func reportPointCloud(_ data: [String: JSONValue], of job: ActiveJob) {
        func number(_ key: String) -> Double {
            if case .number(let value)? = data[key] { return value }
            return .nan
        }
        let line = String(format: "Point Cloud Generation: %.0f points (%.0f fused) from %.0f depth maps, %.1f s",
                          number("points"), number("fusedPoints"), number("depthMaps"), number("seconds"))
        jobLog(job).info("point cloud finished", ["pointCloud": line])
        appendToProjectLog(job, line)
    }

    /// Mesh Generation's figures, in the job's log and the project's; the rest is in `work/mesh/statistics.json`.
    private func reportMesh(_ data: [String: JSONValue], of job: ActiveJob) {
        func number(_ key: String) -> Double {
            if case .number(let value)? = data[key] { return value }
            return .nan
        }
        let watertight = data["watertight"] == .bool(true) ? "watertight" : "open"
        let line = String(format: "Mesh Generation: %.0f polygons (%.0f quads), ", number("polygons"), number("quads"))
            + watertight + String(format: ", from %.0f triangles at %.0f cells, %.1f s", number("rawTriangles"),
                                  number("resolution"), number("seconds"))
        jobLog(job).info("mesh finished", ["mesh": line])
        appendToProjectLog(job, line)
    }

    /// Texture Mapping's figures, in the job's log and the project's; the rest is in `work/texture/statistics.json`.
    private func reportTexture(_ data: [String: JSONValue], of job: ActiveJob) {
        func number(_ key: String) -> Double {
            if case .number(let value)? = data[key] { return value }
            return .nan
        }
        var maps: [String] = []
        if case .array(let names)? = data["maps"] {
            for case .string(let name) in names { maps.append(name) }
        }
        let line = String(format: "Texture Mapping: %.0f charts on %.0f page(s) of %.0f², %.2f texels a pixel, ",
                          number("charts"), number("pages"), number("pageSize"), number("texelsPerPixel"))
            + String(format: "seams levelled from %.1f to %.1f, ", number("seamDifferenceBefore"),
                     number("seamDifferenceAfter"))
            + maps.joined(separator: ", ") + String(format: ", %.1f s", number("seconds"))
        jobLog(job).info("texture finished", ["texture": line])
        appendToProjectLog(job, line)
    }

    /// Exporting's figures, in the job's log and the project's; the rest is in `work/export/statistics.json`.
    private func reportExport(_ data: [String: JSONValue], of job: ActiveJob) {
        func number(_ key: String) -> Double {
            if case .number(let value)? = data[key] { return value }
            return .nan
        }
        let line = String(format: "Exporting: %.0f triangles, %.0f vertices; USDZ %.1f MB, GLB %.1f MB; "
                          + "%.4g m a unit (assumed); %.1f s", number("triangles"), number("vertices"),
                          number("usdzBytes") / 1e6, number("glbBytes") / 1e6, number("metresPerUnit"),
                          number("seconds"))
        jobLog(job).info("export finished", ["export": line])
        appendToProjectLog(job, line)
    }

    private func record(warning message: String, image: String?, in job: ActiveJob) {
        do {
            try jobs.addWarning(jobID: job.record.id, image: image, message: message)
        } catch {
            jobLog(job).error("cannot record a warning", ["error": "\(error)"])
        }
        jobLog(job).warning("job warning", ["image": image ?? "", "warning": message])
        appendToProjectLog(job, "warning: \(message)")
    }

    // MARK: - The end of a job

    /// The job's last task is done: its model moves into the project's folder (`ModelFiles.publish`, a few
    /// renames, here on the loop thread so that no conversion of the old GLB is installed in between), then the
    /// project says what it holds.
    private func complete(_ job: ActiveJob) throws {
        var published: (usdz: Bool, glb: Bool)?
        if job.tasks.values.contains(where: { $0.kind == .export }) {
            do {
                published = try ModelFiles(folder: job.folder).publish()
            } catch {
                jobLog(job).error("cannot move the model into place", ["error": "\(error)"])
                return fail(job, message: "Exporting: the model could not be moved into the project's folder "
                            + "(\(error)). Check the disk and compute again.")
            }
        }
        try jobs.database.transaction {
            try jobs.recordProgress(jobID: job.record.id, progress: 1)
            try jobs.finishJob(id: job.record.id, state: .completed)
            try projects.updateComputation(projectID: job.record.projectID, status: "completed", progress: 1,
                                           stage: "", errorMessage: "", modelDetail: job.record.options.detail.rawValue)
            if let published {
                try projects.setModelFiles(projectID: job.record.projectID, hasModel: published.usdz,
                                           hasGlb: published.glb)
            }
        }
        job.record.progress = 1
        end(job, state: .completed, message: "")
        jobLog(job).info("job completed")
        appendToProjectLog(job, "job \(job.record.id) completed")
    }

    /// Ends the job as failed with a message for a person; its running tasks are stopped.
    private func fail(_ job: ActiveJob, message detail: String) {
        let message = Self.sayingTheDiskIsFull(detail)
        do {
            try jobs.database.transaction {
                try jobs.finishJob(id: job.record.id, state: .failed, errorMessage: message)
                try projects.updateComputation(projectID: job.record.projectID, status: "failed",
                                               progress: job.record.progress, stage: "", errorMessage: message)
            }
        } catch {
            jobLog(job).error("cannot record the job's failure", ["error": "\(error)"])
        }
        end(job, state: .failed, message: message)
        jobLog(job).error("job failed", ["error": message])
        appendToProjectLog(job, "job \(job.record.id) failed: \(message)")
    }

    /// Forgets an ended job and stops whatever of it still runs.
    private func end(_ job: ActiveJob, state: JobState, message: String) {
        active[job.record.id] = nil
        order.removeAll { $0 == job.record.id }
        job.record.state = state
        job.record.errorMessage = message
        for taskID in job.running.keys { dispatcher?.terminate(taskId: Self.wireID(job: job.record.id, task: taskID)) }
        job.running = [:]
        onChange?(snapshot(job))
    }

    // MARK: - Progress

    /// Writes the job's progress and stage to the project; progress never goes backwards.
    private func writeProgress(_ job: ActiveJob) {
        job.record.progress = max(job.record.progress, job.progress())
        job.lastWrite = clock.now
        let stage = job.currentStage?.rawValue ?? ""
        do {
            try jobs.recordProgress(jobID: job.record.id, progress: job.record.progress)
            try projects.updateComputation(projectID: job.record.projectID, status: job.record.state.rawValue,
                                           progress: job.record.progress, stage: stage, errorMessage: "")
        } catch {
            jobLog(job).error("cannot record the job's progress", ["error": "\(error)"])
        }
        onChange?(snapshot(job))
    }

    private func snapshot(_ job: ActiveJob) -> JobSnapshot {
        let stage = job.record.state.isActive ? job.currentStage : nil
        return JobSnapshot(jobID: job.record.id, state: job.record.state, progress: job.record.progress,
                           stage: stage?.rawValue ?? "", stageFinished: stage.map { job.finished(of: $0) } ?? 0,
                           stageTotal: stage.map { job.total(of: $0) } ?? 0, errorMessage: job.record.errorMessage)
    }

    // MARK: - Bookkeeping

    private func activate(_ job: ActiveJob) {
        active[job.record.id] = job
        order.append(job.record.id)
    }

    static func wireID(job: String, task: Int64) -> TaskID { TaskID("\(job)/\(task)") }

    private func lookup(_ taskId: TaskID) -> (ActiveJob, Int64)? {
        let parts = taskId.rawValue.split(separator: "/")
        guard parts.count == 2, let job = active[String(parts[0])], let taskID = Int64(parts[1]),
              job.tasks[taskID] != nil else { return nil }
        return (job, taskID)
    }

    private func jobLog(_ job: ActiveJob) -> Logger {
        logger.with("job.id", job.record.id).with("project.id", job.record.projectID)
    }

    /// Appends a line to the project's `work/job.log`, the job's history for whoever looks at the folder.
    private func appendToProjectLog(_ job: ActiveJob, _ message: String) {
        guard let files else { return }
        let line = Logger.timestamp(Date(timeIntervalSince1970: clock.now)) + " " + message + "\n"
        let work = job.folder + "/work"
        files.run(throwing: {
            try FileSystem.ensureDirectory(work)
            try FileSystem.append(Array(line.utf8), to: work + "/job.log")
        }, completion: { [logger] outcome in
            if case .failure(let error) = outcome {
                logger.warning("cannot write the project's job log", ["path": work, "error": "\(error)"])
            }
        })
    }
}

/// An active job's graph in memory: which tasks are ready, running (with their fraction) or finished.
private final class ActiveJob {
    var record: JobRecord
    /// The project's folder, absolute; the job works in its `work/`.
    let folder: String
    var tasks: [Int64: TaskRecord] = [:]
    /// Pending tasks whose dependencies are all finished, in planning order (retries in front).
    var ready: [Int64] = []
    var running: [Int64: Double] = [:]
    var lastWrite = 0.0
    private(set) var finishedCount = 0
    private let stages: [PipelineStage]
    private var unmet: [Int64: Int] = [:]
    private var dependents: [Int64: [Int64]] = [:]
    private var totals: [PipelineStage: Int] = [:]
    private var finishedByStage: [PipelineStage: Int] = [:]
    private var skippedByStage: [PipelineStage: Int] = [:]

    init(record: JobRecord, folder: String, tasks list: [TaskRecord]) {
        self.record = record
        self.folder = folder
        stages = JobPlanner.stages(upTo: record.lastStage)
        for task in list {
            tasks[task.id] = task
            totals[task.stage, default: 0] += 1
            for dependency in task.dependencies { dependents[dependency, default: []].append(task.id) }
        }
        for task in list {
            if task.state == .pending {
                unmet[task.id] = task.dependencies.filter { tasks[$0]?.state == .pending }.count
                if unmet[task.id] == 0 { ready.append(task.id) }
            } else {
                count(task.stage, state: task.state)
            }
        }
    }

    func markFinished(_ id: Int64, state: TaskState, result: [String: JSONValue]?) {
        guard let stage = tasks[id]?.stage else { return }
        tasks[id]?.state = state
        tasks[id]?.result = result
        count(stage, state: state)
        for dependent in dependents[id] ?? [] {
            unmet[dependent, default: 1] -= 1
            if unmet[dependent] == 0 && tasks[dependent]?.state == .pending { ready.append(dependent) }
        }
    }

    private func count(_ stage: PipelineStage, state: TaskState) {
        finishedCount += 1
        finishedByStage[stage, default: 0] += 1
        if state == .skipped { skippedByStage[stage, default: 0] += 1 }
    }

    /// The tasks that read the outputs of `id`.
    func dependents(of id: Int64) -> [Int64] { dependents[id] ?? [] }

    func total(of stage: PipelineStage) -> Int { totals[stage] ?? 0 }
    func finished(of stage: PipelineStage) -> Int { finishedByStage[stage] ?? 0 }
    func skippedCount(of stage: PipelineStage) -> Int { skippedByStage[stage] ?? 0 }

    /// The earliest stage with a task not finished.
    var currentStage: PipelineStage? {
        stages.first { finished(of: $0) < total(of: $0) }
    }

    /// The weighted sum of the stages' fractions; a running task counts with the fraction it reported.
    func progress() -> Double {
        var partial: [PipelineStage: Double] = [:]
        for (id, fraction) in running { if let stage = tasks[id]?.stage { partial[stage, default: 0] += fraction } }
        var weighted = 0.0, weights = 0.0
        for stage in stages {
            let total = total(of: stage)
            let fraction = total == 0 ? 1 : (Double(finished(of: stage)) + (partial[stage] ?? 0)) / Double(total)
            weighted += stage.progressWeight * min(1, fraction)
            weights += stage.progressWeight
        }
        return weights == 0 ? 1 : weighted / weights
    }
}
