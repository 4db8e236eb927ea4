import Foundation

/// The singular value decomposition `A = U · diag(σ) · Vᵀ` of a 3×3 matrix, by one-sided Jacobi rotations.
///
/// `U` and `V` are orthogonal (either may be a reflection, determinant −1) and `σ` is sorted from largest to
/// smallest, all ≥ 0. For a rank-deficient matrix the columns of `U` that belong to zero singular values are
/// completed to an orthonormal basis, so `U` is always orthogonal.
public struct SVD3: Sendable {
    public var u: Matrix3
    /// σ₀ ≥ σ₁ ≥ σ₂ ≥ 0.
    public var singularValues: Vector3
    public var v: Matrix3

    /// Decomposes `matrix`.
    public init(_ matrix: Matrix3) {
        var columns = [matrix.column(0), matrix.column(1), matrix.column(2)]
        var basis = [Vector3(1, 0, 0), Vector3(0, 1, 0), Vector3(0, 0, 1)]
        Self.orthogonalize(&columns, basis: &basis)

        // Sort by column length; each permutation moves the matching column of V with it.
        let order = (0..<3).sorted { columns[$0].length > columns[$1].length }
        let sorted = order.map { columns[$0] }
        let sigma = Vector3(sorted[0].length, sorted[1].length, sorted[2].length)
        singularValues = sigma
        // A·V = the rotated columns, so the rotated basis vectors are the columns of V.
        v = Matrix3(rows: basis[order[0]], basis[order[1]], basis[order[2]]).transposed
        u = Self.leftBasis(sorted, sigma: sigma)
    }

    /// `U · diag(σ) · Vᵀ`: the matrix again, up to rounding.
    public var reconstructed: Matrix3 {
        (0..<3).reduce(Matrix3([0, 0, 0, 0, 0, 0, 0, 0, 0])) { sum, k in
            sum + outerProduct(u.column(k), v.column(k)) * singularValues[k]
        }
    }

    /// Rotates pairs of columns (and the same pairs of `basis`) until every pair is orthogonal.
    ///
    /// The test for a pair is relative (cosine of their angle below 1e-15), so small columns come out as
    /// orthogonal as large ones; 30 sweeps is far beyond the handful a 3×3 matrix needs.
    private static func orthogonalize(_ columns: inout [Vector3], basis: inout [Vector3]) {
        for _ in 0..<30 {
            var rotated = false
            for (p, q) in [(0, 1), (0, 2), (1, 2)] {
                let alpha = columns[p].dot(columns[p]), beta = columns[q].dot(columns[q])
                let gamma = columns[p].dot(columns[q])
                guard abs(gamma) > 1e-15 * (alpha * beta).squareRoot(), gamma != 0 else { continue }
                rotated = true
                let zeta = (beta - alpha) / (2 * gamma)
                let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                let c = 1 / (1 + t * t).squareRoot(), s = c * t
                (columns[p], columns[q]) = (c * columns[p] - s * columns[q], s * columns[p] + c * columns[q])
                (basis[p], basis[q]) = (c * basis[p] - s * basis[q], s * basis[p] + c * basis[q])
            }
            if !rotated { return }
        }
    }

    /// The columns of U: the normalized columns of A·V, completed where a singular value is (numerically) zero.
    private static func leftBasis(_ columns: [Vector3], sigma: Vector3) -> Matrix3 {
        // Below this a column is rounding noise whose direction means nothing.
        let negligible = max(sigma[0], .leastNormalMagnitude) * 1e-13
        let u0 = sigma[0] > negligible ? columns[0] / sigma[0] : Vector3(1, 0, 0)
        let u1 = sigma[1] > negligible ? columns[1] / sigma[1] : anyPerpendicular(to: u0)
        let u2 = sigma[2] > negligible ? columns[2] / sigma[2] : u0.cross(u1).normalized
        return Matrix3(rows: u0, u1, u2).transposed
    }

    /// A unit vector perpendicular to the unit vector `axis`.
    private static func anyPerpendicular(to axis: Vector3) -> Vector3 {
        // Crossing with the axis direction least aligned with `axis` keeps the result well away from zero.
        let magnitudes = Vector3(abs(axis.x), abs(axis.y), abs(axis.z))
        let helper = magnitudes.x <= magnitudes.y && magnitudes.x <= magnitudes.z ? Vector3(1, 0, 0)
            : magnitudes.y <= magnitudes.z ? Vector3(0, 1, 0) : Vector3(0, 0, 1)
        return axis.cross(helper).normalized
    }
}

/// The matrix `a · bᵀ`.
private func outerProduct(_ a: Vector3, _ b: Vector3) -> Matrix3 {
    Matrix3(rows: a * b.x, a * b.y, a * b.z).transposed
}
