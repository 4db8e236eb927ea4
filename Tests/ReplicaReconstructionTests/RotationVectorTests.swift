import ReplicaGeometry
import XCTest

final class RotationVectorTests: XCTestCase {
    func testRoundTripsAcrossAngles() {
        var generator = SplitMix64Generator(seed: 7)
        for angle in [0, 1e-9, 1e-4, 0.3, 1.5, 3.0, 3.14159, Double.pi - 1e-9] {
            let axis = Vector3(generator.unit() - 0.5, generator.unit() - 0.5, generator.unit() - 0.5).normalized
            let rotation = Matrix3(rotationVector: axis * angle)
            let expected = Matrix3(rotationAbout: axis, angle: angle)
            XCTAssertLessThan(rotation.angle(to: expected), 1e-12, "angle \(angle)")
            let back = Matrix3(rotationVector: rotation.rotationVector)
            XCTAssertLessThan(back.angle(to: rotation), 1e-9, "angle \(angle)")
            XCTAssertEqual(rotation.rotationVector.length, angle, accuracy: 1e-9)
        }
    }

    func testSmallVectorKeepsItsDigits() {
        let vector = Vector3(1e-10, -2e-10, 3e-10)
        let back = Matrix3(rotationVector: vector).rotationVector
        XCTAssertEqual((back - vector).length / vector.length, 0, accuracy: 1e-6)
    }
}
