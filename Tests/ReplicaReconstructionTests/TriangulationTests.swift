import Foundation
import ReplicaGeometry
import XCTest
@testable import ReplicaReconstruction

/// Triangulation on synthetic views with known truth: exact recovery, refinement under noise, degenerate views,
/// and the angle, depth and reprojection checks that decide whether a point is kept.
final class TriangulationTests: XCTestCase {
    private let camera = SimpleRadialCamera(width: 640, height: 480, focal: 500, radial: -0.05)

    /// A camera at `center` looking at `target`, +y of the image roughly down the world's −y.
    private func looking(from center: Vector3, at target: Vector3) -> Rigid3 {
        let forward = (target - center).normalized
        let right = Vector3(0, -1, 0).cross(forward).normalized
        let down = forward.cross(right)
        let rotation = Matrix3(rows: right, down, forward)
        return Rigid3(rotation: rotation, translation: -(rotation * center))
    }

    /// Views from `count` centres on an arc of radius 6 spanning `spreadDegrees`, all looking at the origin.
    private func views(count: Int, spreadDegrees: Double) -> [Rigid3] {
        (0..<count).map { index in
            let fraction = count > 1 ? Double(index) / Double(count - 1) - 0.5 : 0
            let angle = fraction * spreadDegrees * .pi / 180
            return looking(from: Vector3(6 * sin(angle), 0.5, -6 * cos(angle)), at: .zero)
        }
    }

    private func normalizedObservations(_ point: Vector3, _ poses: [Rigid3], noise: [Vector2] = [])
        -> [(camFromWorld: Rigid3, normalized: Vector2)] {
        poses.enumerated().map { index, pose in
            let p = pose.apply(point)
            let offset = index < noise.count ? noise[index] : .zero
            return (pose, Vector2(p.x / p.z, p.y / p.z) + offset)
        }
    }

    private func pixelObservations(_ point: Vector3, _ poses: [Rigid3])
        -> [(camFromWorld: Rigid3, pixel: Vector2, camera: SimpleRadialCamera)] {
        poses.map { pose in (pose, camera.project(pose.apply(point))!, camera) }
    }

    private func normalizedCost(_ point: Vector3, _ observations: [(camFromWorld: Rigid3, normalized: Vector2)])
        -> Double {
        observations.reduce(0) { total, observation in
            let p = observation.camFromWorld.apply(point)
            let error = Vector2(p.x / p.z, p.y / p.z) - observation.normalized
            return total + (error * error).sum()
        }
    }

    func testExactObservationsGiveThePoint() throws {
        var generator = SplitMix64Generator(seed: 3)
        let poses = views(count: 4, spreadDegrees: 40)
        for _ in 0..<20 {
            let truth = Vector3(Double.random(in: -1...1, using: &generator),
                                Double.random(in: -1...1, using: &generator),
                                Double.random(in: -1...1, using: &generator))
            let point = try XCTUnwrap(Triangulation.point(observations: normalizedObservations(truth, poses)))
            XCTAssertLessThan((point - truth).length, 1e-9)
            let twoViews = try XCTUnwrap(Triangulation.point(observations: normalizedObservations(truth,
                                                                                                 [poses[0], poses[3]])))
            XCTAssertLessThan((twoViews - truth).length, 1e-9)
        }
    }

    func testRefineLowersTheReprojectionErrorOfTheLinearPoint() throws {
        var generator = SplitMix64Generator(seed: 4)
        let poses = views(count: 3, spreadDegrees: 30)
        let truth = Vector3(0.3, -0.2, 0.4)
        let noise = (0..<3).map { _ in
            Vector2(Double.random(in: -0.004...0.004, using: &generator),
                    Double.random(in: -0.004...0.004, using: &generator))
        }
        let observations = normalizedObservations(truth, poses, noise: noise)
        let linear = try XCTUnwrap(Triangulation.point(observations: observations))
        let refined = Triangulation.refine(linear, observations: observations)
        XCTAssertLessThan(normalizedCost(refined, observations), normalizedCost(linear, observations))
        XCTAssertLessThan((refined - truth).length, 0.1)

        // At the optimum the first-order conditions hold: another refinement barely moves it.
        let again = Triangulation.refine(refined, observations: observations)
        XCTAssertLessThan((again - refined).length, 1e-9)
    }

    func testDegenerateViewsGiveNoPoint() {
        let poses = views(count: 2, spreadDegrees: 30)
        let point = Vector3(0.1, 0.2, 0.3)
        XCTAssertNil(Triangulation.point(observations: []))
        XCTAssertNil(Triangulation.point(observations: Array(normalizedObservations(point, poses).prefix(1))))

        // Two rotations about one centre: the rays meet only at the centre, the depth is free.
        let center = Vector3(0, 0, -6)
        let turned = [looking(from: center, at: .zero), looking(from: center, at: Vector3(1, 0, 0))]
        XCTAssertNil(Triangulation.point(observations: normalizedObservations(point, turned)))

        // Parallel rays from two centres: the solution lies at infinity.
        let parallel = [Rigid3(translation: Vector3(0, 0, 0)), Rigid3(translation: Vector3(-1, 0, 0))]
        let same = Vector2(0.1, 0.05)
        XCTAssertNil(Triangulation.point(observations: parallel.map { ($0, same) }))
    }

    func testAngleIsTheWidestPairOfRays() {
        let point = Vector3(0, 0, 1)
        let centers = [Vector3(-1, 0, 0), Vector3(1, 0, 0), Vector3(0.2, 0, 0)]
        XCTAssertEqual(Triangulation.angle(of: point, centers: centers), .pi / 2, accuracy: 1e-12)
        XCTAssertEqual(Triangulation.angle(of: point, centers: [centers[0]]), 0)
        let tiny = Triangulation.angle(of: Vector3(0, 0, 1000), centers: [.zero, Vector3(1e-3, 0, 0)])
        XCTAssertEqual(tiny, 1e-6, accuracy: 1e-12)
    }

    func testAcceptsAWellTriangulatedPoint() {
        let poses = views(count: 3, spreadDegrees: 20)
        let point = Vector3(0.2, 0.1, -0.3)
        XCTAssertTrue(Triangulation.accepts(point, observations: pixelObservations(point, poses)))
    }

    func testRejectsNearParallelRays() {
        let poses = views(count: 2, spreadDegrees: 1)
        let point = Vector3(0.1, 0, 0)
        XCTAssertFalse(Triangulation.accepts(point, observations: pixelObservations(point, poses)))
        let lenient = TriangulationOptions(minimumAngleDegrees: 0.5)
        XCTAssertTrue(Triangulation.accepts(point, observations: pixelObservations(point, poses), options: lenient))
    }

    func testRejectsAPointBehindACamera() {
        let poses = views(count: 2, spreadDegrees: 30)
        let point = Vector3(0, 0.3, 0)
        var observations = pixelObservations(point, poses)
        // The second camera turned around: the point is behind it while the first still sees it.
        let turn = Rigid3(rotation: Matrix3(rotationAbout: Vector3(0, 1, 0), angle: .pi))
        observations[1].camFromWorld = turn * poses[1]
        XCTAssertLessThan(observations[1].camFromWorld.apply(point).z, 0)
        XCTAssertFalse(Triangulation.accepts(point, observations: observations))
    }

    func testRejectsALargeReprojectionError() {
        let poses = views(count: 3, spreadDegrees: 20)
        let point = Vector3(0.2, 0.1, -0.3)
        var observations = pixelObservations(point, poses)
        observations[2].pixel += Vector2(3, 0)
        XCTAssertTrue(Triangulation.accepts(point, observations: observations))
        observations[2].pixel += Vector2(2, 0)
        XCTAssertFalse(Triangulation.accepts(point, observations: observations))
    }

    func testOptionsValidation() {
        XCTAssertNoThrow(try TriangulationOptions().validate())
        XCTAssertThrowsError(try TriangulationOptions(minimumAngleDegrees: -1).validate())
        XCTAssertThrowsError(try TriangulationOptions(minimumAngleDegrees: 180).validate())
        XCTAssertThrowsError(try TriangulationOptions(maximumReprojectionErrorPixels: 0).validate())
    }
}
