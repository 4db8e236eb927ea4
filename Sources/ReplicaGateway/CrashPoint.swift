import Glibc

/// Named places in the store's multi-step changes where the crash tests kill the gateway, to prove that
/// start-up repairs whatever a crash at that step leaves.
///
/// Inert unless `REPLICA_CRASH_AT` names the point: then reaching it sends the process SIGKILL, exactly as
/// an operator's `kill -9` or the OOM killer would, with nothing flushed or cleaned up.
enum CrashPoint {
    private static let armed: String? = getenv("REPLICA_CRASH_AT").map { String(cString: $0) }

    static func reach(_ name: String) {
        guard let armed, armed == name else { return }
        kill(getpid(), SIGKILL)
    }
}
