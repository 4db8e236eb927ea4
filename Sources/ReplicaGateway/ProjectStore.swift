import Foundation
import ReplicaCore
import ReplicaProtocol

/// One photo of a project as the index records it: what the ZIP needs without reading the file again, and
/// what tells that the file changed on disk since.
struct ImageRecord: Equatable {
    var fileName: String
    /// Bytes.
    var size: UInt64
    var crc32: UInt32
    /// The file's mtime when it was measured, in nanoseconds since 1970.
    var modifiedNanoseconds: Int64
}

/// A folder rename recorded before it was made, so start-up can finish or undo it.
struct PendingRename: Equatable {
    var projectID: String
    var oldName: String
    var newName: String
}

/// The index of projects and their images in SQLite. Every method is a few small indexed statements, run on
/// the loop thread; the folders on disk are `ProjectLibrary`'s.
final class ProjectStore {
    private let database: Database
    private let clock: WallClock

    init(database: Database, clock: WallClock = SystemClock()) {
        self.database = database
        self.clock = clock
    }

    // MARK: Projects

    /// Every project, oldest first.
    func list() throws -> [ProjectDTO] {
        var projects: [ProjectDTO] = []
        try database.forEachRow(ProjectStore.selectAll + " ORDER BY created_at, id") { row in
            projects.append(ProjectStore.project(from: row))
        }
        return projects
    }

    /// One project by its identifier (any letter case), or nil.
    func project(id: String) throws -> ProjectDTO? {
        var found: ProjectDTO?
        try database.forEachRow(ProjectStore.selectAll + " WHERE id = ?", [.text(id.lowercased())]) { row in
            found = ProjectStore.project(from: row)
        }
        return found
    }

    /// The project's identifier and name, or the API's 404.
    func existing(id: String) throws -> ProjectDTO {
        guard let project = try project(id: id) else { throw APIError(.notFound, "Project not found") }
        return project
    }

    /// The projects' names that a new project called `name` could collide with: `name` itself and the
    /// numbered ones `ProjectNames.uniqueProjectName` tries (`name-2`, `name-3`, …): two ranges of the name's
    /// unique index (names are compared byte by byte, and every name starting "name-" sorts between "name-" and
    /// "name."), where reading every project grew with the library.
    func names(sameAsOrNumbered name: String) throws -> Set<String> {
        var names: Set<String> = []
        try database.forEachRow("""
            SELECT name FROM projects WHERE name = ?1 OR (name >= ?2 AND name < ?3)
            """, [.text(name), .text(name + "-"), .text(name + ".")]) { names.insert($0.string(at: 0) ?? "") }
        return names
    }

    /// A project or a rename in flight already uses the name.
    func isNameTaken(_ name: String) throws -> Bool {
        var taken = false
        try database.forEachRow("""
            SELECT 1 FROM projects WHERE name = ? UNION ALL SELECT 1 FROM pending_renames WHERE new_name = ?
            """, [.text(name), .text(name)]) { _ in taken = true }
        return taken
    }

    /// Adds a project with its images in one transaction.
    func insertProject(id: String, name: String, images: [ImageRecord]) throws {
        try database.transaction {
            try database.run("INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)",
                             [.text(id), .text(name), .real(clock.now)])
            try insertImages(images, projectID: id)
        }
    }

    func delete(id: String) throws {
        try database.run("DELETE FROM projects WHERE id = ?", [.text(id)])
    }

    /// Removes the project from the index and remembers its folder, so start-up does not list it again.
    func forget(id: String, folderName: String) throws {
        try database.transaction {
            try delete(id: id)
            try database.run("INSERT OR REPLACE INTO forgotten_folders (name, forgotten_at) VALUES (?, ?)",
                             [.text(folderName), .real(clock.now)])
        }
    }

    func forgottenFolders() throws -> Set<String> {
        var names = Set<String>()
        try database.forEachRow("SELECT name FROM forgotten_folders") { names.insert($0.string(at: 0) ?? "") }
        return names
    }

    func remember(folderName: String) throws {
        try database.run("DELETE FROM forgotten_folders WHERE name = ?", [.text(folderName)])
    }

    /// Sets the computation fields the API reports; `modelDetail` nil keeps the detail of the model there.
    func updateComputation(projectID: String, status: String, progress: Double, stage: String, errorMessage: String,
                           modelDetail: String? = nil) throws {
        try database.run("""
            UPDATE projects SET status = ?, progress = ?, processing_stage = ?, error_message = ?,
                                model_detail = coalesce(?, model_detail)
            WHERE id = ?
            """, [.text(status), .real(progress), .text(stage), .text(errorMessage),
                  modelDetail.map { .text($0) } ?? .null, .text(projectID)])
    }

    /// Records which model files the project's folder holds: `model.usdz` (hasModel) and the GLB (hasGlb).
    func setModelFiles(projectID: String, hasModel: Bool, hasGlb: Bool) throws {
        try database.run("UPDATE projects SET has_model = ?, has_glb = ? WHERE id = ?",
                         [.integer(hasModel ? 1 : 0), .integer(hasGlb ? 1 : 0), .text(projectID)])
    }

    // MARK: Renames

    /// Records the intent before the folder moves; fails (a constraint error) when one is already in flight.
    func beginRename(_ rename: PendingRename) throws {
        try database.run("INSERT INTO pending_renames (project_id, old_name, new_name) VALUES (?, ?, ?)",
                         [.text(rename.projectID), .text(rename.oldName), .text(rename.newName)])
    }

    /// The folder moved: the project takes the new name and the intent is dropped, together.
    func finishRename(_ rename: PendingRename) throws {
        try database.transaction {
            try database.run("UPDATE projects SET name = ? WHERE id = ?",
                             [.text(rename.newName), .text(rename.projectID)])
            try abandonRename(projectID: rename.projectID)
        }
    }

    func abandonRename(projectID: String) throws {
        try database.run("DELETE FROM pending_renames WHERE project_id = ?", [.text(projectID)])
    }

    func pendingRenames() throws -> [PendingRename] {
        var renames: [PendingRename] = []
        try database.forEachRow("SELECT project_id, old_name, new_name FROM pending_renames") { row in
            renames.append(PendingRename(projectID: row.string(at: 0) ?? "", oldName: row.string(at: 1) ?? "",
                                         newName: row.string(at: 2) ?? ""))
        }
        return renames
    }

    // MARK: Images

    /// The project's images in name order.
    func images(projectID: String) throws -> [ImageRecord] {
        var images: [ImageRecord] = []
        try database.forEachRow("""
            SELECT file_name, size, crc32, modified_ns FROM images WHERE project_id = ? ORDER BY file_name
            """, [.text(projectID)]) { row in
            images.append(ImageRecord(fileName: row.string(at: 0) ?? "", size: UInt64(row.int64(at: 1)),
                                      crc32: UInt32(truncatingIfNeeded: row.int64(at: 2)),
                                      modifiedNanoseconds: row.int64(at: 3)))
        }
        return images
    }

    func image(projectID: String, fileName: String) throws -> ImageRecord? {
        var found: ImageRecord?
        try database.forEachRow("""
            SELECT size, crc32, modified_ns FROM images WHERE project_id = ? AND file_name = ?
            """, [.text(projectID), .text(fileName)]) { row in
            found = ImageRecord(fileName: fileName, size: UInt64(row.int64(at: 0)),
                                crc32: UInt32(truncatingIfNeeded: row.int64(at: 1)),
                                modifiedNanoseconds: row.int64(at: 2))
        }
        return found
    }

    /// Adds images (replacing the record of a name already there) and returns the project's image count.
    @discardableResult
    func addImages(_ images: [ImageRecord], projectID: String) throws -> Int {
        try database.transaction {
            try insertImages(images, projectID: projectID)
            return try imageCount(projectID: projectID)
        }
    }

    /// Brings the index in line with what is on disk: `upserts` measured anew, `removals` gone.
    func reconcileImages(projectID: String, upserts: [ImageRecord], removals: [String]) throws {
        try database.transaction {
            for name in removals {
                try database.run("DELETE FROM images WHERE project_id = ? AND file_name = ?",
                                 [.text(projectID), .text(name)])
            }
            try insertImages(upserts, projectID: projectID)
        }
    }

    private func insertImages(_ images: [ImageRecord], projectID: String) throws {
        let now = clock.now
        for image in images {
            try database.run("""
                INSERT OR REPLACE INTO images (project_id, file_name, size, crc32, modified_ns, added_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """, [.text(projectID), .text(image.fileName), .integer(Int64(image.size)),
                      .integer(Int64(image.crc32)), .integer(image.modifiedNanoseconds), .real(now)])
        }
        try database.run("""
            UPDATE projects SET image_count = (SELECT COUNT(*) FROM images WHERE project_id = ?1) WHERE id = ?1
            """, [.text(projectID)])
    }

    private func imageCount(projectID: String) throws -> Int {
        var count = 0
        try database.forEachRow("SELECT image_count FROM projects WHERE id = ?", [.text(projectID)]) {
            count = Int($0.int64(at: 0))
        }
        return count
    }

    // MARK: Reading rows

    private static let selectAll = """
        SELECT id, name, image_count, status, progress, processing_stage, has_model, has_glb,
               model_detail, error_message FROM projects
        """

    private static func project(from row: Statement) -> ProjectDTO {
        ProjectDTO(id: row.string(at: 0) ?? "", name: row.string(at: 1) ?? "", imageCount: Int(row.int64(at: 2)),
                   status: row.string(at: 3) ?? "ready", progress: row.double(at: 4),
                   processingStage: row.string(at: 5) ?? "", hasModel: row.int64(at: 6) != 0,
                   hasGlb: row.int64(at: 7) != 0, modelDetail: row.string(at: 8) ?? "",
                   errorMessage: row.string(at: 9) ?? "")
    }
}
