import Foundation
import ReplicaGeometry
import XCTest
@testable import ReplicaReconstruction

/// Incremental structure from motion on true (if noisy) correspondences of a synthetic ring whose camera has its
/// principal point off the centre, as real ones do: the last adjustment finds where it is, and the poses come out
/// straighter for it than with the point held at the centre.
final class IncrementalMapperTests: XCTestCase {
    /// 20 px right of and 12 px above the centre of a 640 × 480 photo: 1.6° and 1° at this focal length.
    private let trueCamera = SimpleRadialCamera(width: 640, height: 480, focal: 700,
                                                principal: Vector2(340, 228), radial: 0)

    /// 16 photos on a ring of radius 6 around 250 points in a cube of side 3, each keypoint a projection with
    /// 0.3 px of noise, and every pair of photos that shares 30 points verified with those as its inliers.
    private func ring(seed: UInt64) -> (input: AlignmentInput, truth: [Rigid3]) {
        var generator = SplitMix64Generator(seed: seed)
        let poses = (0..<16).map { index -> Rigid3 in
            let angle = 2 * Double.pi * Double(index) / 16
            let center = Vector3(6 * cos(angle), 0.8 * sin(3 * angle), 6 * sin(angle))
            return SyntheticViews.lookingAtOrigin(from: center)
        }
        let points = (0..<250).map { _ in
            Vector3(generator.unit() - 0.5, generator.unit() - 0.5, generator.unit() - 0.5) * 3
        }
        var images: [AlignmentImage] = []
        // Per image, the keypoint index of each point it sees.
        var keypointOf: [[Int: Int32]] = []
        for (index, pose) in poses.enumerated() {
            var keypoints: [Vector2] = [], seen: [Int: Int32] = [:]
            for (point, position) in points.enumerated() {
                guard let pixel = trueCamera.project(pose.apply(position)), trueCamera.contains(pixel) else { continue }
                seen[point] = Int32(keypoints.count)
                let noise = Vector2(SyntheticViews.gaussian(0.3, &generator), SyntheticViews.gaussian(0.3, &generator))
                keypoints.append(pixel + noise)
            }
            images.append(AlignmentImage(name: "ring-\(index).png", camera: 0, keypoints: keypoints))
            keypointOf.append(seen)
        }
        var pairs: [AlignmentPair] = []
        for first in poses.indices {
            for second in poses.indices where second > first {
                let inliers = points.indices.compactMap { point -> FeatureMatch? in
                    guard let a = keypointOf[first][point], let b = keypointOf[second][point] else { return nil }
                    return FeatureMatch(first: a, second: b)
                }
                guard inliers.count >= 30 else { continue }
                pairs.append(AlignmentPair(first: first, second: second, configuration: .uncalibrated,
                                           inliers: inliers))
            }
        }
        let guess = SimpleRadialCamera(width: 640, height: 480,
                                       focal: SimpleRadialCamera.guessedFocal(width: 640, height: 480))
        return (AlignmentInput(images: images, cameras: [guess], pairs: pairs), poses)
    }

    /// The largest error, in degrees, of the rotation between any two registered photos: it does not depend on
    /// the frame the model was built in.
    private func largestRelativeRotationError(_ poses: [Rigid3?], truth: [Rigid3]) throws -> Double {
        var largest = 0.0
        for first in truth.indices {
            for second in truth.indices where second > first {
                let a = try XCTUnwrap(poses[first]), b = try XCTUnwrap(poses[second])
                let estimated = b.rotation * a.rotation.transposed
                let actual = truth[second].rotation * truth[first].rotation.transposed
                largest = max(largest, estimated.angle(to: actual) * 180 / .pi)
            }
        }
        return largest
    }

    func testTheLastAdjustmentFindsAnOffCentrePrincipalPoint() throws {
        let (input, truth) = ring(seed: 11)
        let refined = IncrementalMapper(input: input).run()
        var holding = AlignmentOptions()
        holding.principalPointDeviationFraction = 0
        let held = IncrementalMapper(input: input, options: holding).run()

        XCTAssertEqual(refined.registeredCount, 16)
        XCTAssertEqual(held.registeredCount, 16)
        // Held, the principal point stays exactly where it started.
        XCTAssertEqual(held.cameras[0].principal, input.cameras[0].principal)
        XCTAssertEqual(refined.cameras[0].principal.x, trueCamera.principal.x, accuracy: 2)
        XCTAssertEqual(refined.cameras[0].principal.y, trueCamera.principal.y, accuracy: 2)
        XCTAssertEqual(refined.cameras[0].focal, trueCamera.focal, accuracy: 0.01 * trueCamera.focal)
        // Measured: 0.06° refined against 2.0° held, about the offset's own angle.
        let refinedError = try largestRelativeRotationError(refined.poses, truth: truth)
        let heldError = try largestRelativeRotationError(held.poses, truth: truth)
        XCTAssertLessThan(refinedError, 0.2)
        XCTAssertGreaterThan(heldError, 5 * refinedError)

        // Allowed no further than 1% of a side from the centre, the refined point (3% off) is taken for a
        // degenerate fit: the last adjustment runs again with it held, and gives the held model.
        var bounded = AlignmentOptions()
        bounded.principalPointOffsetFraction = 0.01
        let fallen = IncrementalMapper(input: input, options: bounded).run()
        XCTAssertEqual(fallen.cameras[0].principal, input.cameras[0].principal)
        XCTAssertEqual(try largestRelativeRotationError(fallen.poses, truth: truth), heldError, accuracy: 0.05)
    }
}
