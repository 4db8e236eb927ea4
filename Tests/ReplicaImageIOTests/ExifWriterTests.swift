import XCTest
@testable import ReplicaImageIO

/// The EXIF writer: what it writes, the project's reader reads back, alone and inside a JPEG.
final class ExifWriterTests: XCTestCase {
    private let segment = ExifWriter.app1(make: "Replica Link", model: "synthetic", focalLengthMillimetres: 31.5,
                                          focalLength35mm: 28.4)

    func testTheSegmentIsAnAPP1WithItsLength() {
        XCTAssertEqual(Array(segment.prefix(2)), [0xFF, 0xE1])
        XCTAssertEqual(Int(segment[2]) << 8 | Int(segment[3]), segment.count - 2)
        XCTAssertEqual(Array(segment[4..<10]), Array("Exif".utf8) + [0, 0])
    }

    func testTheBlockReadsBackThroughExifReader() {
        let metadata = Array(segment.dropFirst(4)).withUnsafeBytes { ExifReader.read($0) }
        XCTAssertEqual(metadata.make, "Replica Link")
        XCTAssertEqual(metadata.model, "synthetic")
        XCTAssertEqual(metadata.focalLengthMillimetres, 31.5)
        XCTAssertEqual(metadata.focalLength35mmMillimetres, 28)
    }

    func testAJPEGWithTheSegmentStillDecodesAndCarriesIt() throws {
        let pixels = PixelBuffer(width: 16, height: 8, channels: 3, bytes: (0..<384).map { UInt8($0 % 251) })
        let file = try JPEGEncoder.encode(pixels, quality: 92, app1: segment)
        XCTAssertEqual(Array(file[2..<(2 + segment.count)]), segment, "right after SOI")
        let decoded = try ImageReader.decode(data: file, name: "exif.jpg")
        XCTAssertEqual(decoded.metadata.make, "Replica Link")
        XCTAssertEqual(decoded.metadata.focalLength35mmMillimetres, 28)
        XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [16, 8])
        let prior = FocalLengthPrior.focalLengthPixels(for: decoded.metadata, imageWidth: 16, imageHeight: 8)
        XCTAssertEqual(prior.pixels!, 28 / 36 * 16, accuracy: 1e-9)
    }
}
