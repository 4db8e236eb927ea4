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
    // OpenBLAS chooses its kernels as it loads; on a CPU it does not recognise the worker starts itself again
    // with the kernels the CPU's flags allow (once: the variable is set from then on).
    if ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil,
       let core = WorkerLoop.betterBLASKernels() {
        setenv("OPENBLAS_CORETYPE", core, 1)
        let arguments = CommandLine.arguments.map { strdup($0) } + [nil]
        // The executable's own path, so the process keeps its name (exec of /proc/self/exe would call it "exe").
        if let path = realpath("/proc/self/exe", nil) { execv(path, arguments) }
        // Still here: the exec failed, and the worker goes on with the slower kernels.
    }
    // The gateway runs a worker per core: BLAS threads of their own would only contend with the others.
    WorkerLoop.useOneComputeThread()
    exit(WorkerLoop(input: STDIN_FILENO, output: STDOUT_FILENO).run())
case let other?:
    FileHandle.standardError.write(Data("replica-worker: unknown argument '\(other)'\n\n\(usage)".utf8))
    exit(64)  // EX_USAGE
}
