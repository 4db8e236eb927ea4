import CLinearAlgebra
import Foundation
import ReplicaCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A correspondence between feature `first` of one image and feature `second` of another.
public struct FeatureMatch: Equatable, Hashable, Sendable {
    /// The feature's index in the first image's `FeatureSet`.
    public var first: Int32
    /// The feature's index in the second image's `FeatureSet`.
    public var second: Int32

    public init(first: Int32, second: Int32) {
        self.first = first
        self.second = second
    }
}

/// How descriptors are matched; `validate()` before use.
public struct MatchingOptions: Equatable, Sendable {
    /// Lowe's ratio: the best match's distance over the second best's must be below this; default 0.8.
    public var maxRatio: Double
    /// Largest descriptor distance accepted, on unit-length descriptors (0...2); default 0.7 like COLMAP.
    public var maxDistance: Double
    /// Keep only matches that are each other's best in both directions and pass the ratio test in both;
    /// default true.
    public var crossCheck: Bool

    public init(maxRatio: Double = 0.8, maxDistance: Double = 0.7, crossCheck: Bool = true) {
        self.maxRatio = maxRatio
        self.maxDistance = maxDistance
        self.crossCheck = crossCheck
    }

    /// Rejects a ratio outside (0, 1] and a distance outside (0, 2], with the field's name.
    public func validate() throws(OptionsError) {
        guard maxRatio.isFinite, maxRatio > 0, maxRatio <= 1 else {
            throw OptionsError("maxRatio must be a distance ratio above 0 and at most 1, not \(maxRatio)")
        }
        guard maxDistance.isFinite, maxDistance > 0, maxDistance <= 2 else {
            throw OptionsError("maxDistance must be a unit-descriptor distance above 0 and at most 2, "
                               + "not \(maxDistance)")
        }
    }
}

/// Nearest-neighbour matching of descriptors between two images, as dense matrix products through OpenBLAS.
public enum FeatureMatching {
    /// The most dot products one block of the product holds (16 MiB of Float), whatever the sets' sizes.
    static let blockElements = 1 << 22
    /// The most rows of the first set in one block.
    static let largestBlockRows = 1024

    /// Makes OpenBLAS run on the calling thread only, for processes where each worker already owns a core.
    public static func useOneThread() {
        openblas_set_num_threads(1)
    }

    /// Nearest neighbours by descriptor distance, fast: descriptors as Float rows normalised to unit length, all
    /// dot products at once with `cblas_sgemm` (in blocks of at most 1024 rows and 16 MiB, so memory stays
    /// bounded for 16k × 16k), best and second best per row and per column, and the ratio test on the true
    /// distances √(2 − 2·dot), from the column's side too for the cross check. Matches come in the order of
    /// `a`'s features.
    ///
    /// A descriptor of all zeros has no direction and matches nothing. When `b` has one usable feature, its
    /// second-best distance counts as 2, the largest two unit vectors can have. `options` must be valid.
    public static func match(_ a: FeatureSet, _ b: FeatureSet, options: MatchingOptions = .init()) -> [FeatureMatch] {
        match(a, b, options: options, rowsPerBlock: nil)
    }

    /// `match(_:_:options:)` with the block's rows chosen by the caller (nil: the default), for tests.
    static func match(_ a: FeatureSet, _ b: FeatureSet, options: MatchingOptions,
                      rowsPerBlock: Int?) -> [FeatureMatch] {
        do {
            try options.validate()
        } catch {
            preconditionFailure("FeatureMatching.match with invalid options: \(error)")
        }
        let table = nearestNeighbours(a, b, rowsPerBlock: rowsPerBlock)
        return accepted(table, options: options)
    }

    /// The matches of a neighbour table that pass the distance, ratio and (if asked) cross checks.
    static func accepted(_ table: NeighbourTable, options: MatchingOptions) -> [FeatureMatch] {
        // Distances only for the rows that survive the cheap test on the dot product.
        let smallestDot = Float(1 - options.maxDistance * options.maxDistance / 2)
        var matches: [FeatureMatch] = []
        for row in table.bestColumn.indices {
            let column = table.bestColumn[row]
            guard column >= 0, table.bestDot[row] >= smallestDot else { continue }
            let best = distance(fromDot: table.bestDot[row]), second = distance(fromDot: table.secondDot[row])
            guard best <= options.maxDistance, best < options.maxRatio * second else { continue }
            if options.crossCheck {
                // Mutual, and distinctive both ways: the ratio test holds from the column's side too, as
                // COLMAP's cross check has it. One way only, a feature of `b` that resembles many of `a`
                // (repeated texture, a symmetric object seen from its far side) would still pair with its best.
                guard table.columnBestRow[Int(column)] == Int32(row),
                      best < options.maxRatio * distance(fromDot: table.columnSecondDot[Int(column)]) else { continue }
            }
            matches.append(FeatureMatch(first: Int32(row), second: column))
        }
        return matches
    }

    /// The distance of two unit vectors whose dot product is `dot`, clamped against rounding to 0...2.
    static func distance(fromDot dot: Float) -> Double {
        (2 - 2 * min(1, max(-1, Double(dot)))).squareRoot()
    }

    /// For each feature of one set, its nearest and second-nearest features in another, and the reverse.
    struct NeighbourTable: Equatable {
        /// Per feature of `a`: the index of its best feature in `b`, −1 when it has none (no usable features).
        var bestColumn: [Int32]
        /// Per feature of `a`: the dot product with its best feature (−1 when none).
        var bestDot: [Float]
        /// Per feature of `a`: the dot product with its second-best feature (−1, a distance of 2, when none).
        var secondDot: [Float]
        /// Per feature of `b`: the index of its best feature in `a`, −1 when it has none; ties go to the first.
        var columnBestRow: [Int32]
        /// Per feature of `b`: the dot product with that feature.
        var columnBestDot: [Float]
        /// Per feature of `b`: the dot product with its second-best feature in `a` (−1 when none).
        var columnSecondDot: [Float]
    }

    /// Every unit-descriptor dot product of `a` against `b`, reduced block by block to the neighbour table.
    static func nearestNeighbours(_ a: FeatureSet, _ b: FeatureSet, rowsPerBlock: Int? = nil) -> NeighbourTable {
        var table = NeighbourTable(bestColumn: .init(repeating: -1, count: a.count),
                                   bestDot: .init(repeating: -1, count: a.count),
                                   secondDot: .init(repeating: -1, count: a.count),
                                   columnBestRow: .init(repeating: -1, count: b.count),
                                   columnBestDot: .init(repeating: -1, count: b.count),
                                   columnSecondDot: .init(repeating: -1, count: b.count))
        let rows = UnitDescriptors(a), columns = UnitDescriptors(b)
        guard rows.count > 0, columns.count > 0 else { return table }
        let blockRows = rowsPerBlock ?? max(1, min(largestBlockRows, blockElements / columns.count))
        precondition(blockRows > 0, "a block needs at least one row")

        // The columns' bests are kept by usable column, so the inner loop reads and writes memory in order.
        var columnBest = [ColumnBest](repeating: ColumnBest(), count: columns.count)
        var products = [Float](repeating: 0, count: min(blockRows, rows.count) * columns.count)
        var start = 0
        while start < rows.count {
            let height = min(blockRows, rows.count - start)
            multiply(rows, from: start, height: height, by: columns, into: &products)
            reduce(products, rows: rows, from: start, height: height, columns: columns, into: &table,
                   columnBest: &columnBest)
            start += height
        }
        for (column, feature) in columns.features.enumerated() where columnBest[column].row >= 0 {
            table.columnBestRow[Int(feature)] = rows.features[Int(columnBest[column].row)]
            table.columnBestDot[Int(feature)] = columnBest[column].dot
            table.columnSecondDot[Int(feature)] = max(-1, columnBest[column].second)
        }
        return table
    }

    /// Per usable column so far: the largest dot product and the usable row it came from (−1 before any), and
    /// the second largest. Side by side, so the inner loop touches one cache line for all three.
    private struct ColumnBest {
        var dot: Float = -.infinity
        var second: Float = -.infinity
        var row: Int32 = -1
    }

    /// `products[r × columns.count + c]` = row `start + r` of `rows` · row `c` of `columns`, by `cblas_sgemm`.
    private static func multiply(_ rows: UnitDescriptors, from start: Int, height: Int, by columns: UnitDescriptors,
                                 into products: inout [Float]) {
        let length = Int32(FeatureSet.descriptorLength)
        rows.values.withUnsafeBufferPointer { left in
            columns.values.withUnsafeBufferPointer { right in
                products.withUnsafeMutableBufferPointer { out in
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(height), Int32(columns.count),
                                length, 1, left.baseAddress! + start * FeatureSet.descriptorLength, length,
                                right.baseAddress!, length, 0, out.baseAddress!, Int32(columns.count))
                }
            }
        }
    }

    /// Folds one block of dot products into the table's rows and columns (best two each); earlier rows and
    /// columns win ties.
    private static func reduce(_ products: [Float], rows: UnitDescriptors, from start: Int, height: Int,
                               columns: UnitDescriptors, into table: inout NeighbourTable,
                               columnBest: inout [ColumnBest]) {
        let width = columns.count
        products.withUnsafeBufferPointer { block in
            columnBest.withUnsafeMutableBufferPointer { bests in
                for r in 0..<height {
                    var best: Float = -.infinity, second: Float = -.infinity, bestAt = 0
                    let line = block.baseAddress! + r * width, row = Int32(start + r)
                    for c in 0..<width {
                        let dot = line[c]
                        if dot > second {
                            if dot > best {
                                second = best
                                best = dot
                                bestAt = c
                            } else {
                                second = dot
                            }
                        }
                        if dot > bests[c].second {
                            if dot > bests[c].dot {
                                bests[c].second = bests[c].dot
                                bests[c].dot = dot
                                bests[c].row = row
                            } else {
                                bests[c].second = dot
                            }
                        }
                    }
                    let feature = Int(rows.features[start + r])
                    table.bestColumn[feature] = columns.features[bestAt]
                    table.bestDot[feature] = best
                    table.secondDot[feature] = width > 1 ? second : -1
                }
            }
        }
    }

    /// The usable descriptors of a set as unit-length Float rows, and which feature each row is.
    struct UnitDescriptors {
        /// `descriptorLength` values per row.
        var values: [Float] = []
        /// The feature index of each row: descriptors of all zeros are left out.
        var features: [Int32] = []

        var count: Int { features.count }

        init(_ set: FeatureSet) {
            let length = FeatureSet.descriptorLength
            values.reserveCapacity(set.count * length)
            features.reserveCapacity(set.count)
            set.descriptors.withUnsafeBufferPointer { bytes in
                for index in 0..<set.count {
                    let descriptor = UnsafeBufferPointer(rebasing: bytes[index * length..<(index + 1) * length])
                    var squares: Float = 0
                    for byte in descriptor { squares += Float(byte) * Float(byte) }
                    guard squares > 0 else { continue }
                    let scale = 1 / squares.squareRoot()
                    for byte in descriptor { values.append(Float(byte) * scale) }
                    features.append(Int32(index))
                }
            }
        }
    }
}

/// The matches between two images as the next stages read them. The file, all little-endian:
///
/// | bytes | content |
/// |---|---|
/// | 8 | magic `RLMATCH1` |
/// | 4 + n₁ | the first image's name: its UTF-8 length as UInt32, then the bytes |
/// | 4 + n₂ | the second image's name, the same way |
/// | 4 | match count M, UInt32 |
/// | 8 M | per match the first and the second feature index, Int32 each |
public struct MatchFile: Equatable, Sendable {
    /// The file's first 8 bytes.
    public static let magic: [UInt8] = Array("RLMATCH1".utf8)
    /// The longest image name accepted, in UTF-8 bytes.
    public static let longestName = 4096

    /// The name of the image whose features are `first` in each match.
    public var firstImage: String
    /// The name of the image whose features are `second` in each match.
    public var secondImage: String
    public var matches: [FeatureMatch]

    public init(firstImage: String, secondImage: String, matches: [FeatureMatch]) {
        self.firstImage = firstImage
        self.secondImage = secondImage
        self.matches = matches
    }

    /// The file's bytes.
    public func encoded() -> [UInt8] {
        let first = Array(firstImage.utf8), second = Array(secondImage.utf8)
        var bytes = Self.magic
        bytes.reserveCapacity(20 + first.count + second.count + 8 * matches.count)
        for name in [first, second] {
            Self.append(UInt32(name.count), to: &bytes)
            bytes.append(contentsOf: name)
        }
        Self.append(UInt32(matches.count), to: &bytes)
        for match in matches {
            Self.append(UInt32(bitPattern: match.first), to: &bytes)
            Self.append(UInt32(bitPattern: match.second), to: &bytes)
        }
        return bytes
    }

    /// A match file from its bytes; `path` only names the file in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws(WorkFile.Failure) -> MatchFile {
        func refuse(_ reason: String) -> WorkFile.Failure { WorkFile.Failure(path: path, reason: reason) }
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            throw refuse("not a match file (it does not start with RLMATCH1)")
        }
        var offset = magic.count
        func nextWord(_ what: String) throws(WorkFile.Failure) -> UInt32 {
            guard bytes.count >= offset + 4 else {
                throw refuse("truncated match file: \(bytes.count) bytes end before the \(what)")
            }
            defer { offset += 4 }
            return word(bytes, at: offset)
        }
        var names: [String] = []
        for which in ["first", "second"] {
            let length = Int(try nextWord("\(which) image name's length"))
            guard length <= longestName else {
                throw refuse("damaged match file: the \(which) image name is \(length) bytes, over \(longestName)")
            }
            guard bytes.count >= offset + length else {
                throw refuse("truncated match file: \(bytes.count) bytes end inside the \(which) image name")
            }
            guard let name = String(validating: bytes[offset..<offset + length], as: UTF8.self) else {
                throw refuse("damaged match file: the \(which) image name is not UTF-8")
            }
            names.append(name)
            offset += length
        }
        let count = Int(try nextWord("match count"))
        let expected = offset + 8 * count
        guard bytes.count == expected else {
            let what = bytes.count < expected ? "truncated" : "damaged"
            throw refuse("\(what) match file: \(count) matches need \(expected) bytes, the file has \(bytes.count)")
        }
        var matches: [FeatureMatch] = []
        matches.reserveCapacity(count)
        for index in 0..<count {
            let first = Int32(bitPattern: word(bytes, at: offset))
            let second = Int32(bitPattern: word(bytes, at: offset + 4))
            guard first >= 0, second >= 0 else {
                throw refuse("damaged match file: match \(index) has a negative feature index (\(first), \(second))")
            }
            matches.append(FeatureMatch(first: first, second: second))
            offset += 8
        }
        return MatchFile(firstImage: names[0], secondImage: names[1], matches: matches)
    }

    /// Writes the file at `path` through `<path>.partial`, flushed, then renamed into place, so a reader never
    /// sees half a file; the temporary file is removed when writing fails.
    public func write(to path: String) throws(WorkFile.Failure) {
        try WorkFile.writeAtomically(encoded(), to: path)
    }

    /// Reads and checks a match file.
    public static func read(path: String) throws(WorkFile.Failure) -> MatchFile {
        try decode(try WorkFile.read(path), path: path)
    }

    private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }
}
