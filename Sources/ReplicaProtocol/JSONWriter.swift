/// Writes JSON straight into bytes, for the bodies the gateway sends on every poll; Foundation's `JSONEncoder`
/// costs several times more for the same output.
///
/// Keys are written in the order given; the API's bodies give them sorted, as `JSONEncoder` with
/// `.sortedKeys` would, so both produce the same bytes.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    /// An object whose fields `body` writes.
    public mutating func object(_ body: (inout JSONWriter) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
        body(&self)
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    /// An array with one element per item, each written by `element`.
    public mutating func array<S: Sequence>(_ items: S, _ element: (inout JSONWriter, S.Element) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
        for item in items { element(&self, item) }
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A field's name; its value follows with one of the value calls.
    public mutating func key(_ name: String) {
        separate()
        writeString(name)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func value(_ text: String) {
        separate()
        writeString(text)
        needsComma = true
    }

    public mutating func value(_ number: Int) {
        separate()
        bytes += String(number).utf8
        needsComma = true
    }

    /// A finite number in Swift's shortest round-trip form ("0.63", "1.0"); JSON has no NaN or infinity, so
    /// those are written as 0.
    public mutating func value(_ number: Double) {
        separate()
        bytes += (number.isFinite ? String(number) : "0").utf8
        needsComma = true
    }

    public mutating func value(_ flag: Bool) {
        separate()
        bytes += (flag ? "true" : "false").utf8
        needsComma = true
    }

    public mutating func field(_ name: String, _ text: String) { key(name); value(text) }
    public mutating func field(_ name: String, _ number: Int) { key(name); value(number) }
    public mutating func field(_ name: String, _ number: Double) { key(name); value(number) }
    public mutating func field(_ name: String, _ flag: Bool) { key(name); value(flag) }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    private mutating func writeString(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes += #"\""#.utf8
            case UInt8(ascii: "\\"): bytes += #"\\"#.utf8
            case 0x0A: bytes += #"\n"#.utf8
            case 0x0D: bytes += #"\r"#.utf8
            case 0x09: bytes += #"\t"#.utf8
            case 0x00..<0x20:
                bytes += #"\u00"#.utf8
                bytes.append(JSONWriter.hexDigits[Int(byte >> 4)])
                bytes.append(JSONWriter.hexDigits[Int(byte & 0x0F)])
            default:
                bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)
}

/// A body that writes itself with `JSONWriter`; `Codable` stays for decoding and for tests.
public protocol JSONBody: Codable {
    func write(to writer: inout JSONWriter)
}

extension JSONBody {
    /// The body as JSON bytes.
    public var jsonBytes: [UInt8] {
        var writer = JSONWriter()
        write(to: &writer)
        return writer.bytes
    }
}

extension HealthResponse: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object { $0.field("status", status); $0.field("version", version) }
    }
}

extension AuthResponse: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object { $0.field("token", token) }
    }
}

extension ErrorBody: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object { $0.field("error", error) }
    }
}

extension ProjectDTO: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object {
            $0.field("errorMessage", errorMessage)
            $0.field("hasGlb", hasGlb)
            $0.field("hasModel", hasModel)
            $0.field("id", id)
            $0.field("imageCount", imageCount)
            $0.field("modelDetail", modelDetail)
            $0.field("name", name)
            $0.field("processingStage", processingStage)
            $0.field("progress", progress)
            $0.field("status", status)
        }
    }
}

extension ProjectListResponse: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object {
            $0.key("projects")
            $0.array(projects) { writer, project in project.write(to: &writer) }
        }
    }
}

extension StatusProjectDTO: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object {
            $0.field("errorMessage", errorMessage)
            $0.field("hasGlb", hasGlb)
            $0.field("id", id)
            $0.field("processingStage", processingStage)
            $0.field("progress", progress)
            $0.field("status", status)
        }
    }
}

extension StatusResponse: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object {
            $0.field("pollInterval", pollInterval)
            $0.key("projects")
            $0.array(projects) { writer, project in project.write(to: &writer) }
        }
    }
}

extension CreateProjectResponse: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object {
            $0.field("id", id)
            $0.field("imageCount", imageCount)
            $0.field("name", name)
            $0.field("status", status)
        }
    }
}

extension RenameProjectResponse: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object { $0.field("id", id); $0.field("name", name) }
    }
}

extension DeleteProjectResponse: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object { $0.field("deleted", deleted); $0.field("id", id) }
    }
}

extension AddImagesResponse: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object { $0.field("addedCount", addedCount); $0.field("imageCount", imageCount) }
    }
}

extension ImageListResponse: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object {
            $0.key("images")
            $0.array(images) { writer, image in
                writer.object { $0.field("fileName", image.fileName); $0.field("size", Int(image.size)) }
            }
        }
    }
}

extension ProjectStatusChange: JSONBody {
    public func write(to writer: inout JSONWriter) {
        writer.object { $0.field("id", id); $0.field("status", status) }
    }
}
