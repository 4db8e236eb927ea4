import Foundation
import ReplicaGeometry
import ReplicaProtocol
import ReplicaReconstruction

#if canImport(Glibc)
import Glibc
#endif

public extension WorkerLoop {
    /// Makes the numeric libraries compute on the calling thread only: the gateway runs one worker per core.
    static func useOneComputeThread() { FeatureMatching.useOneThread() }

    /// The OpenBLAS kernels to restart with when OpenBLAS did not recognise the CPU (see `BLASKernels`).
    static func betterBLASKernels() -> String? {
        BLASKernels.better(than: BLASKernels.current, cpuFlags: BLASKernels.cpuFlags())
    }
}

/// The inputs of a `match` task: its pairs listed, or a part of the retrieval task's list.
public struct MatchPairsInputs: Equatable {
    /// Where the pairs come from.
    public enum Source: Equatable {
        /// Pairs of photo names (files in the project's `images/`).
        case listed([[String]])
        /// Every `parts`-th pair of `work/` + `RetrievePairsTask.output`, from the `part`-th (0-based) on.
        case retrieved(part: Int, parts: Int)
    }

    /// The block's name: its output is `work/matches/<block>.pairs`.
    public var block: String
    public var source: Source

    public init(block: String, pairs: [[String]]) {
        self.block = block
        source = .listed(pairs)
    }

    public init(block: String, part: Int, parts: Int) {
        self.block = block
        source = .retrieved(part: part, parts: parts)
    }

    private static let names: Set<String> = ["block", "pairs", "part", "parts"]

    public init(_ inputs: [String: JSONValue]) throws(TaskError) {
        if let unknown = inputs.keys.sorted().first(where: { !Self.names.contains($0) }) {
            throw invalidInput("inputs.\(unknown) is not an input of a match task")
        }
        guard case .string(let block) = inputs["block"], !block.isEmpty,
              block.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }) else {
            throw invalidInput("inputs.block must be a name of letters, digits and '-'")
        }
        if case .number(let part) = inputs["part"], case .number(let parts) = inputs["parts"], inputs["pairs"] == nil {
            guard let part = Int(exactly: part), let parts = Int(exactly: parts), parts >= 1, (0..<parts).contains(part)
            else { throw invalidInput("inputs.part must be a whole number from 0 to inputs.parts − 1") }
            self.init(block: block, part: part, parts: parts)
            return
        }
        guard case .array(let list) = inputs["pairs"], inputs["part"] == nil, inputs["parts"] == nil else {
            throw invalidInput("inputs.pairs must be a list of [first, second] photo names, or inputs.part and "
                               + "inputs.parts must name a part of the retrieved pairs")
        }
        self.init(block: block, pairs: try Self.pairs(list))
    }

    /// Pairs of two different photo names without folders.
    static func pairs(_ list: [JSONValue]) throws(TaskError) -> [[String]] {
        var pairs: [[String]] = []
        for item in list {
            guard case .array(let names) = item, names.count == 2, case .string(let a) = names[0],
                  case .string(let b) = names[1], isFileName(a), isFileName(b), a != b else {
                throw invalidInput("inputs.pairs must hold pairs of two different photo names without folders")
            }
            pairs.append([a, b])
        }
        return pairs
    }

    /// The pairs themselves, read from the retrieval's list when they are not listed.
    func resolvedPairs(workDirectory: String) throws(TaskError) -> [[String]] {
        switch source {
        case .listed(let pairs): return pairs
        case .retrieved(let part, let parts):
            let all = try RetrievePairsTask.readPairs(workDirectory: workDirectory)
            return Swift.stride(from: part, to: all.count, by: parts).map { all[$0] }
        }
    }
}

/// Matching and verification of a block of pairs: nearest neighbours of the two images' descriptors with the
/// ratio test and the mutual check, then the essential matrix when both focal lengths are known (the
/// fundamental matrix otherwise) and a homography, in LO-MSAC. Verified pairs go to `work/matches/<block>.pairs`.
///
/// A pair whose photo Pre-Processing left out is passed over: the job goes on without that photo.
public struct MatchPairsTask {
    public var inputs: MatchPairsInputs
    public var workDirectory: String

    public init(inputs: MatchPairsInputs, workDirectory: String) {
        self.inputs = inputs
        self.workDirectory = workDirectory
    }

    public init(_ assignment: TaskAssignment) throws(TaskError) {
        self.init(inputs: try MatchPairsInputs(assignment.inputs), workDirectory: assignment.workDirectory)
    }

    public var outputs: [String] { ["matches/\(inputs.block).pairs"] }

    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        let final = workDirectory + "/" + outputs[0]
        unlink(final + ".partial")
        // Each image's features are read once; a block's pairs share images.
        var features: [String: FeatureSet] = [:]
        var facts: [String: WorkingImageFacts?] = [:]
        func load(_ image: String) throws(TaskError) -> (FeatureSet, WorkingImageFacts)? {
            if facts[image] == nil {
                facts[image] = try WorkingImageFacts.read(workDirectory: workDirectory, image: image)
            }
            guard let known = facts[image]! else { return nil }
            if features[image] == nil { features[image] = try readFeatures(workDirectory: workDirectory, image: image) }
            return (features[image]!, known)
        }

        var verified: [VerifiedPair] = []
        var candidates = 0, inliers = 0
        let pairs = try inputs.resolvedPairs(workDirectory: workDirectory)
        for (index, pair) in pairs.enumerated() {
            if sink.shouldStop { throw TaskError.cancelled }
            let count = pairs.count
            sink.progress(Double(index) / Double(max(1, count)), "pair \(index + 1) of \(count)")
            guard let (first, firstFacts) = try load(pair[0]), let (second, secondFacts) = try load(pair[1]) else {
                continue
            }
            let matches = FeatureMatching.match(first, second)
            candidates += matches.count
            let points1 = matches.map { Vector2(Double(first.keypoints[Int($0.first)].x),
                                                Double(first.keypoints[Int($0.first)].y)) }
            let points2 = matches.map { Vector2(Double(second.keypoints[Int($0.second)].x),
                                                Double(second.keypoints[Int($0.second)].y)) }
            var options = TwoViewOptions()
            options.robust.seed = UInt64(index)
            let geometry = TwoViewGeometry.verify(points1, points2, camera1: firstFacts.pinholePrior,
                                                  camera2: secondFacts.pinholePrior, options: options)
            guard geometry.configuration != .unverified else { continue }
            let kept = matches.indices.filter { geometry.inlierMask[$0] }.map { matches[$0] }
            inliers += kept.count
            verified.append(VerifiedPair(firstImage: pair[0], secondImage: pair[1],
                                         configuration: geometry.configuration, candidateCount: matches.count,
                                         inliers: kept))
        }
        if sink.shouldStop { throw TaskError.cancelled }
        do {
            try FileManager.default.createDirectory(atPath: workDirectory + "/matches",
                                                    withIntermediateDirectories: true)
            try VerifiedPairsFile.write(verified, to: final)
        } catch {
            throw TaskError.failed(message: "cannot write \(outputs[0]): \(error)", retryable: true, image: nil)
        }
        sink.progress(1, "done")
        return TaskOutcome(outputs: outputs, data: [
            "pairs": .number(Double(pairs.count)), "verifiedPairs": .number(Double(verified.count)),
            "matches": .number(Double(candidates)), "inliers": .number(Double(inliers)),
        ])
    }
}
