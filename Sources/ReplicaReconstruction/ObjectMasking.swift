import Foundation
import ReplicaGeometry

/// How the object is told from its surroundings.
public struct ObjectMaskingOptions: Equatable, Sendable {
    /// A point must fall inside the frame of at least this fraction of the views: the object is what they all
    /// look at. Default 0.6.
    public var minimumFrameFraction = 0.6
    /// The object is where the sparse model's points are: a dense point needs, within `sparseRadius` (a
    /// fraction of the median camera distance), at least `minimumSparseSupport` times the sparse points that
    /// the median dense point has around it. Feature-poor surroundings (a dark cloth, a stand, a wall) have few.
    /// Where the median dense point has fewer than `typicalSparseSupport` sparse points around it (a sparse
    /// model of few points), the radius grows until it has about that many. Defaults 0.015, 0.25 and 20.
    public var sparseRadius = 0.015
    public var minimumSparseSupport = 0.25
    public var typicalSparseSupport = 20.0
    /// Points within this distance of a support plane (as a fraction of the median camera distance to the
    /// object) go with the plane. Default 0.008.
    public var planeDistance = 0.008
    /// A plane supports the object when at least this fraction of the remaining points lie on it, and as many
    /// stand on it. Default 0.1.
    public var minimumPlaneFraction = 0.1
    /// … and at least this fraction of the cameras lie on the object's side of it. Default 0.9.
    public var cameraSideFraction = 0.9
    /// … and its points spread at least this many times as wide as the object's. Default 1.3.
    public var planeSpread = 1.3
    /// Connected pieces are found on a grid of this cell size (a fraction of the median camera distance);
    /// pieces with fewer than `minimumPieceFraction` of the largest one's points are strays. Defaults 0.01 and
    /// 0.1.
    public var cellSize = 0.01
    public var minimumPieceFraction = 0.1
    /// RANSAC trials for the plane and the seed of their sampling. Defaults 400 and 1.
    public var planeTrials = 400
    public var seed: UInt64 = 1

    public init() {}
}

/// A plane n·x + d = 0 with a unit normal.
public struct Plane3: Equatable, Sendable {
    public var normal: SIMD3<Double>
    public var offset: Double

    /// The signed distance of `point`, positive on the normal's side.
    public func distance(_ point: SIMD3<Double>) -> Double { normal.dot(point) + offset }
}

/// What masking removed, for the job's report.
public struct ObjectMaskingReport: Equatable, Sendable {
    public var outOfView = 0
    public var unsupported = 0
    public var supportPlane = 0
    public var strays = 0
    /// The support plane found, its normal towards the cameras, if any.
    public var plane: Plane3?
}

/// Keeps the object the cameras surround and drops the rest, without masks drawn by hand, in four steps:
///
/// 1. the region the views look at together: points outside the frame of most views are background;
/// 2. the sparse model's support: the features Image Alignment matched lie on the object, so dense points in a
///    region with few sparse points around them are surroundings;
/// 3. the support: a dominant plane the cameras all look down on (or up at), spreading wider than what stands on
///    it, is the table, turntable or ground, and it and everything beyond it go;
/// 4. strays: of the connected pieces left, only the largest and those of a comparable size stay.
public enum ObjectMasking {
    /// One flag per point of `cloud`: true to keep. `views` are the cameras that made it, `sparsePoints` the
    /// sparse model's points.
    public static func mask(_ cloud: OrientedPointCloud, views: [(camera: PinholeCamera, camFromWorld: Rigid3)],
                            sparsePoints: [Vector3], options: ObjectMaskingOptions = .init())
        -> (keep: [Bool], report: ObjectMaskingReport) {
        var keep = [Bool](repeating: true, count: cloud.count)
        var report = ObjectMaskingReport()
        guard cloud.count > 0, !views.isEmpty else { return (keep, report) }
        let points = cloud.positions.map { SIMD3<Double>($0) }

        // 1. In the frame of most views.
        for (index, point) in points.enumerated() {
            var inside = 0
            for view in views {
                if let pixel = view.camera.project(view.camFromWorld.apply(point)), view.camera.contains(pixel) {
                    inside += 1
                }
            }
            if Double(inside) < options.minimumFrameFraction * Double(views.count) {
                keep[index] = false
                report.outOfView += 1
            }
        }
        let centres = views.map { $0.camFromWorld.inverse.translation }
        let kept = points.indices.filter { keep[$0] }
        guard !kept.isEmpty else { return (keep, report) }
        let middle = median(of: kept.map { points[$0] })
        let scale = medianValue(centres.map { ($0 - middle).length })
        guard scale > 0 else { return (keep, report) }

        // 2. Support by the sparse points.
        if !sparsePoints.isEmpty {
            var radius = options.sparseRadius * scale
            var support: [Int] = []
            var typical = 0.0
            for _ in 0..<4 {
                let grid = PointGrid(sparsePoints, cell: radius)
                support = kept.map { grid.count(within: radius, of: points[$0]) }
                typical = medianValue(support.filter { $0 > 0 }.map(Double.init))
                guard typical < options.typicalSparseSupport, radius < 0.1 * scale else { break }
                // On a surface the count grows with the square of the radius.
                radius = min(0.1 * scale, radius * (options.typicalSparseSupport / max(1, typical)).squareRoot())
            }
            let threshold = options.minimumSparseSupport * typical
            for (slot, index) in kept.enumerated() where Double(support[slot]) < max(1, threshold) {
                keep[index] = false
                report.unsupported += 1
            }
        }
        let supported = kept.filter { keep[$0] }

        // 3. The support plane.
        if let plane = supportPlane(points: supported.map { points[$0] }, centres: centres, scale: scale,
                                    options: options) {
            report.plane = plane
            let limit = options.planeDistance * scale
            for index in supported where plane.distance(points[index]) <= limit {
                keep[index] = false
                report.supportPlane += 1
            }
        }

        // 4. Connected pieces on a grid.
        let remaining = points.indices.filter { keep[$0] }
        let cell = options.cellSize * scale
        var cellsOf: [SIMD3<Int>: [Int]] = [:]
        for index in remaining {
            let p = points[index] / cell
            cellsOf[SIMD3(Int(p.x.rounded(.down)), Int(p.y.rounded(.down)), Int(p.z.rounded(.down))), default: []]
                .append(index)
        }
        var piece: [SIMD3<Int>: Int] = [:]
        var sizes: [Int] = []
        for start in cellsOf.keys where piece[start] == nil {
            let label = sizes.count
            var stack = [start], size = 0
            piece[start] = label
            while let current = stack.popLast() {
                size += cellsOf[current]!.count
                for dz in -1...1 { for dy in -1...1 { for dx in -1...1 {
                    let next = current &+ SIMD3(dx, dy, dz)
                    if cellsOf[next] != nil && piece[next] == nil {
                        piece[next] = label
                        stack.append(next)
                    }
                } } }
            }
            sizes.append(size)
        }
        let largest = sizes.max() ?? 0
        let smallest = options.minimumPieceFraction * Double(largest)
        for (key, members) in cellsOf where Double(sizes[piece[key]!]) < smallest {
            for index in members { keep[index] = false }
            report.strays += members.count
        }
        return (keep, report)
    }

    /// The dominant plane of `points` if it is a support: RANSAC on a sample of the points, then the checks
    /// that tell a table from a flat face of the object. The normal points to the cameras' side.
    static func supportPlane(points: [SIMD3<Double>], centres: [Vector3], scale: Double,
                             options: ObjectMaskingOptions) -> Plane3? {
        guard points.count >= 50 else { return nil }
        var random = SplitMix64Generator(seed: options.seed)
        let sample = points.count <= 20_000 ? points
            : (0..<20_000).map { _ in points[Int(random.next() % UInt64(points.count))] }
        let limit = options.planeDistance * scale
        var best: (plane: Plane3, inliers: Int)?
        for _ in 0..<options.planeTrials {
            let a = sample[Int(random.next() % UInt64(sample.count))]
            let b = sample[Int(random.next() % UInt64(sample.count))]
            let c = sample[Int(random.next() % UInt64(sample.count))]
            let cross = (b - a).cross(c - a)
            let length = cross.length
            guard length > 1e-12 else { continue }
            let normal = cross / length
            let offset = -normal.dot(a)
            let inliers = sample.reduce(0) { $0 + (abs(normal.dot($1) + offset) <= limit ? 1 : 0) }
            if inliers > best?.inliers ?? 0 { best = (Plane3(normal: normal, offset: offset), inliers) }
        }
        guard let found = best, Double(found.inliers) >= options.minimumPlaneFraction * Double(sample.count)
        else { return nil }
        var plane = found.plane
        // Refit to the inliers by least squares: the normal is the direction of least spread.
        let inliers = sample.filter { abs(plane.distance($0)) <= limit }
        if let refit = fitPlane(inliers) {
            plane.normal = refit.normal.dot(plane.normal) < 0 ? -refit.normal : refit.normal
            plane.offset = -plane.normal.dot(refit.centroid)
        }
        // The cameras' side.
        let above = centres.filter { plane.distance($0) > 0 }.count
        if Double(above) < Double(centres.count) / 2 {
            plane.normal = -plane.normal
            plane.offset = -plane.offset
        }
        let side = max(above, centres.count - above)
        guard Double(side) >= options.cameraSideFraction * Double(centres.count) else { return nil }
        // Something stands on a support, and the support spreads wider than it; a flat face of the object, or an
        // object seen from one side only, has neither.
        let onPlane = sample.filter { abs(plane.distance($0)) <= limit }
        let standing = sample.filter { plane.distance($0) > limit }
        guard standing.count >= 20,
              Double(standing.count) >= options.minimumPlaneFraction * Double(sample.count) else { return nil }
        func spread(_ set: [SIMD3<Double>]) -> Double {
            let centre = set.reduce(SIMD3<Double>(), +) / Double(set.count)
            let inPlane = set.map { p -> Double in
                let d = p - centre
                let along = d - plane.normal * plane.normal.dot(d)
                return along.length
            }
            return medianValue(inPlane)
        }
        guard spread(onPlane) >= options.planeSpread * spread(standing) else { return nil }
        return plane
    }

    /// The least-squares plane of `points`: their centroid and the eigenvector of least spread.
    static func fitPlane(_ points: [SIMD3<Double>]) -> (normal: SIMD3<Double>, centroid: SIMD3<Double>)? {
        guard points.count >= 3 else { return nil }
        let centroid = points.reduce(SIMD3<Double>(), +) / Double(points.count)
        var scatter = Matrix3(rows: .zero, .zero, .zero)
        for p in points {
            let d = p - centroid
            scatter = scatter + Matrix3(rows: d * d.x, d * d.y, d * d.z)
        }
        // The scatter is symmetric, so its singular vectors are its eigenvectors; the last has least spread.
        let normal = SVD3(scatter).v.column(2)
        guard normal.length > 0 else { return nil }
        return (normal / normal.length, centroid)
    }

    private static func median(of points: [SIMD3<Double>]) -> SIMD3<Double> {
        SIMD3(medianValue(points.map(\.x)), medianValue(points.map(\.y)), medianValue(points.map(\.z)))
    }

    static func medianValue(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let sorted = values.sorted()
        return sorted[sorted.count / 2]
    }
}

/// Points hashed into cubic cells, for counting the points near a place.
struct PointGrid {
    private let cell: Double
    private var cells: [SIMD3<Int>: [Vector3]] = [:]

    init(_ points: [Vector3], cell: Double) {
        self.cell = cell
        for point in points { cells[key(point), default: []].append(point) }
    }

    private func key(_ point: Vector3) -> SIMD3<Int> {
        let p = point / cell
        return SIMD3(Int(p.x.rounded(.down)), Int(p.y.rounded(.down)), Int(p.z.rounded(.down)))
    }

    /// The points within `radius` (at most the cell size) of `point`.
    func count(within radius: Double, of point: Vector3) -> Int {
        let centre = key(point), squared = radius * radius
        var total = 0
        for dz in -1...1 { for dy in -1...1 { for dx in -1...1 {
            guard let members = cells[centre &+ SIMD3(dx, dy, dz)] else { continue }
            for member in members where ((member - point) * (member - point)).sum() <= squared { total += 1 }
        } } }
        return total
    }
}
