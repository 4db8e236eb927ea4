import Foundation

/// Repairs of a triangle mesh after extraction: what `clean` removed and filled, for the stage's statistics.
public struct MeshCleanupReport: Equatable, Sendable {
    public var degenerateTriangles = 0
    /// Triangles dropped from edges that had more than two.
    public var nonManifoldTriangles = 0
    public var removedComponents = 0
    public var removedComponentTriangles = 0
    public var keptComponents = 0
    public var filledHoles = 0
    /// Border loops left open: larger than a small hole, so the data did not see a surface there.
    public var openHoles = 0
    /// Whether the faces had to be turned over to wind outwards (decided only for a closed mesh).
    public var flipped = false
}

extension SurfaceMesh {
    /// Cleans a triangle mesh: drops triangles that repeat a corner, keeps at most two triangles on an edge,
    /// removes pieces with fewer than `minimumComponentShare` of the largest piece's triangles, fills holes whose
    /// border has at most `maximumHoleEdges` edges, and turns the faces over if, closed, they enclose a negative
    /// volume.
    public mutating func clean(minimumComponentShare: Double = 0.01, maximumHoleEdges: Int = 100) -> MeshCleanupReport {
        precondition(quads.isEmpty, "cleaning works on triangles")
        var report = MeshCleanupReport()
        let before = triangles.count
        triangles.removeAll { $0.x == $0.y || $0.y == $0.z || $0.z == $0.x }
        report.degenerateTriangles = before - triangles.count
        report.nonManifoldTriangles = removeNonManifoldEdges()
        (report.keptComponents, report.removedComponents, report.removedComponentTriangles) =
            removeSmallComponents(minimumShare: minimumComponentShare)
        (report.filledHoles, report.openHoles) = fillHoles(maximumEdges: maximumHoleEdges)
        // Only a closed surface has an inside to measure; an open one keeps the winding it was made with.
        if topology.boundaryEdges == 0, signedVolume < 0 {
            triangles = triangles.map { SIMD3($0.x, $0.z, $0.y) }
            report.flipped = true
        }
        self = compacted()
        return report
    }

    /// An edge whichever way it is walked: its lower vertex, then the higher.
    @inline(__always) static func edgeKey(_ a: UInt32, _ b: UInt32) -> UInt64 {
        UInt64(min(a, b)) << 32 | UInt64(max(a, b))
    }

    /// An edge walked from `a` to `b`.
    @inline(__always) static func directedKey(_ a: UInt32, _ b: UInt32) -> UInt64 { UInt64(a) << 32 | UInt64(b) }

    /// The three edges of a triangle in its winding.
    @inline(__always) static func sides(_ t: SIMD3<UInt32>) -> [(UInt32, UInt32)] {
        [(t.x, t.y), (t.y, t.z), (t.z, t.x)]
    }

    /// Drops triangles that share all three corners with another (a fold two faces thick, which decimation can
    /// leave), then keeps the first two triangles of every edge and drops the others; returns how many went.
    mutating func removeNonManifoldEdges() -> Int {
        var copies: [SIMD3<UInt32>: Int] = [:]
        func sorted(_ t: SIMD3<UInt32>) -> SIMD3<UInt32> {
            let low = t.min(), high = t.max()
            return SIMD3(low, t.x ^ t.y ^ t.z ^ low ^ high, high)
        }
        for t in triangles { copies[sorted(t), default: 0] += 1 }
        let original = triangles.count
        if copies.count < triangles.count { triangles.removeAll { copies[sorted($0)]! > 1 } }
        var uses: [UInt64: UInt8] = [:]
        uses.reserveCapacity(triangles.count * 3 / 2)
        var keep = [Bool](repeating: true, count: triangles.count)
        for (index, t) in triangles.enumerated() {
            let keys = [Self.edgeKey(t.x, t.y), Self.edgeKey(t.y, t.z), Self.edgeKey(t.z, t.x)]
            if keys.contains(where: { (uses[$0] ?? 0) >= 2 }) { keep[index] = false; continue }
            for key in keys { uses[key, default: 0] += 1 }
        }
        triangles = triangles.indices.filter { keep[$0] }.map { triangles[$0] }
        // Two faces that run along their shared edge the same way: one of them is turned over (a fold). Both go,
        // and the hole they leave is filled with faces that agree with their neighbours.
        let directed = directedUses()
        triangles.removeAll { t in Self.sides(t).contains { directed[Self.directedKey($0.0, $0.1)]! > 1 } }
        return original - triangles.count
    }

    /// How many triangles walk each directed edge.
    func directedUses() -> [UInt64: Int] {
        var uses: [UInt64: Int] = [:]
        uses.reserveCapacity(triangles.count * 3)
        for t in triangles { for (a, b) in Self.sides(t) { uses[Self.directedKey(a, b), default: 0] += 1 } }
        return uses
    }

    /// Pieces joined through shared edges; drops those smaller than `minimumShare` of the largest.
    /// Returns the pieces kept, the pieces removed and their triangles.
    mutating func removeSmallComponents(minimumShare: Double) -> (Int, Int, Int) {
        guard !triangles.isEmpty else { return (0, 0, 0) }
        var parent = Array(0..<triangles.count)
        func root(_ x: Int) -> Int {
            var x = x
            while parent[x] != x { parent[x] = parent[parent[x]]; x = parent[x] }
            return x
        }
        var firstOnEdge: [UInt64: Int] = [:]
        firstOnEdge.reserveCapacity(triangles.count * 3 / 2)
        for (index, t) in triangles.enumerated() {
            for key in [Self.edgeKey(t.x, t.y), Self.edgeKey(t.y, t.z), Self.edgeKey(t.z, t.x)] {
                if let other = firstOnEdge[key] {
                    let (a, b) = (root(index), root(other))
                    if a != b { parent[a] = b }
                } else {
                    firstOnEdge[key] = index
                }
            }
        }
        var sizes: [Int: Int] = [:]
        for index in triangles.indices { sizes[root(index), default: 0] += 1 }
        let largest = sizes.values.max() ?? 0
        let small = Set(sizes.filter { Double($0.value) < minimumShare * Double(largest) }.keys)
        let removedTriangles = small.reduce(0) { $0 + sizes[$1]! }
        if !small.isEmpty { triangles = triangles.indices.filter { !small.contains(root($0)) }.map { triangles[$0] } }
        return (sizes.count - small.count, small.count, removedTriangles)
    }

    /// Closes border loops of at most `maximumEdges` edges with a fan around their centroid. Returns the holes
    /// filled and the loops left open.
    mutating func fillHoles(maximumEdges: Int) -> (Int, Int) {
        // Directed edges used once: a border. The hole runs along them backwards.
        let directed = directedUses()
        var holeNext: [UInt32: [UInt32]] = [:]
        for (edge, count) in directed where count == 1 {
            let (a, b) = (UInt32(edge >> 32), UInt32(edge & 0xffff_ffff))
            if directed[Self.directedKey(b, a)] == nil { holeNext[b, default: []].append(a) }
        }
        var filled = 0, open = 0
        while let start = holeNext.keys.min() {
            var loop: [UInt32] = [start]
            var visited: Set<UInt32> = [start]
            var current = start
            var closed = false, pinched = false
            while var choices = holeNext[current], let following = choices.popLast() {
                holeNext[current] = choices.isEmpty ? nil : choices
                if following == start { closed = true; break }
                // A border that passes a vertex twice (two holes touching there) is left as it is.
                if !visited.insert(following).inserted { pinched = true; break }
                loop.append(following)
                current = following
            }
            guard closed, !pinched, loop.count >= 3, loop.count <= maximumEdges else { open += 1; continue }
            let centroid = loop.reduce(SIMD3<Float>.zero) { $0 + positions[Int($1)] } / Float(loop.count)
            let centre = UInt32(positions.count)
            positions.append(centroid)
            if !normals.isEmpty { normals.append(SIMD3(0, 0, 1)) }
            for (position, vertex) in loop.enumerated() {
                triangles.append(SIMD3(vertex, loop[(position + 1) % loop.count], centre))
            }
            filled += 1
        }
        return (filled, open)
    }
}
