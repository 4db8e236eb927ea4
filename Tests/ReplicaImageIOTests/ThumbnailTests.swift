import Foundation
import XCTest
@testable import ReplicaImageIO

/// The API's thumbnail: 400 pixels on the longest side, upright, JPEG, from a reduced-scale decode.
final class ThumbnailTests: XCTestCase {
    private func size(ofJPEG file: [UInt8]) throws -> [Int] {
        let decoded = try ImageReader.decode(data: file, name: "thumbnail.jpg")
        return [decoded.pixels.width, decoded.pixels.height]
    }

    func testSceauxThumbnailIsA400PixelJPEGFromAQuarterScaleDecode() throws {
        // A missing data set skips the test; the skip must not be thrown inside XCTUnwrap, which would fail.
        let files = try Fixtures.datasetFiles("sceaux_castle/images", extensions: ["jpg"])
        let path = try XCTUnwrap(files.first)
        let file = try Fixtures.read(path)

        let reduced = try Thumbnail.decodeReduced(file, name: "100_7100.JPG")
        XCTAssertEqual([reduced.pixels.width, reduced.pixels.height], [708, 532], "decoded at 1/4 in the DCT")
        XCTAssertEqual([reduced.metadata.storedWidth, reduced.metadata.storedHeight], [2832, 2128])

        let thumbnail = try Thumbnail.jpeg(from: file, name: "100_7100.JPG")
        XCTAssertEqual(Array(thumbnail.prefix(3)), [0xFF, 0xD8, 0xFF])
        XCTAssertEqual(try size(ofJPEG: thumbnail), [400, 301])
        XCTAssertLessThan(thumbnail.count, 60_000, "quality 70 at 400×301 is a few tens of kilobytes")
    }

    func testMiddleburyPNGThumbnail() throws {
        // A missing data set skips the test; the skip must not be thrown inside XCTUnwrap, which would fail.
        let files = try Fixtures.datasetFiles("middlebury_templeSparseRing", extensions: ["png"])
        let path = try XCTUnwrap(files.first)
        let thumbnail = try Thumbnail.jpeg(from: try Fixtures.read(path), name: "temple.png")
        XCTAssertEqual(try size(ofJPEG: thumbnail), [400, 300])
    }

    func testThumbnailLooksLikeTheImageShrunkExactly() throws {
        let source = Fixtures.ramps(width: 800, height: 400)
        let thumbnail = try Thumbnail.jpeg(from: Fixtures.jpeg(source, quality: 95), name: "ramps.jpg")
        let decoded = try ImageReader.decode(data: thumbnail, name: "thumbnail.jpg").pixels
        let expected = source.resized(width: 400, height: 200, filter: .area)

        XCTAssertEqual([decoded.width, decoded.height], [400, 200])
        let mean = Double(zip(decoded.bytes, expected.bytes).map { abs(Int($0) - Int($1)) }.reduce(0, +))
            / Double(expected.bytes.count)
        XCTAssertLessThan(mean, 2, "a half-scale DCT decode and two JPEG passes stay within 2 levels on average")
    }

    func testSmallImagesAreNotEnlarged() throws {
        let file = Fixtures.jpeg(Fixtures.pattern(width: 200, height: 120))
        XCTAssertEqual(try size(ofJPEG: Thumbnail.jpeg(from: file, name: "small.jpg")), [200, 120])
    }

    func testThumbnailIsUpright() throws {
        let file = Fixtures.jpeg(Fixtures.pattern(width: 800, height: 600), quality: 80,
                                 exif: Fixtures.Exif(orientation: 6))
        XCTAssertEqual(try size(ofJPEG: Thumbnail.jpeg(from: file, name: "portrait.jpg")), [300, 400])
    }

    func testThumbnailOfSomethingElseIsRefused() {
        let text = Array("not a photo".utf8)
        XCTAssertEqual(Check.reason { () throws(ImageIOError) in try Thumbnail.jpeg(from: text, name: "a.jpg") },
                       .notAnImage)
        XCTAssertEqual(Check.reason { () throws(ImageIOError) in try Thumbnail.jpeg(from: text, name: "a.gif") },
                       .unsupportedExtension("gif"))
    }
}
