/// Meshes of simple shapes, for scenes and tests.
extension TriangleMesh {
    /// The unit sphere: an icosahedron whose faces are split in four `subdivisions` times, the new vertices
    /// pushed out onto the sphere. Faces wind counter-clockwise seen from outside.
    public static func icosphere(subdivisions: Int) -> TriangleMesh {
        precondition(subdivisions >= 0, "subdivisions cannot be negative")
        let t = (1 + 5.0.squareRoot()) / 2
        var vertices = [Vector3(-1, t, 0), Vector3(1, t, 0), Vector3(-1, -t, 0), Vector3(1, -t, 0),
                        Vector3(0, -1, t), Vector3(0, 1, t), Vector3(0, -1, -t), Vector3(0, 1, -t),
                        Vector3(t, 0, -1), Vector3(t, 0, 1), Vector3(-t, 0, -1), Vector3(-t, 0, 1)].map(\.normalized)
        var triangles: [SIMD3<Int32>] = [
            [0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
            [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
            [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]]
        for _ in 0..<subdivisions {
            var midpoints: [SIMD2<Int32>: Int32] = [:]
            func midpoint(_ a: Int32, _ b: Int32) -> Int32 {
                let key = SIMD2(min(a, b), max(a, b))
                if let known = midpoints[key] { return known }
                vertices.append(((vertices[Int(a)] + vertices[Int(b)]) / 2).normalized)
                midpoints[key] = Int32(vertices.count - 1)
                return Int32(vertices.count - 1)
            }
            triangles = triangles.flatMap { t -> [SIMD3<Int32>] in
                let (ab, bc, ca) = (midpoint(t.x, t.y), midpoint(t.y, t.z), midpoint(t.z, t.x))
                return [SIMD3(t.x, ab, ca), SIMD3(ab, t.y, bc), SIMD3(ca, bc, t.z), SIMD3(ab, bc, ca)]
            }
        }
        return TriangleMesh(vertices: vertices, triangles: triangles)
    }
}
