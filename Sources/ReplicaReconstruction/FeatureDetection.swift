import CVLFeat
import ReplicaCore
import ReplicaImageIO

/// One SIFT keypoint: where it is, how large and which way it points; its descriptor lives in `FeatureSet`.
///
/// Positions follow this code's pixel convention: the top-left pixel's centre is (0.5, 0.5), so a point of
/// the image lies in 0...width × 0...height. (VLFeat puts pixel centres at integer coordinates; detection adds
/// 0.5.)
public struct Keypoint: Equatable, Sendable {
    /// Position in pixels of the image the features were detected on.
    public var x: Float
    public var y: Float
    /// The keypoint's Gaussian scale σ, in pixels.
    public var scale: Float
    /// The dominant gradient direction, in radians, measured from +x towards +y (clockwise on screen).
    public var orientation: Float

    public init(x: Float, y: Float, scale: Float, orientation: Float) {
        self.x = x
        self.y = y
        self.scale = scale
        self.orientation = orientation
    }
}

/// The features of one image: keypoints strongest first, and a 128-byte quantised RootSIFT descriptor each.
public struct FeatureSet: Equatable, Sendable {
    /// Bytes per descriptor: 4 × 4 spatial cells of 8 orientation bins, in VLFeat's order.
    public static let descriptorLength = 128

    /// The size of the image the features were detected on, in pixels.
    public var width: Int
    public var height: Int
    public var keypoints: [Keypoint]
    /// `descriptorLength` bytes per keypoint, in the keypoints' order: RootSIFT scaled by 512 and clamped to 255.
    public var descriptors: [UInt8]

    public init(width: Int, height: Int, keypoints: [Keypoint], descriptors: [UInt8]) {
        precondition(descriptors.count == keypoints.count * Self.descriptorLength,
                     "a feature set needs \(Self.descriptorLength) descriptor bytes per keypoint")
        self.width = width
        self.height = height
        self.keypoints = keypoints
        self.descriptors = descriptors
    }

    /// The number of keypoints.
    public var count: Int { keypoints.count }

    /// The descriptor of keypoint `index`.
    public func descriptor(at index: Int) -> ArraySlice<UInt8> {
        let start = index * Self.descriptorLength
        return descriptors[start..<start + Self.descriptorLength]
    }
}

/// How SIFT features are detected; `validate()` before use.
public struct FeatureOptions: Equatable, Sendable {
    /// The most features kept per image (a keypoint with several orientations counts once per orientation).
    public var maximumFeatures: Int = 8192
    /// Finds more, weaker and smaller features, for low-contrast or small photos: the first octave is the
    /// image upsampled ×2 and the peak threshold is divided by `highSensitivityPeakDivisor`. Slower (about ×4).
    public var highSensitivity = false
    /// The smallest |difference of Gaussians| a keypoint may have, on grey values 0...1 (Lowe's 0.02 over 3
    /// levels per octave, as COLMAP uses).
    public var peakThreshold: Float = 0.02 / 3
    /// The largest ratio of principal curvatures a keypoint may have; above it, it lies on an edge. Lowe's 10.
    public var edgeThreshold: Float = 10
    /// Scale levels per octave (Lowe's 3).
    public var levelsPerOctave = 3
    /// The most octaves processed; nil: as many as the image's size allows (down to about 8 pixels).
    public var maximumOctaves: Int?
    /// Orientations per keypoint, 1 to 4: VLFeat gives a second, third and fourth orientation to any peak of
    /// the gradient histogram within 80 % of the highest, each becoming a feature of its own.
    public var maximumOrientations = 4

    /// What `highSensitivity` divides `peakThreshold` by.
    public static let highSensitivityPeakDivisor: Float = 3
    /// The most features one image may be asked for.
    public static let largestMaximumFeatures = 65_536

    public init(maximumFeatures: Int = 8192, highSensitivity: Bool = false) {
        self.maximumFeatures = maximumFeatures
        self.highSensitivity = highSensitivity
    }

    /// Images up to this longer side are upsampled ×2 for detection at every sensitivity, as COLMAP does for
    /// all: on a small photo the finest octave holds most of the features, at a quarter of the cost it has on
    /// a large one.
    public static let upsampledLongestSide = 1024

    /// VLFeat's index of the first octave for an image whose longer side is `longestSide`: −1 (the image
    /// upsampled ×2) at high sensitivity or for a small image, else 0.
    public func firstOctave(longestSide: Int) -> Int {
        highSensitivity || longestSide <= Self.upsampledLongestSide ? -1 : 0
    }

    /// The peak threshold detection uses, after high sensitivity's division.
    public var effectivePeakThreshold: Float {
        highSensitivity ? peakThreshold / Self.highSensitivityPeakDivisor : peakThreshold
    }

    /// Rejects counts and thresholds outside their ranges, with the field's name.
    public func validate() throws(OptionsError) {
        guard (1...Self.largestMaximumFeatures).contains(maximumFeatures) else {
            throw OptionsError("maximumFeatures must be 1 to \(Self.largestMaximumFeatures), not \(maximumFeatures)")
        }
        guard peakThreshold.isFinite, peakThreshold >= 0 else {
            throw OptionsError("peakThreshold must be a finite DoG value of 0 or more, not \(peakThreshold)")
        }
        guard edgeThreshold.isFinite, edgeThreshold >= 1 else {
            throw OptionsError("edgeThreshold must be a curvature ratio of at least 1, not \(edgeThreshold)")
        }
        guard (1...10).contains(levelsPerOctave) else {
            throw OptionsError("levelsPerOctave must be 1 to 10, not \(levelsPerOctave)")
        }
        if let maximumOctaves, !(1...32).contains(maximumOctaves) {
            throw OptionsError("maximumOctaves must be 1 to 32 or unset, not \(maximumOctaves)")
        }
        guard (1...4).contains(maximumOrientations) else {
            throw OptionsError("maximumOrientations must be 1 to 4, not \(maximumOrientations)")
        }
    }
}

/// SIFT detection and description through VLFeat.
public enum FeatureDetection {
    /// The shortest side, in pixels, below which an image has no features: VLFeat's smallest octave needs it.
    public static let smallestSide = 16

    /// The features of a grey or RGB image (converted to grey 0...1), strongest first.
    ///
    /// Keeps the `maximumFeatures` with the largest |difference of Gaussians| at their peak: contrast is what
    /// makes a keypoint come back under noise and lighting changes, and unlike a cut by scale it keeps the fine
    /// keypoints, which locate best. Orientations (up to 4 per keypoint) and descriptors are computed as VLFeat
    /// does, only for keypoints that can still be among the strongest; descriptors become RootSIFT (L1
    /// normalised, square-rooted), then bytes by ×512 clamped to 255, as COLMAP stores its descriptors.
    ///
    /// Safe to call from several threads at once: each call owns its VLFeat filter. `options` must be valid.
    public static func detect(_ image: PixelBuffer, options: FeatureOptions) -> FeatureSet {
        guard let features = detect(image, options: options, shouldStop: { false }) else {
            preconditionFailure("detection stopped without being asked to")
        }
        return features
    }

    /// `detect(_:options:)` that asks `shouldStop` before each octave and gives up, returning nil, once it
    /// answers true; the first octave is the largest part of the work (about 70 % at high sensitivity).
    public static func detect(_ image: PixelBuffer, options: FeatureOptions,
                              shouldStop: () -> Bool) -> FeatureSet? {
        do {
            try options.validate()
        } catch {
            preconditionFailure("FeatureDetection.detect with invalid options: \(error)")
        }
        let empty = FeatureSet(width: image.width, height: image.height, keypoints: [], descriptors: [])
        guard min(image.width, image.height) >= smallestSide else { return empty }

        let grey = greyLevels(image)
        guard let filter = vl_sift_new(Int32(image.width), Int32(image.height),
                                       Int32(options.maximumOctaves ?? -1), Int32(options.levelsPerOctave),
                                       Int32(options.firstOctave(longestSide: max(image.width, image.height)))) else {
            preconditionFailure("VLFeat could not allocate a SIFT filter for \(image.width)×\(image.height)")
        }
        defer { vl_sift_delete(filter) }
        vl_sift_set_peak_thresh(filter, Double(options.effectivePeakThreshold))
        vl_sift_set_edge_thresh(filter, Double(options.edgeThreshold))

        var strongest = StrongestFeatures(limit: options.maximumFeatures)
        var status = grey.withUnsafeBufferPointer { vl_sift_process_first_octave(filter, $0.baseAddress) }
        while status == VL_ERR_OK {
            if shouldStop() { return nil }
            vl_sift_detect(filter)
            describeOctave(filter, options: options, into: &strongest)
            status = vl_sift_process_next_octave(filter)
        }
        return strongest.featureSet(width: image.width, height: image.height)
    }

    /// Orientations and descriptors of the current octave's keypoints that can still make the cut.
    private static func describeOctave(_ filter: UnsafeMutablePointer<VlSiftFilt>, options: FeatureOptions,
                                       into strongest: inout StrongestFeatures) {
        let count = Int(filter.pointee.nkeys)
        guard count > 0, let keys = filter.pointee.keys else { return }
        var angles = [Double](repeating: 0, count: 4)
        var raw = [Float](repeating: 0, count: FeatureSet.descriptorLength)
        for index in 0..<count {
            let key = keys + index
            let strength = abs(replica_sift_dog_at(filter, key.pointee.ix, key.pointee.iy, key.pointee.`is`))
            guard strongest.admits(strength) else { continue }
            let found = angles.withUnsafeMutableBufferPointer {
                Int(vl_sift_calc_keypoint_orientations(filter, $0.baseAddress, key))
            }
            for angle in angles.prefix(min(found, options.maximumOrientations)) {
                raw.withUnsafeMutableBufferPointer {
                    vl_sift_calc_keypoint_descriptor(filter, $0.baseAddress, key, angle)
                }
                let keypoint = Keypoint(x: key.pointee.x + 0.5, y: key.pointee.y + 0.5, scale: key.pointee.sigma,
                                        orientation: Float(angle))
                strongest.add(keypoint, strength: strength, raw: raw)
            }
        }
    }

    /// The image as grey levels 0...1, row-major (Rec. 601 luma weights for RGB).
    static func greyLevels(_ image: PixelBuffer) -> [Float] {
        let pixels = image.width * image.height
        return [Float](unsafeUninitializedCapacity: pixels) { grey, initialised in
            image.bytes.withUnsafeBufferPointer { bytes in
                if image.channels == 1 {
                    for index in 0..<pixels { grey[index] = Float(bytes[index]) * (1 / 255) }
                } else {
                    for index in 0..<pixels {
                        let red = Float(bytes[3 * index]), green = Float(bytes[3 * index + 1])
                        let blue = Float(bytes[3 * index + 2])
                        grey[index] = (0.299 * red + 0.587 * green + 0.114 * blue) * (1 / 255)
                    }
                }
            }
            initialised = pixels
        }
    }

    /// A VLFeat descriptor as quantised RootSIFT: L1-normalised, square-rooted (so its L2 norm is 1), ×512,
    /// rounded and clamped to 255, appended to `bytes`.
    static func appendRootSIFT(_ raw: [Float], to bytes: inout [UInt8]) {
        var sum: Float = 0
        for value in raw { sum += abs(value) }
        guard sum > 0 else {
            bytes.append(contentsOf: repeatElement(0, count: raw.count))
            return
        }
        for value in raw {
            let root = (abs(value) / sum).squareRoot() * 512
            bytes.append(UInt8(min(255, root.rounded())))
        }
    }
}

/// Collects features and keeps the `limit` with the largest strength, in order of strength and then of
/// arrival. Whenever twice the limit has gathered, it drops all but the strongest `limit`; the weakest kept
/// strength then becomes a floor below which nothing can enter, so weak keypoints are never described.
struct StrongestFeatures {
    let limit: Int
    private var keypoints: [Keypoint] = []
    private var strengths: [Float] = []
    private var arrivals: [Int] = []
    private var descriptors: [UInt8] = []
    private var arrived = 0
    private var floor: Float = 0

    init(limit: Int) {
        precondition(limit > 0, "keeping no features needs no detection")
        self.limit = limit
    }

    /// Whether a feature of this strength could still be among the strongest `limit`.
    func admits(_ strength: Float) -> Bool { strength >= floor }

    mutating func add(_ keypoint: Keypoint, strength: Float, raw: [Float]) {
        keypoints.append(keypoint)
        strengths.append(strength)
        arrivals.append(arrived)
        arrived += 1
        FeatureDetection.appendRootSIFT(raw, to: &descriptors)
        if keypoints.count >= 2 * limit { keepStrongest() }
    }

    /// The strongest `limit` features, strongest first.
    mutating func featureSet(width: Int, height: Int) -> FeatureSet {
        keepStrongest()
        return FeatureSet(width: width, height: height, keypoints: keypoints, descriptors: descriptors)
    }

    private mutating func keepStrongest() {
        let order = keypoints.indices.sorted {
            strengths[$0] != strengths[$1] ? strengths[$0] > strengths[$1] : arrivals[$0] < arrivals[$1]
        }.prefix(limit)
        let length = FeatureSet.descriptorLength
        var keptDescriptors: [UInt8] = []
        keptDescriptors.reserveCapacity(order.count * length)
        for index in order { keptDescriptors.append(contentsOf: descriptors[index * length..<(index + 1) * length]) }
        keypoints = order.map { keypoints[$0] }
        strengths = order.map { strengths[$0] }
        arrivals = order.map { arrivals[$0] }
        descriptors = keptDescriptors
        if keypoints.count == limit, let weakest = strengths.last { floor = weakest }
    }
}
