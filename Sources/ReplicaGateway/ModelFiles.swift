import Foundation
import ReplicaExport

/// A format the download endpoint serves, with the content type the API gives it.
enum ModelFormat: String, CaseIterable {
    case glb, usdz, obj, fbx

    var contentType: String {
        switch self {
        case .glb: return "model/gltf-binary"
        case .usdz: return "model/vnd.usdz+zip"
        case .obj: return "text/plain"
        case .fbx: return "application/octet-stream"
        }
    }

    /// Made from the GLB on the first request and cached beside it.
    var isConverted: Bool { self == .obj || self == .fbx }
}

/// The model files of one project's folder: the native `model.usdz`, `link-exports/model.glb`, and the OBJ
/// (with its material library and textures) and FBX converted from the GLB on request and cached beside it.
///
/// Blocking file-system calls: the pool runs them, but for the renames that install a conversion, which run on
/// the loop thread so they never interleave with `publish` (also on the loop thread) replacing the GLB.
struct ModelFiles {
    let folder: String

    var usdz: String { folder + "/model.usdz" }
    var exports: String { folder + "/link-exports" }
    var glb: String { exports + "/model.glb" }
    var work: String { folder + "/work/export" }

    func path(_ format: ModelFormat) -> String {
        format == .usdz ? usdz : exports + "/model." + format.rawValue
    }

    /// The GLB's version (size and modification time), nil without one: a conversion is installed only if the
    /// GLB it was made from is still the one there.
    func glbVersion() throws -> String? {
        guard let status = try FileSystem.status(glb), status.isRegularFile else { return nil }
        return "\(status.size)-\(status.modifiedNanoseconds)"
    }

    /// Moves what the export task wrote in `work/export/` into place, dropping the conversions of the GLB it
    /// replaces first; the new GLB's arrival is the last step. Safe to repeat: a file already moved stays.
    /// Returns which of the two outputs are there now.
    func publish() throws -> (usdz: Bool, glb: Bool) {
        let newGLB = work + "/model.glb", newUSDZ = work + "/model.usdz"
        if try FileSystem.status(newUSDZ)?.isRegularFile == true {
            try FileSystem.check(rename(newUSDZ, usdz), "rename to \(usdz)", newUSDZ)
            try FileSystem.syncDirectory(folder)
        }
        if try FileSystem.status(newGLB)?.isRegularFile == true {
            try FileSystem.ensureDirectory(exports)
            try removeConversions()
            try FileSystem.check(rename(newGLB, glb), "rename to \(glb)", newGLB)
            try FileSystem.syncDirectory(exports)
        }
        return (try FileSystem.status(usdz)?.isRegularFile == true, try glbVersion() != nil)
    }

    /// Removes the cached conversions: `model.obj`, `model.mtl`, `model-<map>-<page>.<ext>` and `model.fbx`, and
    /// the temporary files of conversions a crash cut short. A conversion still under way loses its files too,
    /// but it checks the GLB before installing anything, finds it replaced, and starts again.
    func removeConversions() throws {
        guard try FileSystem.status(exports)?.isDirectory == true else { return }
        for name in try FileSystem.list(exports) where ModelFiles.isConversion(name) {
            unlink(exports + "/" + name)
        }
    }

    static func isConversion(_ name: String) -> Bool {
        name.hasPrefix(".convert-") || name == "model.obj" || name == "model.mtl" || name == "model.fbx"
            || (name.hasPrefix("model-") && (name.hasSuffix(".png") || name.hasSuffix(".jpg")))
    }

    /// A conversion written under temporary names, to be installed (renamed into place) or discarded.
    struct Conversion {
        /// Temporary path and final path, the main file last.
        var files: [(temporary: String, final: String)]
        /// The GLB's version it was made from.
        var source: String
    }

    /// Reads the GLB and writes `format` under temporary names in `link-exports/`; blocking and CPU-bound.
    func convert(_ format: ModelFormat) throws -> Conversion {
        precondition(format.isConverted, "only OBJ and FBX are converted")
        guard let source = try glbVersion(), let data = FileManager.default.contents(atPath: glb) else {
            throw ExportError("there is no GLB to convert")
        }
        let outputs = try ModelConversion(rawValue: format.rawValue)!.files(fromGLB: Array(data))
        let prefix = exports + "/.convert-" + UUID().uuidString.lowercased() + "-"
        var conversion = Conversion(files: [], source: source)
        do {
            for output in outputs {
                let temporary = prefix + output.name
                conversion.files.append((temporary, exports + "/" + output.name))
                try FileSystem.writeAtomically(output.bytes, to: temporary)
            }
        } catch {
            discard(conversion)
            throw error
        }
        return conversion
    }

    /// Renames the conversion's files into place, the main file last, if the GLB is still the one it was made
    /// from; returns false (and discards it) otherwise.
    func install(_ conversion: Conversion) throws -> Bool {
        guard try glbVersion() == conversion.source else {
            discard(conversion)
            return false
        }
        for file in conversion.files {
            try FileSystem.check(rename(file.temporary, file.final), "rename to \(file.final)", file.temporary)
        }
        try FileSystem.syncDirectory(exports)
        return true
    }

    func discard(_ conversion: Conversion) {
        for file in conversion.files { unlink(file.temporary) }
    }
}
