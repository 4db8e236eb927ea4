/// Builds the small EXIF block a synthetic photo carries: camera make and model and its focal lengths.
///
/// Layout: a little-endian TIFF structure with IFD0 (Make, Model, a pointer to the EXIF IFD) and the EXIF IFD
/// (ExifVersion, FocalLength, FocalLengthIn35mmFilm), each IFD followed by the values that do not fit in
/// four bytes.
public enum ExifWriter {
    /// TIFF field types, by their numbers in the TIFF 6.0 specification.
    private enum FieldType: UInt16 {
        case ascii = 2, short = 3, long = 4, rational = 5, undefined = 7
    }

    private struct Field {
        var tag: UInt16
        var type: FieldType
        var count: Int
        /// The value's bytes, little-endian; padded into the entry when four bytes or fewer.
        var bytes: [UInt8]
    }

    /// A complete JPEG APP1 segment (marker and length included) holding the EXIF block.
    ///
    /// The 35 mm-equivalent focal length is rounded to whole millimetres, as EXIF stores it (a SHORT); the
    /// focal length is kept to a thousandth of a millimetre.
    public static func app1(make: String, model: String, focalLengthMillimetres: Double,
                            focalLength35mm: Double) -> [UInt8] {
        let payload = ExifReader.exifHeader + tiff(make: make, model: model, focal: focalLengthMillimetres,
                                                   focal35: focalLength35mm)
        precondition(payload.count + 2 <= 0xFFFF, "an APP1 segment holds at most 65,533 bytes")
        return [0xFF, 0xE1] + bigEndian16(payload.count + 2) + payload
    }

    /// `jpeg` with `segment` placed right after its start-of-image marker.
    public static func inserting(_ segment: [UInt8], into jpeg: [UInt8]) -> [UInt8] {
        precondition(jpeg.count >= 2 && jpeg[0] == 0xFF && jpeg[1] == 0xD8, "not a JPEG: no start-of-image")
        return Array(jpeg[0..<2]) + segment + jpeg[2...]
    }

    // MARK: - Steps

    private static func tiff(make: String, model: String, focal: Double, focal35: Double) -> [UInt8] {
        let ifd0 = [Field(tag: 0x010F, type: .ascii, count: make.utf8.count + 1, bytes: Array(make.utf8) + [0]),
                    Field(tag: 0x0110, type: .ascii, count: model.utf8.count + 1, bytes: Array(model.utf8) + [0]),
                    Field(tag: 0x8769, type: .long, count: 1, bytes: [0, 0, 0, 0])]
        let exif = [Field(tag: 0x9000, type: .undefined, count: 4, bytes: Array("0230".utf8)),
                    Field(tag: 0x920A, type: .rational, count: 1, bytes: rational(focal)),
                    Field(tag: 0xA405, type: .short, count: 1,
                          bytes: littleEndian16(Int(min(65_535, max(0, focal35.rounded()))))) ]
        let header: [UInt8] = [0x49, 0x49, 0x2A, 0x00] + littleEndian32(8)
        var first = ifd0
        // The EXIF IFD starts where IFD0 and its values end.
        let exifOffset = 8 + ifdSize(ifd0)
        first[2].bytes = littleEndian32(exifOffset)
        return header + ifd(first, at: 8) + ifd(exif, at: exifOffset)
    }

    /// Bytes an IFD takes with its out-of-line values (each kept at an even offset).
    private static func ifdSize(_ fields: [Field]) -> Int {
        2 + 12 * fields.count + 4 + fields.reduce(0) { $0 + ($1.bytes.count > 4 ? evenLength($1.bytes.count) : 0) }
    }

    /// One IFD placed at `offset` from the TIFF header: the count, the entries, no next IFD, then the values.
    private static func ifd(_ fields: [Field], at offset: Int) -> [UInt8] {
        var entries = littleEndian16(fields.count)
        var values: [UInt8] = []
        let valuesStart = offset + 2 + 12 * fields.count + 4
        for field in fields.sorted(by: { $0.tag < $1.tag }) {
            entries += littleEndian16(Int(field.tag)) + littleEndian16(Int(field.type.rawValue))
                + littleEndian32(field.count)
            if field.bytes.count <= 4 {
                entries += field.bytes + [UInt8](repeating: 0, count: 4 - field.bytes.count)
            } else {
                entries += littleEndian32(valuesStart + values.count)
                values += field.bytes + [UInt8](repeating: 0, count: evenLength(field.bytes.count) - field.bytes.count)
            }
        }
        return entries + littleEndian32(0) + values
    }

    private static func rational(_ value: Double) -> [UInt8] {
        let numerator = Int(min(Double(UInt32.max), max(0, (value * 1000).rounded())))
        return littleEndian32(numerator) + littleEndian32(1000)
    }

    private static func evenLength(_ count: Int) -> Int { count + count % 2 }

    private static func littleEndian16(_ value: Int) -> [UInt8] { [UInt8(value & 0xFF), UInt8(value >> 8 & 0xFF)] }

    private static func littleEndian32(_ value: Int) -> [UInt8] { (0..<4).map { UInt8(value >> (8 * $0) & 0xFF) } }

    private static func bigEndian16(_ value: Int) -> [UInt8] { [UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)] }
}

extension JPEGEncoder {
    /// The buffer as a JPEG at `quality` (1–100) with an APP1 segment (from `ExifWriter.app1`) after its SOI.
    public static func encode(_ pixels: PixelBuffer, quality: Int, app1: [UInt8]) throws(ImageIOError) -> [UInt8] {
        ExifWriter.inserting(app1, into: try encode(pixels, quality: quality))
    }
}
