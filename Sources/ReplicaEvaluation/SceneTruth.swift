import ReplicaGeometry
import ReplicaImageIO

/// What is known for certain about a scene: its cameras, and its surface or bounds where known. Readers of the
/// shared datasets' ground truth and the synthetic renderer produce it; the metrics compare results with it.
public struct SceneTruth: Equatable, Sendable {
    /// Every image with its true camera, in the scene's world frame.
    public var images: [PosedImage]
    /// The true surface, when the scene was made (synthetic scenes).
    public var mesh: TriangleMesh?
    /// A box known to hold the object (Middlebury's READMEs), in world coordinates.
    public var boundingBox: Box3?

    public init(images: [PosedImage], mesh: TriangleMesh? = nil, boundingBox: Box3? = nil) {
        self.images = images
        self.mesh = mesh
        self.boundingBox = boundingBox
    }

    /// The image named `name`, if the truth has it.
    public func image(named name: String) -> PosedImage? { images.first { $0.name == name } }
}

/// An axis-aligned box.
public struct Box3: Equatable, Sendable {
    public var min: Vector3
    public var max: Vector3

    public init(min: Vector3, max: Vector3) {
        self.min = min
        self.max = max
    }

    /// The length of the box's diagonal: the scale that geometric thresholds are fractions of.
    public var diagonal: Double { (max - min).length }

    /// The eight corners.
    public var corners: [Vector3] {
        (0..<8).map { index in
            Vector3(index & 1 == 0 ? min.x : max.x, index & 2 == 0 ? min.y : max.y, index & 4 == 0 ? min.z : max.z)
        }
    }
}

/// A sparse reconstruction as a structure-from-motion program leaves it: registered images and 3-D points, each
/// seen in some of the images.
public struct SparseModel: Equatable, Sendable {
    public var images: [PosedImage]
    public var points: [SparsePoint]

    public init(images: [PosedImage], points: [SparsePoint]) {
        self.images = images
        self.points = points
    }
}

/// One 3-D point of a sparse model and where it was observed.
public struct SparsePoint: Equatable, Sendable {
    public var position: Vector3
    /// 0–255 per channel.
    public var color: SIMD3<UInt8>
    /// The observations: an index into the model's `images` and the pixel there.
    public var track: [Observation]

    public init(position: Vector3, color: SIMD3<UInt8> = .zero, track: [Observation]) {
        self.position = position
        self.color = color
        self.track = track
    }

    public struct Observation: Equatable, Sendable {
        public var imageIndex: Int
        public var pixel: Vector2

        public init(imageIndex: Int, pixel: Vector2) {
            self.imageIndex = imageIndex
            self.pixel = pixel
        }
    }
}

/// A mesh with how it looks: a colour per vertex, or texture coordinates per vertex into one texture image.
public struct TexturedMesh: Sendable {
    public var mesh: TriangleMesh
    /// 0...1 per channel, one per vertex; used when there is no texture.
    public var vertexColors: [Vector3]?
    /// (u, v) per vertex in 0...1; v = 0 is the texture's top row, as images are stored (glTF's convention).
    public var textureCoordinates: [Vector2]?
    public var texture: PixelBuffer?

    public init(mesh: TriangleMesh, vertexColors: [Vector3]? = nil, textureCoordinates: [Vector2]? = nil,
                texture: PixelBuffer? = nil) {
        self.mesh = mesh
        self.vertexColors = vertexColors
        self.textureCoordinates = textureCoordinates
        self.texture = texture
    }
}
