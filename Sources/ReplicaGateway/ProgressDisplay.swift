import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How `replica-link reconstruct` shows progress: a bar redrawn in place, or one line per step.
public enum ProgressStyle: String, CaseIterable, Sendable {
    case bar, lines
}

/// What the display shows at one moment.
public struct ProgressSnapshot: Equatable, Sendable {
    /// The stage running, as the API names it (`Pre-Processing`).
    public var stage: String
    /// The whole job's progress, a fraction 0...1.
    public var fraction: Double
    /// Seconds since the job started.
    public var elapsed: Double
    /// Seconds remaining; nil when unknown.
    public var estimate: Double?
    /// What the stage is counting (`12/40 images`); nil for nothing.
    public var detail: String?

    public init(stage: String, fraction: Double, elapsed: Double, estimate: Double? = nil, detail: String? = nil) {
        self.stage = stage
        self.fraction = fraction
        self.elapsed = elapsed
        self.estimate = estimate
        self.detail = detail
    }
}

/// Draws progress on stderr: a bar redrawn in place on a terminal, or plain lines for logs and pipes.
///
/// Safe to call from any thread: a lock keeps each update's write whole and in order.
public final class ProgressDisplay: @unchecked Sendable {
    /// The fewest seconds between two redraws of the bar within one stage (at most 10 a second): a terminal
    /// that is written to on every task message costs more than the work it shows.
    public static let redrawInterval = 0.1
    /// Lines mode prints when the whole job crosses a multiple of this many percent.
    public static let lineStepPercent = 5

    private let style: ProgressStyle
    private let write: (String) -> Void
    private let columns: Int
    private let now: () -> Double
    private let lock = NSLock()
    private var shownStage: String?
    private var lastDrawTime: Double?
    private var shownStep = -1
    /// The bar's line is on screen and not yet ended by a newline.
    private var barOpen = false
    /// The newest snapshot the throttle held back, drawn by `finish` so the last state is what stays.
    private var heldBack: ProgressSnapshot?

    /// `columns` is the terminal's width in characters (`terminalColumns(fd:)`), used by the bar only; `now`
    /// is a monotonic clock in seconds, injectable so the throttle can be tested.
    public init(style: ProgressStyle,
                write: @escaping (String) -> Void = { FileHandle.standardError.write(Data($0.utf8)) },
                columns: Int = 80,
                now: @escaping () -> Double = ProgressDisplay.monotonicSeconds) {
        self.style = style
        self.write = write
        self.columns = columns
        self.now = now
    }

    /// Shows `snapshot`: the bar is redrawn unless it was drawn under `redrawInterval` ago in the same stage;
    /// lines mode prints a line when the stage changes or a new `lineStepPercent` step is reached.
    public func update(_ snapshot: ProgressSnapshot) {
        lock.lock(); defer { lock.unlock() }
        switch style {
        case .bar: updateBar(snapshot)
        case .lines: updateLines(snapshot)
        }
    }

    /// Ends the bar's line, after drawing the state the throttle held back, and prints `message` on its own.
    public func finish(_ message: String) {
        lock.lock(); defer { lock.unlock() }
        if let heldBack { drawBar(heldBack) }
        if barOpen { write("\n") }
        barOpen = false
        write(message + "\n")
    }

    private func updateBar(_ snapshot: ProgressSnapshot) {
        let time = now()
        if snapshot.stage == shownStage, let lastDrawTime, time - lastDrawTime < Self.redrawInterval {
            heldBack = snapshot
            return
        }
        lastDrawTime = time
        drawBar(snapshot)
    }

    private func drawBar(_ snapshot: ProgressSnapshot) {
        write("\r" + ProgressDisplay.barLine(snapshot, width: max(columns, 2) - 1))
        shownStage = snapshot.stage
        barOpen = true
        heldBack = nil
    }

    private func updateLines(_ snapshot: ProgressSnapshot) {
        let step = ProgressDisplay.percent(snapshot.fraction) / Self.lineStepPercent
        guard snapshot.stage != shownStage || step > shownStep else { return }
        shownStage = snapshot.stage
        shownStep = step
        write(ProgressDisplay.logLine(snapshot) + "\n")
    }
}

// MARK: - What the lines say

extension ProgressDisplay {
    /// The bar's widest interior, in characters: wider says nothing more.
    static let widestBar = 30
    /// Below this interior the bar is left out instead: a few cells cannot show progress.
    static let narrowestBar = 5

    /// `Pre-Processing [#########...........]  45%  0:12 elapsed  ~0:15 left  12/40 images`, fitted to exactly
    /// `width` characters. What goes when it does not fit, in order: the bar shrinks, then the bar, the
    /// elapsed time and at last the detail are left out; what still does not fit is clipped.
    static func barLine(_ snapshot: ProgressSnapshot, width: Int) -> String {
        let percent = String(format: "%3d%%", ProgressDisplay.percent(snapshot.fraction))
        let elapsed = "\(formatDuration(snapshot.elapsed)) elapsed"
        let left = snapshot.estimate.map { "~\(formatDuration($0)) left" }
        let detail = snapshot.detail
        let withBar = [percent, elapsed, left, detail].compactMap { $0 }.joined(separator: "  ")
        let room = width - snapshot.stage.count - 4 - withBar.count
        if room >= narrowestBar {
            let bar = barCells(snapshot.fraction, count: min(room, widestBar))
            return fitted("\(snapshot.stage) [\(bar)] \(withBar)", width: width)
        }
        let fallbacks = [[percent, elapsed, left, detail], [percent, left, detail], [percent, left]]
        let lines = fallbacks.map { "\(snapshot.stage) " + $0.compactMap { $0 }.joined(separator: "  ") }
        return fitted(lines.first { $0.count <= width } ?? lines[lines.count - 1], width: width)
    }

    /// `Pre-Processing  35%  elapsed 0:12  remaining ~0:22  12/40 images`, for a log or a pipe.
    static func logLine(_ snapshot: ProgressSnapshot) -> String {
        var line = "\(snapshot.stage) " + String(format: "%3d%%", percent(snapshot.fraction))
        line += "  elapsed \(formatDuration(snapshot.elapsed))"
        if let estimate = snapshot.estimate { line += "  remaining ~\(formatDuration(estimate))" }
        if let detail = snapshot.detail { line += "  \(detail)" }
        return line
    }

    /// Whole percent done, rounded down, 0...100. The small nudge keeps 0.35 at 35 although 0.35 × 100 is
    /// 34.99… in binary.
    static func percent(_ fraction: Double) -> Int {
        guard fraction.isFinite else { return 0 }
        return Int((min(max(fraction, 0), 1) * 100 + 1e-9).rounded(.down))
    }

    /// `count` cells, `#` for the part done and `.` for the rest.
    static func barCells(_ fraction: Double, count: Int) -> String {
        let done = min(count, count * percent(fraction) / 100)
        return String(repeating: "#", count: done) + String(repeating: ".", count: count - done)
    }

    /// Padded with spaces to `width`, so a shorter line wholly covers the longer one drawn before it; or
    /// clipped to it.
    static func fitted(_ line: String, width: Int) -> String {
        line.count >= width ? String(line.prefix(width)) : line + String(repeating: " ", count: width - line.count)
    }
}

// MARK: - Estimates, durations and the terminal

extension ProgressDisplay {
    /// The estimate: remaining = elapsed × (1 − f) / f once f ≥ 0.02 and elapsed ≥ 2 s, else nil: earlier, a
    /// start-up cost would be extrapolated over the whole job.
    public static func estimateRemaining(fraction: Double, elapsed: Double) -> Double? {
        guard fraction >= 0.02, elapsed >= 2, elapsed.isFinite else { return nil }
        let done = min(fraction, 1)
        return elapsed * (1 - done) / done
    }

    /// Whole seconds, rounded: `0:07`, `12:30`, `1:02:03`. Negative or not finite reads `0:00`.
    public static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds > 0 else { return "0:00" }
        let total = Int(min(seconds, 1e12).rounded())
        let (hours, minutes, rest) = (total / 3600, total / 60 % 60, total % 60)
        let tail = String(format: "%02d", rest)
        return hours > 0 ? "\(hours):" + String(format: "%02d", minutes) + ":\(tail)" : "\(minutes):\(tail)"
    }

    /// The width of the terminal on `fd` in columns; nil when it is not a terminal or does not say.
    public static func terminalColumns(fd: Int32) -> Int? {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    /// Whether `fd` is a terminal, where a bar redrawn in place makes sense.
    public static func isTerminal(fd: Int32) -> Bool { isatty(fd) == 1 }

    /// Seconds on the monotonic clock, which a change of the wall clock does not move.
    public static func monotonicSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
