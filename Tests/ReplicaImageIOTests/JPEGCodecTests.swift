import CTurboJPEG
import ReplicaTestSupport
import XCTest
@testable import ReplicaImageIO

/// JPEG decoding: sizes, reduced-scale decodes, grey and CMYK, EXIF, hostile files, and the real photos.
final class JPEGCodecTests: XCTestCase {
    private func decode(_ file: [UInt8], options: DecodeOptions = DecodeOptions()) throws(ImageIOError)
        -> DecodedImage {
        try file.withUnsafeBytes { bytes in
            Result { () throws(ImageIOError) in try JPEGCodec.decode(bytes, file: "test.jpg", options: options) }
        }.get()
    }

    // MARK: - Decoding

    func testDecodesRGBAtFullSizeCloseToTheSource() throws {
        let source = Fixtures.pattern(width: 64, height: 48)
        let decoded = try decode(Fixtures.jpeg(source, quality: 100))

        XCTAssertEqual(decoded.format, .jpeg)
        XCTAssertEqual([decoded.pixels.width, decoded.pixels.height, decoded.pixels.channels], [64, 48, 3])
        XCTAssertEqual([decoded.metadata.storedWidth, decoded.metadata.storedHeight], [64, 48])
        XCTAssertLessThanOrEqual(Check.maximumDifference(decoded.pixels.bytes, source.bytes), 8)
    }

    func testGreyJPEGIsGreyOnlyWhenAllowed() throws {
        let source = Fixtures.pattern(width: 32, height: 16, channels: 1)
        let file = Fixtures.jpeg(source, quality: 100)

        let grey = try decode(file, options: DecodeOptions(allowGrey: true))
        XCTAssertEqual(grey.pixels.channels, 1)
        XCTAssertLessThanOrEqual(Check.maximumDifference(grey.pixels.bytes, source.bytes), 4)

        let rgb = try decode(file)
        XCTAssertEqual(rgb.pixels.channels, 3)
        let expanded = grey.pixels.bytes.flatMap { [$0, $0, $0] }
        XCTAssertEqual(rgb.pixels.bytes, expanded, "grey as RGB repeats the grey value in all three channels")
    }

    func testRGBJPEGStaysRGBWhenGreyIsAllowed() throws {
        let decoded = try decode(Fixtures.jpeg(Fixtures.pattern(width: 8, height: 8)),
                                 options: DecodeOptions(allowGrey: true))
        XCTAssertEqual(decoded.pixels.channels, 3)
    }

    func testCMYKJPEGIsRefusedAsUnsupported() {
        let reason = Check.reason { () throws(ImageIOError) in try decode(Fixtures.cmykJPEG(width: 8, height: 8)) }
        guard case .unsupported(let message) = reason else {
            return XCTFail("expected .unsupported, got \(reason as Any)")
        }
        XCTAssertTrue(message.contains("CMYK"), message)
    }

    // MARK: - Reduced-scale decodes

    func testReducedDecodePicksTheSmallestScaleAtOrAboveTheMinimum() throws {
        let file = Fixtures.jpeg(Fixtures.pattern(width: 800, height: 600), quality: 80)
        // (minimum longest side, expected size): 1/2, 1/4 (1/8 would be 100 < 150), 3/8, and no reduction.
        let cases = [(400, [400, 300]), (150, [200, 150]), (300, [300, 225]), (1000, [800, 600]), (800, [800, 600])]
        for (minimum, expected) in cases {
            let decoded = try decode(file, options: DecodeOptions(minimumLongestSide: minimum))
            XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], expected, "minimum \(minimum)")
            XCTAssertEqual([decoded.metadata.storedWidth, decoded.metadata.storedHeight], [800, 600],
                           "stored size stays the full size")
        }
    }

    func testScaledSizeOfAPhotoForAThumbnailIsAQuarter() {
        let size = JPEGCodec.scaledSize(width: 2832, height: 2128, minimumLongestSide: 400)
        XCTAssertEqual([size.width, size.height], [708, 532])
        let full = JPEGCodec.scaledSize(width: 2832, height: 2128, minimumLongestSide: nil)
        XCTAssertEqual([full.width, full.height], [2832, 2128])
    }

    // MARK: - EXIF

    private let camera = Fixtures.Exif(orientation: 6, make: "NIKON CORPORATION", model: "NIKON D800",
                                       focalLengthMillimetres: 24.5, focalLength35mmMillimetres: 24,
                                       pixelWidth: 7360, pixelHeight: 4912)

    func testEXIFFieldsWrittenWithLibexifReadBack() throws {
        let decoded = try decode(Fixtures.jpeg(Fixtures.pattern(width: 24, height: 16), exif: camera))

        XCTAssertEqual(decoded.metadata.make, "NIKON CORPORATION")
        XCTAssertEqual(decoded.metadata.model, "NIKON D800")
        XCTAssertEqual(decoded.metadata.focalLengthMillimetres ?? 0, 24.5, accuracy: 1e-9)
        XCTAssertEqual(decoded.metadata.focalLength35mmMillimetres, 24)
        XCTAssertEqual(decoded.metadata.orientation, 6, "the codec reports orientation; the dispatcher applies it")
        XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [24, 16], "pixels as stored")
        XCTAssertEqual([decoded.metadata.storedWidth, decoded.metadata.storedHeight], [24, 16],
                       "the real size wins over EXIF's PixelXDimension")
    }

    func testEXIFReaderTakesBareTIFFTheExifHeaderAndHEIFsOffsetForm() {
        let block = Fixtures.exifBlock(camera)
        XCTAssertEqual(Array(block.prefix(6)), ExifReader.exifHeader, "libexif saves with the Exif header")
        let bare = Array(block.dropFirst(6))
        let heif: [UInt8] = [0, 0, 0, 6] + block

        for (name, form) in [("with header", block), ("bare TIFF", bare), ("HEIF offset", heif)] {
            let metadata = form.withUnsafeBytes { ExifReader.read($0) }
            XCTAssertEqual(metadata.model, "NIKON D800", name)
            XCTAssertEqual(metadata.orientation, 6, name)
            XCTAssertEqual([metadata.storedWidth, metadata.storedHeight], [7360, 4912], name)
        }
    }

    func testEXIFReaderGivesEmptyMetadataForJunk() {
        var generator = SplitMix64(seed: 7)
        let noise = (0..<4096).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
        let junk: [[UInt8]] = [[], [0x45], Array("Exif".utf8), ExifReader.exifHeader, noise,
                               ExifReader.exifHeader + noise, [0x49, 0x49, 0x2A, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]]
        for bytes in junk {
            XCTAssertEqual(bytes.withUnsafeBytes { ExifReader.read($0) }, ImageMetadata(), "\(bytes.prefix(8))")
            XCTAssertEqual(bytes.withUnsafeBytes { ExifReader.readJPEG($0) }, ImageMetadata())
        }
    }

    func testEXIFReaderSurvivesEveryTruncationAndFlipOfABlock() {
        let block = Fixtures.exifBlock(camera)
        for length in 0..<block.count {
            _ = Array(block[0..<length]).withUnsafeBytes { ExifReader.read($0) }
        }
        for (offset, damaged) in Fixtures.flips(of: block, count: 300, seed: 11) {
            let metadata = damaged.withUnsafeBytes { ExifReader.read($0) }
            XCTAssertTrue((1...8).contains(metadata.orientation), "flip at \(offset)")
        }
    }

    func testJPEGWithoutEXIFHasNoCameraFields() throws {
        let decoded = try decode(Fixtures.jpeg(Fixtures.pattern(width: 8, height: 8)))
        XCTAssertNil(decoded.metadata.make)
        XCTAssertNil(decoded.metadata.focalLengthMillimetres)
        XCTAssertEqual(decoded.metadata.orientation, 1)
    }

    // MARK: - Hostile files

    func testTruncatedJPEGIsCorruptWhereverItIsCut() {
        let file = Fixtures.jpeg(Fixtures.pattern(width: 64, height: 64), quality: 90,
                                 exif: Fixtures.Exif(orientation: 3, make: "Test"))
        let scan = Fixtures.offsetOfSegment(0xDA, in: file)!
        let cuts = [4, 10, 30, scan - 3, scan + 2, scan + 20, file.count / 2, file.count - 40, file.count - 2]
        for (length, cut) in Fixtures.truncations(of: file, at: cuts) {
            let reason = Check.reason { () throws(ImageIOError) in try decode(cut) }
            XCTAssertTrue(Check.isCorrupt(reason), "cut at \(length) of \(file.count): \(reason as Any)")
        }
    }

    func testTruncatedProgressiveJPEGIsCorrupt() {
        let file = Fixtures.jpeg(Fixtures.pattern(width: 64, height: 64), quality: 90, progressive: true)
        for (length, cut) in Fixtures.truncations(of: file, at: [file.count / 3, file.count / 2, file.count - 2]) {
            let reason = Check.reason { () throws(ImageIOError) in try decode(cut) }
            XCTAssertTrue(Check.isCorrupt(reason), "cut at \(length) of \(file.count): \(reason as Any)")
        }
    }

    /// Some cameras pad the end of the scan; libjpeg warns about the bytes, but every pixel was read.
    func testJunkBeforeTheEndMarkerIsForgivenForBaselineAndProgressive() throws {
        let source = Fixtures.pattern(width: 40, height: 24)
        for progressive in [false, true] {
            let file = Fixtures.jpeg(source, quality: 90, progressive: progressive)
            let padded = Array(file.dropLast(2)) + [0x00, 0x13, 0x37] + [0xFF, 0xD9]
            XCTAssertEqual(try decode(padded).pixels, try decode(file).pixels, "progressive: \(progressive)")
        }
    }

    func testJunkBeforeAnyOtherMarkerIsCorrupt() {
        let file = Fixtures.jpeg(Fixtures.pattern(width: 40, height: 24), quality: 90)
        let scan = Fixtures.offsetOfSegment(0xDA, in: file)!
        let padded = Array(file[..<scan]) + [0x00, 0x13] + Array(file[scan...])
        let reason = Check.reason { () throws(ImageIOError) in try decode(padded) }
        guard case .corrupt(let message) = reason else { return XCTFail("got \(reason as Any)") }
        XCTAssertTrue(message.contains("extraneous bytes before marker 0xda"), message)
    }

    func testFlippedBytesGiveAnErrorOrAnImageOfTheDeclaredSizeNeverACrash() {
        let file = Fixtures.jpeg(Fixtures.pattern(width: 48, height: 32), quality: 90,
                                 exif: Fixtures.Exif(orientation: 8, make: "Test", focalLengthMillimetres: 4))
        var failures = 0
        for (offset, damaged) in Fixtures.flips(of: file, count: 400, seed: 3) {
            do {
                let decoded = try decode(damaged)
                let declared = [decoded.metadata.storedWidth, decoded.metadata.storedHeight]
                XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], declared, "flip at \(offset)")
            } catch {
                failures += 1
            }
        }
        // Flips in entropy-coded data often decode to other pixels; flips in the headers must fail.
        XCTAssertGreaterThan(failures, 20)
    }

    func testAFlippedStartOfFrameMarkerIsCorrupt() {
        var file = Fixtures.jpeg(Fixtures.pattern(width: 16, height: 16))
        file[Fixtures.offsetOfSegment(0xC0, in: file)! + 1] = 0x77
        XCTAssertTrue(Check.isCorrupt(Check.reason { () throws(ImageIOError) in try decode(file) }))
    }

    func testHugeDeclaredFrameIsTooLargeWithoutDecoding() {
        let file = Fixtures.jpegDeclaring(width: 65_535, height: 65_535)
        var reason: ImageIOError.Reason?
        let seconds = Check.seconds { reason = Check.reason { () throws(ImageIOError) in try decode(file) } }

        XCTAssertEqual(reason, .tooLarge(width: 65_535, height: 65_535, maxPixels: DecodeOptions().maxPixels))
        XCTAssertLessThan(seconds, 0.1)
    }

    func testAFrameOverASmallBudgetIsTooLarge() {
        let file = Fixtures.jpeg(Fixtures.pattern(width: 40, height: 30))
        let options = DecodeOptions(maxPixels: 1000)
        let reason = Check.reason { () throws(ImageIOError) in try decode(file, options: options) }
        XCTAssertEqual(reason, .tooLarge(width: 40, height: 30, maxPixels: 1000))
    }

    // MARK: - Encoding

    func testEncoderRoundTripsRGBAndGrey() throws {
        let rgb = Fixtures.pattern(width: 40, height: 24)
        let decodedRGB = try decode(try JPEGEncoder.encode(rgb, quality: 95))
        XCTAssertEqual([decodedRGB.pixels.width, decodedRGB.pixels.height, decodedRGB.pixels.channels], [40, 24, 3])
        // 4:2:0 halves the chroma resolution, and the pattern's blue checker is all chroma edges.
        XCTAssertLessThan(meanDifference(decodedRGB.pixels.bytes, rgb.bytes), 9)

        let grey = Fixtures.pattern(width: 40, height: 24, channels: 1)
        let decodedGrey = try decode(try JPEGEncoder.encode(grey, quality: 95), options: DecodeOptions(allowGrey: true))
        XCTAssertEqual(decodedGrey.pixels.channels, 1, "grey is written as a one-channel JPEG")
        XCTAssertLessThan(meanDifference(decodedGrey.pixels.bytes, grey.bytes), 3)
    }

    func testEncoderRefusesQualityOutsideOneToHundred() {
        let pixels = Fixtures.pattern(width: 4, height: 4)
        for quality in [0, -5, 101] {
            let reason = Check.reason { () throws(ImageIOError) in try JPEGEncoder.encode(pixels, quality: quality) }
            guard case .unsupported = reason else { return XCTFail("quality \(quality): \(reason as Any)") }
        }
        XCTAssertNoThrow(try JPEGEncoder.encode(pixels, quality: 1))
        XCTAssertNoThrow(try JPEGEncoder.encode(pixels, quality: 100))
    }

    func testLowerQualityMakesSmallerFiles() throws {
        let pixels = Fixtures.pattern(width: 128, height: 128)
        let low = try JPEGEncoder.encode(pixels, quality: 30), high = try JPEGEncoder.encode(pixels, quality: 90)
        XCTAssertLessThan(low.count, high.count)
    }

    private func meanDifference(_ a: [UInt8], _ b: [UInt8]) -> Double {
        Double(zip(a, b).map { abs(Int($0) - Int($1)) }.reduce(0, +)) / Double(a.count)
    }

    // MARK: - The real photos

    func testSceauxPhotosDecodeWithTheirCameraAndFocalLength() throws {
        let paths = try Fixtures.datasetFiles("sceaux_castle/images", extensions: ["jpg"])
        XCTAssertEqual(paths.count, 11)
        for path in paths {
            let decoded = try ImageReader.decode(path: path)
            XCTAssertEqual([decoded.pixels.width, decoded.pixels.height, decoded.pixels.channels], [2832, 2128, 3])
            XCTAssertEqual(decoded.metadata.make, "EASTMAN KODAK COMPANY", path)
            XCTAssertEqual(decoded.metadata.model, "KODAK Z612 ZOOM DIGITAL CAMERA", path)
            XCTAssertEqual(decoded.metadata.focalLengthMillimetres ?? 0, 5.85, accuracy: 0.005, path)
            XCTAssertEqual(decoded.metadata.focalLength35mmMillimetres, 35, path)
            XCTAssertEqual(decoded.metadata.orientation, 1)
        }
    }
}
