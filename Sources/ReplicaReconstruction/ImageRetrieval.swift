import CLinearAlgebra
import Foundation
import ReplicaCore
import ReplicaGeometry

/// How images are retrieved for matching; `validate()` before use.
public struct RetrievalOptions: Equatable, Sendable {
    /// The most similar images each image is paired with.
    public var neighbours = 20
    /// Visual words of the vocabulary.
    public var words = 1024
    /// Descriptors drawn from all images to train the vocabulary.
    public var trainingDescriptors = 100_000
    /// Rounds of k-means.
    public var iterations = 8
    public var seed: UInt64 = 0

    public init(neighbours: Int = 20, words: Int = 1024, trainingDescriptors: Int = 100_000, iterations: Int = 8,
                seed: UInt64 = 0) {
        self.neighbours = neighbours
        self.words = words
        self.trainingDescriptors = trainingDescriptors
        self.iterations = iterations
        self.seed = seed
    }

    public func validate() throws(OptionsError) {
        guard neighbours >= 1 else { throw OptionsError("neighbours must be at least 1, not \(neighbours)") }
        guard (2...65_536).contains(words) else { throw OptionsError("words must be 2 to 65,536, not \(words)") }
        guard trainingDescriptors >= words else {
            throw OptionsError("trainingDescriptors (\(trainingDescriptors)) must be at least words (\(words))")
        }
        guard iterations >= 1 else { throw OptionsError("iterations must be at least 1, not \(iterations)") }
    }
}

/// Image retrieval by a bag of visual words, so that a large unordered set is matched in about n·k pairs rather
/// than n²/2: a vocabulary learnt from the set's own descriptors by spherical k-means, each image a tf-idf
/// weighted histogram of its words, and each image paired with the `neighbours` images whose histograms are
/// closest by cosine.
///
/// A vocabulary per job rather than one shipped: the set is its own best training data (its objects, its
/// lighting), 100,000 descriptors train it in about a second, and nothing needs to be downloaded or kept.
public enum ImageRetrieval {
    /// The pairs to match: each image with its most similar `options.neighbours`, without repeats, sorted.
    public static func pairs(_ sets: [FeatureSet], options: RetrievalOptions = RetrievalOptions()) -> [ImagePair] {
        let count = sets.count
        guard count >= 2 else { return [] }
        guard options.neighbours < count - 1 else {
            return SelectPairs.pairs(imageCount: count, selection: .exhaustive)
        }
        let descriptors = sets.map { FeatureMatching.UnitDescriptors($0) }
        let vocabulary = train(descriptors, options: options)
        let histograms = descriptors.map { words(of: $0, vocabulary: vocabulary, wordCount: options.words) }
        let signatures = weigh(histograms, wordCount: options.words)
        let similarity = similarities(signatures, wordCount: options.words)
        var chosen = Set<ImagePair>()
        for image in 0..<count {
            let others = (0..<count).filter { $0 != image }
                .sorted { similarity[image * count + $0] > similarity[image * count + $1] }
            for other in others.prefix(options.neighbours) { chosen.insert(ImagePair(image, other)) }
        }
        return chosen.sorted()
    }

    // MARK: - The vocabulary

    /// Spherical k-means on an even sample of the descriptors: centroids are unit vectors, each descriptor
    /// goes to the centroid of the largest dot product, and an emptied word is reseeded from a random sample.
    static func train(_ descriptors: [FeatureMatching.UnitDescriptors], options: RetrievalOptions) -> [Float] {
        let length = FeatureSet.descriptorLength
        var generator = SplitMix64Generator(seed: options.seed)
        let total = descriptors.reduce(0) { $0 + $1.count }
        let stride = max(1, total / options.trainingDescriptors)
        var sample: [Float] = []
        sample.reserveCapacity(min(total, options.trainingDescriptors + descriptors.count) * length)
        var index = 0
        for set in descriptors {
            for row in 0..<set.count {
                if index % stride == 0 { sample.append(contentsOf: set.values[(row * length)..<((row + 1) * length)]) }
                index += 1
            }
        }
        let sampleCount = sample.count / length
        let words = min(options.words, sampleCount)
        guard words > 0 else { return [] }
        var centroids: [Float] = []
        for row in generator.distinctIndices(words, below: sampleCount) {
            centroids.append(contentsOf: sample[(row * length)..<((row + 1) * length)])
        }
        var assignment = [Int32](repeating: 0, count: sampleCount)
        for _ in 0..<options.iterations {
            nearestWords(sample, count: sampleCount, centroids: centroids, wordCount: words, into: &assignment)
            var sums = [Float](repeating: 0, count: words * length)
            var members = [Int](repeating: 0, count: words)
            for row in 0..<sampleCount {
                let word = Int(assignment[row])
                members[word] += 1
                for k in 0..<length { sums[word * length + k] += sample[row * length + k] }
            }
            for word in 0..<words {
                if members[word] == 0 {
                    let row = Int(generator.next() % UInt64(sampleCount))
                    for k in 0..<length { sums[word * length + k] = sample[row * length + k] }
                }
                var norm: Float = 0
                for k in 0..<length { norm += sums[word * length + k] * sums[word * length + k] }
                let scale = norm > 0 ? 1 / norm.squareRoot() : 0
                for k in 0..<length { centroids[word * length + k] = sums[word * length + k] * scale }
            }
        }
        return centroids
    }

    /// The word of each of `count` unit rows: the centroid with the largest dot product, by `cblas_sgemm` in
    /// blocks of 4096 rows.
    static func nearestWords(_ rows: [Float], count: Int, centroids: [Float], wordCount: Int,
                             into assignment: inout [Int32]) {
        let length = FeatureSet.descriptorLength, block = 4096
        var products = [Float](repeating: 0, count: block * wordCount)
        for start in Swift.stride(from: 0, to: count, by: block) {
            let height = min(block, count - start)
            rows.withUnsafeBufferPointer { left in
                centroids.withUnsafeBufferPointer { right in
                    products.withUnsafeMutableBufferPointer { out in
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(height), Int32(wordCount),
                                    Int32(length), 1, left.baseAddress! + start * length, Int32(length),
                                    right.baseAddress!, Int32(length), 0, out.baseAddress!, Int32(wordCount))
                    }
                }
            }
            for row in 0..<height {
                var best = -Float.infinity, word = 0
                for column in 0..<wordCount where products[row * wordCount + column] > best {
                    best = products[row * wordCount + column]
                    word = column
                }
                assignment[start + row] = Int32(word)
            }
        }
    }

    // MARK: - Signatures

    /// How often each word occurs in an image.
    static func words(of descriptors: FeatureMatching.UnitDescriptors, vocabulary: [Float],
                      wordCount: Int) -> [Int: Int] {
        guard descriptors.count > 0, !vocabulary.isEmpty else { return [:] }
        let words = vocabulary.count / FeatureSet.descriptorLength
        var assignment = [Int32](repeating: 0, count: descriptors.count)
        nearestWords(descriptors.values, count: descriptors.count, centroids: vocabulary, wordCount: words,
                     into: &assignment)
        var histogram: [Int: Int] = [:]
        for word in assignment { histogram[Int(word), default: 0] += 1 }
        return histogram
    }

    /// tf-idf weights, each image's vector scaled to unit length: a word in every image says nothing.
    static func weigh(_ histograms: [[Int: Int]], wordCount: Int) -> [[Int: Float]] {
        var documents = [Int](repeating: 0, count: wordCount)
        for histogram in histograms { for word in histogram.keys where word < wordCount { documents[word] += 1 } }
        let images = Float(histograms.count)
        return histograms.map { histogram in
            let total = Float(histogram.values.reduce(0, +))
            var vector: [Int: Float] = [:]
            for (word, occurrences) in histogram where word < wordCount {
                vector[word] = Float(occurrences) / max(1, total) * log(images / Float(max(1, documents[word])))
            }
            let norm = vector.values.reduce(0) { $0 + $1 * $1 }.squareRoot()
            return norm > 0 ? vector.mapValues { $0 / norm } : vector
        }
    }

    /// The cosine similarity of every two images, row-major n × n.
    static func similarities(_ signatures: [[Int: Float]], wordCount: Int) -> [Float] {
        let count = signatures.count
        var dense = [Float](repeating: 0, count: count * wordCount)
        for (image, signature) in signatures.enumerated() {
            for (word, weight) in signature { dense[image * wordCount + word] = weight }
        }
        var products = [Float](repeating: 0, count: count * count)
        dense.withUnsafeBufferPointer { rows in
            products.withUnsafeMutableBufferPointer { out in
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(count), Int32(count), Int32(wordCount), 1,
                            rows.baseAddress!, Int32(wordCount), rows.baseAddress!, Int32(wordCount), 0,
                            out.baseAddress!, Int32(count))
            }
        }
        return products
    }
}
