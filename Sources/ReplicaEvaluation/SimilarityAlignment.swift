import Foundation
import ReplicaGeometry

/// A similarity `x ↦ scale · rotation · x + translation`; named after what it maps, as in `trueFromEstimated`.
public struct Similarity3: Equatable, Sendable {
    public var scale: Double
    public var rotation: Matrix3
    public var translation: Vector3

    public init(scale: Double = 1, rotation: Matrix3 = .identity, translation: Vector3 = .zero) {
        self.scale = scale
        self.rotation = rotation
        self.translation = translation
    }

    public static let identity = Similarity3()

    public func apply(_ point: Vector3) -> Vector3 { scale * (rotation * point) + translation }

    public var inverse: Similarity3 {
        let back = rotation.transposed
        return Similarity3(scale: 1 / scale, rotation: back, translation: -(back * translation) / scale)
    }
}

extension Similarity3: Codable {
    private enum CodingKeys: String, CodingKey { case scale, rotation, translation }

    /// The rotation is written as nine numbers in row-major order, the translation as three.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(scale, forKey: .scale)
        try container.encode(rotation.values, forKey: .rotation)
        try container.encode([translation.x, translation.y, translation.z], forKey: .translation)
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let rotationValues = try container.decode([Double].self, forKey: .rotation)
        let translationValues = try container.decode([Double].self, forKey: .translation)
        guard rotationValues.count == 9, translationValues.count == 3 else {
            throw DecodingError.dataCorruptedError(forKey: .rotation, in: container,
                                                   debugDescription: "a rotation takes 9 values, a translation 3")
        }
        self.init(scale: try container.decode(Double.self, forKey: .scale), rotation: Matrix3(rotationValues),
                  translation: Vector3(translationValues[0], translationValues[1], translationValues[2]))
    }
}

/// How `SimilarityAlignment.robust` tells good correspondences from bad.
public struct RobustAlignmentOptions: Equatable, Sendable, Codable {
    /// A pair is an inlier when the aligned point lies this close to its target, as a fraction of the
    /// targets' extent (the diagonal of their bounding box). Default 0.05.
    public var inlierThreshold: Double = 0.05
    /// Minimal 3-point samples drawn. Default 500.
    public var iterations: Int = 500
    /// Seed of the sample generator; the same seed and input give the same alignment. Default 1.
    public var seed: UInt64 = 1

    public init(inlierThreshold: Double = 0.05, iterations: Int = 500, seed: UInt64 = 1) {
        self.inlierThreshold = inlierThreshold
        self.iterations = iterations
        self.seed = seed
    }

    /// Rejects a threshold that is not a positive finite fraction and a sample count below 1.
    public func validate() throws {
        guard inlierThreshold.isFinite, inlierThreshold > 0 else {
            throw MetricsError.invalidOption("inlierThreshold must be a positive fraction, not \(inlierThreshold)")
        }
        guard iterations >= 1 else { throw MetricsError.invalidOption("iterations must be at least 1") }
    }
}

/// A similarity that takes one point set onto another, and which pairs it fits.
public struct RobustAlignment: Equatable, Sendable {
    /// Maps the source points onto the targets.
    public var targetFromSource: Similarity3
    /// For each pair, whether it lies within the threshold after the final fit.
    public var isInlier: [Bool]
}

/// Least-squares and robust similarities between corresponding point sets.
public enum SimilarityAlignment {
    /// The similarity minimising Σ‖target − S(source)‖² (Umeyama, 1991); nil for fewer than three pairs or
    /// sources that are all on one line, where the rotation about that line is not determined.
    public static func leastSquares(from source: [Vector3], to target: [Vector3]) -> Similarity3? {
        precondition(source.count == target.count, "a similarity is fitted to pairs of points")
        guard source.count >= 3 else { return nil }
        let count = Double(source.count)
        let sourceMean = source.reduce(.zero, +) / count, targetMean = target.reduce(.zero, +) / count
        var covariance = Matrix3([0, 0, 0, 0, 0, 0, 0, 0, 0])
        var sourceVariance = 0.0
        for (s, t) in zip(source, target) {
            let sc = s - sourceMean, tc = t - targetMean
            covariance = covariance + outer(tc, sc) * (1 / count)
            sourceVariance += sc.dot(sc) / count
        }
        return fit(covariance, sourceVariance: sourceVariance, sourceMean: sourceMean, targetMean: targetMean)
    }

    /// RANSAC over minimal 3-point samples, then a least-squares refit on the inliers of the best sample
    /// (repeated once with the refit's own inliers); nil when no sample gives a similarity.
    ///
    /// `extent` is the length the threshold is a fraction of, in the targets' units.
    public static func robust(from source: [Vector3], to target: [Vector3], extent: Double,
                              options: RobustAlignmentOptions = .init()) -> RobustAlignment? {
        precondition(source.count == target.count, "a similarity is fitted to pairs of points")
        precondition(extent > 0, "the threshold is a fraction of a positive length")
        let threshold = options.inlierThreshold * extent
        var random = SplitMix64Generator(seed: options.seed)
        var best: (inliers: Int, cost: Double, similarity: Similarity3)?
        for _ in 0..<options.iterations {
            guard let sample = sampleTriple(source.count, &random),
                  let similarity = leastSquares(from: sample.map { source[$0] }, to: sample.map { target[$0] })
            else { continue }
            let score = consensus(similarity, source, target, threshold)
            if let current = best, score.inliers < current.inliers
                || (score.inliers == current.inliers && score.cost >= current.cost) { continue }
            best = (score.inliers, score.cost, similarity)
        }
        guard var similarity = best?.similarity else { return nil }
        for _ in 0..<2 {
            let inliers = isInlier(similarity, source, target, threshold)
            let chosen = source.indices.filter { inliers[$0] }
            guard let refit = leastSquares(from: chosen.map { source[$0] }, to: chosen.map { target[$0] })
            else { break }
            similarity = refit
        }
        return RobustAlignment(targetFromSource: similarity,
                               isInlier: isInlier(similarity, source, target, threshold))
    }

    /// Umeyama's closed form from the cross-covariance Σ = mean((t − t̄)(s − s̄)ᵀ).
    private static func fit(_ covariance: Matrix3, sourceVariance: Double, sourceMean: Vector3,
                            targetMean: Vector3) -> Similarity3? {
        let svd = SVD3(covariance)
        let sigma = svd.singularValues
        // Rank below 2 (collinear or coincident points) leaves a rotation free.
        guard sourceVariance > 0, sigma[1] > 1e-12 * sigma[0] else { return nil }

        // When U·Vᵀ would be a reflection, flip the axis of the smallest singular value: the nearest rotation.
        let reflection = svd.u.determinant * svd.v.determinant < 0
        let signs = Vector3(1, 1, reflection ? -1 : 1)
        var rotation = Matrix3([0, 0, 0, 0, 0, 0, 0, 0, 0])
        for k in 0..<3 {
            let u = svd.u.column(k), v = svd.v.column(k)
            rotation = rotation + outer(u, v) * signs[k]
        }
        let scale = (sigma * signs).sum() / sourceVariance
        return Similarity3(scale: scale, rotation: rotation, translation: targetMean - scale * (rotation * sourceMean))
    }

    /// The matrix `a · bᵀ`.
    private static func outer(_ a: Vector3, _ b: Vector3) -> Matrix3 { Matrix3(rows: b * a.x, b * a.y, b * a.z) }

    private static func sampleTriple(_ count: Int, _ random: inout SplitMix64Generator) -> [Int]? {
        guard count >= 3 else { return nil }
        var chosen: [Int] = []
        while chosen.count < 3 {
            let index = Int.random(in: 0..<count, using: &random)
            if !chosen.contains(index) { chosen.append(index) }
        }
        return chosen
    }

    /// The number of inliers and a truncated squared cost (outliers count the threshold²), which breaks ties.
    private static func consensus(_ similarity: Similarity3, _ source: [Vector3], _ target: [Vector3],
                                  _ threshold: Double) -> (inliers: Int, cost: Double) {
        var inliers = 0, cost = 0.0
        for (s, t) in zip(source, target) {
            let residual = (similarity.apply(s) - t).length
            if residual <= threshold { inliers += 1 }
            cost += min(residual, threshold) * min(residual, threshold)
        }
        return (inliers, cost)
    }

    private static func isInlier(_ similarity: Similarity3, _ source: [Vector3], _ target: [Vector3],
                                 _ threshold: Double) -> [Bool] {
        zip(source, target).map { (similarity.apply($0) - $1).length <= threshold }
    }
}

/// A bad option or an input the metrics cannot measure.
public enum MetricsError: Error, Equatable, CustomStringConvertible {
    case invalidOption(String)
    case missingTruth(String)

    public var description: String {
        switch self {
        case .invalidOption(let message): return "invalid option: \(message)"
        case .missingTruth(let message): return "missing truth: \(message)"
        }
    }
}
