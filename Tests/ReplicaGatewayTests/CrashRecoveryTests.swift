import Foundation
import ReplicaGateway
import ReplicaImageIO
import ReplicaTestSupport
import XCTest

/// SIGKILL at each step of the store's multi-step changes, then a restart: the store must come back consistent
/// with nothing stored lost. The real executable runs with `REPLICA_CRASH_AT` naming the step to die at, or is
/// killed from here while an upload streams in.
final class CrashRecoveryTests: XCTestCase {
    private var directory = ""
    private var gateway: Process?

    override func setUp() {
        directory = GatewayHarness.temporaryDirectory()
    }

    override func tearDown() {
        if let gateway, gateway.isRunning {
            gateway.terminate()
            gateway.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private var projectsDirectory: String { directory + "/projects" }

    /// Starts the gateway on the test's data directory and returns its port once it serves.
    private func start(crashAt point: String? = nil) throws -> Int {
        let process = Process()
        process.executableURL = GatewayProcessTests.executable
        process.arguments = ["serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", directory, "--pin", "123456"]
        var environment = ProcessInfo.processInfo.environment
        environment["REPLICA_CRASH_AT"] = point
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        gateway = process
        var text = ""
        let deadline = Date(timeIntervalSinceNow: 20)
        while !text.contains("PIN: "), Date() < deadline {
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        return try XCTUnwrap(text.firstMatch(of: #/serving on http://\S+:(\d+)\n/#).map { Int($0.1)! }, text)
    }

    /// Waits for the gateway to die of SIGKILL (its own, at a crash point, or ours).
    private func expectKilled(timeout: TimeInterval = 20) throws {
        let process = try XCTUnwrap(gateway)
        let deadline = Date(timeIntervalSinceNow: timeout)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(process.isRunning, "the gateway did not die")
        XCTAssertEqual(process.terminationReason, .uncaughtSignal)
        XCTAssertEqual(process.terminationStatus, SIGKILL)
    }

    private func token(_ port: Int) throws -> String {
        let response = try send(port, "POST", "/api/auth", body: Array(#"{"pin":"123456"}"#.utf8),
                                type: "application/json")
        return try XCTUnwrap(response.json["token"] as? String)
    }

    private func send(_ port: Int, _ method: String, _ target: String, token: String? = nil, body: [UInt8] = [],
                      type: String? = nil) throws -> RawResponse {
        let client = try RawClient(port: port)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: \(body.count)\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        if let type { head += "Content-Type: \(type)\r\n" }
        try client.send(Array((head + "\r\n").utf8) + body)
        return try client.readResponse()
    }

    /// A small real JPEG whose pixels depend on `seed`, so every photo's bytes differ.
    private func photo(_ seed: Int) throws -> [UInt8] {
        var pixels = PixelBuffer(width: 64, height: 48, channels: 3)
        for index in pixels.bytes.indices { pixels.bytes[index] = UInt8(truncatingIfNeeded: index &* (seed + 3)) }
        return try JPEGEncoder.encode(pixels, quality: 90)
    }

    private static let boundary = "crash-test-boundary"

    private func multipart(name: String?, files: [(String, [UInt8])]) -> [UInt8] {
        var body: [UInt8] = []
        let dash = "--" + CrashRecoveryTests.boundary
        if let name {
            body += Array("\(dash)\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\(name)\r\n".utf8)
        }
        for (fileName, bytes) in files {
            body += Array(("\(dash)\r\nContent-Disposition: form-data; name=\"images\"; filename=\"\(fileName)\"\r\n"
                           + "Content-Type: image/jpeg\r\n\r\n").utf8)
            body += bytes + [13, 10]
        }
        return body + Array("\(dash)--\r\n".utf8)
    }

    private var multipartType: String { "multipart/form-data; boundary=\(CrashRecoveryTests.boundary)" }

    /// Creates a project of `count` photos and returns its id and the photos by name.
    private func createProject(_ port: Int, _ token: String, name: String, count: Int = 2,
                               seed: Int = 0) throws -> (id: String, photos: [String: [UInt8]]) {
        var photos: [String: [UInt8]] = [:]
        for index in 0..<count { photos["p\(index).jpg"] = try photo(seed + index) }
        let response = try send(port, "POST", "/api/projects", token: token,
                                body: multipart(name: name, files: photos.sorted { $0.key < $1.key }),
                                type: multipartType)
        XCTAssertEqual(response.status, 201, response.text)
        return (try XCTUnwrap(response.json["id"] as? String), photos)
    }

    private func projects(_ port: Int, _ token: String) throws -> [[String: Any]] {
        let response = try send(port, "GET", "/api/projects", token: token)
        return try XCTUnwrap(response.json["projects"] as? [[String: Any]])
    }

    /// The project's folder holds exactly these photos, byte for byte.
    private func assertFolder(_ name: String, holds photos: [String: [UInt8]], file: StaticString = #filePath,
                              line: UInt = #line) throws {
        let images = projectsDirectory + "/" + name + "/images"
        let names = try FileManager.default.contentsOfDirectory(atPath: images).sorted()
        XCTAssertEqual(names, photos.keys.sorted(), file: file, line: line)
        for (fileName, bytes) in photos {
            XCTAssertEqual(FileManager.default.contents(atPath: images + "/" + fileName).map { [UInt8]($0) }, bytes,
                           "\(fileName) differs", file: file, line: line)
        }
    }

    private func stagingIsEmpty() -> Bool {
        ((try? FileManager.default.contentsOfDirectory(atPath: projectsDirectory + "/.staging")) ?? []).isEmpty
    }

    // MARK: Uploads

    func testKilledMidUploadLeavesNoProjectAndKeepsTheOthers() throws {
        var port = try start()
        var token = try self.token(port)
        let kept = try createProject(port, token, name: "Kept")

        // Half of a 4 MB upload arrives; the gateway is killed while it is streaming to disk.
        let big = [UInt8](repeating: 0x5A, count: 4 << 20)
        let body = multipart(name: "Lost", files: [("big.jpg", try photo(9) + big)])
        let client = try RawClient(port: port)
        try client.send("POST /api/projects HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(token)\r\n"
                        + "Content-Type: \(multipartType)\r\nContent-Length: \(body.count)\r\n\r\n")
        try client.send(Array(body[0..<(body.count / 2)]))
        let deadline = Date(timeIntervalSinceNow: 10)
        var staged: [String] = []
        while staged.isEmpty && Date() < deadline {
            usleep(20_000)
            let uploads = (try? FileManager.default.contentsOfDirectory(atPath: projectsDirectory + "/.staging")) ?? []
            staged = uploads.flatMap {
                (try? FileManager.default.contentsOfDirectory(atPath: projectsDirectory + "/.staging/\($0)/images"))
                    ?? []
            }
        }
        XCTAssertEqual(staged, ["big.jpg"], "the upload never reached the disk")
        kill(gateway!.processIdentifier, SIGKILL)
        try expectKilled()

        port = try start()
        token = try self.token(port)
        let listed = try projects(port, token)
        XCTAssertEqual(listed.map { $0["name"] as? String }, ["Kept"])
        XCTAssertEqual(listed.first?["imageCount"] as? Int, 2)
        XCTAssertEqual(listed.first?["id"] as? String, kept.id)
        try assertFolder("Kept", holds: kept.photos)
        XCTAssertTrue(stagingIsEmpty())
        XCTAssertFalse(FileManager.default.fileExists(atPath: projectsDirectory + "/Lost"))
    }

    func testKilledAfterTheFolderIsPlacedListsTheProjectAtStart() throws {
        var port = try start(crashAt: "create.placed")
        var token = try self.token(port)
        let photos = ["a.jpg": try photo(1), "b.jpg": try photo(2)]
        _ = try? send(port, "POST", "/api/projects", token: token,
                      body: multipart(name: "Placed", files: photos.sorted { $0.key < $1.key }), type: multipartType)
        try expectKilled()

        port = try start()
        token = try self.token(port)
        let listed = try projects(port, token)
        XCTAssertEqual(listed.map { $0["name"] as? String }, ["Placed"])
        XCTAssertEqual(listed.first?["imageCount"] as? Int, 2)
        try assertFolder("Placed", holds: photos)
        // The photos were measured at start-up: the ZIP's CRCs hold.
        let id = try XCTUnwrap(listed.first?["id"] as? String)
        XCTAssertEqual(try send(port, "GET", "/api/projects/\(id)/images/download", token: token).status, 200)
    }

    func testKilledAfterImagesAreMovedIndexesThemAtStart() throws {
        var port = try start()
        var token = try self.token(port)
        let project = try createProject(port, token, name: "Grows")
        let extra = try photo(7)
        gateway?.terminate()
        gateway?.waitUntilExit()

        port = try start(crashAt: "add.moved")
        token = try self.token(port)
        _ = try? send(port, "POST", "/api/projects/\(project.id)/images", token: token,
                      body: multipart(name: nil, files: [("p0.jpg", extra)]), type: multipartType)
        try expectKilled()

        port = try start()
        token = try self.token(port)
        let listed = try projects(port, token)
        XCTAssertEqual(listed.first?["imageCount"] as? Int, 3)
        var expected = project.photos
        expected["p0-2.jpg"] = extra
        try assertFolder("Grows", holds: expected)
    }

    // MARK: Renames

    /// Creates "Before", renames it to "After" with the gateway dying at `point`, and restarts it.
    private func renameAndDie(at point: String) throws -> (port: Int, token: String, project: String,
                                                            photos: [String: [UInt8]]) {
        let port = try start(crashAt: point)
        let project = try createProject(port, try token(port), name: "Before")
        _ = try? send(port, "PUT", "/api/projects/\(project.id)", token: try token(port),
                      body: Array(#"{"name":"After"}"#.utf8), type: "application/json")
        try expectKilled()
        let restarted = try start()
        return (restarted, try token(restarted), project.id, project.photos)
    }

    func testKilledAfterTheFolderMovedFinishesTheRename() throws {
        let (port, token, id, photos) = try renameAndDie(at: "rename.moved")
        let listed = try projects(port, token)
        XCTAssertEqual(listed.map { $0["name"] as? String }, ["After"])
        XCTAssertEqual(listed.first?["id"] as? String, id)
        XCTAssertFalse(FileManager.default.fileExists(atPath: projectsDirectory + "/Before"))
        try assertFolder("After", holds: photos)
    }

    func testKilledBeforeTheFolderMovedUndoesTheRename() throws {
        let (port, token, id, photos) = try renameAndDie(at: "rename.recorded")
        XCTAssertEqual(try projects(port, token).map { $0["name"] as? String }, ["Before"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: projectsDirectory + "/After"))
        try assertFolder("Before", holds: photos)
        // The abandoned intent does not block the next rename.
        let renamed = try send(port, "PATCH", "/api/projects/\(id)", token: token,
                               body: Array(#"{"name":"After"}"#.utf8), type: "application/json")
        XCTAssertEqual(renamed.status, 200, renamed.text)
        try assertFolder("After", holds: photos)
    }

    // MARK: Deletes

    func testKilledAfterTheFolderIsTrashedFinishesTheDelete() throws {
        var port = try start(crashAt: "delete.trashed")
        var token = try self.token(port)
        let doomed = try createProject(port, token, name: "Doomed")
        let kept = try createProject(port, token, name: "Kept", seed: 5)
        _ = try? send(port, "DELETE", "/api/projects/\(doomed.id)?deleteFiles=true", token: token)
        try expectKilled()

        port = try start()
        token = try self.token(port)
        XCTAssertEqual(try projects(port, token).map { $0["name"] as? String }, ["Kept"])
        let left = try FileManager.default.contentsOfDirectory(atPath: projectsDirectory).filter { $0 != ".staging" }
        XCTAssertEqual(left, ["Kept"])
        try assertFolder("Kept", holds: kept.photos)
    }

    // MARK: A library that did not mount

    func testAnEmptyProjectsDirectoryUnindexesNothing() throws {
        var port = try start()
        var token = try self.token(port)
        let first = try createProject(port, token, name: "First")
        _ = try createProject(port, token, name: "Second", seed: 4)
        gateway?.terminate()
        gateway?.waitUntilExit()

        // The disk is not mounted: an empty mount point stands where the library was.
        let mounted = directory + "/disk"
        try FileManager.default.moveItem(atPath: projectsDirectory, toPath: mounted)
        try FileManager.default.createDirectory(atPath: projectsDirectory, withIntermediateDirectories: false)
        port = try start()
        token = try self.token(port)
        XCTAssertEqual(try projects(port, token).map { $0["name"] as? String }, ["First", "Second"])
        gateway?.terminate()
        gateway?.waitUntilExit()

        try FileManager.default.removeItem(atPath: projectsDirectory)
        try FileManager.default.moveItem(atPath: mounted, toPath: projectsDirectory)
        port = try start()
        token = try self.token(port)
        let listed = try projects(port, token)
        XCTAssertEqual(listed.map { $0["name"] as? String }, ["First", "Second"])
        XCTAssertEqual(listed.first?["id"] as? String, first.id)
        try assertFolder("First", holds: first.photos)
    }

    // MARK: Stopping mid-upload

    /// A stop whose grace period ends during an upload closes the connection; the callbacks libuv still owes
    /// that connection must find the server alive, and the staged files are removed before the loop ends.
    func testStoppingDuringAnUploadEndsCleanlyAndLeavesNothingStaged() throws {
        let gateway = try GatewayHarness(dataDirectory: directory) { $0.http.shutdownGracePeriod = 0.3 }
        let token = try gateway.token()
        let photo = try photo(3) + [UInt8](repeating: 7, count: 1 << 20)
        let body = multipart(name: "Interrupted", files: [("slow.jpg", photo)])
        let client = try RawClient(port: gateway.port)
        try client.send("POST /api/projects HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer \(token)\r\n"
                        + "Content-Type: \(multipartType)\r\nContent-Length: \(body.count)\r\n\r\n")
        try client.send(Array(body[0..<(body.count / 2)]))
        let deadline = Date(timeIntervalSinceNow: 10)
        while stagingIsEmpty() && Date() < deadline { usleep(20_000) }
        XCTAssertFalse(stagingIsEmpty(), "the upload never reached the disk")
        gateway.stop()
        XCTAssertTrue(stagingIsEmpty())
        XCTAssertFalse(FileManager.default.fileExists(atPath: projectsDirectory + "/Interrupted"))
    }

    // MARK: Clients that leave mid-download

    private func openDescriptors() -> Int {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).count
    }

    /// A client that goes away during the ZIP must not leave the file being read open in the gateway.
    func testADownloadCutShortClosesItsFiles() throws {
        let gateway = try GatewayHarness(dataDirectory: directory)
        defer { gateway.stop() }
        let token = try gateway.token()
        let filler = [UInt8](repeating: 1, count: 2 << 20)
        let files = try (0..<6).map { ("big\($0).jpg", try photo($0) + filler) }
        let created = try send(gateway.port, "POST", "/api/projects", token: token,
                               body: multipart(name: "Big", files: files), type: multipartType)
        let id = try XCTUnwrap(created.json["id"] as? String, created.text)
        let baseline = openDescriptors()
        for _ in 0..<5 {
            let client = try RawClient(port: gateway.port)
            try client.send("GET /api/projects/\(id)/images/download HTTP/1.1\r\nHost: t\r\n"
                            + "Authorization: Bearer \(token)\r\n\r\n")
            XCTAssertEqual(try client.readResponse(forHead: true).status, 200)
        }
        // The clients are gone; within a moment so are the gateway's descriptors for them and their files.
        let deadline = Date(timeIntervalSinceNow: 5)
        while openDescriptors() > baseline && Date() < deadline { usleep(50_000) }
        let open = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []).map {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + $0)) ?? $0
        }
        XCTAssertLessThanOrEqual(open.count, baseline, "\(open.sorted())")
    }
}
