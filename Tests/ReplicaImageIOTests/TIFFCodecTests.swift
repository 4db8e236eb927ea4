import CTIFF
import Foundation
import XCTest
@testable import ReplicaImageIO

/// TIFFCodec: what each TIFF layout decodes to, what the metadata says, and how damage is reported.
final class TIFFCodecTests: XCTestCase {
    // MARK: - Layouts

    func testEightBitRGBStripsDecodeToTheStoredSamples() throws {
        var page = TIFFPageFixture.pattern(width: 37, height: 29)
        page.rowsPerStrip = 5
        let image = try decode(TIFFFixture.file([page]))

        XCTAssertEqual(image.format, .tiff)
        XCTAssertEqual(image.pixels, PixelBuffer(width: 37, height: 29, channels: 3,
                                                 bytes: TestPattern.bytes(width: 37, height: 29, channels: 3)))
        XCTAssertEqual(image.metadata.orientation, 1)
        XCTAssertEqual(image.metadata.storedWidth, 37)
        XCTAssertEqual(image.metadata.storedHeight, 29)
    }

    func testLZWCompressedStripsDecodeLikeUncompressedOnes() throws {
        var page = TIFFPageFixture.pattern(width: 40, height: 30)
        page.compression = UInt16(COMPRESSION_LZW)
        let image = try decode(TIFFFixture.file([page]))

        XCTAssertEqual(image.pixels.bytes, TestPattern.bytes(width: 40, height: 30, channels: 3))
    }

    func testSixteenBitRGBIsRoundedToEightBits() throws {
        // Each sample is 257·v + 100, which rounds to v; truncating the low byte would give v as well, so the
        // second page checks rounding: 257·v + 200 rounds up to v + 1 for every v below 255.
        let exact = TIFFPageFixture.pattern(width: 20, height: 10, bitsPerSample: 16, low: 100)
        XCTAssertEqual(try decode(TIFFFixture.file([exact])).pixels.bytes,
                       TestPattern.bytes(width: 20, height: 10, channels: 3))

        let roundsUp = TIFFPageFixture.pattern(width: 20, height: 10, bitsPerSample: 16, low: 200)
        let expected = TestPattern.bytes(width: 20, height: 10, channels: 3).map { $0 == 255 ? 255 : $0 + 1 }
        XCTAssertEqual(try decode(TIFFFixture.file([roundsUp])).pixels.bytes, expected)
    }

    func testGreyStaysGreyWhenAllowedAndIsRepeatedIntoRGBOtherwise() throws {
        let file = TIFFFixture.file([TIFFPageFixture.pattern(width: 16, height: 12, samplesPerPixel: 1)])
        let grey = TestPattern.bytes(width: 16, height: 12, channels: 1)

        let asGrey = try decode(file, options: DecodeOptions(allowGrey: true))
        XCTAssertEqual(asGrey.pixels, PixelBuffer(width: 16, height: 12, channels: 1, bytes: grey))

        let asRGB = try decode(file)
        XCTAssertEqual(asRGB.pixels.channels, 3)
        XCTAssertEqual(asRGB.pixels.bytes, grey.flatMap { [$0, $0, $0] })
    }

    func testWhiteIsZeroGreyIsInverted() throws {
        var page = TIFFPageFixture.pattern(width: 8, height: 8, samplesPerPixel: 1)
        page.photometric = UInt16(PHOTOMETRIC_MINISWHITE)
        let image = try decode(TIFFFixture.file([page]), options: DecodeOptions(allowGrey: true))

        XCTAssertEqual(image.pixels.bytes, TestPattern.bytes(width: 8, height: 8, channels: 1).map { 255 - $0 })
    }

    func testSixteenBitGreyIsRead() throws {
        let page = TIFFPageFixture.pattern(width: 9, height: 7, samplesPerPixel: 1, bitsPerSample: 16, low: 50)
        let image = try decode(TIFFFixture.file([page]), options: DecodeOptions(allowGrey: true))

        XCTAssertEqual(image.pixels.bytes, TestPattern.bytes(width: 9, height: 7, channels: 1))
    }

    func testTiledImageWithPartialEdgeTilesIsAssembled() throws {
        // 40×36 in 16×16 tiles: the right column and the bottom row of tiles are partly outside the image.
        var page = TIFFPageFixture.pattern(width: 40, height: 36)
        page.tileSize = (16, 16)
        page.compression = UInt16(COMPRESSION_ADOBE_DEFLATE)
        let image = try decode(TIFFFixture.file([page]))

        XCTAssertEqual(image.pixels, PixelBuffer(width: 40, height: 36, channels: 3,
                                                 bytes: TestPattern.bytes(width: 40, height: 36, channels: 3)))
    }

    func testExtraAlphaSampleIsDropped() throws {
        var page = TIFFPageFixture.pattern(width: 10, height: 6, samplesPerPixel: 4)
        page.photometric = UInt16(PHOTOMETRIC_RGB)
        page.extraSamples = [UInt16(EXTRASAMPLE_UNASSALPHA)]
        let image = try decode(TIFFFixture.file([page]))

        let rgba = TestPattern.bytes(width: 10, height: 6, channels: 4)
        XCTAssertEqual(image.pixels.bytes, stride(from: 0, to: rgba.count, by: 4).flatMap { rgba[$0..<($0 + 3)] })
    }

    func testMultiPageFileGivesItsFirstPage() throws {
        let first = TIFFPageFixture.pattern(width: 12, height: 8)
        var second = TIFFPageFixture.pattern(width: 30, height: 20)
        second.samples = second.samples.map { 255 - $0 }
        let image = try decode(TIFFFixture.file([first, second]))

        XCTAssertEqual(image.pixels.width, 12)
        XCTAssertEqual(image.pixels.bytes, TestPattern.bytes(width: 12, height: 8, channels: 3))
    }

    func testPaletteImageIsExpandedThroughRGBA() throws {
        // Index i maps to (i, 255 − i, i / 2); libtiff's colour maps are 16-bit.
        let indices = TestPattern.bytes(width: 14, height: 9, channels: 1)
        let page = paletteFixture(indices: indices, width: 14, height: 9, orientation: nil)
        let image = try decode(TIFFFixture.file([page]))

        XCTAssertEqual(image.pixels.bytes, indices.flatMap { [$0, 255 - $0, $0 / 2] })
    }

    // MARK: - Orientation

    func testOrientationTagIsReportedAndThePixelsStayAsStored() throws {
        var page = TIFFPageFixture.pattern(width: 24, height: 16)
        page.orientation = 6
        let image = try decode(TIFFFixture.file([page]))

        XCTAssertEqual(image.metadata.orientation, 6)
        XCTAssertEqual(image.pixels.width, 24, "not rotated by the decoder")
        XCTAssertEqual(image.pixels.bytes, TestPattern.bytes(width: 24, height: 16, channels: 3))
    }

    func testTheRGBAPathDoesNotFlipEither() throws {
        // TIFFReadRGBAImageOriented would mirror or flip rows for these orientations if asked for top-left.
        let indices = TestPattern.bytes(width: 14, height: 9, channels: 1)
        for orientation: UInt16 in [2, 3, 4, 6, 8] {
            let page = paletteFixture(indices: indices, width: 14, height: 9, orientation: orientation)
            let image = try decode(TIFFFixture.file([page]))

            XCTAssertEqual(image.metadata.orientation, Int(orientation))
            XCTAssertEqual(image.pixels.bytes, indices.flatMap { [$0, 255 - $0, $0 / 2] }, "orientation \(orientation)")
        }
    }

    // MARK: - Metadata

    func testMakeModelAndFocalLengthsAreRead() throws {
        let file = TIFFFixture.write { tif in
            let exif = TIFFFixture.writeExifDirectory(tif, focalLength: 24.5, focalLength35mm: 36)
            var page = TIFFPageFixture.pattern(width: 8, height: 8)
            page.make = "  Replica Optics "
            page.model = "R-1"
            XCTAssertEqual(replica_tiff_set_ifd_offset(tif, UInt32(TIFFTAG_EXIFIFD), exif), 1)
            TIFFFixture.writePage(tif, page)
        }
        let metadata = try decode(file).metadata

        XCTAssertEqual(metadata.make, "Replica Optics")
        XCTAssertEqual(metadata.model, "R-1")
        XCTAssertEqual(try XCTUnwrap(metadata.focalLengthMillimetres), 24.5, accuracy: 1e-6)
        XCTAssertEqual(metadata.focalLength35mmMillimetres, 36)
    }

    func testFileWithoutCameraTagsHasNoneInItsMetadata() throws {
        let metadata = try decode(TIFFFixture.file([TIFFPageFixture.pattern(width: 4, height: 4)])).metadata

        XCTAssertNil(metadata.make)
        XCTAssertNil(metadata.model)
        XCTAssertNil(metadata.focalLengthMillimetres)
    }

    // MARK: - Hostile and damaged files

    func testHeaderDeclaringTenBillionPixelsIsRefusedBeforeAnyAllocation() {
        let file = HandTIFF.rgbImage(width: 100_000, height: 100_000, pixels: [1, 2, 3]).bytes()
        let started = Date()

        XCTAssertThrowsError(try decode(file)) { error in
            XCTAssertEqual((error as? ImageIOError)?.reason,
                           .tooLarge(width: 100_000, height: 100_000, maxPixels: DecodeOptions().maxPixels))
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 1, "refused from the header, not after reading")
    }

    func testGiantTilesOverASmallImageAreRefusedWithoutAllocatingThem() {
        // 16×16 pixels in one declared 65,536×65,536 tile: 12 GiB of tile buffer if taken at its word.
        let file = HandTIFF(directories: [[
            (256, .long([16])), (257, .long([16])), (258, .short([8, 8, 8])), (259, .short([1])),
            (262, .short([2])), (277, .short([3])), (322, .long([65_536])), (323, .long([65_536])),
            (324, .blob(0)), (325, .long([768])),
        ]], blobs: [[UInt8](repeating: 7, count: 768)]).bytes()
        let started = Date()

        XCTAssertTrue(refusal { try decode(file) }?.isRefusalOfContent == true)
        XCTAssertLessThan(Date().timeIntervalSince(started), 1)
    }

    func testImageOverASmallBudgetIsTooLarge() {
        let file = TIFFFixture.file([TIFFPageFixture.pattern(width: 40, height: 30)])

        XCTAssertThrowsError(try decode(file, options: DecodeOptions(maxPixels: 1_000))) { error in
            XCTAssertEqual((error as? ImageIOError)?.reason, .tooLarge(width: 40, height: 30, maxPixels: 1_000))
        }
    }

    func testTruncatedFilesAreReportedAsDamaged() {
        var page = TIFFPageFixture.pattern(width: 64, height: 48)
        page.compression = UInt16(COMPRESSION_LZW)
        for cut in Damage.truncations(of: TIFFFixture.file([page])) {
            let reason = refusal { try decode(cut) }
            XCTAssertTrue(Check.isCorrupt(reason), "\(cut.count) bytes: \(String(describing: reason))")
        }
    }

    func testCorruptedFilesEitherDecodeOrAreRefusedAsDamage() {
        var striped = TIFFPageFixture.pattern(width: 64, height: 48)
        striped.compression = UInt16(COMPRESSION_LZW)
        var tiled = TIFFPageFixture.pattern(width: 64, height: 48)
        tiled.tileSize = (16, 16)
        tiled.compression = UInt16(COMPRESSION_ADOBE_DEFLATE)
        for original in [TIFFFixture.file([striped]), TIFFFixture.file([tiled])] {
            // A changed sample of an uncompressed run is undetectable, so some copies may decode; the rest
            // must be refused as damage, a size or a layout, and most must be refused at all.
            let refusals = Damage.corruptions(of: original).compactMap { damaged in
                refusal { try decode(damaged, options: DecodeOptions(maxPixels: 1 << 20)) }
            }
            XCTAssertGreaterThan(refusals.count, 6)
            for reason in refusals { XCTAssertTrue(reason.isRefusalOfContent, "\(reason)") }
        }
    }

    func testBytesThatAreNoTIFFAreDamaged() {
        for junk in [[], [0x49, 0x49, 0x2A, 0x00], Array("not a tiff at all".utf8)] as [[UInt8]] {
            let reason = refusal { try decode(junk) }
            XCTAssertTrue(Check.isCorrupt(reason), "\(junk.count) bytes: \(String(describing: reason))")
        }
    }

    // MARK: - Detection

    func testPlainTIFFIsDetectedAsTIFF() {
        let file = TIFFFixture.file([TIFFPageFixture.pattern(width: 4, height: 4)])

        XCTAssertEqual(ImageFormatDetection.detect(file), .tiff)
        XCTAssertEqual(file.withUnsafeBytes { ImageFormatDetection.refineTIFF($0) }, .tiff)
    }

    // MARK: - Helpers

    private func decode(_ bytes: [UInt8], options: DecodeOptions = DecodeOptions()) throws -> DecodedImage {
        try bytes.withUnsafeBytes { try TIFFCodec.decode($0, file: "test.tif", options: options) }
    }

    private func paletteFixture(indices: [UInt8], width: Int, height: Int, orientation: UInt16?)
        -> TIFFPageFixture {
        let levels = (0..<256).map { UInt16($0) * 257 }
        return TIFFPageFixture(width: width, height: height, samplesPerPixel: 1, bitsPerSample: 8,
                               photometric: UInt16(PHOTOMETRIC_PALETTE), orientation: orientation,
                               samples: indices.map(UInt16.init),
                               colorMap: (levels, levels.reversed(), levels.map { ($0 / 257 / 2) * 257 }))
    }
}
