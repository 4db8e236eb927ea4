import Foundation
import ReplicaEvaluation
import ReplicaImageIO
import XCTest

/// PSNR and SSIM between two images, and their summary over views.
final class ImageMetricsTests: XCTestCase {
    func testIdenticalImagesHaveInfinitePSNRAndSSIMOfOne() {
        let image = texture(width: 48, height: 40)
        XCTAssertEqual(ImageMetrics.psnr(image, image), .infinity)
        XCTAssertEqual(ImageMetrics.ssim(image, image) ?? .nan, 1, accuracy: 1e-12)
    }

    func testNoiseOfKnownPowerGivesTheFormulasPSNR() {
        let image = texture(width: 48, height: 40)
        // ±5 on every byte, never clipped (the texture stays within 20...235): MSE is exactly 25.
        let noisy = map(image) { value, index in index % 2 == 0 ? value + 5 : value - 5 }
        let expected = 10 * log10(255.0 * 255.0 / 25)
        XCTAssertEqual(ImageMetrics.psnr(noisy, image) ?? .nan, expected, accuracy: 1e-9)
        XCTAssertEqual(ImageMetrics.psnr(image, noisy) ?? .nan, expected, accuracy: 1e-9)
    }

    func testTheMaskChoosesThePixelsCounted() {
        let image = texture(width: 20, height: 20)
        // Noise of 8 only in the left half of each row.
        let noisy = map(image) { value, index in (index / 3) % 20 < 10 ? value + 8 : value }
        let leftHalf = (0..<400).map { $0 % 20 < 10 }
        XCTAssertEqual(ImageMetrics.psnr(noisy, image, mask: leftHalf.map { !$0 }), .infinity)
        XCTAssertEqual(ImageMetrics.psnr(noisy, image, mask: leftHalf) ?? .nan, 10 * log10(255.0 * 255 / 64),
                       accuracy: 1e-9)
        XCTAssertEqual(ImageMetrics.psnr(noisy, image) ?? .nan, 10 * log10(255.0 * 255 / 32), accuracy: 1e-9)
        XCTAssertNil(ImageMetrics.psnr(noisy, image, mask: [Bool](repeating: false, count: 400)))
    }

    func testSSIMDropsForABlurredAndForAShiftedImage() {
        let image = texture(width: 64, height: 48)
        let blurred = boxBlur(image)
        let shifted = shift(image, by: 2)
        let blurredScore = ImageMetrics.ssim(blurred, image) ?? .nan
        let shiftedScore = ImageMetrics.ssim(shifted, image) ?? .nan
        XCTAssertLessThan(blurredScore, 0.9)
        XCTAssertGreaterThan(blurredScore, 0)
        XCTAssertLessThan(shiftedScore, 0.9)
        XCTAssertEqual(ImageMetrics.ssim(image, blurred) ?? .nan, blurredScore, accuracy: 1e-12, "symmetric")
        XCTAssertLessThan(ImageMetrics.ssim(boxBlur(blurred), image) ?? .nan, blurredScore, "more blur, lower")
    }

    func testSSIMNeedsAWholeWindow() {
        let small = texture(width: 10, height: 30)
        XCTAssertNil(ImageMetrics.ssim(small, small))
        let grey = PixelBuffer(width: 12, height: 12, channels: 1, bytes: (0..<144).map { UInt8($0) })
        XCTAssertEqual(ImageMetrics.ssim(grey, grey) ?? .nan, 1, accuracy: 1e-12)
    }

    func testTheAppearanceSummaryAndReport() throws {
        let image = texture(width: 32, height: 32)
        let noisy = map(image) { value, index in index % 2 == 0 ? value + 5 : value - 5 }
        let noisier = map(image) { value, index in index % 2 == 0 ? value + 10 : value - 10 }
        let evaluation = ImageMetrics.evaluate([
            AppearanceView(name: "a", rendered: image, truth: image),
            AppearanceView(name: "b", rendered: noisy, truth: image),
            AppearanceView(name: "c", rendered: noisier, truth: image),
        ])
        XCTAssertEqual(evaluation.views.map(\.name), ["a", "b", "c"])
        XCTAssertEqual(evaluation.psnrDecibels?.median ?? .nan, 10 * log10(255.0 * 255 / 25), accuracy: 1e-9)
        XCTAssertEqual(evaluation.psnrDecibels?.minimum ?? .nan, 10 * log10(255.0 * 255 / 100), accuracy: 1e-9)
        XCTAssertEqual(evaluation.psnrDecibels?.mean, .infinity)
        let ssims = evaluation.views.map { $0.ssim ?? .nan }
        XCTAssertEqual(evaluation.ssim?.mean ?? .nan, ssims.reduce(0, +) / 3, accuracy: 1e-12)
        XCTAssertTrue(ssims[0] > ssims[1] && ssims[1] > ssims[2], "\(ssims)")

        let table = EvaluationReport.table(evaluation)
        XCTAssertTrue(table.contains("PSNR (dB)") && table.contains("inf"))
        XCTAssertEqual(Set(table.split(separator: "\n").map(\.count)).count, 1, "aligned columns")
        let json = try EvaluationReport.json(evaluation)
        XCTAssertTrue(json.contains("\"inf\""))
    }

    /// An RGB pattern with edges, gradients and fine detail, every value within 20...235.
    private func texture(width: Int, height: Int) -> PixelBuffer {
        var bytes: [UInt8] = []
        for y in 0..<height {
            for x in 0..<width {
                let checker = ((x / 4) + (y / 4)) % 2 == 0 ? 60 : 0
                let detail = (x * 37 + y * 91) % 50
                bytes += [UInt8(20 + checker + detail + x % 64), UInt8(30 + (y * 3) % 120 + detail),
                          UInt8(40 + checker + (x * y) % 90)]
            }
        }
        return PixelBuffer(width: width, height: height, channels: 3, bytes: bytes)
    }

    private func map(_ image: PixelBuffer, _ change: (Int, Int) -> Int) -> PixelBuffer {
        let bytes = image.bytes.enumerated().map { UInt8(change(Int($0.element), $0.offset)) }
        return PixelBuffer(width: image.width, height: image.height, channels: image.channels, bytes: bytes)
    }

    /// Each channel averaged over the 3×3 neighbourhood, edges clamped.
    private func boxBlur(_ image: PixelBuffer) -> PixelBuffer {
        var bytes = image.bytes
        for y in 0..<image.height {
            for x in 0..<image.width {
                for channel in 0..<3 {
                    var sum = 0
                    for dy in -1...1 {
                        for dx in -1...1 {
                            let sx = min(max(x + dx, 0), image.width - 1), sy = min(max(y + dy, 0), image.height - 1)
                            sum += Int(image.bytes[(sy * image.width + sx) * 3 + channel])
                        }
                    }
                    bytes[(y * image.width + x) * 3 + channel] = UInt8(sum / 9)
                }
            }
        }
        return PixelBuffer(width: image.width, height: image.height, channels: 3, bytes: bytes)
    }

    /// Moved right by `pixels`, the left edge repeated.
    private func shift(_ image: PixelBuffer, by pixels: Int) -> PixelBuffer {
        var bytes = image.bytes
        for y in 0..<image.height {
            for x in 0..<image.width {
                let source = (y * image.width + max(0, x - pixels)) * 3
                for channel in 0..<3 { bytes[(y * image.width + x) * 3 + channel] = image.bytes[source + channel] }
            }
        }
        return PixelBuffer(width: image.width, height: image.height, channels: 3, bytes: bytes)
    }
}
