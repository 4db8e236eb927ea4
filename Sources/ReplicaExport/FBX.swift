import Foundation

/// Binary FBX 7.4, written here: one Geometry and Model per part, a material per page whose diffuse and normal
/// textures are embedded as video content, so the file stands alone. Y up, one unit a metre (a unit scale factor
/// of 100, FBX counting in centimetres).
///
/// assimp 5.2's FBX exporter was the first choice; the files it writes fail to open in assimp itself and in
/// Blender (a nested record's end offset is wrong), so the few records a textured mesh needs are written here.
/// assimp stays as the reader the tests check what is written with.
public enum FBX {
    public static let version: UInt32 = 7400

    public static func bytes(_ model: ExportModel) throws -> [UInt8] {
        guard model.triangleCount > 0 else { throw ExportError("the model has no faces") }
        var nextID: Int64 = 1_000_000
        func id() -> Int64 { nextID += 1; return nextID }
        var objects: [Node] = [], connections: [Node] = []
        func connect(_ child: Int64, _ parent: Int64, property: String? = nil) {
            var values: [Property] = [.string(property == nil ? "OO" : "OP"), .int64(child), .int64(parent)]
            if let property { values.append(.string(property)) }
            connections.append(Node("C", values))
        }
        var materialOfPage: [Int: Int64] = [:]
        for page in Set(model.parts.map(\.page)).sorted() {
            let material = id()
            materialOfPage[page] = material
            objects.append(Node("Material", [.int64(material), .string(objectName("page\(page)", "Material")),
                                             .string("")], children: [
                Node("Version", [.int32(102)]), Node("ShadingModel", [.string("phong")]),
                Node("MultiLayer", [.int32(0)]),
                Node("Properties70", children: [
                    property("DiffuseColor", "Color", "", "A", [.double(1), .double(1), .double(1)]),
                    property("SpecularColor", "Color", "", "A", [.double(0), .double(0), .double(0)]),
                    property("Shininess", "double", "Number", "", [.double(10)]),
                ]),
            ]))
            for (map, slot) in [(ExportMap.diffuse, "DiffuseColor"), (.normal, "NormalMap")] {
                guard let texture = model.texture(map, page: page) else { continue }
                let video = id(), textureID = id()
                let file = texture.fileName
                objects.append(Node("Video", [.int64(video), .string(objectName(file, "Video")), .string("Clip")],
                                    children: [
                    Node("Type", [.string("Clip")]),
                    Node("Properties70", children: [property("Path", "KString", "XRefUrl", "", [.string(file)])]),
                    Node("UseMipMap", [.int32(0)]), Node("Filename", [.string(file)]),
                    Node("RelativeFilename", [.string(file)]), Node("Content", [.raw(texture.bytes)]),
                ]))
                objects.append(Node("Texture", [.int64(textureID), .string(objectName(file, "Texture")),
                                                .string("")], children: [
                    Node("Type", [.string("TextureVideoClip")]), Node("Version", [.int32(202)]),
                    Node("TextureName", [.string(objectName(file, "Texture"))]),
                    Node("Media", [.string(objectName(file, "Video"))]),
                    Node("FileName", [.string(file)]), Node("RelativeFilename", [.string(file)]),
                    Node("ModelUVTranslation", [.double(0), .double(0)]),
                    Node("ModelUVScaling", [.double(1), .double(1)]),
                    Node("Texture_Alpha_Source", [.string("None")]),
                    Node("Cropping", [.int32(0), .int32(0), .int32(0), .int32(0)]),
                ]))
                connect(video, textureID)
                connect(textureID, material, property: slot)
            }
        }
        for part in model.parts where !part.triangles.isEmpty {
            let geometry = id(), modelID = id()
            let name = "page\(part.page)"
            objects.append(geometryNode(part, id: geometry, name: name))
            objects.append(Node("Model", [.int64(modelID), .string(objectName(name, "Model")), .string("Mesh")],
                                children: [
                Node("Version", [.int32(232)]),
                Node("Properties70", children: [
                    property("Lcl Translation", "Lcl Translation", "", "A", [.double(0), .double(0), .double(0)]),
                ]),
                Node("Shading", [.bool(true)]), Node("Culling", [.string("CullingOff")]),
            ]))
            connect(geometry, modelID)
            connect(modelID, 0)
            connect(materialOfPage[part.page]!, modelID)
        }

        let settings = Node("GlobalSettings", children: [
            Node("Version", [.int32(1000)]),
            Node("Properties70", children: [
                property("UpAxis", "int", "Integer", "", [.int32(1)]),
                property("UpAxisSign", "int", "Integer", "", [.int32(1)]),
                property("FrontAxis", "int", "Integer", "", [.int32(2)]),
                property("FrontAxisSign", "int", "Integer", "", [.int32(1)]),
                property("CoordAxis", "int", "Integer", "", [.int32(0)]),
                property("CoordAxisSign", "int", "Integer", "", [.int32(1)]),
                property("OriginalUpAxis", "int", "Integer", "", [.int32(1)]),
                property("OriginalUpAxisSign", "int", "Integer", "", [.int32(1)]),
                property("UnitScaleFactor", "double", "Number", "", [.double(100)]),
                property("OriginalUnitScaleFactor", "double", "Number", "", [.double(100)]),
            ]),
        ])
        let header = Node("FBXHeaderExtension", children: [
            Node("FBXHeaderVersion", [.int32(1003)]), Node("FBXVersion", [.int32(Int32(version))]),
            Node("Creator", [.string("Replica Link")]),
        ])
        var definitions: [Node] = [Node("Version", [.int32(100)]), Node("Count", [.int32(Int32(objects.count))])]
        for type in ["Model", "Geometry", "Material", "Texture", "Video"] {
            let count = objects.filter { $0.name == type }.count
            guard count > 0 else { continue }
            definitions.append(Node("ObjectType", [.string(type)], children: [Node("Count", [.int32(Int32(count))])]))
        }
        let roots = [header, settings, Node("Definitions", children: definitions),
                     Node("Objects", children: objects), Node("Connections", children: connections)]

        var out = Array("Kaydara FBX Binary  ".utf8) + [0, 0x1A, 0]
        append(version, to: &out)
        for node in roots { node.write(to: &out) }
        out += [UInt8](repeating: 0, count: 13)
        // The footer as FBX SDK writes it: an ID, padding to 16 bytes, the version, zeros, a closing ID.
        out += [0xFA, 0xBC, 0xAB, 0x09, 0xD0, 0xC8, 0xD4, 0x66, 0xB1, 0x76, 0xFB, 0x83, 0x1C, 0xF7, 0x26, 0x7E]
        out += [UInt8](repeating: 0, count: 4)
        let padding = (16 - out.count % 16) % 16
        out += [UInt8](repeating: 0, count: padding == 0 ? 16 : padding)
        append(version, to: &out)
        out += [UInt8](repeating: 0, count: 120)
        out += [0xF8, 0x5A, 0x8C, 0x6A, 0xDE, 0xF5, 0xD9, 0x7E, 0xEC, 0xE9, 0x0C, 0xE3, 0x75, 0x8F, 0x29, 0x0B]
        guard out.count <= Int(UInt32.max) else {
            throw ExportError("the model needs more than the 4 GiB FBX 7.4 holds")
        }
        return out
    }

    /// FBX's object names in binary files: the name, then 0x00 0x01, then the class.
    private static func objectName(_ name: String, _ type: String) -> [UInt8] {
        Array(name.utf8) + [0, 1] + Array(type.utf8)
    }

    private static func property(_ name: String, _ type: String, _ label: String, _ flags: String,
                                 _ values: [Property]) -> Node {
        Node("P", [.string(name), .string(type), .string(label), .string(flags)] + values)
    }

    /// Corners listed per polygon, the last index of each complemented (FBX's end-of-polygon mark); normals and
    /// texture coordinates per corner, v up from the bottom.
    private static func geometryNode(_ part: ExportPart, id: Int64, name: String) -> Node {
        var corners: [Int32] = [], normals: [Double] = [], uvs: [Double] = []
        corners.reserveCapacity(3 * part.triangles.count)
        for triangle in part.triangles {
            for corner in 0..<3 {
                let index = Int32(triangle[corner])
                corners.append(corner == 2 ? ~index : index)
                let n = part.normals[Int(index)]
                normals += [Double(n.x), Double(n.y), Double(n.z)]
            }
        }
        uvs.reserveCapacity(2 * part.uvs.count)
        for uv in part.uvs { uvs += [Double(uv.x), Double(1 - uv.y)] }
        let uvIndex = part.triangles.flatMap { [Int32($0.x), Int32($0.y), Int32($0.z)] }
        return Node("Geometry", [.int64(id), .string(objectName(name, "Geometry")), .string("Mesh")], children: [
            Node("Vertices", [.doubles(part.positions.flatMap { [Double($0.x), Double($0.y), Double($0.z)] })]),
            Node("PolygonVertexIndex", [.int32s(corners)]),
            Node("GeometryVersion", [.int32(124)]),
            Node("LayerElementNormal", [.int32(0)], children: [
                Node("Version", [.int32(101)]), Node("Name", [.string("")]),
                Node("MappingInformationType", [.string("ByPolygonVertex")]),
                Node("ReferenceInformationType", [.string("Direct")]), Node("Normals", [.doubles(normals)]),
            ]),
            Node("LayerElementUV", [.int32(0)], children: [
                Node("Version", [.int32(101)]), Node("Name", [.string("UVMap")]),
                Node("MappingInformationType", [.string("ByPolygonVertex")]),
                Node("ReferenceInformationType", [.string("IndexToDirect")]),
                Node("UV", [.doubles(uvs)]), Node("UVIndex", [.int32s(uvIndex)]),
            ]),
            Node("LayerElementMaterial", [.int32(0)], children: [
                Node("Version", [.int32(101)]), Node("Name", [.string("")]),
                Node("MappingInformationType", [.string("AllSame")]),
                Node("ReferenceInformationType", [.string("IndexToDirect")]), Node("Materials", [.int32s([0])]),
            ]),
            Node("Layer", [.int32(0)], children: [
                Node("Version", [.int32(100)]),
                Node("LayerElement", children: [Node("Type", [.string("LayerElementNormal")]),
                                                Node("TypedIndex", [.int32(0)])]),
                Node("LayerElement", children: [Node("Type", [.string("LayerElementUV")]),
                                                Node("TypedIndex", [.int32(0)])]),
                Node("LayerElement", children: [Node("Type", [.string("LayerElementMaterial")]),
                                                Node("TypedIndex", [.int32(0)])]),
            ]),
        ])
    }

    fileprivate static func append(_ value: UInt32, to out: inout [UInt8]) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    /// One value of a record, with its type code.
    fileprivate enum Property {
        case bool(Bool), int32(Int32), int64(Int64), double(Double)
        case string([UInt8]), raw([UInt8])
        case doubles([Double]), int32s([Int32])

        static func string(_ text: String) -> Property { .string(Array(text.utf8)) }

        func write(to out: inout [UInt8]) {
            func bytes<T>(_ value: T) { withUnsafeBytes(of: value) { out.append(contentsOf: $0) } }
            switch self {
            case .bool(let flag): out += [UInt8(ascii: "C"), flag ? 1 : 0]
            case .int32(let value): out.append(UInt8(ascii: "I")); bytes(value.littleEndian)
            case .int64(let value): out.append(UInt8(ascii: "L")); bytes(value.littleEndian)
            case .double(let value): out.append(UInt8(ascii: "D")); bytes(value.bitPattern.littleEndian)
            case .string(let text):
                out.append(UInt8(ascii: "S")); FBX.append(UInt32(text.count), to: &out); out += text
            case .raw(let data):
                out.append(UInt8(ascii: "R")); FBX.append(UInt32(data.count), to: &out); out += data
            case .doubles(let values):
                out.append(UInt8(ascii: "d"))
                FBX.append(UInt32(values.count), to: &out); FBX.append(0, to: &out)
                FBX.append(UInt32(8 * values.count), to: &out)
                for value in values { bytes(value.bitPattern.littleEndian) }
            case .int32s(let values):
                out.append(UInt8(ascii: "i"))
                FBX.append(UInt32(values.count), to: &out); FBX.append(0, to: &out)
                FBX.append(UInt32(4 * values.count), to: &out)
                for value in values { bytes(value.littleEndian) }
            }
        }
    }

    /// A record: its end offset, property count and length, name, properties, then its children closed by
    /// 13 zero bytes.
    fileprivate struct Node {
        var name: String
        var properties: [Property]
        var children: [Node]

        init(_ name: String, _ properties: [Property] = [], children: [Node] = []) {
            self.name = name
            self.properties = properties
            self.children = children
        }

        func write(to out: inout [UInt8]) {
            let start = out.count
            out += [UInt8](repeating: 0, count: 12)
            out.append(UInt8(name.utf8.count))
            out += Array(name.utf8)
            let propertiesStart = out.count
            for property in properties { property.write(to: &out) }
            let propertiesLength = out.count - propertiesStart
            if !children.isEmpty || properties.isEmpty {
                for child in children { child.write(to: &out) }
                out += [UInt8](repeating: 0, count: 13)
            }
            func put(_ value: Int, at offset: Int) {
                withUnsafeBytes(of: UInt32(value).littleEndian) { raw in
                    for i in 0..<4 { out[offset + i] = raw[i] }
                }
            }
            put(out.count, at: start)
            put(properties.count, at: start + 4)
            put(propertiesLength, at: start + 8)
        }
    }
}
