import Foundation
import ReplicaCore
import ReplicaGateway
import ReplicaTestSupport
import XCTest

/// A library on a small tmpfs that an upload fills: the upload is refused with a message that says why, what was
/// stored before is untouched byte for byte, nothing of the refused upload stays, and the server goes on serving,
/// with the space back for the next upload.
final class DiskFullTests: XCTestCase {
    func testAnUploadThatFillsTheDiskIsRefusedAndLosesNothing() throws {
        let disk = try SmallDisk(megabytes: 6)
        defer { disk.remove() }
        let kept = try Photos.kermit(3), tooMuch = try Photos.fountain(3), later = try Photos.kermit(5).suffix(2)
        let gateway = try GatewayHarness(dataDirectory: disk.path + "/data")
        defer { gateway.stop() }
        let token = try gateway.token()
        let first = try gateway.create("Before the disk filled", kept, token: token)

        let refused = try gateway.upload(.photos(tooMuch, name: "Too much"), token: token)
        assertAPIError(refused, 500, "Not enough free disk space to store the uploaded photos")
        XCTAssertTrue(eventually { gateway.stagingEntries().isEmpty }, "staging kept \(gateway.stagingEntries())")
        XCTAssertEqual(gateway.visibleFolders(), ["Before the disk filled"])
        assertStored(gateway, "Before the disk filled", kept.byName)
        XCTAssertEqual(try gateway.projectList(token: token).map(\.id), [first.id])
        XCTAssertEqual(try gateway.request("GET", "/api/health").status, 200)

        let next = try gateway.create("After", Array(later), token: token)
        XCTAssertEqual(next.imageCount, 2)
        assertStored(gateway, "Before the disk filled", kept.byName)
        XCTAssertEqual(gateway.log.lines.filter { $0.contains("upload write failed") }.count, 1)
    }
}

/// A tmpfs of a few megabytes mounted for one test, so filling it is quick and touches nothing else. Needs root
/// (scripts/test runs as root); elsewhere the test is skipped.
struct SmallDisk {
    let path: String

    init(megabytes: Int) throws {
        guard getuid() == 0 else { throw XCTSkip("mounting a tmpfs needs root") }
        path = NSTemporaryDirectory() + "replica-small-disk-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        guard Self.run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m,mode=0700", "tmpfs", path]) else {
            try? FileManager.default.removeItem(atPath: path)
            throw XCTSkip("mount -t tmpfs failed: this machine does not let the tests mount")
        }
    }

    func remove() {
        _ = Self.run("/bin/umount", ["-l", path])
        try? FileManager.default.removeItem(atPath: path)
    }

    private static func run(_ program: String, _ arguments: [String]) -> Bool {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }
}
