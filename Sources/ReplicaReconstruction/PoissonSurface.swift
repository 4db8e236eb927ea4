import Foundation

/// How the indicator function of an oriented cloud is solved for (see `PoissonSurface`).
public struct PoissonOptions: Equatable, Sendable {
    /// Cells along the longest side of the box around the points, margin included, at the finest level.
    public var resolution = 256
    /// The coarsest level's cells along the longest side; each finer level doubles them up to `resolution`.
    public var coarsestResolution = 32
    /// How strongly the indicator is held to its iso-value at the points, relative to fitting the normals: 4 is
    /// screened Poisson's usual weight. Zero solves plain Poisson, which rounds off corners and thin parts.
    public var screening: Float = 4
    /// Empty space around the points on every side, as a fraction of the longest side of their box.
    public var margin: Float = 0.08
    /// Conjugate-gradient iterations at most at the coarsest level, and at each finer one (which starts from the
    /// coarser solution, so needs far fewer).
    public var coarseIterations = 400
    public var fineIterations = 40
    /// A level stops once the residual is this fraction of the right-hand side.
    public var tolerance: Float = 1e-4
    /// Cells around a point within which the surface is supported by the data; farther, it is trimmed away.
    public var supportRadius = 2

    public init() {}
}

/// A scalar field sampled at the nodes of a uniform grid, with trilinear interpolation between them: the
/// indicator function whose level set at `isoValue` is the surface, greater inside the object.
public struct ImplicitGrid: Sendable {
    /// Position of node (0, 0, 0) and the distance between neighbouring nodes.
    public var origin: SIMD3<Float>
    public var spacing: Float
    /// Nodes along x, y and z.
    public var nodes: SIMD3<Int>
    public var values: [Float]
    public var isoValue: Float = 0.5
    /// Per cell (indexed by its lowest node), whether a point lies within the support radius; empty: all do.
    public var supported: [Bool] = []

    public init(origin: SIMD3<Float>, spacing: Float, nodes: SIMD3<Int>, values: [Float]) {
        precondition(values.count == nodes.x * nodes.y * nodes.z, "one value per node")
        self.origin = origin
        self.spacing = spacing
        self.nodes = nodes
        self.values = values
    }

    @inline(__always) func index(_ i: Int, _ j: Int, _ k: Int) -> Int { i + nodes.x * (j + nodes.y * k) }

    /// The interpolated value at `point`; outside the grid, the boundary's value (the outside, 0).
    public func value(at point: SIMD3<Float>) -> Float {
        let g = (point - origin) / spacing
        let base = SIMD3<Int>(Int(g.x.rounded(.down)), Int(g.y.rounded(.down)), Int(g.z.rounded(.down)))
        guard base.x >= 0, base.y >= 0, base.z >= 0, base.x < nodes.x - 1, base.y < nodes.y - 1,
              base.z < nodes.z - 1 else { return 0 }
        let f = g - SIMD3<Float>(base)
        let i = index(base.x, base.y, base.z), sx = 1, sy = nodes.x, sz = nodes.x * nodes.y
        let c00 = values[i] + f.x * (values[i + sx] - values[i])
        let c10 = values[i + sy] + f.x * (values[i + sy + sx] - values[i + sy])
        let c01 = values[i + sz] + f.x * (values[i + sz + sx] - values[i + sz])
        let c11 = values[i + sz + sy] + f.x * (values[i + sz + sy + sx] - values[i + sz + sy])
        let c0 = c00 + f.y * (c10 - c00), c1 = c01 + f.y * (c11 - c01)
        return c0 + f.z * (c1 - c0)
    }

    /// The field's gradient at `point`, by central differences half a cell apart.
    public func gradient(at point: SIMD3<Float>) -> SIMD3<Float> {
        let step = spacing / 2
        var result = SIMD3<Float>()
        for axis in 0..<3 {
            var offset = SIMD3<Float>()
            offset[axis] = step
            result[axis] = (value(at: point + offset) - value(at: point - offset)) / (2 * step)
        }
        return result
    }

    /// `point` moved onto the level set along the field's gradient (a few Newton steps, each at most a cell),
    /// or left where it is where the field is flat.
    public func projected(_ point: SIMD3<Float>) -> SIMD3<Float> {
        var p = point
        for _ in 0..<3 {
            let g = gradient(at: p)
            let squared = (g * g).sum()
            guard squared > 1e-12 else { break }
            var step = (isoValue - value(at: p)) / squared * g
            let length = (step * step).sum().squareRoot()
            if length > spacing { step *= spacing / length }
            p += step
            if length < 1e-3 * spacing { break }
        }
        return p
    }
}

/// Screened Poisson surface reconstruction on a uniform grid (after Kazhdan and Hoppe, "Screened Poisson Surface
/// Reconstruction", 2013): the indicator χ (0 outside, 1 inside) whose gradient best matches the points' inward
/// normals, held to ½ at the points, found as the minimum of
///
///     Σ over grid edges (χ_j − χ_i − h·V_ij)²  +  α Σ over points a_p (χ(p) − ½)²,
///
/// with V the normals splatted onto the edges (each point weighted by the surface area it stands for, a_p in
/// cells), α the screening weight and χ = 0 on the grid's boundary. The normal equations (the 7-point Laplacian
/// plus the screening term) are solved by Jacobi-preconditioned conjugate gradients, level after level from a
/// coarse grid, each level starting from the coarser one's solution interpolated (a cascadic multigrid).
/// Where the octree of the original puts cells only near the points, this grid is uniform: memory grows with the
/// cube of the resolution (6 floats a node, 1.4 GB at 384), which the detail levels keep within a worker's means.
public enum PoissonSurface {
    /// What the solve did, level by level.
    public struct Report: Equatable, Sendable {
        public struct Level: Equatable, Sendable {
            public var resolution: Int
            public var nodes: Int
            public var iterations: Int
            /// Final residual over the right-hand side's norm.
            public var relativeResidual: Double
        }
        public var levels: [Level] = []
        /// The points after those sharing a bin of half a finest cell were averaged.
        public var samples = 0
    }

    /// The indicator of `cloud` on a grid of `options.resolution` cells along its longest side, with its
    /// iso-value (the mean at the points, weighted by their areas) and the cells the points support. Nil when
    /// `shouldContinue` (given the fraction done) returns false, or the cloud has fewer than 4 points.
    public static func indicator(of cloud: OrientedPointCloud, options: PoissonOptions = .init(),
                                 shouldContinue: (Double) -> Bool = { _ in true }) -> (ImplicitGrid, Report)? {
        guard cloud.count >= 4, let bounds = bounds(of: cloud.positions) else { return nil }
        // As PoissonRecon averages the samples of a leaf: more than a few points per cell add cost, not detail.
        let finest = (bounds.max - bounds.min).max() * (1 + 2 * options.margin) / Float(max(8, options.resolution))
        let cloud = merged(cloud, bin: finest / 2, origin: bounds.min)
        var resolutions: [Int] = []
        var r = max(8, options.resolution)
        while r > options.coarsestResolution { resolutions.insert(r, at: 0); r = (r + 1) / 2 }
        resolutions.insert(max(8, min(r, options.resolution)), at: 0)
        var report = Report()
        report.samples = cloud.count
        var previous: ImplicitGrid?
        let cost = resolutions.map { pow(Double($0), 3) }, total = cost.reduce(0, +)
        var done = 0.0
        for (level, resolution) in resolutions.enumerated() {
            var system = LevelSystem(bounds: bounds, resolution: resolution, margin: options.margin)
            system.addPoints(cloud, screening: options.screening)
            var solution = [Float](repeating: 0, count: system.count)
            if let previous { system.interpolate(previous, into: &solution) }
            let iterations = level == 0 ? options.coarseIterations : options.fineIterations
            let base = done / total, share = cost[level] / total
            guard let (used, residual) = system.solve(&solution, iterations: iterations, tolerance: options.tolerance,
                                                      shouldContinue: { shouldContinue(base + share * $0) })
            else { return nil }
            done += cost[level]
            report.levels.append(.init(resolution: resolution, nodes: system.count, iterations: used,
                                       relativeResidual: residual))
            var grid = ImplicitGrid(origin: system.origin, spacing: system.spacing, nodes: system.nodes,
                                    values: solution)
            if level == resolutions.count - 1 {
                grid.isoValue = system.isoValue(of: solution)
                grid.supported = system.support(radius: options.supportRadius)
            }
            previous = grid
        }
        return previous.map { ($0, report) }
    }

    /// One point per occupied cubic bin of side `bin`: the mean position of the points in it, and the direction
    /// of the sum of their normals (a bin whose normals cancel out is dropped).
    static func merged(_ cloud: OrientedPointCloud, bin: Float, origin: SIMD3<Float>) -> OrientedPointCloud {
        guard bin > 0 else { return cloud }
        var slots: [Int64: Int] = [:]
        slots.reserveCapacity(cloud.count / 2)
        var positions: [SIMD3<Float>] = [], normals: [SIMD3<Float>] = [], counts: [Float] = []
        for index in 0..<cloud.count {
            let p = cloud.positions[index]
            guard p.x.isFinite, p.y.isFinite, p.z.isFinite else { continue }
            let g = (p - origin) / bin
            let key = Int64(g.x) | Int64(g.y) << 21 | Int64(g.z) << 42
            if let slot = slots[key] {
                positions[slot] += p
                normals[slot] += cloud.normals[index]
                counts[slot] += 1
            } else {
                slots[key] = positions.count
                positions.append(p)
                normals.append(cloud.normals[index])
                counts.append(1)
            }
        }
        var result = OrientedPointCloud()
        for slot in positions.indices {
            let length = (normals[slot] * normals[slot]).sum().squareRoot()
            guard length > 1e-3 * counts[slot] else { continue }
            result.append(position: positions[slot] / counts[slot], normal: normals[slot] / length, color: .zero)
        }
        return result
    }

    /// The box around the finite points; nil when there are none.
    public static func bounds(of points: [SIMD3<Float>]) -> (min: SIMD3<Float>, max: SIMD3<Float>)? {
        guard var low = points.first(where: { $0.x.isFinite && $0.y.isFinite && $0.z.isFinite }) else { return nil }
        var high = low
        for p in points where p.x.isFinite && p.y.isFinite && p.z.isFinite {
            low = pointwiseMin(low, p)
            high = pointwiseMax(high, p)
        }
        return (low, high)
    }
}

/// Trilinear weights of a cell's eight corners (x fastest) for a point at `f` within it.
@inline(__always)
func cornerWeights(_ f: SIMD3<Float>) -> SIMD8<Float> {
    let g = 1 - f
    let x = SIMD8(g.x, f.x, g.x, f.x, g.x, f.x, g.x, f.x)
    let y = SIMD8(g.y, g.y, f.y, f.y, g.y, g.y, f.y, f.y)
    let z = SIMD8(g.z, g.z, g.z, g.z, f.z, f.z, f.z, f.z)
    return x * y * z
}

/// One level's grid, its points and its linear system.
private struct LevelSystem {
    let origin: SIMD3<Float>
    let spacing: Float
    let nodes: SIMD3<Int>
    var count: Int { nodes.x * nodes.y * nodes.z }
    /// Per point: its cell's lowest node, where it lies in the cell, and its screening weight α·a_p.
    var cells: [Int32] = []
    var fractions: [SIMD3<Float>] = []
    var weights: [Float] = []
    /// The area each point stands for, in square cells.
    var areas: [Float] = []
    var rightHandSide: [Float] = []
    var diagonal: [Float] = []
    /// From a cell's lowest node to its eight corners, x fastest.
    let cornerOffsets: [Int]

    init(bounds: (min: SIMD3<Float>, max: SIMD3<Float>), resolution: Int, margin: Float) {
        let extent = bounds.max - bounds.min
        let longest = max(extent.max(), 1e-6)
        spacing = longest * (1 + 2 * margin) / Float(resolution)
        // At least two cells of margin on every side, so that no point's stencil touches the boundary.
        let marginCells = max(2, Int((margin * longest / spacing).rounded(.up)))
        let cells = SIMD3<Int>((extent / spacing).rounded(.up)) &+ 2 &* marginCells
        nodes = cells &+ 1
        origin = (bounds.min + bounds.max) / 2 - SIMD3<Float>(cells) * spacing / 2
        let (sy, sz) = (nodes.x, nodes.x * nodes.y)
        cornerOffsets = [0, 1, sy, sy + 1, sz, sz + 1, sz + sy, sz + sy + 1]
    }

    @inline(__always) func index(_ i: Int, _ j: Int, _ k: Int) -> Int { i + nodes.x * (j + nodes.y * k) }

    /// Places the points, estimates the area each stands for from how many share its neighbourhood of 3 × 3 × 3
    /// cells (a plane through such a block cuts about 11 square cells of it), and builds the right-hand side and
    /// the diagonal.
    mutating func addPoints(_ cloud: OrientedPointCloud, screening: Float) {
        let n = cloud.count
        cells = [Int32](repeating: -1, count: n)
        fractions = [SIMD3<Float>](repeating: .zero, count: n)
        var perCell = [UInt16](repeating: 0, count: count)
        for p in 0..<n {
            let g = (cloud.positions[p] - origin) / spacing
            let base = SIMD3<Int>(Int(g.x.rounded(.down)), Int(g.y.rounded(.down)), Int(g.z.rounded(.down)))
            guard base.x >= 1, base.y >= 1, base.z >= 1, base.x < nodes.x - 2, base.y < nodes.y - 2,
                  base.z < nodes.z - 2 else { continue }
            let cell = index(base.x, base.y, base.z)
            cells[p] = Int32(cell)
            fractions[p] = g - SIMD3<Float>(base)
            if perCell[cell] < .max { perCell[cell] += 1 }
        }
        areas = [Float](repeating: 0, count: n)
        weights = [Float](repeating: 0, count: n)
        let sy = nodes.x, sz = nodes.x * nodes.y
        for p in 0..<n where cells[p] >= 0 {
            let cell = Int(cells[p])
            var neighbours = 0
            for dz in -1...1 {
                for dy in -1...1 {
                    for dx in -1...1 { neighbours += Int(perCell[cell + dx + dy * sy + dz * sz]) }
                }
            }
            areas[p] = 11 / Float(max(1, neighbours))
            weights[p] = screening * areas[p]
        }
        perCell = []
        var rightHandSide = [Float](repeating: 0, count: count)
        var diagonal = [Float](repeating: 6, count: count)
        let offsets = cornerOffsets
        rightHandSide.withUnsafeMutableBufferPointer { b in
            diagonal.withUnsafeMutableBufferPointer { d in
                for p in 0..<n where cells[p] >= 0 {
                    let normal = cloud.normals[p], area = areas[p]
                    let g = (cloud.positions[p] - origin) / spacing
                    // The normal, turned inwards (the indicator grows into the object), onto each axis's edges.
                    for axis in 0..<3 {
                        let component = -normal[axis] * area
                        guard component != 0 else { continue }
                        var shifted = g
                        shifted[axis] -= 0.5
                        let base = SIMD3<Int>(Int(shifted.x.rounded(.down)), Int(shifted.y.rounded(.down)),
                                              Int(shifted.z.rounded(.down)))
                        let f = shifted - SIMD3<Float>(base)
                        let step = axis == 0 ? 1 : axis == 1 ? sy : sz
                        let first = index(base.x, base.y, base.z)
                        let w = cornerWeights(f)
                        for corner in 0..<8 {
                            let edge = first + offsets[corner]
                            b[edge] -= component * w[corner]
                            b[edge + step] += component * w[corner]
                        }
                    }
                    // The screening term pulls χ(p) to ½.
                    let weight = weights[p], cell = Int(cells[p]), w = cornerWeights(fractions[p])
                    for corner in 0..<8 {
                        let node = cell + offsets[corner]
                        b[node] += weight * 0.5 * w[corner]
                        d[node] += weight * w[corner] * w[corner]
                    }
                }
            }
        }
        // The boundary is fixed at 0: it is not an unknown.
        forEachBoundaryNode { rightHandSide[$0] = 0; diagonal[$0] = 1 }
        self.rightHandSide = rightHandSide
        self.diagonal = diagonal
        // In the order of their cells from here on, so that applying the screening term walks memory in order.
        let order = cells.indices.filter { cells[$0] >= 0 }.sorted { cells[$0] < cells[$1] }
        cells = order.map { cells[$0] }
        fractions = order.map { fractions[$0] }
        weights = order.map { weights[$0] }
        areas = order.map { areas[$0] }
    }

    func forEachBoundaryNode(_ body: (Int) -> Void) {
        for k in 0..<nodes.z {
            for j in 0..<nodes.y {
                let edgeRow = k == 0 || k == nodes.z - 1 || j == 0 || j == nodes.y - 1
                for i in 0..<nodes.x where edgeRow || i == 0 || i == nodes.x - 1 { body(index(i, j, k)) }
            }
        }
    }

    /// Trilinear interpolation of a coarser level's solution at this level's interior nodes.
    func interpolate(_ coarse: ImplicitGrid, into values: inout [Float]) {
        for k in 1..<(nodes.z - 1) {
            for j in 1..<(nodes.y - 1) {
                for i in 1..<(nodes.x - 1) {
                    let position = origin + spacing * SIMD3<Float>(Float(i), Float(j), Float(k))
                    values[index(i, j, k)] = coarse.value(at: position)
                }
            }
        }
    }

    /// q = A p: the Laplacian over the interior, in slabs of z on every core, then the screening term.
    func apply(_ p: UnsafeMutableBufferPointer<Float>, to q: UnsafeMutableBufferPointer<Float>) {
        let (nx, ny, nz) = (nodes.x, nodes.y, nodes.z)
        let sy = nx, sz = nx * ny
        let slabs = min(nz - 2, ProcessInfo.processInfo.activeProcessorCount * 4)
        DispatchQueue.concurrentPerform(iterations: slabs) { slab in
            let first = 1 + slab * (nz - 2) / slabs, last = 1 + (slab + 1) * (nz - 2) / slabs
            for k in first..<last {
                for j in 1..<(ny - 1) {
                    let row = j * sy + k * sz
                    for i in (row + 1)..<(row + nx - 1) {
                        q[i] = 6 * p[i] - p[i - 1] - p[i + 1] - p[i - sy] - p[i + sy] - p[i - sz] - p[i + sz]
                    }
                }
            }
        }
        cornerOffsets.withUnsafeBufferPointer { offsets in
            for n in cells.indices where cells[n] >= 0 {
                let cell = Int(cells[n]), w = cornerWeights(fractions[n])
                var value: Float = 0
                for c in 0..<8 { value += w[c] * p[cell + offsets[c]] }
                value *= weights[n]
                for c in 0..<8 { q[cell + offsets[c]] += value * w[c] }
            }
        }
    }

    /// Preconditioned conjugate gradients from `x`; the iterations used and the final relative residual, or nil
    /// when stopped. The vector steps run in chunks on every core, as the Laplacian does.
    func solve(_ x: inout [Float], iterations: Int, tolerance: Float,
               shouldContinue: (Double) -> Bool) -> (Int, Double)? {
        let n = count
        var r = [Float](repeating: 0, count: n), p = [Float](repeating: 0, count: n)
        var q = [Float](repeating: 0, count: n)
        let chunks = ProcessInfo.processInfo.activeProcessorCount * 4
        /// Runs `body` over `chunks` ranges of 0..<n at once and adds up what it returns.
        func sum(_ body: (Range<Int>) -> SIMD2<Double>) -> SIMD2<Double> {
            var partial = [SIMD2<Double>](repeating: .zero, count: chunks)
            partial.withUnsafeMutableBufferPointer { partial in
                DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                    partial[chunk] = body((chunk * n / chunks)..<((chunk + 1) * n / chunks))
                }
            }
            return partial.reduce(.zero, +)
        }
        var used = 0, residual = 0.0
        var stopped = false
        x.withUnsafeMutableBufferPointer { x in
            r.withUnsafeMutableBufferPointer { r in
                p.withUnsafeMutableBufferPointer { p in
                    q.withUnsafeMutableBufferPointer { q in
                        rightHandSide.withUnsafeBufferPointer { b in
                            diagonal.withUnsafeBufferPointer { d in
                                apply(x, to: q)
                                var sums = sum { range in
                                    var s = SIMD2<Double>()
                                    for i in range {
                                        r[i] = b[i] - q[i]
                                        p[i] = r[i] / d[i]
                                        s += SIMD2(Double(r[i] * p[i]), Double(r[i] * r[i]))
                                    }
                                    return s
                                }
                                var bNorm = sum { range in
                                    var bb = 0.0
                                    for i in range { bb += Double(b[i] * b[i]) }
                                    return SIMD2(bb, 0)
                                }.x
                                bNorm = max(bNorm.squareRoot(), 1e-30)
                                var rz = sums.x
                                residual = sums.y.squareRoot() / bNorm
                                while used < iterations, residual > Double(tolerance) {
                                    if !shouldContinue(Double(used) / Double(iterations)) { stopped = true; return }
                                    apply(p, to: q)
                                    let pq = sum { range in
                                        var s = 0.0
                                        for i in range { s += Double(p[i] * q[i]) }
                                        return SIMD2(s, 0)
                                    }.x
                                    guard pq > 0 else { break }
                                    let alpha = Float(rz / pq)
                                    sums = sum { range in
                                        var rz = 0.0, rr = 0.0
                                        for i in range {
                                            x[i] += alpha * p[i]
                                            r[i] -= alpha * q[i]
                                            rz += Double(r[i] * r[i] / d[i])
                                            rr += Double(r[i] * r[i])
                                        }
                                        return SIMD2(rz, rr)
                                    }
                                    let beta = Float(sums.x / rz)
                                    rz = sums.x
                                    _ = sum { range in
                                        for i in range { p[i] = r[i] / d[i] + beta * p[i] }
                                        return .zero
                                    }
                                    used += 1
                                    residual = sums.y.squareRoot() / bNorm
                                }
                            }
                        }
                    }
                }
            }
        }
        return stopped ? nil : (used, residual)
    }

    /// The area-weighted mean of the solution at the points: the level set through them.
    func isoValue(of values: [Float]) -> Float {
        var sum = 0.0, weight = 0.0
        for n in cells.indices where cells[n] >= 0 {
            let cell = Int(cells[n]), w = cornerWeights(fractions[n])
            var value: Float = 0
            for c in 0..<8 { value += w[c] * values[cell + cornerOffsets[c]] }
            sum += Double(areas[n] * value)
            weight += Double(areas[n])
        }
        return weight > 0 ? Float(sum / weight) : 0.5
    }

    /// Cells within `radius` cells (in each axis) of a point's cell: a box dilation, one axis at a time.
    func support(radius: Int) -> [Bool] {
        var marked = [Bool](repeating: false, count: count)
        for cell in cells where cell >= 0 { marked[Int(cell)] = true }
        guard radius > 0 else { return marked }
        let strides = [1, nodes.x, nodes.x * nodes.y], lengths = [nodes.x, nodes.y, nodes.z]
        for axis in 0..<3 {
            var next = [Bool](repeating: false, count: count)
            let stride = strides[axis], length = lengths[axis]
            for start in 0..<count where (start / stride) % length == 0 {
                // One line along the axis: a running count of marks within the window.
                var inWindow = 0
                for position in 0..<min(radius, length) where marked[start + position * stride] { inWindow += 1 }
                for position in 0..<length {
                    let ahead = position + radius, behind = position - radius - 1
                    if ahead < length, marked[start + ahead * stride] { inWindow += 1 }
                    if behind >= 0, marked[start + behind * stride] { inWindow -= 1 }
                    next[start + position * stride] = inWindow > 0
                }
            }
            marked = next
        }
        return marked
    }
}
