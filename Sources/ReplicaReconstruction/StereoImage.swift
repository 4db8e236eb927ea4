import Foundation
import ReplicaGeometry
import ReplicaImageIO

/// A photo as dense stereo reads it: the image resampled to its distortion-free pinhole camera, as grey
/// intensities 0...1 for matching and as RGB for the colours of the points.
public struct StereoImage: Sendable {
    public var width: Int { camera.width }
    public var height: Int { camera.height }
    /// Row-major grey, `width × height`, 0...1.
    public var intensity: [Float]
    /// Row-major RGB, three bytes a pixel.
    public var rgb: [UInt8]
    public var camera: PinholeCamera
    public var camFromWorld: Rigid3

    public init(intensity: [Float], rgb: [UInt8], camera: PinholeCamera, camFromWorld: Rigid3) {
        precondition(intensity.count == camera.width * camera.height && rgb.count == 3 * intensity.count,
                     "image planes do not match the camera's size")
        self.intensity = intensity
        self.rgb = rgb
        self.camera = camera
        self.camFromWorld = camFromWorld
    }

    /// `pixels` (grey or RGB, seen through `camera`) resampled to `camera.pinhole`: each output pixel takes the
    /// bilinear sample where the lens put its ray. Pixels whose ray falls off the photo stay black.
    public init(undistorting pixels: PixelBuffer, camera: SimpleRadialCamera, camFromWorld: Rigid3) {
        precondition(pixels.width == camera.width && pixels.height == camera.height,
                     "the photo is \(pixels.width)×\(pixels.height), its camera \(camera.width)×\(camera.height)")
        let width = camera.width, height = camera.height, channels = pixels.channels
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        var grey = [Float](repeating: 0, count: width * height)
        pixels.bytes.withUnsafeBufferPointer { source in
            for row in 0..<height {
                let y = (Double(row) + 0.5 - camera.principal.y) / camera.focal
                for column in 0..<width {
                    let x = (Double(column) + 0.5 - camera.principal.x) / camera.focal
                    // Array coordinates of the distorted position: pixel centres sit at whole numbers.
                    let at = camera.radial == 0 ? Vector2(Double(column), Double(row))
                        : camera.pixel(ofNormalized: Vector2(x, y)) - Vector2(0.5, 0.5)
                    guard at.x >= 0, at.y >= 0, at.x <= Double(width - 1), at.y <= Double(height - 1) else { continue }
                    let x0 = min(Int(at.x), max(0, width - 2)), y0 = min(Int(at.y), max(0, height - 2))
                    let x1 = min(x0 + 1, width - 1), y1 = min(y0 + 1, height - 1)
                    let fx = at.x - Double(x0), fy = at.y - Double(y0)
                    func value(_ px: Int, _ py: Int) -> SIMD3<Double> {
                        let offset = (py * width + px) * channels
                        return channels == 3
                            ? SIMD3(Double(source[offset]), Double(source[offset + 1]), Double(source[offset + 2]))
                            : SIMD3(repeating: Double(source[offset]))
                    }
                    let top = value(x0, y0) * (1 - fx) + value(x1, y0) * fx
                    let bottom = value(x0, y1) * (1 - fx) + value(x1, y1) * fx
                    let sample = top * (1 - fy) + bottom * fy
                    let index = row * width + column
                    rgb[3 * index] = UInt8(min(255, sample.x.rounded()))
                    rgb[3 * index + 1] = UInt8(min(255, sample.y.rounded()))
                    rgb[3 * index + 2] = UInt8(min(255, sample.z.rounded()))
                    // Rec. 601 luma, as libjpeg and VLFeat's callers weigh the channels.
                    grey[index] = Float((0.299 * sample.x + 0.587 * sample.y + 0.114 * sample.z) / 255)
                }
            }
        }
        self.init(intensity: grey, rgb: rgb, camera: camera.pinhole, camFromWorld: camFromWorld)
    }

    /// The image at half the size in each direction (a 2 × 2 box filter), its camera scaled alike.
    public func halved() -> StereoImage {
        let small = (width: max(1, width / 2), height: max(1, height / 2))
        var grey = [Float](repeating: 0, count: small.width * small.height)
        var colour = [UInt8](repeating: 0, count: small.width * small.height * 3)
        for row in 0..<small.height { for column in 0..<small.width {
            let rows = [min(2 * row, height - 1), min(2 * row + 1, height - 1)]
            let columns = [min(2 * column, width - 1), min(2 * column + 1, width - 1)]
            var sum: Float = 0
            var channels = SIMD3<Int>(repeating: 0)
            for y in rows { for x in columns {
                sum += intensity[y * width + x]
                channels &+= SIMD3(Int(rgb[3 * (y * width + x)]), Int(rgb[3 * (y * width + x) + 1]),
                                   Int(rgb[3 * (y * width + x) + 2]))
            } }
            let index = row * small.width + column
            grey[index] = sum / 4
            colour[3 * index] = UInt8(channels.x / 4)
            colour[3 * index + 1] = UInt8(channels.y / 4)
            colour[3 * index + 2] = UInt8(channels.z / 4)
        } }
        let scaleX = Double(small.width) / Double(width), scaleY = Double(small.height) / Double(height)
        let pinhole = PinholeCamera(width: small.width, height: small.height, focalX: camera.focalX * scaleX,
                                    focalY: camera.focalY * scaleY, principalX: camera.principalX * scaleX,
                                    principalY: camera.principalY * scaleY)
        return StereoImage(intensity: grey, rgb: colour, camera: pinhole, camFromWorld: camFromWorld)
    }
}
