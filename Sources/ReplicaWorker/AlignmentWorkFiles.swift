import Foundation
import ReplicaGeometry
import ReplicaProtocol
import ReplicaReconstruction

// What Image Alignment's tasks read of the work folder that earlier tasks wrote, and the checks of their inputs
// that the features, retrieve, match and map tasks share.

/// What Pre-Processing wrote about one photo in `work/images/<image>.json`, as the later stages need it.
struct WorkingImageFacts: Equatable {
    var image: String
    /// The working copy's size in pixels.
    var width: Int
    var height: Int
    /// The photo's own size, upright.
    var originalWidth: Int
    var originalHeight: Int
    /// The focal length from EXIF in working-copy pixels, when the photo said enough to know it.
    var focalPixels: Double?
    var make: String?
    var model: String?

    /// Reads the sidecar; a missing one means Pre-Processing left the photo out.
    static func read(workDirectory: String, image: String) throws(TaskError) -> WorkingImageFacts? {
        let path = workDirectory + "/images/" + image + ".json"
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let data = FileManager.default.contents(atPath: path),
              let fields = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let width = fields["width"] as? Double, let height = fields["height"] as? Double, width > 0,
              height > 0 else {
            throw TaskError.failed(message: "Pre-Processing's record of \(image) (work/images/\(image).json) is "
                                   + "damaged; compute again", retryable: false, image: image)
        }
        let originalWidth = fields["originalWidth"] as? Double ?? width
        let originalHeight = fields["originalHeight"] as? Double ?? height
        let focal = (fields["focalPixels"] as? Double).flatMap { $0.isFinite && $0 > 0 ? $0 : nil }
        return WorkingImageFacts(image: image, width: Int(width), height: Int(height),
                                 originalWidth: Int(originalWidth), originalHeight: Int(originalHeight),
                                 focalPixels: focal, make: fields["make"] as? String,
                                 model: fields["model"] as? String)
    }

    /// The pinhole geometric verification assumes, when the focal length is known.
    var pinholePrior: PinholeCamera? {
        focalPixels.map { PinholeCamera(width: width, height: height, focal: $0) }
    }
}

/// Reads an image's `.sift` file as a task error a person can act on.
func readFeatures(workDirectory: String, image: String) throws(TaskError) -> FeatureSet {
    let path = workDirectory + "/features/" + image + ".sift"
    do {
        return try FeatureSet.read(path: path)
    } catch {
        throw TaskError.failed(message: "cannot read the features of \(image): \(error.reason); compute again",
                               retryable: false, image: image)
    }
}

/// Writes `work/<relative>` whole or not at all; failing to is a retryable task error naming the file.
func writeWorkFile(_ bytes: [UInt8], _ relative: String, in workDirectory: String) throws(TaskError) {
    do {
        try WorkFile.writeAtomically(bytes, to: workDirectory + "/" + relative)
    } catch {
        throw TaskError.failed(message: "cannot write \(relative): \(error.reason)", retryable: true, image: nil)
    }
}

/// A statistics document as the work files keep it: pretty-printed JSON with sorted keys and a final newline.
func statisticsBytes(_ document: [String: Any]) -> [UInt8] {
    let data = (try? JSONSerialization.data(withJSONObject: document,
                                             options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]))
        ?? Data()
    return Array(data) + [UInt8(ascii: "\n")]
}

/// Makes `work/<relative>` and the folders above it.
func ensureWorkDirectory(_ relative: String, in workDirectory: String) throws(TaskError) {
    do {
        try FileManager.default.createDirectory(atPath: workDirectory + "/" + relative,
                                                withIntermediateDirectories: true)
    } catch {
        throw TaskError.failed(message: "cannot make work/\(relative): \(error)", retryable: true, image: nil)
    }
}

func isFileName(_ name: String) -> Bool { !name.isEmpty && !name.contains("/") && name != "." && name != ".." }

func invalidInput(_ message: String) -> TaskError { .failed(message: message, retryable: false, image: nil) }

/// `inputs[key]` as a list of file names without folders; `what` says what they name, for the error.
func fileNames(_ inputs: [String: JSONValue], _ key: String, of what: String) throws(TaskError) -> [String] {
    guard case .array(let list) = inputs[key] else {
        throw invalidInput("inputs.\(key) must be a list of \(what) names")
    }
    var names: [String] = []
    for item in list {
        guard case .string(let name) = item, isFileName(name) else {
            throw invalidInput("inputs.\(key) must hold \(what) names without folders")
        }
        names.append(name)
    }
    return names
}
