import ReplicaCore
import ReplicaProtocol

/// Turns a compute request into the job's graph of tasks: the pipeline's outline, one stage after another.
///
/// A stage appears here once a worker can compute it; the graph then ends with the last stage that exists, or
/// with the one a local run asked to stop after.
/// How the pairs of photos to match are chosen.
public enum PairSelectionStrategy: String, CaseIterable, Sendable {
    /// Sequential for `sampleOrdering: "sequential"`; for unordered sets, every pair up to
    /// `JobPlanner.largestExhaustiveSet` photos and retrieval above.
    case automatic
    case exhaustive, sequential, retrieval
}

enum JobPlanner {
    /// The stages a job runs, in order, up to `lastStage` (nil: all).
    static func stages(upTo lastStage: PipelineStage?) -> [PipelineStage] {
        PipelineStage.allCases.filter { lastStage == nil || $0 <= lastStage! }
    }

    /// The tasks for `images` (file names in the project's `images/`, in the order to run them), for a pool of
    /// `workers` workers.
    static func plan(images: [String], options: ComputeOptions, lastStage: PipelineStage?,
                     pairing: PairSelectionStrategy = .automatic, workers: Int = 1) -> [PlannedTask] {
        var tasks: [PlannedTask] = []
        for stage in stages(upTo: lastStage) {
            switch stage {
            case .preProcessing: tasks += preProcessing(images: images, settings: options.settings)
            case .imageAlignment:
                tasks += imageAlignment(images: images, options: options, pairing: pairing, workers: workers,
                                        after: tasks)
            case .pointCloudGeneration:
                tasks += pointCloudGeneration(images: images, options: options, after: tasks)
            case .meshGeneration:
                tasks += meshGeneration(options: options, after: tasks)
            case .textureMapping:
                tasks += textureMapping(options: options, after: tasks)
            case .exporting:
                tasks += exporting(after: tasks)
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
    private static func imageAlignment(images: [String], options: ComputeOptions, pairing: PairSelectionStrategy,
                                       workers: Int, after earlier: [PlannedTask]) -> [PlannedTask] {
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
        var blocks: [String] = []
        var mapDependencies: [Int] = []
        let chosen = strategy(pairing, options: options, imageCount: images.count)
        if chosen == .retrieval || chosen == .sequential {
            // The pairs are known once every photo's features are: one retrieval task, then the matching tasks
            // share its list out, each taking every n-th pair. A walk adds each photo's next few.
            let window = chosen == .sequential ? sequentialWindow : 0
            let neighbours = chosen == .sequential ? loopClosureNeighbours : retrievalNeighbours
            let retrieval = earlier.count + tasks.count
            var inputs: [String: JSONValue] = ["images": .array(images.map(JSONValue.string)),
                                               "neighbours": .number(Double(neighbours))]
            if window > 0 { inputs["window"] = .number(Double(window)) }
            tasks.append(PlannedTask(stage: .imageAlignment, kind: .retrieve, image: nil, inputs: inputs,
                                     dependencies: featuresTask))
            let parts = blockCount(pairs: images.count * (neighbours + window), workers: workers)
            for part in 0..<parts {
                let name = String(format: "block-%05d", part)
                blocks.append(name)
                mapDependencies.append(earlier.count + tasks.count)
                tasks.append(PlannedTask(stage: .imageAlignment, kind: .match, image: nil,
                                         inputs: ["block": .string(name), "part": .number(Double(part)),
                                                  "parts": .number(Double(parts))],
                                         dependencies: [retrieval]))
            }
        }
        let pairs = blocks.isEmpty ? SelectPairs.pairs(imageCount: images.count, selection: .exhaustive) : []
        let count = blockCount(pairs: pairs.count, workers: workers)
        for index in 0..<(pairs.isEmpty ? 0 : count) {
            let block = Array(pairs[index * pairs.count / count..<(index + 1) * pairs.count / count])
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

    /// Point Cloud Generation: a depth map per photo once the sparse model exists, then one fusion of them all
    /// (with the object masked when the request asks). `earlier` are the tasks planned so far.
    private static func pointCloudGeneration(images: [String], options: ComputeOptions,
                                             after earlier: [PlannedTask]) -> [PlannedTask] {
        guard let map = earlier.lastIndex(where: { $0.kind == .map }) else { return [] }
        var tasks: [PlannedTask] = []
        for image in images {
            tasks.append(PlannedTask(stage: .pointCloudGeneration, kind: .depth, image: image,
                                     inputs: ["image": .string(image)], dependencies: [map]))
        }
        tasks.append(PlannedTask(stage: .pointCloudGeneration, kind: .fuse, image: nil,
                                 inputs: ["images": .array(images.map(JSONValue.string)),
                                          "masking": .bool(options.isObjectMaskingEnabled)],
                                 dependencies: Array(earlier.count..<(earlier.count + tasks.count))))
        return tasks
    }

    /// Mesh Generation: one task after fusion, with the polygon budget of the detail level (custom's
    /// `maximumPolygonCount`) and the primitive asked for. `earlier` are the tasks planned so far.
    private static func meshGeneration(options: ComputeOptions, after earlier: [PlannedTask]) -> [PlannedTask] {
        guard let fuse = earlier.lastIndex(where: { $0.kind == .fuse }) else { return [] }
        return [PlannedTask(stage: .meshGeneration, kind: .mesh, image: nil,
                            inputs: ["maxPolygons": .number(Double(options.settings.maximumPolygonCount)),
                                     "primitive": .string(options.meshPrimitive.rawValue),
                                     "masking": .bool(options.isObjectMaskingEnabled)],
                            dependencies: [fuse])]
    }

    /// Texture Mapping: one task after Mesh Generation, baking the level's maps (custom's `outputTextureMaps`)
    /// at its texture side, in its format. Raw spreads its diffuse map over as many pages as keep a texel per
    /// photo pixel, up to `rawPages`; the other levels fit one page.
    private static func textureMapping(options: ComputeOptions, after earlier: [PlannedTask]) -> [PlannedTask] {
        guard let mesh = earlier.lastIndex(where: { $0.kind == .mesh }) else { return [] }
        let settings = options.settings
        var inputs: [String: JSONValue] = [
            "maps": .array(settings.outputTextureMaps.map { .string($0.rawValue) }),
            "dimension": .number(Double(settings.maximumTextureDimension.pixels)),
            "format": .string(settings.textureFormat.rawValue),
        ]
        if options.detail == .raw { inputs["maximumPages"] = .number(Double(rawPages)) }
        if settings.textureFormat == .jpeg { inputs["jpegQuality"] = .number(settings.jpegCompressionQuality) }
        return [PlannedTask(stage: .textureMapping, kind: .texture, image: nil, inputs: inputs,
                            dependencies: [mesh])]
    }

    /// Exporting: one task after Texture Mapping writes the USDZ and the GLB into `work/export/`; the scheduler
    /// moves them into the project's folder as the job completes.
    private static func exporting(after earlier: [PlannedTask]) -> [PlannedTask] {
        guard let texture = earlier.lastIndex(where: { $0.kind == .texture }) else { return [] }
        return [PlannedTask(stage: .exporting, kind: .export, image: nil, inputs: [:], dependencies: [texture])]
    }

    /// The most 8192² pages raw's diffuse map may take: 1.6 gigatexels, far beyond what the photos give.
    static let rawPages = 24

    /// The strategy a job uses: the one asked for, or for `automatic` the one its ordering and size call for.
    static func strategy(_ pairing: PairSelectionStrategy, options: ComputeOptions,
                         imageCount: Int) -> PairSelectionStrategy {
        guard pairing == .automatic else { return pairing }
        if options.sampleOrdering == .sequential { return .sequential }
        return imageCount > largestExhaustiveSet ? .retrieval : .exhaustive
    }

    /// The largest unordered set matched exhaustively (1,770 pairs at 60 photos); above it, retrieval pairs
    /// each photo with its `retrievalNeighbours` most similar, so the pairs grow linearly with the photos.
    static let largestExhaustiveSet = 60
    static let retrievalNeighbours = 25
    /// A walk: each photo with its next `sequentialWindow`, and its `loopClosureNeighbours` most similar photos
    /// found by retrieval, which close the walk where it comes back and hold it together where its order is
    /// only roughly that of the views.
    static let sequentialWindow = 10
    static let loopClosureNeighbours = 10

    /// Pairs per matching task: about 5 to 30 seconds of work at the default budgets, short enough that
    /// progress moves and a lost worker costs little, long enough that a task's start-up is noise.
    static let pairsPerBlock = 40

    /// How many matching tasks share `pairs` pairs: about `pairsPerBlock` each, their count rounded up to a
    /// multiple of `workers` (but never more than the pairs), so that the last round of a small job keeps
    /// every worker busy instead of leaving some idle while one finishes a full block.
    static func blockCount(pairs: Int, workers: Int) -> Int {
        let blocks = max(1, (pairs + pairsPerBlock - 1) / pairsPerBlock)
        let rounded = (blocks + max(1, workers) - 1) / max(1, workers) * max(1, workers)
        return max(1, min(rounded, pairs))
    }

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
