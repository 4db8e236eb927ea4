import Foundation
import ReplicaCore
import ReplicaImageIO

/// The rules for the names that become folders and files on disk: project names as clients choose them,
/// and photo file names as uploads carry them.
enum ProjectNames {
    /// Longest name, in UTF-8 bytes: the common file-system limit for one path component, less room for the
    /// `-N` a duplicate gets.
    static let maximumBytes = 240

    /// A client's project name, trimmed, or the API's 400 saying what is wrong with it.
    static func validProjectName(_ raw: String) throws -> String {
        let name = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !name.isEmpty else { throw APIError(.badRequest, "Name cannot be empty") }
        guard !name.contains("/") && !name.contains("\\") else {
            throw APIError(.badRequest, "Name cannot contain / or \\")
        }
        guard !name.unicodeScalars.contains(where: isControl) else {
            throw APIError(.badRequest, "Name cannot contain control characters")
        }
        // Names starting with a dot are hidden, and the store keeps its own staging folders there.
        guard !name.hasPrefix(".") else { throw APIError(.badRequest, "Name cannot start with a dot") }
        guard name.utf8.count <= maximumBytes else {
            throw APIError(.badRequest, "Name is too long (at most \(maximumBytes) bytes)")
        }
        return name
    }

    /// The name a project gets when the upload names none: `LinkUpload_` and the UTC time.
    static func defaultProjectName(at date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd_HHmmss"
        return "LinkUpload_" + formatter.string(from: date)
    }

    /// An uploaded file's name made safe for the disk: only the base name (after the last `/` or `\`), no
    /// control characters, no leading dots (no hidden files, no `..`), at most `maximumBytes`. Nil when
    /// nothing usable is left.
    static func safeFileName(_ raw: String) -> String? {
        let base = raw.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        var name = String(String.UnicodeScalarView(base.unicodeScalars.filter { !isControl($0) }))
        name = name.trimmingCharacters(in: .whitespaces)
        while name.hasPrefix(".") { name.removeFirst() }
        name = name.trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else { return nil }
        return truncated(name)
    }

    /// The extension a name should carry for the format its bytes are in, when it has no accepted one.
    static func fileName(_ name: String, for format: ImageFormat) -> String? {
        if ImageFormatDetection.isAcceptedName(name) { return name }
        // A name with no extension at all (a browser's "blob") gets the one its bytes call for; a name with
        // another extension (.gif, .webp) is a format the API does not take.
        guard !name.contains(".") else { return nil }
        let suffix: String
        switch format {
        case .jpeg: suffix = "jpg"
        case .png: suffix = "png"
        case .tiff: suffix = "tiff"
        case .heif: suffix = "heic"
        case .raw: return nil  // raw containers are told apart by extension
        }
        return truncated(name + "." + suffix)
    }

    /// `photo.jpg`, then `photo-2.jpg`, `photo-3.jpg`, … : the first that `isTaken` says is free.
    static func unique(_ name: String, isTaken: (String) -> Bool) -> String {
        guard isTaken(name) else { return name }
        let dot = name.lastIndex(of: ".").flatMap { $0 == name.startIndex ? nil : $0 }
        let stem = dot.map { String(name[..<$0]) } ?? name
        let suffix = dot.map { String(name[$0...]) } ?? ""
        var counter = 2
        while true {
            let candidate = stem + "-\(counter)" + suffix
            if !isTaken(candidate) { return candidate }
            counter += 1
        }
    }

    /// A project name made unique the same way: `Name`, then `Name-2`, …
    static func uniqueProjectName(_ name: String, isTaken: (String) -> Bool) -> String {
        guard isTaken(name) else { return name }
        var counter = 2
        while isTaken(name + "-\(counter)") { counter += 1 }
        return name + "-\(counter)"
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value)
            || scalar.value == 0x2028 || scalar.value == 0x2029
    }

    /// Cuts a name to `maximumBytes` on a character boundary, keeping its extension.
    private static func truncated(_ name: String) -> String {
        guard name.utf8.count > maximumBytes else { return name }
        let dot = name.lastIndex(of: ".")
        let suffix = dot.map { String(name[$0...]) }.flatMap { $0.utf8.count <= 16 ? $0 : nil } ?? ""
        var stem = suffix.isEmpty ? name : String(name[..<dot!])
        while stem.utf8.count + suffix.utf8.count > maximumBytes { stem.removeLast() }
        return stem + suffix
    }
}
