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
            }
        }
        return tasks
    }

    /// One task per photo: decode it upright, read its focal length and write the working-resolution copy.
    private static func preProcessing(images: [String], settings: DetailSettings) -> [PlannedTask] {
        images.map { image in
            PlannedTask(stage: .preProcessing, image: image,
                        inputs: ["image": .string(image),
                                 "maxDimension": .number(Double(settings.workingImageDimension))])
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
