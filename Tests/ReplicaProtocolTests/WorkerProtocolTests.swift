import Foundation
import ReplicaProtocol
import XCTest

/// The worker protocol: every message both ways, the checks on what comes in, the line framer, and the
/// agreement between these types and the schemas in `protocol/worker/`.
final class WorkerProtocolTests: XCTestCase {
    // MARK: Samples: every message, once with every field and once with only the required ones

    private static let awkward = "quote \" backslash \\ newline \n tab \t é 漢 🙂"

    private static let workerSamples: [(full: WorkerMessage, minimal: WorkerMessage)] = [
        (.hello(WorkerHello(workerVersion: "1.0", pid: 4242, capabilities: [.preprocess, .features])),
         .hello(WorkerHello(workerVersion: "1.0", pid: 1, capabilities: [.preprocess]))),
        (.progress(TaskProgress(taskId: "t-1", fraction: 0.25, message: awkward)),
         .progress(TaskProgress(taskId: "t-1", fraction: 1))),
        (.warning(TaskWarning(taskId: "t-1", message: "no EXIF focal length", image: "IMG_0001.JPG")),
         .warning(TaskWarning(taskId: "t-1", message: awkward))),
        (.result(TaskResult(taskId: "t-1", outputs: ["images/IMG_0001.jpg", "images/IMG_0001.json"],
                            data: ["focalPixels": .number(2891.5), "exif": .object(["make": .string("Canon")]),
                                   "flags": .array([.bool(true), .null])])),
         .result(TaskResult(taskId: "t-1", outputs: []))),
        (.failure(TaskFailure(taskId: "t-1", message: "the file is not a photo", retryable: false,
                              image: "notes.txt")),
         .failure(TaskFailure(taskId: "t-1", message: "out of memory", retryable: true))),
        (.heartbeat(WorkerHeartbeat(sequence: 7, taskId: "t-1")),
         .heartbeat(WorkerHeartbeat(sequence: 0, taskId: nil))),
    ]

    private static let gatewaySamples: [(full: GatewayMessage, minimal: GatewayMessage)] = [
        (.welcome(WorkerWelcome()), .welcome(WorkerWelcome())),
        (.reject(WorkerReject(reason: awkward)), .reject(WorkerReject(reason: "no"))),
        (.task(TaskAssignment(taskId: "t-1", kind: .preprocess, workDirectory: "/srv/replica/projects/a b/work",
                              inputs: ["image": .string("IMG_0001.JPG"), "maxDimension": .number(3000)],
                              attempt: 2)),
         .task(TaskAssignment(taskId: "t-1", kind: .preprocess, workDirectory: "/w", inputs: [:]))),
        (.cancel(TaskCancel(taskId: "t-1")), .cancel(TaskCancel(taskId: "t-1"))),
        (.shutdown(WorkerShutdown(reason: "the gateway is stopping")), .shutdown(WorkerShutdown())),
    ]

    /// Every sample as a line, with its type and whether it is the full form.
    private static func sampleLines() throws -> [(type: String, full: Bool, line: [UInt8])] {
        var lines: [(type: String, full: Bool, line: [UInt8])] = []
        for (full, minimal) in workerSamples {
            lines.append((full.type, true, try full.encodeLine()))
            lines.append((minimal.type, false, try minimal.encodeLine()))
        }
        for (full, minimal) in gatewaySamples {
            lines.append((full.type, true, try WorkerProtocol.encodeLine(full)))
            lines.append((minimal.type, false, try WorkerProtocol.encodeLine(minimal)))
        }
        return lines
    }

    // MARK: Round trips and exact bytes

    func testEveryMessageRoundTripsAsOneLine() throws {
        for message in Self.workerSamples.flatMap({ [$0.full, $0.minimal] }) {
            let line = try message.encodeLine()
            assertOneLine(line)
            XCTAssertEqual(try WorkerMessage.decode(line: Array(line.dropLast())), message)
        }
        for message in Self.gatewaySamples.flatMap({ [$0.full, $0.minimal] }) {
            let line = try message.encodeLine()
            assertOneLine(line)
            XCTAssertEqual(try GatewayMessage.decode(line: Array(line.dropLast())), message)
        }
    }

    func testExactLines() throws {
        XCTAssertEqual(text(try WorkerMessage.progress(TaskProgress(taskId: "t-1", fraction: 0.5)).encodeLine()),
                       #"{"fraction":0.5,"taskId":"t-1","type":"progress"}"# + "\n")
        XCTAssertEqual(text(try WorkerMessage.heartbeat(WorkerHeartbeat(sequence: 3, taskId: nil)).encodeLine()),
                       #"{"sequence":3,"taskId":null,"type":"heartbeat"}"# + "\n")
        XCTAssertEqual(text(try WorkerMessage.result(TaskResult(taskId: "t", outputs: ["a/b.ply"])).encodeLine()),
                       #"{"outputs":["a/b.ply"],"taskId":"t","type":"result"}"# + "\n")
        XCTAssertEqual(text(try GatewayMessage.welcome(WorkerWelcome()).encodeLine()),
                       #"{"protocol":1,"type":"welcome"}"# + "\n")
        XCTAssertEqual(text(try GatewayMessage.shutdown(WorkerShutdown()).encodeLine()), #"{"type":"shutdown"}"# + "\n")
    }

    // MARK: What decoding refuses

    /// Lines a gateway must refuse from a worker, with the reason it must give.
    private static let badWorkerLines: [(line: String, reason: String)] = [
        (#"{"type":"bogus"}"#, "unknownType:bogus"),
        (#"{"type":"cancel","taskId":"t"}"#, "unknownType:cancel"),
        (#"{"fraction":0.5,"taskId":"t"}"#, "missingField:type"),
        (#"{"type":7}"#, "wrongType:type"),
        (#"{"type":"progress","taskId":"t"}"#, "missingField:fraction"),
        (#"{"type":"progress","fraction":0.5}"#, "missingField:taskId"),
        (#"{"type":"progress","taskId":"t","fraction":"half"}"#, "wrongType:fraction"),
        (#"{"type":"progress","taskId":"t","fraction":null}"#, "wrongType:fraction"),
        (#"{"type":"progress","taskId":"t","fraction":1.5}"#, "invalidValue:fraction"),
        (#"{"type":"progress","taskId":"t","fraction":-0.01}"#, "invalidValue:fraction"),
        (#"{"type":"progress","taskId":"","fraction":0.5}"#, "invalidValue:taskId"),
        (#"{"type":"progress","taskId":"t","fraction":0.5,"eta":3}"#, "unknownField:eta"),
        (#"{"type":"warning","taskId":"t","message":"m","image":"a/b.jpg"}"#, "invalidValue:image"),
        (#"{"type":"warning","taskId":"t","message":""}"#, "invalidValue:message"),
        (#"{"type":"result","taskId":"t","outputs":["../escape"]}"#, "invalidValue:outputs[0]"),
        (#"{"type":"result","taskId":"t","outputs":["ok","/etc/passwd"]}"#, "invalidValue:outputs[1]"),
        (#"{"type":"result","taskId":"t","outputs":[3]}"#, "wrongType:outputs[0]"),
        (#"{"type":"result","taskId":"t","outputs":[],"data":[1]}"#, "wrongType:data"),
        (#"{"type":"failure","taskId":"t","message":"m"}"#, "missingField:retryable"),
        (#"{"type":"failure","taskId":"t","message":"m","retryable":"yes"}"#, "wrongType:retryable"),
        (#"{"type":"heartbeat","sequence":1}"#, "missingField:taskId"),
        (#"{"type":"heartbeat","sequence":-1,"taskId":null}"#, "invalidValue:sequence"),
        (#"{"type":"hello","protocol":0,"workerVersion":"1","pid":2,"capabilities":["preprocess"]}"#,
         "invalidValue:protocol"),
        (#"{"type":"hello","protocol":1,"workerVersion":"1","pid":2,"capabilities":[]}"#,
         "invalidValue:capabilities"),
        (#"{"type":"hello","protocol":1,"workerVersion":"1","pid":2,"capabilities":["Pre process"]}"#,
         "invalidValue:capabilities[0]"),
        (#"{"type":"hello","protocol":1,"workerVersion":"1","pid":2,"capabilities":["a","a"]}"#,
         "invalidValue:capabilities"),
        (#"{"type":"hello","protocol":1.5,"workerVersion":"1","pid":2,"capabilities":["a"]}"#,
         "wrongType:protocol"),
    ]

    /// Lines a worker must refuse from the gateway.
    private static let badGatewayLines: [(line: String, reason: String)] = [
        (#"{"type":"hello","protocol":1,"workerVersion":"1","pid":2,"capabilities":["a"]}"#, "unknownType:hello"),
        (#"{"type":"task","taskId":"t","kind":"preprocess","workDirectory":"/w","inputs":{},"attempt":0}"#,
         "invalidValue:attempt"),
        (#"{"type":"task","taskId":"t","kind":"preprocess","workDirectory":"w","inputs":{},"attempt":1}"#,
         "invalidValue:workDirectory"),
        (#"{"type":"task","taskId":"t","kind":"preprocess","workDirectory":"/w","inputs":[],"attempt":1}"#,
         "wrongType:inputs"),
        (#"{"type":"task","taskId":"t","kind":"preprocess","workDirectory":"/w","attempt":1}"#,
         "missingField:inputs"),
        (#"{"type":"welcome"}"#, "missingField:protocol"),
        (#"{"type":"reject","reason":""}"#, "invalidValue:reason"),
        (#"{"type":"shutdown","reason":"bye","now":true}"#, "unknownField:now"),
        (#"{"type":"cancel","taskId":"t","taskID":"t"}"#, "unknownField:taskID"),
    ]

    func testDecodingRefusesBadFieldsWithTheReasonAndPlace() {
        for (line, reason) in Self.badWorkerLines {
            assertRefused(reason, lineNumber: 12) { try WorkerMessage.decode(line: Array(line.utf8), lineNumber: 12) }
        }
        for (line, reason) in Self.badGatewayLines {
            assertRefused(reason, lineNumber: 3) { try GatewayMessage.decode(line: Array(line.utf8), lineNumber: 3) }
        }
    }

    func testDecodingRefusesWhatIsNotAJSONObjectLine() {
        let broken: [[UInt8]] = [
            [], Array("not json".utf8), Array("[1]".utf8), Array(#""hello""#.utf8), Array(#"{"type":"#.utf8),
            Array(#"{"type":"shutdown"}"#.utf8) + [0x0D], [0x7B, 0x22, 0xFF, 0xFE, 0x22, 0x3A, 0x31, 0x7D],
        ]
        for line in broken {
            assertRefused("malformed", lineNumber: 9) { try WorkerMessage.decode(line: line, lineNumber: 9) }
        }
    }

    func testEncodingRefusesWhatThePeerWouldRefuse() {
        XCTAssertThrowsError(try WorkerMessage.progress(TaskProgress(taskId: "t", fraction: 1.0001)).encodeLine())
        XCTAssertThrowsError(try WorkerMessage.progress(TaskProgress(taskId: "t", fraction: .nan)).encodeLine())
        XCTAssertThrowsError(try GatewayMessage.task(TaskAssignment(taskId: "t", kind: .preprocess,
                                                                    workDirectory: "/w", inputs: [:], attempt: 0))
            .encodeLine())
        XCTAssertThrowsError(try WorkerMessage.result(TaskResult(taskId: "t", outputs: [],
                                                                 data: ["x": .number(.infinity)])).encodeLine())

        let huge = String(repeating: "x", count: WorkerProtocol.maximumLineLength)
        XCTAssertThrowsError(try WorkerMessage.result(TaskResult(taskId: "t", outputs: [],
                                                                 data: ["x": .string(huge)])).encodeLine()) {
            XCTAssertEqual(($0 as? WorkerProtocolError)?.reason, .lineTooLong(limit: WorkerProtocol.maximumLineLength))
        }
    }

    // MARK: Handshake

    func testHandshakeWelcomesItsOwnVersionAndRejectsOthersNamingBoth() throws {
        let hello = WorkerHello(workerVersion: "1.0", pid: 10, capabilities: [.preprocess])
        XCTAssertEqual(WorkerProtocol.answer(to: hello), .welcome(WorkerWelcome(protocolVersion: 1)))

        var newer = hello
        newer.protocolVersion = WorkerProtocol.version + 1
        guard case .reject(let reject) = WorkerProtocol.answer(to: newer) else {
            return XCTFail("a worker speaking version \(newer.protocolVersion) was not rejected")
        }
        XCTAssertEqual(reject.reason, "replica-worker 1.0 speaks protocol \(WorkerProtocol.version + 1), "
                       + "this replica-link speaks \(WorkerProtocol.version); install matching versions")
        XCTAssertNoThrow(try GatewayMessage.reject(reject).encodeLine())
        XCTAssertEqual(WorkerProtocol.rejectedExitStatus, 78)
    }

    // MARK: The line reader

    private static let stream: [UInt8] = {
        var bytes: [UInt8] = []
        for message in workerSamples.flatMap({ [$0.full, $0.minimal] }) {
            bytes += (try? message.encodeLine()) ?? []
        }
        return bytes
    }()

    private static var expectedLines: [JSONLine] {
        var lines: [JSONLine] = []
        var offset = 0
        for piece in stream.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
            lines.append(JSONLine(bytes: Array(piece), number: lines.count + 1, byteOffset: offset))
            offset += piece.count + 1
        }
        return lines
    }

    func testReaderCutsTheSameLinesAtEveryTwoWaySplit() throws {
        let expected = Self.expectedLines
        XCTAssertEqual(expected.count, 12)
        for split in 0...Self.stream.count {
            var reader = JSONLineReader()
            var lines = try feed(Self.stream[..<split], to: &reader)
            lines += try feed(Self.stream[split...], to: &reader)
            try reader.finish()
            XCTAssertEqual(lines, expected, "split at byte \(split)")
        }
    }

    func testReaderCutsTheSameLinesByteByByteAndInOddChunks() throws {
        var reader = JSONLineReader()
        var lines: [JSONLine] = []
        for byte in Self.stream { lines += try feed([byte], to: &reader) }
        try reader.finish()
        XCTAssertEqual(lines, Self.expectedLines)

        // A fixed sequence of chunk sizes from 1 to 97 bytes, the same on every run.
        var state: UInt32 = 12345
        reader = JSONLineReader()
        lines = []
        var index = 0
        while index < Self.stream.count {
            state = state &* 1_103_515_245 &+ 12345
            let end = min(Self.stream.count, index + 1 + Int(state >> 16) % 97)
            lines += try feed(Self.stream[index..<end], to: &reader)
            index = end
        }
        XCTAssertEqual(lines, Self.expectedLines)
        XCTAssertEqual(try lines.map(WorkerMessage.decode), Self.workerSamples.flatMap { [$0.full, $0.minimal] })
    }

    func testReaderTakesALineOfExactlyTheLimit() throws {
        var reader = JSONLineReader(maximumLineLength: 8)
        let lines = try feed(Array("12345678\n\n".utf8), to: &reader)
        XCTAssertEqual(lines, [JSONLine(bytes: Array("12345678".utf8), number: 1, byteOffset: 0),
                               JSONLine(bytes: [], number: 2, byteOffset: 9)])
    }

    func testReaderRefusesAnOverlongLineWithItsNumberBeforeItsEnd() throws {
        for chunkSize in [1, 4, 100] {
            var reader = JSONLineReader(maximumLineLength: 8)
            let bytes = Array("ok\n123456789".utf8)  // no newline yet: the limit must trip without one
            var lines: [JSONLine] = []
            var caught: WorkerProtocolError?
            do {
                // The line before the bad one still comes out, even from the same chunk.
                for start in stride(from: 0, to: bytes.count, by: chunkSize) {
                    reader.feed(bytes[start..<min(bytes.count, start + chunkSize)])
                    while let line = try reader.nextLine() { lines.append(line) }
                }
            } catch let error as WorkerProtocolError {
                caught = error
            }
            XCTAssertEqual(lines.map(\.bytes), [Array("ok".utf8)], "chunks of \(chunkSize)")
            XCTAssertEqual(caught, WorkerProtocolError(.lineTooLong(limit: 8), lineNumber: 2, byteOffset: 3))
            XCTAssertEqual(caught?.description, "worker protocol: line on line 2 (byte 3) is longer than 8 bytes")

            // The reader stays broken: the peer that sent this is not trusted again.
            reader.feed(Array("\n{}\n".utf8))
            XCTAssertThrowsError(try reader.nextLine())
            XCTAssertThrowsError(try reader.finish())
        }
    }

    func testReaderReportsAStreamThatEndsInsideALine() throws {
        var reader = JSONLineReader()
        XCTAssertEqual(try feed(Array("{}\n{\"ty".utf8), to: &reader).count, 1)
        XCTAssertThrowsError(try reader.finish()) {
            XCTAssertEqual($0 as? WorkerProtocolError,
                           WorkerProtocolError(.truncatedLine, lineNumber: 2, byteOffset: 3))
        }
    }

    // MARK: The schemas in protocol/worker/

    private static let schemaFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("protocol/worker")

    private func loadSchemas() throws -> [String: [String: Any]] {
        let names = try FileManager.default.contentsOfDirectory(atPath: Self.schemaFolder.path)
            .filter { $0.hasSuffix(".schema.json") }
        var schemas: [String: [String: Any]] = [:]
        for name in names {
            let data = try Data(contentsOf: Self.schemaFolder.appendingPathComponent(name))
            let schema = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any], name)
            schemas[String(name.dropLast(".schema.json".count))] = schema
        }
        return schemas
    }

    func testEachMessageHasASchemaListingExactlyItsFields() throws {
        let schemas = try loadSchemas()
        let lines = try Self.sampleLines()
        XCTAssertEqual(Set(schemas.keys), Set(lines.map(\.type)))

        for (type, full, line) in lines {
            let schema = try XCTUnwrap(schemas[type], "no schema for \(type)")
            let object = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
            let keys = Set(object.keys)
            let properties = try XCTUnwrap(schema["properties"] as? [String: Any], type)
            let required = try XCTUnwrap(schema["required"] as? [String], type)

            XCTAssertEqual(schema["$schema"] as? String, "https://json-schema.org/draft/2020-12/schema", type)
            XCTAssertEqual(schema["title"] as? String, type)
            XCTAssertEqual(schema["additionalProperties"] as? Bool, false, type)
            XCTAssertEqual((properties["type"] as? [String: Any])?["const"] as? String, type)
            XCTAssertEqual(Set(required).count, required.count, "\(type): a field is required twice")
            if full {
                XCTAssertEqual(Set(properties.keys), keys, "\(type): schema properties against the encoder's fields")
            } else {
                XCTAssertEqual(Set(required), keys, "\(type): schema's required against the non-optional fields")
            }
        }
    }

    /// Every example line in the document is a message that reads and writes back to the same bytes.
    func testTheDocumentsExamplesAreExactLines() throws {
        let document = Self.schemaFolder.deletingLastPathComponent().appendingPathComponent("worker-protocol.md")
        var inExample = false
        var types: [String] = []
        for line in try String(contentsOf: document, encoding: .utf8).split(separator: "\n") {
            if line.hasPrefix("```") {
                inExample = line == "```json"
                continue
            }
            guard inExample else { continue }
            let bytes = Array(line.utf8)
            if let message = try? WorkerMessage.decode(line: bytes) {
                XCTAssertEqual(text(try message.encodeLine()), line + "\n")
                types.append(message.type)
            } else {
                let message = try GatewayMessage.decode(line: bytes)
                XCTAssertEqual(text(try message.encodeLine()), line + "\n")
                types.append(message.type)
            }
        }
        XCTAssertEqual(Set(types), Set(try loadSchemas().keys), "a message without an example")
    }

    /// The schemas must accept every sample and refuse the bad lines whose type they describe.
    func testSchemasAgreeWithTheSwiftChecks() throws {
        let python = try findPythonWithJSONSchema()
        var cases: [[String: Any]] = []
        for (type, _, line) in try Self.sampleLines() {
            cases.append(["schema": type, "line": text(line.dropLast()), "valid": true])
        }
        let directions = [(Self.badWorkerLines, Set(Self.workerSamples.map(\.full.type))),
                          (Self.badGatewayLines, Set(Self.gatewaySamples.map(\.full.type)))]
        for (badLines, types) in directions {
            for (line, _) in badLines {
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                guard let type = object?["type"] as? String, types.contains(type) else { continue }
                cases.append(["schema": type, "line": line, "valid": false])
            }
        }
        XCTAssertGreaterThan(cases.count, 40)

        let verdicts = try runValidator(python, cases: cases)
        XCTAssertEqual(verdicts.count, cases.count)
        for (verdict, testCase) in zip(verdicts, cases) {
            XCTAssertEqual(verdict, testCase["valid"] as? Bool,
                           "\(testCase["schema"] ?? ""): \(testCase["line"] ?? "")")
        }
    }

    // MARK: Helpers

    private func feed<Bytes: Sequence>(_ bytes: Bytes, to reader: inout JSONLineReader) throws -> [JSONLine]
    where Bytes.Element == UInt8 {
        reader.feed(bytes)
        var lines: [JSONLine] = []
        while let line = try reader.nextLine() { lines.append(line) }
        return lines
    }

    private func text<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        String(decoding: Array(bytes), as: UTF8.self)
    }

    private func assertOneLine(_ line: [UInt8], file: StaticString = #filePath, line number: UInt = #line) {
        XCTAssertEqual(line.last, UInt8(ascii: "\n"), file: file, line: number)
        XCTAssertEqual(line.filter { $0 == UInt8(ascii: "\n") }.count, 1, text(line), file: file, line: number)
    }

    /// `expected` is `case` or `case:field`, as `reasonKey` writes a reason.
    private func assertRefused(_ expected: String, lineNumber: Int, file: StaticString = #filePath,
                               line: UInt = #line, _ decode: () throws -> Any) {
        do {
            let value = try decode()
            XCTFail("accepted, expected \(expected): \(value)", file: file, line: line)
        } catch let error as WorkerProtocolError {
            XCTAssertEqual(reasonKey(error.reason), expected, error.description, file: file, line: line)
            XCTAssertEqual(error.lineNumber, lineNumber, file: file, line: line)
        } catch {
            XCTFail("not a WorkerProtocolError: \(error)", file: file, line: line)
        }
    }

    private func reasonKey(_ reason: WorkerProtocolError.Reason) -> String {
        switch reason {
        case .lineTooLong: return "lineTooLong"
        case .truncatedLine: return "truncatedLine"
        case .malformed: return "malformed"
        case .unknownType(let type): return "unknownType:\(type)"
        case .missingField(let field): return "missingField:\(field)"
        case .unknownField(let field): return "unknownField:\(field)"
        case .wrongType(let field): return "wrongType:\(field)"
        case .invalidValue(let field, _): return "invalidValue:\(field)"
        }
    }

    /// The schemathesis environment's Python if it has `jsonschema`, else `python3` on the PATH; skips without.
    private func findPythonWithJSONSchema() throws -> [String] {
        let root = Self.schemaFolder.deletingLastPathComponent().deletingLastPathComponent()
        let candidates = [[root.appendingPathComponent(".build/schemathesis-venv/bin/python").path],
                          ["/usr/bin/env", "python3"]]
        for candidate in candidates where FileManager.default.isExecutableFile(atPath: candidate[0]) {
            if (try? runProcess(candidate + ["-c", "import jsonschema"], input: Data()))?.status == 0 {
                return candidate
            }
        }
        throw XCTSkip("no Python with the jsonschema package; the schemas were not run against the samples")
    }

    private static let validatorScript = """
        import json, sys
        from jsonschema import Draft202012Validator
        folder, cases = sys.argv[1], json.load(sys.stdin)
        verdicts = []
        for case in cases:
            with open(f"{folder}/{case['schema']}.schema.json") as f:
                schema = json.load(f)
            Draft202012Validator.check_schema(schema)
            verdicts.append(Draft202012Validator(schema).is_valid(json.loads(case["line"])))
        json.dump(verdicts, sys.stdout)
        """

    private func runValidator(_ python: [String], cases: [[String: Any]]) throws -> [Bool] {
        let input = try JSONSerialization.data(withJSONObject: cases)
        let run = try runProcess(python + ["-c", Self.validatorScript, Self.schemaFolder.path], input: input)
        XCTAssertEqual(run.status, 0, text(run.output))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: run.output) as? [Bool], text(run.output))
    }

    private func runProcess(_ arguments: [String], input: Data) throws -> (status: Int32, output: Data) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: arguments[0])
        process.arguments = Array(arguments.dropFirst())
        let stdin = Pipe(), stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stdout
        try process.run()
        stdin.fileHandleForWriting.write(input)
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, output)
    }
}
