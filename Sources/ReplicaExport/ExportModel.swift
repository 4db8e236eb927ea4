import ReplicaImageIO

/// A map a model's material can carry, as the exchange formats name their inputs.
public enum ExportMap: String, CaseIterable, Sendable {
    case diffuse, normal, occlusion, roughness, height
}

/// One texture image, as encoded on disk: PNG or JPEG bytes, never decoded here unless a format needs it.
public struct ExportTexture: Sendable, Equatable {
    public var map: ExportMap
    public var page: Int
    public var bytes: [UInt8]

    public init(map: ExportMap, page: Int, bytes: [UInt8]) {
        self.map = map
        self.page = page
        self.bytes = bytes
    }

    public var isPNG: Bool { bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) }
    public var isJPEG: Bool { bytes.starts(with: [0xFF, 0xD8, 0xFF]) }
    public var mimeType: String { isPNG ? "image/png" : "image/jpeg" }
    public var fileExtension: String { isPNG ? "png" : "jpg" }
    /// `<map>-<page>.<png|jpg>`, the name inside packages and beside OBJ files.
    public var fileName: String { "\(map.rawValue)-\(page).\(fileExtension)" }
}

/// The faces of one texture page with their own vertices: a glTF primitive, a USD mesh, an OBJ group.
public struct ExportPart: Sendable, Equatable {
    public var page: Int
    public var positions: [SIMD3<Float>] = []
    /// Unit length.
    public var normals: [SIMD3<Float>] = []
    /// u to the right, v down from the top row of the image (glTF's convention).
    public var uvs: [SIMD2<Float>] = []
    /// xyz a unit vector along +u, w ±1 the bitangent's handedness (glTF's TANGENT); empty when unknown.
    public var tangents: [SIMD4<Float>] = []
    /// Counter-clockwise seen from outside.
    public var triangles: [SIMD3<UInt32>] = []

    public init(page: Int) { self.page = page }

    public var lower: SIMD3<Float> { positions.reduce(SIMD3(repeating: .infinity)) { pointwiseMin($0, $1) } }
    public var upper: SIMD3<Float> { positions.reduce(SIMD3(repeating: -.infinity)) { pointwiseMax($0, $1) } }
}

/// A textured model ready for an exchange format: metres, +Y up, one part per texture page, and the pages' maps.
public struct ExportModel: Sendable, Equatable {
    public var name: String
    public var parts: [ExportPart]
    public var textures: [ExportTexture]
    /// For the height map: height in metres = (byte − 128) / 127 × this, along the normal; nil without one.
    public var heightScale: Float?

    public init(name: String, parts: [ExportPart], textures: [ExportTexture], heightScale: Float? = nil) {
        self.name = name
        self.parts = parts
        self.textures = textures
        self.heightScale = heightScale
    }

    public var vertexCount: Int { parts.reduce(0) { $0 + $1.positions.count } }
    public var triangleCount: Int { parts.reduce(0) { $0 + $1.triangles.count } }

    /// The map of a page, if the model has it.
    public func texture(_ map: ExportMap, page: Int) -> ExportTexture? {
        textures.first { $0.map == map && $0.page == page }
    }

    /// Splits one indexed mesh by page: each part keeps only the vertices its faces use, in first-use order.
    /// `pages` has one entry per triangle; `tangents` may be empty.
    public static func parts(positions: [SIMD3<Float>], normals: [SIMD3<Float>], uvs: [SIMD2<Float>],
                             tangents: [SIMD4<Float>], triangles: [SIMD3<UInt32>], pages: [Int]) -> [ExportPart] {
        precondition(pages.count == triangles.count, "a page per triangle")
        let used = Set(pages).sorted()
        var slot: [Int: Int] = [:]
        for (index, page) in used.enumerated() { slot[page] = index }
        var parts = used.map { ExportPart(page: $0) }
        // Per part, each old vertex's new index; UInt32.max until the part first uses it.
        var remap = [[UInt32]](repeating: [], count: used.count)
        for (face, triangle) in triangles.enumerated() {
            let part = slot[pages[face]]!
            if remap[part].isEmpty { remap[part] = [UInt32](repeating: .max, count: positions.count) }
            var corners = SIMD3<UInt32>()
            for corner in 0..<3 {
                let old = Int(triangle[corner])
                if remap[part][old] == .max {
                    remap[part][old] = UInt32(parts[part].positions.count)
                    parts[part].positions.append(positions[old])
                    parts[part].normals.append(unit(normals[old]))
                    parts[part].uvs.append(uvs[old])
                    if !tangents.isEmpty { parts[part].tangents.append(unitTangent(tangents[old], normals[old])) }
                }
                corners[corner] = remap[part][old]
            }
            parts[part].triangles.append(corners)
        }
        return parts
    }

    /// The vector scaled to unit length; +Z for a zero or non-finite one, which validators would refuse.
    static func unit(_ v: SIMD3<Float>) -> SIMD3<Float> {
        let length = (v * v).sum().squareRoot()
        guard length.isFinite, length > 1e-12 else { return SIMD3(0, 0, 1) }
        return v / length
    }

    /// A unit tangent orthogonal to the normal, w exactly ±1; any perpendicular one when it is degenerate.
    static func unitTangent(_ t: SIMD4<Float>, _ normal: SIMD3<Float>) -> SIMD4<Float> {
        let n = unit(normal)
        var xyz = SIMD3(t.x, t.y, t.z)
        xyz -= (xyz * n).sum() * n
        let length = (xyz * xyz).sum().squareRoot()
        if !(length.isFinite && length > 1e-6) {
            let helper: SIMD3<Float> = abs(n.x) < 0.9 ? SIMD3(1, 0, 0) : SIMD3(0, 1, 0)
            xyz = helper - (helper * n).sum() * n
        }
        xyz = unit(xyz)
        return SIMD4(xyz.x, xyz.y, xyz.z, t.w < 0 ? -1 : 1)
    }
}

/// The shortest text that reads back as the same float, for the text formats (USDA, OBJ); 0 for a value that is
/// not finite, which neither format can hold.
func decimal(_ value: Float) -> String {
    value.isFinite ? (value == value.rounded() && abs(value) < 1e7 ? String(Int(value)) : "\(value)") : "0"
}

/// Why a model could not be written or read.
public struct ExportError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Channel packing for formats whose material wants several maps in one image.
enum TexturePacking {
    /// glTF's metallic-roughness texture: occlusion in red (255 without one), roughness in green, metal (none) in
    /// blue, as a PNG; the maps must share a size. Grey inputs read their first channel.
    static func occlusionRoughnessMetal(occlusion: ExportTexture?, roughness: ExportTexture) throws -> [UInt8] {
        let rough = try decode(roughness)
        let occluded = try occlusion.map(decode)
        if let occluded, occluded.width != rough.width || occluded.height != rough.height {
            throw ExportError("the occlusion and roughness maps of page \(roughness.page) differ in size")
        }
        var packed = PixelBuffer(width: rough.width, height: rough.height, channels: 3)
        let count = rough.width * rough.height
        packed.bytes.withUnsafeMutableBufferPointer { out in
            for i in 0..<count {
                out[3 * i] = occluded.map { $0.bytes[i * $0.channels] } ?? 255
                out[3 * i + 1] = rough.bytes[i * rough.channels]
                out[3 * i + 2] = 0
            }
        }
        return try PNGEncoder.encode(packed)
    }

    static func decode(_ texture: ExportTexture) throws -> PixelBuffer {
        do {
            return try ImageReader.decode(data: texture.bytes, name: texture.fileName,
                                          options: DecodeOptions(maxPixels: 1 << 29, allowGrey: true)).pixels
        } catch {
            throw ExportError("the \(texture.map.rawValue) map of page \(texture.page) cannot be read: \(error)")
        }
    }
}

/// The conversions the download endpoint makes from the GLB on request.
public enum ModelConversion: String, CaseIterable, Sendable {
    case obj, fbx

    /// The files of the conversion of `glb`, named as they lie in `link-exports/`, the main file last: for OBJ
    /// the textures, `model.mtl` and `model.obj`; for FBX `model.fbx`, its textures inside.
    public func files(fromGLB glb: [UInt8]) throws -> [(name: String, bytes: [UInt8])] {
        let model = try GLB.read(glb)
        switch self {
        case .obj:
            let files = OBJ.files(model, baseName: "model")
            return files.textures + [("model.mtl", files.mtl), ("model.obj", files.obj)]
        case .fbx:
            return [("model.fbx", try FBX.bytes(model))]
        }
    }
}
