import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaProtocol

/// The project store's endpoints: create, add images, rename, delete, thumbnails and the ZIP of all images.
///
/// Handlers run on the loop thread and send every disk step to the pool; changes to one project run one at a
/// time (`ProjectLocks`). The order of each change's steps is what `ProjectLibrary` documents.
extension Gateway {
    func addProjectRoutes() {
        add(.post, "/api/projects") { [unowned self] in try createProject($0) }
        add(.put, "/api/projects/:id") { [unowned self] in try renameProject($0) }
        add(.patch, "/api/projects/:id") { [unowned self] in try renameProject($0) }
        add(.delete, "/api/projects/:id") { [unowned self] in try deleteProject($0) }
        add(.post, "/api/projects/:id/images") { [unowned self] in try addImages($0) }
        add(.get, "/api/projects/:id/images/download") { [unowned self] in try downloadImages($0) }
        add(.get, "/api/projects/:id/images/:filename") { [unowned self] in try thumbnail($0) }
    }

    private static func isBusy(_ status: String) -> Bool { status == "queued" || status == "processing" }

    // MARK: Create and add

    private func createProject(_ request: Request) throws {
        let exchange = request.exchange
        let receiver = try makeReceiver(exchange, skipUnsupported: false) { [self] upload in
            commitProject(upload, exchange)
        }
        startWhenLibraryIsAvailable(receiver, exchange)
    }

    /// Uploads need the projects directory: when it is missing or not writable (a disk that did not mount),
    /// the answer is 412 and nothing is written anywhere else.
    private func startWhenLibraryIsAvailable(_ receiver: UploadReceiver, _ exchange: HTTPExchange) {
        pool.run({ [library] in library.isAvailable }, completion: { [self] available in
            guard available else {
                logger.warning("upload refused: the projects directory is missing or not writable",
                               ["projects.dir": library.projectsDirectory])
                return fail(exchange, APIError(.preconditionFailed, "Projects directory is not available"))
            }
            receiver.start()
        })
    }

    private func commitProject(_ upload: ReceivedUpload, _ exchange: HTTPExchange) {
        do {
            guard !upload.images.isEmpty else { throw APIError(.badRequest, "No images provided") }
            let requested = upload.fields["name"]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            let name = requested.isEmpty ? ProjectNames.defaultProjectName(at: Date(timeIntervalSince1970: clock.now))
                                         : try ProjectNames.validProjectName(requested)
            let indexed = try projects.names(sameAsOrNumbered: name)
            pool.run(throwing: { [library] in
                try library.placeProject(from: upload.directory, name: name, indexedNames: indexed)
            }, completion: { [self] placed in
                do {
                    let finalName = try placed.get()
                    CrashPoint.reach("create.placed")
                    let id = UUID().uuidString.lowercased()
                    try projects.insertProject(id: id, name: finalName, images: upload.images.map(\.record))
                    exchange.logger.info("project created", ["project.id": id, "images": "\(upload.images.count)"])
                    send(exchange, CreateProjectResponse(id: id, name: finalName, imageCount: upload.images.count,
                                                         status: "ready"), status: .created)
                } catch {
                    exchange.logger.error("project folder not placed", ["error": "\(error)"])
                    discard(upload)
                    fail(exchange, APIError(.internalServerError, "Failed to create project folder"))
                }
            })
        } catch {
            discard(upload)
            fail(exchange, error)
        }
    }

    private func addImages(_ request: Request) throws {
        let exchange = request.exchange
        let project = try projects.existing(id: request.parameters["id"]!)
        guard !Gateway.isBusy(project.status) else {
            throw APIError(.conflict, "Project is processing or queued; images cannot be added now")
        }
        let receiver = try makeReceiver(exchange, skipUnsupported: true) { [self] upload in
            locks.run(project.id) { [self] done in commitImages(upload, projectID: project.id, exchange, done) }
        }
        startWhenLibraryIsAvailable(receiver, exchange)
    }

    private func commitImages(_ upload: ReceivedUpload, projectID: String, _ exchange: HTTPExchange,
                              _ done: @escaping () -> Void) {
        do {
            guard !upload.images.isEmpty else {
                throw APIError(.badRequest, upload.skipped.first.map { "Unsupported image format: \($0)" }
                                                ?? "No images provided")
            }
            let project = try projects.existing(id: projectID)
            guard !Gateway.isBusy(project.status) else {
                throw APIError(.conflict, "Project is processing or queued; images cannot be added now")
            }
            let indexed = Set(try projects.images(projectID: projectID).map(\.fileName))
            pool.run(throwing: { [library] in
                try library.addImages(upload.images, staging: upload.directory, to: project.name, indexedNames: indexed)
            }, completion: { [self] moved in
                defer { done() }
                do {
                    let records = try moved.get()
                    CrashPoint.reach("add.moved")
                    let count = try projects.addImages(records, projectID: projectID)
                    send(exchange, AddImagesResponse(imageCount: count, addedCount: records.count))
                } catch {
                    exchange.logger.error("images not added", ["error": "\(error)", "project.id": projectID])
                    discard(upload)
                    fail(exchange, APIError(.internalServerError, "Failed to add images"))
                }
            })
        } catch {
            done()
            discard(upload)
            fail(exchange, error)
        }
    }

    private func makeReceiver(_ exchange: HTTPExchange, skipUnsupported: Bool,
                              commit: @escaping (ReceivedUpload) -> Void) throws -> UploadReceiver {
        let receiver = UploadReceiver(exchange: exchange, pool: pool, library: library, limits: uploadLimits,
                                      skipUnsupported: skipUnsupported) { [self] result in
            switch result {
            case .success(let upload): commit(upload)
            case .failure(let error): fail(exchange, error)
            }
        }
        guard let receiver else {
            throw APIError(.badRequest, "Content-Type must be multipart/form-data with a boundary")
        }
        return receiver
    }

    private func discard(_ upload: ReceivedUpload) {
        pool.run({ try? FileSystem.removeTree(upload.directory) }, completion: { _ in })
    }

    // MARK: Rename and delete

    private func renameProject(_ request: Request) throws {
        let exchange = request.exchange
        let id = try projects.existing(id: request.parameters["id"]!).id
        exchange.collectBody(limit: 16 * 1024) { [self] body in
            do {
                guard case .success(let bytes) = body else {
                    throw APIError(.payloadTooLarge, "Request body too large")
                }
                guard let body = try? JSONDecoder().decode(RenameProjectRequest.self, from: Data(bytes)) else {
                    throw APIError.invalidRequestBody
                }
                let name = try ProjectNames.validProjectName(body.name)
                locks.run(id) { [self] done in rename(id, to: name, exchange, done) }
            } catch {
                fail(exchange, error)
            }
        }
    }

    private func rename(_ id: String, to name: String, _ exchange: HTTPExchange, _ done: @escaping () -> Void) {
        do {
            let project = try projects.existing(id: id)
            guard !Gateway.isBusy(project.status) else {
                throw APIError(.badRequest, "Cannot rename a project that is processing or queued")
            }
            guard name != project.name else {
                done()
                return send(exchange, RenameProjectResponse(id: id, name: name))
            }
            guard try !projects.isNameTaken(name) else {
                throw APIError(.badRequest, "A project named \(name) already exists")
            }
            let intent = PendingRename(projectID: id, oldName: project.name, newName: name)
            try projects.beginRename(intent)
            CrashPoint.reach("rename.recorded")
            pool.run(throwing: { [library] in
                try FileSystem.renameNoReplace(library.folder(intent.oldName), to: library.folder(intent.newName))
                try FileSystem.syncDirectory(library.projectsDirectory)
            }, completion: { [self] result in
                defer { done() }
                do {
                    do {
                        try result.get()
                    } catch let error as FileSystemError where error.alreadyExists {
                        try projects.abandonRename(projectID: id)
                        throw APIError(.badRequest, "A folder named \(name) already exists")
                    } catch {
                        try projects.abandonRename(projectID: id)
                        exchange.logger.error("project folder not renamed", ["error": "\(error)"])
                        throw APIError(.internalServerError, "Failed to rename project folder")
                    }
                    CrashPoint.reach("rename.moved")
                    try projects.finishRename(intent)
                    send(exchange, RenameProjectResponse(id: id, name: name))
                } catch {
                    fail(exchange, error)
                }
            })
        } catch {
            done()
            fail(exchange, error)
        }
    }

    private func deleteProject(_ request: Request) throws {
        let exchange = request.exchange
        let id = try projects.existing(id: request.parameters["id"]!).id
        let deleteFiles: Bool
        switch request.queryValue("deleteFiles")?.lowercased() {
        case nil, "false": deleteFiles = false
        case "true": deleteFiles = true
        default: throw APIError(.badRequest, "deleteFiles must be true or false")
        }
        locks.run(id) { [self] done in
            do {
                let project = try projects.existing(id: id)
                // A job of the project stops first: its workers must not write into a folder on its way out.
                if try scheduler.cancel(projectID: id) {
                    exchange.logger.info("computation cancelled by delete", ["project.id": id])
                }
                guard deleteFiles else {
                    try projects.forget(id: id, folderName: project.name)
                    done()
                    return send(exchange, DeleteProjectResponse(id: id))
                }
                deleteFolder(of: project, exchange, done)
            } catch {
                done()
                fail(exchange, error)
            }
        }
    }

    /// Moves the folder aside to `.trash-<id>` (one atomic step), unindexes the project, then removes the trash.
    private func deleteFolder(of project: ProjectDTO, _ exchange: HTTPExchange, _ done: @escaping () -> Void) {
        let folder = library.folder(project.name), trash = library.trash(project.id)
        pool.run(throwing: {
            do {
                try FileSystem.renameNoReplace(folder, to: trash)
            } catch let error as FileSystemError where error.notFound {
                return
            }
            try FileSystem.syncDirectory((folder as NSString).deletingLastPathComponent)
        }, completion: { [self] result in
            defer { done() }
            do {
                try result.get()
                CrashPoint.reach("delete.trashed")
                try projects.delete(id: project.id)
                send(exchange, DeleteProjectResponse(id: project.id))
                pool.run(throwing: { try FileSystem.removeTree(trash) }, completion: { [logger] result in
                    if case .failure(let error) = result {
                        logger.error("deleted project's folder not removed", ["error": "\(error)"])
                    }
                })
            } catch {
                exchange.logger.error("project folder not deleted", ["error": "\(error)"])
                fail(exchange, APIError(.internalServerError, "Failed to delete project folder"))
            }
        })
    }

    // MARK: Reading images

    private func thumbnail(_ request: Request) throws {
        let exchange = request.exchange
        let project = try projects.existing(id: request.parameters["id"]!)
        let fileName = request.parameters["filename"]!
        guard try projects.image(projectID: project.id, fileName: fileName) != nil else {
            throw APIError(.notFound, "Image not found")
        }
        let source = library.imagePath(project.name, fileName)
        let cache = library.thumbnailsDirectory(project.name)
        pool.run(throwing: {
            try ThumbnailCache.cached(source: source, fileName: fileName, cacheDirectory: cache)
        }, completion: { [self] result in
            guard case .success(nil) = result else {
                return answerThumbnail(exchange, result.map { $0! }, fileName: fileName)
            }
            // A miss decodes the whole photo: a few at a time, so a burst of requests for large images can
            // neither take every pool thread from the uploads nor hold many decoded photos in memory at once.
            thumbnailMaking.run { [self] done in
                pool.run(throwing: {
                    try ThumbnailCache.make(source: source, fileName: fileName, cacheDirectory: cache)
                }, completion: { [self] made in
                    done()
                    answerThumbnail(exchange, made, fileName: fileName)
                })
            }
        })
    }

    private func answerThumbnail(_ exchange: HTTPExchange, _ result: Result<ThumbnailCache.Result, Error>,
                                 fileName: String) {
        switch result {
        case .success(let thumbnail):
            var headers: HTTPHeaders = ["Content-Type": "image/jpeg", "ETag": thumbnail.entityTag,
                                        "Cache-Control": "private, no-cache"]
            if let match = exchange.head.headers["If-None-Match"],
               HTTPExchange.tagList(match, contains: thumbnail.entityTag) {
                headers.remove(name: "Content-Type")
                return exchange.respond(.notModified, headers: headers)
            }
            exchange.respond(.ok, headers: headers, body: thumbnail.jpeg)
        case .failure(ThumbnailCache.Failure.sourceMissing):
            fail(exchange, APIError(.notFound, "Image not found"))
        case .failure(let error):
            exchange.logger.warning("thumbnail failed", ["error": "\(error)", "image": fileName])
            fail(exchange, APIError(.internalServerError, "Failed to generate thumbnail"))
        }
    }

    private func downloadImages(_ request: Request) throws {
        let exchange = request.exchange
        let project = try projects.existing(id: request.parameters["id"]!)
        let images = try projects.images(projectID: project.id)
        guard !images.isEmpty else { throw APIError(.badRequest, "Project has no images") }
        let paths = images.map { library.imagePath(project.name, $0.fileName) }
        pool.run(throwing: { [library] in
            try ImageArchive.verify(images, paths: paths, library: library)
        }, completion: { [self] result in
            do {
                let current = try result.get()
                let changed = zip(images, current).filter { $0 != $1 }.map(\.1)
                if !changed.isEmpty {
                    try projects.reconcileImages(projectID: project.id, upserts: changed, removals: [])
                }
                let archive = try ImageArchive(images: current, paths: paths)
                let headers: HTTPHeaders = [
                    "Content-Type": "application/zip",
                    "Content-Disposition": ImageArchive.contentDisposition(projectName: project.name),
                ]
                exchange.respondParts(.ok, headers: headers, contentLength: archive.length, pool: pool,
                                      next: archive.parts())
            } catch {
                exchange.logger.error("image archive not started", ["error": "\(error)", "project.id": project.id])
                fail(exchange, APIError(.internalServerError, "Failed to create ZIP archive"))
            }
        })
    }
}
