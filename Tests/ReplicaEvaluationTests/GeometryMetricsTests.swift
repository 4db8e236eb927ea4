import Foundation
import ReplicaEvaluation
import ReplicaGeometry
import XCTest

/// Accuracy and completeness against a true mesh, and the k-d tree they use for point clouds.
final class GeometryMetricsTests: XCTestCase {
    /// Few samples keep the debug build quick; the thresholds are 0.5 %, 1 %, 2 % of the diagonal.
    private let options = GeometryMetricsOptions(truthSampleCount: 4000, resultSampleCount: 4000)

    func testTheTruthAgainstItselfScoresPerfectly() throws {
        let sphere = TriangleMesh.icosphere(subdivisions: 3)
        let evaluation = try GeometryMetrics.evaluate(mesh: sphere, truth: SceneTruth(images: [], mesh: sphere),
                                                      options: options)
        XCTAssertEqual(evaluation.accuracy?.max ?? .nan, 0, accuracy: 1e-12)
        XCTAssertEqual(evaluation.completeness?.max ?? .nan, 0, accuracy: 1e-12)
        XCTAssertEqual(evaluation.scores.map(\.fScore), [1, 1, 1])
        XCTAssertEqual(evaluation.diagonal, 2 * 3.0.squareRoot(), accuracy: 1e-12)
    }

    func testASquareShiftedAlongItsNormalIsOffByTheShift() throws {
        let square = MetricsMeshes.square(side: 2, height: 0)
        let diagonal = 2 * 2.0.squareRoot()
        let shift = 0.0075 * diagonal
        let evaluation = try GeometryMetrics.evaluate(mesh: MetricsMeshes.square(side: 2, height: shift),
                                                      truth: square, options: options)
        XCTAssertEqual(evaluation.accuracy?.median ?? .nan, shift, accuracy: 1e-12)
        XCTAssertEqual(evaluation.accuracy?.max ?? .nan, shift, accuracy: 1e-12)
        XCTAssertEqual(evaluation.completeness?.median ?? .nan, shift, accuracy: 1e-12)
        XCTAssertEqual(evaluation.scores.map(\.precision), [0, 1, 1])
        XCTAssertEqual(evaluation.scores.map(\.recall), [0, 1, 1])
    }

    func testAShiftedCloudIsOffByTheShift() throws {
        let square = MetricsMeshes.square(side: 2, height: 0)
        let shift = 0.02
        var random = MetricsTestRandom(seed: 5)
        let cloud = (0..<20_000).map { _ in Vector3(random.unit() * 2 - 1, random.unit() * 2 - 1, shift) }
        let evaluation = try GeometryMetrics.evaluate(points: cloud, truth: square, options: options)
        XCTAssertEqual(evaluation.accuracy?.median ?? .nan, shift, accuracy: 1e-12)
        // Completeness adds the distance to the nearest cloud point within the plane, about 0.007 here.
        XCTAssertEqual(evaluation.completeness?.median ?? .nan, shift, accuracy: 0.15 * shift)
        XCTAssertGreaterThanOrEqual(evaluation.completeness?.median ?? .nan, shift)
    }

    func testAnInflatedSphereIsOffByTheInflation() throws {
        let sphere = TriangleMesh.icosphere(subdivisions: 4)
        let inflated = TriangleMesh(vertices: sphere.vertices.map { $0 * 1.03 }, triangles: sphere.triangles)
        let evaluation = try GeometryMetrics.evaluate(mesh: inflated, truth: sphere, options: options)
        // Flat facets sit slightly inside the unit sphere, so distances are 0.03 up to a facet's sagitta.
        XCTAssertEqual(evaluation.accuracy?.median ?? .nan, 0.03, accuracy: 0.002)
        XCTAssertEqual(evaluation.completeness?.median ?? .nan, 0.03, accuracy: 0.002)
    }

    func testACloudCoveringHalfTheSurfaceShowsInCompleteness() throws {
        let sphere = TriangleMesh.icosphere(subdivisions: 3)
        let truth = SceneTruth(images: [], mesh: sphere)
        let whole = sphere.vertices + sphere.triangles.indices.map { index in
            let (a, b, c) = sphere.corners(index)
            return (a + b + c) / 3
        }
        let upperHalf = whole.filter { $0.z > 0 }
        let full = try GeometryMetrics.evaluate(points: whole, truth: truth, options: options)
        let half = try GeometryMetrics.evaluate(points: upperHalf, truth: truth, options: options)
        XCTAssertEqual(half.accuracy?.max ?? .nan, 0, accuracy: 1e-12, "every point lies on the surface")
        XCTAssertEqual(half.scores.last?.precision, 1)
        XCTAssertEqual(full.scores.last?.recall ?? 0, 1, accuracy: 0.01)
        XCTAssertEqual(half.scores.last?.recall ?? 0, 0.5, accuracy: 0.05)
        XCTAssertLessThan(half.scores.last?.fScore ?? 1, 0.7)
        XCTAssertGreaterThan(half.completeness?.mean ?? 0, 10 * (full.completeness?.mean ?? 1))
    }

    func testDistancesToACubeAreExactInEveryRegion() throws {
        let cube = MetricsMeshes.unitCube()
        var random = MetricsTestRandom(seed: 11)
        let small = GeometryMetricsOptions(truthSampleCount: 10, resultSampleCount: 10)
        for _ in 0..<300 {
            let point = random.vector(in: -1...2)
            let evaluation = try GeometryMetrics.evaluate(points: [point], truth: cube, options: small)
            XCTAssertEqual(evaluation.accuracy?.max ?? .nan, distanceToUnitCubeSurface(point), accuracy: 1e-12,
                           "\(point)")
        }
    }

    func testAnEmptyResultScoresZeroAndBadInputIsRefused() throws {
        let cube = MetricsMeshes.unitCube()
        let empty = try GeometryMetrics.evaluate(points: [], truth: cube, options: options)
        XCTAssertNil(empty.accuracy)
        XCTAssertEqual(empty.scores.map(\.fScore), [0, 0, 0])
        XCTAssertThrowsError(try GeometryMetrics.evaluate(points: [.zero], truth: SceneTruth(images: [])))
        XCTAssertThrowsError(try GeometryMetrics.evaluate(points: [.zero], truth: cube,
                                                          options: GeometryMetricsOptions(thresholds: [0])))
    }

    func testTheKDTreeFindsWhatBruteForceFinds() {
        var random = MetricsTestRandom(seed: 2)
        let points = (0..<3000).map { _ in random.vector(in: -5...5) } + [Vector3(1, 1, 1), Vector3(1, 1, 1)]
        let tree = KDTree(points: points)
        for _ in 0..<500 {
            let query = random.vector(in: -6...6)
            let nearest = tree.nearest(to: query)!
            let bruteForce = points.map { ($0 - query).length }.min()!
            XCTAssertEqual(nearest.distance, bruteForce, accuracy: 1e-12)
            XCTAssertEqual((points[nearest.index] - query).length, bruteForce, accuracy: 1e-12)
        }
        XCTAssertNil(KDTree(points: []).nearest(to: .zero))
        XCTAssertEqual(KDTree(points: [Vector3(0, 3, 4)]).nearest(to: .zero)?.distance, 5)
    }

    func testTheGeometryReportShowsEachThreshold() throws {
        let cube = MetricsMeshes.unitCube()
        let evaluation = try GeometryMetrics.evaluate(mesh: cube, truth: cube, options: options)
        let table = EvaluationReport.table(evaluation)
        XCTAssertTrue(table.contains("threshold (% of diagonal)"))
        XCTAssertTrue(table.contains("0.500") && table.contains("1.000") && table.contains("2.000"))
        let json = try EvaluationReport.json(evaluation)
        XCTAssertEqual(try JSONDecoder().decode(GeometryEvaluation.self, from: Data(json.utf8)), evaluation)
    }

    /// A large case, run only when asked (`REPLICA_METRICS_BENCHMARK=1`, best in a release build): 100k result
    /// points against a 100k-triangle truth.
    func testAHundredThousandPointsAgainstAHundredThousandTriangles() throws {
        guard ProcessInfo.processInfo.environment["REPLICA_METRICS_BENCHMARK"] == "1" else {
            throw XCTSkip("set REPLICA_METRICS_BENCHMARK=1 to run")
        }
        let sphere = TriangleMesh.icosphere(subdivisions: 6)
        XCTAssertGreaterThan(sphere.triangles.count, 80_000)
        var random = MetricsTestRandom(seed: 9)
        let cloud = (0..<100_000).map { _ in random.vector(in: -1...1).normalized * 1.01 }
        let start = Date()
        let evaluation = try GeometryMetrics.evaluate(points: cloud, truth: sphere)
        let seconds = Date().timeIntervalSince(start)
        print("100k points × \(sphere.triangles.count) triangles: \(seconds) s")
        XCTAssertEqual(evaluation.accuracy?.median ?? .nan, 0.01, accuracy: 0.001)
        XCTAssertLessThan(seconds, 10)
    }

    private func distanceToUnitCubeSurface(_ point: Vector3) -> Double {
        let outside = pointwiseMax(pointwiseMax(-point, point - Vector3(1, 1, 1)), .zero)
        if outside.length > 0 { return outside.length }
        return min(point.min(), (Vector3(1, 1, 1) - point).min())
    }
}

/// Synthetic meshes for the metrics' tests.
enum MetricsMeshes {
    /// The cube [0, 1]³ as 12 outward-facing triangles.
    static func unitCube() -> TriangleMesh {
        let vertices = (0..<8).map { (bits: Int) -> Vector3 in
            Vector3(Double(bits & 1), Double((bits >> 1) & 1), Double((bits >> 2) & 1))
        }
        let quads: [[Int32]] = [[0, 2, 3, 1], [4, 5, 7, 6], [0, 1, 5, 4], [2, 6, 7, 3], [0, 4, 6, 2], [1, 3, 7, 5]]
        let triangles = quads.flatMap { (q: [Int32]) -> [SIMD3<Int32>] in
            [SIMD3(q[0], q[1], q[2]), SIMD3(q[0], q[2], q[3])]
        }
        return TriangleMesh(vertices: vertices, triangles: triangles)
    }

    /// A square of the given side centred on the z axis at `height`, facing +z, as two triangles.
    static func square(side: Double, height: Double) -> TriangleMesh {
        let h = side / 2
        return TriangleMesh(vertices: [Vector3(-h, -h, height), Vector3(h, -h, height), Vector3(h, h, height),
                                       Vector3(-h, h, height)],
                            triangles: [SIMD3(0, 1, 2), SIMD3(0, 2, 3)])
    }
}

extension GeometryMetricsTests {
    /// Containment in the object's box: in the box itself, in it grown by the tolerance, and per view through
    /// the estimated cameras, which may work at another resolution than the photos.
    func testContainmentCountsPointsInTheBoxAlignedAndPerView() throws {
        let box = Box3(min: Vector3(-1, -1, -1), max: Vector3(1, 1, 1))
        let inside = Vector3(0.5, 0, 0), nearFace = Vector3(1.01, 0, 0), far = Vector3(0, 3, 0)
        let tolerance = 0.005 // 0.017 of the diagonal 2√3: nearFace is within it, far is not.
        let result = GeometryMetrics.containment(points: [inside, nearFace, far, inside], box: box,
                                                 tolerance: tolerance)
        XCTAssertEqual(result.insideFraction, 0.5)
        XCTAssertEqual(result.insideGrownFraction, 0.75)

        // Two true views of 1600 × 1200 looking at the box from 8 away along x and along y; the estimate has
        // the same poses at half the size, as a working copy would.
        let views = [Vector3(8, 0, 0), Vector3(0, -8, 0)].enumerated().map { index, centre -> PosedImage in
            let forward = (-centre).normalized
            let right = forward.cross(Vector3(0, 0, 1)).normalized
            let rotation = Matrix3(rows: right, forward.cross(right), forward)
            return PosedImage(name: "v\(index)", camera: PinholeCamera(width: 1600, height: 1200, focal: 1500),
                              camFromWorld: Rigid3(rotation: rotation, translation: -(rotation * centre)))
        }
        let truth = SceneTruth(images: views, boundingBox: box)
        let estimated = views.map { view -> PosedImage in
            var half = view
            half.camera = PinholeCamera(width: 800, height: 600, focal: 750)
            return half
        }
        // far, at y = 3, projects off the box from the first view (it stands beside the box) though the second
        // sees it in front of the box.
        let projected = GeometryMetrics.projectedContainment(points: [inside, nearFace, far, inside],
                                                             estimated: estimated, truth: truth, box: box,
                                                             tolerance: tolerance)
        XCTAssertEqual(projected.views, 2)
        XCTAssertEqual(projected.fraction, 0.75)
    }
}
