import Foundation
import ReplicaGeometry
import ReplicaImageIO

/// Why a scene specification (or lighting) was refused.
public struct SceneSpecError: Error, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// The objects a synthetic scene can show.
public enum SyntheticShape: String, Codable, Sendable, CaseIterable {
    /// A closed smooth object: an icosphere of radius about 1 with low-frequency radial bumps.
    case smoothBlob
    /// A 2 × 1.2 × 1.2 block with an L-shaped step, a pocket and a groove: sharp edges and concavities.
    case notchedBlock
    /// The bumpy sphere standing on a textured square of ground.
    case objectOnGround
}

/// How the cameras are placed around the object.
public enum CameraPath: Equatable, Codable, Sendable {
    /// Rings at these elevations (degrees above the object's horizontal plane), views spread evenly over them.
    case rings(elevationsDegrees: [Double])
    /// A seeded walk around the object: about even steps in azimuth, distance and elevation varying a little.
    case walk
}

/// What to build: the shape, the cameras and the images' size.
public struct SceneSpec: Equatable, Codable, Sendable {
    public var shape: SyntheticShape
    /// Number of images, at least 1.
    public var viewCount: Int
    /// Image size, in pixels.
    public var width: Int
    public var height: Int
    /// Seeds the surface pattern, the bumps and the walk.
    public var seed: UInt64
    public var path: CameraPath
    /// Horizontal field of view, in degrees (1...150); the focal length in pixels follows from it and `width`.
    public var fieldOfViewDegrees: Double

    public init(shape: SyntheticShape, viewCount: Int, width: Int, height: Int, seed: UInt64, path: CameraPath,
                fieldOfViewDegrees: Double = 55) {
        self.shape = shape
        self.viewCount = viewCount
        self.width = width
        self.height = height
        self.seed = seed
        self.path = path
        self.fieldOfViewDegrees = fieldOfViewDegrees
    }

    /// 12 views of 320 × 240 on one ring: renders in seconds in a debug build.
    public static let ci = SceneSpec(shape: .smoothBlob, viewCount: 12, width: 320, height: 240, seed: 1,
                                     path: .rings(elevationsDegrees: [20]))
    /// 100 views of 1600 × 1200 on four rings.
    public static let benchmark = SceneSpec(shape: .smoothBlob, viewCount: 100, width: 1600, height: 1200, seed: 1,
                                            path: .rings(elevationsDegrees: [-10, 15, 40, 65]))

    /// The focal length in pixels (square pixels).
    public var focalPixels: Double { Double(width) / 2 / tan(fieldOfViewDegrees * .pi / 360) }

    /// Rejects sizes, counts and angles that make no scene.
    public func validate() throws {
        guard viewCount >= 1 else { throw SceneSpecError("viewCount \(viewCount) must be at least 1") }
        guard (8...16_384).contains(width), (8...16_384).contains(height) else {
            throw SceneSpecError("\(width)×\(height) pixels is not within 8...16384 a side")
        }
        guard (1...150).contains(fieldOfViewDegrees) else {
            throw SceneSpecError("field of view \(fieldOfViewDegrees)° is not within 1...150")
        }
        if case .rings(let elevations) = path {
            guard !elevations.isEmpty, elevations.allSatisfy({ (-80...80).contains($0) }) else {
                throw SceneSpecError("ring elevations must be given, each within -80...80 degrees")
            }
            guard shape != .objectOnGround || elevations.allSatisfy({ $0 >= 5 }) else {
                throw SceneSpecError("a scene with ground needs ring elevations of 5 degrees or more")
            }
        }
    }
}

/// A synthetic scene: a textured object, the true cameras around it, and the images they see.
public struct SyntheticScene: Sendable {
    public var spec: SceneSpec
    /// The true cameras, the true surface in world units (z up) and a box around the object.
    public var truth: SceneTruth
    /// What is rendered: the object (vertex colours) and, with ground, the ground (a texture).
    public var models: [TexturedMesh]
    public var lighting: Lighting

    /// Builds the scene; the spec must pass `validate()`.
    public static func make(_ spec: SceneSpec) -> SyntheticScene {
        do { try spec.validate() } catch { preconditionFailure("invalid scene spec: \(error)") }
        let distance = viewingDistance(spec)
        // About 1.5 pixels between vertices at the viewing distance, so vertex colours carry pixel-scale detail.
        let spacing = 1.5 * distance / spec.focalPixels
        var object = objectMesh(spec, spacing: spacing)
        let objectBounds = Vector3.bounds(of: object.vertices)!
        let box = Box3(min: objectBounds.min, max: objectBounds.max)
        let pattern = SurfacePattern(seed: spec.seed, bounds: box)
        var models = [TexturedMesh(mesh: object, vertexColors: object.vertices.map(pattern.color(at:)))]
        if spec.shape == .objectOnGround {
            let ground = groundModel(spec, pattern: pattern, height: box.min.z, spacing: spacing)
            models.append(ground)
            object = merged(object, ground.mesh)
        }
        let center = (box.min + box.max) / 2
        let images = cameraCenters(spec, distance: distance).enumerated().map { index, centerInWorld in
            PosedImage(name: String(format: "view-%03d.png", index),
                       camera: PinholeCamera(width: spec.width, height: spec.height, focal: spec.focalPixels),
                       camFromWorld: lookAt(from: centerInWorld + center, to: center))
        }
        let truth = SceneTruth(images: images, mesh: object, boundingBox: box)
        return SyntheticScene(spec: spec, truth: truth, models: models, lighting: Lighting())
    }

    /// The lit image of view `viewIndex`.
    public func render(viewIndex: Int) -> PixelBuffer { rendering(viewIndex: viewIndex).image }

    /// The lit image of view `viewIndex` with its coverage and depth maps.
    public func rendering(viewIndex: Int) -> Rendering {
        Rasterizer.rendering(models, from: truth.images[viewIndex], lighting: lighting)
    }

    // MARK: - Steps

    /// Far enough that a sphere of radius 1.5 around the object fits the narrower side of the view.
    static func viewingDistance(_ spec: SceneSpec) -> Double {
        let narrow = Double(min(spec.width, spec.height)) / 2
        return 1.5 / sin(atan(narrow / spec.focalPixels))
    }

    private static func objectMesh(_ spec: SceneSpec, spacing: Double) -> TriangleMesh {
        switch spec.shape {
        case .smoothBlob, .objectOnGround:
            // An icosphere level's edge is about 1.05 / 2^level on a unit sphere.
            let levels = min(8, max(2, Int(log2(1.05 / spacing).rounded())))
            return SceneShapes.smoothBlob(levels: levels, seed: spec.seed)
        case .notchedBlock:
            return SceneShapes.notchedBlock(spacing: spacing)
        }
    }

    /// The ground under the object: a square 8 units wide whose texture samples the same solid pattern.
    private static func groundModel(_ spec: SceneSpec, pattern: SurfacePattern, height: Double,
                                    spacing: Double) -> TexturedMesh {
        let halfSize = 4.0
        let (mesh, coordinates) = SceneShapes.ground(center: .zero, halfSize: halfSize, height: height)
        let size = min(4096, Int(2 * halfSize / spacing))
        var bytes = [UInt8](repeating: 0, count: size * size * 3)
        for row in 0..<size { for column in 0..<size {
            let x = (Double(column) + 0.5) / Double(size) * 2 * halfSize - halfSize
            let y = halfSize - (Double(row) + 0.5) / Double(size) * 2 * halfSize
            let color = pattern.color(at: Vector3(x, y, height))
            let offset = (row * size + column) * 3
            bytes[offset] = UInt8(min(255, max(0, (color.x * 255).rounded())))
            bytes[offset + 1] = UInt8(min(255, max(0, (color.y * 255).rounded())))
            bytes[offset + 2] = UInt8(min(255, max(0, (color.z * 255).rounded())))
        } }
        let texture = PixelBuffer(width: size, height: size, channels: 3, bytes: bytes)
        return TexturedMesh(mesh: mesh, textureCoordinates: coordinates, texture: texture)
    }

    private static func merged(_ a: TriangleMesh, _ b: TriangleMesh) -> TriangleMesh {
        let shift = Int32(a.vertices.count)
        return TriangleMesh(vertices: a.vertices + b.vertices,
                            triangles: a.triangles + b.triangles.map { $0 &+ SIMD3(repeating: shift) })
    }

    /// Camera centres relative to the object's centre, in world units.
    static func cameraCenters(_ spec: SceneSpec, distance: Double) -> [Vector3] {
        switch spec.path {
        case .rings(let elevations):
            return (0..<spec.viewCount).map { index in
                // Ring r holds the views from r·n/rings up to (r + 1)·n/rings, rounded down.
                let ring = (0..<elevations.count).last { $0 * spec.viewCount / elevations.count <= index }!
                let first = ring * spec.viewCount / elevations.count
                let inRing = (ring + 1) * spec.viewCount / elevations.count - first
                // Each ring is turned by half a step against the one below, so views interleave.
                let azimuth = (Double(index - first) + 0.5 * Double(ring % 2)) / Double(inRing) * 2 * .pi
                return direction(azimuth: azimuth, elevation: elevations[ring] * .pi / 180) * distance
            }
        case .walk:
            var random = SceneRandom(seed: spec.seed ^ 0x57A1_C0DE)
            let step = 2 * Double.pi / Double(spec.viewCount)
            return (0..<spec.viewCount).map { index in
                let azimuth = (Double(index) + random.uniform(-0.3...0.3)) * step
                let elevation = random.uniform(12...38) * .pi / 180
                return direction(azimuth: azimuth, elevation: elevation) * distance * random.uniform(0.92...1.1)
            }
        }
    }

    private static func direction(azimuth: Double, elevation: Double) -> Vector3 {
        Vector3(cos(elevation) * cos(azimuth), cos(elevation) * sin(azimuth), sin(elevation))
    }

    /// The camera at `eye` looking at `target`, with world +z up in the image (camera +y points down).
    static func lookAt(from eye: Vector3, to target: Vector3) -> Rigid3 {
        let forward = (target - eye).normalized
        let right = forward.cross(Vector3(0, 0, 1)).normalized
        let down = forward.cross(right)
        let rotation = Matrix3(rows: right, down, forward)
        return Rigid3(rotation: rotation, translation: -(rotation * eye))
    }
}
