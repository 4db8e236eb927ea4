import Foundation
import ReplicaCore
import ReplicaImageIO
import ReplicaTestSupport
import XCTest
@testable import ReplicaExport

/// The exchange formats, each read back by a reader that is not its writer: our GLB reader (a structure check),
/// assimp for OBJ and FBX, and, where `REPLICA_VALIDATOR_PYTHON` names a Python with usd-core and pygltflib
/// (scripts/test installs one), Pixar's USD validators and pygltflib.
final class ExportFormatTests: XCTestCase {
    private var folder: String!

    override func setUpWithError() throws {
        folder = NSTemporaryDirectory() + "ExportFormatTests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// A sphere of radius 0.1 m on the ground, its upper and lower halves on two pages with all five maps.
    static func sphereModel(rings: Int = 12, segments: Int = 24, maps: [ExportMap] = ExportMap.allCases) throws
        -> ExportModel {
        var positions: [SIMD3<Float>] = [], uvs: [SIMD2<Float>] = [], tangents: [SIMD4<Float>] = []
        for ring in 0...rings {
            let polar = Float.pi * Float(ring) / Float(rings)
            for segment in 0...segments {
                let azimuth = 2 * Float.pi * Float(segment) / Float(segments)
                let direction = SIMD3(sin(polar) * cos(azimuth), cos(polar), -sin(polar) * sin(azimuth))
                positions.append(0.1 * direction + SIMD3(0, 0.1, 0))
                uvs.append(SIMD2(Float(segment) / Float(segments), Float(ring) / Float(rings)))
                tangents.append(SIMD4(-sin(azimuth), 0, -cos(azimuth), 1))
            }
        }
        let normals = positions.map { ($0 - SIMD3(0, 0.1, 0)) / 0.1 }
        var triangles: [SIMD3<UInt32>] = [], pages: [Int] = []
        for ring in 0..<rings {
            for segment in 0..<segments {
                let a = UInt32(ring * (segments + 1) + segment), b = a + 1
                let c = a + UInt32(segments + 1), d = c + 1
                triangles += [SIMD3(a, c, b), SIMD3(b, c, d)]
                pages += Array(repeating: ring < rings / 2 ? 0 : 1, count: 2)
            }
        }
        let parts = ExportModel.parts(positions: positions, normals: normals, uvs: uvs, tangents: tangents,
                                      triangles: triangles, pages: pages)
        var textures: [ExportTexture] = []
        for page in 0..<2 {
            for map in maps {
                let channels = map == .diffuse || map == .normal ? 3 : 1
                var pixels = PixelBuffer(width: 32, height: 32, channels: channels)
                for i in pixels.bytes.indices { pixels.bytes[i] = UInt8((i * 7 + page * 50 + map.hashValue) & 0xFF) }
                if map == .normal { for i in stride(from: 0, to: pixels.bytes.count, by: 3) {
                    pixels.bytes[i] = 128; pixels.bytes[i + 1] = 128; pixels.bytes[i + 2] = 255
                } }
                textures.append(ExportTexture(map: map, page: page, bytes: try PNGEncoder.encode(pixels)))
            }
        }
        return ExportModel(name: "sphere", parts: parts, textures: textures, heightScale: 0.004)
    }

    func testPartsKeepOnlyTheirVerticesAndEveryFace() throws {
        let model = try Self.sphereModel()
        XCTAssertEqual(model.parts.map(\.page), [0, 1])
        XCTAssertEqual(model.triangleCount, 12 * 24 * 2)
        // Each half has its own copy of the equator's 25 vertices.
        XCTAssertEqual(model.vertexCount, 13 * 25 + 25)
        for part in model.parts {
            XCTAssertEqual(part.normals.count, part.positions.count)
            XCTAssertTrue(part.triangles.allSatisfy { $0.max() < UInt32(part.positions.count) })
            XCTAssertTrue(part.tangents.allSatisfy { abs(($0 * $0).sum() - 2) < 1e-4 })
        }
    }

    func testGLBReadsBackWithItsStructureIntact() throws {
        let model = try Self.sphereModel()
        let bytes = try GLB.bytes(model)
        XCTAssertEqual(bytes.count % 4, 0)
        let read = try GLB.read(bytes)
        XCTAssertEqual(read.vertexCount, model.vertexCount)
        XCTAssertEqual(read.triangleCount, model.triangleCount)
        XCTAssertEqual(read.parts.map(\.triangles), model.parts.map(\.triangles))
        XCTAssertEqual(read.parts.map(\.uvs), model.parts.map(\.uvs))
        // Diffuse and normal as written; occlusion and roughness packed into one image, no height.
        XCTAssertEqual(read.texture(.diffuse, page: 1), model.texture(.diffuse, page: 1))
        XCTAssertEqual(read.texture(.normal, page: 0), model.texture(.normal, page: 0))
        let packed = try TexturePacking.decode(XCTUnwrap(read.texture(.roughness, page: 0)))
        let occlusion = try TexturePacking.decode(XCTUnwrap(model.texture(.occlusion, page: 0)))
        let roughness = try TexturePacking.decode(XCTUnwrap(model.texture(.roughness, page: 0)))
        XCTAssertEqual(packed.channels, 3)
        for i in [0, 100, 1023] {
            XCTAssertEqual(packed.bytes[3 * i], occlusion.bytes[i])
            XCTAssertEqual(packed.bytes[3 * i + 1], roughness.bytes[i])
            XCTAssertEqual(packed.bytes[3 * i + 2], 0)
        }
    }

    func testGLBReaderRefusesDamage() throws {
        var bytes = try GLB.bytes(Self.sphereModel(maps: [.diffuse]))
        XCTAssertThrowsError(try GLB.read(Array(bytes.dropLast(4))))
        bytes[0] ^= 1
        XCTAssertThrowsError(try GLB.read(bytes))
    }

    func testUSDZIsAStoredZipWithTheLayerFirstAndEveryFileAligned() throws {
        let model = try Self.sphereModel()
        let bytes = try USDZ.bytes(model)
        var offset = 0
        var names: [String] = []
        func u16(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> Int { u16(at) | u16(at + 2) << 16 }
        while u32(offset) == 0x0403_4B50 {
            XCTAssertEqual(u16(offset + 8), 0, "stored, not compressed")
            XCTAssertEqual(u16(offset + 6) & 1, 0, "not encrypted")
            let nameLength = u16(offset + 26), extraLength = u16(offset + 28), size = u32(offset + 18)
            names.append(String(decoding: bytes[(offset + 30)..<(offset + 30 + nameLength)], as: UTF8.self))
            let data = offset + 30 + nameLength + extraLength
            XCTAssertEqual(data % 64, 0, "\(names.last!) starts at \(data)")
            offset = data + size
        }
        XCTAssertEqual(names.first, USDZ.layerName)
        XCTAssertEqual(names.count, 1 + 10)
        let layer = USDZ.layer(model)
        XCTAssertTrue(layer.contains("upAxis = \"Y\""))
        XCTAssertTrue(layer.contains("metersPerUnit = 1"))
        XCTAssertTrue(layer.contains("@textures/height-1.png@"))
    }

    func testOBJAndFBXReadByAssimpWithTheSameCounts() throws {
        let model = try Self.sphereModel()
        let files = OBJ.files(model, baseName: "model")
        try Data(files.obj).write(to: URL(fileURLWithPath: folder + "/model.obj"))
        try Data(files.mtl).write(to: URL(fileURLWithPath: folder + "/model.mtl"))
        for texture in files.textures {
            try Data(texture.bytes).write(to: URL(fileURLWithPath: folder + "/" + texture.name))
        }
        let obj = try AssimpReader.summary(ofFile: folder + "/model.obj")
        XCTAssertEqual(obj.faces, model.triangleCount, "\(obj)")
        XCTAssertEqual(obj.vertices, model.vertexCount, "\(obj)")
        XCTAssertTrue(obj.hasTextureCoordinates)
        XCTAssertTrue(obj.texturePaths.contains("model-diffuse-0.png"), "\(obj)")

        try Data(FBX.bytes(model)).write(to: URL(fileURLWithPath: folder + "/model.fbx"))
        let fbx = try AssimpReader.summary(ofFile: folder + "/model.fbx")
        XCTAssertEqual(fbx.faces, model.triangleCount, "\(fbx)")
        XCTAssertEqual(fbx.vertices, model.vertexCount, "\(fbx)")
        XCTAssertTrue(fbx.hasTextureCoordinates)
        XCTAssertGreaterThanOrEqual(fbx.embeddedTextures, 2, "\(fbx)")
    }

    func testIndependentValidatorsAcceptGLBAndUSDZ() throws {
        guard let python = ModelValidator.python else {
            throw XCTSkip("REPLICA_VALIDATOR_PYTHON is not set (scripts/test sets it)")
        }
        let model = try Self.sphereModel()
        try Data(GLB.bytes(model)).write(to: URL(fileURLWithPath: folder + "/model.glb"))
        try Data(USDZ.bytes(model)).write(to: URL(fileURLWithPath: folder + "/model.usdz"))
        for format in ["glb", "usdz"] {
            let report = try ModelValidator.run(format, folder + "/model." + format, python: python)
            XCTAssertEqual(report["errors"] as? [String], [], "\(format): \(report)")
            XCTAssertEqual(report["vertices"] as? Int, model.vertexCount, format)
            XCTAssertEqual(report["faces"] as? Int, model.triangleCount, format)
            XCTAssertEqual(report["textures"] as? Int, format == "glb" ? 6 : 10, format)
            if format == "usdz" {
                XCTAssertEqual(report["upAxis"] as? String, "Y")
                XCTAssertEqual(report["metersPerUnit"] as? Double, 1)
                XCTAssertEqual(report["firstFile"] as? String, USDZ.layerName)
                XCTAssertEqual(report["compressed"] as? [String], [])
            }
        }
    }
}
