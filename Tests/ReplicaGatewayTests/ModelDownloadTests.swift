import Foundation
import ReplicaExport
import ReplicaImageIO
import ReplicaTestSupport
import XCTest

/// The model endpoints over real HTTP against the real `replica-link`, its workers the fake of
/// `Fixtures/fake-worker.py`, whose export task places a GLB and a USDZ made here as the real one places its own.
/// What is served is read back by our GLB reader and by assimp.
final class ModelDownloadTests: XCTestCase {
    private var directory = ""
    private var gateway: GatewayProcess?
    private var model: ExportModel!
    private var glb: [UInt8] = []
    private var usdz: [UInt8] = []

    override func setUpWithError() throws {
        directory = GatewayHarness.temporaryDirectory()
        try place(Self.boxModel())
    }

    /// The model the fake export task hands over.
    private func place(_ model: ExportModel) throws {
        self.model = model
        glb = try GLB.bytes(model)
        usdz = try USDZ.bytes(model)
        let source = directory + "/export-source"
        try FileManager.default.createDirectory(atPath: source, withIntermediateDirectories: true)
        try Data(glb).write(to: URL(fileURLWithPath: source + "/model.glb"))
        try Data(usdz).write(to: URL(fileURLWithPath: source + "/model.usdz"))
    }

    /// A wavy sheet of `side`² quads, large enough that converting it takes a noticeable time.
    static func sheetModel(side: Int) throws -> ExportModel {
        var positions: [SIMD3<Float>] = [], uvs: [SIMD2<Float>] = [], triangles: [SIMD3<UInt32>] = []
        for row in 0...side {
            for column in 0...side {
                let u = Float(column) / Float(side), v = Float(row) / Float(side)
                positions.append(SIMD3(u, 0.02 * sin(20 * u) * cos(20 * v), v))
                uvs.append(SIMD2(u, v))
            }
        }
        for row in 0..<side {
            for column in 0..<side {
                let a = UInt32(row * (side + 1) + column), b = a + 1, c = a + UInt32(side + 1), d = c + 1
                triangles += [SIMD3(a, c, b), SIMD3(b, c, d)]
            }
        }
        let parts = ExportModel.parts(positions: positions, normals: Array(repeating: SIMD3(0, 1, 0),
                                                                            count: positions.count),
                                      uvs: uvs, tangents: [], triangles: triangles,
                                      pages: Array(repeating: 0, count: triangles.count))
        return ExportModel(name: "sheet", parts: parts, textures: try boxModel().textures)
    }

    override func tearDown() {
        gateway?.stop()
        gateway = nil
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A 10 cm box on the ground, each side two triangles, one page with a diffuse and a normal map.
    static func boxModel() throws -> ExportModel {
        var positions: [SIMD3<Float>] = [], normals: [SIMD3<Float>] = [], uvs: [SIMD2<Float>] = []
        var triangles: [SIMD3<UInt32>] = []
        let axes: [(SIMD3<Float>, SIMD3<Float>, SIMD3<Float>)] = [
            (SIMD3(1, 0, 0), SIMD3(0, 0, -1), SIMD3(0, 1, 0)), (SIMD3(-1, 0, 0), SIMD3(0, 0, 1), SIMD3(0, 1, 0)),
            (SIMD3(0, 1, 0), SIMD3(1, 0, 0), SIMD3(0, 0, -1)), (SIMD3(0, -1, 0), SIMD3(1, 0, 0), SIMD3(0, 0, 1)),
            (SIMD3(0, 0, 1), SIMD3(1, 0, 0), SIMD3(0, 1, 0)), (SIMD3(0, 0, -1), SIMD3(-1, 0, 0), SIMD3(0, 1, 0)),
        ]
        for (side, (normal, u, v)) in axes.enumerated() {
            let base = UInt32(positions.count)
            for (a, b) in [(-1, -1), (1, -1), (1, 1), (-1, 1)] as [(Float, Float)] {
                positions.append(0.05 * (normal + a * u + b * v) + SIMD3(0, 0.05, 0))
                normals.append(normal)
                uvs.append(SIMD2((Float(side) + (a + 1) / 2) / 6, 1 - (b + 1) / 2))
            }
            triangles += [SIMD3(base, base + 1, base + 2), SIMD3(base, base + 2, base + 3)]
        }
        let parts = ExportModel.parts(positions: positions, normals: normals, uvs: uvs, tangents: [],
                                      triangles: triangles, pages: Array(repeating: 0, count: triangles.count))
        var diffuse = PixelBuffer(width: 96, height: 16, channels: 3)
        for i in diffuse.bytes.indices { diffuse.bytes[i] = UInt8(((i / 3 % 96) * 2 + i % 3 * 40) & 0xFF) }
        var flat = PixelBuffer(width: 8, height: 8, channels: 3)
        for i in stride(from: 0, to: flat.bytes.count, by: 3) { flat.bytes[i] = 128; flat.bytes[i + 1] = 128
            flat.bytes[i + 2] = 255 }
        return ExportModel(name: "box", parts: parts, textures: [
            ExportTexture(map: .diffuse, page: 0, bytes: try PNGEncoder.encode(diffuse)),
            ExportTexture(map: .normal, page: 0, bytes: try PNGEncoder.encode(flat)),
        ])
    }

    private func startAndCompute() throws -> (GatewayProcess, String) {
        let started = try GatewayProcess.launch(directory: directory, workerCommand: FakeWorker.template("ok"),
                                                environment: ["FAKE_WORKER_EXPORT_FROM": directory + "/export-source",
                                                              "FAKE_WORKER_RUN_LOG": directory + "/run.log"])
        gateway = started
        let photo = try Photos.synthetic(width: 32, height: 24)
        let id = try started.create("Box", [Photo(name: "a.jpg", bytes: photo), Photo(name: "b.jpg", bytes: photo)])
        for format in ["glb", "usdz", "obj", "fbx"] {
            assertAPIError(try started.send("GET", "/api/projects/\(id)/download?format=\(format)"), 404,
                           "Model not found: the project has no \(format == "usdz" ? "USDZ" : "GLB") model; "
                           + "compute it first")
        }
        assertAPIError(try started.send("GET", "/api/projects/\(id)/model"), 404, "GLB model not available")
        XCTAssertEqual(try started.compute(id, #"{"detail":"preview"}"#).status, 202)
        let deadline = Date(timeIntervalSinceNow: 30)
        while try started.project(id).status != "completed" {
            guard Date() < deadline else { throw ClientError("the job did not complete") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return (started, id)
    }

    func testEveryFormatDownloadsWithItsTypeAndOpensInAnIndependentReader() throws {
        let (gateway, id) = try startAndCompute()
        let project = try gateway.project(id)
        XCTAssertTrue(project.hasModel)
        XCTAssertTrue(project.hasGlb)
        XCTAssertEqual(project.modelDetail, "preview")
        XCTAssertEqual(try gateway.statusList().projects.first?.hasGlb, true)

        let served = try gateway.send("GET", "/api/projects/\(id)/model")
        XCTAssertEqual(served.status, 200)
        XCTAssertEqual(served.header("Content-Type"), "model/gltf-binary")
        XCTAssertEqual(served.body, glb)
        XCTAssertNil(served.header("Content-Disposition"))

        let types = ["glb": "model/gltf-binary", "usdz": "model/vnd.usdz+zip", "obj": "text/plain",
                     "fbx": "application/octet-stream"]
        for (format, type) in types {
            let response = try gateway.send("GET", "/api/projects/\(id)/download?format=\(format)")
            XCTAssertEqual(response.status, 200, "\(format): \(response.text.prefix(300))")
            XCTAssertEqual(response.header("Content-Type"), type, format)
            XCTAssertEqual(response.header("Content-Disposition"), "attachment; filename=\"Box.\(format)\"")
            XCTAssertEqual(response.header("Accept-Ranges"), "bytes")
            let path = directory + "/downloaded." + format
            try Data(response.body).write(to: URL(fileURLWithPath: path))
            switch format {
            case "glb":
                XCTAssertEqual(response.body, glb)
                XCTAssertEqual(try GLB.read(response.body).triangleCount, 12)
            case "usdz":
                XCTAssertEqual(response.body, usdz)
            case "obj":
                let summary = try AssimpReader.summary(ofFile: path)
                XCTAssertEqual(summary.faces, 12, "\(summary)")
                XCTAssertTrue(summary.hasTextureCoordinates)
                // The material library and its texture wait beside the cached OBJ.
                let exports = directory + "/projects/Box/link-exports/"
                let text = String(decoding: response.body, as: UTF8.self)
                XCTAssertTrue(text.hasPrefix("# Replica Link\nmtllib model.mtl"), String(text.prefix(100)))
                XCTAssertTrue(FileManager.default.fileExists(atPath: exports + "model-diffuse-0.png"))
                XCTAssertEqual(try AssimpReader.summary(ofFile: exports + "model.obj").texturePaths,
                               ["model-diffuse-0.png", "model-normal-0.png"])
            default:
                let summary = try AssimpReader.summary(ofFile: path)
                XCTAssertEqual(summary.faces, 12, "\(summary)")
                XCTAssertEqual(summary.embeddedTextures, 2, "\(summary)")
                XCTAssertTrue(summary.hasTextureCoordinates)
            }
        }
        // The default format is GLB; an unknown one is refused.
        XCTAssertEqual(try gateway.send("GET", "/api/projects/\(id)/download").body, glb)
        assertAPIError(try gateway.send("GET", "/api/projects/\(id)/download?format=stl"), 400,
                       "Invalid format \"stl\": use glb, usdz, obj or fbx")
        assertAPIError(try gateway.send("GET", "/api/projects/no-such/download?format=glb"), 404, "Project not found")
        // The second request is served from the cache: one conversion per format in the log.
        XCTAssertEqual(try gateway.send("GET", "/api/projects/\(id)/download?format=obj").status, 200)
        XCTAssertEqual(conversions("obj"), 1)
        XCTAssertEqual(conversions("fbx"), 1)
    }

    func testTheViewerEndpointChecksTheQueryTokenItself() throws {
        let (gateway, id) = try startAndCompute()
        let token = gateway.token
        let client = try RawClient(port: gateway.port)
        try client.send("GET /api/viewer/projects/\(id)/model?token=\(token) HTTP/1.1\r\nHost: t\r\n"
                        + "Connection: close\r\n\r\n")
        let viewed = try client.readResponse()
        XCTAssertEqual(viewed.status, 200)
        XCTAssertEqual(viewed.header("Content-Type"), "model/gltf-binary")
        XCTAssertEqual(viewed.body, glb)
        // The header is not consulted: without the query token the answer is 401, even with a valid header.
        assertAPIError(try gateway.send("GET", "/api/viewer/projects/\(id)/model"), 401, "Unauthorized")
        assertAPIError(try gateway.send("GET", "/api/viewer/projects/\(id)/model?token=forged"), 401, "Unauthorized")
        let unknown = "/api/viewer/projects/no-such/model?token=\(token)"
        assertAPIError(try gateway.send("GET", unknown), 404, "Project not found")
    }

    func testRangesResumeADownloadAndHeadSendsHeadersOnly() throws {
        let (gateway, id) = try startAndCompute()
        func get(_ headers: String, method: String = "GET") throws -> RawResponse {
            let client = try RawClient(port: gateway.port)
            try client.send("\(method) /api/projects/\(id)/download?format=usdz HTTP/1.1\r\nHost: t\r\n"
                            + "Authorization: Bearer \(gateway.token)\r\nConnection: close\r\n\(headers)\r\n")
            return try client.readResponse(forHead: method == "HEAD")
        }
        let whole = try get("")
        let tag = try XCTUnwrap(whole.header("ETag"))
        XCTAssertNotNil(whole.header("Last-Modified"))
        let first = try get("Range: bytes=0-99\r\n")
        XCTAssertEqual(first.status, 206)
        XCTAssertEqual(first.header("Content-Range"), "bytes 0-99/\(usdz.count)")
        XCTAssertEqual(first.body, Array(usdz[0..<100]))
        // Resumed from byte 100, only while the file is the one the first part came from.
        let rest = try get("Range: bytes=100-\r\nIf-Range: \(tag)\r\n")
        XCTAssertEqual(rest.status, 206)
        XCTAssertEqual(first.body + rest.body, usdz)
        let changed = try get("Range: bytes=100-\r\nIf-Range: \"other\"\r\n")
        XCTAssertEqual(changed.status, 200)
        XCTAssertEqual(changed.body, usdz)
        let suffix = try get("Range: bytes=-10\r\n")
        XCTAssertEqual(suffix.body, Array(usdz.suffix(10)))
        let past = try get("Range: bytes=\(usdz.count)-\r\n")
        XCTAssertEqual(past.status, 416)
        XCTAssertEqual(past.header("Content-Range"), "bytes */\(usdz.count)")
        XCTAssertEqual(try get("If-None-Match: \(tag)\r\n").status, 304)
        let head = try get("", method: "HEAD")
        XCTAssertEqual(head.status, 200)
        XCTAssertEqual(head.header("Content-Length"), "\(usdz.count)")
        XCTAssertTrue(head.body.isEmpty)
    }

    func testTwoRequestsAtOnceConvertOnceAndAFailedConversionLeavesNoCache() throws {
        // 300,000 triangles: the conversion outlasts the moment between the two requests.
        try place(Self.sheetModel(side: 388))
        let (gateway, id) = try startAndCompute()
        var clients: [RawClient] = []
        for _ in 0..<2 {
            let client = try RawClient(port: gateway.port)
            try client.send("GET /api/projects/\(id)/download?format=fbx HTTP/1.1\r\nHost: t\r\n"
                            + "Authorization: Bearer \(gateway.token)\r\nConnection: close\r\n\r\n")
            clients.append(client)
        }
        let answers = try clients.map { try $0.readResponse() }
        XCTAssertEqual(answers.map(\.status), [200, 200])
        XCTAssertEqual(answers[0].body, answers[1].body)
        XCTAssertEqual(conversions("fbx"), 1)
        XCTAssertEqual(conversions("fbx", event: "model conversion joined"), 1, "the second waited for the first")

        // A GLB that does not parse: 500 with the reason, and nothing half-written in the cache.
        let exports = directory + "/projects/Box/link-exports"
        try Data(glb.prefix(40)).write(to: URL(fileURLWithPath: exports + "/model.glb"))
        let failed = try gateway.send("GET", "/api/projects/\(id)/download?format=obj")
        XCTAssertEqual(failed.status, 500, failed.text)
        XCTAssertTrue((failed.json["error"] as? String ?? "").hasPrefix("Conversion to OBJ failed: "), failed.text)
        let left = try FileManager.default.contentsOfDirectory(atPath: exports).sorted()
        XCTAssertEqual(left, ["model.fbx", "model.glb"])
        XCTAssertEqual(try AssimpReader.summary(ofFile: exports + "/model.fbx").faces, model.triangleCount)
    }

    func testComputingAgainReplacesTheModelAndDropsItsConversions() throws {
        let (gateway, id) = try startAndCompute()
        XCTAssertEqual(try gateway.send("GET", "/api/projects/\(id)/download?format=obj").status, 200)
        let exports = directory + "/projects/Box/link-exports"
        XCTAssertTrue(FileManager.default.fileExists(atPath: exports + "/model.obj"))
        XCTAssertEqual(try gateway.compute(id, #"{"detail":"reduced"}"#).status, 202)
        let deadline = Date(timeIntervalSinceNow: 30)
        while try gateway.project(id).status != "completed" || gateway.project(id).modelDetail != "reduced" {
            guard Date() < deadline else { throw ClientError("the second job did not complete") }
            Thread.sleep(forTimeInterval: 0.1)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: exports).sorted(), ["model.glb"])
        // A model removed by hand is no longer promised.
        try FileManager.default.removeItem(atPath: exports + "/model.glb")
        assertAPIError(try gateway.send("GET", "/api/projects/\(id)/model"), 404, "GLB model not available")
        XCTAssertFalse(try gateway.project(id).hasGlb)
        XCTAssertTrue(try gateway.project(id).hasModel)
    }

    /// How many conversions to `format` the gateway's log records.
    /// The log is written behind the answers: its lines are waited for, a second at most.
    private func conversions(_ format: String, event: String = "model converted") -> Int {
        var count = 0
        let deadline = Date(timeIntervalSinceNow: 1)
        repeat {
            let log = (try? String(contentsOfFile: directory + "/logs/gateway.log", encoding: .utf8)) ?? ""
            count = log.split(separator: "\n").filter {
                $0.contains(event) && $0.contains(" model.format=\(format)")
            }.count
            if count > 0 { break }
            Thread.sleep(forTimeInterval: 0.05)
        } while Date() < deadline
        return count
    }
}
