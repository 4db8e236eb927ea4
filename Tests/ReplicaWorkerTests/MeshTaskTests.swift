import Foundation
import ReplicaProtocol
import ReplicaReconstruction
import ReplicaWorker
import XCTest

/// The mesh task on a cloud whose surface is known (a sphere): its files, the budget in triangles and in quads,
/// its inputs, and a missing or damaged cloud. The stage on a reconstructed cloud is in `ImageAlignmentTests`.
final class MeshTaskTests: XCTestCase {
    private var work = ""

    override func setUpWithError() throws {
        work = NSTemporaryDirectory() + "mesh-" + UUID().uuidString + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: (work as NSString).deletingLastPathComponent)
    }

    private func writeSphere(points: Int) throws {
        var cloud = OrientedPointCloud()
        let golden = Float.pi * (3 - Float(5).squareRoot())
        for index in 0..<points {
            let y = 1 - 2 * (Float(index) + 0.5) / Float(points)
            let ring = (1 - y * y).squareRoot(), angle = golden * Float(index)
            let normal = SIMD3(ring * cos(angle), y, ring * sin(angle))
            cloud.append(position: 0.5 * normal + SIMD3(2, 0, 0), normal: normal, color: SIMD3(200, 100, 50))
        }
        try Data(cloud.plyBytes()).write(to: URL(fileURLWithPath: work + "/dense.ply"))
    }

    private func read(_ name: String) throws -> SurfaceMesh {
        try SurfaceMesh(plyBytes: [UInt8](try Data(contentsOf: URL(fileURLWithPath: work + "/" + name))))
    }

    func testASphereIsMeshedWithinItsBudgetInTrianglesAndInQuads() throws {
        try writeSphere(points: 40_000)
        let outcome = try MeshTask(inputs: MeshInputs(maximumPolygons: 3000, primitive: .triangle, masking: false),
                                   workDirectory: work).run(RecordingSink())
        XCTAssertEqual(outcome.outputs, MeshTask.outputs)
        let mesh = try read("mesh.ply"), raw = try read("mesh-raw.ply")
        XCTAssertLessThan(mesh.polygonCount, 3000)
        XCTAssertGreaterThanOrEqual(mesh.polygonCount, 2700, "at least 90 % of the budget")
        XCTAssertGreaterThan(raw.triangles.count, 3000, "the undecimated mesh is kept beside it")
        XCTAssertEqual(outcome.data["polygons"], .number(Double(mesh.polygonCount)))
        XCTAssertEqual(outcome.data["watertight"], .bool(true))
        for surface in [mesh, raw] {
            XCTAssertTrue(surface.topology.isWatertight)
            XCTAssertEqual(surface.normals.count, surface.positions.count)
            let ball: Double = 4.0 / 3.0 * Double.pi * 0.125
            XCTAssertEqual(surface.signedVolume, ball, accuracy: 0.03 * ball)
            let worst = surface.positions.map { p -> Float in
                let d = p - SIMD3(2, 0, 0)
                return abs((d * d).sum().squareRoot() - 0.5)
            }.max()!
            XCTAssertLessThan(worst, 0.01, "within 1 % of the radius")
        }
        let statistics = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath:
            work + "/mesh/statistics.json"))) as? [String: Any])
        XCTAssertEqual((statistics["mesh"] as? [String: Any])?["watertight"] as? Bool, true)
        XCTAssertNotNil(statistics["solve"] as? [[String: Any]])

        _ = try MeshTask(inputs: MeshInputs(maximumPolygons: 3000, primitive: .quad, masking: false),
                         workDirectory: work).run(RecordingSink())
        let quads = try read("mesh.ply")
        XCTAssertTrue(quads.triangles.isEmpty, "all quads")
        XCTAssertLessThan(quads.polygonCount, 3000)
        XCTAssertGreaterThanOrEqual(quads.polygonCount, 2700)
        XCTAssertTrue(quads.topology.isWatertight)

        // Custom's smallest ceiling, four polygons: too few for quads, so triangles, and never more than four.
        _ = try MeshTask(inputs: MeshInputs(maximumPolygons: 4, primitive: .quad, masking: false),
                         workDirectory: work).run(RecordingSink())
        let tiny = try read("mesh.ply")
        XCTAssertLessThanOrEqual(tiny.polygonCount, 4)
    }

    func testInputsAreCheckedAndACloudMustExist() throws {
        func refusal(_ inputs: [String: JSONValue]) -> String {
            do {
                _ = try MeshTask(TaskAssignment(taskId: "t", kind: .mesh, workDirectory: work, inputs: inputs))
                return "accepted"
            } catch {
                guard case .failed(let message, let retryable, _) = error else { return "cancelled" }
                XCTAssertFalse(retryable)
                return message
            }
        }
        let good: [String: JSONValue] = ["maxPolygons": .number(100), "primitive": .string("quad"),
                                         "masking": .bool(true)]
        XCTAssertEqual(refusal(good), "accepted")
        XCTAssertTrue(refusal(good.merging(["maxPolygons": .number(3)]) { $1 }).contains("inputs.maxPolygons"))
        XCTAssertTrue(refusal(good.merging(["maxPolygons": .number(10.5)]) { $1 }).contains("inputs.maxPolygons"))
        XCTAssertTrue(refusal(good.merging(["primitive": .string("hexagon")]) { $1 }).contains("inputs.primitive"))
        XCTAssertTrue(refusal(good.merging(["masking": .string("yes")]) { $1 }).contains("inputs.masking"))
        XCTAssertTrue(refusal(good.merging(["extra": .null]) { $1 }).contains("inputs.extra"))

        let task = MeshTask(inputs: MeshInputs(maximumPolygons: 100, primitive: .triangle, masking: false),
                            workDirectory: work)
        for damage in [nil, Data("ply\nformat ascii 1.0\nend_header\n".utf8)] {
            if let damage { try damage.write(to: URL(fileURLWithPath: work + "/dense.ply")) }
            XCTAssertThrowsError(try task.run(RecordingSink())) { error in
                guard case TaskError.failed(let message, let retryable, _) = error else { return XCTFail("\(error)") }
                XCTAssertFalse(retryable)
                XCTAssertTrue(message.contains("work/dense.ply"), message)
                XCTAssertTrue(message.contains("compute again"), message)
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/mesh.ply"))
    }
}
