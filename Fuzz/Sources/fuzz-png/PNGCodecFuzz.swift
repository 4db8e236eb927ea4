import FuzzSupport
import ReplicaImageIO

// What this target reaches: PNG at every bit depth and colour type, palette, transparency and Adam7 interlacing
// (through libpng).

/// libFuzzer's per-input hook: decodes the bytes with `PNGCodec.decode` under the fuzzing pixel budget.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    exercise(PNGCodec.decode, format: .png, input: inputBuffer(data, size))
    return 0
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): hands over to libFuzzer's driver.
@_cdecl("fuzz_png_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
