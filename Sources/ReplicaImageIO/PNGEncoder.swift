import CPNG

/// Writes 8-bit grey or RGB PNG files with libpng's simplified writer.
///
/// The simplified API keeps libpng's `setjmp` inside libpng and reports failure in the `png_image`, so no
/// shim is needed and nothing jumps across Swift frames.
public enum PNGEncoder {
    /// The name errors carry, since an encoded image has no file name yet.
    static let errorName = "PNG encoder"

    /// The buffer as a PNG file, losslessly.
    public static func encode(_ pixels: PixelBuffer) throws(ImageIOError) -> [UInt8] {
        guard pixels.width > 0, pixels.height > 0, pixels.width <= 1 << 20, pixels.height <= 1 << 20 else {
            throw ImageIOError(file: errorName, reason: .unsupported(
                "a PNG holds 1 to 2^20 pixels a side here, not \(pixels.width)×\(pixels.height)"))
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(pixels.width)
        image.height = UInt32(pixels.height)
        image.format = pixels.channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        defer { png_image_free(&image) }
        // withUnsafeBytes only rethrows untyped errors, so the typed one travels out in a Result.
        return try pixels.bytes.withUnsafeBytes { source in
            Result { () throws(ImageIOError) in
                try write(&image, source.baseAddress!, rowBytes: pixels.width * pixels.channels)
            }
        }.get()
    }

    /// Asks libpng for the size first, then writes into a buffer of that size.
    private static func write(_ image: inout png_image, _ source: UnsafeRawPointer, rowBytes: Int)
        throws(ImageIOError) -> [UInt8] {
        var size = 0
        guard png_image_write_to_memory(&image, nil, &size, 0, source, Int32(rowBytes), nil) != 0, size > 0 else {
            throw failure(image)
        }
        var file = [UInt8](repeating: 0, count: size)
        let status = file.withUnsafeMutableBytes { target in
            png_image_write_to_memory(&image, target.baseAddress, &size, 0, source, Int32(rowBytes), nil)
        }
        guard status != 0 else { throw failure(image) }
        return Array(file[0..<size])
    }

    private static func failure(_ image: png_image) -> ImageIOError {
        var message = image.message
        let text = withUnsafeBytes(of: &message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return ImageIOError(file: errorName, reason: .unsupported(
            "libpng could not write the image: \(text.isEmpty ? "no reason given" : text)"))
    }
}
