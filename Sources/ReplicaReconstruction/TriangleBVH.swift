import Foundation

/// A bounding-volume hierarchy over a triangle mesh, for casting rays against it: the nearest hit along a ray
/// (the detail of the undecimated surface under a texel) and whether a ray hits anything within a distance
/// (ambient occlusion).
///
/// Nodes split at the median of their longest axis' centroids, down to four triangles a leaf; the nodes and
/// the triangles' corners are stored flat, so a traversal touches no reference-counted memory.
public struct TriangleBVH: Sendable {
    /// Where a ray met the surface.
    public struct Hit: Equatable, Sendable {
        public var triangle: Int
        /// Distance along the (unit) ray.
        public var distance: Float
        /// Weights of the triangle's second and third corner; the first's is 1 − u − v.
        public var u: Float
        public var v: Float
    }

    private struct Node {
        var lower: SIMD3<Float>
        var upper: SIMD3<Float>
        /// A leaf: the first of `count` entries of `order`; an inner node: the index of its second child (the
        /// first follows it directly).
        var start: Int32
        var count: Int32
    }

    private var nodes: [Node] = []
    /// Triangle indices in leaf order.
    private var order: [Int32] = []
    /// Per triangle: its first corner and the two edges from it.
    private var corners: [SIMD3<Float>] = []
    private static let leafSize = 4

    public var isEmpty: Bool { order.isEmpty }

    public init(positions: [SIMD3<Float>], triangles: [SIMD3<UInt32>]) {
        corners.reserveCapacity(3 * triangles.count)
        var centroids: [SIMD3<Float>] = []
        centroids.reserveCapacity(triangles.count)
        for t in triangles {
            let a = positions[Int(t.x)], b = positions[Int(t.y)], c = positions[Int(t.z)]
            corners += [a, b - a, c - a]
            centroids.append((a + b + c) / 3)
        }
        order = (0..<Int32(triangles.count)).map { $0 }
        guard !triangles.isEmpty else { return }
        nodes.reserveCapacity(2 * triangles.count / Self.leafSize + 1)
        build(0, triangles.count, centroids)
    }

    @discardableResult
    private mutating func build(_ start: Int, _ end: Int, _ centroids: [SIMD3<Float>]) -> Int {
        var lower = SIMD3<Float>(repeating: .infinity), upper = SIMD3<Float>(repeating: -.infinity)
        var centreLower = lower, centreUpper = upper
        for i in start..<end {
            let t = Int(order[i]), a = corners[3 * t], b = a + corners[3 * t + 1], c = a + corners[3 * t + 2]
            lower = pointwiseMin(lower, pointwiseMin(a, pointwiseMin(b, c)))
            upper = pointwiseMax(upper, pointwiseMax(a, pointwiseMax(b, c)))
            centreLower = pointwiseMin(centreLower, centroids[t])
            centreUpper = pointwiseMax(centreUpper, centroids[t])
        }
        let index = nodes.count
        nodes.append(Node(lower: lower, upper: upper, start: Int32(start), count: Int32(end - start)))
        let extent = centreUpper - centreLower
        guard end - start > Self.leafSize, extent.max() > 0 else { return index }
        let axis = extent.x >= extent.y && extent.x >= extent.z ? 0 : (extent.y >= extent.z ? 1 : 2)
        let middle = (start + end) / 2
        order[start..<end].withContiguousMutableStorageIfAvailable { slice in
            Self.select(slice, middle - start) { centroids[Int($0)][axis] }
        }
        build(start, middle, centroids)
        let second = build(middle, end, centroids)
        nodes[index].start = Int32(second)
        nodes[index].count = 0
        return index
    }

    /// Puts the `k`-th smallest key at `k`, smaller ones before it and larger ones after (quickselect).
    private static func select(_ items: UnsafeMutableBufferPointer<Int32>, _ k: Int, key: (Int32) -> Float) {
        var low = 0, high = items.count - 1
        while low < high {
            let pivot = key(items[(low + high) / 2])
            var i = low, j = high
            while i <= j {
                while key(items[i]) < pivot { i += 1 }
                while key(items[j]) > pivot { j -= 1 }
                if i <= j { items.swapAt(i, j); i += 1; j -= 1 }
            }
            if k <= j { high = j } else if k >= i { low = i } else { return }
        }
    }

    /// The nearest hit of the ray from `origin` along unit `direction` between `minimum` and `maximum`, either
    /// side of a triangle.
    public func nearestHit(origin: SIMD3<Float>, direction: SIMD3<Float>, minimum: Float = 0,
                           maximum: Float = .infinity) -> Hit? {
        var best: Hit?
        var limit = maximum
        traverse(origin, direction, minimum, &limit) { triangle, distance, u, v in
            best = Hit(triangle: triangle, distance: distance, u: u, v: v)
            return false
        }
        return best
    }

    /// Whether the ray meets any triangle between `minimum` and `maximum`.
    public func hitsAnything(origin: SIMD3<Float>, direction: SIMD3<Float>, minimum: Float = 0,
                             maximum: Float) -> Bool {
        var found = false
        var limit = maximum
        traverse(origin, direction, minimum, &limit) { _, _, _, _ in
            found = true
            return true
        }
        return found
    }

    /// Visits the hits nearer than `limit` (which each hit lowers) until `found` returns true.
    private func traverse(_ origin: SIMD3<Float>, _ direction: SIMD3<Float>, _ minimum: Float, _ limit: inout Float,
                          _ found: (Int, Float, Float, Float) -> Bool) {
        guard !nodes.isEmpty else { return }
        let inverse = SIMD3<Float>(1, 1, 1) / direction
        // A median split halves the triangles, so 64 levels hold any mesh that fits in memory.
        var stack = [Int32](repeating: 0, count: 64)
        var depth = 1
        while depth > 0 {
            depth -= 1
            let index = Int(stack[depth])
            let node = nodes[index]
            guard Self.enters(node, origin, inverse, minimum, limit) else { continue }
            if node.count == 0 {
                // The first child follows its parent; `start` is the second.
                stack[depth] = node.start
                stack[depth + 1] = Int32(index + 1)
                depth += 2
                continue
            }
            for i in Int(node.start)..<Int(node.start + node.count) {
                let t = Int(order[i])
                let a = corners[3 * t], e1 = corners[3 * t + 1], e2 = corners[3 * t + 2]
                let p = cross(direction, e2)
                let determinant = dot(e1, p)
                guard abs(determinant) > 1e-12 else { continue }
                let inverseDeterminant = 1 / determinant
                let s = origin - a
                let u = dot(s, p) * inverseDeterminant
                guard u >= 0, u <= 1 else { continue }
                let q = cross(s, e1)
                let v = dot(direction, q) * inverseDeterminant
                guard v >= 0, u + v <= 1 else { continue }
                let distance = dot(e2, q) * inverseDeterminant
                guard distance >= minimum, distance < limit else { continue }
                limit = distance
                if found(t, distance, u, v) { return }
            }
        }
    }

    private static func enters(_ node: Node, _ origin: SIMD3<Float>, _ inverse: SIMD3<Float>, _ minimum: Float,
                               _ maximum: Float) -> Bool {
        let a = (node.lower - origin) * inverse, b = (node.upper - origin) * inverse
        let near = pointwiseMin(a, b).max(), far = pointwiseMax(a, b).min()
        return max(near, minimum) <= min(far, maximum)
    }
}

func dot(_ a: SIMD3<Float>, _ b: SIMD3<Float>) -> Float { (a * b).sum() }
