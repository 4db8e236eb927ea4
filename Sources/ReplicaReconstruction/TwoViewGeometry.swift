import CLinearAlgebra
import Foundation
import ReplicaCore
import ReplicaGeometry

/// What the geometric verification of an image pair found.
public enum TwoViewConfiguration: String, Equatable, Sendable {
    /// Too few correspondences agree with any model: the matches are not trusted.
    case unverified
    /// An essential matrix (both cameras known) explains the inliers, with a relative pose.
    case calibrated
    /// A fundamental matrix (a camera unknown) explains the inliers.
    case uncalibrated
    /// A homography explains nearly as many inliers as E or F: a planar scene or a pure rotation, verified
    /// but degenerate for initialising a reconstruction.
    case planarOrPanoramic
}

/// How an image pair is verified; `validate()` before use.
public struct TwoViewOptions: Equatable, Sendable {
    /// The robust search of each model; its threshold in pixels is divided by the mean focal length for E.
    public var robust = RobustOptions()
    /// The fewest inliers a verified pair has.
    public var minimumInliers = 15
    /// Above this ratio of homography inliers to E (or F) inliers, a fraction, the pair is planar or panoramic
    /// (COLMAP's 0.8).
    public var planarInlierRatio = 0.8
    /// Whether the fundamental matrix's minimal samples take seven correspondences (else eight).
    public var usesSevenPointSolver = true

    public init(robust: RobustOptions = RobustOptions(), minimumInliers: Int = 15, planarInlierRatio: Double = 0.8,
                usesSevenPointSolver: Bool = true) {
        self.robust = robust
        self.minimumInliers = minimumInliers
        self.planarInlierRatio = planarInlierRatio
        self.usesSevenPointSolver = usesSevenPointSolver
    }

    /// Throws when a setting makes no sense.
    public func validate() throws {
        try robust.validate()
        guard minimumInliers >= 8 else {
            throw OptionsError("the minimum inliers must be at least 8 (the 8-point refit), not \(minimumInliers)")
        }
        guard planarInlierRatio.isFinite, planarInlierRatio > 0 else {
            throw OptionsError("the planar inlier ratio must be a positive fraction, not \(planarInlierRatio)")
        }
    }
}

/// The geometry of an image pair: its configuration, inliers and models.
public struct TwoViewResult: Equatable, Sendable {
    public var configuration: TwoViewConfiguration
    /// One flag per correspondence: whether it is an inlier of the model the configuration rests on (E or F,
    /// or H where those found too few).
    public var inlierMask: [Bool]
    /// The number of `true` flags in `inlierMask`.
    public var inlierCount: Int
    /// E, on normalised image points (`x2ᵀ · E · x1 = 0`); with both cameras.
    public var essential: Matrix3?
    /// F, on pixels; estimated without both cameras, derived from E (K₂⁻ᵀ · E · K₁⁻¹) with them.
    public var fundamental: Matrix3?
    /// H, on pixels (`x2 ∼ H · x1`), normalised to H₃₃ = 1 where it can be.
    public var homography: Matrix3?
    /// The motion from camera 1's coordinates to camera 2's, |t| = 1; with both cameras.
    public var cam2FromCam1: Rigid3?
    /// The inliers of E (or F) and of H.
    public var epipolarInlierCount = 0
    public var homographyInlierCount = 0

    /// An unverified pair of `count` correspondences.
    public static func unverified(count: Int) -> TwoViewResult {
        TwoViewResult(configuration: .unverified, inlierMask: Array(repeating: false, count: count), inlierCount: 0)
    }
}

/// Geometric verification of an image pair: robust E (or F) and H, and the pair's configuration.
public enum TwoViewGeometry {
    /// Verifies the correspondences `points1[i] ↔ points2[i]` (pixels): E and the relative pose when both
    /// cameras are known, F otherwise, H always; `.unverified` below `options.minimumInliers`.
    public static func verify(_ points1: [Vector2], _ points2: [Vector2], camera1: PinholeCamera?,
                              camera2: PinholeCamera?, options: TwoViewOptions = TwoViewOptions()) -> TwoViewResult {
        precondition(points1.count == points2.count, "a correspondence has one point in each image")
        guard points1.count >= options.minimumInliers else { return .unverified(count: points1.count) }
        var result = TwoViewResult.unverified(count: points1.count)
        var epipolarMask: [Bool] = []
        if let camera1, let camera2 {
            epipolarMask = estimateEssential(points1, points2, camera1, camera2, options: options, into: &result)
        } else {
            let problem = FundamentalMatrixProblem(points1: points1, points2: points2,
                                                   usesSevenPointSolver: options.usesSevenPointSolver)
            if let estimate = RobustEstimation.estimate(problem, threshold: options.robust.maximumErrorPixels,
                                                        options: options.robust) {
                result.fundamental = estimate.model
                result.epipolarInlierCount = estimate.inlierCount
                epipolarMask = estimate.inlierMask
            }
        }

        let homographyProblem = HomographyProblem(points1: points1, points2: points2)
        var homographyMask: [Bool] = []
        if let estimate = RobustEstimation.estimate(homographyProblem, threshold: options.robust.maximumErrorPixels,
                                                    options: options.robust) {
            result.homography = estimate.model
            result.homographyInlierCount = estimate.inlierCount
            homographyMask = estimate.inlierMask
        }

        classify(&result, epipolarMask: epipolarMask, homographyMask: homographyMask,
                 calibrated: camera1 != nil && camera2 != nil, options: options)
        return result
    }

    /// Robust E on normalised points, its pose from the inliers and F from it; E's inlier mask.
    private static func estimateEssential(_ points1: [Vector2], _ points2: [Vector2], _ camera1: PinholeCamera,
                                          _ camera2: PinholeCamera, options: TwoViewOptions,
                                          into result: inout TwoViewResult) -> [Bool] {
        let normalized1 = points1.map { normalizedPoint(camera1, $0) }
        let normalized2 = points2.map { normalizedPoint(camera2, $0) }
        let meanFocal = (camera1.focalX + camera1.focalY + camera2.focalX + camera2.focalY) / 4
        let problem = EssentialMatrixProblem(points1: normalized1, points2: normalized2)
        let threshold = options.robust.maximumErrorPixels / meanFocal
        guard meanFocal > 0,
              let estimate = RobustEstimation.estimate(problem, threshold: threshold, options: options.robust)
        else { return [] }

        // A final robust refinement: MSAC's least-squares refits give the outliers that happen to lie within the
        // threshold (a few per cent) full weight, which tilts the translation direction by degrees.
        let inliers = estimate.inlierMask.indices.filter { estimate.inlierMask[$0] }
        let essential = EssentialMatrix.refined(estimate.model, inliers.map { normalized1[$0] },
                                                inliers.map { normalized2[$0] },
                                                cauchyScale: threshold * refinementScaleFraction)
        let mask = problem.squaredResiduals(of: essential).map { $0 <= threshold * threshold }
        let refinedInliers = mask.indices.filter { mask[$0] }
        result.essential = essential
        result.epipolarInlierCount = refinedInliers.count
        result.cam2FromCam1 = EssentialMatrix.pose(essential, refinedInliers.map { normalized1[$0] },
                                                   refinedInliers.map { normalized2[$0] }).cam2FromCam1
        result.fundamental = FundamentalMatrix.normalizedScale(
            inverseCalibration(camera2).transposed * essential * inverseCalibration(camera1))
        return mask
    }

    /// The Cauchy scale of the final refinement of E, as a fraction of the inlier threshold (1 px of 4 px).
    static let refinementScaleFraction = 0.25

    /// Sets the configuration and the inliers from the two models' inlier counts.
    private static func classify(_ result: inout TwoViewResult, epipolarMask: [Bool], homographyMask: [Bool],
                                 calibrated: Bool, options: TwoViewOptions) {
        let epipolar = result.epipolarInlierCount, planar = result.homographyInlierCount
        let epipolarHolds = epipolar >= options.minimumInliers, planarHolds = planar >= options.minimumInliers
        guard epipolarHolds || planarHolds else {
            result.configuration = .unverified
            return
        }
        let mask = epipolarHolds ? epipolarMask : homographyMask
        result.inlierMask = mask
        result.inlierCount = mask.filter { $0 }.count
        if planarHolds && Double(planar) > options.planarInlierRatio * Double(epipolar) {
            result.configuration = .planarOrPanoramic
        } else {
            result.configuration = calibrated ? .calibrated : .uncalibrated
        }
    }

    /// The x and y of the ray through a pixel at z = 1.
    static func normalizedPoint(_ camera: PinholeCamera, _ pixel: Vector2) -> Vector2 {
        let ray = camera.ray(through: pixel)
        return Vector2(ray.x, ray.y)
    }

    /// K⁻¹ of a pinhole camera.
    static func inverseCalibration(_ camera: PinholeCamera) -> Matrix3 {
        Matrix3([1 / camera.focalX, 0, -camera.principalX / camera.focalX,
                 0, 1 / camera.focalY, -camera.principalY / camera.focalY, 0, 0, 1])
    }
}

/// Hartley's normalisation of a point set: the centroid moved to the origin and the mean distance from it
/// scaled to √2, which keeps the linear systems of the solvers well conditioned.
struct PointNormalization {
    let center: Vector2
    let scale: Double

    /// nil when the points are all (numerically) the same.
    init?(_ points: [Vector2]) {
        guard !points.isEmpty else { return nil }
        let center = points.reduce(Vector2.zero, +) / Double(points.count)
        let meanDistance = points.reduce(0) { total, point in
            let offset = point - center
            return total + (offset * offset).sum().squareRoot()
        } / Double(points.count)
        guard meanDistance.isFinite, meanDistance > 1e-12 * (1 + abs(center.x) + abs(center.y)) else { return nil }
        self.center = center
        scale = 2.0.squareRoot() / meanDistance
    }

    func apply(_ point: Vector2) -> Vector2 { (point - center) * scale }

    /// The normalisation as a 3×3 matrix on homogeneous points.
    var matrix: Matrix3 { Matrix3([scale, 0, -scale * center.x, 0, scale, -scale * center.y, 0, 0, 1]) }

    /// The inverse of `matrix`.
    var inverseMatrix: Matrix3 { Matrix3([1 / scale, 0, center.x, 0, 1 / scale, center.y, 0, 0, 1]) }
}

/// The dense linear algebra of the solvers, through LAPACKE, on row-major matrices.
enum DenseLinearAlgebra {
    /// The `dimension` right singular vectors of the smallest singular values of a rowCount × columnCount
    /// matrix (the null space of a consistent system, its least-squares one otherwise); nil when the rank is
    /// below columnCount − dimension (a degenerate configuration) or LAPACK fails.
    ///
    /// Matrices of up to `smallColumns` columns — every minimal solver's and refit's here — are reduced by a
    /// Householder QR to their square R and decomposed by one-sided Jacobi rotations, in this code: LAPACK's
    /// general SVD spends most of its time on set-up at these sizes, and RANSAC calls this thousands of times
    /// per image pair.
    static func nullSpace(_ matrix: [Double], rowCount: Int, columnCount: Int, dimension: Int) -> [[Double]]? {
        precondition(matrix.count == rowCount * columnCount && dimension >= 1 && dimension <= columnCount)
        let rank = columnCount - dimension
        guard rank <= min(rowCount, columnCount), matrix.allSatisfy(\.isFinite) else { return nil }
        if rowCount == rank {
            return exactNullSpace(matrix, rowCount: rowCount, columnCount: columnCount)
        }
        if columnCount <= smallColumns {
            return smallNullSpace(matrix, rowCount: rowCount, columnCount: columnCount, dimension: dimension)
        }
        var a = matrix, dummy = [0.0]
        var singular = [Double](repeating: 0, count: min(rowCount, columnCount))
        var vt = [Double](repeating: 0, count: columnCount * columnCount)
        var superb = [Double](repeating: 0, count: max(1, min(rowCount, columnCount) - 1))
        let info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "A")),
                                  Int32(rowCount), Int32(columnCount), &a, Int32(columnCount), &singular, &dummy,
                                  1, &vt, Int32(columnCount), &superb)
        guard info == 0, let largest = singular.first, largest > 0 else { return nil }
        // A singular value this far below the largest is rounding noise: the data do not fix the model.
        if rank > 0 && singular[rank - 1] <= 1e-10 * largest { return nil }
        return (rank..<columnCount).map { row in Array(vt[(row * columnCount)..<((row + 1) * columnCount)]) }
    }

    /// The widest matrix `nullSpace` decomposes itself.
    static let smallColumns = 12

    /// `nullSpace` of a minimal system, as many rows as its rank must be (a RANSAC sample): Gauss–Jordan
    /// elimination with full pivoting, then the basis made orthonormal — a few hundred operations where an SVD
    /// takes tens of thousands, and RANSAC asks for thousands per image pair. Nil when a pivot falls below
    /// 1e-10 of the largest entry (the sample is degenerate).
    private static func exactNullSpace(_ matrix: [Double], rowCount m: Int, columnCount n: Int) -> [[Double]]? {
        var a = matrix
        var columnOrder = Array(0..<n)
        let scale = matrix.reduce(0) { max($0, abs($1)) }
        guard scale > 0 else { return nil }
        for k in 0..<m {
            // The largest remaining entry becomes the pivot.
            var best = 0.0, pivotRow = k, pivotColumn = k
            for i in k..<m {
                for j in k..<n where abs(a[i * n + j]) > best {
                    best = abs(a[i * n + j])
                    pivotRow = i
                    pivotColumn = j
                }
            }
            guard best > 1e-10 * scale else { return nil }
            if pivotRow != k {
                for j in 0..<n { a.swapAt(k * n + j, pivotRow * n + j) }
            }
            if pivotColumn != k {
                for i in 0..<m { a.swapAt(i * n + k, i * n + pivotColumn) }
                columnOrder.swapAt(k, pivotColumn)
            }
            let inverse = 1 / a[k * n + k]
            for j in k..<n { a[k * n + j] *= inverse }
            for i in 0..<m where i != k {
                let factor = a[i * n + k]
                guard factor != 0 else { continue }
                for j in k..<n { a[i * n + j] -= factor * a[k * n + j] }
            }
        }
        // [I | F] after the column permutation: each free column f gives x_f = 1, x_pivot(i) = −F[i][f].
        var basis: [[Double]] = []
        for free in m..<n {
            var vector = [Double](repeating: 0, count: n)
            vector[columnOrder[free]] = 1
            for i in 0..<m { vector[columnOrder[i]] = -a[i * n + free] }
            // Gram–Schmidt against the vectors before it, then unit length.
            for previous in basis {
                let dot = zip(vector, previous).reduce(0) { $0 + $1.0 * $1.1 }
                for j in 0..<n { vector[j] -= dot * previous[j] }
            }
            let length = vector.reduce(0) { $0 + $1 * $1 }.squareRoot()
            guard length > 0 else { return nil }
            basis.append(vector.map { $0 / length })
        }
        return basis
    }

    /// `nullSpace` for a narrow matrix: R of A = QR (A padded with zero rows when it is wide), then the
    /// one-sided Jacobi SVD of R, whose right singular vectors are A's.
    private static func smallNullSpace(_ matrix: [Double], rowCount: Int, columnCount n: Int,
                                       dimension: Int) -> [[Double]]? {
        var r = upperTriangle(matrix, rowCount: rowCount, columnCount: n)
        // Columns of R are rotated pairwise until orthogonal; V collects the rotations.
        var v = [Double](repeating: 0, count: n * n)
        for i in 0..<n { v[i * n + i] = 1 }
        // Columns this small are zero to rounding (a minimal system's null space): turning them against each
        // other changes nothing that matters, and their rounding noise would never pass the test of
        // orthogonality.
        let negligible = 1e-28 * r.reduce(0) { $0 + $1 * $1 }
        r.withUnsafeMutableBufferPointer { r in
            v.withUnsafeMutableBufferPointer { v in
                for _ in 0..<40 {
                    var rotated = false
                    for p in 0..<(n - 1) {
                        for q in (p + 1)..<n where rotate(r, v, n, p, q, negligible: negligible) { rotated = true }
                    }
                    if !rotated { break }
                }
            }
        }
        var singular = [Double](repeating: 0, count: n)
        for j in 0..<n {
            var sum = 0.0
            for k in 0..<n { sum += r[k * n + j] * r[k * n + j] }
            singular[j] = sum.squareRoot()
        }
        let order = (0..<n).sorted { singular[$0] > singular[$1] }
        let rank = n - dimension
        let largest = singular[order[0]]
        guard largest > 0 else { return nil }
        if rank > 0 && singular[order[rank - 1]] <= 1e-10 * largest { return nil }
        return order[rank...].map { column in (0..<n).map { v[$0 * n + column] } }
    }

    /// One Jacobi rotation of columns p and q of R (and V) that makes them orthogonal; false when they
    /// already are, to 1e-13 of their lengths, or one of them is negligible.
    @inline(__always)
    private static func rotate(_ r: UnsafeMutableBufferPointer<Double>, _ v: UnsafeMutableBufferPointer<Double>,
                               _ n: Int, _ p: Int, _ q: Int, negligible: Double) -> Bool {
        var alpha = 0.0, beta = 0.0, gamma = 0.0
        for k in 0..<n {
            let a = r[k * n + p], b = r[k * n + q]
            alpha += a * a
            beta += b * b
            gamma += a * b
        }
        guard min(alpha, beta) > negligible, abs(gamma) > 1e-13 * (alpha * beta).squareRoot() else { return false }
        let zeta = (beta - alpha) / (2 * gamma)
        let t = (zeta >= 0 ? 1 : -1) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
        let c = 1 / (1 + t * t).squareRoot(), s = c * t
        for k in 0..<n {
            let a = r[k * n + p], b = r[k * n + q]
            r[k * n + p] = c * a - s * b
            r[k * n + q] = s * a + c * b
            let x = v[k * n + p], y = v[k * n + q]
            v[k * n + p] = c * x - s * y
            v[k * n + q] = s * x + c * y
        }
        return true
    }

    /// The n × n upper triangle R of a Householder QR of the rowCount × n row-major matrix (rows of zeros
    /// below a wide matrix's own): A's right singular vectors are R's.
    private static func upperTriangle(_ matrix: [Double], rowCount m: Int, columnCount n: Int) -> [Double] {
        let rows = max(m, n)
        var a = matrix + [Double](repeating: 0, count: (rows - m) * n)
        for j in 0..<n {
            var norm = 0.0
            for i in j..<rows { norm += a[i * n + j] * a[i * n + j] }
            norm = norm.squareRoot()
            guard norm > 0 else { continue }
            let alpha = a[j * n + j] > 0 ? -norm : norm
            // v = x − α e₁, H = I − 2 v vᵀ / vᵀv, applied to the columns j… of the rows j….
            a[j * n + j] -= alpha
            var vv = 0.0
            for i in j..<rows { vv += a[i * n + j] * a[i * n + j] }
            if vv > 0 {
                for column in (j + 1)..<max(j + 1, n) {
                    var dot = 0.0
                    for i in j..<rows { dot += a[i * n + j] * a[i * n + column] }
                    let factor = 2 * dot / vv
                    for i in j..<rows { a[i * n + column] -= factor * a[i * n + j] }
                }
            }
            a[j * n + j] = alpha
            for i in (j + 1)..<rows { a[i * n + j] = 0 }
        }
        return Array(a[0..<(n * n)])
    }

    /// X with A · X = B for a square `order` × `order` A and `count` right-hand sides B; nil when A is singular.
    static func solve(_ matrix: [Double], order: Int, rightHandSides: [Double], count: Int) -> [Double]? {
        precondition(matrix.count == order * order && rightHandSides.count == order * count)
        guard matrix.allSatisfy(\.isFinite), rightHandSides.allSatisfy(\.isFinite) else { return nil }
        var a = matrix, b = rightHandSides
        var pivots = [Int32](repeating: 0, count: order)
        let info = LAPACKE_dgesv(LAPACK_ROW_MAJOR, Int32(order), Int32(count), &a, Int32(order), &pivots, &b,
                                 Int32(count))
        guard info == 0, b.allSatisfy(\.isFinite) else { return nil }
        return b
    }

    /// The eigenvalues of a square matrix: real and imaginary parts; nil when LAPACK fails.
    static func eigenvalues(_ matrix: [Double], order: Int) -> (real: [Double], imaginary: [Double])? {
        var a = matrix, left = [0.0], right = [0.0]
        var real = [Double](repeating: 0, count: order), imaginary = [Double](repeating: 0, count: order)
        let info = LAPACKE_dgeev(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "N")),
                                 Int32(order), &a, Int32(order), &real, &imaginary, &left, 1, &right, 1)
        return info == 0 ? (real, imaginary) : nil
    }

    /// The right eigenvectors of the real eigenvalues of a square matrix (complex pairs are left out).
    static func realEigenvectors(_ matrix: [Double], order: Int) -> [[Double]] {
        guard matrix.allSatisfy(\.isFinite) else { return [] }
        var a = matrix, dummy = [0.0]
        var real = [Double](repeating: 0, count: order), imaginary = [Double](repeating: 0, count: order)
        var vectors = [Double](repeating: 0, count: order * order)
        let info = LAPACKE_dgeev(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "N")), CChar(UInt8(ascii: "V")),
                                 Int32(order), &a, Int32(order), &real, &imaginary, &dummy, 1, &vectors,
                                 Int32(order))
        guard info == 0 else { return [] }
        // Row-major: eigenvector j is column j.
        return (0..<order).filter { imaginary[$0] == 0 }.map { column in
            (0..<order).map { vectors[$0 * order + column] }
        }
    }

    /// The real roots of c₀·λⁿ + c₁·λⁿ⁻¹ + … + cₙ (highest degree first), as the eigenvalues of its companion
    /// matrix; leading coefficients that are negligible against the largest are dropped.
    static func realPolynomialRoots(_ coefficients: [Double]) -> [Double] {
        let largest = coefficients.map(abs).max() ?? 0
        guard largest > 0, largest.isFinite else { return [] }
        let trimmed = Array(coefficients.drop { abs($0) <= 1e-14 * largest })
        let degree = trimmed.count - 1
        guard degree >= 1 else { return [] }
        var companion = [Double](repeating: 0, count: degree * degree)
        for column in 0..<degree { companion[column] = -trimmed[column + 1] / trimmed[0] }
        for row in 1..<degree { companion[row * degree + row - 1] = 1 }
        guard let (real, imaginary) = eigenvalues(companion, order: degree) else { return [] }
        return (0..<degree).filter { abs(imaginary[$0]) <= 1e-10 * max(1, abs(real[$0])) }.map { real[$0] }
    }
}
