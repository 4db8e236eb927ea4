import Foundation
import ReplicaCore
import ReplicaImageIO

/// The project folders under `<data-dir>/projects/` and how start-up makes them and the index agree.
///
/// Layout: `<name>/images/` holds the uploads byte for byte, `<name>/work/thumbnails/` the cached thumbnails.
/// Hidden names belong to the store: `.staging/<upload>/` for uploads still arriving, `.trash-<id>` for a
/// folder being deleted. Every change is ordered so that a crash leaves something `repair` can settle:
///
/// - create: files arrive in `.staging/<upload>/images/`, the folder is renamed into place (no clobbering),
///   then the project is indexed; a crash before the rename leaves only staging (removed at start), a crash
///   after it leaves a complete folder that start-up lists like any folder placed in the library;
/// - add images: staged the same way, each file renamed into `images/`, then indexed; start-up indexes files
///   found in `images/` that the index lacks;
/// - rename: the intent is recorded, the folder renamed, then the name and the intent change together;
///   start-up finishes the rename when only the new folder exists and undoes it otherwise;
/// - delete with files: the folder is renamed to `.trash-<id>`, the project unindexed, the trash removed;
///   start-up completes all three.
///
/// All methods block on the disk: call them at start-up or on the thread pool.
final class ProjectLibrary {
    let projectsDirectory: String

    init(projectsDirectory: String) {
        self.projectsDirectory = projectsDirectory
    }

    var stagingDirectory: String { projectsDirectory + "/.staging" }
    func folder(_ name: String) -> String { projectsDirectory + "/" + name }
    func imagesDirectory(_ name: String) -> String { folder(name) + "/images" }
    func imagePath(_ project: String, _ file: String) -> String { imagesDirectory(project) + "/" + file }
    func thumbnailsDirectory(_ name: String) -> String { folder(name) + "/work/thumbnails" }
    func trash(_ projectID: String) -> String { projectsDirectory + "/.trash-" + projectID }

    /// Uploads can be stored: the projects directory exists and is writable. When it is not, the API answers
    /// 412 instead of writing anywhere else.
    var isAvailable: Bool { FileSystem.isWritableDirectory(projectsDirectory) }

    /// Measures one image file for the index; nil when it is not a regular file.
    func measure(_ path: String, fileName: String) throws -> ImageRecord? {
        guard let before = try FileSystem.status(path), before.isRegularFile else { return nil }
        let (size, crc) = try FileSystem.checksum(path)
        return ImageRecord(fileName: fileName, size: size, crc32: crc, modifiedNanoseconds: before.modifiedNanoseconds)
    }

    /// The names in `images/` that count as photos: regular files, not hidden, with an accepted extension.
    func imageFileNames(in directory: String) throws -> [String] {
        guard try FileSystem.status(directory)?.isDirectory == true else { return [] }
        return try FileSystem.list(directory).filter { name in
            !name.hasPrefix(".") && ImageFormatDetection.isAcceptedName(name)
                && (try? FileSystem.status(directory + "/" + name))??.isRegularFile == true
        }
    }

    // MARK: Placing uploads

    /// Moves an upload's staging folder into the library as a new project folder, under `name` or the first
    /// free `name-N`. A folder that appears under the chosen name meanwhile is never replaced: the next name
    /// is tried. Returns the name used.
    func placeProject(from staging: String, name: String, indexedNames: Set<String>) throws -> String {
        var taken = indexedNames
        while true {
            let candidate = ProjectNames.uniqueProjectName(name) {
                taken.contains($0) || (try? FileSystem.status(folder($0))) != nil
            }
            do {
                try FileSystem.renameNoReplace(staging, to: folder(candidate))
                try FileSystem.syncDirectory(projectsDirectory)
                return candidate
            } catch let error as FileSystemError where error.alreadyExists {
                taken.insert(candidate)
            }
        }
    }

    /// Moves staged photos into a project's `images/`, renaming any whose name is taken (`photo-2.jpg`), then
    /// removes the staging folder. Returns the records under their final names.
    func addImages(_ images: [StagedImage], staging: String, to project: String,
                   indexedNames: Set<String>) throws -> [ImageRecord] {
        let directory = imagesDirectory(project)
        guard try FileSystem.status(folder(project))?.isDirectory == true else {
            throw FileSystemError(code: ENOENT, operation: "add images to", path: folder(project))
        }
        try FileSystem.ensureDirectory(directory)
        var taken = indexedNames
        var records: [ImageRecord] = []
        for image in images {
            var record = image.record
            while true {
                let name = ProjectNames.unique(record.fileName) {
                    taken.contains($0) || (try? FileSystem.status(directory + "/" + $0)) != nil
                }
                do {
                    try FileSystem.renameNoReplace(image.path, to: directory + "/" + name)
                    record.fileName = name
                    taken.insert(name)
                    break
                } catch let error as FileSystemError where error.alreadyExists {
                    taken.insert(name)
                }
            }
            records.append(record)
        }
        try FileSystem.syncDirectory(directory)
        try? FileSystem.removeTree(staging)
        return records
    }

    // MARK: Start-up repair

    /// What `repair` did, for the log.
    struct RepairReport: Equatable {
        var stagingRemoved = 0
        var renamesFinished = 0
        var renamesUndone = 0
        var deletesFinished = 0
        var projectsImported = 0
        var projectsMissing = 0
        var imagesIndexed = 0
        var imagesUnindexed = 0

        var metadata: Logger.Metadata {
            ["staging.removed": "\(stagingRemoved)", "renames.finished": "\(renamesFinished)",
             "renames.undone": "\(renamesUndone)", "deletes.finished": "\(deletesFinished)",
             "projects.imported": "\(projectsImported)", "projects.missing": "\(projectsMissing)",
             "images.indexed": "\(imagesIndexed)", "images.unindexed": "\(imagesUnindexed)"]
        }
    }

    /// Settles whatever a crash or a stopped server left, then indexes folders and images placed in the
    /// library by hand. Runs before the server accepts requests.
    func repair(store: ProjectStore, logger: Logger) throws -> RepairReport {
        var report = RepairReport()
        guard try FileSystem.status(projectsDirectory)?.isDirectory == true else {
            logger.warning("projects directory is missing; uploads are refused until it exists",
                           ["projects.dir": projectsDirectory])
            return report
        }
        try removeStaging(&report)
        try settleRenames(store: store, &report)
        try settleDeletes(store: store, &report)
        try reconcileProjects(store: store, logger: logger, &report)
        try importFolders(store: store, logger: logger, &report)
        return report
    }

    private func removeStaging(_ report: inout RepairReport) throws {
        guard try FileSystem.status(stagingDirectory)?.isDirectory == true else { return }
        for name in try FileSystem.list(stagingDirectory) {
            try FileSystem.removeTree(stagingDirectory + "/" + name)
            report.stagingRemoved += 1
        }
    }

    private func settleRenames(store: ProjectStore, _ report: inout RepairReport) throws {
        for rename in try store.pendingRenames() {
            let moved = try FileSystem.status(folder(rename.newName)) != nil
                && FileSystem.status(folder(rename.oldName)) == nil
            if moved {
                try store.finishRename(rename)
                report.renamesFinished += 1
            } else {
                try store.abandonRename(projectID: rename.projectID)
                report.renamesUndone += 1
            }
        }
    }

    private func settleDeletes(store: ProjectStore, _ report: inout RepairReport) throws {
        for name in try FileSystem.list(projectsDirectory) where name.hasPrefix(".trash-") {
            try store.delete(id: String(name.dropFirst(".trash-".count)))
            try FileSystem.removeTree(projectsDirectory + "/" + name)
            report.deletesFinished += 1
        }
    }

    /// Each indexed project against its folder: a project whose folder is gone leaves the index; images added
    /// or removed by hand, or changed since they were measured, are indexed anew.
    ///
    /// When not one indexed folder is there, the directory is taken for a library that did not mount (an empty
    /// mount point), and nothing is unindexed: the projects come back when the disk does.
    private func reconcileProjects(store: ProjectStore, logger: Logger, _ report: inout RepairReport) throws {
        let projects = try store.list()
        let present = try projects.filter { try FileSystem.status(folder($0.name))?.isDirectory == true }
        if present.isEmpty && !projects.isEmpty {
            logger.warning("no project folder is in the projects directory; is the library's disk mounted?",
                           ["projects.dir": projectsDirectory, "projects.indexed": "\(projects.count)"])
            return
        }
        for project in projects {
            guard try FileSystem.status(folder(project.name))?.isDirectory == true else {
                logger.warning("project folder is gone; the project leaves the list",
                               ["project.id": project.id, "project.name": project.name])
                try store.delete(id: project.id)
                report.projectsMissing += 1
                continue
            }
            let records = try store.images(projectID: project.id)
            let indexed = Dictionary(uniqueKeysWithValues: records.map { ($0.fileName, $0) })
            let onDisk = try imageFileNames(in: imagesDirectory(project.name))
            var upserts: [ImageRecord] = []
            for name in onDisk {
                let path = imagePath(project.name, name)
                if let known = indexed[name], let status = try FileSystem.status(path),
                   status.size == known.size, status.modifiedNanoseconds == known.modifiedNanoseconds { continue }
                if let record = try measure(path, fileName: name) { upserts.append(record) }
            }
            let removals = Set(indexed.keys).subtracting(onDisk).sorted()
            guard !upserts.isEmpty || !removals.isEmpty else { continue }
            try store.reconcileImages(projectID: project.id, upserts: upserts, removals: removals)
            report.imagesIndexed += upserts.count
            report.imagesUnindexed += removals.count
        }
    }

    /// Folders with photos that the index does not know become projects, as Replica lists its library.
    /// Photos directly in the folder are moved into its `images/`.
    private func importFolders(store: ProjectStore, logger: Logger, _ report: inout RepairReport) throws {
        let known = Set(try store.list().map(\.name)).union(try store.forgottenFolders())
        for name in try FileSystem.list(projectsDirectory) where !name.hasPrefix(".") && !known.contains(name) {
            guard (try? ProjectNames.validProjectName(name)) == name,
                  try FileSystem.status(folder(name))?.isDirectory == true else { continue }
            let loose = try imageFileNames(in: folder(name))
            if !loose.isEmpty {
                try FileSystem.ensureDirectory(imagesDirectory(name))
                for file in loose {
                    let target = ProjectNames.unique(file) { (try? FileSystem.status(imagePath(name, $0))) != nil }
                    try FileSystem.renameNoReplace(folder(name) + "/" + file, to: imagePath(name, target))
                }
            }
            var images: [ImageRecord] = []
            for file in try imageFileNames(in: imagesDirectory(name)) {
                if let record = try measure(imagePath(name, file), fileName: file) { images.append(record) }
            }
            guard !images.isEmpty else { continue }
            let id = UUID().uuidString.lowercased()
            try store.insertProject(id: id, name: name, images: images)
            logger.info("folder in the library indexed as a project",
                        ["project.id": id, "project.name": name, "images": "\(images.count)"])
            report.projectsImported += 1
        }
        // A forgotten folder that is gone no longer needs remembering.
        for name in try store.forgottenFolders() where try FileSystem.status(folder(name)) == nil {
            try store.remember(folderName: name)
        }
    }
}
