import Foundation
import ReplicaImageIO

/// The API's thumbnails (400 px, JPEG quality 0.7), made once per version of an image and kept in the
/// project's `work/thumbnails/`. Blocking: run on the thread pool.
///
/// A cached file is named `<image>@<size>-<mtime>.jpg` after the source it was made from, so replacing or
/// touching the photo on disk makes a new thumbnail, and the stale one is removed when the new one is made.
enum ThumbnailCache {
    struct Result {
        var jpeg: [UInt8]
        /// An entity tag naming the source's version, for `If-None-Match`.
        var entityTag: String
    }

    enum Failure: Error {
        case sourceMissing
        case undecodable(ImageIOError)
    }

    /// The cached thumbnail of the photo's current version, or nil when it must be made. Cheap: a stat and,
    /// on a hit, one small read.
    static func cached(source: String, fileName: String, cacheDirectory: String) throws -> Result? {
        let version = try self.version(of: source)
        let bytes = FileManager.default.contents(atPath: cachePath(fileName, version, in: cacheDirectory))
        guard let bytes, !bytes.isEmpty else { return nil }
        return Result(jpeg: [UInt8](bytes), entityTag: "\"" + version + "\"")
    }

    /// Decodes the photo, makes its thumbnail and keeps it. Costly: a whole decode, up to the pixel budget.
    static func make(source: String, fileName: String, cacheDirectory: String) throws -> Result {
        let version = try self.version(of: source)
        guard let data = FileManager.default.contents(atPath: source) else { throw Failure.sourceMissing }
        let jpeg: [UInt8]
        do {
            jpeg = try Thumbnail.jpeg(from: [UInt8](data), name: fileName)
        } catch {
            throw Failure.undecodable(error)
        }
        // The cache is an optimisation: failing to keep the thumbnail must not fail the answer.
        try? store(jpeg, at: cachePath(fileName, version, in: cacheDirectory), replacingVersionsOf: fileName,
                   in: cacheDirectory)
        return Result(jpeg: jpeg, entityTag: "\"" + version + "\"")
    }

    /// `<size>-<mtime in hex nanoseconds>` of the photo as it is on disk now.
    private static func version(of source: String) throws -> String {
        guard let status = try FileSystem.status(source), status.isRegularFile else { throw Failure.sourceMissing }
        return "\(status.size)-" + String(status.modifiedNanoseconds, radix: 16)
    }

    private static func cachePath(_ fileName: String, _ version: String, in directory: String) -> String {
        directory + "/" + fileName + "@" + version + ".jpg"
    }

    private static func store(_ jpeg: [UInt8], at path: String, replacingVersionsOf fileName: String,
                              in directory: String) throws {
        try FileSystem.ensureDirectory((directory as NSString).deletingLastPathComponent)
        try FileSystem.ensureDirectory(directory)
        try FileSystem.writeAtomically(jpeg, to: path)
        let prefix = fileName + "@"
        for name in try FileSystem.list(directory) where name.hasPrefix(prefix) && directory + "/" + name != path {
            let version = name.dropFirst(prefix.count)
            // Only this image's versions: digits, a dash, hex digits, `.jpg`, and nothing else.
            guard version.hasSuffix(".jpg"), version.dropLast(4).split(separator: "-").count == 2,
                  version.dropLast(4).allSatisfy({ $0.isHexDigit || $0 == "-" }) else { continue }
            unlink(directory + "/" + name)
        }
    }
}
