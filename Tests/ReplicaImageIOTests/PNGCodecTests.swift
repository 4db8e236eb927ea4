import XCTest
@testable import ReplicaImageIO

#if canImport(Glibc)
import Glibc
#endif

/// PNG decoding: every layout libpng writes, transparency over white, hostile files, and a real photo set.
final class PNGCodecTests: XCTestCase {
    private func decode(_ file: [UInt8], options: DecodeOptions = DecodeOptions()) throws(ImageIOError)
        -> DecodedImage {
        try file.withUnsafeBytes { bytes in
            Result { () throws(ImageIOError) in try PNGCodec.decode(bytes, file: "test.png", options: options) }
        }.get()
    }

    /// The 8-bit code libpng gives a linear-light value 0–1 when it reads it for sRGB output: a 1/2.2
    /// power (libpng's sRGB approximation for gamma conversion), which differs from the exact sRGB curve
    /// near black.
    private func sRGB(linear value: Double) -> Int {
        Int((pow(value, 1 / 2.2) * 255).rounded())
    }

    // MARK: - Layouts

    func testEightBitRGBIsExact() throws {
        let source = Fixtures.pattern(width: 33, height: 17)
        let file = Fixtures.png(width: 33, height: 17, format: Fixtures.PNGFormat.rgb, samples: source.bytes)
        let decoded = try decode(file)

        XCTAssertEqual(decoded.format, .png)
        XCTAssertEqual(decoded.pixels, source)
        XCTAssertEqual([decoded.metadata.storedWidth, decoded.metadata.storedHeight], [33, 17])
        XCTAssertEqual(decoded.metadata.orientation, 1)
    }

    func testSixteenBitLinearBecomesEightBitSRGB() throws {
        // libpng's writer tags 16-bit data as linear light (gAMA 1.0); reading converts to sRGB codes.
        let linear: [Double] = [0, 1, 0.214, 0.5, 0.01, 0.9]
        let samples = linear.map { UInt16(($0 * 65535).rounded()) }
        let file = Fixtures.png(width: 2, height: 1, format: Fixtures.PNGFormat.linearRGB, samples16: samples)
        let decoded = try decode(file)

        XCTAssertEqual(decoded.pixels.channels, 3)
        for (index, value) in linear.enumerated() {
            XCTAssertEqual(Int(decoded.pixels.bytes[index]), sRGB(linear: value), accuracy: 1, "linear \(value)")
        }
    }

    func testSixteenBitWithoutGammaInformationIsTakenAsSRGB() throws {
        let samples: [UInt16] = [0x0000, 0x8080, 0xFFFF]
        let tagged = Fixtures.png(width: 1, height: 1, format: Fixtures.PNGFormat.linearRGB, samples16: samples)
        let untagged = Fixtures.removingChunks(["gAMA", "sRGB", "cHRM", "iCCP"], from: tagged)
        XCTAssertLessThan(untagged.count, tagged.count, "the writer tagged the file")

        XCTAssertEqual(try decode(untagged).pixels.bytes, [0, 128, 255], "the high byte, as an sRGB code")
        XCTAssertEqual(try decode(tagged).pixels.bytes[1], UInt8(sRGB(linear: Double(0x8080) / 65535)))
    }

    func testPaletteColoursAreLookedUp() throws {
        let palette: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
        let indices: [UInt8] = [0, 1, 2, 3, 3, 2, 1, 0]
        let file = Fixtures.png(width: 4, height: 2, format: Fixtures.PNGFormat.rgbColormap, samples: indices,
                                colormap: palette, colormapEntries: 4)
        let decoded = try decode(file)

        let expected = indices.flatMap { Array(palette[(Int($0) * 3)..<(Int($0) * 3 + 3)]) }
        XCTAssertEqual(decoded.pixels.bytes, expected)
    }

    func testPaletteTransparencyIsCompositedOverWhite() throws {
        // RGBA palette: opaque blue, and a fully transparent red.
        let palette: [UInt8] = [0, 0, 255, 255, 255, 0, 0, 0]
        let file = Fixtures.png(width: 2, height: 1, format: Fixtures.PNGFormat.rgbaColormap, samples: [0, 1],
                                colormap: palette, colormapEntries: 2)
        XCTAssertEqual(try decode(file).pixels.bytes, [0, 0, 255, 255, 255, 255])
    }

    func testRGBAIsCompositedOverWhiteInLinearLight() throws {
        // Opaque green, transparent black, half-covered black.
        let samples: [UInt8] = [0, 200, 0, 255, 0, 0, 0, 0, 0, 0, 0, 128]
        let file = Fixtures.png(width: 3, height: 1, format: Fixtures.PNGFormat.rgba, samples: samples)
        let pixels = try decode(file).pixels.bytes

        XCTAssertEqual(Array(pixels[0..<3]), [0, 200, 0], "opaque pixels keep their colour")
        XCTAssertEqual(Array(pixels[3..<6]), [255, 255, 255], "transparent pixels are the white background")
        let half = sRGB(linear: 1 - 128.0 / 255)
        for channel in 6..<9 { XCTAssertEqual(Int(pixels[channel]), half, accuracy: 2) }
    }

    func testGreyIsGreyOnlyWhenAllowed() throws {
        let source = Fixtures.pattern(width: 9, height: 5, channels: 1)
        let file = Fixtures.png(width: 9, height: 5, format: Fixtures.PNGFormat.grey, samples: source.bytes)

        XCTAssertEqual(try decode(file, options: DecodeOptions(allowGrey: true)).pixels, source)
        let rgb = try decode(file).pixels
        XCTAssertEqual(rgb.channels, 3)
        XCTAssertEqual(rgb.bytes, source.bytes.flatMap { [$0, $0, $0] })
    }

    func testGreyWithAlphaIsCompositedOverWhiteAndStaysGrey() throws {
        let file = Fixtures.png(width: 2, height: 1, format: Fixtures.PNGFormat.greyAlpha, samples: [90, 255, 90, 0])
        let grey = try decode(file, options: DecodeOptions(allowGrey: true)).pixels
        XCTAssertEqual(grey.channels, 1)
        XCTAssertEqual(grey.bytes, [90, 255])
        XCTAssertEqual(try decode(file).pixels.bytes, [90, 90, 90, 255, 255, 255])
    }

    func testColourFileStaysRGBWhenGreyIsAllowed() throws {
        let file = Fixtures.png(width: 1, height: 1, format: Fixtures.PNGFormat.rgb, samples: [1, 2, 3])
        XCTAssertEqual(try decode(file, options: DecodeOptions(allowGrey: true)).pixels.channels, 3)
    }

    // MARK: - Hostile files

    func testTruncatedPNGIsCorruptWhereverItIsCut() {
        let source = Fixtures.pattern(width: 40, height: 40)
        let file = Fixtures.png(width: 40, height: 40, format: Fixtures.PNGFormat.rgb, samples: source.bytes)
        for (length, cut) in Fixtures.truncations(of: file, at: [0, 8, 20, 33, 45, file.count / 2, file.count - 12,
                                                               file.count - 1]) {
            let reason = Check.reason { () throws(ImageIOError) in try decode(cut) }
            XCTAssertTrue(Check.isCorrupt(reason), "cut at \(length) of \(file.count): \(reason as Any)")
        }
    }

    func testFlippedBytesInCriticalChunksAreCorrupt() {
        let file = Fixtures.png(width: 20, height: 20, format: Fixtures.PNGFormat.rgb,
                                samples: Fixtures.pattern(width: 20, height: 20).bytes)
        let idat = firstChunk("IDAT", in: file)!
        // The signature, IHDR's data and CRC, and bytes inside the compressed image data.
        for offset in [0, 3, 7, 24, 26, 30, idat + 8, idat + 20, file.count - 5] {
            var damaged = file
            damaged[offset] ^= 0xFF
            let reason = Check.reason { () throws(ImageIOError) in try decode(damaged) }
            XCTAssertTrue(Check.isCorrupt(reason), "flip at \(offset): \(reason as Any)")
        }
    }

    func testRandomFlipsGiveAnErrorOrAnImageOfTheDeclaredSize() {
        let file = Fixtures.png(width: 24, height: 12, format: Fixtures.PNGFormat.rgba,
                                samples: Array(repeating: 77, count: 24 * 12 * 4))
        for (offset, damaged) in Fixtures.flips(of: file, count: 200, seed: 5) {
            // A flip in an ancillary chunk (gAMA, sRGB) only drops that chunk; anything else must fail.
            if let decoded = try? decode(damaged) {
                XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [24, 12], "flip at \(offset)")
            }
        }
    }

    func testHugeDeclaredHeaderIsTooLargeWithoutDecoding() {
        let file = Fixtures.pngDeclaring(width: 100_000, height: 100_000)
        XCTAssertEqual(Fixtures.crc32(file[12..<29]), bigEndian(file, at: 29), "the header's CRC is valid")
        var reason: ImageIOError.Reason?
        let seconds = Check.seconds { reason = Check.reason { () throws(ImageIOError) in try decode(file) } }

        XCTAssertEqual(reason, .tooLarge(width: 100_000, height: 100_000, maxPixels: DecodeOptions().maxPixels))
        XCTAssertLessThan(seconds, 0.1)
    }

    func testASizeWithinLibpngsLimitsButOverTheBudgetIsTooLarge() {
        let file = Fixtures.pngDeclaring(width: 20_000, height: 20_000)
        let reason = Check.reason { () throws(ImageIOError) in try decode(file) }
        XCTAssertEqual(reason, .tooLarge(width: 20_000, height: 20_000, maxPixels: DecodeOptions().maxPixels))
    }

    private func firstChunk(_ type: String, in file: [UInt8]) -> Int? {
        var offset = 8
        while offset + 8 <= file.count {
            if String(decoding: file[(offset + 4)..<(offset + 8)], as: UTF8.self) == type { return offset }
            offset += 12 + Int(bigEndian(file, at: offset))
        }
        return nil
    }

    private func bigEndian(_ file: [UInt8], at offset: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 << 8 | UInt32(file[offset + $1]) }
    }

    // MARK: - Real files

    func testMiddleburyPhotosDecode() throws {
        for path in try Fixtures.datasetFiles("middlebury_dinoSparseRing", extensions: ["png"]).prefix(4) {
            let decoded = try ImageReader.decode(path: path)
            XCTAssertEqual([decoded.pixels.width, decoded.pixels.height, decoded.pixels.channels], [640, 480, 3])
        }
    }

    func testLegoRenderWithTransparentBackgroundDecodesOverWhite() throws {
        // A missing data set skips the test; the skip must not be thrown inside XCTUnwrap, which would fail.
        let files = try Fixtures.datasetFiles("nerf_synthetic_lego/train", extensions: ["png"])
        let path = try XCTUnwrap(files.first)
        let pixels = try ImageReader.decode(path: path).pixels

        XCTAssertEqual([pixels.width, pixels.height, pixels.channels], [800, 800, 3])
        XCTAssertEqual(Array(pixels.bytes[0..<3]), [255, 255, 255], "the transparent corner is white")
    }
}
