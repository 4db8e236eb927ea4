import Foundation
import ReplicaEvaluation
import ReplicaGeometry
import XCTest

/// Camera errors after a robust similarity alignment, the SVD under it, and the sparse model's own errors.
final class CameraMetricsTests: XCTestCase {
    func testTheTruthItselfHasNoError() throws {
        let truth = SceneTruth(images: MetricsScenes.ring(count: 20))
        let evaluation = try CameraMetrics.evaluate(estimated: truth.images, truth: truth)
        XCTAssertEqual(evaluation.registeredFraction, 1)
        XCTAssertEqual(evaluation.rotationErrorDegrees?.max ?? .nan, 0, accuracy: 1e-9)
        XCTAssertEqual(evaluation.centerErrorFraction?.max ?? .nan, 0, accuracy: 1e-9)
        XCTAssertEqual(evaluation.withinOneDegreeFraction, 1)
        XCTAssertEqual(evaluation.withinOnePercentFraction, 1)
        XCTAssertEqual(evaluation.alignmentInliers, 20)
        XCTAssertEqual(evaluation.trueFromEstimated?.scale ?? .nan, 1, accuracy: 1e-12)
    }

    func testRotatingEveryCameraByTwoDegreesShowsTwoDegrees() throws {
        let truth = SceneTruth(images: MetricsScenes.ring(count: 20))
        let axis = Vector3(0.3, -1, 0.5)
        // Each camera turns about its own centre, so the centres (and their alignment) stay as they are; one
        // way and the other in turn, so that no rotation of the whole model explains the orientations.
        let estimated = truth.images.enumerated().map { index, image in
            let turn = Matrix3(rotationAbout: axis, angle: (index.isMultiple(of: 2) ? 2 : -2) * .pi / 180)
            return MetricsScenes.posed(image.name, rotation: turn * image.camFromWorld.rotation,
                                       center: image.centerInWorld)
        }
        let evaluation = try CameraMetrics.evaluate(estimated: estimated, truth: truth)
        // The orientations' best common rotation is the identity but for what the ring's curvature leaves.
        XCTAssertEqual(evaluation.rotationErrorDegrees?.median ?? .nan, 2, accuracy: 1e-3)
        XCTAssertEqual(evaluation.rotationErrorDegrees?.max ?? .nan, 2, accuracy: 1e-3)
        XCTAssertEqual(evaluation.centerErrorFraction?.max ?? .nan, 0, accuracy: 1e-9)
        XCTAssertEqual(evaluation.withinOneDegreeFraction, 0)
    }

    func testAGlobalSimilarityIsRemovedByTheAlignment() throws {
        let truth = SceneTruth(images: MetricsScenes.ring(count: 20))
        let estimatedFromTrue = Similarity3(scale: 3, rotation: Matrix3(rotationAbout: Vector3(1, 2, -1), angle: 1.1),
                                            translation: Vector3(4, -7, 2))
        let estimated = truth.images.map { MetricsScenes.moved($0, by: estimatedFromTrue) }
        let evaluation = try CameraMetrics.evaluate(estimated: estimated, truth: truth)
        XCTAssertEqual(evaluation.rotationErrorDegrees?.max ?? .nan, 0, accuracy: 1e-9)
        XCTAssertEqual(evaluation.centerErrorFraction?.max ?? .nan, 0, accuracy: 1e-9)
        XCTAssertEqual(evaluation.trueFromEstimated?.scale ?? .nan, 1.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(evaluation.withinOnePercentFraction, 1)
    }

    func testTwoCamerasThrownFarDoNotSpoilTheAlignment() throws {
        let truth = SceneTruth(images: MetricsScenes.ring(count: 20))
        let estimatedFromTrue = Similarity3(scale: 0.5, rotation: Matrix3(rotationAbout: Vector3(0, 1, 1), angle: -0.4),
                                            translation: Vector3(1, 1, 1))
        var estimated = truth.images.map { MetricsScenes.moved($0, by: estimatedFromTrue) }
        for index in [3, 11] {
            let image = estimated[index]
            estimated[index] = MetricsScenes.posed(image.name, rotation: image.camFromWorld.rotation,
                                                   center: image.centerInWorld + Vector3(30, -20, 25))
        }
        let evaluation = try CameraMetrics.evaluate(estimated: estimated, truth: truth)
        XCTAssertEqual(evaluation.alignmentInliers, 18)
        XCTAssertEqual(evaluation.images.filter { !$0.isAlignmentInlier }.map(\.name), ["cam03.png", "cam11.png"])
        XCTAssertEqual(evaluation.centerErrorFraction?.median ?? .nan, 0, accuracy: 1e-9)
        XCTAssertGreaterThan(evaluation.centerErrorFraction?.max ?? 0, 1, "the outliers show in the max")
        XCTAssertEqual(evaluation.rotationErrorDegrees?.max ?? .nan, 0, accuracy: 1e-6)
        XCTAssertEqual(evaluation.withinOnePercentFraction, 0.9, accuracy: 1e-12)

        // A plain least-squares fit over all cameras is pulled away: what the robust step is for.
        let plain = SimilarityAlignment.leastSquares(from: estimated.map(\.centerInWorld),
                                                     to: truth.images.map(\.centerInWorld))!
        let plainError = zip(estimated, truth.images).map { (plain.apply($0.centerInWorld) - $1.centerInWorld).length }
        XCTAssertGreaterThan(plainError.sorted()[10] / evaluation.pathExtent, 0.05)
    }

    func testMissingImagesLowerTheRegisteredFractionOnly() throws {
        let truth = SceneTruth(images: MetricsScenes.ring(count: 20))
        var estimated = truth.images.enumerated().filter { $0.offset % 4 != 1 }.map(\.element)
        estimated.append(MetricsScenes.posed("stranger.png", rotation: .identity, center: Vector3(9, 9, 9)))
        let evaluation = try CameraMetrics.evaluate(estimated: estimated, truth: truth)
        XCTAssertEqual(evaluation.registeredCount, 15)
        XCTAssertEqual(evaluation.registeredFraction, 0.75, accuracy: 1e-12)
        XCTAssertEqual(evaluation.unregistered, ["cam01.png", "cam05.png", "cam09.png", "cam13.png", "cam17.png"])
        XCTAssertEqual(evaluation.unknown, ["stranger.png"])
        XCTAssertEqual(evaluation.images.count, 15)
        XCTAssertEqual(evaluation.withinOneDegreeFraction, 1, "fractions are over the registered images")
        XCTAssertEqual(evaluation.centerErrorFraction?.max ?? .nan, 0, accuracy: 1e-9)
    }

    func testTwoCamerasCannotBeAligned() throws {
        let truth = SceneTruth(images: MetricsScenes.ring(count: 20))
        let evaluation = try CameraMetrics.evaluate(estimated: Array(truth.images.prefix(2)), truth: truth)
        XCTAssertNil(evaluation.trueFromEstimated)
        XCTAssertNil(evaluation.rotationErrorDegrees)
        XCTAssertEqual(evaluation.registeredFraction, 0.1, accuracy: 1e-12)
        XCTAssertEqual(evaluation.withinOneDegreeFraction, 0)
        XCTAssertThrowsError(try CameraMetrics.evaluate(estimated: truth.images, truth: truth,
                                                        options: RobustAlignmentOptions(inlierThreshold: -1)))
    }

    func testThePathExtentIsTheDiagonalOfTheTrueCentresBox() {
        let images = [Vector3(0, 0, 0), Vector3(3, 0, 0), Vector3(0, 4, 12)].enumerated().map {
            MetricsScenes.posed("c\($0.offset)", rotation: .identity, center: $0.element)
        }
        XCTAssertEqual(CameraMetrics.pathExtent(SceneTruth(images: images)), 13, accuracy: 1e-12)
    }

    func testUmeyamaRecoversASimilarityAndNeverAReflection() throws {
        var random = MetricsTestRandom(seed: 7)
        let source = (0..<30).map { _ in random.vector(in: -2...2) }
        let targetFromSource = Similarity3(scale: 2.5, rotation: Matrix3(rotationAbout: Vector3(1, -1, 3), angle: 2.9),
                                           translation: Vector3(-1, 0.5, 8))
        let target = source.map(targetFromSource.apply)
        let fitted = try XCTUnwrap(SimilarityAlignment.leastSquares(from: source, to: target))
        XCTAssertEqual(fitted.scale, 2.5, accuracy: 1e-12)
        XCTAssertEqual(fitted.rotation.angle(to: targetFromSource.rotation), 0, accuracy: 1e-7)
        XCTAssertEqual((fitted.translation - targetFromSource.translation).length, 0, accuracy: 1e-11)

        // A mirror image can only be approximated; the best rotation still has determinant +1.
        let mirrored = source.map { Vector3(-$0.x, $0.y, $0.z) }
        let nearest = try XCTUnwrap(SimilarityAlignment.leastSquares(from: source, to: mirrored))
        XCTAssertEqual(nearest.rotation.determinant, 1, accuracy: 1e-12)
        XCTAssertLessThan(nearest.scale, 1)

        let onALine = (0..<5).map { Vector3(Double($0), 2 * Double($0), 0) }
        XCTAssertNil(SimilarityAlignment.leastSquares(from: onALine, to: onALine))
    }

    func testTheSVDReconstructsRandomMatrices() {
        var random = MetricsTestRandom(seed: 3)
        for _ in 0..<200 {
            let matrix = Matrix3((0..<9).map { _ in random.unit() * 20 - 10 })
            assertValidSVD(of: matrix)
        }
    }

    func testTheSVDHandlesRankDeficientAndReflectedMatrices() {
        let u = Vector3(1, 2, 2) / 3, v = Vector3(0, 0.6, 0.8), w = Vector3(2, -2, 1) / 3
        let rankOne = outer(u, v) * 4
        let rankTwo = rankOne + outer(w, Vector3(1, 0, 0)) * 0.5
        let reflection = Matrix3([1, 0, 0, 0, 1, 0, 0, 0, -1]) * Matrix3(rotationAbout: Vector3(1, 1, 0), angle: 0.8)
        for matrix in [rankOne, rankTwo, Matrix3([0, 0, 0, 0, 0, 0, 0, 0, 0]), reflection, Matrix3.identity * -2,
                       Matrix3([1, 1, 1, 1, 1, 1, 1, 1, 1])] {
            assertValidSVD(of: matrix)
        }
        XCTAssertEqual(SVD3(rankOne).singularValues.x, 4, accuracy: 1e-12)
        XCTAssertEqual(SVD3(rankOne).singularValues.y, 0, accuracy: 1e-12)
        XCTAssertEqual(SVD3(rankTwo).singularValues.y, 0.5, accuracy: 1e-12)
        XCTAssertEqual(SVD3(rankTwo).singularValues.z, 0, accuracy: 1e-12)
        let reflected = SVD3(reflection)
        XCTAssertEqual(reflected.u.determinant * reflected.v.determinant, -1, accuracy: 1e-12)
        XCTAssertEqual((reflected.singularValues - Vector3(1, 1, 1)).length, 0, accuracy: 1e-12)
    }

    func testTheStructureIsMeasuredAgainstItsOwnCameras() {
        let images = MetricsScenes.ring(count: 6)
        let offset = Vector2(3, 4)
        let points = [Vector3(0, 0, 0), Vector3(0.2, -0.1, 0.3), Vector3(-0.3, 0.2, 0.1)].map { position in
            SparsePoint(position: position, track: (0..<4).map { index in
                SparsePoint.Observation(imageIndex: index, pixel: images[index].project(position)! + offset)
            })
        }
        var model = SparseModel(images: images, points: points)
        model.points[0].track.append(.init(imageIndex: 99, pixel: .zero))
        let evaluation = StructureMetrics.evaluate(model)
        XCTAssertEqual(evaluation.points, 3)
        XCTAssertEqual(evaluation.observations, 13)
        XCTAssertEqual(evaluation.meanTrackLength, 13.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(evaluation.unprojectedObservations, 1)
        XCTAssertEqual(evaluation.meanReprojectionErrorPixels ?? .nan, 5, accuracy: 1e-9)
        XCTAssertEqual(evaluation.medianReprojectionErrorPixels ?? .nan, 5, accuracy: 1e-9)
        XCTAssertNil(StructureMetrics.evaluate(SparseModel(images: images, points: [])).meanReprojectionErrorPixels)
    }

    func testTheCameraReportHasAlignedColumnsAndRoundTripsAsJSON() throws {
        let truth = SceneTruth(images: MetricsScenes.ring(count: 8))
        let evaluation = try CameraMetrics.evaluate(estimated: Array(truth.images.dropLast()), truth: truth)
        let table = EvaluationReport.table(evaluation)
        XCTAssertTrue(table.contains("rotation median (°)"))
        XCTAssertTrue(table.contains("7/8"))
        let imageLines = table.split(separator: "\n").drop { !$0.hasPrefix("image") }
        XCTAssertEqual(imageLines.count, 2 + 7)
        XCTAssertEqual(Set(imageLines.map(\.count)).count, 1, "every row as wide as the header")

        let json = try EvaluationReport.json(EvaluationSummary(cameras: evaluation))
        let decoded = try JSONDecoder().decode(EvaluationSummary.self, from: Data(json.utf8))
        XCTAssertEqual(decoded.cameras, evaluation)
        XCTAssertTrue(json.contains("\"registeredFraction\""))
    }

    private func assertValidSVD(of matrix: Matrix3, file: StaticString = #filePath, line: UInt = #line) {
        let svd = SVD3(matrix)
        let difference = zip(svd.reconstructed.values, matrix.values).map { abs($0 - $1) }.max()!
        XCTAssertLessThan(difference, 1e-12 * max(1, matrix.values.map(abs).max()!), file: file, line: line)
        for orthogonal in [svd.u, svd.v] {
            let gram = (orthogonal.transposed * orthogonal).values
            let identity = Matrix3.identity.values
            XCTAssertLessThan(zip(gram, identity).map { abs($0 - $1) }.max()!, 1e-12, file: file, line: line)
        }
        let sigma = svd.singularValues
        XCTAssertTrue(sigma.x >= sigma.y && sigma.y >= sigma.z && sigma.z >= 0, "\(sigma)", file: file, line: line)
    }

    private func outer(_ a: Vector3, _ b: Vector3) -> Matrix3 { Matrix3(rows: b * a.x, b * a.y, b * a.z) }
}

/// Synthetic cameras for the metrics' tests.
enum MetricsScenes {
    /// `count` cameras on a wavy ring of radius 4 around the origin, each looking at the origin.
    static func ring(count: Int) -> [PosedImage] {
        (0..<count).map { index in
            let angle = 2 * Double.pi * Double(index) / Double(count)
            let center = Vector3(4 * cos(angle), 4 * sin(angle), 0.8 * sin(3 * angle))
            let forward = (-center).normalized
            let right = forward.cross(Vector3(0, 0, 1)).normalized
            let down = forward.cross(right)
            let name = "cam" + (index < 10 ? "0" : "") + "\(index).png"
            return posed(name, rotation: Matrix3(rows: right, down, forward), center: center)
        }
    }

    /// An image with the given camera-from-world rotation and centre in world coordinates.
    static func posed(_ name: String, rotation: Matrix3, center: Vector3) -> PosedImage {
        PosedImage(name: name, camera: PinholeCamera(width: 640, height: 480, focal: 500),
                   camFromWorld: Rigid3(rotation: rotation, translation: -(rotation * center)))
    }

    /// The same camera expressed in another world: `newFromOld` maps the old world into the new one.
    static func moved(_ image: PosedImage, by newFromOld: Similarity3) -> PosedImage {
        // camFromNew = camFromOld · oldFromNew; only the rotation of oldFromNew turns the camera.
        posed(image.name, rotation: image.camFromWorld.rotation * newFromOld.rotation.transposed,
              center: newFromOld.apply(image.centerInWorld))
    }
}

/// xorshift64*, seeded: the tests' own reproducible numbers.
struct MetricsTestRandom: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed &* 0x2545_F491_4F6C_DD1D | 1 }

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    mutating func vector(in range: ClosedRange<Double>) -> Vector3 {
        let span = range.upperBound - range.lowerBound
        return Vector3(unit(), unit(), unit()) * span + Vector3(repeating: range.lowerBound)
    }
}
