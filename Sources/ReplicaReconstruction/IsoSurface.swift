import Foundation

/// Marching cubes over an `ImplicitGrid`: the triangles of its level set, one vertex per grid edge the level
/// set crosses, shared by the cells around that edge.
///
/// The polygons of a cell are worked out from its faces rather than read from the classic 256-case table: on
/// each face the crossings are joined in pairs, then the pairs chained into closed loops. A face with all four
/// edges crossed is split by the value at its centre (the mean of its corners), which both cells that share the
/// face compute alike, so the surface has no cracks between cells and every edge has exactly two triangles
/// except where the supported region ends. Loops are fanned into triangles that wind counter-clockwise seen from
/// outside (from the lower values).
public enum IsoSurface {
    /// The level set of `grid` at its iso-value, in the cells `grid.supported` marks (all when it is empty).
    public static func extract(_ grid: ImplicitGrid) -> SurfaceMesh {
        let (nx, ny, nz) = (grid.nodes.x, grid.nodes.y, grid.nodes.z)
        let sy = nx, sz = nx * ny
        let iso = grid.isoValue
        let offsets = [0, 1, sy, sy + 1, sz, sz + 1, sz + sy, sz + sy + 1]
        var mesh = SurfaceMesh()
        var vertexOfEdge: [Int: UInt32] = [:]
        var cases: [Int: [[Int]]] = [:]
        let supported = grid.supported
        grid.values.withUnsafeBufferPointer { values in
            for k in 0..<(nz - 1) {
                for j in 0..<(ny - 1) {
                    for i in 0..<(nx - 1) {
                        let cell = i + j * sy + k * sz
                        if !supported.isEmpty, !supported[cell] { continue }
                        var mask = 0
                        for corner in 0..<8 where values[cell + offsets[corner]] > iso { mask |= 1 << corner }
                        guard mask != 0, mask != 255 else { continue }
                        var key = mask
                        for (face, corners) in CellFaces.faces.enumerated() {
                            let inside = corners.map { mask >> $0 & 1 }
                            // Ambiguous: the corners alternate inside and outside around the face.
                            guard inside[0] == inside[2], inside[1] == inside[3], inside[0] != inside[1]
                            else { continue }
                            let centre = corners.reduce(Float(0)) { $0 + values[cell + offsets[$1]] } / 4
                            if centre > iso { key |= 1 << (8 + face) }
                        }
                        let loops = cases[key] ?? CellFaces.loops(for: key)
                        cases[key] = loops
                        for loop in loops {
                            let ids = loop.map { edge -> UInt32 in
                                let (a, b) = CellFaces.edges[edge]
                                let global = (cell + offsets[a]) * 3 + CellFaces.axis(a, b)
                                if let known = vertexOfEdge[global] { return known }
                                let va = values[cell + offsets[a]], vb = values[cell + offsets[b]]
                                let t = min(max((iso - va) / (vb - va), 0), 1)
                                let pa = SIMD3<Float>(Float(i + (a & 1)), Float(j + (a >> 1 & 1)), Float(k + (a >> 2)))
                                let pb = SIMD3<Float>(Float(i + (b & 1)), Float(j + (b >> 1 & 1)), Float(k + (b >> 2)))
                                let id = UInt32(mesh.positions.count)
                                mesh.positions.append(grid.origin + grid.spacing * (pa + t * (pb - pa)))
                                vertexOfEdge[global] = id
                                return id
                            }
                            appendFan(of: loop, ids: ids, to: &mesh)
                        }
                    }
                }
            }
        }
        return mesh
    }

    /// Triangles of one loop, winding outwards. A diagonal between two crossings on the same face of the cell
    /// could be the neighbouring cell's diagonal too (only on a face whose four edges are crossed), and the edge
    /// would then have four triangles; so the fan's apex is a corner none of whose diagonals lies on a face, or
    /// failing that a new vertex at the loop's centre.
    private static func appendFan(of loop: [Int], ids: [UInt32], to mesh: inout SurfaceMesh) {
        let n = loop.count
        let apex = (0..<n).first { apex in
            (2..<max(2, n - 1)).allSatisfy { offset in !CellFaces.shareFace(loop[apex], loop[(apex + offset) % n]) }
        }
        if let apex {
            for offset in 1..<(n - 1) {
                mesh.triangles.append(SIMD3(ids[apex], ids[(apex + offset + 1) % n], ids[(apex + offset) % n]))
            }
            return
        }
        let centre = UInt32(mesh.positions.count)
        mesh.positions.append(ids.reduce(SIMD3<Float>.zero) { $0 + mesh.positions[Int($1)] } / Float(n))
        for position in 0..<n { mesh.triangles.append(SIMD3(centre, ids[(position + 1) % n], ids[position])) }
    }
}

/// The geometry of one cell: corners numbered x + 2y + 4z, its twelve edges, its six faces.
enum CellFaces {
    /// Each edge as (lower corner, upper corner).
    static let edges: [(Int, Int)] = {
        var result: [(Int, Int)] = []
        for corner in 0..<8 {
            for axis in 0..<3 where corner >> axis & 1 == 0 { result.append((corner, corner | 1 << axis)) }
        }
        return result
    }()

    static func axis(_ a: Int, _ b: Int) -> Int { (a ^ b).trailingZeroBitCount }

    /// Whether two of the cell's edges lie on one of its faces.
    static func shareFace(_ first: Int, _ second: Int) -> Bool { edgesShareFace[first * 12 + second] }

    private static let edgesShareFace: [Bool] = (0..<144).map { pair in
        let (a, b) = (edges[pair / 12], edges[pair % 12])
        return faces.contains { face in [a.0, a.1, b.0, b.1].allSatisfy(face.contains) }
    }

    static func edge(_ a: Int, _ b: Int) -> Int {
        let pair = (min(a, b), max(a, b))
        return edges.firstIndex { $0 == pair }!
    }

    /// Each face's corners in the order that runs counter-clockwise seen from outside the cell.
    static let faces: [[Int]] = {
        var result: [[Int]] = []
        for axis in 0..<3 {
            let (u, v) = ((axis + 1) % 3, (axis + 2) % 3)
            for side in 0..<2 {
                // Around the face in its (u, v) plane; that turns about +axis, outward for the upper side only.
                var cycle = [(0, 0), (1, 0), (1, 1), (0, 1)].map { side << axis | $0.0 << u | $0.1 << v }
                if side == 0 { cycle.reverse() }
                result.append(cycle)
            }
        }
        return result
    }()

    /// The closed loops of crossed edges of a cell: `key` holds the inside corners in its low 8 bits and, in bit
    /// 8 + face, whether an ambiguous face's centre is inside (its inside corners then join).
    static func loops(for key: Int) -> [[Int]] {
        let inside = { (corner: Int) in key >> corner & 1 == 1 }
        // On each face, a segment from a crossing where the walk around the face leaves the inside to the one
        // where it enters again: the neighbour sees the face the other way round, so its segment runs back.
        var next: [Int: Int] = [:]
        for (face, cycle) in faces.enumerated() {
            var crossings: [(edge: Int, leaves: Bool)] = []
            for position in 0..<4 {
                let (a, b) = (cycle[position], cycle[(position + 1) % 4])
                if inside(a) != inside(b) { crossings.append((edge(a, b), inside(a))) }
            }
            if crossings.count == 2 {
                let (start, end) = crossings[0].leaves ? (crossings[0], crossings[1]) : (crossings[1], crossings[0])
                next[start.edge] = end.edge
            } else if crossings.count == 4 {
                // Joined insides: each leaving crossing pairs with the entering one after it around the face;
                // separated: with the one before it.
                let joined = key >> (8 + face) & 1 == 1
                for position in 0..<4 where crossings[position].leaves {
                    let partner = crossings[(position + (joined ? 1 : 3)) % 4]
                    next[crossings[position].edge] = partner.edge
                }
            }
        }
        var loops: [[Int]] = []
        var unused = Set(next.keys)
        while let first = unused.min() {
            var loop: [Int] = []
            var edge = first
            repeat {
                loop.append(edge)
                unused.remove(edge)
                edge = next[edge]!
            } while edge != first
            loops.append(loop)
        }
        return loops
    }
}
