import Foundation
import ReplicaCore
import ReplicaGeometry

/// When depth maps agree enough to make a point.
public struct DepthFusionOptions: Equatable, Sendable {
    /// The fewest views, the reference included, whose depths must agree on a point. Default 3.
    public var minimumViews = 3
    /// Two depths agree when they differ by at most this fraction. Default 0.01.
    public var maximumDepthError: Float = 0.01
    /// … their normals by at most this many degrees. Default 30.
    public var maximumNormalAngle: Float = 30
    /// … and the neighbour's point lands within this many pixels of the reference pixel. Default 2.
    public var maximumReprojectionError: Float = 2

    public init() {}

    public func validate() throws(OptionsError) {
        guard minimumViews >= 1, maximumDepthError > 0, (0...180).contains(maximumNormalAngle),
              maximumReprojectionError > 0 else {
            throw OptionsError("minimumViews must be at least 1 and the tolerances positive")
        }
    }
}

/// Multi-view geometric consistency and fusion (after Galliani et al.'s Gipuma, 2015): each pixel of each depth
/// map is projected into its neighbours' maps; where enough of them hold the same surface there (depth, normal
/// and reprojection agreeing), the agreeing pixels become one point, their mean, and are used up so that no
/// other view makes the point again. Pixels no other view confirms are dropped: occlusions, reflections and the
/// wrong planes of weak texture rarely agree across views.
public enum DepthFusion {
    /// The fused cloud of `maps` (nil: a view without a map), each fused with the views `neighbours` lists for
    /// it. `progress` gets 0...1 after each view and returns false to stop, in which case nil.
    public static func fuse(maps: [DepthMap?], neighbours: [[Int]], options: DepthFusionOptions = .init(),
                            progress: (Double) -> Bool = { _ in true }) -> OrientedPointCloud? {
        precondition(neighbours.count == maps.count, "one neighbour list per map")
        return fuse(available: maps.map { $0 != nil }, neighbours: neighbours, options: options, cacheBytes: 0,
                    load: { maps[$0] }, progress: progress)
    }

    /// The same, with the maps read by `load` when needed: those of one view and its neighbours at a time, and as
    /// many others as `cacheBytes` holds, so memory stays bounded however many views there are. `available`
    /// says which views have a map; `load` returning nil for one of them stops the fusion (nil).
    public static func fuse(available: [Bool], neighbours: [[Int]], options: DepthFusionOptions = .init(),
                            cacheBytes: Int, load: (Int) -> DepthMap?,
                            progress: (Double) -> Bool = { _ in true }) -> OrientedPointCloud? {
        precondition(neighbours.count == available.count, "one neighbour list per view")
        var used = [[Bool]](repeating: [], count: available.count)
        var cache = DepthMapCache(budget: cacheBytes)
        let cosine = cos(options.maximumNormalAngle * .pi / 180)
        var cloud = OrientedPointCloud()
        for reference in available.indices {
            guard available[reference] else {
                if !progress(Double(reference + 1) / Double(available.count)) { return nil }
                continue
            }
            let others = neighbours[reference].filter { $0 != reference && available[$0] }
            guard let entries = cache.entries([reference] + others, load: load) else { return nil }
            for (view, entry) in zip([reference] + others, entries) where used[view].isEmpty {
                used[view] = [Bool](repeating: false, count: entry.map.width * entry.map.height)
            }
            let (map, frame) = (entries[0].map, entries[0].frame)
            let otherMaps = entries.dropFirst().map(\.map), frames = entries.dropFirst().map(\.frame)
            for y in 0..<map.height { for x in 0..<map.width {
                let pixel = y * map.width + x
                let depth = map.depth[pixel]
                guard depth > 0, !used[reference][pixel] else { continue }
                let point = frame.world(x: x, y: y, depth: depth)
                let normal = frame.worldNormal(map, pixel)
                var sum = SIMD3<Double>(point), normalSum = normal
                var colour = SIMD3<Float>(Float(map.rgb[3 * pixel]), Float(map.rgb[3 * pixel + 1]),
                                          Float(map.rgb[3 * pixel + 2]))
                var agreeing: [(view: Int, pixel: Int)] = []
                for (slot, other) in others.enumerated() {
                    let otherMap = otherMaps[slot], otherFrame = frames[slot]
                    guard let (ox, oy, z) = otherFrame.pixel(of: point) else { continue }
                    let otherPixel = oy * otherMap.width + ox
                    let otherDepth = otherMap.depth[otherPixel]
                    guard otherDepth > 0, !used[other][otherPixel],
                          abs(otherDepth - z) <= options.maximumDepthError * z else { continue }
                    let otherNormal = otherFrame.worldNormal(otherMap, otherPixel)
                    guard (otherNormal * normal).sum() >= cosine else { continue }
                    let otherPoint = otherFrame.world(x: ox, y: oy, depth: otherDepth)
                    guard let (bx, by) = frame.subpixel(of: otherPoint),
                          (bx - Float(x)) * (bx - Float(x)) + (by - Float(y)) * (by - Float(y))
                            <= options.maximumReprojectionError * options.maximumReprojectionError
                    else { continue }
                    agreeing.append((other, otherPixel))
                    sum += SIMD3<Double>(otherPoint)
                    normalSum += otherNormal
                    colour += SIMD3<Float>(Float(otherMap.rgb[3 * otherPixel]), Float(otherMap.rgb[3 * otherPixel + 1]),
                                           Float(otherMap.rgb[3 * otherPixel + 2]))
                }
                guard agreeing.count + 1 >= options.minimumViews else { continue }
                used[reference][pixel] = true
                for entry in agreeing { used[entry.view][entry.pixel] = true }
                let count = Float(agreeing.count + 1)
                let length = (normalSum * normalSum).sum().squareRoot()
                cloud.append(position: SIMD3<Float>(sum / Double(count)),
                             normal: length > 0 ? normalSum / length : normal,
                             color: SIMD3<UInt8>((colour / count).rounded(.toNearestOrEven)))
            } }
            if !progress(Double(reference + 1) / Double(available.count)) { return nil }
        }
        return cloud
    }

    /// Depth maps by view, the least recently used dropped first once they hold more than the budget; the views
    /// asked for together are always kept while they are in use.
    private struct DepthMapCache {
        struct Entry {
            var map: DepthMap
            var frame: Frame
            var lastUse: Int
            var bytes: Int
        }

        let budget: Int
        private var entries: [Int: Entry] = [:]
        private var clock = 0
        private var bytes = 0

        init(budget: Int) { self.budget = budget }

        mutating func entries(_ views: [Int], load: (Int) -> DepthMap?) -> [Entry]? {
            clock += 1
            var result: [Entry] = []
            for view in views {
                if entries[view] == nil {
                    guard let map = load(view) else { return nil }
                    let size = map.width * map.height * 23
                    entries[view] = Entry(map: map, frame: Frame(map), lastUse: clock, bytes: size)
                    bytes += size
                }
                entries[view]!.lastUse = clock
                result.append(entries[view]!)
            }
            while bytes > budget, let oldest = entries.filter({ $0.value.lastUse < clock })
                .min(by: { $0.value.lastUse < $1.value.lastUse }) {
                bytes -= oldest.value.bytes
                entries[oldest.key] = nil
            }
            return result
        }
    }

    /// A depth map's camera and pose in single precision, for projecting many points.
    private struct Frame {
        let fx: Float, fy: Float, cx: Float, cy: Float, width: Int, height: Int
        /// Camera from world, and its inverse's rotation (world from camera) and translation.
        let rotation: (SIMD3<Float>, SIMD3<Float>, SIMD3<Float>)
        let translation: SIMD3<Float>
        let centre: SIMD3<Float>

        init(_ map: DepthMap) {
            fx = Float(map.camera.focalX)
            fy = Float(map.camera.focalY)
            cx = Float(map.camera.principalX)
            cy = Float(map.camera.principalY)
            width = map.width
            height = map.height
            let r = map.camFromWorld.rotation
            rotation = (SIMD3<Float>(r.rows.0), SIMD3<Float>(r.rows.1), SIMD3<Float>(r.rows.2))
            translation = SIMD3<Float>(map.camFromWorld.translation)
            centre = SIMD3<Float>(map.camFromWorld.inverse.translation)
        }

        /// The world point at array pixel (x, y) and z-depth `depth`.
        func world(x: Int, y: Int, depth: Float) -> SIMD3<Float> {
            // Pixel centres are at +0.5 in camera pixel coordinates.
            let local = SIMD3((Float(x) + 0.5 - cx) / fx * depth, (Float(y) + 0.5 - cy) / fy * depth, depth)
            return fromCamera(local - translation)
        }

        /// Rᵀ v.
        func fromCamera(_ v: SIMD3<Float>) -> SIMD3<Float> {
            rotation.0 * v.x + rotation.1 * v.y + rotation.2 * v.z
        }

        func worldNormal(_ map: DepthMap, _ pixel: Int) -> SIMD3<Float> {
            fromCamera(SIMD3(map.normal[3 * pixel], map.normal[3 * pixel + 1], map.normal[3 * pixel + 2]))
        }

        /// The continuous array coordinates (pixel centres at whole numbers) of a world point in front.
        func subpixel(of point: SIMD3<Float>) -> (Float, Float)? {
            let local = SIMD3((rotation.0 * point).sum(), (rotation.1 * point).sum(), (rotation.2 * point).sum())
                + translation
            guard local.z > 0 else { return nil }
            return (fx * local.x / local.z + cx - 0.5, fy * local.y / local.z + cy - 0.5)
        }

        /// The array pixel a world point falls in, and its depth; nil behind or outside the image.
        func pixel(of point: SIMD3<Float>) -> (Int, Int, Float)? {
            let local = SIMD3((rotation.0 * point).sum(), (rotation.1 * point).sum(), (rotation.2 * point).sum())
                + translation
            guard local.z > 0 else { return nil }
            let u = fx * local.x / local.z + cx, v = fy * local.y / local.z + cy
            guard u >= 0, v >= 0, u < Float(width), v < Float(height) else { return nil }
            return (Int(u), Int(v), local.z)
        }
    }
}
