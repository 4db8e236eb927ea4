import CExif

/// Reads the EXIF fields a reconstruction uses (camera, focal lengths, orientation, size) with libexif.
///
/// libexif parses into its own structures and logs only to a log object, which we never attach, so junk
/// gives an empty result and no output.
public enum ExifReader {
    /// The six bytes that open an EXIF block in a JPEG APP1 segment.
    static let exifHeader: [UInt8] = Array("Exif".utf8) + [0, 0]

    /// Largest EXIF block read, in bytes; a JPEG segment holds at most 64 KiB, other containers more.
    static let maximumBlockBytes = 16 << 20

    /// Metadata from an EXIF block: bare TIFF-structured data, one opening with "Exif\0\0", or HEIF's
    /// form with a four-byte offset to the TIFF header in front. Anything unreadable gives empty metadata.
    public static func read(_ exif: UnsafeRawBufferPointer) -> ImageMetadata {
        guard exif.count <= maximumBlockBytes, let tiff = tiffHeaderOffset(exif) else { return ImageMetadata() }
        let block = exifHeader + UnsafeRawBufferPointer(rebasing: exif[tiff...])
        guard let data = load(block) else { return ImageMetadata() }
        defer { exif_data_unref(data) }
        return metadata(from: data)
    }

    /// Metadata from the first APP1 "Exif" segment before a JPEG's first scan; empty when there is none.
    public static func readJPEG(_ jpeg: UnsafeRawBufferPointer) -> ImageMetadata {
        var result = ImageMetadata()
        JPEGSegments.forEach(jpeg) { marker, payload in
            guard marker == 0xE1, startsWith(payload, exifHeader, at: 0) else { return true }
            result = read(payload)
            return false
        }
        return result
    }

    // MARK: - Steps

    /// Where the TIFF header ("II*\0" or "MM\0*") starts, among the places the known containers put it.
    private static func tiffHeaderOffset(_ block: UnsafeRawBufferPointer) -> Int? {
        var candidates = [0, exifHeader.count]
        // HEIF's Exif item: a big-endian count of bytes to skip, then (usually) the Exif header and TIFF.
        if block.count >= 4 {
            let skip = Int(block[0]) << 24 | Int(block[1]) << 16 | Int(block[2]) << 8 | Int(block[3])
            if skip <= block.count { candidates += [4 + skip, 4 + skip + exifHeader.count] }
        }
        return candidates.first { isTIFFHeader(block, at: $0) }
    }

    private static func isTIFFHeader(_ block: UnsafeRawBufferPointer, at offset: Int) -> Bool {
        startsWith(block, [0x49, 0x49, 0x2A, 0x00], at: offset)
            || startsWith(block, [0x4D, 0x4D, 0x00, 0x2A], at: offset)
    }

    private static func startsWith(_ bytes: UnsafeRawBufferPointer, _ prefix: [UInt8], at offset: Int) -> Bool {
        guard offset >= 0, bytes.count >= offset + prefix.count else { return false }
        return prefix.indices.allSatisfy { bytes[offset + $0] == prefix[$0] }
    }

    /// Parses with libexif as recorded: "follow specification" would add default values for missing tags,
    /// which must not be mistaken for what the camera wrote.
    private static func load(_ block: [UInt8]) -> UnsafeMutablePointer<ExifData>? {
        guard let data = exif_data_new() else { return nil }
        exif_data_unset_option(data, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION)
        block.withUnsafeBufferPointer { exif_data_load_data(data, $0.baseAddress, UInt32($0.count)) }
        return data
    }

    private static func metadata(from data: UnsafeMutablePointer<ExifData>) -> ImageMetadata {
        let order = exif_data_get_byte_order(data)
        let fields = Fields(data: data, order: order)
        var metadata = ImageMetadata()
        metadata.make = fields.text(EXIF_TAG_MAKE)
        metadata.model = fields.text(EXIF_TAG_MODEL)
        metadata.focalLengthMillimetres = fields.rational(EXIF_TAG_FOCAL_LENGTH).flatMap(positive)
        metadata.focalLength35mmMillimetres = fields.integer(EXIF_TAG_FOCAL_LENGTH_IN_35MM_FILM)
            .flatMap { positive(Double($0)) }
        if let orientation = fields.integer(EXIF_TAG_ORIENTATION), (1...8).contains(orientation) {
            metadata.orientation = orientation
        }
        metadata.storedWidth = fields.integer(EXIF_TAG_PIXEL_X_DIMENSION) ?? 0
        metadata.storedHeight = fields.integer(EXIF_TAG_PIXEL_Y_DIMENSION) ?? 0
        return metadata
    }

    private static func positive(_ value: Double) -> Double? {
        value.isFinite && value > 0 ? value : nil
    }
}

/// Typed reads of EXIF entries that check each entry's format and size before touching its bytes.
private struct Fields {
    var data: UnsafeMutablePointer<ExifData>
    var order: ExifByteOrder

    /// The entry for `tag`: IFD0 first, then the EXIF sub-IFD (cameras differ in where they put some).
    func entry(_ tag: ExifTag) -> ExifEntry? {
        for ifd in [EXIF_IFD_0, EXIF_IFD_EXIF] {
            if let entry = replica_exif_entry(data, ifd, tag), entry.pointee.data != nil, entry.pointee.size > 0 {
                return entry.pointee
            }
        }
        return nil
    }

    /// An ASCII entry up to its first NUL, trimmed of spaces; nil when empty.
    func text(_ tag: ExifTag) -> String? {
        guard let entry = entry(tag), entry.format == EXIF_FORMAT_ASCII else { return nil }
        let bytes = UnsafeBufferPointer(start: entry.data, count: Int(entry.size))
        let text = String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        let trimmed = text.trimmingSpaces()
        return trimmed.isEmpty ? nil : trimmed
    }

    /// The first value of a SHORT or LONG entry.
    func integer(_ tag: ExifTag) -> Int? {
        guard let entry = entry(tag) else { return nil }
        switch entry.format {
        case EXIF_FORMAT_SHORT where entry.size >= 2: return Int(exif_get_short(entry.data, order))
        case EXIF_FORMAT_LONG where entry.size >= 4: return Int(exif_get_long(entry.data, order))
        default: return nil
        }
    }

    /// The first value of a RATIONAL entry; nil when its denominator is zero.
    func rational(_ tag: ExifTag) -> Double? {
        guard let entry = entry(tag), entry.format == EXIF_FORMAT_RATIONAL, entry.size >= 8 else { return nil }
        let value = exif_get_rational(entry.data, order)
        return value.denominator == 0 ? nil : Double(value.numerator) / Double(value.denominator)
    }
}

private extension String {
    /// The string without leading and trailing spaces, tabs and line breaks.
    func trimmingSpaces() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else {
            return ""
        }
        return String(self[first...last])
    }
}
