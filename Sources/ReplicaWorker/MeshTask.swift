import Foundation
import ReplicaProtocol
import ReplicaReconstruction

// Mesh Generation: one `mesh` task turns `work/dense.ply` into a closed surface, cleans it, and decimates it to
// the detail level's polygon budget, in triangles or quads.

/// The inputs of a `mesh` task.
public struct MeshInputs: Equatable {
    /// The most polygons `mesh.ply` may have (the detail level's budget, or custom's `maximumPolygonCount`).
    public var maximumPolygons: Int
    public var primitive: MeshPrimitive
    /// The cloud was masked to one object: pieces apart from it are dropped more eagerly.
    public var masking: Bool

    public init(maximumPolygons: Int, primitive: MeshPrimitive, masking: Bool) {
        self.maximumPolygons = maximumPolygons
        self.primitive = primitive
        self.masking = masking
    }

    public init(_ inputs: [String: JSONValue]) throws(TaskError) {
        let known = ["maxPolygons", "primitive", "masking"]
        if let unknown = inputs.keys.sorted().first(where: { !known.contains($0) }) {
            throw invalidInput("inputs.\(unknown) is not an input of a mesh task")
        }
        guard case .number(let count)? = inputs["maxPolygons"], count == count.rounded(),
              ComputeOptions.polygonCountRange.contains(Int(exactly: count) ?? 0) else {
            let range = ComputeOptions.polygonCountRange
            throw invalidInput("inputs.maxPolygons must be a whole number from \(range.lowerBound) "
                               + "to \(range.upperBound)")
        }
        guard case .string(let name)? = inputs["primitive"], let primitive = MeshPrimitive(rawValue: name) else {
            throw invalidInput("inputs.primitive must be \"triangle\" or \"quad\"")
        }
        guard case .bool(let masking)? = inputs["masking"] else {
            throw invalidInput("inputs.masking must be true or false")
        }
        self.init(maximumPolygons: Int(count), primitive: primitive, masking: masking)
    }
}

/// Surface reconstruction, cleaning and decimation:
///
/// - `work/mesh-raw.ply`: the cleaned surface before decimation, triangles, for raw output and texture baking;
/// - `work/mesh.ply`: within the polygon budget, triangles or quads, with smooth normals;
/// - `work/mesh/statistics.json`: the solve, the cleaning, the counts, whether the mesh is watertight, times.
public struct MeshTask {
    public var inputs: MeshInputs
    public var workDirectory: String

    public static let outputs = ["mesh.ply", "mesh-raw.ply", "mesh/statistics.json"]
    /// The finest grid the solve uses (6 floats a node: about 1.4 GB at 384³), whatever the budget asks for.
    public static let largestResolution = 384
    public static let smallestResolution = 32

    public init(inputs: MeshInputs, workDirectory: String) {
        self.inputs = inputs
        self.workDirectory = workDirectory
    }

    public init(_ assignment: TaskAssignment) throws(TaskError) {
        self.init(inputs: try MeshInputs(assignment.inputs), workDirectory: assignment.workDirectory)
    }

    /// The grid resolution for a budget: marching cubes makes about two triangles per cell the surface
    /// crosses, and the solve aims at three times the budget, so that decimation has detail to choose from.
    /// The crossed cells are counted at 64 cells a side and scale with the square of the resolution. A cloud
    /// too sparse for that grid (under one point per crossed cell) gets a coarser one.
    public static func resolution(for cloud: OrientedPointCloud, polygons: Int) -> Int {
        guard let bounds = PoissonSurface.bounds(of: cloud.positions) else { return smallestResolution }
        let probe = 64.0
        let cell = Float(Double((bounds.max - bounds.min).max()) / probe)
        guard cell > 0 else { return smallestResolution }
        var occupied = Set<SIMD3<Int32>>()
        for p in cloud.positions {
            let g = (p - bounds.min) / cell
            occupied.insert(SIMD3<Int32>(Int32(g.x), Int32(g.y), Int32(g.z)))
        }
        let crossed = Double(max(1, occupied.count))
        let wanted = probe * (1.5 * Double(polygons) / crossed).squareRoot()
        let supported = probe * (Double(cloud.count) / crossed).squareRoot()
        let resolution = Int(min(wanted, supported).rounded())
        return min(largestResolution, max(smallestResolution, resolution))
    }

    /// Cells around the points where the surface is kept: 3 % of the box's longest side, so that gaps in the
    /// cloud up to about 6 % across stay closed, while a surface the solve invents far from any point (under an
    /// object that stood on the ground, across an open scene) is trimmed away.
    public static func supportRadius(resolution: Int) -> Int { max(2, Int((0.03 * Double(resolution)).rounded(.up))) }

    public func run(_ sink: TaskSink) throws(TaskError) -> TaskOutcome {
        let started = DispatchTime.now().uptimeNanoseconds
        func seconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        sink.progress(0, "reading the point cloud")
        let cloud = try readCloud()
        var options = PoissonOptions()
        options.resolution = Self.resolution(for: cloud, polygons: inputs.maximumPolygons)
        options.supportRadius = Self.supportRadius(resolution: options.resolution)
        sink.progress(0.02, "solving for the surface")
        let solving = DispatchTime.now().uptimeNanoseconds
        var stopped = false
        let solved = PoissonSurface.indicator(of: cloud, options: options) { fraction in
            if sink.shouldStop { stopped = true; return false }
            sink.progress(0.02 + 0.6 * fraction, "solving for the surface")
            return true
        }
        guard let (grid, solve) = solved, !stopped else {
            if stopped { throw TaskError.cancelled }
            throw TaskError.failed(message: "the point cloud has too few points for a surface; take photos with "
                                   + "more overlap and texture and compute again", retryable: false, image: nil)
        }
        let solveSeconds = seconds(since: solving)
        sink.progress(0.65, "extracting the surface")
        let extracting = DispatchTime.now().uptimeNanoseconds
        var raw = IsoSurface.extract(grid)
        let extractedTriangles = raw.triangles.count
        let cleaning = raw.clean(minimumComponentShare: inputs.masking ? 0.1 : 0.01)
        guard !raw.triangles.isEmpty else {
            throw TaskError.failed(message: "the point cloud gives no surface; take photos with more overlap and "
                                   + "texture and compute again", retryable: false, image: nil)
        }
        raw.computeNormals()
        let extractSeconds = seconds(since: extracting)
        if sink.shouldStop { throw TaskError.cancelled }
        sink.progress(0.75, "writing the undecimated mesh")
        try ensureWorkDirectory("mesh", in: workDirectory)
        try write(raw.plyBytes(), "mesh-raw.ply")
        sink.progress(0.8, "decimating to \(inputs.maximumPolygons) polygons")
        let decimating = DispatchTime.now().uptimeNanoseconds
        var (mesh, paired) = decimated(raw, grid: grid)
        mesh.computeNormals()
        let decimateSeconds = seconds(since: decimating)
        if sink.shouldStop { throw TaskError.cancelled }
        sink.progress(0.95, "writing the mesh")
        try write(mesh.plyBytes(), "mesh.ply")
        let rawTopology = raw.topology, topology = mesh.topology
        let total = seconds(since: started)
        var document: [String: Any] = [
            "points": cloud.count, "samples": solve.samples, "resolution": options.resolution,
            "isoValue": Double(grid.isoValue),
            "solve": solve.levels.map { ["resolution": $0.resolution, "nodes": $0.nodes, "iterations": $0.iterations,
                                         "relativeResidual": $0.relativeResidual] },
            "extractedTriangles": extractedTriangles,
            "cleaning": ["degenerateTriangles": cleaning.degenerateTriangles,
                         "nonManifoldTriangles": cleaning.nonManifoldTriangles,
                         "removedComponents": cleaning.removedComponents,
                         "removedComponentTriangles": cleaning.removedComponentTriangles,
                         "keptComponents": cleaning.keptComponents, "filledHoles": cleaning.filledHoles,
                         "openHoles": cleaning.openHoles, "flipped": cleaning.flipped],
            "raw": ["vertices": raw.positions.count, "triangles": raw.triangles.count,
                    "boundaryEdges": rawTopology.boundaryEdges, "nonManifoldEdges": rawTopology.nonManifoldEdges,
                    "watertight": rawTopology.isWatertight],
            "mesh": ["vertices": mesh.positions.count, "triangles": mesh.triangles.count, "quads": mesh.quads.count,
                     "polygons": mesh.polygonCount, "maximumPolygons": inputs.maximumPolygons,
                     "primitive": inputs.primitive.rawValue, "boundaryEdges": topology.boundaryEdges,
                     "nonManifoldEdges": topology.nonManifoldEdges, "watertight": topology.isWatertight],
            "secondsByStep": ["solve": solveSeconds, "extraction": extractSeconds, "decimation": decimateSeconds,
                              "total": total],
        ]
        if let paired { document["pairedTriangleShare"] = paired }
        try write(statisticsBytes(document), "mesh/statistics.json")
        sink.progress(1, "done")
        return TaskOutcome(outputs: Self.outputs, data: [
            "polygons": .number(Double(mesh.polygonCount)), "triangles": .number(Double(mesh.triangles.count)),
            "quads": .number(Double(mesh.quads.count)), "rawTriangles": .number(Double(raw.triangles.count)),
            "resolution": .number(Double(options.resolution)), "watertight": .bool(topology.isWatertight),
            "seconds": .number(total), "peakResidentBytes": .number(peakResidentBytes()),
        ])
    }

    /// The mesh within the budget: triangles decimated to just under it, or quads from triangles decimated so
    /// that, once paired and split, they come to just under it. Also the share of triangles paired, for quads.
    private func decimated(_ raw: SurfaceMesh, grid: ImplicitGrid) -> (SurfaceMesh, Double?) {
        let budget = inputs.maximumPolygons
        // 2 % under the ceiling: the simplifier stops at or a little under its target.
        let goal = max(4, budget - budget / 50)
        guard inputs.primitive == .quad else {
            guard raw.triangles.count > budget else { return (raw, nil) }
            return (repaired(raw.simplified(toTriangles: goal, ceiling: budget)), nil)
        }
        // Each pair becomes 4 quads and each leftover triangle 3: about 2.2 quads a triangle at 85 % paired.
        var target = max(2, Int(Double(goal) / 2.2))
        var best: (SurfaceMesh, Double)?
        for _ in 0..<4 {
            let triangles = repaired(raw.simplified(toTriangles: target))
            let (quads, share) = triangles.quadrangulated(onto: grid)
            if quads.polygonCount <= budget, quads.polygonCount > best?.0.polygonCount ?? -1 { best = (quads, share) }
            let count = quads.polygonCount
            // Close enough, or the surface has no more detail to give.
            if count <= budget, count >= goal * 97 / 100 || triangles.triangles.count < target { break }
            target = max(2, Int(Double(target) * Double(goal) / Double(max(1, count))))
        }
        if let best { return (best.0, best.1) }
        // A budget too small for the split quads: triangles, within it.
        return (repaired(raw.simplified(toTriangles: goal, ceiling: budget)), nil)
    }

    /// Decimation can fold a few faces onto each other; those are removed and the holes they leave closed.
    private func repaired(_ mesh: SurfaceMesh) -> SurfaceMesh {
        var mesh = mesh
        _ = mesh.clean(minimumComponentShare: inputs.masking ? 0.1 : 0.01, maximumHoleEdges: 100)
        return mesh
    }

    private func readCloud() throws(TaskError) -> OrientedPointCloud {
        let path = workDirectory + "/dense.ply"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TaskError.failed(message: "there is no point cloud (work/dense.ply); compute again",
                                   retryable: false, image: nil)
        }
        do {
            return try OrientedPointCloud(plyBytes: Array(data))
        } catch {
            throw TaskError.failed(message: "the point cloud (work/dense.ply) is damaged: \(error.reason); "
                                   + "compute again", retryable: false, image: nil)
        }
    }

    private func write(_ bytes: [UInt8], _ relative: String) throws(TaskError) {
        try writeWorkFile(bytes, relative, in: workDirectory)
    }
}
