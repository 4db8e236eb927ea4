import Foundation
import ReplicaGeometry
import ReplicaImageIO

/// Writes a synthetic scene to a folder: `images/`, `truth/cameras.json` and `truth/mesh.ply`.
public enum SceneWriter {
    /// Which image files to write.
    public enum Format: String, Sendable { case png, jpeg, both }

    /// JPEG quality (libjpeg's 1–100 scale).
    public static let jpegQuality = 92

    /// Renders every view and writes the images and the truth; the truth names the PNG when both are written.
    public static func write(_ scene: SyntheticScene, to folder: String, format: Format) throws {
        let manager = FileManager.default
        try manager.createDirectory(atPath: folder + "/images", withIntermediateDirectories: true)
        try manager.createDirectory(atPath: folder + "/truth", withIntermediateDirectories: true)
        var truth = scene.truth
        for index in truth.images.indices {
            let pixels = scene.render(viewIndex: index)
            let stem = folder + "/images/" + (truth.images[index].name as NSString).deletingPathExtension
            if format != .jpeg { try save(try PNGEncoder.encode(pixels), to: stem + ".png") }
            if format != .png { try save(try jpeg(pixels, camera: truth.images[index].camera), to: stem + ".jpg") }
            if format == .jpeg { truth.images[index].name = (stem as NSString).lastPathComponent + ".jpg" }
        }
        try SceneTruthFile.write(truth, spec: scene.spec, folder: folder)
    }

    /// A JPEG whose EXIF says the 35 mm-equivalent focal length: f35 = f_px × 36 / width (a 36 mm-wide frame,
    /// which is also taken as the sensor, so the focal length in millimetres is the same).
    static func jpeg(_ pixels: PixelBuffer, camera: PinholeCamera) throws -> [UInt8] {
        let focal35 = camera.focalX * 36 / Double(camera.width)
        let app1 = ExifWriter.app1(make: "Replica Link", model: "synthetic", focalLengthMillimetres: focal35,
                                   focalLength35mm: focal35)
        return try JPEGEncoder.encode(pixels, quality: jpegQuality, app1: app1)
    }

    private static func save(_ bytes: [UInt8], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw PLYError(path: path, reason: "the file cannot be written")
        }
    }
}

/// The truth of a written scene: `truth/cameras.json` (cameras, box, seed and spec) and `truth/mesh.ply`.
public enum SceneTruthFile {
    /// cameras.json's layout.
    struct Cameras: Codable {
        struct Image: Codable {
            var name: String
            var width: Int
            var height: Int
            var fx: Double
            var fy: Double
            var cx: Double
            var cy: Double
            /// camFromWorld's rotation, row-major.
            var rotation: [Double]
            var translation: [Double]
        }

        var seed: UInt64?
        var spec: SceneSpec?
        var boundingBox: [[Double]]?
        var images: [Image]
    }

    /// Writes the truth; `spec` (with its seed) is recorded so the scene can be made again.
    public static func write(_ truth: SceneTruth, spec: SceneSpec?, folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder + "/truth", withIntermediateDirectories: true)
        let images = truth.images.map { image in
            let c = image.camera, t = image.camFromWorld.translation
            return Cameras.Image(name: image.name, width: c.width, height: c.height, fx: c.focalX, fy: c.focalY,
                                 cx: c.principalX, cy: c.principalY, rotation: image.camFromWorld.rotation.values,
                                 translation: [t.x, t.y, t.z])
        }
        let box = truth.boundingBox.map { [[$0.min.x, $0.min.y, $0.min.z], [$0.max.x, $0.max.y, $0.max.z]] }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = try encoder.encode(Cameras(seed: spec?.seed, spec: spec, boundingBox: box, images: images))
        try json.write(to: URL(fileURLWithPath: folder + "/truth/cameras.json"))
        if let mesh = truth.mesh {
            try PLY.write(path: folder + "/truth/mesh.ply", vertices: mesh.vertices, triangles: mesh.triangles)
        }
    }

    /// Reads `truth/cameras.json` and, when present, `truth/mesh.ply` under `folder`.
    public static func read(folder: String) throws -> SceneTruth {
        let data = try Data(contentsOf: URL(fileURLWithPath: folder + "/truth/cameras.json"))
        let cameras = try JSONDecoder().decode(Cameras.self, from: data)
        let images = try cameras.images.map { try posedImage($0) }
        var truth = SceneTruth(images: images)
        if let box = cameras.boundingBox, box.count == 2, box.allSatisfy({ $0.count == 3 }) {
            truth.boundingBox = Box3(min: Vector3(box[0][0], box[0][1], box[0][2]),
                                     max: Vector3(box[1][0], box[1][1], box[1][2]))
        }
        let meshPath = folder + "/truth/mesh.ply"
        if FileManager.default.fileExists(atPath: meshPath) {
            let ply = try PLY.read(path: meshPath)
            truth.mesh = TriangleMesh(vertices: ply.vertices, triangles: ply.triangles)
        }
        return truth
    }

    private static func posedImage(_ image: Cameras.Image) throws -> PosedImage {
        guard image.rotation.count == 9, image.translation.count == 3 else {
            throw SceneSpecError("cameras.json: \(image.name) needs 9 rotation and 3 translation values")
        }
        let camera = PinholeCamera(width: image.width, height: image.height, focalX: image.fx, focalY: image.fy,
                                   principalX: image.cx, principalY: image.cy)
        let t = image.translation
        let camFromWorld = Rigid3(rotation: Matrix3(image.rotation), translation: Vector3(t[0], t[1], t[2]))
        return PosedImage(name: image.name, camera: camera, camFromWorld: camFromWorld)
    }
}
