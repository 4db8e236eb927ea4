import Foundation
import ReplicaCore
import ReplicaHTTP

/// All of a project's photos as one stored (uncompressed) ZIP, streamed from the files in place.
///
/// The CRC-32s were taken at upload, so the archive's length is known before the first byte and goes in
/// `Content-Length`. `verify` (blocking, on the pool) first checks each file against its record and measures
/// anew any that changed on disk since, so the promised length and checksums hold.
struct ImageArchive {
    let layout: ZipLayout
    let paths: [String]

    init(images: [ImageRecord], paths: [String]) throws {
        let entries = images.map {
            ZipEntry(name: $0.fileName, size: $0.size, crc32: $0.crc32,
                     modified: Date(timeIntervalSince1970: Double($0.modifiedNanoseconds) / 1e9))
        }
        layout = try ZipLayout(entries: entries)
        self.paths = paths
    }

    var length: UInt64 { layout.totalLength }

    /// The records as they stand on disk: unchanged ones as given, changed ones measured again.
    /// Throws `FileSystemError` (ENOENT) when a file is missing.
    static func verify(_ images: [ImageRecord], paths: [String], library: ProjectLibrary) throws -> [ImageRecord] {
        try zip(images, paths).map { image, path in
            guard let status = try FileSystem.status(path), status.isRegularFile else {
                throw FileSystemError(code: ENOENT, operation: "stat", path: path)
            }
            if status.size == image.size && status.modifiedNanoseconds == image.modifiedNanoseconds { return image }
            guard let measured = try library.measure(path, fileName: image.fileName) else {
                throw FileSystemError(code: ENOENT, operation: "measure", path: path)
            }
            return measured
        }
    }

    /// The body's parts in order: each entry's local header and its file, then the central directory.
    func parts() -> () -> BodyPart? {
        var index = 0
        var headerSent = false
        var trailerSent = false
        return {
            if index < paths.count {
                if !headerSent {
                    headerSent = true
                    return .bytes(layout.localHeader(at: index))
                }
                let part = BodyPart.file(path: paths[index], offset: 0, length: layout.entries[index].size)
                index += 1
                headerSent = false
                return part
            }
            guard !trailerSent else { return nil }
            trailerSent = true
            return .bytes(layout.trailer())
        }
    }

    /// `attachment; filename="<name><suffix>"`, with characters a quoted string cannot carry replaced, and
    /// the exact UTF-8 name in `filename*` when the name is not plain ASCII.
    static func contentDisposition(projectName: String, suffix: String = "_images.zip") -> String {
        let fileName = projectName + suffix
        let fallback = String(fileName.unicodeScalars.map { scalar -> Character in
            scalar.isASCII && scalar.value >= 0x20 && scalar != "\"" && scalar != "\\" && scalar.value != 0x7F
                ? Character(scalar) : "_"
        })
        var value = "attachment; filename=\"\(fallback)\""
        if fallback != fileName {
            let allowed = CharacterSet(charactersIn:
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$&+-.^_`|~")
            let encoded = fileName.addingPercentEncoding(withAllowedCharacters: allowed) ?? fallback
            value += "; filename*=UTF-8''" + encoded
        }
        return value
    }
}
