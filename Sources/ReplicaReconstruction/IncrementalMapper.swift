import Foundation
import ReplicaCore
import ReplicaGeometry

/// One photo as structure from motion sees it: its keypoints (pixels of the working copy) and its camera.
public struct AlignmentImage: Equatable, Sendable {
    public var name: String
    /// Index into `AlignmentInput.cameras`: the photos of one physical camera share its intrinsics.
    public var camera: Int
    public var keypoints: [Vector2]

    public init(name: String, camera: Int, keypoints: [Vector2]) {
        self.name = name
        self.camera = camera
        self.keypoints = keypoints
    }
}

/// A verified pair by image index, with its inlier matches.
public struct AlignmentPair: Equatable, Sendable {
    public var first: Int
    public var second: Int
    public var configuration: TwoViewConfiguration
    public var inliers: [FeatureMatch]

    public init(first: Int, second: Int, configuration: TwoViewConfiguration, inliers: [FeatureMatch]) {
        self.first = first
        self.second = second
        self.configuration = configuration
        self.inliers = inliers
    }
}

/// What incremental structure from motion starts from.
public struct AlignmentInput: Sendable {
    public var images: [AlignmentImage]
    /// The starting intrinsics of each physical camera: the EXIF focal where there is one, a guess otherwise.
    public var cameras: [SimpleRadialCamera]
    /// Per camera, whether its focal length came from EXIF (and is trusted to a few per cent) or is a guess.
    public var focalIsKnown: [Bool]
    public var pairs: [AlignmentPair]

    public init(images: [AlignmentImage], cameras: [SimpleRadialCamera], focalIsKnown: [Bool]? = nil,
                pairs: [AlignmentPair]) {
        self.images = images
        self.cameras = cameras
        self.focalIsKnown = focalIsKnown ?? Array(repeating: false, count: cameras.count)
        self.pairs = pairs
    }
}

/// The thresholds of incremental structure from motion; COLMAP's mapper defaults where it has one.
public struct AlignmentOptions: Equatable, Sendable {
    /// Inlier matches an initial pair needs; relaxed by halves down to a quarter when no pair has them.
    public var initialMinimumInliers = 100
    /// The median triangulation angle an initial pair needs, in degrees; relaxed by halves down to 2° when no
    /// pair has it (a narrow ring of photos).
    public var initialMinimumAngleDegrees = 16.0
    /// Pose inliers an image needs to be registered; half as many when no image has them.
    public var registrationMinimumInliers = 30
    /// The largest reprojection error of an inlier of registration, in pixels.
    public var registrationMaximumErrorPixels = 12.0
    /// The least fraction of an image's 2D–3D correspondences its pose must explain. Below it the image
    /// waits: most of what it sees came from false matches (a symmetric object seen from its mirror side), and
    /// a pose from the rest would be a guess. COLMAP's 0.25.
    public var registrationMinimumInlierRatio = 0.25
    /// The largest reprojection error of an observation kept, in pixels.
    public var maximumReprojectionErrorPixels = 4.0
    /// The smallest angle between two rays of a point kept, in degrees.
    public var minimumTriangulationAngleDegrees = 1.5
    /// Registered images a local bundle adjustment moves besides the newest one.
    public var localBundleImages = 6
    /// The most Levenberg–Marquardt iterations of a local bundle adjustment, of a global one while the model
    /// grows (each starts near its optimum: a few steps settle it), and of the final global ones.
    public var localBundleIterations = 10
    public var globalBundleIterations = 10
    public var finalBundleIterations = 100
    /// The standard deviation of an EXIF focal length, as a fraction of it: 35 mm equivalents are rounded and
    /// lenses breathe with focus.
    public var knownFocalSigma = 0.05
    /// The standard deviation of the radial coefficient about 0: most lenses distort little, and the
    /// coefficient is otherwise free to trade against the focal length.
    public var radialSigma = 0.1
    /// A global bundle adjustment runs when the registered images have grown by this factor since the last one.
    public var globalBundleGrowth = 1.25
    /// The last adjustment refines a camera's principal point too when the model pins it down: when its
    /// standard deviation, in each axis, is at most this fraction of the photo's longer side. A principal point
    /// off the centre otherwise leaves every pose turned by its angle (0.7° on the Middlebury temple); a narrow
    /// field of view or a small object leave it free, and there it stays at the centre, as COLMAP keeps it.
    public var principalPointDeviationFraction = 0.01
    /// A refined principal point further from the photo's centre than this fraction of each side is taken for
    /// a degenerate fit, and the last adjustment runs again with it held at the centre.
    public var principalPointOffsetFraction = 0.1
    /// A registered image is placed again when a fresh pose explains this many times as many of its keypoints'
    /// 2D–3D correspondences as its own pose does, and turns it by at least `reposeMinimumTurnDegrees`.
    public var reposeInlierGain = 1.5
    public var reposeMinimumTurnDegrees = 10.0
    public var seed: UInt64 = 0

    public init() {}
}

/// A point of the sparse model and the keypoints that see it.
public struct AlignedPoint: Equatable, Sendable {
    public var position: Vector3
    /// (image index, feature index) per observation, one per image.
    public var track: [SIMD2<Int32>]

    public init(position: Vector3, track: [SIMD2<Int32>]) {
        self.position = position
        self.track = track
    }
}

/// The sparse model: refined cameras, a pose per registered image, and the points.
public struct AlignmentResult: Sendable {
    public var cameras: [SimpleRadialCamera]
    /// camFromWorld per input image; nil for an image that could not be placed.
    public var poses: [Rigid3?]
    public var points: [AlignedPoint]
    /// The mean reprojection error over every observation, in pixels.
    public var meanReprojectionError: Double
    /// Seconds spent per step (initialisation, registration, triangulation, bundle adjustment).
    public var timings: [String: Double]

    public var registeredCount: Int { poses.lazy.filter { $0 != nil }.count }

    public var meanTrackLength: Double {
        points.isEmpty ? 0 : Double(points.reduce(0) { $0 + $1.track.count }) / Double(points.count)
    }
}

/// Incremental structure from motion, as COLMAP and Bundler do it: a well-conditioned initial pair, then one
/// image at a time registered by P3P against the points it sees, new points triangulated from it, local bundle
/// adjustment around it, and global bundle adjustment with outlier filtering and re-triangulation as the model
/// grows.
public final class IncrementalMapper {
    private let input: AlignmentInput
    private let options: AlignmentOptions
    private let graph: CorrespondenceGraph

    private var cameras: [SimpleRadialCamera]
    private var poses: [Rigid3?]
    /// The point each keypoint belongs to, per image; -1 for none.
    private var pointOf: [[Int32]]
    private var points: [AlignedPoint?] = []
    private var liveCount = 0
    /// Images that failed registration since the model last grew, so they are not tried again at once.
    private var failedSinceGrowth: Set<Int> = []
    private var timings: [String: Double] = [:]
    private var registeredAtLastGlobal = 0

    public init(input: AlignmentInput, options: AlignmentOptions = AlignmentOptions()) {
        self.input = input
        self.options = options
        graph = CorrespondenceGraph(input)
        cameras = input.cameras
        poses = Array(repeating: nil, count: input.images.count)
        pointOf = input.images.map { Array(repeating: -1, count: $0.keypoints.count) }
    }

    /// Builds the model. `progress` hears the registered fraction and what is happening, and answers whether to
    /// go on; the result so far comes back when it says no.
    public func run(progress: (Double, String) -> Bool = { _, _ in true }) -> AlignmentResult {
        guard timed("initialization", { initialize() }) else { return result() }
        // Whether the model has been adjusted and re-triangulated in full since the last image registered.
        var settled = false
        while progress(Double(registeredCount) / Double(input.images.count),
                       "\(registeredCount) of \(input.images.count) images registered") {
            var next = timed("registration", { registerNextImage() })
            if next == nil, !settled, registeredCount < input.images.count {
                // Adjusted and re-triangulated, the model may hold enough points for an image that found too
                // few: COLMAP too tries once more after a global adjustment before it stops.
                settle()
                settled = true
                next = timed("registration", { registerNextImage() })
            }
            guard let image = next else { break }
            settled = false
            timed("triangulation", { triangulate(image: image) })
            timed("local bundle adjustment", { adjustLocally(around: image) })
            if Double(registeredCount) >= options.globalBundleGrowth * Double(registeredAtLastGlobal) {
                timed("global bundle adjustment", { adjustGlobally(iterations: options.globalBundleIterations) })
                timed("triangulation", { retriangulate() })
            }
        }
        if !settled { settle() }
        timed("final bundle adjustment", { adjustFinally() })
        return result()
    }

    /// A full adjustment to convergence, images the grown model contradicts placed again, then every keypoint
    /// without a point triangulated again.
    private func settle() {
        timed("final bundle adjustment", { adjustGlobally(iterations: options.finalBundleIterations) })
        if timed("registration", { reposeContradicted() }) > 0 {
            timed("final bundle adjustment", { adjustGlobally(iterations: options.finalBundleIterations) })
        }
        timed("triangulation", { retriangulate() })
    }

    /// Places again each registered image whose 2D–3D correspondences, now that the model has grown, agree
    /// far better with another pose than with its own; how many moved. A photo of a symmetric object can be
    /// registered from its mirror side while its true neighbours are missing (the false matches agree with
    /// each other); once those neighbours are in, the true correspondences outnumber the false ones, and a
    /// fresh pose from all of them finds the right side.
    private func reposeContradicted() -> Int {
        var moved = 0
        for image in input.images.indices where poses[image] != nil && image != gauge.0 && image != gauge.1 {
            let matches = visiblePoints(image).candidates
            guard matches.count >= options.registrationMinimumInliers,
                  let estimate = estimatePose(image, from: matches, minimumInliers: options.registrationMinimumInliers)
            else { continue }
            let held = Set(matches.filter {
                reprojectionError(points[Int($0.point)]!.position, image: image, feature: $0.feature)
                    <= options.registrationMaximumErrorPixels
            }.map(\.feature)).count
            let agreeing = Set(matches.indices.filter { estimate.inlierMask[$0] }.map { matches[$0].feature }).count
            guard Double(agreeing) >= options.reposeInlierGain * Double(held),
                  estimate.camFromWorld.rotation.angle(to: poses[image]!.rotation) * 180 / .pi
                    >= options.reposeMinimumTurnDegrees else { continue }
            for feature in pointOf[image].indices where pointOf[image][feature] >= 0 {
                let id = Int(pointOf[image][feature])
                pointOf[image][feature] = -1
                points[id]!.track.removeAll { $0.x == Int32(image) }
                if points[id]!.track.count < 2 { removePoint(id) }
            }
            poses[image] = estimate.camFromWorld
            // Points only this image and one other saw went with its old pose.
            for (index, match) in matches.enumerated()
            where estimate.inlierMask[index] && points[Int(match.point)] != nil {
                observe(point: match.point, image: image, feature: match.feature)
            }
            moved += 1
        }
        return moved
    }

    private var registeredCount: Int { poses.lazy.filter { $0 != nil }.count }

    private func timed<T>(_ step: String, _ body: () -> T) -> T {
        let start = DispatchTime.now().uptimeNanoseconds
        defer { timings[step, default: 0] += Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        return body()
    }

    // MARK: - The initial pair

    /// Tries pairs by their inlier count until one has enough points at a wide enough angle. When none has,
    /// both thresholds are halved and the pairs tried again, down to a quarter of the inliers and 2°, as COLMAP
    /// relaxes its initialisation: small or sparsely textured photos have few matches per pair.
    private func initialize() -> Bool {
        var minimumInliers = options.initialMinimumInliers, angle = options.initialMinimumAngleDegrees
        while angle >= 2 {
            let candidates = input.pairs.indices
                .filter { input.pairs[$0].inliers.count >= minimumInliers }
                .sorted { input.pairs[$0].inliers.count > input.pairs[$1].inliers.count }
            for index in candidates.prefix(40) {
                if let start = initialPair(input.pairs[index], minimumInliers: minimumInliers,
                                           minimumAngleDegrees: angle) {
                    install(start, pair: input.pairs[index])
                    adjustGlobally(iterations: 100)
                    registeredAtLastGlobal = 2
                    return true
                }
            }
            angle /= 2
            minimumInliers = max(options.initialMinimumInliers / 4, minimumInliers / 2)
        }
        return false
    }

    private struct InitialPair {
        var cam2FromCam1: Rigid3
        /// Per inlier of the pair, its point in the first camera's frame, or nil.
        var points: [Vector3?]
    }

    /// The relative pose of the pair by a fresh essential matrix on its inliers, and the points it triangulates;
    /// nil when too few points triangulate or their median angle is under the threshold.
    private func initialPair(_ pair: AlignmentPair, minimumInliers: Int,
                             minimumAngleDegrees: Double) -> InitialPair? {
        let camera1 = cameras[input.images[pair.first].camera], camera2 = cameras[input.images[pair.second].camera]
        let normalized1 = pair.inliers.map { camera1.normalized(input.images[pair.first].keypoints[Int($0.first)]) }
        let normalized2 = pair.inliers.map { camera2.normalized(input.images[pair.second].keypoints[Int($0.second)]) }
        let problem = EssentialMatrixProblem(points1: normalized1, points2: normalized2)
        let focal = (camera1.focal + camera2.focal) / 2
        let threshold = options.maximumReprojectionErrorPixels / focal
        var robust = RobustOptions()
        robust.seed = options.seed
        guard let estimate = RobustEstimation.estimate(problem, threshold: threshold, options: robust),
              estimate.inlierCount >= minimumInliers else { return nil }
        let inliers = estimate.inlierMask.indices.filter { estimate.inlierMask[$0] }
        let essential = EssentialMatrix.refined(estimate.model, inliers.map { normalized1[$0] },
                                                inliers.map { normalized2[$0] }, cauchyScale: threshold / 4)
        let motion = EssentialMatrix.pose(essential, inliers.map { normalized1[$0] },
                                          inliers.map { normalized2[$0] }).cam2FromCam1
        let residuals = problem.squaredResiduals(of: essential)
        var triangulated: [Vector3?] = Array(repeating: nil, count: pair.inliers.count)
        var angles: [Double] = []
        let center2 = motion.inverse.translation
        for index in pair.inliers.indices where residuals[index] <= threshold * threshold {
            let views = [(camFromWorld: Rigid3.identity, normalized: normalized1[index]),
                         (camFromWorld: motion, normalized: normalized2[index])]
            guard let point = Triangulation.point(observations: views), point.z > 0,
                  motion.apply(point).z > 0 else { continue }
            let angle = Triangulation.angle(of: point, centers: [.zero, center2]) * 180 / .pi
            guard angle >= options.minimumTriangulationAngleDegrees else { continue }
            triangulated[index] = point
            angles.append(angle)
        }
        guard angles.count >= minimumInliers,
              median(angles) >= minimumAngleDegrees else { return nil }
        return InitialPair(cam2FromCam1: motion, points: triangulated)
    }

    private func install(_ start: InitialPair, pair: AlignmentPair) {
        poses[pair.first] = .identity
        poses[pair.second] = start.cam2FromCam1
        for (index, match) in pair.inliers.enumerated() {
            guard let point = start.points[index] else { continue }
            addPoint(point, track: [SIMD2(Int32(pair.first), match.first), SIMD2(Int32(pair.second), match.second)])
        }
        gauge = (pair.first, pair.second)
    }

    /// The initial pair: the first pose and one coordinate of the second's translation stay put when every
    /// pose moves, so the model cannot drift or shrink.
    private var gauge: (Int, Int) = (0, 1)

    // MARK: - Registration

    /// Registers the unregistered image that sees the most points (trying a few in that order); its index, or
    /// nil when none can be placed. When none can with the full count of inliers, half of it is tried before
    /// giving up: wide steps between photos leave each one few of the points its neighbours made.
    private func registerNextImage() -> Int? {
        // Nothing the model holds changes until an image registers: each image's correspondences serve both tries.
        let seen = input.images.indices.filter { poses[$0] == nil }.map { (image: $0, visible: visiblePoints($0)) }
        for minimumInliers in [options.registrationMinimumInliers, options.registrationMinimumInliers / 2] {
            let candidates = seen
                .filter { $0.visible.features >= minimumInliers && !failedSinceGrowth.contains($0.image) }
                .sorted {
                    $0.visible.features > $1.visible.features
                        || ($0.visible.features == $1.visible.features && $0.image < $1.image)
                }
            for candidate in candidates.prefix(8) {
                if register(candidate.image, correspondences: candidate.visible.candidates,
                            minimumInliers: minimumInliers) {
                    failedSinceGrowth = []
                    return candidate.image
                }
                failedSinceGrowth.insert(candidate.image)
            }
            failedSinceGrowth = []
        }
        return nil
    }

    /// The 2D–3D correspondences of `image`: per keypoint that matches keypoints of registered images, each
    /// distinct point those belong to. Usually one; where a false match links a keypoint to a second point, or a
    /// point to a second keypoint, all are kept and the pose's consensus tells them apart, as COLMAP gathers them:
    /// taking only the first found lets a wrong pair hide the right one. `features` counts the keypoints.
    private func visiblePoints(_ image: Int) -> (candidates: [(feature: Int, point: Int32)], features: Int) {
        var found: [(feature: Int, point: Int32)] = [], features = 0
        var points: [Int32] = []
        for feature in 0..<input.images[image].keypoints.count {
            points.removeAll(keepingCapacity: true)
            for (other, otherFeature) in graph.correspondences(image: image, feature: feature)
            where poses[Int(other)] != nil {
                let point = pointOf[Int(other)][Int(otherFeature)]
                if point >= 0, !points.contains(point) { points.append(point) }
            }
            if !points.isEmpty { features += 1 }
            for point in points { found.append((feature, point)) }
        }
        return (found, features)
    }

    /// A pose of `image` from 2D–3D correspondences, by P3P in LO-MSAC at the registration threshold.
    private func estimatePose(_ image: Int, from matches: [(feature: Int, point: Int32)],
                              minimumInliers: Int) -> AbsolutePoseResult? {
        var poseOptions = AbsolutePoseOptions()
        poseOptions.robust.maximumErrorPixels = options.registrationMaximumErrorPixels
        poseOptions.robust.seed = options.seed &+ UInt64(image)
        poseOptions.minimumInliers = minimumInliers
        return AbsolutePose.estimate(pixels: matches.map { input.images[image].keypoints[$0.feature] },
                                     points: matches.map { points[Int($0.point)]!.position },
                                     camera: cameras[input.images[image].camera], options: poseOptions)
    }

    private func register(_ image: Int, correspondences matches: [(feature: Int, point: Int32)],
                          minimumInliers: Int) -> Bool {
        guard let estimate = estimatePose(image, from: matches, minimumInliers: minimumInliers),
              estimate.inlierCount >= minimumInliers,
              Double(estimate.inlierCount) >= options.registrationMinimumInlierRatio * Double(matches.count)
        else { return false }
        poses[image] = estimate.camFromWorld
        for (index, match) in matches.enumerated() where estimate.inlierMask[index] {
            observe(point: match.point, image: image, feature: match.feature)
        }
        return true
    }

    // MARK: - Triangulation

    /// New points from the keypoints of `image` that match keypoints of registered images, and known points
    /// extended to it.
    private func triangulate(image: Int) {
        for feature in 0..<input.images[image].keypoints.count where pointOf[image][feature] < 0 {
            triangulate(image: image, feature: feature)
        }
    }

    /// Every registered image's keypoints without a point tried again: poses and intrinsics have moved since.
    private func retriangulate() {
        for image in input.images.indices where poses[image] != nil {
            for feature in 0..<input.images[image].keypoints.count where pointOf[image][feature] < 0 {
                triangulate(image: image, feature: feature)
            }
        }
    }

    private func triangulate(image: Int, feature: Int) {
        var track: [SIMD2<Int32>] = [SIMD2(Int32(image), Int32(feature))]
        for (other, otherFeature) in graph.correspondences(image: image, feature: feature)
        where poses[Int(other)] != nil {
            let point = pointOf[Int(other)][Int(otherFeature)]
            if point >= 0 {
                // The keypoint continues a known point when that point reprojects onto it.
                if !points[Int(point)]!.track.contains(where: { $0.x == Int32(image) }),
                   reprojectionError(points[Int(point)]!.position, image: image, feature: feature)
                    <= options.maximumReprojectionErrorPixels {
                    observe(point: point, image: image, feature: feature)
                    return
                }
                continue
            }
            if !track.contains(where: { $0.x == other }) { track.append(SIMD2(other, otherFeature)) }
        }
        guard track.count >= 2 else { return }
        if let position = triangulatedPosition(track) { addPoint(position, track: track) }
    }

    /// The point a track triangulates to, if every view sees it in front within the reprojection threshold and
    /// two of its rays meet at a wide enough angle; else the best two-view subset that does.
    private func triangulatedPosition(_ track: [SIMD2<Int32>]) -> Vector3? {
        if let point = checkedPoint(track) { return point }
        guard track.count > 2 else { return nil }
        for other in track.dropFirst() {
            if let point = checkedPoint([track[0], other]) { return point }
        }
        return nil
    }

    private func checkedPoint(_ track: [SIMD2<Int32>]) -> Vector3? {
        let views = track.map { observation -> (camFromWorld: Rigid3, normalized: Vector2) in
            let image = Int(observation.x)
            let camera = cameras[input.images[image].camera]
            return (poses[image]!, camera.normalized(input.images[image].keypoints[Int(observation.y)]))
        }
        guard let point = Triangulation.point(observations: views) else { return nil }
        for observation in track {
            guard reprojectionError(point, image: Int(observation.x), feature: Int(observation.y))
                    <= options.maximumReprojectionErrorPixels else { return nil }
        }
        let centers = track.map { poses[Int($0.x)]!.inverse.translation }
        guard Triangulation.angle(of: point, centers: centers) * 180 / .pi
                >= options.minimumTriangulationAngleDegrees else { return nil }
        return point
    }

    /// The pixel distance between a point's projection and a keypoint; infinite behind the camera.
    private func reprojectionError(_ point: Vector3, image: Int, feature: Int) -> Double {
        guard let pose = poses[image],
              let pixel = cameras[input.images[image].camera].project(pose.apply(point)) else { return .infinity }
        return (pixel - input.images[image].keypoints[feature]).length
    }

    private func addPoint(_ position: Vector3, track: [SIMD2<Int32>]) {
        let id = Int32(points.count)
        points.append(AlignedPoint(position: position, track: track))
        liveCount += 1
        for observation in track { pointOf[Int(observation.x)][Int(observation.y)] = id }
    }

    private func observe(point: Int32, image: Int, feature: Int) {
        guard pointOf[image][feature] < 0, !points[Int(point)]!.track.contains(where: { $0.x == Int32(image) })
        else { return }
        points[Int(point)]!.track.append(SIMD2(Int32(image), Int32(feature)))
        pointOf[image][feature] = point
    }

    private func removePoint(_ id: Int) {
        guard let point = points[id] else { return }
        for observation in point.track { pointOf[Int(observation.x)][Int(observation.y)] = -1 }
        points[id] = nil
        liveCount -= 1
    }

    // MARK: - Bundle adjustment and filtering

    /// Moves `image` and the registered images that share the most points with it, with the points they see;
    /// every other image that sees those points holds still and anchors them.
    private func adjustLocally(around image: Int) {
        var shared: [Int: Int] = [:]
        for feature in pointOf[image] where feature >= 0 {
            for observation in points[Int(feature)]!.track where Int(observation.x) != image {
                shared[Int(observation.x), default: 0] += 1
            }
        }
        let neighbours = shared.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }
            .prefix(options.localBundleImages).map(\.key)
        let moving = Set([image] + neighbours)
        var pointIDs = Set<Int>()
        for member in moving {
            for point in pointOf[member] where point >= 0 { pointIDs.insert(Int(point)) }
        }
        adjust(moving: moving, points: pointIDs, iterations: options.localBundleIterations)
        filter(points: pointIDs)
    }

    private func adjustGlobally(iterations: Int, principalPoints: Set<Int> = []) {
        let (registered, all) = wholeModel
        adjust(moving: registered, points: all, iterations: iterations, principalPoints: principalPoints)
        filter(points: all)
        mergeTracks()
        registeredAtLastGlobal = registered.count
    }

    /// Every registered image and every live point.
    private var wholeModel: (images: Set<Int>, points: Set<Int>) {
        (Set(input.images.indices.filter { poses[$0] != nil }), Set(points.indices.filter { points[$0] != nil }))
    }

    /// Joins points the matches say are one: where an observation of one point corresponds to an observation
    /// of another, the two see no image in common, and their track-weighted mean reprojects within the
    /// threshold in every view of both. Points are split where a view was registered between the matches
    /// that join them; merged, each point has more views to hold it, as COLMAP merges tracks after each
    /// global adjustment.
    private func mergeTracks() {
        for id in points.indices {
            while let (other, position) = mergeCandidate(for: id) {
                let joined = points[other]!.track
                points[id]!.position = position
                points[id]!.track += joined
                for observation in joined { pointOf[Int(observation.x)][Int(observation.y)] = Int32(id) }
                points[other] = nil
                liveCount -= 1
            }
        }
    }

    /// A point `id` can merge with, if any, and where the merged point lies (see `mergeTracks`).
    private func mergeCandidate(for id: Int) -> (other: Int, position: Vector3)? {
        guard let point = points[id] else { return nil }
        let images = Set(point.track.map(\.x))
        for observation in point.track {
            for (image, feature) in graph.correspondences(image: Int(observation.x), feature: Int(observation.y)) {
                let other = Int(pointOf[Int(image)][Int(feature)])
                guard other >= 0, other != id, let candidate = points[other],
                      !candidate.track.contains(where: { images.contains($0.x) }) else { continue }
                let weight = Double(point.track.count), otherWeight = Double(candidate.track.count)
                let position = (point.position * weight + candidate.position * otherWeight)
                    * (1 / (weight + otherWeight))
                let fits = (point.track + candidate.track).allSatisfy {
                    reprojectionError(position, image: Int($0.x), feature: Int($0.y))
                        <= options.maximumReprojectionErrorPixels
                }
                if fits { return (other, position) }
            }
        }
        return nil
    }

    /// The last global adjustment, with the principal point of each camera the model pins down refined too
    /// (see `AlignmentOptions.principalPointDeviationFraction`).
    private func adjustFinally() {
        let freed = camerasWithDeterminedPrincipalPoint()
        guard !freed.isEmpty else {
            adjustGlobally(iterations: options.finalBundleIterations)
            return
        }
        let saved = (cameras, poses, points, pointOf, liveCount)
        adjustGlobally(iterations: options.finalBundleIterations, principalPoints: freed)
        let strayed = freed.contains { camera in
            let offset = cameras[camera].principal - input.cameras[camera].principal
            let limit = Vector2(Double(cameras[camera].width), Double(cameras[camera].height))
                * options.principalPointOffsetFraction
            return abs(offset.x) > limit.x || abs(offset.y) > limit.y
        }
        guard strayed else { return }
        (cameras, poses, points, pointOf, liveCount) = saved
        adjustGlobally(iterations: options.finalBundleIterations)
    }

    /// The cameras whose principal point the registered images and points determine to within
    /// `principalPointDeviationFraction` of the longer side, judged at the current estimate.
    private func camerasWithDeterminedPrincipalPoint() -> Set<Int> {
        let (registered, all) = wholeModel
        guard let built = problem(moving: registered, points: all) else { return [] }
        var analysis = BundleAdjustmentOptions()
        analysis.refinesPrincipalPoint = true
        guard let deviations = BundleAdjustment.intrinsicDeviations(of: built.problem, options: analysis)
        else { return [] }
        var determined = Set<Int>()
        for (slot, camera) in built.cameras.enumerated() {
            let limit = Double(max(cameras[camera].width, cameras[camera].height))
                * options.principalPointDeviationFraction
            if let x = deviations[slot][2], let y = deviations[slot][3], x <= limit, y <= limit {
                determined.insert(camera)
            }
        }
        return determined
    }

    /// The bundle adjustment of the images `moving` and the points `pointIDs`, with every observation of
    /// those points; the images and cameras it involves, in its order. Registered images outside `moving`
    /// that see the points hold still; when none does, the gauge pair fixes the frame and scale.
    private func problem(moving: Set<Int>, points pointIDs: Set<Int>)
        -> (problem: BundleAdjustmentProblem, images: [Int], cameras: [Int], points: [Int])? {
        guard !pointIDs.isEmpty else { return nil }
        var imageIndex: [Int: Int] = [:], images: [Int] = []
        var cameraIndex: [Int: Int] = [:], cameraList: [Int] = []
        let orderedPoints = pointIDs.sorted()
        var observations: [BundleObservation] = []
        for (slot, id) in orderedPoints.enumerated() {
            for observation in points[id]!.track {
                let image = Int(observation.x)
                guard poses[image] != nil else { continue }
                if imageIndex[image] == nil {
                    imageIndex[image] = images.count
                    images.append(image)
                    let camera = input.images[image].camera
                    if cameraIndex[camera] == nil {
                        cameraIndex[camera] = cameraList.count
                        cameraList.append(camera)
                    }
                }
                observations.append(BundleObservation(image: Int32(imageIndex[image]!), point: Int32(slot),
                                                      pixel: input.images[image].keypoints[Int(observation.y)]))
            }
        }
        var problem = BundleAdjustmentProblem(
            cameras: cameraList.map { cameras[$0] }, poses: images.map { poses[$0]! },
            imageCameras: images.map { cameraIndex[input.images[$0].camera]! },
            points: orderedPoints.map { points[$0]!.position }, observations: observations)
        problem.intrinsicsPriors = cameraList.map { camera in
            let known = input.focalIsKnown[camera]
            return IntrinsicsPrior(focal: known ? input.cameras[camera].focal : nil,
                                   focalSigma: options.knownFocalSigma * input.cameras[camera].focal,
                                   radialSigma: options.radialSigma)
        }
        problem.constantPoses = Set(images.indices.filter { !moving.contains(images[$0]) })
        if problem.constantPoses.isEmpty, let first = imageIndex[gauge.0], let second = imageIndex[gauge.1] {
            problem.constantPoses = [first]
            problem.fixedTranslationAxis = (image: second, axis: largestAxis(poses[gauge.1]!.translation))
        }
        return (problem, images, cameraList, orderedPoints)
    }

    /// One bundle adjustment (see `problem(moving:points:)`): the poses, the points and the focal and radial
    /// coefficient of the cameras involved are refined, and the principal points of the cameras
    /// `principalPoints`.
    private func adjust(moving: Set<Int>, points pointIDs: Set<Int>, iterations: Int,
                        principalPoints: Set<Int> = []) {
        guard let (built, images, cameraList, orderedPoints) = problem(moving: moving, points: pointIDs)
        else { return }
        var problem = built
        problem.constantPrincipalPoints = Set(cameraList.indices.filter {
            !principalPoints.contains(cameraList[$0])
        })
        var bundleOptions = BundleAdjustmentOptions()
        bundleOptions.refinesPrincipalPoint = !principalPoints.isEmpty
        bundleOptions.maximumIterations = iterations
        // A focal refined from a handful of images is poorly determined: hold it until the model has a few.
        bundleOptions.refinesFocal = registeredCount >= 3
        bundleOptions.refinesRadial = registeredCount >= 6
        _ = BundleAdjustment.solve(&problem, options: bundleOptions)
        for (slot, image) in images.enumerated() { poses[image] = problem.poses[slot] }
        for (slot, camera) in cameraList.enumerated() { cameras[camera] = problem.cameras[slot] }
        for (slot, id) in orderedPoints.enumerated() { points[id]!.position = problem.points[slot] }
    }

    private func largestAxis(_ vector: Vector3) -> Int {
        let magnitudes = [abs(vector.x), abs(vector.y), abs(vector.z)]
        return magnitudes.indices.max { magnitudes[$0] < magnitudes[$1] }!
    }

    /// Drops the observations that reproject too far and the points left with fewer than two observations or
    /// with rays too close to parallel.
    private func filter(points pointIDs: Set<Int>) {
        for id in pointIDs {
            guard var point = points[id] else { continue }
            let kept = point.track.filter {
                reprojectionError(point.position, image: Int($0.x), feature: Int($0.y))
                    <= options.maximumReprojectionErrorPixels
            }
            for dropped in point.track where !kept.contains(dropped) {
                pointOf[Int(dropped.x)][Int(dropped.y)] = -1
            }
            point.track = kept
            points[id] = point
            let centers = kept.map { poses[Int($0.x)]!.inverse.translation }
            if kept.count < 2 || Triangulation.angle(of: point.position, centers: centers) * 180 / .pi
                < options.minimumTriangulationAngleDegrees {
                removePoint(id)
            }
        }
    }

    // MARK: - The result

    private func result() -> AlignmentResult {
        var errors = 0.0, count = 0
        let kept = points.compactMap { $0 }
        for point in kept {
            for observation in point.track {
                errors += reprojectionError(point.position, image: Int(observation.x), feature: Int(observation.y))
                count += 1
            }
        }
        return AlignmentResult(cameras: cameras, poses: poses, points: kept,
                               meanReprojectionError: count == 0 ? 0 : errors / Double(count), timings: timings)
    }

    private func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
    }
}

/// Which keypoints of other images each keypoint matches, over every verified pair, in compressed rows.
struct CorrespondenceGraph {
    /// Per image, the start of each keypoint's run in `partners` (one more entry than keypoints).
    private var starts: [[Int32]]
    /// Per image, (other image, other keypoint) runs.
    private var partners: [[SIMD2<Int32>]]

    init(_ input: AlignmentInput) {
        var counts = input.images.map { Array(repeating: Int32(0), count: $0.keypoints.count + 1) }
        for pair in input.pairs {
            for match in pair.inliers {
                counts[pair.first][Int(match.first) + 1] += 1
                counts[pair.second][Int(match.second) + 1] += 1
            }
        }
        for image in counts.indices {
            for index in counts[image].indices.dropFirst() { counts[image][index] += counts[image][index - 1] }
        }
        starts = counts
        var next = counts
        partners = counts.map { Array(repeating: SIMD2<Int32>(-1, -1), count: Int($0.last ?? 0)) }
        for pair in input.pairs {
            for match in pair.inliers {
                let a = Int(match.first), b = Int(match.second)
                partners[pair.first][Int(next[pair.first][a])] = SIMD2(Int32(pair.second), match.second)
                next[pair.first][a] += 1
                partners[pair.second][Int(next[pair.second][b])] = SIMD2(Int32(pair.first), match.first)
                next[pair.second][b] += 1
            }
        }
    }

    /// The keypoints matched to keypoint `feature` of `image`, as (image, keypoint).
    func correspondences(image: Int, feature: Int) -> LazyMapSequence<ArraySlice<SIMD2<Int32>>, (Int32, Int32)> {
        let range = Int(starts[image][feature])..<Int(starts[image][feature + 1])
        return partners[image][range].lazy.map { ($0.x, $0.y) }
    }
}
