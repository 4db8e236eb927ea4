import ReplicaCore
import ReplicaEvaluation
import ReplicaGeometry
import ReplicaImageIO
import ReplicaReconstruction
import XCTest

/// Retrieval by visual words on the synthetic ring, whose true neighbours are known: each view's most similar
/// views are the ones beside it.
final class ImageRetrievalTests: XCTestCase {
    private static let features: [FeatureSet] = {
        let scene = SyntheticScene.make(.ci)
        return scene.truth.images.indices.map { view in
            FeatureDetection.detect(scene.render(viewIndex: view),
                                    options: FeatureOptions(maximumFeatures: 4096, highSensitivity: true))
        }
    }()

    func testEachViewRetrievesItsNeighboursOnTheRing() throws {
        let sets = Self.features
        let count = sets.count
        let pairs = ImageRetrieval.pairs(sets, options: RetrievalOptions(neighbours: 2, words: 256,
                                                                         trainingDescriptors: 20_000))
        XCTAssertLessThanOrEqual(pairs.count, 2 * count)
        XCTAssertEqual(pairs, pairs.sorted())
        XCTAssertTrue(pairs.allSatisfy { $0.first < $0.second })
        // 30° apart on one ring: the views on either side share the most of the object.
        let adjacent = pairs.filter { ($0.second - $0.first) == 1 || ($0.second - $0.first) == count - 1 }
        XCTAssertGreaterThanOrEqual(adjacent.count, count - 1, "\(pairs)")
        for view in 0..<count {
            XCTAssertTrue(pairs.contains { $0.first == view || $0.second == view }, "view \(view) has no pair")
        }
    }

    func testFewImagesAreMatchedExhaustively() {
        let sets = Array(Self.features.prefix(4))
        XCTAssertEqual(ImageRetrieval.pairs(sets, options: RetrievalOptions(neighbours: 3)),
                       SelectPairs.pairs(imageCount: 4, selection: .exhaustive))
        XCTAssertEqual(ImageRetrieval.pairs(Array(sets.prefix(1))), [])
    }

    func testOptionsRejectNonsense() {
        XCTAssertNoThrow(try RetrievalOptions().validate())
        XCTAssertThrowsError(try RetrievalOptions(neighbours: 0).validate())
        XCTAssertThrowsError(try RetrievalOptions(words: 1).validate())
        XCTAssertThrowsError(try RetrievalOptions(words: 1000, trainingDescriptors: 10).validate())
        XCTAssertThrowsError(try RetrievalOptions(iterations: 0).validate())
    }
}
