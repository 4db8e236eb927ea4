import Foundation

/// Where the current time comes from, so that expiry and throttling can be tested without waiting.
public protocol WallClock: AnyObject, Sendable {
    /// Seconds since the Unix epoch.
    var now: Double { get }
}

/// The system's real-time clock.
public final class SystemClock: WallClock {
    public init() {}
    public var now: Double { Date().timeIntervalSince1970 }
}

/// A clock that moves only when told to; for tests.
public final class ManualClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var seconds: Double

    public init(_ start: Double = 1_800_000_000) { seconds = start }

    public var now: Double {
        lock.lock(); defer { lock.unlock() }
        return seconds
    }

    public func advance(by interval: Double) {
        lock.lock(); seconds += interval; lock.unlock()
    }
}
