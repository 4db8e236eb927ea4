import FuzzSupport
import ReplicaImageIO

// What this target reaches: a raw EXIF block (TIFF header, IFD0, the EXIF sub-IFD) as an APP1 segment or a HEIF
// item carries it, after the "Exif\0\0" prefix, through libexif and our reading of its entries.

/// libFuzzer's per-input hook: reads the bytes as an EXIF block and checks the metadata stays in range.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    checkMetadata(ExifReader.read(inputBuffer(data, size)))
    return 0
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): hands over to libFuzzer's driver.
@_cdecl("fuzz_exif_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
