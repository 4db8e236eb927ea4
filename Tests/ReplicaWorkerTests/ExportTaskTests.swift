import Foundation
import ReplicaGeometry
import ReplicaProtocol
import XCTest
@testable import ReplicaWorker

/// The export task's frame and refusals; the task on a reconstructed model runs in the gateway's end-to-end test
/// (`ComputationTests`), which downloads every format.
final class ExportTaskTests: XCTestCase {
    private var work = ""

    override func setUpWithError() throws {
        work = NSTemporaryDirectory() + "export-" + UUID().uuidString + "/work"
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: (work as NSString).deletingLastPathComponent)
    }

    /// Upright cameras on a ring of radius `radius` around `centre`, in a world whose up is `up`, each looking at
    /// the centre.
    private func ring(centre: Vector3, up: Vector3, radius: Double, count: Int) -> [Rigid3] {
        let side = (abs(up.x) < 0.9 ? Vector3(1, 0, 0) : Vector3(0, 1, 0)).cross(up).normalized
        let other = up.cross(side)
        return (0..<count).map { index in
            let angle = 2 * Double.pi * Double(index) / Double(count)
            let position = centre + radius * (cos(angle) * side + sin(angle) * other) + 0.3 * radius * up
            let forward = (centre - position).normalized
            let right = forward.cross(up).normalized
            let down = forward.cross(right)
            // Camera axes: x right, y down, z forward; rows of the world-to-camera rotation.
            let rotation = Matrix3(rows: right, down, forward)
            return Rigid3(rotation: rotation, translation: Vector3.zero - rotation * position)
        }
    }

    func testTheFrameStandsTheModelUprightOnTheGroundAtTheAssumedScale() {
        let up = Vector3(0.3, -0.2, 0.93).normalized
        let centre = Vector3(2, -1, 5)
        let cameras = ring(centre: centre, up: up, radius: 8, count: 12)
        // A thin column along the world's up: it must end up vertical.
        let positions: [SIMD3<Float>] = (0...10).flatMap { step -> [SIMD3<Float>] in
            let p = centre + (Double(step) / 10 - 0.5) * 2 * up
            return [SIMD3(Float(p.x), Float(p.y), Float(p.z)), SIMD3(Float(p.x + 0.01), Float(p.y), Float(p.z))]
        }
        let frame = ModelFrame.fitted(positions: positions, cameras: cameras)
        let exported = positions.map(frame.apply)
        XCTAssertEqual(Double(exported.map(\.y).min()!), 0, accuracy: 1e-5, "on the ground")
        let bottom = exported[0], top = exported[exported.count - 2]
        XCTAssertEqual(Double(top.x - bottom.x), 0, accuracy: 1e-4, "vertical")
        XCTAssertEqual(Double(top.z - bottom.z), 0, accuracy: 1e-4, "vertical")
        // The cameras stood 8.35 units from the centre (the box's, a little off the column): 0.5 m.
        let distance = (8.0 * 8.0 + 2.4 * 2.4).squareRoot()
        XCTAssertEqual(frame.scale, ModelFrame.assumedCameraDistance / distance, accuracy: 1e-5)
        XCTAssertEqual(Double(top.y - bottom.y), 2 * frame.scale, accuracy: 1e-4)
        XCTAssertEqual(frame.rotation.determinant, 1, accuracy: 1e-9, "a rotation, not a mirror")
        // The first camera looks along −Z.
        let first = cameras[0]
        let axis = frame.rotate(SIMD3(Float(first.rotation.row(2).x), Float(first.rotation.row(2).y),
                                      Float(first.rotation.row(2).z)))
        XCTAssertLessThan(axis.z, -0.9)
    }

    func testInputsOtherThanANameAreRefused() throws {
        func refusal(_ inputs: [String: JSONValue]) -> String {
            do {
                _ = try ExportTask(TaskAssignment(taskId: "t", kind: .export, workDirectory: work, inputs: inputs))
                return "accepted"
            } catch {
                guard case .failed(let message, _, _) = error else { return "cancelled" }
                return message
            }
        }
        XCTAssertEqual(refusal([:]), "accepted")
        XCTAssertEqual(refusal(["name": .string("Statue")]), "accepted")
        XCTAssertTrue(refusal(["name": .string("")]).contains("non-empty"))
        XCTAssertTrue(refusal(["format": .string("glb")]).contains("inputs.format is not an input"))
    }

    func testAMissingTexturedMeshOrManifestSaysToComputeAgain() throws {
        func failure() -> String {
            do {
                _ = try ExportTask(workDirectory: work).run(RecordingSink())
                return "succeeded"
            } catch {
                guard case .failed(let message, let retryable, _) = error else { return "cancelled" }
                XCTAssertFalse(retryable)
                return message
            }
        }
        XCTAssertEqual(failure(), "there is no textured mesh (work/textured.ply); compute again")
        try Data("ply\nformat ascii 1.0\nend_header\n".utf8).write(to: URL(fileURLWithPath: work + "/textured.ply"))
        XCTAssertTrue(failure().hasPrefix("the textured mesh (work/textured.ply) is damaged"), failure())
        XCTAssertFalse(FileManager.default.fileExists(atPath: work + "/export"))
    }
}
