import Foundation
import ReplicaGeometry

// Baking: each texel of a chart stands for a point on the decimated mesh. Its colour is sampled from the
// chart's view, between the two pyramid levels that match the texel's footprint, plus a correction that levels
// the colour differences between views along seams (a least-squares offset per chart vertex, as in
// Lempitsky and Ivanov's and Waechter et al.'s seam levelling). The detail maps cast a ray from the point along
// the normal onto the undecimated surface: its normal (in tangent space), its height above the point, and its
// ambient occlusion. Each chart is baked in a buffer of its own size and copied into its page, so memory is
// one page per map at a time plus one chart.

/// The maps a texture can hold.
public enum BakedMap: String, CaseIterable, Sendable {
    case diffuse, normal, ambientOcclusion, displacement, roughness

    /// Bytes a texel: colour and normals in RGB, the rest in grey.
    public var channels: Int { self == .diffuse || self == .normal ? 3 : 1 }
}

/// The undecimated surface the detail maps are baked from.
public struct DetailSurface: Sendable {
    public var positions: [SIMD3<Float>]
    public var normals: [SIMD3<Float>]
    public var triangles: [SIMD3<UInt32>]
    public var bvh: TriangleBVH
    /// Per vertex, the share of its hemisphere open to the sky; empty until `computeAmbientOcclusion`.
    public var ambientOcclusion: [Float] = []

    public init(_ mesh: SurfaceMesh) {
        var mesh = mesh
        if mesh.normals.count != mesh.positions.count { mesh.computeNormals() }
        positions = mesh.positions
        normals = mesh.normals
        triangles = mesh.triangulated
        bvh = TriangleBVH(positions: positions, triangles: triangles)
    }

    /// The diagonal of the surface's bounding box.
    public var diagonal: Float {
        let lower = positions.reduce(SIMD3<Float>(repeating: .infinity)) { pointwiseMin($0, $1) }
        let upper = positions.reduce(SIMD3<Float>(repeating: -.infinity)) { pointwiseMax($0, $1) }
        return positions.isEmpty ? 0 : ((upper - lower) * (upper - lower)).sum().squareRoot()
    }

    /// Ambient occlusion per vertex: `rays` cosine-weighted directions over the normal's hemisphere (a
    /// stratified set, turned by a per-vertex angle), each open when it meets nothing within `reach`.
    public mutating func computeAmbientOcclusion(rays: Int = 32, reach: Float) {
        let count = positions.count
        var result = [Float](repeating: 1, count: count)
        let side = max(1, Int(Double(rays).squareRoot().rounded()))
        let offset = max(1e-6, reach * 1e-4)
        let chunks = max(1, min(64, count / 256))
        result.withUnsafeMutableBufferPointer { output in
            let output = output
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                for vertex in (chunk * count / chunks)..<((chunk + 1) * count / chunks) {
                    let n = normals[vertex], p = positions[vertex] + n * offset
                    let (t, b) = Self.basis(n)
                    let turn = Float(vertex &* 2_654_435_761 & 0xffff) / 65_536 * 2 * .pi
                    var open = 0
                    for i in 0..<side { for j in 0..<side {
                        let u = (Float(i) + 0.5) / Float(side), v = (Float(j) + 0.5) / Float(side)
                        let radius = u.squareRoot(), angle = 2 * .pi * v + turn
                        let direction = t * (radius * cos(angle)) + b * (radius * sin(angle)) + n * (1 - u).squareRoot()
                        if !bvh.hitsAnything(origin: p, direction: direction, maximum: reach) { open += 1 }
                    } }
                    output[vertex] = Float(open) / Float(side * side)
                }
            }
        }
        ambientOcclusion = result
    }

    static func basis(_ n: SIMD3<Float>) -> (SIMD3<Float>, SIMD3<Float>) {
        let helper: SIMD3<Float> = abs(n.x) < 0.9 ? SIMD3(1, 0, 0) : SIMD3(0, 1, 0)
        let t = normalize(cross(helper, n))
        return (t, cross(n, t))
    }
}

/// What seam levelling did: the mean colour difference (0...255, over RGB) between the views meeting at seam
/// vertices, before and after.
public struct SeamLevelling: Equatable, Sendable {
    public var seamVertices = 0
    public var meanDifferenceBefore: Double = 0
    public var meanDifferenceAfter: Double = 0
}

/// The textured surface of an atlas and the maps baked onto it.
public struct TextureBaker: @unchecked Sendable {
    public let mesh: SurfaceMesh
    public let atlas: TextureAtlas
    public let views: [TextureView]
    public private(set) var surface = TexturedSurface()
    public private(set) var levelling = SeamLevelling()
    /// Per chart, its first vertex in `surface`.
    private var firstVertex: [Int] = []
    /// Per face, its corners in `surface`.
    private var faceCorners: [[UInt32]] = []
    /// Per surface vertex: the colour offset of seam levelling (seen charts) or the filled colour (cells), 0...255.
    private var vertexColour: [SIMD3<Float>] = []
    /// Per surface vertex: the roughness estimate, 0...1; empty until asked for.
    private var vertexRoughness: [Float] = []
    /// Per surface vertex, its mesh vertex and its chart; per mesh vertex, its surface copies.
    private var meshVertex: [UInt32] = []
    private var chartOfVertex: [Int32] = []
    private var copies: [[Int]] = []
    /// Per mesh edge, the faces on it (one or two).
    private var facesOfEdge: [UInt64: [Int32]] = [:]
    private var chartOfFace: [Int32] = []
    /// The strip along a chart's border where local seam levelling blends towards the neighbour, in texels.
    public static let seamStrip = 16

    public init(mesh: SurfaceMesh, atlas: TextureAtlas, views: [TextureView]) {
        var mesh = mesh
        if mesh.normals.count != mesh.positions.count { mesh.computeNormals() }
        self.mesh = mesh
        self.atlas = atlas
        self.views = views
        buildSurface()
        computeTangents()
        levelSeams()
        fillUnseen()
    }

    // MARK: - The textured surface

    private mutating func buildSurface() {
        let size = Float(atlas.pageSize)
        faceCorners = [[UInt32]](repeating: [], count: mesh.polygonCount)
        var pages = [UInt8](repeating: 0, count: mesh.polygonCount)
        chartOfFace = [Int32](repeating: -1, count: mesh.polygonCount)
        copies = [[Int]](repeating: [], count: mesh.positions.count)
        for (number, chart) in atlas.charts.enumerated() {
            let base = surface.positions.count
            firstVertex.append(base)
            for (index, vertex) in chart.vertices.enumerated() {
                meshVertex.append(vertex)
                chartOfVertex.append(Int32(number))
                copies[Int(vertex)].append(base + index)
            }
            for face in chart.faces { chartOfFace[Int(face)] = Int32(number) }
            var local: [UInt32: Int] = [:]
            for (index, vertex) in chart.vertices.enumerated() {
                if chart.view >= 0 { local[vertex] = index }
                surface.positions.append(mesh.positions[Int(vertex)])
                surface.normals.append(mesh.normals[Int(vertex)])
                surface.uvs.append(chart.texel(index, padding: atlas.padding) / size)
            }
            var next = 0
            for face in chart.faces {
                let corners = mesh.corners(of: Int(face)).map { vertex -> UInt32 in
                    defer { next += 1 }
                    return UInt32(base + (chart.view >= 0 ? local[vertex]! : next))
                }
                faceCorners[Int(face)] = corners
                pages[Int(face)] = UInt8(chart.page)
            }
        }
        for face in 0..<mesh.polygonCount {
            let corners = mesh.corners(of: face)
            for k in corners.indices {
                facesOfEdge[SurfaceMesh.edgeKey(corners[k], corners[(k + 1) % corners.count]), default: []]
                    .append(Int32(face))
            }
        }
        for face in 0..<mesh.polygonCount {
            let c = faceCorners[face]
            if c.count == 3 { surface.triangles.append(SIMD3(c[0], c[1], c[2])) }
            else { surface.quads.append(SIMD4(c[0], c[1], c[2], c[3])) }
        }
        surface.pages = pages
    }

    /// The triangles of face `face` in `surface`'s vertices (a quad split as `FaceTriangles` splits it).
    private func triangles(of face: Int) -> [SIMD3<UInt32>] {
        let c = faceCorners[face]
        return c.count == 3 ? [SIMD3(c[0], c[1], c[2])] : [SIMD3(c[0], c[1], c[2]), SIMD3(c[0], c[2], c[3])]
    }

    /// Per vertex: the direction of +u on the surface, and the handedness that makes cross(n, t) · w point
    /// towards −v (up the page, as glTF's normal maps have +Y).
    private mutating func computeTangents() {
        var us = [SIMD3<Float>](repeating: .zero, count: surface.positions.count)
        var vs = us
        for face in 0..<mesh.polygonCount {
            for t in triangles(of: face) {
                let (a, b, c) = (Int(t.x), Int(t.y), Int(t.z))
                let e1 = surface.positions[b] - surface.positions[a], e2 = surface.positions[c] - surface.positions[a]
                let d1 = surface.uvs[b] - surface.uvs[a], d2 = surface.uvs[c] - surface.uvs[a]
                let determinant = d1.x * d2.y - d2.x * d1.y
                guard abs(determinant) > 1e-20 else { continue }
                let alongU = (e1 * d2.y - e2 * d1.y) / determinant, alongV = (e2 * d1.x - e1 * d2.x) / determinant
                for corner in [a, b, c] { us[corner] += alongU; vs[corner] += alongV }
            }
        }
        surface.tangents = surface.normals.indices.map { index in
            let n = surface.normals[index]
            var t = us[index] - n * dot(n, us[index])
            if dot(t, t) < 1e-24 { t = DetailSurface.basis(n).0 }
            t = normalize(t)
            let w: Float = dot(cross(n, t), -vs[index]) < 0 ? -1 : 1
            return SIMD4(t.x, t.y, t.z, w)
        }
    }

    // MARK: - Colour

    /// The texel footprint's pyramid position: a level and the share of the next one.
    private func pyramid(scale: Float, levels: Int) -> (Int, Float) {
        let footprint = max(0, log2(1 / max(scale, 1e-6)))
        let level = min(levels - 1, Int(footprint))
        return (level, level + 1 < levels ? footprint - Float(level) : 0)
    }

    /// The colour (0...255) of view `view` at `pixel` (level-0 coordinates), between two pyramid levels.
    @inline(__always)
    private func colour(_ view: TextureView, _ pixel: SIMD2<Float>, level: Int, blend: Float) -> SIMD3<Float> {
        let fine = Self.bilinear(view.levels[level], pixel / Float(1 << level))
        guard blend > 0 else { return fine }
        let coarse = Self.bilinear(view.levels[level + 1], pixel / Float(1 << (level + 1)))
        return fine + (coarse - fine) * blend
    }

    static func bilinear(_ image: ColourImage, _ at: SIMD2<Float>) -> SIMD3<Float> {
        let width = image.width, height = image.height
        let x = min(max(at.x - 0.5, 0), Float(width - 1)), y = min(max(at.y - 0.5, 0), Float(height - 1))
        let x0 = min(Int(x), width - 1), y0 = min(Int(y), height - 1)
        let x1 = min(x0 + 1, width - 1), y1 = min(y0 + 1, height - 1)
        let fx = x - Float(x0), fy = y - Float(y0)
        return image.rgb.withUnsafeBufferPointer { rgb in
            func texel(_ px: Int, _ py: Int) -> SIMD3<Float> {
                let o = 3 * (py * width + px)
                return SIMD3(Float(rgb[o]), Float(rgb[o + 1]), Float(rgb[o + 2]))
            }
            let top = texel(x0, y0) + (texel(x1, y0) - texel(x0, y0)) * fx
            let bottom = texel(x0, y1) + (texel(x1, y1) - texel(x0, y1)) * fx
            return top + (bottom - top) * fy
        }
    }

    /// Each vertex's colour in its chart's view, for levelling: the mean of samples at the vertex and a quarter
    /// of the way along each of its edges in the chart, at the texels' pyramid level, so that a seam compares
    /// the views' colours there rather than one pixel's noise, and never reaches past the chart into what the
    /// view shows beside it.
    private func seamColours(chart: TextureChart, number: Int) -> [SIMD3<Float>] {
        let view = views[Int(chart.view)]
        let (level, blend) = pyramid(scale: chart.scale, levels: view.levels.count)
        var sums = chart.pixels.map { colour(view, $0, level: level, blend: blend) }
        var counts = [Float](repeating: 1, count: chart.pixels.count)
        let base = firstVertex[number]
        for face in chart.faces {
            let corners = faceCorners[Int(face)].map { Int($0) - base }
            for k in corners.indices {
                let (a, b) = (corners[k], corners[(k + 1) % corners.count])
                let (pa, pb) = (chart.pixels[a], chart.pixels[b])
                // Each edge is met from both its faces; both samples count, as a weight for the edge.
                sums[a] += colour(view, pa + (pb - pa) * 0.25, level: level, blend: blend)
                sums[b] += colour(view, pb + (pa - pb) * 0.25, level: level, blend: blend)
                counts[a] += 1
                counts[b] += 1
            }
        }
        return zip(sums, counts).map { $0 / $1 }
    }

    /// Global seam levelling: an offset per vertex of the seen charts, least squares over (a) the offset
    /// colours of the charts meeting at a mesh vertex agreeing and (b) offsets of neighbours in a chart
    /// agreeing, a tenth as strongly; solved by conjugate gradients per channel.
    private mutating func levelSeams() {
        let count = surface.positions.count
        vertexColour = [SIMD3<Float>](repeating: .zero, count: count)
        var sampled = [SIMD3<Float>](repeating: .zero, count: count)
        for (number, chart) in atlas.charts.enumerated() where chart.view >= 0 {
            for (index, value) in seamColours(chart: chart, number: number).enumerated() {
                sampled[firstVertex[number] + index] = value
            }
        }
        let copies = self.copies.map { group in group.filter { atlas.charts[Int(chartOfVertex[$0])].view >= 0 } }
        var matrix = SparseSymmetric(count: count)
        var rhs = [SIMD3<Double>](repeating: .zero, count: count)
        var differences = 0.0
        for group in copies where group.count > 1 {
            levelling.seamVertices += 1
            for i in group.indices { for j in group.indices where j > i {
                let (a, b) = (group[i], group[j])
                matrix.add(a, b, weight: 1)
                let gap = SIMD3<Double>(sampled[b] - sampled[a])
                rhs[a] += gap
                rhs[b] -= gap
                let pairs = Double(group.count * (group.count - 1) / 2)
                differences += Double(meanAbsolute(sampled[b] - sampled[a])) / pairs
            } }
        }
        guard levelling.seamVertices > 0 else { return }
        levelling.meanDifferenceBefore = differences / Double(levelling.seamVertices)
        for chart in atlas.charts where chart.view >= 0 {
            for face in chart.faces {
                let corners = faceCorners[Int(face)]
                for k in corners.indices {
                    let (a, b) = (Int(corners[k]), Int(corners[(k + 1) % corners.count]))
                    // Each interior edge is met twice, once from each face: 0.05 each.
                    matrix.add(a, b, weight: 0.05)
                }
            }
        }
        for vertex in 0..<count { matrix.diagonal[vertex] += 1e-4 }
        let solution = matrix.solve(rhs, iterations: 400, tolerance: 1e-6)
        vertexColour = solution.map { SIMD3<Float>($0) }
        var after = 0.0
        for group in copies where group.count > 1 {
            for i in group.indices { for j in group.indices where j > i {
                let (a, b) = (group[i], group[j])
                let gap = (sampled[b] + vertexColour[b]) - (sampled[a] + vertexColour[a])
                after += Double(meanAbsolute(gap)) / Double(group.count * (group.count - 1) / 2)
            } }
        }
        levelling.meanDifferenceAfter = after / Double(levelling.seamVertices)
    }

    /// Colours for the cells of unseen faces: each mesh vertex a seen chart has takes its levelled colour there;
    /// the others take their neighbours', spread outwards in breadth-first order and then smoothed.
    private mutating func fillUnseen() {
        guard atlas.charts.contains(where: { $0.view < 0 }) else { return }
        var known = [Bool](repeating: false, count: mesh.positions.count)
        var colours = [SIMD3<Float>](repeating: .zero, count: mesh.positions.count)
        var counts = [Float](repeating: 0, count: mesh.positions.count)
        for (number, chart) in atlas.charts.enumerated() where chart.view >= 0 {
            let view = views[Int(chart.view)]
            let (level, blend) = pyramid(scale: chart.scale, levels: view.levels.count)
            for (index, vertex) in chart.vertices.enumerated() {
                let c = colour(view, chart.pixels[index], level: level, blend: blend)
                colours[Int(vertex)] += c + vertexColour[firstVertex[number] + index]
                counts[Int(vertex)] += 1
            }
        }
        var neighbours = [[UInt32]](repeating: [], count: mesh.positions.count)
        for face in 0..<mesh.polygonCount {
            let c = mesh.corners(of: face)
            for k in c.indices { neighbours[Int(c[k])].append(c[(k + 1) % c.count]) }
            for k in c.indices { neighbours[Int(c[(k + 1) % c.count])].append(c[k]) }
        }
        var queue: [Int] = []
        for vertex in colours.indices where counts[vertex] > 0 {
            colours[vertex] /= counts[vertex]
            known[vertex] = true
            queue.append(vertex)
        }
        var filled = known
        var head = 0
        while head < queue.count {
            let vertex = queue[head]
            head += 1
            for n in neighbours[vertex] where !filled[Int(n)] {
                filled[Int(n)] = true
                var sum = SIMD3<Float>.zero, seen: Float = 0
                for m in neighbours[Int(n)] where filled[Int(m)] && m != n {
                    sum += colours[Int(m)]; seen += 1
                }
                colours[Int(n)] = seen > 0 ? sum / seen : colours[vertex]
                queue.append(Int(n))
            }
        }
        let unknown = colours.indices.filter { !known[$0] && filled[$0] }
        for _ in 0..<30 {
            for vertex in unknown {
                var sum = SIMD3<Float>.zero
                for n in neighbours[vertex] { sum += colours[Int(n)] }
                colours[vertex] = sum / Float(max(1, neighbours[vertex].count))
            }
        }
        for vertex in colours.indices where !filled[vertex] { colours[vertex] = SIMD3(repeating: 128) }
        for (number, chart) in atlas.charts.enumerated() where chart.view < 0 {
            for (index, vertex) in chart.vertices.enumerated() {
                vertexColour[firstVertex[number] + index] = colours[Int(vertex)]
            }
        }
    }

    // MARK: - Baking

    /// A roughness estimate per vertex, from how much a face's brightness changes between the views that see
    /// it: a glossy surface shows highlights in some views and not in others.
    public mutating func estimateRoughness(labeling: TextureLabeling) {
        var faceValue = [Float](repeating: 1, count: mesh.polygonCount)
        for face in 0..<mesh.polygonCount where labeling.candidates[face].count > 1 {
            let centre = mesh.centre(of: face)
            var values: [Float] = []
            for candidate in labeling.candidates[face] {
                let view = views[Int(candidate.view)], p = view.projector
                let level = min(view.levels.count - 1, 1)
                let c = colour(view, p.pixel(p.camera(centre)), level: level, blend: 0)
                values.append(0.299 * c.x + 0.587 * c.y + 0.114 * c.z)
            }
            let mean = values.reduce(0, +) / Float(values.count)
            guard mean > 1 else { continue }
            let deviation = (values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(values.count)).squareRoot()
            faceValue[face] = min(1, max(0.2, 1 - 2 * deviation / mean))
        }
        var sums = [Float](repeating: 0, count: mesh.positions.count), counts = sums
        for face in 0..<mesh.polygonCount {
            for vertex in mesh.corners(of: face) { sums[Int(vertex)] += faceValue[face]; counts[Int(vertex)] += 1 }
        }
        vertexRoughness = [Float](repeating: 1, count: surface.positions.count)
        for (number, chart) in atlas.charts.enumerated() {
            for (index, vertex) in chart.vertices.enumerated() {
                vertexRoughness[firstVertex[number] + index] = sums[Int(vertex)] / max(1, counts[Int(vertex)])
            }
        }
    }

    /// Maps over every page: per map, per page, `channels` bytes a texel, row-major, `pageSize²` texels.
    /// The detail maps need `detail` (its ambient occlusion computed for that map) and are best baked
    /// together, since they share one ray cast per texel; `displacementScale` is the height (in scene units)
    /// that byte 255 stands for, byte 128 being the surface itself.
    public func bake(_ maps: [BakedMap], detail: DetailSurface? = nil,
                     displacementScale: Float = 1) -> [BakedMap: [[UInt8]]] {
        precondition(maps.allSatisfy { $0 == .diffuse || $0 == .roughness } || detail != nil,
                     "the detail maps need the detail surface")
        precondition(!maps.contains(.roughness) || !vertexRoughness.isEmpty, "estimateRoughness first")
        let reach = (detail?.diagonal ?? 0) * 0.02
        var result: [BakedMap: [[UInt8]]] = [:]
        for page in 0..<atlas.pageCount {
            for (map, bytes) in zip(maps, bakePage(page, maps: maps, detail: detail, reach: reach,
                                                   displacementScale: displacementScale)) {
                result[map, default: []].append(bytes)
            }
        }
        return result
    }

    /// One page of each map. The pages are made inside one another's initialisers, so that every page's memory
    /// stays valid while the charts write their disjoint boxes of all of them from several threads.
    private func bakePage(_ page: Int, maps: [BakedMap], detail: DetailSurface?, reach: Float,
                          displacementScale: Float, targets: [UnsafeMutableBufferPointer<UInt8>] = []) -> [[UInt8]] {
        let side = atlas.pageSize
        guard targets.count < maps.count else {
            let charts = atlas.charts.indices.filter { atlas.charts[$0].page == page }
            DispatchQueue.concurrentPerform(iterations: charts.count) { k in
                let chart = atlas.charts[charts[k]]
                let texels = bakeChart(chart, maps: maps, detail: detail, reach: reach,
                                       displacementScale: displacementScale)
                for (index, map) in maps.enumerated() {
                    let channels = map.channels, source = texels[index], target = targets[index]
                    for y in 0..<chart.size.y {
                        let row = (chart.origin.y + y) * side + chart.origin.x
                        for x in 0..<chart.size.x {
                            for c in 0..<channels {
                                target[(row + x) * channels + c] = source[(y * chart.size.x + x) * channels + c]
                            }
                        }
                    }
                }
            }
            return []
        }
        let map = maps[targets.count], channels = map.channels
        let background: [UInt8] = map == .normal ? [128, 128, 255] : map == .displacement ? [128]
            : map == .diffuse ? [0, 0, 0] : [255]
        var inner: [[UInt8]] = []
        let bytes = [UInt8](unsafeUninitializedCapacity: side * side * channels) { buffer, initialised in
            for i in 0..<(side * side) { for c in 0..<channels { buffer[i * channels + c] = background[c] } }
            initialised = side * side * channels
            inner = bakePage(page, maps: maps, detail: detail, reach: reach, displacementScale: displacementScale,
                             targets: targets + [buffer])
        }
        return [bytes] + inner
    }

    /// One chart's texels per map, padding included: the faces' texels baked, the padding dilated from them.
    private func bakeChart(_ chart: TextureChart, maps: [BakedMap], detail: DetailSurface?, reach: Float,
                           displacementScale: Float) -> [[UInt8]] {
        let width = chart.size.x, height = chart.size.y
        var values = maps.map { [Float](repeating: 0, count: width * height * $0.channels) }
        var covered = [Bool](repeating: false, count: width * height)
        let originOffset = SIMD2<Float>(Float(chart.origin.x), Float(chart.origin.y))
        let view = chart.view >= 0 ? views[Int(chart.view)] : nil
        let projector = view?.projector
        let (level, blend) = view.map { pyramid(scale: chart.scale, levels: $0.levels.count) } ?? (0, 0)
        let size = Float(atlas.pageSize)
        let needsRays = maps.contains { $0 == .normal || $0 == .ambientOcclusion || $0 == .displacement }
        // For local seam levelling: per texel, the triangle it lies in (an index into `records`) and its weights.
        let levelsLocally = view != nil && maps.contains(.diffuse)
        var texelTriangle = [Int32](repeating: -1, count: levelsLocally ? width * height : 0)
        var texelWeights = [SIMD3<Float>](repeating: .zero, count: levelsLocally ? width * height : 0)
        var records: [(face: Int32, corners: SIMD3<UInt32>)] = []
        for face in chart.faces {
            for t in triangles(of: Int(face)) {
                let record = Int32(records.count)
                if levelsLocally { records.append((face, t)) }
                let corners = [Int(t.x), Int(t.y), Int(t.z)]
                let uv = corners.map { surface.uvs[$0] * size - originOffset }
                let area = cross2(uv[1] - uv[0], uv[2] - uv[0])
                var touched = false
                func shade(_ texel: Int, _ w: SIMD3<Float>) {
                    touched = true
                    func mix<T: SIMD>(_ at: [T]) -> T where T.Scalar == Float {
                        at[corners[0]] * w.x + at[corners[1]] * w.y + at[corners[2]] * w.z
                    }
                    let point = mix(surface.positions)
                    let normal = normalize(mix(surface.normals))
                    let hit = needsRays ? Self.nearestSurface(detail!, point, normal, reach: reach) : nil
                    for (index, map) in maps.enumerated() {
                        let offset = texel * map.channels
                        switch map {
                        case .diffuse:
                            var c = mix(vertexColour)
                            if let view, let projector {
                                c += colour(view, projector.pixel(projector.camera(point)), level: level,
                                            blend: blend)
                            }
                            values[index][offset] = c.x
                            values[index][offset + 1] = c.y
                            values[index][offset + 2] = c.z
                        case .roughness:
                            values[index][offset] = 255 * (vertexRoughness[corners[0]] * w.x
                                + vertexRoughness[corners[1]] * w.y + vertexRoughness[corners[2]] * w.z)
                        case .normal:
                            let tangent4 = mix(surface.tangents)
                            var tangent = SIMD3(tangent4.x, tangent4.y, tangent4.z)
                            tangent = normalize(tangent - normal * dot(normal, tangent))
                            let bitangent = cross(normal, tangent) * (tangent4.w < 0 ? -1 : 1)
                            let n = hit.map { Self.normal(detail!, $0.hit) } ?? normal
                            let encoded = (SIMD3(dot(n, tangent), dot(n, bitangent), dot(n, normal)) * 0.5 + 0.5) * 255
                            values[index][offset] = encoded.x
                            values[index][offset + 1] = encoded.y
                            values[index][offset + 2] = encoded.z
                        case .ambientOcclusion:
                            values[index][offset] = 255 * (hit.map { Self.occlusion(detail!, $0.hit) } ?? 1)
                        case .displacement:
                            let height = hit?.height ?? 0
                            values[index][offset] = 128 + 127 * min(1, max(-1, height / max(displacementScale, 1e-12)))
                        }
                    }
                    covered[texel] = true
                    if levelsLocally {
                        texelTriangle[texel] = record
                        texelWeights[texel] = w
                    }
                }
                if abs(area) > 1e-12 {
                    TextureLabeling.rasterise(uv[0], uv[1], uv[2], 1, 1, 1, width: width, height: height) { texel, _ in
                        let p = SIMD2<Float>(Float(texel % width) + 0.5, Float(texel / width) + 0.5)
                        let wa = cross2(uv[1] - p, uv[2] - p) / area, wb = cross2(uv[2] - p, uv[0] - p) / area
                        shade(texel, SIMD3(wa, wb, 1 - wa - wb))
                    }
                }
                // A sliver between texel centres still gets the texel its centre falls in, unless another face
                // has it: otherwise nothing would be baked where a renderer samples it.
                if !touched {
                    let centre = (uv[0] + uv[1] + uv[2]) / 3
                    let x = min(width - 1, max(0, Int(centre.x))), y = min(height - 1, max(0, Int(centre.y)))
                    if !covered[y * width + x] { shade(y * width + x, SIMD3(repeating: 1.0 / 3)) }
                }
            }
        }
        if levelsLocally, let index = maps.firstIndex(of: .diffuse) {
            levelLocally(&values[index], chart: chart, covered: covered, width: width, height: height,
                         texelTriangle: texelTriangle, texelWeights: texelWeights, records: records,
                         originOffset: originOffset)
        }
        var grown = covered
        for (index, map) in maps.enumerated() {
            grown = covered
            Self.dilate(&values[index], covered: &grown, width: width, height: height, channels: map.channels,
                        steps: atlas.padding + 1)
        }
        return values.map { $0.map { UInt8(min(255, max(0, $0.rounded()))) } }
    }

    /// Local seam levelling (Poisson editing of a strip along the chart's border, as Waechter et al. do it):
    /// each border texel is pulled to the mean of its own colour and the neighbouring chart's at the same
    /// point, and the correction fades harmonically to nothing `seamStrip` texels inside, keeping the texture's
    /// own gradients.
    private func levelLocally(_ colours: inout [Float], chart: TextureChart, covered: [Bool], width: Int,
                              height: Int, texelTriangle: [Int32], texelWeights: [SIMD3<Float>],
                              records: [(face: Int32, corners: SIMD3<UInt32>)], originOffset: SIMD2<Float>) {
        let count = width * height
        // Distance in texels from the border, within the covered texels, up to the strip's width.
        var distance = [Int32](repeating: Int32.max, count: count)
        var queue: [Int] = []
        for texel in 0..<count where covered[texel] {
            let x = texel % width, y = texel / width
            let border = x == 0 || y == 0 || x == width - 1 || y == height - 1 || !covered[texel - 1]
                || !covered[texel + 1] || !covered[texel - width] || !covered[texel + width]
            if border { distance[texel] = 0; queue.append(texel) }
        }
        var head = 0
        while head < queue.count {
            let texel = queue[head]
            head += 1
            guard distance[texel] < Int32(Self.seamStrip) else { continue }
            let x = texel % width
            for next in [x > 0 ? texel - 1 : -1, x < width - 1 ? texel + 1 : -1, texel - width, texel + width]
            where next >= 0 && next < count && covered[next] && distance[next] == Int32.max {
                distance[next] = distance[texel] + 1
                queue.append(next)
            }
        }
        // The correction wanted at each border texel: half-way to the neighbouring chart's colour there.
        var delta = [SIMD3<Float>](repeating: .zero, count: count)
        var fixed = [Bool](repeating: true, count: count)
        let size = Float(atlas.pageSize)
        for texel in 0..<count where covered[texel] && distance[texel] < Int32(Self.seamStrip) {
            fixed[texel] = false
            guard distance[texel] == 0, texelTriangle[texel] >= 0 else { continue }
            let record = records[Int(texelTriangle[texel])]
            let w = texelWeights[texel]
            let corners = [Int(record.corners.x), Int(record.corners.y), Int(record.corners.z)]
            let p = SIMD2<Float>(Float(texel % width) + 0.5, Float(texel / width) + 0.5)
            let uv = corners.map { surface.uvs[$0] * size - originOffset }
            // The nearest edge of the triangle that leads into another chart.
            var best: (distance: Float, other: Int32, a: Int, b: Int, along: Float)?
            for k in 0..<3 {
                let (i, j) = (corners[k], corners[(k + 1) % 3])
                let key = SurfaceMesh.edgeKey(meshVertex[i], meshVertex[j])
                guard let faces = facesOfEdge[key], faces.count == 2 else { continue }
                let other = faces[0] == record.face ? faces[1] : faces[0]
                let otherChart = chartOfFace[Int(other)]
                guard otherChart != chartOfVertex[i], atlas.charts[Int(otherChart)].view >= 0 else { continue }
                let edge = uv[(k + 1) % 3] - uv[k]
                let along = min(1, max(0, ((p - uv[k]) * edge).sum() / max(1e-12, (edge * edge).sum())))
                let gap = p - (uv[k] + edge * along)
                let d = (gap * gap).sum()
                if best == nil || d < best!.distance { best = (d, otherChart, i, j, along) }
            }
            guard let best else { continue }
            let other = atlas.charts[Int(best.other)]
            let otherView = views[Int(other.view)], projector = otherView.projector
            let point = surface.positions[corners[0]] * w.x + surface.positions[corners[1]] * w.y
                + surface.positions[corners[2]] * w.z
            let (level, blend) = pyramid(scale: other.scale, levels: otherView.levels.count)
            var theirs = colour(otherView, projector.pixel(projector.camera(point)), level: level, blend: blend)
            // Their global correction along the shared edge, from their copies of its two vertices.
            func correction(_ vertex: Int) -> SIMD3<Float> {
                copies[Int(meshVertex[vertex])].first { chartOfVertex[$0] == best.other }.map { vertexColour[$0] }
                    ?? .zero
            }
            theirs += correction(best.a) * (1 - best.along) + correction(best.b) * best.along
            let mine = SIMD3(colours[3 * texel], colours[3 * texel + 1], colours[3 * texel + 2])
            delta[texel] = (theirs - mine) / 2
            fixed[texel] = true
        }
        // Laplace's equation for the correction inside the strip, by over-relaxed Gauss–Seidel; texels past the
        // strip and outside the chart stay at zero, border texels at their wanted value.
        let strip = (0..<count).filter { !fixed[$0] }
        guard !strip.isEmpty else { return }
        for _ in 0..<(4 * Self.seamStrip) {
            for texel in strip {
                let x = texel % width
                var sum = SIMD3<Float>.zero, n: Float = 0
                for next in [x > 0 ? texel - 1 : -1, x < width - 1 ? texel + 1 : -1, texel - width, texel + width]
                where next >= 0 && next < count && covered[next] {
                    sum += delta[next]; n += 1
                }
                guard n > 0 else { continue }
                delta[texel] += 1.7 * (sum / n - delta[texel])
            }
        }
        for texel in 0..<count where covered[texel] && distance[texel] < Int32(Self.seamStrip) {
            colours[3 * texel] += delta[texel].x
            colours[3 * texel + 1] += delta[texel].y
            colours[3 * texel + 2] += delta[texel].z
        }
    }

    /// The undecimated surface nearest `point` along ±`normal` within `reach`: the hit and its signed height.
    static func nearestSurface(_ detail: DetailSurface, _ point: SIMD3<Float>, _ normal: SIMD3<Float>,
                               reach: Float) -> (hit: TriangleBVH.Hit, height: Float)? {
        let outwards = detail.bvh.nearestHit(origin: point, direction: normal, maximum: reach)
        let inwards = detail.bvh.nearestHit(origin: point, direction: -normal, maximum: outwards?.distance ?? reach)
        if let inwards { return (inwards, -inwards.distance) }
        return outwards.map { ($0, $0.distance) }
    }

    private static func normal(_ detail: DetailSurface, _ hit: TriangleBVH.Hit) -> SIMD3<Float> {
        let t = detail.triangles[hit.triangle]
        let n = detail.normals[Int(t.x)] * (1 - hit.u - hit.v) + detail.normals[Int(t.y)] * hit.u
            + detail.normals[Int(t.z)] * hit.v
        return normalize(n)
    }

    private static func occlusion(_ detail: DetailSurface, _ hit: TriangleBVH.Hit) -> Float {
        guard !detail.ambientOcclusion.isEmpty else { return 1 }
        let t = detail.triangles[hit.triangle], ao = detail.ambientOcclusion
        return ao[Int(t.x)] * (1 - hit.u - hit.v) + ao[Int(t.y)] * hit.u + ao[Int(t.z)] * hit.v
    }

    /// Grows the covered texels outwards `steps` times, each new texel the mean of its covered neighbours.
    static func dilate(_ values: inout [Float], covered: inout [Bool], width: Int, height: Int, channels: Int,
                       steps: Int) {
        let offsets = [(-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, -1), (-1, 1), (1, 1)]
        for _ in 0..<steps {
            var grown: [(Int, SIMD3<Float>)] = []
            for y in 0..<height { for x in 0..<width where !covered[y * width + x] {
                var sum = SIMD3<Float>.zero, count: Float = 0
                for (dx, dy) in offsets {
                    let nx = x + dx, ny = y + dy
                    guard nx >= 0, ny >= 0, nx < width, ny < height, covered[ny * width + nx] else { continue }
                    let o = (ny * width + nx) * channels
                    sum += channels == 3 ? SIMD3(values[o], values[o + 1], values[o + 2]) : SIMD3(values[o], 0, 0)
                    count += 1
                }
                if count > 0 { grown.append((y * width + x, sum / count)) }
            } }
            if grown.isEmpty { return }
            for (texel, value) in grown {
                covered[texel] = true
                for c in 0..<channels { values[texel * channels + c] = value[c] }
            }
        }
    }
}

/// A sparse symmetric matrix as a diagonal and neighbour lists, for the levelling system.
struct SparseSymmetric {
    var diagonal: [Double]
    var neighbours: [[(Int, Double)]]

    init(count: Int) {
        diagonal = [Double](repeating: 0, count: count)
        neighbours = [[(Int, Double)]](repeating: [], count: count)
    }

    /// Adds weight · (x_a − x_b)² to the quadratic form.
    mutating func add(_ a: Int, _ b: Int, weight: Double) {
        guard a != b else { return }
        diagonal[a] += weight
        diagonal[b] += weight
        neighbours[a].append((b, -weight))
        neighbours[b].append((a, -weight))
    }

    func multiply(_ x: [SIMD3<Double>]) -> [SIMD3<Double>] {
        x.indices.map { i in
            var sum = x[i] * diagonal[i]
            for (j, w) in neighbours[i] { sum += x[j] * w }
            return sum
        }
    }

    /// Jacobi-preconditioned conjugate gradients, the three channels at once.
    func solve(_ b: [SIMD3<Double>], iterations: Int, tolerance: Double) -> [SIMD3<Double>] {
        var x = [SIMD3<Double>](repeating: .zero, count: b.count)
        var r = b
        var z = r.indices.map { r[$0] / diagonal[$0] }
        var p = z
        var rz = zip(r, z).reduce(SIMD3<Double>.zero) { $0 + $1.0 * $1.1 }
        let start = (b.reduce(SIMD3<Double>.zero) { $0 + $1 * $1 }).max().squareRoot()
        guard start > 0 else { return x }
        for _ in 0..<iterations {
            let q = multiply(p)
            let pq = zip(p, q).reduce(SIMD3<Double>.zero) { $0 + $1.0 * $1.1 }
            let alpha = rz / pointwiseMax(pq, SIMD3(repeating: 1e-300))
            for i in x.indices { x[i] += alpha * p[i]; r[i] -= alpha * q[i] }
            let residual = (r.reduce(SIMD3<Double>.zero) { $0 + $1 * $1 }).max().squareRoot()
            if residual <= tolerance * start { break }
            for i in z.indices { z[i] = r[i] / diagonal[i] }
            let next = zip(r, z).reduce(SIMD3<Double>.zero) { $0 + $1.0 * $1.1 }
            let beta = next / pointwiseMax(rz, SIMD3(repeating: 1e-300))
            rz = next
            for i in p.indices { p[i] = z[i] + beta * p[i] }
        }
        return x
    }
}

/// The mean of a colour difference's absolute channels.
@inline(__always) func meanAbsolute(_ v: SIMD3<Float>) -> Float { (abs(v.x) + abs(v.y) + abs(v.z)) / 3 }

func normalize(_ v: SIMD3<Float>) -> SIMD3<Float> {
    let length = (v * v).sum().squareRoot()
    return length > 0 ? v / length : v
}
