import Foundation
import ReplicaGeometry

/// What the synthetic scenes of these tests share: cameras aimed at the origin and Gaussian pixel noise.
enum SyntheticViews {
    /// camFromWorld of a camera at `center` looking at the world origin, its +Y towards world +Y.
    static func lookingAtOrigin(from center: Vector3) -> Rigid3 {
        let forward = (-center).normalized
        let right = Vector3(0, 1, 0).cross(forward).normalized
        let down = forward.cross(right)
        let rotation = Matrix3(rows: right, down, forward)
        return Rigid3(rotation: rotation, translation: -(rotation * center))
    }

    /// A Gaussian sample of standard deviation `sigma`, by the Box–Muller transform.
    static func gaussian(_ sigma: Double, _ generator: inout SplitMix64Generator) -> Double {
        let u = max(generator.unit(), 1e-300), v = generator.unit()
        return sigma * (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }
}
