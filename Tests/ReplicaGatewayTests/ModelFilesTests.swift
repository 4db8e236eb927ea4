import Foundation
import ReplicaExport
import XCTest
@testable import ReplicaGateway

/// `ModelFiles`: publishing a job's model and installing a conversion only over the GLB it was made from.
final class ModelFilesTests: XCTestCase {
    private var folder = ""
    private var files: ModelFiles { ModelFiles(folder: folder) }

    override func setUpWithError() throws {
        folder = GatewayHarness.temporaryDirectory() + "/Box"
        try FileManager.default.createDirectory(atPath: folder + "/work/export", withIntermediateDirectories: true)
    }

    override func tearDown() {
        try? FileManager.default.removeItem(atPath: (folder as NSString).deletingLastPathComponent)
    }

    private func names(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    private func stage(_ model: ExportModel) throws {
        try Data(GLB.bytes(model)).write(to: URL(fileURLWithPath: folder + "/work/export/model.glb"))
        try Data(USDZ.bytes(model)).write(to: URL(fileURLWithPath: folder + "/work/export/model.usdz"))
    }

    func testPublishingMovesTheModelInPlaceDropsOldConversionsAndCanBeRepeated() throws {
        XCTAssertTrue(try files.publish() == (false, false), "nothing exported, nothing there")
        try stage(ModelDownloadTests.boxModel())
        XCTAssertTrue(try files.publish() == (true, true))
        XCTAssertEqual(names(files.exports), ["model.glb"])
        XCTAssertTrue(try files.install(files.convert(.obj)))
        XCTAssertEqual(names(files.exports), ["model-diffuse-0.png", "model-normal-0.png", "model.glb", "model.mtl",
                                              "model.obj"])
        // Again, as after a gateway killed between the move and the database: nothing is lost.
        XCTAssertTrue(try files.publish() == (true, true))
        XCTAssertEqual(names(files.exports).count, 5)
        // A new model: the conversions of the old one go.
        try stage(ModelDownloadTests.sheetModel(side: 4))
        XCTAssertTrue(try files.publish() == (true, true))
        XCTAssertEqual(names(files.exports), ["model.glb"])
        XCTAssertEqual(names(folder + "/work/export"), [])
    }

    func testAConversionOfAReplacedGLBIsDiscardedAndLeavesNothing() throws {
        try stage(ModelDownloadTests.boxModel())
        _ = try files.publish()
        let conversion = try files.convert(.fbx)
        XCTAssertEqual(names(files.exports).filter { $0.hasPrefix(".convert-") }.count, 1)
        try stage(ModelDownloadTests.sheetModel(side: 4))
        _ = try files.publish()
        XCTAssertFalse(try files.install(conversion))
        XCTAssertEqual(names(files.exports), ["model.glb"])
        XCTAssertTrue(try files.install(files.convert(.fbx)))
        XCTAssertEqual(names(files.exports), ["model.fbx", "model.glb"])
    }
}
