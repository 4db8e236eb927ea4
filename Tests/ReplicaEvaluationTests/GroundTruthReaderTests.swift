import Foundation
import ReplicaEvaluation
import ReplicaGeometry
import XCTest

/// The readers run on the shared datasets in place (`../shared/datasets` from the repository root).
final class GroundTruthReaderTests: XCTestCase {
    private static let datasets = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/datasets")

    private func dataset(_ name: String) throws -> String {
        let folder = Self.datasets.appendingPathComponent(name).path
        try XCTSkipUnless(FileManager.default.fileExists(atPath: folder), "dataset \(name) is not at \(folder)")
        return folder
    }

    private func parFile(in folder: String) throws -> String {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder)
        let par = try XCTUnwrap(names.first { $0.hasSuffix("_par.txt") }, "no *_par.txt in \(folder)")
        return (folder as NSString).appendingPathComponent(par)
    }

    // MARK: Middlebury

    func testTempleSparseRing() throws { try checkMiddlebury("middlebury_templeSparseRing", count: 16, margin: 0) }

    func testTempleRing() throws { try checkMiddlebury("middlebury_templeRing", count: 47, margin: 0) }

    /// The dino's box corners leave the image by up to 81 px in some views (its README warns that the object is
    /// partly outside the field of view), so they get a margin of a fifth of the width; the centre gets none.
    func testDinoSparseRing() throws { try checkMiddlebury("middlebury_dinoSparseRing", count: 16, margin: 128) }

    func testDinoRing() throws { try checkMiddlebury("middlebury_dinoRing", count: 48, margin: 128) }

    private func checkMiddlebury(_ name: String, count: Int, margin: Double) throws {
        let truth = try GroundTruthReaders.middlebury(parFile: parFile(in: try dataset(name)))
        XCTAssertEqual(truth.images.count, count)
        let box = try XCTUnwrap(truth.boundingBox, "\(name): no bounding box")
        let centre = (box.min + box.max) / 2
        for image in truth.images {
            XCTAssertEqual(image.camera.width, 640, image.name)
            XCTAssertEqual(image.camera.height, 480, image.name)
            assertRotation(image.camFromWorld.rotation, image.name)
            XCTAssertGreaterThan(image.camFromWorld.apply(centre).z, 0, "\(image.name): the box is behind")
            let pixel = try XCTUnwrap(image.project(centre), image.name)
            XCTAssertTrue(image.camera.contains(pixel), "\(image.name): centre at \(pixel)")
            for corner in box.corners {
                let pixel = try XCTUnwrap(image.project(corner), "\(image.name): a corner is behind")
                XCTAssertTrue(inside(pixel, image.camera, margin: margin), "\(image.name): corner at \(pixel)")
            }
        }
    }

    func testMiddleburyBoxAndCameraAreTheFilesNumbers() throws {
        let truth = try GroundTruthReaders.middlebury(parFile: parFile(in: try dataset("middlebury_templeRing")))
        let box = try XCTUnwrap(truth.boundingBox)
        assertClose(box.min, Vector3(-0.023121, -0.038009, -0.091940), 1e-12)
        assertClose(box.max, Vector3(0.078626, 0.121636, -0.017395), 1e-12)
        // templeR0001.png: K has fx 1520.4, fy 1525.9 and (302.32, 246.87), which moves by half a pixel.
        let first = try XCTUnwrap(truth.image(named: "templeR0001.png"))
        XCTAssertEqual(first.camera.focalX, 1520.4, accuracy: 1e-9)
        XCTAssertEqual(first.camera.focalY, 1525.9, accuracy: 1e-9)
        XCTAssertEqual(first.camera.principalX, 302.82, accuracy: 1e-9)
        XCTAssertEqual(first.camera.principalY, 247.37, accuracy: 1e-9)
        assertClose(first.camFromWorld.translation, Vector3(-0.0292149526928, -0.0241923869131, 0.52269561933), 1e-15)
    }

    func testMiddleburyImageSizeCanBeGiven() throws {
        let par = try parFile(in: try dataset("middlebury_templeSparseRing"))
        let truth = try GroundTruthReaders.middlebury(parFile: par, imageSize: (320, 240))
        XCTAssertTrue(truth.images.allSatisfy { $0.camera.width == 320 && $0.camera.height == 240 })
    }

    // MARK: Strecha

    func testStrechaFountain() throws {
        let folder = (try dataset("strecha_fountain_P11") as NSString).appendingPathComponent("gt_dense_cameras")
        let truth = try GroundTruthReaders.strecha(cameraFolder: folder)
        XCTAssertEqual(truth.images.map(\.name), (0..<11).map { String(format: "%04d.jpg", $0) })
        let point = try nearestPoint(toAxesOf: truth.images)
        for image in truth.images {
            XCTAssertEqual(image.camera.width, 3072, image.name)
            XCTAssertEqual(image.camera.height, 2048, image.name)
            assertRotation(image.camFromWorld.rotation, image.name)
            XCTAssertGreaterThan(image.camFromWorld.apply(point).z, 0, "\(image.name): the meeting point is behind")
            let pixel = try XCTUnwrap(image.project(point), image.name)
            XCTAssertTrue(image.camera.contains(pixel), "\(image.name): meeting point at \(pixel)")
        }
    }

    func testStrechaCentreIsTheFilesC() throws {
        let folder = (try dataset("strecha_fountain_P11") as NSString).appendingPathComponent("gt_dense_cameras")
        let first = try XCTUnwrap(GroundTruthReaders.strecha(cameraFolder: folder).image(named: "0000.jpg"))
        // The centre goes through −RᵀC and back with R printed to six digits, so it moves by a few micrometres.
        assertClose(first.centerInWorld, Vector3(-7.28137, -7.57667, 0.204446), 1e-4)
        XCTAssertEqual(first.camera.focalX, 2759.48, accuracy: 1e-9)
        XCTAssertEqual(first.camera.principalY, 1006.81, accuracy: 1e-9)
    }

    /// The least-squares point nearest to every camera's optical axis (the camera's +z through its centre).
    private func nearestPoint(toAxesOf images: [PosedImage]) throws -> Vector3 {
        var normal = Matrix3(rows: .zero, .zero, .zero), right = Vector3.zero
        for image in images {
            let axis = image.camFromWorld.rotation.row(2), centre = image.centerInWorld
            let projector = Matrix3.identity + outer(axis, axis) * -1
            normal = normal + projector
            right += projector * centre
        }
        let det = normal.determinant
        XCTAssertGreaterThan(abs(det), 1e-9, "the optical axes are parallel")
        // Cramer's rule on the symmetric 3×3 system.
        let (c0, c1, c2) = (normal.column(0), normal.column(1), normal.column(2))
        return Vector3(right.dot(c1.cross(c2)), c0.dot(right.cross(c2)), c0.dot(c1.cross(right))) / det
    }

    private func outer(_ a: Vector3, _ b: Vector3) -> Matrix3 { Matrix3(rows: b * a.x, b * a.y, b * a.z) }

    // MARK: NeRF

    func testNeRFLego() throws {
        let file = (try dataset("nerf_synthetic_lego") as NSString).appendingPathComponent("transforms_train.json")
        let truth = try GroundTruthReaders.nerf(transformsFile: file)
        XCTAssertEqual(truth.images.count, 100)
        let json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file)))
            as? [String: Any])
        let angle = try XCTUnwrap(json["camera_angle_x"] as? Double)
        XCTAssertEqual(truth.images.first?.name, "r_0.png")
        for image in truth.images {
            XCTAssertEqual(image.camera.width, 800, image.name)
            XCTAssertEqual(image.camera.height, 800, image.name)
            XCTAssertEqual(image.camera.focalX, 0.5 * 800 / tan(angle / 2), accuracy: 1e-9, image.name)
            XCTAssertEqual(image.camera.focalY, image.camera.focalX, image.name)
            assertRotation(image.camFromWorld.rotation, image.name)
            let origin = try XCTUnwrap(image.project(.zero), "\(image.name): the object is behind")
            XCTAssertTrue(inside(origin, image.camera, margin: -80), "\(image.name): origin at \(origin)")
            // Blender's +z is up, so a point above the object is higher in the image (smaller y).
            let above = try XCTUnwrap(image.project(Vector3(0, 0, 0.5)), image.name)
            XCTAssertLessThan(above.y, origin.y, "\(image.name): the image is upside down")
        }
    }

    // MARK: Errors and the PNG header

    func testMalformedParLineNamesFileAndLine() throws {
        let folder = try temporaryFolder()
        let par = (folder as NSString).appendingPathComponent("bad_par.txt")
        let good = "a.png 1 0 2 0 1 3 0 0 1 1 0 0 0 1 0 0 0 1 0 0 1"
        try "2\n\(good)\nb.png 1 0 2 0 1 3 0 0 1 1 0 0 0 1 0 0 0 one 0 0 1\n".write(toFile: par, atomically: true,
                                                                              encoding: .utf8)
        XCTAssertThrowsError(try GroundTruthReaders.middlebury(parFile: par, imageSize: (10, 10))) { error in
            let error = error as? GroundTruthError
            XCTAssertEqual(error?.file, par)
            XCTAssertEqual(error?.line, 3)
            XCTAssertTrue(error?.description.contains("bad_par.txt:3: 'one' is not a number") == true,
                          "\(String(describing: error))")
        }
        try "3\n\(good)\n".write(toFile: par, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try GroundTruthReaders.middlebury(parFile: par, imageSize: (10, 10))) { error in
            XCTAssertEqual((error as? GroundTruthError)?.line, 1)
        }
    }

    func testPNGHeaderSizeAndRefusal() throws {
        let folder = try temporaryFolder()
        let png = (folder as NSString).appendingPathComponent("tiny.png")
        var bytes: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13] + Array("IHDR".utf8)
        bytes += [0, 0, 0x01, 0x2C, 0, 0, 0, 0xC8, 8, 2, 0, 0, 0]
        try Data(bytes).write(to: URL(fileURLWithPath: png))
        let size = try GroundTruthReaders.pngSize(of: png)
        XCTAssertEqual(size.width, 300)
        XCTAssertEqual(size.height, 200)
        bytes[1] = 0
        try Data(bytes).write(to: URL(fileURLWithPath: png))
        XCTAssertThrowsError(try GroundTruthReaders.pngSize(of: png)) { error in
            XCTAssertEqual((error as? GroundTruthError)?.file, png)
        }
    }

    // MARK: Helpers

    private func temporaryFolder() throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("readers-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: folder) }
        return folder.path
    }

    /// Inside the image grown by `margin` pixels on every side (a negative margin shrinks it).
    private func inside(_ pixel: Vector2, _ camera: PinholeCamera, margin: Double) -> Bool {
        pixel.x >= -margin && pixel.y >= -margin
            && pixel.x <= Double(camera.width) + margin && pixel.y <= Double(camera.height) + margin
    }

    /// Orthonormal with det +1 to 1e-5: Strecha prints rotations to six digits, NeRF stores 32-bit floats.
    private func assertRotation(_ r: Matrix3, _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let product = (r.transposed * r).values, identity = Matrix3.identity.values
        let drift = zip(product, identity).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(drift, 1e-5, "\(name): RᵀR is not I", file: file, line: line)
        XCTAssertEqual(r.determinant, 1, accuracy: 1e-5, "\(name): det R", file: file, line: line)
    }

    private func assertClose(_ a: Vector3, _ b: Vector3, _ tolerance: Double,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThan((a - b).length, tolerance, "\(a) is not \(b)", file: file, line: line)
    }
}
