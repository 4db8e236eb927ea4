import Foundation
import ReplicaCore
import ReplicaGateway
import ReplicaImageIO
import ReplicaTestSupport
import XCTest

/// The project endpoints after the upload, over real HTTP against a real data directory: listing, renaming,
/// deleting, thumbnails, the ZIP of all photos, and what start-up makes of the folders it finds.
final class ProjectEndpointTests: XCTestCase {
    // MARK: List and get

    func testListAndGetAnswerWithLinkProjectDTOs() throws {
        let photos = try Photos.kermit(3)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        XCTAssertEqual(try gateway.projectList(token: token), [])

        let first = try gateway.create("First", Array(photos[0..<2]), token: token)
        let second = try gateway.create("Second", [photos[2]], token: token)
        let list = try gateway.projectList(token: token)
        XCTAssertEqual(list.sorted { $0.name < $1.name }, [
            LinkProject(id: first.id, name: "First", imageCount: 2, status: "ready"),
            LinkProject(id: second.id, name: "Second", imageCount: 1, status: "ready"),
        ])

        XCTAssertEqual(try gateway.project(first.id, token: token), list.first { $0.id == first.id })
        XCTAssertEqual(try gateway.project(first.id.uppercased(), token: token), list.first { $0.id == first.id })
        for unknown in [UUID().uuidString.lowercased(), "not-a-uuid"] {
            assertAPIError(try gateway.get("/api/projects/\(unknown)", token: token), 404, "Project not found")
        }

        let status = try gateway.get("/api/status", token: token)
        XCTAssertEqual(status.status, 200, status.text)
        let polled = try decode(StatusList.self, status, keys: ["projects", "pollInterval"])
        XCTAssertEqual(polled.pollInterval, 10)
        XCTAssertEqual(Set(polled.projects.map(\.id)), [first.id, second.id])
        let items = status.json["projects"] as? [[String: Any]] ?? []
        XCTAssertEqual(items.map { Set($0.keys) }, Array(repeating: StatusItem.keys, count: 2))
    }

    // MARK: Rename

    func testRenameWithPutAndPatchMovesTheFolder() throws {
        let photos = try Photos.kermit(2)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Before", photos, token: token)

        for (method, name) in [("PUT", "After"), ("PATCH", "Patched"), ("PUT", "Patched")] {
            let response = try gateway.sendJSON(method, "/api/projects/\(project.id)", token: token,
                                                #"{"name":"\#(name)"}"#)
            XCTAssertEqual(response.status, 200, "\(method) \(name): \(response.text)")
            let renamed = try decode(RenamedProject.self, response, keys: ["id", "name"])
            XCTAssertEqual(renamed.id, project.id)
            XCTAssertEqual(renamed.name, name)
            XCTAssertEqual(gateway.visibleFolders(), [name])
            assertStored(gateway, name, photos.byName)
            XCTAssertEqual(try gateway.project(project.id, token: token).name, name)
        }
        let thumbnail = try gateway.get("/api/projects/\(project.id)/images/\(photos[0].name)", token: token)
        XCTAssertEqual(thumbnail.status, 200, "thumbnail after the rename: \(thumbnail.text)")
        // The old name is free again.
        XCTAssertEqual(try gateway.create("Before", [photos[0]], token: token).name, "Before")
    }

    func testNamesWithQuotesAndNonASCIIRoundTrip() throws {
        let photo = try Photos.kermit(1)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let name = "Kermit \"the frog\" – Café ✓"

        let project = try gateway.create(name, photo, token: token)
        XCTAssertEqual(project.name, name)
        assertStored(gateway, name, photo.byName)
        XCTAssertEqual(try gateway.projectList(token: token).map(\.name), [name])

        let zip = try gateway.get("/api/projects/\(project.id)/images/download", token: token)
        XCTAssertEqual(zip.status, 200, zip.text)
        // RFC 6266: a plain fallback, and the exact name in filename* as percent-encoded UTF-8.
        let disposition = zip.header("Content-Disposition") ?? ""
        XCTAssertTrue(disposition.hasPrefix("attachment; filename=\""), disposition)
        let extended = disposition.components(separatedBy: "filename*=UTF-8''").last ?? ""
        XCTAssertEqual(extended.removingPercentEncoding, name + "_images.zip", disposition)

        let renamed = "Grüße \"zurück\""
        let body = String(decoding: try JSONSerialization.data(withJSONObject: ["name": renamed]), as: UTF8.self)
        let response = try gateway.sendJSON("PATCH", "/api/projects/\(project.id)", token: token, body)
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(try decode(RenamedProject.self, response, keys: ["id", "name"]).name, renamed)
        XCTAssertEqual(gateway.visibleFolders(), [renamed])
    }

    func testRenameRefusalsSayWhyAndMoveNothing() throws {
        let photos = try Photos.kermit(2)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let alpha = try gateway.create("Alpha", [photos[0]], token: token)
        _ = try gateway.create("Beta", [photos[1]], token: token)
        // A folder in the library that is not a project (no photos, so start-up would not list it either).
        try FileManager.default.createDirectory(atPath: gateway.folder("Gamma"), withIntermediateDirectories: false)
        let target = "/api/projects/\(alpha.id)"

        let cases: [(body: String, status: Int, message: String)] = [
            (#"{"name":""}"#, 400, "Name cannot be empty"),
            (#"{"name":"   "}"#, 400, "Name cannot be empty"),
            (#"{"name":"a/b"}"#, 400, #"Name cannot contain / or \"#),
            (#"{"name":"a\\b"}"#, 400, #"Name cannot contain / or \"#),
            (#"{"name":".x"}"#, 400, "Name cannot start with a dot"),
            (#"{"name":"#, 400, "Invalid request body"),
            (#"{"title":"Delta"}"#, 400, "Invalid request body"),
            (#"{"name":42}"#, 400, "Invalid request body"),
            (#"{"name":"Beta"}"#, 400, "A project named Beta already exists"),
            (#"{"name":"Gamma"}"#, 400, "A folder named Gamma already exists"),
        ]
        for entry in cases {
            for method in ["PUT", "PATCH"] {
                let response = try gateway.sendJSON(method, target, token: token, entry.body)
                assertAPIError(response, entry.status, entry.message)
            }
        }
        for method in ["PUT", "PATCH"] {
            let unknown = try gateway.sendJSON(method, "/api/projects/\(UUID().uuidString)", token: token,
                                               #"{"name":"Delta"}"#)
            assertAPIError(unknown, 404, "Project not found")
        }

        XCTAssertEqual(try gateway.project(alpha.id, token: token).name, "Alpha")
        XCTAssertEqual(gateway.visibleFolders(), ["Alpha", "Beta", "Gamma"])
        assertStored(gateway, "Alpha", [photos[0]].byName)
        assertStored(gateway, "Beta", [photos[1]].byName)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: gateway.folder("Gamma")), [])
    }

    func testBusyProjectsCannotBeRenamedOrGrow() throws {
        let photos = try Photos.kermit(4)
        // One worker whose tasks take half a minute: the first project computed holds it, the second waits.
        let worker = try FakeWorker.command("ok")
        let gateway = try GatewayHarness { configuration in
            configuration.workerCommand = worker
            configuration.workers = 1
            configuration.workerTiming.environment = ["FAKE_WORKER_TASK_SECONDS": "30"]
        }
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let spinning = try gateway.create("Spinning", [photos[0]], token: token)
        let waiting = try gateway.create("Waiting", [photos[1]], token: token)
        let idle = try gateway.create("Idle", [photos[2]], token: token)
        XCTAssertEqual(try gateway.get("/api/status", token: token).json["pollInterval"] as? Int, 10)

        for busy in [spinning, waiting] {
            let queued = try gateway.sendJSON("POST", "/api/projects/\(busy.id)/compute", token: token, "{}")
            XCTAssertEqual(queued.status, 202, queued.text)
        }
        let started = eventually(timeout: 10) {
            (try? gateway.project(spinning.id, token: token))?.status == "processing"
        }
        XCTAssertTrue(started, "the first project never started:\n"
                      + gateway.log.lines.suffix(20).joined(separator: "\n"))

        let status = try gateway.get("/api/status", token: token)
        let polled = try decode(StatusList.self, status, keys: ["projects", "pollInterval"])
        XCTAssertEqual(polled.pollInterval, 2)
        XCTAssertEqual(Dictionary(uniqueKeysWithValues: polled.projects.map { ($0.id, $0.status) }),
                       [spinning.id: "processing", waiting.id: "queued", idle.id: "ready"])
        for (busy, state) in [(spinning, "processing"), (waiting, "queued")] {
            XCTAssertEqual(try gateway.project(busy.id, token: token).status, state)
            let rename = try gateway.sendJSON("PUT", "/api/projects/\(busy.id)", token: token, #"{"name":"Moved"}"#)
            assertAPIError(rename, 400, "Cannot rename a project that is processing or queued")
            let add = try gateway.upload(.photos([photos[3]]), to: "/api/projects/\(busy.id)/images", token: token)
            assertAPIError(add, 409, "Project is processing or queued; images cannot be added now")
        }
        assertStored(gateway, "Spinning", [photos[0]].byName)
        assertStored(gateway, "Waiting", [photos[1]].byName)
        XCTAssertTrue(eventually { gateway.stagingEntries().isEmpty }, "staging kept \(gateway.stagingEntries())")

        let rename = try gateway.sendJSON("PUT", "/api/projects/\(idle.id)", token: token, #"{"name":"Moved"}"#)
        XCTAssertEqual(rename.status, 200, rename.text)
        XCTAssertEqual(gateway.visibleFolders(), ["Moved", "Spinning", "Waiting"])

        for busy in [spinning, waiting] {
            let cancelled = try gateway.sendJSON("POST", "/api/projects/\(busy.id)/cancel", token: token, "")
            XCTAssertEqual(cancelled.status, 200, cancelled.text)
            XCTAssertEqual(try gateway.project(busy.id, token: token).status, "ready")
        }
    }

    func testABusyStatusWithNoJobBehindItIsReadyAgainAtStartUp() throws {
        let photos = try Photos.kermit(2)
        var gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let stuck = try gateway.create("Stuck", [photos[0]], token: try gateway.token())
        let waiting = try gateway.create("Waiting", [photos[1]], token: try gateway.token())

        // The index says busy, but no job stands behind either status (its row lost, or the index edited by hand):
        // they would wait for ever.
        gateway.stop()
        try setStatus(["processing": stuck.id, "queued": waiting.id], in: gateway.dataDirectory)
        gateway = try GatewayHarness(dataDirectory: gateway.dataDirectory)
        let token = try gateway.token()

        let status = try gateway.get("/api/status", token: token)
        let polled = try decode(StatusList.self, status, keys: ["projects", "pollInterval"])
        XCTAssertEqual(polled.pollInterval, 10)
        for id in [stuck.id, waiting.id] {
            let project = try gateway.project(id, token: token)
            XCTAssertEqual([project.status, project.processingStage, project.errorMessage], ["ready", "", ""])
            XCTAssertEqual(project.progress, 0)
            let cancel = try gateway.sendJSON("POST", "/api/projects/\(id)/cancel", token: token, "")
            assertAPIError(cancel, 404, "Project is not processing or queued")
        }
        let warnings = gateway.log.lines.filter { $0.contains("project had no job behind its status") }
        XCTAssertEqual(warnings.count, 2, "\(warnings)")
    }

    // MARK: Delete

    func testDeleteWithFilesRemovesTheFolder() throws {
        let photos = try Photos.kermit(2)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let doomed = try gateway.create("Doomed", photos, token: token)
        let kept = try gateway.create("Kept", [photos[0]], token: token)

        let response = try gateway.request("DELETE", "/api/projects/\(doomed.id.uppercased())?deleteFiles=true",
                                           headers: ["Authorization": "Bearer \(token)"])
        XCTAssertEqual(response.status, 200, response.text)
        let deleted = try decode(DeletedProject.self, response, keys: ["id", "deleted"])
        XCTAssertEqual(deleted.id, doomed.id)
        XCTAssertTrue(deleted.deleted)

        XCTAssertFalse(FileManager.default.fileExists(atPath: gateway.folder("Doomed")))
        XCTAssertTrue(eventually { gateway.hiddenEntries().allSatisfy { !$0.hasPrefix(".trash") } },
                      "trash left: \(gateway.hiddenEntries())")
        XCTAssertEqual(gateway.visibleFolders(), ["Kept"])
        assertAPIError(try gateway.get("/api/projects/\(doomed.id)", token: token), 404, "Project not found")
        XCTAssertEqual(try gateway.projectList(token: token).map(\.id), [kept.id])
        let again = try gateway.request("DELETE", "/api/projects/\(doomed.id)?deleteFiles=true",
                                        headers: ["Authorization": "Bearer \(token)"])
        assertAPIError(again, 404, "Project not found")
        XCTAssertEqual(try gateway.create("Doomed", [photos[1]], token: token).name, "Doomed")
        assertStored(gateway, "Doomed", [photos[1]].byName)
    }

    func testDeleteWithoutFilesKeepsTheFolderAndThePhotosStayUnlisted() throws {
        let photos = try Photos.kermit(3)
        var gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let plain = try gateway.create("Plain", [photos[0]], token: token)
        let explicit = try gateway.create("Explicit", [photos[1]], token: token)
        let third = try gateway.create("Third", [photos[2]], token: token)
        let auth = ["Authorization": "Bearer \(token)"]

        let maybe = try gateway.request("DELETE", "/api/projects/\(third.id)?deleteFiles=maybe", headers: auth)
        assertAPIError(maybe, 400, "deleteFiles must be true or false")
        assertAPIError(try gateway.request("DELETE", "/api/projects/\(UUID().uuidString)", headers: auth), 404,
                       "Project not found")
        for target in ["/api/projects/\(plain.id)", "/api/projects/\(explicit.id)?deleteFiles=false"] {
            let response = try gateway.request("DELETE", target, headers: auth)
            XCTAssertEqual(response.status, 200, response.text)
            XCTAssertEqual(try decode(DeletedProject.self, response, keys: ["id", "deleted"]).deleted, true)
        }
        XCTAssertEqual(try gateway.projectList(token: token).map(\.id), [third.id])

        gateway = try gateway.restarted()
        XCTAssertEqual(try gateway.projectList(token: try gateway.token()).map(\.id), [third.id])
        XCTAssertEqual(gateway.visibleFolders(), ["Explicit", "Plain", "Third"])
        assertStored(gateway, "Plain", [photos[0]].byName)
        assertStored(gateway, "Explicit", [photos[1]].byName)

        // The kept folder is the user's: a new upload under its name goes beside it, never into it.
        XCTAssertEqual(try gateway.create("Plain", [photos[2]], token: try gateway.token()).name, "Plain-2")
        assertStored(gateway, "Plain", [photos[0]].byName)
    }

    // MARK: Thumbnails

    func testThumbnailIsA400PixelJPEGWithAnETagAndACachedFile() throws {
        let photo = try Photos.kermit(1)[0]
        let spaced = Photo(name: "my photo.jpg", bytes: try Photos.synthetic(width: 120, height: 80))
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Thumbs", [photo, spaced], token: token)
        let target = "/api/projects/\(project.id)/images/\(photo.name)"

        let response = try gateway.get(target, token: token)
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(response.header("Content-Type"), "image/jpeg")
        let decoded = try ImageReader.decode(data: response.body, name: "thumbnail.jpg")
        XCTAssertEqual(decoded.format, .jpeg)
        XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [400, 300])
        let tag = try XCTUnwrap(response.header("ETag"))
        XCTAssertFalse(tag.isEmpty)
        let cached = gateway.cachedThumbnails("Thumbs", of: photo.name)
        XCTAssertEqual(cached.count, 1, "cache: \(cached)")
        XCTAssertTrue(cached.first.flatMap { gateway.thumbnailBytes("Thumbs", $0) } == response.body,
                      "the cached file is not the thumbnail served")

        let unchanged = try gateway.get(target, token: token, headers: ["If-None-Match": tag])
        XCTAssertEqual(unchanged.status, 304)
        XCTAssertEqual(unchanged.body, [])
        XCTAssertEqual(unchanged.header("ETag"), tag)
        XCTAssertTrue(try gateway.get(target, token: token).body == response.body, "a second answer differs")
        // Clients send lists of tags and weak tags; either names this version.
        let listed = try gateway.get(target, token: token, headers: ["If-None-Match": "\"other\", W/\(tag)"])
        XCTAssertEqual(listed.status, 304)
        XCTAssertEqual(try gateway.get(target, token: token, headers: ["If-None-Match": "\"other\""]).status, 200)

        let escaped = try gateway.get("/api/projects/\(project.id)/images/my%20photo.jpg", token: token)
        XCTAssertEqual(escaped.status, 200, escaped.text)
        let small = try ImageReader.decode(data: escaped.body, name: "thumbnail.jpg")
        XCTAssertEqual([small.pixels.width, small.pixels.height], [120, 80], "a small photo is not enlarged")

        assertAPIError(try gateway.get("/api/projects/\(project.id)/images/nope.jpg", token: token), 404,
                       "Image not found")
        for sneaky in ["..%2F..%2F..%2Freplica.sqlite", "..%2F..%2Fimages%2F\(photo.name)", "%2Fetc%2Fpasswd"] {
            assertAPIError(try gateway.get("/api/projects/\(project.id)/images/\(sneaky)", token: token), 404,
                           "Image not found")
        }
        assertAPIError(try gateway.get("/api/projects/\(UUID().uuidString)/images/\(photo.name)", token: token),
                       404, "Project not found")
    }

    func testReplacingAPhotoOnDiskRenewsItsThumbnail() throws {
        let photo = try Photos.kermit(1)[0]
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Renewed", [photo], token: token)
        let target = "/api/projects/\(project.id)/images/\(photo.name)"
        let old = try gateway.get(target, token: token)
        let oldTag = try XCTUnwrap(old.header("ETag"))
        let oldCache = gateway.cachedThumbnails("Renewed", of: photo.name)

        try replace(gateway.imagePath("Renewed", photo.name), with: try Photos.synthetic(width: 800, height: 200))
        let new = try gateway.get(target, token: token, headers: ["If-None-Match": oldTag])
        XCTAssertEqual(new.status, 200, new.text)
        let newTag = try XCTUnwrap(new.header("ETag"))
        XCTAssertNotEqual(newTag, oldTag)
        XCTAssertTrue(new.body != old.body, "the old thumbnail was served")
        let decoded = try ImageReader.decode(data: new.body, name: "thumbnail.jpg")
        XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [400, 100])

        let newCache = gateway.cachedThumbnails("Renewed", of: photo.name)
        XCTAssertEqual(newCache.count, 1, "cache: \(newCache)")
        XCTAssertTrue(Set(newCache).isDisjoint(with: oldCache), "the stale thumbnail stayed: \(newCache)")
        XCTAssertTrue(newCache.first.flatMap { gateway.thumbnailBytes("Renewed", $0) } == new.body,
                      "the cached file is not the thumbnail served")
    }

    func testAPhotoThatNoLongerDecodesGives500() throws {
        let photo = try Photos.kermit(1)[0]
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Damaged", [photo], token: token)
        let target = "/api/projects/\(project.id)/images/\(photo.name)"
        XCTAssertEqual(try gateway.get(target, token: token).status, 200)

        XCTAssertEqual(truncate(gateway.imagePath("Damaged", photo.name), 100), 0)
        assertAPIError(try gateway.get(target, token: token), 500, "Failed to generate thumbnail")
        XCTAssertEqual(try gateway.project(project.id, token: token).imageCount, 1)
    }

    // MARK: ZIP of all images

    func testZipHoldsEveryPhotoByteForByte() throws {
        let photos = try Photos.kermit(2) + Photos.fountain(2)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Zip Me", photos, token: token)

        let response = try gateway.get("/api/projects/\(project.id)/images/download", token: token)
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(response.header("Content-Type"), "application/zip")
        XCTAssertEqual(response.header("Content-Disposition"), #"attachment; filename="Zip Me_images.zip""#)
        XCTAssertEqual(response.header("Content-Length"), "\(response.body.count)")
        try assertArchive(response.body, holds: photos.byName)
    }

    func testZipOfAProjectWithoutImagesIs400() throws {
        let photos = try Photos.kermit(2)
        var gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        var token = try gateway.token()
        let project = try gateway.create("Emptied", photos, token: token)
        assertAPIError(try gateway.get("/api/projects/\(UUID().uuidString)/images/download", token: token), 404,
                       "Project not found")

        gateway.stop()
        for photo in photos { try FileManager.default.removeItem(atPath: gateway.imagePath("Emptied", photo.name)) }
        gateway = try GatewayHarness(dataDirectory: gateway.dataDirectory)
        token = try gateway.token()

        XCTAssertEqual(try gateway.project(project.id, token: token).imageCount, 0)
        assertAPIError(try gateway.get("/api/projects/\(project.id)/images/download", token: token), 400,
                       "Project has no images")
    }

    func testZipAfterPhotosAreReplacedOnDiskHoldsTheNewBytes() throws {
        let photos = try Photos.kermit(3)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Swapped", photos, token: token)

        // One photo changes size; another keeps its size but not its bytes, which only a new mtime betrays.
        var expected = photos.byName
        expected[photos[0].name] = try Photos.synthetic(width: 300, height: 200)
        var sameSize = photos[1].bytes
        for index in stride(from: sameSize.count / 3, to: sameSize.count / 2, by: 7) { sameSize[index] ^= 0x5A }
        expected[photos[1].name] = sameSize
        for name in [photos[0].name, photos[1].name] {
            try replace(gateway.imagePath("Swapped", name), with: expected[name]!)
        }

        let response = try gateway.get("/api/projects/\(project.id)/images/download", token: token)
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(response.header("Content-Length"), "\(response.body.count)")
        try assertArchive(response.body, holds: expected)
    }

    // MARK: Folders made by hand

    func testFoldersPlacedInTheLibraryWhileStoppedAreListedAfterRestart() throws {
        let photos = try Photos.kermit(3)
        var gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        gateway.stop()
        let library = gateway.projectsDirectory
        try write(photos[0].bytes, to: library + "/Handmade/images/h1.jpg")
        try write(photos[1].bytes, to: library + "/Loose/l1.jpg")
        try write(photos[2].bytes, to: library + "/Loose/images/l1.jpg")
        try write(Array("a note".utf8), to: library + "/Loose/notes.txt")
        try write(Array("no photos".utf8), to: library + "/NoPhotos/readme.txt")
        try write(photos[0].bytes, to: library + "/.hidden/images/x.jpg")

        gateway = try GatewayHarness(dataDirectory: gateway.dataDirectory)
        let token = try gateway.token()
        let list = try gateway.projectList(token: token).sorted { $0.name < $1.name }
        XCTAssertEqual(list.map(\.name), ["Handmade", "Loose"])
        XCTAssertEqual(list.map(\.imageCount), [1, 2])
        XCTAssertEqual(list.map(\.status), ["ready", "ready"])
        assertStored(gateway, "Handmade", ["h1.jpg": photos[0].bytes])
        assertStored(gateway, "Loose", ["l1.jpg": photos[2].bytes, "l1-2.jpg": photos[1].bytes])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: library + "/Loose").sorted(),
                       ["images", "notes.txt"])
        if let handmade = list.first {
            XCTAssertEqual(try gateway.get("/api/projects/\(handmade.id)/images/h1.jpg", token: token).status, 200)
        }
    }

    // MARK: Steps

    /// Sets projects' `status` in the index of a stopped gateway.
    private func setStatus(_ statuses: [String: String], in dataDirectory: String) throws {
        let database = try Database(path: dataDirectory + "/replica.sqlite")
        for (status, id) in statuses {
            try database.run("UPDATE projects SET status = ? WHERE id = ?", [.text(status), .text(id)])
            XCTAssertEqual(database.changes, 1, "no project \(id) in the index")
        }
    }

    /// Writes other bytes over a stored photo, with an mtime well after the first one.
    private func replace(_ path: String, with bytes: [UInt8]) throws {
        let before = try FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date ?? Date()
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.modificationDate: before.addingTimeInterval(10)], ofItemAtPath: path)
    }

    private func write(_ bytes: [UInt8], to path: String) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                                withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }
}

// MARK: - The contract's bodies

/// `LinkProjectDTO` as the contract lists it; decoding checks each field's JSON type.
struct LinkProject: Decodable, Equatable {
    var id: String
    var name: String
    var imageCount: Int
    var status: String
    var progress: Double = 0
    var processingStage = ""
    var hasModel = false
    var hasGlb = false
    var modelDetail = ""
    var errorMessage = ""

    static let keys: Set<String> = ["id", "name", "imageCount", "status", "progress", "processingStage", "hasModel",
                                    "hasGlb", "modelDetail", "errorMessage"]
}

struct ProjectList: Decodable {
    var projects: [LinkProject]
}

/// `LinkStatusProjectDTO`.
struct StatusItem: Decodable {
    var id: String
    var status: String
    var progress: Double
    var processingStage: String
    var hasGlb: Bool
    var errorMessage: String

    static let keys: Set<String> = ["id", "status", "progress", "processingStage", "hasGlb", "errorMessage"]
}

struct StatusList: Decodable {
    var projects: [StatusItem]
    var pollInterval: Int
}

struct CreatedProject: Decodable {
    var id: String
    var name: String
    var imageCount: Int
    var status: String

    static let keys: Set<String> = ["id", "name", "imageCount", "status"]
}

struct AddedImages: Decodable {
    var imageCount: Int
    var addedCount: Int
}

struct RenamedProject: Decodable {
    var id: String
    var name: String
}

struct DeletedProject: Decodable {
    var id: String
    var deleted: Bool
}

// MARK: - Checks

/// Opens the archive with Python's `zipfile`, a reader independent of the gateway, and checks every entry's
/// name, CRC and bytes.
func assertArchive(_ archive: [UInt8], holds expected: [String: [UInt8]],
                   file: StaticString = #filePath, line: UInt = #line) throws {
    let entries = try PythonZip.read(archive)
    if let bad = entries.badEntry {
        return XCTFail("zipfile's testzip() found a bad CRC in \(bad)", file: file, line: line)
    }
    XCTAssertEqual(entries.contents.map(\.name).sorted(), expected.keys.sorted(), file: file, line: line)
    for (name, bytes) in entries.contents {
        XCTAssertTrue(bytes == expected[name], "the archive's \(name) differs from the photo",
                      file: file, line: line)
    }
}

/// The body decoded as `T`, after checking that it holds exactly the fields `keys`.
func decode<T: Decodable>(_ type: T.Type, _ response: RawResponse, keys: Set<String>,
                          file: StaticString = #filePath, line: UInt = #line) throws -> T {
    XCTAssertEqual(Set(response.json.keys), keys, "fields of \(response.text)", file: file, line: line)
    return try JSONDecoder().decode(T.self, from: Data(response.body))
}

/// The API's error shape: the status, JSON, and exactly `{"error": message}`.
func assertAPIError(_ response: RawResponse, _ status: Int, _ message: String,
                    file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(response.status, status, response.text, file: file, line: line)
    XCTAssertEqual(response.header("Content-Type"), "application/json", file: file, line: line)
    XCTAssertEqual(response.json as NSDictionary, ["error": message], file: file, line: line)
}

/// The project's `images/` holds exactly these files with exactly these bytes.
func assertStored(_ gateway: GatewayHarness, _ project: String, _ expected: [String: [UInt8]],
                  file: StaticString = #filePath, line: UInt = #line) {
    let stored = gateway.storedImages(project)
    XCTAssertEqual(stored.keys.sorted(), expected.keys.sorted(), "files in \(project)/images", file: file, line: line)
    for (name, bytes) in expected where stored[name] != nil {
        XCTAssertTrue(stored[name] == bytes, "\(project)/images/\(name) is not the uploaded file",
                      file: file, line: line)
    }
}

/// Polls until `condition` holds or `timeout` seconds pass; what the gateway finishes on its thread pool
/// (removing staging, emptying trash) lands a moment after the answer.
func eventually(timeout: Double = 5, _ condition: () -> Bool) -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while !condition() {
        guard Date() < deadline else { return false }
        Thread.sleep(forTimeInterval: 0.02)
    }
    return true
}

/// Paths, relative to `directory`, of every regular file below it.
func regularFiles(under directory: String) -> Set<String> {
    guard let walker = FileManager.default.enumerator(atPath: directory) else { return [] }
    var files = Set<String>()
    while let path = walker.nextObject() as? String {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory + "/" + path, isDirectory: &isDirectory),
           !isDirectory.boolValue {
            files.insert(path)
        }
    }
    return files
}

/// Reads a ZIP with Python's `zipfile`; skips the test where there is no `python3`.
enum PythonZip {
    struct Entries {
        /// What `testzip()` returned: the first entry whose CRC does not match, or nil.
        var badEntry: String?
        var contents: [(name: String, bytes: [UInt8])]
    }

    private struct Report: Decodable {
        var bad: String?
        var names: [String]
    }

    private static let script = """
        import json, os, sys, zipfile
        with zipfile.ZipFile(sys.argv[1]) as archive:
            bad = archive.testzip()
            names = [info.filename for info in archive.infolist()]
            for index, name in enumerate(names if bad is None else []):
                with open(os.path.join(sys.argv[2], str(index)), "wb") as out:
                    out.write(archive.read(name))
        print(json.dumps({"bad": bad, "names": names}))
        """

    static func read(_ archive: [UInt8]) throws -> Entries {
        let directory = NSTemporaryDirectory() + "replica-zip-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard try python(["-c", "import zipfile"]).status == 0 else { throw XCTSkip("python3 is not installed") }
        try Data(archive).write(to: URL(fileURLWithPath: directory + "/archive.zip"))
        try FileManager.default.createDirectory(atPath: directory + "/out", withIntermediateDirectories: false)

        let run = try python(["-c", script, directory + "/archive.zip", directory + "/out"])
        guard run.status == 0 else { throw ClientError("zipfile could not read the archive: \(run.output)") }
        let report = try JSONDecoder().decode(Report.self, from: Data(run.output.utf8))
        guard report.bad == nil else { return Entries(badEntry: report.bad, contents: []) }
        let contents = try report.names.enumerated().map { index, name in
            (name, [UInt8](try Data(contentsOf: URL(fileURLWithPath: directory + "/out/\(index)"))))
        }
        return Entries(badEntry: report.bad, contents: contents)
    }

    private static func python(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3"] + arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            throw XCTSkip("python3 cannot be started: \(error)")
        }
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
