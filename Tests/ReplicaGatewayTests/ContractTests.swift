import Foundation
import XCTest
@testable import ReplicaGateway

/// The routes the gateway serves must all be in `protocol/openapi.yaml`, with the same methods.
final class ContractTests: XCTestCase {
    static var contractPath: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("protocol/openapi.yaml").path
    }

    /// Method and path of every operation, read from the document's `paths` section by its indentation.
    static func contractOperations() throws -> Set<String> {
        let text = try String(contentsOfFile: contractPath, encoding: .utf8)
        var operations: Set<String> = []
        var currentPath: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if let match = line.wholeMatch(of: #/  (/\S*):/#) {
                currentPath = String(match.1).replacing(#/\{(\w+)\}/#) { ":" + $0.1 }
            } else if let path = currentPath, let match = line.wholeMatch(of: #/    (get|post|put|patch|delete):/#) {
                operations.insert(match.1.uppercased() + " " + path)
            } else if !line.hasPrefix(" ") && !line.isEmpty {
                currentPath = nil
            }
        }
        return operations
    }

    func testEveryServedRouteIsInTheContract() throws {
        let contract = try ContractTests.contractOperations()
        XCTAssertTrue(contract.contains("GET /api/projects/:id/images/:filename"), "the contract was not read")
        let gateway = try GatewayHarness()
        defer { gateway.stop() }
        let served = try XCTUnwrap(gateway.service.gateway).routes.map { "\($0.method) \($0.pattern)" }
        XCTAssertFalse(served.isEmpty)
        for route in served {
            XCTAssertTrue(contract.contains(route), "\(route) is served but not in protocol/openapi.yaml")
        }
    }
}
