import Foundation

/// glTF 2.0 binary (GLB): one buffer in the BIN chunk holding every part's vertices and indices and every
/// texture's encoded image, a metallic-roughness material per page.
///
/// Per page: base colour from the diffuse map; the normal map with TANGENT; occlusion and roughness packed into
/// one image (red and green, metal 0 in blue) that serves as both the occlusion and the metallic-roughness
/// texture. The height map has no place in glTF and is left out.
public enum GLB {
    static let magic: UInt32 = 0x4654_6C67
    static let jsonChunk: UInt32 = 0x4E4F_534A
    static let binaryChunk: UInt32 = 0x004E_4942
    static let arrayBuffer = 34962, elementArrayBuffer = 34963
    static let float = 5126, unsignedShort = 5123, unsignedInt = 5125

    public static func bytes(_ model: ExportModel) throws -> [UInt8] {
        var binary: [UInt8] = []
        var views: [[String: Any]] = []
        var accessors: [[String: Any]] = []

        /// Appends bytes as a buffer view, 4-byte aligned as accessors need, and returns the view's index.
        func view(_ bytes: [UInt8], target: Int?, stride: Int? = nil) -> Int {
            while binary.count % 4 != 0 { binary.append(0) }
            var entry: [String: Any] = ["buffer": 0, "byteOffset": binary.count, "byteLength": bytes.count]
            if let target { entry["target"] = target }
            if let stride { entry["byteStride"] = stride }
            binary.append(contentsOf: bytes)
            views.append(entry)
            return views.count - 1
        }
        func accessor(_ view: Int, component: Int, count: Int, type: String, min: [Float]? = nil,
                      max: [Float]? = nil) -> Int {
            var entry: [String: Any] = ["bufferView": view, "componentType": component, "count": count, "type": type]
            if let min, let max { entry["min"] = min.map(Double.init); entry["max"] = max.map(Double.init) }
            accessors.append(entry)
            return accessors.count - 1
        }

        var images: [[String: Any]] = []
        var textures: [[String: Any]] = []
        func texture(_ bytes: [UInt8], mimeType: String) -> Int {
            images.append(["bufferView": view(bytes, target: nil), "mimeType": mimeType])
            textures.append(["source": images.count - 1, "sampler": 0])
            return textures.count - 1
        }

        var materials: [[String: Any]] = []
        var materialOfPage: [Int: Int] = [:]
        var hasNormalMap: [Int: Bool] = [:]
        for page in Set(model.parts.map(\.page)).sorted() {
            var pbr: [String: Any] = ["metallicFactor": 0.0, "roughnessFactor": 1.0]
            var material: [String: Any] = ["name": "page\(page)", "doubleSided": false]
            if let diffuse = model.texture(.diffuse, page: page) {
                pbr["baseColorTexture"] = ["index": texture(diffuse.bytes, mimeType: diffuse.mimeType)]
            }
            let occlusion = model.texture(.occlusion, page: page)
            if let roughness = model.texture(.roughness, page: page) {
                let packed = try TexturePacking.occlusionRoughnessMetal(occlusion: occlusion, roughness: roughness)
                let index = texture(packed, mimeType: "image/png")
                pbr["metallicRoughnessTexture"] = ["index": index]
                if occlusion != nil { material["occlusionTexture"] = ["index": index] }
            } else if let occlusion {
                material["occlusionTexture"] = ["index": texture(occlusion.bytes, mimeType: occlusion.mimeType)]
            }
            if let normal = model.texture(.normal, page: page) {
                material["normalTexture"] = ["index": texture(normal.bytes, mimeType: normal.mimeType)]
                hasNormalMap[page] = true
            }
            material["pbrMetallicRoughness"] = pbr
            materials.append(material)
            materialOfPage[page] = materials.count - 1
        }

        var primitives: [[String: Any]] = []
        for part in model.parts where !part.triangles.isEmpty {
            let count = part.positions.count
            let lower = part.lower, upper = part.upper
            var attributes: [String: Int] = [
                "POSITION": accessor(view(floats(part.positions.flatMap { [$0.x, $0.y, $0.z] }), target: arrayBuffer),
                                     component: float, count: count, type: "VEC3",
                                     min: [lower.x, lower.y, lower.z], max: [upper.x, upper.y, upper.z]),
                "NORMAL": accessor(view(floats(part.normals.flatMap { [$0.x, $0.y, $0.z] }), target: arrayBuffer),
                                   component: float, count: count, type: "VEC3"),
                "TEXCOORD_0": accessor(view(floats(part.uvs.flatMap { [$0.x, $0.y] }), target: arrayBuffer),
                                       component: float, count: count, type: "VEC2"),
            ]
            if hasNormalMap[part.page] == true, part.tangents.count == count {
                attributes["TANGENT"] = accessor(view(floats(part.tangents.flatMap { [$0.x, $0.y, $0.z, $0.w] }),
                                                      target: arrayBuffer),
                                                 component: float, count: count, type: "VEC4")
            }
            let flat = part.triangles.flatMap { [$0.x, $0.y, $0.z] }
            let indices: Int
            if count <= Int(UInt16.max) {
                indices = accessor(view(halfWords(flat), target: elementArrayBuffer), component: unsignedShort,
                                   count: flat.count, type: "SCALAR")
            } else {
                indices = accessor(view(words(flat), target: elementArrayBuffer), component: unsignedInt,
                                   count: flat.count, type: "SCALAR")
            }
            primitives.append(["attributes": attributes, "indices": indices, "material": materialOfPage[part.page]!,
                               "mode": 4])
        }
        guard !primitives.isEmpty else { throw ExportError("the model has no faces") }
        while binary.count % 4 != 0 { binary.append(0) }

        var document: [String: Any] = [
            "asset": ["version": "2.0", "generator": "Replica Link"],
            "scene": 0, "scenes": [["nodes": [0]]],
            "nodes": [["mesh": 0, "name": model.name]],
            "meshes": [["name": model.name, "primitives": primitives]],
            "accessors": accessors, "bufferViews": views, "buffers": [["byteLength": binary.count]],
            "materials": materials,
        ]
        if !images.isEmpty {
            document["images"] = images
            document["textures"] = textures
            // Linear filtering with mipmaps; clamped, since atlas charts must not wrap into the far edge.
            document["samplers"] = [["magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071]]
        }
        var json = [UInt8](try JSONSerialization.data(withJSONObject: document, options: [.sortedKeys]))
        while json.count % 4 != 0 { json.append(0x20) }
        let total = 12 + 8 + json.count + 8 + binary.count
        guard total <= Int(UInt32.max) else { throw ExportError("the model needs more than the 4 GiB a GLB holds") }
        var out: [UInt8] = []
        out.reserveCapacity(total)
        func append(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) } }
        append(magic); append(2); append(UInt32(total))
        append(UInt32(json.count)); append(jsonChunk); out.append(contentsOf: json)
        append(UInt32(binary.count)); append(binaryChunk); out.append(contentsOf: binary)
        return out
    }

    static func floats(_ values: [Float]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, value) in values.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self)
            }
        }
        return bytes
    }

    static func words(_ values: [UInt32]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, value) in values.enumerated() { raw.storeBytes(of: value.littleEndian, toByteOffset: 4 * i,
                                                                   as: UInt32.self) }
        }
        return bytes
    }

    static func halfWords(_ values: [UInt32]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: values.count * 2)
        bytes.withUnsafeMutableBytes { raw in
            for (i, value) in values.enumerated() { raw.storeBytes(of: UInt16(value).littleEndian,
                                                                   toByteOffset: 2 * i, as: UInt16.self) }
        }
        return bytes
    }
}

// MARK: - Reading

extension GLB {
    /// Reads a GLB such as `bytes(_:)` writes, checking its structure on the way: the header and chunk lengths,
    /// every accessor inside its view and buffer, indices inside their vertices, POSITION's bounds, unit normals.
    /// Triangle lists with float attributes and 16- or 32-bit indices are read; anything else is refused.
    /// The maps come back as the images the materials name (the packed one as `roughness`).
    public static func read(_ data: [UInt8]) throws -> ExportModel {
        func word(_ offset: Int) -> UInt32 {
            data.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }
        }
        guard data.count >= 28, word(0) == magic, word(4) == 2 else { throw ExportError("not a glTF 2.0 binary") }
        guard Int(word(8)) == data.count else { throw ExportError("the header's length is not the file's") }
        let jsonLength = Int(word(12))
        guard word(16) == jsonChunk, jsonLength % 4 == 0, 20 + jsonLength + 8 <= data.count else {
            throw ExportError("the JSON chunk is missing or misaligned")
        }
        let binaryStart = 20 + jsonLength + 8
        let binaryLength = Int(word(20 + jsonLength))
        guard word(24 + jsonLength) == binaryChunk, binaryLength % 4 == 0,
              binaryStart + binaryLength == data.count else {
            throw ExportError("the BIN chunk is missing, misaligned or not the last")
        }
        guard let document = try JSONSerialization.jsonObject(with: Data(data[20..<(20 + jsonLength)]))
                as? [String: Any] else { throw ExportError("the JSON chunk is not an object") }
        guard (document["asset"] as? [String: Any])?["version"] as? String == "2.0" else {
            throw ExportError("asset.version is not 2.0")
        }
        let buffers = document["buffers"] as? [[String: Any]] ?? []
        guard buffers.count == 1, buffers[0]["uri"] == nil, let declared = buffers[0]["byteLength"] as? Int,
              declared <= binaryLength else { throw ExportError("the buffer is not the BIN chunk") }
        let views = document["bufferViews"] as? [[String: Any]] ?? []
        let accessors = document["accessors"] as? [[String: Any]] ?? []

        func viewBytes(_ index: Int) throws -> Range<Int> {
            guard views.indices.contains(index), let length = views[index]["byteLength"] as? Int else {
                throw ExportError("buffer view \(index) does not exist")
            }
            let offset = views[index]["byteOffset"] as? Int ?? 0
            guard offset >= 0, length >= 0, offset + length <= declared else {
                throw ExportError("buffer view \(index) runs past its buffer")
            }
            return (binaryStart + offset)..<(binaryStart + offset + length)
        }
        func floats(_ index: Int, components: Int) throws -> [Float] {
            guard accessors.indices.contains(index), accessors[index]["componentType"] as? Int == float,
                  let count = accessors[index]["count"] as? Int, let view = accessors[index]["bufferView"] as? Int
            else { throw ExportError("accessor \(index) is not a float accessor") }
            let range = try viewBytes(view)
            let offset = accessors[index]["byteOffset"] as? Int ?? 0
            let stride = views[view]["byteStride"] as? Int ?? 4 * components
            guard offset % 4 == 0, range.lowerBound % 4 == 0,
                  count == 0 || offset + stride * (count - 1) + 4 * components <= range.count else {
                throw ExportError("accessor \(index) runs past its buffer view or is misaligned")
            }
            var values: [Float] = []
            values.reserveCapacity(count * components)
            for i in 0..<count {
                let start = range.lowerBound + offset + stride * i
                for c in 0..<components { values.append(Float(bitPattern: word(start + 4 * c))) }
            }
            return values
        }
        func indices(_ index: Int) throws -> [UInt32] {
            guard accessors.indices.contains(index), let count = accessors[index]["count"] as? Int,
                  let view = accessors[index]["bufferView"] as? Int,
                  let component = accessors[index]["componentType"] as? Int else {
                throw ExportError("accessor \(index) does not exist")
            }
            let range = try viewBytes(view)
            let size = component == unsignedInt ? 4 : component == unsignedShort ? 2 : 0
            guard size > 0, count * size <= range.count else { throw ExportError("accessor \(index) is not indices") }
            return (0..<count).map { i in
                size == 4 ? word(range.lowerBound + 4 * i)
                    : UInt32(data[range.lowerBound + 2 * i]) | UInt32(data[range.lowerBound + 2 * i + 1]) << 8
            }
        }

        let images = document["images"] as? [[String: Any]] ?? []
        let textures = document["textures"] as? [[String: Any]] ?? []
        func image(ofTexture reference: Any?) throws -> [UInt8]? {
            guard let index = (reference as? [String: Any])?["index"] as? Int else { return nil }
            guard textures.indices.contains(index), let source = textures[index]["source"] as? Int,
                  images.indices.contains(source), let view = images[source]["bufferView"] as? Int else {
                throw ExportError("texture \(index) does not name an embedded image")
            }
            return Array(data[try viewBytes(view)])
        }
        let materials = document["materials"] as? [[String: Any]] ?? []
        var exportTextures: [ExportTexture] = []
        for (page, material) in materials.enumerated() {
            let pbr = material["pbrMetallicRoughness"] as? [String: Any] ?? [:]
            if let bytes = try image(ofTexture: pbr["baseColorTexture"]) {
                exportTextures.append(ExportTexture(map: .diffuse, page: page, bytes: bytes))
            }
            if let bytes = try image(ofTexture: material["normalTexture"]) {
                exportTextures.append(ExportTexture(map: .normal, page: page, bytes: bytes))
            }
            if let bytes = try image(ofTexture: pbr["metallicRoughnessTexture"]) {
                exportTextures.append(ExportTexture(map: .roughness, page: page, bytes: bytes))
            } else if let bytes = try image(ofTexture: material["occlusionTexture"]) {
                exportTextures.append(ExportTexture(map: .occlusion, page: page, bytes: bytes))
            }
        }

        guard let meshes = document["meshes"] as? [[String: Any]], meshes.count == 1,
              let primitives = meshes[0]["primitives"] as? [[String: Any]] else {
            throw ExportError("the file does not hold one mesh")
        }
        var parts: [ExportPart] = []
        for primitive in primitives {
            guard (primitive["mode"] as? Int ?? 4) == 4, let attributes = primitive["attributes"] as? [String: Int],
                  let positionAccessor = attributes["POSITION"], let indexAccessor = primitive["indices"] as? Int
            else { throw ExportError("a primitive is not an indexed triangle list with positions") }
            var part = ExportPart(page: primitive["material"] as? Int ?? 0)
            let p = try floats(positionAccessor, components: 3)
            part.positions = stride(from: 0, to: p.count, by: 3).map { SIMD3(p[$0], p[$0 + 1], p[$0 + 2]) }
            let lower = part.lower, upper = part.upper
            let declaredMin = accessors[positionAccessor]["min"] as? [Double] ?? []
            let declaredMax = accessors[positionAccessor]["max"] as? [Double] ?? []
            func close(_ value: Float, _ declared: Double) -> Bool {
                abs(Double(value) - declared) <= 1e-5 * max(1, abs(declared))
            }
            guard declaredMin.count == 3, declaredMax.count == 3,
                  (0..<3).allSatisfy({ close(lower[$0], declaredMin[$0]) && close(upper[$0], declaredMax[$0]) }) else {
                throw ExportError("POSITION's min and max are not its bounds")
            }
            if let normalAccessor = attributes["NORMAL"] {
                let n = try floats(normalAccessor, components: 3)
                part.normals = stride(from: 0, to: n.count, by: 3).map { SIMD3(n[$0], n[$0 + 1], n[$0 + 2]) }
                guard part.normals.count == part.positions.count,
                      part.normals.allSatisfy({ abs(($0 * $0).sum() - 1) < 1e-3 }) else {
                    throw ExportError("NORMAL is not one unit vector per vertex")
                }
            }
            if let uvAccessor = attributes["TEXCOORD_0"] {
                let t = try floats(uvAccessor, components: 2)
                part.uvs = stride(from: 0, to: t.count, by: 2).map { SIMD2(t[$0], t[$0 + 1]) }
            }
            if let tangentAccessor = attributes["TANGENT"] {
                let t = try floats(tangentAccessor, components: 4)
                part.tangents = stride(from: 0, to: t.count, by: 4).map {
                    SIMD4(t[$0], t[$0 + 1], t[$0 + 2], t[$0 + 3])
                }
                guard part.tangents.allSatisfy({ abs($0.w) == 1 }) else { throw ExportError("TANGENT.w is not ±1") }
            }
            let flat = try indices(indexAccessor)
            guard flat.count % 3 == 0, flat.allSatisfy({ Int($0) < part.positions.count }) else {
                throw ExportError("the indices are not triangles of the primitive's vertices")
            }
            part.triangles = stride(from: 0, to: flat.count, by: 3).map { SIMD3(flat[$0], flat[$0 + 1], flat[$0 + 2]) }
            parts.append(part)
        }
        let name = (meshes[0]["name"] as? String) ?? "model"
        return ExportModel(name: name, parts: parts, textures: exportTextures)
    }
}
