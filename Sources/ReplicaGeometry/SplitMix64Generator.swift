/// SplitMix64 (Steele, Lea and Flood): a small, fast generator whose sequence depends only on its seed, so a
/// robust estimate or a sampled metric can be replayed.
public struct SplitMix64Generator: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }

    /// A double uniform in [0, 1).
    public mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    /// `size` different indices in 0..<bound, drawn uniformly (requires size ≤ bound).
    public mutating func distinctIndices(_ size: Int, below bound: Int) -> [Int] {
        precondition(size <= bound, "cannot draw \(size) different indices below \(bound)")
        var indices: [Int] = []
        indices.reserveCapacity(size)
        while indices.count < size {
            let candidate = Int.random(in: 0..<bound, using: &self)
            if !indices.contains(candidate) { indices.append(candidate) }
        }
        return indices
    }
}
