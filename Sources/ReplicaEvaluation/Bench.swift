import Foundation
import ReplicaGeometry
import ReplicaImageIO

/// `replica-bench`'s two jobs, as library calls: render a synthetic scene, and evaluate a result against truth.
public enum Bench {
    /// A refused command line or input, for a person; the executable prints it and exits 64 or 1.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
        /// True when the command line itself was wrong.
        public var isUsage: Bool

        public init(_ description: String, usage: Bool = false) {
            self.description = description
            isUsage = usage
        }
    }

    // MARK: - Render

    /// `render`: the scene to make and where to write it.
    public struct RenderOptions: Equatable {
        public var spec: SceneSpec
        public var format: SceneWriter.Format
        public var folder: String

        public init(spec: SceneSpec, format: SceneWriter.Format, folder: String) {
            self.spec = spec
            self.format = format
            self.folder = folder
        }
    }

    /// Renders and writes the scene; returns a line for the console.
    public static func render(_ options: RenderOptions) throws -> String {
        try options.spec.validate()
        let started = Date()
        let scene = SyntheticScene.make(options.spec)
        try SceneWriter.write(scene, to: options.folder, format: options.format)
        let seconds = Date().timeIntervalSince(started)
        return "\(options.spec.viewCount) views of \(options.spec.width)×\(options.spec.height) "
            + "(\(options.spec.shape.rawValue), seed \(options.spec.seed)) written to \(options.folder) in "
            + String(format: "%.2f s", seconds)
    }

    // MARK: - Evaluate

    /// `evaluate`: the truth and whichever parts of a result there are.
    public struct EvaluateOptions: Equatable {
        /// A folder written by `render`, a Middlebury `*_par.txt`, a Strecha `gt_dense_cameras` folder or a NeRF
        /// `transforms_*.json`.
        public var truth: String
        /// A COLMAP text model folder (`cameras.txt`, `images.txt`, `points3D.txt`): cameras and structure.
        public var cameras: String?
        /// A PLY point cloud: geometry.
        public var points: String?
        /// A PLY mesh: geometry, and appearance when its vertices carry colours or it has texture coordinates
        /// and `texture` is given.
        public var mesh: String?
        /// The image the mesh's texture coordinates sample (its first page), for appearance.
        public var texture: String?
        /// Where to write each appearance rendering as `<view>.png`, beside the photo; nil: nowhere.
        public var renders: String?
        /// Where the true images are, for appearance; nil: beside the truth.
        public var images: String?
        /// Held-out views for appearance, by name; nil: every true view.
        public var views: [String]?
        /// Points sampled on each surface for the geometry metrics; more is steadier and slower.
        public var surfaceSamples: Int

        public init(truth: String, cameras: String? = nil, points: String? = nil, mesh: String? = nil,
                    texture: String? = nil, renders: String? = nil, images: String? = nil,
                    views: [String]? = nil, surfaceSamples: Int = 100_000) {
            self.texture = texture
            self.renders = renders
            self.truth = truth
            self.cameras = cameras
            self.points = points
            self.mesh = mesh
            self.images = images
            self.views = views
            self.surfaceSamples = surfaceSamples
        }
    }

    /// Every evaluation the inputs allow.
    public static func evaluate(_ options: EvaluateOptions) throws -> EvaluationSummary {
        let (truth, imagesFolder) = try readTruth(options.truth)
        var summary = EvaluationSummary()
        var geometry = GeometryMetricsOptions()
        geometry.truthSampleCount = options.surfaceSamples
        geometry.resultSampleCount = options.surfaceSamples
        try geometry.validate()
        var estimated: [PosedImage]?
        if let folder = options.cameras {
            let model = try COLMAPModel.read(folder: folder)
            estimated = model.images
            summary.cameras = try CameraMetrics.evaluate(estimated: model.images, truth: truth)
            summary.structure = StructureMetrics.evaluate(model)
        }
        if let path = options.points {
            let read = try PLY.read(path: path).vertices
            var points = read
            // With cameras, the points are in their frame: the cameras' alignment takes them to the truth's.
            if let cameras = summary.cameras {
                guard let alignment = cameras.trueFromEstimated else {
                    throw Failure("--points: the cameras cannot be aligned with the truth, so neither can the points")
                }
                points = points.map(alignment.apply)
            }
            if truth.mesh != nil || truth.boundingBox == nil {
                summary.geometry = try GeometryMetrics.evaluate(points: points, truth: truth, options: geometry)
            }
            if let box = truth.boundingBox {
                var containment = GeometryMetrics.containment(points: points, box: box)
                if let estimated {
                    let projected = GeometryMetrics.projectedContainment(points: read, estimated: estimated,
                                                                         truth: truth, box: box)
                    containment.insideEveryViewFraction = projected.fraction
                    containment.views = projected.views
                }
                summary.containment = containment
            }
        }
        if let path = options.mesh {
            let ply = try PLY.read(path: path)
            var mesh = TriangleMesh(vertices: ply.vertices, triangles: ply.triangles)
            // With cameras, the mesh is in their frame, as points are.
            if let cameras = summary.cameras {
                guard let alignment = cameras.trueFromEstimated else {
                    throw Failure("--mesh: the cameras cannot be aligned with the truth, so neither can the mesh")
                }
                mesh.vertices = mesh.vertices.map(alignment.apply)
            }
            guard !mesh.triangles.isEmpty else { throw Failure("--mesh \(path) has no faces; give it as --points") }
            if summary.geometry == nil, truth.mesh != nil {
                summary.geometry = try GeometryMetrics.evaluate(mesh: mesh, truth: truth, options: geometry)
            }
            if let texturePath = options.texture {
                guard let uvs = try PLY.readTextured(path: path).uvs else {
                    throw Failure("--texture: \(path) has no texture coordinates")
                }
                // A 16384² page is past the reader's default guard for uploads.
                let image = try ImageReader.decode(path: texturePath, options: DecodeOptions(maxPixels: 1 << 29))
                    .pixels
                let model = TexturedMesh(mesh: mesh, textureCoordinates: uvs, texture: image)
                summary.appearance = try appearance(of: model, truth: truth, views: options.views,
                                                    imagesFolder: options.images ?? imagesFolder,
                                                    renders: options.renders)
            } else if let colors = ply.colors {
                let model = TexturedMesh(mesh: mesh, vertexColors: colors.map { Vector3($0) / 255 })
                summary.appearance = try appearance(of: model, truth: truth, views: options.views,
                                                    imagesFolder: options.images ?? imagesFolder,
                                                    renders: options.renders)
            }
        }
        guard summary != EvaluationSummary() else {
            throw Failure("nothing to evaluate: give --cameras, --points or --mesh", usage: true)
        }
        return summary
    }

    /// The tables, one per evaluation made.
    public static func tables(_ summary: EvaluationSummary) -> String {
        var parts: [String] = []
        if let cameras = summary.cameras { parts.append(EvaluationReport.table(cameras)) }
        if let structure = summary.structure { parts.append(EvaluationReport.table(structure)) }
        if let geometry = summary.geometry { parts.append(EvaluationReport.table(geometry)) }
        if let appearance = summary.appearance { parts.append(EvaluationReport.table(appearance)) }
        if let containment = summary.containment { parts.append(EvaluationReport.table(containment)) }
        return parts.joined(separator: "\n")
    }

    /// Reads the truth by what the path is, and says where its images are.
    static func readTruth(_ path: String) throws -> (SceneTruth, imagesFolder: String) {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else {
            throw Failure("--truth \(path) does not exist", usage: true)
        }
        let parent = (path as NSString).deletingLastPathComponent
        if isFolder.boolValue {
            if FileManager.default.fileExists(atPath: path + "/truth/cameras.json") {
                return (try SceneTruthFile.read(folder: path), path + "/images")
            }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            if entries.contains(where: { $0.hasSuffix(".camera") }) {
                return (try GroundTruthReaders.strecha(cameraFolder: path), parent + "/images")
            }
            throw Failure("--truth \(path): a folder written by render or a Strecha gt_dense_cameras folder",
                          usage: true)
        }
        if path.hasSuffix("_par.txt") { return (try GroundTruthReaders.middlebury(parFile: path), parent) }
        if path.hasSuffix(".json") { return (try GroundTruthReaders.nerf(transformsFile: path), parent) }
        throw Failure("--truth \(path): not a truth this tool reads (render folder, *_par.txt, "
                      + "gt_dense_cameras, transforms_*.json)", usage: true)
    }

    /// Renders the result unlit from each held-out true view and compares it with the photo taken there.
    static func appearance(of model: TexturedMesh, truth: SceneTruth, views: [String]?,
                           imagesFolder: String, renders: String? = nil) throws -> AppearanceEvaluation {
        let chosen = try views.map { names in
            try names.map { name in
                guard let view = truth.image(named: name) else { throw Failure("--views: no true view \(name)") }
                return view
            }
        } ?? truth.images
        var compared: [AppearanceView] = []
        for view in chosen {
            let photo = try ImageReader.decode(path: imagesFolder + "/" + view.name).pixels
            guard photo.width == view.camera.width, photo.height == view.camera.height else {
                throw Failure("\(view.name) is \(photo.width)×\(photo.height), its camera says "
                              + "\(view.camera.width)×\(view.camera.height)")
            }
            let rendered = Rasterizer.render(model, from: view, lighting: nil)
            if let renders { try writeRendering(rendered.image, beside: photo, to: renders, name: view.name) }
            compared.append(AppearanceView(name: view.name, rendered: rendered.image, truth: photo,
                                           mask: rendered.coverage))
        }
        return ImageMetrics.evaluate(compared)
    }

    /// The rendering on the left and the photo on the right, as one PNG.
    private static func writeRendering(_ image: PixelBuffer, beside photo: PixelBuffer, to folder: String,
                                       name: String) throws {
        let photo = photo.channels == 3 ? photo : PixelBuffer(width: photo.width, height: photo.height, channels: 3,
                                                              bytes: photo.bytes.flatMap { [$0, $0, $0] })
        var bytes: [UInt8] = []
        bytes.reserveCapacity(2 * image.bytes.count)
        let row = image.width * 3
        for y in 0..<image.height {
            bytes += image.bytes[(y * row)..<((y + 1) * row)]
            bytes += photo.bytes[(y * row)..<((y + 1) * row)]
        }
        let joined = PixelBuffer(width: 2 * image.width, height: image.height, channels: 3, bytes: bytes)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let stem = (name as NSString).deletingPathExtension
        guard FileManager.default.createFile(atPath: folder + "/" + stem + ".png",
                                             contents: Data(try PNGEncoder.encode(joined))) else {
            throw Failure("cannot write \(folder)/\(stem).png")
        }
    }
}
