import Foundation
import ReplicaEvaluation
import ReplicaGeometry
import XCTest

final class COLMAPModelTests: XCTestCase {
    func testWrittenModelReadsBackEqual() throws {
        let model = sampleModel()
        let folder = try temporaryFolder()
        try COLMAPModel.write(model, to: folder)
        let read = try COLMAPModel.read(folder: folder)

        XCTAssertEqual(read.images.count, model.images.count)
        for (got, want) in zip(read.images, model.images) {
            XCTAssertEqual(got.name, want.name)
            XCTAssertEqual(got.camera, want.camera, got.name)
            XCTAssertLessThan(got.camFromWorld.rotation.angle(to: want.camFromWorld.rotation), 1e-12, got.name)
            XCTAssertLessThan((got.camFromWorld.translation - want.camFromWorld.translation).length, 1e-12)
        }
        XCTAssertEqual(read.points.count, model.points.count)
        for (got, want) in zip(read.points, model.points) {
            XCTAssertEqual(got.position, want.position)
            XCTAssertEqual(got.color, want.color)
            XCTAssertEqual(got.track, want.track)
        }
    }

    /// Three images with their own cameras and poses; five points seen by two or three images each.
    private func sampleModel() -> SparseModel {
        let poses = [Rigid3(rotation: Matrix3(rotationAbout: Vector3(0.2, 1, 0.1), angle: 0.3),
                            translation: Vector3(0.5, -0.25, 4)),
                     Rigid3(rotation: Matrix3(rotationAbout: Vector3(1, 0, 0), angle: 3.1),
                            translation: Vector3(-1, 0.125, 5.5)),
                     Rigid3(rotation: Matrix3(rotationAbout: Vector3(-0.3, 0.4, 1), angle: -2.2),
                            translation: Vector3(0, 2, 3))]
        let images = poses.enumerated().map { index, pose in
            PosedImage(name: "view \(index).jpg".replacingOccurrences(of: " ", with: "_"),
                       camera: PinholeCamera(width: 640 + index, height: 480, focalX: 500.25 + Double(index),
                                             focalY: 501.5, principalX: 320.1, principalY: 239.7),
                       camFromWorld: pose)
        }
        let tracks: [[Int]] = [[0, 1], [1, 2], [0, 2], [0, 1, 2], [2, 0]]
        let points = tracks.enumerated().map { index, track in
            let position = Vector3(0.1 * Double(index), -0.2, 0.3 + 0.01 * Double(index))
            let observations = track.map { imageIndex in
                SparsePoint.Observation(imageIndex: imageIndex, pixel: images[imageIndex].project(position)!)
            }
            return SparsePoint(position: position, color: SIMD3(UInt8(index * 50), 7, 255), track: observations)
        }
        return SparseModel(images: images, points: points)
    }

    func testHandWrittenModelWithKnownNumbers() throws {
        let folder = try temporaryFolder()
        try write(folder, "cameras.txt", """
            # CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]
            3 SIMPLE_RADIAL 640 480 500 320.5 240.5 0.01

            4 OPENCV 800 600 700 710 400 300 0.1 0.01 0.001 0.002
            """)
        // Image 7: 90° about z, t = (1, 2, 3); image 9 has no points (an empty line); image 11 follows it.
        let s = 0.5.squareRoot()
        try write(folder, "images.txt", """
            # IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME
            7 \(s) 0 0 \(s) 1 2 3 3 a.jpg
            100 200 -1 150.5 250.25 42
            9 1 0 0 0 0 0 0 4 b.jpg

            11 1 0 0 0 0 0 1 4 c.jpg
            10 20 42
            """)
        try write(folder, "points3D.txt", """
            # POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[]
            42 1 2 10 255 128 0 0.5 7 1 11 0
            """)
        let model = try COLMAPModel.read(folder: folder)

        XCTAssertEqual(model.images.map(\.name), ["a.jpg", "b.jpg", "c.jpg"])
        let a = model.images[0]
        let expected = Matrix3([0, -1, 0, 1, 0, 0, 0, 0, 1])
        XCTAssertLessThan(zip(a.camFromWorld.rotation.values, expected.values).map { abs($0 - $1) }.max()!, 1e-15)
        // The centre is −Rᵀt = −(2, −1, 3).
        XCTAssertLessThan((a.centerInWorld - Vector3(-2, 1, -3)).length, 1e-14)
        XCTAssertEqual(a.camera, PinholeCamera(width: 640, height: 480, focalX: 500, focalY: 500,
                                               principalX: 320.5, principalY: 240.5))
        XCTAssertEqual(model.images[1].camera, PinholeCamera(width: 800, height: 600, focalX: 700, focalY: 710,
                                                             principalX: 400, principalY: 300))
        XCTAssertEqual(model.points.count, 1)
        let point = model.points[0]
        XCTAssertEqual(point.position, Vector3(1, 2, 10))
        XCTAssertEqual(point.color, SIMD3(255, 128, 0))
        XCTAssertEqual(point.track, [.init(imageIndex: 0, pixel: Vector2(150.5, 250.25)),
                                     .init(imageIndex: 2, pixel: Vector2(10, 20))])
    }

    func testMalformedLinesNameFileAndLine() throws {
        let folder = try temporaryFolder()
        try write(folder, "cameras.txt", "# one camera\n1 PINHOLE 10 10 5 5 5 5\n")
        try write(folder, "images.txt", "# header\n\n1 1 0 0 0 0 0 0 1 a.jpg\n1 2 5\n")
        try write(folder, "points3D.txt", "# header\n5 0 0 1 1 2 3 0 1 0\n6 0 0 x 1 2 3 0\n")
        assertError(folder, "points3D.txt", line: 3, containing: "'x' is not a number")

        try write(folder, "points3D.txt", "5 0 0 1 1 2 3 0 1 1\n")
        assertError(folder, "points3D.txt", line: 1, containing: "POINT2D 1 of image 1 is not point 5")

        try write(folder, "images.txt", "# header\n\n1 1 0 0 0 0 0 0 2 a.jpg\n1 2 5\n")
        assertError(folder, "images.txt", line: 3, containing: "camera 2 is not in cameras.txt")

        try write(folder, "cameras.txt", "1 FISHEYE 10 10 5 5 5 5\n")
        assertError(folder, "cameras.txt", line: 1, containing: "FISHEYE is not supported")

        try write(folder, "cameras.txt", "1 PINHOLE 10 10 5 5 5\n")
        assertError(folder, "cameras.txt", line: 1, containing: "PINHOLE takes 4 parameters, found 3")
    }

    private func assertError(_ folder: String, _ name: String, line: Int, containing text: String,
                             file: StaticString = #filePath, sourceLine: UInt = #line) {
        XCTAssertThrowsError(try COLMAPModel.read(folder: folder), file: file, line: sourceLine) { error in
            guard let error = error as? GroundTruthError else {
                return XCTFail("not a GroundTruthError: \(error)", file: file, line: sourceLine)
            }
            XCTAssertEqual(error.file, (folder as NSString).appendingPathComponent(name), file: file, line: sourceLine)
            XCTAssertEqual(error.line, line, "\(error)", file: file, line: sourceLine)
            XCTAssertTrue(error.description.contains(text), "\(error)", file: file, line: sourceLine)
        }
    }

    private func write(_ folder: String, _ name: String, _ text: String) throws {
        try text.write(toFile: (folder as NSString).appendingPathComponent(name), atomically: true, encoding: .utf8)
    }

    private func temporaryFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("colmap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        return folder.path
    }
}
