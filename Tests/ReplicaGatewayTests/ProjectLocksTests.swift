@testable import ReplicaGateway
import XCTest

/// The loop-thread limits that order work: at most N jobs at once, one change per project at a time.
final class ProjectLocksTests: XCTestCase {
    func testAConcurrencyLimitRunsAtMostItsLimitAndTheRestInOrder() {
        let limit = ConcurrencyLimit(2)
        var started: [Int] = []
        var finish: [Int: () -> Void] = [:]
        for job in 0..<5 {
            limit.run { done in
                started.append(job)
                finish[job] = done
            }
        }
        XCTAssertEqual(started, [0, 1])
        finish[1]!()
        XCTAssertEqual(started, [0, 1, 2])
        finish[1]!()  // a second call of the same done changes nothing
        XCTAssertEqual(started, [0, 1, 2])
        finish[0]!()
        finish[2]!()
        XCTAssertEqual(started, [0, 1, 2, 3, 4])
        XCTAssertFalse(limit.isIdle)
        finish[3]!()
        finish[4]!()
        XCTAssertTrue(limit.isIdle)
    }

    func testAJobThatEndsAtOnceLetsTheNextOneIn() {
        let limit = ConcurrencyLimit(1)
        var ran = 0
        for _ in 0..<3 { limit.run { done in ran += 1; done() } }
        XCTAssertEqual(ran, 3)
        XCTAssertTrue(limit.isIdle)
    }

    func testProjectLocksSerialiseOneProjectAndNotOthers() {
        let locks = ProjectLocks()
        var log: [String] = []
        var finishA: (() -> Void)?
        locks.run("a") { done in log.append("a1"); finishA = done }
        locks.run("a") { done in log.append("a2"); done() }
        locks.run("b") { done in log.append("b1"); done() }
        XCTAssertEqual(log, ["a1", "b1"])
        finishA!()
        XCTAssertEqual(log, ["a1", "b1", "a2"])
        // Once idle, a project's lock is forgotten and a new change starts at once.
        locks.run("a") { done in log.append("a3"); done() }
        XCTAssertEqual(log.last, "a3")
    }
}
