import ReplicaCore
import XCTest

/// Which images are matched: all pairs for unordered sets, neighbours and loop-closure anchors for walks.
final class SelectPairsTests: XCTestCase {
    func testExhaustiveIsEveryPairOnce() {
        let pairs = SelectPairs.pairs(imageCount: 5, selection: .exhaustive)
        XCTAssertEqual(pairs.count, 10)
        XCTAssertEqual(Set(pairs).count, 10)
        XCTAssertEqual(pairs.first, ImagePair(0, 1))
        XCTAssertEqual(pairs.last, ImagePair(3, 4))
        XCTAssertTrue(pairs.allSatisfy { $0.first < $0.second })
        XCTAssertEqual(SelectPairs.pairs(imageCount: 1, selection: .exhaustive), [])
        XCTAssertEqual(SelectPairs.pairs(imageCount: 0, selection: .exhaustive), [])
    }

    func testAPairIsTheSameWhicheverWayItIsNamed() {
        XCTAssertEqual(ImagePair(7, 2), ImagePair(2, 7))
        XCTAssertEqual(ImagePair(7, 2).first, 2)
        XCTAssertEqual("\(ImagePair(3, 1))", "1–3")
    }

    func testASequenceMatchesItsNeighboursAndItsAnchors() {
        let pairs = SelectPairs.pairs(imageCount: 30, selection: .sequential(window: 2, loopClosureStride: 10))
        let expectedNeighbours = (0..<30).flatMap { a in ((a + 1)..<min(30, a + 3)).map { ImagePair(a, $0) } }
        XCTAssertTrue(Set(expectedNeighbours).isSubset(of: Set(pairs)))
        // The walk's end is matched with its start through the anchors 0, 10 and 20.
        for anchors in [(0, 10), (0, 20), (10, 20)] {
            XCTAssertTrue(pairs.contains(ImagePair(anchors.0, anchors.1)), "\(anchors)")
        }
        XCTAssertFalse(pairs.contains(ImagePair(3, 17)), "far images that are not anchors are not matched")
        XCTAssertEqual(pairs.count, expectedNeighbours.count + 3)
        XCTAssertEqual(pairs, pairs.sorted())
    }

    func testALongWalkNeedsFarFewerPairsThanExhaustive() {
        let thousand = SelectPairs.pairs(imageCount: 1000, selection: .sequentialDefault).count
        // Ten neighbours each, plus every pair of the 100 anchors but the 99 of consecutive anchors, which are
        // ten apart and so neighbours already.
        XCTAssertEqual(thousand, (1000 * 10 - 55) + 100 * 99 / 2 - 99)
        XCTAssertLessThan(thousand, 1000 * 999 / 2 / 30)
    }

    func testNonsenseIsRefused() {
        XCTAssertThrowsError(try PairSelection.sequential(window: 0, loopClosureStride: 5).validate())
        XCTAssertThrowsError(try PairSelection.sequential(window: 3, loopClosureStride: 0).validate())
        XCTAssertNoThrow(try PairSelection.sequentialDefault.validate())
        XCTAssertNoThrow(try PairSelection.exhaustive.validate())
    }
}
