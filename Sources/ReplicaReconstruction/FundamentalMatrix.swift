import Foundation
import ReplicaGeometry

/// The fundamental matrix F of two uncalibrated views (`x2ᵀ · F · x1 = 0` for pixels x1, x2): Hartley's
/// normalised 8-point method, the 7-point minimal solver, the rank-2 projection and the Sampson distance.
public enum FundamentalMatrix {
    /// The least-squares F through eight or more correspondences by Hartley's normalised 8-point method, with
    /// rank 2 enforced by zeroing the smallest singular value; nil for a degenerate configuration.
    public static func eightPoint(_ points1: [Vector2], _ points2: [Vector2]) -> Matrix3? {
        guard points1.count == points2.count, points1.count >= 8,
              let normalization1 = PointNormalization(points1), let normalization2 = PointNormalization(points2)
        else { return nil }
        let rows = epipolarRows(points1.map(normalization1.apply), points2.map(normalization2.apply))
        guard let null = DenseLinearAlgebra.nullSpace(rows, rowCount: points1.count, columnCount: 9,
                                                      dimension: 1) else { return nil }
        let rankTwo = enforcingRankTwo(Matrix3(null[0]))
        return normalizedScale(normalization2.matrix.transposed * rankTwo * normalization1.matrix)
    }

    /// Every F (one to three) through exactly seven correspondences: the null space of the seven epipolar
    /// constraints is a pencil F₁ + λ·(F₂ − F₁), and det F = 0 is a cubic in λ.
    public static func sevenPoint(_ points1: [Vector2], _ points2: [Vector2]) -> [Matrix3] {
        guard points1.count == 7, points2.count == 7,
              let normalization1 = PointNormalization(points1), let normalization2 = PointNormalization(points2)
        else { return [] }
        let rows = epipolarRows(points1.map(normalization1.apply), points2.map(normalization2.apply))
        guard let null = DenseLinearAlgebra.nullSpace(rows, rowCount: 7, columnCount: 9, dimension: 2)
        else { return [] }
        let first = Matrix3(null[0]), second = Matrix3(null[1])
        let pencil = { (lambda: Double) in first * (1 - lambda) + second * lambda }

        // det(pencil(λ)) is a cubic a·λ³ + b·λ² + c·λ + d; four samples of it give its coefficients.
        let d = pencil(0).determinant, atOne = pencil(1).determinant
        let atMinusOne = pencil(-1).determinant, atTwo = pencil(2).determinant
        let b = (atOne + atMinusOne) / 2 - d, oddSum = (atOne - atMinusOne) / 2
        let a = (atTwo - 4 * b - d - 2 * oddSum) / 6, c = oddSum - a
        return DenseLinearAlgebra.realPolynomialRoots([a, b, c, d]).map { lambda in
            normalizedScale(normalization2.matrix.transposed * pencil(lambda) * normalization1.matrix)
        }
    }

    /// The squared Sampson distance of a correspondence to F: the first-order squared distance, in the units
    /// of the points (pixels² for pixels), from (x1, x2) to the nearest pair that satisfies `x2ᵀ · F · x1 = 0`.
    public static func squaredSampsonDistance(_ matrix: Matrix3, _ point1: Vector2, _ point2: Vector2) -> Double {
        let x1 = Vector3(point1.x, point1.y, 1), x2 = Vector3(point2.x, point2.y, 1)
        let line2 = matrix * x1, line1 = matrix.transposed * x2
        let error = x2.dot(line2)
        let gradient = line2.x * line2.x + line2.y * line2.y + line1.x * line1.x + line1.y * line1.y
        guard gradient > 0 else { return error == 0 ? 0 : .infinity }
        return error * error / gradient
    }

    /// `squaredSampsonDistance` of every correspondence, in scalar arithmetic on F's entries (this runs once
    /// per sample).
    public static func squaredSampsonDistances(_ matrix: Matrix3, _ points1: [Vector2],
                                               _ points2: [Vector2]) -> [Double] {
        let f = matrix.values
        return (0..<points1.count).map { index in
            let p = points1[index], q = points2[index]
            let a = f[0] * p.x + f[1] * p.y + f[2], b = f[3] * p.x + f[4] * p.y + f[5]
            let c = f[6] * p.x + f[7] * p.y + f[8]
            let d = f[0] * q.x + f[3] * q.y + f[6], e = f[1] * q.x + f[4] * q.y + f[7]
            let error = q.x * a + q.y * b + c
            let gradient = a * a + b * b + d * d + e * e
            guard gradient > 0 else { return error == 0 ? 0 : .infinity }
            return error * error / gradient
        }
    }

    /// The closest rank-2 matrix in the Frobenius norm: the smallest singular value set to zero.
    public static func enforcingRankTwo(_ matrix: Matrix3) -> Matrix3 {
        var svd = SVD3(matrix)
        svd.singularValues.z = 0
        return svd.reconstructed
    }

    /// One row of the linear system `A · vec(F) = 0` (F by rows) per correspondence.
    static func epipolarRows(_ points1: [Vector2], _ points2: [Vector2]) -> [Double] {
        var rows: [Double] = []
        rows.reserveCapacity(points1.count * 9)
        for (p1, p2) in zip(points1, points2) {
            rows += [p2.x * p1.x, p2.x * p1.y, p2.x, p2.y * p1.x, p2.y * p1.y, p2.y, p1.x, p1.y, 1]
        }
        return rows
    }

    /// The matrix scaled to Frobenius norm 1 (the scale of F means nothing).
    static func normalizedScale(_ matrix: Matrix3) -> Matrix3 {
        let norm = matrix.values.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > 0 ? matrix * (1 / norm) : matrix
    }
}

/// Fundamental-matrix estimation over pixel correspondences for `RobustEstimation`: the 7-point (or 8-point)
/// minimal solver, the 8-point least-squares refit, squared Sampson distances in pixels².
public struct FundamentalMatrixProblem: RobustProblem {
    public let points1: [Vector2]
    public let points2: [Vector2]
    /// Whether minimal samples take seven correspondences (up to three models each) instead of eight.
    public let usesSevenPointSolver: Bool

    public init(points1: [Vector2], points2: [Vector2], usesSevenPointSolver: Bool = true) {
        precondition(points1.count == points2.count, "a correspondence has one point in each image")
        self.points1 = points1
        self.points2 = points2
        self.usesSevenPointSolver = usesSevenPointSolver
    }

    public var count: Int { points1.count }
    public var minimalSampleSize: Int { usesSevenPointSolver ? 7 : 8 }

    public func fitMinimal(_ sample: [Int]) -> [Matrix3] {
        let sample1 = sample.map { points1[$0] }, sample2 = sample.map { points2[$0] }
        if usesSevenPointSolver { return FundamentalMatrix.sevenPoint(sample1, sample2) }
        return FundamentalMatrix.eightPoint(sample1, sample2).map { [$0] } ?? []
    }

    public func fitLeastSquares(_ inliers: [Int], initial: Matrix3) -> [Matrix3] {
        FundamentalMatrix.eightPoint(inliers.map { points1[$0] }, inliers.map { points2[$0] }).map { [$0] } ?? []
    }

    public func squaredResiduals(of model: Matrix3) -> [Double] {
        FundamentalMatrix.squaredSampsonDistances(model, points1, points2)
    }
}
