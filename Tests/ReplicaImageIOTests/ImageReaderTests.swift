import CHeif
import CTIFF
import Foundation
import XCTest
@testable import ReplicaImageIO

/// The dispatcher: names are checked, content decides the format, orientation is applied.
final class ImageReaderTests: XCTestCase {
    private let jpeg = Fixtures.jpeg(Fixtures.pattern(width: 12, height: 8))

    func testAJPEGNamedHEICIsReadAsAJPEG() throws {
        let decoded = try ImageReader.decode(data: jpeg, name: "IMG_0001.HEIC")
        XCTAssertEqual(decoded.format, .jpeg)
        XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [12, 8])
    }

    func testAPNGNamedJPGIsReadAsAPNG() throws {
        let png = Fixtures.png(width: 1, height: 1, format: Fixtures.PNGFormat.rgb, samples: [1, 2, 3])
        XCTAssertEqual(try ImageReader.decode(data: png, name: "photo.jpg").format, .png)
    }

    func testUnacceptedExtensionsAreRefusedWhateverTheContent() {
        for (name, ext) in [("photo.gif", "gif"), ("photo", ""), ("photo.jpg.exe", "exe"), ("archive.JPG2", "JPG2")] {
            let reason = Check.reason { () throws(ImageIOError) in try ImageReader.decode(data: jpeg, name: name) }
            XCTAssertEqual(reason, .unsupportedExtension(ext), name)
        }
    }

    func testBytesThatAreNoImageAreNotAnImage() {
        for bytes in [[], Array("GIF89a....".utf8), [0xFF, 0xD8], Array(repeating: 0, count: 100)] {
            let reason = Check.reason { () throws(ImageIOError) in try ImageReader.decode(data: bytes, name: "x.png") }
            XCTAssertEqual(reason, .notAnImage, "\(bytes.prefix(6))")
        }
    }

    func testErrorsNameTheFile() {
        let reason = Check.reason { () throws(ImageIOError) in
            try ImageReader.decode(data: Array(jpeg.prefix(40)), name: "cut.jpg")
        }
        XCTAssertTrue(Check.isCorrupt(reason))
        do {
            _ = try ImageReader.decode(data: Array(jpeg.prefix(40)), name: "cut.jpg")
        } catch {
            XCTAssertEqual(error.file, "cut.jpg")
            XCTAssertTrue(error.description.hasPrefix("cut.jpg: damaged image"), error.description)
        }
    }

    func testDecodingAPathReadsTheFileAndNamesErrorsByPath() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("imageio-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let photo = directory.appendingPathComponent("photo.jpeg")
        try Data(jpeg).write(to: photo)

        XCTAssertEqual(try ImageReader.decode(path: photo.path).pixels.width, 12)
        let missing = directory.appendingPathComponent("missing.jpg").path
        guard case .io = Check.reason({ () throws(ImageIOError) in try ImageReader.decode(path: missing) }) else {
            return XCTFail("a missing file is an I/O error")
        }
        let folder = directory.appendingPathComponent("folder.png")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        XCTAssertEqual(Check.reason { () throws(ImageIOError) in try ImageReader.decode(path: folder.path) },
                       .io("not a regular file"))
    }

    // MARK: - Every format through the dispatcher

    func testATIFFIsRoutedAndItsOrientationAppliedOnce() throws {
        var page = TIFFPageFixture.pattern(width: 6, height: 4)
        page.orientation = 6
        let decoded = try ImageReader.decode(data: TIFFFixture.file([page]), name: "scan.tif")
        XCTAssertEqual(decoded.format, .tiff)
        XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [4, 6], "orientation 6 turns 6×4 into 4×6")
        XCTAssertEqual(decoded.metadata.orientation, 1)
        XCTAssertEqual(decoded.metadata.appliedOrientation, 6)
        let stored = PixelBuffer(width: 6, height: 4, channels: 3,
                                 bytes: TestPattern.bytes(width: 6, height: 4, channels: 3))
        XCTAssertEqual(decoded.pixels, stored.oriented(6))
    }

    func testADNGIsRoutedToTheRawDecoderWhateverItsName() throws {
        let dng = DNGFixture().bytes()
        for name in ["IMG_1.dng", "IMG_1.tif"] {
            let decoded = try ImageReader.decode(data: dng, name: name)
            XCTAssertEqual(decoded.format, .raw, name)
            XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [128, 96], name)
        }
    }

    func testAHEICIsRouted() throws {
        try XCTSkipUnless(EncodedFixture.canEncodeHEIF(heif_compression_HEVC), "no HEVC encoder in this libheif")
        let rgb = TestPattern.bytes(width: 64, height: 48, channels: 3)
        let heic = EncodedFixture.heif(heif_compression_HEVC, width: 64, height: 48, rgb: rgb)
        let decoded = try ImageReader.decode(data: heic, name: "IMG_2.HEIC")
        XCTAssertEqual(decoded.format, .heif)
        XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [64, 48])
    }

    func testThumbnailsOfEveryFormat() throws {
        var files: [(String, [UInt8])] = [
            ("a.jpg", jpeg),
            ("b.tiff", TIFFFixture.file([TIFFPageFixture.pattern(width: 40, height: 30)])),
            ("c.dng", DNGFixture().bytes()),
        ]
        if EncodedFixture.canEncodeHEIF(heif_compression_HEVC) {
            let rgb = TestPattern.bytes(width: 64, height: 48, channels: 3)
            files.append(("d.heic", EncodedFixture.heif(heif_compression_HEVC, width: 64, height: 48, rgb: rgb)))
        }
        for (name, bytes) in files {
            let thumbnail = try Thumbnail.jpeg(from: bytes, name: name)
            XCTAssertEqual(ImageFormatDetection.detect(thumbnail), .jpeg, name)
            XCTAssertNoThrow(try ImageReader.decode(data: thumbnail, name: "t.jpg"), name)
        }
    }
}
