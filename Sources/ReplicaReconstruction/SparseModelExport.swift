import Foundation
import ReplicaGeometry

/// The sparse model in the formats other tools read: COLMAP's text model and a NeRF-style `transforms.json`.
///
/// Both come in the pixels of a chosen resolution: the working copies' for this product's later stages, the
/// photos' own for users, who take the cameras to other tools with their original photos. Scaling a
/// simple-radial camera scales its focal, its principal point and every keypoint alike; its radial
/// coefficient acts on normalised coordinates and stays.
public struct SparseModelExport {
    public var result: AlignmentResult
    public var images: [AlignmentImage]
    /// Per point an RGB colour, or none (grey).
    public var colors: [SIMD3<UInt8>]?

    public init(result: AlignmentResult, images: [AlignmentImage], colors: [SIMD3<UInt8>]? = nil) {
        self.result = result
        self.images = images
        self.colors = colors
    }

    // MARK: - COLMAP

    /// `cameras.txt`, `images.txt` and `points3D.txt`, with each image's pixels multiplied by `scales[image]`
    /// (1 keeps the working copy's). Cameras, images and points are numbered from 1 as COLMAP does; an image's
    /// 2D points are all its keypoints, so a track's POINT2D_IDX is the keypoint's index.
    public func colmapText(scales: [Double]) -> (cameras: String, images: String, points: String) {
        // One COLMAP camera per physical camera and scale: photos of one camera resized alike share it.
        var cameraIDs: [String: Int] = [:]
        var camerasText = "# Camera list with one line of data per camera:\n"
            + "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        var cameraLines: [String] = []
        var imageCamera: [Int] = Array(repeating: 0, count: images.count)
        for (index, image) in images.enumerated() where result.poses[index] != nil {
            let camera = scaled(result.cameras[image.camera], by: scales[index])
            let key = "\(image.camera) \(camera.width) \(camera.height)"
            if let id = cameraIDs[key] { imageCamera[index] = id; continue }
            let id = cameraIDs.count + 1
            cameraIDs[key] = id
            imageCamera[index] = id
            cameraLines.append("\(id) SIMPLE_RADIAL \(camera.width) \(camera.height) "
                               + "\(number(camera.focal)) \(number(camera.principal.x)) "
                               + "\(number(camera.principal.y)) \(number(camera.radial))")
        }
        camerasText += "# Number of cameras: \(cameraLines.count)\n" + cameraLines.joined(separator: "\n") + "\n"

        var pointIDs: [[Int]] = images.map { Array(repeating: -1, count: $0.keypoints.count) }
        for (index, point) in result.points.enumerated() {
            for observation in point.track { pointIDs[Int(observation.x)][Int(observation.y)] = index + 1 }
        }
        let registered = result.poses.compactMap { $0 }.count
        let observations = result.points.reduce(0) { $0 + $1.track.count }
        var imagesText = "# Image list with two lines of data per image:\n"
            + "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n"
            + "#   POINTS2D[] as (X, Y, POINT3D_ID)\n"
            + "# Number of images: \(registered), mean observations per image: "
            + "\(registered == 0 ? "0" : number(Double(observations) / Double(registered)))\n"
        for (index, image) in images.enumerated() {
            guard let pose = result.poses[index] else { continue }
            let q = Self.quaternion(pose.rotation), t = pose.translation
            imagesText += "\(index + 1) \(number(q.w)) \(number(q.x)) \(number(q.y)) \(number(q.z)) "
                + "\(number(t.x)) \(number(t.y)) \(number(t.z)) \(imageCamera[index]) \(image.name)\n"
            let scale = scales[index]
            imagesText += image.keypoints.enumerated().map { feature, pixel in
                "\(number(pixel.x * scale)) \(number(pixel.y * scale)) \(pointIDs[index][feature])"
            }.joined(separator: " ") + "\n"
        }

        var pointsText = "# 3D point list with one line of data per point:\n"
            + "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
            + "# Number of points: \(result.points.count), mean track length: \(number(result.meanTrackLength))\n"
        for (index, point) in result.points.enumerated() {
            let color = colors?[index] ?? SIMD3(128, 128, 128)
            let p = point.position
            pointsText += "\(index + 1) \(number(p.x)) \(number(p.y)) \(number(p.z)) "
                + "\(color.x) \(color.y) \(color.z) \(number(error(of: point) * meanScale(point, scales)))"
            for observation in point.track { pointsText += " \(observation.x + 1) \(observation.y)" }
            pointsText += "\n"
        }
        return (camerasText, imagesText, pointsText)
    }

    /// Writes the three files into `folder` (made when missing), each whole or not at all.
    public func writeCOLMAP(to folder: String, scales: [Double]) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let text = colmapText(scales: scales)
        for (name, content) in [("cameras.txt", text.cameras), ("images.txt", text.images),
                                ("points3D.txt", text.points)] {
            try WorkFile.writeAtomically(Array(content.utf8), to: folder + "/" + name)
        }
    }

    // MARK: - transforms.json

    /// The cameras as NeRF trainers read them (instant-ngp's and nerfstudio's `transforms.json`): per frame a
    /// camera-to-world matrix in OpenGL's convention (the camera looks down −Z with +Y up) and the intrinsics
    /// in the pixels of `scales`, as an OPENCV camera whose only distortion is k1; `file_path` is
    /// `images/<photo>`.
    public func transformsJSON(scales: [Double]) -> [UInt8] {
        var frames: [[String: Any]] = []
        for (index, image) in images.enumerated() {
            guard let pose = result.poses[index] else { continue }
            let camera = scaled(result.cameras[image.camera], by: scales[index])
            let world = pose.inverse
            // Columns of the camera's axes in the world; OpenGL's camera has Y and Z flipped from ours.
            let x = world.rotation.column(0), y = world.rotation.column(1) * -1, z = world.rotation.column(2) * -1
            let c = world.translation
            let matrix: [[Double]] = [[x.x, y.x, z.x, c.x], [x.y, y.y, z.y, c.y], [x.z, y.z, z.z, c.z], [0, 0, 0, 1]]
            var frame = intrinsics(camera)
            frame["file_path"] = "images/" + image.name
            frame["transform_matrix"] = matrix
            frames.append(frame)
        }
        var document: [String: Any] = ["camera_model": "OPENCV", "frames": frames]
        // instant-ngp reads the intrinsics at the top when every frame shares them.
        if let first = frames.first {
            let keys = ["fl_x", "fl_y", "cx", "cy", "w", "h", "k1", "k2", "p1", "p2", "camera_angle_x",
                        "camera_angle_y"]
            let shared = frames.allSatisfy { frame in
                keys.allSatisfy { "\(frame[$0] ?? "")" == "\(first[$0] ?? "")" }
            }
            if shared { for key in keys { document[key] = first[key] } }
        }
        let data = (try? JSONSerialization.data(withJSONObject: document,
                                                 options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]))
            ?? Data()
        return Array(data) + [UInt8(ascii: "\n")]
    }

    private func intrinsics(_ camera: SimpleRadialCamera) -> [String: Any] {
        [
            "fl_x": camera.focal, "fl_y": camera.focal, "cx": camera.principal.x, "cy": camera.principal.y,
            "w": camera.width, "h": camera.height, "k1": camera.radial, "k2": 0.0, "p1": 0.0, "p2": 0.0,
            "camera_angle_x": 2 * atan(Double(camera.width) / (2 * camera.focal)),
            "camera_angle_y": 2 * atan(Double(camera.height) / (2 * camera.focal)),
        ]
    }

    // MARK: - Helpers

    private func scaled(_ camera: SimpleRadialCamera, by scale: Double) -> SimpleRadialCamera {
        SimpleRadialCamera(width: Int((Double(camera.width) * scale).rounded()),
                           height: Int((Double(camera.height) * scale).rounded()),
                           focal: camera.focal * scale, principal: camera.principal * scale, radial: camera.radial)
    }

    /// The mean reprojection error of a point over its track, in working pixels.
    private func error(of point: AlignedPoint) -> Double {
        var sum = 0.0
        for observation in point.track {
            let image = Int(observation.x)
            guard let pose = result.poses[image],
                  let pixel = result.cameras[images[image].camera].project(pose.apply(point.position)) else { continue }
            sum += (pixel - images[image].keypoints[Int(observation.y)]).length
        }
        return point.track.isEmpty ? 0 : sum / Double(point.track.count)
    }

    private func meanScale(_ point: AlignedPoint, _ scales: [Double]) -> Double {
        point.track.isEmpty ? 1 : point.track.reduce(0) { $0 + scales[Int($1.x)] } / Double(point.track.count)
    }

    private func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
    }

    /// The unit quaternion (w, x, y, z) of a rotation, w ≥ 0, by Shepperd's method: the largest of the four
    /// squared components is taken first, so no division by a small number.
    public static func quaternion(_ rotation: Matrix3) -> (w: Double, x: Double, y: Double, z: Double) {
        let r = rotation.values
        let trace = r[0] + r[4] + r[8]
        var q: (w: Double, x: Double, y: Double, z: Double)
        if trace > 0 {
            let s = (trace + 1).squareRoot() * 2
            q = (0.25 * s, (r[7] - r[5]) / s, (r[2] - r[6]) / s, (r[3] - r[1]) / s)
        } else if r[0] > r[4] && r[0] > r[8] {
            let s = (1 + r[0] - r[4] - r[8]).squareRoot() * 2
            q = ((r[7] - r[5]) / s, 0.25 * s, (r[1] + r[3]) / s, (r[2] + r[6]) / s)
        } else if r[4] > r[8] {
            let s = (1 + r[4] - r[0] - r[8]).squareRoot() * 2
            q = ((r[2] - r[6]) / s, (r[1] + r[3]) / s, 0.25 * s, (r[5] + r[7]) / s)
        } else {
            let s = (1 + r[8] - r[0] - r[4]).squareRoot() * 2
            q = ((r[3] - r[1]) / s, (r[2] + r[6]) / s, (r[5] + r[7]) / s, 0.25 * s)
        }
        let norm = (q.w * q.w + q.x * q.x + q.y * q.y + q.z * q.z).squareRoot()
        let sign = q.w < 0 ? -1.0 : 1.0
        return (sign * q.w / norm, sign * q.x / norm, sign * q.y / norm, sign * q.z / norm)
    }
}
