import CPNG

/// Reads PNG files with libpng's simplified API, always into 8-bit RGB or grey.
///
/// The simplified API runs libpng's `setjmp` inside libpng and keeps warnings and errors in the
/// `png_image` structure, so nothing is printed and nothing jumps across Swift frames.
///
/// Choices: transparency is composited over white, since a photogrammetry photo has no use for alpha and
/// white matches how viewers show such images; 16-bit files without gamma information are taken as
/// sRGB-encoded (what photo editors write) rather than libpng's default of linear light. PNG has no
/// orientation field we read, so orientation is always 1.
public enum PNGCodec {
    /// The colour transparent pixels are composited over, in sRGB.
    static let background = (red: UInt8(255), green: UInt8(255), blue: UInt8(255))

    /// Decodes a PNG: 8-bit RGB, or grey when the file is grey and grey is allowed.
    public static func decode(_ data: UnsafeRawBufferPointer, file: String, options: DecodeOptions)
        throws(ImageIOError) -> DecodedImage {
        guard let base = data.baseAddress else { throw ImageIOError(file: file, reason: .corrupt("empty file")) }
        try checkDeclaredHeader(data, file: file, options: options)
        try checkEndChunk(data, file: file)

        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        defer { png_image_free(&image) }
        guard png_image_begin_read_from_memory(&image, base, data.count) != 0 else {
            throw failure(image, file: file)
        }
        let width = Int(image.width), height = Int(image.height)
        try checkPixelBudget(width: width, height: height, options: options, file: file)

        let isGrey = image.format & UInt32(PNG_FORMAT_FLAG_COLOR) == 0
        let channels = isGrey && options.allowGrey ? 1 : 3
        image.format = channels == 1 ? UInt32(PNG_FORMAT_GRAY) : UInt32(PNG_FORMAT_RGB)
        image.flags |= UInt32(PNG_IMAGE_FLAG_16BIT_sRGB)
        let pixels = try finishRead(&image, width: width, height: height, channels: channels, file: file)

        var metadata = ImageMetadata()
        metadata.storedWidth = width
        metadata.storedHeight = height
        return DecodedImage(pixels: pixels, format: .png, metadata: metadata)
    }

    // MARK: - Steps

    /// Checks the size IHDR declares (it must be the first chunk) before libpng reads further, so a file
    /// over the budget is refused as too large even where libpng's own width limit would call it damaged.
    private static func checkDeclaredHeader(_ data: UnsafeRawBufferPointer, file: String, options: DecodeOptions)
        throws(ImageIOError) {
        // Signature (8), chunk length (4), "IHDR" (4), then width and height.
        guard data.count >= 24, chunkType(data, at: 8) == "IHDR" else {
            throw ImageIOError(file: file, reason: .corrupt("the PNG does not start with an IHDR chunk"))
        }
        try checkPixelBudget(width: bigEndian(data, at: 16), height: bigEndian(data, at: 20), options: options,
                             file: file)
    }

    /// Walks the chunk lengths to a complete IEND. libpng's simplified reader stops after the image data,
    /// so without this a file cut after its last IDAT, or with a damaged IEND, would pass as whole.
    private static func checkEndChunk(_ data: UnsafeRawBufferPointer, file: String) throws(ImageIOError) {
        var offset = 8
        while offset + 12 <= data.count {
            let length = bigEndian(data, at: offset)
            guard length <= Int(Int32.max) else { break }
            if chunkType(data, at: offset) == "IEND" {
                // IEND is empty, so its CRC is always the same four bytes.
                let crc = [UInt8](UnsafeRawBufferPointer(rebasing: data[(offset + 8)..<(offset + 12)]))
                if length == 0 && crc == [0xAE, 0x42, 0x60, 0x82] { return }
                break
            }
            offset += 12 + length
        }
        throw ImageIOError(file: file, reason: .corrupt("the PNG is truncated or its IEND chunk is damaged"))
    }

    private static func bigEndian(_ data: UnsafeRawBufferPointer, at offset: Int) -> Int {
        (0..<4).reduce(0) { $0 << 8 | Int(data[offset + $1]) }
    }

    /// The four-letter type of the chunk whose length field starts at `offset`.
    private static func chunkType(_ data: UnsafeRawBufferPointer, at offset: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: data[(offset + 4)..<(offset + 8)]), as: UTF8.self)
    }

    private static func finishRead(_ image: inout png_image, width: Int, height: Int, channels: Int, file: String)
        throws(ImageIOError) -> PixelBuffer {
        var background = png_color(red: Self.background.red, green: Self.background.green,
                                   blue: Self.background.blue)
        var succeeded = false
        let bytes = [UInt8](unsafeUninitializedCapacity: width * height * channels) { buffer, initialized in
            succeeded = png_image_finish_read(&image, &background, buffer.baseAddress,
                                              Int32(width * channels), nil) != 0
            initialized = succeeded ? buffer.count : 0
        }
        guard succeeded else { throw failure(image, file: file) }
        return PixelBuffer(width: width, height: height, channels: channels, bytes: bytes)
    }

    /// libpng's message for the failure recorded in `image`.
    private static func failure(_ image: png_image, file: String) -> ImageIOError {
        var message = image.message
        let text = withUnsafeBytes(of: &message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return ImageIOError(file: file, reason: .corrupt(text.isEmpty ? "libpng could not read the image" : text))
    }
}
