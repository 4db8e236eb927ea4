import Foundation
import ReplicaGeometry

/// Why a PLY file could not be read or written; names the file.
public struct PLYError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var reason: String

    public var description: String { "\(path): \(reason)" }
}

/// Triangle meshes and point clouds in the PLY format: ASCII or binary little-endian, vertices `x y z` with
/// optional `red green blue` bytes, faces as a `vertex_indices` list (polygons are split into fans).
public enum PLY {
    /// How `write` lays out the data.
    public enum Encoding: Sendable { case ascii, binaryLittleEndian }

    /// Reads vertices, their colours when every vertex has them, and triangles.
    public static func read(path: String) throws -> (vertices: [Vector3], colors: [SIMD3<UInt8>]?,
                                                      triangles: [SIMD3<Int32>]) {
        let contents = try everything(path: path)
        return (contents.vertices, contents.colors, contents.triangles)
    }

    /// Reads vertices, their texture coordinates (`texture_u`/`texture_v`, `u`/`v` or `s`/`t`) when every vertex
    /// has them, and triangles.
    public static func readTextured(path: String) throws -> (vertices: [Vector3], uvs: [Vector2]?,
                                                              triangles: [SIMD3<Int32>]) {
        let contents = try everything(path: path)
        return (contents.vertices, contents.uvs, contents.triangles)
    }

    private static func everything(path: String) throws -> (vertices: [Vector3], colors: [SIMD3<UInt8>]?,
                                                              uvs: [Vector2]?, triangles: [SIMD3<Int32>]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw PLYError(path: path, reason: "the file cannot be read")
        }
        let bytes = [UInt8](data)
        let header = try PLYHeader(bytes, path: path)
        var reader = PLYBodyReader(bytes: bytes, offset: header.bodyOffset, binary: header.binary, path: path)
        return try reader.read(header)
    }

    /// Writes vertices (with colours when given, one per vertex) and triangles, coordinates as doubles.
    public static func write(path: String, vertices: [Vector3], colors: [SIMD3<UInt8>]? = nil,
                             triangles: [SIMD3<Int32>] = [], encoding: Encoding = .binaryLittleEndian) throws {
        precondition(colors == nil || colors!.count == vertices.count, "one colour per vertex")
        var text = "ply\nformat \(encoding == .ascii ? "ascii" : "binary_little_endian") 1.0\n"
        text += "comment written by Replica Link\nelement vertex \(vertices.count)\n"
        text += "property double x\nproperty double y\nproperty double z\n"
        if colors != nil { text += "property uchar red\nproperty uchar green\nproperty uchar blue\n" }
        text += "element face \(triangles.count)\nproperty list uchar int vertex_indices\nend_header\n"
        var bytes = Array(text.utf8)
        switch encoding {
        case .ascii: bytes += asciiBody(vertices, colors, triangles)
        case .binaryLittleEndian: bytes += binaryBody(vertices, colors, triangles)
        }
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
            throw PLYError(path: path, reason: "the file cannot be written")
        }
    }

    private static func asciiBody(_ vertices: [Vector3], _ colors: [SIMD3<UInt8>]?,
                                  _ triangles: [SIMD3<Int32>]) -> [UInt8] {
        var lines: [String] = []
        lines.reserveCapacity(vertices.count + triangles.count)
        for (index, v) in vertices.enumerated() {
            // Swift prints the shortest text that reads back as the same double.
            var line = "\(v.x) \(v.y) \(v.z)"
            if let color = colors?[index] { line += " \(color.x) \(color.y) \(color.z)" }
            lines.append(line)
        }
        for t in triangles { lines.append("3 \(t.x) \(t.y) \(t.z)") }
        return Array((lines.joined(separator: "\n") + "\n").utf8)
    }

    private static func binaryBody(_ vertices: [Vector3], _ colors: [SIMD3<UInt8>]?,
                                   _ triangles: [SIMD3<Int32>]) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(vertices.count * 27 + triangles.count * 13)
        func append<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { bytes += $0 }
        }
        for (index, v) in vertices.enumerated() {
            for coordinate in [v.x, v.y, v.z] { append(coordinate.bitPattern) }
            if let color = colors?[index] { bytes += [color.x, color.y, color.z] }
        }
        for t in triangles {
            bytes.append(3)
            for corner in [t.x, t.y, t.z] { append(corner) }
        }
        return bytes
    }
}

/// The header of a PLY file: its encoding and elements with their properties.
private struct PLYHeader {
    struct Property {
        var name: String
        var type: String
        /// The type of a list's count; nil for a scalar property.
        var countType: String?
    }

    struct Element {
        var name: String
        var count: Int
        var properties: [Property] = []
    }

    var binary = false
    var elements: [Element] = []
    var bodyOffset = 0

    init(_ bytes: [UInt8], path: String) throws {
        guard let end = Self.endOfHeader(bytes) else { throw PLYError(path: path, reason: "no PLY header") }
        bodyOffset = end
        let lines = String(decoding: bytes[0..<end], as: UTF8.self).split(whereSeparator: \.isNewline)
        guard lines.first == "ply" else { throw PLYError(path: path, reason: "the file does not start with 'ply'") }
        for line in lines.dropFirst() { try parse(line.split(separator: " ").map(String.init), path: path) }
    }

    private mutating func parse(_ words: [String], path: String) throws {
        switch words.first {
        case "format":
            guard words.count >= 2, ["ascii", "binary_little_endian"].contains(words[1]) else {
                throw PLYError(path: path, reason: "only ASCII and binary little-endian PLY are read")
            }
            binary = words[1] == "binary_little_endian"
        case "element":
            guard words.count == 3, let count = Int(words[2]), count >= 0 else {
                throw PLYError(path: path, reason: "a malformed element line")
            }
            elements.append(Element(name: words[1], count: count))
        case "property":
            guard !elements.isEmpty else { throw PLYError(path: path, reason: "a property before any element") }
            if words.count == 5, words[1] == "list" {
                elements[elements.count - 1].properties.append(Property(name: words[4], type: words[3],
                                                                        countType: words[2]))
            } else if words.count == 3 {
                elements[elements.count - 1].properties.append(Property(name: words[2], type: words[1]))
            } else {
                throw PLYError(path: path, reason: "a malformed property line")
            }
        default:
            break
        }
    }

    /// The offset just after the line "end_header".
    private static func endOfHeader(_ bytes: [UInt8]) -> Int? {
        let marker = Array("end_header".utf8)
        var index = 0
        while index + marker.count < bytes.count {
            if bytes[index..<(index + marker.count)].elementsEqual(marker) {
                var end = index + marker.count
                if end < bytes.count, bytes[end] == 0x0D { end += 1 }
                return end < bytes.count && bytes[end] == 0x0A ? end + 1 : nil
            }
            index += 1
        }
        return nil
    }
}

/// Reads the elements of a PLY body, keeping vertex positions, colours and faces.
private struct PLYBodyReader {
    let bytes: [UInt8]
    var offset: Int
    let binary: Bool
    let path: String

    init(bytes: [UInt8], offset: Int, binary: Bool, path: String) {
        self.bytes = bytes
        self.offset = offset
        self.binary = binary
        self.path = path
    }

    mutating func read(_ header: PLYHeader) throws -> (vertices: [Vector3], colors: [SIMD3<UInt8>]?,
                                                        uvs: [Vector2]?, triangles: [SIMD3<Int32>]) {
        var vertices: [Vector3] = [], colors: [SIMD3<UInt8>]?, uvs: [Vector2]?, triangles: [SIMD3<Int32>] = []
        for element in header.elements {
            let names = element.properties.map(\.name)
            let position = ["x", "y", "z"].compactMap { names.firstIndex(of: $0) }
            let color = ["red", "green", "blue"].compactMap { names.firstIndex(of: $0) }
            let uv = [["texture_u", "texture_v"], ["u", "v"], ["s", "t"]]
                .map { $0.compactMap { names.firstIndex(of: $0) } }.first { $0.count == 2 } ?? []
            if element.name == "vertex" {
                guard position.count == 3 else { throw failure("vertices lack x, y or z") }
                if color.count == 3 { colors = [] }
                if uv.count == 2 { uvs = [] }
            }
            for _ in 0..<element.count {
                let (scalars, list) = try readRecord(element)
                if element.name == "vertex" {
                    vertices.append(Vector3(scalars[position[0]], scalars[position[1]], scalars[position[2]]))
                    if color.count == 3 { colors?.append(SIMD3(color.map { UInt8(clamping: Int(scalars[$0])) })) }
                    if uv.count == 2 { uvs?.append(Vector2(scalars[uv[0]], scalars[uv[1]])) }
                } else if element.name == "face", list.count >= 3 {
                    // A polygon becomes a fan of triangles around its first corner.
                    for corner in 1..<(list.count - 1) {
                        triangles.append(SIMD3(list[0], list[corner], list[corner + 1]))
                    }
                }
            }
        }
        guard triangles.allSatisfy({ $0.min() >= 0 && Int($0.max()) < vertices.count }) else {
            throw failure("a face refers to a vertex that does not exist")
        }
        return (vertices, colors, uvs, triangles)
    }

    /// One record of an element: its scalar properties by position, and its vertex-index list if it has one.
    private mutating func readRecord(_ element: PLYHeader.Element) throws -> (scalars: [Double], list: [Int32]) {
        var scalars = [Double](repeating: 0, count: element.properties.count)
        var list: [Int32] = []
        for (index, property) in element.properties.enumerated() {
            guard let countType = property.countType else {
                scalars[index] = try value(property.type)
                continue
            }
            let count = Int(try value(countType))
            guard count >= 0, count < 1 << 16 else { throw failure("a list of \(count) entries") }
            let entries = try (0..<count).map { _ in try value(property.type) }
            guard ["vertex_indices", "vertex_index"].contains(property.name) else { continue }
            guard entries.allSatisfy({ $0 >= 0 && $0 <= Double(Int32.max) }) else {
                throw failure("a vertex index out of range")
            }
            list = entries.map { Int32($0) }
        }
        return (scalars, list)
    }

    private func failure(_ reason: String) -> PLYError { PLYError(path: path, reason: reason) }

    /// The next value of a property type, as a double (exact for every PLY integer type).
    private mutating func value(_ type: String) throws -> Double {
        binary ? try binaryValue(type) : try asciiValue()
    }

    private mutating func asciiValue() throws -> Double {
        // Any byte up to space is a separator: spaces, tabs and line breaks.
        while offset < bytes.count, bytes[offset] <= 0x20 { offset += 1 }
        let start = offset
        while offset < bytes.count, bytes[offset] > 0x20 { offset += 1 }
        guard start < offset, let number = Double(String(decoding: bytes[start..<offset], as: UTF8.self)) else {
            throw failure("the ASCII body ends early or holds something that is not a number")
        }
        return number
    }

    private mutating func binaryValue(_ type: String) throws -> Double {
        let size: Int
        switch type {
        case "char", "int8", "uchar", "uint8": size = 1
        case "short", "int16", "ushort", "uint16": size = 2
        case "int", "int32", "uint", "uint32", "float", "float32": size = 4
        case "double", "float64": size = 8
        default: throw failure("the property type '\(type)' is not PLY's")
        }
        guard offset + size <= bytes.count else { throw failure("the binary body ends early") }
        var raw: UInt64 = 0
        for index in 0..<size { raw |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        offset += size
        switch type {
        case "char", "int8": return Double(Int8(truncatingIfNeeded: raw))
        case "short", "int16": return Double(Int16(truncatingIfNeeded: raw))
        case "int", "int32": return Double(Int32(truncatingIfNeeded: raw))
        case "float", "float32": return Double(Float(bitPattern: UInt32(raw)))
        case "double", "float64": return Double(bitPattern: raw)
        default: return Double(raw)
        }
    }
}
