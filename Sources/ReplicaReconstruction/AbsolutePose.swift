import Foundation
import ReplicaGeometry
import ReplicaCore

/// How a new image's pose is estimated from its 2D–3D correspondences; `validate()` before use.
public struct AbsolutePoseOptions: Equatable, Sendable {
    /// The robust search; its threshold in pixels (12 px, as COLMAP's image registration uses: a pose from a
    /// partial reconstruction with a guessed focal misplaces points by several pixels), and a confidence of
    /// 0.9999, since a P3P sample is cheap and a wrongly registered image spoils the rest of the reconstruction.
    public var robust = RobustOptions(maximumErrorPixels: 12, confidence: 0.9999)
    /// The fewest inliers a registered image has (30, as COLMAP's registration asks).
    public var minimumInliers = 30
    /// The smallest fraction of the correspondences that must be inliers (0.25, as COLMAP's registration asks).
    public var minimumInlierRatio = 0.25
    /// The scale of the Cauchy loss of the final refinement, in pixels.
    public var lossScalePixels = 1.0
    /// The most Levenberg–Marquardt iterations of the final refinement.
    public var refinementIterations = 50

    public init(robust: RobustOptions = RobustOptions(maximumErrorPixels: 12, confidence: 0.9999),
                minimumInliers: Int = 30, minimumInlierRatio: Double = 0.25, lossScalePixels: Double = 1,
                refinementIterations: Int = 50) {
        self.robust = robust
        self.minimumInliers = minimumInliers
        self.minimumInlierRatio = minimumInlierRatio
        self.lossScalePixels = lossScalePixels
        self.refinementIterations = refinementIterations
    }

    /// Throws when a setting makes no sense.
    public func validate() throws {
        try robust.validate()
        guard minimumInliers >= 4 else {
            throw OptionsError("the minimum inliers must be at least 4 (three fit a pose, a fourth picks one of "
                + "its solutions), not \(minimumInliers)")
        }
        guard minimumInlierRatio >= 0, minimumInlierRatio <= 1 else {
            throw OptionsError("the minimum inlier ratio must be a fraction in 0...1, not \(minimumInlierRatio)")
        }
        guard lossScalePixels.isFinite, lossScalePixels > 0 else {
            throw OptionsError("the loss scale must be a positive number of pixels, not \(lossScalePixels)")
        }
        guard refinementIterations >= 0 else {
            throw OptionsError("the refinement iterations must be ≥ 0, not \(refinementIterations)")
        }
    }
}

/// The pose of an image registered against known 3-D points, with the correspondences it explains.
public struct AbsolutePoseResult: Equatable, Sendable {
    public var camFromWorld: Rigid3
    /// One flag per correspondence: whether its reprojection error is within the robust threshold.
    public var inlierMask: [Bool]
    /// The number of `true` flags in `inlierMask`.
    public var inlierCount: Int
}

/// The pose of a calibrated camera from correspondences between its pixels and known world points: the
/// minimal solver, the robust estimate and the refinement that register a new image in incremental SfM.
public enum AbsolutePose {
    /// Every pose (up to four) that maps the three world points onto the three bearings (unit rays in the
    /// camera's frame), each point in front of the camera; none for a degenerate triple.
    ///
    /// Lambda Twist (Persson and Nordberg, 2018): the three distance constraints |λᵢyᵢ − λⱼyⱼ|² = |xᵢ − xⱼ|²
    /// on the depths Λ = (λ₁, λ₂, λ₃) give two homogeneous conics D₁, D₂; the real root γ of the cubic
    /// det(D₁ + γ·D₂) = 0 makes a degenerate conic, a pair of planes through the origin, and intersecting each
    /// plane with one conic leaves a quadratic. It avoids the quartic of Grunert's and Kneip's solvers, whose
    /// roots lose digits when two solutions come close.
    public static func p3p(bearings: [Vector3], points: [Vector3]) -> [Rigid3] {
        guard bearings.count == 3, points.count == 3, isWellPosed(bearings: bearings, points: points)
        else { return [] }
        let triple = DepthConstraints(bearings: bearings.map(\.normalized), points: points)
        return triple.depthSolutions().compactMap { depths in
            pose(cameraPoints: (0..<3).map { triple.bearings[$0] * depths[$0] }, worldPoints: points)
        }
    }

    /// The robust pose of the correspondences `pixels[i] ↔ points[i]` (world): LO-MSAC over P3P samples, then
    /// a refinement of the pose on its inliers under a Cauchy loss; nil when too few correspondences agree.
    ///
    /// The options are taken as given; `validate()` them where they are read.
    public static func estimate(pixels: [Vector2], points: [Vector3], camera: SimpleRadialCamera,
                                options: AbsolutePoseOptions = AbsolutePoseOptions()) -> AbsolutePoseResult? {
        precondition(pixels.count == points.count, "a correspondence has one pixel and one world point")
        let needed = max(options.minimumInliers, Int((options.minimumInlierRatio * Double(pixels.count)).rounded(.up)))
        guard pixels.count >= max(needed, 3) else { return nil }
        let problem = AbsolutePoseProblem(pixels: pixels, points: points, camera: camera)
        let threshold = options.robust.maximumErrorPixels
        guard let estimate = RobustEstimation.estimate(problem, threshold: threshold, options: options.robust),
              estimate.inlierCount >= needed else { return nil }

        // LO-MSAC's refits weigh every inlier fully, so the outliers that happen to fall within 12 px pull the
        // pose; a Cauchy loss of about a pixel lets the well-measured majority decide.
        let inliers = estimate.inlierMask.indices.filter { estimate.inlierMask[$0] }
        let refined = refine(estimate.model, pixels: inliers.map { pixels[$0] }, points: inliers.map { points[$0] },
                             camera: camera, iterations: options.refinementIterations,
                             lossScale: options.lossScalePixels)
        let mask = problem.squaredResiduals(of: refined).map { $0 <= threshold * threshold }
        let count = mask.filter { $0 }.count
        guard count >= needed else { return nil }
        return AbsolutePoseResult(camFromWorld: refined, inlierMask: mask, inlierCount: count)
    }

    /// `pose` refined by Levenberg–Marquardt on the reprojection errors (pixels) of the correspondences, over
    /// a rotation-vector increment and a translation; with a `lossScale` (pixels) under the Cauchy loss
    /// c²·log(1 + e²/c²), else under the sum of squared errors. Fewer than three correspondences leave it as is.
    public static func refine(_ pose: Rigid3, pixels: [Vector2], points: [Vector3], camera: SimpleRadialCamera,
                              iterations: Int = 20, lossScale: Double? = nil) -> Rigid3 {
        precondition(pixels.count == points.count, "a correspondence has one pixel and one world point")
        guard pixels.count >= 3 else { return pose }
        let refinement = PoseRefinement(pixels: pixels, points: points, camera: camera, lossScale: lossScale)
        return refinement.run(from: pose, iterations: iterations)
    }

    /// Whether a triple can fix a pose: the world points span a triangle and no two bearings coincide.
    private static func isWellPosed(bearings: [Vector3], points: [Vector3]) -> Bool {
        let edge1 = points[1] - points[0], edge2 = points[2] - points[0]
        let area = edge1.cross(edge2).length
        guard area.isFinite, area > 1e-10 * edge1.length * edge2.length else { return false }
        let rays = bearings.map(\.normalized)
        return [(0, 1), (0, 2), (1, 2)].allSatisfy { rays[$0.0].cross(rays[$0.1]).length > 1e-12 }
    }

    /// The motion that takes the world triangle onto the same triangle in the camera's frame, from the
    /// orthonormal frame each triangle spans; nil when either is degenerate or the motion is not finite.
    private static func pose(cameraPoints: [Vector3], worldPoints: [Vector3]) -> Rigid3? {
        guard let cameraFrame = triangleFrame(cameraPoints), let worldFrame = triangleFrame(worldPoints)
        else { return nil }
        let rotation = cameraFrame * worldFrame.transposed
        let cameraCentroid = (cameraPoints[0] + cameraPoints[1] + cameraPoints[2]) / 3
        let worldCentroid = (worldPoints[0] + worldPoints[1] + worldPoints[2]) / 3
        let translation = cameraCentroid - rotation * worldCentroid
        guard rotation.values.allSatisfy(\.isFinite), translation.x.isFinite, translation.y.isFinite,
              translation.z.isFinite else { return nil }
        return Rigid3(rotation: rotation, translation: translation)
    }

    /// The rotation whose columns are the first edge's direction, the in-plane perpendicular and the normal.
    private static func triangleFrame(_ corners: [Vector3]) -> Matrix3? {
        let edge = corners[1] - corners[0], normal = edge.cross(corners[2] - corners[0])
        guard edge.length > 0, normal.length > 0 else { return nil }
        let first = edge.normalized, third = normal.normalized
        return Matrix3(rows: first, third.cross(first), third).transposed
    }
}

/// The three distance constraints of P3P on the depths along the bearings, and their solution.
private struct DepthConstraints {
    let bearings: [Vector3]
    /// Squared world distances |x₁ − x₂|², |x₁ − x₃|², |x₂ − x₃|².
    let a12: Double, a13: Double, a23: Double
    /// Cosines between the bearings.
    let b12: Double, b13: Double, b23: Double

    init(bearings: [Vector3], points: [Vector3]) {
        self.bearings = bearings
        let squared = { (p: Vector3) in p.dot(p) }
        a12 = squared(points[0] - points[1])
        a13 = squared(points[0] - points[2])
        a23 = squared(points[1] - points[2])
        b12 = bearings[0].dot(bearings[1])
        b13 = bearings[0].dot(bearings[2])
        b23 = bearings[1].dot(bearings[2])
    }

    /// The quadratic forms Mᵢⱼ with Λᵀ·Mᵢⱼ·Λ = |λᵢyᵢ − λⱼyⱼ|².
    private var m12: Matrix3 { Matrix3([1, -b12, 0, -b12, 1, 0, 0, 0, 0]) }
    private var m13: Matrix3 { Matrix3([1, 0, -b13, 0, 0, 0, -b13, 0, 1]) }
    private var m23: Matrix3 { Matrix3([0, 0, 0, 0, 1, -b23, 0, -b23, 1]) }

    /// Every positive depth triple that meets the three constraints, polished by Gauss–Newton.
    func depthSolutions() -> [Vector3] {
        // Each conic is homogeneous: the world distances are divided out pairwise.
        let d1 = m12 * a23 + m23 * -a12, d2 = m13 * a23 + m23 * -a13
        guard let split = splitConic(d1, d2) else { return [] }
        let directions = [split.planes.0, split.planes.1].flatMap { rays(inPlaneWithNormal: $0, on: split.conic) }
        return directions.compactMap(scaledDepths).map(polished)
    }

    /// The degenerate member of the pencil D₁ + γ·D₂ that splits best into two real planes, with the conic
    /// to intersect them with (the member, D₁ or D₂, that is larger on the planes).
    private func splitConic(_ d1: Matrix3, _ d2: Matrix3) -> (planes: (Vector3, Vector3), conic: Matrix3)? {
        let cubic = determinantCoefficients(d1, d2)
        var members = DenseLinearAlgebra.realPolynomialRoots(cubic).map { polishedRoot(cubic, $0) }
            .map { (member: d1 + d2 * $0, conic: abs($0) <= 1 ? d2 : d1) }
        // A vanishing cubic term means D₂ itself is degenerate: the member at γ = ∞.
        let largest = cubic.map(abs).max() ?? 0
        if abs(cubic[0]) <= 1e-14 * largest { members.append((member: d2, conic: d1)) }

        // On the planes of a well-split member the two planes stand far apart, so rays are well conditioned.
        let splits = members.compactMap { entry in
            planePair(entry.member).map { (planes: $0.planes, conic: entry.conic, balance: $0.balance) }
        }
        guard let best = splits.max(by: { $0.balance < $1.balance }) else { return nil }
        return (best.planes, best.conic)
    }

    /// The coefficients (γ³ first) of det(A + γ·B) = det B·γ³ + ⟨A, cof B⟩·γ² + ⟨cof A, B⟩·γ + det A.
    private func determinantCoefficients(_ a: Matrix3, _ b: Matrix3) -> [Double] {
        let inner = { (p: Matrix3, q: Matrix3) in zip(p.values, q.values).reduce(0) { $0 + $1.0 * $1.1 } }
        return [b.determinant, inner(a, cofactors(b)), inner(cofactors(a), b), a.determinant]
    }

    /// The matrix of cofactors, row by row the cross products of the other two rows.
    private func cofactors(_ m: Matrix3) -> Matrix3 {
        Matrix3(rows: m.rows.1.cross(m.rows.2), m.rows.2.cross(m.rows.0), m.rows.0.cross(m.rows.1))
    }

    /// A root of the cubic after two Newton steps, which recover the digits the companion matrix loses.
    private func polishedRoot(_ cubic: [Double], _ root: Double) -> Double {
        var x = root
        for _ in 0..<2 {
            let value = ((cubic[0] * x + cubic[1]) * x + cubic[2]) * x + cubic[3]
            let slope = (3 * cubic[0] * x + 2 * cubic[1]) * x + cubic[2]
            guard slope != 0, (x - value / slope).isFinite else { break }
            x -= value / slope
        }
        return x
    }

    /// The normals of the two planes Λᵀ·D·Λ = 0 factors into, for a singular symmetric D with eigenvalues
    /// σ₁ > 0 > σ₂: σ₁(e₁·Λ)² + σ₂(e₂·Λ)² = 0 gives (e₁ ∓ s·e₂)·Λ = 0 with s = √(−σ₂/σ₁). The balance,
    /// |σ₁σ₂| / (σ₁² + σ₂²), is near zero when the planes almost coincide; nil for a definite D.
    private func planePair(_ d: Matrix3) -> (planes: (Vector3, Vector3), balance: Double)? {
        let r0 = d.rows.0, r1 = d.rows.1, r2 = d.rows.2
        // With det D = 0 the characteristic polynomial is σ·(σ² − trace·σ + the principal 2×2 minors).
        let minors = (r1.y * r2.z - r1.z * r2.y) + (r0.x * r2.z - r0.z * r2.x) + (r0.x * r1.y - r0.y * r1.x)
        guard minors < 0 else { return nil }
        let spread = (d.trace * d.trace - 4 * minors).squareRoot()
        let positive = (d.trace + spread) / 2, negative = (d.trace - spread) / 2
        guard let e1 = eigenvector(d, positive), let e2 = eigenvector(d, negative) else { return nil }
        let s = (-negative / positive).squareRoot()
        let balance = -minors / (positive * positive + negative * negative)
        return ((e1 - e2 * s, e1 + e2 * s), balance)
    }

    /// The unit eigenvector of the symmetric D for a simple eigenvalue: the longest cross product of two rows
    /// of D − σ·I, which has rank two.
    private func eigenvector(_ d: Matrix3, _ sigma: Double) -> Vector3? {
        let shifted = d + Matrix3.identity * -sigma
        let candidates = [shifted.rows.0.cross(shifted.rows.1), shifted.rows.0.cross(shifted.rows.2),
                          shifted.rows.1.cross(shifted.rows.2)]
        guard let longest = candidates.max(by: { $0.length < $1.length }), longest.length > 0 else { return nil }
        return longest.normalized
    }

    /// The directions Λ in the plane n·Λ = 0 with Λᵀ·D·Λ = 0: a quadratic in an orthonormal basis (u, v) of
    /// the plane, solved homogeneously so that neither root is divided by a vanishing coefficient.
    private func rays(inPlaneWithNormal normal: Vector3, on conic: Matrix3) -> [Vector3] {
        let n = normal.normalized
        let helper = abs(n.x) < 0.6 ? Vector3(1, 0, 0) : abs(n.y) < 0.6 ? Vector3(0, 1, 0) : Vector3(0, 0, 1)
        let u = n.cross(helper).normalized, v = n.cross(u)
        let a = u.dot(conic * u), b = u.dot(conic * v), c = v.dot(conic * v)
        let discriminant = b * b - a * c
        guard discriminant >= 0 else { return [] }
        let q = -(b + (b >= 0 ? 1 : -1) * discriminant.squareRoot())
        guard q != 0 else { return [] }
        // The roots α/β of a·α² + 2b·αβ + c·β² = 0 are q/a and c/q.
        return [u * q + v * a, u * c + v * q]
    }

    /// The depths along a direction that meet the distance constraints: scaled so that the three camera-frame
    /// distances add up to the world's (a positive definite form, well away from zero), signed so that the
    /// depths are positive; nil when they are of mixed sign.
    private func scaledDepths(_ direction: Vector3) -> Vector3? {
        let total = direction.dot((m12 + m13 + m23) * direction)
        guard total > 0 else { return nil }
        var depths = direction * ((a12 + a13 + a23) / total).squareRoot()
        if depths.sum() < 0 { depths = -depths }
        guard depths.min() > 0, depths.max().isFinite else { return nil }
        return depths
    }

    /// The depths after a few Gauss–Newton steps on the three constraints; a step that does not lower the
    /// residual ends the polishing.
    private func polished(_ depths: Vector3) -> Vector3 {
        var current = depths, error = constraintResiduals(current)
        for _ in 0..<5 {
            guard let step = constraintJacobian(current).solving(-error) else { break }
            let candidate = current + step
            let candidateError = constraintResiduals(candidate)
            guard candidateError.dot(candidateError) < error.dot(error), candidate.min() > 0 else { break }
            (current, error) = (candidate, candidateError)
        }
        return current
    }

    /// |λᵢyᵢ − λⱼyⱼ|² − aᵢⱼ for the pairs 12, 13, 23.
    private func constraintResiduals(_ l: Vector3) -> Vector3 {
        Vector3(l.x * l.x + l.y * l.y - 2 * b12 * l.x * l.y - a12,
                l.x * l.x + l.z * l.z - 2 * b13 * l.x * l.z - a13,
                l.y * l.y + l.z * l.z - 2 * b23 * l.y * l.z - a23)
    }

    private func constraintJacobian(_ l: Vector3) -> Matrix3 {
        Matrix3(rows: Vector3(2 * (l.x - b12 * l.y), 2 * (l.y - b12 * l.x), 0),
                Vector3(2 * (l.x - b13 * l.z), 0, 2 * (l.z - b13 * l.x)),
                Vector3(0, 2 * (l.y - b23 * l.z), 2 * (l.z - b23 * l.y)))
    }
}

/// Absolute-pose estimation for `RobustEstimation`: P3P on minimal samples, Levenberg–Marquardt on the inliers
/// as the least-squares refit, squared reprojection errors in pixels².
public struct AbsolutePoseProblem: RobustProblem {
    public let pixels: [Vector2]
    public let points: [Vector3]
    public let camera: SimpleRadialCamera
    /// The undistorted unit rays of the pixels, computed once: every sample reuses them.
    private let bearings: [Vector3]

    public init(pixels: [Vector2], points: [Vector3], camera: SimpleRadialCamera) {
        precondition(pixels.count == points.count, "a correspondence has one pixel and one world point")
        self.pixels = pixels
        self.points = points
        self.camera = camera
        bearings = pixels.map(camera.bearing)
    }

    public var count: Int { pixels.count }
    public var minimalSampleSize: Int { 3 }

    public func fitMinimal(_ sample: [Int]) -> [Rigid3] {
        AbsolutePose.p3p(bearings: sample.map { bearings[$0] }, points: sample.map { points[$0] })
    }

    public func fitLeastSquares(_ inliers: [Int], initial: Rigid3) -> [Rigid3] {
        [AbsolutePose.refine(initial, pixels: inliers.map { pixels[$0] }, points: inliers.map { points[$0] },
                             camera: camera, iterations: 10)]
    }

    /// Squared pixel errors; a point behind the camera gets the largest finite double, so that it is an
    /// outlier under any threshold and the sums of the scoring stay ordered.
    public func squaredResiduals(of model: Rigid3) -> [Double] {
        zip(pixels, points).map { pixel, point in
            guard let projected = camera.project(model.apply(point)) else { return .greatestFiniteMagnitude }
            let error = projected - pixel
            let squared = (error * error).sum()
            return squared.isFinite ? squared : .greatestFiniteMagnitude
        }
    }
}

/// Levenberg–Marquardt over a pose on reprojection errors, with an analytic Jacobian: the pose moves by
/// x_cam ↦ exp([ω]×)·x_cam + δt, so ∂x_cam/∂ω = −[x_cam]× and ∂x_cam/∂δt = I.
private struct PoseRefinement {
    let pixels: [Vector2]
    let points: [Vector3]
    let camera: SimpleRadialCamera
    let lossScale: Double?

    /// The squared error a point behind the camera counts as (a thousand-pixel miss): worse than any inlier,
    /// yet finite, so that the cost of a step that turns a point around can still be compared.
    private static let behindSquaredError = 1e6

    func run(from start: Rigid3, iterations: Int) -> Rigid3 {
        var pose = start, cost = self.cost(of: start), damping = 1e-4
        for _ in 0..<iterations {
            let system = normalEquations(at: pose)
            var accepted: (pose: Rigid3, cost: Double, step: [Double])?
            while accepted == nil && damping < 1e10 {
                if let step = dampedStep(system, damping: damping) {
                    let candidate = moved(pose, by: step), candidateCost = self.cost(of: candidate)
                    if candidateCost < cost { accepted = (candidate, candidateCost, step); break }
                }
                damping *= 10
            }
            guard let accepted else { break }
            let converged = cost - accepted.cost <= 1e-14 * cost || accepted.step.allSatisfy { abs($0) < 1e-14 }
            (pose, cost, damping) = (accepted.pose, accepted.cost, max(damping / 10, 1e-12))
            if converged { break }
        }
        return pose
    }

    /// The loss of a squared error: itself, or the Cauchy loss c²·log(1 + e²/c²).
    private func loss(_ squaredError: Double) -> Double {
        guard let c = lossScale else { return squaredError }
        return c * c * log1p(squaredError / (c * c))
    }

    /// The weight of a squared error in the reweighted normal equations: the loss's derivative.
    private func weight(_ squaredError: Double) -> Double {
        guard let c = lossScale else { return 1 }
        return 1 / (1 + squaredError / (c * c))
    }

    private func cost(of pose: Rigid3) -> Double {
        zip(pixels, points).reduce(0) { total, pair in
            let pointInCamera = pose.apply(pair.1)
            guard let projected = camera.project(pointInCamera) else { return total + loss(Self.behindSquaredError) }
            let error = projected - pair.0
            return total + loss(min((error * error).sum(), Self.behindSquaredError))
        }
    }

    /// JᵀWJ (6×6, row-major) and −JᵀW·r over the points in front of the camera.
    private func normalEquations(at pose: Rigid3) -> (normal: [Double], gradient: [Double]) {
        var normal = [Double](repeating: 0, count: 36), gradient = [Double](repeating: 0, count: 6)
        for (pixel, point) in zip(pixels, points) {
            guard let rows = residualRows(pose.apply(point), observed: pixel) else { continue }
            let w = weight(rows.residual.x * rows.residual.x + rows.residual.y * rows.residual.y)
            for (row, residual) in [(rows.x, rows.residual.x), (rows.y, rows.residual.y)] {
                for i in 0..<6 {
                    gradient[i] -= w * row[i] * residual
                    for j in 0..<6 { normal[6 * i + j] += w * row[i] * row[j] }
                }
            }
        }
        return (normal, gradient)
    }

    /// The pixel error of a point in the camera's frame and its two Jacobian rows over (ω, δt); nil behind.
    private func residualRows(_ p: Vector3, observed: Vector2) -> (residual: Vector2, x: [Double], y: [Double])? {
        guard p.z > 0, let projected = camera.project(p) else { return nil }
        let u = p.x / p.z, v = p.y / p.z, k = camera.radial, f = camera.focal
        let factor = 1 + k * (u * u + v * v)
        // ∂pixel/∂(u, v) = f·(factor·I + 2k·(u, v)(u, v)ᵀ), then ∂(u, v)/∂p.
        let duu = f * (factor + 2 * k * u * u), duv = f * 2 * k * u * v, dvv = f * (factor + 2 * k * v * v)
        let gu = Vector3(1 / p.z, 0, -u / p.z), gv = Vector3(0, 1 / p.z, -v / p.z)
        let gx = gu * duu + gv * duv, gy = gu * duv + gv * dvv
        // g·(ω × p) = ω·(p × g).
        let rx = p.cross(gx), ry = p.cross(gy)
        return (projected - observed, [rx.x, rx.y, rx.z, gx.x, gx.y, gx.z], [ry.x, ry.y, ry.z, gy.x, gy.y, gy.z])
    }

    /// The step of the normal equations with Marquardt's damping of the diagonal; nil when not positive definite.
    private func dampedStep(_ system: (normal: [Double], gradient: [Double]), damping: Double) -> [Double]? {
        var damped = system.normal
        for i in 0..<6 { damped[7 * i] += damping * max(system.normal[7 * i], 1e-12) }
        return choleskySolve(damped, system.gradient)
    }

    private func moved(_ pose: Rigid3, by step: [Double]) -> Rigid3 {
        let turn = Matrix3(rotationVector: Vector3(step[0], step[1], step[2]))
        return Rigid3(rotation: turn * pose.rotation,
                      translation: turn * pose.translation + Vector3(step[3], step[4], step[5]))
    }
}

/// x with A·x = b for a symmetric positive definite A (row-major, order = b.count), by Cholesky; nil when A is
/// not positive definite. Small systems only: a 6×6 solve per iteration is cheaper here than a LAPACK call.
func choleskySolve(_ matrix: [Double], _ rightHandSide: [Double]) -> [Double]? {
    let n = rightHandSide.count
    precondition(matrix.count == n * n, "a square system")
    var lower = [Double](repeating: 0, count: n * n)
    for i in 0..<n {
        for j in 0...i {
            let sum = (0..<j).reduce(matrix[n * i + j]) { $0 - lower[n * i + $1] * lower[n * j + $1] }
            if i == j {
                guard sum > 0, sum.isFinite else { return nil }
                lower[n * i + i] = sum.squareRoot()
            } else {
                lower[n * i + j] = sum / lower[n * j + j]
            }
        }
    }
    // Forward through L, then back through Lᵀ.
    var y = rightHandSide
    for i in 0..<n { y[i] = (0..<i).reduce(y[i]) { $0 - lower[n * i + $1] * y[$1] } / lower[n * i + i] }
    for i in stride(from: n - 1, through: 0, by: -1) {
        y[i] = ((i + 1)..<n).reduce(y[i]) { $0 - lower[n * $1 + i] * y[$1] } / lower[n * i + i]
    }
    return y
}

extension Matrix3 {
    /// x with self·x = b, by the cofactors (Cramer's rule); nil when the matrix is singular to working precision.
    func solving(_ b: Vector3) -> Vector3? {
        let c0 = rows.1.cross(rows.2), c1 = rows.2.cross(rows.0), c2 = rows.0.cross(rows.1)
        let determinant = rows.0.dot(c0)
        let scale = rows.0.length * rows.1.length * rows.2.length
        guard determinant.isFinite, abs(determinant) > 1e-14 * scale else { return nil }
        let x = (c0 * b.x + c1 * b.y + c2 * b.z) / determinant
        return x.x.isFinite && x.y.isFinite && x.z.isFinite ? x : nil
    }
}
