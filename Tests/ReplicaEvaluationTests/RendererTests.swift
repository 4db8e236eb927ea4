import ReplicaEvaluation
import ReplicaGeometry
import ReplicaImageIO
import XCTest

/// The rasterizer on cases whose pixels are known by hand.
final class RendererTests: XCTestCase {
    /// A 12 × 12 camera with f = 10 and the principal point at the corner, so a point at z = 5 lands on pixel
    /// (2x, 2y).
    private let view = PosedImage(name: "test.png",
                                  camera: PinholeCamera(width: 12, height: 12, focalX: 10, focalY: 10,
                                                        principalX: 0, principalY: 0),
                                  camFromWorld: .identity)

    private func flat(_ vertices: [Vector3], _ triangles: [SIMD3<Int32>], color: Vector3) -> TexturedMesh {
        TexturedMesh(mesh: TriangleMesh(vertices: vertices, triangles: triangles),
                     vertexColors: Array(repeating: color, count: vertices.count))
    }

    func testAFrontFacingTriangleCoversExactlyTheCentresInsideIt() {
        // Corners at pixels (1, 1), (1, 9.2), (9.2, 1): a centre (x + 0.5, y + 0.5) is inside when x ≥ 1,
        // y ≥ 1 and x + y ≤ 9; none lies on an edge.
        let triangle = flat([Vector3(0.5, 0.5, 5), Vector3(0.5, 4.6, 5), Vector3(4.6, 0.5, 5)], [SIMD3(0, 1, 2)],
                            color: Vector3(1, 1, 1))
        let (_, coverage) = Rasterizer.render(triangle, from: view, lighting: nil)
        for y in 0..<12 { for x in 0..<12 {
            XCTAssertEqual(coverage[y * 12 + x], x >= 1 && y >= 1 && x + y <= 9, "pixel (\(x), \(y))")
        } }
    }

    func testABackFacingTriangleIsCulled() {
        let triangle = flat([Vector3(0.5, 0.5, 5), Vector3(4.6, 0.5, 5), Vector3(0.5, 4.6, 5)], [SIMD3(0, 1, 2)],
                            color: Vector3(1, 1, 1))
        XCTAssertFalse(Rasterizer.render(triangle, from: view, lighting: nil).coverage.contains(true))
    }

    func testAFlatUnlitColourComesOutAsThatColourOverTheBackground() {
        let triangle = flat([Vector3(0.5, 0.5, 5), Vector3(0.5, 4.6, 5), Vector3(4.6, 0.5, 5)], [SIMD3(0, 1, 2)],
                            color: Vector3(0.2, 0.4, 0.6))
        let background = SIMD3<UInt8>(9, 8, 7)
        let (image, coverage) = Rasterizer.render(triangle, from: view, lighting: nil, background: background)
        for pixel in 0..<144 {
            let rgb = Array(image.bytes[(3 * pixel)..<(3 * pixel + 3)])
            XCTAssertEqual(rgb, coverage[pixel] ? [51, 102, 153] : [9, 8, 7], "pixel \(pixel)")
        }
    }

    func testTheNearerTriangleWinsWhateverTheOrder() {
        let far = flat([Vector3(0, 0, 6), Vector3(0, 6, 6), Vector3(6, 0, 6)], [SIMD3(0, 1, 2)],
                       color: Vector3(1, 0, 0))
        let near = flat([Vector3(0, 0, 3), Vector3(0, 3, 3), Vector3(3, 0, 3)], [SIMD3(0, 1, 2)],
                        color: Vector3(0, 1, 0))
        for models in [[far, near], [near, far]] {
            let result = Rasterizer.rendering(models, from: view, lighting: nil)
            // Pixel (2, 2): inside both; the near one (z = 3) must show.
            let pixel = 2 * 12 + 2
            XCTAssertEqual(Array(result.image.bytes[(3 * pixel)..<(3 * pixel + 3)]), [0, 255, 0])
            XCTAssertEqual(result.depth[pixel], 3, accuracy: 1e-9)
        }
    }

    func testATexelAppearsWhereItsCentreProjects() {
        // A square at z = 2 filling a 4 × 4 image exactly (f = 2, principal point at the centre), so each pixel
        // centre meets one texel centre of a 4 × 4 texture.
        let camera = PinholeCamera(width: 4, height: 4, focal: 2)
        let square = PosedImage(name: "square.png", camera: camera, camFromWorld: .identity)
        let texture = PixelBuffer(width: 4, height: 4, channels: 3, bytes: (0..<48).map { UInt8($0 * 5) })
        let mesh = TriangleMesh(vertices: [Vector3(-2, -2, 2), Vector3(2, -2, 2), Vector3(2, 2, 2), Vector3(-2, 2, 2)],
                                triangles: [SIMD3(0, 2, 1), SIMD3(0, 3, 2)])
        let model = TexturedMesh(mesh: mesh, textureCoordinates: [Vector2(0, 0), Vector2(1, 0), Vector2(1, 1),
                                                                  Vector2(0, 1)], texture: texture)
        let (image, coverage) = Rasterizer.render(model, from: square, lighting: nil)
        XCTAssertEqual(coverage, Array(repeating: true, count: 16))
        XCTAssertEqual(image.bytes, texture.bytes)
    }

    func testTextureCoordinatesAreInterpolatedWithPerspective() {
        // A quad receding from z = 2 (left edge) to z = 6 (right edge), black texel on the left, white on the
        // right. Its middle (u = 0.5, at x = 0, z = 4) projects to column 8; screen-affine interpolation would
        // put it near column 5.3 instead.
        let camera = PinholeCamera(width: 16, height: 4, focalX: 8, focalY: 8, principalX: 8, principalY: 2)
        let view = PosedImage(name: "tilted.png", camera: camera, camFromWorld: .identity)
        let mesh = TriangleMesh(vertices: [Vector3(-2, -1, 2), Vector3(2, -1, 6), Vector3(2, 1, 6), Vector3(-2, 1, 2)],
                                triangles: [SIMD3(0, 2, 1), SIMD3(0, 3, 2)])
        let texture = PixelBuffer(width: 2, height: 1, channels: 3, bytes: [0, 0, 0, 255, 255, 255])
        let model = TexturedMesh(mesh: mesh, textureCoordinates: [Vector2(0, 0), Vector2(1, 0), Vector2(1, 1),
                                                                  Vector2(0, 1)], texture: texture)
        let result = Rasterizer.rendering([model], from: view, lighting: nil)
        let row = 2 * 16
        for column in [7, 8] {
            // The ray through the centre has x/z = slope and meets the plane z = 4 + x at z = 4 / (1 - slope);
            // u = (x + 2) / 4, and the bilinear texture is white in proportion to 2u - 0.5.
            let slope = (Double(column) + 0.5 - 8) / 8
            let z = 4 / (1 - slope)
            let u = (slope * z + 2) / 4
            XCTAssertEqual(result.depth[row + column], z, accuracy: 1e-9)
            XCTAssertEqual(Double(result.image.bytes[3 * (row + column)]), (2 * u - 0.5) * 255, accuracy: 0.51)
        }
    }

    func testLightingDarkensASurfaceTurnedFromTheLight() {
        let triangle = flat([Vector3(0.5, 0.5, 5), Vector3(0.5, 4.6, 5), Vector3(4.6, 0.5, 5)], [SIMD3(0, 1, 2)],
                            color: Vector3(1, 1, 1))
        // The triangle faces -z (towards the camera); a light from behind it leaves only the ambient share.
        let behind = Lighting(towardsLightInWorld: Vector3(0, 0, 1), ambient: 0.4, diffuse: 0.6)
        let front = Lighting(towardsLightInWorld: Vector3(0, 0, -1), ambient: 0.4, diffuse: 0.6)
        let pixel = 3 * (2 * 12 + 2)
        XCTAssertEqual(Rasterizer.render(triangle, from: view, lighting: behind).image.bytes[pixel], 102)
        XCTAssertEqual(Rasterizer.render(triangle, from: view, lighting: front).image.bytes[pixel], 255)
    }
}
