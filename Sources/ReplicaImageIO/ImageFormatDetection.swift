/// Which format a file is, decided from its first bytes, and which names the API accepts.
public enum ImageFormatDetection {
    /// Extensions accepted for upload: the API's list, `.heic`, and the common camera-raw ones.
    public static let acceptedExtensions: Set<String> = [
        "jpg", "jpeg", "png", "heif", "heifs", "heic", "raw", "tif", "tiff",
        "dng", "cr2", "cr3", "nef", "arw", "orf", "rw2", "raf",
    ]

    /// True when the file name's extension is one we accept (case-insensitive).
    public static func isAcceptedName(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return false }
        return acceptedExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// The format the bytes are in, or nil. Needs the first 16 bytes; a TIFF header is refined with
    /// `refineTIFF`, which reads further, so a camera raw in a TIFF container is only told apart when its
    /// directories are among the bytes given.
    public static func detect(_ bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        func at(_ offset: Int, _ expected: [UInt8]) -> Bool {
            guard bytes.count >= offset + expected.count else { return false }
            return expected.indices.allSatisfy { bytes[offset + $0] == expected[$0] }
        }
        if at(0, [0xFF, 0xD8, 0xFF]) { return .jpeg }
        if at(0, [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        // ISO base media: a `ftyp` box whose brand is one of HEIF's.
        if at(4, Array("ftyp".utf8)), bytes.count >= 12 {
            let brand = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[8..<12]), as: UTF8.self)
            if ["heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif", "avis"].contains(brand) {
                return .heif
            }
            if brand == "crx " { return .raw }  // Canon CR3 is an ISO media file too.
        }
        // Fujifilm RAF and Olympus/Panasonic variants of the TIFF header.
        if at(0, Array("FUJIFILMCCD-RAW".utf8)) { return .raw }
        if at(0, [0x49, 0x49, 0x52, 0x4F]) || at(0, [0x49, 0x49, 0x55, 0x00]) { return .raw }
        if at(0, [0x49, 0x49, 0x2A, 0x00]) || at(0, [0x4D, 0x4D, 0x00, 0x2A]) { return refineTIFF(bytes) }
        return nil
    }

    public static func detect(_ bytes: [UInt8]) -> ImageFormat? {
        bytes.withUnsafeBytes { detect($0) }
    }

    /// For bytes with a TIFF header: .raw for a camera raw in a TIFF container (DNG, CR2, NEF, ARW, …),
    /// otherwise .tiff. A raw is a Canon CR2 ("CR" at byte 8), or a file where IFD0, a following IFD or one of
    /// their SubIFDs carries DNGVersion or a CFA or LinearRaw photometric interpretation.
    public static func refineTIFF(_ bytes: UnsafeRawBufferPointer) -> ImageFormat {
        if bytes.count >= 10, bytes[8] == UInt8(ascii: "C"), bytes[9] == UInt8(ascii: "R") { return .raw }
        return TIFFDirectoryScan(bytes)?.findsRawMarker() == true ? .raw : .tiff
    }
}

/// A bounds-checked walk over a classic TIFF's directories that looks for the tags marking a camera raw.
private struct TIFFDirectoryScan {
    let bytes: UnsafeRawBufferPointer
    let littleEndian: Bool

    /// Directories visited at most; a hostile file may chain or nest them in loops.
    static let directoryLimit = 16
    static let dngVersionTag = 50706, photometricTag = 262, subIFDsTag = 330
    static let rawPhotometrics: Set<Int> = [32803, 34892]  // CFA, LinearRaw

    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 8, bytes[0] == bytes[1], bytes[0] == 0x49 || bytes[0] == 0x4D else { return nil }
        self.bytes = bytes
        littleEndian = bytes[0] == 0x49
    }

    func findsRawMarker() -> Bool {
        var pending = [uint32(at: 4)].compactMap { $0 }, visited = Set<Int>()
        while let offset = pending.popLast(), visited.count < Self.directoryLimit {
            guard offset >= 8, visited.insert(offset).inserted, let count = uint16(at: offset) else { continue }
            for index in 0..<count {
                let entry = offset + 2 + index * 12
                guard let tag = uint16(at: entry) else { break }
                if tag == Self.dngVersionTag { return true }
                if tag == Self.photometricTag, let value = uint16(at: entry + 8),
                   Self.rawPhotometrics.contains(value) { return true }
                if tag == Self.subIFDsTag { pending += subIFDOffsets(entry: entry) }
            }
            if let next = uint32(at: offset + 2 + count * 12), next != 0 { pending.append(next) }
        }
        return false
    }

    /// The SubIFD offsets of an entry: in the entry itself when there is one, else in the array it points to.
    private func subIFDOffsets(entry: Int) -> [Int] {
        guard let count = uint32(at: entry + 4), count > 0 else { return [] }
        if count == 1 { return [uint32(at: entry + 8)].compactMap { $0 } }
        guard let array = uint32(at: entry + 8) else { return [] }
        return (0..<min(count, Self.directoryLimit)).compactMap { uint32(at: array + $0 * 4) }
    }

    private func uint16(at offset: Int) -> Int? {
        guard offset >= 0, offset <= bytes.count - 2 else { return nil }
        let (first, second) = (Int(bytes[offset]), Int(bytes[offset + 1]))
        return littleEndian ? second << 8 | first : first << 8 | second
    }

    private func uint32(at offset: Int) -> Int? {
        guard let first = uint16(at: offset), let second = uint16(at: offset + 2) else { return nil }
        return littleEndian ? second << 16 | first : first << 16 | second
    }
}
