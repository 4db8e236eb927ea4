import Foundation
import ReplicaProtocol

// The reconstruction worker's executable. The gateway will start it with `uv_spawn` and speak the worker
// protocol over its stdin and stdout; until that protocol and its task runner exist, the executable only
// identifies itself, and refuses to run rather than pretend to take tasks.

let usage = """
    USAGE: replica-worker [--version | --help]

    A reconstruction worker process. The gateway (replica-link) starts and supervises its workers;
    it is not meant to be run by hand.

    """

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "--version":
    FileHandle.standardOutput.write(Data("replica-worker \(APIVersion.current)\n".utf8))
case "--help", "-h":
    FileHandle.standardOutput.write(Data(usage.utf8))
default:
    FileHandle.standardError.write(Data(("replica-worker: this build has no task runner yet; "
                                         + "it cannot take tasks\n").utf8))
    exit(69)  // EX_UNAVAILABLE
}
