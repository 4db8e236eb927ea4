import Foundation
import ReplicaGeometry
import ReplicaCore

/// A model fitted to correspondences that a robust estimator can drive: minimal fits, refits and residuals.
///
/// Residuals are squared, in the problem's own units (pixels² for every problem of this module, except the
/// essential matrix, whose residuals are in normalised image units², so its threshold is divided by the focal).
public protocol RobustProblem {
    associatedtype Model

    /// The number of correspondences.
    var count: Int { get }
    /// The number of correspondences a minimal fit takes.
    var minimalSampleSize: Int { get }
    /// Every model through the correspondences `sample` (exactly `minimalSampleSize` of them); none when the
    /// sample is degenerate.
    func fitMinimal(_ sample: [Int]) -> [Model]
    /// Least-squares models through the correspondences `inliers` (at least `minimalSampleSize`), which the
    /// model `initial` explains (a starting point for an iterative refit); none when they cannot be fitted.
    func fitLeastSquares(_ inliers: [Int], initial: Model) -> [Model]
    /// The squared residual of each correspondence under `model`, in correspondence order.
    func squaredResiduals(of model: Model) -> [Double]
}

/// How a robust estimate is searched for; `validate()` before use.
public struct RobustOptions: Equatable, Sendable {
    /// The largest residual of an inlier, in pixels (4 px, as COLMAP's geometric verification uses).
    public var maximumErrorPixels: Double = 4
    /// The probability, 0 < p < 1, that the adaptive iteration count has drawn at least one all-inlier sample.
    public var confidence: Double = 0.999
    /// The fewest minimal samples drawn, whatever the adaptive count says.
    public var minimumIterations: Int = 0
    /// The most minimal samples drawn.
    public var maximumIterations: Int = 10_000
    /// The most least-squares refits on the inliers after each new best model (local optimisation; 0: none).
    public var localOptimizationSteps: Int = 10
    /// The seed of the sampling, so that a run can be replayed.
    public var seed: UInt64 = 0

    public init(maximumErrorPixels: Double = 4, confidence: Double = 0.999, minimumIterations: Int = 0,
                maximumIterations: Int = 10_000, localOptimizationSteps: Int = 10, seed: UInt64 = 0) {
        self.maximumErrorPixels = maximumErrorPixels
        self.confidence = confidence
        self.minimumIterations = minimumIterations
        self.maximumIterations = maximumIterations
        self.localOptimizationSteps = localOptimizationSteps
        self.seed = seed
    }

    /// Throws when a setting makes no sense.
    public func validate() throws {
        guard maximumErrorPixels.isFinite, maximumErrorPixels > 0 else {
            throw OptionsError("the maximum error must be a positive number of pixels, not \(maximumErrorPixels)")
        }
        guard confidence > 0, confidence < 1 else {
            throw OptionsError("the confidence must lie strictly between 0 and 1, not \(confidence)")
        }
        guard minimumIterations >= 0, maximumIterations >= 1, minimumIterations <= maximumIterations else {
            throw OptionsError("the iterations must satisfy 0 ≤ minimum (\(minimumIterations)) ≤ maximum "
                + "(\(maximumIterations)) and maximum ≥ 1")
        }
        guard localOptimizationSteps >= 0 else {
            throw OptionsError("the local optimisation steps must be ≥ 0, not \(localOptimizationSteps)")
        }
    }
}

/// The best model a robust estimator found, with its inliers.
public struct RobustEstimate<Model> {
    public var model: Model
    /// One flag per correspondence: whether its residual is within the threshold.
    public var inlierMask: [Bool]
    public var inlierCount: Int
    /// The MSAC cost: the sum over correspondences of min(residual², threshold²).
    public var cost: Double
    /// The minimal samples drawn.
    public var iterations: Int
}

/// MSAC with local optimisation (LO-MSAC): minimal samples scored by truncated squared residuals, each new best
/// refined by least-squares refits on its inliers, and an iteration count that adapts to the inlier ratio.
public enum RobustEstimation {
    /// The best model of `problem` under a residual threshold of `threshold` in the problem's units; nil when
    /// no sample gave a model (too few correspondences, or only degenerate samples).
    public static func estimate<Problem: RobustProblem>(_ problem: Problem, threshold: Double,
                                                        options: RobustOptions) -> RobustEstimate<Problem.Model>? {
        let count = problem.count, sampleSize = problem.minimalSampleSize
        guard count >= sampleSize, sampleSize > 0, threshold > 0 else { return nil }
        var search = Search(problem: problem, squaredThreshold: threshold * threshold)
        var generator = SplitMix64Generator(seed: options.seed)
        var iterations = 0, needed = options.maximumIterations

        while iterations < max(needed, options.minimumIterations) && iterations < options.maximumIterations {
            iterations += 1
            let sample = generator.distinctIndices(sampleSize, below: count)
            guard search.consider(problem.fitMinimal(sample)) else { continue }
            search.optimizeLocally(steps: options.localOptimizationSteps)
            needed = adaptiveIterations(inlierRatio: Double(search.bestInliers.count) / Double(count),
                                        sampleSize: sampleSize, confidence: options.confidence,
                                        maximum: options.maximumIterations)
        }

        guard let model = search.bestModel else { return nil }
        let mask = search.bestResiduals.map { $0 <= search.squaredThreshold }
        return RobustEstimate(model: model, inlierMask: mask, inlierCount: search.bestInliers.count,
                              cost: search.bestCost, iterations: iterations)
    }

    /// The samples needed so that one of them is all inliers with probability `confidence`:
    /// log(1 − p) / log(1 − wˢ), within 1...maximum.
    public static func adaptiveIterations(inlierRatio: Double, sampleSize: Int, confidence: Double,
                                          maximum: Int) -> Int {
        let allInliers = pow(min(max(inlierRatio, 0), 1), Double(sampleSize))
        guard allInliers > 0 else { return maximum }
        guard allInliers < 1 else { return 1 }
        let needed = log(1 - confidence) / log(1 - allInliers)
        guard needed.isFinite else { return maximum }
        return min(maximum, max(1, Int(needed.rounded(.up))))
    }

    /// The best model so far and how it is scored.
    private struct Search<Problem: RobustProblem> {
        let problem: Problem
        let squaredThreshold: Double
        var bestModel: Problem.Model?
        var bestCost = Double.infinity
        var bestResiduals: [Double] = []
        var bestInliers: [Int] = []

        init(problem: Problem, squaredThreshold: Double) {
            self.problem = problem
            self.squaredThreshold = squaredThreshold
        }

        /// Scores `models` and keeps the best if it beats the best so far; whether one did.
        mutating func consider(_ models: [Problem.Model]) -> Bool {
            var improved = false
            for model in models {
                let residuals = problem.squaredResiduals(of: model)
                let cost = residuals.reduce(0) { $0 + ($1.isNaN ? squaredThreshold : min($1, squaredThreshold)) }
                guard cost < bestCost else { continue }
                bestModel = model
                bestCost = cost
                bestResiduals = residuals
                bestInliers = residuals.indices.filter { residuals[$0] <= squaredThreshold }
                improved = true
            }
            return improved
        }

        /// Refits on the inliers of the best model while that lowers the cost, at most `steps` times.
        mutating func optimizeLocally(steps: Int) {
            for _ in 0..<steps {
                guard let initial = bestModel, bestInliers.count >= problem.minimalSampleSize,
                      consider(problem.fitLeastSquares(bestInliers, initial: initial)) else { return }
            }
        }
    }
}
