import ReplicaGeometry

/// The size of a sparse model and how well its points agree with its own cameras.
public struct StructureEvaluation: Equatable, Sendable, Codable {
    /// 3-D points in the model.
    public var points: Int
    /// Observations over all tracks.
    public var observations: Int
    /// `observations / points`; 0 for a model without points.
    public var meanTrackLength: Double
    /// Observations that could not be reprojected: the point is behind that camera, or the observation names
    /// an image the model does not have. They are left out of the errors below.
    public var unprojectedObservations: Int
    /// Distance between each observed pixel and its point projected into the observing image, pixels; nil
    /// when no observation could be reprojected.
    public var meanReprojectionErrorPixels: Double?
    public var medianReprojectionErrorPixels: Double?
}

/// Measures a sparse model against itself.
public enum StructureMetrics {
    /// Counts points and observations and recomputes every observation's reprojection error.
    public static func evaluate(_ model: SparseModel) -> StructureEvaluation {
        var errors: [Double] = []
        var observations = 0
        for point in model.points {
            observations += point.track.count
            for observation in point.track {
                guard model.images.indices.contains(observation.imageIndex),
                      let pixel = model.images[observation.imageIndex].project(point.position) else { continue }
                errors.append((pixel - observation.pixel).length)
            }
        }
        let summary = ErrorSummary(errors)
        return StructureEvaluation(
            points: model.points.count, observations: observations,
            meanTrackLength: model.points.isEmpty ? 0 : Double(observations) / Double(model.points.count),
            unprojectedObservations: observations - errors.count,
            meanReprojectionErrorPixels: summary?.mean, medianReprojectionErrorPixels: summary?.median)
    }
}
