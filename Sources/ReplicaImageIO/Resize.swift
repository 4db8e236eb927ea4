#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `resized` computes each output pixel from the source.
public enum ResizeFilter: Sendable, Equatable {
    /// The mean of the source area the output pixel covers, partial pixels at its edges weighted by how much
    /// of them it covers. The right filter for shrinking: no aliasing, no ringing.
    case area
    /// Lanczos windowed sinc with three lobes, widened by the shrink factor when shrinking; sharper, with a
    /// little ringing. Samples beyond the edges repeat the edge pixel, and results are clamped to 0–255.
    case lanczos3
}

public extension PixelBuffer {
    /// The buffer scaled to `width` × `height` pixels (both at least 1) with `filter`.
    ///
    /// Separable: each row is filtered horizontally into a float buffer, then output rows are weighted sums
    /// of whole intermediate rows, so both passes run over contiguous memory with precomputed weights.
    func resized(width newWidth: Int, height newHeight: Int, filter: ResizeFilter = .area) -> PixelBuffer {
        precondition(newWidth > 0 && newHeight > 0, "a resized image needs at least one pixel")
        precondition(width > 0 && height > 0, "an empty image cannot be resized")
        if newWidth == width && newHeight == height { return self }
        let columns = ResizeWeights(filter: filter, sourceSize: width, targetSize: newWidth)
        let rows = ResizeWeights(filter: filter, sourceSize: height, targetSize: newHeight)
        let intermediate = filterRows(columns)
        let out = filterColumns(intermediate, rows, width: newWidth)
        return PixelBuffer(width: newWidth, height: newHeight, channels: channels, bytes: out)
    }

    /// The buffer shrunk with the area filter so its longer side is `longestSide` pixels, keeping the aspect
    /// ratio (the shorter side rounded, at least 1); returned unchanged when it is already that small.
    func fitted(longestSide: Int) -> PixelBuffer {
        precondition(longestSide > 0, "the longest side must be at least one pixel")
        guard self.longestSide > longestSide else { return self }
        let scale = Double(longestSide) / Double(self.longestSide)
        let shorter = { (side: Int) in max(1, Int((Double(side) * scale).rounded())) }
        let size = width >= height ? (longestSide, shorter(height)) : (shorter(width), longestSide)
        return resized(width: size.0, height: size.1, filter: .area)
    }

    /// Horizontal pass: every source row filtered to the new width, as floats (height × newWidth × channels).
    private func filterRows(_ weights: ResizeWeights) -> [Float] {
        let rowLength = weights.targetSize * channels
        return [Float](unsafeUninitializedCapacity: height * rowLength) { out, initialized in
            bytes.withUnsafeBufferPointer { source in
                weights.withTable { table in
                    for y in 0..<height {
                        table.filterRow(source.baseAddress! + y * width * channels,
                                        into: out.baseAddress! + y * rowLength, channels: channels)
                    }
                }
            }
            initialized = out.count
        }
    }

    /// Vertical pass: each output row is the weighted sum of whole intermediate rows, rounded and clamped.
    private func filterColumns(_ intermediate: [Float], _ weights: ResizeWeights, width newWidth: Int) -> [UInt8] {
        let rowLength = newWidth * channels
        var sum = [Float](repeating: 0, count: rowLength)
        return [UInt8](unsafeUninitializedCapacity: weights.targetSize * rowLength) { out, initialized in
            intermediate.withUnsafeBufferPointer { rows in
                sum.withUnsafeMutableBufferPointer { sum in
                    weights.withTable { table in
                        for y in 0..<weights.targetSize {
                            table.sumRows(rows.baseAddress!, rowLength: rowLength, for: y, into: sum.baseAddress!)
                            storeRounded(sum.baseAddress!, count: rowLength, into: out.baseAddress! + y * rowLength)
                        }
                    }
                }
            }
            initialized = out.count
        }
    }
}

/// Floats to bytes: rounded to nearest, clamped to 0–255 (Lanczos can overshoot both ways).
private func storeRounded(_ values: UnsafePointer<Float>, count: Int, into target: UnsafeMutablePointer<UInt8>) {
    for index in 0..<count {
        target[index] = UInt8(min(max(values[index] + 0.5, 0), 255))
    }
}

/// For each output position along one axis, the contiguous run of source positions it draws from and their
/// weights, which sum to 1. Edge handling is folded in: taps beyond the image land on the edge pixel.
struct ResizeWeights {
    let targetSize: Int
    /// First source position for each output position.
    private(set) var firsts: [Int] = []
    /// Where each output position's weights start in `weights`; one extra entry closes the last run.
    private(set) var offsets: [Int] = [0]
    private(set) var weights: [Float] = []

    init(filter: ResizeFilter, sourceSize: Int, targetSize: Int) {
        self.targetSize = targetSize
        let scale = Double(sourceSize) / Double(targetSize)
        firsts.reserveCapacity(targetSize)
        offsets.reserveCapacity(targetSize + 1)
        for position in 0..<targetSize {
            let taps: (first: Int, weights: [Double])
            switch filter {
            case .area: taps = Self.areaTaps(position, scale: scale, sourceSize: sourceSize)
            case .lanczos3: taps = Self.lanczosTaps(position, scale: scale, sourceSize: sourceSize)
            }
            let total = taps.weights.reduce(0, +)
            firsts.append(taps.first)
            weights += taps.weights.map { Float($0 / total) }
            offsets.append(weights.count)
        }
    }

    /// The source interval [position·scale, (position+1)·scale) in pixels, each pixel weighted by its overlap.
    static func areaTaps(_ position: Int, scale: Double, sourceSize: Int) -> (first: Int, weights: [Double]) {
        let start = Double(position) * scale, end = min(Double(position + 1) * scale, Double(sourceSize))
        let first = min(Int(start), sourceSize - 1)
        let last = max(first, min(Int((end - 1e-9).rounded(.down)), sourceSize - 1))
        let weights = (first...last).map { index in
            max(0, min(end, Double(index + 1)) - max(start, Double(index)))
        }
        // An output pixel narrower than a source pixel may overlap nothing measurable; take the nearest.
        return weights.reduce(0, +) > 0 ? (first, weights) : (first, [1])
    }

    /// Lanczos-3 centred on the output pixel's centre, stretched by the shrink factor when shrinking.
    static func lanczosTaps(_ position: Int, scale: Double, sourceSize: Int) -> (first: Int, weights: [Double]) {
        let stretch = max(scale, 1), support = 3 * stretch
        let centre = (Double(position) + 0.5) * scale
        let lowest = Int((centre - support).rounded(.down)), highest = Int((centre + support).rounded(.up))
        let first = max(0, min(lowest, sourceSize - 1)), last = min(sourceSize - 1, max(highest, 0))
        var weights = [Double](repeating: 0, count: last - first + 1)
        for index in lowest...highest {
            let weight = lanczos3((Double(index) + 0.5 - centre) / stretch)
            weights[min(max(index, first), last) - first] += weight
        }
        return (first, weights)
    }

    /// sinc(x)·sinc(x/3) for |x| < 3, else 0.
    static func lanczos3(_ x: Double) -> Double {
        let distance = abs(x)
        guard distance < 3 else { return 0 }
        guard distance > 1e-12 else { return 1 }
        let pix = Double.pi * distance
        return 3 * sin(pix) * sin(pix / 3) / (pix * pix)
    }

    /// Runs `body` with the weights as raw pointers, so the per-pixel loops carry no bounds checks.
    func withTable<R>(_ body: (Table) -> R) -> R {
        firsts.withUnsafeBufferPointer { firsts in
            offsets.withUnsafeBufferPointer { offsets in
                weights.withUnsafeBufferPointer { weights in
                    body(Table(count: targetSize, firsts: firsts.baseAddress!, offsets: offsets.baseAddress!,
                               weights: weights.baseAddress!))
                }
            }
        }
    }

    /// The weights, borrowed as pointers for the duration of one pass.
    struct Table {
        let count: Int
        let firsts: UnsafePointer<Int>
        let offsets: UnsafePointer<Int>
        let weights: UnsafePointer<Float>

        /// One row, horizontally: each output pixel's channels are the weighted sums of its source run.
        func filterRow(_ source: UnsafePointer<UInt8>, into target: UnsafeMutablePointer<Float>, channels: Int) {
            if channels == 3 { return filterRGBRow(source, into: target) }
            for position in 0..<count {
                var sum: Float = 0
                let run = source + firsts[position] * channels
                for tap in offsets[position]..<offsets[position + 1] {
                    sum += weights[tap] * Float(run[(tap - offsets[position]) * channels])
                }
                target[position * channels] = sum
            }
        }

        /// The three-channel case with the channels unrolled, since it is the common one.
        private func filterRGBRow(_ source: UnsafePointer<UInt8>, into target: UnsafeMutablePointer<Float>) {
            for position in 0..<count {
                var red: Float = 0, green: Float = 0, blue: Float = 0
                var pixel = source + firsts[position] * 3
                for tap in offsets[position]..<offsets[position + 1] {
                    let weight = weights[tap]
                    red += weight * Float(pixel[0])
                    green += weight * Float(pixel[1])
                    blue += weight * Float(pixel[2])
                    pixel += 3
                }
                (target[position * 3], target[position * 3 + 1], target[position * 3 + 2]) = (red, green, blue)
            }
        }

        /// One output row, vertically: the weighted sum of the whole source rows in `position`'s run.
        func sumRows(_ rows: UnsafePointer<Float>, rowLength: Int, for position: Int,
                     into sum: UnsafeMutablePointer<Float>) {
            sum.update(repeating: 0, count: rowLength)
            for tap in offsets[position]..<offsets[position + 1] {
                let weight = weights[tap]
                let row = rows + (firsts[position] + tap - offsets[position]) * rowLength
                for index in 0..<rowLength { sum[index] += weight * row[index] }
            }
        }
    }
}
