import Foundation
import ReplicaCore
import ReplicaTestSupport
import XCTest

final class CRC32Tests: XCTestCase {
    /// The catalogue's check value for CRC-32/ISO-HDLC: the checksum of the ASCII digits "123456789".
    func testCheckValue() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
    }

    func testNoBytesGiveZero() {
        XCTAssertEqual(CRC32().value, 0)
        XCTAssertEqual(CRC32.checksum([]), 0)
        var crc = CRC32()
        crc.update(UnsafeRawBufferPointer(start: nil, count: 0))
        crc.update([])
        XCTAssertEqual(crc.value, 0)
    }

    /// Known values from other implementations, so the zlib binding is checked against more than one input.
    func testKnownValues() {
        XCTAssertEqual(CRC32.checksum(Array("The quick brown fox jumps over the lazy dog".utf8)), 0x414F_A339)
        XCTAssertEqual(CRC32.checksum([0]), 0xD202_EF8D)
    }

    func testIncrementalOverRandomSplitsEqualsOneShot() {
        var random = SplitMix64(seed: 0x5EED_C0DE)
        for round in 0..<50 {
            let bytes = (0..<Int(random.next() % 5000)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            var crc = CRC32()
            var start = 0
            while start < bytes.count {
                let end = min(bytes.count, start + Int(random.next() % 700))
                bytes[start..<end].withUnsafeBytes { crc.update($0) }
                start = end
            }
            XCTAssertEqual(crc.value, CRC32.checksum(bytes), "round \(round), \(bytes.count) bytes")
        }
    }

    func testZerosByDoublingMatchDirectComputation() {
        for count in Array(0...130) + [255, 256, 1000, 4096, 65_535, 65_536, 65_537, 1_000_003] {
            let direct = CRC32.checksum([UInt8](repeating: 0, count: count))
            XCTAssertEqual(CRC32.ofZeros(count: UInt64(count)), direct, "\(count) zero bytes")
        }
    }

    /// One buffer longer than 4 GiB must go to zlib in pieces, since zlib's length is 32-bit; a truncated length
    /// would checksum only the last 16 bytes. The buffer is an anonymous read-only mapping, so every page is the
    /// kernel's shared zero page and the test costs no memory, only the seconds zlib takes to read 4 GiB.
    func testBufferLongerThanFourGiBIsReadWhole() throws {
        let length = (1 << 32) + 16
        let mapping = mmap(nil, length, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapping, mapping != MAP_FAILED else {
            throw XCTSkip("cannot map \(length) bytes of address space: errno \(errno)")
        }
        defer { munmap(mapping, length) }

        var crc = CRC32()
        crc.update(UnsafeRawBufferPointer(start: mapping, count: length))
        XCTAssertEqual(crc.value, CRC32.ofZeros(count: UInt64(length)))
        XCTAssertNotEqual(crc.value, CRC32.ofZeros(count: 16))
    }
}
