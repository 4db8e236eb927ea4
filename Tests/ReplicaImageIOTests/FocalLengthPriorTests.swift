import Foundation
import XCTest
@testable import ReplicaImageIO

/// Focal length priors: from the 35 mm equivalent, from the sensor table, or none with a reason.
final class FocalLengthPriorTests: XCTestCase {
    private func metadata(make: String? = nil, model: String? = nil, focal: Double? = nil,
                          focal35: Double? = nil) -> ImageMetadata {
        var metadata = ImageMetadata()
        metadata.make = make
        metadata.model = model
        metadata.focalLengthMillimetres = focal
        metadata.focalLength35mmMillimetres = focal35
        return metadata
    }

    func testEquivalentFocalIsScaledToTheLongestSide() {
        let prior = FocalLengthPrior.focalLengthPixels(for: metadata(focal: 4.2, focal35: 28),
                                                       imageWidth: 4000, imageHeight: 3000)
        XCTAssertEqual(prior, .fromEquivalentFocal(28.0 / 36 * 4000))
        let portrait = FocalLengthPrior.focalLengthPixels(for: metadata(focal35: 28), imageWidth: 3000,
                                                          imageHeight: 4000)
        XCTAssertEqual(portrait.pixels, prior.pixels, "a portrait photo has the same focal length in pixels")
    }

    func testSensorTableIsUsedWithoutAnEquivalentFocal() {
        let prior = FocalLengthPrior.focalLengthPixels(
            for: metadata(make: "NIKON CORPORATION", model: "NIKON D800", focal: 50), imageWidth: 7360,
            imageHeight: 4912)
        XCTAssertEqual(prior, .fromSensorWidth(50 / 35.9 * 7360, sensorWidthMillimetres: 35.9))
    }

    func testCameraKeysIgnoreCaseCompanyNamesAndRepeatedBrands() {
        let cases = [
            ("EASTMAN KODAK COMPANY", "KODAK Z612 ZOOM DIGITAL CAMERA", "kodak z612 zoom digital camera"),
            ("Canon", "Canon EOS 5D Mark II", "canon eos 5d mark ii"),
            ("SONY", "ILCE-7M3", "sony ilce 7m3"),
            ("OLYMPUS IMAGING CORP.  ", "E-M5", "olympus e m5"),
            ("Unheard Of Ltd", "Model 1", "unheard model 1"),
        ]
        for (make, model, key) in cases {
            XCTAssertEqual(FocalLengthPrior.cameraKey(make: make, model: model), key)
        }
        XCTAssertEqual(FocalLengthPrior.sensorWidthMillimetres(make: "Canon", model: "Canon EOS 5D Mark II"), 36)
    }

    func testEveryTableEntryIsAPlausibleSensorWidth() {
        XCTAssertGreaterThanOrEqual(FocalLengthPrior.sensorWidths.count, 20)
        for (camera, width) in FocalLengthPrior.sensorWidths {
            XCTAssertTrue((4...44).contains(width), "\(camera): \(width) mm")
            XCTAssertEqual(FocalLengthPrior.cameraKey(make: nil, model: camera), camera, "\(camera) is normalised")
        }
    }

    func testNoPriorSaysWhy() {
        let cases: [(ImageMetadata, Int, String)] = [
            (metadata(focal35: 28), 0, "no size"),
            (metadata(make: "Canon"), 4000, "neither"),
            (metadata(make: "Acme", model: "Pinhole 1", focal: 9), 4000, "Acme Pinhole 1"),
            (metadata(focal: 9), 4000, "an unnamed camera"),
            (metadata(focal: 0, focal35: 0), 4000, "neither"),
        ]
        for (metadata, side, words) in cases {
            let prior = FocalLengthPrior.focalLengthPixels(for: metadata, imageWidth: side, imageHeight: side)
            guard case .none(let reason) = prior else { return XCTFail("expected no prior, got \(prior)") }
            XCTAssertTrue(reason.contains(words), reason)
            XCTAssertNil(prior.pixels)
        }
    }

    /// The Sceaux photos' Kodak writes a 35 mm equivalent computed by the diagonal, so the 36 mm-width
    /// convention lands about 5 % under the calibrated focal length in `K.txt`; the sensor table is closer.
    func testSceauxPriorIsNearTheCalibratedFocalLength() throws {
        // A missing data set skips the test; the skip must not be thrown inside XCTUnwrap, which would fail.
        let files = try Fixtures.datasetFiles("sceaux_castle/images", extensions: ["jpg"])
        let path = try XCTUnwrap(files.first)
        let calibration = try String(contentsOfFile: Fixtures.datasets.appendingPathComponent(
            "sceaux_castle/images/K.txt").path, encoding: .utf8)
        let calibrated = try XCTUnwrap(Double(calibration.split(whereSeparator: { $0 == " " || $0 == "\n" })[0]))
        var exif = try Fixtures.read(path).withUnsafeBytes { ExifReader.readJPEG($0) }

        let prior = FocalLengthPrior.focalLengthPixels(for: exif, imageWidth: 2832, imageHeight: 2128)
        guard case .fromEquivalentFocal(let pixels) = prior else { return XCTFail("got \(prior)") }
        XCTAssertEqual(pixels, calibrated, accuracy: calibrated * 0.06)

        exif.focalLength35mmMillimetres = nil
        let fromSensor = FocalLengthPrior.focalLengthPixels(for: exif, imageWidth: 2832, imageHeight: 2128)
        XCTAssertEqual(try XCTUnwrap(fromSensor.pixels), calibrated, accuracy: calibrated * 0.02)
    }

    func testStrechaPhotosWithoutEXIFHaveNoPrior() throws {
        // A missing data set skips the test; the skip must not be thrown inside XCTUnwrap, which would fail.
        let files = try Fixtures.datasetFiles("strecha_fountain_P11/images", extensions: ["jpg"])
        let path = try XCTUnwrap(files.first)
        let decoded = try ImageReader.decode(path: path)
        let prior = FocalLengthPrior.focalLengthPixels(for: decoded.metadata, imageWidth: decoded.pixels.width,
                                                       imageHeight: decoded.pixels.height)
        XCTAssertNil(prior.pixels)
    }
}
