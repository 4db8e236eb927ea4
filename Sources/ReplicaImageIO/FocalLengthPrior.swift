/// A first guess at a photo's focal length in pixels, from its EXIF, to seed camera calibration.
public enum FocalPrior: Equatable, Sendable {
    /// From the 35 mm-equivalent focal length (millimetres), in pixels.
    case fromEquivalentFocal(Double)
    /// From the recorded focal length and the camera's sensor width (millimetres, the sensor's longer side),
    /// in pixels.
    case fromSensorWidth(Double, sensorWidthMillimetres: Double)
    /// No prior could be formed, and why.
    case none(reason: String)

    /// The focal length in pixels, or nil when there is no prior.
    public var pixels: Double? {
        switch self {
        case .fromEquivalentFocal(let pixels), .fromSensorWidth(let pixels, _): return pixels
        case .none: return nil
        }
    }
}

/// Turns EXIF focal lengths into pixels.
///
/// Convention: the image's longest side spans the long side of the sensor, and a 35 mm-equivalent focal
/// length refers to a 36 mm wide frame, so f_px = f35 / 36 × longest side. (Equivalence by the diagonal,
/// which some cameras use, differs by a few per cent for 4:3 sensors; a prior tolerates that.)
public enum FocalLengthPrior {
    /// The width of a full 35 mm frame, in millimetres.
    public static let fullFrameWidthMillimetres = 36.0

    /// The best prior the metadata allows for an image of `imageWidth` × `imageHeight` pixels (as stored or
    /// upright; only the longest side matters): the 35 mm equivalent first, then focal length and a known
    /// sensor width, else none.
    public static func focalLengthPixels(for metadata: ImageMetadata, imageWidth: Int, imageHeight: Int)
        -> FocalPrior {
        let longest = Double(max(imageWidth, imageHeight))
        guard longest > 0 else { return .none(reason: "the image has no size") }
        if let equivalent = metadata.focalLength35mmMillimetres, equivalent > 0 {
            return .fromEquivalentFocal(equivalent / fullFrameWidthMillimetres * longest)
        }
        guard let focal = metadata.focalLengthMillimetres, focal > 0 else {
            return .none(reason: "the EXIF has neither a 35 mm-equivalent nor a focal length")
        }
        guard let sensor = sensorWidthMillimetres(make: metadata.make, model: metadata.model) else {
            let camera = [metadata.make, metadata.model].compactMap { $0 }.joined(separator: " ")
            return .none(reason: "the sensor width of '\(camera.isEmpty ? "an unnamed camera" : camera)' is unknown")
        }
        return .fromSensorWidth(focal / sensor * longest, sensorWidthMillimetres: sensor)
    }

    /// The sensor's longer side in millimetres for a camera in the table, by normalised make and model.
    public static func sensorWidthMillimetres(make: String?, model: String?) -> Double? {
        guard let model else { return nil }
        return sensorWidths[cameraKey(make: make, model: model)]
    }

    /// Make and model as one lowercase key: the brand's usual short name, then the model without the brand
    /// repeated in front, runs of other characters collapsed to one space ("NIKON CORPORATION" + "NIKON D800"
    /// → "nikon d800").
    static func cameraKey(make: String?, model: String) -> String {
        let makeWords = words(make ?? "")
        let brand = makeWords.first { knownBrands.contains($0) } ?? makeWords.first ?? ""
        var modelWords = words(model)
        if modelWords.first == brand { modelWords.removeFirst() }
        return ([brand] + modelWords).filter { !$0.isEmpty }.joined(separator: " ")
    }

    private static func words(_ text: String) -> [String] {
        text.lowercased().split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }

    /// Brands whose makers write a longer company name in EXIF ("EASTMAN KODAK COMPANY").
    private static let knownBrands: Set<String> = [
        "canon", "nikon", "sony", "kodak", "olympus", "panasonic", "fujifilm", "dji", "gopro", "pentax", "ricoh",
    ]

    // Sensor formats, long side in millimetres.
    private static let fullFrame = 36.0
    private static let apsCCanon = 22.3
    private static let microFourThirds = 17.3
    private static let oneInch = 13.2
    private static let oneOver2point3 = 6.17
    private static let oneOver2point5 = 5.76

    /// Long side of the sensor in millimetres, by camera key; cameras that write no 35 mm-equivalent focal
    /// length are the ones this is for, so DSLRs, mirrorless cameras, compacts and drones.
    static let sensorWidths: [String: Double] = [
        "canon eos 5d mark ii": fullFrame,
        "canon eos 5d mark iii": fullFrame,
        "canon eos 6d": 35.8,
        "canon eos 7d": apsCCanon,
        "canon eos 60d": apsCCanon,
        "canon eos 550d": apsCCanon,
        "canon eos 80d": apsCCanon,
        "canon eos d60": 22.7,
        "nikon d750": 35.9,
        "nikon d800": 35.9,
        "nikon d810": 35.9,
        "nikon d90": 23.6,
        "nikon d7000": 23.6,
        "nikon d3200": 23.2,
        "sony ilce 7m3": 35.6,
        "sony ilce 6000": 23.5,
        "sony dsc rx100": oneInch,
        "fujifilm x t2": 23.5,
        "panasonic dmc gh4": microFourThirds,
        "olympus e m5": microFourThirds,
        "olympus e m10": microFourThirds,
        "dji fc6310": oneInch,
        "dji fc330": oneOver2point3,
        "dji fc220": oneOver2point3,
        "gopro hero4 black": oneOver2point3,
        "kodak z612 zoom digital camera": oneOver2point5,
    ]
}
