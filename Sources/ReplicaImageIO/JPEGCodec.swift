import CTurboJPEG

/// Reads JPEG files with TurboJPEG, at a reduced DCT scale when the caller needs only a smaller image.
///
/// TurboJPEG keeps libjpeg's `setjmp`/`longjmp` inside its own C frames and formats messages into a buffer
/// instead of printing them, so nothing here needs a C error handler of its own. Warnings (a truncated scan,
/// bad entropy data) stop the decode and are reported as damage: a photo with a grey band where data was
/// missing would quietly spoil a reconstruction. The one warning forgiven is junk between the last scan and
/// the end-of-image marker, which some cameras write and which comes after every pixel has been read.
public enum JPEGCodec {
    /// Decodes a JPEG: pixels as stored (its EXIF orientation is left in the metadata), RGB or grey per options.
    public static func decode(_ data: UnsafeRawBufferPointer, file: String, options: DecodeOptions)
        throws(ImageIOError) -> DecodedImage {
        guard let base = data.baseAddress, data.count >= 4 else {
            throw ImageIOError(file: file, reason: .corrupt("too short to be a JPEG"))
        }
        try checkDeclaredFrame(data, file: file, options: options)
        guard let handle = tjInitDecompress() else {
            throw ImageIOError(file: file, reason: .unsupported("TurboJPEG could not start a decompressor"))
        }
        defer { tjDestroy(handle) }

        let header = try readHeader(handle, base, data.count, file: file)
        try checkPixelBudget(width: header.width, height: header.height, options: options, file: file)
        let channels = try outputChannels(colorspace: header.colorspace, options: options, file: file)
        let size = scaledSize(width: header.width, height: header.height,
                              minimumLongestSide: options.minimumLongestSide)
        let pixels = try decompress(handle, base, data.count, width: size.width, height: size.height,
                                    channels: channels, file: file)

        var metadata = ExifReader.readJPEG(data)
        metadata.storedWidth = header.width
        metadata.storedHeight = header.height
        return DecodedImage(pixels: pixels, format: .jpeg, metadata: metadata)
    }

    /// The smallest size TurboJPEG can decode to whose longest side is still at least `minimumLongestSide`
    /// pixels; the full size when no minimum is given or no reduction keeps the image that large.
    static func scaledSize(width: Int, height: Int, minimumLongestSide: Int?) -> (width: Int, height: Int) {
        guard let minimum = minimumLongestSide else { return (width, height) }
        var best = (width: width, height: height)
        for factor in reducingScalingFactors() {
            let candidate = (width: scaled(width, factor), height: scaled(height, factor))
            if max(candidate.width, candidate.height) >= minimum,
               max(candidate.width, candidate.height) < max(best.width, best.height) {
                best = candidate
            }
        }
        return best
    }

    // MARK: - Steps

    /// What the header declares: full size and colour space.
    private struct Header {
        var width: Int
        var height: Int
        var colorspace: Int32
    }

    /// Rejects a frame whose declared size is over the budget before TurboJPEG sees it. TurboJPEG refuses
    /// sides over 65,500 pixels as an error of its own, which would otherwise read as damage, not as size.
    private static func checkDeclaredFrame(_ data: UnsafeRawBufferPointer, file: String, options: DecodeOptions)
        throws(ImageIOError) {
        guard let frame = JPEGSegments.frameSize(data) else { return }
        try checkPixelBudget(width: frame.width, height: frame.height, options: options, file: file)
    }

    private static func readHeader(_ handle: tjhandle, _ base: UnsafeRawPointer, _ count: Int, file: String)
        throws(ImageIOError) -> Header {
        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let status = tjDecompressHeader3(handle, base.assumingMemoryBound(to: UInt8.self), UInt(count),
                                         &width, &height, &subsampling, &colorspace)
        guard status == 0 else { throw failure(handle, file: file) }
        // TurboJPEG reports a tables-only stream, which is also what a file cut before its frame looks like,
        // as success with no size.
        guard width > 0, height > 0 else {
            throw ImageIOError(file: file, reason: .corrupt("the JPEG data holds no image frame"))
        }
        return Header(width: Int(width), height: Int(height), colorspace: colorspace)
    }

    /// 1 for a grey JPEG when grey is allowed, otherwise 3; CMYK is refused because its inks need a colour
    /// profile to become RGB, and guessing one would give wrong colours without saying so.
    private static func outputChannels(colorspace: Int32, options: DecodeOptions, file: String)
        throws(ImageIOError) -> Int {
        switch colorspace {
        case Int32(TJCS_CMYK.rawValue), Int32(TJCS_YCCK.rawValue):
            throw ImageIOError(file: file, reason: .unsupported(
                "CMYK JPEGs are not supported; save the photo as an RGB JPEG"))
        case Int32(TJCS_GRAY.rawValue):
            return options.allowGrey ? 1 : 3
        default:
            return 3
        }
    }

    private static func decompress(_ handle: tjhandle, _ base: UnsafeRawPointer, _ count: Int,
                                   width: Int, height: Int, channels: Int, file: String)
        throws(ImageIOError) -> PixelBuffer {
        let run = { (flags: Int32) in
            runDecompressor(handle, base, count, width: width, height: height, channels: channels, flags: flags)
        }
        // Limit progressive scans so a file of thousands of tiny scans cannot keep a core busy for minutes.
        var attempt = run(TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS)
        if !attempt.succeeded && isTrailingJunkWarning(handle) {
            // Stopping at the first warning proved junk before EOI was the only fault. Progressive files meet
            // it before producing any pixel, so decode again without stopping; that run ends with the same
            // warning and a complete image.
            attempt = run(TJFLAG_LIMITSCANS)
            attempt.succeeded = attempt.succeeded || isTrailingJunkWarning(handle)
        }
        guard attempt.succeeded else { throw failure(handle, file: file) }
        return PixelBuffer(width: width, height: height, channels: channels, bytes: attempt.bytes)
    }

    /// One run of `tjDecompress2` into a new buffer; on failure the reason is left on the handle.
    private static func runDecompressor(_ handle: tjhandle, _ base: UnsafeRawPointer, _ count: Int,
                                        width: Int, height: Int, channels: Int, flags: Int32)
        -> (bytes: [UInt8], succeeded: Bool) {
        let format = channels == 1 ? TJPF_GRAY : TJPF_RGB
        var status: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: width * height * channels) { buffer, initialized in
            status = tjDecompress2(handle, base.assumingMemoryBound(to: UInt8.self), UInt(count),
                                   buffer.baseAddress, Int32(width), Int32(width * channels), Int32(height),
                                   Int32(format.rawValue), flags)
            // Bytes need no initialisation of their own; after a failure the caller discards them.
            initialized = buffer.count
        }
        return (bytes, status == 0)
    }

    /// True when the handle's last failure was a warning about bytes before the end-of-image marker (0xD9).
    private static func isTrailingJunkWarning(_ handle: tjhandle) -> Bool {
        guard tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue), let text = tjGetErrorStr2(handle) else {
            return false
        }
        let message = String(cString: text)
        return message.hasPrefix("Corrupt JPEG data: ") && message.hasSuffix("extraneous bytes before marker 0xd9")
    }

    /// TurboJPEG's own message for the last failure on this handle.
    private static func failure(_ handle: tjhandle, file: String) -> ImageIOError {
        let message = tjGetErrorStr2(handle).map { String(cString: $0) } ?? "unknown TurboJPEG error"
        return ImageIOError(file: file, reason: .corrupt(message))
    }

    /// The factors TurboJPEG offers that shrink the image (numerator below denominator).
    private static func reducingScalingFactors() -> [tjscalingfactor] {
        var count: Int32 = 0
        guard let factors = tjGetScalingFactors(&count) else { return [] }
        return UnsafeBufferPointer(start: factors, count: Int(count)).filter { $0.num < $0.denom && $0.num > 0 }
    }

    /// One side after scaling, rounded up as TurboJPEG rounds it.
    private static func scaled(_ side: Int, _ factor: tjscalingfactor) -> Int {
        (side * Int(factor.num) + Int(factor.denom) - 1) / Int(factor.denom)
    }
}

/// Walks a JPEG's marker segments up to the first scan, without trusting any length it reads.
enum JPEGSegments {
    /// Calls `body` with each segment's marker (the byte after 0xFF) and payload (after the length field),
    /// in file order, until `body` returns false, the first scan starts, or the structure stops making sense.
    static func forEach(_ data: UnsafeRawBufferPointer, _ body: (UInt8, UnsafeRawBufferPointer) -> Bool) {
        guard data.count >= 4, data[0] == 0xFF, data[1] == 0xD8 else { return }
        var offset = 2
        while offset < data.count, data[offset] == 0xFF {
            // Any number of 0xFF fill bytes may precede a marker.
            var markerAt = offset + 1
            while markerAt < data.count, data[markerAt] == 0xFF { markerAt += 1 }
            guard markerAt < data.count else { return }
            let marker = data[markerAt]
            if isStandalone(marker) { offset = markerAt + 1; continue }
            if marker == 0xD9 || marker == 0xDA { return }
            guard let end = segmentEnd(data, lengthAt: markerAt + 1) else { return }
            let payload = UnsafeRawBufferPointer(rebasing: data[(markerAt + 3)..<end])
            if !body(marker, payload) { return }
            offset = end
        }
    }

    /// Width and height from the first start-of-frame segment, if one is readable.
    static func frameSize(_ data: UnsafeRawBufferPointer) -> (width: Int, height: Int)? {
        var size: (width: Int, height: Int)?
        forEach(data) { marker, payload in
            guard isStartOfFrame(marker) else { return true }
            // Precision (1 byte), then height and width, big-endian.
            if payload.count >= 5 {
                size = (Int(payload[3]) << 8 | Int(payload[4]), Int(payload[1]) << 8 | Int(payload[2]))
            }
            return false
        }
        return size
    }

    /// Markers with no length field: TEM and the restart markers (SOI is handled before the walk).
    private static func isStandalone(_ marker: UInt8) -> Bool {
        marker == 0x01 || (0xD0...0xD7).contains(marker)
    }

    /// SOF0–SOF15 except DHT (C4), JPG (C8) and DAC (CC), which share the range.
    private static func isStartOfFrame(_ marker: UInt8) -> Bool {
        (0xC0...0xCF).contains(marker) && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
    }

    /// The offset just past a segment whose two-byte length starts at `lengthAt`, or nil if it overruns.
    private static func segmentEnd(_ data: UnsafeRawBufferPointer, lengthAt: Int) -> Int? {
        guard lengthAt + 2 <= data.count else { return nil }
        let length = Int(data[lengthAt]) << 8 | Int(data[lengthAt + 1])
        guard length >= 2, lengthAt + length <= data.count else { return nil }
        return lengthAt + length
    }
}
