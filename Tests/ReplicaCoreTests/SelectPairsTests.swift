import ReplicaCore
import XCTest

/// Which images are matched: all pairs for unordered sets, a window of neighbours for walks.
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

    func testASequenceMatchesEachImageWithItsNextFew() {
        let pairs = SelectPairs.pairs(imageCount: 30, selection: .sequential(window: 2))
        let expected = (0..<30).flatMap { a in ((a + 1)..<min(30, a + 3)).map { ImagePair(a, $0) } }
        XCTAssertEqual(pairs, expected)
        XCTAssertEqual(pairs.count, 29 + 28)
        XCTAssertFalse(pairs.contains(ImagePair(3, 17)), "far images are left to loop closure")
        XCTAssertEqual(SelectPairs.pairs(imageCount: 3, selection: .sequential(window: 10)).count, 3)
    }

    func testALongWalkNeedsFarFewerPairsThanExhaustive() {
        let thousand = SelectPairs.pairs(imageCount: 1000, selection: .sequential(window: 10)).count
        // Ten neighbours each, but the last ten images have fewer than ten after them.
        XCTAssertEqual(thousand, 1000 * 10 - 55)
        XCTAssertLessThan(thousand, 1000 * 999 / 2 / 40)
    }

    func testNonsenseIsRefused() {
        XCTAssertThrowsError(try PairSelection.sequential(window: 0).validate())
        XCTAssertNoThrow(try PairSelection.sequential(window: 10).validate())
        XCTAssertNoThrow(try PairSelection.exhaustive.validate())
    }
}
