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
}
