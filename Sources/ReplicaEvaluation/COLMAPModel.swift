import Foundation
import ReplicaGeometry

/// COLMAP's text model (`cameras.txt`, `images.txt`, `points3D.txt`), read into and written from a `SparseModel`.
///
/// COLMAP puts the centre of the top-left pixel at (0.5, 0.5), as this codebase does, so pixels and principal
/// points are taken as they are. Distortion parameters (SIMPLE_RADIAL, RADIAL, OPENCV) are dropped: the model
/// keeps a pinhole camera only, so such a model's pixels are where the distorted image has them.
public enum COLMAPModel {
    /// Reads the three text files in `folder`; images keep the order of `images.txt`.
    public static func read(folder: String) throws -> SparseModel {
        let cameras = try readCameras(path(folder, "cameras.txt"))
        let images = try readImages(path(folder, "images.txt"), cameras: cameras)
        let points = try readPoints(path(folder, "points3D.txt"), images: images)
        return SparseModel(images: images.map(\.posed), points: points)
    }

    /// Writes `model` as the three text files in `folder` (made when missing), one PINHOLE camera per image.
    ///
    /// Image `i` gets IMAGE_ID and CAMERA_ID `i + 1`, point `j` POINT3D_ID `j + 1`; each observation becomes one
    /// POINT2D of its image. ERROR is written as 0, since a `SparsePoint` has none.
    public static func write(_ model: SparseModel, to folder: String) throws {
        try createFolder(folder)
        let observations = pointsPerImage(model)
        try save(camerasText(model), to: path(folder, "cameras.txt"))
        try save(imagesText(model, observations: observations), to: path(folder, "images.txt"))
        try save(pointsText(model, observations: observations), to: path(folder, "points3D.txt"))
    }

    private static func path(_ folder: String, _ name: String) -> String {
        (folder as NSString).appendingPathComponent(name)
    }
}

// MARK: - Reading

extension COLMAPModel {
    /// An image of `images.txt` with what `points3D.txt` refers to.
    private struct ImageEntry {
        var id: Int
        var posed: PosedImage
        /// POINTS2D in order: the pixel and the POINT3D_ID (−1 when unmatched).
        var points2D: [(pixel: Vector2, point3DID: Int)]
    }

    private static func readCameras(_ file: String) throws -> [Int: PinholeCamera] {
        var cameras: [Int: PinholeCamera] = [:]
        for line in try TextLines.read(file) {
            guard line.fields.count >= 4, let id = Int(line.fields[0]) else {
                throw GroundTruthError(file: file, line: line.number,
                                       reason: "expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]")
            }
            guard cameras[id] == nil else {
                throw GroundTruthError(file: file, line: line.number, reason: "camera \(id) appears twice")
            }
            cameras[id] = try camera(line, file: file)
        }
        return cameras
    }

    /// One line of `cameras.txt` as a pinhole camera, its distortion dropped.
    private static func camera(_ line: TextLine, file: String) throws -> PinholeCamera {
        let model = String(line.fields[1])
        let size = try TextLine(number: line.number, fields: Array(line.fields[2..<4])).integers(count: 2, file: file)
        let params = try line.doubles(from: 4, file: file)
        let counts = ["SIMPLE_PINHOLE": 3, "PINHOLE": 4, "SIMPLE_RADIAL": 4, "RADIAL": 5, "OPENCV": 8]
        guard let expected = counts[model] else {
            throw GroundTruthError(file: file, line: line.number, reason: "camera model \(model) is not supported")
        }
        guard params.count == expected else {
            throw GroundTruthError(file: file, line: line.number,
                                   reason: "\(model) takes \(expected) parameters, found \(params.count)")
        }
        guard size[0] > 0, size[1] > 0, params[0] > 0 else {
            throw GroundTruthError(file: file, line: line.number, reason: "size and focal length must be positive")
        }
        // Models with one focal length list f, cx, cy; the others fx, fy, cx, cy.
        let separate = model == "PINHOLE" || model == "OPENCV"
        let (fx, fy) = separate ? (params[0], params[1]) : (params[0], params[0])
        let centre = separate ? 2 : 1
        return PinholeCamera(width: size[0], height: size[1], focalX: fx, focalY: fy,
                             principalX: params[centre], principalY: params[centre + 1])
    }

    private static func readImages(_ file: String, cameras: [Int: PinholeCamera]) throws -> [ImageEntry] {
        let lines = try TextLines.read(file, keepBlank: true)
        var entries: [ImageEntry] = []
        var index = 0
        while index < lines.count {
            let header = lines[index]
            index += 1
            if header.fields.isEmpty { continue }
            let points = index < lines.count ? lines[index] : TextLine(number: header.number + 1, fields: [])
            index += 1
            let entry = try image(header, points: points, file: file, cameras: cameras)
            guard !entries.contains(where: { $0.id == entry.id }) else {
                throw GroundTruthError(file: file, line: header.number, reason: "image \(entry.id) appears twice")
            }
            entries.append(entry)
        }
        return entries
    }

    /// One image: `IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`, then its `X Y POINT3D_ID` triples.
    private static func image(_ header: TextLine, points: TextLine, file: String,
                              cameras: [Int: PinholeCamera]) throws -> ImageEntry {
        guard header.fields.count >= 10, let id = Int(header.fields[0]), let cameraID = Int(header.fields[8]) else {
            throw GroundTruthError(file: file, line: header.number,
                                   reason: "expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME")
        }
        let pose = try TextLine(number: header.number, fields: Array(header.fields[1..<8])).doubles(from: 0, file: file)
        guard let camera = cameras[cameraID] else {
            throw GroundTruthError(file: file, line: header.number, reason: "camera \(cameraID) is not in cameras.txt")
        }
        let quaternion = SIMD4(pose[1], pose[2], pose[3], pose[0])
        guard (quaternion * quaternion).sum() > 1e-12 else {
            throw GroundTruthError(file: file, line: header.number, reason: "the quaternion is zero")
        }
        let camFromWorld = Rigid3(rotation: Matrix3(quaternion: quaternion),
                                  translation: Vector3(pose[4], pose[5], pose[6]))
        let name = header.fields[9...].joined(separator: " ")
        let posed = PosedImage(name: name, camera: camera, camFromWorld: camFromWorld)
        return ImageEntry(id: id, posed: posed, points2D: try points2D(points, file: file))
    }

    private static func points2D(_ line: TextLine, file: String) throws -> [(pixel: Vector2, point3DID: Int)] {
        guard line.fields.count % 3 == 0 else {
            throw GroundTruthError(file: file, line: line.number,
                                   reason: "POINTS2D is not X Y POINT3D_ID triples (\(line.fields.count) fields)")
        }
        return try stride(from: 0, to: line.fields.count, by: 3).map { start in
            guard let x = Double(line.fields[start]), let y = Double(line.fields[start + 1]),
                  let id = Int(line.fields[start + 2]) else {
                throw GroundTruthError(file: file, line: line.number,
                                       reason: "point \(start / 3) of POINTS2D is not X Y POINT3D_ID")
            }
            return (Vector2(x, y), id)
        }
    }

    private static func readPoints(_ file: String, images: [ImageEntry]) throws -> [SparsePoint] {
        let indexByID = Dictionary(uniqueKeysWithValues: images.enumerated().map { ($0.element.id, $0.offset) })
        return try TextLines.read(file).map { line in
            try point(line, file: file, images: images, indexByID: indexByID)
        }
    }

    /// One point: `POINT3D_ID X Y Z R G B ERROR`, then `IMAGE_ID POINT2D_IDX` pairs resolved to pixels.
    private static func point(_ line: TextLine, file: String, images: [ImageEntry],
                              indexByID: [Int: Int]) throws -> SparsePoint {
        guard line.fields.count >= 8, (line.fields.count - 8) % 2 == 0, let id = Int(line.fields[0]) else {
            throw GroundTruthError(file: file, line: line.number,
                                   reason: "expected POINT3D_ID X Y Z R G B ERROR and IMAGE_ID POINT2D_IDX pairs")
        }
        let xyz = try TextLine(number: line.number, fields: Array(line.fields[1..<4])).doubles(from: 0, file: file)
        let rgb = line.fields[4..<7].compactMap { UInt8($0) }
        guard rgb.count == 3 else {
            throw GroundTruthError(file: file, line: line.number, reason: "the colour is not three values 0–255")
        }
        let track = try stride(from: 8, to: line.fields.count, by: 2).map { start in
            try observation(line, at: start, point3DID: id, file: file, images: images, indexByID: indexByID)
        }
        return SparsePoint(position: Vector3(xyz[0], xyz[1], xyz[2]), color: SIMD3(rgb[0], rgb[1], rgb[2]),
                           track: track)
    }

    /// The pair at `start` as an observation; its POINT2D must name this point back.
    private static func observation(_ line: TextLine, at start: Int, point3DID: Int, file: String,
                                    images: [ImageEntry], indexByID: [Int: Int]) throws -> SparsePoint.Observation {
        guard let imageID = Int(line.fields[start]), let pointIndex = Int(line.fields[start + 1]) else {
            throw GroundTruthError(file: file, line: line.number, reason: "a track entry is not two integers")
        }
        guard let imageIndex = indexByID[imageID] else {
            throw GroundTruthError(file: file, line: line.number, reason: "image \(imageID) is not in images.txt")
        }
        let points2D = images[imageIndex].points2D
        guard points2D.indices.contains(pointIndex), points2D[pointIndex].point3DID == point3DID else {
            throw GroundTruthError(file: file, line: line.number,
                                   reason: "POINT2D \(pointIndex) of image \(imageID) is not point \(point3DID)")
        }
        return SparsePoint.Observation(imageIndex: imageIndex, pixel: points2D[pointIndex].pixel)
    }
}

// MARK: - Writing

extension COLMAPModel {
    /// Per image, the (point index, pixel) of each observation in the order of the points and their tracks.
    private static func pointsPerImage(_ model: SparseModel) -> [[(point: Int, pixel: Vector2)]] {
        var perImage = Array(repeating: [(point: Int, pixel: Vector2)](), count: model.images.count)
        for (pointIndex, point) in model.points.enumerated() {
            for observation in point.track {
                perImage[observation.imageIndex].append((pointIndex, observation.pixel))
            }
        }
        return perImage
    }

    private static func camerasText(_ model: SparseModel) -> String {
        var text = "# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n# Number of cameras: \(model.images.count)\n"
        for (index, image) in model.images.enumerated() {
            let c = image.camera
            text += "\(index + 1) PINHOLE \(c.width) \(c.height) \(c.focalX) \(c.focalY) \(c.principalX) "
                + "\(c.principalY)\n"
        }
        return text
    }

    private static func imagesText(_ model: SparseModel, observations: [[(point: Int, pixel: Vector2)]]) -> String {
        var text = "# IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME\n# POINTS2D[] as (X, Y, POINT3D_ID)\n"
        for (index, image) in model.images.enumerated() {
            let q = quaternion(rotation: image.camFromWorld.rotation), t = image.camFromWorld.translation
            text += "\(index + 1) \(q.w) \(q.x) \(q.y) \(q.z) \(t.x) \(t.y) \(t.z) \(index + 1) \(image.name)\n"
            text += observations[index].map { "\($0.pixel.x) \($0.pixel.y) \($0.point + 1)" }
                .joined(separator: " ") + "\n"
        }
        return text
    }

    private static func pointsText(_ model: SparseModel, observations: [[(point: Int, pixel: Vector2)]]) -> String {
        var nextIndex = Array(repeating: 0, count: model.images.count)
        var text = "# POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)\n"
        for (pointIndex, point) in model.points.enumerated() {
            let p = point.position
            text += "\(pointIndex + 1) \(p.x) \(p.y) \(p.z) \(point.color.x) \(point.color.y) \(point.color.z) 0"
            for observation in point.track {
                // POINT2D indices follow pointsPerImage's order, which visits the tracks in this same order.
                text += " \(observation.imageIndex + 1) \(nextIndex[observation.imageIndex])"
                nextIndex[observation.imageIndex] += 1
            }
            text += "\n"
        }
        precondition(zip(nextIndex, observations).allSatisfy { $0 == $1.count }, "POINT2D indices out of step")
        return text
    }

    private static func createFolder(_ folder: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw GroundTruthError(file: folder, reason: "cannot make the folder: \(error.localizedDescription)")
        }
    }

    private static func save(_ text: String, to file: String) throws {
        do {
            try Data(text.utf8).write(to: URL(fileURLWithPath: file), options: .atomic)
        } catch {
            throw GroundTruthError(file: file, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}

// MARK: - Quaternions

extension COLMAPModel {
    /// The unit quaternion (x, y, z, w) with w ≥ 0 of a rotation, by the largest of its four squared components.
    static func quaternion(rotation r: Matrix3) -> SIMD4<Double> {
        let m = r.values, trace = r.trace
        let squares = [1 + trace, 1 + m[0] - m[4] - m[8], 1 - m[0] + m[4] - m[8], 1 - m[0] - m[4] + m[8]]
        let largest = squares.indices.max { squares[$0] < squares[$1] } ?? 0
        let s = squares[largest].squareRoot() * 2
        let q: SIMD4<Double>
        switch largest {
        case 0: q = SIMD4((m[7] - m[5]) / s, (m[2] - m[6]) / s, (m[3] - m[1]) / s, s / 4)
        case 1: q = SIMD4(s / 4, (m[1] + m[3]) / s, (m[2] + m[6]) / s, (m[7] - m[5]) / s)
        case 2: q = SIMD4((m[1] + m[3]) / s, s / 4, (m[5] + m[7]) / s, (m[2] - m[6]) / s)
        default: q = SIMD4((m[2] + m[6]) / s, (m[5] + m[7]) / s, s / 4, (m[3] - m[1]) / s)
        }
        return q.w < 0 ? -q : q
    }
}
