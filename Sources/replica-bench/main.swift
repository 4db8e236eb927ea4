import Foundation
import ReplicaEvaluation
import ReplicaExport

// replica-bench: render synthetic scenes with known truth, and measure results against truth. Tables go to
// stdout (or JSON with --json); errors to stderr, with exit status 64 for a wrong command line and 1 otherwise.

let usage = """
    USAGE: replica-bench render --out DIR [--shape SHAPE] [--preset ci|benchmark] [--views N] [--size WxH]
                                [--seed N] [--path rings|walk] [--rings DEG,DEG…] [--fov DEGREES]
                                [--format png|jpeg|both]
           replica-bench evaluate --truth PATH [--cameras COLMAP_DIR] [--points PLY] [--mesh PLY]
                                  [--texture IMAGE] [--renders DIR] [--images DIR] [--views NAME,NAME…]
                                  [--samples N] [--json]
           replica-bench convert --glb FILE --format obj|fbx --out DIR [--repeat N]

    render writes DIR/images/ (PNG and/or JPEG with EXIF focal length), DIR/truth/cameras.json and
    DIR/truth/mesh.ply. Shapes: \(SyntheticShape.allCases.map(\.rawValue).joined(separator: ", ")).
    The ci preset is 12 views of 320×240 on one ring; benchmark is 100 views of 1600×1200 on four.
    --rings puts the views on rings at those elevations instead.

    evaluate reads the truth from a folder written by render, a Middlebury *_par.txt, a Strecha
    gt_dense_cameras folder or a NeRF transforms_*.json, and prints a table per part of the result given:
    cameras and sparse structure (a COLMAP text model), geometry (a PLY point cloud or mesh, against a true
    surface; --samples points on each surface, default 100000), containment (the share of --points inside the
    object's box, where the truth gives one), appearance (a PLY mesh with vertex colours, or with texture
    coordinates and its --texture, rendered unlit from the true views, or those --views names, and compared
    with their photos; --renders writes each rendering beside its photo as DIR/<view>.png). Points given
    with --cameras are in those cameras' frame and are aligned to the truth with them.

    convert makes from a GLB what the download endpoint makes on request (OBJ with its material library and
    textures, or FBX), --repeat times (default 1), writes the files to DIR and prints the seconds of each run.

    """

/// `--flag value` and `--flag=value` pairs after the subcommand; a flag without a value is "true".
func parseFlags(_ arguments: ArraySlice<String>, allowed: Set<String>, switches: Set<String> = []) throws
    -> [String: String] {
    var flags: [String: String] = [:]
    var rest = arguments
    while let argument = rest.popFirst() {
        guard argument.hasPrefix("--") else { throw Bench.Failure("unexpected argument '\(argument)'", usage: true) }
        let parts = argument.dropFirst(2).split(separator: "=", maxSplits: 1).map(String.init)
        let name = parts.first ?? ""
        guard allowed.contains(name) || switches.contains(name) else {
            throw Bench.Failure("unknown flag --\(name)", usage: true)
        }
        if switches.contains(name) {
            flags[name] = "true"
        } else if parts.count == 2 {
            flags[name] = parts[1]
        } else if let value = rest.popFirst() {
            flags[name] = value
        } else {
            throw Bench.Failure("--\(name) needs a value", usage: true)
        }
    }
    return flags
}

func integer(_ text: String, _ flag: String) throws -> Int {
    guard let value = Int(text) else {
        throw Bench.Failure("--\(flag) must be a whole number, not '\(text)'", usage: true)
    }
    return value
}

func renderOptions(_ arguments: ArraySlice<String>) throws -> Bench.RenderOptions {
    let flags = try parseFlags(arguments, allowed: ["out", "shape", "preset", "views", "size", "seed", "path", "rings",
                                                    "fov", "format"])
    guard let folder = flags["out"] else { throw Bench.Failure("render needs --out DIR", usage: true) }
    var spec: SceneSpec
    switch flags["preset"] ?? "ci" {
    case "ci": spec = .ci
    case "benchmark": spec = .benchmark
    case let other: throw Bench.Failure("--preset must be ci or benchmark, not '\(other)'", usage: true)
    }
    if let shape = flags["shape"] {
        guard let value = SyntheticShape(rawValue: shape) else {
            throw Bench.Failure("--shape must be one of "
                                + SyntheticShape.allCases.map(\.rawValue).joined(separator: ", "), usage: true)
        }
        spec.shape = value
    }
    if let views = flags["views"] { spec.viewCount = try integer(views, "views") }
    if let size = flags["size"] {
        let sides = size.split(separator: "x").compactMap { Int($0) }
        guard sides.count == 2 else { throw Bench.Failure("--size must be WIDTHxHEIGHT, not '\(size)'", usage: true) }
        (spec.width, spec.height) = (sides[0], sides[1])
    }
    if let seed = flags["seed"] {
        guard let value = UInt64(seed) else { throw Bench.Failure("--seed must be 0 or more", usage: true) }
        spec.seed = value
    }
    switch flags["path"] {
    case nil: break
    case "walk": spec.path = .walk
    case "rings": spec.path = .rings(elevationsDegrees: [-10, 15, 40, 65])
    case let other?: throw Bench.Failure("--path must be rings or walk, not '\(other)'", usage: true)
    }
    if let rings = flags["rings"] {
        let elevations = rings.split(separator: ",").compactMap { Double($0) }
        guard !elevations.isEmpty, elevations.count == rings.split(separator: ",").count else {
            throw Bench.Failure("--rings must be elevations in degrees separated by commas, not '\(rings)'",
                                usage: true)
        }
        spec.path = .rings(elevationsDegrees: elevations)
    }
    if let fov = flags["fov"] {
        guard let value = Double(fov) else { throw Bench.Failure("--fov must be a number of degrees", usage: true) }
        spec.fieldOfViewDegrees = value
    }
    guard let format = SceneWriter.Format(rawValue: flags["format"] ?? "both") else {
        throw Bench.Failure("--format must be png, jpeg or both", usage: true)
    }
    do {
        try spec.validate()
    } catch {
        throw Bench.Failure("\(error)", usage: true)
    }
    return Bench.RenderOptions(spec: spec, format: format, folder: folder)
}

func evaluateOptions(_ arguments: ArraySlice<String>) throws -> (Bench.EvaluateOptions, json: Bool) {
    let flags = try parseFlags(arguments, allowed: ["truth", "cameras", "points", "mesh", "texture", "renders",
                                                    "images", "views", "samples"], switches: ["json"])
    guard let truth = flags["truth"] else { throw Bench.Failure("evaluate needs --truth PATH", usage: true) }
    let views = flags["views"].map { $0.split(separator: ",").map(String.init) }
    let samples = try flags["samples"].map { try integer($0, "samples") } ?? 100_000
    return (Bench.EvaluateOptions(truth: truth, cameras: flags["cameras"], points: flags["points"],
                                  mesh: flags["mesh"], texture: flags["texture"],
                                  renders: flags["renders"], images: flags["images"], views: views,
                                  surfaceSamples: samples), flags["json"] != nil)
}

func run(_ arguments: [String]) throws {
    guard let command = arguments.first else { throw Bench.Failure("no subcommand", usage: true) }
    switch command {
    case "render":
        print(try Bench.render(renderOptions(arguments.dropFirst())))
    case "evaluate":
        let (options, json) = try evaluateOptions(arguments.dropFirst())
        let summary = try Bench.evaluate(options)
        print(json ? try EvaluationReport.json(summary) : Bench.tables(summary))
    case "convert":
        let flags = try parseFlags(arguments.dropFirst(), allowed: ["glb", "format", "out", "repeat"])
        guard let glb = flags["glb"], let out = flags["out"],
              let format = flags["format"].flatMap(ModelConversion.init(rawValue:)) else {
            throw Bench.Failure("convert needs --glb FILE, --format obj|fbx and --out DIR", usage: true)
        }
        let repeats = try flags["repeat"].map { try integer($0, "repeat") } ?? 1
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for _ in 0..<max(1, repeats) {
            // As the gateway does it: read the GLB from disk, convert, write every file.
            let started = Date()
            guard let bytes = FileManager.default.contents(atPath: glb) else {
                throw Bench.Failure("cannot read \(glb)")
            }
            for file in try format.files(fromGLB: Array(bytes)) {
                try Data(file.bytes).write(to: URL(fileURLWithPath: out + "/" + file.name))
            }
            print(String(format: "%.4f", Date().timeIntervalSince(started)))
        }
    case "--help", "-h", "help":
        FileHandle.standardOutput.write(Data(usage.utf8))
    default:
        throw Bench.Failure("unknown subcommand '\(command)'", usage: true)
    }
}

do {
    try run(Array(CommandLine.arguments.dropFirst()))
} catch let failure as Bench.Failure {
    FileHandle.standardError.write(Data(("replica-bench: \(failure)\n" + (failure.isUsage ? usage : "")).utf8))
    exit(failure.isUsage ? 64 : 1)
} catch {
    FileHandle.standardError.write(Data("replica-bench: \(error)\n".utf8))
    exit(1)
}
