import Foundation
import ReplicaGeometry

/// The homography H between two views of a plane, or of any scene under a pure rotation (`x2 ∼ H · x1`):
/// the normalised direct linear transform and the transfer error.
public enum Homography {
    /// The least-squares H through four or more correspondences by the normalised DLT; nil for a degenerate
    /// configuration (three of four points on a line, all points the same).
    public static func directLinearTransform(_ points1: [Vector2], _ points2: [Vector2]) -> Matrix3? {
        guard points1.count == points2.count, points1.count >= 4,
              let normalization1 = PointNormalization(points1), let normalization2 = PointNormalization(points2)
        else { return nil }
        var rows: [Double] = []
        rows.reserveCapacity(points1.count * 18)
        for (p1, p2) in zip(points1.map(normalization1.apply), points2.map(normalization2.apply)) {
            // The two independent rows of x2 × (H · x1) = 0.
            rows += [0, 0, 0, -p1.x, -p1.y, -1, p2.y * p1.x, p2.y * p1.y, p2.y]
            rows += [p1.x, p1.y, 1, 0, 0, 0, -p2.x * p1.x, -p2.x * p1.y, -p2.x]
        }
        guard let null = DenseLinearAlgebra.nullSpace(rows, rowCount: 2 * points1.count, columnCount: 9,
                                                      dimension: 1) else { return nil }
        let homography = normalization2.inverseMatrix * Matrix3(null[0]) * normalization1.matrix
        let scale = homography.rows.2.z
        return abs(scale) > 1e-12 ? homography * (1 / scale) : FundamentalMatrix.normalizedScale(homography)
    }

    /// Where H takes a point of image 1; nil when it goes to infinity.
    public static func transfer(_ homography: Matrix3, _ point1: Vector2) -> Vector2? {
        let mapped = homography * Vector3(point1.x, point1.y, 1)
        guard abs(mapped.z) > 1e-12 else { return nil }
        return Vector2(mapped.x / mapped.z, mapped.y / mapped.z)
    }

    /// The squared transfer error |x2 − H · x1|², in the units² of the points (pixels² for pixels);
    /// infinite when H sends x1 to infinity.
    public static func squaredTransferError(_ homography: Matrix3, _ point1: Vector2, _ point2: Vector2) -> Double {
        guard let mapped = transfer(homography, point1) else { return .infinity }
        let difference = mapped - point2
        return (difference * difference).sum()
    }
}

/// Homography estimation over pixel correspondences for `RobustEstimation`: the 4-point DLT as minimal solver,
/// the DLT on all inliers as refit, squared transfer errors in pixels².
public struct HomographyProblem: RobustProblem {
    public let points1: [Vector2]
    public let points2: [Vector2]

    public init(points1: [Vector2], points2: [Vector2]) {
        precondition(points1.count == points2.count, "a correspondence has one point in each image")
        self.points1 = points1
        self.points2 = points2
    }

    public var count: Int { points1.count }
    public var minimalSampleSize: Int { 4 }

    public func fitMinimal(_ sample: [Int]) -> [Matrix3] { fit(sample) }

    public func fitLeastSquares(_ inliers: [Int], initial: Matrix3) -> [Matrix3] { fit(inliers) }

    private func fit(_ indices: [Int]) -> [Matrix3] {
        Homography.directLinearTransform(indices.map { points1[$0] }, indices.map { points2[$0] }).map { [$0] }
            ?? []
    }

    public func squaredResiduals(of model: Matrix3) -> [Double] {
        // Scalar arithmetic on the nine entries rather than Matrix3 products: this runs once per sample.
        let h = model.values
        return (0..<points1.count).map { index in
            let p = points1[index], q = points2[index]
            let w = h[6] * p.x + h[7] * p.y + h[8]
            guard abs(w) > 1e-12 else { return .infinity }
            let dx = (h[0] * p.x + h[1] * p.y + h[2]) / w - q.x, dy = (h[3] * p.x + h[4] * p.y + h[5]) / w - q.y
            return dx * dx + dy * dy
        }
    }
}
