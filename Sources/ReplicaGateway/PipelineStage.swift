import ReplicaProtocol

/// One stage of a reconstruction, as the API's `processingStage` names it (Object Capture's terms), in
/// pipeline order. A stage exists here only once a task runner computes it.
public enum PipelineStage: String, CaseIterable, Comparable, Sendable {
    case preProcessing = "Pre-Processing"
    case imageAlignment = "Image Alignment"
    case pointCloudGeneration = "Point Cloud Generation"
    case meshGeneration = "Mesh Generation"
    case textureMapping = "Texture Mapping"
    case exporting = "Exporting"

    /// The name on the command line (`--stop-after pre-processing`): lowercase, words joined by `-`.
    public var commandLineName: String { rawValue.lowercased().replacingOccurrences(of: " ", with: "-") }

    /// The stage a command-line name or an API name names, letter case ignored; nil when none does.
    public init?(name: String) {
        let wanted = name.lowercased()
        guard let stage = Self.allCases.first(where: {
            $0.commandLineName == wanted || $0.rawValue.lowercased() == wanted
        }) else { return nil }
        self = stage
    }

    /// The stage's share of a whole job's progress, relative to the other stages' (their sum need not be 1).
    var progressWeight: Double {
        switch self {
        case .preProcessing: return 0.05
        case .imageAlignment: return 0.25
        case .pointCloudGeneration: return 0.35
        case .meshGeneration: return 0.05
        case .textureMapping: return 0.1
        case .exporting: return 0.02
        }
    }

    public static func < (a: PipelineStage, b: PipelineStage) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}
