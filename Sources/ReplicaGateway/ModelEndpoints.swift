import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaProtocol

/// The conversions under way, by project folder and format, with the requests waiting for each: two requests
/// for the same conversion at once convert once. Loop thread only.
final class ModelConversions {
    typealias Waiter = (Result<Void, Error>) -> Void
    private var waiting: [String: [Waiter]] = [:]
    /// Conversions run one at a time: each takes a pool thread for seconds, and the pool also serves uploads.
    let limit = ConcurrencyLimit(1)

    /// Joins the conversion of `key` if one runs (false), or registers the first waiter (true: start it).
    func join(_ key: String, _ waiter: @escaping Waiter) -> Bool {
        if waiting[key] != nil {
            waiting[key]!.append(waiter)
            return false
        }
        waiting[key] = [waiter]
        return true
    }

    func finish(_ key: String, _ result: Result<Void, Error>) {
        for waiter in waiting.removeValue(forKey: key) ?? [] { waiter(result) }
    }
}

/// The model endpoints: the GLB for viewers (`/model`, and `/api/viewer/.../model` with the token in the query)
/// and `/download` in every format, OBJ and FBX converted from the GLB on the first request and cached.
/// Every file supports `HEAD`, `Range` and `If-Range`, so an interrupted download resumes.
extension Gateway {
    func addModelRoutes() {
        add(.get, "/api/projects/:id/model") { [unowned self] in try serveGLB($0) }
        add(.get, "/api/viewer/projects/:id/model", auth: false) { [unowned self] request in
            // The viewer cannot send headers: the token comes in the query, and is checked here.
            guard let token = request.queryValue("token"), auth.isValidToken(token) else {
                throw APIError.unauthorized
            }
            try serveGLB(request)
        }
        add(.get, "/api/projects/:id/download") { [unowned self] in try downloadModel($0) }
    }

    private func serveGLB(_ request: Request) throws {
        let project = try projects.existing(id: request.parameters["id"]!)
        let files = ModelFiles(folder: library.folder(project.name))
        serve(files, .glb, project: project, request.exchange, attachment: false,
              missing: APIError(.notFound, "GLB model not available"))
    }

    private func downloadModel(_ request: Request) throws {
        let name = request.queryValue("format")?.lowercased() ?? "glb"
        guard let format = ModelFormat(rawValue: name) else {
            throw APIError(.badRequest, "Invalid format \"\(name)\": use glb, usdz, obj or fbx")
        }
        let project = try projects.existing(id: request.parameters["id"]!)
        let files = ModelFiles(folder: library.folder(project.name))
        let missing = APIError(.notFound, "Model not found: the project has no \(format == .usdz ? "USDZ" : "GLB") "
                               + "model; compute it first")
        guard format.isConverted else {
            return serve(files, format, project: project, request.exchange, attachment: true, missing: missing)
        }
        let exchange = request.exchange
        pool.run(throwing: { () -> (cached: Bool, source: Bool) in
            (try FileSystem.status(files.path(format))?.isRegularFile == true, try files.glbVersion() != nil)
        }, completion: { [self] found in
            switch found {
            case .success((true, true)):
                serve(files, format, project: project, exchange, attachment: true, missing: missing)
            case .success((_, false)):
                noteMissing(project, format: .glb)
                fail(exchange, missing)
            case .success((false, true)):
                convert(files, format, project: project, exchange, missing: missing)
            case .failure(let error):
                exchange.logger.error("model files not read", ["error": "\(error)", "project.id": project.id])
                fail(exchange, APIError(.internalServerError, "Failed to read the model files"))
            }
        })
    }

    /// Converts (or waits for the conversion under way), then serves the cached file.
    private func convert(_ files: ModelFiles, _ format: ModelFormat, project: ProjectDTO, _ exchange: HTTPExchange,
                         missing: APIError) {
        let key = files.folder + "\u{0}" + format.rawValue
        let first = conversions.join(key) { [self] result in
            switch result {
            case .success:
                serve(files, format, project: project, exchange, attachment: true, missing: missing)
            case .failure(let error):
                exchange.logger.error("model conversion failed", ["error": "\(error)", "project.id": project.id,
                                                                  "model.format": format.rawValue])
                fail(exchange, APIError(.internalServerError, "Conversion to \(format.rawValue.uppercased()) "
                                        + "failed: \(error)"))
            }
        }
        guard first else {
            return exchange.logger.info("model conversion joined", ["project.id": project.id,
                                                                    "model.format": format.rawValue])
        }
        startConversion(key, files, format, project: project, attempt: 1)
    }

    /// Runs one conversion for everyone waiting on `key`. The project's lock is held meanwhile, so a rename or
    /// delete waits for it rather than moving its folder away; a GLB replaced meanwhile is converted again, once.
    private func startConversion(_ key: String, _ files: ModelFiles, _ format: ModelFormat, project: ProjectDTO,
                                 attempt: Int) {
        locks.run(project.id) { [self] unlock in
            conversions.limit.run { [self] done in
                let started = clock.now
                pool.run(throwing: { try files.convert(format) }, completion: { [self] converted in
                    done()
                    defer { unlock() }
                    do {
                        // On the loop thread, where a finishing job replaces the GLB: never both at once.
                        guard try files.install(converted.get()) else {
                            guard attempt < 2 else { return conversions.finish(key, .failure(ExportRetryError())) }
                            return startConversion(key, files, format, project: project, attempt: attempt + 1)
                        }
                        logger.info("model converted", ["project.id": project.id, "model.format": format.rawValue,
                                                        "seconds": String(format: "%.2f", clock.now - started)])
                        conversions.finish(key, .success(()))
                    } catch {
                        conversions.finish(key, .failure(error))
                    }
                })
            }
        }
    }

    /// Streams a model file, with ranges; a file that is not there is the API's 404, and the flags that said
    /// it was are corrected.
    private func serve(_ files: ModelFiles, _ format: ModelFormat, project: ProjectDTO, _ exchange: HTTPExchange,
                       attachment: Bool, missing: APIError) {
        var headers: HTTPHeaders = ["Content-Type": format.contentType, "Cache-Control": "private, no-cache"]
        if attachment {
            let disposition = ImageArchive.contentDisposition(projectName: project.name, suffix: "." + format.rawValue)
            headers.add(name: "Content-Disposition", value: disposition)
        }
        exchange.respondFile(path: files.path(format), headers: headers, ranges: true) { [self] error in
            if error.code == -ENOENT || error.code == -ENOTDIR {
                noteMissing(project, format: format)
                return fail(exchange, missing)
            }
            exchange.logger.error("model file not opened", ["error": "\(error)", "project.id": project.id])
            fail(exchange, APIError(.internalServerError, "Failed to read the model file"))
        }
    }

    /// A model the flags promise is not on disk (removed by hand): the flags stop promising it.
    private func noteMissing(_ project: ProjectDTO, format: ModelFormat) {
        let hasModel = format == .usdz ? false : project.hasModel
        let hasGlb = format == .usdz ? project.hasGlb : false
        guard hasModel != project.hasModel || hasGlb != project.hasGlb else { return }
        do {
            try projects.setModelFiles(projectID: project.id, hasModel: hasModel, hasGlb: hasGlb)
        } catch {
            logger.error("model flags not corrected", ["error": "\(error)", "project.id": project.id])
        }
    }
}

/// The GLB changed under two conversions in a row.
struct ExportRetryError: Error, CustomStringConvertible {
    var description: String { "the model changed while it was being converted; try again" }
}
