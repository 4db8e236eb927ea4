/// Bodies of the Replica Link API's outer layer, exactly as `replica-link-api.txt` names their fields.

/// `GET /api/health`.
public struct HealthResponse: Codable, Equatable, Sendable {
    public var status: String
    public var version: String

    public init(status: String = "ok", version: String = APIVersion.current) {
        self.status = status
        self.version = version
    }
}

/// `POST /api/auth` request.
public struct AuthRequest: Codable, Equatable, Sendable {
    public var pin: String

    public init(pin: String) { self.pin = pin }
}

/// `POST /api/auth` answer.
public struct AuthResponse: Codable, Equatable, Sendable {
    public var token: String

    public init(token: String) { self.token = token }
}

/// Every error the API returns: `{"error": "…"}`.
public struct ErrorBody: Codable, Equatable, Sendable {
    public var error: String

    public init(error: String) { self.error = error }
}

public enum APIVersion {
    /// The API version `GET /api/health` reports.
    public static let current = "1.0"
}

/// `LinkProjectDTO`: one project as `GET /api/projects` and `GET /api/projects/:id` return it.
public struct ProjectDTO: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var imageCount: Int
    public var status: String
    public var progress: Double
    public var processingStage: String
    public var hasModel: Bool
    public var hasGlb: Bool
    public var modelDetail: String
    public var errorMessage: String

    public init(id: String, name: String, imageCount: Int, status: String, progress: Double,
                processingStage: String, hasModel: Bool, hasGlb: Bool, modelDetail: String, errorMessage: String) {
        self.id = id
        self.name = name
        self.imageCount = imageCount
        self.status = status
        self.progress = progress
        self.processingStage = processingStage
        self.hasModel = hasModel
        self.hasGlb = hasGlb
        self.modelDetail = modelDetail
        self.errorMessage = errorMessage
    }

    /// The lightweight form `GET /api/status` lists.
    public var statusItem: StatusProjectDTO {
        StatusProjectDTO(id: id, status: status, progress: progress, processingStage: processingStage,
                         hasGlb: hasGlb, errorMessage: errorMessage)
    }
}

/// `GET /api/projects`.
public struct ProjectListResponse: Codable, Equatable, Sendable {
    public var projects: [ProjectDTO]

    public init(projects: [ProjectDTO]) { self.projects = projects }
}

/// `LinkStatusProjectDTO`.
public struct StatusProjectDTO: Codable, Equatable, Sendable {
    public var id: String
    public var status: String
    public var progress: Double
    public var processingStage: String
    public var hasGlb: Bool
    public var errorMessage: String

    public init(id: String, status: String, progress: Double, processingStage: String, hasGlb: Bool,
                errorMessage: String) {
        self.id = id
        self.status = status
        self.progress = progress
        self.processingStage = processingStage
        self.hasGlb = hasGlb
        self.errorMessage = errorMessage
    }
}

/// `GET /api/status`: every project's state and how soon to ask again.
public struct StatusResponse: Codable, Equatable, Sendable {
    public var projects: [StatusProjectDTO]
    /// Seconds: 2 while anything is processing or queued, else 10.
    public var pollInterval: Int

    public init(projects: [StatusProjectDTO]) {
        self.projects = projects
        pollInterval = projects.contains { $0.status == "processing" || $0.status == "queued" } ? 2 : 10
    }
}

/// `POST /api/projects` answer (201).
public struct CreateProjectResponse: Codable, Equatable, Sendable {
    public var id: String
    public var name: String
    public var imageCount: Int
    public var status: String

    public init(id: String, name: String, imageCount: Int, status: String) {
        self.id = id
        self.name = name
        self.imageCount = imageCount
        self.status = status
    }
}

/// `PUT`/`PATCH /api/projects/:id` request and answer: the name, and with the id once renamed.
public struct RenameProjectRequest: Codable, Equatable, Sendable {
    public var name: String

    public init(name: String) { self.name = name }
}

public struct RenameProjectResponse: Codable, Equatable, Sendable {
    public var id: String
    public var name: String

    public init(id: String, name: String) {
        self.id = id
        self.name = name
    }
}

/// `DELETE /api/projects/:id` answer.
public struct DeleteProjectResponse: Codable, Equatable, Sendable {
    public var id: String
    public var deleted: Bool

    public init(id: String, deleted: Bool = true) {
        self.id = id
        self.deleted = deleted
    }
}

/// `POST /api/projects/:id/images` answer.
public struct AddImagesResponse: Codable, Equatable, Sendable {
    /// Images in the project after adding.
    public var imageCount: Int
    /// Images this request added.
    public var addedCount: Int

    public init(imageCount: Int, addedCount: Int) {
        self.imageCount = imageCount
        self.addedCount = addedCount
    }
}

/// `GET /api/projects/:id/images` (this server's addition, for the web interface): the photos' file names, in the
/// order they were added, and their sizes in bytes.
public struct ImageListResponse: Codable, Equatable, Sendable {
    public struct Image: Codable, Equatable, Sendable {
        public var fileName: String
        public var size: Int64

        public init(fileName: String, size: Int64) {
            self.fileName = fileName
            self.size = size
        }
    }

    public var images: [Image]

    public init(images: [Image]) { self.images = images }
}

/// `POST /api/projects/:id/compute` (202, `queued`) and `…/cancel` (200, `ready`) answers: the project's new status.
public struct ProjectStatusChange: Codable, Equatable, Sendable {
    public var id: String
    public var status: String

    public init(id: String, status: String) {
        self.id = id
        self.status = status
    }
}
