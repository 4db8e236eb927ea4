import Foundation
import ReplicaGeometry

/// The essential matrix E = [t]× · R of two calibrated views (`x2ᵀ · E · x1 = 0` for normalised image points,
/// `x2 = R · x1 + t` in camera coordinates): the 5-point solver, the four poses of an E, and cheirality.
public enum EssentialMatrix {
    /// Every E (up to ten) through five or more normalised correspondences (`PinholeCamera.ray`'s x and y).
    ///
    /// Stewénius' formulation of Nistér's solver: the null space of the epipolar constraints is
    /// E = x·X + y·Y + z·Z + W; det E = 0 and 2·E·Eᵀ·E − tr(E·Eᵀ)·E = 0 are ten cubics in (x, y, z), whose
    /// reduction on the ten cubic monomials gives the action matrix of x on the quotient ring; its real
    /// eigenvectors are the solutions. With more than five correspondences the null space is the
    /// least-squares one.
    public static func fivePoint(_ points1: [Vector2], _ points2: [Vector2]) -> [Matrix3] {
        guard points1.count == points2.count, points1.count >= 5 else { return [] }
        let rows = FundamentalMatrix.epipolarRows(points1, points2)
        guard let basis = DenseLinearAlgebra.nullSpace(rows, rowCount: points1.count, columnCount: 9,
                                                       dimension: 4) else { return [] }
        let constraints = CubicConstraints(x: basis[0], y: basis[1], z: basis[2], w: basis[3])
        guard let action = constraints.actionMatrixOfX() else { return [] }
        return DenseLinearAlgebra.realEigenvectors(action, order: 10).compactMap { vector in
            guard abs(vector[9]) > 1e-12 else { return nil }
            let x = vector[6] / vector[9], y = vector[7] / vector[9], z = vector[8] / vector[9]
            let values = (0..<9).map { x * basis[0][$0] + y * basis[1][$0] + z * basis[2][$0] + basis[3][$0] }
            guard values.allSatisfy(\.isFinite) else { return nil }
            return FundamentalMatrix.normalizedScale(Matrix3(values))
        }
    }

    /// The four motions an E allows, (R₁, t), (R₁, −t), (R₂, t), (R₂, −t), each with |t| = 1; only one puts
    /// the scene in front of both cameras.
    public static func candidatePoses(_ essential: Matrix3) -> [Rigid3] {
        let svd = SVD3(essential)
        // E and −E are the same constraint, so U and V may be flipped to rotations.
        let u = svd.u.determinant < 0 ? svd.u * -1 : svd.u
        let v = svd.v.determinant < 0 ? svd.v * -1 : svd.v
        let w = Matrix3([0, -1, 0, 1, 0, 0, 0, 0, 1])
        let rotation1 = u * w * v.transposed, rotation2 = u * w.transposed * v.transposed
        let translation = u.column(2).normalized
        return [Rigid3(rotation: rotation1, translation: translation),
                Rigid3(rotation: rotation1, translation: -translation),
                Rigid3(rotation: rotation2, translation: translation),
                Rigid3(rotation: rotation2, translation: -translation)]
    }

    /// Of the four motions of E, the one that puts the most correspondences in front of both cameras
    /// (triangulated by the midpoint of the rays), and that count.
    public static func pose(_ essential: Matrix3, _ points1: [Vector2],
                            _ points2: [Vector2]) -> (cam2FromCam1: Rigid3, pointsInFront: Int) {
        let counted = candidatePoses(essential).map { pose in
            (pose, zip(points1, points2).filter { isInFront(pose, $0, $1) }.count)
        }
        return counted.max { $0.1 < $1.1 }!
    }

    /// E refined on normalised correspondences (its inliers): Levenberg–Marquardt over the motion (a rotation
    /// and a translation direction, five parameters) that minimises the Sampson distances to [t]× · R, starting
    /// from the motion of `essential` that puts the most points in front.
    ///
    /// The loss is the sum of squares, or with a `cauchyScale` (normalised units) the Cauchy loss
    /// c²·log(1 + r²/c²), which keeps the few outliers that fall within the inlier threshold from pulling the
    /// poorly constrained translation direction.
    public static func refined(_ essential: Matrix3, _ points1: [Vector2], _ points2: [Vector2],
                               cauchyScale: Double? = nil, iterations: Int = 20) -> Matrix3 {
        guard points1.count >= 5 else { return essential }
        let loss = { (residuals: [Double]) -> Double in
            guard let c = cauchyScale else { return residuals.reduce(0) { $0 + $1 * $1 } }
            return residuals.reduce(0) { $0 + c * c * log1p($1 * $1 / (c * c)) }
        }
        var motion = pose(essential, points1, points2).cam2FromCam1
        var current = sampsonResiduals(motion, points1, points2)
        var cost = loss(current)
        var damping = 1e-3
        for _ in 0..<iterations {
            let jacobian = motionJacobian(motion, points1, points2, at: current)
            var normal = [Double](repeating: 0, count: 25), gradient = [Double](repeating: 0, count: 5)
            for (row, residual) in current.enumerated() {
                // Iteratively reweighted: the Cauchy loss's weight 1 / (1 + r²/c²) at the current residual.
                let weight = cauchyScale.map { 1 / (1 + residual * residual / ($0 * $0)) } ?? 1
                for i in 0..<5 {
                    gradient[i] -= weight * jacobian[5 * row + i] * residual
                    for j in 0..<5 { normal[5 * i + j] += weight * jacobian[5 * row + i] * jacobian[5 * row + j] }
                }
            }
            var improved = false
            while damping < 1e8 && !improved {
                var damped = normal
                for i in 0..<5 { damped[6 * i] += damping * max(normal[6 * i], 1e-12) }
                guard let step = DenseLinearAlgebra.solve(damped, order: 5, rightHandSides: gradient, count: 1)
                else { damping *= 10; continue }
                let candidate = perturbed(motion, step)
                let residuals = sampsonResiduals(candidate, points1, points2)
                let candidateCost = loss(residuals)
                if candidateCost < cost {
                    improved = true
                    let converged = cost - candidateCost <= 1e-12 * cost
                    (motion, current, cost, damping) = (candidate, residuals, candidateCost, max(damping / 10, 1e-12))
                    if converged { return essentialMatrix(of: motion) }
                } else {
                    damping *= 10
                }
            }
            if !improved { break }
        }
        return essentialMatrix(of: motion)
    }

    /// [t]× · R, scaled to Frobenius norm 1.
    public static func essentialMatrix(of cam2FromCam1: Rigid3) -> Matrix3 {
        let t = cam2FromCam1.translation
        let skew = Matrix3([0, -t.z, t.y, t.z, 0, -t.x, -t.y, t.x, 0])
        return FundamentalMatrix.normalizedScale(skew * cam2FromCam1.rotation)
    }

    /// The signed Sampson distances (normalised units) of the correspondences to the motion's E.
    private static func sampsonResiduals(_ motion: Rigid3, _ points1: [Vector2], _ points2: [Vector2]) -> [Double] {
        let essential = essentialMatrix(of: motion)
        return zip(points1, points2).map { p1, p2 in
            let x1 = Vector3(p1.x, p1.y, 1), x2 = Vector3(p2.x, p2.y, 1)
            let line2 = essential * x1, line1 = essential.transposed * x2
            let norm = (line2.x * line2.x + line2.y * line2.y + line1.x * line1.x + line1.y * line1.y).squareRoot()
            return norm > 0 ? x2.dot(line2) / norm : 0
        }
    }

    /// The motion moved by a step: a rotation vector (step 0–2) applied before it, and the translation moved
    /// in its tangent plane (step 3–4) and normalised.
    private static func perturbed(_ motion: Rigid3, _ step: [Double]) -> Rigid3 {
        let omega = Vector3(step[0], step[1], step[2])
        let rotation = omega.length > 0 ? Matrix3(rotationAbout: omega, angle: omega.length) * motion.rotation
            : motion.rotation
        let t = motion.translation
        let helper = abs(t.x) < 0.9 ? Vector3(1, 0, 0) : Vector3(0, 1, 0)
        let tangent1 = t.cross(helper).normalized, tangent2 = t.cross(tangent1)
        return Rigid3(rotation: rotation, translation: (t + tangent1 * step[3] + tangent2 * step[4]).normalized)
    }

    /// ∂residual/∂step by forward differences, row-major (one row of five per correspondence).
    private static func motionJacobian(_ motion: Rigid3, _ points1: [Vector2], _ points2: [Vector2],
                                       at residuals: [Double]) -> [Double] {
        let h = 1e-7
        var jacobian = [Double](repeating: 0, count: 5 * residuals.count)
        for parameter in 0..<5 {
            var step = [Double](repeating: 0, count: 5)
            step[parameter] = h
            let moved = sampsonResiduals(perturbed(motion, step), points1, points2)
            for row in residuals.indices { jacobian[5 * row + parameter] = (moved[row] - residuals[row]) / h }
        }
        return jacobian
    }

    /// Whether the point seen at x1 and x2 (normalised) triangulates in front of both cameras.
    public static func isInFront(_ cam2FromCam1: Rigid3, _ point1: Vector2, _ point2: Vector2) -> Bool {
        guard let depths = midpointDepths(cam2FromCam1, point1, point2) else { return false }
        return depths.0 > 0 && depths.1 > 0
    }

    /// The depths along the rays (z in camera 1, z in camera 2) of the closest approach of the two rays;
    /// nil for parallel rays.
    static func midpointDepths(_ cam2FromCam1: Rigid3, _ point1: Vector2,
                               _ point2: Vector2) -> (Double, Double)? {
        let ray1InCam2 = cam2FromCam1.rotation * Vector3(point1.x, point1.y, 1)
        let ray2 = Vector3(point2.x, point2.y, 1), t = cam2FromCam1.translation
        // Least squares of d1 · ray1 − d2 · ray2 = −t, by its 2×2 normal equations.
        let aa = ray1InCam2.dot(ray1InCam2), ab = ray1InCam2.dot(ray2), bb = ray2.dot(ray2)
        let determinant = aa * bb - ab * ab
        guard determinant > 1e-12 * aa * bb else { return nil }
        let rhs1 = -ray1InCam2.dot(t), rhs2 = ray2.dot(t)
        return ((bb * rhs1 + ab * rhs2) / determinant, (ab * rhs1 + aa * rhs2) / determinant)
    }
}

/// Essential-matrix estimation over normalised correspondences for `RobustEstimation`: the 5-point solver on
/// minimal samples and, as least-squares refit, on all inliers; squared Sampson distances in normalised units².
public struct EssentialMatrixProblem: RobustProblem {
    public let points1: [Vector2]
    public let points2: [Vector2]

    public init(points1: [Vector2], points2: [Vector2]) {
        precondition(points1.count == points2.count, "a correspondence has one point in each image")
        self.points1 = points1
        self.points2 = points2
    }

    public var count: Int { points1.count }
    public var minimalSampleSize: Int { 5 }

    public func fitMinimal(_ sample: [Int]) -> [Matrix3] {
        EssentialMatrix.fivePoint(sample.map { points1[$0] }, sample.map { points2[$0] })
    }

    /// The 5-point solutions on all inliers (an algebraic least-squares fit) and `initial` refined by
    /// Levenberg–Marquardt on the inliers' Sampson distances; the estimator keeps whichever scores best.
    public func fitLeastSquares(_ inliers: [Int], initial: Matrix3) -> [Matrix3] {
        let inliers1 = inliers.map { points1[$0] }, inliers2 = inliers.map { points2[$0] }
        return EssentialMatrix.fivePoint(inliers1, inliers2) + [EssentialMatrix.refined(initial, inliers1, inliers2)]
    }

    public func squaredResiduals(of model: Matrix3) -> [Double] {
        FundamentalMatrix.squaredSampsonDistances(model, points1, points2)
    }
}

/// The ten cubic constraints on E = x·X + y·Y + z·Z + W as polynomials in (x, y, z).
private struct CubicConstraints {
    let entries: [CubicPolynomial]

    init(x: [Double], y: [Double], z: [Double], w: [Double]) {
        entries = (0..<9).map { CubicPolynomial(linear: x[$0], y[$0], z[$0], w[$0]) }
    }

    /// The polynomial of E's entry (row, column).
    private func e(_ row: Int, _ column: Int) -> CubicPolynomial { entries[3 * row + column] }

    /// det E and the nine entries of 2·E·Eᵀ·E − tr(E·Eᵀ)·E.
    private var equations: [CubicPolynomial] {
        let eet = (0..<3).flatMap { i in
            (0..<3).map { j in (0..<3).reduce(CubicPolynomial()) { $0 + e(i, $1) * e(j, $1) } }
        }
        let trace = eet[0] + eet[4] + eet[8]
        var result: [CubicPolynomial] = []
        for i in 0..<3 {
            for j in 0..<3 {
                let product = (0..<3).reduce(CubicPolynomial()) { $0 + eet[3 * i + $1] * e($1, j) }
                result.append(product.scaled(2) + (trace * e(i, j)).scaled(-1))
            }
        }
        let minor0 = e(1, 1) * e(2, 2) + (e(1, 2) * e(2, 1)).scaled(-1)
        let minor1 = e(1, 0) * e(2, 2) + (e(1, 2) * e(2, 0)).scaled(-1)
        let minor2 = e(1, 0) * e(2, 1) + (e(1, 1) * e(2, 0)).scaled(-1)
        result.append(minor0 * e(0, 0) + (minor1 * e(0, 1)).scaled(-1) + minor2 * e(0, 2))
        return result
    }

    /// The 10×10 matrix A with A · b = x · b, for b the monomials x², xy, y², xz, yz, z², x, y, z, 1 at a
    /// solution; nil when the cubic monomials' block of the equations is singular.
    func actionMatrixOfX() -> [Double]? {
        let equations = self.equations
        var cubicBlock: [Double] = [], lowerBlock: [Double] = []
        for equation in equations {
            cubicBlock += equation.coefficients[0..<10]
            lowerBlock += equation.coefficients[10..<20]
        }
        // Reduced: each cubic monomial m_i = −Σ_j reduced[i][j] · b_j.
        guard let reduced = DenseLinearAlgebra.solve(cubicBlock, order: 10, rightHandSides: lowerBlock,
                                                     count: 10) else { return nil }
        var action = [Double](repeating: 0, count: 100)
        // x·x², x·xy, x·y², x·xz, x·yz, x·z² are the cubic monomials x³, x²y, xy², x²z, xyz, xz².
        for (row, cubic) in [0, 1, 2, 4, 5, 7].enumerated() {
            for column in 0..<10 { action[10 * row + column] = -reduced[10 * cubic + column] }
        }
        // x·x, x·y, x·z, x·1 are the basis monomials x², xy, xz, x.
        for (row, column) in [(6, 0), (7, 1), (8, 3), (9, 6)] { action[10 * row + column] = 1 }
        return action
    }
}

/// A polynomial of degree ≤ 3 in x, y, z; coefficients of x³, x²y, xy², y³, x²z, xyz, y²z, xz², yz², z³,
/// x², xy, y², xz, yz, z², x, y, z, 1, in that order (cubic monomials first, for the reduction).
private struct CubicPolynomial {
    static let exponents: [(Int, Int, Int)] = [
        (3, 0, 0), (2, 1, 0), (1, 2, 0), (0, 3, 0), (2, 0, 1), (1, 1, 1), (0, 2, 1), (1, 0, 2), (0, 1, 2),
        (0, 0, 3), (2, 0, 0), (1, 1, 0), (0, 2, 0), (1, 0, 1), (0, 1, 1), (0, 0, 2), (1, 0, 0), (0, 1, 0),
        (0, 0, 1), (0, 0, 0),
    ]
    /// The position of x^a y^b z^c at 16a + 4b + c.
    static let positions: [Int] = {
        var table = [Int](repeating: -1, count: 64)
        for (index, exponent) in exponents.enumerated() {
            table[16 * exponent.0 + 4 * exponent.1 + exponent.2] = index
        }
        return table
    }()

    var coefficients = [Double](repeating: 0, count: 20)

    init() {}

    /// a·x + b·y + c·z + d.
    init(linear a: Double, _ b: Double, _ c: Double, _ d: Double) {
        coefficients[16] = a
        coefficients[17] = b
        coefficients[18] = c
        coefficients[19] = d
    }

    func scaled(_ factor: Double) -> CubicPolynomial {
        var result = self
        for index in 0..<20 { result.coefficients[index] *= factor }
        return result
    }

    static func + (p: CubicPolynomial, q: CubicPolynomial) -> CubicPolynomial {
        var result = p
        for index in 0..<20 { result.coefficients[index] += q.coefficients[index] }
        return result
    }

    /// The product; the factors' degrees must add up to at most 3.
    static func * (p: CubicPolynomial, q: CubicPolynomial) -> CubicPolynomial {
        var result = CubicPolynomial()
        for i in 0..<20 where p.coefficients[i] != 0 {
            let a = exponents[i]
            for j in 0..<20 where q.coefficients[j] != 0 {
                let b = exponents[j]
                precondition(a.0 + b.0 + a.1 + b.1 + a.2 + b.2 <= 3, "a product of degree above 3")
                let position = positions[16 * (a.0 + b.0) + 4 * (a.1 + b.1) + (a.2 + b.2)]
                result.coefficients[position] += p.coefficients[i] * q.coefficients[j]
            }
        }
        return result
    }
}
