import Foundation
import ReplicaImageIO
import ReplicaProtocol

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The inputs of a `preprocess` task, read from `task.inputs`.
public struct PreprocessInputs: Equatable {
    /// The photo: a file name in the project's `images/`, the sibling of `work/`.
    public var image: String
    /// The working resolution's longest side, in pixels (the detail level's working image size); a photo
    /// already that small keeps its size.
    public var maxDimension: Int

    public init(image: String, maxDimension: Int) {
        self.image = image
        self.maxDimension = maxDimension
    }

    /// The largest `maxDimension` accepted: the longest side a JPEG can hold.
    public static let largestDimension = 65_500

    /// Reads and checks the fields; an unknown, missing or out-of-range one is a message for a person.
    public init(_ inputs: [String: JSONValue]) throws(TaskError) {
        if let unknown = inputs.keys.sorted().first(where: { $0 != "image" && $0 != "maxDimension" }) {
            throw Self.invalid("inputs.\(unknown) is not an input of a preprocess task")
        }
        guard case .string(let image) = inputs["image"] else {
            throw Self.invalid("inputs.image must be the photo's file name")
        }
        guard case .number(let number) = inputs["maxDimension"], let dimension = Int(exactly: number) else {
            throw Self.invalid("inputs.maxDimension must be a whole number of pixels")
        }
        self.init(image: image, maxDimension: dimension)
        try validate()
    }

    /// Rejects a name with a folder in it and a working size outside 1 to `largestDimension` pixels.
    public func validate() throws(TaskError) {
        guard !image.isEmpty, !image.contains("/"), image != ".", image != ".." else {
            throw Self.invalid("inputs.image must be a file name without a folder, not '\(image)'")
        }
        guard (1...Self.largestDimension).contains(maxDimension) else {
            throw Self.invalid("inputs.maxDimension must be 1 to \(Self.largestDimension) pixels, not \(maxDimension)")
        }
    }

    private static func invalid(_ message: String) -> TaskError {
        .failed(message: message, retryable: false, image: nil)
    }
}

/// Pre-Processing of one image: decode it upright, form the focal-length prior, shrink it to the working
/// size and write `work/images/<image>.jpg` with its sidecar `work/images/<image>.json`, named after the
/// photo's whole file name (`IMG_1.JPG.jpg`), which is unique in the project where its stem may not be.
public struct PreprocessTask {
    /// The JPEG quality of the working copy (libjpeg's 1–100 scale).
    public static let jpegQuality = 95

    public var inputs: PreprocessInputs
    /// The project's `work/` folder, absolute.
    public var workDirectory: String

    public init(inputs: PreprocessInputs, workDirectory: String) {
        self.inputs = inputs
        self.workDirectory = workDirectory
    }

    /// The task a `task` message describes.
    public init(_ assignment: TaskAssignment) throws(TaskError) {
        self.init(inputs: try PreprocessInputs(assignment.inputs), workDirectory: assignment.workDirectory)
    }

    /// The outputs, relative to `work/`: the working JPEG, then its sidecar.
    public var outputs: [String] { ["images/\(inputs.image).jpg", "images/\(inputs.image).json"] }

    var imagePath: String {
        URL(fileURLWithPath: workDirectory).deletingLastPathComponent()
            .appendingPathComponent("images").appendingPathComponent(inputs.image).path
    }

    /// Runs the steps in order, asking `sink` before each whether to stop.
    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        let finals = outputs.map { workDirectory + "/" + $0 }
        let partials = finals.map { $0 + ".partial" }
        // Whatever ends the task early leaves no temporary file behind, including an earlier attempt's.
        var finished = false
        removeFiles(partials)
        defer { if !finished { removeFiles(partials) } }

        try checkpoint(sink, 0.0, "decoding")
        let decoded = try decode()
        try checkpoint(sink, 0.4, "resizing")
        let working = decoded.pixels.fitted(longestSide: inputs.maxDimension)
        let prior = FocalLengthPrior.focalLengthPixels(for: decoded.metadata, imageWidth: working.width,
                                                       imageHeight: working.height)
        if case .none(let reason) = prior {
            sink.warning("no focal-length prior for \(inputs.image): \(reason)", image: inputs.image)
        }
        try checkpoint(sink, 0.6, "writing")
        let facts = PreprocessFacts(inputs: inputs, decoded: decoded, working: working, prior: prior)
        try makeDirectory(workDirectory + "/images")
        try writeFile(partials[0], try encode(working))
        try writeFile(partials[1], facts.sidecar())
        try checkpoint(sink, 0.9, "renaming")
        for (partial, final) in zip(partials, finals) { try rename(partial, to: final) }
        finished = true
        sink.progress(1, "done")
        return TaskOutcome(outputs: outputs, data: facts.resultData)
    }

    // MARK: - Steps

    private func checkpoint(_ sink: TaskSink, _ fraction: Double, _ message: String) throws(TaskError) {
        if sink.shouldStop { throw TaskError.cancelled }
        sink.progress(fraction, message)
    }

    /// The photo upright, decoded at no less than the working size (JPEG may use its DCT scaling).
    private func decode() throws(TaskError) -> DecodedImage {
        do {
            return try ImageReader.decode(path: imagePath, options: DecodeOptions(
                minimumLongestSide: inputs.maxDimension))
        } catch {
            let reason = ImageIOError(file: inputs.image, reason: error.reason).description
            // A missing or unreadable file may be a file system that went away; bad bytes stay bad.
            let retryable: Bool
            if case .io = error.reason { retryable = true } else { retryable = false }
            throw TaskError.failed(message: "cannot pre-process \(reason)", retryable: retryable,
                                   image: inputs.image)
        }
    }

    private func encode(_ working: PixelBuffer) throws(TaskError) -> [UInt8] {
        do {
            return try JPEGEncoder.encode(working, quality: Self.jpegQuality)
        } catch {
            throw TaskError.failed(message: "cannot write the working copy of \(inputs.image): \(error)",
                                   retryable: false, image: inputs.image)
        }
    }

    private func makeDirectory(_ path: String) throws(TaskError) {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        } catch {
            throw TaskError.failed(message: "cannot create \(path): \(error.localizedDescription)",
                                   retryable: true, image: nil)
        }
    }

    /// The whole of `bytes` in a new file at `path`, flushed to the disk before it is closed.
    private func writeFile(_ path: String, _ bytes: [UInt8]) throws(TaskError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw systemFailure("cannot create", path) }
        defer { close(descriptor) }
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, bytes.count - written) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw systemFailure("cannot write", path) }
            written += count
        }
        guard fsync(descriptor) == 0 else { throw systemFailure("cannot flush", path) }
    }

    private func rename(_ partial: String, to final: String) throws(TaskError) {
        guard Foundation.rename(partial, final) == 0 else { throw systemFailure("cannot rename", partial) }
    }

    private func removeFiles(_ paths: [String]) {
        for path in paths { unlink(path) }
    }

    private func systemFailure(_ action: String, _ path: String) -> TaskError {
        .failed(message: "\(action) \(path): \(String(cString: strerror(errno)))", retryable: true, image: nil)
    }
}

/// What the sidecar and the result say about one pre-processed image.
struct PreprocessFacts {
    var inputs: PreprocessInputs
    var format: ImageFormat
    var metadata: ImageMetadata
    /// The working copy's size, upright, in pixels.
    var width: Int
    var height: Int
    /// The photo's full size, upright, in pixels.
    var originalWidth: Int
    var originalHeight: Int
    var prior: FocalPrior

    init(inputs: PreprocessInputs, decoded: DecodedImage, working: PixelBuffer, prior: FocalPrior) {
        self.inputs = inputs
        format = decoded.format
        metadata = decoded.metadata
        width = working.width
        height = working.height
        self.prior = prior
        (originalWidth, originalHeight) = Self.uprightSize(decoded)
    }

    /// The stored size in the decoded pixels' frame: the decoders report it before orientation (HEIF after),
    /// so its sides are swapped when they disagree with the upright pixels' landscape or portrait shape.
    static func uprightSize(_ decoded: DecodedImage) -> (Int, Int) {
        let pixels = decoded.pixels
        let stored = (decoded.metadata.storedWidth, decoded.metadata.storedHeight)
        guard stored.0 > 0, stored.1 > 0 else { return (pixels.width, pixels.height) }
        let swapped = (stored.0 > stored.1) != (pixels.width > pixels.height) && stored.0 != stored.1
        return swapped ? (stored.1, stored.0) : stored
    }

    var focalSource: String {
        switch prior {
        case .fromEquivalentFocal: return "equivalent35mm"
        case .fromSensorWidth: return "sensorWidth"
        case .none: return "none"
        }
    }

    /// For the scheduler: the prior and the sizes.
    var resultData: [String: JSONValue] {
        [
            "focalPixels": prior.pixels.map(JSONValue.number) ?? .null,
            "focalSource": .string(focalSource),
            "width": .number(Double(width)), "height": .number(Double(height)),
            "originalWidth": .number(Double(originalWidth)), "originalHeight": .number(Double(originalHeight)),
        ]
    }

    /// The sidecar `<image>.json`: the result's facts, the camera's EXIF and the effective options.
    func sidecar() throws(TaskError) -> [UInt8] {
        var fields = resultData
        fields["image"] = .string(inputs.image)
        fields["format"] = .string(format.rawValue)
        fields["maxDimension"] = .number(Double(inputs.maxDimension))
        fields["jpegQuality"] = .number(Double(PreprocessTask.jpegQuality))
        fields["orientation"] = .number(Double(metadata.appliedOrientation))
        fields["make"] = metadata.make.map(JSONValue.string) ?? .null
        fields["model"] = metadata.model.map(JSONValue.string) ?? .null
        fields["focalLengthMillimetres"] = metadata.focalLengthMillimetres.map(JSONValue.number) ?? .null
        fields["focalLength35mmMillimetres"] = metadata.focalLength35mmMillimetres.map(JSONValue.number) ?? .null
        switch prior {
        case .fromSensorWidth(_, let sensor): fields["sensorWidthMillimetres"] = .number(sensor)
        case .none(let reason): fields["focalNote"] = .string(reason)
        case .fromEquivalentFocal: break
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(fields)) + [UInt8(ascii: "\n")]
        } catch {
            throw TaskError.failed(message: "cannot write the sidecar of \(inputs.image): \(error)",
                                   retryable: false, image: inputs.image)
        }
    }
}
