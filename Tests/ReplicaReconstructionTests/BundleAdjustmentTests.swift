import Foundation
import ReplicaGeometry
import XCTest
@testable import ReplicaReconstruction

/// Bundle adjustment on a synthetic ring of cameras around a cloud of points, with known truth: recovery from
/// perturbed parameters, robustness to gross outliers, held parameters, the analytic Jacobian against finite
/// differences, and problems with nothing (or almost nothing) to adjust.
final class BundleAdjustmentTests: XCTestCase {
    private let trueCamera = SimpleRadialCamera(width: 1000, height: 800, focal: 900, radial: -0.08)

    private func randomVector(_ scale: Double, _ generator: inout SplitMix64Generator) -> Vector3 {
        Vector3(generator.unit() - 0.5, generator.unit() - 0.5, generator.unit() - 0.5) * (2 * scale)
    }

    /// The truth: `imageCount` cameras on a ring of radius 6 (scene units) around `pointCount` points in a cube
    /// of side 3, every point observed by every camera that sees it, with Gaussian pixel noise `noise` (px).
    private func ringScene(imageCount: Int, pointCount: Int, noise: Double, seed: UInt64) -> BundleAdjustmentProblem {
        var generator = SplitMix64Generator(seed: seed)
        let poses = (0..<imageCount).map { index -> Rigid3 in
            let angle = 2 * Double.pi * Double(index) / Double(imageCount)
            let center = Vector3(6 * cos(angle), 0.4 * sin(2 * angle), 6 * sin(angle))
            return SyntheticViews.lookingAtOrigin(from: center)
        }
        let points = (0..<pointCount).map { _ in randomVector(1.5, &generator) }
        var observations: [BundleObservation] = []
        for (image, pose) in poses.enumerated() {
            for (index, point) in points.enumerated() {
                guard let pixel = trueCamera.project(pose.apply(point)), trueCamera.contains(pixel) else { continue }
                let noisy = pixel + Vector2(SyntheticViews.gaussian(noise, &generator),
                                            SyntheticViews.gaussian(noise, &generator))
                observations.append(BundleObservation(image: Int32(image), point: Int32(index), pixel: noisy))
            }
        }
        return BundleAdjustmentProblem(cameras: [trueCamera], poses: poses, imageCameras: poses.map { _ in 0 },
                                       points: points, observations: observations)
    }

    /// The truth moved away: every pose but the first turned by `rotation` rad and shifted by up to
    /// `translation` (the second keeping its z), the points shifted by up to `translation`, the focal 2% long
    /// and the radial coefficient 0.
    private func perturbed(_ truth: BundleAdjustmentProblem, rotation: Double, translation: Double,
                           seed: UInt64) -> BundleAdjustmentProblem {
        var generator = SplitMix64Generator(seed: seed)
        var start = truth
        for image in 1..<start.poses.count {
            let turn = Matrix3(rotationVector: randomVector(1, &generator).normalized * rotation)
            var shift = randomVector(translation, &generator)
            if image == 1 { shift.z = 0 }
            start.poses[image] = Rigid3(rotation: turn * truth.poses[image].rotation,
                                        translation: truth.poses[image].translation + shift)
        }
        for index in start.points.indices { start.points[index] += randomVector(translation, &generator) }
        start.cameras[0].focal *= 1.02
        start.cameras[0].radial = 0
        start.constantPoses = [0]
        start.fixedTranslationAxis = (image: 1, axis: 2)
        return start
    }

    private func largestRotationError(_ a: BundleAdjustmentProblem, _ b: BundleAdjustmentProblem) -> Double {
        zip(a.poses, b.poses).map { $0.rotation.angle(to: $1.rotation) }.max() ?? 0
    }

    private func largestCenterError(_ a: BundleAdjustmentProblem, _ b: BundleAdjustmentProblem) -> Double {
        zip(a.poses, b.poses).map { ($0.inverse.translation - $1.inverse.translation).length }.max() ?? 0
    }

    private func meanPointError(_ a: BundleAdjustmentProblem, _ b: BundleAdjustmentProblem) -> Double {
        zip(a.points, b.points).reduce(0) { $0 + ($1.0 - $1.1).length } / Double(max(a.points.count, 1))
    }

    func testPerturbedSceneConvergesToTheTruth() {
        let noise = 0.5
        let truth = ringScene(imageCount: 8, pointCount: 150, noise: noise, seed: 1)
        let start = perturbed(truth, rotation: 0.01, translation: 0.05, seed: 2)
        var problem = start
        let summary = BundleAdjustment.solve(&problem, options: BundleAdjustmentOptions(loss: .trivial))

        XCTAssertTrue(summary.converged)
        XCTAssertLessThan(summary.finalCost, summary.initialCost)
        XCTAssertEqual(summary.initialRootMeanSquareError,
                       BundleAdjustment.rootMeanSquare(BundleAdjustment.reprojectionErrors(of: start)), accuracy: 1e-9)
        // A 2-D error of σ per axis has RMS σ·√2, a little less after fitting ~500 parameters to ~2400 values.
        XCTAssertGreaterThan(summary.initialRootMeanSquareError, 10 * noise)
        XCTAssertLessThan(summary.finalRootMeanSquareError, 1.05 * noise * 2.squareRoot())
        XCTAssertGreaterThan(summary.finalRootMeanSquareError, 0.8 * noise * 2.squareRoot())

        // The least-squares optimum is the one reached from the truth itself; it lies off the truth by what the
        // noise allows (here about 2 mrad and 2 cm of a 3-unit scene, measured), so that is checked loosely.
        var fromTruth = truth
        fromTruth.constantPoses = start.constantPoses
        fromTruth.fixedTranslationAxis = start.fixedTranslationAxis
        _ = BundleAdjustment.solve(&fromTruth, options: BundleAdjustmentOptions(loss: .trivial))
        XCTAssertLessThan(largestRotationError(problem, fromTruth), 1e-6)
        XCTAssertLessThan(largestCenterError(problem, fromTruth), 1e-5)
        XCTAssertLessThan(largestRotationError(problem, truth), 5e-3)
        XCTAssertLessThan(largestCenterError(problem, truth), 0.05)
        XCTAssertLessThan(meanPointError(problem, truth), 0.03)
        XCTAssertEqual(problem.cameras[0].focal, trueCamera.focal, accuracy: 0.005 * trueCamera.focal)
        XCTAssertEqual(problem.cameras[0].radial, trueCamera.radial, accuracy: 0.01)
    }

    func testCauchyLossRejectsGrossOutliersWhereLeastSquaresDoesNot() {
        let truth = ringScene(imageCount: 8, pointCount: 150, noise: 0.5, seed: 3)
        var start = perturbed(truth, rotation: 0.005, translation: 0.03, seed: 4)
        var generator = SplitMix64Generator(seed: 5)
        var isOutlier = [Bool](repeating: false, count: start.observations.count)
        for index in start.observations.indices where generator.unit() < 0.1 {
            start.observations[index].pixel = Vector2(1000 * generator.unit(), 800 * generator.unit())
            isOutlier[index] = true
        }

        var robust = start, bounded = start, plain = start
        let robustSummary = BundleAdjustment.solve(&robust, options: BundleAdjustmentOptions())
        _ = BundleAdjustment.solve(&bounded, options: BundleAdjustmentOptions(loss: .huber(scale: 1)))
        _ = BundleAdjustment.solve(&plain, options: BundleAdjustmentOptions(loss: .trivial))

        // Measured: the Cauchy and Huber losses land within ~2 mrad, ~1 cm and 0.1% of the truth, least squares
        // 0.27 rad, 1.6 units and 7% away.
        XCTAssertTrue(robustSummary.converged)
        XCTAssertLessThan(largestRotationError(robust, truth), 3e-3)
        XCTAssertLessThan(meanPointError(robust, truth), 0.03)
        XCTAssertEqual(robust.cameras[0].focal, trueCamera.focal, accuracy: 0.005 * trueCamera.focal)
        let inlierErrors = zip(BundleAdjustment.reprojectionErrors(of: robust), isOutlier).filter { !$1 }.map(\.0)
        XCTAssertLessThan(BundleAdjustment.rootMeanSquare(inlierErrors), 1)
        XCTAssertLessThan(largestRotationError(bounded, truth), 3e-3)
        XCTAssertLessThan(meanPointError(bounded, truth), 0.03)
        XCTAssertGreaterThan(meanPointError(plain, truth), 10 * meanPointError(robust, truth))
        XCTAssertGreaterThan(abs(plain.cameras[0].focal - trueCamera.focal), 0.05 * trueCamera.focal)
    }

    func testHeldParametersAndUnobservedOnesStayBitForBit() {
        let truth = ringScene(imageCount: 8, pointCount: 60, noise: 0.5, seed: 6)
        var problem = perturbed(truth, rotation: 0.01, translation: 0.05, seed: 7)
        problem.constantPoses = [0, 2]
        problem.constantPoints = [3, 7, 11]
        problem.fixedTranslationAxis = (image: 1, axis: 0)
        // An image and a point that nothing observes.
        problem.poses.append(SyntheticViews.lookingAtOrigin(from: Vector3(0, -6, 0.5)))
        problem.imageCameras.append(0)
        problem.points.append(Vector3(0.1, 0.2, 0.3))
        let start = problem

        let summary = BundleAdjustment.solve(&problem, options: BundleAdjustmentOptions(loss: .trivial))

        XCTAssertLessThan(summary.finalCost, summary.initialCost)
        // Six free images (one missing a translation axis) and the focal and radial of the one camera.
        XCTAssertEqual(summary.reducedSystemSize, 6 * 6 - 1 + 2)
        for image in [0, 2, 8] { XCTAssertEqual(problem.poses[image], start.poses[image]) }
        for point in [3, 7, 11, 60] { XCTAssertEqual(problem.points[point], start.points[point]) }
        XCTAssertEqual(problem.poses[1].translation.x, start.poses[1].translation.x)
        XCTAssertNotEqual(problem.poses[1].translation.y, start.poses[1].translation.y)
        XCTAssertNotEqual(problem.points[4], start.points[4])
    }

    func testIntrinsicDeviationsMatchTheSpreadOverNoiseDraws() throws {
        // The same ring under twelve draws of pixel noise, each adjusted from the truth with the principal point
        // free: the spread of where it lands is what the predicted deviation says it is.
        let options = BundleAdjustmentOptions(loss: .trivial, refinesPrincipalPoint: true)
        var landed: [Vector2] = [], predicted: [Vector2] = []
        for seed in UInt64(0)..<12 {
            var problem = ringScene(imageCount: 8, pointCount: 150, noise: 0.5, seed: 100 + seed)
            problem.constantPoses = [0]
            problem.fixedTranslationAxis = (image: 1, axis: 2)
            _ = BundleAdjustment.solve(&problem, options: options)
            let deviations = try XCTUnwrap(BundleAdjustment.intrinsicDeviations(of: problem, options: options))
            landed.append(problem.cameras[0].principal)
            predicted.append(Vector2(try XCTUnwrap(deviations[0][2]), try XCTUnwrap(deviations[0][3])))
            XCTAssertNotNil(deviations[0][0])
            XCTAssertNotNil(deviations[0][1])
        }
        for axis in 0..<2 {
            let values = landed.map { $0[axis] }
            let mean = values.reduce(0, +) / Double(values.count)
            let spread = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count - 1)).squareRoot()
            let expected = predicted.reduce(0) { $0 + $1[axis] } / Double(predicted.count)
            // Twelve draws estimate a spread to about ±20%.
            XCTAssertGreaterThan(spread, 0.5 * expected, "axis \(axis)")
            XCTAssertLessThan(spread, 1.7 * expected, "axis \(axis)")
            XCTAssertEqual(mean, trueCamera.principal[axis], accuracy: 3 * expected)
        }

        // A held principal point has no deviation and does not move; the focal and radial still do.
        var held = ringScene(imageCount: 8, pointCount: 150, noise: 0.5, seed: 99)
        held.constantPoses = [0]
        held.fixedTranslationAxis = (image: 1, axis: 2)
        held.constantPrincipalPoints = [0]
        held.cameras[0].focal *= 1.01
        let start = held
        let deviations = try XCTUnwrap(BundleAdjustment.intrinsicDeviations(of: held, options: options))
        XCTAssertNil(deviations[0][2])
        XCTAssertNil(deviations[0][3])
        let summary = BundleAdjustment.solve(&held, options: options)
        XCTAssertEqual(summary.reducedSystemSize, 7 * 6 - 1 + 2)
        XCTAssertEqual(held.cameras[0].principal, start.cameras[0].principal)
        XCTAssertNotEqual(held.cameras[0].focal, start.cameras[0].focal)
    }

    func testAnalyticJacobianMatchesFiniteDifferences() {
        var generator = SplitMix64Generator(seed: 8)
        for _ in 0..<5 {
            let principal = Vector2(300 + 40 * generator.unit(), 230 + 20 * generator.unit())
            let camera = SimpleRadialCamera(width: 640, height: 480, focal: 500 + 300 * generator.unit(),
                                            principal: principal, radial: 0.2 * (generator.unit() - 0.5))
            let pose = Rigid3(rotation: Matrix3(rotationVector: randomVector(1, &generator)),
                              translation: randomVector(1, &generator))
            let point = pose.inverse.apply(Vector3(0, 0, 4) + randomVector(1, &generator))
            let pixel = Vector2(320, 240)
            let analytic = jacobian(camera, pose, point, pixel)
            let numeric = finiteDifferenceJacobian(camera, pose, point, pixel)
            for index in analytic.indices {
                XCTAssertEqual(analytic[index], numeric[index], accuracy: 1e-5 * max(1, abs(analytic[index])),
                               "row \(index / 13), column \(index % 13)")
            }
        }
    }

    private func jacobian(_ camera: SimpleRadialCamera, _ pose: Rigid3, _ point: Vector3,
                          _ pixel: Vector2) -> [Double] {
        var values = [Double](repeating: .nan, count: 26)
        let residual = values.withUnsafeMutableBufferPointer {
            BundleAdjustment.linearize(camera: camera, pose: pose, point: point, pixel: pixel, into: $0.baseAddress!)
        }
        XCTAssertNotNil(residual)
        return values
    }

    /// Central differences of the residual along each of the 13 parameters, in `linearize`'s column order.
    private func finiteDifferenceJacobian(_ camera: SimpleRadialCamera, _ pose: Rigid3, _ point: Vector3,
                                          _ pixel: Vector2) -> [Double] {
        var values = [Double](repeating: 0, count: 26)
        for column in 0..<13 {
            let h = column == 6 || column == 8 || column == 9 ? 1e-3 : 1e-6
            let forward = residual(moving: column, by: h, camera, pose, point, pixel)
            let backward = residual(moving: column, by: -h, camera, pose, point, pixel)
            let slope = (forward - backward) / (2 * h)
            values[column] = slope.x
            values[13 + column] = slope.y
        }
        return values
    }

    private func residual(moving column: Int, by h: Double, _ camera: SimpleRadialCamera, _ pose: Rigid3,
                          _ point: Vector3, _ pixel: Vector2) -> Vector2 {
        var camera = camera, pose = pose, point = point
        var unit = Vector3.zero
        unit[column % 3] = h
        switch column {
        case 0..<3: pose.rotation = Matrix3(rotationVector: unit) * pose.rotation
        case 3..<6: pose.translation += unit
        case 6: camera.focal += h
        case 7: camera.radial += h
        case 8: camera.principal.x += h
        case 9: camera.principal.y += h
        default: point += Vector3(column == 10 ? h : 0, column == 11 ? h : 0, column == 12 ? h : 0)
        }
        return camera.project(pose.apply(point))! - pixel
    }

    func testEmptyAndDegenerateProblemsDoNotCrash() {
        var empty = BundleAdjustmentProblem(cameras: [], poses: [], imageCameras: [], points: [], observations: [])
        let emptySummary = BundleAdjustment.solve(&empty)
        XCTAssertTrue(emptySummary.converged)
        XCTAssertEqual(emptySummary.finalCost, 0)
        XCTAssertEqual(emptySummary.reducedSystemSize, 0)
        XCTAssertEqual(BundleAdjustment.reprojectionErrors(of: empty), [])

        // One image sees one point (the system is singular but damped), and a second point lies behind it.
        let pose = Rigid3(translation: Vector3(0, 0, 5))
        var tiny = BundleAdjustmentProblem(
            cameras: [trueCamera], poses: [pose], imageCameras: [0], points: [Vector3(0.1, 0, 0), Vector3(0, 0, -9)],
            observations: [BundleObservation(image: 0, point: 0, pixel: Vector2(530, 400)),
                           BundleObservation(image: 0, point: 1, pixel: Vector2(500, 400))])
        let summary = BundleAdjustment.solve(&tiny)
        XCTAssertLessThanOrEqual(summary.finalCost, summary.initialCost)
        XCTAssertTrue(tiny.poses[0].translation.x.isFinite && tiny.points[0].x.isFinite)
        XCTAssertEqual(tiny.points[1], Vector3(0, 0, -9))
        XCTAssertEqual(BundleAdjustment.reprojectionErrors(of: tiny)[1], .infinity)

        // Everything held: nothing moves and nothing is solved.
        var held = ringScene(imageCount: 3, pointCount: 10, noise: 0.5, seed: 9)
        held.constantPoses = [0, 1, 2]
        held.constantPoints = Set(0..<10)
        let before = held
        let heldSummary = BundleAdjustment.solve(&held, options: BundleAdjustmentOptions(refinesFocal: false,
                                                                                          refinesRadial: false))
        XCTAssertTrue(heldSummary.converged)
        XCTAssertEqual(held.points, before.points)
        XCTAssertEqual(held.poses, before.poses)
    }

    func testOptionsRejectNonsense() throws {
        try BundleAdjustmentOptions().validate()
        XCTAssertThrowsError(try BundleAdjustmentOptions(loss: .cauchy(scale: 0)).validate())
        XCTAssertThrowsError(try BundleAdjustmentOptions(loss: .huber(scale: .nan)).validate())
        XCTAssertThrowsError(try BundleAdjustmentOptions(maximumIterations: -1).validate())
        var options = BundleAdjustmentOptions()
        options.functionTolerance = -1
        XCTAssertThrowsError(try options.validate())
    }
}
