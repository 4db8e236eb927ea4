import CExif
import CPNG
import CTurboJPEG
import Foundation
import ReplicaTestSupport
import XCTest
@testable import ReplicaImageIO

#if canImport(Glibc)
import Glibc
#endif

/// Test images made at test time with the C libraries themselves (TurboJPEG, libexif, libpng), so every
/// fixture is deterministic and nothing binary is kept in the repository; plus the shared photo sets.
enum Fixtures {
    // MARK: - Pixels

    /// A deterministic RGB (or grey) pattern: red grows left to right, green top to bottom, blue is a
    /// checker of 8-pixel squares; grey is the mean of the three.
    static func pattern(width: Int, height: Int, channels: Int = 3) -> PixelBuffer {
        var bytes = [UInt8]()
        bytes.reserveCapacity(width * height * channels)
        for y in 0..<height {
            for x in 0..<width {
                let red = UInt8(x * 255 / max(width - 1, 1)), green = UInt8(y * 255 / max(height - 1, 1))
                let blue: UInt8 = (x / 8 + y / 8) % 2 == 0 ? 40 : 220
                if channels == 1 {
                    bytes.append(UInt8((Int(red) + Int(green) + Int(blue)) / 3))
                } else {
                    bytes += [red, green, blue]
                }
            }
        }
        return PixelBuffer(width: width, height: height, channels: channels, bytes: bytes)
    }

    /// Smooth RGB: red grows left to right, green top to bottom, blue stays at 128; nothing JPEG blurs.
    static func ramps(width: Int, height: Int) -> PixelBuffer {
        var image = pattern(width: width, height: height)
        for index in stride(from: 2, to: image.bytes.count, by: 3) { image.bytes[index] = 128 }
        return image
    }

    /// A buffer where every pixel has the same value(s).
    static func constant(width: Int, height: Int, _ pixel: [UInt8]) -> PixelBuffer {
        var bytes = [UInt8](repeating: 0, count: width * height * pixel.count)
        for channel in pixel.indices {
            for index in stride(from: channel, to: bytes.count, by: pixel.count) { bytes[index] = pixel[channel] }
        }
        return PixelBuffer(width: width, height: height, channels: pixel.count, bytes: bytes)
    }

    // MARK: - JPEG

    /// What the EXIF block of a fixture JPEG says; nil fields are left out.
    struct Exif {
        var orientation: Int?
        var make: String?
        var model: String?
        /// Focal length in millimetres, written as a rational with denominator 100.
        var focalLengthMillimetres: Double?
        var focalLength35mmMillimetres: Int?
        var pixelWidth: Int?
        var pixelHeight: Int?
    }

    /// A JPEG of `pixels` from TurboJPEG, with an APP1 EXIF segment right after SOI when `exif` is given.
    /// 4:4:4 by default so small test patterns keep their colours.
    static func jpeg(_ pixels: PixelBuffer, quality: Int = 100, exif: Exif? = nil,
                     subsampling: TJSAMP = TJSAMP_444, progressive: Bool = false) -> [UInt8] {
        let format = pixels.channels == 1 ? TJPF_GRAY : TJPF_RGB
        let sampling = pixels.channels == 1 ? TJSAMP_GRAY : subsampling
        let file = compress(pixels.bytes, width: pixels.width, height: pixels.height, pixelSize: pixels.channels,
                            format: format, subsampling: sampling, quality: quality,
                            flags: progressive ? TJFLAG_PROGRESSIVE : 0)
        guard let exif else { return file }
        let block = exifBlock(exif)
        let length = block.count + 2
        let segment: [UInt8] = [0xFF, 0xE1, UInt8(length >> 8), UInt8(length & 0xFF)] + block
        return Array(file[0..<2]) + segment + Array(file[2...])
    }

    /// A JPEG in the CMYK colour space (TurboJPEG writes it as YCCK), from four-byte pixels.
    static func cmykJPEG(width: Int, height: Int) -> [UInt8] {
        let inks = (0..<(width * height)).flatMap { index -> [UInt8] in
            [UInt8(index % 256), 128, UInt8(255 - index % 256), 30]
        }
        return compress(inks, width: width, height: height, pixelSize: 4, format: TJPF_CMYK,
                        subsampling: TJSAMP_444, quality: 90)
    }

    /// A valid JPEG whose start-of-frame is rewritten to declare `width` × `height`.
    static func jpegDeclaring(width: Int, height: Int) -> [UInt8] {
        var file = jpeg(pattern(width: 16, height: 16), quality: 90)
        let frame = offsetOfSegment(0xC0, in: file)!
        // After the marker: length (2), precision (1), height (2), width (2).
        file[frame + 5] = UInt8(height >> 8); file[frame + 6] = UInt8(height & 0xFF)
        file[frame + 7] = UInt8(width >> 8); file[frame + 8] = UInt8(width & 0xFF)
        return file
    }

    /// Offset of the 0xFF of the first segment with `marker`, walking lengths from SOI.
    static func offsetOfSegment(_ marker: UInt8, in file: [UInt8]) -> Int? {
        var offset = 2
        while offset + 4 <= file.count, file[offset] == 0xFF {
            if file[offset + 1] == marker { return offset }
            if file[offset + 1] == 0xDA { return nil }
            offset += 2 + (Int(file[offset + 2]) << 8 | Int(file[offset + 3]))
        }
        return nil
    }

    private static func compress(_ bytes: [UInt8], width: Int, height: Int, pixelSize: Int, format: TJPF,
                                 subsampling: TJSAMP, quality: Int, flags: Int32 = 0) -> [UInt8] {
        let handle = tjInitCompress()!
        defer { tjDestroy(handle) }
        var output: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        defer { tjFree(output) }
        let status = bytes.withUnsafeBufferPointer {
            tjCompress2(handle, $0.baseAddress, Int32(width), Int32(width * pixelSize), Int32(height),
                        Int32(format.rawValue), &output, &size, Int32(subsampling.rawValue), Int32(quality), flags)
        }
        precondition(status == 0, "TurboJPEG could not make a fixture: \(String(cString: tjGetErrorStr2(handle)))")
        return Array(UnsafeBufferPointer(start: output, count: Int(size)))
    }

    // MARK: - EXIF

    /// An EXIF block as libexif saves it (opening with "Exif\0\0"), little-endian.
    static func exifBlock(_ exif: Exif) -> [UInt8] {
        let data = exif_data_new()!
        defer { exif_data_unref(data) }
        exif_data_set_byte_order(data, EXIF_BYTE_ORDER_INTEL)
        let writer = ExifWriter(data: data)
        if let orientation = exif.orientation { writer.short(EXIF_IFD_0, EXIF_TAG_ORIENTATION, orientation) }
        if let make = exif.make { writer.ascii(EXIF_IFD_0, EXIF_TAG_MAKE, make) }
        if let model = exif.model { writer.ascii(EXIF_IFD_0, EXIF_TAG_MODEL, model) }
        if let focal = exif.focalLengthMillimetres {
            writer.rational(EXIF_IFD_EXIF, EXIF_TAG_FOCAL_LENGTH, numerator: Int((focal * 100).rounded()),
                            denominator: 100)
        }
        if let focal35 = exif.focalLength35mmMillimetres {
            writer.short(EXIF_IFD_EXIF, EXIF_TAG_FOCAL_LENGTH_IN_35MM_FILM, focal35)
        }
        if let width = exif.pixelWidth { writer.long(EXIF_IFD_EXIF, EXIF_TAG_PIXEL_X_DIMENSION, width) }
        if let height = exif.pixelHeight { writer.short(EXIF_IFD_EXIF, EXIF_TAG_PIXEL_Y_DIMENSION, height) }
        var saved: UnsafeMutablePointer<UInt8>?
        var size: UInt32 = 0
        exif_data_save_data(data, &saved, &size)
        defer { free(saved) }
        return Array(UnsafeBufferPointer(start: saved, count: Int(size)))
    }

    /// Adds entries to libexif's tree; each entry's bytes are malloc'd, as libexif's default allocator frees.
    private struct ExifWriter {
        var data: UnsafeMutablePointer<ExifData>

        func short(_ ifd: ExifIfd, _ tag: ExifTag, _ value: Int) {
            add(ifd, tag, EXIF_FORMAT_SHORT, components: 1, size: 2) {
                exif_set_short($0, exif_data_get_byte_order(data), ExifShort(value))
            }
        }

        func long(_ ifd: ExifIfd, _ tag: ExifTag, _ value: Int) {
            add(ifd, tag, EXIF_FORMAT_LONG, components: 1, size: 4) {
                exif_set_long($0, exif_data_get_byte_order(data), ExifLong(value))
            }
        }

        func rational(_ ifd: ExifIfd, _ tag: ExifTag, numerator: Int, denominator: Int) {
            add(ifd, tag, EXIF_FORMAT_RATIONAL, components: 1, size: 8) {
                let value = ExifRational(numerator: ExifLong(numerator), denominator: ExifLong(denominator))
                exif_set_rational($0, exif_data_get_byte_order(data), value)
            }
        }

        func ascii(_ ifd: ExifIfd, _ tag: ExifTag, _ text: String) {
            let bytes = Array(text.utf8) + [0]
            add(ifd, tag, EXIF_FORMAT_ASCII, components: bytes.count, size: bytes.count) { target in
                for (index, byte) in bytes.enumerated() { target[index] = byte }
            }
        }

        private func add(_ ifd: ExifIfd, _ tag: ExifTag, _ format: ExifFormat, components: Int, size: Int,
                         fill: (UnsafeMutablePointer<UInt8>) -> Void) {
            let entry = exif_entry_new()!
            let bytes = malloc(size)!.assumingMemoryBound(to: UInt8.self)
            fill(bytes)
            entry.pointee.tag = tag
            entry.pointee.format = format
            entry.pointee.components = UInt(components)
            entry.pointee.size = UInt32(size)
            entry.pointee.data = bytes
            exif_content_add_entry(replica_exif_content(data, ifd), entry)
            exif_entry_unref(entry)
        }
    }

    // MARK: - PNG

    /// libpng's simplified formats; png.h builds most from flags with `|`, which Swift does not import.
    enum PNGFormat {
        static let grey = UInt32(PNG_FORMAT_GRAY)
        static let greyAlpha = UInt32(PNG_FORMAT_FLAG_ALPHA)
        static let rgb = UInt32(PNG_FORMAT_FLAG_COLOR)
        static let rgba = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA)
        static let linearRGB = UInt32(PNG_FORMAT_FLAG_LINEAR | PNG_FORMAT_FLAG_COLOR)
        static let rgbColormap = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_COLORMAP)
        static let rgbaColormap = UInt32(PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA | PNG_FORMAT_FLAG_COLORMAP)
    }

    /// A PNG from libpng's simplified writer. `format` is a `PNG_FORMAT_*` value; 16-bit (linear) formats
    /// take `samples16`, the others `samples`; colour-mapped formats take `colormap` entries laid out as
    /// `format` without its colour-map flag.
    static func png(width: Int, height: Int, format: UInt32, samples: [UInt8] = [], samples16: [UInt16] = [],
                    colormap: [UInt8] = [], colormapEntries: Int = 0) -> [UInt8] {
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = format
        image.colormap_entries = UInt32(colormapEntries)
        let write = { (buffer: UnsafeRawPointer, memory: UnsafeMutableRawPointer?, size: inout Int) -> Int32 in
            colormap.withUnsafeBytes { map in
                png_image_write_to_memory(&image, memory, &size, 0, buffer, 0,
                                          colormap.isEmpty ? nil : map.baseAddress)
            }
        }
        return withSamples(samples, samples16) { buffer in
            var size = 0
            _ = write(buffer, nil, &size)
            precondition(size > 0, "libpng could not size a fixture: \(message(image))")
            var file = [UInt8](repeating: 0, count: size)
            let status = file.withUnsafeMutableBytes { write(buffer, $0.baseAddress, &size) }
            precondition(status != 0, "libpng could not write a fixture: \(message(image))")
            return Array(file[0..<size])
        }
    }

    private static func withSamples(_ samples: [UInt8], _ samples16: [UInt16],
                                    _ body: (UnsafeRawPointer) -> [UInt8]) -> [UInt8] {
        samples16.isEmpty
            ? samples.withUnsafeBytes { body($0.baseAddress!) }
            : samples16.withUnsafeBytes { body($0.baseAddress!) }
    }

    private static func message(_ image: png_image) -> String {
        var text = image.message
        return withUnsafeBytes(of: &text) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// A PNG with a valid 1×1 image whose IHDR is rewritten (with a correct CRC) to declare another size.
    static func pngDeclaring(width: Int, height: Int) -> [UInt8] {
        var file = png(width: 1, height: 1, format: PNGFormat.rgb, samples: [1, 2, 3])
        for (offset, value) in [(16, width), (20, height)] {
            for byte in 0..<4 { file[offset + byte] = UInt8(truncatingIfNeeded: value >> (24 - 8 * byte)) }
        }
        let crc = crc32(file[12..<29])
        for byte in 0..<4 { file[29 + byte] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * byte)) }
        return file
    }

    /// The PNG without its chunks of the given types (each chunk is length, type, data, CRC: no CRC changes).
    static func removingChunks(_ types: Set<String>, from file: [UInt8]) -> [UInt8] {
        var kept = Array(file[0..<8]), offset = 8
        while offset + 12 <= file.count {
            let length = (0..<4).reduce(0) { $0 << 8 | Int(file[offset + $1]) }
            let type = String(decoding: file[(offset + 4)..<(offset + 8)], as: UTF8.self)
            if !types.contains(type) { kept += file[offset..<(offset + 12 + length)] }
            offset += 12 + length
        }
        return kept
    }

    /// The CRC-32 PNG chunks carry (polynomial 0xEDB88320, reflected), bit by bit: fixtures are tiny.
    static func crc32<Bytes: Sequence<UInt8>>(_ bytes: Bytes) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }

    // MARK: - Damage

    /// The file cut to each of the given lengths.
    static func truncations(of file: [UInt8], at lengths: [Int]) -> [(length: Int, bytes: [UInt8])] {
        lengths.map { ($0, Array(file[0..<$0])) }
    }

    /// Copies of the file, each with one byte inverted, at offsets a seeded generator picks.
    static func flips(of file: [UInt8], count: Int, seed: UInt64) -> [(offset: Int, bytes: [UInt8])] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in
            let offset = Int(generator.next() % UInt64(file.count))
            var copy = file
            copy[offset] ^= 0xFF
            return (offset, copy)
        }
    }

    // MARK: - Shared photo sets

    /// `../shared/datasets` from the package root, read in place.
    static let datasets = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/datasets")

    /// Paths of the files in a data set's folder whose names end in one of `extensions`, sorted; skips
    /// the test when the folder is not there.
    static func datasetFiles(_ folder: String, extensions: Set<String>) throws -> [String] {
        let directory = datasets.appendingPathComponent(folder)
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else {
            throw XCTSkip("the shared data set \(directory.path) is not on this machine")
        }
        return names.filter { extensions.contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
            .map { directory.appendingPathComponent($0).path }
    }

    static func read(_ path: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    }
}

/// Assertions shared by the test classes.
enum Check {
    /// The reason of the ImageIOError `body` throws; fails the test when it succeeds.
    static func reason<T>(_ body: () throws(ImageIOError) -> T, file: StaticString = #filePath,
                          line: UInt = #line) -> ImageIOError.Reason? {
        do {
            _ = try body()
            XCTFail("expected an ImageIOError, but it succeeded", file: file, line: line)
            return nil
        } catch {
            return error.reason
        }
    }

    /// True for `.corrupt` with any message.
    static func isCorrupt(_ reason: ImageIOError.Reason?) -> Bool {
        if case .corrupt = reason { return true }
        return false
    }

    /// The largest difference between two equally sized byte buffers.
    static func maximumDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
        precondition(a.count == b.count, "buffers of different sizes")
        return zip(a, b).map { abs(Int($0) - Int($1)) }.max() ?? 0
    }

    /// Seconds `body` takes on the wall clock.
    static func seconds(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }
}
