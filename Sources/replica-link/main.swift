import Foundation
import ReplicaGateway

// The gateway's command line: parse, then serve or manage the PIN. Console output (the address and PIN a
// person reads at start-up) goes to stdout; logs go through the logger to stderr and the log file.

func printConsole(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}

func fail(_ message: String, status: Int32) -> Never {
    FileHandle.standardError.write(Data(("replica-link: " + message + "\n").utf8))
    exit(status)
}

func serve(_ configuration: GatewayConfiguration) {
    do {
        let service = try GatewayService(configuration: configuration)
        try service.start(handleSignals: true)
        let shownHost = configuration.host == "0.0.0.0" || configuration.host == "::" ? "localhost" : configuration.host
        let scheme = configuration.tlsCertificatePath == nil ? "http" : "https"
        let urlHost = shownHost.contains(":") ? "[\(shownHost)]" : shownHost
        printConsole("Replica Link is serving on \(scheme)://\(urlHost):\(service.port) (listening on "
                     + "\(configuration.host):\(service.port))")
        printConsole("PIN: \(service.pin)")
        service.onPinRegenerated = { printConsole("New PIN after too many wrong guesses: \($0)") }
        service.run()
        exit(0)
    } catch {
        fail("\(error)", status: 1)
    }
}

func showPin(dataDirectory: String, regenerate: Bool) {
    do {
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let store = try PinStore(dataDirectory: dataDirectory)
        printConsole(regenerate ? try store.regenerate() : store.pin)
    } catch {
        fail("\(error)", status: 1)
    }
}

do {
    switch try CommandLineInterface.parse(Array(CommandLine.arguments.dropFirst()),
                                          environment: ProcessInfo.processInfo.environment) {
    case .help(let text): FileHandle.standardOutput.write(Data(text.utf8))
    case .version: printConsole("replica-link \(CommandLineInterface.version)")
    case .pin(let dataDirectory, let regenerate): showPin(dataDirectory: dataDirectory, regenerate: regenerate)
    case .serve(let configuration): serve(configuration)
    }
} catch {
    fail("\(error)\nRun 'replica-link --help' for usage.", status: 64)
}
