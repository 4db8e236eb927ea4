public extension PixelBuffer {
    /// The buffer as it should be shown for an EXIF orientation (1–8); any other value is taken as 1.
    ///
    /// 2 mirrors left–right, 3 rotates 180°, 4 flips top–bottom, 5 transposes, 6 rotates 90° clockwise,
    /// 7 transverses (transposes across the other diagonal), 8 rotates 90° counter-clockwise. 5–8 swap
    /// width and height.
    func oriented(_ exifOrientation: Int) -> PixelBuffer {
        guard (2...8).contains(exifOrientation) else { return self }
        let walk = SourceWalk(orientation: exifOrientation, width: width, height: height)
        let swapsSides = exifOrientation >= 5
        let outWidth = swapsSides ? height : width, outHeight = swapsSides ? width : height
        let out = [UInt8](unsafeUninitializedCapacity: bytes.count) { buffer, initialized in
            bytes.withUnsafeBufferPointer { source in
                walk.copy(from: source, to: buffer, width: outWidth, height: outHeight, channels: channels)
            }
            initialized = buffer.count
        }
        return PixelBuffer(width: outWidth, height: outHeight, channels: channels, bytes: out)
    }
}

/// Where each output pixel comes from: the source pixel index of output (0, 0), and how that index moves
/// for one step right and one step down in the output.
private struct SourceWalk {
    var origin: Int
    var stepRight: Int
    var stepDown: Int

    init(orientation: Int, width w: Int, height h: Int) {
        let lastRow = (h - 1) * w, lastColumn = w - 1
        switch orientation {
        case 2: (origin, stepRight, stepDown) = (lastColumn, -1, w)
        case 3: (origin, stepRight, stepDown) = (lastRow + lastColumn, -1, -w)
        case 4: (origin, stepRight, stepDown) = (lastRow, 1, -w)
        case 5: (origin, stepRight, stepDown) = (0, w, 1)
        case 6: (origin, stepRight, stepDown) = (lastRow, -w, 1)
        case 7: (origin, stepRight, stepDown) = (lastRow + lastColumn, -w, -1)
        case 8: (origin, stepRight, stepDown) = (lastColumn, w, -1)
        default: (origin, stepRight, stepDown) = (0, 1, w)
        }
    }

    /// Fills `target` (output rows top to bottom) by walking the source; one pass, no per-pixel allocation.
    func copy(from source: UnsafeBufferPointer<UInt8>, to target: UnsafeMutableBufferPointer<UInt8>,
              width: Int, height: Int, channels: Int) {
        var written = 0
        for y in 0..<height {
            var pixel = origin + y * stepDown
            for _ in 0..<width {
                let from = pixel * channels
                for channel in 0..<channels { target[written + channel] = source[from + channel] }
                written += channels
                pixel += stepRight
            }
        }
    }
}
