import Foundation
import XCTest
@testable import ReplicaImageIO

/// RawCodec on small DNGs written with libtiff's DNG tags: a Bayer mosaic whose developed colours can be
/// predicted, because the fixture's camera has sRGB's primaries (see `DNGFixture`).
final class RawCodecTests: XCTestCase {
    /// Left half neutral grey at linear 0.18, right half a warm colour.
    static func twoPatches(x: Int, y: Int) -> (red: Double, green: Double, blue: Double) {
        x < 64 ? (0.18, 0.18, 0.18) : (0.6, 0.3, 0.1)
    }

    // MARK: - Development

    func testMosaicDevelopsToRGBOfItsSizeAndColours() throws {
        let dng = DNGFixture(scene: Self.twoPatches)
        let image = try decode(dng.bytes())

        XCTAssertEqual(image.format, .raw)
        XCTAssertEqual(image.pixels.width, 128)
        XCTAssertEqual(image.pixels.height, 96)
        XCTAssertEqual(image.pixels.channels, 3)
        assertPatch(image.pixels, x: 32, y: 48, linear: Self.twoPatches(x: 32, y: 48))
        assertPatch(image.pixels, x: 96, y: 48, linear: Self.twoPatches(x: 96, y: 48))
    }

    func testAsShotWhiteBalanceIsApplied() throws {
        // The sensor sees white as (0.5, 1, 0.7): the mosaic is greenish, the developed grey must be neutral.
        let dng = DNGFixture(scene: Self.twoPatches, asShotNeutral: [0.5, 1, 0.7])
        let image = try decode(dng.bytes())

        assertPatch(image.pixels, x: 32, y: 48, linear: Self.twoPatches(x: 32, y: 48))
        assertPatch(image.pixels, x: 96, y: 48, linear: Self.twoPatches(x: 96, y: 48))
    }

    func testCameraAndFocalLengthComeFromTheRaw() throws {
        let metadata = try decode(DNGFixture(make: "Replica", model: "Test Camera", focalLength: 35).bytes()).metadata

        XCTAssertEqual(metadata.make, "Replica")
        XCTAssertEqual(metadata.model, "Test Camera")
        XCTAssertEqual(try XCTUnwrap(metadata.focalLengthMillimetres), 35, accuracy: 1e-3)
        XCTAssertEqual(metadata.storedWidth, 128)
        XCTAssertEqual(metadata.storedHeight, 96)
    }

    // MARK: - Orientation

    func testLibRawTurnsAFullDecodeItselfAndReportsOne() throws {
        // Left half grey, right half warm; turned a quarter clockwise, the warm half is at the bottom.
        let image = try decode(DNGFixture(scene: Self.twoPatches, orientation: 6).bytes())

        XCTAssertEqual(image.metadata.orientation, 1)
        XCTAssertEqual(image.pixels.width, 96)
        XCTAssertEqual(image.pixels.height, 128)
        XCTAssertEqual(image.metadata.storedWidth, 96, "the full size in the frame of the pixels returned")
        assertPatch(image.pixels, x: 48, y: 32, linear: Self.twoPatches(x: 32, y: 48))
        assertPatch(image.pixels, x: 48, y: 96, linear: Self.twoPatches(x: 96, y: 48))
    }

    func testLibRawFlipsMapToExifOrientations() {
        // dcraw's flip bits (1: mirror columns, 2: flip rows, 4: transpose) for each EXIF orientation 1–8.
        let flipForOrientation = [1: 0, 2: 1, 3: 3, 4: 2, 5: 4, 6: 6, 7: 7, 8: 5]
        for (orientation, flip) in flipForOrientation {
            XCTAssertEqual(RawCodec.exifOrientation(libRawFlip: flip), orientation, "flip \(flip)")
        }
    }

    // MARK: - Embedded preview

    func testLargeEnoughPreviewIsDecodedInsteadOfTheMosaic() throws {
        let dng = DNGFixture(scene: Self.twoPatches, preview: bluePreview).bytes()
        let image = try decode(dng, options: DecodeOptions(minimumLongestSide: 64))

        XCTAssertEqual(image.pixels.width, 64)
        XCTAssertEqual(image.pixels.height, 48)
        let centre = (24 * 64 + 32) * 3
        XCTAssertEqual(Array(image.pixels.bytes[centre..<(centre + 3)]).map(Double.init), [40, 60, 200],
                       accuracy: 4, "the preview's blue, not the mosaic's colours")
        XCTAssertEqual(image.metadata.make, "Replica")
        XCTAssertEqual(image.metadata.storedWidth, 128, "the raw's full size")
    }

    func testUncompressedPreviewIsUsedLikeAJPEGOne() throws {
        let dng = DNGFixture(scene: Self.twoPatches, preview: bluePreview, previewIsJPEG: false).bytes()
        let image = try decode(dng, options: DecodeOptions(minimumLongestSide: 48))

        XCTAssertEqual(image.pixels, PixelBuffer(width: 64, height: 48, channels: 3, bytes: bluePreview.rgb))
    }

    func testPreviewIsStoredUnturnedSoItsOrientationIsReported() throws {
        let dng = DNGFixture(scene: Self.twoPatches, orientation: 8, preview: bluePreview).bytes()
        let image = try decode(dng, options: DecodeOptions(minimumLongestSide: 60))

        XCTAssertEqual(image.pixels.width, 64, "as stored")
        XCTAssertEqual(image.metadata.orientation, 8)
        XCTAssertEqual(image.metadata.storedWidth, 128, "the full size on the sensor, before orientation")
    }

    func testTooSmallPreviewFallsBackToTheMosaic() throws {
        let dng = DNGFixture(scene: Self.twoPatches, preview: bluePreview).bytes()
        let image = try decode(dng, options: DecodeOptions(minimumLongestSide: 100))

        XCTAssertEqual(image.pixels.width, 128)
        assertPatch(image.pixels, x: 96, y: 48, linear: Self.twoPatches(x: 96, y: 48))
    }

    func testHalfSizeDevelopmentIsUsedWhenItMeetsTheMinimum() throws {
        let image = try decode(DNGFixture(scene: Self.twoPatches).bytes(),
                               options: DecodeOptions(minimumLongestSide: 64))

        XCTAssertEqual(image.pixels.width, 64)
        XCTAssertEqual(image.pixels.height, 48)
        assertPatch(image.pixels, x: 16, y: 24, linear: Self.twoPatches(x: 32, y: 48))
        assertPatch(image.pixels, x: 48, y: 24, linear: Self.twoPatches(x: 96, y: 48))
        XCTAssertEqual(image.metadata.storedWidth, 128)
    }

    // MARK: - Detection

    func testDNGIsDetectedAsRawAndAPlainTIFFIsNot() {
        XCTAssertEqual(ImageFormatDetection.detect(DNGFixture().bytes()), .raw)
        XCTAssertEqual(ImageFormatDetection.detect(DNGFixture(preview: bluePreview).bytes()), .raw)
        XCTAssertEqual(ImageFormatDetection.detect(HandTIFF.rgbImage(width: 1, height: 1, pixels: [0, 0, 0]).bytes()),
                       .tiff)
    }

    func testRawMarkersAreFoundInSubIFDsAndByTheCR2Signature() {
        let plain = HandTIFF.rgbImage(width: 1, height: 1, pixels: [0, 0, 0])
        var cfaInSubIFD = plain
        cfaInSubIFD.directories[0].append((330, .directory(1)))
        cfaInSubIFD.directories.append([(256, .long([2])), (257, .long([2])), (262, .short([32803]))])
        var linearRaw = plain
        linearRaw.directories[0][4] = (262, .short([34892]))
        var cr2 = plain
        cr2.signature = Array("CR".utf8) + [2, 0]

        XCTAssertEqual(ImageFormatDetection.detect(cfaInSubIFD.bytes()), .raw)
        XCTAssertEqual(ImageFormatDetection.detect(linearRaw.bytes()), .raw)
        XCTAssertEqual(ImageFormatDetection.detect(cr2.bytes()), .raw)
        XCTAssertEqual(ImageFormatDetection.detect(plain.bytes()), .tiff)
    }

    func testDetectionSurvivesDirectoriesThatLoopOrPointOutside() {
        var looping = HandTIFF.rgbImage(width: 1, height: 1, pixels: [0, 0, 0])
        looping.directories[0].append((330, .directory(0)))  // IFD 0 is its own SubIFD
        var outside = HandTIFF.rgbImage(width: 1, height: 1, pixels: [0, 0, 0]).bytes()
        outside.replaceSubrange(4..<8, with: HandTIFF.le32(1 << 30))

        XCTAssertEqual(ImageFormatDetection.detect(looping.bytes()), .tiff)
        XCTAssertEqual(ImageFormatDetection.detect(outside), .tiff)
        XCTAssertEqual(ImageFormatDetection.detect(Array(DNGFixture().bytes().prefix(8))), .tiff,
                       "a prefix without the directories cannot be told apart")
    }

    // MARK: - Limits and damage

    func testRawOverTheBudgetIsTooLargeBeforeUnpacking() {
        let reason = refusal { try decode(DNGFixture().bytes(), options: DecodeOptions(maxPixels: 5_000)) }

        XCTAssertEqual(reason, .tooLarge(width: 128, height: 96, maxPixels: 5_000))
    }

    func testTruncatedFilesAreReportedAsDamaged() {
        for original in [DNGFixture().bytes(), DNGFixture(preview: bluePreview).bytes()] {
            for cut in Damage.truncations(of: original) {
                let reason = refusal { try decode(cut) }
                XCTAssertTrue(Check.isCorrupt(reason),
                              "\(cut.count) of \(original.count) bytes: \(String(describing: reason))")
            }
        }
    }

    func testCorruptedFilesEitherDecodeOrAreRefusedAsDamage() {
        let original = DNGFixture(preview: bluePreview).bytes()
        let options = DecodeOptions(maxPixels: 1 << 20, minimumLongestSide: 64)
        for damaged in Damage.corruptions(of: original) + Damage.corruptions(of: Array(original.prefix(400))) {
            if let reason = refusal({ try decode(damaged, options: options) }) {
                XCTAssertTrue(reason.isRefusalOfContent, "\(reason)")
            }
        }
    }

    // MARK: - Helpers

    private var bluePreview: (width: Int, height: Int, rgb: [UInt8]) {
        (64, 48, [UInt8](repeating: 0, count: 64 * 48).flatMap { _ in [40, 60, 200] })
    }

    private func decode(_ bytes: [UInt8], options: DecodeOptions = DecodeOptions()) throws -> DecodedImage {
        try bytes.withUnsafeBytes { try RawCodec.decode($0, file: "test.dng", options: options) }
    }

    /// The mean of an 8×8 block around (x, y) against the 8-bit value the linear colour should develop to.
    private func assertPatch(_ pixels: PixelBuffer, x: Int, y: Int,
                             linear: (red: Double, green: Double, blue: Double),
                             file: StaticString = #filePath, line: UInt = #line) {
        let expected = [linear.red, linear.green, linear.blue].map(DNGFixture.expectedLevel)
        for channel in 0..<3 {
            var sum = 0
            for row in (y - 4)..<(y + 4) {
                for column in (x - 4)..<(x + 4) {
                    sum += Int(pixels.bytes[(row * pixels.width + column) * 3 + channel])
                }
            }
            XCTAssertEqual(Double(sum) / 64, expected[channel], accuracy: 3,
                           "channel \(channel) at (\(x), \(y))", file: file, line: line)
        }
    }
}

private func XCTAssertEqual(_ actual: [Double], _ expected: [Double], accuracy: Double, _ message: String,
                            file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, message, file: file, line: line)
    for (a, e) in zip(actual, expected) { XCTAssertEqual(a, e, accuracy: accuracy, message, file: file, line: line) }
}
