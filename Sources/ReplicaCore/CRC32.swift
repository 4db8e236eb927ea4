import CZlib
import Foundation

/// CRC-32 (ISO-HDLC, as ZIP and PNG use), fed incrementally.
///
/// The arithmetic is zlib's `crc32()`, which does the pre- and post-inversion itself, so `value` is the finished
/// checksum after every `update` and a fresh value of 0 is both the starting state and the checksum of no bytes.
public struct CRC32: Sendable, Equatable {
    /// The checksum of every byte fed so far; 0 before the first byte.
    public private(set) var value: UInt32 = 0

    /// Bytes handed to zlib per call; its length parameter is a 32-bit `uInt`, so a larger buffer goes in pieces.
    private static let maxPieceLength = Int(UInt32.max)

    /// Starts a checksum over no bytes (value 0).
    public init() {}

    /// Feeds `bytes` (any length, 4 GiB and more included) after those fed before.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard var start = bytes.baseAddress else { return }
        var remaining = bytes.count
        while remaining > 0 {
            let pieceLength = min(remaining, Self.maxPieceLength)
            let piece = start.assumingMemoryBound(to: Bytef.self)
            value = UInt32(truncatingIfNeeded: CZlib.crc32(uLong(value), piece, uInt(pieceLength)))
            start += pieceLength
            remaining -= pieceLength
        }
    }

    /// Feeds `bytes` after those fed before.
    public mutating func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The CRC-32 of `bytes` in one call.
    public static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc = CRC32()
        crc.update(bytes)
        return crc.value
    }

    /// The CRC-32 of `count` zero bytes, without reading them: for sparse files and tests of multi-gigabyte
    /// archives. It costs O(log² count) steps, by doubling a run of zeros with zlib's `crc32_combine`.
    ///
    /// `count` must be at most `Int64.max`, the largest length zlib's `z_off_t` holds.
    public static func ofZeros(count: UInt64) -> UInt32 {
        precondition(count <= UInt64(Int64.max), "CRC32.ofZeros: \(count) bytes exceed zlib's 64-bit length")
        var result = uLong(0)
        var run = uLong(CRC32.checksum([0]))
        var runLength: UInt64 = 1
        var remaining = count
        while remaining > 0 {
            if remaining & 1 == 1 {
                result = crc32_combine(result, run, off_t(runLength))
            }
            remaining >>= 1
            if remaining > 0 {
                run = crc32_combine(run, run, off_t(runLength))
                runLength <<= 1
            }
        }
        return UInt32(truncatingIfNeeded: result)
    }
}
