import CHeif
import Foundation
import XCTest
@testable import ReplicaImageIO

/// HEIFCodec on files that libheif's own encoders write (Debian 12: x265 for HEVC, aom for AV1).
final class HEIFCodecTests: XCTestCase {
    static let width = 64, height = 48

    /// A smooth image with a flat block at each corner, so lossy coding keeps every colour close.
    static let picture: [UInt8] = {
        var rgb: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                rgb += cornerColour(x: x, y: y) ?? [UInt8(x * 3 + 20), UInt8(y * 4 + 20), 128]
            }
        }
        return rgb
    }()

    /// Red top-left, green top-right, blue bottom-left, white bottom-right: 16×16 blocks.
    static func cornerColour(x: Int, y: Int) -> [UInt8]? {
        switch (x < 16, x >= width - 16, y < 16, y >= height - 16) {
        case (true, _, true, _): return [220, 30, 30]
        case (_, true, true, _): return [30, 200, 40]
        case (true, _, _, true): return [30, 40, 210]
        case (_, true, _, true): return [240, 240, 240]
        default: return nil
        }
    }

    // MARK: - Round trips

    func testHEVCFileDecodesBackWithinTheCodingTolerance() throws {
        let file = try encoded(heif_compression_HEVC)
        XCTAssertEqual(ImageFormatDetection.detect(file), .heif)
        let image = try decode(file)

        XCTAssertEqual(image.format, .heif)
        XCTAssertEqual(image.pixels.width, Self.width)
        XCTAssertEqual(image.pixels.height, Self.height)
        XCTAssertEqual(image.pixels.channels, 3)
        XCTAssertLessThan(meanDifference(image.pixels.bytes, Self.picture), 4)
        assertCorners(image.pixels, orientedBy: 1)
        XCTAssertEqual(image.metadata.orientation, 1)
    }

    func testAVIFFileDecodesBackWithinTheCodingTolerance() throws {
        let file = try encoded(heif_compression_AV1)
        XCTAssertEqual(ImageFormatDetection.detect(file), .heif)
        let image = try decode(file)

        XCTAssertEqual(image.pixels.width, Self.width)
        XCTAssertLessThan(meanDifference(image.pixels.bytes, Self.picture), 4)
        assertCorners(image.pixels, orientedBy: 1)
    }

    // MARK: - Orientation and metadata

    func testContainerRotationIsAppliedByLibheifAndReportedAsOne() throws {
        let file = try encoded(heif_compression_HEVC, orientation: heif_orientation_rotate_90_cw)
        let image = try decode(file)

        XCTAssertEqual(image.metadata.orientation, 1)
        XCTAssertEqual(image.pixels.width, Self.height, "turned a quarter")
        XCTAssertEqual(image.pixels.height, Self.width)
        assertCorners(image.pixels, orientedBy: 6)
        XCTAssertEqual(image.metadata.storedWidth, Self.height, "the size of the pixels as returned")
    }

    func testExifGivesTheCameraButNotTheOrientation() throws {
        // The Exif block claims orientation 6 while the container says nothing: pixels stay as encoded.
        let exif = HandTIFF(directories: [
            [(271, .ascii("Replica")), (272, .ascii("Phone 1")), (274, .short([6])), (34665, .directory(1))],
            [(37386, .rational([(425, 100)])), (41989, .short([26]))],
        ]).bytes()
        let file = try encoded(heif_compression_HEVC, exif: Array("Exif".utf8) + [0, 0] + exif)
        let image = try decode(file)

        XCTAssertEqual(image.metadata.make, "Replica")
        XCTAssertEqual(image.metadata.model, "Phone 1")
        XCTAssertEqual(try XCTUnwrap(image.metadata.focalLengthMillimetres), 4.25, accuracy: 1e-9)
        XCTAssertEqual(image.metadata.focalLength35mmMillimetres, 26)
        XCTAssertEqual(image.metadata.orientation, 1)
        assertCorners(image.pixels, orientedBy: 1)
    }

    // MARK: - Limits and damage

    func testImageOverTheBudgetIsTooLargeBeforeDecoding() throws {
        let file = try encoded(heif_compression_HEVC)
        let reason = refusal { try decode(file, options: DecodeOptions(maxPixels: 1_000)) }

        XCTAssertEqual(reason, .tooLarge(width: Self.width, height: Self.height, maxPixels: 1_000))
    }

    func testImageWiderThanTheWholeBudgetIsStillReportedWithItsSize() throws {
        // 64 pixels wide against a budget of 50: no side that long can fit, yet the answer names the size.
        let reason = refusal { try decode(try encoded(heif_compression_HEVC), options: DecodeOptions(maxPixels: 50)) }

        XCTAssertEqual(reason, .tooLarge(width: Self.width, height: Self.height, maxPixels: 50))
    }

    func testTruncatedFilesAreReportedAsDamaged() throws {
        for format in [heif_compression_HEVC, heif_compression_AV1] {
            for cut in Damage.truncations(of: try encoded(format)) {
                let reason = refusal { try decode(cut) }
                XCTAssertTrue(Check.isCorrupt(reason), "\(format) \(cut.count) bytes: \(String(describing: reason))")
            }
        }
    }

    func testCorruptedFilesEitherDecodeOrAreRefusedAsDamage() throws {
        // Changed bits in the coded picture may still decode (to wrong colours); nothing may crash.
        for format in [heif_compression_HEVC, heif_compression_AV1] {
            let refusals = Damage.corruptions(of: try encoded(format)).compactMap { damaged in
                refusal { try decode(damaged) }
            }
            for reason in refusals { XCTAssertTrue(reason.isRefusalOfContent, "\(format): \(reason)") }
            XCTAssertGreaterThan(refusals.count, 0, "\(format)")
        }
    }

    func testBytesThatAreNoHEIFAreDamaged() {
        for junk in [[], Array("....ftypheic but nothing else".utf8), [UInt8](repeating: 0, count: 64)] {
            XCTAssertTrue(Check.isCorrupt(refusal { try decode(junk) }), "\(junk.count) bytes")
        }
    }

    // MARK: - Helpers

    private func encoded(_ format: heif_compression_format, orientation: heif_orientation = heif_orientation_normal,
                         exif: [UInt8]? = nil) throws -> [UInt8] {
        guard EncodedFixture.canEncodeHEIF(format) else { throw XCTSkip("this libheif has no encoder for \(format)") }
        let file = EncodedFixture.heif(format, width: Self.width, height: Self.height, rgb: Self.picture,
                                       orientation: orientation, exif: exif)
        XCTAssertFalse(file.isEmpty, "libheif wrote nothing")
        return file
    }

    private func decode(_ bytes: [UInt8], options: DecodeOptions = DecodeOptions()) throws -> DecodedImage {
        try bytes.withUnsafeBytes { try HEIFCodec.decode($0, file: "test.heic", options: options) }
    }

    private func meanDifference(_ a: [UInt8], _ b: [UInt8]) -> Double {
        XCTAssertEqual(a.count, b.count)
        return Double(zip(a, b).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }) / Double(max(1, a.count))
    }

    /// Checks the centre of each corner block where it should be after the EXIF orientation `orientation`
    /// (1: as encoded; 6: turned a quarter clockwise, so the top-left block is at the top right).
    private func assertCorners(_ pixels: PixelBuffer, orientedBy orientation: Int,
                               file: StaticString = #filePath, line: UInt = #line) {
        for (x, y) in [(8, 8), (Self.width - 8, 8), (8, Self.height - 8), (Self.width - 8, Self.height - 8)] {
            let (shownX, shownY) = orientation == 6 ? (Self.height - 1 - y, x) : (x, y)
            let offset = (shownY * pixels.width + shownX) * 3
            let expected = Self.cornerColour(x: x, y: y)!
            for channel in 0..<3 {
                XCTAssertEqual(Double(pixels.bytes[offset + channel]), Double(expected[channel]), accuracy: 12,
                               "corner (\(x), \(y)) channel \(channel)", file: file, line: line)
            }
        }
    }
}
