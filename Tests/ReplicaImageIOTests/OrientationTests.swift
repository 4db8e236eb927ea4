import XCTest
@testable import ReplicaImageIO

/// EXIF orientation, as a table: a 3×2 image of six labelled colours,
///
///     A B C
///     D E F
///
/// and how each orientation must show it, row by row.
final class OrientationTests: XCTestCase {
    private let colours: [Character: [UInt8]] = [
        "A": [255, 0, 0], "B": [0, 255, 0], "C": [0, 0, 255],
        "D": [255, 255, 0], "E": [255, 255, 255], "F": [0, 0, 0],
    ]

    private let upright: [Int: [String]] = [
        1: ["ABC", "DEF"],
        2: ["CBA", "FED"],        // mirrored left–right
        3: ["FED", "CBA"],        // rotated 180°
        4: ["DEF", "ABC"],        // flipped top–bottom
        5: ["AD", "BE", "CF"],    // transposed
        6: ["DA", "EB", "FC"],    // rotated 90° clockwise
        7: ["FC", "EB", "DA"],    // transversed
        8: ["CF", "BE", "AD"],    // rotated 90° counter-clockwise
    ]

    private func image(_ rows: [String]) -> PixelBuffer {
        let bytes = rows.flatMap { row in row.flatMap { colours[$0]! } }
        return PixelBuffer(width: rows[0].count, height: rows.count, channels: 3, bytes: bytes)
    }

    func testEveryOrientationInMemory() {
        let stored = image(upright[1]!)
        for (orientation, rows) in upright.sorted(by: { $0.key < $1.key }) {
            XCTAssertEqual(stored.oriented(orientation), image(rows), "orientation \(orientation)")
        }
    }

    func testValuesOutsideOneToEightLeaveTheImageAsStored() {
        let stored = image(upright[1]!)
        for value in [0, 9, -1, 65_535] { XCTAssertEqual(stored.oriented(value), stored, "orientation \(value)") }
    }

    func testClockwiseThenCounterClockwiseIsTheIdentity() {
        let stored = Fixtures.pattern(width: 13, height: 7)
        XCTAssertEqual(stored.oriented(6).oriented(8), stored)
        XCTAssertEqual(stored.oriented(3).oriented(3), stored)
        XCTAssertEqual(stored.oriented(5).oriented(5), stored)
    }

    func testGreyBuffersTurnToo() {
        let grey = PixelBuffer(width: 3, height: 1, channels: 1, bytes: [1, 2, 3])
        XCTAssertEqual(grey.oriented(6), PixelBuffer(width: 1, height: 3, channels: 1, bytes: [1, 2, 3]))
        XCTAssertEqual(grey.oriented(8), PixelBuffer(width: 1, height: 3, channels: 1, bytes: [3, 2, 1]))
    }

    /// Each orientation written into a JPEG's EXIF and read back through the dispatcher, which must apply it.
    func testEveryOrientationThroughAJPEGAndTheDispatcher() throws {
        let stored = image(upright[1]!)
        for (orientation, rows) in upright.sorted(by: { $0.key < $1.key }) {
            let file = Fixtures.jpeg(stored, quality: 100, exif: Fixtures.Exif(orientation: orientation))
            let decoded = try ImageReader.decode(data: file, name: "turned.jpg")
            let expected = image(rows)

            XCTAssertEqual([decoded.pixels.width, decoded.pixels.height], [expected.width, expected.height],
                           "orientation \(orientation): 5–8 swap the sides")
            XCTAssertLessThanOrEqual(Check.maximumDifference(decoded.pixels.bytes, expected.bytes), 60,
                                     "orientation \(orientation): colours in the wrong places")
            XCTAssertEqual(decoded.metadata.orientation, 1, "applied, so reported as upright")
        }
    }
}
