import Foundation
import ReplicaGeometry

/// A depth map on disk (`work/dense/depth/<photo>.dmap`), little-endian:
///
/// - the 8 bytes `RLDMAP1\n`, then width and height as UInt32;
/// - the pinhole camera (fx, fy, cx, cy) and the pose (the rotation's 9 entries by rows, then the translation)
///   as 16 Float64;
/// - the planes, each row-major: depth (Float32), normal (3 × Float32), cost (Float32), colour (3 × UInt8).
public enum DepthMapFile {
    static let magic = Array("RLDMAP1\n".utf8)

    public static func encode(_ map: DepthMap) -> [UInt8] {
        var bytes = magic
        bytes.reserveCapacity(magic.count + 8 + 128 + map.depth.count * 23)
        func append<T>(_ values: [T]) { values.withUnsafeBytes { bytes.append(contentsOf: $0) } }
        append([UInt32(map.width).littleEndian, UInt32(map.height).littleEndian])
        let camera = map.camera, pose = map.camFromWorld
        append(([camera.focalX, camera.focalY, camera.principalX, camera.principalY] + pose.rotation.values
                + [pose.translation.x, pose.translation.y, pose.translation.z]).map { $0.bitPattern.littleEndian })
        append(map.depth.map { $0.bitPattern.littleEndian })
        append(map.normal.map { $0.bitPattern.littleEndian })
        append(map.cost.map { $0.bitPattern.littleEndian })
        bytes += map.rgb
        return bytes
    }

    /// The map in `bytes`; throws with what is wrong when they are not one.
    public static func decode(_ bytes: [UInt8], path: String) throws(WorkFile.Failure) -> DepthMap {
        func failure(_ reason: String) -> WorkFile.Failure { WorkFile.Failure(path: path, reason: reason) }
        guard bytes.count >= magic.count + 8 + 128, Array(bytes[0..<magic.count]) == magic else {
            throw failure("not a depth map")
        }
        let map = bytes.withUnsafeBytes { raw -> DepthMap? in
            func word(_ offset: Int) -> UInt32 {
                UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            }
            func double(_ offset: Int) -> Double {
                Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
            }
            let width = Int(word(8)), height = Int(word(12)), count = width * height
            let header = magic.count + 8 + 128
            guard width > 0, height > 0, count <= 1 << 30, raw.count == header + count * 23 else { return nil }
            let values = (0..<16).map { double(magic.count + 8 + 8 * $0) }
            guard values.allSatisfy(\.isFinite) else { return nil }
            func floats(_ offset: Int, _ n: Int) -> [Float] {
                (0..<n).map {
                    Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset + 4 * $0,
                                                                             as: UInt32.self)))
                }
            }
            let camera = PinholeCamera(width: width, height: height, focalX: values[0], focalY: values[1],
                                       principalX: values[2], principalY: values[3])
            let pose = Rigid3(rotation: Matrix3(Array(values[4..<13])),
                              translation: Vector3(values[13], values[14], values[15]))
            let depth = floats(header, count), normal = floats(header + 4 * count, 3 * count)
            let cost = floats(header + 16 * count, count)
            let rgb = Array(raw[(header + 20 * count)...])
            return DepthMap(camera: camera, camFromWorld: pose, depth: depth, normal: normal, cost: cost,
                            rgb: rgb)
        }
        guard let map else { throw failure("the depth map's size does not match its header") }
        return map
    }

    public static func write(_ map: DepthMap, to path: String) throws(WorkFile.Failure) {
        try WorkFile.writeAtomically(encode(map), to: path)
    }

    public static func read(_ path: String) throws(WorkFile.Failure) -> DepthMap {
        try decode(try WorkFile.read(path), path: path)
    }
}
