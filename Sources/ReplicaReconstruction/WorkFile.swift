import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The one way the reconstruction's steps write a result file: whole or not at all.
public enum WorkFile {
    /// Why a work file could not be written, read or understood: the path it concerns and what went wrong.
    public struct Failure: Error, Equatable, Sendable, CustomStringConvertible {
        public var path: String
        public var reason: String

        public init(path: String, reason: String) {
            self.path = path
            self.reason = reason
        }

        public var description: String { "\(path): \(reason)" }
    }

    /// Writes `bytes` through `<path>.partial`, flushed, then renamed into place, so a reader never sees half a
    /// file and a task run twice replaces its output with an equal one; the temporary file goes when writing fails.
    public static func writeAtomically(_ bytes: [UInt8], to path: String) throws(Failure) {
        let partial = path + ".partial"
        let descriptor = open(partial, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw failure(partial, "cannot create") }
        var written = 0
        while written < bytes.count {
            let result = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress! + written, $0.count - written) }
            if result < 0 && errno == EINTR { continue }
            guard result > 0 else {
                let error = failure(partial, "cannot write")
                close(descriptor)
                unlink(partial)
                throw error
            }
            written += result
        }
        guard fsync(descriptor) == 0, close(descriptor) == 0 else {
            let error = failure(partial, "cannot flush")
            unlink(partial)
            throw error
        }
        guard rename(partial, path) == 0 else {
            let error = failure(partial, "cannot rename")
            unlink(partial)
            throw error
        }
    }

    /// The whole file's bytes.
    public static func read(_ path: String) throws(Failure) -> [UInt8] {
        do {
            return Array(try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw Failure(path: path, reason: "cannot read: \(error.localizedDescription)")
        }
    }

    private static func failure(_ path: String, _ action: String) -> Failure {
        Failure(path: path, reason: "\(action): \(String(cString: strerror(errno)))")
    }
}
