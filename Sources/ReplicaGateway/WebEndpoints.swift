import Foundation
import ReplicaCore
import ReplicaHTTP
import ReplicaProtocol

/// The web interface: a static page (`GET /`, its script and style, compiled into the binary) that does everything
/// over the public API, and three.js as Debian's libjs-three installs it, for the 3D view. The page holds no secret:
/// these routes need no token, and every request the page makes meets the API's auth rules unchanged.
extension Gateway {
    /// Where Debian's libjs-three puts the files the page loads, by the name the page asks for.
    static let threeFiles = [
        "three.min.js": "/usr/share/javascript/three/three.min.js",
        "GLTFLoader.js": "/usr/share/javascript/three/examples/js/loaders/GLTFLoader.js",
        "OrbitControls.js": "/usr/share/javascript/three/examples/js/controls/OrbitControls.js",
    ]

    /// The page's own files, compiled in from `Web/`.
    static let webFiles: [String: (type: String, bytes: [UInt8])] = [
        "/": ("text/html; charset=utf-8", PackageResources.index_html),
        "/app.js": ("text/javascript; charset=utf-8", PackageResources.app_js),
        "/app.css": ("text/css; charset=utf-8", PackageResources.app_css),
    ]

    /// Scripts, styles and connections from this server only; images also from the blobs three.js makes of the
    /// textures inside a GLB.
    static let contentSecurityPolicy = "default-src 'self'; img-src 'self' blob: data:; "
        + "connect-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

    func addWebRoutes() {
        for (path, file) in Gateway.webFiles {
            add(.get, path, auth: false) { request in
                request.exchange.respond(.ok, headers: [
                    "Content-Type": file.type, "Cache-Control": "no-cache",
                    "Content-Security-Policy": Gateway.contentSecurityPolicy, "X-Content-Type-Options": "nosniff",
                ], body: file.bytes)
            }
        }
        add(.get, "/vendor/three/:file", auth: false) { [unowned self] request in
            guard let path = Gateway.threeFiles[request.parameters["file"]!] else { throw APIError.notFound }
            let exchange = request.exchange
            exchange.respondFile(path: path, headers: ["Content-Type": "text/javascript; charset=utf-8",
                                                       "Cache-Control": "public, max-age=86400",
                                                       "X-Content-Type-Options": "nosniff"]) { [self] _ in
                fail(exchange, APIError(.notFound, "three.js is not installed here (Debian's libjs-three); "
                                        + "the 3D view needs it"))
            }
        }
        add(.get, "/api/projects/:id/images") { [unowned self] request in
            let project = try projects.existing(id: request.parameters["id"]!)
            let images = try projects.images(projectID: project.id)
            send(request.exchange, ImageListResponse(images: images.map {
                ImageListResponse.Image(fileName: $0.fileName, size: Int64($0.size))
            }))
        }
    }
}
