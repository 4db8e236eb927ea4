import CTurboJPEG

/// Writes JPEG files with TurboJPEG: 4:2:0 chroma subsampling for RGB, a single channel for grey.
public enum JPEGEncoder {
    /// The name errors carry, since an encoded image has no file name yet.
    static let errorName = "JPEG encoder"

    /// The buffer as a baseline JPEG file at `quality` (1–100, libjpeg's scale).
    public static func encode(_ pixels: PixelBuffer, quality: Int) throws(ImageIOError) -> [UInt8] {
        guard (1...100).contains(quality) else {
            throw ImageIOError(file: errorName, reason: .unsupported("JPEG quality \(quality) is not within 1–100"))
        }
        guard pixels.width > 0, pixels.height > 0, pixels.width <= 65_500, pixels.height <= 65_500 else {
            throw ImageIOError(file: errorName, reason: .unsupported(
                "a JPEG holds 1 to 65,500 pixels a side, not \(pixels.width)×\(pixels.height)"))
        }
        guard let handle = tjInitCompress() else {
            throw ImageIOError(file: errorName, reason: .unsupported("TurboJPEG could not start a compressor"))
        }
        defer { tjDestroy(handle) }
        return try compress(handle, pixels, quality: quality)
    }

    /// Runs the compressor into a buffer TurboJPEG allocates, and copies the result out.
    private static func compress(_ handle: tjhandle, _ pixels: PixelBuffer, quality: Int)
        throws(ImageIOError) -> [UInt8] {
        let isGrey = pixels.channels == 1
        let format = isGrey ? TJPF_GRAY : TJPF_RGB
        let subsampling = isGrey ? TJSAMP_GRAY : TJSAMP_420
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        defer { tjFree(output) }
        let status = pixels.bytes.withUnsafeBufferPointer { source in
            tjCompress2(handle, source.baseAddress, Int32(pixels.width), Int32(pixels.width * pixels.channels),
                        Int32(pixels.height), Int32(format.rawValue), &output, &size,
                        Int32(subsampling.rawValue), Int32(quality), 0)
        }
        guard status == 0, let output else {
            let message = tjGetErrorStr2(handle).map { String(cString: $0) } ?? "unknown TurboJPEG error"
            throw ImageIOError(file: errorName, reason: .unsupported("TurboJPEG could not compress: \(message)"))
        }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }
}
