import Foundation
import ReplicaEvaluation
import ReplicaGeometry
import ReplicaImageIO
@testable import ReplicaReconstruction
import XCTest

final class TextureMappingTests: XCTestCase {
    // MARK: - A coloured sphere seen from a ring of cameras

    /// A colour that changes smoothly over the sphere, in 0...1.
    private func colour(at p: Vector3) -> Vector3 {
        Vector3(0.5 + 0.35 * sin(4 * p.x + 1), 0.5 + 0.35 * sin(5 * p.y), 0.5 + 0.35 * cos(3 * p.z + 2 * p.x))
    }

    private func camera(azimuth: Double, elevation: Double) -> PosedImage {
        let centre = Vector3(cos(elevation) * cos(azimuth), sin(elevation), cos(elevation) * sin(azimuth)) * 3.5
        return PosedImage(name: "view", camera: PinholeCamera(width: 256, height: 192, focal: 260),
                          camFromWorld: SyntheticViews.lookingAtOrigin(from: centre))
    }

    private struct Scene {
        var truth: TexturedMesh
        var mesh: SurfaceMesh
        var views: [TextureView]
    }

    /// The sphere rendered unlit from 10 cameras on two rings; `gain` scales each view's brightness, as a camera's
    /// exposure would.
    private func scene(gain: (Int) -> Double = { _ in 1 }) -> Scene {
        let sphere = TriangleMesh.icosphere(subdivisions: 4)
        let truth = TexturedMesh(mesh: sphere, vertexColors: sphere.vertices.map(colour))
        var views: [TextureView] = []
        for index in 0..<10 {
            let view = camera(azimuth: Double(index) * 2 * .pi / 5 + (index >= 5 ? 0.6 : 0),
                              elevation: index >= 5 ? 0.7 : -0.3)
            let rendered = Rasterizer.render(truth, from: view, lighting: nil, background: SIMD3(0, 0, 0)).image
            let scale = gain(index)
            let rgb = rendered.bytes.map { UInt8(min(255, (Double($0) * scale).rounded())) }
            let grey = (0..<(rgb.count / 3)).map { i -> Float in
                let red = 0.299 * Float(rgb[3 * i]), green = 0.587 * Float(rgb[3 * i + 1])
                let blue = 0.114 * Float(rgb[3 * i + 2])
                return (red + green + blue) / 255
            }
            let image = StereoImage(intensity: grey, rgb: rgb, camera: view.camera, camFromWorld: view.camFromWorld)
            views.append(TextureView(name: "view-\(index)", image: image))
        }
        var mesh = SurfaceMesh(positions: sphere.vertices.map { SIMD3<Float>($0) },
                               triangles: sphere.triangles.map { SIMD3<UInt32>(truncatingIfNeeded: $0) })
        mesh.computeNormals()
        return Scene(truth: truth, mesh: mesh, views: views)
    }

    /// The textured result as the evaluation tools render it.
    private func model(_ surface: TexturedSurface, page: [UInt8], side: Int) -> TexturedMesh {
        let mesh = TriangleMesh(vertices: surface.positions.map { Vector3($0) },
                                triangles: surface.triangles.map { SIMD3<Int32>(truncatingIfNeeded: $0) })
        return TexturedMesh(mesh: mesh, textureCoordinates: surface.uvs.map { Vector2($0) },
                            texture: PixelBuffer(width: side, height: side, channels: 3, bytes: page))
    }

    /// PSNR of the result against the truth from a camera between the photos.
    private func heldOutPSNR(_ result: TexturedMesh, _ truth: TexturedMesh) throws -> Double {
        let view = camera(azimuth: 0.9, elevation: 0.2)
        let rendered = Rasterizer.render(result, from: view, lighting: nil)
        let expected = Rasterizer.render(truth, from: view, lighting: nil)
        return try XCTUnwrap(ImageMetrics.psnr(rendered.image, expected.image, mask: rendered.coverage))
    }

    func testTheBakedTextureRendersLikeTheSurfaceFromAHeldOutView() throws {
        let scene = scene()
        let labeling = TextureLabeling.label(scene.mesh, views: scene.views)
        XCTAssertEqual(labeling.unseenCount, 0, "two rings see the whole sphere")
        let atlas = TextureAtlas.build(scene.mesh, labeling: labeling, views: scene.views, pageSize: 512)
        XCTAssertLessThan(atlas.charts.count, 120, "neighbouring faces share views")
        let baker = TextureBaker(mesh: scene.mesh, atlas: atlas, views: scene.views)
        let page = try XCTUnwrap(baker.bake([.diffuse])[.diffuse]?.first)
        XCTAssertGreaterThan(try heldOutPSNR(model(baker.surface, page: page, side: 512), scene.truth), 32)
    }

    func testChartsArePackedInsideThePageWithoutOverlapping() {
        let scene = scene()
        let labeling = TextureLabeling.label(scene.mesh, views: scene.views)
        for side in [256, 1024] {
            let atlas = TextureAtlas.build(scene.mesh, labeling: labeling, views: scene.views, pageSize: side)
            XCTAssertGreaterThan(atlas.scale, 0)
            XCTAssertLessThanOrEqual(atlas.scale, 1)
            var used = [Bool](repeating: false, count: side * side)
            for chart in atlas.charts {
                XCTAssertGreaterThanOrEqual(chart.origin.min(), 0)
                XCTAssertLessThanOrEqual(chart.origin.x + chart.size.x, side)
                XCTAssertLessThanOrEqual(chart.origin.y + chart.size.y, side)
                for y in chart.origin.y..<(chart.origin.y + chart.size.y) {
                    for x in chart.origin.x..<(chart.origin.x + chart.size.x) {
                        XCTAssertFalse(used[y * side + x], "two charts share texel (\(x), \(y))")
                        used[y * side + x] = true
                    }
                }
                // Every vertex's texel lies inside its chart's box, padding excluded.
                for index in chart.vertices.indices {
                    let t = chart.texel(index, padding: atlas.padding)
                    XCTAssertGreaterThanOrEqual(t.x, Float(chart.origin.x + atlas.padding) - 1e-3)
                    XCTAssertLessThanOrEqual(t.x, Float(chart.origin.x + chart.size.x - atlas.padding) + 1e-3)
                }
            }
        }
    }

    func testPagesAreAddedBeforeTheScaleDropsWhenSeveralAreAllowed() throws {
        let scene = scene()
        let labeling = TextureLabeling.label(scene.mesh, views: scene.views)
        let single = TextureAtlas.build(scene.mesh, labeling: labeling, views: scene.views, pageSize: 128)
        XCTAssertEqual(single.pageCount, 1)
        XCTAssertLessThan(single.scale, 1, "one small page shrinks the charts")
        let paged = TextureAtlas.build(scene.mesh, labeling: labeling, views: scene.views, pageSize: 128,
                                       growPages: true, maximumPages: 40)
        XCTAssertGreaterThan(paged.pageCount, 1)
        XCTAssertLessThan(paged.pageCount, 40)
        XCTAssertGreaterThan(paged.scale, 1.5 * single.scale, "more pages keep more of the photos' detail")
        // The widest chart alone caps the scale: it fills a page's side.
        let widest = paged.charts.filter { $0.view >= 0 }.map(\.size).map { $0.max() }.max() ?? 0
        XCTAssertGreaterThan(widest, 120)
        XCTAssertEqual(Set(paged.charts.map(\.page)), Set(0..<paged.pageCount))
        let baker = TextureBaker(mesh: scene.mesh, atlas: paged, views: scene.views)
        let pages = try XCTUnwrap(baker.bake([.diffuse])[.diffuse])
        XCTAssertEqual(pages.count, paged.pageCount)
        XCTAssertTrue(pages.allSatisfy { $0.count == 128 * 128 * 3 })
        XCTAssertEqual(Set(baker.surface.pages.map(Int.init)), Set(0..<paged.pageCount))
    }

    func testSeamLevellingEvensOutViewsOfDifferentExposure() throws {
        let scene = scene { 0.8 + 0.045 * Double($0) }
        let labeling = TextureLabeling.label(scene.mesh, views: scene.views)
        let atlas = TextureAtlas.build(scene.mesh, labeling: labeling, views: scene.views, pageSize: 512)
        let baker = TextureBaker(mesh: scene.mesh, atlas: atlas, views: scene.views)
        XCTAssertGreaterThan(baker.levelling.seamVertices, 20)
        XCTAssertGreaterThan(baker.levelling.meanDifferenceBefore, 4)
        XCTAssertLessThan(baker.levelling.meanDifferenceAfter, baker.levelling.meanDifferenceBefore / 4)
        // Across the seams of the baked page, neighbouring texels of different charts now agree closely.
        let page = try XCTUnwrap(baker.bake([.diffuse])[.diffuse]?.first)
        let result = model(baker.surface, page: page, side: 512)
        let view = camera(azimuth: 0.9, elevation: 0.2)
        let rendered = Rasterizer.render(result, from: view, lighting: nil)
        // No larger a step between neighbouring pixels than the surface's own colours make, give or take.
        let truth = Rasterizer.render(scene.truth, from: view, lighting: nil)
        let own = seamStep(in: truth.image, covered: truth.coverage)
        XCTAssertLessThan(seamStep(in: rendered.image, covered: rendered.coverage), own + 4)
    }

    /// The largest mean colour jump between horizontally neighbouring pixels inside the surface's outline (two
    /// pixels or more from it, where the photos' own edges blend in the background).
    private func seamStep(in image: PixelBuffer, covered: [Bool]) -> Double {
        var worst = 0.0
        let width = image.width
        func inside(_ x: Int, _ y: Int) -> Bool {
            (-2...2).allSatisfy { dy in (-2...2).allSatisfy { dx in covered[(y + dy) * width + x + dx] } }
        }
        for y in 2..<(image.height - 2) {
            for x in 2..<(width - 3) where inside(x, y) && inside(x + 1, y) {
                let a = 3 * (y * image.width + x), b = a + 3
                let step = (0..<3).reduce(0.0) { sum, channel in
                    sum + abs(Double(image.bytes[a + channel]) - Double(image.bytes[b + channel]))
                } / 3
                worst = max(worst, step)
            }
        }
        return worst
    }

    // MARK: - Detail maps

    func testDetailMapsReadTheUndecimatedSurfaceUnderEachTexel() throws {
        let scene = scene()
        let labeling = TextureLabeling.label(scene.mesh, views: scene.views)
        let atlas = TextureAtlas.build(scene.mesh, labeling: labeling, views: scene.views, pageSize: 512)
        let baker = TextureBaker(mesh: scene.mesh, atlas: atlas, views: scene.views)
        // The undecimated surface: the same sphere 1 % larger, so every texel lies 0.01 under it.
        var raw = scene.mesh
        raw.positions = raw.positions.map { $0 * 1.01 }
        var detail = DetailSurface(raw)
        detail.computeAmbientOcclusion(rays: 16, reach: 1)
        XCTAssertEqual(detail.ambientOcclusion.min() ?? 0, 1, accuracy: 1e-6, "nothing shades a convex surface")
        let maps = baker.bake([.normal, .displacement, .ambientOcclusion], detail: detail, displacementScale: 0.04)
        let normal = try XCTUnwrap(maps[.normal]?.first), height = try XCTUnwrap(maps[.displacement]?.first)
        let occlusion = try XCTUnwrap(maps[.ambientOcclusion]?.first)
        // Where a face's centre falls: +0.01 of 0.04 is byte 128 + 127 / 4; the normal is the surface's own,
        // (0, 0, 1) in tangent space.
        var checked = 0
        for t in baker.surface.triangles {
            let centre = (baker.surface.uvs[Int(t.x)] + baker.surface.uvs[Int(t.y)] + baker.surface.uvs[Int(t.z)]) / 3
            let texel = Int(centre.y * 512) * 512 + Int(centre.x * 512)
            guard isInside(texel, t, baker.surface, side: 512) else { continue }
            XCTAssertEqual(Double(height[texel]), 128 + 127 / 4, accuracy: 2)
            XCTAssertEqual(Double(normal[3 * texel + 2]), 255, accuracy: 3)
            XCTAssertEqual(Double(normal[3 * texel]), 128, accuracy: 4)
            XCTAssertEqual(occlusion[texel], 255)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 10)
    }

    /// Whether a texel's centre lies inside triangle `t`, where baking sets it rather than dilation.
    private func isInside(_ texel: Int, _ t: SIMD3<UInt32>, _ surface: TexturedSurface, side: Int) -> Bool {
        let p = SIMD2<Float>(Float(texel % side) + 0.5, Float(texel / side) + 0.5)
        let a = surface.uvs[Int(t.x)] * Float(side), b = surface.uvs[Int(t.y)] * Float(side)
        let c = surface.uvs[Int(t.z)] * Float(side)
        let area = cross2(b - a, c - a)
        guard abs(area) > 1e-6 else { return false }
        // The signed distance from each edge, positive inwards whichever way the triangle winds.
        let inwards: Float = area > 0 ? 1 : -1
        for (u, v) in [(a, b), (b, c), (c, a)] {
            let edge = v - u, length = (edge * edge).sum().squareRoot()
            guard length > 0, inwards * cross2(edge, p - u) / length >= 0.01 else { return false }
        }
        return true
    }

    func testAmbientOcclusionDarkensWhereTheSurfaceFacesItself() {
        // Two squares a fifth of their side apart, facing each other, each a fan around its centre.
        var positions: [SIMD3<Float>] = []
        var triangles: [SIMD3<UInt32>] = []
        for (z, facesUp) in [(Float(0), true), (Float(0.2), false)] {
            let base = UInt32(positions.count)
            positions += [SIMD3(0.5, 0.5, z), SIMD3(0, 0, z), SIMD3(1, 0, z), SIMD3(1, 1, z), SIMD3(0, 1, z)]
            for k in UInt32(0)..<4 {
                let (a, b) = (base + 1 + k, base + 1 + (k + 1) % 4)
                triangles.append(facesUp ? SIMD3(base, a, b) : SIMD3(base, b, a))
            }
        }
        var mesh = SurfaceMesh(positions: positions, triangles: triangles)
        mesh.computeNormals()
        var detail = DetailSurface(mesh)
        detail.computeAmbientOcclusion(rays: 64, reach: 2)
        // The centres see their sky only through the gap at the sides: about a fifth of it.
        XCTAssertLessThan(detail.ambientOcclusion[0], 0.35)
        XCTAssertLessThan(detail.ambientOcclusion[5], 0.35)
        XCTAssertGreaterThan(detail.ambientOcclusion[0], 0.05)
        // Alone, a square sees its whole sky.
        var single = DetailSurface(SurfaceMesh(positions: Array(positions[0..<5]), triangles: Array(triangles[0..<4])))
        single.computeAmbientOcclusion(rays: 64, reach: 2)
        XCTAssertEqual(single.ambientOcclusion[0], 1)
    }

    func testRaysFindTheNearestTriangleAsAnExhaustiveSearchDoes() {
        var generator = SplitMix64Generator(seed: 7)
        let sphere = TriangleMesh.icosphere(subdivisions: 3)
        let positions = sphere.vertices.map { SIMD3<Float>($0 * (1 + 0.1 * generator.unit())) }
        let triangles = sphere.triangles.map { SIMD3<UInt32>(truncatingIfNeeded: $0) }
        let bvh = TriangleBVH(positions: positions, triangles: triangles)
        for _ in 0..<200 {
            let origin = SIMD3<Float>(Float(generator.unit() - 0.5), Float(generator.unit() - 0.5),
                                      Float(generator.unit() - 0.5))
            let direction = normalize(SIMD3<Float>(Float(generator.unit() - 0.5), Float(generator.unit() - 0.5),
                                                   Float(generator.unit() - 0.5)))
            var nearest = Float.infinity
            for t in triangles {
                let a = positions[Int(t.x)], e1 = positions[Int(t.y)] - a, e2 = positions[Int(t.z)] - a
                let p = cross(direction, e2), determinant = dot(e1, p)
                guard abs(determinant) > 1e-12 else { continue }
                let s = origin - a, u = dot(s, p) / determinant
                let q = cross(s, e1), v = dot(direction, q) / determinant, distance = dot(e2, q) / determinant
                if u >= 0, v >= 0, u + v <= 1, distance >= 0 { nearest = Swift.min(nearest, distance) }
            }
            let hit = bvh.nearestHit(origin: origin, direction: direction)
            XCTAssertEqual(hit?.distance ?? .infinity, nearest, accuracy: 1e-5)
            XCTAssertTrue(bvh.hitsAnything(origin: origin, direction: direction, maximum: nearest + 1e-4))
            XCTAssertFalse(bvh.hitsAnything(origin: origin, direction: direction, maximum: nearest * 0.99))
        }
    }

    // MARK: - Files

    func testTheTexturedMeshSurvivesItsPLYFileAndDamageIsRefused() throws {
        let scene = scene()
        let labeling = TextureLabeling.label(scene.mesh, views: scene.views)
        let atlas = TextureAtlas.build(scene.mesh, labeling: labeling, views: scene.views, pageSize: 256)
        let surface = TextureBaker(mesh: scene.mesh, atlas: atlas, views: scene.views).surface
        XCTAssertEqual(surface.polygonCount, scene.mesh.polygonCount)
        XCTAssertTrue(surface.uvs.allSatisfy { $0.min() >= 0 && $0.max() <= 1 })
        XCTAssertTrue(surface.tangents.allSatisfy { abs($0.w) == 1 })
        let bytes = surface.plyBytes()
        XCTAssertEqual(try TexturedSurface(plyBytes: bytes), surface)
        XCTAssertThrowsError(try TexturedSurface(plyBytes: Array(bytes.dropLast(3))))
        XCTAssertThrowsError(try TexturedSurface(plyBytes: scene.mesh.plyBytes()))
    }
}
