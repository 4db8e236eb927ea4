import Foundation
import ReplicaCore
import ReplicaGeometry

/// How PatchMatch stereo matches: the window, the cost, the search and what is kept.
public struct PatchMatchOptions: Equatable, Sendable {
    /// Half the side of the matching window, in pixels; the window is sampled every `windowStep` pixels, so the
    /// default 4 and 2 read 5 × 5 samples over 9 × 9 pixels. Default 4.
    public var windowRadius = 4
    /// Default 2.
    public var windowStep = 2
    /// Red-black sweeps over the image at the finest level; each visits every pixel once. Default 4.
    public var iterations = 4
    /// Sweeps at each coarser level before its planes seed the finer one. Default 4.
    public var coarseIterations = 4
    /// Levels of halving below the image the search starts from (0: the image itself). The coarse levels are
    /// cheap and give the fine one planes that are already nearly right. Default 1.
    public var pyramidLevels = 1
    /// How many of the source views' costs are averaged, the best first: views that see a pixel occluded or
    /// out of frame then do not count against it. Default 3.
    public var bestViews = 3
    /// Bilateral weights: how fast a window sample's weight falls with its intensity difference from the centre
    /// (0...1 units) and with its distance (pixels). Defaults 0.08 and 3.
    public var sigmaIntensity: Float = 0.08
    public var sigmaSpatial: Float = 3
    /// Windows whose weighted standard deviation is below this (0...1 units) have nothing to match and get no
    /// depth. Default 0.008, about two grey levels.
    public var minimumDeviation: Float = 0.008
    /// Pixels whose final cost (1 − NCC, averaged over the best views) is above this get no depth. Default 0.5.
    public var maximumCost: Float = 0.5
    /// Seeds the random planes; the same seed and images give the same map. Default 1.
    public var seed: UInt64 = 1

    public init() {}

    /// Rejects a window, sweep count or threshold that cannot work.
    public func validate() throws(OptionsError) {
        guard (1...15).contains(windowRadius), (1...windowRadius).contains(windowStep) else {
            throw OptionsError("windowRadius must be 1...15 and windowStep 1...windowRadius")
        }
        guard (1...50).contains(iterations), (0...50).contains(coarseIterations), (0...6).contains(pyramidLevels)
        else { throw OptionsError("iterations must be 1...50, coarseIterations 0...50 and pyramidLevels 0...6") }
        guard bestViews >= 1 else { throw OptionsError("bestViews must be at least 1") }
        guard sigmaIntensity > 0, sigmaSpatial > 0, minimumDeviation >= 0, (0...2).contains(maximumCost) else {
            throw OptionsError("sigmas must be positive, minimumDeviation not negative, maximumCost 0...2")
        }
    }
}

/// One view's depth and normal per pixel, in its own pinhole camera's frame.
public struct DepthMap: Sendable, Equatable {
    public var camera: PinholeCamera
    public var camFromWorld: Rigid3
    /// z-depth per pixel, row-major; 0 where the pixel has none.
    public var depth: [Float]
    /// Unit normal per pixel (x, y, z interleaved) in the camera's frame, facing the camera.
    public var normal: [Float]
    /// 1 − NCC averaged over the best source views, 0...2.
    public var cost: [Float]
    /// RGB per pixel of the undistorted reference image.
    public var rgb: [UInt8]

    public var width: Int { camera.width }
    public var height: Int { camera.height }

    public init(camera: PinholeCamera, camFromWorld: Rigid3, depth: [Float], normal: [Float], cost: [Float],
                rgb: [UInt8]) {
        let count = camera.width * camera.height
        precondition(depth.count == count && normal.count == 3 * count && cost.count == count
                     && rgb.count == 3 * count, "depth map planes do not match the camera's size")
        self.camera = camera
        self.camFromWorld = camFromWorld
        self.depth = depth
        self.normal = normal
        self.cost = cost
        self.rgb = rgb
    }

    /// Pixels with a depth.
    public var validCount: Int { depth.reduce(0) { $0 + ($1 > 0 ? 1 : 0) } }
}

/// Multi-view PatchMatch stereo (Bleyer et al. 2011; Galliani et al.'s red-black scheme, 2015; Xu and Tao's
/// adaptive sampling, 2019): each pixel of the reference view holds a plane, a depth and a normal, scored by
/// the bilateral-weighted normalised cross-correlation of its window with the windows that plane maps it to in
/// the source views. Planes spread to neighbours that they fit better than their own and are refined by random
/// perturbation; the search runs coarse to fine. A plane's cost is the average of its best source views' costs,
/// so occlusion in a few views does not lose a pixel.
public enum PatchMatchStereo {
    /// The depth map of `reference` against `sources` (at least one), searching depths `depthRange` (z in the
    /// reference camera). `progress` gets 0...1 after each sweep and returns false to stop, in which case nil.
    public static func depthMap(reference: StereoImage, sources: [StereoImage], depthRange: ClosedRange<Double>,
                                options: PatchMatchOptions = .init(),
                                progress: (Double) -> Bool = { _ in true }) -> DepthMap? {
        precondition(!sources.isEmpty, "stereo needs at least one source view")
        precondition(depthRange.lowerBound > 0, "depths must be positive")
        // The pyramid: level 0 is the image, each next one half its size, down to a side of 64 pixels.
        var levels = [(reference, sources)]
        while levels.count <= options.pyramidLevels, min(levels.last!.0.width, levels.last!.0.height) >= 128 {
            let (ref, src) = levels.last!
            levels.append((ref.halved(), src.map { $0.halved() }))
        }
        let sweeps = (levels.count - 1) * options.coarseIterations + options.iterations
        var done = 0
        var state: PatchMatchSolver?
        for (index, level) in levels.enumerated().reversed() {
            let solver = PatchMatchSolver(reference: level.0, sources: level.1, depthRange: depthRange,
                                          options: options, seed: options.seed &+ UInt64(index))
            if let coarse = state { solver.seed(from: coarse) } else { solver.randomise() }
            let count = index == 0 ? options.iterations : options.coarseIterations
            for iteration in 0..<count {
                solver.sweep(iteration: iteration, of: count)
                done += 1
                if !progress(Double(done) / Double(sweeps)) { return nil }
            }
            state = solver
        }
        return state!.result(maximumCost: options.maximumCost, image: reference)
    }
}

/// The working state of one pyramid level: planes, costs and the images, in flat buffers the sweeps index
/// without bounds checks. Pixel coordinates here are array indices (pixel centres at whole numbers).
final class PatchMatchSolver {
    private let width: Int, height: Int
    private let options: PatchMatchOptions
    private let minimumDepth: Float, maximumDepth: Float
    /// The reference camera in array coordinates.
    private let fx: Float, fy: Float, cx: Float, cy: Float
    private let reference: UnsafeMutableBufferPointer<Float>
    private let sources: [Source]
    private let depth: UnsafeMutableBufferPointer<Float>
    private let normals: UnsafeMutableBufferPointer<SIMD3<Float>>
    private let cost: UnsafeMutableBufferPointer<Float>
    /// Whether a pixel's window has texture enough to match (and lies inside the image).
    private let textured: UnsafeMutableBufferPointer<Bool>
    /// Window sample offsets and spatial weights; the intensity weight comes from a table by grey level.
    private let offsets: [(dx: Int, dy: Int)]
    private let spatialWeight: UnsafeMutableBufferPointer<Float>
    private let intensityWeight: UnsafeMutableBufferPointer<Float>
    /// Per visit: the centred reference window and its weights; per plane: the source views' costs.
    private let window: UnsafeMutableBufferPointer<Float>
    private let weight: UnsafeMutableBufferPointer<Float>
    private let viewCosts: UnsafeMutableBufferPointer<Float>
    private var weightSum: Float = 0
    private var referenceVariance: Float = 0
    private var random: XorShiftRandom

    /// A source view: its image and the parts of the plane-induced homography that do not depend on the plane,
    /// H = A + b gᵀ with A = K_s R K_r⁻¹ and b = K_s t, where (R, t) takes reference camera coordinates to the
    /// source's.
    struct Source {
        var pixels: UnsafeMutableBufferPointer<Float>
        var width: Int
        var height: Int
        var a: (Float, Float, Float, Float, Float, Float, Float, Float, Float)
        var b: (Float, Float, Float)
    }

    init(reference image: StereoImage, sources images: [StereoImage], depthRange: ClosedRange<Double>,
         options: PatchMatchOptions, seed: UInt64) {
        width = image.width
        height = image.height
        self.options = options
        minimumDepth = Float(depthRange.lowerBound)
        maximumDepth = Float(depthRange.upperBound)
        fx = Float(image.camera.focalX)
        fy = Float(image.camera.focalY)
        cx = Float(image.camera.principalX - 0.5)
        cy = Float(image.camera.principalY - 0.5)
        reference = Self.copy(image.intensity)
        let referenceFromWorld = image.camFromWorld
        let inverseK = Matrix3(rows: Vector3(1 / image.camera.focalX, 0, -Double(cx) / image.camera.focalX),
                               Vector3(0, 1 / image.camera.focalY, -Double(cy) / image.camera.focalY),
                               Vector3(0, 0, 1))
        sources = images.map { source in
            let relative = source.camFromWorld * referenceFromWorld.inverse
            let k = Matrix3(rows: Vector3(source.camera.focalX, 0, source.camera.principalX - 0.5),
                            Vector3(0, source.camera.focalY, source.camera.principalY - 0.5), Vector3(0, 0, 1))
            let a = (k * relative.rotation * inverseK).values.map(Float.init)
            let b = k * relative.translation
            return Source(pixels: Self.copy(source.intensity), width: source.width, height: source.height,
                          a: (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]),
                          b: (Float(b.x), Float(b.y), Float(b.z)))
        }
        let count = width * height
        depth = .allocate(capacity: count)
        depth.initialize(repeating: 0)
        normals = .allocate(capacity: count)
        normals.initialize(repeating: SIMD3(0, 0, -1))
        cost = .allocate(capacity: count)
        cost.initialize(repeating: 2)
        textured = .allocate(capacity: count)
        textured.initialize(repeating: false)
        var offsets: [(dx: Int, dy: Int)] = []
        for dy in stride(from: -options.windowRadius, through: options.windowRadius, by: options.windowStep) {
            for dx in stride(from: -options.windowRadius, through: options.windowRadius, by: options.windowStep) {
                offsets.append((dx, dy))
            }
        }
        self.offsets = offsets
        spatialWeight = Self.copy(offsets.map { offset in
            Float(exp(-Double(offset.dx * offset.dx + offset.dy * offset.dy)
                      / (2 * Double(options.sigmaSpatial * options.sigmaSpatial))))
        })
        intensityWeight = Self.copy((0...256).map { level in
            let difference = Double(level) / 256
            return Float(exp(-difference * difference / (2 * Double(options.sigmaIntensity * options.sigmaIntensity))))
        })
        window = .allocate(capacity: offsets.count)
        window.initialize(repeating: 0)
        weight = .allocate(capacity: offsets.count)
        weight.initialize(repeating: 0)
        viewCosts = .allocate(capacity: images.count)
        viewCosts.initialize(repeating: 2)
        random = XorShiftRandom(seed: seed)
        markTextured()
    }

    deinit {
        reference.deallocate()
        for source in sources { source.pixels.deallocate() }
        depth.deallocate()
        normals.deallocate()
        cost.deallocate()
        textured.deallocate()
        spatialWeight.deallocate()
        intensityWeight.deallocate()
        window.deallocate()
        weight.deallocate()
        viewCosts.deallocate()
    }

    private static func copy(_ values: [Float]) -> UnsafeMutableBufferPointer<Float> {
        let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: max(1, values.count))
        _ = buffer.initialize(from: values)
        return buffer
    }

    // MARK: - Starting planes

    /// Every textured pixel gets a random depth (uniform in inverse depth) and a random normal facing the
    /// camera.
    func randomise() {
        for y in 0..<height { for x in 0..<width where textured[y * width + x] {
            let index = y * width + x
            let plane = (randomDepth(), randomNormal(x: x, y: y))
            depth[index] = plane.0
            normals[index] = plane.1
            gatherWindow(x: x, y: y)
            cost[index] = planeCost(x: x, y: y, depth: plane.0, normal: plane.1)
        } }
    }

    /// Planes from the level above (half the size): each pixel takes the plane of the coarse pixel over it, its
    /// depth moved along the plane to this pixel's ray.
    func seed(from coarse: PatchMatchSolver) {
        for y in 0..<height { for x in 0..<width where textured[y * width + x] {
            let index = y * width + x
            let cxIndex = min(coarse.width - 1, x * coarse.width / width)
            let cyIndex = min(coarse.height - 1, y * coarse.height / height)
            let coarseIndex = cyIndex * coarse.width + cxIndex
            var plane = (randomDepth(), randomNormal(x: x, y: y))
            if coarse.depth[coarseIndex] > 0 {
                // The coarse plane's point, in this level's camera: depth is shared, the ray differs.
                let normal = coarse.normals[coarseIndex]
                let point = coarse.ray(x: cxIndex, y: cyIndex) * coarse.depth[coarseIndex]
                if let moved = depthOnPlane(point: point, normal: normal, x: x, y: y) { plane = (moved, normal) }
            }
            depth[index] = plane.0
            normals[index] = plane.1
            gatherWindow(x: x, y: y)
            cost[index] = planeCost(x: x, y: y, depth: plane.0, normal: plane.1)
        } }
    }

    // MARK: - Sweeps

    /// One red-black iteration: the pixels of one colour of the checkerboard take the best of their
    /// neighbours' planes and of perturbations of their own, then those of the other colour.
    func sweep(iteration: Int, of count: Int) {
        // Perturbations shrink as the planes settle.
        let scale = Float(pow(0.5, Double(iteration)))
        for colour in 0..<2 {
            for y in 0..<height {
                var x = (y + colour) & 1
                while x < width {
                    if textured[y * width + x] { update(x: x, y: y, scale: scale) }
                    x += 2
                }
            }
        }
    }

    /// Neighbours each side at odd distances (so always of the other colour); the nearest few and a few far
    /// ones, of which each side's cheapest is tried.
    private static let reach = [1, 3, 5, 7, 11]

    @inline(__always)
    private func update(x: Int, y: Int, scale: Float) {
        let index = y * width + x
        gatherWindow(x: x, y: y)
        var bestDepth = depth[index], bestNormal = normals[index], bestCost = cost[index]
        @inline(__always) func consider(_ candidateDepth: Float, _ candidateNormal: SIMD3<Float>) {
            let candidate = planeCost(x: x, y: y, depth: candidateDepth, normal: candidateNormal)
            if candidate < bestCost {
                bestCost = candidate
                bestDepth = candidateDepth
                bestNormal = candidateNormal
            }
        }
        // Propagation: per side, the neighbour with the lowest cost lends its plane.
        for side in 0..<4 {
            var chosen = -1
            var chosenCost: Float = .infinity
            for step in Self.reach {
                let (nx, ny) = side == 0 ? (x - step, y) : side == 1 ? (x + step, y)
                    : side == 2 ? (x, y - step) : (x, y + step)
                guard nx >= 0, ny >= 0, nx < width, ny < height else { break }
                let neighbour = ny * width + nx
                if depth[neighbour] > 0 && cost[neighbour] < chosenCost {
                    chosenCost = cost[neighbour]
                    chosen = neighbour
                }
            }
            guard chosen >= 0 else { continue }
            let normal = normals[chosen]
            let point = ray(x: chosen % width, y: chosen / width) * depth[chosen]
            if let moved = depthOnPlane(point: point, normal: normal, x: x, y: y) { consider(moved, normal) }
        }
        // Refinement: a fresh random plane, and the current one nudged in depth and normal.
        consider(randomDepth(), randomNormal(x: x, y: y))
        let nudged = bestDepth * (1 + 0.05 * scale * random.symmetric())
        consider(nudged, perturbed(bestNormal, by: 0.3 * scale, x: x, y: y))
        consider(bestDepth, perturbed(bestNormal, by: 0.15 * scale, x: x, y: y))
        depth[index] = bestDepth
        normals[index] = bestNormal
        cost[index] = bestCost
    }

    // MARK: - The cost of a plane

    /// Which pixels can be matched: their window lies inside the image and varies enough.
    private func markTextured() {
        let radius = options.windowRadius
        guard width > 2 * radius, height > 2 * radius else { return }
        for y in radius..<(height - radius) { for x in radius..<(width - radius) {
            gatherWindow(x: x, y: y)
            textured[y * width + x] = referenceVariance > options.minimumDeviation * options.minimumDeviation
                * weightSum
        } }
    }

    /// Loads the reference window around (x, y), centred on its weighted mean, with its bilateral weights.
    @inline(__always)
    private func gatherWindow(x: Int, y: Int) {
        let centre = reference[y * width + x]
        var sum: Float = 0, weighted: Float = 0
        for k in 0..<offsets.count {
            let value = reference[(y + offsets[k].dy) * width + x + offsets[k].dx]
            let level = min(256, Int(abs(value - centre) * 256))
            let w = spatialWeight[k] * intensityWeight[level]
            window[k] = value
            weight[k] = w
            sum += w
            weighted += w * value
        }
        let mean = weighted / sum
        var variance: Float = 0
        for k in 0..<offsets.count {
            let centred = window[k] - mean
            window[k] = centred
            variance += weight[k] * centred * centred
        }
        weightSum = sum
        referenceVariance = variance
    }

    /// The ray through array pixel (x, y), with z = 1.
    @inline(__always)
    func ray(x: Int, y: Int) -> SIMD3<Float> { SIMD3((Float(x) - cx) / fx, (Float(y) - cy) / fy, 1) }

    /// The depth at which pixel (x, y)'s ray meets the plane through `point` with `normal`; nil outside the
    /// search range or at a grazing angle.
    @inline(__always)
    private func depthOnPlane(point: SIMD3<Float>, normal: SIMD3<Float>, x: Int, y: Int) -> Float? {
        let r = ray(x: x, y: y)
        let denominator = (normal * r).sum()
        guard denominator < -1e-3 else { return nil }
        let value = (normal * point).sum() / denominator
        guard value >= minimumDepth, value <= maximumDepth else { return nil }
        return value
    }

    /// The cost of the plane with `planeDepth` and `normal` at (x, y), whose window `gatherWindow` loaded: the
    /// mean of the best `bestViews` source costs, each 1 − NCC (2 where the window leaves the source image).
    @inline(__always)
    private func planeCost(x: Int, y: Int, depth planeDepth: Float, normal n: SIMD3<Float>) -> Float {
        let r = ray(x: x, y: y)
        let rho = planeDepth * (n * r).sum()
        guard rho < 0 else { return 2 }
        // g = K⁻ᵀ n / ρ: the plane nᵀX = ρ in the reference camera, as a row acting on pixels.
        let g0 = n.x / fx / rho, g1 = n.y / fy / rho, g2 = (n.z - cx / fx * n.x - cy / fy * n.y) / rho
        let step = Float(options.windowStep)
        let side = 2 * options.windowRadius / options.windowStep + 1
        let startX = Float(x - options.windowRadius), startY = Float(y - options.windowRadius)
        for s in 0..<sources.count {
            let source = sources[s]
            let a = source.a, b = source.b
            let h00 = a.0 + b.0 * g0, h01 = a.1 + b.0 * g1, h02 = a.2 + b.0 * g2
            let h10 = a.3 + b.1 * g0, h11 = a.4 + b.1 * g1, h12 = a.5 + b.1 * g2
            let h20 = a.6 + b.2 * g0, h21 = a.7 + b.2 * g1, h22 = a.8 + b.2 * g2
            var rowX = h00 * startX + h01 * startY + h02
            var rowY = h10 * startX + h11 * startY + h12
            var rowZ = h20 * startX + h21 * startY + h22
            let stepX = (h00 * step, h10 * step, h20 * step), stepY = (h01 * step, h11 * step, h21 * step)
            let limitX = Float(source.width - 1), limitY = Float(source.height - 1)
            let pixels = source.pixels.baseAddress!, stride = source.width
            // The window is convex and the homography keeps it so where z stays positive (z is affine in the
            // pixel): when its four corners land in front of the source and on its image, every sample does.
            let span = Float(side - 1)
            @inline(__always) func lands(_ cornerX: Float, _ cornerY: Float) -> Bool {
                let pz = rowZ + cornerX * stepX.2 + cornerY * stepY.2
                let u = (rowX + cornerX * stepX.0 + cornerY * stepY.0) / pz
                let v = (rowY + cornerX * stepX.1 + cornerY * stepY.1) / pz
                return pz > 0 && u >= 0 && v >= 0 && u < limitX && v < limitY
            }
            guard lands(0, 0), lands(span, 0), lands(0, span), lands(span, span) else {
                viewCosts[s] = 2
                continue
            }
            var sum: Float = 0, squares: Float = 0, product: Float = 0
            var k = 0
            // The samples are stepped to, not computed afresh, so rounding can carry one a hair past a corner's
            // bound (AddressSanitizer caught a read past the last row): the cell's top-left is clamped, which at
            // worst extrapolates by that hair.
            let lastCellX = source.width - 2, lastCellY = source.height - 2
            for _ in 0..<side {
                var px = rowX, py = rowY, pz = rowZ
                for _ in 0..<side {
                    let inverse = 1 / pz
                    let u = px * inverse, v = py * inverse
                    let u0 = min(Int(u), lastCellX), v0 = min(Int(v), lastCellY)
                    let fu = u - Float(u0), fv = v - Float(v0)
                    let at = pixels + (v0 * stride + u0)
                    let top = at[0] + fu * (at[1] - at[0])
                    let bottom = at[stride] + fu * (at[stride + 1] - at[stride])
                    let value = top + fv * (bottom - top)
                    let wv = weight[k] * value
                    sum += wv
                    squares += wv * value
                    product += window[k] * wv
                    k += 1
                    px += stepX.0; py += stepX.1; pz += stepX.2
                }
                rowX += stepY.0; rowY += stepY.1; rowZ += stepY.2
            }
            let variance = squares - sum * sum / weightSum
            let denominator = (variance * referenceVariance).squareRoot()
            let ncc = denominator > 1e-9 ? product / denominator : 0
            viewCosts[s] = 1 - max(-1, min(1, ncc))
        }
        return meanOfBest()
    }

    /// The mean of the `bestViews` smallest of `viewCosts` (all of them when there are fewer).
    @inline(__always)
    private func meanOfBest() -> Float {
        let count = sources.count, wanted = min(options.bestViews, count)
        // An insertion sort of a handful of numbers, in place.
        for i in 1..<max(1, count) {
            let value = viewCosts[i]
            var j = i - 1
            while j >= 0 && viewCosts[j] > value {
                viewCosts[j + 1] = viewCosts[j]
                j -= 1
            }
            viewCosts[j + 1] = value
        }
        var total: Float = 0
        for i in 0..<wanted { total += viewCosts[i] }
        return total / Float(wanted)
    }

    // MARK: - Random planes

    @inline(__always)
    private func randomDepth() -> Float {
        let near = 1 / minimumDepth, far = 1 / maximumDepth
        return 1 / (far + (near - far) * random.unit())
    }

    /// A uniformly random unit normal that faces the camera at (x, y), at least 5° from edge-on.
    @inline(__always)
    private func randomNormal(x: Int, y: Int) -> SIMD3<Float> {
        let r = ray(x: x, y: y)
        let direction = r / (r * r).sum().squareRoot()
        while true {
            let v = SIMD3(random.symmetric(), random.symmetric(), random.symmetric())
            let length = (v * v).sum()
            guard length > 1e-4, length <= 1 else { continue }
            var n = v / length.squareRoot()
            let facing = (n * direction).sum()
            if facing > 0 { n = -n }
            if abs(facing) > 0.087 { return n }
        }
    }

    /// `normal` moved by a random vector of up to `amount` and renormalised; kept facing the camera.
    @inline(__always)
    private func perturbed(_ normal: SIMD3<Float>, by amount: Float, x: Int, y: Int) -> SIMD3<Float> {
        let moved = normal + SIMD3(random.symmetric(), random.symmetric(), random.symmetric()) * amount
        let length = (moved * moved).sum().squareRoot()
        guard length > 1e-6 else { return normal }
        let n = moved / length
        let r = ray(x: x, y: y)
        return (n * r).sum() < -0.087 * (r * r).sum().squareRoot() ? n : normal
    }

    // MARK: - Result

    /// The map, with pixels above `maximumCost` (and those never matched) cleared.
    func result(maximumCost: Float, image: StereoImage) -> DepthMap {
        let count = width * height
        var depths = [Float](repeating: 0, count: count)
        var normalValues = [Float](repeating: 0, count: 3 * count)
        var costs = [Float](repeating: 2, count: count)
        for index in 0..<count where textured[index] && depth[index] > 0 && cost[index] <= maximumCost {
            depths[index] = depth[index]
            let n = normals[index]
            normalValues[3 * index] = n.x
            normalValues[3 * index + 1] = n.y
            normalValues[3 * index + 2] = n.z
            costs[index] = cost[index]
        }
        return DepthMap(camera: image.camera, camFromWorld: image.camFromWorld, depth: depths, normal: normalValues,
                        cost: costs, rgb: image.rgb)
    }
}

/// Marsaglia's xorshift: fast, small and good enough to scatter planes.
struct XorShiftRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    @inline(__always)
    mutating func next() -> UInt64 {
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return state
    }

    /// Uniform in [0, 1).
    @inline(__always)
    mutating func unit() -> Float { Float(next() >> 40) * (1 / Float(1 << 24)) }

    /// Uniform in [−1, 1).
    @inline(__always)
    mutating func symmetric() -> Float { 2 * unit() - 1 }
}
