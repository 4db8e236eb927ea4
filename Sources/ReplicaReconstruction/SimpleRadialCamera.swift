import Foundation
import ReplicaGeometry

/// COLMAP's SIMPLE_RADIAL camera: one focal length, a principal point and one radial coefficient.
///
/// A point (x, y, z) in the camera's frame (+Z forward, +Y down) projects to the normalised point
/// (u, v) = (x/z, y/z), is distorted by the factor 1 + k·(u² + v²), and lands on the pixel
/// f·(distorted) + principal point. Pixel coordinates put the centre of the top-left pixel at (0.5, 0.5), as
/// `PinholeCamera` does.
public struct SimpleRadialCamera: Equatable, Sendable {
    public var width: Int
    public var height: Int
    public var focal: Double
    public var principal: Vector2
    /// The radial coefficient k; 0 for a distortion-free lens.
    public var radial: Double

    public init(width: Int, height: Int, focal: Double, principal: Vector2? = nil, radial: Double = 0) {
        self.width = width
        self.height = height
        self.focal = focal
        self.principal = principal ?? Vector2(Double(width) / 2, Double(height) / 2)
        self.radial = radial
    }

    /// The focal length a photo without a usable EXIF focal is first given: 1.2 × its longer side, as COLMAP
    /// assumes (about a 45° field of view across the longer side).
    public static func guessedFocal(width: Int, height: Int) -> Double { 1.2 * Double(max(width, height)) }

    /// The distortion-free pinhole with the same focal and principal point.
    public var pinhole: PinholeCamera {
        PinholeCamera(width: width, height: height, focalX: focal, focalY: focal,
                      principalX: principal.x, principalY: principal.y)
    }

    /// The pixel of a normalised, undistorted image point.
    public func pixel(ofNormalized point: Vector2) -> Vector2 {
        let factor = 1 + radial * (point * point).sum()
        return point * (factor * focal) + principal
    }

    /// The pixel of a point in the camera's frame; nil behind or on the camera plane.
    public func project(_ pointInCamera: Vector3) -> Vector2? {
        guard pointInCamera.z > 0 else { return nil }
        return pixel(ofNormalized: Vector2(pointInCamera.x / pointInCamera.z, pointInCamera.y / pointInCamera.z))
    }

    /// The normalised, undistorted image point of a pixel: the distortion inverted by Newton's method on the
    /// radius, which converges in a few steps for any lens whose distortion keeps the radius monotone.
    public func normalized(_ pixel: Vector2) -> Vector2 {
        let distorted = (pixel - principal) / focal
        guard radial != 0 else { return distorted }
        let target = (distorted * distorted).sum().squareRoot()
        guard target > 0 else { return distorted }
        // Solve r·(1 + k·r²) = target for r.
        var radius = target
        for _ in 0..<20 {
            let value = radius * (1 + radial * radius * radius) - target
            let slope = 1 + 3 * radial * radius * radius
            guard slope > 1e-12 else { break }
            let step = value / slope
            radius -= step
            if abs(step) < 1e-14 * max(1, target) { break }
        }
        guard radius.isFinite, radius > 0 else { return distorted }
        return distorted * (radius / target)
    }

    /// The unit ray in the camera's frame through a pixel.
    public func bearing(_ pixel: Vector2) -> Vector3 {
        let point = normalized(pixel)
        return Vector3(point.x, point.y, 1).normalized
    }

    /// Whether the pixel lies on the image.
    public func contains(_ pixel: Vector2) -> Bool {
        pixel.x >= 0 && pixel.y >= 0 && pixel.x <= Double(width) && pixel.y <= Double(height)
    }
}
