import Foundation
import ReplicaProtocol
import ReplicaWorker

// The reconstruction worker's executable. The gateway starts it and speaks the worker protocol over its
// stdin and stdout (protocol/worker-protocol.md); its log goes to stderr.

let usage = """
    USAGE: replica-worker [--version | --help]

    A reconstruction worker process. The gateway (replica-link) starts and supervises its workers;
    it is not meant to be run by hand. Without arguments it speaks the worker protocol on stdin and
    stdout and logs to stderr.

    """

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "--version":
    FileHandle.standardOutput.write(Data("replica-worker \(APIVersion.current)\n".utf8))
case "--help", "-h":
    FileHandle.standardOutput.write(Data(usage.utf8))
case nil:
    // A gateway that went away shows as a failed write and the end of stdin, not as a fatal signal.
    signal(SIGPIPE, SIG_IGN)
    exit(WorkerLoop(input: STDIN_FILENO, output: STDOUT_FILENO).run())
case let other?:
    FileHandle.standardError.write(Data("replica-worker: unknown argument '\(other)'\n\n\(usage)".utf8))
    exit(64)  // EX_USAGE
}
