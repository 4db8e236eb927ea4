import XCTest
@testable import ReplicaImageIO

/// PNG encoding through libpng: what is written decodes to the same pixels.
final class PNGEncoderTests: XCTestCase {
    private func decode(_ file: [UInt8], allowGrey: Bool) throws -> PixelBuffer {
        try ImageReader.decode(data: file, name: "encoded.png", options: DecodeOptions(allowGrey: allowGrey)).pixels
    }

    func testRGBRoundTripsExactly() throws {
        let pixels = PixelBuffer(width: 37, height: 19, channels: 3,
                                 bytes: (0..<(37 * 19 * 3)).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 / 5) })
        let file = try PNGEncoder.encode(pixels)
        XCTAssertEqual(Array(file.prefix(8)), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(try decode(file, allowGrey: false), pixels)
    }

    func testGreyRoundTripsExactly() throws {
        let pixels = PixelBuffer(width: 5, height: 3, channels: 1, bytes: (0..<15).map { UInt8($0 * 17) })
        XCTAssertEqual(try decode(try PNGEncoder.encode(pixels), allowGrey: true), pixels)
    }

    func testAnEmptyImageIsRefused() {
        XCTAssertThrowsError(try PNGEncoder.encode(PixelBuffer(width: 0, height: 0, channels: 3)))
    }
}
