import ReplicaGeometry

/// A SplitMix64 generator: small, seeded, and the same sequence on every platform.
struct SceneRandom {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// A double in [0, 1) from the top 53 bits.
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    mutating func uniform(_ range: ClosedRange<Double>) -> Double {
        range.lowerBound + (range.upperBound - range.lowerBound) * unit()
    }

    /// SplitMix64's finaliser; also the lattice hash of the noise.
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A solid (3-D) colour pattern for synthetic surfaces: multi-octave value noise between two colours, with
/// sharp-edged blobs and a band of stripes on top, so images have corners and blobs that feature detectors find.
///
/// Being a function of the 3-D point, the pattern has no seams and looks the same from every view.
struct SurfacePattern {
    private let seed: UInt64
    private let baseColor: Vector3
    private let secondColor: Vector3
    private let blobs: [(center: Vector3, radius: Double, color: Vector3)]
    private let stripeNormal: Vector3
    private let stripeColor: Vector3
    /// The lowest octave's frequency, in cycles per scene unit.
    private let baseFrequency = 3.0
    private let octaves = 6

    /// A pattern whose blobs lie in `bounds` (the surface's box, in scene units).
    init(seed: UInt64, bounds: Box3) {
        var random = SceneRandom(seed: seed)
        self.seed = random.next()
        // A dark and a light colour, so the noise between them has strong contrast.
        baseColor = Self.color(&random, saturation: 0.5, brightness: 0.12...0.3)
        secondColor = Self.color(&random, saturation: 0.4, brightness: 0.75...0.95)
        let size = bounds.max - bounds.min
        blobs = (0..<Int(40 + 20 * (size.x * size.y + size.y * size.z + size.z * size.x))).map { _ in
            let center = bounds.min + size * Vector3(random.unit(), random.unit(), random.unit())
            return (center, random.uniform(0.06...0.22), Self.color(&random, saturation: 0.9, brightness: 0.4...0.95))
        }
        stripeNormal = Vector3(random.uniform(-1...1), random.uniform(-1...1), random.uniform(-1...1)).normalized
        stripeColor = Self.color(&random, saturation: 0.8, brightness: 0.5...0.9)
    }

    /// The colour at a point, 0...1 per channel.
    func color(at point: Vector3) -> Vector3 {
        let noise = fractalNoise(point)
        var color = baseColor * (1 - noise) + secondColor * noise
        for blob in blobs where (point - blob.center).length < blob.radius {
            color = blob.color * (0.75 + 0.5 * (noise - 0.5))
        }
        // Stripes in one slab of the object, across it.
        let along = point.dot(stripeNormal)
        let phase = point.x * 9 + point.y * 5 + point.z * 3
        if abs(along) < 0.35, phase - phase.rounded(.down) < 0.3 {
            color = stripeColor
        }
        return color
    }

    /// Octaves of value noise, each half the wavelength and 0.6 of the amplitude of the one before, with the
    /// contrast stretched (a sum of octaves gathers near 0.5); 0...1.
    private func fractalNoise(_ point: Vector3) -> Double {
        var total = 0.0, amplitude = 1.0, weight = 0.0, frequency = baseFrequency
        for octave in 0..<octaves {
            total += amplitude * valueNoise(point * frequency, octave: UInt64(octave))
            weight += amplitude
            amplitude *= 0.6
            frequency *= 2
        }
        return min(1, max(0, (total / weight - 0.5) * 3 + 0.5))
    }

    /// Smoothly interpolated random values on the integer lattice; 0...1.
    private func valueNoise(_ point: Vector3, octave: UInt64) -> Double {
        let cell = Vector3(point.x.rounded(.down), point.y.rounded(.down), point.z.rounded(.down))
        let t = point - cell
        let s = t * t * (Vector3(repeating: 3) - 2 * t)
        let (ix, iy, iz) = (Int64(cell.x), Int64(cell.y), Int64(cell.z))
        var result = 0.0
        for corner in 0..<8 {
            let (dx, dy, dz) = (Int64(corner & 1), Int64(corner >> 1 & 1), Int64(corner >> 2 & 1))
            let wx = dx == 1 ? s.x : 1 - s.x, wy = dy == 1 ? s.y : 1 - s.y, wz = dz == 1 ? s.z : 1 - s.z
            result += wx * wy * wz * lattice(ix + dx, iy + dy, iz + dz, octave: octave)
        }
        return result
    }

    private func lattice(_ x: Int64, _ y: Int64, _ z: Int64, octave: UInt64) -> Double {
        var hash = SceneRandom.mix(seed ^ octave &* 0x1000_0000_01B3)
        hash = SceneRandom.mix(hash ^ UInt64(bitPattern: x))
        hash = SceneRandom.mix(hash ^ UInt64(bitPattern: y))
        hash = SceneRandom.mix(hash ^ UInt64(bitPattern: z))
        return Double(hash >> 11) / Double(1 << 53)
    }

    /// A random colour: a random hue at the given saturation and a brightness within the range.
    private static func color(_ random: inout SceneRandom, saturation: Double,
                              brightness range: ClosedRange<Double>) -> Vector3 {
        let hue = random.unit() * 6, brightness = random.uniform(range)
        let ramp = Vector3(abs(hue - 3) - 1, 2 - abs(hue - 2), 2 - abs(hue - 4))
        let pure = Vector3(min(1, max(0, ramp.x)), min(1, max(0, ramp.y)), min(1, max(0, ramp.z)))
        return (Vector3(repeating: 1 - saturation) + pure * saturation) * brightness
    }
}
