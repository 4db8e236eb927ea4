import FuzzSupport
import ReplicaImageIO

// What this target reaches: HEIF/HEIC containers and their image items (through libheif and its HEVC/AV1 decoders).

/// libFuzzer's per-input hook: decodes the bytes with `HEIFCodec.decode` under the fuzzing pixel budget.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    exercise(HEIFCodec.decode, format: .heif, input: inputBuffer(data, size))
    return 0
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): hands over to libFuzzer's driver.
@_cdecl("fuzz_heif_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
