import Foundation

/// The command that starts one worker, written like a shell command line (`srun --quiet -N1 replica-worker`)
/// and split into the argv it is run with.
///
/// Only quoting is understood, never expansion: a variable, a wildcard or a `;` is passed on as written, so
/// what the operator typed is exactly what runs.
public enum CommandTemplate {
    /// Splits `text` into words: whitespace separates them, single quotes keep everything literal, double
    /// quotes let a backslash escape `"`, `\`, `$` and a backquote, and a backslash outside quotes escapes
    /// the next character. Throws a `UsageError` naming `--worker-command` for an unterminated quote, a
    /// trailing backslash, or a command without a program name.
    public static func split(_ text: String) throws -> [String] {
        var splitter = Splitter()
        for scalar in text.unicodeScalars { splitter.take(scalar) }
        let words = try splitter.finish()
        guard let program = words.first, !program.isEmpty else {
            throw UsageError("--worker-command must name the program that starts a worker")
        }
        return words
    }

    /// `replica-worker` beside the running executable (`executablePath`, the resolved `/proc/self/exe`) when
    /// that is an executable file, so an unpacked release works without touching PATH; else `replica-worker`,
    /// looked up in PATH when it starts.
    public static func defaultWorkerCommand(executablePath: String) -> [String] {
        let beside = URL(fileURLWithPath: executablePath).deletingLastPathComponent()
            .appendingPathComponent("replica-worker").path
        return isExecutableFile(beside) ? [beside] : ["replica-worker"]
    }

    /// A regular file this process may execute (a directory passes `access(X_OK)` too, hence the stat).
    private static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }
}

/// The splitting state machine: one Unicode scalar at a time, so a backslash before a combining mark still
/// escapes it rather than merging with it into one character.
private struct Splitter {
    private enum Quote { case none, single, double }

    private var words: [String] = []
    private var word = String.UnicodeScalarView()
    /// A word has begun even if it is still empty: `''` is an empty argument, not nothing.
    private var inWord = false
    private var quote = Quote.none
    private var escaping = false

    mutating func take(_ scalar: Unicode.Scalar) {
        if escaping {
            takeEscaped(scalar)
            return
        }
        switch quote {
        case .single: takeInSingleQuotes(scalar)
        case .double: takeInDoubleQuotes(scalar)
        case .none: takeUnquoted(scalar)
        }
    }

    func finish() throws -> [String] {
        if escaping { throw UsageError("--worker-command ends with a backslash that escapes nothing") }
        switch quote {
        case .single: throw UsageError("--worker-command has a single quote that is never closed")
        case .double: throw UsageError("--worker-command has a double quote that is never closed")
        case .none: break
        }
        return inWord ? words + [String(word)] : words
    }

    /// Inside double quotes a backslash escapes only the characters that are special there; before any
    /// other it stands for itself, as in a POSIX shell.
    private mutating func takeEscaped(_ scalar: Unicode.Scalar) {
        escaping = false
        if quote == .double && !"\"\\$`".unicodeScalars.contains(scalar) { word.append("\\") }
        word.append(scalar)
    }

    private mutating func takeInSingleQuotes(_ scalar: Unicode.Scalar) {
        if scalar == "'" { quote = .none } else { word.append(scalar) }
    }

    private mutating func takeInDoubleQuotes(_ scalar: Unicode.Scalar) {
        switch scalar {
        case "\"": quote = .none
        case "\\": escaping = true
        default: word.append(scalar)
        }
    }

    private mutating func takeUnquoted(_ scalar: Unicode.Scalar) {
        if scalar.properties.isWhitespace {
            endWord()
            return
        }
        inWord = true
        switch scalar {
        case "'": quote = .single
        case "\"": quote = .double
        case "\\": escaping = true
        default: word.append(scalar)
        }
    }

    private mutating func endWord() {
        guard inWord else { return }
        words.append(String(word))
        word = String.UnicodeScalarView()
        inWord = false
    }
}
