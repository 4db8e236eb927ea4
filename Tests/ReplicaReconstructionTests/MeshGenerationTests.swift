import Foundation
import ReplicaGeometry
import ReplicaReconstruction
import XCTest

/// Mesh Generation's pieces on shapes whose surface is known: the screened Poisson solve and its trimming,
/// marching cubes on any field, cleaning, decimation, quads, and the mesh file. The stage on a reconstructed
/// cloud is in `ImageAlignmentTests` and the benchmark.
final class MeshGenerationTests: XCTestCase {
    /// Points spread evenly over a sphere, with outward normals.
    private func sphereCloud(count: Int, radius: Float = 1, centre: SIMD3<Float> = .zero) -> OrientedPointCloud {
        var cloud = OrientedPointCloud()
        let golden = Float.pi * (3 - Float(5).squareRoot())
        for index in 0..<count {
            let y = 1 - 2 * (Float(index) + 0.5) / Float(count)
            let ring = (1 - y * y).squareRoot(), angle = golden * Float(index)
            let normal = SIMD3(ring * cos(angle), y, ring * sin(angle))
            cloud.append(position: centre + radius * normal, normal: normal, color: SIMD3(128, 128, 128))
        }
        return cloud
    }

    /// A geometry mesh as a surface mesh, wound as it is or turned over.
    private func surface(of mesh: TriangleMesh, turnedOver: Bool = false) -> SurfaceMesh {
        SurfaceMesh(positions: mesh.vertices.map { SIMD3<Float>($0) }, triangles: mesh.triangles.map { t in
            let corners = SIMD3<UInt32>(UInt32(t.x), UInt32(t.y), UInt32(t.z))
            return turnedOver ? SIMD3(corners.x, corners.z, corners.y) : corners
        })
    }

    private func meshOf(_ cloud: OrientedPointCloud, resolution: Int, supportRadius: Int = 2)
        -> (SurfaceMesh, ImplicitGrid) {
        var options = PoissonOptions()
        options.resolution = resolution
        options.supportRadius = supportRadius
        let (grid, _) = PoissonSurface.indicator(of: cloud, options: options)!
        return (IsoSurface.extract(grid), grid)
    }

    func testScreenedPoissonClosesASphereThroughItsPoints() throws {
        let (extracted, grid) = meshOf(sphereCloud(count: 20_000), resolution: 64)
        var mesh = extracted
        let report = mesh.clean()
        XCTAssertTrue(mesh.topology.isWatertight, "\(mesh.topology)")
        XCTAssertFalse(report.flipped, "marching cubes winds outwards already")
        XCTAssertEqual(report.keptComponents, 1)
        let ball: Double = 4.0 / 3.0 * Double.pi
        XCTAssertEqual(mesh.signedVolume, ball, accuracy: 0.03 * ball)
        // Within a fifth of a cell of the sphere everywhere, the cell being 2.3 / 64.
        let worst = mesh.positions.map { abs(($0 * $0).sum().squareRoot() - 1) }.max()!
        XCTAssertLessThan(worst, 0.2 * grid.spacing)
        XCTAssertGreaterThan(grid.value(at: .zero), grid.isoValue, "the indicator is greater inside")
        XCTAssertLessThan(grid.value(at: SIMD3(1.1, 0, 0)), grid.isoValue)
        XCTAssertEqual(grid.value(at: SIMD3(10, 0, 0)), 0, "0 outside the grid")
        let projected = grid.projected(SIMD3(0.95, 0.1, 0))
        XCTAssertEqual((projected * projected).sum().squareRoot(), 1, accuracy: 0.2 * grid.spacing)
    }

    func testTheSurfaceIsTrimmedWhereNoPointSupportsIt() throws {
        // A disc of points, open: the solve closes it into a lens, and trimming takes off what is far from it.
        var cloud = OrientedPointCloud()
        for i in 0..<200 {
            for j in 0..<200 {
                let p = SIMD3<Float>(Float(i) / 99.5 - 1, Float(j) / 99.5 - 1, 0)
                if (p * p).sum() <= 1 { cloud.append(position: p, normal: SIMD3(0, 0, 1), color: .zero) }
            }
        }
        let (mesh, grid) = meshOf(cloud, resolution: 48)
        XCTAssertFalse(mesh.positions.isEmpty)
        XCTAssertGreaterThan(mesh.topology.boundaryEdges, 0, "an open disc stays open")
        let points = KDTree(points: cloud.positions.map { Vector3(Double($0.x), Double($0.y), Double($0.z)) })
        let farthest = mesh.positions.map {
            points.nearest(to: Vector3(Double($0.x), Double($0.y), Double($0.z)))!.distance
        }.max()!
        // Kept cells lie within 2 cells of a point's cell: at most 3 cells, corner to corner, from the point.
        XCTAssertLessThan(farthest, Double(3 * 3.0.squareRoot() * Double(grid.spacing)))
    }

    func testMarchingCubesOfAnyFieldIsClosedAndWindsOutwards() {
        // Noise: every ambiguous face and cell there is, in some cell. Zero at the boundary closes the surface.
        var generator = SplitMix64Generator(seed: 7)
        let n = 14
        var values = [Float](repeating: 0, count: n * n * n)
        for k in 1..<(n - 1) { for j in 1..<(n - 1) { for i in 1..<(n - 1) {
            values[i + n * (j + n * k)] = Float.random(in: 0...1, using: &generator)
        } } }
        var grid = ImplicitGrid(origin: .zero, spacing: 1, nodes: SIMD3(n, n, n), values: values)
        grid.isoValue = 0.5
        let mesh = IsoSurface.extract(grid)
        XCTAssertGreaterThan(mesh.triangles.count, 1000)
        let topology = mesh.topology
        XCTAssertEqual(topology.boundaryEdges, 0)
        XCTAssertEqual(topology.nonManifoldEdges, 0)
        XCTAssertEqual(topology.misorientedEdges, 0)
        XCTAssertGreaterThan(mesh.signedVolume, 0, "faces wind counter-clockwise seen from outside")
    }

    func testCleaningDropsStraysFillsSmallHolesAndTurnsFacesOut() {
        let sphere = TriangleMesh.icosphere(subdivisions: 4)
        var mesh = surface(of: sphere, turnedOver: true)
        // A hole: the faces around vertex 0. A stray: a small tetrahedron apart.
        mesh.triangles.removeAll { $0.x == 0 || $0.y == 0 || $0.z == 0 }
        let base = UInt32(mesh.positions.count)
        mesh.positions += [SIMD3(3, 0, 0), SIMD3(3.1, 0, 0), SIMD3(3, 0.1, 0), SIMD3(3, 0, 0.1)]
        mesh.triangles += [SIMD3(base, base + 2, base + 1), SIMD3(base, base + 1, base + 3),
                           SIMD3(base, base + 3, base + 2), SIMD3(base + 1, base + 2, base + 3)]
        mesh.triangles.append(SIMD3(5, 5, 6))
        // A fold: one face turned over, so it and its neighbour run along their shared edge the same way.
        // Far from vertex 0's hole (vertex 0 is at y 0.85), so the two holes stay apart.
        let turned = mesh.triangles.firstIndex { [$0.x, $0.y, $0.z].allSatisfy { mesh.positions[Int($0)].y < -0.5 } }!
        let t = mesh.triangles[turned]
        mesh.triangles[turned] = SIMD3(t.x, t.z, t.y)
        XCTAssertGreaterThan(mesh.topology.misorientedEdges, 0)
        let report = mesh.clean(minimumComponentShare: 0.01, maximumHoleEdges: 10)
        XCTAssertEqual(report.degenerateTriangles, 1)
        XCTAssertEqual(report.removedComponents, 1)
        XCTAssertEqual(report.filledHoles, 2, "the hole made, and the one the fold leaves")
        XCTAssertEqual(report.openHoles, 0)
        XCTAssertTrue(report.flipped)
        XCTAssertTrue(mesh.topology.isWatertight)
        XCTAssertGreaterThan(mesh.signedVolume, 4)
        XCTAssertFalse(mesh.positions.contains(SIMD3(3, 0, 0)), "the stray's vertices are gone too")

        // A hole larger than the limit stays open.
        var open = surface(of: sphere)
        open.triangles.removeAll { t in [t.x, t.y, t.z].contains { open.positions[Int($0)].y > 0.8 } }
        let openReport = open.clean(maximumHoleEdges: 10)
        XCTAssertEqual(openReport.openHoles, 1)
        XCTAssertGreaterThan(open.topology.boundaryEdges, 10)
    }

    func testDecimationMeetsTheBudgetAndKeepsTheSurface() {
        let sphere = TriangleMesh.icosphere(subdivisions: 5)
        let mesh = surface(of: sphere)
        XCTAssertEqual(mesh.triangles.count, 20_480)
        let small = mesh.simplified(toTriangles: 2000, ceiling: 2000)
        XCTAssertLessThanOrEqual(small.triangles.count, 2000)
        XCTAssertGreaterThan(small.triangles.count, 1900)
        XCTAssertTrue(small.topology.isWatertight)
        XCTAssertTrue(small.positions.allSatisfy { abs(($0 * $0).sum().squareRoot() - 1) < 1e-5 },
                      "collapses keep the mesh's own vertices")
        XCTAssertEqual(small.signedVolume, mesh.signedVolume, accuracy: 0.02 * mesh.signedVolume)
        XCTAssertEqual(mesh.simplified(toTriangles: 30_000), mesh, "nothing to do under the target")
    }

    func testQuadsAreWellShapedAndCountedAsPolygons() {
        let sphere = TriangleMesh.icosphere(subdivisions: 3)
        let mesh = surface(of: sphere)
        let (quads, paired) = mesh.quadrangulated()
        XCTAssertTrue(quads.triangles.isEmpty)
        XCTAssertGreaterThan(paired, 0.8)
        let pairs = Int((paired * Double(mesh.triangles.count) / 2).rounded())
        XCTAssertEqual(quads.quads.count, 4 * pairs + 3 * (mesh.triangles.count - 2 * pairs))
        XCTAssertTrue(quads.topology.isWatertight, "\(quads.topology)")
        XCTAssertGreaterThan(quads.signedVolume, 0)
        // Every corner between 45° and 150°: no slivers and no folded quads.
        for q in quads.quads {
            let p = [q.x, q.y, q.z, q.w].map { quads.positions[Int($0)] }
            for corner in 0..<4 {
                let u = p[(corner + 1) % 4] - p[corner], v = p[(corner + 3) % 4] - p[corner]
                let angle = acos((u * v).sum() / ((u * u).sum() * (v * v).sum()).squareRoot()) * 180 / .pi
                XCTAssertTrue((45...150).contains(angle), "a corner of \(angle)°")
            }
        }
        // Projected onto a field, the new vertices lie on its level set.
        let (_, grid) = meshOf(sphereCloud(count: 5000), resolution: 32)
        let (onSphere, _) = mesh.quadrangulated(onto: grid)
        let worst = onSphere.positions.map { abs(($0 * $0).sum().squareRoot() - 1) }.max()!
        XCTAssertLessThan(worst, 0.3 * grid.spacing)
    }

    func testMeshAndCloudFilesRoundTripAndRefuseDamage() throws {
        var mesh = SurfaceMesh(positions: [SIMD3(0, 0, 0), SIMD3(1, 0, 0), SIMD3(1, 1, 0), SIMD3(0, 1, 0),
                                           SIMD3(0.5, 0.5, 1)],
                               triangles: [SIMD3(0, 1, 4), SIMD3(1, 2, 4), SIMD3(2, 3, 4), SIMD3(3, 0, 4)],
                               quads: [SIMD4(0, 3, 2, 1)])
        XCTAssertEqual(try SurfaceMesh(plyBytes: mesh.plyBytes()), mesh, "without normals")
        mesh.computeNormals()
        XCTAssertEqual(mesh.normals[4], SIMD3(0, 0, 1))
        XCTAssertTrue(mesh.topology.isWatertight)
        let bytes = mesh.plyBytes()
        XCTAssertEqual(try SurfaceMesh(plyBytes: bytes), mesh, "with normals")
        XCTAssertThrowsError(try SurfaceMesh(plyBytes: Array(bytes.dropLast(3))))
        XCTAssertThrowsError(try SurfaceMesh(plyBytes: bytes + [0]))
        var pointing = bytes
        pointing[pointing.count - 4] = 9 // the last quad's last corner: vertex 9 of 5
        XCTAssertThrowsError(try SurfaceMesh(plyBytes: pointing)) { error in
            XCTAssertTrue("\(error)".contains("past the 5"), "\(error)")
        }
        XCTAssertThrowsError(try SurfaceMesh(plyBytes: Array("ply\nformat ascii 1.0\nend_header\n".utf8)))

        let cloud = sphereCloud(count: 10)
        XCTAssertEqual(try OrientedPointCloud(plyBytes: cloud.plyBytes()), cloud)
        XCTAssertThrowsError(try OrientedPointCloud(plyBytes: Array(cloud.plyBytes().dropLast())))
        XCTAssertThrowsError(try OrientedPointCloud(plyBytes: mesh.plyBytes()), "a mesh is not a cloud")
    }
}
