import Foundation

// The messages the gateway and its workers exchange over the workers' stdin and stdout, one JSON object per
// line. `protocol/worker-protocol.md` is the contract; `protocol/worker/*.schema.json` has one schema per
// message, and the tests check that these types write exactly the fields those schemas list.

/// The worker protocol's version and limits.
public enum WorkerProtocol {
    /// The version a worker announces in `hello`; a gateway accepts only its own.
    public static let version = 1
    /// The longest line either side may write, in bytes, not counting its `\n` (1 MiB).
    public static let maximumLineLength = 1 << 20
    /// Seconds between two heartbeats of a worker, busy or idle.
    public static let heartbeatInterval = 5
    /// Seconds without any line from a worker after which the gateway kills it.
    public static let silenceTimeout = 30
    /// Seconds a worker has to end its task after `cancel`, or to exit after `shutdown` or the end of stdin.
    public static let stopGracePeriod = 10
    /// The exit status of a worker whose `hello` was rejected (`EX_CONFIG`).
    public static let rejectedExitStatus: Int32 = 78
    /// The exit status of a worker that read a line from the gateway it could not accept (`EX_PROTOCOL`).
    public static let protocolErrorExitStatus: Int32 = 76

    /// The gateway's answer to a worker's `hello`: `welcome` for its own version, else `reject` naming both.
    public static func answer(to hello: WorkerHello) -> GatewayMessage {
        guard hello.protocolVersion == version else {
            return .reject(WorkerReject(reason: "replica-worker \(hello.workerVersion) speaks protocol "
                                        + "\(hello.protocolVersion), this replica-link speaks \(version); "
                                        + "install matching versions"))
        }
        return .welcome(WorkerWelcome(protocolVersion: version))
    }

    /// A message as one protocol line: compact JSON with sorted keys, then `\n`.
    public static func encodeLine<Message: WorkerProtocolMessage>(_ message: Message) throws -> [UInt8] {
        try message.encodeLine()
    }
}

// MARK: - Identifiers

/// The gateway's name for one task; 1 to 128 characters, unique across the data directory.
public struct TaskID: RawRepresentable, Codable, Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible {
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }

    public var description: String { rawValue }
}

/// What a task does: a lowercase word such as `preprocess`, 1 to 64 of `a`–`z`, `0`–`9` and `-`,
/// starting with a letter.
public struct TaskKind: RawRepresentable, Codable, Hashable, Sendable, ExpressibleByStringLiteral,
    CustomStringConvertible {
    public var rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { rawValue = value }

    public var description: String { rawValue }

    /// One image: decode, orientation, EXIF focal length, working-resolution copy.
    public static let preprocess: TaskKind = "preprocess"
    /// One image: SIFT keypoints and descriptors of its working copy.
    public static let features: TaskKind = "features"
    /// Image retrieval over every photo's features: the pairs a large unordered set is matched in.
    public static let retrieve: TaskKind = "retrieve"
    /// A block of image pairs: descriptor matching and geometric verification.
    public static let match: TaskKind = "match"
    /// Incremental structure from motion over every verified pair: poses, intrinsics and sparse points.
    public static let map: TaskKind = "map"
    /// One image: its depth and normal map by multi-view stereo against the neighbours the sparse model picks.
    public static let depth: TaskKind = "depth"
    /// Every depth map: fused into one oriented, coloured point cloud, masked to the object when asked.
    public static let fuse: TaskKind = "fuse"
    /// The point cloud: a closed surface, cleaned, decimated to the detail level's polygons, triangles or quads.
    public static let mesh: TaskKind = "mesh"
    /// The mesh: a UV atlas from the photos that see each face, and the detail level's maps baked onto it.
    public static let texture: TaskKind = "texture"
    /// The textured mesh: the native USDZ and the GLB, in metres with +Y up.
    public static let export: TaskKind = "export"
}

// MARK: - Free-form JSON

/// Any JSON value, for a task's kind-specific `inputs` and a result's `data`.
///
/// Numbers are kept as `Double`, so integers are exact up to 2^53.
public enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let flag = try? container.decode(Bool.self) {
            self = .bool(flag)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let text = try? container.decode(String.self) {
            self = .string(text)
        } else if let items = try? container.decode([JSONValue].self) {
            self = .array(items)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let flag): try container.encode(flag)
        case .number(let number): try container.encode(number)
        case .string(let text): try container.encode(text)
        case .array(let items): try container.encode(items)
        case .object(let fields): try container.encode(fields)
        }
    }
}

// MARK: - Errors

/// A line that breaks the protocol, with where it was read.
public struct WorkerProtocolError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        /// No `\n` within `limit` bytes.
        case lineTooLong(limit: Int)
        /// The input ended in the middle of a line.
        case truncatedLine
        /// Not JSON, not UTF-8, not an object, or ended with a carriage return.
        case malformed(String)
        /// A `type` this side does not know in this direction.
        case unknownType(String)
        case missingField(String)
        case unknownField(String)
        case wrongType(field: String)
        /// The right type, but outside what the protocol allows.
        case invalidValue(field: String, problem: String)
    }

    public var reason: Reason
    /// 1-based number of the line in its stream, when known.
    public var lineNumber: Int?
    /// Offset in the stream of the line's first byte, when known.
    public var byteOffset: Int?

    public init(_ reason: Reason, lineNumber: Int? = nil, byteOffset: Int? = nil) {
        self.reason = reason
        self.lineNumber = lineNumber
        self.byteOffset = byteOffset
    }

    public var description: String {
        var place = ""
        if let lineNumber { place += " on line \(lineNumber)" }
        if let byteOffset { place += " (byte \(byteOffset))" }
        switch reason {
        case .lineTooLong(let limit): return "worker protocol: line\(place) is longer than \(limit) bytes"
        case .truncatedLine: return "worker protocol: input ended in the middle of line\(place)"
        case .malformed(let why): return "worker protocol: malformed line\(place): \(why)"
        case .unknownType(let type): return "worker protocol: unknown message type \"\(type)\"\(place)"
        case .missingField(let field): return "worker protocol: missing field \"\(field)\"\(place)"
        case .unknownField(let field): return "worker protocol: unknown field \"\(field)\"\(place)"
        case .wrongType(let field): return "worker protocol: field \"\(field)\" has the wrong type\(place)"
        case .invalidValue(let field, let problem):
            return "worker protocol: field \"\(field)\"\(place) \(problem)"
        }
    }

    func located(lineNumber: Int?, byteOffset: Int?) -> WorkerProtocolError {
        WorkerProtocolError(reason, lineNumber: self.lineNumber ?? lineNumber,
                            byteOffset: self.byteOffset ?? byteOffset)
    }
}

// MARK: - Worker → gateway

/// The first line a worker writes: who it is and which task kinds it runs.
public struct WorkerHello: Codable, Equatable, Sendable {
    public var protocolVersion: Int
    public var workerVersion: String
    public var pid: Int
    public var capabilities: [TaskKind]

    public init(protocolVersion: Int = WorkerProtocol.version, workerVersion: String, pid: Int,
                capabilities: [TaskKind]) {
        self.protocolVersion = protocolVersion
        self.workerVersion = workerVersion
        self.pid = pid
        self.capabilities = capabilities
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case protocolVersion = "protocol", workerVersion, pid, capabilities
    }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        protocolVersion = try container.decodeInteger(forKey: .protocolVersion)
        workerVersion = try container.decode(String.self, forKey: .workerVersion)
        pid = try container.decodeInteger(forKey: .pid)
        capabilities = try container.decode([TaskKind].self, forKey: .capabilities)
    }
}

/// How far the current task has come.
public struct TaskProgress: Codable, Equatable, Sendable {
    public var taskId: TaskID
    /// Fraction of the task done, 0 to 1.
    public var fraction: Double
    public var message: String?

    public init(taskId: TaskID, fraction: Double, message: String? = nil) {
        self.taskId = taskId
        self.fraction = fraction
        self.message = message
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case taskId, fraction, message }
}

/// Something a person should know about the current task that does not stop it.
public struct TaskWarning: Codable, Equatable, Sendable {
    public var taskId: TaskID
    public var message: String
    /// The image it concerns: a file name in the project's `images/`, no folder.
    public var image: String?

    public init(taskId: TaskID, message: String, image: String? = nil) {
        self.taskId = taskId
        self.message = message
        self.image = image
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case taskId, message, image }
}

/// The task is done and its outputs are in place.
public struct TaskResult: Codable, Equatable, Sendable {
    public var taskId: TaskID
    /// What the task wrote, relative to the project's `work/`.
    public var outputs: [String]
    /// Small facts for the scheduler, such as an image's focal-length prior.
    public var data: [String: JSONValue]?

    public init(taskId: TaskID, outputs: [String], data: [String: JSONValue]? = nil) {
        self.taskId = taskId
        self.outputs = outputs
        self.data = data
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case taskId, outputs, data }
}

/// The task ended without its outputs.
public struct TaskFailure: Codable, Equatable, Sendable {
    public var taskId: TaskID
    /// What went wrong, in words a person understands.
    public var message: String
    /// Whether another attempt could succeed (a lost file system, memory), as opposed to bad input.
    public var retryable: Bool
    public var image: String?

    public init(taskId: TaskID, message: String, retryable: Bool, image: String? = nil) {
        self.taskId = taskId
        self.message = message
        self.retryable = retryable
        self.image = image
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case taskId, message, retryable, image }
}

/// Proof of life; `taskId` is written as `null` while the worker is idle.
public struct WorkerHeartbeat: Codable, Equatable, Sendable {
    /// 0 for the first heartbeat after `welcome`, then one more each time.
    public var sequence: Int
    public var taskId: TaskID?

    public init(sequence: Int, taskId: TaskID?) {
        self.sequence = sequence
        self.taskId = taskId
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case sequence, taskId }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        sequence = try container.decodeInteger(forKey: .sequence)
        taskId = try container.decode(TaskID?.self, forKey: .taskId)
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sequence, forKey: .sequence)
        try container.encode(taskId, forKey: .taskId)
    }
}

// MARK: - Gateway → worker

/// The gateway accepts the worker's version; tasks may follow.
public struct WorkerWelcome: Codable, Equatable, Sendable {
    public var protocolVersion: Int

    public init(protocolVersion: Int = WorkerProtocol.version) { self.protocolVersion = protocolVersion }

    enum CodingKeys: String, CodingKey, CaseIterable { case protocolVersion = "protocol" }

    public init(from decoder: Decoder) throws {
        protocolVersion = try decoder.container(keyedBy: CodingKeys.self).decodeInteger(forKey: .protocolVersion)
    }
}

/// The gateway refuses the worker; the worker exits with `WorkerProtocol.rejectedExitStatus`.
public struct WorkerReject: Codable, Equatable, Sendable {
    public var reason: String

    public init(reason: String) { self.reason = reason }

    enum CodingKeys: String, CodingKey, CaseIterable { case reason }
}

/// One task for the worker to run.
public struct TaskAssignment: Codable, Equatable, Sendable {
    public var taskId: TaskID
    public var kind: TaskKind
    /// Absolute path of the project's `work/` folder.
    public var workDirectory: String
    /// The kind's own fields.
    public var inputs: [String: JSONValue]
    /// 1 for the first try, one more for each retry.
    public var attempt: Int

    public init(taskId: TaskID, kind: TaskKind, workDirectory: String, inputs: [String: JSONValue],
                attempt: Int = 1) {
        self.taskId = taskId
        self.kind = kind
        self.workDirectory = workDirectory
        self.inputs = inputs
        self.attempt = attempt
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case taskId, kind, workDirectory, inputs, attempt }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        taskId = try container.decode(TaskID.self, forKey: .taskId)
        kind = try container.decode(TaskKind.self, forKey: .kind)
        workDirectory = try container.decode(String.self, forKey: .workDirectory)
        inputs = try container.decode([String: JSONValue].self, forKey: .inputs)
        attempt = try container.decodeInteger(forKey: .attempt)
    }
}

/// Stop the named task as soon as possible.
public struct TaskCancel: Codable, Equatable, Sendable {
    public var taskId: TaskID

    public init(taskId: TaskID) { self.taskId = taskId }

    enum CodingKeys: String, CodingKey, CaseIterable { case taskId }
}

/// Stop whatever runs and exit with status 0.
public struct WorkerShutdown: Codable, Equatable, Sendable {
    /// Why, for the worker's log.
    public var reason: String?

    public init(reason: String? = nil) { self.reason = reason }

    enum CodingKeys: String, CodingKey, CaseIterable { case reason }
}

// MARK: - The two directions

/// A line from a worker to the gateway.
public enum WorkerMessage: Equatable, Sendable {
    case hello(WorkerHello)
    case progress(TaskProgress)
    case warning(TaskWarning)
    case result(TaskResult)
    case failure(TaskFailure)
    case heartbeat(WorkerHeartbeat)

    /// The value of the line's `"type"`.
    public var type: String {
        switch self {
        case .hello: return "hello"
        case .progress: return "progress"
        case .warning: return "warning"
        case .result: return "result"
        case .failure: return "failure"
        case .heartbeat: return "heartbeat"
        }
    }

    var payload: any MessagePayload {
        switch self {
        case .hello(let body): return body
        case .progress(let body): return body
        case .warning(let body): return body
        case .result(let body): return body
        case .failure(let body): return body
        case .heartbeat(let body): return body
        }
    }
}

/// A line from the gateway to a worker.
public enum GatewayMessage: Equatable, Sendable {
    case welcome(WorkerWelcome)
    case reject(WorkerReject)
    case task(TaskAssignment)
    case cancel(TaskCancel)
    case shutdown(WorkerShutdown)

    public var type: String {
        switch self {
        case .welcome: return "welcome"
        case .reject: return "reject"
        case .task: return "task"
        case .cancel: return "cancel"
        case .shutdown: return "shutdown"
        }
    }

    var payload: any MessagePayload {
        switch self {
        case .welcome(let body): return body
        case .reject(let body): return body
        case .task(let body): return body
        case .cancel(let body): return body
        case .shutdown(let body): return body
        }
    }
}

extension WorkerMessage: WorkerProtocolMessage {
    public init(from decoder: Decoder) throws {
        switch try readType(from: decoder) {
        case "hello": self = .hello(try decodePayload(from: decoder))
        case "progress": self = .progress(try decodePayload(from: decoder))
        case "warning": self = .warning(try decodePayload(from: decoder))
        case "result": self = .result(try decodePayload(from: decoder))
        case "failure": self = .failure(try decodePayload(from: decoder))
        case "heartbeat": self = .heartbeat(try decodePayload(from: decoder))
        case let other: throw WorkerProtocolError(.unknownType(other))
        }
    }

    public func encode(to encoder: Encoder) throws { try encodeMessage(type: type, payload: payload, to: encoder) }

    public func validate() throws { try payload.validate() }
}

extension GatewayMessage: WorkerProtocolMessage {
    public init(from decoder: Decoder) throws {
        switch try readType(from: decoder) {
        case "welcome": self = .welcome(try decodePayload(from: decoder))
        case "reject": self = .reject(try decodePayload(from: decoder))
        case "task": self = .task(try decodePayload(from: decoder))
        case "cancel": self = .cancel(try decodePayload(from: decoder))
        case "shutdown": self = .shutdown(try decodePayload(from: decoder))
        case let other: throw WorkerProtocolError(.unknownType(other))
        }
    }

    public func encode(to encoder: Encoder) throws { try encodeMessage(type: type, payload: payload, to: encoder) }

    public func validate() throws { try payload.validate() }
}

/// `WorkerMessage` or `GatewayMessage`: a flat JSON object, its `"type"` beside the message's own fields.
public protocol WorkerProtocolMessage: Codable, Sendable {
    /// The value of the line's `"type"`.
    var type: String { get }
    /// Throws `WorkerProtocolError.Reason.invalidValue` for a field outside its range.
    func validate() throws
}

extension WorkerProtocolMessage {
    /// The message as one line: validated, compact JSON with sorted keys, then `\n`.
    public func encodeLine() throws -> [UInt8] {
        try validate()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var line: [UInt8]
        do {
            line = Array(try encoder.encode(self))
        } catch {
            throw WorkerProtocolError(.invalidValue(field: type, problem: "cannot be written as JSON: \(error)"))
        }
        guard line.count <= WorkerProtocol.maximumLineLength else {
            throw WorkerProtocolError(.lineTooLong(limit: WorkerProtocol.maximumLineLength))
        }
        line.append(UInt8(ascii: "\n"))
        return line
    }

    /// Reads one line, without its `\n`; every error is a `WorkerProtocolError` carrying the given place.
    public static func decode(line: [UInt8], lineNumber: Int? = nil, byteOffset: Int? = nil) throws -> Self {
        do {
            if line.last == UInt8(ascii: "\r") { throw WorkerProtocolError(.malformed("ends with a carriage return")) }
            return try JSONDecoder().decode(Self.self, from: Data(line))
        } catch let error as WorkerProtocolError {
            throw error.located(lineNumber: lineNumber, byteOffset: byteOffset)
        } catch let error as DecodingError {
            throw WorkerProtocolError(Self.reason(for: error), lineNumber: lineNumber, byteOffset: byteOffset)
        }
    }

    /// Reads a line as `JSONLineReader` returns it.
    public static func decode(_ line: JSONLine) throws -> Self {
        try decode(line: line.bytes, lineNumber: line.number, byteOffset: line.byteOffset)
    }

    private static func reason(for error: DecodingError) -> WorkerProtocolError.Reason {
        switch error {
        case .keyNotFound(let key, let context):
            return .missingField(fieldPath(context.codingPath + [key]))
        case .typeMismatch(_, let context) where context.codingPath.isEmpty:
            return .malformed("not a JSON object")
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            return .wrongType(field: fieldPath(context.codingPath))
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return .malformed("not valid JSON in UTF-8")
        case .dataCorrupted(let context):
            return .invalidValue(field: fieldPath(context.codingPath), problem: context.debugDescription)
        @unknown default:
            return .malformed("\(error)")
        }
    }
}

/// `outputs[2]`, `inputs.image`: a field as the protocol document names it.
private func fieldPath(_ path: [CodingKey]) -> String {
    var text = ""
    for key in path {
        if let index = key.intValue {
            text += "[\(index)]"
        } else {
            text += text.isEmpty ? key.stringValue : ".\(key.stringValue)"
        }
    }
    return text
}

/// The message's `"type"` and its own fields, side by side in one object.
private func encodeMessage(type: String, payload: any MessagePayload, to encoder: Encoder) throws {
    var container = encoder.container(keyedBy: AnyKey.self)
    try container.encode(type, forKey: AnyKey("type"))
    try payload.encode(to: encoder)
}

extension KeyedDecodingContainer {
    /// An integer field. `JSONDecoder` reports `1.5` in an `Int` as invalid JSON without naming the field, so
    /// the messages read their integers as numbers and check them here, to say which field is wrong.
    func decodeInteger(forKey key: Key) throws -> Int {
        guard let integer = Int(exactly: try decode(Double.self, forKey: key)) else {
            throw DecodingError.typeMismatch(Int.self, DecodingError.Context(codingPath: codingPath + [key],
                                                                             debugDescription: "not an integer"))
        }
        return integer
    }
}

private func readType(from decoder: Decoder) throws -> String {
    try decoder.container(keyedBy: AnyKey.self).decode(String.self, forKey: AnyKey("type"))
}

/// Decodes a message's fields, refusing any the message does not have, then checks their ranges.
private func decodePayload<Payload: MessagePayload>(from decoder: Decoder) throws -> Payload {
    let present = try decoder.container(keyedBy: AnyKey.self).allKeys.map(\.stringValue)
    if let unknown = present.sorted().first(where: { $0 != "type" && !Payload.fieldNames.contains($0) }) {
        throw WorkerProtocolError(.unknownField(unknown))
    }
    let payload = try Payload(from: decoder)
    try payload.validate()
    return payload
}

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }

    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}

// MARK: - Ranges

/// One message's fields: their JSON names and the ranges `validate()` enforces, the same as its schema's.
protocol MessagePayload: Codable, Sendable {
    static var fieldNames: Set<String> { get }
    func validate() throws
}

extension WorkerHello: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws {
        try Check.atLeast(protocolVersion, 1, "protocol")
        try Check.nonEmpty(workerVersion, "workerVersion")
        try Check.atLeast(pid, 1, "pid")
        guard !capabilities.isEmpty else { throw Check.invalid("capabilities", "must name at least one kind") }
        guard Set(capabilities).count == capabilities.count else {
            throw Check.invalid("capabilities", "must not name a kind twice")
        }
        for (index, kind) in capabilities.enumerated() { try Check.kind(kind, "capabilities[\(index)]") }
    }
}

extension TaskProgress: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws {
        try Check.taskID(taskId)
        guard (0...1).contains(fraction) else { throw Check.invalid("fraction", "must be between 0 and 1") }
    }
}

extension TaskWarning: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws {
        try Check.taskID(taskId)
        try Check.nonEmpty(message, "message")
        try Check.fileName(image, "image")
    }
}

extension TaskResult: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws {
        try Check.taskID(taskId)
        for (index, path) in outputs.enumerated() { try Check.relativePath(path, "outputs[\(index)]") }
    }
}

extension TaskFailure: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws {
        try Check.taskID(taskId)
        try Check.nonEmpty(message, "message")
        try Check.fileName(image, "image")
    }
}

extension WorkerHeartbeat: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws {
        try Check.atLeast(sequence, 0, "sequence")
        if let taskId { try Check.taskID(taskId) }
    }
}

extension WorkerWelcome: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws { try Check.atLeast(protocolVersion, 1, "protocol") }
}

extension WorkerReject: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws { try Check.nonEmpty(reason, "reason") }
}

extension TaskAssignment: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws {
        try Check.taskID(taskId)
        try Check.kind(kind, "kind")
        guard workDirectory.hasPrefix("/") else { throw Check.invalid("workDirectory", "must be an absolute path") }
        try Check.atLeast(attempt, 1, "attempt")
    }
}

extension TaskCancel: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws { try Check.taskID(taskId) }
}

extension WorkerShutdown: MessagePayload {
    static var fieldNames: Set<String> { Set(CodingKeys.allCases.map(\.stringValue)) }

    func validate() throws {}
}

/// The range checks the schemas state as `minimum`, `minLength`, `pattern` and `not`.
private enum Check {
    static func invalid(_ field: String, _ problem: String) -> WorkerProtocolError {
        WorkerProtocolError(.invalidValue(field: field, problem: problem))
    }

    static func atLeast(_ value: Int, _ minimum: Int, _ field: String) throws {
        guard value >= minimum else { throw invalid(field, "must be at least \(minimum)") }
    }

    static func nonEmpty(_ text: String, _ field: String) throws {
        guard !text.isEmpty else { throw invalid(field, "must not be empty") }
    }

    /// Counted in Unicode scalars, as JSON Schema's `maxLength` counts.
    static func taskID(_ id: TaskID, _ field: String = "taskId") throws {
        guard (1...128).contains(id.rawValue.unicodeScalars.count) else {
            throw invalid(field, "must be 1 to 128 characters")
        }
    }

    static func kind(_ kind: TaskKind, _ field: String) throws {
        let bytes = Array(kind.rawValue.utf8)
        let isLetter = { (byte: UInt8) in (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) }
        let isDigit = { (byte: UInt8) in (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) }
        guard (1...64).contains(bytes.count), isLetter(bytes[0]),
              bytes.allSatisfy({ isLetter($0) || isDigit($0) || $0 == UInt8(ascii: "-") }) else {
            throw invalid(field, "must be 1 to 64 of a-z, 0-9 and '-', starting with a letter")
        }
    }

    static func fileName(_ name: String?, _ field: String) throws {
        guard let name else { return }
        guard !name.isEmpty, !name.contains("/"), name != ".", name != ".." else {
            throw invalid(field, "must be a file name without a folder")
        }
    }

    /// Relative, and never climbing out of `work/`.
    static func relativePath(_ path: String, _ field: String) throws {
        guard !path.isEmpty, !path.hasPrefix("/"),
              !path.split(separator: "/", omittingEmptySubsequences: false).contains("..") else {
            throw invalid(field, "must be a path inside work/, relative, without '..'")
        }
    }
}

// MARK: - Framing

/// One line of a protocol stream, without its `\n`.
public struct JSONLine: Equatable, Sendable {
    public var bytes: [UInt8]
    /// 1-based.
    public var number: Int
    /// Offset in the stream of the line's first byte.
    public var byteOffset: Int

    public init(bytes: [UInt8], number: Int, byteOffset: Int) {
        self.bytes = bytes
        self.number = number
        self.byteOffset = byteOffset
    }
}

/// Cuts a byte stream, fed in any chunking, into `\n`-terminated lines of at most `maximumLineLength` bytes.
///
/// After each `feed`, call `nextLine()` until it returns nil; at the end of the stream, `finish()`. An error is
/// final: the reader throws it again on every later call, since the peer that sent it is treated as broken.
public struct JSONLineReader {
    public let maximumLineLength: Int
    private var buffer: [UInt8] = []
    /// Index in `buffer` of the current line's first byte.
    private var start = 0
    /// Index in `buffer` before which the current line has no `\n`, so no byte is searched twice.
    private var searched = 0
    private var lineNumber = 1
    private var lineOffset = 0
    private var failure: WorkerProtocolError?

    public init(maximumLineLength: Int = WorkerProtocol.maximumLineLength) {
        self.maximumLineLength = maximumLineLength
    }

    /// Adds bytes read from the stream.
    public mutating func feed<Bytes: Sequence>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        if start > 0 {
            buffer.removeSubrange(0..<start)
            searched -= start
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next complete line, or nil until more bytes arrive.
    public mutating func nextLine() throws -> JSONLine? {
        if let failure { throw failure }
        guard let end = buffer[searched...].firstIndex(of: UInt8(ascii: "\n")) else {
            searched = buffer.count
            if buffer.count - start > maximumLineLength { try fail(.lineTooLong(limit: maximumLineLength)) }
            return nil
        }
        if end - start > maximumLineLength { try fail(.lineTooLong(limit: maximumLineLength)) }
        let line = JSONLine(bytes: Array(buffer[start..<end]), number: lineNumber, byteOffset: lineOffset)
        lineNumber += 1
        lineOffset += end - start + 1
        start = end + 1
        searched = start
        return line
    }

    /// Call at the end of the stream: throws if it ended inside a line.
    public mutating func finish() throws {
        if let failure { throw failure }
        if start < buffer.count { try fail(.truncatedLine) }
    }

    private mutating func fail(_ reason: WorkerProtocolError.Reason) throws -> Never {
        let error = WorkerProtocolError(reason, lineNumber: lineNumber, byteOffset: lineOffset)
        failure = error
        throw error
    }
}
