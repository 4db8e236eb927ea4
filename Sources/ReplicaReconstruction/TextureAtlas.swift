import Foundation

// The UV atlas: faces coloured by the same view and joined by edges form a chart, laid out as the view saw it
// (its vertices' pixels there, scaled), so that baking resamples the photo with little distortion. Faces no
// view sees get a small square cell each, coloured from their neighbours. Charts and cells are packed into
// square pages, as large as fits.

/// One chart: faces coloured by one view, connected through their edges.
public struct TextureChart: Sendable {
    /// The view; -1 for a cell of a face no view sees.
    public var view: Int32
    public var faces: [Int32]
    /// Per chart vertex: the mesh vertex and its pixel in the view (the cell's corner for an unseen face).
    public var vertices: [UInt32]
    public var pixels: [SIMD2<Float>]
    /// The pixel box the chart covers.
    public var lower: SIMD2<Float>
    public var upper: SIMD2<Float>
    /// Where the chart lies in the atlas: page, the corner of its box (padding included), its size in texels,
    /// and texels per pixel.
    public var page = 0
    public var origin = SIMD2<Int>(0, 0)
    public var size = SIMD2<Int>(0, 0)
    public var scale: Float = 1

    /// The atlas position (in texels, of page `page`) of chart vertex `index`.
    func texel(_ index: Int, padding: Int) -> SIMD2<Float> {
        (pixels[index] - lower) * scale + SIMD2<Float>(Float(origin.x + padding), Float(origin.y + padding))
    }
}

/// The charts of a labelled mesh and their packing.
public struct TextureAtlas: Sendable {
    public var charts: [TextureChart]
    public var pageSize: Int
    public var pageCount: Int
    /// Texels between a chart's faces and its box, filled by dilation against bleeding.
    public var padding: Int
    /// Texels per photo pixel of the seen charts (the unseen cells keep their own size).
    public var scale: Float
    /// The share of the pages' texels inside a chart's box.
    public var fill: Double

    /// The side of an unseen face's cell, padding excluded.
    public static let cellSide = 6
}

extension TextureAtlas {
    /// Charts from the labels, packed into `pages` pages of `pageSize`; the scale is the largest that fits (up
    /// to `maximumScale` texels a pixel, and no more than lets the widest chart fit a page). With `growPages`,
    /// pages are added (up to `maximumPages`) before the scale is lowered.
    public static func build(_ mesh: SurfaceMesh, labeling: TextureLabeling, views: [TextureView], pageSize: Int,
                             padding: Int = 2, maximumScale: Float = 1, growPages: Bool = false,
                             maximumPages: Int = 1) -> TextureAtlas {
        var charts = makeCharts(mesh, labeling: labeling, views: views)
        var pages = 1
        // A chart wider than a page caps the scale, however many pages there are.
        let widest = charts.filter { $0.view >= 0 }.map { ($0.upper - $0.lower).max() }.max() ?? 0
        let room = Float(pageSize - 2 - 2 * padding)
        var scale = widest > 0 ? min(maximumScale, room / widest) : maximumScale
        if growPages {
            while pages < maximumPages, pack(&charts, scale: scale, pageSize: pageSize, pages: pages,
                                             padding: padding) == nil {
                pages += 1
            }
        }
        if pack(&charts, scale: scale, pageSize: pageSize, pages: pages, padding: padding) == nil {
            // Bisection on the scale: the shelf packer fits every scale under one that fits, near enough.
            var low: Float = 0, high = scale
            for _ in 0..<24 {
                let middle = (low + high) / 2
                if pack(&charts, scale: middle, pageSize: pageSize, pages: pages, padding: padding) != nil {
                    low = middle
                } else {
                    high = middle
                }
            }
            scale = low
            if pack(&charts, scale: scale, pageSize: pageSize, pages: pages, padding: padding) == nil {
                // Only cells left, too many for the pages: nothing sensible fits; shrink to nothing.
                scale = 0
                _ = pack(&charts, scale: 0, pageSize: pageSize, pages: pages, padding: padding)
            }
        }
        pages = (charts.map(\.page).max() ?? 0) + 1
        let used = charts.reduce(0.0) { $0 + Double($1.size.x * $1.size.y) }
        return TextureAtlas(charts: charts, pageSize: pageSize, pageCount: pages, padding: padding, scale: scale,
                            fill: used / Double(pages * pageSize * pageSize))
    }

    /// Connected faces of one view make a chart; every unseen face makes a cell.
    static func makeCharts(_ mesh: SurfaceMesh, labeling: TextureLabeling, views: [TextureView]) -> [TextureChart] {
        let adjacency = TextureLabeling.faceAdjacency(mesh)
        let labels = labeling.labels
        var chartOf = [Int32](repeating: -1, count: labels.count)
        var charts: [TextureChart] = []
        let projectors = views.map(\.projector)
        for seed in labels.indices where chartOf[seed] < 0 {
            let view = labels[seed]
            let chart = Int32(charts.count)
            var faces: [Int32] = [Int32(seed)]
            chartOf[seed] = chart
            if view >= 0 {
                var next = 0
                while next < faces.count {
                    let face = Int(faces[next])
                    next += 1
                    for neighbour in adjacency[face]
                    where chartOf[Int(neighbour)] < 0 && labels[Int(neighbour)] == view {
                        chartOf[Int(neighbour)] = chart
                        faces.append(neighbour)
                    }
                }
            }
            var vertices: [UInt32] = []
            var pixels: [SIMD2<Float>] = []
            var local: [UInt32: Int] = [:]
            for face in faces {
                let corners = mesh.corners(of: Int(face))
                for (number, vertex) in corners.enumerated() where view < 0 || local[vertex] == nil {
                    local[vertex] = vertices.count
                    vertices.append(vertex)
                    if view >= 0 {
                        let p = projectors[Int(view)]
                        pixels.append(p.pixel(p.camera(mesh.positions[Int(vertex)])))
                    } else {
                        // The cell's corners, counter-clockwise as the face winds: a triangle takes three.
                        let square: [SIMD2<Float>] = [SIMD2(0, 0), SIMD2(1, 0), SIMD2(1, 1), SIMD2(0, 1)]
                        pixels.append(square[number] * Float(TextureAtlas.cellSide))
                    }
                }
            }
            let lower = pixels.reduce(SIMD2<Float>(repeating: .infinity)) { pointwiseMin($0, $1) }
            let upper = pixels.reduce(SIMD2<Float>(repeating: -.infinity)) { pointwiseMax($0, $1) }
            charts.append(TextureChart(view: view, faces: faces, vertices: vertices, pixels: pixels, lower: lower,
                                       upper: upper))
        }
        return charts
    }

    /// Shelf packing, tallest first, over `pages` pages; nil when the charts do not fit. Sets each chart's
    /// page, origin, size and scale. Unseen cells keep their size whatever the scale.
    @discardableResult
    static func pack(_ charts: inout [TextureChart], scale: Float, pageSize: Int, pages: Int,
                     padding: Int) -> Bool? {
        for index in charts.indices {
            let chartScale: Float = charts[index].view < 0 ? 1 : scale
            let extent = (charts[index].upper - charts[index].lower) * chartScale
            charts[index].scale = chartScale
            charts[index].size = SIMD2(Int(extent.x.rounded(.up)) + 1 + 2 * padding,
                                       Int(extent.y.rounded(.up)) + 1 + 2 * padding)
        }
        let order = charts.indices.sorted { charts[$0].size.y > charts[$1].size.y }
        var page = 0, x = 0, y = 0, shelf = 0
        for index in order {
            let size = charts[index].size
            guard size.x <= pageSize, size.y <= pageSize else { return nil }
            if x + size.x > pageSize { y += shelf; x = 0; shelf = 0 }
            if y + size.y > pageSize {
                page += 1
                x = 0; y = 0; shelf = 0
                guard page < pages else { return nil }
            }
            charts[index].page = page
            charts[index].origin = SIMD2(x, y)
            x += size.x
            shelf = max(shelf, size.y)
        }
        return true
    }
}

extension SurfaceMesh {
    /// The mean of face `face`'s corners.
    func centre(of face: Int) -> SIMD3<Float> {
        let corners = self.corners(of: face)
        return corners.reduce(SIMD3<Float>.zero) { $0 + positions[Int($1)] } / Float(corners.count)
    }

    /// The corners of face `face`: triangles first, then quads, as the mesh keeps them.
    func corners(of face: Int) -> [UInt32] {
        if face < triangles.count {
            let t = triangles[face]
            return [t.x, t.y, t.z]
        }
        let q = quads[face - triangles.count]
        return [q.x, q.y, q.z, q.w]
    }
}

/// The textured mesh: vertices split where charts meet, each with its texture coordinates (v = 0 the top row of
/// the page, as glTF has it) and a tangent for the normal map, faces with the page they sample.
public struct TexturedSurface: Sendable, Equatable {
    public var positions: [SIMD3<Float>] = []
    public var normals: [SIMD3<Float>] = []
    public var uvs: [SIMD2<Float>] = []
    /// xyz along +u on the surface, w the handedness of the bitangent (+v), as glTF's TANGENT.
    public var tangents: [SIMD4<Float>] = []
    public var triangles: [SIMD3<UInt32>] = []
    public var quads: [SIMD4<UInt32>] = []
    /// Per face, triangles first: the page of its texture.
    public var pages: [UInt8] = []

    public init() {}

    public var polygonCount: Int { triangles.count + quads.count }

    /// The faces as triangles, each quad split from its first corner as texturing splits it.
    public var triangulated: [SIMD3<UInt32>] {
        triangles + quads.flatMap { [SIMD3($0.x, $0.y, $0.z), SIMD3($0.x, $0.z, $0.w)] }
    }
}

extension TexturedSurface {
    /// A binary little-endian PLY: per vertex `x y z nx ny nz texture_u texture_v tx ty tz tw` as floats; per
    /// face its 3 or 4 corners (uchar count, uint indices), triangles first, and `texnumber`, its page (uchar).
    public func plyBytes() -> [UInt8] {
        var header = "ply\nformat binary_little_endian 1.0\ncomment written by Replica Link\n"
            + "element vertex \(positions.count)\n"
        for name in ["x", "y", "z", "nx", "ny", "nz", "texture_u", "texture_v", "tx", "ty", "tz", "tw"] {
            header += "property float \(name)\n"
        }
        header += "element face \(polygonCount)\nproperty list uchar uint vertex_indices\nproperty uchar texnumber\n"
            + "end_header\n"
        var bytes = Array(header.utf8)
        bytes.reserveCapacity(bytes.count + 48 * positions.count + 14 * triangles.count + 18 * quads.count)
        func append(_ value: UInt32) { withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) } }
        func append(_ value: Float) { append(value.bitPattern) }
        for i in positions.indices {
            let p = positions[i], n = normals[i], uv = uvs[i], t = tangents[i]
            for value in [p.x, p.y, p.z, n.x, n.y, n.z, uv.x, uv.y, t.x, t.y, t.z, t.w] { append(value) }
        }
        for (face, t) in triangles.enumerated() {
            bytes.append(3); append(t.x); append(t.y); append(t.z); bytes.append(pages[face])
        }
        for (index, q) in quads.enumerated() {
            bytes.append(4); append(q.x); append(q.y); append(q.z); append(q.w)
            bytes.append(pages[triangles.count + index])
        }
        return bytes
    }

    /// Reads what `plyBytes()` wrote; any other layout, an index past the vertices or a file of the wrong length
    /// is refused with the reason.
    public init(plyBytes bytes: [UInt8]) throws(PLYFormatError) {
        let names = ["x", "y", "z", "nx", "ny", "nz", "texture_u", "texture_v", "tx", "ty", "tz", "tw"]
        let layout = ["element vertex"] + names.map { "property float \($0)" }
            + ["element face", "property list uchar uint vertex_indices", "property uchar texnumber"]
        let body = try PLYLayout.body(of: bytes, expecting: layout)
        let (vertexCount, faceCount) = (body.counts[0], body.counts[1])
        guard bytes.count - body.offset >= 48 * vertexCount + 14 * faceCount else {
            throw PLYFormatError("the file ends before its \(vertexCount) vertices and \(faceCount) faces")
        }
        var failure: PLYFormatError?
        var triangles: [SIMD3<UInt32>] = [], quads: [SIMD4<UInt32>] = []
        var trianglePages: [UInt8] = [], quadPages: [UInt8] = []
        bytes.withUnsafeBytes { raw in
            var offset = body.offset
            func word() -> UInt32 {
                defer { offset += 4 }
                return UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
            }
            func float() -> Float { Float(bitPattern: word()) }
            for _ in 0..<vertexCount {
                positions.append(SIMD3(float(), float(), float()))
                normals.append(SIMD3(float(), float(), float()))
                uvs.append(SIMD2(float(), float()))
                tangents.append(SIMD4(float(), float(), float(), float()))
            }
            for number in 0..<faceCount {
                guard offset < raw.count else { failure = PLYFormatError("the file ends at face \(number)"); return }
                let sides = Int(raw[offset])
                offset += 1
                guard sides == 3 || sides == 4, offset + 4 * sides + 1 <= raw.count else {
                    failure = PLYFormatError("face \(number) has \(sides) corners; only triangles and quads are read")
                    return
                }
                let corners = (0..<sides).map { _ in word() }
                let page = raw[offset]
                offset += 1
                guard corners.allSatisfy({ Int($0) < vertexCount }) else {
                    failure = PLYFormatError("face \(number) refers to a vertex past the \(vertexCount) there are")
                    return
                }
                if sides == 3 {
                    triangles.append(SIMD3(corners[0], corners[1], corners[2]))
                    trianglePages.append(page)
                } else {
                    quads.append(SIMD4(corners[0], corners[1], corners[2], corners[3]))
                    quadPages.append(page)
                }
            }
            if offset != raw.count { failure = PLYFormatError("\(raw.count - offset) bytes follow the last face") }
        }
        if let failure { throw failure }
        self.triangles = triangles
        self.quads = quads
        pages = trianglePages + quadPages
    }
}
