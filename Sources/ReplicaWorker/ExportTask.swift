import Foundation
import ReplicaExport
import ReplicaGeometry
import ReplicaProtocol
import ReplicaReconstruction

// Exporting: one `export` task turns the textured mesh into the native USDZ and the GLB, in metres with +Y up.
// The gateway moves them into the project's folder (`model.usdz`, `link-exports/model.glb`) when the job ends.

/// Where the reconstruction's frame goes in the exported one: rotated so the cameras' mean up is +Y and the first
/// photo looks along −Z, scaled to metres, centred over the origin with the lowest point on the ground (y = 0).
///
/// Photos alone fix no scale: without a reference the cameras are taken to have stood, at the median,
/// `assumedCameraDistance` from the object's centre, which makes a hand-held capture of a small object about its
/// size. Up comes from the photos too: most are taken upright, so the image's −y axis averaged over them is up.
struct ModelFrame: Equatable {
    var rotation: Matrix3
    var scale: Double
    var translation: Vector3

    static let assumedCameraDistance = 0.5

    func apply(_ point: SIMD3<Float>) -> SIMD3<Float> {
        let p = rotation * Vector3(Double(point.x), Double(point.y), Double(point.z)) * scale + translation
        return SIMD3(Float(p.x), Float(p.y), Float(p.z))
    }

    func rotate(_ direction: SIMD3<Float>) -> SIMD3<Float> {
        let d = rotation * Vector3(Double(direction.x), Double(direction.y), Double(direction.z))
        return SIMD3(Float(d.x), Float(d.y), Float(d.z))
    }

    /// The frame for a mesh with `positions` seen by `cameras` (world to camera each).
    static func fitted(positions: [SIMD3<Float>], cameras: [Rigid3]) -> ModelFrame {
        var lower = Vector3(repeating: .infinity), upper = Vector3(repeating: -.infinity)
        for p in positions {
            let v = Vector3(Double(p.x), Double(p.y), Double(p.z))
            lower = pointwiseMin(lower, v)
            upper = pointwiseMax(upper, v)
        }
        let centre = positions.isEmpty ? .zero : (lower + upper) / 2
        var up = Vector3.zero
        for camera in cameras { up += camera.rotation.transposed * Vector3(0, -1, 0) }
        up = up.length > 1e-9 ? up.normalized : Vector3(0, 1, 0)
        // Towards the first camera, level: +Z, so the first photo looks along −Z at the model's front.
        var front = Vector3(0, 0, 1)
        if let first = cameras.first {
            let position = first.rotation.transposed * (Vector3.zero - first.translation)
            front = position - centre
        }
        front -= front.dot(up) * up
        if front.length < 1e-9 {
            let helper = abs(up.x) < 0.9 ? Vector3(1, 0, 0) : Vector3(0, 0, 1)
            front = helper - helper.dot(up) * up
        }
        front = front.normalized
        let right = up.cross(front)
        let rotation = Matrix3(rows: right, up, front)
        let distances = cameras.map { camera -> Double in
            (camera.rotation.transposed * (Vector3.zero - camera.translation) - centre).length
        }.sorted()
        let median = distances.isEmpty ? 0 : distances[distances.count / 2]
        let scale = median > 1e-12 ? assumedCameraDistance / median : 1
        // Centred over the origin, resting on the ground.
        var low = Vector3(repeating: .infinity), high = Vector3(repeating: -.infinity)
        for p in positions {
            let q = rotation * Vector3(Double(p.x), Double(p.y), Double(p.z)) * scale
            low = pointwiseMin(low, q)
            high = pointwiseMax(high, q)
        }
        let translation = positions.isEmpty ? .zero : Vector3(-(low.x + high.x) / 2, -low.y, -(low.z + high.z) / 2)
        return ModelFrame(rotation: rotation, scale: scale, translation: translation)
    }
}

/// The export task:
///
/// - `work/export/model.usdz`: the native output, a USD layer with the level's maps wired to a UsdPreviewSurface;
/// - `work/export/model.glb`: glTF 2.0 with the maps glTF has;
/// - `work/export/statistics.json`: the frame (scale, up), sizes and times.
public struct ExportTask {
    public var workDirectory: String
    public var modelName: String

    public init(workDirectory: String, modelName: String = "model") {
        self.workDirectory = workDirectory
        self.modelName = modelName
    }

    public init(_ assignment: TaskAssignment) throws(TaskError) {
        var name = "model"
        for key in assignment.inputs.keys.sorted() {
            guard key == "name", case .string(let text) = assignment.inputs[key]!, !text.isEmpty else {
                throw invalidInput("inputs.\(key) is not an input of an export task (only a non-empty \"name\")")
            }
            name = text
        }
        self.init(workDirectory: assignment.workDirectory, modelName: name)
    }

    public static let usdz = "export/model.usdz"
    public static let glb = "export/model.glb"
    public static let statistics = "export/statistics.json"

    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        let started = DispatchTime.now().uptimeNanoseconds
        sink.progress(0, "reading the textured mesh")
        let model = try readModel()
        if sink.shouldStop { throw TaskError.cancelled }
        sink.progress(0.3, "writing the USDZ")
        let usdzStarted = DispatchTime.now().uptimeNanoseconds
        let usdz: [UInt8], glb: [UInt8]
        do {
            usdz = try USDZ.bytes(model.model)
        } catch {
            throw TaskError.failed(message: "cannot write the USDZ: \(error)", retryable: false, image: nil)
        }
        let glbStarted = DispatchTime.now().uptimeNanoseconds
        sink.progress(0.6, "writing the GLB")
        do {
            glb = try GLB.bytes(model.model)
        } catch {
            throw TaskError.failed(message: "cannot write the GLB: \(error)", retryable: false, image: nil)
        }
        let glbDone = DispatchTime.now().uptimeNanoseconds
        try ensureWorkDirectory("export", in: workDirectory)
        try writeWorkFile(usdz, Self.usdz, in: workDirectory)
        try writeWorkFile(glb, Self.glb, in: workDirectory)
        let total = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
        let frame = model.frame
        let statistics: [String: Any] = [
            "vertices": model.model.vertexCount, "triangles": model.model.triangleCount,
            "parts": model.model.parts.count, "maps": model.model.textures.map(\.fileName).sorted(),
            "usdzBytes": usdz.count, "glbBytes": glb.count,
            "frame": ["metresPerUnit": frame.scale, "scaleSource": "assumed median camera distance "
                        + "\(ModelFrame.assumedCameraDistance) m", "up": "+Y", "rotation": frame.rotation.values],
            "secondsByStep": ["reading": Double(usdzStarted - started) * 1e-9,
                              "usdz": Double(glbStarted - usdzStarted) * 1e-9,
                              "glb": Double(glbDone - glbStarted) * 1e-9, "total": total],
            "peakResidentBytes": peakResidentBytes(),
        ]
        try writeWorkFile(statisticsBytes(statistics), Self.statistics, in: workDirectory)
        sink.progress(1, "done")
        return TaskOutcome(outputs: [Self.usdz, Self.glb, Self.statistics], data: [
            "vertices": .number(Double(model.model.vertexCount)),
            "triangles": .number(Double(model.model.triangleCount)),
            "usdzBytes": .number(Double(usdz.count)), "glbBytes": .number(Double(glb.count)),
            "metresPerUnit": .number(frame.scale), "seconds": .number(total),
        ])
    }

    /// The textured mesh in the export frame with the maps the manifest lists.
    func readModel() throws(TaskError) -> (model: ExportModel, frame: ModelFrame) {
        func damaged(_ what: String) -> TaskError {
            TaskError.failed(message: "\(what); compute again", retryable: false, image: nil)
        }
        guard let data = FileManager.default.contents(atPath: workDirectory + "/" + TextureTask.textured) else {
            throw damaged("there is no textured mesh (work/\(TextureTask.textured))")
        }
        let surface: TexturedSurface
        do throws(PLYFormatError) {
            surface = try TexturedSurface(plyBytes: Array(data))
        } catch {
            throw damaged("the textured mesh (work/\(TextureTask.textured)) is damaged: \(error.reason)")
        }
        guard surface.polygonCount > 0 else { throw damaged("the textured mesh has no faces") }
        guard let manifestData = FileManager.default.contents(atPath: workDirectory + "/" + TextureTask.manifest),
              let manifest = try? JSONSerialization.jsonObject(with: manifestData) as? [String: Any],
              let maps = manifest["maps"] as? [String: [String]] else {
            throw damaged("the texture manifest (work/\(TextureTask.manifest)) is missing or damaged")
        }
        let cameras: [Rigid3]
        do {
            cameras = try StereoScene.read(folder: workDirectory + "/sparse").views.map(\.camFromWorld)
        } catch {
            throw damaged("cannot read the sparse model: \(error.reason)")
        }
        let frame = ModelFrame.fitted(positions: surface.positions, cameras: cameras)
        let kinds: [(TextureMap, ExportMap)] = [(.diffuseColor, .diffuse), (.normal, .normal),
                                                 (.ambientOcclusion, .occlusion), (.roughness, .roughness),
                                                 (.displacement, .height)]
        var textures: [ExportTexture] = []
        for (map, kind) in kinds {
            for (page, file) in (maps[map.rawValue] ?? []).enumerated() {
                guard !file.contains(".."), let bytes = FileManager.default.contents(atPath: workDirectory + "/" + file)
                else { throw damaged("the texture work/\(file) is missing") }
                textures.append(ExportTexture(map: kind, page: page, bytes: Array(bytes)))
            }
        }
        var heightScale: Float?
        if let displacement = manifest["displacement"] as? [String: Any], let scale = displacement["scale"] as? Double {
            heightScale = Float(scale * frame.scale)
        }
        let positions = surface.positions.map(frame.apply)
        let normals = surface.normals.map(frame.rotate)
        let tangents = surface.tangents.map { t -> SIMD4<Float> in
            let r = frame.rotate(SIMD3(t.x, t.y, t.z))
            return SIMD4(r.x, r.y, r.z, t.w)
        }
        let pages = surface.pages.prefix(surface.triangles.count).map(Int.init)
            + surface.pages.dropFirst(surface.triangles.count).flatMap { [Int($0), Int($0)] }
        let parts = ExportModel.parts(positions: positions, normals: normals, uvs: surface.uvs, tangents: tangents,
                                      triangles: surface.triangulated, pages: pages)
        return (ExportModel(name: modelName, parts: parts, textures: textures, heightScale: heightScale), frame)
    }
}
