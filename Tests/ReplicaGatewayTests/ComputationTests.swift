import Foundation
import ReplicaEvaluation
import ReplicaExport
import ReplicaGateway
import ReplicaImageIO
import ReplicaReconstruction
import ReplicaTestSupport
import XCTest

/// Computation end to end: the real `replica-link` executable over real HTTP, with real worker processes (the
/// fake of `Fixtures/fake-worker.py`, and once the real `replica-worker`) and real signals: a cancel, a delete,
/// and SIGKILL of a worker and of the gateway itself midway.
///
/// The fake worker appends each task's start (`<taskId> <image> <pid>`), its `sleep` children and each task's end
/// to a run log; what ran, in which process and how often is read from there. The knobs travel in the gateway's
/// environment, which its workers inherit.
final class ComputationTests: XCTestCase {
    private var directory = ""
    private var gateway: GatewayProcess?

    override func setUp() {
        directory = GatewayHarness.temporaryDirectory()
    }

    override func tearDown() {
        gateway?.stop()
        gateway = nil
        // A test that failed midway may leave a `sleep` child or an orphaned worker behind: ours, by their pids.
        for pid in RunLog(path: runLogPath).processes where !processIsGone(pid) && isFakeWorkerProcess(pid) {
            kill(pid, SIGKILL)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private var runLogPath: String { directory + "/run.log" }

    // MARK: - A computation's life

    func testAComputationIsQueuedRunsWithRisingProgressAndCanRunAgain() throws {
        let gateway = try start(knobs: ["FAKE_WORKER_TASK_SECONDS": "0.5"])
        let id = try gateway.create("Statue", photos(["s0.jpg", "s1.jpg", "s2.jpg"]))

        let queued = try gateway.compute(id, #"{"detail":"preview"}"#)
        XCTAssertEqual(queued.status, 202, queued.text)
        XCTAssertEqual(queued.json as NSDictionary, ["id": id, "status": "queued"], queued.text)
        assertAPIError(try gateway.compute(id, #"{"detail":"preview"}"#), 409,
                       "Project is already processing or queued")
        let first = try watch(gateway, id)
        assertProgressRisesToCompletion(first, detail: "preview")

        // A completed project may be computed again: the same way, from the start.
        let again = try gateway.compute(id, #"{"detail":"preview"}"#)
        XCTAssertEqual(again.status, 202, again.text)
        XCTAssertEqual(again.json as NSDictionary, ["id": id, "status": "queued"], again.text)
        let second = try watch(gateway, id)
        assertProgressRisesToCompletion(second, detail: "preview")

        XCTAssertEqual(try gateway.statusList().pollInterval, 10, "nothing is busy any more")
        let log = RunLog(path: runLogPath)
        for name in ["s0.jpg", "s1.jpg", "s2.jpg"] {
            XCTAssertEqual(log.startCount(of: name), 2, "\(name) once per computation\n\(diagnosis())")
        }
    }

    func testBadRequestsAreRefusedAndNothingRuns() throws {
        let gateway = try start()
        let id = try gateway.create("Refusals", photos(["r0.jpg"]))

        // Each refusal names the field at fault.
        let refusals: [(body: String, field: String)] = [
            (#"{"detail":"ultra"}"#, "detail"),
            (#"{"isObjectMaskingEnabled":1}"#, "isObjectMaskingEnabled"),
            (#"{"maximumPolygonCount":1000}"#, "maximumPolygonCount"),
        ]
        for (body, field) in refusals {
            let response = try gateway.compute(id, body)
            XCTAssertEqual(response.status, 400, "\(body): \(response.text)")
            XCTAssertEqual(Set(response.json.keys), ["error"], "\(body): \(response.text)")
            let message = response.json["error"] as? String ?? ""
            XCTAssertTrue(message.hasPrefix(field + " "), "\(body) answered \(response.text)")
        }
        let malformed = try gateway.compute(id, #"{"detail":"#)
        XCTAssertEqual(malformed.status, 400, malformed.text)
        XCTAssertTrue((malformed.json["error"] as? String ?? "").contains("not valid JSON"), malformed.text)

        let unknown = UUID().uuidString.lowercased()
        assertAPIError(try gateway.compute(unknown, "{}"), 404, "Project not found")
        assertAPIError(try gateway.send("POST", "/api/projects/\(unknown)/cancel"), 404, "Project not found")
        assertAPIError(try gateway.send("POST", "/api/projects/\(id)/cancel"), 404,
                       "Project is not processing or queued")
        XCTAssertEqual(try gateway.project(id).status, "ready")

        // None of that queued anything; a good request then runs the one photo once.
        XCTAssertEqual(try gateway.compute(id, #"{"detail":"preview"}"#).status, 202)
        XCTAssertEqual(try waitUntilFinished(gateway, id).status, "completed")
        XCTAssertEqual(RunLog(path: runLogPath).starts.map(\.image), ["r0.jpg"], diagnosis())
    }

    // MARK: - Stopping a job

    func testCancelStopsEveryProcessOfTheJobWithinTwoSeconds() throws {
        var gateway = try start(knobs: ["FAKE_WORKER_TASK_SECONDS": "5", "FAKE_WORKER_CHILD": "1"])
        let id = try gateway.create("Cancelled", photos(["c0.jpg", "c1.jpg", "c2.jpg"]))
        XCTAssertEqual(try gateway.compute(id, "").status, 202)
        let running = try waitForRunLog("two tasks running, each with its child") {
            $0.starts.count == 2 && $0.children.count == 2
        }
        let doomed = running.workerPids.union(running.children)

        let cancelled = try gateway.send("POST", "/api/projects/\(id)/cancel")
        let answered = Date()
        XCTAssertEqual(cancelled.status, 200, cancelled.text)
        XCTAssertEqual(cancelled.json as NSDictionary, ["id": id, "status": "ready"], cancelled.text)
        let allGone = eventually(timeout: 2 - Date().timeIntervalSince(answered)) {
            doomed.allSatisfy(processIsGone)
        }
        XCTAssertTrue(allGone, "alive 2 s after the cancel: \(doomed.filter { !processIsGone($0) }.sorted())")
        let project = try gateway.project(id)
        XCTAssertEqual([project.status, project.processingStage, project.errorMessage], ["ready", "", ""])
        XCTAssertEqual(project.progress, 0)
        XCTAssertEqual(try gateway.statusList().projects.first?.status, "ready")

        // The pool fills both slots again at once.
        let replaced = eventually(timeout: 5) {
            let workers = fakeWorkers(of: gateway.pid)
            return workers.count == 2 && workers.isDisjoint(with: doomed)
        }
        XCTAssertTrue(replaced, "workers now: \(fakeWorkers(of: gateway.pid).sorted()), stopped: \(doomed.sorted())")

        // Restarted with short tasks, the project computes again, and no task of the cancelled job ever ran again.
        gateway.stop()
        gateway = try start(knobs: ["FAKE_WORKER_TASK_SECONDS": "0.2"])
        XCTAssertEqual(try gateway.project(id).status, "ready")
        XCTAssertEqual(try gateway.compute(id, "").status, 202)
        XCTAssertEqual(try waitUntilFinished(gateway, id).status, "completed", diagnosis())
        let cancelledTasks = Set(running.starts.map(\.task))
        XCTAssertEqual(RunLog(path: runLogPath).starts.filter { cancelledTasks.contains($0.task) }.count, 2,
                       diagnosis())
    }

    func testDeletingAProcessingProjectStopsItsWorkersAndRemovesTheFolder() throws {
        let gateway = try start(knobs: ["FAKE_WORKER_TASK_SECONDS": "5", "FAKE_WORKER_CHILD": "1"])
        let id = try gateway.create("Doomed", photos(["d0.jpg", "d1.jpg"]))
        XCTAssertEqual(try gateway.compute(id, "").status, 202)
        let running = try waitForRunLog("two tasks running, each with its child") {
            $0.starts.count == 2 && $0.children.count == 2
        }
        XCTAssertEqual(try gateway.project(id).status, "processing")
        let doomed = running.workerPids.union(running.children)

        let deleted = try gateway.send("DELETE", "/api/projects/\(id)?deleteFiles=true")
        let answered = Date()
        XCTAssertEqual(deleted.status, 200, deleted.text)
        XCTAssertEqual(deleted.json as NSDictionary, ["id": id, "deleted": true], deleted.text)
        let allGone = eventually(timeout: 2 - Date().timeIntervalSince(answered)) {
            doomed.allSatisfy(processIsGone)
        }
        XCTAssertTrue(allGone, "alive 2 s after the delete: \(doomed.filter { !processIsGone($0) }.sorted())")

        let library = directory + "/projects"
        XCTAssertTrue(eventually { !FileManager.default.fileExists(atPath: library + "/Doomed") }, "the folder stayed")
        let trash = { ((try? FileManager.default.contentsOfDirectory(atPath: library)) ?? []).filter {
            $0.hasPrefix(".trash")
        } }
        XCTAssertTrue(eventually { trash().isEmpty }, "trash left: \(trash())")
        assertAPIError(try gateway.send("GET", "/api/projects/\(id)"), 404, "Project not found")
    }

    // MARK: - Crashes

    func testAWorkerKilledMidTaskIsReplacedAndItsTaskRunsAgain() throws {
        let gateway = try start(knobs: ["FAKE_WORKER_TASK_SECONDS": "1"])
        let names = ["w0.jpg", "w1.jpg", "w2.jpg", "w3.jpg"]
        let id = try gateway.create("Crashing", photos(names))
        XCTAssertEqual(try gateway.compute(id, "").status, 202)
        let victim = try XCTUnwrap(try waitForRunLog("a task running") { !$0.starts.isEmpty }.starts.first)
        XCTAssertEqual(kill(victim.pid, SIGKILL), 0)

        XCTAssertEqual(try waitUntilFinished(gateway, id).status, "completed", diagnosis())
        let log = RunLog(path: runLogPath)
        XCTAssertEqual(log.starts.filter { $0.task == victim.task }.count, 2,
                       "the killed task ran again\n\(diagnosis())")
        for name in names where name != victim.image {
            XCTAssertEqual(log.startCount(of: name), 1, "\(name)\n\(diagnosis())")
        }
        XCTAssertTrue(processIsGone(victim.pid))
    }

    func testAGatewayKilledMidJobResumesWhereItStopped() throws {
        let knobs = ["FAKE_WORKER_TASK_SECONDS": "1"]
        var gateway = try start(knobs: knobs)
        let names = (0..<8).map { "k\($0).jpg" }
        let id = try gateway.create("Resumed", photos(names))
        XCTAssertEqual(try gateway.compute(id, "").status, 202)
        // A worker is sent its next task only after the gateway recorded its last one: four starts mean at
        // least two tasks are stored as done.
        _ = try waitForRunLog("a second round of tasks") { $0.starts.count >= 4 }
        let workers = fakeWorkers(of: gateway.pid)
        XCTAssertEqual(workers.count, 2, "workers: \(workers.sorted())")
        gateway.kill9()

        // Their stdin closed with the gateway: the orphaned workers leave on their own.
        XCTAssertTrue(eventually(timeout: 10) { workers.allSatisfy(processIsGone) },
                      "orphans alive: \(workers.filter { !processIsGone($0) }.sorted())")
        let beforeRestart = RunLog(path: runLogPath)
        let done = try imagesDone(inDataDirectory: directory)
        XCTAssertGreaterThanOrEqual(done.count, 2, "done before the kill: \(done.sorted())")
        let neverStarted = Set(names).subtracting(beforeRestart.starts.map(\.image))
        XCTAssertGreaterThanOrEqual(neverStarted.count, 2, "the kill came too late to leave tasks pending")

        gateway = try start(knobs: knobs)
        XCTAssertEqual(try waitUntilFinished(gateway, id).status, "completed", diagnosis())
        let project = try gateway.project(id)
        XCTAssertEqual(project.progress, 1)
        let resumed = Array(RunLog(path: runLogPath).starts.dropFirst(beforeRestart.starts.count))
        XCTAssertEqual(resumed.map(\.image).sorted(), Set(names).subtracting(done).sorted(),
                       "after the restart only what was not done ran, once each\n\(diagnosis())")
        XCTAssertEqual(Set(resumed.map(\.job)), Set(beforeRestart.starts.map(\.job)), "the same job went on")
    }

    // MARK: - Sharing the workers

    func testTwoProjectsShareTheWorkersAndOneAloneUsesBoth() throws {
        let gateway = try start(knobs: ["FAKE_WORKER_TASK_SECONDS": "1"])
        let firstNames = ["a0.jpg", "a1.jpg", "a2.jpg", "a3.jpg"]
        let secondNames = ["b0.jpg", "b1.jpg", "b2.jpg", "b3.jpg"]
        let first = try gateway.create("First", photos(firstNames))
        let second = try gateway.create("Second", photos(secondNames))

        // Alone, one project keeps both workers busy at once.
        XCTAssertEqual(try gateway.compute(first, "").status, 202)
        _ = try waitForRunLog("two workers running the first project at once") {
            $0.hasOverlappingRuns(among: Set(firstNames))
        }

        // The second project's tasks are not queued behind all of the first's: both move before either ends.
        XCTAssertEqual(try gateway.compute(second, "").status, 202)
        var seen: [(first: StatusItem, second: StatusItem)] = []
        let deadline = Date(timeIntervalSinceNow: 20)
        while Date() < deadline {
            let items = try gateway.statusList().projects
            guard let one = items.first(where: { $0.id == first }), let two = items.first(where: { $0.id == second })
            else { return XCTFail("the status lacks a project: \(items.map(\.id))") }
            seen.append((one, two))
            if one.status == "completed" && two.status == "completed" { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let shared = seen.contains { pair in
            pair.first.progress > 0 && pair.second.progress > 0
                && pair.first.status != "completed" && pair.second.status != "completed"
        }
        let trace = seen.map { "\($0.first.status) \($0.first.progress) | \($0.second.status) \($0.second.progress)" }
        XCTAssertTrue(shared, "no moment when both had progress and neither had ended:\n"
                      + trace.joined(separator: "\n") + "\n" + diagnosis())
        XCTAssertEqual(seen.last.map { [$0.first.status, $0.second.status] }, ["completed", "completed"])
        let log = RunLog(path: runLogPath)
        for name in firstNames + secondNames { XCTAssertEqual(log.startCount(of: name), 1, name) }
    }

    // MARK: - Photos that cannot be read

    func testUnreadablePhotosAreLeftOutAndAllUnreadableFailsTheJob() throws {
        let gateway = try start(knobs: ["FAKE_WORKER_FAIL_IMAGES": "bad.jpg,none0.jpg,none1.jpg,none2.jpg"])
        let partly = try gateway.create("Partly", photos(["good0.jpg", "bad.jpg", "good1.jpg"]))
        let unreadable = try gateway.create("Unreadable", photos(["none0.jpg", "none1.jpg", "none2.jpg"]))

        XCTAssertEqual(try gateway.compute(partly, "").status, 202)
        XCTAssertEqual(try waitUntilFinished(gateway, partly).status, "completed", diagnosis())
        let jobLog = directory + "/projects/Partly/work/job.log"
        let read = { (try? String(contentsOfFile: jobLog, encoding: .utf8)) ?? "" }
        XCTAssertTrue(eventually { read().contains("bad.jpg was left out") }, "job.log:\n\(read())")
        XCTAssertEqual(RunLog(path: runLogPath).startCount(of: "bad.jpg"), 1, "a photo that is not one is not retried")

        XCTAssertEqual(try gateway.compute(unreadable, "").status, 202)
        let failed = try waitUntilFinished(gateway, unreadable)
        XCTAssertEqual(failed.status, "failed", diagnosis())
        XCTAssertEqual(failed.processingStage, "")
        XCTAssertTrue(failed.errorMessage.contains("Pre-Processing"), failed.errorMessage)
        XCTAssertTrue(failed.errorMessage.lowercased().contains("compute again"), failed.errorMessage)
        let polled = try gateway.statusList().projects.first { $0.id == unreadable }
        XCTAssertEqual(polled?.errorMessage, failed.errorMessage)
    }

    // MARK: - The real worker

    func testADiskThatFillsDuringAComputationFailsTheJobClearlyAndKeepsThePhotos() throws {
        // The library on a 4 MiB tmpfs: the photos fit, the depth maps of Point Cloud Generation do not.
        let disk = try SmallDisk(megabytes: 4)
        directory = disk.path + "/data"
        let scene = disk.path + "/../" + UUID().uuidString
        defer {
            gateway?.stop()
            disk.remove()
            try? FileManager.default.removeItem(atPath: scene)
        }
        let gateway = try start(fakeWorker: false)
        try SceneWriter.write(SyntheticScene.make(.ci), to: scene, format: .jpeg)
        let names = try FileManager.default.contentsOfDirectory(atPath: scene + "/images").sorted()
        let photos = try names.map { Photo(name: $0, bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath:
            scene + "/images/" + $0)))) }
        let id = try gateway.create("Ring", photos)

        XCTAssertEqual(try gateway.compute(id, #"{"detail":"preview"}"#).status, 202)
        let project = try waitUntilFinished(gateway, id, timeout: 120)
        XCTAssertEqual(project.status, "failed", diagnosis())
        XCTAssertTrue(project.errorMessage.contains("Not enough free disk space"), project.errorMessage)
        XCTAssertEqual(try gateway.send("GET", "/api/health").status, 200)
        XCTAssertEqual(try gateway.project(id).imageCount, photos.count)
        for photo in photos {
            let stored = FileManager.default.contents(atPath: directory + "/projects/Ring/images/" + photo.name)
            XCTAssertTrue(stored.map { [UInt8]($0) } == photo.bytes, "\(photo.name) changed")
        }
    }

    func testTheRealWorkerReconstructsTheSyntheticRingAndServesItsCameras() throws {
        let gateway = try start(fakeWorker: false)
        // The CI-sized synthetic scene: twelve 320 × 240 JPEGs with their focal length in EXIF.
        let scene = directory + "/scene"
        try SceneWriter.write(SyntheticScene.make(.ci), to: scene, format: .jpeg)
        let names = try FileManager.default.contentsOfDirectory(atPath: scene + "/images").sorted()
        let photos = try names.map { Photo(name: $0, bytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath:
            scene + "/images/" + $0)))) }
        let id = try gateway.create("Ring", photos)
        assertAPIError(try gateway.send("GET", "/api/projects/\(id)/cameras"), 404, "Cameras not found")

        XCTAssertEqual(try gateway.compute(id, #"{"detail":"preview","featureSensitivity":"high"}"#).status, 202)
        let project = try waitUntilFinished(gateway, id, timeout: 120)
        XCTAssertEqual(project.status, "completed", "\(project.errorMessage)\n\(diagnosis())")
        XCTAssertEqual(project.modelDetail, "preview")

        let cameras = try gateway.send("GET", "/api/projects/\(id)/cameras")
        XCTAssertEqual(cameras.status, 200, cameras.text)
        XCTAssertEqual(cameras.header("Content-Type"), "application/zip")
        XCTAssertEqual(cameras.header("Content-Disposition"), #"attachment; filename="Ring_cameras.zip""#)
        let sparse = directory + "/projects/Ring/work/sparse/"
        var expected: [String: [UInt8]] = [:]
        for name in ["colmap/cameras.txt", "colmap/images.txt", "colmap/points3D.txt", "transforms.json"] {
            expected[name] = [UInt8](try Data(contentsOf: URL(fileURLWithPath: sparse + name)))
        }
        try assertArchive(cameras.body, holds: expected)
        // Every photo placed, and placed where the truth has it.
        let model = try COLMAPModel.read(folder: sparse + "colmap")
        let truth = try SceneTruthFile.read(folder: scene)
        let evaluation = try CameraMetrics.evaluate(estimated: model.images, truth: truth)
        XCTAssertEqual(evaluation.registeredCount, names.count)
        XCTAssertLessThan(try XCTUnwrap(evaluation.rotationErrorDegrees).median, 0.5)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/projects/Ring/work/images/"
                                                     + names[0] + ".json"), "Pre-Processing's sidecar")
        let jobLog = (try? String(contentsOfFile: directory + "/projects/Ring/work/job.log", encoding: .utf8)) ?? ""
        XCTAssertTrue(jobLog.contains("Image Alignment: \(names.count) of \(names.count) photos aligned"), jobLog)
        XCTAssertTrue(jobLog.contains("Point Cloud Generation: "), jobLog)
        XCTAssertTrue(FileManager.default.fileExists(atPath: directory + "/projects/Ring/work/dense.ply"))
        // Mesh Generation: preview's budget, triangles, both meshes readable.
        XCTAssertTrue(jobLog.contains("Mesh Generation: "), jobLog)
        let mesh = try SurfaceMesh(plyBytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath:
            directory + "/projects/Ring/work/mesh.ply"))))
        XCTAssertGreaterThan(mesh.triangles.count, 1000)
        XCTAssertLessThan(mesh.polygonCount, 25_000)
        XCTAssertTrue(mesh.quads.isEmpty)
        XCTAssertEqual(mesh.normals.count, mesh.positions.count)
        XCTAssertNoThrow(try SurfaceMesh(plyBytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath:
            directory + "/projects/Ring/work/mesh-raw.ply")))))
        // Texture Mapping: preview's three maps at 1024², on the textured mesh.
        XCTAssertTrue(jobLog.contains("Texture Mapping: "), jobLog)
        let textured = try TexturedSurface(plyBytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath:
            directory + "/projects/Ring/work/textured.ply"))))
        XCTAssertEqual(textured.polygonCount, mesh.polygonCount)
        for map in ["ambientOcclusion", "diffuseColor", "normal"] {
            let pixels = try ImageReader.decode(path: directory + "/projects/Ring/work/texture/\(map)-0.png",
                                                options: DecodeOptions(allowGrey: true)).pixels
            XCTAssertEqual([pixels.width, pixels.height], [1024, 1024], map)
        }
        assertAPIError(try gateway.send("GET", "/api/projects/no-such-project/cameras"), 404, "Project not found")
        try assertModelDownloads(gateway, id, textured: textured)
    }

    /// Exporting ran last: every format downloads with its type and reads back, in readers that are not ours
    /// where there are some, with the textured mesh's triangles and its maps.
    private func assertModelDownloads(_ gateway: GatewayProcess, _ id: String, textured: TexturedSurface) throws {
        let project = try gateway.project(id)
        XCTAssertTrue(project.hasModel)
        XCTAssertTrue(project.hasGlb)
        let jobLog = (try? String(contentsOfFile: directory + "/projects/Ring/work/job.log", encoding: .utf8)) ?? ""
        XCTAssertTrue(jobLog.contains("Exporting: \(textured.triangulated.count) triangles"), jobLog)
        let types = ["glb": "model/gltf-binary", "usdz": "model/vnd.usdz+zip", "obj": "text/plain",
                     "fbx": "application/octet-stream"]
        var paths: [String: String] = [:]
        for (format, type) in types {
            let response = try gateway.send("GET", "/api/projects/\(id)/download?format=\(format)")
            XCTAssertEqual(response.status, 200, "\(format): \(response.text.prefix(200))")
            XCTAssertEqual(response.header("Content-Type"), type)
            paths[format] = directory + "/Ring." + format
            try Data(response.body).write(to: URL(fileURLWithPath: paths[format]!))
        }
        let glb = try GLB.read([UInt8](try Data(contentsOf: URL(fileURLWithPath: paths["glb"]!))))
        let triangles = textured.triangulated.count
        XCTAssertEqual(glb.triangleCount, triangles)
        XCTAssertEqual(glb.vertexCount, textured.positions.count, "one page: every vertex once")
        // Preview's maps: base colour, normal, occlusion.
        XCTAssertEqual(Set(glb.textures.map(\.map)), [.diffuse, .normal, .occlusion])
        // Metres with +Y up: resting on the ground, about the size the assumed camera distance gives.
        let lower = glb.parts[0].lower, upper = glb.parts[0].upper
        XCTAssertEqual(lower.y, 0, accuracy: 1e-4)
        XCTAssertTrue((0.05...2).contains(upper.y), "height \(upper.y) m")
        for format in ["obj", "fbx"] {
            let summary = try AssimpReader.summary(ofFile: paths[format]!)
            XCTAssertEqual(summary.faces, triangles, "\(format): \(summary)")
            XCTAssertEqual(summary.vertices, glb.vertexCount, "\(format): \(summary)")
            XCTAssertTrue(summary.hasTextureCoordinates, format)
            if format == "fbx" { XCTAssertEqual(summary.embeddedTextures, 2, "\(summary)") }
        }
        // The cached OBJ beside its library: assimp finds the textures, and every GLB vertex is there.
        let cached = try AssimpReader.summary(ofFile: directory + "/projects/Ring/link-exports/model.obj")
        XCTAssertEqual(cached.texturePaths, ["model-diffuse-0.png", "model-normal-0.png"])
        let obj = try String(contentsOfFile: paths["obj"]!, encoding: .utf8)
        XCTAssertEqual(obj.split(separator: "\n").filter { $0.hasPrefix("v ") }.count, glb.vertexCount)
        guard let python = ModelValidator.python else { return }
        for format in ["glb", "usdz"] {
            let report = try ModelValidator.run(format, paths[format]!, python: python)
            XCTAssertEqual(report["errors"] as? [String], [], "\(format): \(report)")
            XCTAssertEqual(report["faces"] as? Int, triangles, format)
            XCTAssertEqual(report["vertices"] as? Int, glb.vertexCount, format)
            XCTAssertEqual(report["textures"] as? Int, 3, format)
        }
    }

    // MARK: - Steps

    /// Starts the gateway on the test's data directory with two workers: the fake one (with `knobs` and the run
    /// log in its environment) or, with `fakeWorker` false, the default command, `replica-worker` beside it.
    private func start(knobs: [String: String] = [:], fakeWorker: Bool = true) throws -> GatewayProcess {
        var environment = knobs
        environment["FAKE_WORKER_RUN_LOG"] = runLogPath
        let command = fakeWorker ? try FakeWorker.template("ok") : nil
        let started = try GatewayProcess.launch(directory: directory, workerCommand: command,
                                                environment: environment)
        gateway = started
        return started
    }

    /// Small JPEGs under the given names; the fake worker never reads them, the upload checks they are photos.
    private func photos(_ names: [String]) throws -> [Photo] {
        let bytes = try Photos.synthetic(width: 32, height: 24)
        return names.map { Photo(name: $0, bytes: bytes) }
    }

    /// What a failure message needs: the run log and the end of the gateway's log.
    private func diagnosis() -> String {
        let log = (try? String(contentsOfFile: directory + "/logs/gateway.log", encoding: .utf8)) ?? ""
        let tail = log.split(separator: "\n").suffix(40).joined(separator: "\n")
        return "run log:\n\(RunLog(path: runLogPath).text)gateway log (end):\n\(tail)"
    }

    /// Waits for the run log to satisfy `condition`; fails the test with what it holds when it does not in time.
    private func waitForRunLog(_ what: String, timeout: Double = 10,
                               _ condition: (RunLog) -> Bool) throws -> RunLog {
        let deadline = Date(timeIntervalSinceNow: timeout)
        var log = RunLog(path: runLogPath)
        while !condition(log) {
            guard Date() < deadline else {
                XCTFail("waited \(timeout) s for \(what)\n\(diagnosis())")
                throw ClientError("the run log never showed \(what)")
            }
            Thread.sleep(forTimeInterval: 0.02)
            log = RunLog(path: runLogPath)
        }
        return log
    }

    /// Polls the project until it is completed or failed, and returns it then.
    private func waitUntilFinished(_ gateway: GatewayProcess, _ id: String,
                                   timeout: Double = 20) throws -> LinkProject {
        try watch(gateway, id, timeout: timeout).last.map { $0.project } ?? gateway.project(id)
    }

    /// Polls `/api/status` and `/api/projects/:id` in turn until the project is completed or failed.
    private func watch(_ gateway: GatewayProcess, _ id: String, timeout: Double = 20) throws -> [Observation] {
        var seen: [Observation] = []
        let deadline = Date(timeIntervalSinceNow: timeout)
        while Date() < deadline {
            let list = try gateway.statusList()
            let item = try XCTUnwrap(list.projects.first { $0.id == id }, "\(id) is not in the status")
            let project = try gateway.project(id)
            seen.append(Observation(item: item, pollInterval: list.pollInterval, project: project))
            if ["completed", "failed"].contains(project.status) { return seen }
            Thread.sleep(forTimeInterval: 0.03)
        }
        XCTFail("not finished within \(timeout) s; last seen \(seen.last.map { "\($0.project)" } ?? "nothing")\n"
                + diagnosis())
        return seen
    }

    /// A run from queued to completed as a client polls it: progress within 0...1 and never lower than before,
    /// the stage named while processing, fast polling while busy, and the detail asked for at the end.
    private func assertProgressRisesToCompletion(_ seen: [Observation], detail: String,
                                                 file: StaticString = #filePath, line: UInt = #line) {
        let trace = seen.map(\.description).joined(separator: "\n")
        var highest = 0.0
        for observation in seen {
            for (status, progress, stage) in observation.views {
                XCTAssertTrue((0...1).contains(progress), "progress out of range\n\(trace)", file: file, line: line)
                XCTAssertGreaterThanOrEqual(progress, highest, "progress went back\n\(trace)", file: file, line: line)
                highest = max(highest, progress)
                if status == "processing" {
                    XCTAssertTrue(PipelineStage.allCases.map(\.rawValue).contains(stage), trace, file: file,
                                  line: line)
                }
            }
            if ["queued", "processing"].contains(observation.item.status) {
                XCTAssertEqual(observation.pollInterval, 2, trace, file: file, line: line)
            }
        }
        XCTAssertTrue(seen.contains { $0.project.status == "processing" && (0.01..<1).contains($0.project.progress) },
                      "no progress seen on the way\n\(trace)", file: file, line: line)
        guard let end = seen.last?.project else { return XCTFail("nothing seen", file: file, line: line) }
        XCTAssertEqual([end.status, end.processingStage, end.modelDetail, end.errorMessage],
                       ["completed", "", detail, ""], trace, file: file, line: line)
        XCTAssertEqual(end.progress, 1, file: file, line: line)
    }
}

/// One round of polling: the status list's item and interval, then the project itself.
private struct Observation: CustomStringConvertible {
    var item: StatusItem
    var pollInterval: Int
    var project: LinkProject

    /// Status, progress and stage as each endpoint gave them, in the order they were asked.
    var views: [(String, Double, String)] {
        [(item.status, item.progress, item.processingStage),
         (project.status, project.progress, project.processingStage)]
    }

    var description: String {
        "status: \(item.status) \(item.progress) '\(item.processingStage)' poll \(pollInterval); "
            + "project: \(project.status) \(project.progress) '\(project.processingStage)'"
    }
}

// MARK: - The fake worker

/// `Fixtures/fake-worker.py` and the Python that runs it.
enum FakeWorker {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/fake-worker.py").path

    /// The interpreter `python3` on the PATH resolves to, found once; a pyenv shim would add a shell to each start.
    private static let python: String? = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import sys; print(sys.executable)"]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return nil }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        let path = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return process.terminationStatus == 0 && !path.isEmpty ? path : nil
    }()

    /// The worker's argv in `mode`; skips the test where there is no python3.
    static func command(_ mode: String) throws -> [String] {
        guard let python else { throw XCTSkip("python3 is not installed; the fake worker needs it") }
        return [python, script, mode]
    }

    /// The same as `--worker-command` takes it: each path in single quotes.
    static func template(_ mode: String) throws -> String {
        try command(mode).map { "'" + $0.replacingOccurrences(of: "'", with: #"'\''"#) + "'" }
            .joined(separator: " ")
    }
}

/// The fake worker's run log, parsed in the order its lines were appended.
private struct RunLog {
    struct Start {
        /// The wire's task id, `<job id>/<task row>`.
        var task: String
        var image: String
        var pid: Int32
        var job: Substring { task.split(separator: "/").first ?? "" }
    }

    enum Entry {
        case start(Start)
        case child(pid: Int32)
        case end(task: String, pid: Int32)
    }

    let text: String
    let entries: [Entry]

    init(path: String) {
        text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        // A line still being appended has no newline yet: only whole lines count.
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        entries = lines.compactMap { line in
            let words = line.split(separator: " ").map(String.init)
            switch (words.first, words.count) {
            case ("child", 2): return Int32(words[1]).map { .child(pid: $0) }
            case ("end", 3): return Int32(words[2]).map { .end(task: words[1], pid: $0) }
            case (_, 3): return Int32(words[2]).map { .start(Start(task: words[0], image: words[1], pid: $0)) }
            default: return nil
            }
        }
    }

    var starts: [Start] {
        entries.compactMap { if case .start(let start) = $0 { return start } else { return nil } }
    }

    var children: Set<Int32> {
        Set(entries.compactMap { if case .child(let pid) = $0 { return pid } else { return nil } })
    }

    var workerPids: Set<Int32> { Set(starts.map(\.pid)) }

    /// Every process the log names.
    var processes: Set<Int32> { workerPids.union(children) }

    func startCount(of image: String) -> Int { starts.filter { $0.image == image }.count }

    /// Two workers ran tasks of these images at the same time: one started a task before another's had ended.
    func hasOverlappingRuns(among images: Set<String>) -> Bool {
        var running: [String: Int32] = [:]
        for entry in entries {
            switch entry {
            case .start(let start) where images.contains(start.image):
                if running.values.contains(where: { $0 != start.pid }) { return true }
                running[start.task] = start.pid
            case .end(let task, _):
                running[task] = nil
            default:
                break
            }
        }
        return false
    }
}

// MARK: - Processes

/// One `replica-link serve` on a loopback port of its own, and a logged-in client of it.
final class GatewayProcess {
    let process: Process
    let port: Int
    private(set) var token = ""
    var pid: Int32 { process.processIdentifier }

    private init(process: Process, port: Int) {
        self.process = process
        self.port = port
    }

    /// Starts the executable and returns it once it serves and has given a token.
    static func launch(directory: String, workerCommand: String?, environment: [String: String]) throws
        -> GatewayProcess {
        let process = Process()
        process.executableURL = GatewayProcessTests.executable
        process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", directory,
                             "--pin", "123456", "--workers", "2"]
            + (workerCommand.map { ["--worker-command", $0] } ?? [])
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let output = Pipe()
        process.standardOutput = output
        // The logs go to <data-dir>/logs/gateway.log as well; a pipe nobody reads would block the gateway.
        process.standardError = FileHandle.nullDevice
        try process.run()
        var text = ""
        let deadline = Date(timeIntervalSinceNow: 20)
        while !text.contains("PIN: "), Date() < deadline {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let port = text.firstMatch(of: #/serving on http://\S+:(\d+)\n/#).map({ Int($0.1)! }) else {
            process.terminate()
            process.waitUntilExit()
            throw ClientError("the gateway did not start: \(text)")
        }
        let gateway = GatewayProcess(process: process, port: port)
        let login = try gateway.send("POST", "/api/auth", body: #"{"pin":"123456"}"#)
        gateway.token = try XCTUnwrap(login.json["token"] as? String, login.text)
        return gateway
    }

    /// SIGTERM and the wait for the exit; SIGKILL if it does not come.
    func stop() {
        guard !processIsGone(pid) else { return }
        kill(pid, SIGTERM)
        let stopped = eventually(timeout: 20) { processIsGone(pid) }
        XCTAssertTrue(stopped, "the gateway did not stop on SIGTERM")
        if !stopped { kill9() }
    }

    /// SIGKILL and the wait for the death, read from `/proc` so the test does not depend on how Foundation
    /// learns of a child's exit.
    func kill9() {
        kill(pid, SIGKILL)
        XCTAssertTrue(eventually(timeout: 10) { processIsGone(pid) }, "the gateway outlived SIGKILL")
    }

    /// One request on a new connection, with the token once there is one; a body is sent as JSON.
    func send(_ method: String, _ target: String, body: String? = nil) throws -> RawResponse {
        try send(method, target, bytes: Array((body ?? "").utf8), type: body == nil ? nil : "application/json")
    }

    func send(_ method: String, _ target: String, bytes: [UInt8], type: String?) throws -> RawResponse {
        let client = try RawClient(port: port)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: \(bytes.count)\r\n"
        if !token.isEmpty { head += "Authorization: Bearer \(token)\r\n" }
        if let type { head += "Content-Type: \(type)\r\n" }
        try client.send(Array((head + "\r\n").utf8) + bytes)
        return try client.readResponse()
    }

    /// Uploads the photos as a new project and returns its id.
    func create(_ name: String, _ photos: [Photo]) throws -> String {
        let form = MultipartForm.photos(photos, name: name)
        let response = try send("POST", "/api/projects", bytes: form.bytes(), type: form.contentType)
        XCTAssertEqual(response.status, 201, response.text)
        return try XCTUnwrap(response.json["id"] as? String, response.text)
    }

    func compute(_ id: String, _ body: String) throws -> RawResponse {
        try send("POST", "/api/projects/\(id)/compute", body: body)
    }

    func project(_ id: String) throws -> LinkProject {
        let response = try send("GET", "/api/projects/\(id)")
        XCTAssertEqual(response.status, 200, response.text)
        return try decode(LinkProject.self, response, keys: LinkProject.keys)
    }

    func statusList() throws -> StatusList {
        let response = try send("GET", "/api/status")
        XCTAssertEqual(response.status, 200, response.text)
        return try decode(StatusList.self, response, keys: ["projects", "pollInterval"])
    }
}

/// The images whose tasks the data directory's database records as done, read while no gateway runs.
private func imagesDone(inDataDirectory directory: String) throws -> Set<String> {
    let database = try Database(path: directory + "/replica.sqlite")
    var images = Set<String>()
    try database.forEachRow("SELECT image FROM tasks WHERE state = 'done'") { row in
        if let image = row.string(at: 0) { images.insert(image) }
    }
    return images
}

/// The process's state letter from `/proc/<pid>/stat` and its parent; nil when there is no such process.
private func processStat(_ pid: Int32) -> (state: Character, parent: Int32)? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    // After the command's closing parenthesis: " <state> <ppid> ...".
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count >= 2, let state = fields[0].first, let parent = Int32(fields[1]) else { return nil }
    return (state, parent)
}

/// No such process, or a zombie: PID 1 in this container may not reap the orphans a killed worker leaves.
private func processIsGone(_ pid: Int32) -> Bool {
    if kill(pid, 0) != 0 && errno == ESRCH { return true }
    guard let state = processStat(pid)?.state else { return true }
    return state == "Z" || state == "X"
}

/// The live fake workers `gateway` spawned.
private func fakeWorkers(of gateway: Int32) -> Set<Int32> {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return Set(entries.compactMap(Int32.init).filter { pid in
        guard let stat = processStat(pid), stat.parent == gateway, !processIsGone(pid) else { return false }
        return isFakeWorkerProcess(pid)
    })
}

/// Whether the process runs the fake worker or the `sleep` it starts: a check before signalling a pid from a log.
private func isFakeWorkerProcess(_ pid: Int32) -> Bool {
    guard let bytes = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return false }
    let words = bytes.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    return words.contains(FakeWorker.script) || words == ["sleep", "1000"]
}
