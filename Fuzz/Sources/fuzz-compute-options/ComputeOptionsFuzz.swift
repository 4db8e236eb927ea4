import FuzzSupport
import ReplicaProtocol

// What this target reaches: the body of POST /api/projects/:id/compute as the gateway reads it: the strict JSON
// reader of the request's fields (whitespace, strings with escapes, numbers, booleans, arrays, duplicate and
// unknown keys), each field's typing, and the checks between fields (custom's fields, ranges, jpeg quality, the
// maps). A body it accepts must keep the promises the job is stored and planned with.

/// libFuzzer's per-input hook.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let body = Array(UnsafeBufferPointer(start: data, count: size))
    let options: ComputeOptions
    do {
        options = try ComputeOptions.parse(body)
    } catch {
        precondition(!error.message.isEmpty, "a refusal without a message")
        return 0
    }
    do {
        try options.validate()
    } catch {
        preconditionFailure("parse accepted options that validate refuses: \(error.message)")
    }
    // The job stores the canonical JSON and replays it: it must read back as the same options.
    let stored = options.jsonBytes
    guard let replayed = try? ComputeOptions.parse(stored) else {
        preconditionFailure("stored options do not parse: \(String(decoding: stored, as: UTF8.self))")
    }
    precondition(replayed == options, "stored options read back different: \(String(decoding: stored, as: UTF8.self))")
    precondition(replayed.jsonBytes == stored, "the canonical JSON is not canonical")
    let settings = options.settings
    precondition(ComputeOptions.polygonCountRange.contains(settings.maximumPolygonCount),
                 "\(settings.maximumPolygonCount) polygons")
    precondition((0...1).contains(settings.jpegCompressionQuality), "quality \(settings.jpegCompressionQuality)")
    precondition(!settings.outputTextureMaps.isEmpty && Set(settings.outputTextureMaps).count
                 == settings.outputTextureMaps.count, "maps \(settings.outputTextureMaps)")
    precondition(settings.workingImageDimension > 0, "working size \(settings.workingImageDimension)")
    return 0
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): hands over to libFuzzer's driver.
@_cdecl("fuzz_compute_options_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
