import Foundation

/// A point or direction in 3-D, in the units of its scene.
public typealias Vector3 = SIMD3<Double>
/// A point in an image, in pixels (origin at the top-left corner of the top-left pixel).
public typealias Vector2 = SIMD2<Double>

extension SIMD3 where Scalar == Double {
    public func dot(_ other: Vector3) -> Double { (self * other).sum() }

    public func cross(_ other: Vector3) -> Vector3 {
        Vector3(y * other.z - z * other.y, z * other.x - x * other.z, x * other.y - y * other.x)
    }

    public var length: Double { dot(self).squareRoot() }

    /// The same direction with length 1; the zero vector stays zero.
    public var normalized: Vector3 {
        let length = self.length
        return length > 0 ? self / length : self
    }
}

extension SIMD2 where Scalar == Double {
    /// The Euclidean length, in the vector's units (pixels for an image point).
    public var length: Double { (self * self).sum().squareRoot() }
}

/// A 3×3 matrix of doubles, stored by rows.
public struct Matrix3: Equatable, Sendable, CustomStringConvertible {
    public var rows: (Vector3, Vector3, Vector3)

    public init(rows r0: Vector3, _ r1: Vector3, _ r2: Vector3) { rows = (r0, r1, r2) }

    /// Nine values in row-major order.
    public init(_ values: [Double]) {
        precondition(values.count == 9, "a 3×3 matrix takes nine values")
        rows = (Vector3(values[0], values[1], values[2]), Vector3(values[3], values[4], values[5]),
                Vector3(values[6], values[7], values[8]))
    }

    public static let identity = Matrix3(rows: Vector3(1, 0, 0), Vector3(0, 1, 0), Vector3(0, 0, 1))

    /// The rotation of the quaternion (x, y, z, w) in Hamilton's convention (COLMAP's), normalised first.
    public init(quaternion q: SIMD4<Double>) {
        let n = q / (q * q).sum().squareRoot()
        let (x, y, z, w) = (n.x, n.y, n.z, n.w)
        self.init([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                   2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                   2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)])
    }

    /// The rotation by `angle` radians about `axis` (right-handed), by Rodrigues' formula.
    public init(rotationAbout axis: Vector3, angle: Double) {
        let k = axis.normalized, c = cos(angle), s = sin(angle), t = 1 - c
        self.init(rows: Vector3(t * k.x * k.x + c, t * k.x * k.y - s * k.z, t * k.x * k.z + s * k.y),
                  Vector3(t * k.x * k.y + s * k.z, t * k.y * k.y + c, t * k.y * k.z - s * k.x),
                  Vector3(t * k.x * k.z - s * k.y, t * k.y * k.z + s * k.x, t * k.z * k.z + c))
    }

    public func row(_ index: Int) -> Vector3 { index == 0 ? rows.0 : index == 1 ? rows.1 : rows.2 }

    public func column(_ index: Int) -> Vector3 { Vector3(rows.0[index], rows.1[index], rows.2[index]) }

    public var transposed: Matrix3 { Matrix3(rows: column(0), column(1), column(2)) }

    public var determinant: Double { rows.0.dot(rows.1.cross(rows.2)) }

    public var trace: Double { rows.0.x + rows.1.y + rows.2.z }

    /// The values in row-major order.
    public var values: [Double] { [rows.0.x, rows.0.y, rows.0.z, rows.1.x, rows.1.y, rows.1.z,
                                   rows.2.x, rows.2.y, rows.2.z] }

    public static func * (m: Matrix3, v: Vector3) -> Vector3 {
        Vector3(m.rows.0.dot(v), m.rows.1.dot(v), m.rows.2.dot(v))
    }

    public static func * (a: Matrix3, b: Matrix3) -> Matrix3 {
        let bt = b.transposed
        return Matrix3(rows: bt * a.rows.0, bt * a.rows.1, bt * a.rows.2)
    }

    public static func * (m: Matrix3, s: Double) -> Matrix3 { Matrix3(rows: m.rows.0 * s, m.rows.1 * s, m.rows.2 * s) }

    public static func + (a: Matrix3, b: Matrix3) -> Matrix3 {
        Matrix3(rows: a.rows.0 + b.rows.0, a.rows.1 + b.rows.1, a.rows.2 + b.rows.2)
    }

    /// The angle in radians of the rotation that takes `self` to `other` (both rotations), 0...π.
    ///
    /// From both the sine (the skew-symmetric part) and the cosine (the trace): acos of the trace alone loses
    /// half the digits near 0, where errors are measured.
    public func angle(to other: Matrix3) -> Double {
        let relative = self.transposed * other
        let r0 = relative.rows.0, r1 = relative.rows.1, r2 = relative.rows.2
        let sine = Vector3(r2.y - r1.z, r0.z - r2.x, r1.x - r0.y).length / 2
        return atan2(sine, (relative.trace - 1) / 2)
    }

    public static func == (a: Matrix3, b: Matrix3) -> Bool { a.values == b.values }

    public var description: String { "[\(rows.0), \(rows.1), \(rows.2)]" }
}

/// A rigid motion `x ↦ rotation · x + translation`; named after what it maps, as in `camFromWorld`.
public struct Rigid3: Equatable, Sendable {
    public var rotation: Matrix3
    public var translation: Vector3

    public init(rotation: Matrix3 = .identity, translation: Vector3 = .zero) {
        self.rotation = rotation
        self.translation = translation
    }

    public static let identity = Rigid3()

    public func apply(_ point: Vector3) -> Vector3 { rotation * point + translation }

    public var inverse: Rigid3 {
        let back = rotation.transposed
        return Rigid3(rotation: back, translation: -(back * translation))
    }

    /// `self` after `other`: first `other`, then `self` (`aFromC = aFromB * bFromC`).
    public static func * (a: Rigid3, b: Rigid3) -> Rigid3 {
        Rigid3(rotation: a.rotation * b.rotation, translation: a.rotation * b.translation + a.translation)
    }
}

/// A pinhole camera without distortion: focal lengths and principal point in pixels, size in pixels.
///
/// Pixel coordinates put (0, 0) at the top-left corner of the image, so the centre of the top-left pixel is
/// (0.5, 0.5); +x goes right, +y down, and the camera looks down +z.
public struct PinholeCamera: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var focalX: Double
    public var focalY: Double
    public var principalX: Double
    public var principalY: Double

    public init(width: Int, height: Int, focalX: Double, focalY: Double, principalX: Double, principalY: Double) {
        self.width = width
        self.height = height
        self.focalX = focalX
        self.focalY = focalY
        self.principalX = principalX
        self.principalY = principalY
    }

    /// A camera with square pixels and the principal point at the image centre.
    public init(width: Int, height: Int, focal: Double) {
        self.init(width: width, height: height, focal: focal, focal, Double(width) / 2, Double(height) / 2)
    }

    private init(width: Int, height: Int, focal fx: Double, _ fy: Double, _ cx: Double, _ cy: Double) {
        self.init(width: width, height: height, focalX: fx, focalY: fy, principalX: cx, principalY: cy)
    }

    /// The calibration matrix K.
    public var calibration: Matrix3 {
        Matrix3([focalX, 0, principalX, 0, focalY, principalY, 0, 0, 1])
    }

    /// The pixel a point in camera coordinates falls on; nil behind the camera (z ≤ 0).
    public func project(_ pointInCamera: Vector3) -> Vector2? {
        guard pointInCamera.z > 0 else { return nil }
        return Vector2(focalX * pointInCamera.x / pointInCamera.z + principalX,
                       focalY * pointInCamera.y / pointInCamera.z + principalY)
    }

    /// The direction in camera coordinates (z = 1) of the ray through a pixel.
    public func ray(through pixel: Vector2) -> Vector3 {
        Vector3((pixel.x - principalX) / focalX, (pixel.y - principalY) / focalY, 1)
    }

    public func contains(_ pixel: Vector2) -> Bool {
        pixel.x >= 0 && pixel.y >= 0 && pixel.x < Double(width) && pixel.y < Double(height)
    }
}

/// One image of a scene with its camera: what a ground truth gives, and what a reconstruction estimates.
public struct PosedImage: Equatable, Sendable {
    /// The image's file name.
    public var name: String
    public var camera: PinholeCamera
    public var camFromWorld: Rigid3

    public init(name: String, camera: PinholeCamera, camFromWorld: Rigid3) {
        self.name = name
        self.camera = camera
        self.camFromWorld = camFromWorld
    }

    /// The camera's centre in world coordinates.
    public var centerInWorld: Vector3 { camFromWorld.inverse.translation }

    /// The pixel a world point falls on; nil behind the camera.
    public func project(_ pointInWorld: Vector3) -> Vector2? { camera.project(camFromWorld.apply(pointInWorld)) }
}

/// A triangle mesh: vertex positions and counter-clockwise triangles (seen from outside) as vertex indices.
public struct TriangleMesh: Equatable, Sendable {
    public var vertices: [Vector3]
    public var triangles: [SIMD3<Int32>]

    public init(vertices: [Vector3] = [], triangles: [SIMD3<Int32>] = []) {
        self.vertices = vertices
        self.triangles = triangles
    }

    /// The corners of triangle `index`.
    public func corners(_ index: Int) -> (Vector3, Vector3, Vector3) {
        let t = triangles[index]
        return (vertices[Int(t.x)], vertices[Int(t.y)], vertices[Int(t.z)])
    }

    /// The axis-aligned box around the vertices; nil for an empty mesh.
    public var bounds: (min: Vector3, max: Vector3)? { Vector3.bounds(of: vertices) }

    public var surfaceArea: Double {
        (0..<triangles.count).reduce(0) { total, index in
            let (a, b, c) = corners(index)
            return total + (b - a).cross(c - a).length / 2
        }
    }
}

extension SIMD3 where Scalar == Double {
    /// The axis-aligned box around `points`; nil when there are none.
    public static func bounds(of points: [Vector3]) -> (min: Vector3, max: Vector3)? {
        guard var low = points.first else { return nil }
        var high = low
        for point in points {
            low = pointwiseMin(low, point)
            high = pointwiseMax(high, point)
        }
        return (low, high)
    }
}
