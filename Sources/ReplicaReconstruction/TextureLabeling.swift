import Foundation
import ReplicaGeometry

// Which photo colours each face: every face is rasterised into every photo with a depth buffer, so that a face
// counts as seen only where it is the nearest surface, and scored by the gradient magnitude it covers there
// (sharp, near and frontal views cover more, and more contrasty, pixels). A Potts prior then makes
// neighbouring faces prefer the same photo, so that the atlas has few, large charts and few seams.

/// A photo as texturing reads it: distortion-free, in RGB only (a third of a stereo image's bytes), with a
/// pyramid of halved copies for baking at texel sizes larger than a pixel.
public struct TextureView: Sendable {
    public var name: String
    /// The camera of `levels[0]`; level `k` is `levels[0]` halved `k` times.
    public let camera: PinholeCamera
    public let camFromWorld: Rigid3
    public var levels: [ColourImage]
    /// The projection of `levels[0]` in single precision, for the inner loops.
    let projector: Projector

    public init(name: String, image: StereoImage, pyramidLevels: Int = 4) {
        self.name = name
        camera = image.camera
        camFromWorld = image.camFromWorld
        projector = Projector(image.camFromWorld, image.camera)
        levels = [ColourImage(width: image.width, height: image.height, rgb: image.rgb)]
        while levels.count < pyramidLevels, levels.last!.width >= 64, levels.last!.height >= 64 {
            levels.append(levels.last!.halved())
        }
    }
}

/// Row-major RGB, three bytes a pixel.
public struct ColourImage: Sendable {
    public var width: Int
    public var height: Int
    public var rgb: [UInt8]

    /// The image at half the size in each direction, by a 2 × 2 box filter (an odd last row or column is
    /// dropped), so that pixel centres stay where halving the coordinates puts them.
    func halved() -> ColourImage {
        let w = max(1, width / 2), h = max(1, height / 2)
        var out = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w { for c in 0..<3 {
            let top = 3 * ((2 * y) * width + 2 * x) + c
            let bottom = min(2 * y + 1, height - 1) * width * 3 + 3 * (2 * x) + c
            let right = min(2 * x + 1, width - 1) - 2 * x
            let sum = Int(rgb[top]) + Int(rgb[top + 3 * right]) + Int(rgb[bottom]) + Int(rgb[bottom + 3 * right])
            out[3 * (y * w + x) + c] = UInt8((sum + 2) / 4)
        } } }
        return ColourImage(width: w, height: h, rgb: out)
    }

    /// Rec. 601 luma, 0...1, per pixel.
    func luma() -> [Float] {
        (0..<(width * height)).map { i in
            (0.299 * Float(rgb[3 * i]) + 0.587 * Float(rgb[3 * i + 1]) + 0.114 * Float(rgb[3 * i + 2])) / 255
        }
    }
}

/// A world-to-pixel projection in single precision, for the inner loops.
struct Projector {
    var r0: SIMD3<Float>, r1: SIMD3<Float>, r2: SIMD3<Float>, t: SIMD3<Float>
    var fx: Float, fy: Float, cx: Float, cy: Float
    /// The camera's centre in world coordinates.
    var centre: SIMD3<Float>

    init(_ camFromWorld: Rigid3, _ camera: PinholeCamera) {
        let rows = camFromWorld.rotation.rows
        r0 = SIMD3<Float>(rows.0)
        r1 = SIMD3<Float>(rows.1)
        r2 = SIMD3<Float>(rows.2)
        t = SIMD3<Float>(camFromWorld.translation)
        fx = Float(camera.focalX)
        fy = Float(camera.focalY)
        cx = Float(camera.principalX)
        cy = Float(camera.principalY)
        centre = SIMD3<Float>(camFromWorld.inverse.translation)
    }

    /// The point in camera coordinates.
    @inline(__always) func camera(_ p: SIMD3<Float>) -> SIMD3<Float> {
        SIMD3(dot(r0, p) + t.x, dot(r1, p) + t.y, dot(r2, p) + t.z)
    }

    /// The pixel (x right, y down, pixel centres at half-integers) of a point in camera coordinates with z > 0.
    @inline(__always) func pixel(_ c: SIMD3<Float>) -> SIMD2<Float> {
        SIMD2(fx * c.x / c.z + cx, fy * c.y / c.z + cy)
    }

    /// The same projection for an image `scale` times the size.
    func scaled(_ scale: Float) -> Projector {
        var copy = self
        copy.fx *= scale
        copy.fy *= scale
        copy.cx *= scale
        copy.cy *= scale
        return copy
    }
}

/// The faces' candidate views with their scores, and the view chosen for each face.
public struct TextureLabeling: Sendable {
    /// Per face (triangles first, then quads, as `SurfaceMesh` keeps them): `(view, score)` of the views that
    /// see all of it, best first.
    public var candidates: [[(view: Int32, score: Float)]]
    /// Per face, the view that colours it; -1 when no view sees it.
    public var labels: [Int32]

    public var unseenCount: Int { labels.reduce(0) { $0 + ($1 < 0 ? 1 : 0) } }
}

public struct TextureLabelingOptions: Sendable {
    /// The Potts weight: the cost of a neighbour coloured by another view, against data costs in 0...1.
    public var smoothness: Float = 0.6
    public var sweeps = 12
    /// A view whose score is under this share of a face's best is not a candidate for it.
    public var minimumRelativeScore: Float = 0.1
    /// With three candidates or more, a view whose colour at the face differs from the candidates' median by
    /// more than this (mean over RGB, 0...255) is dropped: it sees something else there, an occluder the mesh
    /// lacks or a surface the mesh puts wrongly.
    public var consistency: Float = 30

    public init() {}
}

extension TextureLabeling {
    /// Scores every face in every view and picks a view per face.
    public static func label(_ mesh: SurfaceMesh, views: [TextureView],
                             options: TextureLabelingOptions = .init()) -> TextureLabeling {
        let faces = FaceTriangles(mesh)
        let scores = visibilityScores(faces, views: views)
        var candidates = [[(view: Int32, score: Float)]](repeating: [], count: mesh.polygonCount)
        for (view, perTriangle) in scores.enumerated() {
            // A face is a candidate only when all its triangles are seen.
            var faceScore = [Float](repeating: 0, count: mesh.polygonCount)
            var seenTriangles = [UInt8](repeating: 0, count: mesh.polygonCount)
            for (triangle, score) in perTriangle {
                let face = Int(faces.face[Int(triangle)])
                faceScore[face] += score
                seenTriangles[face] += 1
            }
            for (triangle, _) in perTriangle {
                let face = Int(faces.face[Int(triangle)])
                let needed: UInt8 = face < mesh.triangles.count ? 1 : 2
                if seenTriangles[face] == needed {
                    candidates[face].append((Int32(view), faceScore[face]))
                    seenTriangles[face] = 0
                }
            }
        }
        for face in candidates.indices {
            candidates[face].sort { $0.score > $1.score }
            if let best = candidates[face].first?.score {
                candidates[face].removeAll { $0.score < options.minimumRelativeScore * best }
            }
            if candidates[face].count >= 3 {
                keepConsistent(&candidates[face], at: mesh.centre(of: face), views: views, limit: options.consistency)
            }
        }
        var labeling = TextureLabeling(candidates: candidates, labels: candidates.map { $0.first?.view ?? -1 })
        labeling.smooth(adjacency: faceAdjacency(mesh), options: options)
        return labeling
    }

    /// Drops the candidates whose colour at `point` (two pyramid levels up, so that a pixel's misregistration
    /// does not count) is far from the candidates' median, channel by channel; keeps them all if none is near.
    static func keepConsistent(_ candidates: inout [(view: Int32, score: Float)], at point: SIMD3<Float>,
                               views: [TextureView], limit: Float) {
        let colours = candidates.map { candidate -> SIMD3<Float> in
            let view = views[Int(candidate.view)], level = min(2, view.levels.count - 1), p = view.projector
            return TextureBaker.bilinear(view.levels[level], p.pixel(p.camera(point)) / Float(1 << level))
        }
        func median(_ values: [Float]) -> Float { values.sorted()[values.count / 2] }
        let middle = SIMD3(median(colours.map(\.x)), median(colours.map(\.y)), median(colours.map(\.z)))
        let kept = candidates.indices.filter { meanAbsolute(colours[$0] - middle) <= limit }
        guard !kept.isEmpty else { return }
        candidates = kept.map { candidates[$0] }
    }

    /// Iterated conditional modes on data cost 1 − score/best plus the Potts term, from the best views.
    mutating func smooth(adjacency: [[Int32]], options: TextureLabelingOptions) {
        for _ in 0..<options.sweeps {
            var changed = 0
            for face in labels.indices where candidates[face].count > 1 {
                let best = candidates[face][0].score
                var chosen = labels[face], lowest = Float.infinity
                for candidate in candidates[face] {
                    var cost = 1 - candidate.score / best
                    for neighbour in adjacency[face] where labels[Int(neighbour)] != candidate.view {
                        cost += options.smoothness
                    }
                    if cost < lowest { lowest = cost; chosen = candidate.view }
                }
                if chosen != labels[face] { labels[face] = chosen; changed += 1 }
            }
            if changed == 0 { break }
        }
    }

    /// Per face, the faces sharing an edge with it.
    static func faceAdjacency(_ mesh: SurfaceMesh) -> [[Int32]] {
        var byEdge: [UInt64: Int32] = [:]
        byEdge.reserveCapacity(2 * mesh.polygonCount)
        var adjacency = [[Int32]](repeating: [], count: mesh.polygonCount)
        func visit(_ face: Int, _ a: UInt32, _ b: UInt32) {
            let key = SurfaceMesh.edgeKey(a, b)
            if let other = byEdge.removeValue(forKey: key) {
                adjacency[face].append(other)
                adjacency[Int(other)].append(Int32(face))
            } else {
                byEdge[key] = Int32(face)
            }
        }
        for (face, t) in mesh.triangles.enumerated() {
            visit(face, t.x, t.y); visit(face, t.y, t.z); visit(face, t.z, t.x)
        }
        for (index, q) in mesh.quads.enumerated() {
            let face = mesh.triangles.count + index
            visit(face, q.x, q.y); visit(face, q.y, q.z); visit(face, q.z, q.w); visit(face, q.w, q.x)
        }
        return adjacency
    }

    /// Per view, the triangles it sees with their gradient-magnitude integral (plus a little of their area, so
    /// that a face on flat colour still prefers the view that sees it largest).
    static func visibilityScores(_ faces: FaceTriangles, views: [TextureView]) -> [[(Int32, Float)]] {
        var results = [[(Int32, Float)]](repeating: [], count: views.count)
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: views.count) { index in
            let scores = scoresInView(faces, views[index])
            lock.lock()
            results[index] = scores
            lock.unlock()
        }
        return results
    }

    private static func scoresInView(_ faces: FaceTriangles, _ view: TextureView) -> [(Int32, Float)] {
        let image = view.levels[0]
        let width = image.width, height = image.height
        let projector = view.projector
        var depth = [Float](repeating: .infinity, count: width * height)
        var owner = [Int32](repeating: -1, count: width * height)
        var cameraPoints = [SIMD3<Float>](repeating: .zero, count: faces.positions.count)
        for (index, p) in faces.positions.enumerated() { cameraPoints[index] = projector.camera(p) }
        let near: Float = 1e-6
        // Rasterise every front-facing triangle, nearest wins; pixel centres at (x + 0.5, y + 0.5).
        var projected = [SIMD2<Float>](repeating: .zero, count: faces.triangles.count * 3)
        var front = [Bool](repeating: false, count: faces.triangles.count)
        for (index, t) in faces.triangles.enumerated() {
            let a = cameraPoints[Int(t.x)], b = cameraPoints[Int(t.y)], c = cameraPoints[Int(t.z)]
            guard a.z > near, b.z > near, c.z > near else { continue }
            // Seen from its front: the camera lies on the side its normal points to.
            let normal = cross(b - a, c - a)
            guard dot(normal, a) < 0 else { continue }
            front[index] = true
            let pa = projector.pixel(a), pb = projector.pixel(b), pc = projector.pixel(c)
            projected[3 * index] = pa; projected[3 * index + 1] = pb; projected[3 * index + 2] = pc
            Self.rasterise(pa, pb, pc, 1 / a.z, 1 / b.z, 1 / c.z, width: width, height: height) { pixel, inverseZ in
                let z = 1 / inverseZ
                if z < depth[pixel] { depth[pixel] = z; owner[pixel] = Int32(index) }
            }
        }
        // The score of each triangle: the gradient magnitude summed over the pixels it owns.
        var score = [Float](repeating: 0, count: faces.triangles.count)
        var pixels = [Int32](repeating: 0, count: faces.triangles.count)
        let grey = image.luma()
        for y in 1..<max(1, height - 1) {
            for x in 1..<max(1, width - 1) {
                let pixel = y * width + x
                let triangle = owner[pixel]
                guard triangle >= 0 else { continue }
                // Only the surface's own gradients count: none across its outline or an occluding edge, where
                // the photo's step is between the surface and what lies behind it.
                let z = depth[pixel]
                var gradient: Float = 0
                if abs(depth[pixel - 1] - z) < 0.02 * z, abs(depth[pixel + 1] - z) < 0.02 * z,
                   abs(depth[pixel - width] - z) < 0.02 * z, abs(depth[pixel + width] - z) < 0.02 * z {
                    let gx = grey[pixel + 1] - grey[pixel - 1], gy = grey[pixel + width] - grey[pixel - width]
                    gradient = (gx * gx + gy * gy).squareRoot()
                }
                score[Int(triangle)] += gradient + 0.02
                pixels[Int(triangle)] += 1
            }
        }
        var result: [(Int32, Float)] = []
        for index in faces.triangles.indices where front[index] {
            if pixels[index] > 0 {
                result.append((Int32(index), score[index]))
                continue
            }
            // Under a pixel: seen when its centre is no farther than the depth there, by a margin of 1 %.
            let pa = projected[3 * index], pb = projected[3 * index + 1], pc = projected[3 * index + 2]
            let centre = (pa + pb + pc) / 3
            let x = Int(centre.x), y = Int(centre.y)
            guard centre.x >= 0, centre.y >= 0, x < width, y < height else { continue }
            let t = faces.triangles[index]
            let z = (cameraPoints[Int(t.x)].z + cameraPoints[Int(t.y)].z + cameraPoints[Int(t.z)].z) / 3
            guard z <= depth[y * width + x] * 1.01 else { continue }
            let area = abs(cross2(pb - pa, pc - pa)) / 2
            result.append((Int32(index), 0.02 * area))
        }
        return result
    }

    /// Calls `visit(pixel, 1/z)` for each pixel whose centre lies in the triangle, `1/z` interpolated linearly
    /// in the image as perspective requires.
    @inline(__always)
    static func rasterise(_ a: SIMD2<Float>, _ b: SIMD2<Float>, _ c: SIMD2<Float>, _ za: Float, _ zb: Float,
                          _ zc: Float, width: Int, height: Int, _ visit: (Int, Float) -> Void) {
        let area = cross2(b - a, c - a)
        guard abs(area) > 1e-12 else { return }
        let lowX = max(0, Int((min(a.x, b.x, c.x) - 0.5).rounded(.up)))
        let highX = min(width - 1, Int((max(a.x, b.x, c.x) - 0.5).rounded(.down)))
        let lowY = max(0, Int((min(a.y, b.y, c.y) - 0.5).rounded(.up)))
        let highY = min(height - 1, Int((max(a.y, b.y, c.y) - 0.5).rounded(.down)))
        guard lowX <= highX, lowY <= highY else { return }
        let inverseArea = 1 / area
        for y in lowY...highY {
            let py = Float(y) + 0.5
            for x in lowX...highX {
                let p = SIMD2<Float>(Float(x) + 0.5, py)
                let wa = cross2(b - p, c - p) * inverseArea, wb = cross2(c - p, a - p) * inverseArea
                let wc = 1 - wa - wb
                guard wa >= 0, wb >= 0, wc >= 0 else { continue }
                visit(y * width + x, wa * za + wb * zb + wc * zc)
            }
        }
    }
}

/// A mesh's faces as triangles, each with the face it came from (a quad gives two).
struct FaceTriangles {
    var positions: [SIMD3<Float>]
    var triangles: [SIMD3<UInt32>]
    var face: [Int32]

    init(_ mesh: SurfaceMesh) {
        positions = mesh.positions
        triangles = mesh.triangles
        face = (0..<Int32(mesh.triangles.count)).map { $0 }
        for (index, q) in mesh.quads.enumerated() {
            let parent = Int32(mesh.triangles.count + index)
            triangles += [SIMD3(q.x, q.y, q.z), SIMD3(q.x, q.z, q.w)]
            face += [parent, parent]
        }
    }
}

@inline(__always) func cross2(_ a: SIMD2<Float>, _ b: SIMD2<Float>) -> Float { a.x * b.y - a.y * b.x }
