import Foundation
import ReplicaProtocol
import XCTest

/// The hand-written JSON must say exactly what `Codable` would: same fields, same values, valid escapes.
final class JSONWriterTests: XCTestCase {
    private let awkward = "quote \" backslash \\ slash / newline \n tab \t bell \u{07} nul \u{0} é 漢 🙂"

    private func sampleProject(_ name: String) -> ProjectDTO {
        ProjectDTO(id: "550e8400-e29b-41d4-a716-446655440000", name: name, imageCount: 42, status: "processing",
                   progress: 0.63, processingStage: "Mesh Generation", hasModel: false, hasGlb: true,
                   modelDetail: "medium", errorMessage: "")
    }

    private func roundTrip<T: JSONBody & Equatable>(_ value: T, file: StaticString = #filePath, line: UInt = #line) {
        let bytes = value.jsonBytes
        XCTAssertEqual(try JSONDecoder().decode(T.self, from: Data(bytes)), value,
                       String(decoding: bytes, as: UTF8.self), file: file, line: line)
    }

    func testBodiesDecodeToWhatWasWritten() {
        roundTrip(HealthResponse())
        roundTrip(AuthResponse(token: "550e8400-e29b-41d4-a716-446655440000"))
        roundTrip(ErrorBody(error: awkward))
        roundTrip(sampleProject(awkward))
        roundTrip(ProjectListResponse(projects: [sampleProject("a"), sampleProject("b")]))
        roundTrip(ProjectListResponse(projects: []))
        roundTrip(StatusResponse(projects: [sampleProject("a").statusItem]))
    }

    func testFieldsMatchWhatJSONEncoderWrites() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let value = StatusResponse(projects: [sampleProject(awkward).statusItem, sampleProject("x").statusItem])
        let ours = try JSONSerialization.jsonObject(with: Data(value.jsonBytes)) as? NSDictionary
        let theirs = try JSONSerialization.jsonObject(with: encoder.encode(value)) as? NSDictionary
        XCTAssertEqual(ours, theirs)
    }

    func testExactBytes() {
        XCTAssertEqual(String(decoding: HealthResponse().jsonBytes, as: UTF8.self), #"{"status":"ok","version":"1.0"}"#)
        XCTAssertEqual(String(decoding: StatusResponse(projects: []).jsonBytes, as: UTF8.self),
                       #"{"pollInterval":10,"projects":[]}"#)
        XCTAssertEqual(String(decoding: ErrorBody(error: "a\"b\u{1}").jsonBytes, as: UTF8.self),
                       #"{"error":"a\"b\u0001"}"#)
    }

    func testPollIntervalFollowsTheProjects() {
        var busy = sampleProject("a").statusItem
        XCTAssertEqual(StatusResponse(projects: [busy]).pollInterval, 2)
        busy.status = "queued"
        XCTAssertEqual(StatusResponse(projects: [busy]).pollInterval, 2)
        busy.status = "completed"
        XCTAssertEqual(StatusResponse(projects: [busy]).pollInterval, 10)
    }
}
