import Foundation
import ReplicaGeometry

/// The surfaces of the synthetic scenes, built fine enough that per-vertex colours carry image detail.
enum SceneShapes {
    /// A unit icosphere subdivided `levels` times, pushed in and out by a few low-frequency radial bumps.
    static func smoothBlob(levels: Int, seed: UInt64) -> TriangleMesh {
        var mesh = TriangleMesh.icosphere(subdivisions: levels)
        var random = SceneRandom(seed: seed)
        let bumps = (0..<4).map { _ in
            (direction: Vector3(random.uniform(-1...1), random.uniform(-1...1), random.uniform(-1...1)).normalized,
             frequency: random.uniform(1.5...3), phase: random.uniform(0...(2 * .pi)))
        }
        mesh.vertices = mesh.vertices.map { direction in
            let radius = bumps.reduce(1.0) { total, bump in
                total + 0.07 * sin(bump.frequency * .pi * direction.dot(bump.direction) + bump.phase)
            }
            return direction * radius
        }
        return mesh
    }

    /// A block 2 × 1.2 × 1.2 scene units (centred on the origin, z up) with an L-shaped cut-out at one top edge
    /// and a groove across the top: sharp edges and concave corners. `spacing` is the vertex spacing, in units.
    static func notchedBlock(spacing: Double) -> TriangleMesh {
        // Occupancy on a coarse grid of 0.4-unit cells, 5 × 3 × 3.
        let cells = SIMD3(5, 3, 3)
        func occupied(_ x: Int, _ y: Int, _ z: Int) -> Bool {
            guard x >= 0, y >= 0, z >= 0, x < cells.x, y < cells.y, z < cells.z else { return false }
            if x >= 3 && z == 2 { return false }          // the step of the L
            if x >= 3 && y == 0 && z == 1 { return false } // a pocket under the step
            if x == 1 && z == 2 { return false }          // the groove across the top
            return true
        }
        let cellSize = 0.4
        let subdivisions = max(1, Int((cellSize / spacing).rounded()))
        let offset = -Vector3(Double(cells.x), Double(cells.y), Double(cells.z)) * cellSize / 2
        var builder = LatticeMeshBuilder(step: cellSize / Double(subdivisions), origin: offset)
        for x in 0..<cells.x { for y in 0..<cells.y { for z in 0..<cells.z where occupied(x, y, z) {
            let cell = SIMD3(x, y, z)
            for axis in 0..<3 { for sign in [-1, 1] {
                var neighbour = cell
                neighbour[axis] += sign
                if !occupied(neighbour.x, neighbour.y, neighbour.z) {
                    builder.addFace(cell: cell &* subdivisions, axis: axis, sign: sign, subdivisions: subdivisions)
                }
            } }
        } } }
        return builder.mesh
    }

    /// A square of ground at height `height`, `halfSize` units from the centre each way, with UVs over it.
    static func ground(center: Vector3, halfSize: Double, height: Double) -> (TriangleMesh, [Vector2]) {
        let corners = [Vector3(-1, -1, 0), Vector3(1, -1, 0), Vector3(1, 1, 0), Vector3(-1, 1, 0)]
        let vertices = corners.map { Vector3(center.x + $0.x * halfSize, center.y + $0.y * halfSize, height) }
        // v = 0 is the texture's top row, at +y.
        let coordinates = corners.map { Vector2(($0.x + 1) / 2, (1 - $0.y) / 2) }
        return (TriangleMesh(vertices: vertices, triangles: [SIMD3(0, 1, 2), SIMD3(0, 2, 3)]), coordinates)
    }
}

/// Builds a watertight mesh from faces of lattice cells, sharing vertices by their lattice coordinates.
private struct LatticeMeshBuilder {
    let step: Double
    let origin: Vector3
    private(set) var mesh = TriangleMesh()
    private var indexOfPoint: [SIMD3<Int>: Int32] = [:]

    init(step: Double, origin: Vector3) {
        self.step = step
        self.origin = origin
    }

    /// The face of the cube of `subdivisions` lattice steps at `cell` on the `sign` side of `axis`, as
    /// subdivisions² quads facing outward.
    mutating func addFace(cell: SIMD3<Int>, axis: Int, sign: Int, subdivisions: Int) {
        // Tangents chosen so that u × v points along the outward normal.
        var (u, v) = ((axis + 1) % 3, (axis + 2) % 3)
        if sign < 0 { swap(&u, &v) }
        var base = cell
        if sign > 0 { base[axis] += subdivisions }
        for i in 0..<subdivisions { for j in 0..<subdivisions {
            var p = base
            p[u] += i
            p[v] += j
            var pu = p, puv = p, pv = p
            pu[u] += 1
            puv[u] += 1
            puv[v] += 1
            pv[v] += 1
            let (a, b, c, d) = (index(p), index(pu), index(puv), index(pv))
            mesh.triangles.append(SIMD3(a, b, c))
            mesh.triangles.append(SIMD3(a, c, d))
        } }
    }

    private mutating func index(_ point: SIMD3<Int>) -> Int32 {
        if let known = indexOfPoint[point] { return known }
        mesh.vertices.append(origin + Vector3(Double(point.x), Double(point.y), Double(point.z)) * step)
        indexOfPoint[point] = Int32(mesh.vertices.count - 1)
        return Int32(mesh.vertices.count - 1)
    }
}
