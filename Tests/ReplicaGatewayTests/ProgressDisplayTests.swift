import Foundation
import ReplicaGateway
import XCTest

/// The progress display of `replica-link reconstruct`: what it draws, when, and how it fits the terminal.
final class ProgressDisplayTests: XCTestCase {
    private let sample = ProgressSnapshot(stage: "Pre-Processing", fraction: 0.45, elapsed: 12, estimate: 15,
                                          detail: "12/40 images")

    /// Everything the display wrote, and a clock that moves only when a test says so.
    private final class Terminal {
        var writes: [String] = []
        var time = 100.0

        func display(_ style: ProgressStyle, columns: Int = 80) -> ProgressDisplay {
            ProgressDisplay(style: style, write: { self.writes.append($0) }, columns: columns, now: { self.time })
        }
    }

    private func barLine(columns: Int, _ snapshot: ProgressSnapshot? = nil) throws -> String {
        let terminal = Terminal()
        terminal.display(.bar, columns: columns).update(snapshot ?? sample)
        let drawn = try XCTUnwrap(terminal.writes.first)
        XCTAssertEqual(terminal.writes.count, 1)
        XCTAssertTrue(drawn.hasPrefix("\r"), drawn)
        XCTAssertEqual(drawn.count, columns, "\\r plus a line one short of the width, so the cursor never wraps")
        return String(drawn.dropFirst())
    }

    private func padded(_ text: String, to width: Int) -> String {
        text + String(repeating: " ", count: width - text.count)
    }

    func testTheBarTakesTheRoomThatIsLeft() throws {
        XCTAssertEqual(try barLine(columns: 83),
                       "Pre-Processing [#########...........]  45%  0:12 elapsed  ~0:15 left  12/40 images")
        XCTAssertEqual(try barLine(columns: 80),
                       "Pre-Processing [#######..........]  45%  0:12 elapsed  ~0:15 left  12/40 images")
    }

    func testTheBarStopsGrowingOnAWideTerminal() throws {
        let line = "Pre-Processing [#############.................]  45%  0:12 elapsed  ~0:15 left  12/40 images"
        XCTAssertEqual(try barLine(columns: 200), padded(line, to: 199))
    }

    func testANarrowTerminalLosesTheBarThenTheElapsedTimeThenTheDetail() throws {
        XCTAssertEqual(try barLine(columns: 66),
                       padded("Pre-Processing  45%  0:12 elapsed  ~0:15 left  12/40 images", to: 65),
                       "a bar under 5 cells is left out")
        XCTAssertEqual(try barLine(columns: 50), padded("Pre-Processing  45%  ~0:15 left  12/40 images", to: 49))
        XCTAssertEqual(try barLine(columns: 40), padded("Pre-Processing  45%  ~0:15 left", to: 39))
        XCTAssertEqual(try barLine(columns: 10), "Pre-Proce")
    }

    func testTheBarWithoutAnEstimateOrDetailAndAtTheEnds() throws {
        let start = ProgressSnapshot(stage: "Pre-Processing", fraction: 0, elapsed: 0.4)
        XCTAssertEqual(try barLine(columns: 50, start), "Pre-Processing [.............]   0%  0:00 elapsed")
        let done = ProgressSnapshot(stage: "Pre-Processing", fraction: 1.2, elapsed: 3725)
        XCTAssertEqual(try barLine(columns: 50, done), "Pre-Processing [##########] 100%  1:02:05 elapsed")
    }

    func testTheBarIsRedrawnAtMostTenTimesASecondWithinAStage() {
        let terminal = Terminal()
        let display = terminal.display(.bar, columns: 40)
        func step(_ time: Double, _ stage: String, _ fraction: Double) {
            terminal.time = time
            display.update(ProgressSnapshot(stage: stage, fraction: fraction, elapsed: time - 100))
        }
        step(100.00, "A", 0.10)
        step(100.05, "A", 0.20)
        step(100.08, "B", 0.30)
        step(100.15, "B", 0.40)
        step(100.25, "B", 0.50)
        step(100.26, "B", 0.60)
        XCTAssertEqual(terminal.writes.map(percentShown), ["10%", "30%", "50%"],
                       "held back: 20% and 40% (under 0.1 s after a draw in the same stage), and 60% so far")
        display.finish("Done.")
        XCTAssertEqual(terminal.writes.dropFirst(3).map { $0.hasPrefix("\r") ? percentShown($0) : $0 },
                       ["60%", "\n", "Done.\n"], "finish draws what was held back, ends the line, then the message")
    }

    private func percentShown(_ line: String) -> String {
        String(line.split(separator: " ").first { $0.hasSuffix("%") } ?? "none")
    }

    func testLinesModePrintsEachStageAndEachWholeFivePercentStep() {
        let terminal = Terminal()
        let display = terminal.display(.lines)
        let steps: [(String, Double)] = [("A", 0), ("A", 0.01), ("A", 0.049), ("A", 0.05), ("A", 0.07), ("A", 0.1),
                                         ("A", 0.35), ("A", 0.36), ("B", 0.36), ("B", 0.39), ("B", 0.52), ("B", 1)]
        for (stage, fraction) in steps {
            display.update(ProgressSnapshot(stage: stage, fraction: fraction, elapsed: 1))
        }
        XCTAssertEqual(terminal.writes, ["A   0%", "A   5%", "A  10%", "A  35%", "B  36%", "B  52%", "B 100%"]
                        .map { $0 + "  elapsed 0:01\n" }, "no clock moved: lines are never throttled by time")
        display.finish("Done.")
        XCTAssertEqual(terminal.writes.last, "Done.\n")
    }

    func testALogLineSaysEverythingItKnows() {
        let terminal = Terminal()
        terminal.display(.lines).update(ProgressSnapshot(stage: "Pre-Processing", fraction: 0.35, elapsed: 12,
                                                         estimate: 22.3, detail: "12/40 images"))
        XCTAssertEqual(terminal.writes, ["Pre-Processing  35%  elapsed 0:12  remaining ~0:22  12/40 images\n"])
    }

    func testTheEstimateWaitsForTwoPercentAndTwoSeconds() {
        XCTAssertNil(ProgressDisplay.estimateRemaining(fraction: 0.019, elapsed: 100))
        XCTAssertNil(ProgressDisplay.estimateRemaining(fraction: 0.5, elapsed: 1.99))
        XCTAssertNil(ProgressDisplay.estimateRemaining(fraction: .nan, elapsed: 10))
        XCTAssertEqual(ProgressDisplay.estimateRemaining(fraction: 0.02, elapsed: 2) ?? -1, 98, accuracy: 1e-9)
        XCTAssertEqual(ProgressDisplay.estimateRemaining(fraction: 0.25, elapsed: 12) ?? -1, 36, accuracy: 1e-9)
        XCTAssertEqual(ProgressDisplay.estimateRemaining(fraction: 1, elapsed: 50), 0)
        XCTAssertEqual(ProgressDisplay.estimateRemaining(fraction: 1.5, elapsed: 50), 0, "past the end is done")
    }

    func testDurations() {
        let cases: [(Double, String)] = [(0, "0:00"), (7, "0:07"), (6.6, "0:07"), (59.4, "0:59"), (62, "1:02"),
                                         (3599, "59:59"), (3723, "1:02:03"), (36000, "10:00:00"), (-5, "0:00"),
                                         (.infinity, "0:00"), (.nan, "0:00")]
        for (seconds, text) in cases {
            XCTAssertEqual(ProgressDisplay.formatDuration(seconds), text, "\(seconds)")
        }
    }

    func testATerminalSaysItsWidth() throws {
        // A pseudo-terminal's controlling side answers the same window-size requests as the terminal itself.
        let terminal = open("/dev/ptmx", O_RDWR | O_NOCTTY)
        guard terminal >= 0 else { throw XCTSkip("no pseudo-terminal on this machine") }
        defer { close(terminal) }
        var size = winsize()
        size.ws_row = 40
        size.ws_col = 123
        XCTAssertEqual(ioctl(terminal, UInt(TIOCSWINSZ), &size), 0)
        XCTAssertTrue(ProgressDisplay.isTerminal(fd: terminal))
        XCTAssertEqual(ProgressDisplay.terminalColumns(fd: terminal), 123)
    }

    func testAPipeIsNotATerminal() {
        let pipe = Pipe()
        let descriptor = pipe.fileHandleForWriting.fileDescriptor
        XCTAssertFalse(ProgressDisplay.isTerminal(fd: descriptor))
        XCTAssertNil(ProgressDisplay.terminalColumns(fd: descriptor))
        XCTAssertFalse(ProgressDisplay.isTerminal(fd: -1))
    }
}
