import CLibFuzzer
import ReplicaImageIO

/// A decoder's entry point, as every codec in ReplicaImageIO spells it.
public typealias Decoder = (UnsafeRawBufferPointer, String, DecodeOptions) throws(ImageIOError) -> DecodedImage

/// The options every codec target decodes with: a 4-megapixel budget, so hostile sizes are refused before any
/// pixel memory is allocated and the fuzzer spends its time in the parsers; grey stays grey, so the grey paths
/// are reached too.
public let fuzzDecodeOptions = DecodeOptions(maxPixels: 4_000_000, allowGrey: true)

/// Starts libFuzzer's driver, which reads the command line and calls `testOneInput` once per input.
///
/// SwiftPM links an executable with `main` pointing at `<module>_main`, so each target defines that symbol and
/// calls this instead of relying on the `main` in libFuzzer's runtime.
public func runLibFuzzer(argc: CInt, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                         testOneInput: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt {
    var argc = argc
    var argv = argv
    return LLVMFuzzerRunDriver(&argc, &argv, testOneInput)
}

/// The fuzzer's bytes, not copied: libFuzzer allocates each input at its exact size, so ASan reports a read one
/// byte past the end.
public func inputBuffer(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
    UnsafeRawBufferPointer(start: data, count: size)
}

/// Runs one decoder on one input; a refusal is an answer, a successful decode must keep the promises checked in
/// `checkDecoded`.
public func exercise(_ decode: Decoder, format: ImageFormat, input: UnsafeRawBufferPointer) {
    let file = "fuzz-input.\(format.rawValue)"
    guard let image = try? decode(input, file, fuzzDecodeOptions) else { return }
    checkDecoded(image, options: fuzzDecodeOptions, expectedFormat: format)
}

/// Traps (which libFuzzer reports as a crash, with the input saved) when a decoded image breaks a promise that
/// ImageTypes.swift makes to callers.
public func checkDecoded(_ image: DecodedImage, options: DecodeOptions, expectedFormat: ImageFormat?) {
    let pixels = image.pixels
    precondition(pixels.width > 0 && pixels.height > 0, "decoded an empty image: \(pixels.width)×\(pixels.height)")
    precondition(pixels.width * pixels.height <= options.maxPixels,
                 "decoded \(pixels.width)×\(pixels.height), over the budget of \(options.maxPixels) pixels")
    precondition(options.allowGrey || pixels.channels == 3, "grey image returned although RGB was asked for")
    precondition(expectedFormat == nil || image.format == expectedFormat,
                 "decoded as \(image.format), expected \(String(describing: expectedFormat))")
    checkReducedScale(image, options: options)
    checkMetadata(image.metadata)
}

/// A reduced-scale decode may shrink the image, but never below the longest side the caller asked for (or the
/// stored size, when that is smaller).
func checkReducedScale(_ image: DecodedImage, options: DecodeOptions) {
    guard let minimum = options.minimumLongestSide else { return }
    let stored = max(image.metadata.storedWidth, image.metadata.storedHeight)
    guard stored > 0 else { return }
    precondition(image.pixels.longestSide >= min(minimum, stored),
                 "reduced to \(image.pixels.longestSide) px, below the \(minimum) px asked for (stored: \(stored))")
}

/// Metadata fields stay within their documented ranges, whatever the file claims.
public func checkMetadata(_ metadata: ImageMetadata) {
    precondition((1...8).contains(metadata.orientation), "orientation \(metadata.orientation) is not 1–8")
    precondition(metadata.storedWidth >= 0 && metadata.storedHeight >= 0, "negative stored size")
    for focal in [metadata.focalLengthMillimetres, metadata.focalLength35mmMillimetres] {
        if let focal { precondition(focal.isFinite && focal >= 0, "focal length \(focal) mm is not a length") }
    }
}
