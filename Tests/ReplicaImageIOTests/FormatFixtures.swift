import CHeif
import CTIFF
import CTurboJPEG
import Foundation
import ReplicaTestSupport
import XCTest
@testable import ReplicaImageIO

// Test images for the TIFF, HEIF and raw decoders, made at test time by the same libraries (libtiff,
// libheif's encoders, TurboJPEG) or, where a file must lie about itself, byte by byte.

/// A pattern whose every pixel differs from its neighbours, so a flip, a rotation or a lost row shows.
enum TestPattern {
    static func value(x: Int, y: Int, channel: Int) -> UInt8 {
        UInt8((x * 7 + y * 13 + channel * 50) & 0xFF)
    }

    /// The pattern as an interleaved 8-bit buffer of `channels` samples a pixel.
    static func bytes(width: Int, height: Int, channels: Int) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(width * height * channels)
        for y in 0..<height {
            for x in 0..<width {
                for channel in 0..<channels { bytes.append(value(x: x, y: y, channel: channel)) }
            }
        }
        return bytes
    }
}

// MARK: - TIFF written with libtiff

/// One page of a TIFF written with libtiff.
struct TIFFPageFixture {
    var width: Int
    var height: Int
    var samplesPerPixel = 3
    var bitsPerSample = 8
    var photometric = UInt16(PHOTOMETRIC_RGB)
    var compression = UInt16(COMPRESSION_NONE)
    var rowsPerStrip = 8
    /// Tile width and height in pixels (multiples of 16); nil writes strips.
    var tileSize: (width: Int, height: Int)?
    var orientation: UInt16?
    /// ExtraSamples values (what each sample after the colour ones means).
    var extraSamples: [UInt16] = []
    /// One value per sample, rows top to bottom; 8-bit pages use the low byte.
    var samples: [UInt16]
    /// Red, green and blue colour-map arrays for a palette page.
    var colorMap: (red: [UInt16], green: [UInt16], blue: [UInt16])?
    var make: String?
    var model: String?

    /// An 8- or 16-bit page holding `TestPattern` (16-bit samples: 257·v + `low`, at most 65535).
    static func pattern(width: Int, height: Int, samplesPerPixel: Int = 3, bitsPerSample: Int = 8,
                        low: UInt16 = 0) -> TIFFPageFixture {
        let pattern = TestPattern.bytes(width: width, height: height, channels: samplesPerPixel)
        let samples = pattern.map { bitsPerSample == 16 ? UInt16(min(65535, Int($0) * 257 + Int(low))) : UInt16($0) }
        let photometric = samplesPerPixel == 1 ? UInt16(PHOTOMETRIC_MINISBLACK) : UInt16(PHOTOMETRIC_RGB)
        return TIFFPageFixture(width: width, height: height, samplesPerPixel: samplesPerPixel,
                               bitsPerSample: bitsPerSample, photometric: photometric, samples: samples)
    }
}

enum TIFFFixture {
    /// A TIFF file of these pages, in order, written by libtiff.
    static func file(_ pages: [TIFFPageFixture]) -> [UInt8] {
        write { tif in
            for page in pages { writePage(tif, page) }
        }
    }

    /// Whatever `body` writes through libtiff, as the file's bytes.
    static func write(_ body: (OpaquePointer) -> Void) -> [UInt8] {
        TIFFSetWarningHandler(nil)
        TIFFSetErrorHandler(nil)
        let path = NSTemporaryDirectory() + "replica-fixture-\(UUID().uuidString).tif"
        defer { unlink(path) }
        guard let tif = TIFFOpen(path, "w") else {
            XCTFail("libtiff could not create \(path)")
            return []
        }
        body(tif)
        TIFFClose(tif)
        return (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))) ?? []
    }

    static func writePage(_ tif: OpaquePointer, _ page: TIFFPageFixture) {
        setLayout(tif, page)
        if let tile = page.tileSize { writeTiles(tif, page, tile) } else { writeScanlines(tif, page) }
        XCTAssertEqual(TIFFWriteDirectory(tif), 1, "libtiff could not write a directory")
    }

    private static func setLayout(_ tif: OpaquePointer, _ page: TIFFPageFixture) {
        set16(tif, TIFFTAG_PLANARCONFIG, UInt16(PLANARCONFIG_CONTIG))
        set32(tif, TIFFTAG_IMAGEWIDTH, UInt32(page.width))
        set32(tif, TIFFTAG_IMAGELENGTH, UInt32(page.height))
        set16(tif, TIFFTAG_SAMPLESPERPIXEL, UInt16(page.samplesPerPixel))
        set16(tif, TIFFTAG_BITSPERSAMPLE, UInt16(page.bitsPerSample))
        set16(tif, TIFFTAG_PHOTOMETRIC, page.photometric)
        set16(tif, TIFFTAG_COMPRESSION, page.compression)
        if let tile = page.tileSize {
            set32(tif, TIFFTAG_TILEWIDTH, UInt32(tile.width))
            set32(tif, TIFFTAG_TILELENGTH, UInt32(tile.height))
        } else {
            set32(tif, TIFFTAG_ROWSPERSTRIP, UInt32(page.rowsPerStrip))
        }
        if let orientation = page.orientation { set16(tif, TIFFTAG_ORIENTATION, orientation) }
        if !page.extraSamples.isEmpty { setArray(tif, TIFFTAG_EXTRASAMPLES, page.extraSamples) }
        if let make = page.make { XCTAssertEqual(replica_tiff_set_ascii(tif, UInt32(TIFFTAG_MAKE), make), 1) }
        if let model = page.model { XCTAssertEqual(replica_tiff_set_ascii(tif, UInt32(TIFFTAG_MODEL), model), 1) }
        if let map = page.colorMap {
            XCTAssertEqual(replica_tiff_set_colormap(tif, map.red, map.green, map.blue), 1)
        }
    }

    /// The samples of `count` pixels starting at pixel `first`, in the page's sample size.
    private static func packed(_ page: TIFFPageFixture, first: Int, count: Int) -> [UInt8] {
        let slice = page.samples[(first * page.samplesPerPixel)..<((first + count) * page.samplesPerPixel)]
        if page.bitsPerSample == 8 { return slice.map { UInt8(truncatingIfNeeded: $0) } }
        return slice.flatMap { value in withUnsafeBytes(of: value) { Array($0) } }
    }

    private static func writeScanlines(_ tif: OpaquePointer, _ page: TIFFPageFixture) {
        for row in 0..<page.height {
            var line = packed(page, first: row * page.width, count: page.width)
            XCTAssertEqual(TIFFWriteScanline(tif, &line, UInt32(row), 0), 1, "scanline \(row)")
        }
    }

    /// Whole tiles, the parts beyond the image's right and bottom edges left zero.
    private static func writeTiles(_ tif: OpaquePointer, _ page: TIFFPageFixture, _ tile: (width: Int, height: Int)) {
        let pixelBytes = page.samplesPerPixel * page.bitsPerSample / 8
        for top in stride(from: 0, to: page.height, by: tile.height) {
            for left in stride(from: 0, to: page.width, by: tile.width) {
                var buffer = [UInt8](repeating: 0, count: tile.width * tile.height * pixelBytes)
                for row in 0..<min(tile.height, page.height - top) {
                    let run = packed(page, first: (top + row) * page.width + left,
                                     count: min(tile.width, page.width - left))
                    let start = row * tile.width * pixelBytes
                    buffer.replaceSubrange(start..<(start + run.count), with: run)
                }
                XCTAssertGreaterThan(TIFFWriteTile(tif, &buffer, UInt32(left), UInt32(top), 0, 0), 0)
            }
        }
    }

    static func set16(_ tif: OpaquePointer, _ tag: Int32, _ value: UInt16) {
        XCTAssertEqual(replica_tiff_set_uint16(tif, UInt32(tag), value), 1, "tag \(tag)")
    }

    static func set32(_ tif: OpaquePointer, _ tag: Int32, _ value: UInt32) {
        XCTAssertEqual(replica_tiff_set_uint32(tif, UInt32(tag), value), 1, "tag \(tag)")
    }

    static func setReals(_ tif: OpaquePointer, _ tag: Int32, _ values: [Double]) {
        XCTAssertEqual(replica_tiff_set_reals(tif, UInt32(tag), UInt32(values.count), values), 1, "tag \(tag)")
    }

    static func setArray<T>(_ tif: OpaquePointer, _ tag: Int32, _ values: [T]) {
        let status = values.withUnsafeBytes {
            replica_tiff_set_array(tif, UInt32(tag), UInt32(values.count), $0.baseAddress, Int32(MemoryLayout<T>.size))
        }
        XCTAssertEqual(status, 1, "tag \(tag)")
    }

    /// Writes an EXIF IFD with these focal lengths and returns its offset, for IFD0's ExifIFD tag. Call it
    /// before setting IFD0's fields: it leaves libtiff on a fresh main directory.
    static func writeExifDirectory(_ tif: OpaquePointer, focalLength: Double, focalLength35mm: UInt16) -> UInt64 {
        XCTAssertEqual(TIFFCreateEXIFDirectory(tif), 0)
        setReals(tif, EXIFTAG_FOCALLENGTH, [focalLength])
        XCTAssertEqual(replica_tiff_set_uint16(tif, UInt32(EXIFTAG_FOCALLENGTHIN35MMFILM), focalLength35mm), 1)
        var offset: UInt64 = 0
        XCTAssertEqual(TIFFWriteCustomDirectory(tif, &offset), 1)
        TIFFFreeDirectory(tif)  // TIFFCreateDirectory would drop the EXIF values without freeing them
        XCTAssertEqual(TIFFCreateDirectory(tif), 0)
        return offset
    }
}

// MARK: - TIFF built byte by byte

/// A little-endian classic TIFF assembled by hand, for files libtiff would not write (a header that declares
/// an absurd size, a directory nested in a SubIFD) and for bare EXIF blocks. IFD 0 comes first; the others
/// are reached only through `.directory` values.
struct HandTIFF {
    enum Value {
        case short([UInt16])
        case long([UInt32])
        case rational([(UInt32, UInt32)])
        case ascii(String)
        case bytes([UInt8])
        /// A LONG offset to another directory of this file, by index.
        case directory(Int)
        /// A LONG offset to one of `blobs`, by index.
        case blob(Int)
    }

    var directories: [[(tag: UInt16, value: Value)]]
    var blobs: [[UInt8]] = []
    /// What bytes 8 and 9 hold (after the header, before IFD 0): "CR" marks a Canon CR2.
    var signature: [UInt8] = []

    func bytes() -> [UInt8] {
        let firstIFD = 8 + (signature.isEmpty ? 0 : 8)
        var directoryOffsets: [Int] = [], offset = firstIFD
        for directory in directories {
            directoryOffsets.append(offset)
            offset += 6 + 12 * directory.count + directory.reduce(0) { $0 + outOfLineSize($1.value) }
        }
        var blobOffsets: [Int] = []
        for blob in blobs { blobOffsets.append(offset); offset += blob.count + blob.count % 2 }

        var out: [UInt8] = [0x49, 0x49, 0x2A, 0x00] + Self.le32(firstIFD)
        if !signature.isEmpty { out += signature + [UInt8](repeating: 0, count: 8 - signature.count) }
        for (index, directory) in directories.enumerated() {
            out += directoryBytes(directory, at: directoryOffsets[index], directories: directoryOffsets,
                                  blobs: blobOffsets)
        }
        for blob in blobs { out += blob + (blob.count % 2 == 1 ? [0] : []) }
        return out
    }

    private func directoryBytes(_ entries: [(tag: UInt16, value: Value)], at start: Int, directories: [Int],
                                blobs: [Int]) -> [UInt8] {
        let sorted = entries.sorted { $0.tag < $1.tag }
        var table = Self.le16(sorted.count), extra: [UInt8] = []
        var extraOffset = start + 6 + 12 * sorted.count
        for entry in sorted {
            let (type, count, payload) = Self.encode(entry.value, directories: directories, blobs: blobs)
            table += Self.le16(Int(entry.tag)) + Self.le16(type) + Self.le32(count)
            if payload.count <= 4 {
                table += payload + [UInt8](repeating: 0, count: 4 - payload.count)
            } else {
                table += Self.le32(extraOffset)
                let padded = payload + (payload.count % 2 == 1 ? [0] : [])
                extra += padded
                extraOffset += padded.count
            }
        }
        return table + Self.le32(0) + extra
    }

    private static func encode(_ value: Value, directories: [Int], blobs: [Int]) -> (Int, Int, [UInt8]) {
        switch value {
        case .short(let values): return (3, values.count, values.flatMap { le16(Int($0)) })
        case .long(let values): return (4, values.count, values.flatMap { le32(Int($0)) })
        case .rational(let values): return (5, values.count, values.flatMap { le32(Int($0.0)) + le32(Int($0.1)) })
        case .ascii(let text): return (2, text.utf8.count + 1, Array(text.utf8) + [0])
        case .bytes(let values): return (1, values.count, values)
        case .directory(let index): return (4, 1, le32(directories[index]))
        case .blob(let index): return (4, 1, le32(blobs[index]))
        }
    }

    /// Bytes a value takes after its directory's table (none when it fits in the entry), padded to a word.
    private func outOfLineSize(_ value: Value) -> Int {
        let unplaced = (directories.map { _ in 0 }, blobs.map { _ in 0 })
        let size = Self.encode(value, directories: unplaced.0, blobs: unplaced.1).2.count
        return size <= 4 ? 0 : size + size % 2
    }

    static func le16(_ value: Int) -> [UInt8] { [UInt8(value & 0xFF), UInt8((value >> 8) & 0xFF)] }
    static func le32(_ value: Int) -> [UInt8] { le16(value & 0xFFFF) + le16((value >> 16) & 0xFFFF) }

    /// An 8-bit RGB image in one uncompressed strip, with whatever further IFD 0 entries are given.
    static func rgbImage(width: Int, height: Int, pixels: [UInt8],
                         extra: [(tag: UInt16, value: Value)] = []) -> HandTIFF {
        let layout: [(tag: UInt16, value: Value)] = [
            (256, .long([UInt32(width)])), (257, .long([UInt32(height)])), (258, .short([8, 8, 8])),
            (259, .short([1])), (262, .short([2])), (273, .blob(0)), (277, .short([3])),
            (278, .long([UInt32(height)])), (279, .long([UInt32(pixels.count)])),
        ]
        return HandTIFF(directories: [layout + extra], blobs: [pixels])
    }
}

// MARK: - JPEG and HEIF encoded by their libraries

enum EncodedFixture {
    /// A baseline JPEG of an RGB buffer, written by TurboJPEG without chroma subsampling.
    static func jpeg(width: Int, height: Int, rgb: [UInt8], quality: Int32 = 95) -> [UInt8] {
        guard let handle = tjInitCompress() else { return [] }
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let status = rgb.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(width), 0, Int32(height), Int32(TJPF_RGB.rawValue),
                        &output, &size, Int32(TJSAMP_444.rawValue), quality, 0)
        }
        defer { tjFree(output) }
        guard status == 0, let output else { return [] }
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }

    /// Whether this libheif build can encode `format` (Debian 12 has x265 for HEVC and aom for AV1).
    static func canEncodeHEIF(_ format: heif_compression_format) -> Bool {
        heif_have_encoder_for_format(format) != 0
    }

    /// A HEIF (HEVC) or AVIF (AV1) file of an RGB buffer, with the container transformation that makes
    /// `orientation` (an EXIF value) and optionally an Exif block.
    static func heif(_ format: heif_compression_format, width: Int, height: Int, rgb: [UInt8],
                     orientation: heif_orientation = heif_orientation_normal, exif: [UInt8]? = nil) -> [UInt8] {
        guard let context = heif_context_alloc() else { return [] }
        defer { heif_context_free(context) }
        var encoder: OpaquePointer?
        guard heif_context_get_encoder_for_format(context, format, &encoder).code == heif_error_Ok,
              let encoder else { return [] }
        defer { heif_encoder_release(encoder) }
        _ = heif_encoder_set_lossy_quality(encoder, 90)
        _ = heif_encoder_set_logging_level(encoder, 0)  // x265 prints a banner otherwise
        guard let image = heifImage(width: width, height: height, rgb: rgb) else { return [] }
        defer { heif_image_release(image) }

        let options = heif_encoding_options_alloc()
        defer { heif_encoding_options_free(options) }
        options?.pointee.image_orientation = orientation
        var handle: OpaquePointer?
        guard heif_context_encode_image(context, image, encoder, options, &handle).code == heif_error_Ok else {
            return []
        }
        defer { heif_image_handle_release(handle) }
        if let exif {
            let status = exif.withUnsafeBytes {
                heif_context_add_exif_metadata(context, handle, $0.baseAddress, Int32($0.count))
            }
            XCTAssertEqual(status.code, heif_error_Ok, "libheif did not take the Exif block")
        }
        return written(context)
    }

    private static func heifImage(width: Int, height: Int, rgb: [UInt8]) -> OpaquePointer? {
        var image: OpaquePointer?
        guard heif_image_create(Int32(width), Int32(height), heif_colorspace_RGB, heif_chroma_interleaved_RGB,
                                &image).code == heif_error_Ok, let image,
              heif_image_add_plane(image, heif_channel_interleaved, Int32(width), Int32(height), 8).code
                == heif_error_Ok else { return nil }
        var stride: Int32 = 0
        guard let plane = heif_image_get_plane(image, heif_channel_interleaved, &stride) else { return nil }
        for row in 0..<height {
            rgb.withUnsafeBytes { source in
                _ = memcpy(plane + row * Int(stride), source.baseAddress! + row * width * 3, width * 3)
            }
        }
        return image
    }

    /// The context's file, collected through libheif's writer callback.
    private static func written(_ context: OpaquePointer) -> [UInt8] {
        final class Sink { var bytes: [UInt8] = [] }
        let sink = Sink()
        var writer = heif_writer(writer_api_version: 1, write: { _, data, size, userData in
            let sink = Unmanaged<Sink>.fromOpaque(userData!).takeUnretainedValue()
            sink.bytes += UnsafeRawBufferPointer(start: data, count: size)
            return heif_error(code: heif_error_Ok, subcode: heif_suberror_Unspecified, message: nil)
        })
        let status = heif_context_write(context, &writer, Unmanaged.passUnretained(sink).toOpaque())
        return status.code == heif_error_Ok ? sink.bytes : []
    }
}

// MARK: - A DNG written with libtiff's DNG tags

/// A small DNG: a 16-bit RGGB Bayer mosaic of a scene, with the colour tags LibRaw needs, optionally a JPEG
/// preview in IFD 0 (the raw then sits in a SubIFD, as cameras and converters write it).
struct DNGFixture {
    var width = 128
    var height = 96
    /// Linear scene colour at each pixel, 0–1 a channel, as the developed image should show it.
    var scene: (Int, Int) -> (red: Double, green: Double, blue: Double) = { _, _ in (0.5, 0.5, 0.5) }
    var blackLevel = 256.0
    var whiteLevel: UInt32 = 16383
    /// The camera's response to white, per channel; the mosaic is the scene times this.
    var asShotNeutral = [1.0, 1.0, 1.0]
    var orientation: UInt16 = 1
    var preview: (width: Int, height: Int, rgb: [UInt8])?
    var previewIsJPEG = true
    var make = "Replica"
    var model = "Test Camera"
    var focalLength = 35.0

    func bytes() -> [UInt8] {
        TIFFFixture.write { tif in
            let exif = TIFFFixture.writeExifDirectory(tif, focalLength: focalLength, focalLength35mm: 52)
            if let preview {
                writePreview(tif, preview, exifOffset: exif)
            } else {
                setCameraTags(tif, exifOffset: exif)
            }
            writeMosaic(tif)
        }
    }

    /// The sensor value of the photosite at (x, y) of an RGGB mosaic.
    func photosite(x: Int, y: Int) -> UInt16 {
        let colour = scene(x, y)
        let (channel, value) = switch (y % 2, x % 2) {
        case (0, 0): (0, colour.red)
        case (1, 1): (2, colour.blue)
        default: (1, colour.green)
        }
        let signal = min(1, max(0, value * asShotNeutral[channel]))
        return UInt16(blackLevel + signal * (Double(whiteLevel) - blackLevel))
    }

    /// IFD 0's DNG tags: version, camera, and colour. ColorMatrix1 is the XYZ-to-linear-sRGB matrix (the
    /// inverse of LibRaw's own sRGB-to-XYZ table), which makes this a camera whose channels are sRGB's, so
    /// the developed colour can be predicted.
    private func setCameraTags(_ tif: OpaquePointer, exifOffset: UInt64) {
        TIFFFixture.setArray(tif, TIFFTAG_DNGVERSION, [UInt8]([1, 4, 0, 0]))
        TIFFFixture.setArray(tif, TIFFTAG_DNGBACKWARDVERSION, [UInt8]([1, 1, 0, 0]))
        XCTAssertEqual(replica_tiff_set_ascii(tif, UInt32(TIFFTAG_MAKE), make), 1)
        XCTAssertEqual(replica_tiff_set_ascii(tif, UInt32(TIFFTAG_MODEL), model), 1)
        XCTAssertEqual(replica_tiff_set_ascii(tif, UInt32(TIFFTAG_UNIQUECAMERAMODEL), "\(make) \(model)"), 1)
        TIFFFixture.setReals(tif, TIFFTAG_COLORMATRIX1, Self.xyzToLinearSRGB)
        TIFFFixture.set16(tif, TIFFTAG_CALIBRATIONILLUMINANT1, 21)  // D65
        TIFFFixture.setReals(tif, TIFFTAG_ASSHOTNEUTRAL, asShotNeutral)
        TIFFFixture.set16(tif, TIFFTAG_ORIENTATION, orientation)
        XCTAssertEqual(replica_tiff_set_ifd_offset(tif, UInt32(TIFFTAG_EXIFIFD), exifOffset), 1)
    }

    /// IFD 0 as a reduced-resolution preview, with one SubIFD slot for the mosaic: a JPEG (the strip a
    /// complete JPEG file, as cameras store it) or, with `previewIsJPEG` off, uncompressed 8-bit RGB.
    private func writePreview(_ tif: OpaquePointer, _ preview: (width: Int, height: Int, rgb: [UInt8]),
                              exifOffset: UInt64) {
        setCameraTags(tif, exifOffset: exifOffset)
        TIFFFixture.set32(tif, TIFFTAG_SUBFILETYPE, UInt32(FILETYPE_REDUCEDIMAGE))
        TIFFFixture.set32(tif, TIFFTAG_IMAGEWIDTH, UInt32(preview.width))
        TIFFFixture.set32(tif, TIFFTAG_IMAGELENGTH, UInt32(preview.height))
        TIFFFixture.set16(tif, TIFFTAG_SAMPLESPERPIXEL, 3)
        TIFFFixture.set16(tif, TIFFTAG_BITSPERSAMPLE, 8)
        TIFFFixture.set16(tif, TIFFTAG_PLANARCONFIG, UInt16(PLANARCONFIG_CONTIG))
        TIFFFixture.set32(tif, TIFFTAG_ROWSPERSTRIP, UInt32(preview.height))
        XCTAssertEqual(replica_tiff_reserve_subifds(tif, 1), 1)
        if previewIsJPEG {
            TIFFFixture.set16(tif, TIFFTAG_PHOTOMETRIC, UInt16(PHOTOMETRIC_YCBCR))
            TIFFFixture.set16(tif, TIFFTAG_COMPRESSION, UInt16(COMPRESSION_JPEG))
            var jpeg = EncodedFixture.jpeg(width: preview.width, height: preview.height, rgb: preview.rgb)
            XCTAssertEqual(Int(TIFFWriteRawStrip(tif, 0, &jpeg, Int64(jpeg.count))), jpeg.count)
        } else {
            TIFFFixture.set16(tif, TIFFTAG_PHOTOMETRIC, UInt16(PHOTOMETRIC_RGB))
            TIFFFixture.set16(tif, TIFFTAG_COMPRESSION, UInt16(COMPRESSION_NONE))
            var rgb = preview.rgb
            XCTAssertEqual(Int(TIFFWriteEncodedStrip(tif, 0, &rgb, Int64(rgb.count))), rgb.count)
        }
        XCTAssertEqual(TIFFWriteDirectory(tif), 1)
    }

    /// The raw image: IFD 0 itself, or the SubIFD that IFD 0 reserved when it holds the preview.
    private func writeMosaic(_ tif: OpaquePointer) {
        TIFFFixture.set32(tif, TIFFTAG_SUBFILETYPE, 0)
        TIFFFixture.set32(tif, TIFFTAG_IMAGEWIDTH, UInt32(width))
        TIFFFixture.set32(tif, TIFFTAG_IMAGELENGTH, UInt32(height))
        TIFFFixture.set16(tif, TIFFTAG_SAMPLESPERPIXEL, 1)
        TIFFFixture.set16(tif, TIFFTAG_BITSPERSAMPLE, 16)
        TIFFFixture.set16(tif, TIFFTAG_PHOTOMETRIC, UInt16(PHOTOMETRIC_CFA))
        TIFFFixture.set16(tif, TIFFTAG_PLANARCONFIG, UInt16(PLANARCONFIG_CONTIG))
        TIFFFixture.set16(tif, TIFFTAG_COMPRESSION, UInt16(COMPRESSION_NONE))
        TIFFFixture.set32(tif, TIFFTAG_ROWSPERSTRIP, 16)
        TIFFFixture.setArray(tif, TIFFTAG_CFAREPEATPATTERNDIM, [UInt16]([2, 2]))
        TIFFFixture.setArray(tif, TIFFTAG_CFAPATTERN, [UInt8]([0, 1, 1, 2]))
        TIFFFixture.setReals(tif, TIFFTAG_BLACKLEVEL, [blackLevel])
        TIFFFixture.setArray(tif, TIFFTAG_WHITELEVEL, [whiteLevel])
        for y in 0..<height {
            var line = (0..<width).map { photosite(x: $0, y: y) }
            XCTAssertEqual(TIFFWriteScanline(tif, &line, UInt32(y), 0), 1)
        }
        XCTAssertEqual(TIFFWriteDirectory(tif), 1)
    }

    /// XYZ (D65) to linear sRGB: the inverse of the sRGB-to-XYZ matrix LibRaw uses.
    static let xyzToLinearSRGB: [Double] = invert3x3([0.412453, 0.357580, 0.180423,
                                                      0.212671, 0.715160, 0.072169,
                                                      0.019334, 0.119193, 0.950227])

    private static func invert3x3(_ m: [Double]) -> [Double] {
        let cofactors = [m[4] * m[8] - m[5] * m[7], m[2] * m[7] - m[1] * m[8], m[1] * m[5] - m[2] * m[4],
                         m[5] * m[6] - m[3] * m[8], m[0] * m[8] - m[2] * m[6], m[2] * m[3] - m[0] * m[5],
                         m[3] * m[7] - m[4] * m[6], m[1] * m[6] - m[0] * m[7], m[0] * m[4] - m[1] * m[3]]
        let determinant = m[0] * cofactors[0] + m[1] * cofactors[3] + m[2] * cofactors[6]
        return cofactors.map { $0 / determinant }
    }

    /// What the developed 8-bit value of a linear level should be: LibRaw's default output curve is
    /// BT.709's (power 0.45, slope 4.5 at the toe).
    static func expectedLevel(_ linear: Double) -> Double {
        let encoded = linear < 0.018 ? 4.5 * linear : 1.099 * pow(linear, 0.45) - 0.099
        return 255 * min(1, max(0, encoded))
    }
}

// MARK: - Damage

/// The reason a decode refused its input, or nil when it decoded.
func refusal(_ decode: () throws -> DecodedImage) -> ImageIOError.Reason? {
    do {
        let image = try decode()
        XCTAssertEqual(image.pixels.bytes.count, image.pixels.width * image.pixels.height * image.pixels.channels)
        return nil
    } catch let error as ImageIOError {
        return error.reason
    } catch {
        XCTFail("not an ImageIOError: \(error)")
        return nil
    }
}

extension ImageIOError.Reason {
    /// A decoder's answer to bad content: damage, a size over the budget, or a variant it does not read.
    var isRefusalOfContent: Bool {
        switch self {
        case .corrupt, .tooLarge, .unsupported: return true
        case .notAnImage, .unsupportedExtension, .io: return false
        }
    }
}

enum Damage {
    /// The file cut at a spread of lengths: inside the header, the directories and the data.
    static func truncations(of bytes: [UInt8]) -> [[UInt8]] {
        let cuts = [0, 1, 4, 8, 12, 16, 40] + [0.1, 0.25, 0.5, 0.75, 0.9, 0.99].map { Int(Double(bytes.count) * $0) }
        return Set(cuts.filter { $0 < bytes.count }).sorted().map { Array(bytes.prefix($0)) }
    }

    /// Copies with a run of bytes overwritten at several places, from a fixed seed so failures replay.
    static func corruptions(of bytes: [UInt8], count: Int = 24) -> [[UInt8]] {
        var generator = SplitMix64(seed: 0x5EED)
        return (0..<count).map { _ in
            var copy = bytes
            let start = Int(generator.next() % UInt64(bytes.count))
            for offset in start..<min(bytes.count, start + 1 + Int(generator.next() % 16)) {
                copy[offset] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            }
            return copy
        }
    }
}
