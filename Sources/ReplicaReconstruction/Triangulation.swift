import Foundation
import ReplicaGeometry
import ReplicaCore

/// Which triangulated points a reconstruction keeps; `validate()` before use.
public struct TriangulationOptions: Equatable, Sendable {
    /// The smallest triangulation angle, in degrees (1.5°, as COLMAP's mapper uses): below it the depth along
    /// the rays is barely constrained.
    public var minimumAngleDegrees = 1.5
    /// The largest reprojection error in any view, in pixels (4 px, as COLMAP's mapper filters with).
    public var maximumReprojectionErrorPixels = 4.0

    public init(minimumAngleDegrees: Double = 1.5, maximumReprojectionErrorPixels: Double = 4) {
        self.minimumAngleDegrees = minimumAngleDegrees
        self.maximumReprojectionErrorPixels = maximumReprojectionErrorPixels
    }

    /// Throws when a setting makes no sense.
    public func validate() throws {
        guard minimumAngleDegrees.isFinite, minimumAngleDegrees >= 0, minimumAngleDegrees < 180 else {
            throw OptionsError("the minimum triangulation angle must lie in 0..<180 degrees, not "
                + "\(minimumAngleDegrees)")
        }
        guard maximumReprojectionErrorPixels.isFinite, maximumReprojectionErrorPixels > 0 else {
            throw OptionsError("the maximum reprojection error must be a positive number of pixels, not "
                + "\(maximumReprojectionErrorPixels)")
        }
    }
}

/// World points from their observations in posed images: the linear estimate, its refinement, and the checks
/// a new point of a track must pass.
public enum Triangulation {
    /// The point seen at the normalised, undistorted image points of the views (camFromWorld each), by the
    /// linear (DLT) least squares x·P₃ − P₁ = 0, y·P₃ − P₂ = 0 solved by SVD; nil with fewer than two views,
    /// when the views do not fix the point (rays through one centre), or when it lies at infinity.
    public static func point(observations: [(camFromWorld: Rigid3, normalized: Vector2)]) -> Vector3? {
        guard observations.count >= 2 else { return nil }
        let rows = observations.flatMap { observation -> [Double] in
            let p = projectionRows(observation.camFromWorld)
            let x = observation.normalized.x, y = observation.normalized.y
            return (0..<4).map { x * p.2[$0] - p.0[$0] } + (0..<4).map { y * p.2[$0] - p.1[$0] }
        }
        guard let basis = DenseLinearAlgebra.nullSpace(rows, rowCount: 2 * observations.count, columnCount: 4,
                                                       dimension: 1) else { return nil }
        let homogeneous = basis[0]
        let direction = Vector3(homogeneous[0], homogeneous[1], homogeneous[2])
        // A vanishing w is a point at infinity: parallel rays, or a solution the noise made up.
        guard abs(homogeneous[3]) > 1e-12 * direction.length else { return nil }
        let point = direction / homogeneous[3]
        return point.x.isFinite && point.y.isFinite && point.z.isFinite ? point : nil
    }

    /// The largest angle, in radians, between the rays from any two of `centers` to `point`; 0 with fewer
    /// than two centres.
    public static func angle(of point: Vector3, centers: [Vector3]) -> Double {
        let rays = centers.map { point - $0 }
        var largest = 0.0
        for i in rays.indices {
            for j in rays.indices where j > i {
                // From the sine and the cosine: acos alone loses half the digits of the small angles that matter.
                largest = max(largest, atan2(rays[i].cross(rays[j]).length, rays[i].dot(rays[j])))
            }
        }
        return largest
    }

    /// `point` after at most `iterations` Gauss–Newton steps on its reprojection errors in normalised image
    /// coordinates; a step that does not lower them, or a singular system, ends the refinement.
    public static func refine(_ point: Vector3, observations: [(camFromWorld: Rigid3, normalized: Vector2)],
                              iterations: Int = 5) -> Vector3 {
        var current = point, cost = reprojectionCost(point, observations)
        for _ in 0..<iterations {
            guard let step = gaussNewtonStep(current, observations) else { break }
            let candidate = current + step, candidateCost = reprojectionCost(candidate, observations)
            guard candidateCost < cost else { break }
            (current, cost) = (candidate, candidateCost)
        }
        return current
    }

    /// Whether a triangulated point is kept: in front of every camera, seen under at least the minimum angle,
    /// and within the maximum reprojection error (pixels, through each view's own camera) in every view.
    public static func accepts(_ point: Vector3,
                               observations: [(camFromWorld: Rigid3, pixel: Vector2, camera: SimpleRadialCamera)],
                               options: TriangulationOptions = TriangulationOptions()) -> Bool {
        let limit = options.maximumReprojectionErrorPixels
        let inFrontAndClose = observations.allSatisfy { observation in
            let pointInCamera = observation.camFromWorld.apply(point)
            guard pointInCamera.z > 0, let projected = observation.camera.project(pointInCamera) else { return false }
            let error = projected - observation.pixel
            return (error * error).sum() <= limit * limit
        }
        guard inFrontAndClose else { return false }
        let centers = observations.map { $0.camFromWorld.inverse.translation }
        return angle(of: point, centers: centers) >= options.minimumAngleDegrees * .pi / 180
    }

    /// The three rows of the projection matrix [R | t], four values each.
    private static func projectionRows(_ pose: Rigid3) -> ([Double], [Double], [Double]) {
        let r = pose.rotation.rows, t = pose.translation
        return ([r.0.x, r.0.y, r.0.z, t.x], [r.1.x, r.1.y, r.1.z, t.y], [r.2.x, r.2.y, r.2.z, t.z])
    }

    /// The sum of squared normalised reprojection errors; infinite when the point is behind a camera.
    private static func reprojectionCost(_ point: Vector3,
                                         _ observations: [(camFromWorld: Rigid3, normalized: Vector2)]) -> Double {
        observations.reduce(0) { total, observation in
            let p = observation.camFromWorld.apply(point)
            guard p.z > 0 else { return .infinity }
            let error = Vector2(p.x / p.z, p.y / p.z) - observation.normalized
            return total + (error * error).sum()
        }
    }

    /// The Gauss–Newton step of the normalised reprojection errors: (JᵀJ)⁻¹·(−Jᵀr), with J = ∂(x/z, y/z)/∂p · R.
    private static func gaussNewtonStep(_ point: Vector3,
                                        _ observations: [(camFromWorld: Rigid3, normalized: Vector2)]) -> Vector3? {
        var normal = Matrix3(rows: .zero, .zero, .zero), gradient = Vector3.zero
        for observation in observations {
            let rotation = observation.camFromWorld.rotation, p = observation.camFromWorld.apply(point)
            guard p.z > 0 else { return nil }
            let u = p.x / p.z, v = p.y / p.z
            // The rows of ∂(u, v)/∂p carried to the world frame: (∂/∂p)·R = Rᵀ applied to each row.
            let ju = rotation.transposed * Vector3(1 / p.z, 0, -u / p.z)
            let jv = rotation.transposed * Vector3(0, 1 / p.z, -v / p.z)
            let residual = Vector2(u, v) - observation.normalized
            normal = normal + outer(ju, ju) + outer(jv, jv)
            gradient -= ju * residual.x + jv * residual.y
        }
        return normal.solving(gradient)
    }

    /// The matrix a·bᵀ.
    private static func outer(_ a: Vector3, _ b: Vector3) -> Matrix3 {
        Matrix3(rows: b * a.x, b * a.y, b * a.z)
    }
}
