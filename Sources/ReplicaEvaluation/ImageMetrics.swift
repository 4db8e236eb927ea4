import Foundation
import ReplicaImageIO

/// One view to compare: the reconstruction rendered from a true camera, and the photo (or true rendering)
/// from that camera.
public struct AppearanceView: Sendable {
    public var name: String
    public var rendered: PixelBuffer
    public var truth: PixelBuffer
    /// Pixels to count, row by row (`width × height`); nil counts all of them.
    public var mask: [Bool]?

    public init(name: String, rendered: PixelBuffer, truth: PixelBuffer, mask: [Bool]? = nil) {
        self.name = name
        self.rendered = rendered
        self.truth = truth
        self.mask = mask
    }
}

/// The middle, mean and worst (smallest) of a set of scores where larger is better.
public struct ScoreSummary: Equatable, Sendable, Codable {
    public var median: Double
    public var mean: Double
    public var minimum: Double

    /// Summarises `values`; nil when there are none.
    public init?(_ values: [Double]) {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        median = ErrorSummary.median(ofSorted: sorted)
        mean = values.reduce(0, +) / Double(values.count)
        minimum = sorted[0]
    }
}

/// How alike the rendered views are to the true ones.
public struct AppearanceEvaluation: Equatable, Sendable, Codable {
    /// One entry per view, in the order given.
    public var views: [ViewScore]
    /// Over the views that had a PSNR; +∞ where a view is identical to its truth.
    public var psnrDecibels: ScoreSummary?
    /// Over the views that had an SSIM.
    public var ssim: ScoreSummary?

    /// The scores of one view; nil where the mask left nothing to compare (or, for SSIM, the image is
    /// smaller than its window).
    public struct ViewScore: Equatable, Sendable, Codable {
        public var name: String
        public var psnrDecibels: Double?
        public var ssim: Double?
    }
}

/// Pixel-level comparisons of two images of equal size.
public enum ImageMetrics {
    /// Side of SSIM's Gaussian window, pixels.
    public static let ssimWindow = 11
    /// Standard deviation of SSIM's Gaussian window, pixels.
    public static let ssimSigma = 1.5

    /// Peak signal-to-noise ratio in dB: 10·log₁₀(255² / MSE), with the mean squared error taken over every
    /// channel of the counted pixels. +∞ for identical images (no cap); nil when the mask counts no pixel.
    public static func psnr(_ image: PixelBuffer, _ reference: PixelBuffer, mask: [Bool]? = nil) -> Double? {
        checkComparable(image, reference, mask)
        var squaredError = 0.0, samples = 0
        let channels = image.channels
        for pixel in 0..<(image.width * image.height) where mask?[pixel] ?? true {
            for offset in pixel * channels..<(pixel + 1) * channels {
                let difference = Double(image.bytes[offset]) - Double(reference.bytes[offset])
                squaredError += difference * difference
            }
            samples += channels
        }
        guard samples > 0 else { return nil }
        let meanSquaredError = squaredError / Double(samples)
        return meanSquaredError == 0 ? .infinity : 10 * log10(255 * 255 / meanSquaredError)
    }

    /// Structural similarity (Wang et al., 2004) on luminance (Rec. 601 luma of RGB; grey as is), with an
    /// 11×11 Gaussian window of σ 1.5, K1 0.01, K2 0.03 and a dynamic range of 255, averaged over the window
    /// positions that lie wholly inside the image and whose centre the mask counts. 1 for identical images;
    /// nil when the image is smaller than the window or the mask counts no window centre.
    public static func ssim(_ image: PixelBuffer, _ reference: PixelBuffer, mask: [Bool]? = nil) -> Double? {
        checkComparable(image, reference, mask)
        let width = image.width, height = image.height, window = ssimWindow, radius = ssimWindow / 2
        guard width >= window, height >= window else { return nil }
        let x = luminance(image), y = luminance(reference)
        let kernel = gaussianKernel()
        let meanX = blur(x, width, height, kernel), meanY = blur(y, width, height, kernel)
        let meanXX = blur(zip(x, x).map(*), width, height, kernel)
        let meanYY = blur(zip(y, y).map(*), width, height, kernel)
        let meanXY = blur(zip(x, y).map(*), width, height, kernel)

        let c1 = (0.01 * 255) * (0.01 * 255), c2 = (0.03 * 255) * (0.03 * 255)
        let outWidth = width - window + 1, outHeight = height - window + 1
        var total = 0.0, counted = 0
        for row in 0..<outHeight {
            for column in 0..<outWidth where mask?[(row + radius) * width + column + radius] ?? true {
                let i = row * outWidth + column
                let mx = meanX[i], my = meanY[i]
                let varianceX = meanXX[i] - mx * mx, varianceY = meanYY[i] - my * my
                let covariance = meanXY[i] - mx * my
                total += (2 * mx * my + c1) * (2 * covariance + c2)
                    / ((mx * mx + my * my + c1) * (varianceX + varianceY + c2))
                counted += 1
            }
        }
        return counted > 0 ? total / Double(counted) : nil
    }

    /// PSNR and SSIM of each view and their summaries.
    public static func evaluate(_ views: [AppearanceView]) -> AppearanceEvaluation {
        let scores = views.map { view in
            AppearanceEvaluation.ViewScore(name: view.name,
                                           psnrDecibels: psnr(view.rendered, view.truth, mask: view.mask),
                                           ssim: ssim(view.rendered, view.truth, mask: view.mask))
        }
        return AppearanceEvaluation(views: scores, psnrDecibels: ScoreSummary(scores.compactMap(\.psnrDecibels)),
                                    ssim: ScoreSummary(scores.compactMap(\.ssim)))
    }

    private static func checkComparable(_ image: PixelBuffer, _ reference: PixelBuffer, _ mask: [Bool]?) {
        precondition(image.width == reference.width && image.height == reference.height
                     && image.channels == reference.channels, "images compared must have one size and layout")
        precondition(mask.map { $0.count == image.width * image.height } ?? true, "a mask has one entry a pixel")
    }

    private static func luminance(_ image: PixelBuffer) -> [Double] {
        guard image.channels == 3 else { return image.bytes.map(Double.init) }
        return (0..<(image.width * image.height)).map { (pixel: Int) -> Double in
            let red = Double(image.bytes[3 * pixel]), green = Double(image.bytes[3 * pixel + 1])
            let blue = Double(image.bytes[3 * pixel + 2])
            return 0.299 * red + 0.587 * green + 0.114 * blue
        }
    }

    private static func gaussianKernel() -> [Double] {
        let radius = ssimWindow / 2
        let weights = (-radius...radius).map { exp(-Double($0 * $0) / (2 * ssimSigma * ssimSigma)) }
        let sum = weights.reduce(0, +)
        return weights.map { $0 / sum }
    }

    /// The separable Gaussian filter at every window position wholly inside the image ("valid"), so the
    /// result is (width − 10) × (height − 10) and no border value is invented.
    private static func blur(_ values: [Double], _ width: Int, _ height: Int, _ kernel: [Double]) -> [Double] {
        let taps = kernel.count, outWidth = width - taps + 1, outHeight = height - taps + 1
        var horizontal = [Double](repeating: 0, count: outWidth * height)
        for row in 0..<height {
            for column in 0..<outWidth {
                var sum = 0.0
                for tap in 0..<taps { sum += kernel[tap] * values[row * width + column + tap] }
                horizontal[row * outWidth + column] = sum
            }
        }
        var result = [Double](repeating: 0, count: outWidth * outHeight)
        for row in 0..<outHeight {
            for column in 0..<outWidth {
                var sum = 0.0
                for tap in 0..<taps { sum += kernel[tap] * horizontal[(row + tap) * outWidth + column] }
                result[row * outWidth + column] = sum
            }
        }
        return result
    }
}
