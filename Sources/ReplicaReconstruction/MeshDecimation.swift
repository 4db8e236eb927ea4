import CMeshOptimizer
import Foundation

extension SurfaceMesh {
    /// At most `target` triangles by quadric-error edge collapse (meshoptimizer's simplifier, which keeps borders
    /// where they are and refuses collapses that fold a face over), falling back on its cluster simplifier only
    /// when collapses alone cannot get under `ceiling` (a very small budget). The vertices kept are the mesh's
    /// own, so they stay on the surface. Normals are dropped; compute them again.
    public func simplified(toTriangles target: Int, ceiling: Int? = nil) -> SurfaceMesh {
        precondition(quads.isEmpty, "simplification works on triangles")
        guard triangles.count > target, target > 0 else { return self }
        // SIMD3 is padded to four lanes, so the index buffer is laid out afresh.
        var indices = [UInt32]()
        indices.reserveCapacity(3 * triangles.count)
        for t in triangles { indices += [t.x, t.y, t.z] }
        let stride = MemoryLayout<SIMD3<Float>>.stride
        var destination = [UInt32](repeating: 0, count: indices.count)
        var error: Float = 0
        var count = positions.withUnsafeBytes { raw in
            meshopt_simplify(&destination, indices, indices.count, raw.baseAddress!.assumingMemoryBound(to: Float.self),
                             positions.count, stride, 3 * target, 1, 0, &error)
        }
        if count / 3 > (ceiling ?? Int.max) {
            count = positions.withUnsafeBytes { raw in
                meshopt_simplifySloppy(&destination, indices, indices.count,
                                       raw.baseAddress!.assumingMemoryBound(to: Float.self), positions.count, stride,
                                       3 * target, 1, &error)
            }
        }
        var result = SurfaceMesh(positions: positions)
        result.triangles = (0..<(count / 3)).map {
            SIMD3(destination[3 * $0], destination[3 * $0 + 1], destination[3 * $0 + 2])
        }
        return result.compacted()
    }

    /// A mesh of quads only: neighbouring triangles paired into the best-shaped quads first (corners nearest
    /// right angles, the two halves nearly coplanar, taken best first), then every face split once, a quad into
    /// four and a leftover triangle into three, through its edges' midpoints and its centre. The new vertices
    /// are moved onto `surface` when given. Faces: 4 per pair and 3 per leftover triangle.
    public func quadrangulated(onto surface: ImplicitGrid? = nil) -> (mesh: SurfaceMesh, pairedShare: Double) {
        precondition(quads.isEmpty, "quadrangulation starts from triangles")
        let (pairs, single) = pairTriangles()
        var result = SurfaceMesh(positions: positions)
        var midpoints: [UInt64: UInt32] = [:]
        func add(_ point: SIMD3<Float>) -> UInt32 {
            result.positions.append(surface?.projected(point) ?? point)
            return UInt32(result.positions.count - 1)
        }
        func midpoint(_ a: UInt32, _ b: UInt32) -> UInt32 {
            let key = Self.edgeKey(a, b)
            if let known = midpoints[key] { return known }
            let id = add((positions[Int(a)] + positions[Int(b)]) / 2)
            midpoints[key] = id
            return id
        }
        for q in pairs {
            let corners = [q.x, q.y, q.z, q.w]
            let centre = add(corners.reduce(SIMD3<Float>.zero) { $0 + positions[Int($1)] } / 4)
            let mids = (0..<4).map { midpoint(corners[$0], corners[($0 + 1) % 4]) }
            for corner in 0..<4 {
                result.quads.append(SIMD4(corners[corner], mids[corner], centre, mids[(corner + 3) % 4]))
            }
        }
        for t in single {
            let corners = [t.x, t.y, t.z]
            let centre = add(corners.reduce(SIMD3<Float>.zero) { $0 + positions[Int($1)] } / 3)
            let mids = (0..<3).map { midpoint(corners[$0], corners[($0 + 1) % 3]) }
            for corner in 0..<3 {
                result.quads.append(SIMD4(corners[corner], mids[corner], centre, mids[(corner + 2) % 3]))
            }
        }
        if let surface { result.relax(onto: surface, iterations: 8) }
        let share = triangles.isEmpty ? 0 : Double(2 * pairs.count) / Double(triangles.count)
        return (result, share)
    }

    /// Evens out the faces: each vertex moved halfway towards the mean of its neighbours along edges, then back
    /// onto `surface`, `iterations` times. A split triangle's corners keep its angles, often far from square;
    /// this spreads them. Vertices on a border stay where they are.
    mutating func relax(onto surface: ImplicitGrid, iterations: Int) {
        var neighbours = [[UInt32]](repeating: [], count: positions.count)
        var border = [Bool](repeating: false, count: positions.count)
        var uses: [UInt64: Int] = [:]
        func link(_ a: UInt32, _ b: UInt32) {
            let key = Self.edgeKey(a, b)
            uses[key, default: 0] += 1
            if uses[key] == 1 { neighbours[Int(a)].append(b); neighbours[Int(b)].append(a) }
        }
        for q in quads { link(q.x, q.y); link(q.y, q.z); link(q.z, q.w); link(q.w, q.x) }
        for t in triangles { link(t.x, t.y); link(t.y, t.z); link(t.z, t.x) }
        for (key, count) in uses where count == 1 {
            border[Int(key >> 32)] = true
            border[Int(key & 0xffff_ffff)] = true
        }
        for _ in 0..<iterations {
            let current = positions
            for vertex in positions.indices where !border[vertex] && !neighbours[vertex].isEmpty {
                let mean = neighbours[vertex].reduce(SIMD3<Float>.zero) { $0 + current[Int($1)] }
                    / Float(neighbours[vertex].count)
                positions[vertex] = surface.projected(current[vertex] + 0.5 * (mean - current[vertex]))
            }
        }
    }

    /// Greedy matching of triangles across shared edges into quads, best shape first. A pair qualifies when
    /// its quad is convex with every corner within 45° of square and the halves' normals within 30°.
    func pairTriangles() -> (quads: [SIMD4<UInt32>], leftovers: [SIMD3<UInt32>]) {
        var owner: [UInt64: Int] = [:]
        owner.reserveCapacity(triangles.count * 3)
        for (index, t) in triangles.enumerated() {
            for (a, b) in Self.sides(t) { owner[Self.directedKey(a, b)] = index }
        }
        var candidates: [(score: Float, first: Int, second: Int, quad: SIMD4<UInt32>)] = []
        for (index, t) in triangles.enumerated() {
            for (a, b, c) in [(t.x, t.y, t.z), (t.y, t.z, t.x), (t.z, t.x, t.y)] where a < b {
                guard let other = owner[Self.directedKey(b, a)], other != index else { continue }
                let o = triangles[other]
                // The other triangle's corner opposite the shared edge.
                let d = o.x != a && o.x != b ? o.x : o.y != a && o.y != b ? o.y : o.z
                let quad = SIMD4(a, d, b, c)
                if let score = quadScore(quad) { candidates.append((score, index, other, quad)) }
            }
        }
        candidates.sort { $0.score < $1.score }
        var used = [Bool](repeating: false, count: triangles.count)
        var quads: [SIMD4<UInt32>] = []
        for candidate in candidates where !used[candidate.first] && !used[candidate.second] {
            used[candidate.first] = true
            used[candidate.second] = true
            quads.append(candidate.quad)
        }
        let leftovers = triangles.indices.filter { !used[$0] }.map { triangles[$0] }
        return (quads, leftovers)
    }

    /// How far a quad is from a flat square: its corners' largest departure from 90° plus the angle between its
    /// halves, in degrees; nil when it is not fit to be a quad.
    func quadScore(_ q: SIMD4<UInt32>) -> Float? {
        let p = [positions[Int(q.x)], positions[Int(q.y)], positions[Int(q.z)], positions[Int(q.w)]]
        var worst: Float = 0, sum: Float = 0
        for corner in 0..<4 {
            let u = p[(corner + 1) % 4] - p[corner], v = p[(corner + 3) % 4] - p[corner]
            let lengths = ((u * u).sum() * (v * v).sum()).squareRoot()
            guard lengths > 0 else { return nil }
            let angle = acos(max(-1, min(1, (u * v).sum() / lengths))) * 180 / .pi
            worst = max(worst, abs(angle - 90))
            sum += angle
        }
        // A reflex corner measures under 180° too; the corners then sum to less than a full turn.
        guard sum > 355 else { return nil }
        let n1 = cross(p[1] - p[0], p[2] - p[0]), n2 = cross(p[2] - p[0], p[3] - p[0])
        let lengths = ((n1 * n1).sum() * (n2 * n2).sum()).squareRoot()
        guard lengths > 0 else { return nil }
        let cosine = (n1 * n2).sum() / lengths
        // Convex and nearly flat: both halves face the same way, within 30°.
        guard worst < 45, cosine > 0.866 else { return nil }
        return worst + acos(min(1, cosine)) * 180 / .pi
    }
}
