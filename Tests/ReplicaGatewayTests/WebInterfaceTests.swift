import Foundation
import ReplicaTestSupport
import XCTest

/// The web interface's routes over real HTTP: the page and its files need no token and carry their security
/// headers; three.js comes from Debian's libjs-three; the photo list the page shows is authenticated like the API.
/// The page itself is driven in a real browser by scripts/browser-test.
final class WebInterfaceTests: XCTestCase {
    func testThePageItsFilesAndThreeJSAreServedWithoutAToken() throws {
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let page = try gateway.request("GET", "/")
        XCTAssertEqual(page.status, 200)
        XCTAssertEqual(page.header("Content-Type"), "text/html; charset=utf-8")
        XCTAssertTrue(page.text.contains("<script src=\"/app.js\"></script>"), page.text)
        XCTAssertEqual(page.header("X-Content-Type-Options"), "nosniff")
        XCTAssertTrue(page.header("Content-Security-Policy")?.hasPrefix("default-src 'self'") == true)
        let script = try gateway.request("GET", "/app.js"), style = try gateway.request("GET", "/app.css")
        XCTAssertEqual(script.header("Content-Type"), "text/javascript; charset=utf-8")
        XCTAssertEqual(style.header("Content-Type"), "text/css; charset=utf-8")
        // The page says nothing secret: no PIN, no token.
        XCTAssertFalse(script.text.contains(try gateway.token()))

        let three = try gateway.request("GET", "/vendor/three/three.min.js")
        if FileManager.default.fileExists(atPath: "/usr/share/javascript/three/three.min.js") {
            XCTAssertEqual(three.status, 200)
            XCTAssertEqual(three.header("Content-Type"), "text/javascript; charset=utf-8")
            XCTAssertEqual(try gateway.request("GET", "/vendor/three/GLTFLoader.js").status, 200)
            XCTAssertEqual(try gateway.request("GET", "/vendor/three/OrbitControls.js").status, 200)
        } else {
            assertAPIError(three, 404, "three.js is not installed here (Debian's libjs-three); the 3D view needs it")
        }
        // Only the three files, never a path of the caller's choosing.
        assertAPIError(try gateway.request("GET", "/vendor/three/three.module.js"), 404, "Not found")
        assertAPIError(try gateway.request("GET", "/vendor/three/..%2F..%2F..%2Fetc%2Fpasswd"), 404, "Not found")
    }

    func testThePhotoListIsAuthenticatedAndInUploadOrder() throws {
        let photos = try Photos.kermit(3)
        let gateway = try GatewayHarness()
        defer { gateway.stopAndRemove() }
        let token = try gateway.token()
        let project = try gateway.create("Listed", photos, token: token)
        assertAPIError(try gateway.request("GET", "/api/projects/\(project.id)/images"), 401, "Unauthorized")
        let listed = try gateway.get("/api/projects/\(project.id)/images", token: token)
        XCTAssertEqual(listed.status, 200, listed.text)
        let images = try XCTUnwrap(listed.json["images"] as? [[String: Any]])
        XCTAssertEqual(images.compactMap { $0["fileName"] as? String }, photos.map(\.name))
        XCTAssertEqual(images.compactMap { $0["size"] as? Int }, photos.map(\.bytes.count))
        assertAPIError(try gateway.get("/api/projects/\(UUID().uuidString)/images", token: token), 404,
                       "Project not found")
    }
}
