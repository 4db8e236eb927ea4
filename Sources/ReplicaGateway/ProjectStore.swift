import ReplicaCore
import ReplicaProtocol

/// The projects the gateway knows, read from the database index. Creating, renaming and deleting projects,
/// and the folders on disk, come with the project store's full implementation.
final class ProjectStore {
    private let database: Database

    init(database: Database) {
        self.database = database
    }

    /// Every project, oldest first.
    func list() throws -> [ProjectDTO] {
        var projects: [ProjectDTO] = []
        try database.forEachRow(ProjectStore.selectAll + " ORDER BY created_at, id") { row in
            projects.append(ProjectStore.project(from: row))
        }
        return projects
    }

    /// One project by its identifier, or nil.
    func project(id: String) throws -> ProjectDTO? {
        var found: ProjectDTO?
        try database.forEachRow(ProjectStore.selectAll + " WHERE id = ?", [.text(id.lowercased())]) { row in
            found = ProjectStore.project(from: row)
        }
        return found
    }

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
