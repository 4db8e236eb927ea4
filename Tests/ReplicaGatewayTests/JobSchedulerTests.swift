import Foundation
import ReplicaCore
import ReplicaProtocol
@testable import ReplicaGateway
import XCTest

/// A pool of `count` workers that only records what it is asked to do; the test plays the workers' answers.
private final class FakeDispatcher: TaskDispatcher {
    var idle: Int
    private(set) var sent: [TaskAssignment] = []
    private(set) var terminated: [TaskID] = []

    init(workers: Int) { idle = workers }

    /// Tasks no worker takes (as if only some workers could run them).
    var refuses: (TaskAssignment) -> Bool = { _ in false }

    func dispatch(_ task: TaskAssignment) -> Bool {
        guard idle > 0, !refuses(task) else { return false }
        idle -= 1
        sent.append(task)
        return true
    }

    func idleWorkers(for kind: TaskKind) -> Int { kind == .preprocess ? idle : 0 }

    func terminate(taskId: TaskID) { terminated.append(taskId) }

    /// The tasks sent and not answered yet, by the test's bookkeeping.
    func received(_ count: Int = 1) -> [TaskAssignment] {
        let taken = Array(sent.prefix(count))
        sent.removeFirst(taken.count)
        return taken
    }
}

/// The scheduler without processes: planning, fair dispatch, progress, retries, skipped photos, cancel, resume.
final class JobSchedulerTests: XCTestCase {
    private var directory: String!
    private var database: Database!
    private var projects: ProjectStore!
    private var jobs: JobStore!
    private var dispatcher: FakeDispatcher!
    private var scheduler: JobScheduler!

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "scheduler-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/projects", withIntermediateDirectories: true)
        database = try Database(path: directory + "/replica.sqlite")
        projects = ProjectStore(database: database)
        jobs = JobStore(database: database)
        dispatcher = FakeDispatcher(workers: 2)
        scheduler = makeScheduler()
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func makeScheduler() -> JobScheduler {
        let scheduler = JobScheduler(jobs: jobs, projects: projects,
                                     library: ProjectLibrary(projectsDirectory: directory + "/projects"),
                                     files: nil, logger: .silent)
        scheduler.dispatcher = dispatcher
        return scheduler
    }

    private func makeProject(_ name: String, images: Int) throws -> (ProjectDTO, [String]) {
        let id = UUID().uuidString.lowercased()
        let names = (1...images).map { String(format: "IMG_%04d.JPG", $0) }
        try projects.insertProject(id: id, name: name, images: names.map {
            ImageRecord(fileName: $0, size: 1, crc32: 0, modifiedNanoseconds: 0)
        })
        return (try projects.existing(id: id), names)
    }

    private func result(_ task: TaskAssignment) {
        scheduler.taskEnded(task.taskId, .result(TaskResult(taskId: task.taskId, outputs: [])))
    }

    private func status(_ project: ProjectDTO) throws -> ProjectDTO { try projects.existing(id: project.id) }

    func testAJobIsOneTaskPerPhotoAtTheDetailLevelsSizeAndCompletes() throws {
        let (project, names) = try makeProject("kermit", images: 3)
        var options = ComputeOptions()
        options.detail = .preview
        try scheduler.submit(project: project, images: names, options: options)

        let first = dispatcher.received(2)
        XCTAssertEqual(first.map { $0.inputs["image"] }, [.string(names[0]), .string(names[1])])
        XCTAssertEqual(first[0].inputs["maxDimension"], .number(Double(options.settings.workingImageDimension)))
        XCTAssertEqual(first[0].workDirectory, directory + "/projects/kermit/work")
        XCTAssertEqual(first[0].attempt, 1)
        XCTAssertEqual(try status(project).status, "processing")
        XCTAssertEqual(try status(project).processingStage, "Pre-Processing")

        for task in first { result(task); dispatcher.idle += 1 }
        scheduler.pump()
        let last = dispatcher.received()
        XCTAssertEqual(last.map { $0.inputs["image"] }, [.string(names[2])])
        result(last[0])

        let done = try status(project)
        XCTAssertEqual(done.status, "completed")
        XCTAssertEqual(done.progress, 1)
        XCTAssertEqual(done.processingStage, "")
        XCTAssertEqual(done.modelDetail, "preview")
        XCTAssertFalse(scheduler.isBusy(projectID: project.id))
    }

    func testProgressCountsRunningFractionsAndNeverGoesBackwards() throws {
        let (project, names) = try makeProject("p", images: 4)
        try scheduler.submit(project: project, images: names, options: ComputeOptions())
        let running = dispatcher.received(2)
        var seen: [Double] = []
        func note() throws { seen.append(try status(project).progress) }

        scheduler.taskProgressed(TaskProgress(taskId: running[0].taskId, fraction: 0.5))
        result(running[1])
        try note()
        XCTAssertEqual(seen.last!, (1 + 0.5) / 4, accuracy: 1e-9)
        // A crash loses the half-done task's fraction, but the project's progress holds.
        scheduler.taskEnded(running[0].taskId, .lost("replica-worker 1 (pid 9) was killed by signal 9"))
        try note()
        scheduler.pump()
        XCTAssertEqual(seen, seen.sorted())
        XCTAssertEqual(seen.last!, 0.375, accuracy: 1e-9)
    }

    func testTwoJobsShareTheWorkersAndTheOlderGoesFirstAmongEquals() throws {
        let (older, olderNames) = try makeProject("older", images: 4)
        let (newer, newerNames) = try makeProject("newer", images: 4)
        dispatcher.idle = 0
        try scheduler.submit(project: older, images: olderNames, options: ComputeOptions())
        try scheduler.submit(project: newer, images: newerNames, options: ComputeOptions())
        XCTAssertEqual(try status(newer).status, "queued")

        dispatcher.idle = 3
        scheduler.pump()
        let sent = dispatcher.received(3)
        let folders = sent.map { ($0.workDirectory as NSString).deletingLastPathComponent }
        XCTAssertEqual(folders.map { ($0 as NSString).lastPathComponent }, ["older", "newer", "older"])
        XCTAssertEqual(try status(older).status, "processing")
        XCTAssertEqual(try status(newer).status, "processing")
    }

    func testAJobNoWorkerCanServeNowDoesNotHoldUpTheOthers() throws {
        let (stuck, stuckNames) = try makeProject("stuck", images: 2)
        let (free, freeNames) = try makeProject("free", images: 2)
        dispatcher.refuses = { $0.workDirectory.hasSuffix("/stuck/work") }
        try scheduler.submit(project: stuck, images: stuckNames, options: ComputeOptions())
        try scheduler.submit(project: free, images: freeNames, options: ComputeOptions())
        let sent = dispatcher.received(2)
        XCTAssertEqual(sent.map { ($0.workDirectory as NSString).deletingLastPathComponent }.map {
            ($0 as NSString).lastPathComponent
        }, ["free", "free"])
        XCTAssertEqual(try status(stuck).status, "queued")
    }

    func testALostTaskIsRetriedAndTheThirdLossFailsTheJobNamingThePhoto() throws {
        let (project, names) = try makeProject("p", images: 1)
        try scheduler.submit(project: project, images: names, options: ComputeOptions())
        for attempt in 1...3 {
            let task = dispatcher.received()[0]
            XCTAssertEqual(task.attempt, attempt)
            dispatcher.idle += 1
            scheduler.taskEnded(task.taskId, .lost("replica-worker 1 (pid \(attempt)) exited with status 3"))
        }
        let failed = try status(project)
        XCTAssertEqual(failed.status, "failed")
        XCTAssertTrue(failed.errorMessage.contains("Pre-Processing failed on IMG_0001.JPG 3 times"),
                      failed.errorMessage)
        XCTAssertTrue(failed.errorMessage.contains("exited with status 3"), failed.errorMessage)
        XCTAssertTrue(dispatcher.sent.isEmpty)
    }

    func testAStoppedTaskRunsAgainWithoutCountingAnAttempt() throws {
        let (project, names) = try makeProject("p", images: 1)
        try scheduler.submit(project: project, images: names, options: ComputeOptions())
        let task = dispatcher.received()[0]
        dispatcher.idle += 1
        scheduler.taskEnded(task.taskId, .stopped)
        scheduler.pump()
        XCTAssertEqual(dispatcher.received()[0].attempt, 1)
    }

    func testAnUnreadablePhotoIsLeftOutWithAWarningAndTheJobGoesOn() throws {
        let (project, names) = try makeProject("p", images: 2)
        try scheduler.submit(project: project, images: names, options: ComputeOptions())
        let tasks = dispatcher.received(2)
        scheduler.taskEnded(tasks[0].taskId, .failure(TaskFailure(
            taskId: tasks[0].taskId, message: "IMG_0001.JPG is not a photo", retryable: false, image: names[0])))
        result(tasks[1])

        XCTAssertEqual(try status(project).status, "completed")
        let job = try jobs.jobs(projectID: project.id)[0]
        let warnings = try jobs.warnings(jobID: job.id)
        XCTAssertEqual(warnings.map(\.image), [names[0]])
        XCTAssertTrue(warnings[0].message.contains("left out"))
        XCTAssertEqual(try jobs.tasks(jobID: job.id).map(\.state), [.skipped, .done])
    }

    func testAJobWhosePhotosAreAllUnreadableFailsSayingWhatToDo() throws {
        let (project, names) = try makeProject("p", images: 2)
        try scheduler.submit(project: project, images: names, options: ComputeOptions())
        for task in dispatcher.received(2) {
            scheduler.taskEnded(task.taskId, .failure(TaskFailure(
                taskId: task.taskId, message: "not a photo", retryable: false, image: task.inputs["image"].map {
                    if case .string(let name) = $0 { return name }
                    return ""
                })))
        }
        let failed = try status(project)
        XCTAssertEqual(failed.status, "failed")
        XCTAssertTrue(failed.errorMessage.hasPrefix("Pre-Processing: none of the project's 2 photos could be read"),
                      failed.errorMessage)
        XCTAssertTrue(failed.errorMessage.contains("compute again"))
    }

    func testCancelDropsQueuedTasksAndStopsRunningOnes() throws {
        let (project, names) = try makeProject("p", images: 5)
        try scheduler.submit(project: project, images: names, options: ComputeOptions())
        let running = dispatcher.received(2)
        XCTAssertTrue(try scheduler.cancel(projectID: project.id))
        XCTAssertEqual(Set(dispatcher.terminated), Set(running.map(\.taskId)))
        XCTAssertEqual(try status(project).status, "ready")
        XCTAssertFalse(try scheduler.cancel(projectID: project.id))

        // Their ends arrive after the cancel and change nothing; the freed workers get no task of the job.
        for task in running { scheduler.taskEnded(task.taskId, .stopped) }
        dispatcher.idle = 2
        scheduler.pump()
        XCTAssertTrue(dispatcher.sent.isEmpty)
        XCTAssertEqual(try jobs.jobs(projectID: project.id)[0].state, .cancelled)
    }

    func testAfterARestartOnlyUnfinishedTasksRun() throws {
        let (project, names) = try makeProject("p", images: 3)
        try scheduler.submit(project: project, images: names, options: ComputeOptions())
        let running = dispatcher.received(2)
        result(running[0])
        // The gateway dies here, with running[1] in flight; a new one starts over the same database.
        dispatcher = FakeDispatcher(workers: 4)
        scheduler = makeScheduler()
        try scheduler.resume()
        let resumed = dispatcher.received(4)
        XCTAssertEqual(Set(resumed.compactMap { task -> String? in
            if case .string(let image) = task.inputs["image"] { return image }
            return nil
        }), [names[1], names[2]])
        for task in resumed { result(task) }
        XCTAssertEqual(try status(project).status, "completed")
    }
}
