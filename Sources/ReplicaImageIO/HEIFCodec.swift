import CHeif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads HEIF files (HEIC, AVIF, and the primary image of a `heifs` sequence) with libheif.
///
/// libheif applies the container's transformations (the `irot` rotation, `imir` mirror and `clap` crop)
/// while it decodes. The EXIF Orientation inside a HEIF only repeats them, and HEIF readers are meant to
/// ignore it, so this decoder reports orientation 1: taking the EXIF value as well would rotate twice.
///
/// libheif returns errors as values. A `heifs` sequence is read through its primary still image; libheif 1.15
/// reads no tracks, so a sequence without one is refused. Known shortcoming: Debian 12's HEVC decoder,
/// libde265 1.0.11, prints a few fixed lines ("SPS error: …") to stderr for malformed parameter sets and has
/// no switch for them; only redirecting the process's stderr, which every thread shares, would hide them.
/// Nothing reaches stdout.
///
/// The output is always RGB: libheif 1.15 cannot say whether an image is monochrome before decoding it, and
/// no camera writes grey HEIF, so `allowGrey` is not worth a second decode here.
public enum HEIFCodec {
    /// Decodes the primary image, with libheif's transformations applied (orientation 1), to 8-bit RGB.
    public static func decode(_ data: UnsafeRawBufferPointer, file: String, options: DecodeOptions)
        throws(ImageIOError) -> DecodedImage {
        guard let base = data.baseAddress, data.count > 0 else {
            throw ImageIOError(file: file, reason: .corrupt("empty file"))
        }
        _ = heifLibraryStarted
        guard let context = heif_context_alloc() else {
            throw ImageIOError(file: file, reason: .unsupported("libheif could not allocate a context"))
        }
        defer { heif_context_free(context) }
        heif_context_set_maximum_image_size_limit(context, sideLimit)
        try check(heif_context_read_from_memory_without_copy(context, base, data.count, nil), file: file)

        let handle = try primaryImage(context, file: file)
        defer { heif_image_handle_release(handle) }
        let width = Int(heif_image_handle_get_width(handle)), height = Int(heif_image_handle_get_height(handle))
        try checkPixelBudget(width: width, height: height, options: options, file: file)
        // The declared size passed the budget, but the coded stream may claim a far larger one (fuzzing found a
        // 32×24 image coding 224×65512). Tightening libheif's limit to the declared size plus a coding unit's
        // padding makes it refuse such a stream before decoding it.
        heif_context_set_maximum_image_size_limit(context, Int32(max(width, height) + codingPadding + 1))
        let image = try decodeRGB(handle, file: file)
        defer { heif_image_release(image) }

        let pixels = try copyInterleavedRGB(image, file: file)
        guard pixels.width == width, pixels.height == height else {
            throw ImageIOError(file: file, reason: .corrupt(
                "libheif decoded \(pixels.width)×\(pixels.height) for an image declared \(width)×\(height)"))
        }
        return DecodedImage(pixels: pixels, format: .heif, metadata: metadata(handle, pixels))
    }

    // MARK: - Steps

    /// The libheif plugin that decodes AV1 without printing.
    static let quietAV1DecoderID = "aom"

    /// libheif refuses, while it parses the container, an image whose side is at or above this many pixels:
    /// one more than the longest side `checkPixelBudget` ever accepts. A tighter limit taken from the budget
    /// would make libheif refuse some over-budget images first, as damage and without their size; this way
    /// every size within reach gets the exact check, with the real size in its message.
    static let sideLimit = Int32((1 << 20) + 1)

    /// Pixels a coded picture may exceed its declared side by: HEVC and AV1 code whole blocks of up to 64 pixels
    /// and crop the rest.
    static let codingPadding = 64

    private static func primaryImage(_ context: OpaquePointer, file: String) throws(ImageIOError) -> OpaquePointer {
        var handle: OpaquePointer?
        try check(heif_context_get_primary_image_handle(context, &handle), file: file)
        guard let handle else { throw ImageIOError(file: file, reason: .corrupt("libheif: no primary image")) }
        return handle
    }

    /// Decodes to interleaved 8-bit RGB; HDR (10- or 12-bit) images are converted to 8 bits by libheif.
    private static func decodeRGB(_ handle: OpaquePointer, file: String) throws(ImageIOError) -> OpaquePointer {
        guard let decoding = heif_decoding_options_alloc() else {
            throw ImageIOError(file: file, reason: .unsupported("libheif could not allocate decoding options"))
        }
        defer { heif_decoding_options_free(decoding) }
        decoding.pointee.convert_hdr_to_8bit = 1
        var image: OpaquePointer?
        // libaom rather than dav1d for AV1: libheif gives dav1d no logger, so dav1d prints its complaints about
        // damaged data to stderr; libaom only returns them. libheif ignores the choice for other codecs.
        let error = quietAV1DecoderID.withCString { decoder in
            decoding.pointee.decoder_id = decoder
            return heif_decode_image(handle, &image, heif_colorspace_RGB, heif_chroma_interleaved_RGB, decoding)
        }
        try check(error, file: file)
        guard let image else { throw ImageIOError(file: file, reason: .corrupt("libheif returned no image")) }
        return image
    }

    /// Copies the rows out of libheif's plane, whose stride may be wider than the row.
    private static func copyInterleavedRGB(_ image: OpaquePointer, file: String) throws(ImageIOError)
        -> PixelBuffer {
        let width = Int(heif_image_get_width(image, heif_channel_interleaved))
        let height = Int(heif_image_get_height(image, heif_channel_interleaved))
        var stride: Int32 = 0
        guard width > 0, height > 0, heif_image_get_bits_per_pixel(image, heif_channel_interleaved) == 24,
              let plane = heif_image_get_plane_readonly(image, heif_channel_interleaved, &stride),
              Int(stride) >= width * 3 else {
            throw ImageIOError(file: file, reason: .corrupt("libheif returned no 8-bit RGB plane"))
        }
        let rowBytes = width * 3
        var bytes = [UInt8](repeating: 0, count: rowBytes * height)
        bytes.withUnsafeMutableBytes { out in
            for row in 0..<height {
                memcpy(out.baseAddress! + row * rowBytes, plane + row * Int(stride), rowBytes)
            }
        }
        return PixelBuffer(width: width, height: height, channels: 3, bytes: bytes)
    }

    /// Camera and focal lengths from the first Exif block; the orientation is 1 because libheif has applied
    /// the container's own (see the type's comment), and the stored size is the decoded one for the same reason.
    private static func metadata(_ handle: OpaquePointer, _ pixels: PixelBuffer) -> ImageMetadata {
        var metadata = exifBlock(handle).map { block in block.withUnsafeBytes { ExifReader.read($0) } }
            ?? ImageMetadata()
        metadata.orientation = 1
        metadata.storedWidth = pixels.width
        metadata.storedHeight = pixels.height
        return metadata
    }

    /// The first "Exif" metadata block as stored: a four-byte big-endian offset to the TIFF header, then the
    /// EXIF data, a form `ExifReader.read` understands. Nil when absent, unreadable or implausibly large.
    private static func exifBlock(_ handle: OpaquePointer) -> [UInt8]? {
        guard heif_image_handle_get_number_of_metadata_blocks(handle, "Exif") > 0 else { return nil }
        var id: heif_item_id = 0
        guard heif_image_handle_get_list_of_metadata_block_IDs(handle, "Exif", &id, 1) == 1 else { return nil }
        let size = heif_image_handle_get_metadata_size(handle, id)
        guard size > 4, size <= ExifReader.maximumBlockBytes else { return nil }
        var block = [UInt8](repeating: 0, count: size)
        let error = block.withUnsafeMutableBytes { heif_image_handle_get_metadata(handle, id, $0.baseAddress) }
        return error.code == heif_error_Ok ? block : nil
    }

    /// Throws libheif's error as ours: a missing codec is unsupported, everything else is damage.
    private static func check(_ error: heif_error, file: String) throws(ImageIOError) {
        guard error.code != heif_error_Ok else { return }
        let message = error.message.map { String(cString: $0) } ?? "unknown error"
        if error.code == heif_error_Unsupported_feature && error.subcode == heif_suberror_Unsupported_codec {
            throw ImageIOError(file: file, reason: .unsupported("libheif has no decoder for this image: \(message)"))
        }
        throw ImageIOError(file: file, reason: .corrupt("libheif: \(message)"))
    }
}

/// libheif registers its codec plugins in `heif_init`; called once for the process and never undone, since
/// decoding may happen on any thread at any time.
private let heifLibraryStarted: Void = {
    _ = heif_init(nil)
}()
