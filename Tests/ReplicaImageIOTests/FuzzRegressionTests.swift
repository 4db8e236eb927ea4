import Foundation
import XCTest
@testable import ReplicaImageIO

/// Inputs the fuzzers found that once crashed a decoder; each must now be a clean error.
final class FuzzRegressionTests: XCTestCase {
    private func regression(_ name: String) throws -> [UInt8] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fuzz/regressions/\(name)")
        return Array(try Data(contentsOf: url))
    }

    /// A 32×24 HEIF whose HEVC stream codes 224×65512: libheif decoded the coded size, past the budget.
    func testHEIFWhoseStreamIsLargerThanDeclaredIsRefused() throws {
        let bytes = try regression("heif-coded-size-beyond-declared.heic")
        let options = DecodeOptions(maxPixels: 4_000_000)
        let reason = Check.reason { () throws(ImageIOError) in
            _ = try ImageReader.decode(data: bytes, name: "x.heic", options: options)
        }
        XCTAssertNotNil(reason)
        if case .corrupt = reason {} else { XCTFail("expected .corrupt, got \(String(describing: reason))") }
    }

    /// A DNG naming Hasselblad with an unterminated model: LibRaw 0.20.2 aborted the process in strcat.
    func testHasselbladRawIsRefusedBeforeLibRawSeesIt() throws {
        let bytes = try regression("raw-hasselblad-unterminated-model.dng")
        let reason = Check.reason { () throws(ImageIOError) in
            _ = try ImageReader.decode(data: bytes, name: "x.dng")
        }
        guard case .unsupported(let message) = reason else { return XCTFail("got \(String(describing: reason))") }
        XCTAssertTrue(message.contains("Hasselblad"), message)
    }
}
