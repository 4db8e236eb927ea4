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

    let workerCount: Int

    init(workers: Int) {
        idle = workers
        workerCount = workers
    }

    /// Tasks no worker takes (as if only some workers could run them).
    var refuses: (TaskAssignment) -> Bool = { _ in false }

    func dispatch(_ task: TaskAssignment) -> Bool {
        guard idle > 0, !refuses(task) else { return false }
        idle -= 1
        sent.append(task)
        return true
    }

    /// The kinds the fake's workers run.
    var kinds: Set<TaskKind> = [.preprocess, .features, .retrieve, .match, .map, .depth, .fuse, .mesh, .texture,
                                .export]

    func idleWorkers(for kind: TaskKind) -> Int { kinds.contains(kind) ? idle : 0 }

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
        try scheduler.submit(project: project, images: names, options: options, lastStage: .preProcessing)

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
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .preProcessing)
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
        try scheduler.submit(project: older, images: olderNames, options: ComputeOptions(), lastStage: .preProcessing)
        try scheduler.submit(project: newer, images: newerNames, options: ComputeOptions(), lastStage: .preProcessing)
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
        try scheduler.submit(project: stuck, images: stuckNames, options: ComputeOptions(), lastStage: .preProcessing)
        try scheduler.submit(project: free, images: freeNames, options: ComputeOptions(), lastStage: .preProcessing)
        let sent = dispatcher.received(2)
        XCTAssertEqual(sent.map { ($0.workDirectory as NSString).deletingLastPathComponent }.map {
            ($0 as NSString).lastPathComponent
        }, ["free", "free"])
        XCTAssertEqual(try status(stuck).status, "queued")
    }

    func testALostTaskIsRetriedAndTheThirdLossFailsTheJobNamingThePhoto() throws {
        let (project, names) = try makeProject("p", images: 1)
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .preProcessing)
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
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .preProcessing)
        let task = dispatcher.received()[0]
        dispatcher.idle += 1
        scheduler.taskEnded(task.taskId, .stopped)
        scheduler.pump()
        XCTAssertEqual(dispatcher.received()[0].attempt, 1)
    }

    func testAnUnreadablePhotoIsLeftOutWithAWarningAndTheJobGoesOn() throws {
        let (project, names) = try makeProject("p", images: 2)
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .preProcessing)
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

    /// Answers every task handed out, one worker at a time, until none is left; the kinds in the order run.
    private func runEverything(failing: (TaskAssignment) -> TaskFailure? = { _ in nil }) -> [TaskKind] {
        var kinds: [TaskKind] = []
        while let task = dispatcher.received().first {
            kinds.append(task.kind)
            if let failure = failing(task) {
                scheduler.taskEnded(task.taskId, .failure(failure))
            } else {
                result(task)
            }
            dispatcher.idle += 1
            scheduler.pump()
        }
        return kinds
    }

    func testImageAlignmentRunsFeaturesThenMatchingThenOneMapAfterPreProcessing() throws {
        dispatcher.idle = 1
        let (project, names) = try makeProject("ring", images: 4)
        var options = ComputeOptions()
        options.featureSensitivity = .high
        try scheduler.submit(project: project, images: names, options: options, lastStage: .imageAlignment)
        let order = runEverything()
        // Each photo's features wait for its Pre-Processing, the two blocks of its 6 pairs (one per worker of
        // the pool) for the features of their photos, and the map for both blocks.
        XCTAssertEqual(order.filter { $0 == .preprocess }.count, 4)
        XCTAssertEqual(order.filter { $0 == .features }.count, 4)
        XCTAssertEqual(order.suffix(3), [.match, .match, .map])
        XCTAssertEqual(try status(project).status, "completed")

        let tasks = try jobs.tasks(jobID: try jobs.jobs(projectID: project.id)[0].id)
        let features = tasks.filter { $0.kind == .features }
        XCTAssertEqual(features.map(\.image), names)
        XCTAssertEqual(features[0].inputs["sensitivity"], .string("high"))
        XCTAssertEqual(features[0].inputs["maxFeatures"], .number(8192))
        for task in features {
            let preprocess = tasks.first { $0.kind == .preprocess && $0.image == task.image }!
            XCTAssertEqual(task.dependencies, [preprocess.id])
        }
        let matches = tasks.filter { $0.kind == .match }
        let pairs = matches.flatMap { match -> [JSONValue] in
            guard case .array(let pairs) = match.inputs["pairs"] else { return [] }
            return pairs
        }
        XCTAssertEqual(pairs.count, 6)
        XCTAssertEqual(Set(pairs.map { "\($0)" }).count, 6)
        // Pairs 0-1, 0-2, 0-3, then 1-2, 1-3, 2-3: the first block needs every photo, the second not photo 0.
        XCTAssertEqual(Set(matches[0].dependencies), Set(features.map(\.id)))
        XCTAssertEqual(Set(matches[1].dependencies), Set(features.dropFirst().map(\.id)))
        let map = try XCTUnwrap(tasks.first { $0.kind == .map })
        XCTAssertEqual(map.dependencies, matches.map(\.id))
        XCTAssertEqual(map.inputs["blocks"], .array(matches.map { $0.inputs["block"]! }))
    }

    func testPointCloudGenerationRunsADepthMapPerPhotoAfterTheMapThenOneFusionThenTheMeshTextureAndExport() throws {
        dispatcher.idle = 2
        let (project, names) = try makeProject("dense", images: 4)
        var options = ComputeOptions()
        options.isObjectMaskingEnabled = true
        try scheduler.submit(project: project, images: names, options: options, lastStage: nil)
        let order = runEverything()
        XCTAssertEqual(order.suffix(9), [.map, .depth, .depth, .depth, .depth, .fuse, .mesh, .texture, .export])
        XCTAssertEqual(try status(project).status, "completed")

        let tasks = try jobs.tasks(jobID: try jobs.jobs(projectID: project.id)[0].id)
        let map = try XCTUnwrap(tasks.first { $0.kind == .map })
        let depth = tasks.filter { $0.kind == .depth }
        XCTAssertEqual(depth.map(\.image), names)
        XCTAssertEqual(depth.map { $0.inputs["image"] }, names.map { .string($0) })
        XCTAssertTrue(depth.allSatisfy { $0.dependencies == [map.id] && $0.stage == .pointCloudGeneration })
        let fuse = try XCTUnwrap(tasks.first { $0.kind == .fuse })
        XCTAssertEqual(fuse.dependencies, depth.map(\.id))
        XCTAssertEqual(fuse.inputs["masking"], .bool(true))
        XCTAssertEqual(fuse.inputs["images"], .array(names.map { .string($0) }))
        let mesh = try XCTUnwrap(tasks.first { $0.kind == .mesh })
        XCTAssertEqual(mesh.dependencies, [fuse.id])
        XCTAssertEqual(mesh.stage, .meshGeneration)
        XCTAssertEqual(mesh.inputs, ["maxPolygons": .number(100_000), "primitive": .string("triangle"),
                                     "masking": .bool(true)])
        let texture = try XCTUnwrap(tasks.first { $0.kind == .texture })
        XCTAssertEqual(texture.dependencies, [mesh.id])
        XCTAssertEqual(texture.stage, .textureMapping)
        let basic: [JSONValue] = ["ambientOcclusion", "diffuseColor", "normal"].map { .string($0) }
        XCTAssertEqual(texture.inputs, ["maps": .array(basic), "dimension": .number(4096), "format": .string("png")])
        let export = try XCTUnwrap(tasks.first { $0.kind == .export })
        XCTAssertEqual(export.dependencies, [texture.id])
        XCTAssertEqual(export.stage, .exporting)
        XCTAssertEqual(export.inputs, [:])

        // Custom's polygon ceiling and quads reach the mesh task; stopping after the cloud plans no mesh.
        var custom = ComputeOptions()
        custom.detail = .custom
        custom.maximumPolygonCount = 12_345
        custom.meshPrimitive = .quad
        let (quads, quadNames) = try makeProject("quads", images: 4)
        try scheduler.submit(project: quads, images: quadNames, options: custom, lastStage: nil)
        let quadTasks = try jobs.tasks(jobID: try jobs.jobs(projectID: quads.id)[0].id)
        XCTAssertEqual(quadTasks.first { $0.kind == .mesh }?.inputs,
                       ["maxPolygons": .number(12_345), "primitive": .string("quad"), "masking": .bool(false)])
        // Custom's texture fields reach the texture task: side, format and quality, and the maps asked for.
        custom.maximumTextureDimension = .sixteenK
        custom.textureFormat = .jpeg
        custom.jpegCompressionQuality = 0.35
        custom.outputTextureMaps = [.diffuseColor, .roughness]
        let (jpeg, jpegNames) = try makeProject("jpeg", images: 4)
        try scheduler.submit(project: jpeg, images: jpegNames, options: custom, lastStage: nil)
        let jpegTasks = try jobs.tasks(jobID: try jobs.jobs(projectID: jpeg.id)[0].id)
        XCTAssertEqual(jpegTasks.first { $0.kind == .texture }?.inputs,
                       ["maps": .array([.string("diffuseColor"), .string("roughness")]),
                        "dimension": .number(16_384), "format": .string("jpeg"), "jpegQuality": .number(0.35)])
        // Full bakes all five maps at 8192²; raw, diffuse only, over as many 8192² pages as it needs.
        for (detail, maps, pages) in [(DetailLevel.full, TextureMap.allCases, nil), (.raw, [.diffuseColor], 24)] {
            var level = ComputeOptions()
            level.detail = detail
            let (project, names) = try makeProject(detail.rawValue, images: 4)
            try scheduler.submit(project: project, images: names, options: level, lastStage: nil)
            var expected: [String: JSONValue] = ["maps": .array(maps.map { .string($0.rawValue) }),
                                                 "dimension": .number(8192), "format": .string("png")]
            if let pages { expected["maximumPages"] = .number(Double(pages)) }
            let planned = try jobs.tasks(jobID: try jobs.jobs(projectID: project.id)[0].id)
            XCTAssertEqual(planned.first { $0.kind == .texture }?.inputs, expected, detail.rawValue)
        }
        let (cloudOnly, cloudNames) = try makeProject("cloud-only", images: 4)
        try scheduler.submit(project: cloudOnly, images: cloudNames, options: options, lastStage: .pointCloudGeneration)
        let cloudTasks = try jobs.tasks(jobID: try jobs.jobs(projectID: cloudOnly.id)[0].id)
        XCTAssertTrue(cloudTasks.contains { $0.kind == .fuse })
        XCTAssertFalse(cloudTasks.contains { $0.kind == .mesh || $0.kind == .texture })

        // Stopping after Image Alignment plans none of it.
        let (other, otherNames) = try makeProject("sparse-only", images: 4)
        try scheduler.submit(project: other, images: otherNames, options: options, lastStage: .imageAlignment)
        let sparse = try jobs.tasks(jobID: try jobs.jobs(projectID: other.id)[0].id)
        XCTAssertFalse(sparse.contains { $0.kind == .depth || $0.kind == .fuse || $0.kind == .mesh })
    }

    func testALargeUnorderedSetIsMatchedThroughRetrieval() throws {
        let (project, names) = try makeProject("large", images: 70)
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .imageAlignment)
        let tasks = try jobs.tasks(jobID: try jobs.jobs(projectID: project.id)[0].id)
        let features = tasks.filter { $0.kind == .features }
        let retrieve = try XCTUnwrap(tasks.first { $0.kind == .retrieve })
        XCTAssertEqual(Set(retrieve.dependencies), Set(features.map(\.id)))
        XCTAssertEqual(retrieve.inputs["neighbours"], .number(Double(JobPlanner.retrievalNeighbours)))
        let matches = tasks.filter { $0.kind == .match }
        // 70 photos × 25 neighbours at most, 40 pairs a block: 44 parts of the retrieved list.
        XCTAssertEqual(matches.count, 44)
        XCTAssertTrue(matches.allSatisfy { $0.dependencies == [retrieve.id] && $0.inputs["pairs"] == nil })
        XCTAssertEqual(matches.map { $0.inputs["part"] }, (0..<44).map { .number(Double($0)) })
        XCTAssertEqual(Set(try XCTUnwrap(tasks.first { $0.kind == .map }).dependencies), Set(matches.map(\.id)))

        // Asked for, every pair instead: 2,415 of them, listed in the blocks.
        let (other, otherNames) = try makeProject("forced", images: 70)
        try scheduler.submit(project: other, images: otherNames, options: ComputeOptions(),
                             lastStage: .imageAlignment, pairing: .exhaustive)
        let forced = try jobs.tasks(jobID: try jobs.jobs(projectID: other.id)[0].id)
        XCTAssertFalse(forced.contains { $0.kind == .retrieve })
        XCTAssertEqual(forced.filter { $0.kind == .match }.reduce(0) { total, task in
            guard case .array(let pairs) = task.inputs["pairs"] else { return total }
            return total + pairs.count
        }, 70 * 69 / 2)
    }

    func testSequentialOrderingMatchesNeighboursAndLoopClosuresOnly() throws {
        let (project, names) = try makeProject("walk", images: 30)
        var options = ComputeOptions()
        options.sampleOrdering = .sequential
        try scheduler.submit(project: project, images: names, options: options, lastStage: .imageAlignment)
        let tasks = try jobs.tasks(jobID: try jobs.jobs(projectID: project.id)[0].id)
        // The walk's next ten photos and its ten most similar, from one retrieval task after every photo's
        // features; the matching tasks share that list out.
        let retrieve = try XCTUnwrap(tasks.first { $0.kind == .retrieve })
        XCTAssertEqual(retrieve.inputs["window"], .number(10))
        XCTAssertEqual(retrieve.inputs["neighbours"], .number(10))
        XCTAssertEqual(Set(retrieve.dependencies), Set(tasks.filter { $0.kind == .features }.map(\.id)))
        let matches = tasks.filter { $0.kind == .match }
        // At most 30 × 20 pairs, 40 a block: 15 blocks, rounded up to 16 for the two workers.
        XCTAssertEqual(matches.count, 16)
        XCTAssertTrue(matches.allSatisfy { $0.dependencies == [retrieve.id] })
        XCTAssertTrue(matches.allSatisfy { $0.inputs["parts"] == .number(16) })
    }

    func testSmallJobsSplitTheirPairsEvenlyOverTheWorkers() throws {
        // 11 photos, 55 pairs: two blocks of 27 and 28 for the two workers, not one of 40 and one of 15.
        let (project, names) = try makeProject("eleven", images: 11)
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .imageAlignment)
        let tasks = try jobs.tasks(jobID: try jobs.jobs(projectID: project.id)[0].id)
        let sizes = tasks.filter { $0.kind == .match }.map { task -> Int in
            guard case .array(let pairs) = task.inputs["pairs"] else { return 0 }
            return pairs.count
        }
        XCTAssertEqual(sizes, [27, 28])
        XCTAssertEqual(JobPlanner.blockCount(pairs: 120, workers: 2), 4)
        XCTAssertEqual(JobPlanner.blockCount(pairs: 3, workers: 8), 3)
        XCTAssertEqual(JobPlanner.blockCount(pairs: 1081, workers: 2), 28)
        XCTAssertEqual(JobPlanner.blockCount(pairs: 1081, workers: 3), 30)
    }

    func testAPhotoLeftOutByPreProcessingTakesItsFeaturesWithIt() throws {
        dispatcher.idle = 1
        let (project, names) = try makeProject("p", images: 3)
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .imageAlignment)
        let order = runEverything { task in
            task.kind == .preprocess && task.inputs["image"] == .string(names[1])
                ? TaskFailure(taskId: task.taskId, message: "not a photo", retryable: false, image: names[1]) : nil
        }
        XCTAssertEqual(order.filter { $0 == .features }.count, 2, "\(order)")
        XCTAssertEqual(try status(project).status, "completed")
        let tasks = try jobs.tasks(jobID: try jobs.jobs(projectID: project.id)[0].id)
        XCTAssertEqual(tasks.filter { $0.image == names[1] }.map(\.state), [.skipped, .skipped])
    }

    func testAJobWhosePhotosAreAllUnreadableFailsSayingWhatToDo() throws {
        let (project, names) = try makeProject("p", images: 2)
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .preProcessing)
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
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .preProcessing)
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
        try scheduler.submit(project: project, images: names, options: ComputeOptions(), lastStage: .preProcessing)
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
