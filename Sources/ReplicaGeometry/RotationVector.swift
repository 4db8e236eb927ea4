import Foundation

/// Rotations as rotation vectors (axis × angle in radians), the three parameters an optimiser perturbs.
public extension Matrix3 {
    /// The rotation of the rotation vector `vector`: by |vector| radians about its direction (the identity for
    /// the zero vector), with the series of Rodrigues' formula near zero so that small steps keep their digits.
    init(rotationVector vector: Vector3) {
        let theta2 = vector.dot(vector)
        let a: Double, b: Double
        if theta2 < 1e-12 {
            a = 1 - theta2 / 6
            b = 0.5 - theta2 / 24
        } else {
            let theta = theta2.squareRoot()
            a = sin(theta) / theta
            b = (1 - cos(theta)) / theta2
        }
        let x = vector.x, y = vector.y, z = vector.z
        self.init(rows: Vector3(1 - b * (y * y + z * z), b * x * y - a * z, b * x * z + a * y),
                  Vector3(b * x * y + a * z, 1 - b * (x * x + z * z), b * y * z - a * x),
                  Vector3(b * x * z - a * y, b * y * z + a * x, 1 - b * (x * x + y * y)))
    }

    /// The rotation vector of this rotation, its angle in 0...π; exact near 0 and near π, where the axis comes
    /// from the symmetric part.
    var rotationVector: Vector3 {
        let r0 = rows.0, r1 = rows.1, r2 = rows.2
        let skew = Vector3(r2.y - r1.z, r0.z - r2.x, r1.x - r0.y) / 2
        let sine = skew.length
        let cosine = (trace - 1) / 2
        let angle = atan2(sine, cosine)
        if sine < 1e-7 && cosine > 0 { return skew * (1 + angle * angle / 6) }
        if cosine > -0.9 { return skew * (angle / sine) }
        // Near π the skew part vanishes: the axis comes from the symmetric part, (R + Rᵀ)/2 − cos θ · I =
        // (1 − cos θ) k kᵀ, whose largest column is the best conditioned; its sign from the skew part.
        let symmetric = Matrix3(rows: (r0 + column(0)) / 2 - Vector3(cosine, 0, 0),
                                (r1 + column(1)) / 2 - Vector3(0, cosine, 0),
                                (r2 + column(2)) / 2 - Vector3(0, 0, cosine))
        let diagonal = [symmetric.rows.0.x, symmetric.rows.1.y, symmetric.rows.2.z]
        let k = diagonal.indices.max { diagonal[$0] < diagonal[$1] }!
        var axis = symmetric.column(k).normalized
        if axis.dot(skew) < 0 { axis = -axis }
        return axis * angle
    }
}
