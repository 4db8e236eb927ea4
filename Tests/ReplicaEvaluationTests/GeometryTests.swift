import ReplicaGeometry
import XCTest

/// The geometric vocabulary: rotations, rigid motions and projection.
final class GeometryTests: XCTestCase {
    func testARotationAboutZTurnsXIntoY() {
        let quarter = Matrix3(rotationAbout: Vector3(0, 0, 1), angle: .pi / 2)
        let turned = quarter * Vector3(1, 0, 0)
        XCTAssertEqual(turned.x, 0, accuracy: 1e-12)
        XCTAssertEqual(turned.y, 1, accuracy: 1e-12)
        XCTAssertEqual(quarter.determinant, 1, accuracy: 1e-12)
        XCTAssertEqual(Matrix3.identity.angle(to: quarter), .pi / 2, accuracy: 1e-12)
        let twoDegrees = Matrix3(rotationAbout: Vector3(1, 2, 3), angle: 2 * .pi / 180)
        XCTAssertEqual(quarter.angle(to: quarter * twoDegrees) * 180 / .pi, 2, accuracy: 1e-9)
        let tiny = Matrix3(rotationAbout: Vector3(0, 1, 0), angle: 1e-9)
        XCTAssertEqual(quarter.angle(to: quarter * tiny), 1e-9, accuracy: 1e-15, "precise near zero")
        XCTAssertEqual(quarter.angle(to: quarter), 0)
    }

    func testARigidMotionUndoesItself() {
        let motion = Rigid3(rotation: Matrix3(rotationAbout: Vector3(1, 1, 0), angle: 0.7),
                            translation: Vector3(1, -2, 3))
        let point = Vector3(0.3, 0.4, -5)
        let back = motion.inverse.apply(motion.apply(point))
        XCTAssertEqual((back - point).length, 0, accuracy: 1e-12)
        XCTAssertEqual(((motion * motion.inverse).translation).length, 0, accuracy: 1e-12)
    }

    func testAPointOnTheOpticalAxisProjectsToThePrincipalPoint() {
        let camera = PinholeCamera(width: 320, height: 240, focal: 300)
        let image = PosedImage(name: "a.png", camera: camera,
                               camFromWorld: Rigid3(translation: Vector3(0, 0, 4)))
        XCTAssertEqual(image.project(.zero), Vector2(160, 120))
        XCTAssertEqual(image.project(Vector3(1, 0, 0)), Vector2(160 + 75, 120))
        XCTAssertNil(image.project(Vector3(0, 0, -5)), "behind the camera")
        XCTAssertEqual(image.centerInWorld, Vector3(0, 0, -4))
        let ray = camera.ray(through: Vector2(160 + 75, 120))
        XCTAssertEqual(ray * 4, Vector3(1, 0, 4))
    }
}
