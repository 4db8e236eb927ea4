import Foundation
import ReplicaGeometry
import XCTest
@testable import ReplicaReconstruction

/// Absolute pose on synthetic scenes with known truth: P3P on exact triples, the robust estimate on noisy
/// correspondences with outliers (with and without radial distortion), the refinement, and degenerate input.
final class AbsolutePoseTests: XCTestCase {
    /// Correspondences of one image: noisy pixels (outliers among them), world points, and which are inliers.
    private struct Scene {
        var camFromWorld: Rigid3
        var camera: SimpleRadialCamera
        var pixels: [Vector2] = []
        var points: [Vector3] = []
        var isInlier: [Bool] = []

        /// The distance from the camera centre to the centroid of the points, the scale of the centre error.
        var sceneDistance: Double {
            let centroid = points.reduce(Vector3.zero, +) / Double(points.count)
            return (centroid - camFromWorld.inverse.translation).length
        }
    }

    /// A random rotation (any axis, up to 180°) and a camera centre within 10 units of the origin.
    private func randomPose(_ generator: inout SplitMix64Generator) -> Rigid3 {
        let axis = Vector3(Double.random(in: -1...1, using: &generator), Double.random(in: -1...1, using: &generator),
                           Double.random(in: -1...1, using: &generator))
        let rotation = Matrix3(rotationAbout: axis, angle: Double.random(in: 0...Double.pi, using: &generator))
        let center = Vector3(Double.random(in: -10...10, using: &generator),
                             Double.random(in: -10...10, using: &generator),
                             Double.random(in: -10...10, using: &generator))
        return Rigid3(rotation: rotation, translation: -(rotation * center))
    }

    /// `count` points in view at depths 3–8, pixel noise `noise` px (standard deviation), and every index with
    /// i % 10 < 10·outlierFraction given a random pixel at least 40 px from its true projection.
    private func makeScene(seed: UInt64, count: Int = 200, outlierFraction: Double = 0.4, noise: Double = 0.5,
                           radial: Double = 0) -> Scene {
        var generator = SplitMix64Generator(seed: seed)
        let camera = SimpleRadialCamera(width: 640, height: 480, focal: 500, radial: radial)
        var scene = Scene(camFromWorld: randomPose(&generator), camera: camera)
        let worldFromCam = scene.camFromWorld.inverse
        for index in 0..<count {
            let exact = randomPixel(&generator, margin: 10)
            let normalized = camera.normalized(exact)
            let depth = Double.random(in: 3...8, using: &generator)
            scene.points.append(worldFromCam.apply(Vector3(normalized.x, normalized.y, 1) * depth))
            let isOutlier = Double(index % 10) < 10 * outlierFraction
            scene.isInlier.append(!isOutlier)
            var outlier = randomPixel(&generator, margin: 0)
            while ((outlier - exact) * (outlier - exact)).sum() < 40 * 40 {
                outlier = randomPixel(&generator, margin: 0)
            }
            scene.pixels.append(isOutlier ? outlier : exact + gaussian(&generator, noise))
        }
        return scene
    }

    private func randomPixel(_ generator: inout SplitMix64Generator, margin: Double) -> Vector2 {
        Vector2(Double.random(in: margin...(640 - margin), using: &generator),
                Double.random(in: margin...(480 - margin), using: &generator))
    }

    /// Two independent normal deviates of standard deviation `sigma`, by Box–Muller.
    private func gaussian(_ generator: inout SplitMix64Generator, _ sigma: Double) -> Vector2 {
        let u = Double.random(in: Double.ulpOfOne..<1, using: &generator)
        let v = Double.random(in: 0..<1, using: &generator)
        let radius = sigma * (-2 * log(u)).squareRoot()
        return Vector2(radius * cos(2 * .pi * v), radius * sin(2 * .pi * v))
    }

    /// The rotation error in degrees and the centre error as a fraction of `distance`.
    private func errors(_ estimate: Rigid3, _ truth: Rigid3, distance: Double) -> (degrees: Double, center: Double) {
        let degrees = estimate.rotation.angle(to: truth.rotation) * 180 / .pi
        let center = (estimate.inverse.translation - truth.inverse.translation).length / distance
        return (degrees, center)
    }

    private func rmsError(_ pose: Rigid3, _ scene: Scene, indices: [Int]) -> Double {
        let residuals = AbsolutePoseProblem(pixels: scene.pixels, points: scene.points, camera: scene.camera)
            .squaredResiduals(of: pose)
        return (indices.reduce(0) { $0 + residuals[$1] } / Double(indices.count)).squareRoot()
    }

    // MARK: P3P

    func testP3POnExactTriplesRecoversThePose() {
        for seed in UInt64(1)...60 {
            let scene = makeScene(seed: seed, count: 3, outlierFraction: 0, noise: 0)
            let bearings = scene.pixels.map(scene.camera.bearing)
            let solutions = AbsolutePose.p3p(bearings: bearings, points: scene.points)
            XCTAssertFalse(solutions.isEmpty, "seed \(seed)")
            XCTAssertLessThanOrEqual(solutions.count, 4, "seed \(seed)")
            let best = solutions.map { errors($0, scene.camFromWorld, distance: scene.sceneDistance) }
                .min { $0.degrees + $0.center < $1.degrees + $1.center }
            XCTAssertLessThan(best?.degrees ?? .infinity, 1e-9 * 180 / .pi, "seed \(seed)")
            XCTAssertLessThan(best?.center ?? .infinity, 1e-9, "seed \(seed)")
        }
    }

    func testEveryP3PSolutionPutsThePointsOnTheirBearingsInFront() {
        for seed in UInt64(100)...130 {
            let scene = makeScene(seed: seed, count: 3, outlierFraction: 0, noise: 0)
            let bearings = scene.pixels.map(scene.camera.bearing)
            for pose in AbsolutePose.p3p(bearings: bearings, points: scene.points) {
                XCTAssertEqual(pose.rotation.determinant, 1, accuracy: 1e-12)
                for (bearing, point) in zip(bearings, scene.points) {
                    let pointInCamera = pose.apply(point)
                    XCTAssertGreaterThan(pointInCamera.dot(bearing), 0, "seed \(seed)")
                    XCTAssertLessThan(pointInCamera.normalized.cross(bearing).length, 1e-8, "seed \(seed)")
                }
            }
        }
    }

    func testP3PRejectsCollinearPointsAndWrongCounts() {
        let scene = makeScene(seed: 7, count: 3, outlierFraction: 0, noise: 0)
        let bearings = scene.pixels.map(scene.camera.bearing)
        let line = [Vector3(0, 0, 5), Vector3(1, 1, 6), Vector3(2, 2, 7)]
        XCTAssertEqual(AbsolutePose.p3p(bearings: bearings, points: line), [])
        XCTAssertEqual(AbsolutePose.p3p(bearings: Array(bearings.prefix(2)), points: Array(scene.points.prefix(2))),
                       [])
        let sameRay = [bearings[0], bearings[0], bearings[2]]
        XCTAssertEqual(AbsolutePose.p3p(bearings: sameRay, points: scene.points), [])
    }

    // MARK: Robust estimate

    func testRobustEstimateFindsThePoseAndFlagsTheOutliers() throws {
        for seed in UInt64(1)...3 {
            let scene = makeScene(seed: seed)
            let result = try XCTUnwrap(AbsolutePose.estimate(pixels: scene.pixels, points: scene.points,
                                                             camera: scene.camera), "seed \(seed)")
            let error = errors(result.camFromWorld, scene.camFromWorld, distance: scene.sceneDistance)
            XCTAssertLessThan(error.degrees, 0.2, "seed \(seed)")
            XCTAssertLessThan(error.center, 0.01, "seed \(seed)")
            XCTAssertEqual(result.inlierMask, scene.isInlier, "seed \(seed)")
            XCTAssertEqual(result.inlierCount, scene.isInlier.filter { $0 }.count, "seed \(seed)")
        }
    }

    func testRobustEstimateUndistortsThroughTheCamera() throws {
        let scene = makeScene(seed: 11, radial: -0.15)
        let result = try XCTUnwrap(AbsolutePose.estimate(pixels: scene.pixels, points: scene.points,
                                                         camera: scene.camera))
        let error = errors(result.camFromWorld, scene.camFromWorld, distance: scene.sceneDistance)
        XCTAssertLessThan(error.degrees, 0.2)
        XCTAssertLessThan(error.center, 0.01)
        XCTAssertEqual(result.inlierMask, scene.isInlier)

        // The same pixels read through a distortion-free lens do not fit one pose to the inlier noise.
        var pinhole = scene.camera
        pinhole.radial = 0
        let inliers = scene.isInlier.indices.filter { scene.isInlier[$0] }
        let ignoring = AbsolutePose.refine(result.camFromWorld, pixels: inliers.map { scene.pixels[$0] },
                                           points: inliers.map { scene.points[$0] }, camera: pinhole)
        var undistortedScene = scene
        undistortedScene.camera = pinhole
        XCTAssertGreaterThan(rmsError(ignoring, undistortedScene, indices: inliers), 3)
    }

    func testTooFewOrDisagreeingCorrespondencesGiveNoPose() {
        let few = makeScene(seed: 5, count: 20, outlierFraction: 0)
        XCTAssertNil(AbsolutePose.estimate(pixels: few.pixels, points: few.points, camera: few.camera))
        XCTAssertNil(AbsolutePose.estimate(pixels: [], points: [], camera: few.camera))

        // Random pixels never agree with 30 points; a short search keeps the test fast (it never stops early).
        let noise = makeScene(seed: 6, count: 100, outlierFraction: 1)
        let short = AbsolutePoseOptions(robust: RobustOptions(maximumErrorPixels: 12, maximumIterations: 300))
        XCTAssertNil(AbsolutePose.estimate(pixels: noise.pixels, points: noise.points, camera: noise.camera,
                                           options: short))

        // Points on one line leave the rotation about it free: no sample gives a pose.
        let line = (0..<40).map { Vector3(Double($0) * 0.1, 0, 5) }
        let pixels = line.map { few.camera.project($0)! }
        XCTAssertNil(AbsolutePose.estimate(pixels: pixels, points: line, camera: few.camera))
    }

    // MARK: Refinement

    func testRefineMovesAPerturbedPoseBackToTheTruth() {
        let scene = makeScene(seed: 21, outlierFraction: 0)
        let nudge = Rigid3(rotation: Matrix3(rotationAbout: Vector3(1, -2, 0.5), angle: 1.0 * .pi / 180),
                           translation: Vector3(0.1, -0.05, 0.2))
        let start = nudge * scene.camFromWorld
        let refined = AbsolutePose.refine(start, pixels: scene.pixels, points: scene.points, camera: scene.camera)
        let before = errors(start, scene.camFromWorld, distance: scene.sceneDistance)
        let after = errors(refined, scene.camFromWorld, distance: scene.sceneDistance)
        XCTAssertLessThan(after.degrees, 0.02)
        XCTAssertLessThan(after.center, 0.002)
        XCTAssertLessThan(after.degrees, before.degrees / 20)
        let all = Array(scene.points.indices)
        XCTAssertLessThan(rmsError(refined, scene, indices: all), 0.8)
        XCTAssertLessThan(rmsError(refined, scene, indices: all), rmsError(start, scene, indices: all))
    }

    func testRefineConvergesInAFewStepsThroughADistortedLens() {
        // Levenberg–Marquardt on an exact Jacobian converges quadratically; a Jacobian that misses the
        // distortion's share takes many more steps from 2° away.
        let scene = makeScene(seed: 24, outlierFraction: 0, noise: 0, radial: -0.15)
        let start = Rigid3(rotation: Matrix3(rotationAbout: Vector3(0.3, 1, -0.2), angle: 2 * .pi / 180),
                           translation: Vector3(-0.1, 0.2, 0.1)) * scene.camFromWorld
        let refined = AbsolutePose.refine(start, pixels: scene.pixels, points: scene.points, camera: scene.camera,
                                          iterations: 6)
        let error = errors(refined, scene.camFromWorld, distance: scene.sceneDistance)
        XCTAssertLessThan(error.degrees, 1e-6)
        XCTAssertLessThan(error.center, 1e-8)
    }

    func testCauchyRefinementResistsOutliersThatSquaresFollow() {
        let scene = makeScene(seed: 22, outlierFraction: 0.2)
        let start = Rigid3(rotation: Matrix3(rotationAbout: Vector3(0, 1, 0), angle: 0.5 * .pi / 180),
                           translation: Vector3(0.05, 0, 0)) * scene.camFromWorld
        let robust = AbsolutePose.refine(start, pixels: scene.pixels, points: scene.points, camera: scene.camera,
                                         iterations: 50, lossScale: 1)
        let squares = AbsolutePose.refine(start, pixels: scene.pixels, points: scene.points, camera: scene.camera,
                                          iterations: 50)
        let robustError = errors(robust, scene.camFromWorld, distance: scene.sceneDistance)
        let squaresError = errors(squares, scene.camFromWorld, distance: scene.sceneDistance)
        XCTAssertLessThan(robustError.degrees, 0.05)
        XCTAssertGreaterThan(squaresError.degrees, 2 * robustError.degrees)
    }

    func testRefineKeepsThePoseWithTooFewCorrespondences() {
        let scene = makeScene(seed: 23, count: 2, outlierFraction: 0)
        let start = Rigid3(translation: Vector3(1, 2, 3))
        XCTAssertEqual(AbsolutePose.refine(start, pixels: scene.pixels, points: scene.points, camera: scene.camera),
                       start)
    }

    // MARK: Problem and options

    func testPointBehindTheCameraHasAHugeFiniteResidual() {
        let camera = SimpleRadialCamera(width: 640, height: 480, focal: 500)
        let problem = AbsolutePoseProblem(pixels: [Vector2(320, 240), Vector2(320, 240)],
                                          points: [Vector3(0, 0, 4), Vector3(0, 0, -4)], camera: camera)
        let residuals = problem.squaredResiduals(of: .identity)
        XCTAssertEqual(residuals[0], 0, accuracy: 1e-18)
        XCTAssertEqual(residuals[1], .greatestFiniteMagnitude)
    }

    func testOptionsValidation() {
        XCTAssertNoThrow(try AbsolutePoseOptions().validate())
        XCTAssertEqual(AbsolutePoseOptions().robust.maximumErrorPixels, 12)
        XCTAssertThrowsError(try AbsolutePoseOptions(minimumInliers: 3).validate())
        XCTAssertThrowsError(try AbsolutePoseOptions(minimumInlierRatio: 1.5).validate())
        XCTAssertThrowsError(try AbsolutePoseOptions(lossScalePixels: 0).validate())
        XCTAssertThrowsError(try AbsolutePoseOptions(refinementIterations: -1).validate())
        XCTAssertThrowsError(try AbsolutePoseOptions(robust: RobustOptions(maximumErrorPixels: -1)).validate())
    }
}
