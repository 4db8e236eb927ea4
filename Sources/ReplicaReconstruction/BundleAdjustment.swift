import CLinearAlgebra
import Foundation
import ReplicaCore
import ReplicaGeometry

/// One measurement of bundle adjustment: image `image` sees point `point` at `pixel`.
public struct BundleObservation: Equatable, Sendable {
    public var image: Int32
    public var point: Int32
    public var pixel: Vector2

    public init(image: Int32, point: Int32, pixel: Vector2) {
        self.image = image
        self.point = point
        self.pixel = pixel
    }
}

/// What is known of a camera's intrinsics before the photos are measured: a Gaussian prior that adds
/// ½·((f − f₀)/σ_f)² + ½·(k/σ_k)² to the cost, in the units of a squared pixel error.
///
/// Without it a narrow view of a compact object leaves focal length and radial distortion trading against each
/// other and the distance at almost no cost in reprojection error; the EXIF focal length and the rarity of
/// strong distortion settle what the observations cannot.
public struct IntrinsicsPrior: Equatable, Sendable {
    /// The focal length expected, in pixels, and its standard deviation; nil: no prior on the focal.
    public var focal: Double?
    public var focalSigma: Double
    /// The standard deviation of the radial coefficient about 0; nil: no prior on it.
    public var radialSigma: Double?

    public init(focal: Double?, focalSigma: Double, radialSigma: Double?) {
        self.focal = focal
        self.focalSigma = focalSigma
        self.radialSigma = radialSigma
    }

    /// The prior's cost for a camera.
    func cost(_ camera: SimpleRadialCamera) -> Double {
        var total = 0.0
        if let focal { total += pow((camera.focal - focal) / focalSigma, 2) }
        if let radialSigma { total += pow(camera.radial / radialSigma, 2) }
        return total / 2
    }
}

/// A reconstruction to refine: cameras, posed images, points and the observations that tie them, with the
/// parameters that stay where they are.
public struct BundleAdjustmentProblem: Sendable {
    /// Per camera, what is known of its intrinsics beforehand; empty or nil entries: nothing.
    public var intrinsicsPriors: [IntrinsicsPrior?] = []
    /// The intrinsics, one per physical camera; every image of that camera shares them.
    public var cameras: [SimpleRadialCamera]
    /// camFromWorld of each image.
    public var poses: [Rigid3]
    /// The index in `cameras` of each image's camera.
    public var imageCameras: [Int]
    public var points: [Vector3]
    public var observations: [BundleObservation]
    /// Images whose pose is held.
    public var constantPoses: Set<Int>
    /// Points held in place.
    public var constantPoints: Set<Int>
    /// Cameras whose principal point is held even when the options refine principal points.
    public var constantPrincipalPoints: Set<Int> = []
    /// One held translation component (axis 0, 1 or 2 of camFromWorld's translation) of one image: with one
    /// pose held, it fixes the scale that the observations leave free.
    public var fixedTranslationAxis: (image: Int, axis: Int)?

    public init(cameras: [SimpleRadialCamera], poses: [Rigid3], imageCameras: [Int], points: [Vector3],
                observations: [BundleObservation], constantPoses: Set<Int> = [], constantPoints: Set<Int> = [],
                fixedTranslationAxis: (image: Int, axis: Int)? = nil) {
        precondition(poses.count == imageCameras.count, "every image names its camera")
        self.cameras = cameras
        self.poses = poses
        self.imageCameras = imageCameras
        self.points = points
        self.observations = observations
        self.constantPoses = constantPoses
        self.constantPoints = constantPoints
        self.fixedTranslationAxis = fixedTranslationAxis
    }
}

/// The robust loss ρ(s) of an observation's squared reprojection error s (pixels²); the cost is ½·Σρ(s).
public enum BundleLoss: Equatable, Sendable {
    /// ρ(s) = s: plain least squares.
    case trivial
    /// ρ(s) = c²·log(1 + s/c²), `scale` c in pixels: gross outliers pull with a force that fades away.
    case cauchy(scale: Double)
    /// ρ(s) = s up to c², then 2c·√s − c², `scale` c in pixels: outliers pull with a bounded force.
    case huber(scale: Double)

    /// ρ(s).
    func value(_ squared: Double) -> Double {
        switch self {
        case .trivial: return squared
        case .cauchy(let scale): return scale * scale * log1p(squared / (scale * scale))
        case .huber(let scale):
            return squared <= scale * scale ? squared : 2 * scale * squared.squareRoot() - scale * scale
        }
    }

    /// ρ′(s), the weight of the observation in the reweighted least squares.
    func weight(_ squared: Double) -> Double {
        switch self {
        case .trivial: return 1
        case .cauchy(let scale): return 1 / (1 + squared / (scale * scale))
        case .huber(let scale): return squared <= scale * scale ? 1 : scale / squared.squareRoot()
        }
    }
}

/// How bundle adjustment refines; `validate()` before use. The tolerances are Ceres's defaults.
public struct BundleAdjustmentOptions: Equatable, Sendable {
    /// The robust loss on each observation (COLMAP's Cauchy with a 1-pixel scale).
    public var loss: BundleLoss = .cauchy(scale: 1)
    /// Whether each camera's focal length (pixels) is refined.
    public var refinesFocal = true
    /// Whether each camera's radial coefficient is refined.
    public var refinesRadial = true
    /// Whether each camera's principal point (pixels) is refined; off, as the data rarely constrain it.
    public var refinesPrincipalPoint = false
    /// The most steps tried, accepted or not.
    public var maximumIterations = 100
    /// Converged when an accepted step lowers the cost by less than this fraction of it (1e-6).
    public var functionTolerance = 1e-6
    /// Converged when the largest entry of the cost's gradient is below this (1e-10, absolute).
    public var gradientTolerance = 1e-10
    /// Converged when a step is shorter than this fraction of the parameter vector's length (1e-8).
    public var parameterTolerance = 1e-8

    public init(loss: BundleLoss = .cauchy(scale: 1), refinesFocal: Bool = true, refinesRadial: Bool = true,
                refinesPrincipalPoint: Bool = false, maximumIterations: Int = 100) {
        self.loss = loss
        self.refinesFocal = refinesFocal
        self.refinesRadial = refinesRadial
        self.refinesPrincipalPoint = refinesPrincipalPoint
        self.maximumIterations = maximumIterations
    }

    /// Throws when a setting makes no sense.
    public func validate() throws {
        switch loss {
        case .trivial: break
        case .cauchy(let scale), .huber(let scale):
            guard scale.isFinite, scale > 0 else {
                throw OptionsError("the loss scale must be a positive number of pixels, not \(scale)")
            }
        }
        guard maximumIterations >= 0 else {
            throw OptionsError("the maximum iterations must not be negative, not \(maximumIterations)")
        }
        for (name, value) in [("function", functionTolerance), ("gradient", gradientTolerance),
                              ("parameter", parameterTolerance)] where !(value.isFinite && value >= 0) {
            throw OptionsError("the \(name) tolerance must be a non-negative number, not \(value)")
        }
    }
}

/// What a bundle adjustment did.
public struct BundleAdjustmentSummary: Equatable, Sendable {
    /// ½·Σρ(s) over the observations in front of their cameras, before and after.
    public var initialCost: Double
    public var finalCost: Double
    /// Steps tried, and of those the ones accepted.
    public var iterations: Int
    public var acceptedIterations: Int
    /// Whether a tolerance was met (else the iterations ran out or no step lowered the cost).
    public var converged: Bool
    /// The root mean square reprojection error in pixels over the observations in front, before and after.
    public var initialRootMeanSquareError: Double
    public var finalRootMeanSquareError: Double
    /// The unknowns left after the points are eliminated: pose and intrinsic parameters.
    public var reducedSystemSize: Int
}

/// Bundle adjustment: Levenberg–Marquardt on the reprojection errors of all observations, over the poses, the
/// points and the cameras' intrinsics, with the points eliminated by the Schur complement at every step.
///
/// The reduced camera system (poses and intrinsics) is held dense and factored by LAPACK's Cholesky: up to a
/// few hundred images (about 1,800 unknowns) that costs well under a second a step on one core. Beyond that
/// its N² memory and N³ factorisation dominate, and a sparse Cholesky of the reduced system (most image pairs
/// share no point) would be the fix.
public enum BundleAdjustment {
    /// Refines `problem` in place and says how it went. Observations of points behind their camera at the
    /// start take no part; a step that would put any other point behind its camera is rejected.
    public static func solve(_ problem: inout BundleAdjustmentProblem,
                             options: BundleAdjustmentOptions = BundleAdjustmentOptions()) -> BundleAdjustmentSummary {
        let solver = BundleAdjuster(problem, options: options)
        return solver.run(&problem)
    }

    /// How far the data pin down each camera's intrinsics at the problem's current estimate: one standard
    /// deviation per intrinsic, in the order focal, radial, principal x, principal y, nil for those `options`
    /// hold. It is the diagonal of the inverse of the reduced camera system (the points marginalised, the
    /// moving poses and intrinsics free), scaled by the variance of the weighted residuals. Nil when that
    /// system is singular or the observations leave no redundancy.
    public static func intrinsicDeviations(of problem: BundleAdjustmentProblem,
                                           options: BundleAdjustmentOptions = BundleAdjustmentOptions())
        -> [[Double?]]? {
        BundleAdjuster(problem, options: options).intrinsicDeviations(problem)
    }

    /// The reprojection error of each observation in pixels; infinite for a point behind (or on the plane of)
    /// its camera.
    public static func reprojectionErrors(of problem: BundleAdjustmentProblem) -> [Double] {
        problem.observations.map { observation in
            let camera = problem.cameras[problem.imageCameras[Int(observation.image)]]
            let pointInCamera = problem.poses[Int(observation.image)].apply(problem.points[Int(observation.point)])
            guard let pixel = camera.project(pointInCamera) else { return .infinity }
            let error = pixel - observation.pixel
            return (error * error).sum().squareRoot()
        }
    }

    /// The root mean square of the finite errors; 0 when there are none.
    static func rootMeanSquare(_ errors: [Double]) -> Double {
        let finite = errors.filter(\.isFinite)
        guard !finite.isEmpty else { return 0 }
        return (finite.reduce(0) { $0 + $1 * $1 } / Double(finite.count)).squareRoot()
    }

    /// The columns of `linearize`'s Jacobian: the pose's rotation increment and translation, the intrinsics
    /// (focal, radial, principal x and y), then the point.
    static let jacobianColumns = 13

    /// The residual (projected minus observed, pixels) of a point seen by a camera at `pose`, and its
    /// Jacobian, 2 × 13 row-major into `jacobian`; nil for a point behind or on the camera plane.
    ///
    /// The rotation is perturbed on the left, R ← exp(δ)·R, so ∂(R·X)/∂δ = −[R·X]×.
    static func linearize(camera: SimpleRadialCamera, pose: Rigid3, point: Vector3, pixel observed: Vector2,
                          into jacobian: UnsafeMutablePointer<Double>) -> Vector2? {
        let rotated = pose.rotation * point
        let p = rotated + pose.translation
        guard p.z > 0 else { return nil }
        let inverseDepth = 1 / p.z
        let u = p.x * inverseDepth, v = p.y * inverseDepth
        let radius2 = u * u + v * v
        let factor = 1 + camera.radial * radius2
        let f = camera.focal, k = camera.radial

        // ∂pixel/∂(u, v), then ∂pixel/∂p through u = x/z, v = y/z.
        let duu = f * (factor + 2 * k * u * u), duv = f * 2 * k * u * v, dvv = f * (factor + 2 * k * v * v)
        let d0 = Vector3(duu, duv, -(duu * u + duv * v)) * inverseDepth
        let d1 = Vector3(duv, dvv, -(duv * u + dvv * v)) * inverseDepth
        writePoseAndPointColumns(d0, rotated: rotated, rotation: pose.rotation, into: jacobian)
        writePoseAndPointColumns(d1, rotated: rotated, rotation: pose.rotation,
                                 into: jacobian + jacobianColumns)
        let normalized = Vector2(u, v)
        for row in 0..<2 {
            let base = jacobian + row * jacobianColumns
            base[6] = factor * normalized[row]
            base[7] = f * radius2 * normalized[row]
            base[8] = row == 0 ? 1 : 0
            base[9] = row == 0 ? 0 : 1
        }
        return normalized * (factor * f) + camera.principal - observed
    }

    /// One row of the pose and point columns from that row of ∂pixel/∂(point in camera) `d`: for the rotation
    /// dᵀ·(−[q]×) = (q × d)ᵀ with q = R·X, for the translation d itself, for the point dᵀ·R.
    private static func writePoseAndPointColumns(_ d: Vector3, rotated: Vector3, rotation: Matrix3,
                                                 into row: UnsafeMutablePointer<Double>) {
        let rotationRow = rotated.cross(d), pointRow = rotation.transposed * d
        row[0] = rotationRow.x
        row[1] = rotationRow.y
        row[2] = rotationRow.z
        row[3] = d.x
        row[4] = d.y
        row[5] = d.z
        row[10] = pointRow.x
        row[11] = pointRow.y
        row[12] = pointRow.z
    }
}

/// The state of one bundle adjustment: which parameters move, where they sit in the reduced camera system,
/// and the flat buffers of the current linearisation.
///
/// The robust loss enters by iteratively reweighted least squares: each observation's residual and Jacobian
/// rows are scaled by √ρ′(s) at the current estimate, so the Gauss–Newton matrix is Σρ′·JᵀJ and the gradient
/// is the robust cost's own. Triggs' curvature correction (the ρ″ term) is left out: it can make the matrix
/// indefinite, and the gain ratio, measured on the true robust cost, already keeps the steps honest.
private final class BundleAdjuster {
    let options: BundleAdjustmentOptions
    /// The observations that take part (indices into the problem's).
    let active: [Int]
    /// Per active observation: how many camera-side columns move, and their reduced-system columns and their
    /// columns in `linearize`'s Jacobian, ten slots each.
    let columnCounts: [Int32]
    let globalColumns: [Int32]
    let localColumns: [Int32]
    /// Per variable point: its index in the problem, and its active observations as a range of `trackOrder`.
    let variablePoints: [Int]
    let trackStarts: [Int]
    let trackOrder: [Int]
    /// Per active observation, the variable point slot it belongs to, −1 for a held point.
    let pointSlots: [Int32]
    /// The reduced system's column of each image's six pose parameters and each camera's four intrinsics,
    /// −1 where held.
    let poseColumns: [Int]
    let intrinsicColumns: [Int]
    let size: Int
    let longestTrack: Int

    // The linearisation: weighted residuals (2), camera-side Jacobians (2 × 10) and point Jacobians (2 × 3)
    // per active observation; the camera-side normal matrix (lower triangle, row-major), its diagonal and the
    // negative gradient; per variable point its 3 × 3 normal block and negative gradient.
    var residuals: [Double]
    var cameraJacobians: [Double]
    var pointJacobians: [Double]
    var cameraNormal: [Double]
    var cameraDiagonal: [Double]
    var cameraGradient: [Double]
    var pointNormals: [Double]
    var pointGradients: [Double]

    // One step: the damped reduced system and its solution, the point steps, and per point the inverse of
    // its damped block.
    var reduced: [Double]
    var cameraStep: [Double]
    var pointStep: [Double]
    var pointInverses: [Double]

    init(_ problem: BundleAdjustmentProblem, options: BundleAdjustmentOptions) {
        self.options = options
        active = BundleAdjuster.activeObservations(problem)
        let observedImages = Set(active.map { Int(problem.observations[$0].image) })
        let columns = BundleAdjuster.assignColumns(problem, observedImages: observedImages, options: options)
        (poseColumns, intrinsicColumns, size) = columns
        let layout = BundleAdjuster.observationColumns(problem, active: active, poseColumns: poseColumns,
                                                       intrinsicColumns: intrinsicColumns)
        (columnCounts, globalColumns, localColumns) = layout
        let tracks = BundleAdjuster.tracks(problem, active: active)
        (variablePoints, trackStarts, trackOrder, pointSlots) = tracks
        longestTrack = zip(trackStarts.dropFirst(), trackStarts).map { $0 - $1 }.max() ?? 0

        let count = active.count, points = variablePoints.count
        residuals = Array(repeating: 0, count: 2 * count)
        cameraJacobians = Array(repeating: 0, count: 20 * count)
        pointJacobians = Array(repeating: 0, count: 6 * count)
        cameraNormal = Array(repeating: 0, count: size * size)
        cameraDiagonal = Array(repeating: 0, count: size)
        cameraGradient = Array(repeating: 0, count: size)
        pointNormals = Array(repeating: 0, count: 9 * points)
        pointGradients = Array(repeating: 0, count: 3 * points)
        reduced = Array(repeating: 0, count: size * size)
        cameraStep = Array(repeating: 0, count: size)
        pointStep = Array(repeating: 0, count: 3 * points)
        pointInverses = Array(repeating: 0, count: 9 * points)
    }

    /// The observations whose point lies in front of its camera at the start.
    static func activeObservations(_ problem: BundleAdjustmentProblem) -> [Int] {
        problem.observations.indices.filter { index in
            let observation = problem.observations[index]
            precondition(problem.poses.indices.contains(Int(observation.image)), "observation of a missing image")
            precondition(problem.points.indices.contains(Int(observation.point)), "observation of a missing point")
            let pose = problem.poses[Int(observation.image)]
            return pose.apply(problem.points[Int(observation.point)]).z > 0
        }
    }

    /// Reduced-system columns for the free pose parameters of observed images and the refined intrinsics of
    /// their cameras; everything else is held by having no column.
    static func assignColumns(_ problem: BundleAdjustmentProblem, observedImages: Set<Int>,
                              options: BundleAdjustmentOptions) -> ([Int], [Int], Int) {
        if let fixed = problem.fixedTranslationAxis {
            precondition((0..<3).contains(fixed.axis), "a translation axis is 0, 1 or 2, not \(fixed.axis)")
        }
        precondition(problem.imageCameras.allSatisfy { problem.cameras.indices.contains($0) },
                     "an image names a missing camera")
        var next = 0
        var poseColumns = [Int](repeating: -1, count: 6 * problem.poses.count)
        for image in problem.poses.indices where observedImages.contains(image)
            && !problem.constantPoses.contains(image) {
            for parameter in 0..<6 {
                let fixed = problem.fixedTranslationAxis
                if let fixed, fixed.image == image, parameter == 3 + fixed.axis { continue }
                poseColumns[6 * image + parameter] = next
                next += 1
            }
        }
        let refined = [options.refinesFocal, options.refinesRadial, options.refinesPrincipalPoint,
                       options.refinesPrincipalPoint]
        let observedCameras = Set(observedImages.map { problem.imageCameras[$0] })
        var intrinsicColumns = [Int](repeating: -1, count: 4 * problem.cameras.count)
        for camera in problem.cameras.indices where observedCameras.contains(camera) {
            let held = problem.constantPrincipalPoints.contains(camera)
            for parameter in 0..<4 where refined[parameter] && !(held && parameter >= 2) {
                intrinsicColumns[4 * camera + parameter] = next
                next += 1
            }
        }
        return (poseColumns, intrinsicColumns, next)
    }

    /// For each active observation, the camera-side parameters that move: their count and, in ten slots each,
    /// their reduced-system and Jacobian columns.
    static func observationColumns(_ problem: BundleAdjustmentProblem, active: [Int], poseColumns: [Int],
                                   intrinsicColumns: [Int]) -> ([Int32], [Int32], [Int32]) {
        var counts = [Int32](repeating: 0, count: active.count)
        var global = [Int32](repeating: -1, count: 10 * active.count)
        var local = [Int32](repeating: 0, count: 10 * active.count)
        for (slot, index) in active.enumerated() {
            let image = Int(problem.observations[index].image), camera = problem.imageCameras[image]
            var count = 0
            for parameter in 0..<10 {
                let column = parameter < 6 ? poseColumns[6 * image + parameter]
                    : intrinsicColumns[4 * camera + parameter - 6]
                guard column >= 0 else { continue }
                global[10 * slot + count] = Int32(column)
                local[10 * slot + count] = Int32(parameter)
                count += 1
            }
            counts[slot] = Int32(count)
        }
        return (counts, global, local)
    }

    /// The variable points that are observed, each with its active observations (a range of the returned
    /// order), and for each active observation its point's slot (−1 for a held point).
    static func tracks(_ problem: BundleAdjustmentProblem,
                       active: [Int]) -> (points: [Int], starts: [Int], order: [Int], slots: [Int32]) {
        var slotOfPoint = [Int32](repeating: -1, count: problem.points.count)
        var points: [Int] = []
        var slots = [Int32](repeating: -1, count: active.count)
        for (slot, index) in active.enumerated() {
            let point = Int(problem.observations[index].point)
            guard !problem.constantPoints.contains(point) else { continue }
            if slotOfPoint[point] < 0 {
                slotOfPoint[point] = Int32(points.count)
                points.append(point)
            }
            slots[slot] = slotOfPoint[point]
        }
        // A counting sort of the observations by point slot.
        var starts = [Int](repeating: 0, count: points.count + 1)
        for slot in slots where slot >= 0 { starts[Int(slot) + 1] += 1 }
        for index in 0..<points.count { starts[index + 1] += starts[index] }
        var fill = starts
        var order = [Int](repeating: 0, count: starts[points.count])
        for (observation, slot) in slots.enumerated() where slot >= 0 {
            order[fill[Int(slot)]] = observation
            fill[Int(slot)] += 1
        }
        return (points, starts, order, slots)
    }

    /// The Levenberg–Marquardt loop. The damping λ starts at 1e-4 (Ceres's initial trust region of 1e4) and
    /// follows Nielsen's rule on the gain ratio ϱ: after an accepted step λ·max(⅓, 1 − (2ϱ − 1)³), after a
    /// rejected one λ·ν with ν doubling each time; a step is accepted when ϱ exceeds 1e-3.
    func run(_ problem: inout BundleAdjustmentProblem) -> BundleAdjustmentSummary {
        let initialErrors = BundleAdjustment.reprojectionErrors(of: problem)
        var cost = self.cost(problem) ?? 0
        var summary = BundleAdjustmentSummary(
            initialCost: cost, finalCost: cost, iterations: 0, acceptedIterations: 0, converged: false,
            initialRootMeanSquareError: BundleAdjustment.rootMeanSquare(initialErrors),
            finalRootMeanSquareError: 0, reducedSystemSize: size)
        var damping = 1e-4, growth = 2.0
        var needsLinearization = true
        while summary.iterations < options.maximumIterations {
            if needsLinearization {
                linearize(problem)
                needsLinearization = false
                if largestGradient() <= options.gradientTolerance || active.isEmpty {
                    summary.converged = true
                    break
                }
            }
            summary.iterations += 1
            guard let predicted = step(damping: damping) else {
                (damping, growth) = (damping * growth, growth * 2)
                if damping > 1e32 { break } else { continue }
            }
            if stepLength() <= options.parameterTolerance * (parameterLength(problem) + options.parameterTolerance) {
                summary.converged = true
                break
            }
            let candidate = moved(problem)
            let candidateCost = self.cost(candidate)
            let gain = candidateCost.map { (cost - $0) / predicted } ?? -1
            guard predicted > 0, gain > 1e-3, let newCost = candidateCost else {
                (damping, growth) = (damping * growth, growth * 2)
                if damping > 1e32 { break } else { continue }
            }
            let decrease = cost - newCost
            (problem, cost, needsLinearization) = (candidate, newCost, true)
            summary.acceptedIterations += 1
            damping *= max(1.0 / 3, 1 - pow(2 * gain - 1, 3))
            growth = 2
            if decrease <= options.functionTolerance * (cost + decrease) {
                summary.converged = true
                break
            }
        }
        summary.finalCost = cost
        summary.finalRootMeanSquareError = BundleAdjustment.rootMeanSquare(
            BundleAdjustment.reprojectionErrors(of: problem))
        return summary
    }

    /// See `BundleAdjustment.intrinsicDeviations`.
    func intrinsicDeviations(_ problem: BundleAdjustmentProblem) -> [[Double?]]? {
        linearize(problem)
        let redundancy = residuals.count - size - 3 * variablePoints.count
        guard size > 0, redundancy > 0, eliminatePoints(damping: 0) else { return nil }
        var info: Int32 = 0
        let n = Int32(size), upper = CChar(UInt8(ascii: "U"))
        reduced.withUnsafeMutableBufferPointer { matrix in
            info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, upper, n, matrix.baseAddress, n)
            if info == 0 { info = LAPACKE_dpotri(LAPACK_COL_MAJOR, upper, n, matrix.baseAddress, n) }
        }
        guard info == 0 else { return nil }
        let variance = residuals.reduce(0) { $0 + $1 * $1 } / Double(redundancy)
        return problem.cameras.indices.map { camera in
            (0..<4).map { parameter -> Double? in
                let column = intrinsicColumns[4 * camera + parameter]
                guard column >= 0 else { return nil }
                return (variance * reduced[column * size + column]).squareRoot()
            }
        }
    }

    /// ½·Σρ(s) over the active observations; nil when one of them falls behind its camera or is not finite.
    func cost(_ problem: BundleAdjustmentProblem) -> Double? {
        var total = 0.0
        for index in active {
            let observation = problem.observations[index]
            let camera = problem.cameras[problem.imageCameras[Int(observation.image)]]
            let pointInCamera = problem.poses[Int(observation.image)].apply(problem.points[Int(observation.point)])
            guard let pixel = camera.project(pointInCamera) else { return nil }
            let error = pixel - observation.pixel
            total += options.loss.value((error * error).sum())
        }
        total /= 2
        for (camera, prior) in problem.intrinsicsPriors.enumerated() where camera < problem.cameras.count {
            if let prior { total += prior.cost(problem.cameras[camera]) }
        }
        return total.isFinite ? total : nil
    }

    /// The weighted residuals and Jacobians of the current estimate, and the normal equations they give:
    /// the camera-side block in full, the point blocks per point.
    func linearize(_ problem: BundleAdjustmentProblem) {
        var jacobian = [Double](repeating: 0, count: 2 * BundleAdjustment.jacobianColumns)
        jacobian.withUnsafeMutableBufferPointer { full in
            for (slot, index) in active.enumerated() {
                let observation = problem.observations[index]
                let camera = problem.cameras[problem.imageCameras[Int(observation.image)]]
                let residual = BundleAdjustment.linearize(
                    camera: camera, pose: problem.poses[Int(observation.image)],
                    point: problem.points[Int(observation.point)], pixel: observation.pixel,
                    into: full.baseAddress!)
                // Accepted states keep every active point in front, so this is only a guard: a point behind
                // contributes nothing.
                store(slot, residual: residual ?? .zero, weight: residual == nil ? 0 : nil, jacobian: full.baseAddress!)
            }
        }
        accumulateCameraNormal()
        accumulatePriors(problem)
        accumulatePointNormals()
    }

    /// The intrinsics priors' terms in the camera-side normal equations: 1/σ² on the diagonal, −(x − x₀)/σ²
    /// in the negative gradient, for the focal and radial columns that move.
    private func accumulatePriors(_ problem: BundleAdjustmentProblem) {
        for (camera, prior) in problem.intrinsicsPriors.enumerated() where camera < problem.cameras.count {
            guard let prior else { continue }
            let values = problem.cameras[camera]
            var terms: [(column: Int, offset: Double, sigma: Double)] = []
            if let focal = prior.focal { terms.append((intrinsicColumns[4 * camera], values.focal - focal,
                                                       prior.focalSigma)) }
            if let sigma = prior.radialSigma { terms.append((intrinsicColumns[4 * camera + 1], values.radial, sigma)) }
            for term in terms where term.column >= 0 {
                let weight = 1 / (term.sigma * term.sigma)
                cameraNormal[term.column * size + term.column] += weight
                cameraDiagonal[term.column] += weight
                cameraGradient[term.column] -= weight * term.offset
            }
        }
    }

    /// Keeps one observation's residual and Jacobian, scaled by √ρ′ and packed to its moving columns.
    private func store(_ slot: Int, residual: Vector2, weight: Double?, jacobian: UnsafeMutablePointer<Double>) {
        let scale = (weight ?? options.loss.weight((residual * residual).sum())).squareRoot()
        let columns = BundleAdjustment.jacobianColumns
        residuals[2 * slot] = scale * residual.x
        residuals[2 * slot + 1] = scale * residual.y
        for row in 0..<2 {
            for a in 0..<Int(columnCounts[slot]) {
                let local = Int(localColumns[10 * slot + a])
                cameraJacobians[20 * slot + 10 * row + a] = scale * jacobian[columns * row + local]
            }
            for c in 0..<3 { pointJacobians[6 * slot + 3 * row + c] = scale * jacobian[columns * row + 10 + c] }
        }
    }

    /// U = Σ JcᵀJc (lower triangle of the row-major reduced matrix), its diagonal, and −Σ Jcᵀr.
    private func accumulateCameraNormal() {
        let n = size
        cameraNormal.withUnsafeMutableBufferPointer { normal in
            cameraGradient.withUnsafeMutableBufferPointer { gradient in
                for index in 0..<n * n { normal[index] = 0 }
                for index in 0..<n { gradient[index] = 0 }
                for slot in 0..<active.count {
                    let count = Int(columnCounts[slot]), j = 20 * slot
                    let r0 = residuals[2 * slot], r1 = residuals[2 * slot + 1]
                    for a in 0..<count {
                        let x = Int(globalColumns[10 * slot + a])
                        let ja0 = cameraJacobians[j + a], ja1 = cameraJacobians[j + 10 + a]
                        gradient[x] -= ja0 * r0 + ja1 * r1
                        for b in 0..<count {
                            let y = Int(globalColumns[10 * slot + b])
                            guard x >= y else { continue }
                            normal[x * n + y] += ja0 * cameraJacobians[j + b] + ja1 * cameraJacobians[j + 10 + b]
                        }
                    }
                }
                for index in 0..<n { cameraDiagonal[index] = normal[index * n + index] }
            }
        }
    }

    /// V = Σ BᵀB (3 × 3, full) and −Σ Bᵀr for each variable point.
    private func accumulatePointNormals() {
        for index in pointNormals.indices { pointNormals[index] = 0 }
        for index in pointGradients.indices { pointGradients[index] = 0 }
        for slot in 0..<active.count where pointSlots[slot] >= 0 {
            let p = Int(pointSlots[slot]), j = 6 * slot
            let r0 = residuals[2 * slot], r1 = residuals[2 * slot + 1]
            for a in 0..<3 {
                pointGradients[3 * p + a] -= pointJacobians[j + a] * r0 + pointJacobians[j + 3 + a] * r1
                for b in 0..<3 {
                    pointNormals[9 * p + 3 * a + b] += pointJacobians[j + a] * pointJacobians[j + b]
                        + pointJacobians[j + 3 + a] * pointJacobians[j + 3 + b]
                }
            }
        }
    }

    /// The largest entry of the cost's gradient.
    func largestGradient() -> Double {
        max(cameraGradient.reduce(0) { max($0, abs($1)) }, pointGradients.reduce(0) { max($0, abs($1)) })
    }

    /// Marquardt's damping term: λ times the matrix diagonal, clamped as Ceres does so that a parameter
    /// the data do not see still gets a finite step.
    private static func damped(_ diagonal: Double, _ damping: Double) -> Double {
        damping * min(max(diagonal, 1e-6), 1e32)
    }

    /// Solves the damped normal equations for a step into `cameraStep` and `pointStep`; returns the decrease
    /// the linear model predicts, or nil when the reduced system is not positive definite.
    func step(damping: Double) -> Double? {
        guard eliminatePoints(damping: damping) else { return nil }
        if size > 0 {
            var info: Int32 = 0
            let n = Int32(size)
            // The row-major lower triangle is LAPACK's column-major upper one: no transposed copy.
            reduced.withUnsafeMutableBufferPointer { matrix in
                cameraStep.withUnsafeMutableBufferPointer { rhs in
                    info = LAPACKE_dposv(LAPACK_COL_MAJOR, CChar(UInt8(ascii: "U")), n, 1, matrix.baseAddress, n,
                                         rhs.baseAddress, n)
                }
            }
            guard info == 0, cameraStep.allSatisfy(\.isFinite) else { return nil }
        }
        backSubstitutePoints()
        return predictedDecrease(damping: damping)
    }

    /// The reduced camera system S = U + λD − Σ W·V⁻¹·Wᵀ in `reduced` and its right-hand side in
    /// `cameraStep`; false when a damped point block is not positive definite.
    private func eliminatePoints(damping: Double) -> Bool {
        let n = size
        for index in 0..<n * n { reduced[index] = cameraNormal[index] }
        for index in 0..<n {
            reduced[index * n + index] += BundleAdjuster.damped(cameraDiagonal[index], damping)
            cameraStep[index] = cameraGradient[index]
        }
        var w = [Double](repeating: 0, count: 30 * longestTrack), y = w
        for p in variablePoints.indices {
            guard invertPointBlock(p, damping: damping) else { return false }
            let start = trackStarts[p], count = trackStarts[p + 1] - start
            for k in 0..<count { pointCoupling(trackOrder[start + k], p, into: &w, &y, at: 30 * k) }
            subtractPairs(p, track: start..<(start + count), w: w, y: y)
        }
        return true
    }

    /// The inverse of point block V + λD into `pointInverses`, by the adjugate; false when not positive
    /// definite.
    private func invertPointBlock(_ p: Int, damping: Double) -> Bool {
        let i = 9 * p
        let v00 = pointNormals[i] + BundleAdjuster.damped(pointNormals[i], damping)
        let v11 = pointNormals[i + 4] + BundleAdjuster.damped(pointNormals[i + 4], damping)
        let v22 = pointNormals[i + 8] + BundleAdjuster.damped(pointNormals[i + 8], damping)
        let v01 = pointNormals[i + 1], v02 = pointNormals[i + 2], v12 = pointNormals[i + 5]
        // The block is symmetric: its cofactors are too.
        let c00 = v11 * v22 - v12 * v12, c01 = v02 * v12 - v01 * v22, c02 = v01 * v12 - v02 * v11
        let c11 = v00 * v22 - v02 * v02, c12 = v01 * v02 - v00 * v12, c22 = v00 * v11 - v01 * v01
        let determinant = v00 * c00 + v01 * c01 + v02 * c02
        guard v00 > 0, c22 > 0, determinant > 0, determinant.isFinite else { return false }
        let scale = 1 / determinant
        pointInverses[i] = c00 * scale
        pointInverses[i + 1] = c01 * scale
        pointInverses[i + 2] = c02 * scale
        pointInverses[i + 3] = c01 * scale
        pointInverses[i + 4] = c11 * scale
        pointInverses[i + 5] = c12 * scale
        pointInverses[i + 6] = c02 * scale
        pointInverses[i + 7] = c12 * scale
        pointInverses[i + 8] = c22 * scale
        return true
    }

    /// W = Jcᵀ·B (count × 3) of one observation and Y = W·V⁻¹, at `offset` of the scratch buffers; Y·(−Bᵀr)
    /// leaves the right-hand side.
    private func pointCoupling(_ slot: Int, _ p: Int, into w: inout [Double], _ y: inout [Double], at offset: Int) {
        let j = 20 * slot, b = 6 * slot, inverse = 9 * p
        for a in 0..<Int(columnCounts[slot]) {
            for c in 0..<3 {
                w[offset + 3 * a + c] = cameraJacobians[j + a] * pointJacobians[b + c]
                    + cameraJacobians[j + 10 + a] * pointJacobians[b + 3 + c]
            }
            var reduction = 0.0
            for c in 0..<3 {
                let value = w[offset + 3 * a] * pointInverses[inverse + c]
                    + w[offset + 3 * a + 1] * pointInverses[inverse + 3 + c]
                    + w[offset + 3 * a + 2] * pointInverses[inverse + 6 + c]
                y[offset + 3 * a + c] = value
                reduction += value * pointGradients[3 * p + c]
            }
            cameraStep[Int(globalColumns[10 * slot + a])] -= reduction
        }
    }

    /// Subtracts Y_j·W_kᵀ for every pair of one point's observations from the lower triangle of `reduced`.
    ///
    /// Only pairs j ≤ k are formed: for j < k an entry stands for itself and its mirror in block (k, j), which
    /// land on the same lower-triangle cell, twice on the diagonal (two images sharing a camera's intrinsics).
    private func subtractPairs(_ p: Int, track: Range<Int>, w: [Double], y: [Double]) {
        let n = size
        reduced.withUnsafeMutableBufferPointer { matrix in
            w.withUnsafeBufferPointer { w in
                y.withUnsafeBufferPointer { y in
                    for j in track {
                        let slotJ = trackOrder[j], countJ = Int(columnCounts[slotJ]), yj = 30 * (j - track.lowerBound)
                        for k in j..<track.upperBound {
                            let slotK = trackOrder[k], countK = Int(columnCounts[slotK])
                            let wk = 30 * (k - track.lowerBound)
                            for a in 0..<countJ {
                                let x = Int(globalColumns[10 * slotJ + a])
                                let y0 = y[yj + 3 * a], y1 = y[yj + 3 * a + 1], y2 = y[yj + 3 * a + 2]
                                for b in 0..<countK {
                                    let z = Int(globalColumns[10 * slotK + b])
                                    let value = y0 * w[wk + 3 * b] + y1 * w[wk + 3 * b + 1] + y2 * w[wk + 3 * b + 2]
                                    if j == k {
                                        if x >= z { matrix[x * n + z] -= value }
                                    } else if x == z {
                                        matrix[x * n + x] -= 2 * value
                                    } else {
                                        matrix[max(x, z) * n + min(x, z)] -= value
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// δp = (V + λD)⁻¹·(−Bᵀr − Wᵀ·δc) for each variable point.
    private func backSubstitutePoints() {
        for p in variablePoints.indices {
            var rhs = Vector3(pointGradients[3 * p], pointGradients[3 * p + 1], pointGradients[3 * p + 2])
            for k in trackStarts[p]..<trackStarts[p + 1] {
                let slot = trackOrder[k], j = 20 * slot, b = 6 * slot
                var moved0 = 0.0, moved1 = 0.0
                for a in 0..<Int(columnCounts[slot]) {
                    let delta = cameraStep[Int(globalColumns[10 * slot + a])]
                    moved0 += cameraJacobians[j + a] * delta
                    moved1 += cameraJacobians[j + 10 + a] * delta
                }
                rhs -= Vector3(pointJacobians[b], pointJacobians[b + 1], pointJacobians[b + 2]) * moved0
                    + Vector3(pointJacobians[b + 3], pointJacobians[b + 4], pointJacobians[b + 5]) * moved1
            }
            let i = 9 * p
            pointStep[3 * p] = pointInverses[i] * rhs.x + pointInverses[i + 1] * rhs.y + pointInverses[i + 2] * rhs.z
            pointStep[3 * p + 1] = pointInverses[i + 3] * rhs.x + pointInverses[i + 4] * rhs.y
                + pointInverses[i + 5] * rhs.z
            pointStep[3 * p + 2] = pointInverses[i + 6] * rhs.x + pointInverses[i + 7] * rhs.y
                + pointInverses[i + 8] * rhs.z
        }
    }

    /// The decrease of the linear model, ½·δᵀ(λD·δ − g), with −g the stored negative gradient.
    private func predictedDecrease(damping: Double) -> Double {
        var total = 0.0
        for index in 0..<size {
            let delta = cameraStep[index]
            total += delta * (BundleAdjuster.damped(cameraDiagonal[index], damping) * delta + cameraGradient[index])
        }
        for p in variablePoints.indices {
            for a in 0..<3 {
                let delta = pointStep[3 * p + a]
                let diagonal = BundleAdjuster.damped(pointNormals[9 * p + 4 * a], damping)
                total += delta * (diagonal * delta + pointGradients[3 * p + a])
            }
        }
        return total / 2
    }

    /// The length of the whole step.
    func stepLength() -> Double {
        (cameraStep.reduce(0) { $0 + $1 * $1 } + pointStep.reduce(0) { $0 + $1 * $1 }).squareRoot()
    }

    /// The length of the moving parameters (rotations as rotation vectors), the scale of the parameter test.
    func parameterLength(_ problem: BundleAdjustmentProblem) -> Double {
        var total = 0.0
        for image in problem.poses.indices where (0..<6).contains(where: { poseColumns[6 * image + $0] >= 0 }) {
            let pose = problem.poses[image]
            let rotation = pose.rotation.rotationVector
            total += rotation.dot(rotation) + pose.translation.dot(pose.translation)
        }
        for camera in problem.cameras.indices {
            let values = intrinsicValues(problem.cameras[camera])
            for parameter in 0..<4 where intrinsicColumns[4 * camera + parameter] >= 0 {
                total += values[parameter] * values[parameter]
            }
        }
        for point in variablePoints { total += problem.points[point].dot(problem.points[point]) }
        return total.squareRoot()
    }

    /// Focal, radial, principal x and y: the order of the intrinsic columns.
    private func intrinsicValues(_ camera: SimpleRadialCamera) -> [Double] {
        [camera.focal, camera.radial, camera.principal.x, camera.principal.y]
    }

    /// The problem moved by the current step: R ← exp(δ)·R, t ← t + δt, the intrinsics and points added to.
    func moved(_ problem: BundleAdjustmentProblem) -> BundleAdjustmentProblem {
        var candidate = problem
        for image in problem.poses.indices {
            let delta = (0..<6).map { poseColumns[6 * image + $0] >= 0 ? cameraStep[poseColumns[6 * image + $0]] : 0 }
            guard delta.contains(where: { $0 != 0 }) else { continue }
            let pose = problem.poses[image]
            candidate.poses[image] = Rigid3(
                rotation: Matrix3(rotationVector: Vector3(delta[0], delta[1], delta[2])) * pose.rotation,
                translation: pose.translation + Vector3(delta[3], delta[4], delta[5]))
        }
        for camera in problem.cameras.indices {
            let delta = (0..<4).map {
                intrinsicColumns[4 * camera + $0] >= 0 ? cameraStep[intrinsicColumns[4 * camera + $0]] : 0
            }
            candidate.cameras[camera].focal += delta[0]
            candidate.cameras[camera].radial += delta[1]
            candidate.cameras[camera].principal += Vector2(delta[2], delta[3])
        }
        for (p, point) in variablePoints.enumerated() {
            candidate.points[point] += Vector3(pointStep[3 * p], pointStep[3 * p + 1], pointStep[3 * p + 2])
        }
        return candidate
    }
}
