import Foundation
import ReplicaGeometry

/// A ground-truth or model file that could not be read: which file, which line (1-based) and what was wrong.
public struct GroundTruthError: Error, Equatable, CustomStringConvertible {
    public var file: String
    /// The 1-based line of the fault; nil when the fault is not on one line (a missing file, a JSON field).
    public var line: Int?
    public var reason: String

    public init(file: String, line: Int? = nil, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String {
        if let line { return "\(file):\(line): \(reason)" }
        return "\(file): \(reason)"
    }
}

/// Readers of the shared datasets' ground truth: Middlebury, Strecha and NeRF synthetic cameras.
///
/// Every reader returns cameras in this codebase's convention: the camera looks down +z with +y down, and pixel
/// (0, 0) is the top-left corner of the top-left pixel.
public enum GroundTruthReaders {
    /// Reads a Middlebury `*_par.txt` (K, R, t per image) and the bounding box in the README.txt beside it.
    ///
    /// The image size is read from each PNG beside the file unless `imageSize` (width, height) is given.
    /// Middlebury's principal points count pixel centres as integers from 0 (the README says only that the
    /// origin is top left; the gantry was calibrated with that convention, which MVS programs reading these
    /// files, PMVS among them, also use), so half a pixel is added to move them to this codebase's convention.
    public static func middlebury(parFile: String, imageSize: (Int, Int)? = nil) throws -> SceneTruth {
        let lines = try TextLines.read(parFile)
        guard let header = lines.first, header.fields.count == 1, let count = Int(header.fields[0]), count >= 0
        else { throw GroundTruthError(file: parFile, line: lines.first?.number ?? 1, reason: "expected the count") }
        guard lines.count - 1 == count else {
            throw GroundTruthError(file: parFile, line: header.number,
                                   reason: "the count says \(count) images but \(lines.count - 1) lines follow")
        }
        let folder = (parFile as NSString).deletingLastPathComponent
        let images = try lines.dropFirst().map { line in
            try middleburyImage(line, file: parFile, folder: folder, imageSize: imageSize)
        }
        let box = try boundingBox(readme: (folder as NSString).appendingPathComponent("README.txt"))
        return SceneTruth(images: images, boundingBox: box)
    }

    /// Reads every `<image>.camera` file of a Strecha `gt_dense_cameras` folder, sorted by name.
    ///
    /// The distortion line is ignored (the images are already undistorted); a coefficient larger than 1e-6
    /// is refused, since ignoring it would misplace pixels.
    public static func strecha(cameraFolder: String) throws -> SceneTruth {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: cameraFolder)
        } catch {
            throw GroundTruthError(file: cameraFolder, reason: "cannot list the folder: \(error.localizedDescription)")
        }
        let cameraFiles = names.filter { $0.hasSuffix(".camera") }.sorted()
        guard !cameraFiles.isEmpty else { throw GroundTruthError(file: cameraFolder, reason: "no .camera files") }
        let images = try cameraFiles.map { fileName in
            try strechaImage((cameraFolder as NSString).appendingPathComponent(fileName),
                             name: String(fileName.dropLast(".camera".count)))
        }
        return SceneTruth(images: images)
    }

    /// Reads a NeRF synthetic `transforms_*.json`: the horizontal field of view and a camera-to-world matrix per
    /// frame in OpenGL's convention (looking down −z, +y up), turned into this codebase's camera.
    ///
    /// Image names are the file names of `file_path` (".png" added when it has none), as uploads keep them;
    /// the size is read from the first image's PNG header unless `imageSize` (width, height) is given.
    /// The principal point is the image centre and pixels are square, as Blender renders them.
    public static func nerf(transformsFile: String, imageSize: (Int, Int)? = nil) throws -> SceneTruth {
        let root = try jsonObject(transformsFile)
        guard let angle = (root["camera_angle_x"] as? NSNumber)?.doubleValue, angle > 0, angle < .pi else {
            throw GroundTruthError(file: transformsFile, reason: "camera_angle_x is missing or not in (0, π)")
        }
        guard let frames = root["frames"] as? [[String: Any]], !frames.isEmpty else {
            throw GroundTruthError(file: transformsFile, reason: "frames is missing, empty or not a list of objects")
        }
        let folder = (transformsFile as NSString).deletingLastPathComponent
        let paths = try frames.enumerated().map { index, frame in
            try nerfImagePath(frame, index: index, file: transformsFile, folder: folder)
        }
        let (width, height) = try imageSize ?? pngSize(of: paths[0])
        let focal = 0.5 * Double(width) / tan(angle / 2)
        let camera = PinholeCamera(width: width, height: height, focal: focal)
        let images = try frames.enumerated().map { index, frame in
            let worldFromOpenGL = try nerfMatrix(frame, index: index, file: transformsFile)
            return PosedImage(name: (paths[index] as NSString).lastPathComponent, camera: camera,
                              camFromWorld: (worldFromOpenGL * openGLFromCam).inverse)
        }
        return SceneTruth(images: images)
    }

    /// The width and height in a PNG file's IHDR chunk (bytes 16–23, big-endian).
    public static func pngSize(of path: String) throws -> (width: Int, height: Int) {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw GroundTruthError(file: path, reason: "cannot open the image to read its size")
        }
        defer { try? handle.close() }
        let head = [UInt8](handle.readData(ofLength: 24))
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard head.count == 24, Array(head[0..<8]) == signature, Array(head[12..<16]) == Array("IHDR".utf8) else {
            throw GroundTruthError(file: path, reason: "not a PNG file (no signature and IHDR chunk)")
        }
        let bigEndian = { (start: Int) in head[start..<start + 4].reduce(0) { $0 << 8 | Int($1) } }
        let width = bigEndian(16), height = bigEndian(20)
        guard width > 0, height > 0 else { throw GroundTruthError(file: path, reason: "the PNG's size is zero") }
        return (width, height)
    }

    /// Takes this codebase's camera axes (+y down, +z forward) to OpenGL's (+y up, −z forward).
    private static let openGLFromCam = Rigid3(rotation: Matrix3([1, 0, 0, 0, -1, 0, 0, 0, -1]))
}

// MARK: - Middlebury

extension GroundTruthReaders {
    private static func middleburyImage(_ line: TextLine, file: String, folder: String,
                                        imageSize: (Int, Int)?) throws -> PosedImage {
        guard line.fields.count == 22 else {
            throw GroundTruthError(file: file, line: line.number,
                                   reason: "expected a name and 21 numbers, found \(line.fields.count) fields")
        }
        let name = String(line.fields[0])
        let numbers = try line.doubles(from: 1, file: file)
        let (width, height) = try imageSize ?? pngSize(of: (folder as NSString).appendingPathComponent(name))
        let camera = try pinhole(calibration: Array(numbers[0..<9]), width: width, height: height,
                                 pixelCentreOffset: 0.5, file: file, line: line.number)
        let camFromWorld = Rigid3(rotation: Matrix3(Array(numbers[9..<18])),
                                  translation: Vector3(numbers[18], numbers[19], numbers[20]))
        return PosedImage(name: name, camera: camera, camFromWorld: camFromWorld)
    }

    /// The box in a Middlebury README: the first two parenthesised triples after the words "bounding box".
    /// Nil when there is no README or it names no bounding box.
    static func boundingBox(readme path: String) throws -> Box3? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        guard let mention = text.range(of: "bounding box", options: .caseInsensitive) else { return nil }
        let line = text[..<mention.lowerBound].filter { $0 == "\n" }.count + 1
        var corners: [Vector3] = []
        var rest = text[mention.upperBound...]
        while corners.count < 2, let open = rest.firstIndex(of: "("), let close = rest[open...].firstIndex(of: ")") {
            let fields = rest[rest.index(after: open)..<close].split { $0 == " " || $0 == "," || $0 == "\t" }
            let values = fields.compactMap { Double($0) }
            guard values.count == 3, fields.count == 3 else {
                throw GroundTruthError(file: path, line: line, reason: "a bounding-box corner is not three numbers")
            }
            corners.append(Vector3(values[0], values[1], values[2]))
            rest = rest[rest.index(after: close)...]
        }
        guard corners.count == 2 else {
            throw GroundTruthError(file: path, line: line, reason: "the bounding box does not have two corners")
        }
        return Box3(min: pointwiseMin(corners[0], corners[1]), max: pointwiseMax(corners[0], corners[1]))
    }

    /// A pinhole camera from a row-major K without skew; `pixelCentreOffset` moves the principal point from the
    /// file's pixel convention to this codebase's.
    static func pinhole(calibration k: [Double], width: Int, height: Int, pixelCentreOffset: Double,
                        file: String, line: Int) throws -> PinholeCamera {
        guard k[3] == 0, k[6] == 0, k[7] == 0, k[8] != 0 else {
            throw GroundTruthError(file: file, line: line, reason: "K is not upper triangular")
        }
        let scale = 1 / k[8]
        guard abs(k[1] * scale) <= 1e-6 * abs(k[0] * scale) else {
            throw GroundTruthError(file: file, line: line, reason: "K has a skew, which the pinhole camera lacks")
        }
        guard k[0] * scale > 0, k[4] * scale > 0 else {
            throw GroundTruthError(file: file, line: line, reason: "K's focal lengths are not positive")
        }
        return PinholeCamera(width: width, height: height, focalX: k[0] * scale, focalY: k[4] * scale,
                             principalX: k[2] * scale + pixelCentreOffset,
                             principalY: k[5] * scale + pixelCentreOffset)
    }
}

// MARK: - Strecha

extension GroundTruthReaders {
    /// One `.camera` file: K (three lines), distortion, R camera→world (three lines), the centre C, the size.
    ///
    /// The principal point is read as given: the format does not state its pixel convention, and half a pixel
    /// is under 0.02 % of these images' width.
    private static func strechaImage(_ path: String, name: String) throws -> PosedImage {
        let lines = try TextLines.read(path)
        guard lines.count == 9 else {
            throw GroundTruthError(file: path, line: lines.last?.number,
                                   reason: "expected 9 lines (K, distortion, R, C, size), found \(lines.count)")
        }
        let k = try lines[0..<3].flatMap { try $0.doubles(count: 3, file: path) }
        let distortion = try lines[3].doubles(from: 0, file: path)
        if let large = distortion.first(where: { abs($0) > 1e-6 }) {
            throw GroundTruthError(file: path, line: lines[3].number, reason: "distortion \(large) is not negligible")
        }
        let worldFromCamRotation = Matrix3(try lines[4..<7].flatMap { try $0.doubles(count: 3, file: path) })
        let c = try lines[7].doubles(count: 3, file: path)
        let size = try lines[8].integers(count: 2, file: path)
        let camera = try pinhole(calibration: k, width: size[0], height: size[1], pixelCentreOffset: 0,
                                 file: path, line: lines[0].number)
        let worldFromCam = Rigid3(rotation: worldFromCamRotation, translation: Vector3(c[0], c[1], c[2]))
        return PosedImage(name: name, camera: camera, camFromWorld: worldFromCam.inverse)
    }
}

// MARK: - NeRF

extension GroundTruthReaders {
    private static func jsonObject(_ path: String) throws -> [String: Any] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GroundTruthError(file: path, reason: "cannot read the file")
        }
        do {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw GroundTruthError(file: path, reason: "the JSON is not an object")
            }
            return object
        } catch let error as GroundTruthError {
            throw error
        } catch {
            throw GroundTruthError(file: path, reason: "not valid JSON: \(error.localizedDescription)")
        }
    }

    private static func nerfImagePath(_ frame: [String: Any], index: Int, file: String,
                                      folder: String) throws -> String {
        guard let relative = frame["file_path"] as? String, !relative.isEmpty else {
            throw GroundTruthError(file: file, reason: "frame \(index) has no file_path")
        }
        let withExtension = (relative as NSString).pathExtension.isEmpty ? relative + ".png" : relative
        return ((folder as NSString).appendingPathComponent(withExtension) as NSString).standardizingPath
    }

    /// The frame's camera-to-world matrix, checked to be a rigid motion (a rotation and a last row 0 0 0 1).
    private static func nerfMatrix(_ frame: [String: Any], index: Int, file: String) throws -> Rigid3 {
        let rows = (frame["transform_matrix"] as? [[NSNumber]])?.map { $0.map(\.doubleValue) }
        guard let rows, rows.count == 4, rows.allSatisfy({ $0.count == 4 }) else {
            throw GroundTruthError(file: file, reason: "frame \(index): transform_matrix is not 4×4 numbers")
        }
        guard rows[3] == [0, 0, 0, 1] else {
            throw GroundTruthError(file: file, reason: "frame \(index): the last row is not 0 0 0 1")
        }
        let rotation = Matrix3(rows[0..<3].flatMap { $0[0..<3] })
        let drift = (rotation.transposed * rotation + Matrix3.identity * -1).values.map(abs).max() ?? 0
        guard drift < 1e-4, rotation.determinant > 0 else {
            throw GroundTruthError(file: file, reason: "frame \(index): the 3×3 part is not a rotation")
        }
        return Rigid3(rotation: rotation, translation: Vector3(rows[0][3], rows[1][3], rows[2][3]))
    }
}

// MARK: - Text files

/// One line of a whitespace-separated text file with its 1-based number.
struct TextLine {
    var number: Int
    var fields: [Substring]

    /// The fields from `start` on as numbers.
    func doubles(from start: Int, file: String) throws -> [Double] {
        try fields[start...].map { field in
            guard let value = Double(field), value.isFinite else {
                throw GroundTruthError(file: file, line: number, reason: "'\(field)' is not a number")
            }
            return value
        }
    }

    /// Exactly `count` numbers.
    func doubles(count: Int, file: String) throws -> [Double] {
        guard fields.count == count else {
            throw GroundTruthError(file: file, line: number,
                                   reason: "expected \(count) numbers, found \(fields.count) fields")
        }
        return try doubles(from: 0, file: file)
    }

    /// Exactly `count` integers.
    func integers(count: Int, file: String) throws -> [Int] {
        guard fields.count == count else {
            throw GroundTruthError(file: file, line: number,
                                   reason: "expected \(count) integers, found \(fields.count) fields")
        }
        return try fields.map { field in
            guard let value = Int(field) else {
                throw GroundTruthError(file: file, line: number, reason: "'\(field)' is not an integer")
            }
            return value
        }
    }
}

/// Reading whitespace-separated text files line by line.
enum TextLines {
    /// The lines of a file split into fields, without `#` comment lines; blank lines are dropped unless
    /// `keepBlank` (COLMAP's images.txt marks an image without points by an empty line).
    static func read(_ path: String, keepBlank: Bool = false) throws -> [TextLine] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw GroundTruthError(file: path, reason: "cannot read the file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw GroundTruthError(file: path, reason: "the file is not UTF-8 text")
        }
        var lines: [TextLine] = []
        for (index, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let content = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if content.drop(while: { $0 == " " || $0 == "\t" }).hasPrefix("#") { continue }
            let fields = content.split { $0 == " " || $0 == "\t" }
            if fields.isEmpty && !keepBlank { continue }
            lines.append(TextLine(number: index + 1, fields: fields))
        }
        if keepBlank, lines.last?.fields.isEmpty == true, text.hasSuffix("\n") { lines.removeLast() }
        return lines
    }
}
