import Foundation
import ReplicaGeometry

/// The sparse model as the dense stages read it: the aligned views and the points with the views that see
/// them, from COLMAP's text model (the `work/sparse/` that Image Alignment writes, in working pixels).
public struct StereoScene: Sendable {
    public struct View: Sendable, Equatable {
        /// The photo's file name, as `images.txt` gives it.
        public var name: String
        public var camera: SimpleRadialCamera
        public var camFromWorld: Rigid3
    }

    public var views: [View]
    public var points: [Vector3]
    /// Per point, the indices into `views` of the views that observed it.
    public var tracks: [[Int32]]

    public init(views: [View], points: [Vector3], tracks: [[Int32]]) {
        precondition(points.count == tracks.count, "one track per point")
        self.views = views
        self.points = points
        self.tracks = tracks
    }

    /// The index of the view of photo `name`; nil when the model did not place it.
    public func index(of name: String) -> Int? { views.firstIndex { $0.name == name } }

    /// Reads `cameras.txt`, `images.txt` and `points3D.txt` in `folder`. Cameras may be SIMPLE_RADIAL,
    /// SIMPLE_PINHOLE or PINHOLE with equal focal lengths; a line that does not parse names its file and line.
    public static func read(folder: String) throws(WorkFile.Failure) -> StereoScene {
        var cameras: [Int: SimpleRadialCamera] = [:]
        for (number, fields) in try lines(folder + "/cameras.txt") {
            let values = fields.dropFirst(2).compactMap(Double.init)
            guard fields.count >= 5, let id = Int(fields[0]), values.count == fields.count - 2,
                  let width = Int(fields[2]), let height = Int(fields[3]), width > 0, height > 0 else {
                throw bad(folder + "/cameras.txt", number, "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
            }
            let parameters = Array(values.dropFirst(2))
            switch (fields[1], parameters.count) {
            case ("SIMPLE_RADIAL", 4):
                cameras[id] = SimpleRadialCamera(width: width, height: height, focal: parameters[0],
                                                 principal: Vector2(parameters[1], parameters[2]),
                                                 radial: parameters[3])
            case ("SIMPLE_PINHOLE", 3):
                cameras[id] = SimpleRadialCamera(width: width, height: height, focal: parameters[0],
                                                 principal: Vector2(parameters[1], parameters[2]))
            case ("PINHOLE", 4) where abs(parameters[0] - parameters[1]) <= 1e-6 * parameters[0]:
                cameras[id] = SimpleRadialCamera(width: width, height: height, focal: parameters[0],
                                                 principal: Vector2(parameters[2], parameters[3]))
            default:
                throw bad(folder + "/cameras.txt", number, "camera model \(fields[1]) with \(parameters.count) "
                          + "parameters is not one dense stereo reads")
            }
        }
        var views: [View] = [], viewOfImageID: [Int: Int32] = [:]
        let imageLines = try lines(folder + "/images.txt", keepEmpty: true)
        var cursor = 0
        while cursor < imageLines.count {
            let (number, fields) = imageLines[cursor]
            cursor += 2 // Every image's line is followed by its POINTS2D line.
            if fields.isEmpty { continue }
            let values = fields[0..<min(8, fields.count)].compactMap(Double.init)
            guard fields.count >= 10, values.count == 8, let id = Int(fields[0]), let cameraID = Int(fields[8]) else {
                throw bad(folder + "/images.txt", number, "expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
            }
            guard let camera = cameras[cameraID] else {
                throw bad(folder + "/images.txt", number, "camera \(cameraID) is not in cameras.txt")
            }
            let rotation = Matrix3(quaternion: SIMD4(values[2], values[3], values[4], values[1]))
            viewOfImageID[id] = Int32(views.count)
            views.append(View(name: fields[9...].joined(separator: " "), camera: camera,
                              camFromWorld: Rigid3(rotation: rotation,
                                                   translation: Vector3(values[5], values[6], values[7]))))
        }
        var points: [Vector3] = [], tracks: [[Int32]] = []
        for (number, fields) in try lines(folder + "/points3D.txt") {
            guard fields.count >= 8, let x = Double(fields[1]), let y = Double(fields[2]), let z = Double(fields[3])
            else { throw bad(folder + "/points3D.txt", number, "expected POINT3D_ID X Y Z R G B ERROR TRACK[]") }
            var track: [Int32] = []
            var index = 8
            while index + 1 < fields.count {
                if let id = Int(fields[index]), let view = viewOfImageID[id], !track.contains(view) {
                    track.append(view)
                }
                index += 2
            }
            points.append(Vector3(x, y, z))
            tracks.append(track)
        }
        return StereoScene(views: views, points: points, tracks: tracks)
    }

    /// The file's lines with their numbers, split on spaces; comments dropped, and empty lines unless asked.
    private static func lines(_ path: String, keepEmpty: Bool = false) throws(WorkFile.Failure)
        -> [(Int, [String])] {
        let text = String(decoding: try WorkFile.read(path), as: UTF8.self)
        var result: [(Int, [String])] = []
        for (offset, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.hasPrefix("#") { continue }
            let fields = line.split(separator: " ").map(String.init)
            if fields.isEmpty && !keepEmpty { continue }
            result.append((offset + 1, fields))
        }
        return result
    }

    private static func bad(_ path: String, _ line: Int, _ reason: String) -> WorkFile.Failure {
        WorkFile.Failure(path: path, reason: "line \(line): \(reason)")
    }
}

/// The views a reference view is matched against, and the depths its scene spans.
public struct StereoNeighbourhood: Sendable, Equatable {
    public var reference: Int
    /// Indices into the scene's views, best first.
    public var sources: [Int]
    /// z in the reference camera.
    public var depthRange: ClosedRange<Double>
}

/// How source views are chosen for each reference view.
public struct StereoViewSelectionOptions: Equatable, Sendable {
    /// The most source views per reference view. Default 6.
    public var maximumSources = 6
    /// Rays meeting at less than this (degrees) say little about depth: a shared point counts fully only from
    /// `goodAngle` up, less below, nothing below `minimumAngle`. Defaults 1 and 6.
    public var minimumAngle = 1.0
    public var goodAngle = 6.0
    /// Views more than this apart (degrees, at a shared point) see it too differently to match windows.
    /// Default 60.
    public var maximumAngle = 60.0
    /// Sources must score at least this fraction of the best one's score. Default 0.1.
    public var minimumRelativeScore = 0.1
    /// The fewest sparse points a reference view must see to get a depth range. Default 8.
    public var minimumPoints = 8
    /// The depth range is the points' from the `rangeQuantile` to the 1 − `rangeQuantile` quantile, widened
    /// by `rangeMargin` each way (as a fraction). Defaults 0.01 and 0.25.
    public var rangeQuantile = 0.01
    public var rangeMargin = 0.25

    public init() {}
}

/// Chooses, per view, the neighbours that see the same sparse points from a useful angle: a pair scores the sum,
/// over the points both see, of how well the two rays through the point triangulate it (after COLMAP's and
/// Goesele et al.'s choice of views).
public enum StereoViewSelection {
    /// The neighbourhood of view `reference`; nil when it sees too few points or has no usable source.
    public static func neighbourhood(of reference: Int, in scene: StereoScene,
                                     options: StereoViewSelectionOptions = .init()) -> StereoNeighbourhood? {
        let view = scene.views[reference]
        let centres = scene.views.map { $0.camFromWorld.inverse.translation }
        var scores = [Double](repeating: 0, count: scene.views.count)
        var depths: [Double] = []
        let minimum = options.minimumAngle * .pi / 180, good = options.goodAngle * .pi / 180
        let maximum = options.maximumAngle * .pi / 180
        for (index, track) in scene.tracks.enumerated() where track.contains(Int32(reference)) {
            let point = scene.points[index]
            let depth = view.camFromWorld.apply(point).z
            guard depth > 0 else { continue }
            depths.append(depth)
            let ray = (point - centres[reference]).normalized
            for other in track where Int(other) != reference {
                let otherRay = (point - centres[Int(other)]).normalized
                let angle = acos(max(-1, min(1, ray.dot(otherRay))))
                guard angle >= minimum, angle <= maximum else { continue }
                let weight = min(1, angle / good)
                scores[Int(other)] += weight * weight
            }
        }
        guard depths.count >= options.minimumPoints else { return nil }
        let best = scores.max() ?? 0
        guard best > 0 else { return nil }
        let sources = scores.indices
            .filter { $0 != reference && scores[$0] > 0 && scores[$0] >= options.minimumRelativeScore * best }
            .sorted { scores[$0] != scores[$1] ? scores[$0] > scores[$1] : $0 < $1 }
            .prefix(options.maximumSources)
        depths.sort()
        let low = depths[Int(options.rangeQuantile * Double(depths.count - 1))]
        let high = depths[Int(((1 - options.rangeQuantile) * Double(depths.count - 1)).rounded())]
        let range = (low * (1 - options.rangeMargin))...(high * (1 + options.rangeMargin))
        return StereoNeighbourhood(reference: reference, sources: Array(sources), depthRange: range)
    }
}
