import CTIFF
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads TIFF files with libtiff, from memory, first page only.
///
/// 8- and 16-bit unsigned grey and RGB with interleaved samples, in strips or tiles, are read sample by
/// sample; every other layout libtiff knows (palette, bilevel, YCbCr, CMYK, separate planes, …) goes through
/// its RGBA interface. Either way the pixels come back as stored and the Orientation tag is only reported.
public enum TIFFCodec {
    /// Decodes a TIFF's first page: pixels as stored, its Orientation tag in `metadata.orientation`.
    public static func decode(_ data: UnsafeRawBufferPointer, file: String, options: DecodeOptions)
        throws(ImageIOError) -> DecodedImage {
        let source = TIFFSource(data, file: file)
        let tif = try source.open(maxSingleAllocation: libtiffAllocationLimit(options))
        defer { TIFFClose(tif) }

        let page = TIFFPage(tif)
        try checkPixelBudget(width: page.width, height: page.height, options: options, file: file)
        let channels = page.isGrey && options.allowGrey ? 1 : 3
        let pixels: PixelBuffer
        if let samples = page.directSamples(outputChannels: channels) {
            pixels = try readDirect(tif, page, samples, source)
        } else {
            pixels = try readThroughRGBA(tif, page, channels: channels, source)
        }
        return DecodedImage(pixels: pixels, format: .tiff, metadata: metadata(tif, page))
    }

    // MARK: - Steps

    /// libtiff's largest single allocation, in bytes: enough for one decoded strip of a 16-bit RGBA image at
    /// the pixel budget, so bogus counts in a hostile directory fail instead of exhausting memory.
    static func libtiffAllocationLimit(_ options: DecodeOptions) -> Int {
        let budgetBytes = options.maxPixels.multipliedReportingOverflow(by: 8)
        return budgetBytes.overflow ? Int.max : max(64 << 20, budgetBytes.partialValue)
    }

    /// Strips row by row with `TIFFReadScanline` (one scanline of memory), tiles one tile at a time.
    private static func readDirect(_ tif: OpaquePointer, _ page: TIFFPage, _ samples: SampleConverter,
                                   _ source: TIFFSource) throws(ImageIOError) -> PixelBuffer {
        var bytes = [UInt8](repeating: 0, count: page.width * page.height * samples.outputChannels)
        let read = bytes.withUnsafeMutableBufferPointer { out in
            if let tile = page.tileSize {
                return readTiles(tif, page, tile, samples, into: out.baseAddress!)
            }
            return readScanlines(tif, page, samples, into: out.baseAddress!)
        }
        guard read else { throw source.failure("libtiff could not read the image data") }
        return PixelBuffer(width: page.width, height: page.height, channels: samples.outputChannels, bytes: bytes)
    }

    private static func readScanlines(_ tif: OpaquePointer, _ page: TIFFPage, _ samples: SampleConverter,
                                      into out: UnsafeMutablePointer<UInt8>) -> Bool {
        let lineBytes = Int(TIFFScanlineSize(tif))
        guard lineBytes >= samples.inputBytes(pixels: page.width) else { return false }
        var line = [UInt8](repeating: 0, count: lineBytes)
        let rowBytes = page.width * samples.outputChannels
        for row in 0..<page.height {
            let status = line.withUnsafeMutableBytes { TIFFReadScanline(tif, $0.baseAddress, UInt32(row), 0) }
            guard status == 1 else { return false }
            line.withUnsafeBytes { samples.convert($0.baseAddress!, pixels: page.width, into: out + row * rowBytes) }
        }
        return true
    }

    private static func readTiles(_ tif: OpaquePointer, _ page: TIFFPage, _ tile: (width: Int, height: Int),
                                  _ samples: SampleConverter, into out: UnsafeMutablePointer<UInt8>) -> Bool {
        let tileBytes = Int(TIFFTileSize(tif)), tileRowBytes = Int(TIFFTileRowSize(tif))
        guard tileRowBytes >= samples.inputBytes(pixels: tile.width), tileBytes >= tileRowBytes * tile.height else {
            return false
        }
        var buffer = [UInt8](repeating: 0, count: tileBytes)
        for top in stride(from: 0, to: page.height, by: tile.height) {
            for left in stride(from: 0, to: page.width, by: tile.width) {
                let read = buffer.withUnsafeMutableBytes {
                    TIFFReadTile(tif, $0.baseAddress, UInt32(left), UInt32(top), 0, 0)
                }
                guard read >= 0 else { return false }
                let columns = min(tile.width, page.width - left), rows = min(tile.height, page.height - top)
                buffer.withUnsafeBytes { tileData in
                    for row in 0..<rows {
                        let target = out + ((top + row) * page.width + left) * samples.outputChannels
                        samples.convert(tileData.baseAddress! + row * tileRowBytes, pixels: columns, into: target)
                    }
                }
            }
        }
        return true
    }

    /// Any layout libtiff can turn into RGBA. The requested orientation is the file's own, which makes libtiff
    /// flip nothing: asked for top-left, it would mirror and flip the rows to undo orientations 2–4 (and apply
    /// the same flips, without the transpose, to 5–8), so the caller's orientation step would then act twice.
    private static func readThroughRGBA(_ tif: OpaquePointer, _ page: TIFFPage, channels: Int,
                                        _ source: TIFFSource) throws(ImageIOError) -> PixelBuffer {
        var reason = [CChar](repeating: 0, count: 1024)
        guard TIFFRGBAImageOK(tif, &reason) == 1 else {
            let detail = String(cString: reason)
            throw ImageIOError(file: source.file, reason: .unsupported("libtiff cannot convert this TIFF: \(detail)"))
        }
        var raster = [UInt32](repeating: 0, count: page.width * page.height)
        let status = raster.withUnsafeMutableBufferPointer {
            TIFFReadRGBAImageOriented(tif, UInt32(page.width), UInt32(page.height), $0.baseAddress,
                                      Int32(page.orientation), 1)
        }
        guard status == 1 else { throw source.failure("libtiff could not read the image data") }
        return PixelBuffer(width: page.width, height: page.height, channels: channels,
                           bytes: packedABGRToBytes(raster, channels: channels))
    }

    /// libtiff's raster words hold R in the low byte, then G, B and A.
    private static func packedABGRToBytes(_ raster: [UInt32], channels: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: raster.count * channels)
        for (index, word) in raster.enumerated() {
            for channel in 0..<channels {
                bytes[index * channels + channel] = UInt8(truncatingIfNeeded: word >> (8 * UInt32(channel)))
            }
        }
        return bytes
    }

    /// Make and model from IFD0, orientation, and the focal lengths from the EXIF IFD when there is one.
    private static func metadata(_ tif: OpaquePointer, _ page: TIFFPage) -> ImageMetadata {
        var metadata = ImageMetadata()
        metadata.make = asciiField(tif, TIFFTAG_MAKE)
        metadata.model = asciiField(tif, TIFFTAG_MODEL)
        metadata.orientation = page.orientation
        metadata.storedWidth = page.width
        metadata.storedHeight = page.height
        // Last: reading the EXIF IFD makes it libtiff's current directory.
        readFocalLengths(tif, into: &metadata)
        return metadata
    }

    private static func readFocalLengths(_ tif: OpaquePointer, into metadata: inout ImageMetadata) {
        var offset: UInt64 = 0
        guard replica_tiff_get_ifd_offset(tif, UInt32(TIFFTAG_EXIFIFD), &offset) == 1, offset > 0,
              TIFFReadEXIFDirectory(tif, offset) == 1 else { return }
        var focal = 0.0
        if replica_tiff_get_real(tif, UInt32(EXIFTAG_FOCALLENGTH), &focal) == 1, focal.isFinite, focal > 0 {
            metadata.focalLengthMillimetres = focal
        }
        var focal35: UInt16 = 0
        if replica_tiff_get_uint16(tif, UInt32(EXIFTAG_FOCALLENGTHIN35MMFILM), &focal35) == 1, focal35 > 0 {
            metadata.focalLength35mmMillimetres = Double(focal35)
        }
    }

    /// An ASCII tag up to its first NUL, trimmed of spaces; nil when absent or empty.
    private static func asciiField(_ tif: OpaquePointer, _ tag: Int32) -> String? {
        guard let text = replica_tiff_get_ascii(tif, UInt32(tag)) else { return nil }
        return trimmedTagText(String(cString: text))
    }
}

/// The first directory's layout, as far as choosing a reading path needs it.
private struct TIFFPage {
    var width = 0
    var height = 0
    var bitsPerSample = 0
    var samplesPerPixel = 0
    var photometric = -1
    var planarConfiguration = 0
    var sampleFormat = 0
    /// The Orientation tag, 1–8; any other value reads as 1.
    var orientation = 1
    /// Tile width and height in pixels, or nil for a striped image.
    var tileSize: (width: Int, height: Int)?

    init(_ tif: OpaquePointer) {
        width = Int(uint32Field(tif, TIFFTAG_IMAGEWIDTH))
        height = Int(uint32Field(tif, TIFFTAG_IMAGELENGTH))
        bitsPerSample = Int(uint16Field(tif, TIFFTAG_BITSPERSAMPLE))
        samplesPerPixel = Int(uint16Field(tif, TIFFTAG_SAMPLESPERPIXEL))
        var value: UInt16 = 0
        if replica_tiff_get_uint16(tif, UInt32(TIFFTAG_PHOTOMETRIC), &value) == 1 { photometric = Int(value) }
        planarConfiguration = Int(uint16Field(tif, TIFFTAG_PLANARCONFIG))
        sampleFormat = Int(uint16Field(tif, TIFFTAG_SAMPLEFORMAT))
        let tagged = Int(uint16Field(tif, TIFFTAG_ORIENTATION))
        orientation = (1...8).contains(tagged) ? tagged : 1
        if TIFFIsTiled(tif) != 0 {
            tileSize = (Int(uint32Field(tif, TIFFTAG_TILEWIDTH)), Int(uint32Field(tif, TIFFTAG_TILELENGTH)))
        }
    }

    /// Black-is-zero or white-is-zero: one grey sample per pixel (plus any extra samples).
    var isGrey: Bool { photometric == Int(PHOTOMETRIC_MINISBLACK) || photometric == Int(PHOTOMETRIC_MINISWHITE) }

    /// How to copy samples straight into the output, or nil when the layout needs libtiff's RGBA conversion.
    /// Extra samples after grey or RGB (alpha, usually) are skipped; at most 8 samples, so one scanline or
    /// tile stays within 16 bytes a pixel.
    func directSamples(outputChannels: Int) -> SampleConverter? {
        let colourSamples = isGrey ? 1 : 3
        guard bitsPerSample == 8 || bitsPerSample == 16,
              sampleFormat == Int(SAMPLEFORMAT_UINT),
              planarConfiguration == Int(PLANARCONFIG_CONTIG),
              isGrey || photometric == Int(PHOTOMETRIC_RGB),
              (colourSamples...8).contains(samplesPerPixel),
              hasPlausibleTiles else { return nil }
        return SampleConverter(bytesPerSample: bitsPerSample / 8, samplesPerPixel: samplesPerPixel,
                               colourSamples: colourSamples, outputChannels: outputChannels,
                               invert: photometric == Int(PHOTOMETRIC_MINISWHITE))
    }

    /// Striped, or tiles no larger than the image (or 256×256): the one tile buffer this decoder allocates
    /// then stays near the image's own size. A directory declaring a giant tile over a small image is left to
    /// the RGBA path, where libtiff's allocation limit refuses it.
    private var hasPlausibleTiles: Bool {
        guard let tile = tileSize else { return true }
        let area = tile.width.multipliedReportingOverflow(by: tile.height)
        return tile.width > 0 && tile.height > 0 && !area.overflow
            && area.partialValue <= max(width * height, 256 * 256)
    }

    private func uint16Field(_ tif: OpaquePointer, _ tag: Int32) -> UInt16 {
        var value: UInt16 = 0
        return replica_tiff_get_uint16(tif, UInt32(tag), &value) == 1 ? value : 0
    }

    private func uint32Field(_ tif: OpaquePointer, _ tag: Int32) -> UInt32 {
        var value: UInt32 = 0
        return replica_tiff_get_uint32(tif, UInt32(tag), &value) == 1 ? value : 0
    }
}

/// Turns one run of interleaved 8- or 16-bit samples (16-bit already in native byte order, as libtiff
/// delivers them) into 8-bit grey or RGB output pixels.
private struct SampleConverter {
    var bytesPerSample: Int
    var samplesPerPixel: Int
    /// 1 for grey, 3 for RGB: the samples that carry colour, first in each pixel.
    var colourSamples: Int
    var outputChannels: Int
    /// White-is-zero grey.
    var invert: Bool

    /// Bytes of input that `pixels` pixels take.
    func inputBytes(pixels: Int) -> Int { pixels * samplesPerPixel * bytesPerSample }

    func convert(_ input: UnsafeRawPointer, pixels: Int, into output: UnsafeMutablePointer<UInt8>) {
        var target = output
        for pixel in 0..<pixels {
            let first = pixel * samplesPerPixel
            for channel in 0..<outputChannels {
                // Grey widens to RGB by repeating its one sample.
                target[channel] = sample(input, first + min(channel, colourSamples - 1))
            }
            target += outputChannels
        }
    }

    private func sample(_ input: UnsafeRawPointer, _ index: Int) -> UInt8 {
        let value: UInt8
        if bytesPerSample == 1 {
            value = input.load(fromByteOffset: index, as: UInt8.self)
        } else {
            // Rounded: 65535 maps to 255 and 257·n to n exactly.
            let wide = UInt32(input.loadUnaligned(fromByteOffset: index * 2, as: UInt16.self))
            value = UInt8((wide + 128) / 257)
        }
        return invert ? 255 - value : value
    }
}

/// The bytes libtiff reads through its client callbacks, and the first error it reported while doing so.
private final class TIFFSource {
    let bytes: UnsafeRawBufferPointer
    let file: String
    var position = 0
    var firstError: String?

    init(_ bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
    }

    /// Opens the bytes read-only, with this source's silent handlers; throws libtiff's reason on failure.
    func open(maxSingleAllocation: Int) throws(ImageIOError) -> OpaquePointer {
        _ = silenceGlobalTIFFHandlers
        guard let options = TIFFOpenOptionsAlloc() else {
            throw ImageIOError(file: file, reason: .unsupported("libtiff could not allocate its options"))
        }
        defer { TIFFOpenOptionsFree(options) }
        let me = Unmanaged.passUnretained(self).toOpaque()
        TIFFOpenOptionsSetMaxSingleMemAlloc(options, tmsize_t(maxSingleAllocation))
        TIFFOpenOptionsSetErrorHandlerExtR(options, recordTIFFError, me)
        TIFFOpenOptionsSetWarningHandlerExtR(options, ignoreTIFFWarning, me)
        // "m": no memory mapping, so libtiff never holds a writable view of the caller's constant bytes.
        let tif = TIFFClientOpenExt(file, "rm", me, readTIFFSource, refuseTIFFWrite, seekTIFFSource,
                                    closeTIFFSource, sizeOfTIFFSource, noTIFFMapping, noTIFFUnmapping, options)
        guard let tif else { throw failure("not a TIFF libtiff can open") }
        return tif
    }

    /// The damage libtiff reported, or `fallback` when it gave no reason.
    func failure(_ fallback: String) -> ImageIOError {
        ImageIOError(file: file, reason: .corrupt(firstError.map { "libtiff: \($0)" } ?? fallback))
    }

    static func from(_ handle: UnsafeMutableRawPointer?) -> TIFFSource {
        Unmanaged<TIFFSource>.fromOpaque(handle!).takeUnretainedValue()
    }

    func read(into buffer: UnsafeMutableRawPointer?, count: Int) -> Int {
        guard let buffer, count > 0, position < bytes.count else { return 0 }
        let length = min(count, bytes.count - position)
        buffer.copyMemory(from: bytes.baseAddress! + position, byteCount: length)
        position += length
        return length
    }

    /// The new position, or nil for one before the start (libtiff passes negative offsets as wrapped words).
    func seek(_ offset: UInt64, whence: Int32) -> Int? {
        let delta = Int64(bitPattern: offset)
        let base: Int64
        switch whence {
        case SEEK_SET: base = 0
        case SEEK_CUR: base = Int64(position)
        case SEEK_END: base = Int64(bytes.count)
        default: return nil
        }
        let target = base.addingReportingOverflow(delta)
        guard !target.overflow, target.partialValue >= 0, target.partialValue <= Int64(Int.max) else { return nil }
        position = Int(target.partialValue)
        return position
    }
}

/// libtiff's process-wide handlers print to stderr; set once to none, since every handle gets its own.
private let silenceGlobalTIFFHandlers: Void = {
    TIFFSetErrorHandler(nil)
    TIFFSetWarningHandler(nil)
    TIFFSetErrorHandlerExt(nil)
    TIFFSetWarningHandlerExt(nil)
}()

// The client callbacks: C function pointers, so they reach their source through the handle they are given.

private let readTIFFSource: TIFFReadWriteProc = { handle, buffer, count in
    tmsize_t(TIFFSource.from(handle).read(into: buffer, count: Int(count)))
}

private let refuseTIFFWrite: TIFFReadWriteProc = { _, _, _ in -1 }

private let seekTIFFSource: TIFFSeekProc = { handle, offset, whence in
    TIFFSource.from(handle).seek(offset, whence: whence).map { UInt64($0) } ?? UInt64.max
}

private let closeTIFFSource: TIFFCloseProc = { _ in 0 }

private let sizeOfTIFFSource: TIFFSizeProc = { handle in UInt64(TIFFSource.from(handle).bytes.count) }

private let noTIFFMapping: TIFFMapFileProc = { _, _, _ in 0 }

private let noTIFFUnmapping: TIFFUnmapFileProc = { _, _, _ in }

/// Keeps the first error's text (the cause; later ones tend to be consequences) and stops libtiff from
/// passing it on to the process-wide handler.
private let recordTIFFError: TIFFErrorHandlerExtR = { _, userData, module, format, arguments in
    let source = TIFFSource.from(userData)
    guard source.firstError == nil, let format, let arguments else { return 1 }
    var text = [CChar](repeating: 0, count: 512)
    _ = vsnprintf(&text, text.count, format, arguments)
    let message = String(cString: text)
    source.firstError = module.map { "\(String(cString: $0)): \(message)" } ?? message
    return 1
}

private let ignoreTIFFWarning: TIFFErrorHandlerExtR = { _, _, _, _, _ in 1 }

/// A camera's text field without surrounding spaces, tabs, line breaks or NULs; nil when nothing is left.
func trimmedTagText(_ text: String) -> String? {
    let unwanted: Set<Character> = [" ", "\t", "\r", "\n", "\0"]
    guard let first = text.firstIndex(where: { !unwanted.contains($0) }),
          let last = text.lastIndex(where: { !unwanted.contains($0) }) else { return nil }
    return String(text[first...last])
}
