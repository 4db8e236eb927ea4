/// The API's thumbnail of an uploaded photo: upright, at most 400 pixels on its longest side, a JPEG.
public enum Thumbnail {
    /// The thumbnail's longest side, in pixels; smaller photos keep their size.
    public static let longestSide = 400
    /// The JPEG quality, on libjpeg's 1–100 scale (the API's 0.7).
    public static let quality = 70

    /// The thumbnail of the photo in `data`, uploaded as `name`, as JPEG bytes.
    public static func jpeg(from data: [UInt8], name: String) throws(ImageIOError) -> [UInt8] {
        let decoded = try decodeReduced(data, name: name)
        return try JPEGEncoder.encode(decoded.pixels.fitted(longestSide: longestSide), quality: quality)
    }

    /// The photo decoded upright at the smallest scale its decoder offers that keeps the longest side at
    /// or above the thumbnail's (JPEG's DCT scaling), before the exact resize.
    static func decodeReduced(_ data: [UInt8], name: String) throws(ImageIOError) -> DecodedImage {
        try ImageReader.decode(data: data, name: name, options: DecodeOptions(minimumLongestSide: longestSide))
    }
}
