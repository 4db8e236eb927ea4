import ReplicaCore
import ReplicaProtocol

/// Turns a compute request into the job's graph of tasks: the pipeline's outline, one stage after another.
///
/// A stage appears here once a worker can compute it; the graph then ends with the last stage that exists, or
/// with the one a local run asked to stop after.
enum JobPlanner {
    /// The stages a job runs, in order, up to `lastStage` (nil: all).
    static func stages(upTo lastStage: PipelineStage?) -> [PipelineStage] {
        PipelineStage.allCases.filter { lastStage == nil || $0 <= lastStage! }
    }

    /// The tasks for `images` (file names in the project's `images/`, in the order to run them).
    static func plan(images: [String], options: ComputeOptions, lastStage: PipelineStage?) -> [PlannedTask] {
        var tasks: [PlannedTask] = []
        for stage in stages(upTo: lastStage) {
            switch stage {
            case .preProcessing: tasks += preProcessing(images: images, settings: options.settings)
            case .imageAlignment: tasks += imageAlignment(images: images, options: options, after: tasks)
            }
        }
        return tasks
    }

    /// One task per photo: decode it upright, read its focal length and write the working-resolution copy.
    private static func preProcessing(images: [String], settings: DetailSettings) -> [PlannedTask] {
        images.map { image in
            PlannedTask(stage: .preProcessing, kind: .preprocess, image: image,
                        inputs: ["image": .string(image),
                                 "maxDimension": .number(Double(settings.workingImageDimension))])
        }
    }

    /// Image Alignment: features per photo (after its Pre-Processing), matching and verification per block of
    /// pairs (after the features of the block's photos), then one structure-from-motion task after them all.
    /// `earlier` are the tasks planned so far; their indices are the dependencies' numbering.
    private static func imageAlignment(images: [String], options: ComputeOptions,
                                       after earlier: [PlannedTask]) -> [PlannedTask] {
        var preprocessing: [String: Int] = [:]
        for (index, task) in earlier.enumerated() where task.kind == .preprocess {
            if let image = task.image { preprocessing[image] = index }
        }
        var tasks: [PlannedTask] = []
        var featuresTask: [Int] = []
        let budget = featureBudget(workingImageDimension: options.settings.workingImageDimension)
        for image in images {
            featuresTask.append(earlier.count + tasks.count)
            tasks.append(PlannedTask(stage: .imageAlignment, kind: .features, image: image,
                                     inputs: ["image": .string(image), "maxFeatures": .number(Double(budget)),
                                              "sensitivity": .string(options.featureSensitivity.rawValue)],
                                     dependencies: preprocessing[image].map { [$0] } ?? []))
        }
        let selection: PairSelection = options.sampleOrdering == .sequential ? .sequentialDefault : .exhaustive
        let pairs = SelectPairs.pairs(imageCount: images.count, selection: selection)
        var blocks: [String] = []
        var mapDependencies: [Int] = []
        for start in stride(from: 0, to: pairs.count, by: pairsPerBlock) {
            let block = Array(pairs[start..<min(pairs.count, start + pairsPerBlock)])
            let name = String(format: "block-%05d", blocks.count)
            blocks.append(name)
            let involved = Set(block.flatMap { [$0.first, $0.second] }).sorted()
            mapDependencies.append(earlier.count + tasks.count)
            tasks.append(PlannedTask(stage: .imageAlignment, kind: .match, image: nil,
                                     inputs: ["block": .string(name), "pairs": .array(block.map {
                                         .array([.string(images[$0.first]), .string(images[$0.second])])
                                     })],
                                     dependencies: involved.map { featuresTask[$0] }))
        }
        // Without a pair (one photo) the model waits for the features alone, and says it cannot align one photo.
        if blocks.isEmpty { mapDependencies = featuresTask }
        tasks.append(PlannedTask(stage: .imageAlignment, kind: .map, image: nil,
                                 inputs: ["images": .array(images.map(JSONValue.string)),
                                          "blocks": .array(blocks.map(JSONValue.string))],
                                 dependencies: mapDependencies))
        return tasks
    }

    /// Pairs per matching task: about 5 to 30 seconds of work at the default budgets, short enough that
    /// progress moves and a lost worker costs little, long enough that a task's start-up is noise.
    static let pairsPerBlock = 40

    /// The most SIFT features kept per photo: more detail, more features, as the working copies grow. COLMAP's
    /// default of 8192 is the medium level's.
    static func featureBudget(workingImageDimension: Int) -> Int {
        switch workingImageDimension {
        case ..<1200: return 4096
        case ..<1800: return 6144
        case ..<2600: return 8192
        case ..<4000: return 12_288
        default: return 16_384
        }
    }

    /// What a person is told when every photo of a job was refused by Pre-Processing.
    static func noUsablePhotos(count: Int, example: (image: String, reason: String)) -> String {
        let what = count == 1 ? "the project's only photo could not be read"
            : "none of the project's \(count) photos could be read"
        return "Pre-Processing: \(what) (\(example.image): \(example.reason)). "
            + "Add photos in JPEG, PNG, TIFF, HEIF or a camera RAW format and compute again."
    }
}
