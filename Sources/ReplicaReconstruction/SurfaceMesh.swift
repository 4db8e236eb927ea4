import Foundation

/// A polygon mesh of triangles and quads over shared vertices: what Mesh Generation makes and texturing reads.
///
/// Faces wind counter-clockwise seen from outside the object, so their normals point out of it.
public struct SurfaceMesh: Sendable, Equatable {
    public var positions: [SIMD3<Float>] = []
    /// One unit normal per vertex, or none before `computeNormals()`.
    public var normals: [SIMD3<Float>] = []
    public var triangles: [SIMD3<UInt32>] = []
    public var quads: [SIMD4<UInt32>] = []

    public init(positions: [SIMD3<Float>] = [], triangles: [SIMD3<UInt32>] = [], quads: [SIMD4<UInt32>] = []) {
        self.positions = positions
        self.triangles = triangles
        self.quads = quads
    }

    /// Faces of any kind: what a polygon budget counts.
    public var polygonCount: Int { triangles.count + quads.count }

    /// Smooth vertex normals: each face's normal, weighted by its area, summed over the faces around a vertex.
    public mutating func computeNormals() {
        var sums = [SIMD3<Float>](repeating: .zero, count: positions.count)
        for t in triangles {
            let (a, b, c) = (positions[Int(t.x)], positions[Int(t.y)], positions[Int(t.z)])
            let n = cross(b - a, c - a)
            sums[Int(t.x)] += n
            sums[Int(t.y)] += n
            sums[Int(t.z)] += n
        }
        for q in quads {
            // Twice the vector area of the quad, from its diagonals.
            let n = cross(positions[Int(q.z)] - positions[Int(q.x)], positions[Int(q.w)] - positions[Int(q.y)])
            for index in [q.x, q.y, q.z, q.w] { sums[Int(index)] += n }
        }
        normals = sums.map { n in
            let length = (n * n).sum().squareRoot()
            return length > 0 ? n / length : SIMD3(0, 0, 1)
        }
    }

    /// The faces as triangles: each quad split along its shorter diagonal.
    public var triangulated: [SIMD3<UInt32>] {
        var result = triangles
        result.reserveCapacity(triangles.count + 2 * quads.count)
        for q in quads {
            let first = positions[Int(q.z)] - positions[Int(q.x)], second = positions[Int(q.w)] - positions[Int(q.y)]
            if (first * first).sum() <= (second * second).sum() {
                result += [SIMD3(q.x, q.y, q.z), SIMD3(q.x, q.z, q.w)]
            } else {
                result += [SIMD3(q.x, q.y, q.w), SIMD3(q.y, q.z, q.w)]
            }
        }
        return result
    }

    /// The volume the faces enclose, positive when they wind outwards; meaningful for a closed mesh.
    public var signedVolume: Double {
        triangulated.reduce(0) { total, t in
            let (a, b, c) = (SIMD3<Double>(positions[Int(t.x)]), SIMD3<Double>(positions[Int(t.y)]),
                             SIMD3<Double>(positions[Int(t.z)]))
            return total + (a.x * (b.y * c.z - b.z * c.y) - a.y * (b.x * c.z - b.z * c.x)
                            + a.z * (b.x * c.y - b.y * c.x)) / 6
        }
    }

    /// How the faces meet: edges with one face (a border), with more than two (not a manifold), and edges whose
    /// two faces run along them the same way (orientations that disagree).
    public struct Topology: Equatable, Sendable {
        public var edges = 0
        public var boundaryEdges = 0
        public var nonManifoldEdges = 0
        public var misorientedEdges = 0
        /// Closed and manifold: every edge has exactly two faces, wound oppositely along it.
        public var isWatertight: Bool {
            edges > 0 && boundaryEdges == 0 && nonManifoldEdges == 0 && misorientedEdges == 0
        }
    }

    public var topology: Topology {
        // Directed edges of every face; an edge's key is its lower vertex, then the higher.
        var uses: [UInt64: (forward: Int32, backward: Int32)] = [:]
        uses.reserveCapacity(3 * polygonCount / 2)
        func add(_ a: UInt32, _ b: UInt32) {
            let key = UInt64(min(a, b)) << 32 | UInt64(max(a, b))
            var entry = uses[key] ?? (0, 0)
            if a < b { entry.forward += 1 } else { entry.backward += 1 }
            uses[key] = entry
        }
        for t in triangles { add(t.x, t.y); add(t.y, t.z); add(t.z, t.x) }
        for q in quads { add(q.x, q.y); add(q.y, q.z); add(q.z, q.w); add(q.w, q.x) }
        var result = Topology()
        result.edges = uses.count
        for entry in uses.values {
            switch entry.forward + entry.backward {
            case 1: result.boundaryEdges += 1
            case 2: if entry.forward != 1 { result.misorientedEdges += 1 }
            default: result.nonManifoldEdges += 1
            }
        }
        return result
    }

    /// The mesh without the vertices no face uses, the others renumbered in their order.
    public func compacted() -> SurfaceMesh {
        var map = [UInt32](repeating: .max, count: positions.count)
        var result = SurfaceMesh()
        func index(_ old: UInt32) -> UInt32 {
            if map[Int(old)] == .max {
                map[Int(old)] = UInt32(result.positions.count)
                result.positions.append(positions[Int(old)])
                if !normals.isEmpty { result.normals.append(normals[Int(old)]) }
            }
            return map[Int(old)]
        }
        result.triangles = triangles.map { SIMD3(index($0.x), index($0.y), index($0.z)) }
        result.quads = quads.map { SIMD4(index($0.x), index($0.y), index($0.z), index($0.w)) }
        return result
    }

    // MARK: - PLY

    /// A binary little-endian PLY: `x y z` and, when computed, `nx ny nz` as floats per vertex; faces as a list
    /// of 3 or 4 vertex indices (uchar count, uint indices), triangles first.
    public func plyBytes() -> [UInt8] {
        precondition(normals.isEmpty || normals.count == positions.count, "one normal per vertex")
        var header = "ply\nformat binary_little_endian 1.0\ncomment written by Replica Link\n"
            + "element vertex \(positions.count)\nproperty float x\nproperty float y\nproperty float z\n"
        if !normals.isEmpty { header += "property float nx\nproperty float ny\nproperty float nz\n" }
        header += "element face \(polygonCount)\nproperty list uchar uint vertex_indices\nend_header\n"
        var bytes = Array(header.utf8)
        let vertexBytes = normals.isEmpty ? 12 : 24
        bytes.reserveCapacity(bytes.count + vertexBytes * positions.count + 13 * triangles.count + 17 * quads.count)
        func append(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
        for index in positions.indices {
            let p = positions[index]
            for value in [p.x, p.y, p.z] { append(value.bitPattern) }
            if !normals.isEmpty {
                let n = normals[index]
                for value in [n.x, n.y, n.z] { append(value.bitPattern) }
            }
        }
        for t in triangles { bytes.append(3); append(t.x); append(t.y); append(t.z) }
        for q in quads { bytes.append(4); append(q.x); append(q.y); append(q.z); append(q.w) }
        return bytes
    }

    /// Reads what `plyBytes()` wrote, with or without normals; any other layout, faces other than triangles and
    /// quads, an index past the vertices, or a file of the wrong length is refused with the reason.
    public init(plyBytes bytes: [UInt8]) throws(PLYFormatError) {
        let vertex = ["element vertex", "property float x", "property float y", "property float z"]
        let face = ["element face", "property list uchar uint vertex_indices"]
        let body: (offset: Int, counts: [Int])
        let hasNormals: Bool
        do {
            body = try PLYLayout.body(of: bytes, expecting: vertex + ["property float nx", "property float ny",
                                                                      "property float nz"] + face)
            hasNormals = true
        } catch {
            body = try PLYLayout.body(of: bytes, expecting: vertex + face)
            hasNormals = false
        }
        let (vertexCount, faceCount) = (body.counts[0], body.counts[1])
        let vertexBytes = hasNormals ? 24 : 12
        guard bytes.count - body.offset >= vertexBytes * vertexCount + 13 * faceCount else {
            throw PLYFormatError("the file ends before its \(vertexCount) vertices and \(faceCount) faces")
        }
        var failure: PLYFormatError?
        bytes.withUnsafeBytes { raw in
            var offset = body.offset
            func word() -> UInt32 {
                defer { offset += 4 }
                return UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            }
            func vector() -> SIMD3<Float> {
                SIMD3(Float(bitPattern: word()), Float(bitPattern: word()), Float(bitPattern: word()))
            }
            positions.reserveCapacity(vertexCount)
            for _ in 0..<vertexCount {
                positions.append(vector())
                if hasNormals { normals.append(vector()) }
            }
            for number in 0..<faceCount {
                guard offset < raw.count else { failure = PLYFormatError("the file ends at face \(number)"); return }
                let sides = Int(raw[offset])
                offset += 1
                guard sides == 3 || sides == 4, offset + 4 * sides <= raw.count else {
                    failure = PLYFormatError("face \(number) has \(sides) corners; only triangles and quads are read")
                    return
                }
                let corners = (0..<sides).map { _ in word() }
                guard corners.allSatisfy({ Int($0) < vertexCount }) else {
                    failure = PLYFormatError("face \(number) refers to a vertex past the \(vertexCount) there are")
                    return
                }
                if sides == 3 { triangles.append(SIMD3(corners[0], corners[1], corners[2])) }
                else { quads.append(SIMD4(corners[0], corners[1], corners[2], corners[3])) }
            }
            if offset != raw.count { failure = PLYFormatError("\(raw.count - offset) bytes follow the last face") }
        }
        if let failure { throw failure }
    }
}

@inline(__always)
func cross(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> SIMD3<Float> {
    SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}
