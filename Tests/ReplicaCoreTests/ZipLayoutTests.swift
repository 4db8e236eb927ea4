import Foundation
import ReplicaCore
import ReplicaTestSupport
import XCTest

/// Archives are assembled as the gateway streams them (local header, contents, …, trailer) and checked by
/// readers that share no code with ``ZipLayout``: Python's `zipfile` and, where installed, Info-ZIP `unzip`.
/// Archives too large to write are checked by parsing the header bytes against APPNOTE's field tables.
final class ZipLayoutTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ZipLayoutTests-\(UUID().uuidString)", isDirectory: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try FileManager.default.removeItem(at: directory)
    }

    // MARK: Small archives, read back by independent readers

    func testSmallArchiveReadsBackInPython() throws {
        let (layout, contents) = try smallArchive()
        let url = try write(assemble(layout, contents: contents), named: "small.zip")
        let report = try python(url, mode: "full")

        XCTAssertNil(report.testzip)
        let entries = try XCTUnwrap(report.entries)
        XCTAssertEqual(entries.map(\.name), layout.entries.map(\.name))
        for (index, (entry, read)) in zip(layout.entries, entries).enumerated() {
            XCTAssertEqual(read.size, entry.size, entry.name)
            XCTAssertEqual(read.compressedSize, entry.size, entry.name)
            XCTAssertEqual(read.crc, CRC32.checksum(contents[index]), entry.name)
            XCTAssertEqual(read.contents, hex(contents[index]), entry.name)
            XCTAssertEqual(read.dateTime, expectedDOSDateTime(entry.modified), entry.name)
            XCTAssertEqual(read.offset, layout.dataOffset(at: index) - UInt64(layout.localHeader(at: index).count))
            XCTAssertEqual(read.method, 0, "stored")
            XCTAssertEqual(read.flags & 0x0800, 0x0800, "UTF-8 names")
            XCTAssertEqual(read.flags & 0x0008, 0, "no data descriptor")
            XCTAssertEqual(read.mode, 0o100644, "regular file, rw-r--r--")
            XCTAssertEqual(read.createSystem, 3, "made by Unix")
            XCTAssertEqual(read.extractVersion, 10)
            XCTAssertEqual(try extendedTimestamp(inExtraHex: read.extra), exactUnixSeconds(entry.modified), entry.name)
        }
    }

    /// unzip restores the modification time from the 0x5455 field to the second; without the field it would use
    /// the 2-second DOS time, so the odd seconds in the fixture tell the two apart.
    func testUnzipAcceptsSmallArchiveAndRestoresExactTimes() throws {
        let unzip = try unwrapOrSkip(Self.unzipPath, "unzip is not installed")
        let (layout, contents) = try smallArchive()
        let url = try write(assemble(layout, contents: contents), named: "small.zip")
        let environment = ["TZ": "UTC", "LC_ALL": "C.UTF-8"]

        let check = try runProcess(unzip, ["-t", url.path], environment: environment)
        XCTAssertEqual(check.status, 0, check.text + check.errorText)
        XCTAssertTrue(check.text.contains("No errors detected"), check.text)

        let output = directory.appendingPathComponent("extracted")
        let extract = try runProcess(unzip, ["-q", "-o", url.path, "-d", output.path], environment: environment)
        XCTAssertEqual(extract.status, 0, extract.text + extract.errorText)
        for (index, entry) in layout.entries.enumerated() {
            let file = output.appendingPathComponent(entry.name)
            XCTAssertEqual(try [UInt8](Data(contentsOf: file)), contents[index], entry.name)
            let attributes = try FileManager.default.attributesOfItem(atPath: file.path)
            let modified = try XCTUnwrap(attributes[.modificationDate] as? Date)
            let expected = exactUnixSeconds(entry.modified) ?? dosUnixSeconds(entry.modified)
            XCTAssertEqual(Int64(modified.timeIntervalSince1970), expected, entry.name)
            XCTAssertEqual(attributes[.posixPermissions] as? Int, 0o644, entry.name)
        }
    }

    func testEmptyArchiveIsValid() throws {
        let layout = try ZipLayout(entries: [])
        XCTAssertEqual(layout.totalLength, 22, "only the end of central directory record")
        XCTAssertFalse(layout.needsZip64)
        let trailer = layout.trailer()
        XCTAssertEqual(trailer.count, 22)
        XCTAssertEqual(Array(trailer.prefix(4)), [0x50, 0x4B, 0x05, 0x06])

        let report = try python(try write(trailer, named: "empty.zip"), mode: "full")
        XCTAssertNil(report.testzip)
        XCTAssertEqual(report.count, 0)
    }

    func testLengthsAndOffsetsAddUp() throws {
        let sizes: [UInt64] = [0, 1, 0xFFFF_FFFE, 7, 0xFFFF_FFFF, 3, 5 << 30, 0]
        let entries = sizes.enumerated().map { index, size in
            ZipEntry(name: String(repeating: "n", count: index + 1), size: size, crc32: 0, modified: sampleDate)
        }
        let layout = try ZipLayout(entries: entries)
        var position: UInt64 = 0
        for index in entries.indices {
            position += UInt64(layout.localHeader(at: index).count)
            XCTAssertEqual(layout.dataOffset(at: index), position, "entry \(index)")
            position += entries[index].size
        }
        XCTAssertEqual(position + UInt64(layout.trailer().count), layout.totalLength)
    }

    // MARK: ZIP64

    /// 65,536 entries overflow the end record's 16-bit counts. The layout must stay cheap at this size: it is
    /// computed on the request path to answer with a Content-Length.
    func testEntryCountBeyondSixteenBitsUsesZip64EndRecords() throws {
        let count = 65_536
        let contents: [UInt8] = [0x2A]
        let crc = CRC32.checksum(contents)
        let entries = (0..<count).map { ZipEntry(name: "images/\($0).jpg", size: 1, crc32: crc, modified: sampleDate) }

        let layout = try ZipLayout(entries: entries)
        let totalLength = layout.totalLength
        let archive = assemble(layout, contents: Array(repeating: contents, count: count))

        XCTAssertTrue(layout.needsZip64)
        let url = try write(archive, named: "many.zip")
        let fileSize = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber
        XCTAssertEqual(fileSize?.uint64Value, totalLength)

        let report = try python(url, mode: "summary")
        XCTAssertNil(report.testzip)
        XCTAssertEqual(report.count, count)
        XCTAssertEqual(report.distinct, count)
        XCTAssertEqual(report.names, ["images/0.jpg", "images/65535.jpg"])

        guard let unzip = Self.unzipPath else { return }
        let check = try runProcess(unzip, ["-tq", url.path])
        XCTAssertEqual(check.status, 0, check.text + check.errorText)
    }

    func testEntryCountThresholdIsInclusive() throws {
        let below = try ZipLayout(entries: emptyEntries(0xFFFE))
        XCTAssertFalse(below.needsZip64)
        let belowEnd = try EndRecord(parsing: below.trailer())
        XCTAssertEqual(belowEnd.entryCount, 0xFFFE)

        let at = try ZipLayout(entries: emptyEntries(0xFFFF))
        XCTAssertTrue(at.needsZip64)
        let trailer = at.trailer()
        let end = try EndRecord(parsing: trailer)
        XCTAssertEqual(end.entryCount, 0xFFFF, "the marker, since 0xFFFF itself is ambiguous")
        let zip64 = try Zip64EndRecord(parsing: trailer, endOfArchive: at.totalLength)
        XCTAssertEqual(zip64.entryCount, 0xFFFF)
        XCTAssertEqual(zip64.directoryOffset, UInt64(end.directoryOffset), "the offset itself still fits 32 bits")
        XCTAssertEqual(at.totalLength - UInt64(trailer.count), zip64.directoryOffset)
    }

    /// A 5 GiB entry and a small one after it: the first needs ZIP64 sizes, the second only a ZIP64 offset.
    func testLargeEntryHeadersCarryZip64Fields() throws {
        let big = UInt64(5) << 30
        let entries = [ZipEntry(name: "big.raw", size: big, crc32: 0x1234_5678, modified: sampleDate),
                       ZipEntry(name: "after.txt", size: 12, crc32: 0x9ABC_DEF0, modified: sampleDate)]
        let layout = try ZipLayout(entries: entries)
        XCTAssertTrue(layout.needsZip64)
        let secondOffset = layout.dataOffset(at: 0) + big

        let firstLocal = try HeaderFields(parsing: layout.localHeader(at: 0), central: false)
        XCTAssertEqual(firstLocal.versionNeeded, 45)
        XCTAssertEqual(firstLocal.flags, 0x0800)
        XCTAssertEqual(firstLocal.crc, 0x1234_5678)
        XCTAssertEqual([firstLocal.compressedSize, firstLocal.uncompressedSize], [0xFFFF_FFFF, 0xFFFF_FFFF])
        XCTAssertEqual(firstLocal.name, "big.raw")
        XCTAssertEqual(firstLocal.zip64Values, [big, big], "local ZIP64 field holds both sizes")
        XCTAssertEqual(firstLocal.extraIDs, [0x0001, 0x5455])

        let secondLocal = try HeaderFields(parsing: layout.localHeader(at: 1), central: false)
        XCTAssertEqual(secondLocal.versionNeeded, 45, "its central header needs ZIP64 for the offset")
        XCTAssertEqual([secondLocal.compressedSize, secondLocal.uncompressedSize], [12, 12])
        XCTAssertNil(secondLocal.zip64Values, "a local header has no offset field to widen")
        XCTAssertEqual(layout.dataOffset(at: 1), secondOffset + UInt64(layout.localHeader(at: 1).count))

        let trailer = layout.trailer()
        let firstCentral = try HeaderFields(parsing: trailer, central: true)
        XCTAssertEqual(firstCentral.versionMadeBy, 3 << 8 | 63)
        XCTAssertEqual(firstCentral.versionNeeded, 45)
        XCTAssertEqual([firstCentral.compressedSize, firstCentral.uncompressedSize], [0xFFFF_FFFF, 0xFFFF_FFFF])
        XCTAssertEqual(firstCentral.localHeaderOffset, 0)
        XCTAssertEqual(firstCentral.zip64Values, [big, big], "sizes only: the offset 0 fits its slot")
        XCTAssertEqual(firstCentral.externalAttributes, 0o100644 << 16)

        let secondCentral = try HeaderFields(parsing: Array(trailer[firstCentral.length...]), central: true)
        XCTAssertEqual(secondCentral.name, "after.txt")
        XCTAssertEqual([secondCentral.compressedSize, secondCentral.uncompressedSize], [12, 12])
        XCTAssertEqual(secondCentral.localHeaderOffset, 0xFFFF_FFFF)
        XCTAssertEqual(secondCentral.zip64Values, [secondOffset], "offset only")

        let directoryOffset = layout.dataOffset(at: 1) + 12
        let directorySize = UInt64(firstCentral.length + secondCentral.length)
        let zip64 = try Zip64EndRecord(parsing: trailer, endOfArchive: layout.totalLength)
        XCTAssertEqual(zip64.entryCount, 2)
        XCTAssertEqual(zip64.directoryOffset, directoryOffset)
        XCTAssertEqual(zip64.directorySize, directorySize)
        XCTAssertEqual(zip64.recordOffset, directoryOffset + directorySize, "the locator points at the record")
        let end = try EndRecord(parsing: trailer)
        XCTAssertEqual(end.entryCount, 2)
        XCTAssertEqual(end.directorySize, UInt32(directorySize))
        XCTAssertEqual(end.directoryOffset, 0xFFFF_FFFF)
        XCTAssertEqual(layout.totalLength, directoryOffset + UInt64(trailer.count))
    }

    func testSizeThresholdIsInclusive() throws {
        for (size, zip64) in [(UInt64(0xFFFF_FFFE), false), (0xFFFF_FFFF, true)] {
            let layout = try ZipLayout(entries: [ZipEntry(name: "x", size: size, crc32: 0, modified: sampleDate)])
            let local = try HeaderFields(parsing: layout.localHeader(at: 0), central: false)
            XCTAssertEqual(local.versionNeeded, zip64 ? 45 : 10, "size \(size)")
            XCTAssertEqual(local.uncompressedSize, UInt32(min(size, 0xFFFF_FFFF)), "size \(size)")
            XCTAssertEqual(local.zip64Values, zip64 ? [size, size] : nil, "size \(size)")
            XCTAssertTrue(layout.needsZip64, "either way the central directory starts past 0xFFFFFFFF")
        }
    }

    /// The real thing at 4 GiB + 10 bytes, as a sparse file: the holes read as the zeros the CRC was computed for.
    /// Python checks the central directory and reads the small entry behind the big one through its ZIP64
    /// offset; no reader is asked to read the 4 GiB.
    func testSparseArchiveOverFourGiBOpensInPython() throws {
        let free = try FileManager.default.attributesOfFileSystem(forPath: directory.path)[.systemFreeSize]
        guard let free = free as? NSNumber, free.uint64Value >= 5 << 30 else {
            throw XCTSkip("needs 5 GiB free in \(directory.path) in case the file system does not keep holes")
        }
        let big = (UInt64(4) << 30) + 10
        let after = Array("behind the hole\n".utf8)
        let entries = [ZipEntry(name: "zeros.bin", size: big, crc32: CRC32.ofZeros(count: big), modified: sampleDate),
                       ZipEntry(name: "after.txt", size: UInt64(after.count), crc32: CRC32.checksum(after),
                                modified: sampleDate)]
        let layout = try ZipLayout(entries: entries)
        let url = directory.appendingPathComponent("sparse.zip")
        defer { try? FileManager.default.removeItem(at: url) }
        try writeSparse(layout, contents: [nil, after], to: url)
        let fileSize = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber
        XCTAssertEqual(fileSize?.uint64Value, layout.totalLength)

        let report = try python(url, mode: "metadata")
        let read = try XCTUnwrap(report.entries)
        XCTAssertEqual(read.map(\.name), ["zeros.bin", "after.txt"])
        XCTAssertEqual(read.map(\.size), [big, UInt64(after.count)])
        XCTAssertEqual(read.map(\.compressedSize), [big, UInt64(after.count)])
        XCTAssertEqual(read.map(\.crc), entries.map(\.crc32))
        XCTAssertEqual(read[1].offset, layout.dataOffset(at: 0) + big)
        XCTAssertEqual(read[0].head, hex([UInt8](repeating: 0, count: 16)))
        XCTAssertEqual(read[1].contents, hex(after), "read and CRC-checked by Python past the 4 GiB mark")

        guard let unzip = Self.unzipPath else { return }
        let check = try runProcess(unzip, ["-t", url.path, "after.txt"])
        XCTAssertEqual(check.status, 0, check.text + check.errorText)
    }

    // MARK: Names and times

    func testNamesMustBeOneTo65535Bytes() throws {
        let fine = ZipEntry(name: "a.jpg", size: 0, crc32: 0, modified: sampleDate)
        let unnamed = ZipEntry(name: "", size: 0, crc32: 0, modified: sampleDate)
        XCTAssertThrowsError(try ZipLayout(entries: [fine, unnamed])) {
            XCTAssertEqual($0 as? ZipLayoutError, .emptyName(index: 1))
        }
        let tooLong = ZipEntry(name: String(repeating: "é", count: 32_768), size: 0, crc32: 0, modified: sampleDate)
        XCTAssertThrowsError(try ZipLayout(entries: [tooLong])) {
            XCTAssertEqual($0 as? ZipLayoutError, .nameTooLong(index: 0, byteCount: 65_536))
        }
        let longest = ZipEntry(name: String(repeating: "a", count: 65_535), size: 0, crc32: 0, modified: sampleDate)
        XCTAssertEqual(try ZipLayout(entries: [longest]).localHeader(at: 0).count, 30 + 65_535 + 9)
    }

    func testArchiveLongerThanInt64IsRejected() {
        let huge = ZipEntry(name: "huge", size: UInt64(Int64.max) - 20, crc32: 0, modified: sampleDate)
        XCTAssertThrowsError(try ZipLayout(entries: [huge])) {
            XCTAssertEqual($0 as? ZipLayoutError, .archiveTooLarge)
        }
    }

    /// The DOS fields against Foundation's Gregorian calendar in UTC, for random instants across the format's
    /// whole range plus the edges: leap days, the non-leap 2100, and both clamps.
    func testDOSTimeMatchesCalendarInUTC() throws {
        let earliest = 315_532_800.0  // 1980-01-01T00:00:00Z
        let latest = 4_354_819_199.0  // 2107-12-31T23:59:59Z
        var instants = [earliest, latest, 951_868_799, 951_868_800, 4_107_542_399, 4_107_542_400, 1_000_000_001.9]
        var random = SplitMix64(seed: 1980)
        instants += (0..<2000).map { _ in Double(Int64.random(in: Int64(earliest)...Int64(latest), using: &random)) }
        let dates = instants.map(Date.init(timeIntervalSince1970:))
        let layout = try ZipLayout(entries: dates.map { ZipEntry(name: "f", size: 0, crc32: 0, modified: $0) })

        for (index, date) in dates.enumerated() {
            let header = try HeaderFields(parsing: layout.localHeader(at: index), central: false)
            XCTAssertEqual(header.dosDateTime, expectedDOSDateTime(date), "\(date.timeIntervalSince1970)")
        }
        for (date, fields) in [(Date(timeIntervalSince1970: 0), [1980, 1, 1, 0, 0, 0]),
                               (Date.distantPast, [1980, 1, 1, 0, 0, 0]),
                               (Date.distantFuture, [2107, 12, 31, 23, 59, 58])] {
            let layout = try ZipLayout(entries: [ZipEntry(name: "f", size: 0, crc32: 0, modified: date)])
            XCTAssertEqual(try HeaderFields(parsing: layout.localHeader(at: 0), central: false).dosDateTime, fields)
        }
    }

    func testExtendedTimestampOnlyWhereSigned32BitsHoldIt() throws {
        let cases: [(Double, Int32?)] = [(2_147_483_647, Int32.max), (2_147_483_648, nil), (-2_147_483_648, Int32.min),
                                         (-2_147_483_649, nil), (1_000_000_001.9, 1_000_000_001)]
        for (seconds, expected) in cases {
            let entry = ZipEntry(name: "f", size: 0, crc32: 0, modified: Date(timeIntervalSince1970: seconds))
            let layout = try ZipLayout(entries: [entry])
            let local = try HeaderFields(parsing: layout.localHeader(at: 0), central: false)
            let central = try HeaderFields(parsing: layout.trailer(), central: true)
            XCTAssertEqual(local.unixTime, expected, "\(seconds)")
            XCTAssertEqual(central.unixTime, expected, "\(seconds)")
        }
    }

    // MARK: Fixtures

    /// 2024-05-17T09:26:53Z, an odd second.
    private let sampleDate = Date(timeIntervalSince1970: 1_715_938_013)

    /// UTF-8 names (é, an emoji, a folder), an empty entry, odd seconds, a time before 1980 (the DOS fields clamp,
    /// the Unix field keeps it), the last 32-bit second and a time after 2038 (no Unix field; DOS date in 2100).
    private func smallArchive() throws -> (ZipLayout, [[UInt8]]) {
        let files: [(String, [UInt8], Double)] = [
            ("hello.txt", Array("Hello, archive!\n".utf8), 1_715_938_013),
            ("photos/café.jpg", (0..<10_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) }, 1_000_000_001),
            ("📷 2024/IMG_0001.HEIC", [0xFF, 0x00, 0x7F], 2_147_483_647),
            ("empty.txt", [], 170_841_603),
            ("future.txt", Array("2100\n".utf8), 4_107_585_601),
        ]
        let entries = files.map { name, contents, seconds in
            ZipEntry(name: name, size: UInt64(contents.count), crc32: CRC32.checksum(contents),
                     modified: Date(timeIntervalSince1970: seconds))
        }
        return (try ZipLayout(entries: entries), files.map(\.1))
    }

    private func emptyEntries(_ count: Int) -> [ZipEntry] {
        (0..<count).map { ZipEntry(name: "\($0)", size: 0, crc32: 0, modified: sampleDate) }
    }

    /// The archive as the gateway sends it: each local header, then the contents, then the trailer.
    private func assemble(_ layout: ZipLayout, contents: [[UInt8]]) -> [UInt8] {
        var archive: [UInt8] = []
        for index in layout.entries.indices {
            archive += layout.localHeader(at: index)
            XCTAssertEqual(UInt64(archive.count), layout.dataOffset(at: index), "entry \(index)")
            archive += contents[index]
        }
        archive += layout.trailer()
        XCTAssertEqual(UInt64(archive.count), layout.totalLength)
        return archive
    }

    /// Writes headers and the given contents at their offsets; an entry whose contents are nil stays a hole.
    private func writeSparse(_ layout: ZipLayout, contents: [[UInt8]?], to url: URL) throws {
        XCTAssertTrue(FileManager.default.createFile(atPath: url.path, contents: nil), url.path)
        let handle = try FileHandle(forWritingTo: url)
        defer { try? handle.close() }
        for index in layout.entries.indices {
            let header = layout.localHeader(at: index)
            try handle.seek(toOffset: layout.dataOffset(at: index) - UInt64(header.count))
            try handle.write(contentsOf: header)
            if let bytes = contents[index] { try handle.write(contentsOf: bytes) }
        }
        let trailer = layout.trailer()
        try handle.seek(toOffset: layout.totalLength - UInt64(trailer.count))
        try handle.write(contentsOf: trailer)
    }

    private func write(_ bytes: [UInt8], named name: String) throws -> URL {
        let url = directory.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url
    }

    /// What Python's zipfile shows for a DOS date and time: year, month, day, hour, minute, even second (UTC).
    private func expectedDOSDateTime(_ date: Date) -> [Int] {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let clamped = Date(timeIntervalSince1970: min(max(seconds, 315_532_800), 4_354_819_198))
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: clamped)
        return [parts.year!, parts.month!, parts.day!, parts.hour!, parts.minute!, parts.second! / 2 * 2]
    }

    /// The instant the DOS fields stand for, read as UTC, in Unix seconds.
    private func dosUnixSeconds(_ date: Date) -> Int64 {
        let fields = expectedDOSDateTime(date)
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let components = DateComponents(year: fields[0], month: fields[1], day: fields[2], hour: fields[3],
                                        minute: fields[4], second: fields[5])
        return Int64(calendar.date(from: components)!.timeIntervalSince1970)
    }

    /// The Unix second the 0x5455 field should carry, or nil where a signed 32-bit value cannot hold it.
    private func exactUnixSeconds(_ date: Date) -> Int64? {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        return seconds >= Double(Int32.min) && seconds <= Double(Int32.max) ? Int64(seconds) : nil
    }

    private func extendedTimestamp(inExtraHex extraHex: String) throws -> Int64? {
        var bytes: [UInt8] = []
        var index = extraHex.startIndex
        while index < extraHex.endIndex {
            let next = extraHex.index(index, offsetBy: 2)
            bytes.append(try XCTUnwrap(UInt8(extraHex[index..<next], radix: 16)))
            index = next
        }
        return try ExtraFields(bytes).timestamp.map(Int64.init)
    }

    private func hex(_ bytes: [UInt8]) -> String {
        bytes.map { String(format: "%02x", $0) }.joined()
    }

    // MARK: External readers

    private struct PythonReport: Decodable {
        var testzip: String?
        var count: Int
        var names: [String]
        var distinct: Int
        var entries: [PythonEntry]?
    }

    private struct PythonEntry: Decodable {
        var name: String
        var size: UInt64
        var compressedSize: UInt64
        var crc: UInt32
        var dateTime: [Int]
        var mode: Int
        var flags: Int
        var method: Int
        var offset: UInt64
        var createSystem: Int
        var extractVersion: Int
        var extra: String
        var head: String
        var contents: String?
    }

    /// Modes: "full" runs testzip and returns every entry with its contents; "summary" runs testzip and returns
    /// counts only; "metadata" skips testzip and returns contents only for entries up to 1 MiB.
    private static let pythonReader = """
        import json, sys, zipfile
        path, mode = sys.argv[1], sys.argv[2]
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            report = {"testzip": None if mode == "metadata" else archive.testzip(), "count": len(infos),
                      "names": [infos[0].filename, infos[-1].filename] if infos else [],
                      "distinct": len({info.filename for info in infos}), "entries": None}
            if mode != "summary":
                report["entries"] = []
                for info in infos:
                    with archive.open(info) as member:
                        head = member.read(16)
                    small = info.file_size <= 1 << 20
                    report["entries"].append({
                        "name": info.filename, "size": info.file_size, "compressedSize": info.compress_size,
                        "crc": info.CRC, "dateTime": list(info.date_time), "mode": info.external_attr >> 16,
                        "flags": info.flag_bits, "method": info.compress_type, "offset": info.header_offset,
                        "createSystem": info.create_system, "extractVersion": info.extract_version,
                        "extra": info.extra.hex(), "head": head.hex(),
                        "contents": archive.read(info).hex() if small else None})
        print(json.dumps(report))
        """

    private func python(_ archive: URL, mode: String) throws -> PythonReport {
        let python = try unwrapOrSkip(Self.pythonPath, "no python3 with zipfile")
        let result = try runProcess(python, ["-c", Self.pythonReader, archive.path, mode])
        guard result.status == 0 else {
            XCTFail("python zipfile rejected \(archive.lastPathComponent): \(result.errorText)")
            throw CocoaError(.fileReadCorruptFile)
        }
        return try JSONDecoder().decode(PythonReport.self, from: result.output)
    }

    /// The first python3 that can import zipfile: the one on PATH, then the two usual places.
    private static let pythonPath: String? = {
        let onPath = try? runProcess("/bin/sh", ["-c", "command -v python3"])
        let found = onPath.map { $0.text.trimmingCharacters(in: .whitespacesAndNewlines) }
        let candidates = [found, "/root/.pyenv/shims/python3", "/usr/bin/python3"].compactMap { $0 }
        return candidates.first { path in
            FileManager.default.isExecutableFile(atPath: path)
                && (try? runProcess(path, ["-c", "import zipfile"]))?.status == 0
        }
    }()

    private static let unzipPath: String? = {
        guard let found = try? runProcess("/bin/sh", ["-c", "command -v unzip"]), found.status == 0 else { return nil }
        return found.text.trimmingCharacters(in: .whitespacesAndNewlines)
    }()
}

// MARK: - Running programs

private struct ProcessResult {
    var status: Int32
    var output: Data
    var errorText: String
    var text: String { String(decoding: output, as: UTF8.self) }
}

/// Runs a program to completion; standard error goes to a temporary file so neither pipe can fill and block it.
private func runProcess(_ path: String, _ arguments: [String], environment: [String: String] = [:]) throws
    -> ProcessResult {
    let errorURL = FileManager.default.temporaryDirectory.appendingPathComponent("zip-stderr-\(UUID().uuidString)")
    guard FileManager.default.createFile(atPath: errorURL.path, contents: nil) else {
        throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: errorURL.path])
    }
    defer { try? FileManager.default.removeItem(at: errorURL) }
    let errorHandle = try FileHandle(forWritingTo: errorURL)

    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    let output = Pipe()
    process.standardOutput = output
    process.standardError = errorHandle
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    try errorHandle.close()

    let errorText = String(decoding: (try? Data(contentsOf: errorURL)) ?? Data(), as: UTF8.self)
    return ProcessResult(status: process.terminationStatus, output: data, errorText: errorText)
}

extension XCTestCase {
    /// `value`, or a skip (not a failure) with `message` when it is nil: for tools the machine may lack.
    fileprivate func unwrapOrSkip<T>(_ value: T?, _ message: String) throws -> T {
        guard let value else { throw XCTSkip(message) }
        return value
    }
}

// MARK: - Parsing headers, by APPNOTE's field tables rather than by ZipLayout's code

/// Reads little-endian fields from a byte array, failing the test instead of trapping when the bytes run out.
private struct FieldReader {
    let bytes: [UInt8]
    var position: Int

    init(_ bytes: [UInt8], at position: Int = 0) {
        self.bytes = bytes
        self.position = position
    }

    mutating func read(_ count: Int) throws -> [UInt8] {
        guard position >= 0, position + count <= bytes.count else {
            throw CocoaError(.fileReadCorruptFile, userInfo: ["reason": "\(count) bytes past \(position)"])
        }
        defer { position += count }
        return Array(bytes[position..<position + count])
    }

    mutating func integer<Value: FixedWidthInteger>(_: Value.Type = Value.self) throws -> Value {
        try read(Value.bitWidth / 8).reversed().reduce(Value(0)) { $0 << 8 | Value($1) }
    }
}

/// Extra fields by ID, as APPNOTE 4.5.1 lays them out: ID, 16-bit data length, data.
private struct ExtraFields {
    var ids: [UInt16] = []
    var data: [UInt16: [UInt8]] = [:]

    init(_ bytes: [UInt8]) throws {
        var reader = FieldReader(bytes)
        while reader.position < bytes.count {
            let id: UInt16 = try reader.integer()
            let length: UInt16 = try reader.integer()
            ids.append(id)
            data[id] = try reader.read(Int(length))
        }
    }

    /// The 64-bit values of the ZIP64 field (0x0001), in the order stored.
    var zip64Values: [UInt64]? {
        guard let field = data[0x0001] else { return nil }
        var reader = FieldReader(field)
        return (0..<field.count / 8).map { _ in (try? reader.integer(UInt64.self)) ?? 0 }
    }

    /// The modification time of the extended-timestamp field (0x5455), when its flags say it is present.
    var timestamp: Int32? {
        guard let field = data[0x5455], field.first.map({ $0 & 1 == 1 }) == true else { return nil }
        var reader = FieldReader(field, at: 1)
        return try? reader.integer(Int32.self)
    }
}

/// A local (APPNOTE 4.3.7) or central (4.3.12) header at the start of `bytes`.
private struct HeaderFields {
    var versionMadeBy: UInt16?
    var versionNeeded: UInt16
    var flags: UInt16
    var dosDateTime: [Int]
    var crc: UInt32
    var compressedSize: UInt32
    var uncompressedSize: UInt32
    var externalAttributes: UInt32?
    var localHeaderOffset: UInt32?
    var name: String
    var extra: ExtraFields
    var length: Int

    var zip64Values: [UInt64]? { extra.zip64Values }
    var extraIDs: [UInt16] { extra.ids }
    var unixTime: Int32? { extra.timestamp }

    init(parsing bytes: [UInt8], central: Bool) throws {
        var reader = FieldReader(bytes)
        XCTAssertEqual(try reader.integer(UInt32.self), central ? 0x0201_4B50 : 0x0403_4B50, "signature")
        versionMadeBy = nil
        if central { versionMadeBy = try reader.integer() }
        versionNeeded = try reader.integer()
        flags = try reader.integer()
        XCTAssertEqual(try reader.integer(UInt16.self), 0, "method: stored")
        let time: UInt16 = try reader.integer()
        let date: UInt16 = try reader.integer()
        dosDateTime = [Int(date >> 9) + 1980, Int(date >> 5 & 0xF), Int(date & 0x1F),
                       Int(time >> 11), Int(time >> 5 & 0x3F), Int(time & 0x1F) * 2]
        crc = try reader.integer()
        compressedSize = try reader.integer()
        uncompressedSize = try reader.integer()
        let nameLength: UInt16 = try reader.integer()
        let extraLength: UInt16 = try reader.integer()
        if central {
            XCTAssertEqual(try reader.read(6), [0, 0, 0, 0, 0, 0], "comment length, disk, internal attributes")
            externalAttributes = try reader.integer()
            localHeaderOffset = try reader.integer()
        }
        name = String(decoding: try reader.read(Int(nameLength)), as: UTF8.self)
        extra = try ExtraFields(reader.read(Int(extraLength)))
        length = reader.position
    }
}

/// The end of central directory record (APPNOTE 4.3.16), the last 22 bytes of an archive without a comment.
private struct EndRecord {
    var entryCount: UInt16
    var directorySize: UInt32
    var directoryOffset: UInt32

    init(parsing trailer: [UInt8]) throws {
        var reader = FieldReader(trailer, at: trailer.count - 22)
        XCTAssertEqual(try reader.integer(UInt32.self), 0x0605_4B50, "signature")
        XCTAssertEqual(try reader.integer(UInt32.self), 0, "disk numbers")
        let onDisk: UInt16 = try reader.integer()
        entryCount = try reader.integer()
        XCTAssertEqual(onDisk, entryCount)
        directorySize = try reader.integer()
        directoryOffset = try reader.integer()
        XCTAssertEqual(try reader.integer(UInt16.self), 0, "comment length")
    }
}

/// The ZIP64 end record (APPNOTE 4.3.14), found through the locator (4.3.15) just before the end record.
private struct Zip64EndRecord {
    var recordOffset: UInt64
    var entryCount: UInt64
    var directorySize: UInt64
    var directoryOffset: UInt64

    /// `endOfArchive` is the archive's total length, so the locator's absolute offset can be found in `trailer`.
    init(parsing trailer: [UInt8], endOfArchive: UInt64) throws {
        let trailerStart = endOfArchive - UInt64(trailer.count)
        var locator = FieldReader(trailer, at: trailer.count - 22 - 20)
        XCTAssertEqual(try locator.integer(UInt32.self), 0x0706_4B50, "locator signature")
        XCTAssertEqual(try locator.integer(UInt32.self), 0, "disk with the record")
        recordOffset = try locator.integer()
        XCTAssertEqual(try locator.integer(UInt32.self), 1, "disks in all")

        var reader = FieldReader(trailer, at: Int(recordOffset - trailerStart))
        XCTAssertEqual(try reader.integer(UInt32.self), 0x0606_4B50, "record signature")
        XCTAssertEqual(try reader.integer(UInt64.self), 44, "record length after this field")
        XCTAssertEqual(try reader.integer(UInt16.self), 3 << 8 | 63, "made by")
        XCTAssertEqual(try reader.integer(UInt16.self), 45, "needed")
        XCTAssertEqual(try reader.integer(UInt64.self), 0, "disk numbers")
        let onDisk: UInt64 = try reader.integer()
        entryCount = try reader.integer()
        XCTAssertEqual(onDisk, entryCount)
        directorySize = try reader.integer()
        directoryOffset = try reader.integer()
        XCTAssertEqual(reader.position, trailer.count - 22 - 20, "the locator follows the record")
    }
}
