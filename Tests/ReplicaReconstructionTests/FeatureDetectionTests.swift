import Foundation
import ReplicaGeometry
import ReplicaImageIO
import XCTest
@testable import ReplicaReconstruction

/// SIFT on a real photo and on images made from it with known geometry: counts, the budget, RootSIFT,
/// repeatability under rotation and scaling, sensitivity, and the `.sift` file.
final class FeatureDetectionTests: XCTestCase {
    /// A 640×480 photo of a puppet on a textured table, from the shared datasets (`../shared` from the repository).
    private func kermit() throws -> PixelBuffer {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let path = root.deletingLastPathComponent()
            .appendingPathComponent("shared/datasets/bundler_kermit/kermit000.jpg").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("the shared photo \(path) is not on this machine")
        }
        return try ImageReader.decode(path: path).pixels
    }

    private func detect(_ image: PixelBuffer, budget: Int = 8192, high: Bool = false) -> FeatureSet {
        FeatureDetection.detect(image, options: FeatureOptions(maximumFeatures: budget, highSensitivity: high))
    }

    func testAPhotoGivesHundredsOfKeypointsInsideItWithRootSIFTDescriptors() throws {
        let photo = try kermit()
        let features = detect(photo)
        XCTAssertEqual(features.width, 640)
        XCTAssertEqual(features.height, 480)
        XCTAssertGreaterThan(features.count, 500)
        XCTAssertLessThanOrEqual(features.count, 8192)
        XCTAssertEqual(features.descriptors.count, features.count * 128)
        for keypoint in features.keypoints {
            XCTAssertTrue((0...640).contains(keypoint.x) && (0...480).contains(keypoint.y), "\(keypoint)")
            // A 640-px photo is upsampled for detection: its finest blobs have σ of about 0.8 photo pixels.
            XCTAssertGreaterThan(keypoint.scale, 0.7)
            XCTAssertTrue(keypoint.orientation.isFinite && abs(keypoint.orientation) <= 2 * .pi, "\(keypoint)")
        }

        // Quantised RootSIFT: de-quantised, each descriptor is a unit vector (rounding and the rare clamp at 255
        // move it a little), and no descriptor is all zeros.
        var worst: Float = 0
        for index in 0..<features.count {
            let squares = features.descriptor(at: index).reduce(Float(0)) { $0 + Float($1) * Float($1) } / (512 * 512)
            worst = max(worst, abs(squares - 1))
        }
        XCTAssertLessThan(worst, 0.05, "the farthest a descriptor's squared norm is from 1")

        // A budget keeps exactly that many: the strongest, so the same as the first ones of the full set.
        let hundred = detect(photo, budget: 100)
        XCTAssertEqual(hundred.count, 100)
        XCTAssertEqual(hundred.keypoints, Array(features.keypoints.prefix(100)))
        XCTAssertEqual(hundred.descriptors, Array(features.descriptors.prefix(100 * 128)))
    }

    /// Rotated by 90° clockwise, a point (x, y) of the photo is at (height − y, x); SIFT is rotation-invariant,
    /// so descriptor matches find the same places.
    func testARotatedPhotoMatchesAtTheRotatedPositions() throws {
        let photo = try kermit()
        let original = detect(photo, budget: 1500)
        let rotated = detect(rotatedClockwise(photo), budget: 1500)
        XCTAssertEqual(rotated.width, 480)
        XCTAssertEqual(rotated.height, 640)
        let matches = ratioMatches(original, rotated)
        let agreeing = matches.filter { match in
            let from = original.keypoints[match.0], to = rotated.keypoints[match.1]
            return hypot(to.x - (480 - from.y), to.y - from.x) <= 2
        }
        XCTAssertGreaterThanOrEqual(matches.count, 100)
        XCTAssertGreaterThanOrEqual(Double(agreeing.count), 0.8 * Double(matches.count),
                                    "\(agreeing.count) of \(matches.count) matches agree with the rotation")
        // A quarter turn maps the pixel grid onto itself, so positions agree almost exactly; a wrong pixel
        // convention (centres at integers) would put every match a pixel off in x.
        let errors = agreeing.map { match in
            let from = original.keypoints[match.0], to = rotated.keypoints[match.1]
            return hypot(to.x - (480 - from.y), to.y - from.x)
        }
        XCTAssertLessThan(median(errors), 0.1)
    }

    /// Shrunk to half size, a point (x, y) is at (x / 2, y / 2) in this code's pixel convention.
    func testAHalfSizePhotoMatchesAtHalfThePositions() throws {
        let photo = try kermit()
        let original = detect(photo, budget: 1500)
        let half = detect(photo.resized(width: 320, height: 240, filter: .area), budget: 1500)
        let matches = ratioMatches(original, half)
        let agreeing = matches.filter { match in
            let from = original.keypoints[match.0], to = half.keypoints[match.1]
            return hypot(2 * to.x - from.x, 2 * to.y - from.y) <= 2
        }
        XCTAssertGreaterThanOrEqual(matches.count, 100)
        XCTAssertGreaterThanOrEqual(Double(agreeing.count), 0.8 * Double(matches.count),
                                    "\(agreeing.count) of \(matches.count) matches agree with the scaling")
        // No bias: with pixel centres at integers, doubling would leave every match half a pixel off in x and y.
        let offsets = agreeing.map { match in
            let from = original.keypoints[match.0], to = half.keypoints[match.1]
            return (2 * to.x - from.x, 2 * to.y - from.y)
        }
        XCTAssertLessThan(abs(median(offsets.map(\.0))), 0.2)
        XCTAssertLessThan(abs(median(offsets.map(\.1))), 0.2)
    }

    func testAFlatImageHasNoFeaturesAndHighSensitivityFindsMoreInLowContrast() throws {
        let flat = PixelBuffer(width: 320, height: 240, channels: 1,
                               bytes: [UInt8](repeating: 128, count: 320 * 240))
        XCTAssertEqual(detect(flat).count, 0)
        XCTAssertEqual(detect(flat, high: true).count, 0)
        let tiny = PixelBuffer(width: 8, height: 8, channels: 3)
        XCTAssertEqual(detect(tiny).count, 0)

        // Contrast reduced to 20 % around mid-grey.
        var faint = try kermit()
        faint.bytes = faint.bytes.map { UInt8((128 + (Float($0) - 128) * 0.2).rounded()) }
        let normal = detect(faint), high = detect(faint, high: true)
        XCTAssertGreaterThan(normal.count, 0)
        XCTAssertGreaterThan(high.count, 2 * normal.count, "normal \(normal.count), high \(high.count)")
    }

    func testDetectionStopsBetweenOctavesWhenAsked() throws {
        let photo = try kermit()
        var asked = 0
        XCTAssertNil(FeatureDetection.detect(photo, options: FeatureOptions(), shouldStop: {
            asked += 1
            return asked == 3
        }))
        XCTAssertEqual(asked, 3, "asked before each octave until told to stop")
        var octaves = 0
        let whole = FeatureDetection.detect(photo, options: FeatureOptions(), shouldStop: {
            octaves += 1
            return false
        })
        XCTAssertEqual(whole, detect(photo))
        XCTAssertGreaterThan(octaves, 3, "a 640×480 photo has more than 3 octaves")
    }

    func testOptionsOutsideTheirRangesAreRefused() {
        XCTAssertNoThrow(try FeatureOptions().validate())
        var options = FeatureOptions(maximumFeatures: 0)
        XCTAssertThrowsError(try options.validate()) { XCTAssertTrue("\($0)".contains("maximumFeatures"), "\($0)") }
        options = FeatureOptions()
        options.peakThreshold = -1
        XCTAssertThrowsError(try options.validate()) { XCTAssertTrue("\($0)".contains("peakThreshold"), "\($0)") }
        options = FeatureOptions()
        options.maximumOrientations = 5
        XCTAssertThrowsError(try options.validate())
        options = FeatureOptions()
        options.maximumOctaves = 0
        XCTAssertThrowsError(try options.validate())
        XCTAssertEqual(FeatureOptions(highSensitivity: true).firstOctave(longestSide: 4000), -1)
        XCTAssertEqual(FeatureOptions().firstOctave(longestSide: 2048), 0)
        XCTAssertEqual(FeatureOptions().firstOctave(longestSide: 1024), -1)
        XCTAssertEqual(FeatureOptions(highSensitivity: true).effectivePeakThreshold, 0.02 / 9, accuracy: 1e-7)
    }

    // MARK: - The file

    func testTheFileRoundTripsAndRefusesTruncatedOrForeignBytes() throws {
        let features = detect(try kermit(), budget: 300)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sift-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("a.sift").path

        try features.write(to: path)
        XCTAssertEqual(try FeatureSet.read(path: path), features)
        XCTAssertFalse(FileManager.default.fileExists(atPath: path + ".partial"))
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        XCTAssertEqual(bytes.count, 24 + 300 * (16 + 128))
        XCTAssertEqual(Array(bytes[0..<8]), Array("RLSIFT1\0".utf8))

        let empty = FeatureSet(width: 3, height: 2, keypoints: [], descriptors: [])
        XCTAssertEqual(try FeatureSet.decode(empty.encoded(), path: "e.sift"), empty)

        XCTAssertThrowsError(try FeatureSet.decode(Array(bytes.dropLast(1)), path: "cut.sift")) { error in
            XCTAssertTrue("\(error)".hasPrefix("cut.sift: truncated feature file"), "\(error)")
        }
        XCTAssertThrowsError(try FeatureSet.decode(Array(bytes.prefix(12)), path: "head.sift")) { error in
            XCTAssertTrue("\(error)".contains("truncated"), "\(error)")
        }
        var foreign = bytes
        foreign[0] = UInt8(ascii: "X")
        XCTAssertThrowsError(try FeatureSet.decode(foreign, path: "x.sift")) { error in
            XCTAssertEqual("\(error)", "x.sift: not a feature file (it does not start with RLSIFT1)")
        }
        var future = bytes
        future[8] = 2
        XCTAssertThrowsError(try FeatureSet.decode(future, path: "v.sift")) { error in
            XCTAssertTrue("\(error)".contains("version 2"), "\(error)")
        }
        XCTAssertThrowsError(try FeatureSet.read(path: folder.appendingPathComponent("none.sift").path))
    }

    // MARK: - Helpers

    private func median(_ values: [Float]) -> Float {
        precondition(!values.isEmpty, "the median of nothing")
        return values.sorted()[values.count / 2]
    }

    /// The buffer turned 90° clockwise: pixel (i, j) moves to (height − 1 − j, i).
    private func rotatedClockwise(_ image: PixelBuffer) -> PixelBuffer {
        var out = PixelBuffer(width: image.height, height: image.width, channels: image.channels)
        let channels = image.channels
        for y in 0..<out.height {
            for x in 0..<out.width {
                let source = ((image.height - 1 - x) * image.width + y) * channels
                let target = (y * out.width + x) * channels
                for channel in 0..<channels { out.bytes[target + channel] = image.bytes[source + channel] }
            }
        }
        return out
    }

    /// Nearest-neighbour descriptor matches from `a` to `b` that pass Lowe's ratio test at 0.8 (on distances).
    private func ratioMatches(_ a: FeatureSet, _ b: FeatureSet) -> [(Int, Int)] {
        var matches: [(Int, Int)] = []
        a.descriptors.withUnsafeBufferPointer { first in
            b.descriptors.withUnsafeBufferPointer { second in
                for i in 0..<a.count {
                    var best = Int32.max, next = Int32.max, bestIndex = -1
                    for j in 0..<b.count {
                        var distance: Int32 = 0
                        for k in 0..<128 {
                            let difference = Int32(first[i * 128 + k]) - Int32(second[j * 128 + k])
                            distance &+= difference &* difference
                        }
                        if distance < best {
                            (next, best, bestIndex) = (best, distance, j)
                        } else if distance < next {
                            next = distance
                        }
                    }
                    if bestIndex >= 0, Double(best) < 0.64 * Double(next) { matches.append((i, bestIndex)) }
                }
            }
        }
        return matches
    }
}
