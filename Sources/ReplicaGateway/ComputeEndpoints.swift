import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaProtocol

/// The Computation endpoints: start a reconstruction and cancel it. The work itself is the scheduler's.
extension Gateway {
    /// The largest compute request body accepted; the options fit in a few hundred bytes.
    static let maximumComputeBodyBytes = 16 * 1024

    func addComputeRoutes() {
        add(.post, "/api/projects/:id/compute") { [unowned self] in try startComputation($0) }
        add(.post, "/api/projects/:id/cancel") { [unowned self] in try cancelComputation($0) }
    }

    private func startComputation(_ request: Request) throws {
        let exchange = request.exchange
        let id = try projects.existing(id: request.parameters["id"]!).id
        exchange.collectBody(limit: Gateway.maximumComputeBodyBytes) { [self] body in
            do {
                guard case .success(let bytes) = body else {
                    throw APIError(.payloadTooLarge, "Request body too large")
                }
                let options: ComputeOptions
                do {
                    options = try ComputeOptions.parse(bytes)
                } catch {
                    throw APIError(.badRequest, "\(error)")
                }
                // Behind the project's other changes: an upload or rename in flight finishes first.
                locks.run(id) { [self] done in
                    defer { done() }
                    do {
                        try queue(id, options, exchange)
                    } catch {
                        fail(exchange, error)
                    }
                }
            } catch {
                fail(exchange, error)
            }
        }
    }

    /// Checks the project can be computed now and queues its job.
    private func queue(_ id: String, _ options: ComputeOptions, _ exchange: HTTPExchange) throws {
        let project = try projects.existing(id: id)
        guard !scheduler.isBusy(projectID: id) else {
            throw APIError(.conflict, "Project is already processing or queued")
        }
        let images = try projects.images(projectID: id).map(\.fileName)
        guard !images.isEmpty else { throw APIError(.badRequest, "Project has no images") }
        try scheduler.submit(project: project, images: images, options: options)
        exchange.logger.info("computation queued", ["project.id": id, "job.detail": options.detail.rawValue])
        send(exchange, ProjectStatusChange(id: id, status: "queued"), status: .accepted)
    }

    private func cancelComputation(_ request: Request) throws {
        let id = try projects.existing(id: request.parameters["id"]!).id
        guard try scheduler.cancel(projectID: id) else {
            throw APIError(.notFound, "Project is not processing or queued")
        }
        request.exchange.logger.info("computation cancelled", ["project.id": id])
        send(request.exchange, ProjectStatusChange(id: id, status: "ready"))
    }
}
