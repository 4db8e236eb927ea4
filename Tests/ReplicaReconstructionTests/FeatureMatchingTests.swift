import Foundation
import ReplicaImageIO
import XCTest
@testable import ReplicaReconstruction

/// Descriptor matching on hand-made feature sets with known answers (identity, permutation, ambiguity, one-sided
/// matches), against a brute-force loop, on real photos, and the `.match` file.
final class FeatureMatchingTests: XCTestCase {
    // MARK: - Hand-made descriptors

    /// A small seeded generator (SplitMix64), so every run builds the same sets.
    private struct Seeded {
        var state: UInt64

        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }

        /// Uniform in 0..<1.
        mutating func unit() -> Float { Float(next() >> 40) / Float(1 << 24) }
    }

    /// A raw SIFT-like histogram: mostly small bins and a few large ones (u⁶), so two unrelated descriptors are
    /// about 1 apart after RootSIFT, as real ones are, rather than crowded together.
    private func randomRaw(_ random: inout Seeded) -> [Float] {
        (0..<FeatureSet.descriptorLength).map { _ in pow(random.unit(), 6) }
    }

    /// `raw` moved a fraction `amount` of the way towards another random histogram.
    private func noisy(_ raw: [Float], _ amount: Float, _ random: inout Seeded) -> [Float] {
        zip(raw, randomRaw(&random)).map { (1 - amount) * $0 + amount * $1 }
    }

    /// A feature set of these raw histograms, quantised to RootSIFT bytes as detection does.
    private func featureSet(_ raws: [[Float]]) -> FeatureSet {
        var descriptors: [UInt8] = []
        for raw in raws { FeatureDetection.appendRootSIFT(raw, to: &descriptors) }
        let keypoints = raws.indices.map { Keypoint(x: Float($0), y: 0, scale: 1, orientation: 0) }
        return FeatureSet(width: 100, height: 100, keypoints: keypoints, descriptors: descriptors)
    }

    private func randomRaws(_ count: Int, _ random: inout Seeded) -> [[Float]] {
        (0..<count).map { _ in randomRaw(&random) }
    }

    /// The matches as (first, second) pairs of Int, for readable comparisons.
    private func pairs(_ matches: [FeatureMatch]) -> [[Int]] { matches.map { [Int($0.first), Int($0.second)] } }

    // MARK: - Known answers

    func testIdenticalSetsMatchEveryFeatureToItself() {
        var random = Seeded(state: 1)
        let set = featureSet(randomRaws(700, &random))
        let matches = FeatureMatching.match(set, set)
        XCTAssertEqual(pairs(matches), (0..<700).map { [$0, $0] })
    }

    func testAPermutedCopyRecoversThePermutation() {
        var random = Seeded(state: 2)
        let raws = randomRaws(600, &random)
        var order = Array(raws.indices)
        for index in order.indices.reversed() { order.swapAt(index, Int(random.next() % UInt64(index + 1))) }
        // Feature k of the copy is feature order[k] of the original.
        let original = featureSet(raws), permuted = featureSet(order.map { raws[$0] })
        var expected = [[Int]](repeating: [], count: 600)
        for (k, source) in order.enumerated() { expected[source] = [source, k] }
        XCTAssertEqual(pairs(FeatureMatching.match(original, permuted)), expected)
        XCTAssertEqual(pairs(FeatureMatching.match(permuted, original)), order.enumerated().map { [$0.0, $0.1] })
    }

    /// With noise, each feature still finds its own noisy copy; a feature whose copy has a near-identical twin in
    /// the other set is ambiguous, and Lowe's ratio drops it whether or not the cross check is on.
    func testWithNoiseTheRatioTestDropsAmbiguousFeatures() {
        var random = Seeded(state: 3)
        let raws = randomRaws(400, &random)
        let copies = raws.map { noisy($0, 0.2, &random) }
        let ambiguous = Set(0..<25)
        let twins = ambiguous.sorted().map { noisy(copies[$0], 0.02, &random) }
        let original = featureSet(raws)

        let clean = FeatureMatching.match(original, featureSet(copies))
        XCTAssertEqual(pairs(clean), raws.indices.map { [$0, $0] }, "every noisy copy is found without twins")

        let withTwins = featureSet(copies + twins)
        for crossCheck in [true, false] {
            let matches = FeatureMatching.match(original, withTwins, options: MatchingOptions(crossCheck: crossCheck))
            let matched = Set(matches.map { Int($0.first) })
            XCTAssertTrue(matched.isDisjoint(with: ambiguous), "ambiguous features matched: "
                          + "\(matched.intersection(ambiguous).sorted()), cross check \(crossCheck)")
            XCTAssertEqual(matched.sorted(), Array(25..<400), "cross check \(crossCheck)")
            XCTAssertTrue(matches.allSatisfy { $0.first == $0.second }, "cross check \(crossCheck)")
        }

        // Far enough apart, the same two copies are no longer ambiguous: the closer one wins.
        let closer = ambiguous.sorted().map { noisy(raws[$0], 0.05, &random) }
        let distinct = FeatureMatching.match(original, featureSet(copies + closer))
        let expected = raws.indices.map { ambiguous.contains($0) ? [$0, 400 + $0] : [$0, $0] }
        XCTAssertEqual(pairs(distinct), expected)
    }

    /// Two features of the first set share a nearest neighbour y in the second; only the one that is also y's
    /// nearest is kept by the cross check.
    func testTheCrossCheckRemovesOneSidedMatches() {
        var random = Seeded(state: 4)
        let others = randomRaws(200, &random)
        let target = randomRaw(&random)
        let near = noisy(target, 0.1, &random), farther = noisy(target, 0.3, &random)
        let a = featureSet(others.prefix(100) + [near, farther]), b = featureSet(others.suffix(100) + [target])

        let oneSided = FeatureMatching.match(a, b, options: MatchingOptions(crossCheck: false))
        XCTAssertEqual(pairs(oneSided), [[100, 100], [101, 100]], "both point at the target one way")
        let mutual = FeatureMatching.match(a, b)
        XCTAssertEqual(pairs(mutual), [[100, 100]])
        let table = FeatureMatching.nearestNeighbours(a, b)
        XCTAssertEqual(table.columnBestRow[100], 100)
    }

    /// A feature y of the second set whose nearest in the first, x, has a near twin there: x passes the ratio
    /// test towards the second set, where y stands alone, and is y's nearest, but from y's side x and its twin
    /// are too alike to tell apart. The cross check asks the ratio both ways, as COLMAP's does, and drops it.
    func testTheCrossCheckAsksTheRatioFromBothSides() {
        var random = Seeded(state: 7)
        let others = randomRaws(200, &random)
        let target = randomRaw(&random)
        let twins = [noisy(target, 0.1, &random), noisy(target, 0.1, &random)]
        let a = featureSet(others.prefix(100) + twins), b = featureSet(others.suffix(100) + [target])

        let table = FeatureMatching.nearestNeighbours(a, b)
        XCTAssertTrue([100, 101].contains(table.columnBestRow[100]))
        XCTAssertGreaterThan(table.columnSecondDot[100], table.columnBestDot[100] - 0.05, "the twin is a close second")
        let mutual = pairs(FeatureMatching.match(a, b))
        XCTAssertFalse(mutual.contains([100, 100]), "\(mutual)")
        XCTAssertFalse(mutual.contains([101, 100]), "\(mutual)")
        // One way, both twins pass the ratio test towards the target.
        let oneSided = pairs(FeatureMatching.match(a, b, options: MatchingOptions(crossCheck: false)))
        XCTAssertTrue(oneSided.contains([100, 100]) && oneSided.contains([101, 100]), "\(oneSided)")
    }

    func testEmptyAndBlankSetsGiveNoMatchesAndASingleFeatureCanMatch() {
        var random = Seeded(state: 5)
        let some = featureSet(randomRaws(10, &random))
        let empty = featureSet([])
        XCTAssertEqual(FeatureMatching.match(empty, empty), [])
        XCTAssertEqual(FeatureMatching.match(some, empty), [])
        XCTAssertEqual(FeatureMatching.match(empty, some), [])

        // All-zero descriptors have no direction and match nothing, not even themselves.
        let blank = featureSet([[Float]](repeating: [Float](repeating: 0, count: 128), count: 3))
        XCTAssertEqual(FeatureMatching.match(blank, blank), [])
        XCTAssertEqual(FeatureMatching.match(blank, some), [])
        let mixed = featureSet([[Float](repeating: 0, count: 128)] + randomRaws(4, &random))
        XCTAssertEqual(pairs(FeatureMatching.match(mixed, mixed)), [[1, 1], [2, 2], [3, 3], [4, 4]])

        // One feature on the other side: the second best counts as the farthest possible, 2.
        let single = featureSet([noisy(randomRaw(&random), 0, &random)])
        XCTAssertEqual(pairs(FeatureMatching.match(single, single)), [[0, 0]])
        let table = FeatureMatching.nearestNeighbours(some, single)
        XCTAssertEqual(table.secondDot, [Float](repeating: -1, count: 10))
    }

    // MARK: - Against a brute-force loop

    /// What the table should hold, from Double dot products of the de-quantised descriptors, one pair at a time.
    private struct BruteForce {
        var bestColumn: [Int] = [], bestDot: [Double] = [], secondDot: [Double] = []
        var columnBestRow: [Int] = [], columnBestDot: [Double] = [], columnSecondDot: [Double] = []

        init(_ a: FeatureSet, _ b: FeatureSet) {
            func unit(_ set: FeatureSet, _ index: Int) -> [Double] {
                let values = set.descriptor(at: index).map(Double.init)
                let norm = values.reduce(0) { $0 + $1 * $1 }.squareRoot()
                return values.map { $0 / norm }
            }
            let left = (0..<a.count).map { unit(a, $0) }, right = (0..<b.count).map { unit(b, $0) }
            columnBestRow = .init(repeating: -1, count: b.count)
            columnBestDot = .init(repeating: -2, count: b.count)
            columnSecondDot = .init(repeating: -2, count: b.count)
            for (i, row) in left.enumerated() {
                var best = -2.0, second = -2.0, at = -1
                for (j, column) in right.enumerated() {
                    var dot = 0.0
                    for k in 0..<128 { dot += row[k] * column[k] }
                    if dot > best { (second, best, at) = (best, dot, j) } else if dot > second { second = dot }
                    if dot > columnBestDot[j] {
                        (columnSecondDot[j], columnBestDot[j], columnBestRow[j]) = (columnBestDot[j], dot, i)
                    } else if dot > columnSecondDot[j] {
                        columnSecondDot[j] = dot
                    }
                }
                bestColumn.append(at)
                bestDot.append(best)
                secondDot.append(b.count > 1 ? second : -1)
            }
        }

        /// The matches by the options' rules, and the rows too close to a threshold for Float to decide surely.
        func matches(_ options: MatchingOptions) -> (matches: [[Int]], undecided: Set<Int>) {
            var matches: [[Int]] = [], undecided = Set<Int>()
            for i in bestColumn.indices {
                let best = (2 - 2 * min(1, bestDot[i])).squareRoot()
                let second = (2 - 2 * min(1, secondDot[i])).squareRoot()
                let j = bestColumn[i]
                let columnTie = columnBestDot[j] - columnSecondDot[j] < 1e-5
                if abs(best - options.maxDistance) < 1e-3 || abs(best - options.maxRatio * second) < 1e-3
                    || (options.crossCheck && columnTie) {
                    undecided.insert(i)
                }
                let columnSecond = (2 - 2 * min(1, columnSecondDot[j] < -1 ? -1 : columnSecondDot[j])).squareRoot()
                if options.crossCheck && abs(best - options.maxRatio * columnSecond) < 1e-3 { undecided.insert(i) }
                guard best <= options.maxDistance, best < options.maxRatio * second else { continue }
                if options.crossCheck && (columnBestRow[j] != i || best >= options.maxRatio * columnSecond) { continue }
                matches.append([i, j])
            }
            return (matches, undecided)
        }
    }

    /// Sets of odd sizes, half of the first set's features with noisy copies in the second, so there are real
    /// matches among random ones; block sizes that split the rows unevenly, and the default that crosses 1024.
    func testTheMatrixProductAgreesWithABruteForceLoop() {
        var random = Seeded(state: 6)
        for (rows, columns, block) in [(37, 53, 7), (53, 37, 1), (1500, 1100, nil), (2, 1, 1), (1, 2, nil)] {
            let raws = randomRaws(rows, &random)
            let copies = raws.prefix(min(rows / 2, columns)).map { noisy($0, 0.25, &random) }
            var others = randomRaws(columns - copies.count, &random)
            others.insert(contentsOf: copies, at: others.count / 2)
            let a = featureSet(raws), b = featureSet(others)
            let table = FeatureMatching.nearestNeighbours(a, b, rowsPerBlock: block)
            let truth = BruteForce(a, b)
            let label = "\(rows)×\(columns), block \(block.map(String.init) ?? "default")"

            var mismatches = 0
            for i in 0..<rows {
                XCTAssertEqual(Double(table.bestDot[i]), truth.bestDot[i], accuracy: 1e-5, "\(label) row \(i)")
                XCTAssertEqual(Double(table.secondDot[i]), truth.secondDot[i], accuracy: 1e-5, "\(label) row \(i)")
                let tie = truth.bestDot[i] - truth.secondDot[i] < 1e-5
                if Int(table.bestColumn[i]) != truth.bestColumn[i] && !tie { mismatches += 1 }
            }
            for j in 0..<columns {
                XCTAssertEqual(Double(table.columnBestDot[j]), truth.columnBestDot[j], accuracy: 1e-5, "\(label)")
                XCTAssertEqual(Double(table.columnSecondDot[j]), rows > 1 ? truth.columnSecondDot[j] : -1,
                               accuracy: 1e-5, "\(label)")
                let tie = truth.columnBestDot[j] - truth.columnSecondDot[j] < 1e-5
                if Int(table.columnBestRow[j]) != truth.columnBestRow[j] && !tie { mismatches += 1 }
            }
            XCTAssertEqual(mismatches, 0, "\(label): neighbours that differ from the brute-force loop")

            for options in [MatchingOptions(), MatchingOptions(maxRatio: 1, maxDistance: 2, crossCheck: false)] {
                let expected = truth.matches(options)
                let found = pairs(FeatureMatching.match(a, b, options: options, rowsPerBlock: block))
                let decided = { (pair: [Int]) in !expected.undecided.contains(pair[0]) }
                XCTAssertEqual(found.filter(decided), expected.matches.filter(decided), "\(label), \(options)")
                if options == MatchingOptions() && rows > 10 {
                    XCTAssertGreaterThan(expected.matches.count, rows / 4, "\(label): the noisy copies match")
                }
            }
        }
    }

    func testOptionsOutsideTheirRangesAreRefused() {
        XCTAssertNoThrow(try MatchingOptions().validate())
        XCTAssertNoThrow(try MatchingOptions(maxRatio: 1, maxDistance: 2).validate())
        let refused: [(MatchingOptions, String)] = [
            (MatchingOptions(maxRatio: 0), "maxRatio"), (MatchingOptions(maxRatio: 1.2), "maxRatio"),
            (MatchingOptions(maxRatio: .nan), "maxRatio"), (MatchingOptions(maxDistance: 0), "maxDistance"),
            (MatchingOptions(maxDistance: 2.5), "maxDistance"),
            (MatchingOptions(maxDistance: -.infinity), "maxDistance"),
        ]
        for (options, field) in refused {
            XCTAssertThrowsError(try options.validate()) { XCTAssertTrue("\($0)".contains(field), "\($0)") }
        }
    }

    // MARK: - Real photos

    /// A photo of the shared Kermit sequence (`../shared` from the repository), or a skip when it is missing.
    private func kermit(_ number: Int) throws -> PixelBuffer {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let path = root.deletingLastPathComponent()
            .appendingPathComponent("shared/datasets/bundler_kermit/kermit00\(number).jpg").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("the shared photo \(path) is not on this machine")
        }
        return try ImageReader.decode(path: path).pixels
    }

    private func detect(_ image: PixelBuffer) -> FeatureSet {
        FeatureDetection.detect(image, options: FeatureOptions(maximumFeatures: 4000))
    }

    func testNeighbouringPhotosShareHundredsOfMatches() throws {
        let first = detect(try kermit(0)), second = detect(try kermit(1))
        let matches = FeatureMatching.match(first, second)
        XCTAssertGreaterThanOrEqual(matches.count, 100, "of \(first.count) and \(second.count) features")
        XCTAssertEqual(Set(matches.map(\.second)).count, matches.count, "cross-checked matches are one-to-one")
    }

    /// Turned 90° clockwise, a point (x, y) of a 640×480 photo is at (480 − y, x).
    func testAPhotoMatchesItsRotatedSelfAtTheRotatedPositions() throws {
        let photo = try kermit(0)
        let original = detect(photo), rotated = detect(rotatedClockwise(photo))
        let matches = FeatureMatching.match(original, rotated)
        let agreeing = matches.filter { match in
            let from = original.keypoints[Int(match.first)], to = rotated.keypoints[Int(match.second)]
            return hypot(to.x - (Float(photo.height) - from.y), to.y - from.x) <= 2
        }
        XCTAssertGreaterThanOrEqual(matches.count, 100)
        XCTAssertGreaterThanOrEqual(Double(agreeing.count), 0.9 * Double(matches.count),
                                    "\(agreeing.count) of \(matches.count) matches agree with the rotation")
    }

    /// The pixels turned 90° clockwise: pixel (column i, row j) moves to (height − 1 − j, i).
    private func rotatedClockwise(_ image: PixelBuffer) -> PixelBuffer {
        var turned = PixelBuffer(width: image.height, height: image.width, channels: image.channels)
        for row in 0..<image.height {
            for column in 0..<image.width {
                let from = (row * image.width + column) * image.channels
                let to = (column * turned.width + (image.height - 1 - row)) * image.channels
                for channel in 0..<image.channels { turned.bytes[to + channel] = image.bytes[from + channel] }
            }
        }
        return turned
    }

    // MARK: - The match file

    func testTheMatchFileRoundTripsAndRefusesDamage() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("match-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("pair.match").path
        let file = MatchFile(firstImage: "kermit000.jpg", secondImage: "Grüße 2.jpg",
                             matches: [FeatureMatch(first: 0, second: 7), FeatureMatch(first: 70_000, second: 3)])
        try file.write(to: path)
        XCTAssertEqual(try MatchFile.read(path: path), file)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".partial"))

        let bytes = file.encoded()
        XCTAssertEqual(Array(bytes.prefix(8)), Array("RLMATCH1".utf8))
        XCTAssertEqual(bytes.count, 8 + 4 + 13 + 4 + "Grüße 2.jpg".utf8.count + 4 + 16)
        XCTAssertEqual(Array(bytes.suffix(8)), [0x70, 0x11, 0x01, 0, 3, 0, 0, 0], "little-endian Int32 pairs")
        let empty = MatchFile(firstImage: "", secondImage: "b", matches: [])
        XCTAssertEqual(try MatchFile.decode(empty.encoded(), path: "e"), empty)

        var negative = bytes
        negative[bytes.count - 1] = 0x80
        let damaged: [([UInt8], String)] = [
            (Array("RLSIFT1\0".utf8) + bytes.dropFirst(8), "not a match file"), (Array(bytes.prefix(10)), "truncated"),
            (Array(bytes.prefix(20)), "inside the first image name"), (Array(bytes.dropLast()), "truncated"),
            (bytes + [0], "damaged"), (negative, "negative feature index"),
        ]
        for (damagedBytes, reason) in damaged {
            XCTAssertThrowsError(try MatchFile.decode(damagedBytes, path: "x.match")) { error in
                XCTAssertTrue("\(error)".hasPrefix("x.match: ") && "\(error)".contains(reason), "\(error)")
            }
        }
        XCTAssertThrowsError(try MatchFile.read(path: folder.appendingPathComponent("missing").path)) {
            XCTAssertTrue("\($0)".contains("cannot read"), "\($0)")
        }
        XCTAssertThrowsError(try file.write(to: folder.appendingPathComponent("no/such/folder").path)) {
            XCTAssertTrue("\($0)".contains("cannot create"), "\($0)")
        }
    }
}
