import Foundation
import ReplicaCore
import ReplicaHTTP

/// `GET /api/projects/:id/cameras`: Image Alignment's cameras as a ZIP, for other tools (NeRF and Gaussian
/// splatting trainers, COLMAP itself) — COLMAP's text model under `colmap/` and a NeRF-style
/// `transforms.json`, both in the photos' own pixels. 404 until an alignment has finished.
extension Gateway {
    func addCameraRoutes() {
        add(.get, "/api/projects/:id/cameras") { [unowned self] in try downloadCameras($0) }
    }

    private func downloadCameras(_ request: Request) throws {
        let exchange = request.exchange
        let project = try projects.existing(id: request.parameters["id"]!)
        let sparse = library.folder(project.name) + "/work/sparse"
        pool.run(throwing: { try CameraArchive.build(sparseFolder: sparse) }, completion: { [self] result in
            switch result {
            case .success(let archive?):
                let headers: HTTPHeaders = [
                    "Content-Type": "application/zip",
                    "Content-Disposition": ImageArchive.contentDisposition(projectName: project.name,
                                                                           suffix: "_cameras.zip"),
                ]
                exchange.respond(.ok, headers: headers, body: archive)
            case .success(nil):
                fail(exchange, APIError(.notFound, "Cameras not found"))
            case .failure(let error):
                exchange.logger.error("camera archive failed", ["error": "\(error)", "project.id": project.id])
                fail(exchange, APIError(.internalServerError, "Failed to create ZIP archive"))
            }
        })
    }
}

/// The cameras' ZIP, built in memory: the files are a few megabytes at most.
enum CameraArchive {
    /// Archive names and the files under `work/sparse/` they come from, in archive order.
    static let members = [("colmap/cameras.txt", "colmap/cameras.txt"), ("colmap/images.txt", "colmap/images.txt"),
                          ("colmap/points3D.txt", "colmap/points3D.txt"), ("transforms.json", "transforms.json")]

    /// The archive's bytes, or nil when the alignment has not written every file (it writes each whole, last
    /// of all the statistics, so their presence means an alignment finished).
    static func build(sparseFolder: String) throws -> [UInt8]? {
        guard FileManager.default.fileExists(atPath: sparseFolder + "/statistics.json") else { return nil }
        var contents: [[UInt8]] = []
        var entries: [ZipEntry] = []
        for (name, relative) in members {
            let path = sparseFolder + "/" + relative
            guard let data = FileManager.default.contents(atPath: path) else { return nil }
            let bytes = Array(data)
            let modified = (try? FileManager.default.attributesOfItem(atPath: path)[.modificationDate] as? Date)
                ?? Date()
            entries.append(ZipEntry(name: name, size: UInt64(bytes.count), crc32: CRC32.checksum(bytes),
                                    modified: modified))
            contents.append(bytes)
        }
        let layout = try ZipLayout(entries: entries)
        var archive: [UInt8] = []
        archive.reserveCapacity(Int(layout.totalLength))
        for (index, bytes) in contents.enumerated() {
            archive += layout.localHeader(at: index)
            archive += bytes
        }
        archive += layout.trailer()
        return archive
    }
}
