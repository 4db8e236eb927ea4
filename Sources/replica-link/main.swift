import Foundation
import ReplicaGateway
import ReplicaHTTP

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
        for url in consoleURLs(configuration, port: service.port) {
            printConsole("Replica Link is serving on \(url)")
        }
        printConsole("PIN: \(service.pin)")
        service.onPinRegenerated = { printConsole("New PIN after too many wrong guesses: \($0)") }
        service.run()
        exit(0)
    } catch {
        fail("\(error)", status: 1)
    }
}

/// The URLs a person can type: every interface's address when listening on all of them.
func consoleURLs(_ configuration: GatewayConfiguration, port: Int) -> [String] {
    let scheme = configuration.tlsCertificatePath == nil ? "http" : "https"
    let wildcard = configuration.host == "0.0.0.0" || configuration.host == "::"
    let hosts = wildcard ? localInterfaceAddresses() : [configuration.host]
    return (hosts.isEmpty ? ["127.0.0.1"] : hosts).map { host in
        "\(scheme)://\(host.contains(":") ? "[\(host)]" : host):\(port)"
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
    case .reconstruct(let options): reconstruct(options)
    }
} catch {
    fail("\(error)\nRun 'replica-link --help' for usage.", status: 64)
}
