import Foundation

/// One file of a stored ZIP archive: what its headers say about it.
public struct ZipEntry: Sendable, Equatable {
    /// Path inside the archive, 1 to 65,535 UTF-8 bytes; every header sets the UTF-8 flag (bit 11). APPNOTE wants
    /// forward slashes and no leading slash or drive letter; that is the caller's to ensure, it is not checked.
    public var name: String
    /// Length of the file's contents in bytes; entries are stored, so this is also their length in the archive.
    public var size: UInt64
    /// CRC-32 of the contents (see ``CRC32``), known before the archive is sent.
    public var crc32: UInt32
    /// Last modification time, written twice. The MS-DOS date and time fields hold it in UTC, floored to
    /// 2 seconds and clamped to 1980-01-01 … 2107-12-31, because that format has no time zone and UTC keeps the
    /// bytes independent of the server's setting. The 0x5455 extended-timestamp extra field holds the exact
    /// Unix second whenever it fits a signed 32-bit value (1901 … 2038), so Info-ZIP unzip and the other readers
    /// that know the field restore the true time; those that only know the DOS fields (Python's zipfile, Windows
    /// Explorer) show UTC wall time.
    public var modified: Date

    /// Creates an entry; nothing is checked until the entries go into a ``ZipLayout``.
    public init(name: String, size: UInt64, crc32: UInt32, modified: Date) {
        self.name = name
        self.size = size
        self.crc32 = crc32
        self.modified = modified
    }
}

/// Why a set of entries cannot become an archive; `index` is the position in the `entries` array.
public enum ZipLayoutError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The entry's name is the empty string; readers cannot extract a file without a name.
    case emptyName(index: Int)
    /// The entry's name has `byteCount` UTF-8 bytes, more than the 16-bit name-length field's 65,535.
    case nameTooLong(index: Int, byteCount: Int)
    /// The archive would be longer than `Int64.max` bytes, beyond what file offsets and Content-Length can hold.
    case archiveTooLarge

    /// The broken rule and the entry it concerns, for logs.
    public var description: String {
        switch self {
        case .emptyName(let index):
            return "ZIP entry \(index) has an empty name"
        case .nameTooLong(let index, let byteCount):
            return "ZIP entry \(index) has a \(byteCount)-byte name; at most 65535 UTF-8 bytes fit"
        case .archiveTooLarge:
            return "ZIP archive would exceed \(Int64.max) bytes"
        }
    }
}

/// The byte layout of a stored (uncompressed) ZIP archive whose sizes and CRCs are known before it is sent,
/// so it can be streamed from the original files without a temporary archive and with an exact Content-Length.
///
/// The archive is, in order: for each entry its ``localHeader(at:)`` followed by its `size` bytes of contents,
/// then the ``trailer()``. Headers never use data descriptors (flag bit 3 is clear). ZIP64 structures appear
/// exactly where a 32-bit or 16-bit field would overflow (PKWARE APPNOTE 4.3.14, 4.4.1.4, 4.5.3). Offsets are
/// computed once in `init` (O(n)); each local header is built on demand, so the caller holds one at a time.
public struct ZipLayout: Sendable {
    /// The entries, in archive order.
    public let entries: [ZipEntry]
    /// Byte offset of each entry's local header from the start of the archive.
    private let localHeaderOffsets: [UInt64]
    /// Byte offset of the first central directory header, just after the last entry's contents.
    private let centralDirectoryOffset: UInt64
    /// Bytes of all central directory headers together.
    private let centralDirectorySize: UInt64
    /// Per entry, the bytes of the padding extra field in its local header (0, or 4 and more).
    private let localPadding: [UInt16]

    /// Checks every name and computes every offset; throws ``ZipLayoutError`` for an empty name, a name over
    /// 65,535 UTF-8 bytes or an archive over `Int64.max` bytes.
    ///
    /// `dataAlignment` above 1 starts every entry's contents at a multiple of it from the start of the archive,
    /// as USDZ asks (64), with a padding extra field in the local header; the central headers carry none.
    public init(entries: [ZipEntry], dataAlignment: Int = 1) throws {
        precondition(dataAlignment >= 1 && dataAlignment <= 4096, "an alignment from 1 to 4096 bytes")
        var offsets: [UInt64] = []
        var padding: [UInt16] = []
        offsets.reserveCapacity(entries.count)
        var position: UInt64 = 0
        let alignment = UInt64(dataAlignment)
        for (index, entry) in entries.enumerated() {
            try Self.checkName(entry.name, index: index)
            offsets.append(position)
            let header = Self.localHeaderLength(entry, padding: 0)
            var pad: UInt64 = 0
            if alignment > 1, (position + header) % alignment != 0 {
                // An extra field is at least its 4-byte ID and length.
                pad = ZipFormat.extraHeaderLength
                    + (alignment - (position + header + ZipFormat.extraHeaderLength) % alignment) % alignment
            }
            padding.append(UInt16(pad))
            position = try Self.add(position, header + pad, entry.size)
        }

        var directorySize: UInt64 = 0
        for (entry, offset) in zip(entries, offsets) {
            directorySize = try Self.add(directorySize, Self.centralHeaderLength(entry, localHeaderOffset: offset))
        }
        // The whole archive, end records included, must stay within what offsets and Content-Length can hold.
        _ = try Self.add(position, directorySize, ZipFormat.endRecordsLength(zip64: true))

        self.entries = entries
        self.localHeaderOffsets = offsets
        self.localPadding = padding
        self.centralDirectoryOffset = position
        self.centralDirectorySize = directorySize
    }

    /// True when the archive carries the ZIP64 end record and locator: 65,535 entries or more, or a central
    /// directory that starts or spans 0xFFFFFFFF bytes or more. Any entry that needs a ZIP64 extra field makes
    /// this true too, because its contents end (and so the central directory starts) past 4 GiB.
    public var needsZip64: Bool {
        entries.count >= ZipFormat.max16 || centralDirectoryOffset >= ZipFormat.max32
            || centralDirectorySize >= ZipFormat.max32
    }

    /// Exact length of the whole archive in bytes: local headers, contents and trailer; for Content-Length.
    public var totalLength: UInt64 {
        centralDirectoryOffset + centralDirectorySize + ZipFormat.endRecordsLength(zip64: needsZip64)
    }

    /// Byte offset, from the start of the archive, where entry `index`'s contents begin.
    public func dataOffset(at index: Int) -> UInt64 {
        localHeaderOffsets[index] + Self.localHeaderLength(entries[index], padding: localPadding[index])
    }

    /// The local file header, with its extra fields, that precedes entry `index`'s contents.
    public func localHeader(at index: Int) -> [UInt8] {
        let entry = entries[index]
        let padding = localPadding[index]
        var writer = LittleEndianWriter(capacity: Int(Self.localHeaderLength(entry, padding: padding)))
        Self.appendLocalHeader(entry, needsZip64: Self.entryNeedsZip64(entry, localHeaderOffsets[index]),
                               padding: padding, to: &writer)
        return writer.bytes
    }

    /// Everything after the last entry's contents: the central directory, the ZIP64 end record and locator
    /// when ``needsZip64``, and the end of central directory record.
    public func trailer() -> [UInt8] {
        var writer = LittleEndianWriter(capacity: Int(totalLength - centralDirectoryOffset))
        for (entry, offset) in zip(entries, localHeaderOffsets) {
            Self.appendCentralHeader(entry, localHeaderOffset: offset, to: &writer)
        }
        if needsZip64 {
            appendZip64EndRecord(to: &writer)
            appendZip64EndLocator(to: &writer)
        }
        appendEndRecord(to: &writer)
        return writer.bytes
    }
}

// MARK: - Validation and lengths

extension ZipLayout {
    private static func checkName(_ name: String, index: Int) throws {
        let byteCount = name.utf8.count
        if byteCount == 0 { throw ZipLayoutError.emptyName(index: index) }
        if byteCount > ZipFormat.max16 { throw ZipLayoutError.nameTooLong(index: index, byteCount: byteCount) }
    }

    /// The sum of `terms`, or `archiveTooLarge` once it passes `Int64.max`.
    private static func add(_ terms: UInt64...) throws -> UInt64 {
        var sum: UInt64 = 0
        for term in terms {
            let (next, overflow) = sum.addingReportingOverflow(term)
            guard !overflow, next <= UInt64(Int64.max) else { throw ZipLayoutError.archiveTooLarge }
            sum = next
        }
        return sum
    }

    /// Whether the entry's headers carry version 4.5: its size or its local header's offset does not fit below
    /// the 32-bit "see ZIP64" marker. Local and central headers agree, though only the central one has an offset.
    private static func entryNeedsZip64(_ entry: ZipEntry, _ localHeaderOffset: UInt64) -> Bool {
        entry.size >= ZipFormat.max32 || localHeaderOffset >= ZipFormat.max32
    }

    /// The local header's ZIP64 field values: both sizes, uncompressed first, when they overflow (APPNOTE 4.5.3
    /// requires both in a local header); empty otherwise.
    private static func localZip64Values(_ entry: ZipEntry) -> [UInt64] {
        entry.size >= ZipFormat.max32 ? [entry.size, entry.size] : []
    }

    /// The central header's ZIP64 field values: only those whose 32-bit slots overflowed, in APPNOTE 4.5.3's
    /// order (uncompressed size, compressed size, local header offset); empty when none did.
    private static func centralZip64Values(_ entry: ZipEntry, localHeaderOffset: UInt64) -> [UInt64] {
        var values = localZip64Values(entry)
        if localHeaderOffset >= ZipFormat.max32 { values.append(localHeaderOffset) }
        return values
    }

    /// Bytes of a header's extra fields: the ZIP64 field when it has values, then the extended timestamp.
    private static func extraLength(_ entry: ZipEntry, zip64Values: [UInt64]) -> UInt64 {
        let zip64 = zip64Values.isEmpty ? 0 : ZipFormat.extraHeaderLength + 8 * UInt64(zip64Values.count)
        let timestamp = ExtendedTimestamp(entry.modified) == nil ? 0 : ExtendedTimestamp.fieldLength
        return zip64 + timestamp
    }

    /// Bytes of the local header with its name and extra fields, `padding` bytes of alignment among them.
    private static func localHeaderLength(_ entry: ZipEntry, padding: UInt16) -> UInt64 {
        ZipFormat.localHeaderFixedLength + UInt64(entry.name.utf8.count)
            + extraLength(entry, zip64Values: localZip64Values(entry)) + UInt64(padding)
    }

    /// Bytes of the central directory header with its name and extra fields.
    private static func centralHeaderLength(_ entry: ZipEntry, localHeaderOffset: UInt64) -> UInt64 {
        let zip64Values = centralZip64Values(entry, localHeaderOffset: localHeaderOffset)
        return ZipFormat.centralHeaderFixedLength + UInt64(entry.name.utf8.count)
            + extraLength(entry, zip64Values: zip64Values)
    }

    /// `value` for a 32-bit field, or the 0xFFFFFFFF marker that sends readers to the ZIP64 field.
    private static func field32(_ value: UInt64) -> UInt32 {
        value >= ZipFormat.max32 ? UInt32.max : UInt32(value)
    }

    /// `value` for a 16-bit count field, or the 0xFFFF marker that sends readers to the ZIP64 end record.
    private static func field16(_ value: Int) -> UInt16 {
        value >= ZipFormat.max16 ? UInt16.max : UInt16(value)
    }
}

// MARK: - Headers

extension ZipLayout {
    /// APPNOTE 4.3.7: signature, the fields shared with the central header, name, extra fields.
    private static func appendLocalHeader(_ entry: ZipEntry, needsZip64: Bool, padding: UInt16,
                                          to writer: inout LittleEndianWriter) {
        let zip64Values = localZip64Values(entry)
        writer.append(ZipFormat.localHeaderSignature)
        appendSharedFields(entry, needsZip64: needsZip64,
                           extraLength: extraLength(entry, zip64Values: zip64Values) + UInt64(padding), to: &writer)
        writer.append(contentsOf: entry.name.utf8)
        appendExtraFields(entry, zip64Values: zip64Values, to: &writer)
        if padding > 0 {
            writer.append(ZipFormat.paddingExtraID)
            writer.append(padding - UInt16(ZipFormat.extraHeaderLength))
            for _ in 0..<(Int(padding) - Int(ZipFormat.extraHeaderLength)) { writer.append(UInt8(0)) }
        }
    }

    /// APPNOTE 4.3.12: like the local header, plus who made it, attributes and where the local header is.
    private static func appendCentralHeader(_ entry: ZipEntry, localHeaderOffset: UInt64,
                                            to writer: inout LittleEndianWriter) {
        let zip64Values = centralZip64Values(entry, localHeaderOffset: localHeaderOffset)
        writer.append(ZipFormat.centralHeaderSignature)
        writer.append(ZipFormat.versionMadeBy)
        appendSharedFields(entry, needsZip64: entryNeedsZip64(entry, localHeaderOffset),
                           extraLength: extraLength(entry, zip64Values: zip64Values), to: &writer)
        writer.append(UInt16(0))  // comment length
        writer.append(UInt16(0))  // disk number start
        writer.append(UInt16(0))  // internal attributes: binary
        writer.append(ZipFormat.externalAttributes)
        writer.append(field32(localHeaderOffset))
        writer.append(contentsOf: entry.name.utf8)
        appendExtraFields(entry, zip64Values: zip64Values, to: &writer)
    }

    /// The run of fields local and central headers share, from "version needed" through "extra field length".
    private static func appendSharedFields(_ entry: ZipEntry, needsZip64: Bool, extraLength: UInt64,
                                           to writer: inout LittleEndianWriter) {
        let dosTime = DOSTimestamp(entry.modified)
        writer.append(needsZip64 ? ZipFormat.versionNeededZip64 : ZipFormat.versionNeededStored)
        writer.append(ZipFormat.generalPurposeFlags)
        writer.append(ZipFormat.methodStored)
        writer.append(dosTime.time)
        writer.append(dosTime.date)
        writer.append(entry.crc32)
        writer.append(field32(entry.size))  // compressed size: stored, so the same as uncompressed
        writer.append(field32(entry.size))  // uncompressed size
        writer.append(UInt16(entry.name.utf8.count))
        writer.append(UInt16(extraLength))
    }

    /// The ZIP64 field (0x0001, APPNOTE 4.5.3) when it has values, then the extended timestamp when it fits.
    private static func appendExtraFields(_ entry: ZipEntry, zip64Values: [UInt64],
                                          to writer: inout LittleEndianWriter) {
        if !zip64Values.isEmpty {
            writer.append(ZipFormat.zip64ExtraID)
            writer.append(UInt16(8 * zip64Values.count))
            for value in zip64Values { writer.append(value) }
        }
        ExtendedTimestamp(entry.modified)?.append(to: &writer)
    }

    /// APPNOTE 4.3.14: the full 64-bit counts and offsets, for readers that find the locator.
    private func appendZip64EndRecord(to writer: inout LittleEndianWriter) {
        writer.append(ZipFormat.zip64EndRecordSignature)
        writer.append(ZipFormat.zip64EndRecordLength - 12)  // size of the record after this field
        writer.append(ZipFormat.versionMadeBy)
        writer.append(ZipFormat.versionNeededZip64)
        writer.append(UInt32(0))  // this disk
        writer.append(UInt32(0))  // disk where the central directory starts
        writer.append(UInt64(entries.count))  // entries on this disk
        writer.append(UInt64(entries.count))  // entries in all
        writer.append(centralDirectorySize)
        writer.append(centralDirectoryOffset)
    }

    /// APPNOTE 4.3.15: points back to the ZIP64 end record, which starts right after the central directory.
    private func appendZip64EndLocator(to writer: inout LittleEndianWriter) {
        writer.append(ZipFormat.zip64EndLocatorSignature)
        writer.append(UInt32(0))  // disk holding the ZIP64 end record
        writer.append(centralDirectoryOffset + centralDirectorySize)
        writer.append(UInt32(1))  // disks in all
    }

    /// APPNOTE 4.3.16; a field that overflows holds its all-ones marker (4.4.1.4) and the ZIP64 record the value.
    private func appendEndRecord(to writer: inout LittleEndianWriter) {
        writer.append(ZipFormat.endRecordSignature)
        writer.append(UInt16(0))  // this disk
        writer.append(UInt16(0))  // disk where the central directory starts
        writer.append(Self.field16(entries.count))  // entries on this disk
        writer.append(Self.field16(entries.count))  // entries in all
        writer.append(Self.field32(centralDirectorySize))
        writer.append(Self.field32(centralDirectoryOffset))
        writer.append(UInt16(0))  // comment length
    }
}

// MARK: - Format constants

/// Signatures, fixed lengths and field values from PKWARE's APPNOTE.TXT that this writer uses.
private enum ZipFormat {
    static let localHeaderSignature: UInt32 = 0x0403_4B50
    static let centralHeaderSignature: UInt32 = 0x0201_4B50
    static let zip64EndRecordSignature: UInt32 = 0x0606_4B50
    static let zip64EndLocatorSignature: UInt32 = 0x0706_4B50
    static let endRecordSignature: UInt32 = 0x0605_4B50

    /// Bytes of each record before its variable-length parts.
    static let localHeaderFixedLength: UInt64 = 30
    static let centralHeaderFixedLength: UInt64 = 46
    static let zip64EndRecordLength: UInt64 = 56
    static let zip64EndLocatorLength: UInt64 = 20
    static let endRecordLength: UInt64 = 22
    /// Bytes of an extra field's ID and length, before its data.
    static let extraHeaderLength: UInt64 = 4

    /// A 32-bit field at or above this value holds 0xFFFFFFFF and the value moves to a ZIP64 field.
    static let max32: UInt64 = 0xFFFF_FFFF
    /// A 16-bit count at or above this value holds 0xFFFF and the value moves to the ZIP64 end record.
    static let max16 = 0xFFFF

    /// Version 1.0 suffices for a stored file; 4.5 is the first with ZIP64 (APPNOTE 4.4.3.2).
    static let versionNeededStored: UInt16 = 10
    static let versionNeededZip64: UInt16 = 45
    /// High byte 3: Unix, so readers take the high 16 bits of the external attributes as a file mode. Low byte
    /// 63: APPNOTE 6.3, the first edition that defines the UTF-8 flag this writer sets.
    static let versionMadeBy: UInt16 = 3 << 8 | 63
    /// Bit 11: names are UTF-8. Bit 3 (data descriptor) stays clear because sizes and CRCs come first.
    static let generalPurposeFlags: UInt16 = 1 << 11
    static let methodStored: UInt16 = 0
    /// A regular file with mode 0644 (S_IFREG | rw-r--r--) in the high 16 bits; no MS-DOS attributes.
    static let externalAttributes: UInt32 = 0o100644 << 16
    static let zip64ExtraID: UInt16 = 0x0001
    /// The ID of the padding field that aligns contents: registered to no one, so readers skip it by its length.
    static let paddingExtraID: UInt16 = 0x1986

    /// Bytes of the records that follow the central directory.
    static func endRecordsLength(zip64: Bool) -> UInt64 {
        endRecordLength + (zip64 ? zip64EndRecordLength + zip64EndLocatorLength : 0)
    }
}

// MARK: - Timestamps

/// The 0x5455 "extended timestamp" extra field with only the modification time, the same in local and central
/// headers: ID, length 5, flags (bit 0: modification time present), seconds since 1970 as a signed 32-bit value.
private struct ExtendedTimestamp {
    static let fieldLength: UInt64 = 9
    let unixSeconds: Int32

    /// Nil when the time lies outside the signed 32-bit range (before 1901-12-13 or after 2038-01-19 UTC).
    init?(_ date: Date) {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        guard seconds >= Double(Int32.min), seconds <= Double(Int32.max) else { return nil }
        unixSeconds = Int32(seconds)
    }

    func append(to writer: inout LittleEndianWriter) {
        writer.append(UInt16(0x5455))
        writer.append(UInt16(5))
        writer.append(UInt8(1))
        writer.append(UInt32(bitPattern: unixSeconds))
    }
}

/// An instant as the MS-DOS date and time fields of a ZIP header, in UTC, floored to an even second and
/// clamped to the format's range, 1980-01-01 00:00:00 through 2107-12-31 23:59:58.
private struct DOSTimestamp {
    /// Bits 15–9: years since 1980; 8–5: month 1–12; 4–0: day 1–31.
    let date: UInt16
    /// Bits 15–11: hour; 10–5: minute; 4–0: seconds / 2.
    let time: UInt16

    private static let earliest = Int64(Gregorian.daysBefore(year: 1980)) * 86_400
    private static let latest = Int64(Gregorian.daysBefore(year: 2108)) * 86_400 - 2

    init(_ instant: Date) {
        let seconds = instant.timeIntervalSince1970.rounded(.down)
        let clamped = Int64(min(max(seconds, Double(Self.earliest)), Double(Self.latest)))
        let (days, secondOfDay) = clamped.quotientAndRemainder(dividingBy: 86_400)
        let (year, month, day) = Gregorian.date(daysSince1970: Int(days))
        let hour = Int(secondOfDay) / 3600
        let minute = Int(secondOfDay) / 60 % 60
        let second = Int(secondOfDay) % 60
        date = UInt16((year - 1980) << 9 | month << 5 | day)
        time = UInt16(hour << 11 | minute << 5 | second / 2)
    }
}

/// Proleptic Gregorian calendar arithmetic on days counted from 1970-01-01, for years 1970 and later; pure and
/// lock-free, unlike `Calendar` or `gmtime_r`, because a large archive converts two dates per entry.
private enum Gregorian {
    static func isLeap(_ year: Int) -> Bool {
        year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
    }

    /// Days from 1970-01-01 to January 1 of `year`.
    static func daysBefore(year: Int) -> Int {
        func leapYearsBefore(_ year: Int) -> Int { (year - 1) / 4 - (year - 1) / 100 + (year - 1) / 400 }
        return 365 * (year - 1970) + leapYearsBefore(year) - leapYearsBefore(1970)
    }

    /// The year, month (1–12) and day (1–31) of a day counted from 1970-01-01; `days` must not be negative.
    static func date(daysSince1970 days: Int) -> (year: Int, month: Int, day: Int) {
        // Every year has at least 365 days, so this guess is never early; it is late by at most one year for
        // the next several centuries, and the loop steps back.
        var year = 1970 + days / 365
        while daysBefore(year: year) > days { year -= 1 }

        var dayOfYear = days - daysBefore(year: year)
        let monthLengths = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        var month = 0
        while dayOfYear >= monthLengths[month] {
            dayOfYear -= monthLengths[month]
            month += 1
        }
        return (year, month + 1, dayOfYear + 1)
    }
}

// MARK: - Bytes

/// A growing byte buffer that appends integers least significant byte first, as every ZIP field is stored.
private struct LittleEndianWriter {
    private(set) var bytes: [UInt8] = []

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
    }

    mutating func append<Value: FixedWidthInteger & UnsignedInteger>(_ value: Value) {
        var remaining = value
        for _ in 0..<(Value.bitWidth / 8) {
            bytes.append(UInt8(truncatingIfNeeded: remaining))
            remaining >>= 8
        }
    }

    mutating func append(contentsOf utf8: String.UTF8View) {
        bytes.append(contentsOf: utf8)
    }
}
