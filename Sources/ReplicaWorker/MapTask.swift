import Foundation
import ReplicaGeometry
import ReplicaImageIO
import ReplicaProtocol
import ReplicaReconstruction

#if canImport(Glibc)
import Glibc
#endif

/// The inputs of a `map` task.
public struct MapInputs: Equatable {
    /// The job's photos, in the order the job lists them.
    public var images: [String]
    /// The match blocks whose `work/matches/<block>.pairs` hold the verified pairs.
    public var blocks: [String]

    public init(images: [String], blocks: [String]) {
        self.images = images
        self.blocks = blocks
    }

    public init(_ inputs: [String: JSONValue]) throws(TaskError) {
        if let unknown = inputs.keys.sorted().first(where: { $0 != "images" && $0 != "blocks" }) {
            throw invalidInput("inputs.\(unknown) is not an input of a map task")
        }
        let images = try fileNames(inputs, "images", of: "photo")
        let blocks = try fileNames(inputs, "blocks", of: "block")
        guard Set(images).count == images.count else { throw invalidInput("inputs.images lists a photo twice") }
        self.init(images: images, blocks: blocks)
    }
}

/// Incremental structure from motion over the verified pairs, and the sparse model written for the later
/// stages and for users:
///
/// - `work/sparse/{cameras,images,points3D}.txt`: COLMAP's text model in the working copies' pixels;
/// - `work/sparse/colmap/…`: the same in the photos' own pixels, and `work/sparse/transforms.json`;
/// - `work/sparse/statistics.json`: registered images, points, track length, reprojection error, times.
///
/// Photos that could not be placed are warnings; too few placed fails the job with what to do about it.
public struct MapTask {
    public var inputs: MapInputs
    public var workDirectory: String

    /// The fewest images a model needs, and the smallest share of the photos it must place.
    public static let minimumRegistered = 3
    public static let minimumRegisteredFraction = 1.0 / 3

    public init(inputs: MapInputs, workDirectory: String) {
        self.inputs = inputs
        self.workDirectory = workDirectory
    }

    public init(_ assignment: TaskAssignment) throws(TaskError) {
        self.init(inputs: try MapInputs(assignment.inputs), workDirectory: assignment.workDirectory)
    }

    public static let outputs = ["sparse/cameras.txt", "sparse/images.txt", "sparse/points3D.txt",
                                 "sparse/colmap/cameras.txt", "sparse/colmap/images.txt",
                                 "sparse/colmap/points3D.txt", "sparse/transforms.json", "sparse/statistics.json"]

    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        let started = DispatchTime.now().uptimeNanoseconds
        sink.progress(0, "reading matches")
        let (input, facts) = try loadInput()
        if sink.shouldStop { throw TaskError.cancelled }
        let loaded = DispatchTime.now().uptimeNanoseconds

        let mapper = IncrementalMapper(input: input)
        var stopped = false
        let result = mapper.run { fraction, message in
            if sink.shouldStop { stopped = true; return false }
            sink.progress(0.05 + 0.85 * fraction, message)
            return true
        }
        if stopped { throw TaskError.cancelled }

        let registered = result.registeredCount
        let total = input.images.count
        let needed = max(Self.minimumRegistered, Int((Double(total) * Self.minimumRegisteredFraction).rounded(.up)))
        guard registered >= needed else {
            throw TaskError.failed(message: "only \(registered) of \(total) photos could be aligned (at least "
                                   + "\(needed) are needed). Take photos with more overlap between neighbours (each "
                                   + "part of the object in three or more photos), of a subject with more "
                                   + "texture, or compute again with featureSensitivity \"high\".",
                                   retryable: false, image: nil)
        }
        for (index, image) in input.images.enumerated() where result.poses[index] == nil {
            sink.warning("\(image.name) could not be aligned with the other photos and was left out", image: image.name)
        }
        sink.progress(0.92, "writing the sparse model")
        let colors = pointColors(result, input.images)
        let export = SparseModelExport(result: result, images: input.images, colors: colors)
        let originalScales = facts.map { Double($0.originalWidth) / Double($0.width) }
        do {
            try export.writeCOLMAP(to: workDirectory + "/sparse", scales: Array(repeating: 1, count: total))
            try export.writeCOLMAP(to: workDirectory + "/sparse/colmap", scales: originalScales)
            try write(export.transformsJSON(scales: originalScales), "sparse/transforms.json")
        } catch {
            throw TaskError.failed(message: "cannot write the sparse model: \(error)", retryable: true, image: nil)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
        let statistics = statisticsJSON(result, input: input, loading: Double(loaded - started) * 1e-9,
                                        total: seconds)
        try write(statistics, "sparse/statistics.json")
        sink.progress(1, "done")
        return TaskOutcome(outputs: Self.outputs, data: [
            "registeredImages": .number(Double(registered)), "images": .number(Double(total)),
            "points": .number(Double(result.points.count)),
            "meanTrackLength": .number(result.meanTrackLength),
            "meanReprojectionError": .number(result.meanReprojectionError),
        ])
    }

    // MARK: - Input

    /// The photos that reached this stage (Pre-Processing kept them and their features exist), their cameras
    /// (one per make, model, size and focal prior) and the verified pairs between them.
    private func loadInput() throws(TaskError) -> (AlignmentInput, [WorkingImageFacts]) {
        var images: [AlignmentImage] = [], facts: [WorkingImageFacts] = []
        var cameras: [SimpleRadialCamera] = [], focalIsKnown: [Bool] = [], cameraKeys: [String: Int] = [:]
        var indexOf: [String: Int] = [:]
        for name in inputs.images {
            guard let known = try WorkingImageFacts.read(workDirectory: workDirectory, image: name) else { continue }
            let features = try readFeatures(workDirectory: workDirectory, image: name)
            let focal = known.focalPixels ?? SimpleRadialCamera.guessedFocal(width: known.width, height: known.height)
            let key = [known.make ?? "", known.model ?? "", "\(known.width)x\(known.height)",
                       known.focalPixels.map { String(format: "%.1f", $0) } ?? "guess"].joined(separator: "|")
            if cameraKeys[key] == nil {
                cameraKeys[key] = cameras.count
                cameras.append(SimpleRadialCamera(width: known.width, height: known.height, focal: focal))
                focalIsKnown.append(known.focalPixels != nil)
            }
            indexOf[name] = images.count
            images.append(AlignmentImage(name: name, camera: cameraKeys[key]!, keypoints: features.keypoints.map {
                Vector2(Double($0.x), Double($0.y))
            }))
            facts.append(known)
        }
        var pairs: [AlignmentPair] = []
        for block in inputs.blocks {
            let path = workDirectory + "/matches/" + block + ".pairs"
            let verified: [VerifiedPair]
            do {
                verified = try VerifiedPairsFile.read(path: path)
            } catch {
                throw TaskError.failed(message: "cannot read the matches of block \(block): \(error.reason); "
                                       + "compute again", retryable: false, image: nil)
            }
            for pair in verified {
                guard let first = indexOf[pair.firstImage], let second = indexOf[pair.secondImage] else { continue }
                let counts = (images[first].keypoints.count, images[second].keypoints.count)
                guard pair.inliers.allSatisfy({ Int($0.first) < counts.0 && Int($0.second) < counts.1 }) else {
                    throw TaskError.failed(message: "the matches of \(pair.firstImage) and \(pair.secondImage) "
                                           + "do not fit their features; compute again", retryable: false, image: nil)
                }
                pairs.append(AlignmentPair(first: first, second: second, configuration: pair.configuration,
                                           inliers: pair.inliers))
            }
        }
        return (AlignmentInput(images: images, cameras: cameras, focalIsKnown: focalIsKnown, pairs: pairs), facts)
    }

    // MARK: - Output

    /// Each point's colour from its first observation, sampled in that image's working copy; grey for a copy
    /// that cannot be read.
    private func pointColors(_ result: AlignmentResult, _ images: [AlignmentImage]) -> [SIMD3<UInt8>] {
        var colors = Array(repeating: SIMD3<UInt8>(128, 128, 128), count: result.points.count)
        var wanted: [Int: [(point: Int, feature: Int)]] = [:]
        for (index, point) in result.points.enumerated() {
            guard let first = point.track.first else { continue }
            wanted[Int(first.x), default: []].append((index, Int(first.y)))
        }
        for (image, samples) in wanted {
            let path = workDirectory + "/images/" + images[image].name + ".jpg"
            guard let pixels = try? ImageReader.decode(path: path, options: DecodeOptions(allowGrey: true)).pixels
            else { continue }
            for sample in samples {
                let keypoint = images[image].keypoints[sample.feature]
                let x = min(pixels.width - 1, max(0, Int(keypoint.x)))
                let y = min(pixels.height - 1, max(0, Int(keypoint.y)))
                let offset = (y * pixels.width + x) * pixels.channels
                colors[sample.point] = pixels.channels == 3
                    ? SIMD3(pixels.bytes[offset], pixels.bytes[offset + 1], pixels.bytes[offset + 2])
                    : SIMD3(repeating: pixels.bytes[offset])
            }
        }
        return colors
    }

    private func statisticsJSON(_ result: AlignmentResult, input: AlignmentInput, loading: Double,
                                total: Double) -> [UInt8] {
        var timings = result.timings
        timings["loading"] = loading
        timings["total"] = total
        let document: [String: Any] = [
            "images": input.images.count, "registeredImages": result.registeredCount,
            "unregistered": input.images.indices.filter { result.poses[$0] == nil }.map { input.images[$0].name },
            "verifiedPairs": input.pairs.count, "points": result.points.count,
            "observations": result.points.reduce(0) { $0 + $1.track.count },
            "meanTrackLength": result.meanTrackLength, "meanReprojectionErrorPixels": result.meanReprojectionError,
            "cameras": result.cameras.map { ["width": $0.width, "height": $0.height, "focal": $0.focal,
                                             "principal": [$0.principal.x, $0.principal.y], "radial": $0.radial] },
            "secondsByStep": timings,
        ]
        return statisticsBytes(document)
    }

    private func write(_ bytes: [UInt8], _ relative: String) throws(TaskError) {
        try writeWorkFile(bytes, relative, in: workDirectory)
    }
}
