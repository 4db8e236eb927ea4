import Foundation
import ReplicaGeometry
import ReplicaImageIO
import ReplicaProtocol
import ReplicaReconstruction

// Texture Mapping: one `texture` task gives `work/mesh.ply` a UV atlas and bakes the detail level's maps onto
// it, from the photos' working copies and the undecimated surface.

/// The inputs of a `texture` task.
public struct TextureInputs: Equatable {
    /// The maps to bake, in `TextureMap.allCases` order.
    public var maps: [TextureMap]
    /// The side of each page, in texels.
    public var dimension: Int
    /// Pages the atlas may spread over; more than 1 keeps a texel per photo pixel rather than shrinking.
    public var maximumPages: Int
    public var format: TextureFormat
    /// 0...1, for jpeg.
    public var jpegQuality: Double

    public init(maps: [TextureMap], dimension: Int, maximumPages: Int = 1, format: TextureFormat = .png,
                jpegQuality: Double = 0.8) {
        self.maps = maps
        self.dimension = dimension
        self.maximumPages = maximumPages
        self.format = format
        self.jpegQuality = jpegQuality
    }

    public init(_ inputs: [String: JSONValue]) throws(TaskError) {
        let known = ["maps", "dimension", "maximumPages", "format", "jpegQuality"]
        if let unknown = inputs.keys.sorted().first(where: { !known.contains($0) }) {
            throw invalidInput("inputs.\(unknown) is not an input of a texture task")
        }
        guard case .array(let names)? = inputs["maps"], !names.isEmpty else {
            throw invalidInput("inputs.maps must be a non-empty list of texture maps")
        }
        var maps: [TextureMap] = []
        for name in names {
            guard case .string(let text) = name, let map = TextureMap(rawValue: text), !maps.contains(map) else {
                let all = TextureMap.allCases.map(\.rawValue).joined(separator: ", ")
                throw invalidInput("inputs.maps must name distinct maps among \(all)")
            }
            maps.append(map)
        }
        let sides = TextureDimension.allCases.map(\.pixels)
        guard case .number(let side)? = inputs["dimension"], sides.contains(Int(exactly: side) ?? 0) else {
            throw invalidInput("inputs.dimension must be one of \(sides.map(String.init).joined(separator: ", "))")
        }
        var pages = 1
        if let value = inputs["maximumPages"] {
            guard case .number(let count) = value, let whole = Int(exactly: count), (1...64).contains(whole) else {
                throw invalidInput("inputs.maximumPages must be a whole number from 1 to 64")
            }
            pages = whole
        }
        guard case .string(let formatName)? = inputs["format"], let format = TextureFormat(rawValue: formatName) else {
            throw invalidInput("inputs.format must be \"png\" or \"jpeg\"")
        }
        var quality = 0.8
        if let value = inputs["jpegQuality"] {
            guard case .number(let number) = value, (0...1).contains(number) else {
                throw invalidInput("inputs.jpegQuality must be a number from 0 to 1")
            }
            quality = number
        }
        self.init(maps: TextureMap.allCases.filter(maps.contains), dimension: Int(side), maximumPages: pages,
                  format: format, jpegQuality: quality)
    }
}

/// UV atlas and texture baking:
///
/// - `work/textured.ply`: `mesh.ply`'s faces, vertices split where charts meet, with texture coordinates
///   (v = 0 the top row), tangents and each face's page;
/// - `work/texture/<map>-<page>.png` (or `.jpg`): each map asked for, one file a page;
/// - `work/texture/manifest.json`: the pages, the maps' files, the displacement map's scale;
/// - `work/texture/statistics.json`: the labelling, the atlas, seam levelling, times and memory.
public struct TextureTask {
    public var inputs: TextureInputs
    public var workDirectory: String

    public init(inputs: TextureInputs, workDirectory: String) {
        self.inputs = inputs
        self.workDirectory = workDirectory
    }

    public init(_ assignment: TaskAssignment) throws(TaskError) {
        self.init(inputs: try TextureInputs(assignment.inputs), workDirectory: assignment.workDirectory)
    }

    public static let textured = "textured.ply"
    public static let manifest = "texture/manifest.json"
    public static let statistics = "texture/statistics.json"

    /// The file of one page of one map.
    public static func file(_ map: TextureMap, page: Int, format: TextureFormat) -> String {
        "texture/\(map.rawValue)-\(page).\(format == .png ? "png" : "jpg")"
    }

    private static func baked(_ map: TextureMap) -> BakedMap {
        switch map {
        case .diffuseColor: .diffuse
        case .normal: .normal
        case .ambientOcclusion: .ambientOcclusion
        case .displacement: .displacement
        case .roughness: .roughness
        }
    }

    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        let started = DispatchTime.now().uptimeNanoseconds
        var seconds: [String: Double] = [:]
        var mark = started
        func lap(_ step: String) {
            let now = DispatchTime.now().uptimeNanoseconds
            seconds[step] = Double(now - mark) * 1e-9
            mark = now
        }
        sink.progress(0, "reading the mesh and the photos")
        let mesh = try readMesh("mesh.ply")
        let scene: StereoScene
        do {
            scene = try StereoScene.read(folder: workDirectory + "/sparse")
        } catch {
            throw TaskError.failed(message: "cannot read the sparse model: \(error.reason); compute again",
                                   retryable: false, image: nil)
        }
        var views: [TextureView] = []
        for view in scene.views {
            views.append(TextureView(name: view.name, image: try loadStereoImage(view, workDirectory: workDirectory)))
            if sink.shouldStop { throw TaskError.cancelled }
        }
        lap("reading")
        sink.progress(0.1, "choosing a photo for each face")
        let labeling = TextureLabeling.label(mesh, views: views)
        lap("labelling")
        if sink.shouldStop { throw TaskError.cancelled }
        sink.progress(0.25, "packing the atlas")
        let atlas = TextureAtlas.build(mesh, labeling: labeling, views: views, pageSize: inputs.dimension,
                                       growPages: inputs.maximumPages > 1, maximumPages: inputs.maximumPages)
        lap("atlas")
        sink.progress(0.3, "levelling the seams")
        var baker = TextureBaker(mesh: mesh, atlas: atlas, views: views)
        lap("levelling")
        try ensureWorkDirectory("texture", in: workDirectory)
        // Files an earlier computation left must not pass for this one's.
        removeEarlierMaps()
        var files: [String] = []
        var mapFiles: [String: [String]] = [:]
        func store(_ pages: [[UInt8]], _ map: TextureMap) throws(TaskError) {
            let channels = Self.baked(map).channels
            for (page, bytes) in pages.enumerated() {
                let pixels = PixelBuffer(width: inputs.dimension, height: inputs.dimension, channels: channels,
                                         bytes: bytes)
                let encoded: [UInt8]
                do {
                    encoded = inputs.format == .png ? try PNGEncoder.encode(pixels)
                        : try JPEGEncoder.encode(pixels, quality: max(1, Int((inputs.jpegQuality * 100).rounded())))
                } catch {
                    throw TaskError.failed(message: "cannot encode the \(map.rawValue) map: \(error)",
                                           retryable: false, image: nil)
                }
                let file = Self.file(map, page: page, format: inputs.format)
                try writeWorkFile(encoded, file, in: workDirectory)
                files.append(file)
                mapFiles[map.rawValue, default: []].append(file)
            }
        }
        if inputs.maps.contains(.diffuseColor) {
            sink.progress(0.35, "baking the colours")
            try store(baker.bake([.diffuse])[.diffuse]!, .diffuseColor)
            lap("diffuse")
        }
        if sink.shouldStop { throw TaskError.cancelled }
        if inputs.maps.contains(.roughness) {
            sink.progress(0.45, "estimating roughness")
            baker.estimateRoughness(labeling: labeling)
            try store(baker.bake([.roughness])[.roughness]!, .roughness)
            lap("roughness")
        }
        let detailMaps = inputs.maps.filter { [.normal, .ambientOcclusion, .displacement].contains($0) }
        var displacementScale: Float = 0
        var rawTriangles = 0
        if !detailMaps.isEmpty {
            sink.progress(0.5, "reading the undecimated surface")
            var detail = DetailSurface(try readMesh("mesh-raw.ply"))
            rawTriangles = detail.triangles.count
            displacementScale = detail.diagonal * 0.02
            if detailMaps.contains(.ambientOcclusion) {
                sink.progress(0.55, "casting rays for ambient occlusion")
                detail.computeAmbientOcclusion(rays: 36, reach: detail.diagonal * 0.25)
                lap("occlusionRays")
            }
            if sink.shouldStop { throw TaskError.cancelled }
            sink.progress(0.7, "baking the detail maps")
            let baked = baker.bake(detailMaps.map(Self.baked), detail: detail, displacementScale: displacementScale)
            lap("detailBaking")
            for map in detailMaps { try store(baked[Self.baked(map)]!, map) }
            lap("detailWriting")
        }
        sink.progress(0.95, "writing the textured mesh")
        try writeWorkFile(baker.surface.plyBytes(), Self.textured, in: workDirectory)
        var manifest: [String: Any] = [
            "pageSize": inputs.dimension, "pages": atlas.pageCount, "format": inputs.format.rawValue,
            "maps": mapFiles, "mesh": Self.textured, "uvOrigin": "top-left",
        ]
        if inputs.maps.contains(.displacement) {
            manifest["displacement"] = ["scale": Double(displacementScale),
                                        "meaning": "height = (byte - 128) / 127 * scale, along the normal"]
        }
        try writeJSON(manifest, Self.manifest)
        let total = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
        seconds["total"] = total
        let charts = atlas.charts.filter { $0.view >= 0 }.count
        let statistics: [String: Any] = [
            "views": views.count, "faces": mesh.polygonCount, "unseenFaces": labeling.unseenCount,
            "charts": charts, "cells": atlas.charts.count - charts, "pages": atlas.pageCount,
            "pageSize": inputs.dimension, "texelsPerPixel": Double(atlas.scale), "fill": atlas.fill,
            "seams": ["vertices": baker.levelling.seamVertices,
                      "meanDifferenceBefore": baker.levelling.meanDifferenceBefore,
                      "meanDifferenceAfter": baker.levelling.meanDifferenceAfter],
            "rawTriangles": rawTriangles, "maps": inputs.maps.map(\.rawValue), "secondsByStep": seconds,
            "peakResidentBytes": peakResidentBytes(),
        ]
        try writeJSON(statistics, Self.statistics)
        sink.progress(1, "done")
        return TaskOutcome(outputs: [Self.textured] + files + [Self.manifest, Self.statistics], data: [
            "charts": .number(Double(charts)), "pages": .number(Double(atlas.pageCount)),
            "pageSize": .number(Double(inputs.dimension)), "texelsPerPixel": .number(Double(atlas.scale)),
            "unseenFaces": .number(Double(labeling.unseenCount)),
            "seamDifferenceBefore": .number(baker.levelling.meanDifferenceBefore),
            "seamDifferenceAfter": .number(baker.levelling.meanDifferenceAfter),
            "maps": .array(inputs.maps.map { .string($0.rawValue) }),
            "seconds": .number(total), "peakResidentBytes": .number(peakResidentBytes()),
        ])
    }

    private func removeEarlierMaps() {
        let folder = workDirectory + "/texture"
        for name in (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        where name.hasSuffix(".png") || name.hasSuffix(".jpg") {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
    }

    private func readMesh(_ relative: String) throws(TaskError) -> SurfaceMesh {
        guard let data = FileManager.default.contents(atPath: workDirectory + "/" + relative) else {
            throw TaskError.failed(message: "there is no mesh (work/\(relative)); compute again",
                                   retryable: false, image: nil)
        }
        do throws(PLYFormatError) {
            let mesh = try SurfaceMesh(plyBytes: Array(data))
            guard mesh.polygonCount > 0 else { throw PLYFormatError("it has no faces") }
            return mesh
        } catch {
            throw TaskError.failed(message: "the mesh (work/\(relative)) is damaged: \(error.reason); compute again",
                                   retryable: false, image: nil)
        }
    }

    private func writeJSON(_ document: [String: Any], _ relative: String) throws(TaskError) {
        try writeWorkFile(statisticsBytes(document), relative, in: workDirectory)
    }
}
