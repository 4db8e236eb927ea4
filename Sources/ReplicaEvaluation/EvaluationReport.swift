import Foundation

/// Every evaluation of one run, for scripts: each part is present when it was measured.
public struct EvaluationSummary: Equatable, Sendable, Codable {
    public var cameras: CameraEvaluation?
    public var structure: StructureEvaluation?
    public var geometry: GeometryEvaluation?
    public var appearance: AppearanceEvaluation?
    public var containment: ContainmentEvaluation?

    public init(cameras: CameraEvaluation? = nil, structure: StructureEvaluation? = nil,
                geometry: GeometryEvaluation? = nil, appearance: AppearanceEvaluation? = nil,
                containment: ContainmentEvaluation? = nil) {
        self.cameras = cameras
        self.structure = structure
        self.geometry = geometry
        self.appearance = appearance
        self.containment = containment
    }
}

/// Evaluations as text: tables for people, JSON for scripts.
public enum EvaluationReport {
    /// JSON with sorted keys; ±∞ and NaN, which JSON lacks, are written as the strings "inf", "-inf", "nan".
    public static func json<Value: Encodable>(_ value: Value) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf",
                                                                      negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// The summary line, then one row per registered image.
    public static func table(_ evaluation: CameraEvaluation) -> String {
        let summary = ReportTable(headers: ["registered", "rotation median (°)", "rotation max (°)",
                                          "centre median (% of path)", "centre max (% of path)",
                                          "within 1° (%)", "within 1 % of path (%)", "alignment inliers"])
        summary.add([
            "\(evaluation.registeredCount)/\(evaluation.trueImageCount)",
            number(evaluation.rotationErrorDegrees?.median), number(evaluation.rotationErrorDegrees?.max),
            percent(evaluation.centerErrorFraction?.median), percent(evaluation.centerErrorFraction?.max),
            percent(evaluation.withinOneDegreeFraction), percent(evaluation.withinOnePercentFraction),
            "\(evaluation.alignmentInliers)",
        ])
        let images = ReportTable(headers: ["image", "rotation (°)", "centre (% of path)", "alignment inlier"])
        for image in evaluation.images {
            images.add([image.name, number(image.rotationErrorDegrees), percent(image.centerErrorFraction),
                        image.isAlignmentInlier ? "yes" : "no"])
        }
        return summary.render() + "\n" + images.render()
    }

    /// One row: counts and reprojection errors.
    public static func table(_ evaluation: StructureEvaluation) -> String {
        let table = ReportTable(headers: ["points", "observations", "mean track length (images)",
                                        "unprojected observations", "mean reprojection (px)",
                                        "median reprojection (px)"])
        table.add(["\(evaluation.points)", "\(evaluation.observations)", number(evaluation.meanTrackLength),
                   "\(evaluation.unprojectedObservations)", number(evaluation.meanReprojectionErrorPixels),
                   number(evaluation.medianReprojectionErrorPixels)])
        return table.render()
    }

    /// The distances as fractions of the diagonal, then one row per threshold.
    public static func table(_ evaluation: GeometryEvaluation) -> String {
        let diagonal = evaluation.diagonal
        let distances = ReportTable(headers: ["diagonal (scene units)", "accuracy median (% of diagonal)",
                                            "accuracy mean (% of diagonal)", "completeness median (% of diagonal)",
                                            "completeness mean (% of diagonal)"])
        distances.add([number(diagonal), percent(evaluation.accuracy.map { $0.median / diagonal }),
                       percent(evaluation.accuracy.map { $0.mean / diagonal }),
                       percent(evaluation.completeness.map { $0.median / diagonal }),
                       percent(evaluation.completeness.map { $0.mean / diagonal })])
        let scores = ReportTable(headers: ["threshold (% of diagonal)", "threshold (scene units)", "precision (%)",
                                         "recall (%)", "F-score (%)"])
        for score in evaluation.scores {
            scores.add([percent(score.fraction), number(score.distance), percent(score.precision),
                        percent(score.recall), percent(score.fScore)])
        }
        return distances.render() + "\n" + scores.render()
    }

    /// One row: how many points lie inside the object's box, as it is and grown by the tolerance.
    public static func table(_ evaluation: ContainmentEvaluation) -> String {
        let table = ReportTable(headers: ["points", "box diagonal (scene units)", "inside box (%)",
                                        "tolerance (% of diagonal)", "inside grown box (%)",
                                        "outside grown box (%)", "inside in every view (%)",
                                        "outside in some view (%)", "views"])
        table.add(["\(evaluation.points)", number(evaluation.diagonal), percent(evaluation.insideFraction),
                   percent(evaluation.tolerance), percent(evaluation.insideGrownFraction),
                   percent(1 - evaluation.insideGrownFraction), percent(evaluation.insideEveryViewFraction),
                   percent(evaluation.insideEveryViewFraction.map { 1 - $0 }),
                   evaluation.views.map(String.init) ?? "–"])
        return table.render()
    }

    /// One row per view, then the median and mean.
    public static func table(_ evaluation: AppearanceEvaluation) -> String {
        let table = ReportTable(headers: ["view", "PSNR (dB)", "SSIM"])
        for view in evaluation.views { table.add([view.name, number(view.psnrDecibels), number(view.ssim)]) }
        table.add(["median", number(evaluation.psnrDecibels?.median), number(evaluation.ssim?.median)])
        table.add(["mean", number(evaluation.psnrDecibels?.mean), number(evaluation.ssim?.mean)])
        table.add(["worst", number(evaluation.psnrDecibels?.minimum), number(evaluation.ssim?.minimum)])
        return table.render()
    }

    /// Three decimals; "inf" for +∞ and "–" for a value that was not measured.
    static func number(_ value: Double?) -> String {
        guard let value else { return "–" }
        if value.isInfinite { return value > 0 ? "inf" : "-inf" }
        return String(format: "%.3f", value)
    }

    /// A fraction shown as a percentage with three decimals.
    static func percent(_ fraction: Double?) -> String { number(fraction.map { $0 * 100 }) }
}

/// Columns padded to their widest cell: the first left-aligned (names), the rest right-aligned (numbers).
final class ReportTable {
    private let headers: [String]
    private var rows: [[String]] = []

    init(headers: [String]) { self.headers = headers }

    func add(_ row: [String]) {
        precondition(row.count == headers.count, "a row has one cell per column")
        rows.append(row)
    }

    func render() -> String {
        let all = [headers] + rows
        let widths = headers.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        let line = { (cells: [String]) -> String in
            cells.indices.map { column in
                let padding = String(repeating: " ", count: widths[column] - cells[column].count)
                return column == 0 ? cells[column] + padding : padding + cells[column]
            }.joined(separator: "  ")
        }
        let rule = widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")
        return ([line(headers), rule] + rows.map(line)).joined(separator: "\n") + "\n"
    }
}
