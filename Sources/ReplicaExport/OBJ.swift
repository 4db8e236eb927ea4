/// Wavefront OBJ: the geometry in one text file that names its material library, `<name>.mtl`, whose materials
/// name the texture files written beside it. The API serves the `.obj` alone; the library and the textures stay
/// next to it in the cache for whoever reads the folder.
public enum OBJ {
    public struct Files {
        public var obj: [UInt8]
        public var mtl: [UInt8]
        /// File name and bytes of each texture the library names.
        public var textures: [(name: String, bytes: [UInt8])]
    }

    /// `baseName` names the library (`<baseName>.mtl`) and prefixes the textures (`<baseName>-diffuse-0.png`).
    public static func files(_ model: ExportModel, baseName: String) -> Files {
        var obj = "# Replica Link\nmtllib \(baseName).mtl\no \(sanitized(model.name))\n"
        obj.reserveCapacity(model.vertexCount * 110 + model.triangleCount * 40)
        var offset = 1
        for part in model.parts {
            for p in part.positions { obj += "v \(decimal(p.x)) \(decimal(p.y)) \(decimal(p.z))\n" }
            // OBJ's v runs up from the bottom row.
            for t in part.uvs { obj += "vt \(decimal(t.x)) \(decimal(1 - t.y))\n" }
            for n in part.normals { obj += "vn \(decimal(n.x)) \(decimal(n.y)) \(decimal(n.z))\n" }
            obj += "g page\(part.page)\nusemtl page\(part.page)\n"
            for t in part.triangles {
                let a = Int(t.x) + offset, b = Int(t.y) + offset, c = Int(t.z) + offset
                obj += "f \(a)/\(a)/\(a) \(b)/\(b)/\(b) \(c)/\(c)/\(c)\n"
            }
            offset += part.positions.count
        }
        var mtl = "# Replica Link\n"
        var textures: [(name: String, bytes: [UInt8])] = []
        for page in Set(model.parts.map(\.page)).sorted() {
            mtl += "\nnewmtl page\(page)\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nNs 10\nd 1\nillum 1\nPm 0\n"
            func name(_ map: ExportMap) -> String? {
                guard let texture = model.texture(map, page: page) else { return nil }
                let file = baseName + "-" + texture.fileName
                textures.append((file, texture.bytes))
                return file
            }
            if let file = name(.diffuse) { mtl += "map_Kd \(file)\n" }
            if let file = name(.normal) { mtl += "norm \(file)\n" }
        }
        return Files(obj: Array(obj.utf8), mtl: Array(mtl.utf8), textures: textures)
    }

    /// OBJ names end at white space.
    static func sanitized(_ name: String) -> String {
        let cleaned = String(name.map { $0.isWhitespace || !$0.isASCII ? "_" : $0 })
        return cleaned.isEmpty ? "model" : cleaned
    }
}
