import Foundation
import ReplicaGeometry

/// The middle, mean and largest of a set of non-negative errors.
public struct ErrorSummary: Equatable, Sendable, Codable {
    public var median: Double
    public var mean: Double
    public var max: Double

    /// Summarises `values`; nil when there are none.
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        median = Self.median(ofSorted: sorted)
        mean = values.reduce(0, +) / Double(values.count)
        max = sorted[sorted.count - 1]
    }
}

extension ErrorSummary {
    /// The middle value of a sorted, non-empty list: the mean of the two middle ones for an even count.
    static func median(ofSorted sorted: [Double]) -> Double {
        let middle = sorted.count / 2
        return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
    }
}

/// How far each estimated camera is from its true pose, after the estimate is aligned to the truth.
public struct CameraEvaluation: Equatable, Sendable, Codable {
    /// Images in the truth.
    public var trueImageCount: Int
    /// True images that the estimate has a camera for (matched by name).
    public var registeredCount: Int
    /// `registeredCount / trueImageCount`, 0...1.
    public var registeredFraction: Double
    /// Names of the true images the estimate lacks; they count in `registeredFraction` only.
    public var unregistered: [String]
    /// Names of estimated images the truth does not have; ignored otherwise.
    public var unknown: [String]
    /// The length centre errors are fractions of: the diagonal of the bounding box of all true camera
    /// centres, in the truth's units.
    public var pathExtent: Double
    /// The similarity that takes the estimate's world to the true world; nil when the registered centres
    /// cannot fix one (fewer than three, or all on one line).
    public var trueFromEstimated: Similarity3?
    /// Registered images whose aligned centre lies within the alignment's inlier threshold.
    public var alignmentInliers: Int
    /// Rotation error per registered image, degrees; nil without an alignment.
    public var rotationErrorDegrees: ErrorSummary?
    /// Centre error per registered image as a fraction of `pathExtent`; nil without an alignment.
    public var centerErrorFraction: ErrorSummary?
    /// Registered images with a rotation error ≤ 1°, as a fraction of the registered images.
    public var withinOneDegreeFraction: Double
    /// Registered images with a centre error ≤ 1 % of `pathExtent`, as a fraction of the registered images.
    public var withinOnePercentFraction: Double
    /// One entry per registered image, in the truth's order.
    public var images: [ImageError]

    /// The errors of one registered image.
    public struct ImageError: Equatable, Sendable, Codable {
        public var name: String
        public var rotationErrorDegrees: Double
        /// Distance between the aligned and the true centre, as a fraction of the path's extent.
        public var centerErrorFraction: Double
        public var isAlignmentInlier: Bool
    }
}

/// Compares estimated camera poses with the true ones.
public enum CameraMetrics {
    /// Matches `estimated` to `truth.images` by name, aligns the estimated centres to the true ones robustly,
    /// and measures each registered camera's rotation and centre error.
    public static func evaluate(estimated: [PosedImage], truth: SceneTruth,
                                options: RobustAlignmentOptions = .init()) throws -> CameraEvaluation {
        try options.validate()
        guard !truth.images.isEmpty else { throw MetricsError.missingTruth("the truth has no cameras") }
        let pairs = match(estimated, truth)
        let extent = pathExtent(truth)
        let alignment = SimilarityAlignment.robust(from: pairs.map { $0.estimated.centerInWorld },
                                                   to: pairs.map { $0.truth.centerInWorld },
                                                   extent: extent, options: options)
        let errors = alignment.map { measure(pairs, $0, extent: extent) } ?? []
        let trueNames = Set(truth.images.map(\.name)), estimatedNames = Set(estimated.map(\.name))
        let registered = Double(pairs.count)
        return CameraEvaluation(
            trueImageCount: truth.images.count, registeredCount: pairs.count,
            registeredFraction: registered / Double(truth.images.count),
            unregistered: truth.images.map(\.name).filter { !estimatedNames.contains($0) },
            unknown: estimated.map(\.name).filter { !trueNames.contains($0) },
            pathExtent: extent, trueFromEstimated: alignment?.targetFromSource,
            alignmentInliers: alignment?.isInlier.filter { $0 }.count ?? 0,
            rotationErrorDegrees: ErrorSummary(errors.map(\.rotationErrorDegrees)),
            centerErrorFraction: ErrorSummary(errors.map(\.centerErrorFraction)),
            withinOneDegreeFraction: fraction(errors, of: registered) { $0.rotationErrorDegrees <= 1 },
            withinOnePercentFraction: fraction(errors, of: registered) { $0.centerErrorFraction <= 0.01 },
            images: errors)
    }

    /// The diagonal of the bounding box of the true centres (not the largest pairwise distance, which is
    /// at most as long); 1 when every true camera sits at one point, so errors stay in scene units.
    public static func pathExtent(_ truth: SceneTruth) -> Double {
        guard let box = Vector3.bounds(of: truth.images.map(\.centerInWorld)) else { return 1 }
        let diagonal = (box.max - box.min).length
        return diagonal > 0 ? diagonal : 1
    }

    /// Registered pairs in the truth's order; an estimated name given twice uses its first camera.
    private static func match(_ estimated: [PosedImage], _ truth: SceneTruth)
        -> [(estimated: PosedImage, truth: PosedImage)] {
        let byName = Dictionary(estimated.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        return truth.images.compactMap { trueImage in byName[trueImage.name].map { ($0, trueImage) } }
    }

    private static func measure(_ pairs: [(estimated: PosedImage, truth: PosedImage)], _ alignment: RobustAlignment,
                                extent: Double) -> [CameraEvaluation.ImageError] {
        let trueFromEstimated = alignment.targetFromSource
        // Frames: E is the estimate's world, W the true world, C the camera. The alignment is W ← E, so
        // E ← W has rotation Rᵀ, and the estimate's camera-from-true-world rotation is
        // camFromW = camFromE · EFromW = R_camFromE · Rᵀ, compared with the true camFromW. Rᵀ itself comes
        // from the orientations, starting from the centres' alignment.
        let estimatedFromTrueRotation = orientationAlignment(pairs, start: trueFromEstimated.rotation.transposed)
        return pairs.indices.map { index in
            let (estimated, truth) = pairs[index]
            let camFromTrueWorld = estimated.camFromWorld.rotation * estimatedFromTrueRotation
            let angle = rotationAngle(from: truth.camFromWorld.rotation, to: camFromTrueWorld)
            let alignedCenter = trueFromEstimated.apply(estimated.centerInWorld)
            return CameraEvaluation.ImageError(
                name: truth.name, rotationErrorDegrees: angle * 180 / .pi,
                centerErrorFraction: (alignedCenter - truth.centerInWorld).length / extent,
                isAlignmentInlier: alignment.isInlier[index])
        }
    }

    /// The rotation A (estimated world ← true world) that best takes every estimated orientation to the true
    /// one, R_est · A ≈ R_true: the chordal mean of the per-image A = R_estᵀ · R_true, over the images within
    /// three times the median angle of the current A (or 1°), three times over.
    ///
    /// The centres alone fix A poorly when the cameras lie nearly in a plane (a ring around an object: the
    /// tilt about the ring's diameter is barely constrained), which would charge the estimate with an error of
    /// the evaluation's making.
    static func orientationAlignment(_ pairs: [(estimated: PosedImage, truth: PosedImage)],
                                     start: Matrix3) -> Matrix3 {
        let perImage = pairs.map { $0.estimated.camFromWorld.rotation.transposed * $0.truth.camFromWorld.rotation }
        guard !perImage.isEmpty else { return start }
        var current = start
        for _ in 0..<3 {
            let angles = perImage.map { rotationAngle(from: current, to: $0) }
            let limit = max(3 * angles.sorted()[angles.count / 2], 1 * .pi / 180)
            var sum = Matrix3(rows: .zero, .zero, .zero)
            for (index, rotation) in perImage.enumerated() where angles[index] <= limit { sum = sum + rotation }
            let svd = SVD3(sum)
            var nearest = svd.u * svd.v.transposed
            if nearest.determinant < 0 {
                let flip = Matrix3(rows: Vector3(1, 0, 0), Vector3(0, 1, 0), Vector3(0, 0, -1))
                nearest = svd.u * flip * svd.v.transposed
            }
            current = nearest
        }
        return current
    }

    /// The angle in radians of the rotation taking `a` to `b`, from both its sine and cosine: `acos` of the
    /// trace alone loses half the digits near 0, about 1e-6° — more than the errors it should resolve.
    static func rotationAngle(from a: Matrix3, to b: Matrix3) -> Double {
        let relative = a.transposed * b
        let r0 = relative.row(0), r1 = relative.row(1), r2 = relative.row(2)
        let twiceSine = Vector3(r2.y - r1.z, r0.z - r2.x, r1.x - r0.y).length
        return atan2(twiceSine / 2, (relative.trace - 1) / 2)
    }

    private static func fraction(_ errors: [CameraEvaluation.ImageError], of registered: Double,
                                 where isWithin: (CameraEvaluation.ImageError) -> Bool) -> Double {
        registered > 0 ? Double(errors.filter(isWithin).count) / registered : 0
    }
}
