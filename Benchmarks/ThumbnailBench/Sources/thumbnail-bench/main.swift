import Foundation
import ReplicaImageIO

// thumbnail-bench make OUT_DIR PHOTO...     the thumbnail of each photo, as OUT_DIR/<photo's base name>.jpg
// thumbnail-bench compare OURS THEIRS...   mean absolute pixel difference of each pair, one JSON object a line
//
// `make` is the side of Benchmarks/thumbnails that is timed: one process for all the photos, as vipsthumbnail is
// given them. It prints its own time inside the process on stderr, so the report can tell start-up apart.

/// Why the program stopped, as one line for stderr.
enum BenchError: Error, CustomStringConvertible {
    case usage
    case image(ImageIOError)
    case io(String)

    var description: String {
        switch self {
        case .usage: return "usage: thumbnail-bench make OUT_DIR PHOTO... | compare OURS THEIRS [OURS THEIRS]..."
        case .image(let error): return error.description
        case .io(let detail): return detail
        }
    }
}

func readBytes(_ path: String) throws(BenchError) -> [UInt8] {
    guard let data = FileManager.default.contents(atPath: path) else { throw .io("\(path): cannot be read") }
    return [UInt8](data)
}

func writeBytes(_ bytes: [UInt8], to path: String) throws(BenchError) {
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else {
        throw .io("\(path): cannot be written")
    }
}

/// The output name vipsthumbnail's `-o DIR/%s.jpg` gives the same photo: the base name without its extension.
func thumbnailPath(for photo: String, in directory: String) -> String {
    let base = URL(fileURLWithPath: photo).deletingPathExtension().lastPathComponent
    return "\(directory)/\(base).jpg"
}

/// Reads each photo, makes its thumbnail with `Thumbnail.jpeg` and writes it.
func makeThumbnails(_ photos: [String], into directory: String) throws(BenchError) {
    let start = ContinuousClock.now
    for photo in photos {
        let data = try readBytes(photo)
        let thumbnail: [UInt8]
        do { thumbnail = try Thumbnail.jpeg(from: data, name: photo) } catch { throw .image(error) }
        try writeBytes(thumbnail, to: thumbnailPath(for: photo, in: directory))
    }
    let elapsed = ContinuousClock.now - start
    FileHandle.standardError.write(Data("in-process seconds: \(seconds(elapsed))\n".utf8))
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
}

/// How far apart two thumbnails are, both decoded to RGB by ImageReader.
struct Difference {
    var ours: PixelBuffer
    var theirs: PixelBuffer

    /// Mean of |ours − theirs| over every channel of every pixel both cover, on the 0–255 scale. When the sizes
    /// differ (a rounding of the short side), only the overlapping top-left rectangle counts.
    var meanAbsolute: Double {
        let width = min(ours.width, theirs.width)
        let height = min(ours.height, theirs.height)
        var total = 0
        for y in 0..<height {
            let ourRow = y * ours.width * 3
            let theirRow = y * theirs.width * 3
            for x in 0..<(width * 3) {
                total += abs(Int(ours.bytes[ourRow + x]) - Int(theirs.bytes[theirRow + x]))
            }
        }
        return Double(total) / Double(max(1, width * height * 3))
    }

    var json: String {
        "{\"ours\": [\(ours.width), \(ours.height)], \"theirs\": [\(theirs.width), \(theirs.height)], "
            + "\"mean_absolute_difference\": \(String(format: "%.3f", meanAbsolute))}"
    }
}

func decodeRGB(_ path: String) throws(BenchError) -> PixelBuffer {
    let data = try readBytes(path)
    do { return try ImageReader.decode(data: data, name: path).pixels } catch { throw .image(error) }
}

/// Prints one JSON line per pair of thumbnails.
func compare(_ paths: [String]) throws(BenchError) {
    guard !paths.isEmpty, paths.count % 2 == 0 else { throw .usage }
    for pair in stride(from: 0, to: paths.count, by: 2) {
        let difference = Difference(ours: try decodeRGB(paths[pair]), theirs: try decodeRGB(paths[pair + 1]))
        print(difference.json)
    }
}

func run(_ arguments: [String]) throws(BenchError) {
    switch arguments.first {
    case "make" where arguments.count >= 3: try makeThumbnails(Array(arguments.dropFirst(2)), into: arguments[1])
    case "compare": try compare(Array(arguments.dropFirst()))
    default: throw .usage
    }
}

do {
    try run(Array(CommandLine.arguments.dropFirst()))
} catch {
    FileHandle.standardError.write(Data("thumbnail-bench: \(error)\n".utf8))
    if case .usage = error { exit(64) }
    exit(1)
}
