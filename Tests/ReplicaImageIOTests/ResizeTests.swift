import XCTest
@testable import ReplicaImageIO

/// Resizing: exact area averages, Lanczos staying flat and in range, sizes, and fitting to a longest side.
final class ResizeTests: XCTestCase {
    // MARK: - Area

    func testAreaOfAConstantImageStaysConstant() {
        let flat = Fixtures.constant(width: 97, height: 61, [200, 17, 90])
        for (width, height) in [(40, 23), (1, 1), (96, 60), (13, 61), (150, 80)] {
            let resized = flat.resized(width: width, height: height, filter: .area)
            let expected = Fixtures.constant(width: width, height: height, [200, 17, 90])
            XCTAssertEqual(resized, expected, "\(width)×\(height)")
        }
    }

    func testAreaOfTwoByTwoIsTheMean() {
        let square = PixelBuffer(width: 2, height: 2, channels: 1, bytes: [10, 20, 30, 41])
        XCTAssertEqual(square.resized(width: 1, height: 1, filter: .area).bytes, [25], "25.25 rounds to 25")
    }

    func testAreaWeighsPartlyCoveredPixelsByTheirCoverage() {
        // Three pixels into two: each output covers one whole pixel and half of the middle one.
        let row = PixelBuffer(width: 3, height: 1, channels: 1, bytes: [0, 90, 180])
        XCTAssertEqual(row.resized(width: 2, height: 1, filter: .area).bytes, [30, 150])
    }

    func testAreaOfAnRGBBlockAveragesEachChannel() {
        let block = PixelBuffer(width: 2, height: 1, channels: 3, bytes: [0, 100, 255, 100, 50, 255])
        XCTAssertEqual(block.resized(width: 1, height: 1).bytes, [50, 75, 255])
    }

    // MARK: - Lanczos

    func testLanczosOfAConstantImageStaysConstant() {
        let flat = Fixtures.constant(width: 50, height: 37, [123])
        for (width, height) in [(20, 15), (50, 100), (7, 3), (120, 90)] {
            let resized = flat.resized(width: width, height: height, filter: .lanczos3)
            XCTAssertEqual(resized, Fixtures.constant(width: width, height: height, [123]), "\(width)×\(height)")
        }
    }

    func testLanczosClampsRingingAtASharpEdge() {
        // A black-to-white step enlarged rings below 0 and above 255 next to the edge. Clamped, those stay
        // near black and near white; wrapped, they would flip to the other end.
        let step = PixelBuffer(width: 8, height: 1, channels: 1, bytes: [0, 0, 0, 0, 255, 255, 255, 255])
        let enlarged = step.resized(width: 32, height: 1, filter: .lanczos3).bytes
        XCTAssertTrue(enlarged.prefix(13).allSatisfy { $0 <= 12 }, "\(enlarged)")
        XCTAssertTrue(enlarged.suffix(13).allSatisfy { $0 >= 243 }, "\(enlarged)")
        XCTAssertTrue(enlarged.contains(0) && enlarged.contains(255), "undershoot and overshoot are clamped")
    }

    func testLanczosFollowsALinearRamp() {
        let ramp = PixelBuffer(width: 64, height: 1, channels: 1, bytes: (0..<64).map { UInt8($0 * 4) })
        let half = ramp.resized(width: 32, height: 1, filter: .lanczos3).bytes
        // Output pixel i covers source pixels 2i and 2i+1, whose centre is at value 8i + 2.
        for index in 4..<28 { XCTAssertEqual(Int(half[index]), 8 * index + 2, accuracy: 1, "pixel \(index)") }
    }

    // MARK: - Sizes

    func testResizeGivesTheAskedSizeAndKeepsChannels() {
        for channels in [1, 3] {
            let source = Fixtures.pattern(width: 31, height: 19, channels: channels)
            for filter in [ResizeFilter.area, .lanczos3] {
                let resized = source.resized(width: 10, height: 44, filter: filter)
                XCTAssertEqual([resized.width, resized.height, resized.channels], [10, 44, channels])
            }
        }
    }

    func testFittedShrinksTheLongestSideAndKeepsTheAspect() {
        let cases: [((Int, Int), (Int, Int))] = [
            ((800, 600), (400, 300)), ((600, 800), (300, 400)), ((2832, 2128), (400, 301)),
            ((1000, 3), (400, 1)), ((400, 400), (400, 400)), ((300, 200), (300, 200)),
        ]
        for (source, expected) in cases {
            let fitted = Fixtures.constant(width: source.0, height: source.1, [9]).fitted(longestSide: 400)
            XCTAssertEqual([fitted.width, fitted.height], [expected.0, expected.1], "\(source)")
        }
    }
}
