import Foundation
import ReplicaCore
import ReplicaProtocol
import ReplicaReconstruction

/// The inputs of a `retrieve` task.
public struct RetrievePairsInputs: Equatable {
    /// The job's photos, in the job's order.
    public var images: [String]
    /// The most similar photos each photo is paired with.
    public var neighbours: Int
    /// For a walk: each photo is paired with its next `window` photos as well, retrieval then closing loops.
    public var window: Int

    public init(images: [String], neighbours: Int, window: Int = 0) {
        self.images = images
        self.neighbours = neighbours
        self.window = window
    }

    public init(_ inputs: [String: JSONValue]) throws(TaskError) {
        if let unknown = inputs.keys.sorted().first(where: { !["images", "neighbours", "window"].contains($0) }) {
            throw invalidInput("inputs.\(unknown) is not an input of a retrieve task")
        }
        let images = try fileNames(inputs, "images", of: "photo")
        guard case .number(let number) = inputs["neighbours"], let neighbours = Int(exactly: number),
              neighbours >= 1 else {
            throw invalidInput("inputs.neighbours must be a whole number of at least 1")
        }
        var window = 0
        if let given = inputs["window"] {
            guard case .number(let number) = given, let whole = Int(exactly: number), whole >= 0 else {
                throw invalidInput("inputs.window must be a whole number of photos, 0 or more")
            }
            window = whole
        }
        self.init(images: images, neighbours: neighbours, window: window)
    }
}

/// Image retrieval: a visual vocabulary learnt from the photos' own descriptors, and each photo paired with its
/// most similar `neighbours` (`ImageRetrieval`). For a large unordered set these are all its pairs; for a walk
/// they are the loop closures added to each photo's next `window` photos, as COLMAP's sequential matcher finds
/// them with its vocabulary tree. The pairs go to
/// `work/matches/retrieved-pairs.json` as `[[first, second], …]`, which the job's `match` tasks share out.
/// Photos Pre-Processing left out take no part.
public struct RetrievePairsTask {
    public var inputs: RetrievePairsInputs
    public var workDirectory: String

    public static let output = "matches/retrieved-pairs.json"

    public init(inputs: RetrievePairsInputs, workDirectory: String) {
        self.inputs = inputs
        self.workDirectory = workDirectory
    }

    public init(_ assignment: TaskAssignment) throws(TaskError) {
        self.init(inputs: try RetrievePairsInputs(assignment.inputs), workDirectory: assignment.workDirectory)
    }

    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        sink.progress(0, "reading features")
        var names: [String] = [], sets: [FeatureSet] = []
        for image in inputs.images {
            if sink.shouldStop { throw TaskError.cancelled }
            guard try WorkingImageFacts.read(workDirectory: workDirectory, image: image) != nil else { continue }
            names.append(image)
            sets.append(try readFeatures(workDirectory: workDirectory, image: image))
        }
        sink.progress(0.3, "learning the vocabulary")
        var pairs = ImageRetrieval.pairs(sets, options: RetrievalOptions(neighbours: inputs.neighbours))
        if inputs.window > 0 {
            let walk = SelectPairs.pairs(imageCount: sets.count, selection: .sequential(window: inputs.window))
            pairs = Array(Set(pairs).union(walk)).sorted()
        }
        if sink.shouldStop { throw TaskError.cancelled }
        let document = pairs.map { [names[$0.first], names[$0.second]] }
        do {
            try FileManager.default.createDirectory(atPath: workDirectory + "/matches",
                                                    withIntermediateDirectories: true)
            let data = try JSONSerialization.data(withJSONObject: document, options: [.withoutEscapingSlashes])
            try WorkFile.writeAtomically(Array(data) + [UInt8(ascii: "\n")], to: workDirectory + "/" + Self.output)
        } catch {
            throw TaskError.failed(message: "cannot write \(Self.output): \(error)", retryable: true, image: nil)
        }
        sink.progress(1, "done")
        return TaskOutcome(outputs: [Self.output], data: ["pairs": .number(Double(pairs.count)),
                                                           "images": .number(Double(names.count))])
    }

    /// The pairs a retrieve task wrote.
    static func readPairs(workDirectory: String) throws(TaskError) -> [[String]] {
        let path = workDirectory + "/" + output
        guard let data = FileManager.default.contents(atPath: path),
              let list = try? JSONSerialization.jsonObject(with: data) as? [[String]],
              list.allSatisfy({ $0.count == 2 && isFileName($0[0]) && isFileName($0[1]) }) else {
            throw TaskError.failed(message: "the retrieved pairs (work/\(output)) are missing or damaged; "
                                   + "compute again", retryable: false, image: nil)
        }
        return list
    }
}
