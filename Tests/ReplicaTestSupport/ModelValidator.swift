import Foundation

/// `scripts/validate-model.py`: Pixar's USD library and pygltflib read an exported file; their findings as JSON.
/// The interpreter is the one `REPLICA_VALIDATOR_PYTHON` names (scripts/test installs them for it); without it the
/// caller skips.
public enum ModelValidator {
    public static var python: String? { ProcessInfo.processInfo.environment["REPLICA_VALIDATOR_PYTHON"] }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `format` is `glb` or `usdz`.
    public static func run(_ format: String, _ path: String, python: String) throws -> [String: Any] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("scripts/validate-model.py").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [script, format, path]
        let output = Pipe()
        process.standardOutput = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0,
              let report = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Failure(description: "validate-model.py \(format) \(path) exited \(process.terminationStatus)")
        }
        return report
    }
}
