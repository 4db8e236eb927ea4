import CLibRaw

/// Reads camera raw files (DNG, CR2, CR3, NEF, ARW, ORF, RW2, RAF, …) with LibRaw's C interface.
///
/// A full decode demosaics the sensor data with the white balance the camera recorded, to sRGB, and
/// LibRaw turns the image the right way up itself, so orientation 1 is reported. When the caller only needs
/// a smaller image (`minimumLongestSide`), the embedded preview is used if it is large enough; it is stored
/// unrotated, so the raw's own rotation is then reported as an EXIF orientation for the caller to apply.
///
/// LibRaw is C++ inside, but its C functions catch their exceptions and return error codes; its default
/// callbacks, which print to stderr, are left out when the handle is made.
public enum RawCodec {
    /// Decodes a camera raw to 8-bit RGB, or its embedded preview when that is at least `minimumLongestSide`.
    public static func decode(_ data: UnsafeRawBufferPointer, file: String, options: DecodeOptions)
        throws(ImageIOError) -> DecodedImage {
        guard let base = data.baseAddress, data.count > 0 else {
            throw ImageIOError(file: file, reason: .corrupt("empty file"))
        }
        guard !namesHasselblad(data) else {
            throw ImageIOError(file: file, reason: .unsupported(
                "Hasselblad raw files are refused: the LibRaw in Debian 12 can crash on them"))
        }
        let raw = try open(base, count: data.count, file: file)
        defer { libraw_close(raw) }
        let identity = RawIdentity(raw)
        try checkPixelBudget(width: identity.rawWidth, height: identity.rawHeight, options: options, file: file)
        try checkPixelBudget(width: identity.width, height: identity.height, options: options, file: file)

        if let minimum = options.minimumLongestSide,
           let preview = embeddedPreview(raw, atLeast: minimum, file: file, options: options) {
            return identity.describing(preview, turnedByLibRaw: false)
        }
        return identity.describing(try develop(raw, file: file, options: options), turnedByLibRaw: true)
    }

    /// The EXIF orientation that shows an image stored as LibRaw's `sizes.flip` describes the right way up.
    /// LibRaw's flip is dcraw's bit set (1: mirror columns, 2: flip rows, 4: transpose), which it derives from
    /// the TIFF orientation by the table "50132467"; this is that table's inverse.
    static func exifOrientation(libRawFlip flip: Int) -> Int {
        [1, 2, 4, 3, 5, 8, 6, 7][flip & 7]
    }

    /// Whether the camera maker's name appears in the file's first bytes, in any case.
    ///
    /// LibRaw 0.20.2 (Debian 12) overflows a fixed buffer while normalising a Hasselblad model name that is not
    /// terminated, and glibc's fortified `strcat` then aborts the whole process, with no error to catch (found
    /// by `Fuzz/run`, reproducer in the fuzz corpus history). Refusing every file that names the maker, wherever
    /// in its headers, closes the path LibRaw takes to that code. The lasting fix is to decode raws in a worker
    /// process, where a crash of the library costs one task instead of the server.
    static func namesHasselblad(_ data: UnsafeRawBufferPointer) -> Bool {
        let needle = Array("hasselblad".utf8)
        let end = min(data.count, 4 << 20) - needle.count
        guard end >= 0 else { return false }
        var index = 0
        while index <= end {
            var matched = 0
            while matched < needle.count && data[index + matched] | 0x20 == needle[matched] { matched += 1 }
            if matched == needle.count { return true }
            index += 1
        }
        return false
    }

    // MARK: - Steps

    /// A LibRaw handle on the bytes, identified (sizes, camera and preview known), nothing unpacked yet.
    private static func open(_ base: UnsafeRawPointer, count: Int, file: String) throws(ImageIOError)
        -> UnsafeMutablePointer<libraw_data_t> {
        let silent = LIBRAW_OPIONS_NO_MEMERR_CALLBACK.rawValue | LIBRAW_OPIONS_NO_DATAERR_CALLBACK.rawValue
        guard let raw = libraw_init(UInt32(silent)) else {
            throw ImageIOError(file: file, reason: .unsupported("LibRaw could not allocate a decoder"))
        }
        // LibRaw only reads the buffer; its C interface simply does not say const.
        let status = libraw_open_buffer(raw, UnsafeMutableRawPointer(mutating: base), count)
        guard status == LIBRAW_SUCCESS.rawValue else {
            defer { libraw_close(raw) }
            throw failure(status, file: file)
        }
        return raw
    }

    /// The camera's preview when it is a JPEG or bitmap whose longest side reaches `minimum`; nil otherwise,
    /// including when it is missing or damaged, so the caller falls back to a full decode.
    private static func embeddedPreview(_ raw: UnsafeMutablePointer<libraw_data_t>, atLeast minimum: Int,
                                        file: String, options: DecodeOptions) -> DecodedImage? {
        guard libraw_unpack_thumb(raw) == LIBRAW_SUCCESS.rawValue else { return nil }
        let thumbnail = raw.pointee.thumbnail
        guard let bytes = thumbnail.thumb, thumbnail.tlength > 0 else { return nil }
        let preview = UnsafeRawBufferPointer(start: bytes, count: Int(thumbnail.tlength))
        switch thumbnail.tformat {
        case LIBRAW_THUMBNAIL_JPEG: return previewJPEG(preview, atLeast: minimum, file: file, options: options)
        case LIBRAW_THUMBNAIL_BITMAP: return previewBitmap(raw, atLeast: minimum, options: options)
        default: return nil
        }
    }

    /// The preview's size comes from its own frame header: LibRaw's recorded size is missing for some cameras.
    private static func previewJPEG(_ jpeg: UnsafeRawBufferPointer, atLeast minimum: Int, file: String,
                                    options: DecodeOptions) -> DecodedImage? {
        guard let frame = JPEGSegments.frameSize(jpeg), max(frame.width, frame.height) >= minimum else { return nil }
        return try? JPEGCodec.decode(jpeg, file: file, options: options)
    }

    /// An uncompressed 8-bit RGB preview, as LibRaw lays it out in memory.
    private static func previewBitmap(_ raw: UnsafeMutablePointer<libraw_data_t>, atLeast minimum: Int,
                                      options: DecodeOptions) -> DecodedImage? {
        let thumbnail = raw.pointee.thumbnail
        guard max(Int(thumbnail.twidth), Int(thumbnail.theight)) >= minimum else { return nil }
        var status: Int32 = 0
        guard let image = libraw_dcraw_make_mem_thumb(raw, &status) else { return nil }
        defer { libraw_dcraw_clear_mem(image) }
        guard let pixels = pixelBuffer(image, allowGrey: options.allowGrey) else { return nil }
        return DecodedImage(pixels: pixels, format: .raw, metadata: ImageMetadata())
    }

    /// Unpacks and demosaics the sensor data: camera white balance, sRGB, 8 bits, at half size when that
    /// still meets `minimumLongestSide`. The brightness is the recorded exposure, not stretched per photo
    /// (LibRaw's default would brighten each file by its own histogram), so a set of photos stays consistent.
    private static func develop(_ raw: UnsafeMutablePointer<libraw_data_t>, file: String, options: DecodeOptions)
        throws(ImageIOError) -> DecodedImage {
        let sizes = raw.pointee.sizes
        raw.pointee.params.output_bps = 8
        raw.pointee.params.use_camera_wb = 1
        raw.pointee.params.no_auto_bright = 1
        if let minimum = options.minimumLongestSide, max(Int(sizes.width), Int(sizes.height)) / 2 >= minimum {
            raw.pointee.params.half_size = 1
        }
        try check(libraw_unpack(raw), file: file)
        try check(libraw_dcraw_process(raw), file: file)
        var status: Int32 = 0
        guard let image = libraw_dcraw_make_mem_image(raw, &status) else { throw failure(status, file: file) }
        defer { libraw_dcraw_clear_mem(image) }
        guard let pixels = pixelBuffer(image, allowGrey: options.allowGrey) else {
            throw ImageIOError(file: file, reason: .corrupt("LibRaw produced no 8-bit bitmap"))
        }
        return DecodedImage(pixels: pixels, format: .raw, metadata: ImageMetadata())
    }

    /// Copies an 8-bit, one- or three-colour bitmap from LibRaw; nil for any other kind.
    private static func pixelBuffer(_ image: UnsafeMutablePointer<libraw_processed_image_t>, allowGrey: Bool)
        -> PixelBuffer? {
        let header = image.pointee
        let (width, height, colors) = (Int(header.width), Int(header.height), Int(header.colors))
        guard header.type == LIBRAW_IMAGE_BITMAP, header.bits == 8, colors == 1 || colors == 3,
              width > 0, height > 0, Int(header.data_size) >= width * height * colors else { return nil }
        let source = UnsafeBufferPointer(start: replica_libraw_image_bytes(image), count: width * height * colors)
        if colors == 3 || allowGrey {
            return PixelBuffer(width: width, height: height, channels: colors, bytes: Array(source))
        }
        // A monochrome camera's image, widened to RGB by repeating its one sample.
        return PixelBuffer(width: width, height: height, channels: 3, bytes: source.flatMap { [$0, $0, $0] })
    }

    private static func check(_ status: Int32, file: String) throws(ImageIOError) {
        guard status == LIBRAW_SUCCESS.rawValue else { throw failure(status, file: file) }
    }

    /// LibRaw's reason as damage, except its own memory ceiling (LIBRAW_MAX_ALLOC_MB, 2 GiB in Debian's
    /// build), which a raw within our pixel budget can still exceed: that file is valid, just not for LibRaw.
    private static func failure(_ status: Int32, file: String) -> ImageIOError {
        let message = libraw_strerror(status).map { String(cString: $0) } ?? "error \(status)"
        if status == LIBRAW_TOO_BIG.rawValue {
            return ImageIOError(file: file, reason: .unsupported("LibRaw: \(message) (over its memory limit)"))
        }
        return ImageIOError(file: file, reason: .corrupt("LibRaw: \(message)"))
    }
}

/// What LibRaw identified when it opened the file, read before development changes any of it (a half-size
/// decode halves `sizes`).
private struct RawIdentity {
    var rawWidth: Int
    var rawHeight: Int
    /// The developed image's full size, before LibRaw turns it.
    var width: Int
    var height: Int
    var flip: Int
    var make: String?
    var model: String?
    var focalLength: Double?
    var focalLength35mm: Double?

    init(_ raw: UnsafeMutablePointer<libraw_data_t>) {
        let sizes = raw.pointee.sizes
        (rawWidth, rawHeight) = (Int(sizes.raw_width), Int(sizes.raw_height))
        (width, height, flip) = (Int(sizes.width), Int(sizes.height), Int(sizes.flip))
        make = trimmedTagText(String(cString: replica_libraw_make(raw)))
        model = trimmedTagText(String(cString: replica_libraw_model(raw)))
        let focal = Double(raw.pointee.other.focal_len)
        focalLength = focal.isFinite && focal > 0 ? focal : nil
        let focal35 = Double(raw.pointee.lens.FocalLengthIn35mmFormat)
        focalLength35mm = focal35 > 0 ? focal35 : nil
    }

    /// The decoded pixels with the raw's metadata. LibRaw turns what it develops, so that reports orientation
    /// 1 and the full size in the turned frame; a preview is as on the sensor and reports the raw's rotation.
    func describing(_ decoded: DecodedImage, turnedByLibRaw: Bool) -> DecodedImage {
        var metadata = ImageMetadata()
        metadata.make = make
        metadata.model = model
        metadata.focalLengthMillimetres = focalLength
        metadata.focalLength35mmMillimetres = focalLength35mm
        metadata.orientation = turnedByLibRaw ? 1 : RawCodec.exifOrientation(libRawFlip: flip)
        let swapsSides = turnedByLibRaw && flip & 4 != 0
        metadata.storedWidth = swapsSides ? height : width
        metadata.storedHeight = swapsSides ? width : height
        return DecodedImage(pixels: decoded.pixels, format: .raw, metadata: metadata)
    }
}
