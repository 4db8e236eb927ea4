import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaProtocol

/// The API's request handling: routing, authentication and the endpoints, on the server's loop thread.
public final class Gateway: HTTPServerDelegate {
    /// One request as an endpoint sees it.
    struct Request {
        let exchange: HTTPExchange
        let parameters: [String: String]
        let query: [(name: String, value: String)]

        func queryValue(_ name: String) -> String? { query.first { $0.name == name }?.value }
    }

    private struct Endpoint {
        let requiresAuth: Bool
        let handle: (Request) throws -> Void
    }

    let logger: Logger
    let auth: Authenticator
    let projects: ProjectStore
    let library: ProjectLibrary
    let pool: WorkPool
    let uploadLimits: UploadLimits
    let clock: WallClock
    let scheduler: JobScheduler
    let locks = ProjectLocks()
    let conversions = ModelConversions()
    /// Thumbnails being made (decoded) at once: one per core.
    let thumbnailMaking = ConcurrencyLimit(max(1, ProcessInfo.processInfo.activeProcessorCount))
    private var router = Router<Endpoint>()

    /// The routes served, as method and pattern (`/api/projects/:id`).
    var routes: [(method: HTTPMethod, pattern: String)] { router.routes }
    private let healthBody: [UInt8]

    init(logger: Logger, auth: Authenticator, projects: ProjectStore, library: ProjectLibrary, pool: WorkPool,
         uploadLimits: UploadLimits, clock: WallClock, scheduler: JobScheduler) {
        self.logger = logger
        self.auth = auth
        self.projects = projects
        self.library = library
        self.pool = pool
        self.uploadLimits = uploadLimits
        self.clock = clock
        self.scheduler = scheduler
        healthBody = HealthResponse().jsonBytes
        addRoutes()
    }

    private func addRoutes() {
        add(.get, "/api/health", auth: false) { [unowned self] in
            respondJSON($0.exchange, .ok, body: healthBody)
        }
        add(.post, "/api/auth", auth: false) { [unowned self] in auth.login($0.exchange, gateway: self) }
        add(.get, "/api/status") { [unowned self] request in
            try send(request.exchange, StatusResponse(projects: projects.list().map(\.statusItem)))
        }
        add(.get, "/api/projects") { [unowned self] request in
            try send(request.exchange, ProjectListResponse(projects: projects.list()))
        }
        add(.get, "/api/projects/:id") { [unowned self] request in
            guard let project = try projects.project(id: request.parameters["id"]!) else {
                throw APIError(.notFound, "Project not found")
            }
            send(request.exchange, project)
        }
        addProjectRoutes()
        addComputeRoutes()
        addCameraRoutes()
        addModelRoutes()
        addWebRoutes()
    }

    func add(_ method: HTTPMethod, _ pattern: String, auth: Bool = true,
                     _ handle: @escaping (Request) throws -> Void) {
        router.add(method, pattern, Endpoint(requiresAuth: auth, handle: handle))
    }

    public func serve(_ exchange: HTTPExchange) {
        switch router.match(exchange.head.method, path: exchange.head.path) {
        case .notFound:
            fail(exchange, APIError.notFound)
        case .methodNotAllowed(let allowed):
            let error = APIError(.methodNotAllowed, "Method \(exchange.head.method) not allowed",
                                 headers: ["Allow": allowed.map(\.rawValue).joined(separator: ", ")])
            fail(exchange, error)
        case .found(let endpoint, let parameters):
            let request = Request(exchange: exchange, parameters: parameters,
                                  query: parseQuery(exchange.head.rawQuery))
            if endpoint.requiresAuth && !auth.isAuthorized(exchange.head, query: request.query) {
                return fail(exchange, APIError.unauthorized)
            }
            run(endpoint, request)
        }
    }

    private func run(_ endpoint: Endpoint, _ request: Request) {
        do {
            try endpoint.handle(request)
        } catch {
            fail(request.exchange, error)
        }
    }

    /// The one place an error becomes a response: an `APIError` as it says, anything else as a logged 500.
    func fail(_ exchange: HTTPExchange, _ error: Error) {
        guard let apiError = error as? APIError else {
            exchange.logger.error("request failed", ["error": "\(error)", "http.path":
                                                     redactSecrets(inTarget: exchange.head.target)])
            return fail(exchange, APIError(.internalServerError, "Internal server error"))
        }
        exchange.respondError(apiError.status, apiError.message, headers: apiError.headers)
    }

    func send<T: JSONBody>(_ exchange: HTTPExchange, _ value: T, status: HTTPStatus = .ok) {
        respondJSON(exchange, status, body: value.jsonBytes)
    }

    private func respondJSON(_ exchange: HTTPExchange, _ status: HTTPStatus, body: [UInt8]) {
        exchange.respond(status, headers: ["Content-Type": "application/json"], body: body)
    }
}
