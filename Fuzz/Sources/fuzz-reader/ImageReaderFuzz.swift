import FuzzSupport
import ReplicaImageIO

// What this target reaches: the dispatcher, which checks the name, detects the format from the content and hands
// the bytes to a codec, with every accepted extension and every combination of the decode options.
//
// Input layout: one selector byte, then the file. The selector's low five bits pick the extension (modulo the
// number of accepted extensions, sorted by name), bit 5 asks for a reduced-scale decode, bit 6 allows grey.
// Fuzz/make-corpus writes its seeds in this layout; adding an extension to the accepted list shifts the mapping.

/// Every extension the API accepts, in a fixed order so a selector byte always means the same name.
let extensions = ImageFormatDetection.acceptedExtensions.sorted()

/// The longest side asked for when the selector requests a reduced-scale decode, in pixels.
let reducedLongestSide = 64

/// libFuzzer's per-input hook: decodes the file through `ImageReader.decode` under the name and options the
/// selector byte picks.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let selector = data[0]
    let file = [UInt8](inputBuffer(data + 1, size - 1))
    let name = "fuzz-input." + extensions[Int(selector & 0x1F) % extensions.count]
    let options = decodeOptions(selector)
    guard let image = try? ImageReader.decode(data: file, name: name, options: options) else { return 0 }
    checkDecoded(image, options: options, expectedFormat: ImageFormatDetection.detect(file))
    return 0
}

/// The options bits 5 and 6 of the selector ask for, under the fuzzing pixel budget.
func decodeOptions(_ selector: UInt8) -> DecodeOptions {
    DecodeOptions(maxPixels: fuzzDecodeOptions.maxPixels,
                  minimumLongestSide: selector & 0x20 != 0 ? reducedLongestSide : nil,
                  allowGrey: selector & 0x40 != 0)
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): hands over to libFuzzer's driver.
@_cdecl("fuzz_reader_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
