import Foundation
import ReplicaCore
import ReplicaGateway
import ReplicaImageIO
import ReplicaTestSupport
import XCTest

/// Creating projects and adding photos over real HTTP: what the answers say, what lands on disk byte for
/// byte, and that a refused or abandoned upload leaves nothing behind in the library.
final class ProjectUploadTests: XCTestCase {
    // MARK: Create

    func testCreateStoresThePhotosByteForByteAndAnswers201() throws {
        let photos = try Photos.kermit(3)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        let response = try gateway.upload(.photos(photos, name: "Kermit on the desk"), token: token)
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(response.header("Content-Type"), "application/json")
        let created = try decode(CreatedProject.self, response, keys: CreatedProject.keys)
        XCTAssertEqual(UUID(uuidString: created.id)?.uuidString.lowercased(), created.id, "not a lowercase UUID")
        XCTAssertEqual(created.name, "Kermit on the desk")
        XCTAssertEqual(created.imageCount, 3)
        XCTAssertEqual(created.status, "ready")

        assertStored(gateway, "Kermit on the desk", photos.byName)
        XCTAssertTrue(eventually { gateway.stagingEntries().isEmpty }, "staging kept \(gateway.stagingEntries())")
        XCTAssertEqual(try gateway.project(created.id, token: token),
                       LinkProject(id: created.id, name: "Kermit on the desk", imageCount: 3, status: "ready"))
    }

    func testMissingOrBlankNameGivesLinkUploadAndTheTime() throws {
        let photo = try Photos.kermit(1)
        // 2024-06-06 06:12:01 UTC.
        let gateway = try GatewayHarness(clock: ManualClock(1_717_654_321))
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        let unnamed = try gateway.create(nil, photo, token: token)
        XCTAssertEqual(unnamed.name, "LinkUpload_20240606_061201")
        assertStored(gateway, "LinkUpload_20240606_061201", photo.byName)

        gateway.clock.advance(by: 3661)
        let blank = try gateway.create(" \t ", photo, token: token)
        XCTAssertEqual(blank.name, "LinkUpload_20240606_071302")
        assertStored(gateway, "LinkUpload_20240606_071302", photo.byName)
    }

    func testNameFieldAfterTheFilesIsUsed() throws {
        let photos = try Photos.kermit(2)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        var form = MultipartForm.photos(photos)
        form.parts.append(.field(name: "name", value: "Named Last"))
        let response = try gateway.upload(form, token: token)
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(try decode(CreatedProject.self, response, keys: CreatedProject.keys).name, "Named Last")
        assertStored(gateway, "Named Last", photos.byName)
    }

    func testTheSameProjectNameAgainGetsANumber() throws {
        let photos = try Photos.kermit(3)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        let names = try photos.map { try gateway.create("Kermit", [$0], token: token).name }
        XCTAssertEqual(names, ["Kermit", "Kermit-2", "Kermit-3"])
        for (name, photo) in zip(names, photos) { assertStored(gateway, name, [photo].byName) }
        XCTAssertEqual(Set(try gateway.projectList(token: token).map(\.name)), Set(names))
    }

    func testDuplicateFileNamesInOneUploadAreNumbered() throws {
        let photos = try Photos.kermit(3)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        let created = try gateway.create("Duplicates", photos.map { $0.renamed("photo.jpg") }, token: token)
        XCTAssertEqual(created.imageCount, 3)
        assertStored(gateway, "Duplicates", ["photo.jpg": photos[0].bytes, "photo-2.jpg": photos[1].bytes,
                                             "photo-3.jpg": photos[2].bytes])
    }

    func testFileNamesKeepOnlyASafeBaseNameAndNothingIsWrittenOutside() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let escape = "escape-\(UUID().uuidString.lowercased()).jpg"
        // Each disposition as it goes on the wire; inside quotes a backslash escapes the next byte.
        let cases: [(disposition: String, stored: String)] = [
            (#"filename="../../../../../../../../\#(escape)""#, escape),
            (#"filename="a\\b.jpg""#, "b.jpg"),
            (#"filename="..\\..\\win.jpg""#, "win.jpg"),
            (#"filename=".hidden.jpg""#, "hidden.jpg"),
            (#"filename="/etc/cron.d/abs.jpg""#, "abs.jpg"),
            ("filename=\"e\tf.jpg\"", "ef.jpg"),
            ("filename*=UTF-8''c%01d%0A%7F.jpg", "cd.jpg"),
        ]
        let files = try cases.indices.map { FormFile(disposition: cases[$0].disposition,
                                                     bytes: try Photos.synthetic(width: 24 + 8 * $0, height: 16)) }
        let before = regularFiles(under: gateway.dataDirectory)

        let response = try gateway.upload(MultipartForm(parts: [.field(name: "name", value: "Safe")]
                                                        + files.map { .file($0) }), token: token)
        XCTAssertEqual(response.status, 201, response.text)
        var expected: [String: [UInt8]] = [:]
        for (index, entry) in cases.enumerated() { expected[entry.stored] = files[index].bytes }
        assertStored(gateway, "Safe", expected)

        // The database's files change with every write, and a worker still starting may open its log late.
        let added = regularFiles(under: gateway.dataDirectory).subtracting(before)
            .filter { !$0.hasPrefix("replica.sqlite") && !$0.hasPrefix("logs/worker-") }
        XCTAssertEqual(added, Set(expected.keys.map { "projects/Safe/images/" + $0 }))
        for outside in ["/" + escape, NSTemporaryDirectory() + escape, gateway.projectsDirectory + "/" + escape] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: outside), outside)
        }

        // A name with nothing usable left is refused, and the refused upload leaves nothing.
        let dots = try gateway.upload(MultipartForm(parts: [.file(FormFile(disposition: #"filename="../..""#,
                                                                           bytes: files[0].bytes))]), token: token)
        assertAPIError(dots, 400, "Invalid file name: ../..")
        XCTAssertTrue(eventually { gateway.stagingEntries().isEmpty }, "staging kept \(gateway.stagingEntries())")
        XCTAssertEqual(try gateway.projectList(token: token).map(\.name), ["Safe"])
    }

    func testAJPEGNamedBlobIsStoredAsBlobJpg() throws {
        let photo = try Photos.kermit(1)[0]
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        var blob = FormFile(photo.renamed("blob"))
        blob.contentType = "application/octet-stream"
        let response = try gateway.upload(MultipartForm(parts: [.field(name: "name", value: "Blob"), .file(blob)]),
                                          token: token)
        XCTAssertEqual(response.status, 201, response.text)
        XCTAssertEqual(try decode(CreatedProject.self, response, keys: CreatedProject.keys).imageCount, 1)
        assertStored(gateway, "Blob", ["blob.jpg": photo.bytes])
    }

    func testUnsupportedContentIsRefusedAndLeavesNothing() throws {
        let photo = try Photos.kermit(1)[0]
        let passwd = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/etc/passwd")))
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        let attempts: [(files: [Photo], message: String)] = [
            ([Photo(name: "x.jpg", bytes: passwd)], "Unsupported image format: x.jpg"),
            ([photo, Photo(name: "x.jpg", bytes: passwd)], "Unsupported image format: x.jpg"),
            ([photo.renamed("a.gif")], "Unsupported image format: a.gif"),
        ]
        for attempt in attempts {
            let response = try gateway.upload(.photos(attempt.files, name: "Refused"), token: token)
            assertAPIError(response, 400, attempt.message)
            gateway.assertLibraryIsEmpty(token: token)
        }
    }

    func testBodiesThatAreNotPhotoUploadsAre400() throws {
        let photo = try Photos.kermit(1)[0]
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let notMultipart = "Content-Type must be multipart/form-data with a boundary"

        let nameOnly = MultipartForm(parts: [.field(name: "name", value: "Nothing")])
        assertAPIError(try gateway.upload(nameOnly, token: token), 400, "No images provided")
        // What a browser sends for a file input left empty.
        let emptyInput = FormFile(disposition: #"filename="""#, contentType: "application/octet-stream", bytes: [])
        let emptyForm = MultipartForm(parts: [.field(name: "name", value: "Nothing"), .file(emptyInput)])
        assertAPIError(try gateway.upload(emptyForm, token: token), 400, "No images provided")

        let json = try gateway.stream("POST", "/api/projects", token: token,
                                      headers: ["Content-Type": "application/json"], body: Array(#"{"name":"x"}"#.utf8))
        assertAPIError(json, 400, notMultipart)
        let form = MultipartForm.photos([photo], name: "Boundless")
        let noBoundary = try gateway.stream("POST", "/api/projects", token: token,
                                            headers: ["Content-Type": "multipart/form-data"], body: form.bytes())
        assertAPIError(noBoundary, 400, notMultipart)
        let noType = try gateway.stream("POST", "/api/projects", token: token, body: form.bytes())
        assertAPIError(noType, 400, notMultipart)

        let unclosed = try gateway.stream("POST", "/api/projects", token: token,
                                          headers: ["Content-Type": form.contentType], body: form.bytes(closed: false))
        XCTAssertEqual(unclosed.status, 400, unclosed.text)
        let message = unclosed.json["error"] as? String ?? ""
        XCTAssertTrue(message.hasPrefix("Invalid multipart body"), message)
        gateway.assertLibraryIsEmpty(token: token)
    }

    func testInvalidProjectNamesAre400WithTheRule() throws {
        let photo = try Photos.kermit(1)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        let cases: [(name: String, message: String)] = [
            ("a/b", #"Name cannot contain / or \"#),
            (#"a\b"#, #"Name cannot contain / or \"#),
            (".x", "Name cannot start with a dot"),
            ("a\u{07}b", "Name cannot contain control characters"),
            ("a\u{7F}b", "Name cannot contain control characters"),
            (String(repeating: "n", count: 241), "Name is too long (at most 240 bytes)"),
        ]
        for entry in cases {
            assertAPIError(try gateway.upload(.photos(photo, name: entry.name), token: token), 400, entry.message)
            gateway.assertLibraryIsEmpty(token: token)
        }
        let huge = String(repeating: "n", count: 70_000)
        assertAPIError(try gateway.upload(.photos(photo, name: huge), token: token), 413,
                       "Form field name too large (limit 65536 bytes)")
        gateway.assertLibraryIsEmpty(token: token)
    }

    func testConcurrentUploadsUnderOneNameGetDistinctFolders() throws {
        let photos = try Photos.kermit(3)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        let answers = Answers()
        DispatchQueue.concurrentPerform(iterations: photos.count) { index in
            answers.record(index, Result { try gateway.upload(.photos([photos[index]], name: "Race"), token: token) })
        }
        var names: [String] = []
        for (index, result) in answers.sorted() {
            let response = try result.get()
            XCTAssertEqual(response.status, 201, response.text)
            let name = try decode(CreatedProject.self, response, keys: CreatedProject.keys).name
            assertStored(gateway, name, [photos[index]].byName)
            names.append(name)
        }
        XCTAssertEqual(names.sorted(), ["Race", "Race-2", "Race-3"])
        XCTAssertEqual(try gateway.projectList(token: token).map(\.name).sorted(), ["Race", "Race-2", "Race-3"])
    }

    // MARK: Limits

    func testAFileOverTheSizeLimitIs413() throws {
        let big = try Photos.fountain(1)[0]
        let small = try Photos.kermit(1)[0]
        let gateway = try GatewayHarness { $0.uploads.maxFileBytes = UInt64(big.bytes.count - 1) }
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        let response = try gateway.upload(.photos([small, big], name: "Too big"), token: token)
        assertAPIError(response, 413, "File too large: \(big.name) (limit \(big.bytes.count - 1) bytes)")
        gateway.assertLibraryIsEmpty(token: token)

        // Adding images is held to the same limit, and the project keeps what it had.
        let project = try gateway.create("Small", [small], token: token)
        let added = try gateway.upload(.photos([big]), to: "/api/projects/\(project.id)/images", token: token)
        assertAPIError(added, 413, "File too large: \(big.name) (limit \(big.bytes.count - 1) bytes)")
        XCTAssertTrue(eventually { gateway.stagingEntries().isEmpty }, "staging kept \(gateway.stagingEntries())")
        assertStored(gateway, "Small", [small].byName)
        XCTAssertEqual(try gateway.project(project.id, token: token).imageCount, 1)
    }

    func testMoreFilesThanTheLimitIs413() throws {
        let photos = try (0..<3).map { Photo(name: "p\($0).jpg", bytes: try Photos.synthetic(width: 32, height: 32)) }
        let gateway = try GatewayHarness { $0.uploads.maxFiles = 2 }
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        assertAPIError(try gateway.upload(.photos(photos, name: "Three"), token: token), 413,
                       "Too many files (limit 2)")
        gateway.assertLibraryIsEmpty(token: token)
        XCTAssertEqual(try gateway.create("Two", Array(photos.prefix(2)), token: token).imageCount, 2)
    }

    func testABodyOverTheRequestLimitIs413WithContentLengthAndChunked() throws {
        let form = MultipartForm.photos(try Photos.kermit(2), name: "Heavy")
        let limit = form.bytes().count - 1
        let gateway = try GatewayHarness { $0.uploads.maxRequestBytes = UInt64(limit) }
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let message = "Request body too large (limit \(limit) bytes)"

        assertAPIError(try gateway.upload(form, token: token), 413, message)
        gateway.assertLibraryIsEmpty(token: token)
        // Without a length up front the limit is counted as the body streams in, after files were staged.
        let chunked = try gateway.stream("POST", "/api/projects", token: token,
                                         headers: ["Content-Type": form.contentType], body: form.bytes(),
                                         chunked: true)
        assertAPIError(chunked, 413, message)
        gateway.assertLibraryIsEmpty(token: token)

        // A client that waits for 100 Continue is told at once, without being asked for the body.
        let client = try RawClient(port: gateway.port)
        try client.send(uploadHead("/api/projects", token: token, form: form, length: limit + 1,
                                   extra: "Expect: 100-continue\r\n"))
        assertAPIError(try client.readResponse(timeout: 5), 413, message)
        gateway.assertLibraryIsEmpty(token: token)
    }

    func testWithoutAProjectsDirectoryCreateIs412AndWritesNothing() throws {
        let photos = try Photos.kermit(1)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        try FileManager.default.removeItem(atPath: gateway.projectsDirectory)

        assertAPIError(try gateway.upload(.photos(photos, name: "Nowhere"), token: token), 412,
                       "Projects directory is not available")
        XCTAssertFalse(FileManager.default.fileExists(atPath: gateway.projectsDirectory))
        XCTAssertEqual(try gateway.projectList(token: token), [])

        // Once the directory is back (the disk mounted again), uploads are taken without a restart.
        try FileManager.default.createDirectory(atPath: gateway.projectsDirectory, withIntermediateDirectories: false)
        XCTAssertEqual(try gateway.create("Somewhere", photos, token: token).name, "Somewhere")
        assertStored(gateway, "Somewhere", photos.byName)
    }

    func testWithoutAProjectsDirectoryAddingImagesIs412AndWritesNothing() throws {
        let photos = try Photos.kermit(2)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Unmounted", [photos[0]], token: token)
        try FileManager.default.removeItem(atPath: gateway.projectsDirectory)

        let response = try gateway.upload(.photos([photos[1]]), to: "/api/projects/\(project.id)/images", token: token)
        assertAPIError(response, 412, "Projects directory is not available")
        XCTAssertFalse(FileManager.default.fileExists(atPath: gateway.projectsDirectory))
    }

    // MARK: How the body arrives

    func testAClientThatGoesAwayMidUploadLeavesNothing() throws {
        let photos = try Photos.kermit(2)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let form = MultipartForm.photos(photos, name: "Abandoned")
        let body = form.bytes()

        var client: RawClient? = try RawClient(port: gateway.port)
        try client?.send(uploadHead("/api/projects", token: token, form: form, length: body.count))
        try client?.send(Array(body[..<(body.count / 2)]))
        XCTAssertTrue(eventually { !regularFiles(under: gateway.stagingDirectory).isEmpty },
                      "the first half never reached staging")
        client = nil

        XCTAssertTrue(eventually { gateway.stagingEntries().isEmpty }, "staging kept \(gateway.stagingEntries())")
        XCTAssertEqual(try gateway.projectList(token: token), [])
        XCTAssertEqual(gateway.visibleFolders(), [])
        XCTAssertEqual(try gateway.request("GET", "/api/health").status, 200)
        XCTAssertEqual(try gateway.create("After", photos, token: token).imageCount, 2)
    }

    func testExpect100ContinueUploadGetsTheInterimAnswerFirst() throws {
        let photos = try Photos.kermit(2)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let form = MultipartForm.photos(photos, name: "Continued")
        let body = form.bytes()

        let client = try RawClient(port: gateway.port)
        try client.send(uploadHead("/api/projects", token: token, form: form, length: body.count,
                                   extra: "Expect: 100-continue\r\n"))
        XCTAssertEqual(try client.readResponse(timeout: 5).status, 100)
        try client.send(body)
        let response = try client.readResponse()
        XCTAssertEqual(response.status, 201, response.text)
        assertStored(gateway, "Continued", photos.byName)

        // Refused before the body: the final answer comes instead of 100 Continue.
        let unknown = try RawClient(port: gateway.port)
        try unknown.send(uploadHead("/api/projects/\(UUID().uuidString)/images", token: token, form: form,
                                    length: body.count, extra: "Expect: 100-continue\r\n"))
        assertAPIError(try unknown.readResponse(timeout: 5), 404, "Project not found")
    }

    func testChunkedUploadInSmallPiecesIsStoredAndZippedByteForByte() throws {
        let photos = try Photos.fountain(1) + Photos.kermit(1)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let form = MultipartForm.photos(photos, name: "Chunked")

        let response = try gateway.stream("POST", "/api/projects", token: token,
                                          headers: ["Content-Type": form.contentType], body: form.bytes(),
                                          chunked: true, piece: 1000)
        XCTAssertEqual(response.status, 201, response.text)
        let created = try decode(CreatedProject.self, response, keys: CreatedProject.keys)
        assertStored(gateway, "Chunked", photos.byName)
        // The CRCs taken while the multi-megabyte photo was written in pieces must be the ones the ZIP needs.
        let zip = try gateway.get("/api/projects/\(created.id)/images/download", token: token)
        XCTAssertEqual(zip.status, 200, zip.text)
        try assertArchive(zip.body, holds: photos.byName)
    }

    func testOneKeepAliveConnectionCarriesUploadsAndReads() throws {
        let photos = try Photos.kermit(2)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()

        let client = try RawClient(port: gateway.port)
        for (index, photo) in photos.enumerated() {
            let form = MultipartForm.photos([photo], name: "Kept alive \(index)")
            let body = form.bytes()
            try client.send(Array(uploadHead("/api/projects", token: token, form: form, length: body.count).utf8)
                            + body)
            let response = try client.readResponse()
            XCTAssertEqual(response.status, 201, response.text)
        }
        try client.send("GET /api/projects HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer \(token)\r\n\r\n")
        let list = try client.readResponse()
        XCTAssertEqual(list.status, 200, list.text)
        let names = try JSONDecoder().decode(ProjectList.self, from: Data(list.body)).projects.map(\.name)
        XCTAssertEqual(names.sorted(), ["Kept alive 0", "Kept alive 1"])
        assertStored(gateway, "Kept alive 1", [photos[1]].byName)
    }

    // MARK: Adding images

    func testAddImagesStoresNewOnesSkipsOthersAndNumbersClashes() throws {
        let photos = try Photos.kermit(4)
        let passwd = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/etc/passwd")))
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Growing", Array(photos[0..<2]), token: token)

        let form = MultipartForm.photos([photos[2], Photo(name: "notes.jpg", bytes: passwd),
                                         photos[3].renamed(photos[0].name)])
        let response = try gateway.upload(form, to: "/api/projects/\(project.id)/images", token: token)
        XCTAssertEqual(response.status, 200, response.text)
        XCTAssertEqual(response.header("Content-Type"), "application/json")
        let added = try decode(AddedImages.self, response, keys: ["imageCount", "addedCount"])
        XCTAssertEqual(added.imageCount, 4)
        XCTAssertEqual(added.addedCount, 2)

        let clash = (photos[0].name as NSString).deletingPathExtension + "-2.jpg"
        assertStored(gateway, "Growing", [photos[0].name: photos[0].bytes, photos[1].name: photos[1].bytes,
                                          photos[2].name: photos[2].bytes, clash: photos[3].bytes])
        XCTAssertEqual(try gateway.project(project.id.uppercased(), token: token).imageCount, 4)
        XCTAssertTrue(eventually { gateway.stagingEntries().isEmpty }, "staging kept \(gateway.stagingEntries())")
    }

    func testAddImagesRefusalsLeaveTheProjectAsItWas() throws {
        let photos = try Photos.kermit(2)
        let passwd = try [UInt8](Data(contentsOf: URL(fileURLWithPath: "/etc/passwd")))
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Steady", [photos[0]], token: token)
        let target = "/api/projects/\(project.id)/images"

        let none = MultipartForm(parts: [.field(name: "comment", value: "no files here")])
        assertAPIError(try gateway.upload(none, to: target, token: token), 400, "No images provided")
        let unsupported = MultipartForm.photos([Photo(name: "notes.jpg", bytes: passwd), photos[1].renamed("a.gif")])
        assertAPIError(try gateway.upload(unsupported, to: target, token: token), 400,
                       "Unsupported image format: notes.jpg")
        let json = try gateway.stream("POST", target, token: token, headers: ["Content-Type": "application/json"],
                                      body: Array("{}".utf8))
        assertAPIError(json, 400, "Content-Type must be multipart/form-data with a boundary")
        let unknown = try gateway.upload(.photos([photos[1]]), to: "/api/projects/\(UUID().uuidString)/images",
                                         token: token)
        assertAPIError(unknown, 404, "Project not found")

        assertStored(gateway, "Steady", [photos[0]].byName)
        XCTAssertEqual(try gateway.project(project.id, token: token).imageCount, 1)
        XCTAssertTrue(eventually { gateway.stagingEntries().isEmpty }, "staging kept \(gateway.stagingEntries())")
    }

    /// Answers gathered from several threads.
    private final class Answers: @unchecked Sendable {
        private let lock = NSLock()
        private var answers: [(Int, Result<RawResponse, Error>)] = []

        func record(_ index: Int, _ answer: Result<RawResponse, Error>) {
            lock.lock()
            answers.append((index, answer))
            lock.unlock()
        }

        func sorted() -> [(Int, Result<RawResponse, Error>)] {
            lock.lock()
            defer { lock.unlock() }
            return answers.sorted { $0.0 < $1.0 }
        }
    }

    private func uploadHead(_ target: String, token: String, form: MultipartForm, length: Int,
                            extra: String = "") -> String {
        "POST \(target) HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer \(token)\r\n"
            + "Content-Type: \(form.contentType)\r\nContent-Length: \(length)\r\n\(extra)\r\n"
    }
}

// MARK: - Photos

/// A file as a test uploads it: the name the client gives it and its bytes.
struct Photo {
    var name: String
    var bytes: [UInt8]

    func renamed(_ name: String) -> Photo { Photo(name: name, bytes: bytes) }
}

extension Array where Element == Photo {
    /// Name to bytes, as a project's `images/` should hold them.
    var byName: [String: [UInt8]] { Dictionary(map { ($0.name, $0.bytes) }, uniquingKeysWith: { $1 }) }
}

/// Photos from the shared data sets, read in place, and small JPEGs made on the spot.
enum Photos {
    /// `../shared/datasets` from the package root.
    static let datasets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets")

    /// The first photos of the Kermit set: 640 × 480 JPEGs of about 170 KB.
    static func kermit(_ count: Int) throws -> [Photo] { try first(count, in: "bundler_kermit") }

    /// The first photos of the Fountain-P11 set: 3072 × 2048 JPEGs of about 3 MB.
    static func fountain(_ count: Int) throws -> [Photo] { try first(count, in: "strecha_fountain_P11/images") }

    private static func first(_ count: Int, in folder: String) throws -> [Photo] {
        let directory = datasets.appendingPathComponent(folder)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else {
            throw XCTSkip("the shared data set \(directory.path) is not on this machine")
        }
        let photos = names.filter { $0.lowercased().hasSuffix(".jpg") }.sorted().prefix(count)
        guard photos.count == count else { throw XCTSkip("\(directory.path) has fewer than \(count) photos") }
        return try photos.map {
            Photo(name: $0, bytes: [UInt8](try Data(contentsOf: directory.appendingPathComponent($0))))
        }
    }

    /// A JPEG of `width` × `height` from ReplicaImageIO's encoder: diagonal stripes, so no two sizes give the
    /// same bytes.
    static func synthetic(width: Int, height: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                bytes += [UInt8((x * 255) / max(width - 1, 1)), UInt8((y * 255) / max(height - 1, 1)),
                          (x + y) / 6 % 2 == 0 ? 30 : 210]
            }
        }
        return try JPEGEncoder.encode(PixelBuffer(width: width, height: height, channels: 3, bytes: bytes),
                                      quality: 85)
    }
}

// MARK: - Multipart bodies

/// One file part of a form, its `Content-Disposition` parameters exactly as they go on the wire.
struct FormFile {
    var field = "images"
    /// What follows `name="images"; ` — `filename="…"`, `filename*=UTF-8''…` or both.
    var disposition: String
    var contentType = "image/jpeg"
    var bytes: [UInt8]

    init(disposition: String, contentType: String = "image/jpeg", bytes: [UInt8]) {
        self.disposition = disposition
        self.contentType = contentType
        self.bytes = bytes
    }

    /// A photo under its own name, quoted as a quoted-string needs (`\` and `"` escaped).
    init(_ photo: Photo) {
        let quoted = photo.name.replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "\"", with: "\\\"")
        self.init(disposition: "filename=\"\(quoted)\"", bytes: photo.bytes)
    }
}

/// A `multipart/form-data` body built byte for byte, its parts in the order given.
struct MultipartForm {
    enum Part {
        case field(name: String, value: String)
        case file(FormFile)
    }

    var parts: [Part]
    var boundary = "ReplicaTestBoundary" + UUID().uuidString

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    /// The name field first (when given), then one `images` part per photo, as the desktop client sends them.
    static func photos(_ photos: [Photo], name: String? = nil) -> MultipartForm {
        MultipartForm(parts: (name.map { [Part.field(name: "name", value: $0)] } ?? [])
                      + photos.map { .file(FormFile($0)) })
    }

    /// The body; `closed: false` leaves out the close delimiter, as an upload cut short would.
    func bytes(closed: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        for part in parts {
            out += Array("--\(boundary)\r\n".utf8)
            switch part {
            case .field(let name, let value):
                out += Array("Content-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
            case .file(let file):
                out += Array("Content-Disposition: form-data; name=\"\(file.field)\"; \(file.disposition)\r\n".utf8)
                out += Array("Content-Type: \(file.contentType)\r\n\r\n".utf8) + file.bytes + Array("\r\n".utf8)
            }
        }
        if closed { out += Array("--\(boundary)--\r\n".utf8) }
        return out
    }
}

// MARK: - Talking to the gateway

extension GatewayHarness {
    var projectsDirectory: String { dataDirectory + "/projects" }
    var stagingDirectory: String { projectsDirectory + "/.staging" }
    func folder(_ project: String) -> String { projectsDirectory + "/" + project }
    func imagePath(_ project: String, _ file: String) -> String { folder(project) + "/images/" + file }

    /// Stops the gateway and removes its data directory.
    func stopAndRemove() {
        stop()
        try? FileManager.default.removeItem(atPath: dataDirectory)
    }

    /// Stops this gateway and starts another on the same data directory and clock, as a restart would.
    func restarted() throws -> GatewayHarness {
        stop()
        return try GatewayHarness(dataDirectory: dataDirectory, clock: clock)
    }

    func get(_ target: String, token: String, headers: [String: String] = [:]) throws -> RawResponse {
        try request("GET", target, headers: headers.merging(["Authorization": "Bearer \(token)"]) { $1 })
    }

    func sendJSON(_ method: String, _ target: String, token: String, _ body: String) throws -> RawResponse {
        try request(method, target, headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"],
                    body: body)
    }

    /// Sends the head, then the body in pieces from a thread of its own while this one reads the answer, the
    /// way an HTTP client uploads: a gateway that answers before the body is in (a limit, an unknown project)
    /// and stops reading is heard, instead of the send failing first.
    func stream(_ method: String, _ target: String, token: String, headers: [String: String] = [:],
                body: [UInt8], chunked: Bool = false, piece: Int = 32 * 1024) throws -> RawResponse {
        let client = try RawClient(port: port)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
            + "Authorization: Bearer \(token)\r\n"
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        head += chunked ? "Transfer-Encoding: chunked\r\n\r\n" : "Content-Length: \(body.count)\r\n\r\n"
        var wire = Array(head.utf8)
        if chunked {
            for start in stride(from: 0, to: body.count, by: piece) {
                let chunk = body[start..<min(start + piece, body.count)]
                wire += Array((String(chunk.count, radix: 16) + "\r\n").utf8) + chunk + Array("\r\n".utf8)
            }
            wire += Array("0\r\n\r\n".utf8)
        } else {
            wire += body
        }
        let fd = client.fd, sent = DispatchSemaphore(value: 0)
        let bytes = wire
        Thread.detachNewThread {
            var offset = 0
            while offset < bytes.count {
                let end = min(offset + piece, bytes.count)
                let n = bytes[offset..<end].withUnsafeBytes {
                    Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
                }
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { break }
                offset += n
            }
            sent.signal()
        }
        // The sender must be done with the socket before the client closes it.
        defer {
            if sent.wait(timeout: .now() + 10) == .timedOut {
                shutdown(fd, Int32(SHUT_RDWR))
                sent.wait()
            }
        }
        return try client.readResponse(timeout: 30)
    }

    func upload(_ form: MultipartForm, to target: String = "/api/projects", token: String) throws -> RawResponse {
        try stream("POST", target, token: token, headers: ["Content-Type": form.contentType], body: form.bytes())
    }

    /// Creates a project and returns the 201's body; fails the test on any other answer.
    func create(_ name: String?, _ photos: [Photo], token: String,
                file: StaticString = #filePath, line: UInt = #line) throws -> CreatedProject {
        let response = try upload(.photos(photos, name: name), token: token)
        XCTAssertEqual(response.status, 201, response.text, file: file, line: line)
        return try decode(CreatedProject.self, response, keys: CreatedProject.keys, file: file, line: line)
    }

    func project(_ id: String, token: String, file: StaticString = #filePath, line: UInt = #line) throws
        -> LinkProject {
        let response = try get("/api/projects/\(id)", token: token)
        XCTAssertEqual(response.status, 200, response.text, file: file, line: line)
        return try decode(LinkProject.self, response, keys: LinkProject.keys, file: file, line: line)
    }

    func projectList(token: String, file: StaticString = #filePath, line: UInt = #line) throws -> [LinkProject] {
        let response = try get("/api/projects", token: token)
        XCTAssertEqual(response.status, 200, response.text, file: file, line: line)
        let items = response.json["projects"] as? [[String: Any]] ?? []
        for item in items { XCTAssertEqual(Set(item.keys), LinkProject.keys, file: file, line: line) }
        return try decode(ProjectList.self, response, keys: ["projects"], file: file, line: line).projects
    }

    // MARK: The disk

    /// Name to bytes of the files in a project's `images/`.
    func storedImages(_ project: String) -> [String: [UInt8]] {
        let directory = folder(project) + "/images"
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var images: [String: [UInt8]] = [:]
        for name in names {
            images[name] = FileManager.default.contents(atPath: directory + "/" + name).map { [UInt8]($0) }
        }
        return images
    }

    /// Uploads still in `.staging`.
    func stagingEntries() -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: stagingDirectory)) ?? [] }

    /// The library's project folders (names not starting with a dot), sorted.
    func visibleFolders() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: projectsDirectory)) ?? [])
            .filter { !$0.hasPrefix(".") }.sorted()
    }

    /// The store's own entries in the library: `.staging`, `.trash-<id>`.
    func hiddenEntries() -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: projectsDirectory)) ?? []).filter { $0.hasPrefix(".") }
    }

    /// The cached thumbnails of one image, by file name.
    func cachedThumbnails(_ project: String, of image: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder(project) + "/work/thumbnails")) ?? [])
            .filter { $0.hasPrefix(image + "@") }
    }

    func thumbnailBytes(_ project: String, _ cached: String) -> [UInt8]? {
        FileManager.default.contents(atPath: folder(project) + "/work/thumbnails/" + cached).map { [UInt8]($0) }
    }

    /// After a refused upload: staging emptied (the pool removes it a moment after the answer), no project
    /// listed and no folder in the library.
    func assertLibraryIsEmpty(token: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertTrue(eventually { stagingEntries().isEmpty }, "staging kept \(stagingEntries())",
                      file: file, line: line)
        XCTAssertEqual(try projectList(token: token, file: file, line: line), [], file: file, line: line)
        XCTAssertEqual(visibleFolders(), [], file: file, line: line)
    }
}
