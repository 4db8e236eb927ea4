/// A k-d tree over a fixed set of 3-D points, for nearest-neighbour queries.
///
/// The tree is implicit: the points are reordered so that each range's middle element splits it along the axis
/// of the range's largest spread, and only that axis is stored. Building takes O(n log² n); a query is
/// O(log n) for points spread in space.
public struct KDTree: Sendable {
    /// The points in tree order.
    private var points: [Vector3]
    /// The caller's index of each point in tree order.
    private var originalIndex: [Int]
    /// The split axis (0, 1, 2) of the range whose middle element sits at each position; unused in leaves.
    private var splitAxis: [UInt8]

    /// Ranges this short are searched point by point rather than split further.
    private static let leafSize = 8

    /// Builds the tree over `points`; the indices it answers with are positions in this array.
    public init(points: [Vector3]) {
        self.points = points
        originalIndex = Array(points.indices)
        splitAxis = [UInt8](repeating: 0, count: points.count)
        build(0, points.count)
    }

    public var count: Int { points.count }

    /// The nearest point to `query`: its index in the array the tree was built from, and its distance; nil
    /// when the tree is empty.
    public func nearest(to query: Vector3) -> (index: Int, distance: Double)? {
        guard !points.isEmpty else { return nil }
        var best = (position: 0, squaredDistance: Double.infinity)
        search(query, 0, points.count, &best)
        return (originalIndex[best.position], best.squaredDistance.squareRoot())
    }

    private mutating func build(_ low: Int, _ high: Int) {
        guard high - low > Self.leafSize else { return }
        let axis = widestAxis(low, high)
        let mid = (low + high) / 2
        var order = Array(low..<high)
        order.sort { points[$0][axis] < points[$1][axis] }
        let reordered = order.map { points[$0] }, reorderedIndex = order.map { originalIndex[$0] }
        points.replaceSubrange(low..<high, with: reordered)
        originalIndex.replaceSubrange(low..<high, with: reorderedIndex)
        splitAxis[mid] = UInt8(axis)
        build(low, mid)
        build(mid + 1, high)
    }

    private func widestAxis(_ low: Int, _ high: Int) -> Int {
        var lowest = points[low], highest = points[low]
        for position in low..<high {
            lowest = pointwiseMin(lowest, points[position])
            highest = pointwiseMax(highest, points[position])
        }
        let spread = highest - lowest
        return spread.x >= spread.y && spread.x >= spread.z ? 0 : spread.y >= spread.z ? 1 : 2
    }

    private func search(_ query: Vector3, _ low: Int, _ high: Int,
                        _ best: inout (position: Int, squaredDistance: Double)) {
        guard high - low > Self.leafSize else {
            for position in low..<high { consider(position, query, &best) }
            return
        }
        let mid = (low + high) / 2
        consider(mid, query, &best)
        let axis = Int(splitAxis[mid])
        let offset = query[axis] - points[mid][axis]

        // The side holding the query first; the other only if the splitting plane is closer than the best.
        let (near, far) = offset < 0 ? ((low, mid), (mid + 1, high)) : ((mid + 1, high), (low, mid))
        search(query, near.0, near.1, &best)
        if offset * offset < best.squaredDistance { search(query, far.0, far.1, &best) }
    }

    private func consider(_ position: Int, _ query: Vector3, _ best: inout (position: Int, squaredDistance: Double)) {
        let difference = points[position] - query
        let squared = difference.dot(difference)
        if squared < best.squaredDistance { best = (position, squared) }
    }
}
