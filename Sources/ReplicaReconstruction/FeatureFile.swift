import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `.sift` file, all little-endian:
///
/// | bytes | content |
/// |---|---|
/// | 8 | magic `RLSIFT1\0` |
/// | 4 | version, UInt32 (1) |
/// | 4 + 4 | image width and height in pixels, UInt32 |
/// | 4 | keypoint count N, UInt32 |
/// | 16 N | per keypoint x, y, scale, orientation as Float32 (see `Keypoint`) |
/// | 128 N | the descriptors, in the keypoints' order |
public extension FeatureSet {
    /// The file's first 8 bytes.
    static let fileMagic: [UInt8] = Array("RLSIFT1".utf8) + [0]
    /// The layout version this code writes and reads.
    static let fileVersion: UInt32 = 1
    /// Bytes before the first keypoint.
    static let fileHeaderLength = 24

    /// The file's bytes.
    func encoded() -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(Self.fileHeaderLength + count * (16 + Self.descriptorLength))
        bytes.append(contentsOf: Self.fileMagic)
        for field in [Self.fileVersion, UInt32(width), UInt32(height), UInt32(count)] { append(field, to: &bytes) }
        for keypoint in keypoints {
            for value in [keypoint.x, keypoint.y, keypoint.scale, keypoint.orientation] {
                append(value.bitPattern, to: &bytes)
            }
        }
        bytes.append(contentsOf: descriptors)
        return bytes
    }

    /// A feature set from a file's bytes; `path` only names the file in errors.
    static func decode(_ bytes: [UInt8], path: String) throws(WorkFile.Failure) -> FeatureSet {
        func refuse(_ reason: String) -> WorkFile.Failure { WorkFile.Failure(path: path, reason: reason) }
        guard bytes.count >= 8, Array(bytes[0..<8]) == fileMagic else {
            throw refuse("not a feature file (it does not start with RLSIFT1)")
        }
        guard bytes.count >= fileHeaderLength else {
            throw refuse("truncated feature file: \(bytes.count) bytes, "
                          + "shorter than its \(fileHeaderLength)-byte header")
        }
        let version = word(bytes, at: 8)
        guard version == fileVersion else {
            throw refuse("feature file version \(version); this build reads version \(fileVersion)")
        }
        let width = Int(word(bytes, at: 12)), height = Int(word(bytes, at: 16)), count = Int(word(bytes, at: 20))
        let expected = fileHeaderLength + count * (16 + descriptorLength)
        guard bytes.count == expected else {
            let what = bytes.count < expected ? "truncated" : "damaged"
            throw refuse("\(what) feature file: \(count) keypoints need \(expected) bytes, the file has \(bytes.count)")
        }
        var keypoints: [Keypoint] = []
        keypoints.reserveCapacity(count)
        for index in 0..<count {
            let offset = fileHeaderLength + 16 * index
            let values = (0..<4).map { Float(bitPattern: word(bytes, at: offset + 4 * $0)) }
            guard values.allSatisfy(\.isFinite) else { throw refuse("keypoint \(index) has a non-finite value") }
            keypoints.append(Keypoint(x: values[0], y: values[1], scale: values[2], orientation: values[3]))
        }
        let descriptors = Array(bytes[(fileHeaderLength + 16 * count)...])
        return FeatureSet(width: width, height: height, keypoints: keypoints, descriptors: descriptors)
    }

    /// Writes the file at `path` through `<path>.partial`, flushed, then renamed into place, so a reader never
    /// sees half a file; the temporary file is removed when writing fails.
    func write(to path: String) throws(WorkFile.Failure) {
        try WorkFile.writeAtomically(encoded(), to: path)
    }

    /// Reads and checks a `.sift` file.
    static func read(path: String) throws(WorkFile.Failure) -> FeatureSet {
        try decode(try WorkFile.read(path), path: path)
    }

    private func append(_ value: UInt32, to bytes: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    private static func word(_ bytes: [UInt8], at offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16
            | UInt32(bytes[offset + 3]) << 24
    }
}
