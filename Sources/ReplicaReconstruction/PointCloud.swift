import Foundation
import ReplicaGeometry

/// Points with a normal and a colour each: what Point Cloud Generation makes and meshing reads.
public struct OrientedPointCloud: Sendable, Equatable {
    public var positions: [SIMD3<Float>] = []
    /// Unit normals, pointing out of the surface (towards the views that saw it).
    public var normals: [SIMD3<Float>] = []
    public var colors: [SIMD3<UInt8>] = []

    public init() {}

    public var count: Int { positions.count }

    public mutating func append(position: SIMD3<Float>, normal: SIMD3<Float>, color: SIMD3<UInt8>) {
        positions.append(position)
        normals.append(normal)
        colors.append(color)
    }

    /// The points whose flag in `keep` is true, in order.
    public func filtered(_ keep: [Bool]) -> OrientedPointCloud {
        precondition(keep.count == count, "one flag per point")
        var result = OrientedPointCloud()
        for index in 0..<count where keep[index] {
            result.append(position: positions[index], normal: normals[index], color: colors[index])
        }
        return result
    }

    /// A binary little-endian PLY with `x y z nx ny nz` as floats and `red green blue` as bytes, as MeshLab,
    /// CloudCompare, Open3D and Blender read it.
    public func plyBytes() -> [UInt8] {
        let header = "ply\nformat binary_little_endian 1.0\ncomment written by Replica Link\n"
            + "element vertex \(count)\nproperty float x\nproperty float y\nproperty float z\n"
            + "property float nx\nproperty float ny\nproperty float nz\n"
            + "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n"
        var bytes = Array(header.utf8)
        bytes.reserveCapacity(bytes.count + 27 * count)
        for index in 0..<count {
            let p = positions[index], n = normals[index], c = colors[index]
            for value in [p.x, p.y, p.z, n.x, n.y, n.z] {
                withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            }
            bytes += [c.x, c.y, c.z]
        }
        return bytes
    }

    /// Reads what `plyBytes()` wrote; any other layout, or a file cut short, is refused with the reason.
    public init(plyBytes bytes: [UInt8]) throws(PLYFormatError) {
        let body = try PLYLayout.body(of: bytes, expecting: [
            "element vertex", "property float x", "property float y", "property float z", "property float nx",
            "property float ny", "property float nz", "property uchar red", "property uchar green",
            "property uchar blue"])
        let count = body.counts[0]
        guard bytes.count - body.offset == 27 * count else {
            throw PLYFormatError("\(count) points need \(27 * count) bytes after the header; the file has "
                                 + "\(bytes.count - body.offset)")
        }
        positions.reserveCapacity(count)
        normals.reserveCapacity(count)
        colors.reserveCapacity(count)
        bytes.withUnsafeBytes { raw in
            var offset = body.offset
            func float() -> Float {
                defer { offset += 4 }
                let word = raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
                return Float(bitPattern: UInt32(littleEndian: word))
            }
            for _ in 0..<count {
                let position = SIMD3(float(), float(), float())
                let normal = SIMD3(float(), float(), float())
                let color = SIMD3(raw[offset], raw[offset + 1], raw[offset + 2])
                offset += 3
                append(position: position, normal: normal, color: color)
            }
        }
    }
}

/// Why a PLY file of ours could not be read.
public struct PLYFormatError: Error, Equatable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// The headers of the binary PLY files this module writes, read back strictly: the lines must be those it writes,
/// in order, each `element` line followed by its element's count.
enum PLYLayout {
    /// Where the data begin and each element's count; `lines` are the header's lines after the format line, the
    /// `element` ones without their count. Comments are skipped.
    static func body(of bytes: [UInt8], expecting lines: [String]) throws(PLYFormatError)
        -> (offset: Int, counts: [Int]) {
        let marker = Array("end_header\n".utf8)
        guard bytes.starts(with: Array("ply\nformat binary_little_endian 1.0\n".utf8)) else {
            throw PLYFormatError("not a binary little-endian PLY file")
        }
        var end: Int?
        let limit = min(bytes.count, 4096)
        if limit >= marker.count {
            for start in 0...(limit - marker.count) where bytes[start] == marker[0] {
                if Array(bytes[start..<(start + marker.count)]) == marker { end = start + marker.count; break }
            }
        }
        guard let end, let text = String(bytes: bytes[0..<end], encoding: .utf8) else {
            throw PLYFormatError("the PLY header has no end_header line in its first 4 KiB")
        }
        let found = text.split(separator: "\n").dropFirst(2).filter { !$0.hasPrefix("comment") }.dropLast()
        guard found.count == lines.count else {
            throw PLYFormatError("the PLY header has \(found.count) lines where \(lines.count) were expected")
        }
        var counts: [Int] = []
        for (line, expected) in zip(found, lines) {
            if expected.hasPrefix("element ") {
                guard line.hasPrefix(expected + " "), let count = Int(line.dropFirst(expected.count + 1)),
                      count >= 0 else {
                    throw PLYFormatError("expected \"\(expected) N\" in the PLY header, found \"\(line)\"")
                }
                counts.append(count)
            } else if line != expected {
                throw PLYFormatError("expected \"\(expected)\" in the PLY header, found \"\(line)\"")
            }
        }
        return (end, counts)
    }
}

