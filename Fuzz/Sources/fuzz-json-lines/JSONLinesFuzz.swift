import Foundation
import FuzzSupport
import ReplicaProtocol

// What this target reaches: the framing that cuts a worker's or the gateway's pipe into lines (fed once whole and
// once in the pieces the first byte chooses, with a small line limit when bit 7 of it is set), then every line
// decoded as both directions' messages: the "type" dispatch, each payload's fields, JSONValue inputs and outputs,
// and the checks that turn a bad line into a WorkerProtocolError naming the field.

/// The lines a reader cut from a stream, and the error it stopped on.
struct Framed: Equatable {
    var lines: [JSONLine] = []
    var failure: WorkerProtocolError?
}

func frame(_ pieces: [UnsafeRawBufferPointer], maximumLineLength: Int) -> Framed {
    var reader = JSONLineReader(maximumLineLength: maximumLineLength)
    var framed = Framed()
    do {
        for piece in pieces {
            reader.feed(piece)
            while let line = try reader.nextLine() { framed.lines.append(line) }
        }
        try reader.finish()
    } catch let error as WorkerProtocolError {
        framed.failure = error
        do {
            _ = try reader.nextLine()
            preconditionFailure("a failed reader gave another line")
        } catch let repeated as WorkerProtocolError {
            precondition(repeated == error, "a failed reader changed its error: \(error), then \(repeated)")
        } catch {
            preconditionFailure("the reader threw \(error), which is not a WorkerProtocolError")
        }
    } catch {
        preconditionFailure("the reader threw \(error), which is not a WorkerProtocolError")
    }
    return framed
}

/// Lines hold no newline, fit the limit, are numbered from 1 and lie one after another in the stream.
func checkLines(_ framed: Framed, maximumLineLength: Int) {
    var offset = 0
    for (index, line) in framed.lines.enumerated() {
        precondition(!line.bytes.contains(UInt8(ascii: "\n")), "a line holds a newline")
        precondition(line.bytes.count <= maximumLineLength, "a line of \(line.bytes.count) bytes passed the limit")
        precondition(line.number == index + 1, "line \(index + 1) numbered \(line.number)")
        precondition(line.byteOffset == offset, "line \(line.number) at byte \(line.byteOffset), not \(offset)")
        offset += line.bytes.count + 1
    }
}

/// A line that decodes is either refused by validation when written back, or written as a line that decodes to
/// the same message; a line that does not decode throws a WorkerProtocolError that says where.
func checkDecoding<Message: WorkerProtocolMessage & Equatable>(_ line: JSONLine, as _: Message.Type) {
    let message: Message
    do {
        message = try Message.decode(line)
    } catch let error as WorkerProtocolError {
        precondition(error.lineNumber == line.number && error.byteOffset == line.byteOffset,
                     "an error that lost its place: \(error)")
        return
    } catch {
        preconditionFailure("decoding threw \(error), which is not a WorkerProtocolError")
    }
    guard let written = try? message.encodeLine() else { return }
    precondition(written.last == UInt8(ascii: "\n") && written.dropLast().allSatisfy { $0 != UInt8(ascii: "\n") },
                 "a message written as other than one line")
    guard let again = try? Message.decode(line: Array(written.dropLast())) else {
        preconditionFailure("a message we wrote does not read back: \(String(decoding: written, as: UTF8.self))")
    }
    precondition(again == message, "a message changed on its way through a line: \(message) became \(again)")
}

/// libFuzzer's per-input hook.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard let input = SplitInput(data, size) else { return 0 }
    let limit = input.selector & 0x80 == 0 ? WorkerProtocol.maximumLineLength : 48
    let whole = frame([input.stream], maximumLineLength: limit)
    let cut = frame(input.pieces, maximumLineLength: limit)
    precondition(whole == cut, "the stream framed whole and in \(input.pieces.count) pieces disagree")
    checkLines(whole, maximumLineLength: limit)
    for line in whole.lines {
        checkDecoding(line, as: WorkerMessage.self)
        checkDecoding(line, as: GatewayMessage.self)
    }
    return 0
}

/// The executable's entry point (SwiftPM links `main` to `<module>_main`): hands over to libFuzzer's driver.
@_cdecl("fuzz_json_lines_main")
func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc: argc, argv: argv) { data, size in data.map { fuzz($0, size) } ?? 0 }
}
