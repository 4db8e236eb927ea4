/// The photo formats the product reads, as detected from a file's bytes.
public enum ImageFormat: String, Sendable, CaseIterable {
    case jpeg, png, tiff, heif, raw
}

/// An 8-bit image in memory: rows top to bottom, pixels left to right, `channels` interleaved bytes each
/// (1: grey, 3: RGB).
public struct PixelBuffer: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var bytes: [UInt8]

    public init(width: Int, height: Int, channels: Int, bytes: [UInt8]) {
        precondition(channels == 1 || channels == 3, "only grey and RGB buffers exist")
        precondition(bytes.count == width * height * channels, "buffer size does not match its dimensions")
        self.width = width
        self.height = height
        self.channels = channels
        self.bytes = bytes
    }

    /// A buffer of the given size filled with zeros.
    public init(width: Int, height: Int, channels: Int) {
        self.init(width: width, height: height, channels: channels,
                  bytes: [UInt8](repeating: 0, count: width * height * channels))
    }

    /// The longer of the two sides, in pixels.
    public var longestSide: Int { max(width, height) }
}

/// What a photo says about itself, read from its EXIF (or the format's own fields).
public struct ImageMetadata: Equatable, Sendable {
    /// Camera maker and model, trimmed; nil when absent.
    public var make: String?
    public var model: String?
    /// Focal length in millimetres, as recorded.
    public var focalLengthMillimetres: Double?
    /// 35 mm-equivalent focal length in millimetres.
    public var focalLength35mmMillimetres: Double?
    /// EXIF orientation 1–8 of the stored pixels (1: as stored); decoders that apply it report 1.
    public var orientation: Int = 1
    /// The EXIF orientation `ImageReader` turned upright, 1–8 (1: the pixels were stored upright, or the decoder
    /// applied the orientation itself, as libheif and LibRaw do).
    public var appliedOrientation: Int = 1
    /// Size of the full image as stored (before orientation and any reduced-scale decode), in pixels.
    public var storedWidth: Int = 0
    public var storedHeight: Int = 0

    public init() {}
}

/// A decoded photo: pixels with orientation applied, and its metadata.
public struct DecodedImage: Sendable {
    public var pixels: PixelBuffer
    public var format: ImageFormat
    public var metadata: ImageMetadata

    public init(pixels: PixelBuffer, format: ImageFormat, metadata: ImageMetadata) {
        self.pixels = pixels
        self.format = format
        self.metadata = metadata
    }
}

/// How to decode.
public struct DecodeOptions: Sendable {
    /// Largest image accepted, in pixels of its declared size; checked before any pixel memory is allocated.
    public var maxPixels: Int = 200_000_000
    /// When set, a decoder may return a smaller image (JPEG's DCT scaling, a raw file's embedded preview) as
    /// long as its longest side stays at or above this many pixels; the caller resizes exactly afterwards.
    public var minimumLongestSide: Int?
    /// Grey images stay grey (1 channel) when true; otherwise every image comes back RGB.
    public var allowGrey: Bool = false

    public init(maxPixels: Int = 200_000_000, minimumLongestSide: Int? = nil, allowGrey: Bool = false) {
        self.maxPixels = maxPixels
        self.minimumLongestSide = minimumLongestSide
        self.allowGrey = allowGrey
    }
}

/// Why an image could not be read or written; names the file.
public struct ImageIOError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        /// The name's extension is not one the API accepts.
        case unsupportedExtension(String)
        /// The bytes are not any image format we read.
        case notAnImage
        /// The declared size is above the pixel budget (or not a size at all).
        case tooLarge(width: Int, height: Int, maxPixels: Int)
        /// The decoding library refused the data: truncated, corrupt or hostile.
        case corrupt(String)
        /// A file could not be opened, read or written.
        case io(String)
        /// The codec cannot produce what was asked (an encoder missing, a parameter out of range).
        case unsupported(String)
    }

    public var file: String
    public var reason: Reason

    public init(file: String, reason: Reason) {
        self.file = file
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .unsupportedExtension(let ext): return "\(file): the extension '.\(ext)' is not a supported image type"
        case .notAnImage: return "\(file): not a supported image (the content is no JPEG, PNG, TIFF, HEIF or raw)"
        case .tooLarge(let w, let h, let max): return "\(file): \(w)×\(h) pixels is over the limit of \(max)"
        case .corrupt(let detail): return "\(file): damaged image: \(detail)"
        case .io(let detail): return "\(file): \(detail)"
        case .unsupported(let detail): return "\(file): \(detail)"
        }
    }
}

/// Checks a declared size against the budget before anything is allocated for it.
func checkPixelBudget(width: Int, height: Int, options: DecodeOptions, file: String) throws(ImageIOError) {
    guard width > 0, height > 0, width <= 1 << 20, height <= 1 << 20,
          width.multipliedReportingOverflow(by: height).partialValue <= options.maxPixels else {
        throw ImageIOError(file: file, reason: .tooLarge(width: width, height: height, maxPixels: options.maxPixels))
    }
}
