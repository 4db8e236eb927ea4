import Foundation
import ReplicaGateway
import XCTest

/// `--worker-command`: a shell-like template split into argv, quoting understood and nothing expanded.
final class CommandTemplateTests: XCTestCase {
    func testWhitespaceSeparatesWords() throws {
        XCTAssertEqual(try CommandTemplate.split("srun --quiet -N1 replica-worker"),
                       ["srun", "--quiet", "-N1", "replica-worker"])
        XCTAssertEqual(try CommandTemplate.split("  ssh\tnode7 \n /opt/replica/bin/replica-worker  "),
                       ["ssh", "node7", "/opt/replica/bin/replica-worker"])
    }

    func testSingleQuotesKeepEverythingLiteral() throws {
        XCTAssertEqual(try CommandTemplate.split(#"run 'a  b' 'c"d\e $x `y`'"#), ["run", "a  b", #"c"d\e $x `y`"#])
    }

    func testDoubleQuotesEscapeOnlyTheirSpecialCharacters() throws {
        XCTAssertEqual(try CommandTemplate.split(#"run "q\" b\\ d\$ t\` n\n 'x'""#), ["run", #"q" b\ d$ t` n\n 'x'"#])
    }

    func testBackslashOutsideQuotesEscapesTheNextCharacter() throws {
        XCTAssertEqual(try CommandTemplate.split(#"run a\ b \' \" \\ \n"#), ["run", "a b", "'", "\"", "\\", "n"])
    }

    func testQuotedPiecesJoinOneWordAndEmptyQuotesAreAnArgument() throws {
        XCTAssertEqual(try CommandTemplate.split(#"run pre"fix"'suf'\x"#), ["run", "prefixsufx"])
        XCTAssertEqual(try CommandTemplate.split("run '' \"\" x"), ["run", "", "", "x"])
        XCTAssertEqual(try CommandTemplate.split("ssh nöde \"añ b\""), ["ssh", "nöde", "añ b"])
    }

    func testNothingIsExpanded() throws {
        XCTAssertEqual(try CommandTemplate.split("run $HOME ${X} *.jpg ~ ; | `id`"),
                       ["run", "$HOME", "${X}", "*.jpg", "~", ";", "|", "`id`"])
    }

    func testMalformedTemplatesAreUsageErrorsNamingTheFlag() {
        for text in ["run 'open", "run \"open", "run \"open\\\"", "run trailing\\", "", "   \t", "'' run"] {
            XCTAssertThrowsError(try CommandTemplate.split(text), text) { error in
                XCTAssertTrue(error is UsageError, "\(text): \(error)")
                XCTAssertTrue("\(error)".contains("--worker-command"), "\(text): \(error)")
            }
        }
    }

    func testTheDefaultIsTheWorkerBesideTheExecutableWhenItCanRun() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("template-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let executable = folder.appendingPathComponent("replica-link").path
        let worker = folder.appendingPathComponent("replica-worker").path
        XCTAssertEqual(CommandTemplate.defaultWorkerCommand(executablePath: executable), ["replica-worker"])

        try FileManager.default.createDirectory(atPath: worker, withIntermediateDirectories: false)
        XCTAssertEqual(CommandTemplate.defaultWorkerCommand(executablePath: executable), ["replica-worker"],
                       "a directory is not a program")
        try FileManager.default.removeItem(atPath: worker)

        XCTAssertTrue(FileManager.default.createFile(atPath: worker, contents: Data("#!/bin/sh\n".utf8),
                                                     attributes: [.posixPermissions: 0o644]))
        XCTAssertEqual(CommandTemplate.defaultWorkerCommand(executablePath: executable), ["replica-worker"],
                       "a file without the execute bit is not a program")
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: worker)
        XCTAssertEqual(CommandTemplate.defaultWorkerCommand(executablePath: executable), [worker])
    }
}
