import Foundation

/// The reconstruction detail level a client asks for.
public enum DetailLevel: String, CaseIterable, Sendable {
    case preview, reduced, medium, full, raw, custom
}

/// Whether the photos were taken one after another around the object (`sequential`) or in no known order.
public enum SampleOrdering: String, CaseIterable, Sendable {
    case unordered, sequential
}

/// How eagerly features are detected: `high` for photos with few landmarks or little contrast.
public enum FeatureSensitivity: String, CaseIterable, Sendable {
    case normal, high
}

/// The polygon the output mesh is built from.
public enum MeshPrimitive: String, CaseIterable, Sendable {
    case triangle, quad
}

/// The largest side a texture map may have, in Object Capture's names.
public enum TextureDimension: String, CaseIterable, Sendable {
    case oneK, twoK, fourK, eightK, sixteenK

    /// The side in pixels, 1024 to 16384.
    public var pixels: Int {
        switch self {
        case .oneK: 1024
        case .twoK: 2048
        case .fourK: 4096
        case .eightK: 8192
        case .sixteenK: 16384
        }
    }
}

/// How texture maps are stored: lossless `png` or lossy `jpeg`.
public enum TextureFormat: String, CaseIterable, Sendable {
    case png, jpeg
}

/// One kind of texture map the model carries.
public enum TextureMap: String, CaseIterable, Sendable {
    case ambientOcclusion, diffuseColor, displacement, normal, roughness
}

/// The settings a detail level stands for: what each stage of the pipeline reads.
public struct DetailSettings: Equatable, Sendable {
    /// Longest side of the working copy of each photo, in pixels (Pre-Processing); `raw` keeps the photo's own
    /// size up to 65,500 (the largest JPEG side).
    public var workingImageDimension: Int
    /// Most polygons the final mesh may keep after decimation.
    public var maximumPolygonCount: Int
    /// Largest side of each texture map.
    public var maximumTextureDimension: TextureDimension
    public var textureFormat: TextureFormat
    /// 0...1, meaningful for jpeg.
    public var jpegCompressionQuality: Double
    /// In `TextureMap.allCases` order, distinct, non-empty.
    public var outputTextureMaps: [TextureMap]

    public init(workingImageDimension: Int, maximumPolygonCount: Int, maximumTextureDimension: TextureDimension,
                textureFormat: TextureFormat, jpegCompressionQuality: Double, outputTextureMaps: [TextureMap]) {
        self.workingImageDimension = workingImageDimension
        self.maximumPolygonCount = maximumPolygonCount
        self.maximumTextureDimension = maximumTextureDimension
        self.textureFormat = textureFormat
        self.jpegCompressionQuality = jpegCompressionQuality
        self.outputTextureMaps = outputTextureMaps
    }
}

extension DetailLevel {
    /// The level's row of the detail table; custom's row holds the defaults its fields override.
    ///
    /// Polygon counts and texture maps are Apple's for Object Capture: fewer than 25k, 50k, 100k, 250k and 30M
    /// triangles from preview to raw; diffuse, normal and ambient occlusion maps up to medium, all five at full,
    /// diffuse only at raw (https://developer.apple.com/documentation/realitykit/photogrammetrysession/request/detail).
    /// Apple publishes no texture sides and no working image sizes, so those are ours: texture sides double
    /// per level, as Apple's estimated file sizes (5, 10, 30, 100 MB) grow by two to three times; working sizes
    /// roughly double the pixel area per level, since matching and dense stereo cost grows with the area.
    /// Textures are png at every level; 0.8 is the JPEG quality custom starts from when it asks for jpeg.
    public var defaultSettings: DetailSettings {
        switch self {
        case .preview: Self.row(1024, 25_000, .oneK, maps: Self.basicMaps)
        case .reduced: Self.row(1536, 50_000, .twoK, maps: Self.basicMaps)
        case .medium: Self.row(2048, 100_000, .fourK, maps: Self.basicMaps)
        case .full: Self.row(3072, 250_000, .eightK, maps: TextureMap.allCases)
        // Raw's diffuse map is split over as many 8192² pages as it needs, as Object Capture splits it.
        case .raw: Self.row(65_500, 30_000_000, .eightK, maps: [.diffuseColor])
        // Medium's row, except that custom's maps default to all of them, as `["all"]` does.
        case .custom: Self.row(2048, 100_000, .fourK, maps: TextureMap.allCases)
        }
    }

    private static let basicMaps: [TextureMap] = [.ambientOcclusion, .diffuseColor, .normal]

    private static func row(_ working: Int, _ polygons: Int, _ texture: TextureDimension,
                            maps: [TextureMap]) -> DetailSettings {
        DetailSettings(workingImageDimension: working, maximumPolygonCount: polygons,
                       maximumTextureDimension: texture, textureFormat: .png, jpegCompressionQuality: 0.8,
                       outputTextureMaps: maps)
    }
}

/// A compute request's body, validated.
public struct ComputeOptions: Equatable, Sendable {
    /// Default medium.
    public var detail: DetailLevel = .medium
    /// Default unordered.
    public var sampleOrdering: SampleOrdering = .unordered
    /// Default normal.
    public var featureSensitivity: FeatureSensitivity = .normal
    /// Default triangle.
    public var meshPrimitive: MeshPrimitive = .triangle
    /// Separate the object from its background; default off.
    public var isObjectMaskingEnabled = false
    /// Only with `detail == .custom`; nil fields take the defaults of custom. Polygons, in `polygonCountRange`.
    public var maximumPolygonCount: Int?
    /// Custom only; largest texture side.
    public var maximumTextureDimension: TextureDimension?
    /// Custom only; png by default.
    public var textureFormat: TextureFormat?
    /// 0...1; only with `textureFormat == .jpeg`.
    public var jpegCompressionQuality: Double?
    /// Distinct and non-empty; nil or `["all"]` in a request means all five maps.
    public var outputTextureMaps: [TextureMap]?

    /// The polygon counts custom accepts. Four is the fewest faces that close a surface around a volume (a
    /// tetrahedron); 30M is raw's own ceiling, the most detail the pipeline is sized for, and keeps a mesh
    /// (about 30 to 45 bytes a triangle with normals and texture coordinates) well inside a GLB's 4 GiB.
    public static let polygonCountRange = 4...30_000_000

    public init() {}

    /// Parses a request body: empty (0 bytes, or only whitespace) → defaults. Throws with a message for a person
    /// that names the field.
    public static func parse(_ body: [UInt8]) throws(ComputeOptionsError) -> ComputeOptions {
        if body.allSatisfy(Self.isJSONWhitespace) { return ComputeOptions() }
        let fields = try RequestFields(body)
        var options = ComputeOptions()
        try options.read(fields)
        try options.validate()
        return options
    }

    /// Refuses custom fields without custom detail, a polygon count or quality out of range, a quality without
    /// jpeg, and an empty or repeating list of maps.
    public func validate() throws(ComputeOptionsError) {
        if detail != .custom, let field = customFieldsSet.first {
            throw ComputeOptionsError(message: "\(field) needs detail \"custom\"; detail is \"\(detail.rawValue)\"")
        }
        try validatePolygonCount()
        try validateQuality()
        try validateMaps()
    }

    /// The effective settings: the level's table row, or custom's fields over custom's defaults.
    public var settings: DetailSettings {
        var settings = detail.defaultSettings
        guard detail == .custom else { return settings }
        if let count = maximumPolygonCount { settings.maximumPolygonCount = count }
        if let dimension = maximumTextureDimension { settings.maximumTextureDimension = dimension }
        if let format = textureFormat { settings.textureFormat = format }
        if let quality = jpegCompressionQuality { settings.jpegCompressionQuality = quality }
        if let maps = outputTextureMaps { settings.outputTextureMaps = TextureMap.allCases.filter(maps.contains) }
        return settings
    }

    /// Canonical JSON (keys sorted, only the fields set), stored with the job; `parse(storedJSON)` gives back an
    /// equal value. The five standard fields are always written, so a stored job replays the same way even if
    /// a default changes later; maps are written in `TextureMap.allCases` order, the order `parse` gives.
    public var jsonBytes: [UInt8] {
        var writer = JSONWriter()
        writer.object { writer in
            writer.field("detail", detail.rawValue)
            writer.field("featureSensitivity", featureSensitivity.rawValue)
            writer.field("isObjectMaskingEnabled", isObjectMaskingEnabled)
            if let quality = jpegCompressionQuality { writer.field("jpegCompressionQuality", quality) }
            if let count = maximumPolygonCount { writer.field("maximumPolygonCount", count) }
            if let dimension = maximumTextureDimension { writer.field("maximumTextureDimension", dimension.rawValue) }
            writer.field("meshPrimitive", meshPrimitive.rawValue)
            if let maps = outputTextureMaps {
                writer.key("outputTextureMaps")
                writer.array(TextureMap.allCases.filter(maps.contains)) { writer, map in writer.value(map.rawValue) }
            }
            writer.field("sampleOrdering", sampleOrdering.rawValue)
            if let format = textureFormat { writer.field("textureFormat", format.rawValue) }
        }
        return writer.bytes
    }

    // MARK: - Reading and checking

    /// The fields a request may carry, in the order the API lists them; the last five are custom's.
    static let fieldNames = ["detail", "sampleOrdering", "featureSensitivity", "meshPrimitive",
                             "isObjectMaskingEnabled", "maximumPolygonCount", "maximumTextureDimension",
                             "textureFormat", "jpegCompressionQuality", "outputTextureMaps"]

    private static func isJSONWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
    }

    private mutating func read(_ fields: RequestFields) throws(ComputeOptionsError) {
        detail = try fields.choice("detail") ?? detail
        sampleOrdering = try fields.choice("sampleOrdering") ?? sampleOrdering
        featureSensitivity = try fields.choice("featureSensitivity") ?? featureSensitivity
        meshPrimitive = try fields.choice("meshPrimitive") ?? meshPrimitive
        isObjectMaskingEnabled = try fields.flag("isObjectMaskingEnabled") ?? isObjectMaskingEnabled
        maximumPolygonCount = try fields.wholeNumber("maximumPolygonCount")
        maximumTextureDimension = try fields.choice("maximumTextureDimension")
        textureFormat = try fields.choice("textureFormat")
        jpegCompressionQuality = try fields.number("jpegCompressionQuality")
        outputTextureMaps = try fields.textureMaps("outputTextureMaps")
    }

    /// The custom fields that hold a value, in the API's order.
    private var customFieldsSet: [String] {
        let set = [maximumPolygonCount != nil, maximumTextureDimension != nil, textureFormat != nil,
                   jpegCompressionQuality != nil, outputTextureMaps != nil]
        return zip(Self.fieldNames.suffix(5), set).filter(\.1).map(\.0)
    }

    private func validatePolygonCount() throws(ComputeOptionsError) {
        guard let count = maximumPolygonCount, !Self.polygonCountRange.contains(count) else { return }
        throw ComputeOptionsError(message: RequestFields.polygonCountProblem(got: String(count)))
    }

    private func validateQuality() throws(ComputeOptionsError) {
        guard let quality = jpegCompressionQuality else { return }
        guard (0.0...1.0).contains(quality) else {
            throw ComputeOptionsError(message: "jpegCompressionQuality must be from 0 to 1; got \(quality)")
        }
        let format = textureFormat ?? DetailLevel.custom.defaultSettings.textureFormat
        guard format == .jpeg else {
            throw ComputeOptionsError(
                message: "jpegCompressionQuality needs textureFormat \"jpeg\"; textureFormat is \"\(format.rawValue)\"")
        }
    }

    private func validateMaps() throws(ComputeOptionsError) {
        guard let maps = outputTextureMaps else { return }
        guard !maps.isEmpty else {
            throw ComputeOptionsError(message: "outputTextureMaps must not be empty; use [\"all\"] for every map")
        }
        guard Set(maps).count == maps.count else {
            throw ComputeOptionsError(message: "outputTextureMaps must name each map at most once")
        }
    }
}

/// Why a compute request's body was refused, as a sentence for a person that names the field.
public struct ComputeOptionsError: Error, Equatable, Sendable, CustomStringConvertible {
    public let message: String

    public init(message: String) { self.message = message }

    public var description: String { message }
}

// MARK: - The body's fields, typed exactly

/// One JSON value as the request spelled it: a boolean is never a number, a whole number is told from a
/// fraction.
private enum RequestValue: Decodable {
    case null
    case bool(Bool)
    case integer(Int)
    case number(Double)
    case string(String)
    case array([RequestValue])
    case object([String: RequestValue])

    // Bool first: Foundation's JSONDecoder reads `true` only as Bool and `1` never as Bool, so the order keeps
    // the two apart; Int before Double keeps 7 whole (and 1.0 or 1e2 too, which are whole numbers in JSON).
    init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let whole = try? container.decode(Int.self) {
            self = .integer(whole)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let items = try? container.decode([RequestValue].self) {
            self = .array(items)
        } else {
            // Not `try?`: a malformed number or string inside, which the decoder scans only when asked for it,
            // fails here with its field's path.
            self = .object(try container.decode([String: RequestValue].self))
        }
    }

    /// What a message says the client sent: short values as written, containers by their kind.
    var shown: String {
        switch self {
        case .null: return "null"
        case .bool(let flag): return String(flag)
        case .integer(let whole): return String(whole)
        case .number(let number): return String(number)
        case .string(let text): return Self.quoted(text)
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The kind of value, for a body that is not an object.
    var kind: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// A string as JSON writes it, cut to 40 characters so a long value does not flood the message.
    private static func quoted(_ text: String) -> String {
        let cut = text.count > 40 ? String(text.prefix(40)) + "…" : text
        var writer = JSONWriter(capacity: cut.utf8.count + 2)
        writer.value(cut)
        return String(decoding: writer.bytes, as: UTF8.self)
    }
}

/// A body's top-level fields, with readers that check each field's type and values.
private struct RequestFields {
    let fields: [String: RequestValue]

    /// Decodes the body and refuses what is not an object of known fields.
    ///
    /// Foundation's decoder is lenient in two ways this inherits: a comma before `}` passes, and of a field
    /// given twice the first one counts. Neither changes what a valid body means; refusing them would take a
    /// JSON reader of our own.
    init(_ body: [UInt8]) throws(ComputeOptionsError) {
        let value: RequestValue
        do {
            value = try JSONDecoder().decode(RequestValue.self, from: Data(body))
        } catch {
            throw ComputeOptionsError(message: Self.malformedProblem(error))
        }
        guard case .object(let fields) = value else {
            throw ComputeOptionsError(message: "the request body must be a JSON object, not \(value.kind)")
        }
        // Sorted, so that a body with two unknown fields is always refused for the same one.
        if let unknown = fields.keys.sorted().first(where: { !ComputeOptions.fieldNames.contains($0) }) {
            let known = ComputeOptions.fieldNames.joined(separator: ", ")
            throw ComputeOptionsError(message: "unknown field \(RequestValue.string(unknown).shown); the fields "
                                               + "are \(known)")
        }
        self.fields = fields
    }

    /// A string field that must name one of `T`'s cases.
    func choice<T: RawRepresentable & CaseIterable>(_ name: String) throws(ComputeOptionsError) -> T?
    where T.RawValue == String {
        guard let value = fields[name] else { return nil }
        if case .string(let text) = value, let choice = T(rawValue: text) { return choice }
        let names = T.allCases.map(\.rawValue).joined(separator: ", ")
        throw ComputeOptionsError(message: "\(name) must be one of \(names); got \(value.shown)")
    }

    func flag(_ name: String) throws(ComputeOptionsError) -> Bool? {
        guard let value = fields[name] else { return nil }
        guard case .bool(let flag) = value else {
            throw ComputeOptionsError(message: "\(name) must be true or false; got \(value.shown)")
        }
        return flag
    }

    /// A whole number; `validate()` checks its range.
    func wholeNumber(_ name: String) throws(ComputeOptionsError) -> Int? {
        guard let value = fields[name] else { return nil }
        guard case .integer(let whole) = value else {
            throw ComputeOptionsError(message: Self.polygonCountProblem(got: value.shown))
        }
        return whole
    }

    /// A number meant to lie from 0 to 1, whole or not; `validate()` checks the range.
    func number(_ name: String) throws(ComputeOptionsError) -> Double? {
        switch fields[name] {
        case nil: return nil
        case .integer(let whole): return Double(whole)
        case .number(let number): return number
        case let value?: throw ComputeOptionsError(message: "\(name) must be a number from 0 to 1; got \(value.shown)")
        }
    }

    /// `["all"]` (every map) or distinct map names, returned in `TextureMap.allCases` order.
    func textureMaps(_ name: String) throws(ComputeOptionsError) -> [TextureMap]? {
        guard let value = fields[name] else { return nil }
        let names = TextureMap.allCases.map(\.rawValue).joined(separator: ", ")
        guard case .array(let items) = value, !items.isEmpty else {
            throw ComputeOptionsError(message: "\(name) must be [\"all\"] or a non-empty list of maps from "
                                               + "\(names); got \(value.shown)")
        }
        var maps: [TextureMap] = []
        for item in items {
            maps += try Self.textureMap(item, field: name, listSize: items.count, names: names)
        }
        guard Set(maps).count == maps.count else {
            throw ComputeOptionsError(message: "\(name) must name each map at most once")
        }
        return maps.isEmpty ? TextureMap.allCases : TextureMap.allCases.filter(maps.contains)
    }

    /// One element of the maps list; "all" alone yields no map, which stands for every one.
    private static func textureMap(_ item: RequestValue, field: String, listSize: Int,
                                   names: String) throws(ComputeOptionsError) -> [TextureMap] {
        guard case .string(let text) = item else {
            throw ComputeOptionsError(message: "\(field) must list map names from \(names); got \(item.shown)")
        }
        if text == "all" {
            guard listSize == 1 else {
                throw ComputeOptionsError(message: "\(field) must be [\"all\"] alone or list the maps, not both")
            }
            return []
        }
        guard let map = TextureMap(rawValue: text) else {
            throw ComputeOptionsError(message: "\(field) must list map names from \(names); got \(item.shown)")
        }
        return [map]
    }

    static func polygonCountProblem(got shown: String) -> String {
        let range = ComputeOptions.polygonCountRange
        return "maximumPolygonCount must be a whole number from \(range.lowerBound) to \(range.upperBound); "
               + "got \(shown)"
    }

    /// Not JSON at all, or a value inside that cannot be read (a number beyond a Double, a broken string).
    private static func malformedProblem(_ error: Error) -> String {
        guard let first = Self.codingPath(of: error).first else { return "the request body is not valid JSON" }
        return "the request body is not valid JSON: the value of \(RequestValue.string(first.stringValue).shown) "
               + "cannot be read"
    }

    private static func codingPath(of error: Error) -> [CodingKey] {
        switch error as? DecodingError {
        case .dataCorrupted(let context)?, .typeMismatch(_, let context)?, .valueNotFound(_, let context)?,
             .keyNotFound(_, let context)?:
            return context.codingPath
        default:
            return []
        }
    }
}
