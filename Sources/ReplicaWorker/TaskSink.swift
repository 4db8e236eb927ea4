import Foundation
import ReplicaProtocol

/// What a running task reports to and asks: progress, warnings, and whether it should stop.
///
/// In the worker the sink writes protocol lines; in tests it records.
public protocol TaskSink: AnyObject {
    /// The fraction of the task done (0 to 1) and what it is doing now, for a person.
    func progress(_ fraction: Double, _ message: String)
    /// Something a person should know; the task goes on.
    func warning(_ message: String, image: String?)
    /// True once the task was cancelled or the worker is stopping; a task asks at each checkpoint.
    var shouldStop: Bool { get }
}

/// How a task ended without its outputs.
public enum TaskError: Error, Equatable {
    /// The sink asked the task to stop; its temporary files are gone.
    case cancelled
    /// The task could not do its work: `message` is for a person, `retryable` says whether another attempt
    /// could succeed, `image` names the image at fault.
    case failed(message: String, retryable: Bool, image: String?)
}

/// What a finished task produced: paths relative to `work/`, and small facts for the scheduler.
public struct TaskOutcome: Equatable {
    public var outputs: [String]
    public var data: [String: JSONValue]

    public init(outputs: [String], data: [String: JSONValue]) {
        self.outputs = outputs
        self.data = data
    }
}

/// A flag one thread sets and another polls.
final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var raised = false

    func raise() { lock.lock(); raised = true; lock.unlock() }

    var isRaised: Bool {
        lock.lock(); defer { lock.unlock() }
        return raised
    }
}
