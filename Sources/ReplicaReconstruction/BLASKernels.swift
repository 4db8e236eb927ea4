import CLinearAlgebra
import Foundation

/// Which of OpenBLAS's CPU kernels this process runs, and a better choice when OpenBLAS guessed low.
///
/// OpenBLAS picks its kernels when it loads, from the CPU's family and model numbers. A virtual machine often
/// reports a model it does not know (Debian 12's OpenBLAS 0.3.21 calls a current Xeon guest plain "Intel(R) Xeon(R)
/// Processor"), and it falls back to Prescott's SSE3 kernels: matching descriptors then runs at a third of the
/// speed the CPU has. The instruction sets the kernel of a newer core needs are in the CPU flags, so the choice
/// can be made from those instead; the setting takes effect only in a process started with it, since OpenBLAS
/// reads `OPENBLAS_CORETYPE` as it loads.
public enum BLASKernels {
    /// The kernel family OpenBLAS chose in this process, such as "Haswell" or "SkylakeX".
    public static var current: String { String(cString: openblas_get_corename()) }

    /// The cores OpenBLAS falls back to on a CPU it does not recognise.
    static let fallbacks: Set<String> = ["Prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom"]

    /// The kernel family the CPU flags allow when OpenBLAS fell back to an old one; nil when its choice
    /// stands (it recognised the CPU, or the flags allow nothing better).
    public static func better(than current: String, cpuFlags: Set<String>) -> String? {
        guard fallbacks.contains(current) else { return nil }
        if cpuFlags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]) { return "SkylakeX" }
        if cpuFlags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        if cpuFlags.contains("avx") { return "Sandybridge" }
        return nil
    }

    /// The flags of the first processor in /proc/cpuinfo; empty where there is no such file.
    public static func cpuFlags(cpuinfo: String? = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))
        -> Set<String> {
        guard let line = cpuinfo?.split(separator: "\n").first(where: { $0.hasPrefix("flags") }),
              let colon = line.firstIndex(of: ":") else { return [] }
        return Set(line[line.index(after: colon)...].split(separator: " ").map(String.init))
    }
}
