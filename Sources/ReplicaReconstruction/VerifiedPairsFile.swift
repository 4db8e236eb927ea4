import Foundation

/// An image pair whose matches survived geometric verification: what structure from motion builds tracks from.
public struct VerifiedPair: Equatable, Sendable {
    public var firstImage: String
    public var secondImage: String
    public var configuration: TwoViewConfiguration
    /// Matches before verification, for the statistics.
    public var candidateCount: Int
    /// The inlier matches, feature indices into the first and the second image's `.sift` file.
    public var inliers: [FeatureMatch]

    public init(firstImage: String, secondImage: String, configuration: TwoViewConfiguration, candidateCount: Int,
                inliers: [FeatureMatch]) {
        self.firstImage = firstImage
        self.secondImage = secondImage
        self.configuration = configuration
        self.candidateCount = candidateCount
        self.inliers = inliers
    }
}

/// One matching task's output, `work/matches/<block>.pairs`: its verified pairs, all little-endian.
///
/// | bytes | content |
/// |---|---|
/// | 8 | magic `RLPAIRS1` |
/// | 4 | pair count P, UInt32 |
/// | P × … | the pairs, one after another |
///
/// A pair is the two image names (each a UInt32 UTF-8 length, then the bytes); its configuration as a UInt8
/// (1 calibrated, 2 uncalibrated, 3 planar or panoramic); the candidate count and the inlier count M, UInt32
/// each; then M first and second feature indices, Int32 each.
public enum VerifiedPairsFile {
    public static let magic: [UInt8] = Array("RLPAIRS1".utf8)

    private static let codes: [TwoViewConfiguration: UInt8] = [.calibrated: 1, .uncalibrated: 2,
                                                                .planarOrPanoramic: 3]

    /// The file's bytes; unverified pairs have no place in it.
    public static func encode(_ pairs: [VerifiedPair]) -> [UInt8] {
        var bytes = magic
        append(UInt32(pairs.count), to: &bytes)
        for pair in pairs {
            precondition(pair.configuration != .unverified, "only verified pairs are stored")
            for name in [pair.firstImage, pair.secondImage] {
                let utf8 = Array(name.utf8)
                append(UInt32(utf8.count), to: &bytes)
                bytes.append(contentsOf: utf8)
            }
            bytes.append(codes[pair.configuration]!)
            append(UInt32(pair.candidateCount), to: &bytes)
            append(UInt32(pair.inliers.count), to: &bytes)
            for match in pair.inliers {
                append(UInt32(bitPattern: match.first), to: &bytes)
                append(UInt32(bitPattern: match.second), to: &bytes)
            }
        }
        return bytes
    }

    /// The pairs of a file's bytes; `path` only names the file in errors.
    public static func decode(_ bytes: [UInt8], path: String) throws(WorkFile.Failure) -> [VerifiedPair] {
        var reader = Reader(bytes: bytes, path: path)
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            throw WorkFile.Failure(path: path, reason: "not a verified-pairs file (it does not start with RLPAIRS1)")
        }
        reader.offset = magic.count
        let count = Int(try reader.word("pair count"))
        var pairs: [VerifiedPair] = []
        for index in 0..<count {
            let first = try reader.name("pair \(index)'s first image name")
            let second = try reader.name("pair \(index)'s second image name")
            let code = try reader.byte("pair \(index)'s configuration")
            guard let configuration = codes.first(where: { $0.value == code })?.key else {
                throw WorkFile.Failure(path: path, reason: "damaged file: pair \(index) has configuration \(code)")
            }
            let candidates = Int(try reader.word("pair \(index)'s candidate count"))
            let inlierCount = Int(try reader.word("pair \(index)'s inlier count"))
            guard inlierCount <= (bytes.count - reader.offset) / 8 else {
                throw WorkFile.Failure(path: path, reason: "truncated file: pair \(index) claims \(inlierCount) "
                                     + "inliers, more than the bytes left hold")
            }
            var inliers: [FeatureMatch] = []
            inliers.reserveCapacity(inlierCount)
            for _ in 0..<inlierCount {
                let a = Int32(bitPattern: try reader.word("a match")), b = Int32(bitPattern: try reader.word("a match"))
                guard a >= 0, b >= 0 else {
                    throw WorkFile.Failure(path: path,
                                         reason: "damaged file: pair \(index) has a negative feature index")
                }
                inliers.append(FeatureMatch(first: a, second: b))
            }
            pairs.append(VerifiedPair(firstImage: first, secondImage: second, configuration: configuration,
                                      candidateCount: candidates, inliers: inliers))
        }
        guard reader.offset == bytes.count else {
            throw WorkFile.Failure(path: path,
                                 reason: "damaged file: \(bytes.count - reader.offset) bytes after the last pair")
        }
        return pairs
    }

    /// Writes the file whole or not at all (see `WorkFile`).
    public static func write(_ pairs: [VerifiedPair], to path: String) throws(WorkFile.Failure) {
        try WorkFile.writeAtomically(encode(pairs), to: path)
    }

    public static func read(path: String) throws(WorkFile.Failure) -> [VerifiedPair] {
        try decode(try WorkFile.read(path), path: path)
    }

    private static func append(_ value: UInt32, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private struct Reader {
        let bytes: [UInt8]
        let path: String
        var offset = 0

        mutating func word(_ what: String) throws(WorkFile.Failure) -> UInt32 {
            guard bytes.count >= offset + 4 else {
                throw WorkFile.Failure(path: path, reason: "truncated file: it ends before \(what)")
            }
            defer { offset += 4 }
            return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
                | UInt32(bytes[offset + 3]) << 24
        }

        mutating func byte(_ what: String) throws(WorkFile.Failure) -> UInt8 {
            guard bytes.count > offset else {
                throw WorkFile.Failure(path: path, reason: "truncated file: it ends before \(what)")
            }
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func name(_ what: String) throws(WorkFile.Failure) -> String {
            let length = Int(try word("the length of \(what)"))
            guard length <= MatchFile.longestName, bytes.count >= offset + length else {
                throw WorkFile.Failure(path: path, reason: "truncated or damaged file at \(what)")
            }
            guard let name = String(validating: bytes[offset..<offset + length], as: UTF8.self) else {
                throw WorkFile.Failure(path: path, reason: "damaged file: \(what) is not UTF-8")
            }
            offset += length
            return name
        }
    }
}
