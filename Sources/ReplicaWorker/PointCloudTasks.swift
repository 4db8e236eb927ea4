import Foundation
import ReplicaGeometry
import ReplicaImageIO
import ReplicaProtocol
import ReplicaReconstruction

#if canImport(Glibc)
import Glibc
#endif

// Point Cloud Generation: a `depth` task per photo (PatchMatch stereo against the neighbours the sparse model
// picks), then one `fuse` task that merges the depth maps into `work/dense.ply`.

/// The most memory this worker process has held so far, in bytes: a task's figure for the benchmarks' peak
/// memory per worker (the process runs task after task, so it is the peak over them all). Linux's VmHWM, which
/// starts afresh at exec; getrusage's maximum carries over from the process that forked the worker, so a large
/// parent (a benchmark that has read big files) would show through it.
func peakResidentBytes() -> Double {
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
       let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
       let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") {
        return kilobytes * 1024
    }
    var usage = rusage()
    guard getrusage(RUSAGE_SELF.rawValue, &usage) == 0 else { return .nan }
    return Double(usage.ru_maxrss) * 1024 // kilobytes on Linux
}

/// The sparse model Image Alignment wrote, as a task error a person can act on.
private func readStereoScene(workDirectory: String) throws(TaskError) -> StereoScene {
    do {
        return try StereoScene.read(folder: workDirectory + "/sparse")
    } catch {
        throw TaskError.failed(message: "cannot read the sparse model: \(error.reason); compute again",
                               retryable: false, image: nil)
    }
}

/// The depth map of one photo: `work/dense/depth/<image>.dmap` (the layout `DepthMapFile` documents).
///
/// The photo's working copy and those of its source views are resampled to their distortion-free cameras and
/// matched at the working resolution the detail level set. A photo the model did not place, or that sees too
/// little of the model to pick neighbours, gets no map; the task says so and succeeds.
public struct DepthMapTask {
    public var image: String
    public var workDirectory: String
    public var options: PatchMatchOptions

    public init(image: String, workDirectory: String, options: PatchMatchOptions = .init()) {
        self.image = image
        self.workDirectory = workDirectory
        self.options = options
    }

    public init(_ assignment: TaskAssignment) throws(TaskError) {
        if let unknown = assignment.inputs.keys.sorted().first(where: { $0 != "image" }) {
            throw invalidInput("inputs.\(unknown) is not an input of a depth task")
        }
        guard case .string(let image)? = assignment.inputs["image"], isFileName(image) else {
            throw invalidInput("inputs.image must be the photo's file name, without a folder")
        }
        self.init(image: image, workDirectory: assignment.workDirectory)
    }

    public static func output(for image: String) -> String { "dense/depth/" + image + ".dmap" }

    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        let started = DispatchTime.now().uptimeNanoseconds
        sink.progress(0, "choosing neighbours")
        let scene = try readStereoScene(workDirectory: workDirectory)
        // A map an earlier computation left must not stand in for one this model does not give.
        let output = Self.output(for: image)
        try? FileManager.default.removeItem(atPath: workDirectory + "/" + output)
        guard let reference = scene.index(of: image) else {
            return TaskOutcome(outputs: [], data: ["aligned": .bool(false)])
        }
        guard let neighbourhood = StereoViewSelection.neighbourhood(of: reference, in: scene) else {
            sink.warning("\(image) shares too little with the other photos for a depth map", image: image)
            return TaskOutcome(outputs: [], data: ["aligned": .bool(true), "depthPixels": .number(0)])
        }
        let views = [reference] + neighbourhood.sources
        var images: [StereoImage] = []
        for view in views {
            images.append(try load(scene.views[view]))
            if sink.shouldStop { throw TaskError.cancelled }
        }
        sink.progress(0.05, "matching against \(neighbourhood.sources.count) photos")
        var stopped = false
        let map = PatchMatchStereo.depthMap(reference: images[0], sources: Array(images.dropFirst()),
                                            depthRange: neighbourhood.depthRange, options: options) { fraction in
            if sink.shouldStop { stopped = true; return false }
            sink.progress(0.05 + 0.9 * fraction, "matching against \(neighbourhood.sources.count) photos")
            return true
        }
        guard let map, !stopped else { throw TaskError.cancelled }
        do {
            try FileManager.default.createDirectory(atPath: workDirectory + "/dense/depth",
                                                    withIntermediateDirectories: true)
            try DepthMapFile.write(map, to: workDirectory + "/" + output)
        } catch let failure as WorkFile.Failure {
            throw TaskError.failed(message: "cannot write the depth map of \(image): \(failure.reason)",
                                   retryable: true, image: nil)
        } catch {
            throw TaskError.failed(message: "cannot make work/dense/depth: \(error)", retryable: true, image: nil)
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
        sink.progress(1, "done")
        return TaskOutcome(outputs: [output], data: [
            "aligned": .bool(true), "depthPixels": .number(Double(map.validCount)),
            "pixels": .number(Double(map.width * map.height)),
            "sources": .array(neighbourhood.sources.map { .string(scene.views[$0].name) }),
            "seconds": .number(seconds), "peakResidentBytes": .number(peakResidentBytes()),
        ])
    }

    private func load(_ view: StereoScene.View) throws(TaskError) -> StereoImage {
        try loadStereoImage(view, workDirectory: workDirectory)
    }
}

/// The working copy of a placed photo, resampled to its distortion-free camera; a copy that cannot be read, or
/// whose size is not the sparse model's, is an error that says to compute again.
func loadStereoImage(_ view: StereoScene.View, workDirectory: String) throws(TaskError) -> StereoImage {
    let path = workDirectory + "/images/" + view.name + ".jpg"
    let pixels: PixelBuffer
    do {
        pixels = try ImageReader.decode(path: path, options: DecodeOptions(allowGrey: true)).pixels
    } catch {
        throw TaskError.failed(message: "cannot read the working copy of \(view.name): \(error); compute again",
                               retryable: false, image: nil)
    }
    guard pixels.width == view.camera.width, pixels.height == view.camera.height else {
        throw TaskError.failed(message: "the working copy of \(view.name) is \(pixels.width)×\(pixels.height) "
                               + "but the sparse model says \(view.camera.width)×\(view.camera.height); "
                               + "compute again", retryable: false, image: nil)
    }
    return StereoImage(undistorting: pixels, camera: view.camera, camFromWorld: view.camFromWorld)
}

/// The inputs of a `fuse` task.
public struct FuseInputs: Equatable {
    /// The job's photos, in order; those with a depth map are fused.
    public var images: [String]
    /// Keep only the object the cameras surround.
    public var masking: Bool

    public init(images: [String], masking: Bool) {
        self.images = images
        self.masking = masking
    }

    public init(_ inputs: [String: JSONValue]) throws(TaskError) {
        if let unknown = inputs.keys.sorted().first(where: { $0 != "images" && $0 != "masking" }) {
            throw invalidInput("inputs.\(unknown) is not an input of a fuse task")
        }
        let images = try fileNames(inputs, "images", of: "photo")
        guard case .bool(let masking)? = inputs["masking"] else {
            throw invalidInput("inputs.masking must be true or false")
        }
        self.init(images: images, masking: masking)
    }
}

/// Fusion of the depth maps into one oriented, coloured cloud, masked to the object when asked:
///
/// - `work/dense.ply`: binary PLY, positions, normals and colours, in the sparse model's frame;
/// - `work/dense/statistics.json`: depth maps, points before and after masking, what masking removed, times.
public struct FuseTask {
    public var inputs: FuseInputs
    public var workDirectory: String

    public static let outputs = ["dense.ply", "dense/statistics.json"]
    /// The depth maps fusion keeps in memory beyond those in use: about 24 maps of 1600 × 1200.
    public static let cacheBytes = 1 << 30

    public init(inputs: FuseInputs, workDirectory: String) {
        self.inputs = inputs
        self.workDirectory = workDirectory
    }

    public init(_ assignment: TaskAssignment) throws(TaskError) {
        self.init(inputs: try FuseInputs(assignment.inputs), workDirectory: assignment.workDirectory)
    }

    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        let started = DispatchTime.now().uptimeNanoseconds
        sink.progress(0, "reading depth maps")
        let scene = try readStereoScene(workDirectory: workDirectory)
        // Maps in the scene's view order; the neighbours fused with are those the depth maps were made with.
        var available = [Bool](repeating: false, count: scene.views.count)
        var neighbours = [[Int]](repeating: [], count: scene.views.count)
        for image in inputs.images {
            guard let view = scene.index(of: image),
                  FileManager.default.fileExists(atPath: workDirectory + "/" + DepthMapTask.output(for: image))
            else { continue }
            available[view] = true
            neighbours[view] = StereoViewSelection.neighbourhood(of: view, in: scene)?.sources ?? []
        }
        let mapCount = available.filter { $0 }.count
        guard mapCount > 0 else {
            throw TaskError.failed(message: "no photo has a depth map, so there is no point cloud. Take photos "
                                   + "with more overlap and texture and compute again.", retryable: false, image: nil)
        }
        let loaded = DispatchTime.now().uptimeNanoseconds
        var stopped = false, unreadable: TaskError?
        var depthPixels: [String: Int] = [:]
        let fused = DepthFusion.fuse(available: available, neighbours: neighbours, cacheBytes: Self.cacheBytes,
                                     load: { view in
            let name = scene.views[view].name
            do {
                let map = try DepthMapFile.read(workDirectory + "/" + DepthMapTask.output(for: name))
                depthPixels[name] = map.validCount
                return map
            } catch {
                let reason = (error as? WorkFile.Failure)?.reason ?? "\(error)"
                unreadable = TaskError.failed(message: "cannot read the depth map of \(name): \(reason); compute again",
                                              retryable: false, image: nil)
                return nil
            }
        }) { fraction in
            if sink.shouldStop { stopped = true; return false }
            sink.progress(0.8 * fraction, "fusing depth maps")
            return true
        }
        if let unreadable { throw unreadable }
        guard var cloud = fused, !stopped else { throw TaskError.cancelled }
        let fusedCount = cloud.count
        let fusedAt = DispatchTime.now().uptimeNanoseconds
        var masking: [String: Any] = ["enabled": inputs.masking]
        if inputs.masking {
            sink.progress(0.85, "separating the object")
            let views = scene.views.indices.filter { available[$0] }.map {
                (camera: scene.views[$0].camera.pinhole, camFromWorld: scene.views[$0].camFromWorld)
            }
            let (keep, report) = ObjectMasking.mask(cloud, views: views, sparsePoints: scene.points)
            cloud = cloud.filtered(keep)
            masking["outOfView"] = report.outOfView
            masking["unsupported"] = report.unsupported
            masking["supportPlane"] = report.supportPlane
            masking["strays"] = report.strays
            if let plane = report.plane {
                masking["plane"] = ["normal": [plane.normal.x, plane.normal.y, plane.normal.z],
                                    "offset": plane.offset]
            }
        }
        guard cloud.count > 0 else {
            throw TaskError.failed(message: "the depth maps of \(mapCount) photos agree on no point"
                                   + (inputs.masking ? " of the object" : "") + ", so there is no point cloud. "
                                   + "Take photos with more overlap and texture"
                                   + (inputs.masking ? ", or compute with isObjectMaskingEnabled false" : "")
                                   + ".", retryable: false, image: nil)
        }
        if sink.shouldStop { throw TaskError.cancelled }
        sink.progress(0.9, "writing the point cloud")
        do {
            try FileManager.default.createDirectory(atPath: workDirectory + "/dense", withIntermediateDirectories: true)
        } catch {
            throw TaskError.failed(message: "cannot make work/dense: \(error)", retryable: true, image: nil)
        }
        try write(cloud.plyBytes(), "dense.ply")
        let finished = DispatchTime.now().uptimeNanoseconds
        func seconds(_ from: UInt64, _ to: UInt64) -> Double { Double(to - from) * 1e-9 }
        let document: [String: Any] = [
            "depthMaps": mapCount, "fusedPoints": fusedCount, "points": cloud.count, "masking": masking,
            "depthPixels": depthPixels,
            "secondsByStep": ["loading": seconds(started, loaded), "fusion": seconds(loaded, fusedAt),
                              "masking": seconds(fusedAt, finished), "total": seconds(started, finished)],
        ]
        try write(statisticsBytes(document), "dense/statistics.json")
        sink.progress(1, "done")
        return TaskOutcome(outputs: Self.outputs, data: [
            "points": .number(Double(cloud.count)), "fusedPoints": .number(Double(fusedCount)),
            "depthMaps": .number(Double(mapCount)), "seconds": .number(seconds(started, finished)),
            "peakResidentBytes": .number(peakResidentBytes()),
        ])
    }

    private func write(_ bytes: [UInt8], _ relative: String) throws(TaskError) {
        try writeWorkFile(bytes, relative, in: workDirectory)
    }
}
