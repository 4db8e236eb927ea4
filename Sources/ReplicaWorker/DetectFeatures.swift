import Foundation
import ReplicaImageIO
import ReplicaProtocol
import ReplicaReconstruction

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The inputs of a `features` task, read from `task.inputs`.
public struct DetectFeaturesInputs: Equatable {
    /// How hard to look for features.
    public enum Sensitivity: String, Equatable, CaseIterable {
        /// SIFT at the image's own resolution with COLMAP's peak threshold.
        case normal
        /// The first octave upsampled ×2 and a third of the peak threshold: more, weaker, smaller features.
        case high
    }

    /// The photo: a file name in the project's `images/`; its working copy is `work/images/<image>.jpg`.
    public var image: String
    /// The most features kept, 1 to `FeatureOptions.largestMaximumFeatures`.
    public var maxFeatures: Int
    public var sensitivity: Sensitivity

    public init(image: String, maxFeatures: Int, sensitivity: Sensitivity) {
        self.image = image
        self.maxFeatures = maxFeatures
        self.sensitivity = sensitivity
    }

    private static let names: Set<String> = ["image", "maxFeatures", "sensitivity"]

    /// Reads and checks the fields; an unknown, missing or out-of-range one is a message for a person.
    public init(_ inputs: [String: JSONValue]) throws(TaskError) {
        if let unknown = inputs.keys.sorted().first(where: { !Self.names.contains($0) }) {
            throw Self.invalid("inputs.\(unknown) is not an input of a features task")
        }
        guard case .string(let image) = inputs["image"] else {
            throw Self.invalid("inputs.image must be the photo's file name")
        }
        guard case .number(let number) = inputs["maxFeatures"], let count = Int(exactly: number) else {
            throw Self.invalid("inputs.maxFeatures must be a whole number of features")
        }
        let choices = Sensitivity.allCases.map { "'\($0.rawValue)'" }.joined(separator: " or ")
        guard case .string(let word) = inputs["sensitivity"], let sensitivity = Sensitivity(rawValue: word) else {
            throw Self.invalid("inputs.sensitivity must be \(choices)")
        }
        self.init(image: image, maxFeatures: count, sensitivity: sensitivity)
        try validate()
    }

    /// Rejects a name with a folder in it and a feature budget outside its range.
    public func validate() throws(TaskError) {
        guard !image.isEmpty, !image.contains("/"), image != ".", image != ".." else {
            throw Self.invalid("inputs.image must be a file name without a folder, not '\(image)'")
        }
        let largest = FeatureOptions.largestMaximumFeatures
        guard (1...largest).contains(maxFeatures) else {
            throw Self.invalid("inputs.maxFeatures must be 1 to \(largest), not \(maxFeatures)")
        }
    }

    /// The detection options these inputs ask for.
    public var options: FeatureOptions {
        FeatureOptions(maximumFeatures: maxFeatures, highSensitivity: sensitivity == .high)
    }

    private static func invalid(_ message: String) -> TaskError {
        .failed(message: message, retryable: false, image: nil)
    }
}

/// Feature Detection of one image: SIFT on Pre-Processing's working copy `work/images/<image>.jpg`, written
/// to `work/features/<image>.sift` (the layout `FeatureSet.write(to:)` documents).
public struct DetectFeaturesTask {
    public var inputs: DetectFeaturesInputs
    /// The project's `work/` folder, absolute.
    public var workDirectory: String

    public init(inputs: DetectFeaturesInputs, workDirectory: String) {
        self.inputs = inputs
        self.workDirectory = workDirectory
    }

    /// The task a `task` message describes.
    public init(_ assignment: TaskAssignment) throws(TaskError) {
        self.init(inputs: try DetectFeaturesInputs(assignment.inputs), workDirectory: assignment.workDirectory)
    }

    /// The output, relative to `work/`.
    public var outputs: [String] { ["features/\(inputs.image).sift"] }

    /// Pre-Processing's working copy, relative to `work/`.
    var workingCopy: String { "images/\(inputs.image).jpg" }

    /// Runs the steps in order, asking `sink` before each whether to stop.
    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        let final = workDirectory + "/" + outputs[0]
        // An earlier attempt that died while writing left its temporary file (`write(to:)`'s `.partial`).
        unlink(final + ".partial")

        try checkpoint(sink, 0.0, "decoding")
        let working = try decode()
        try checkpoint(sink, 0.1, "detecting")
        // Asked again before each octave: a high-sensitivity detection on a large copy takes many seconds.
        guard let features = FeatureDetection.detect(working, options: inputs.options,
                                                     shouldStop: { sink.shouldStop }) else {
            throw TaskError.cancelled
        }
        if features.count == 0 {
            sink.warning("no features found in \(inputs.image); the photo may be blurred or textureless",
                         image: inputs.image)
        }
        try checkpoint(sink, 0.9, "writing")
        try makeDirectory(workDirectory + "/features")
        do {
            try features.write(to: final)
        } catch {
            throw TaskError.failed(message: "cannot write the features of \(inputs.image): \(error.reason)",
                                   retryable: true, image: inputs.image)
        }
        sink.progress(1, "done")
        return TaskOutcome(outputs: outputs, data: [
            "features": .number(Double(features.count)),
            "width": .number(Double(features.width)), "height": .number(Double(features.height)),
        ])
    }

    // MARK: - Steps

    private func checkpoint(_ sink: TaskSink, _ fraction: Double, _ message: String) throws(TaskError) {
        if sink.shouldStop { throw TaskError.cancelled }
        sink.progress(fraction, message)
    }

    /// The working copy, grey when it is stored grey.
    private func decode() throws(TaskError) -> PixelBuffer {
        let path = workDirectory + "/" + workingCopy
        guard FileManager.default.fileExists(atPath: path) else {
            throw TaskError.failed(message: "Pre-Processing's output for \(inputs.image) is missing (work/"
                                   + "\(workingCopy)); run Pre-Processing for it first",
                                   retryable: false, image: inputs.image)
        }
        do {
            return try ImageReader.decode(path: path, options: DecodeOptions(allowGrey: true)).pixels
        } catch {
            let reason = ImageIOError(file: "the working copy of \(inputs.image)", reason: error.reason).description
            // A file that cannot be read may be a file system that went away; bad bytes stay bad.
            let retryable: Bool
            if case .io = error.reason { retryable = true } else { retryable = false }
            throw TaskError.failed(message: "cannot detect features in \(reason)", retryable: retryable,
                                   image: inputs.image)
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
}
