import ReplicaGeometry
import ReplicaImageIO

/// How a rendered surface is lit: one directional light plus ambient light, Lambert's law for the rest.
public struct Lighting: Equatable, Sendable {
    /// The direction from the surface towards the light, in world coordinates (any length but zero).
    public var towardsLightInWorld: Vector3
    /// The share of a surface's colour it shows whatever its orientation, 0...1.
    public var ambient: Double
    /// The share added when the surface faces the light squarely, 0...1; ambient + diffuse ≤ 1 avoids clipping.
    public var diffuse: Double

    public init(towardsLightInWorld: Vector3 = Vector3(0.35, -0.45, 0.82), ambient: Double = 0.4,
                diffuse: Double = 0.6) {
        self.towardsLightInWorld = towardsLightInWorld
        self.ambient = ambient
        self.diffuse = diffuse
    }

    /// Rejects a zero light direction and shares outside 0...1.
    public func validate() throws {
        guard towardsLightInWorld.length > 0 else { throw SceneSpecError("the light direction is zero") }
        guard (0...1).contains(ambient), (0...1).contains(diffuse) else {
            throw SceneSpecError("ambient \(ambient) and diffuse \(diffuse) must be within 0...1")
        }
    }

    /// The brightness factor of a surface with unit normal `normalInWorld`.
    func factor(normalInWorld: Vector3) -> Double {
        ambient + diffuse * max(0, normalInWorld.dot(towardsLightInWorld.normalized))
    }
}

/// One rendered view: colours, which pixels the surface covers, and the depth there.
public struct Rendering: Sendable {
    public var image: PixelBuffer
    /// Row-major, one per pixel: true where a triangle covers the pixel's centre.
    public var coverage: [Bool]
    /// Row-major, one per pixel: the camera-frame z of the surface at the pixel's centre, in scene units;
    /// `.infinity` where nothing is covered.
    public var depth: [Double]
}

/// A z-buffered, perspective-correct triangle rasterizer for ground-truth images.
///
/// A pixel is covered when its centre (x + 0.5, y + 0.5) lies inside a triangle or on its edge; a centre on an
/// edge shared by two triangles is drawn by the first, as the depth test keeps the nearer-or-earlier one.
/// Back faces (seen from inside, given counter-clockwise triangles seen from outside) are culled. Triangles
/// with a corner closer than `nearDepth` are skipped, not clipped: the scenes here keep cameras well away
/// from the surface, and skipping is what a renderer for truth images should do rather than draw a wrong
/// sliver.
public enum Rasterizer {
    /// The smallest camera-frame z a drawn triangle's corners may have, in scene units.
    public static let nearDepth = 1e-3
    /// The colour of pixels no triangle covers, in sRGB bytes.
    public static let defaultBackground = SIMD3<UInt8>(46, 48, 56)

    /// Renders one textured mesh; nil lighting shows the surface colours unlit.
    public static func render(_ model: TexturedMesh, from view: PosedImage, lighting: Lighting? = Lighting(),
                              background: SIMD3<UInt8> = defaultBackground) -> (image: PixelBuffer, coverage: [Bool]) {
        let result = rendering([model], from: view, lighting: lighting, background: background)
        return (result.image, result.coverage)
    }

    /// Renders several meshes into one image with one depth buffer, and keeps the depth map.
    public static func rendering(_ models: [TexturedMesh], from view: PosedImage, lighting: Lighting? = Lighting(),
                                 background: SIMD3<UInt8> = defaultBackground) -> Rendering {
        var target = Target(camera: view.camera, background: background)
        for model in models {
            let surface = Surface(model)
            for index in model.mesh.triangles.indices {
                drawTriangle(index, of: model.mesh, surface: surface, view: view, lighting: lighting, into: &target)
            }
        }
        let image = PixelBuffer(width: view.camera.width, height: view.camera.height, channels: 3, bytes: target.colors)
        return Rendering(image: image, coverage: target.depth.map { $0 < .infinity }, depth: target.depth)
    }

    // MARK: - Steps

    /// What the pixels hold while drawing.
    private struct Target {
        var width: Int
        var height: Int
        var camera: PinholeCamera
        var colors: [UInt8]
        var depth: [Double]

        init(camera: PinholeCamera, background: SIMD3<UInt8>) {
            width = camera.width
            height = camera.height
            self.camera = camera
            colors = [UInt8](repeating: 0, count: width * height * 3)
            for pixel in 0..<(width * height) {
                colors[3 * pixel] = background.x
                colors[3 * pixel + 1] = background.y
                colors[3 * pixel + 2] = background.z
            }
            depth = [Double](repeating: .infinity, count: width * height)
        }
    }

    /// Where a triangle's corners land: pixel coordinates and camera-frame depth.
    private struct ScreenTriangle {
        var x: (Double, Double, Double)
        var y: (Double, Double, Double)
        var z: (Double, Double, Double)
    }

    private static func drawTriangle(_ index: Int, of mesh: TriangleMesh, surface: Surface, view: PosedImage,
                                     lighting: Lighting?, into target: inout Target) {
        let (a, b, c) = mesh.corners(index)
        let camFromWorld = view.camFromWorld
        let (aInCam, bInCam, cInCam) = (camFromWorld.apply(a), camFromWorld.apply(b), camFromWorld.apply(c))
        guard aInCam.z > nearDepth, bInCam.z > nearDepth, cInCam.z > nearDepth else { return }
        // The camera sits at the origin of its frame, so a front face's normal points back towards it.
        guard (bInCam - aInCam).cross(cInCam - aInCam).dot(aInCam) < 0 else { return }

        let shade = lighting?.factor(normalInWorld: (b - a).cross(c - a).normalized) ?? 1
        let camera = view.camera
        func project(_ p: Vector3) -> (Double, Double) {
            (camera.focalX * p.x / p.z + camera.principalX, camera.focalY * p.y / p.z + camera.principalY)
        }
        let (pa, pb, pc) = (project(aInCam), project(bInCam), project(cInCam))
        let screen = ScreenTriangle(x: (pa.0, pb.0, pc.0), y: (pa.1, pb.1, pc.1), z: (aInCam.z, bInCam.z, cInCam.z))
        fill(screen, triangle: mesh.triangles[index], surface: surface, shade: shade, into: &target)
    }

    /// Visits the pixel centres inside the triangle's box, keeps the nearer surface, and colours it.
    private static func fill(_ s: ScreenTriangle, triangle: SIMD3<Int32>, surface: Surface, shade: Double,
                             into target: inout Target) {
        let area = edge(s.x.0, s.y.0, s.x.1, s.y.1, s.x.2, s.y.2)
        guard area != 0, area.isFinite else { return }
        // Centre i + 0.5 lies within [low, high] for i from ceil(low - 0.5) to floor(high - 0.5).
        let firstX = max(0, Int((min(s.x.0, s.x.1, s.x.2) - 0.5).rounded(.up)))
        let lastX = min(target.width - 1, Int((max(s.x.0, s.x.1, s.x.2) - 0.5).rounded(.down)))
        let firstY = max(0, Int((min(s.y.0, s.y.1, s.y.2) - 0.5).rounded(.up)))
        let lastY = min(target.height - 1, Int((max(s.y.0, s.y.1, s.y.2) - 0.5).rounded(.down)))
        guard firstX <= lastX, firstY <= lastY else { return }
        let inverseZ = (1 / s.z.0, 1 / s.z.1, 1 / s.z.2)

        for py in firstY...lastY {
            let cy = Double(py) + 0.5
            for px in firstX...lastX {
                let cx = Double(px) + 0.5
                let l0 = edge(s.x.1, s.y.1, s.x.2, s.y.2, cx, cy) / area
                let l1 = edge(s.x.2, s.y.2, s.x.0, s.y.0, cx, cy) / area
                let l2 = 1 - l0 - l1
                guard l0 >= 0, l1 >= 0, l2 >= 0 else { continue }
                // 1/z is affine in the image, so it interpolates with the screen weights; attributes do so
                // once divided by z, which is what makes the result perspective-correct.
                let pixelInverseZ = l0 * inverseZ.0 + l1 * inverseZ.1 + l2 * inverseZ.2
                let depth = 1 / pixelInverseZ
                let pixel = py * target.width + px
                guard depth < target.depth[pixel] else { continue }
                target.depth[pixel] = depth
                let weights = Vector3(l0 * inverseZ.0, l1 * inverseZ.1, l2 * inverseZ.2) * depth
                let color = surface.color(triangle, weights: weights) * shade
                target.colors[3 * pixel] = byte(color.x)
                target.colors[3 * pixel + 1] = byte(color.y)
                target.colors[3 * pixel + 2] = byte(color.z)
            }
        }
    }

    /// Twice the signed area of (a, b, p): which side of the line a→b the point p is on.
    @inline(__always)
    private static func edge(_ ax: Double, _ ay: Double, _ bx: Double, _ by: Double, _ px: Double,
                             _ py: Double) -> Double {
        (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    }

    private static func byte(_ value: Double) -> UInt8 { UInt8(min(255, max(0, (value * 255).rounded()))) }
}

/// Where a mesh's colour comes from while rasterizing.
private enum Surface {
    case vertexColors([Vector3])
    case texture(coordinates: [Vector2], image: PixelBuffer)
    /// Neither colours nor a texture: mid grey, so shape still shows.
    case plain

    init(_ model: TexturedMesh) {
        if let coordinates = model.textureCoordinates, let texture = model.texture,
           coordinates.count == model.mesh.vertices.count {
            self = .texture(coordinates: coordinates, image: texture)
        } else if let colors = model.vertexColors, colors.count == model.mesh.vertices.count {
            self = .vertexColors(colors)
        } else {
            self = .plain
        }
    }

    /// The colour (0...1 per channel) at the point with perspective-correct weights of the triangle's corners.
    func color(_ triangle: SIMD3<Int32>, weights: Vector3) -> Vector3 {
        switch self {
        case .vertexColors(let colors):
            return colors[Int(triangle.x)] * weights.x + colors[Int(triangle.y)] * weights.y
                + colors[Int(triangle.z)] * weights.z
        case .texture(let coordinates, let image):
            let uv = coordinates[Int(triangle.x)] * weights.x + coordinates[Int(triangle.y)] * weights.y
                + coordinates[Int(triangle.z)] * weights.z
            return Self.bilinear(image, u: uv.x, v: uv.y)
        case .plain:
            return Vector3(repeating: 0.5)
        }
    }

    /// The texture at (u, v) in 0...1 (v = 0 the top row), between the four nearest texel centres; edges clamp.
    static func bilinear(_ image: PixelBuffer, u: Double, v: Double) -> Vector3 {
        let x = u * Double(image.width) - 0.5, y = v * Double(image.height) - 0.5
        let x0 = x.rounded(.down), y0 = y.rounded(.down)
        let fx = x - x0, fy = y - y0
        let left = clamp(Int(x0), image.width), right = clamp(Int(x0) + 1, image.width)
        let top = clamp(Int(y0), image.height), bottom = clamp(Int(y0) + 1, image.height)
        let upper = texel(image, left, top) * (1 - fx) + texel(image, right, top) * fx
        let lower = texel(image, left, bottom) * (1 - fx) + texel(image, right, bottom) * fx
        return (upper * (1 - fy) + lower * fy) / 255
    }

    private static func clamp(_ index: Int, _ count: Int) -> Int { min(count - 1, max(0, index)) }

    private static func texel(_ image: PixelBuffer, _ x: Int, _ y: Int) -> Vector3 {
        let offset = (y * image.width + x) * image.channels
        if image.channels == 1 { return Vector3(repeating: Double(image.bytes[offset])) }
        return Vector3(Double(image.bytes[offset]), Double(image.bytes[offset + 1]), Double(image.bytes[offset + 2]))
    }
}
