import Foundation
import ReplicaGeometry

/// What `GeometryMetrics` measures with. Distances are fractions of the true mesh's bounding-box diagonal.
public struct GeometryMetricsOptions: Equatable, Sendable, Codable {
    /// Distances at which precision, recall and F-score are counted, as fractions of the diagonal.
    /// Default 0.5 %, 1 %, 2 %.
    public var thresholds: [Double] = [0.005, 0.01, 0.02]
    /// Points sampled uniformly by area on the true surface to measure completeness. Default 100,000.
    public var truthSampleCount: Int = 100_000
    /// Points sampled uniformly by area on a result mesh to measure accuracy. Default 100,000.
    public var resultSampleCount: Int = 100_000
    /// Seed of the surface sampling; the same seed and input give the same numbers. Default 1.
    public var seed: UInt64 = 1

    public init(thresholds: [Double] = [0.005, 0.01, 0.02], truthSampleCount: Int = 100_000,
                resultSampleCount: Int = 100_000, seed: UInt64 = 1) {
        self.thresholds = thresholds
        self.truthSampleCount = truthSampleCount
        self.resultSampleCount = resultSampleCount
        self.seed = seed
    }

    /// Rejects thresholds that are not positive finite fractions and sample counts below 1.
    public func validate() throws {
        guard !thresholds.isEmpty, thresholds.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw MetricsError.invalidOption("thresholds must be positive fractions, not \(thresholds)")
        }
        guard truthSampleCount >= 1, resultSampleCount >= 1 else {
            throw MetricsError.invalidOption("sample counts must be at least 1")
        }
    }
}

/// How close a reconstructed surface is to the true one (accuracy) and how much of the true one it covers
/// (completeness).
public struct GeometryEvaluation: Equatable, Sendable, Codable {
    /// The diagonal of the true mesh's bounding box, in scene units: the scale of the thresholds.
    public var diagonal: Double
    /// Result points measured for accuracy (the cloud itself, or the samples on a result mesh).
    public var resultPoints: Int
    /// Points sampled on the true surface for completeness.
    public var truthSamples: Int
    /// Distance from each result point to the true surface, scene units; nil for an empty result.
    public var accuracy: ErrorSummary?
    /// Distance from each true-surface sample to the result, scene units; nil for an empty result.
    public var completeness: ErrorSummary?
    /// One entry per threshold of the options, in their order.
    public var scores: [ThresholdScore]

    /// Precision, recall and their harmonic mean at one distance.
    public struct ThresholdScore: Equatable, Sendable, Codable {
        /// The threshold as a fraction of `diagonal`.
        public var fraction: Double
        /// The threshold in scene units.
        public var distance: Double
        /// Result points within `distance` of the truth, 0...1.
        public var precision: Double
        /// True-surface samples within `distance` of the result, 0...1.
        public var recall: Double
        /// 2PR / (P + R); 0 when both are 0.
        public var fScore: Double
    }
}

/// Accuracy and completeness of point clouds and meshes against a true mesh.
public enum GeometryMetrics {
    /// Measures a point cloud against `truth.mesh`; throws when the truth has no mesh.
    public static func evaluate(points: [Vector3], truth: SceneTruth,
                                options: GeometryMetricsOptions = .init()) throws -> GeometryEvaluation {
        guard let mesh = truth.mesh else { throw MetricsError.missingTruth("the truth has no surface") }
        return try evaluate(points: points, truth: mesh, options: options)
    }

    /// Measures a mesh against `truth.mesh`; throws when the truth has no mesh.
    public static func evaluate(mesh: TriangleMesh, truth: SceneTruth,
                                options: GeometryMetricsOptions = .init()) throws -> GeometryEvaluation {
        guard let trueMesh = truth.mesh else { throw MetricsError.missingTruth("the truth has no surface") }
        return try evaluate(mesh: mesh, truth: trueMesh, options: options)
    }

    /// Measures a point cloud: accuracy from its points, completeness to its nearest point.
    public static func evaluate(points: [Vector3], truth: TriangleMesh,
                                options: GeometryMetricsOptions = .init()) throws -> GeometryEvaluation {
        let setup = try prepare(truth, options)
        let tree = KDTree(points: points)
        let accuracy = distances(from: points) { setup.truthSurface.distance(to: $0) }
        let completeness = points.isEmpty ? [] : distances(from: setup.samples) { tree.nearest(to: $0)!.distance }
        return summarize(accuracy, completeness, setup, options)
    }

    /// Measures a mesh: accuracy from points sampled on it, completeness to its exact surface.
    public static func evaluate(mesh: TriangleMesh, truth: TriangleMesh,
                                options: GeometryMetricsOptions = .init()) throws -> GeometryEvaluation {
        let setup = try prepare(truth, options)
        let resultSurface = TriangleBVH(mesh)
        let resultSamples = SurfaceSampler.sample(mesh, count: options.resultSampleCount, seed: options.seed &+ 1)
        let accuracy = distances(from: resultSamples) { setup.truthSurface.distance(to: $0) }
        let completeness = resultSamples.isEmpty ? []
            : distances(from: setup.samples) { resultSurface.distance(to: $0) }
        return summarize(accuracy, completeness, setup, options)
    }

    private struct Setup {
        var truthSurface: TriangleBVH
        var samples: [Vector3]
        var diagonal: Double
    }

    private static func prepare(_ truth: TriangleMesh, _ options: GeometryMetricsOptions) throws -> Setup {
        try options.validate()
        guard let box = truth.bounds, truth.surfaceArea > 0 else {
            throw MetricsError.missingTruth("the true mesh has no area")
        }
        return Setup(truthSurface: TriangleBVH(truth),
                     samples: SurfaceSampler.sample(truth, count: options.truthSampleCount, seed: options.seed),
                     diagonal: (box.max - box.min).length)
    }

    /// `measure` applied to every point, spread over the cores.
    private static func distances(from points: [Vector3], _ measure: (Vector3) -> Double) -> [Double] {
        var result = [Double](repeating: 0, count: points.count)
        let chunk = 4096, chunks = (points.count + chunk - 1) / chunk
        result.withUnsafeMutableBufferPointer { output in
            let output = output
            DispatchQueue.concurrentPerform(iterations: chunks) { piece in
                for index in piece * chunk..<min(points.count, (piece + 1) * chunk) {
                    output[index] = measure(points[index])
                }
            }
        }
        return result
    }

    private static func summarize(_ accuracy: [Double], _ completeness: [Double], _ setup: Setup,
                                  _ options: GeometryMetricsOptions) -> GeometryEvaluation {
        let scores = options.thresholds.map { fraction in
            let distance = fraction * setup.diagonal
            let precision = share(accuracy) { $0 <= distance }, recall = share(completeness) { $0 <= distance }
            let fScore = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
            return GeometryEvaluation.ThresholdScore(fraction: fraction, distance: distance, precision: precision,
                                                     recall: recall, fScore: fScore)
        }
        return GeometryEvaluation(diagonal: setup.diagonal, resultPoints: accuracy.count,
                                  truthSamples: setup.samples.count, accuracy: ErrorSummary(accuracy),
                                  completeness: ErrorSummary(completeness), scores: scores)
    }

    private static func share(_ values: [Double], _ isWithin: (Double) -> Bool) -> Double {
        values.isEmpty ? 0 : Double(values.filter(isWithin).count) / Double(values.count)
    }
}

/// Points spread uniformly by area over a mesh's surface.
enum SurfaceSampler {
    /// `count` points on `mesh`, each on a triangle chosen with probability proportional to its area and
    /// uniform within it; empty for a mesh without area.
    static func sample(_ mesh: TriangleMesh, count: Int, seed: UInt64) -> [Vector3] {
        var cumulativeArea: [Double] = []
        cumulativeArea.reserveCapacity(mesh.triangles.count)
        var total = 0.0
        for index in mesh.triangles.indices {
            let (a, b, c) = mesh.corners(index)
            total += (b - a).cross(c - a).length / 2
            cumulativeArea.append(total)
        }
        guard total > 0 else { return [] }
        var random = SplitMix64Generator(seed: seed)
        return (0..<count).map { _ in
            let (a, b, c) = mesh.corners(triangle(at: random.unit() * total, in: cumulativeArea))
            // The square root makes the density uniform over the triangle rather than crowded at `a`.
            let r = random.unit().squareRoot(), s = random.unit()
            return (1 - r) * a + r * (1 - s) * b + r * s * c
        }
    }

    /// The first triangle whose cumulative area exceeds `area` (binary search).
    private static func triangle(at area: Double, in cumulativeArea: [Double]) -> Int {
        var low = 0, high = cumulativeArea.count - 1
        while low < high {
            let mid = (low + high) / 2
            if cumulativeArea[mid] > area { high = mid } else { low = mid + 1 }
        }
        return low
    }
}

/// A bounding-volume hierarchy over a mesh's triangles, for the exact distance from a point to the surface.
struct TriangleBVH: Sendable {
    private struct Node: Sendable {
        var low: Vector3
        var high: Vector3
        /// A leaf's first triangle in `corners`; for an inner node, the index of its second child (the first
        /// follows it directly).
        var start: Int32
        /// Triangles in a leaf; 0 for an inner node.
        var count: Int32
    }

    private var nodes: [Node] = []
    /// The triangles' corners, in leaf order.
    private var corners: [(Vector3, Vector3, Vector3)] = []
    private static let leafSize = 4

    init(_ mesh: TriangleMesh) {
        let triangles = mesh.triangles.indices.map { mesh.corners($0) }
        var order = Array(triangles.indices)
        let centroids = triangles.map { ($0.0 + $0.1 + $0.2) / 3 }
        nodes.reserveCapacity(2 * triangles.count / Self.leafSize + 1)
        if !triangles.isEmpty { build(&order, 0, triangles.count, triangles, centroids) }
        corners = order.map { triangles[$0] }
    }

    /// The distance from `point` to the nearest triangle; infinity for a mesh without triangles.
    func distance(to point: Vector3) -> Double {
        guard !nodes.isEmpty else { return .infinity }
        var best = Double.infinity
        var stack: [Int] = [0]
        stack.reserveCapacity(64)
        while let index = stack.popLast() {
            let node = nodes[index]
            guard Self.squaredDistance(point, node.low, node.high) < best else { continue }
            if node.count > 0 {
                for position in Int(node.start)..<Int(node.start + node.count) {
                    let (a, b, c) = corners[position]
                    let offset = closestPoint(on: a, b, c, to: point) - point
                    best = min(best, offset.dot(offset))
                }
                continue
            }
            // Visit the nearer child first (pushed last), so the far one is often pruned.
            let first = index + 1, second = Int(node.start)
            let firstNear = Self.squaredDistance(point, nodes[first].low, nodes[first].high)
                <= Self.squaredDistance(point, nodes[second].low, nodes[second].high)
            stack.append(firstNear ? second : first)
            stack.append(firstNear ? first : second)
        }
        return best.squareRoot()
    }

    private mutating func build(_ order: inout [Int], _ low: Int, _ high: Int,
                                _ triangles: [(Vector3, Vector3, Vector3)], _ centroids: [Vector3]) {
        var boxLow = Vector3(repeating: .infinity), boxHigh = Vector3(repeating: -.infinity)
        var centerLow = boxLow, centerHigh = boxHigh
        for position in low..<high {
            let (a, b, c) = triangles[order[position]]
            boxLow = pointwiseMin(boxLow, pointwiseMin(a, pointwiseMin(b, c)))
            boxHigh = pointwiseMax(boxHigh, pointwiseMax(a, pointwiseMax(b, c)))
            centerLow = pointwiseMin(centerLow, centroids[order[position]])
            centerHigh = pointwiseMax(centerHigh, centroids[order[position]])
        }
        let index = nodes.count
        nodes.append(Node(low: boxLow, high: boxHigh, start: Int32(low), count: Int32(high - low)))
        guard high - low > Self.leafSize else { return }

        // Split at the median centroid along the widest spread of centroids.
        let spread = centerHigh - centerLow
        let axis = spread.x >= spread.y && spread.x >= spread.z ? 0 : spread.y >= spread.z ? 1 : 2
        order[low..<high].sort { centroids[$0][axis] < centroids[$1][axis] }
        let mid = (low + high) / 2
        nodes[index].count = 0
        build(&order, low, mid, triangles, centroids)
        nodes[index].start = Int32(nodes.count)
        build(&order, mid, high, triangles, centroids)
    }

    /// The squared distance from a point to an axis-aligned box; 0 inside it.
    private static func squaredDistance(_ point: Vector3, _ low: Vector3, _ high: Vector3) -> Double {
        let outside = pointwiseMax(pointwiseMax(low - point, point - high), .zero)
        return outside.dot(outside)
    }
}

/// The point of triangle (a, b, c) nearest to `p`, found by which Voronoi region of the triangle `p` is in.
fileprivate func closestPoint(on a: Vector3, _ b: Vector3, _ c: Vector3, to p: Vector3) -> Vector3 {
    let ab = b - a, ac = c - a, ap = p - a
    let d1 = ab.dot(ap), d2 = ac.dot(ap)
    if d1 <= 0 && d2 <= 0 { return a }
    let bp = p - b, d3 = ab.dot(bp), d4 = ac.dot(bp)
    if d3 >= 0 && d4 <= d3 { return b }
    let vc = d1 * d4 - d3 * d2
    if vc <= 0 && d1 >= 0 && d3 <= 0 { return a + ab * (d1 / (d1 - d3)) }
    let cp = p - c, d5 = ab.dot(cp), d6 = ac.dot(cp)
    if d6 >= 0 && d5 <= d6 { return c }
    let vb = d5 * d2 - d1 * d6
    if vb <= 0 && d2 >= 0 && d6 <= 0 { return a + ac * (d2 / (d2 - d6)) }
    let va = d3 * d6 - d5 * d4
    if va <= 0 && d4 - d3 >= 0 && d5 - d6 >= 0 { return b + (c - b) * ((d4 - d3) / ((d4 - d3) + (d5 - d6))) }

    // Inside the face. A triangle without area has no inside; its nearest point is on one of its edges.
    let sum = va + vb + vc
    guard sum > 0 else {
        return [closestPoint(onSegment: a, b, to: p), closestPoint(onSegment: b, c, to: p),
                closestPoint(onSegment: a, c, to: p)].min { ($0 - p).dot($0 - p) < ($1 - p).dot($1 - p) }!
    }
    return a + ab * (vb / sum) + ac * (vc / sum)
}

private func closestPoint(onSegment a: Vector3, _ b: Vector3, to p: Vector3) -> Vector3 {
    let direction = b - a, squaredLength = direction.dot(direction)
    guard squaredLength > 0 else { return a }
    return a + direction * min(1, max(0, (p - a).dot(direction) / squaredLength))
}

/// How much of a point cloud lies inside the object's bounding box: for truths that give a box but no surface
/// (the Middlebury objects), and to check that masking kept the object and dropped its surroundings.
public struct ContainmentEvaluation: Equatable, Sendable, Codable {
    public var points: Int
    /// The box's diagonal, in scene units.
    public var diagonal: Double
    /// Points inside the box itself, 0...1.
    public var insideFraction: Double
    /// The margin the box is grown by on every side, as a fraction of its diagonal.
    public var tolerance: Double
    /// Points inside the grown box, 0...1: what counts when the cloud's frame is itself an estimate.
    public var insideGrownFraction: Double
    /// Points that project, through the estimated camera of every view, inside the outline of the grown box as
    /// the true camera of that view sees it, 0...1; nil without estimated cameras. Each view compares the cloud
    /// with the photo it came from, so an error of the alignment between the two worlds does not count.
    public var insideEveryViewFraction: Double?
    /// The views that test used.
    public var views: Int?
}

extension GeometryMetrics {
    /// The share of `points` inside `box`, and inside it grown by `tolerance` of its diagonal each way.
    public static func containment(points: [Vector3], box: Box3, tolerance: Double = 0.005) -> ContainmentEvaluation {
        let margin = tolerance * box.diagonal
        var inside = 0, insideGrown = 0
        for point in points {
            if all(point .>= box.min) && all(point .<= box.max) { inside += 1 }
            if all(point .>= box.min - margin) && all(point .<= box.max + margin) { insideGrown += 1 }
        }
        let count = Double(max(1, points.count))
        return ContainmentEvaluation(points: points.count, diagonal: box.diagonal,
                                     insideFraction: Double(inside) / count, tolerance: tolerance,
                                     insideGrownFraction: Double(insideGrown) / count)
    }

    /// The share of `points` (in the world of `estimated`) that every estimated view puts inside the outline of
    /// `box` grown by `tolerance` of its diagonal, as the true view of the same name sees it.
    public static func projectedContainment(points: [Vector3], estimated: [PosedImage], truth: SceneTruth,
                                            box: Box3, tolerance: Double = 0.005) -> (fraction: Double, views: Int) {
        let margin = tolerance * box.diagonal
        let grown = Box3(min: box.min - margin, max: box.max + margin)
        // Per view: the outline in the true photo, and the scale from the estimate's pixels to the photo's (an
        // estimate made at a working resolution).
        var outlines: [(view: PosedImage, outline: [Vector2], scale: Vector2)] = []
        for view in estimated {
            guard let trueView = truth.image(named: view.name) else { continue }
            let corners = grown.corners.compactMap(trueView.project)
            guard corners.count == 8 else { continue }
            let scale = Vector2(Double(trueView.camera.width) / Double(view.camera.width),
                                Double(trueView.camera.height) / Double(view.camera.height))
            outlines.append((view, convexHull(corners), scale))
        }
        guard !outlines.isEmpty else { return (0, 0) }
        var inside = 0
        for point in points {
            let everywhere = outlines.allSatisfy { entry in
                guard let pixel = entry.view.project(point) else { return false }
                return contains(entry.outline, pixel * entry.scale)
            }
            if everywhere { inside += 1 }
        }
        return (Double(inside) / Double(max(1, points.count)), outlines.count)
    }

    /// The convex hull, counter-clockwise (in a y-down image, clockwise on screen), by Andrew's monotone chain.
    static func convexHull(_ points: [Vector2]) -> [Vector2] {
        let sorted = points.sorted { $0.x != $1.x ? $0.x < $1.x : $0.y < $1.y }
        func turn(_ o: Vector2, _ a: Vector2, _ b: Vector2) -> Double {
            (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x)
        }
        func chain(_ points: [Vector2]) -> [Vector2] {
            var kept: [Vector2] = []
            for p in points {
                while kept.count >= 2 && turn(kept[kept.count - 2], kept[kept.count - 1], p) <= 0 { kept.removeLast() }
                kept.append(p)
            }
            return kept
        }
        return Array(chain(sorted).dropLast() + chain(sorted.reversed()).dropLast())
    }

    /// Whether `point` lies inside or on the convex polygon `hull` (as `convexHull` orders it).
    static func contains(_ hull: [Vector2], _ point: Vector2) -> Bool {
        guard hull.count >= 3 else { return false }
        for index in hull.indices {
            let a = hull[index], b = hull[(index + 1) % hull.count]
            if (b.x - a.x) * (point.y - a.y) - (b.y - a.y) * (point.x - a.x) < 0 { return false }
        }
        return true
    }
}
