import CVLFeatKernels
import Foundation
import XCTest

/// Our column convolution, which VLFeat's SIFT smooths its scale space with, against libvl's own on the cases
/// SIFT uses and a few it does not, and the proof that libvl's calls land on ours.
final class ColumnConvolutionTests: XCTestCase {
    private typealias LibraryConvolution = @convention(c) (
        UnsafeMutablePointer<Float>?, UInt64, UnsafePointer<Float>?, UInt64, UInt64, UInt64,
        UnsafePointer<Float>?, Int64, Int64, Int32, UInt32) -> Void

    /// VLFeat's flags: pad by continuity (1) and transpose (4).
    private static let padByContinuity: UInt32 = 1, transpose: UInt32 = 4

    /// libvl's `vl_imconvcol_vf` itself, from the library's own symbol table rather than the process's.
    private func libraryConvolution() throws -> LibraryConvolution {
        let handle = try XCTUnwrap(dlopen("libvl.so.1", RTLD_NOW | RTLD_NOLOAD) ?? dlopen("libvl.so", RTLD_NOW))
        let symbol = try XCTUnwrap(dlsym(handle, "vl_imconvcol_vf"))
        return unsafeBitCast(symbol, to: LibraryConvolution.self)
    }

    func testAgreesWithVLFeatOnEveryShapeSIFTUses() throws {
        let library = try libraryConvolution()
        var generator = SystemRandomNumberGenerator()
        // (width, height, source stride, half width of the kernel, step): SIFT's are step 1 with a Gaussian of
        // 4σ on either side; the others check the edges, a wider stride and subsampling.
        let shapes = [(64, 48, 64, 4, 1), (37, 29, 40, 6, 1), (200, 150, 200, 12, 1), (5, 3, 5, 8, 1),
                      (31, 17, 31, 3, 2), (1, 9, 1, 2, 1), (9, 1, 9, 2, 3)]
        for (width, height, stride, half, step) in shapes {
            let source = (0..<(stride * height)).map { _ in Float.random(in: 0...1, using: &generator) }
            let filter = (0..<(2 * half + 1)).map { _ in Float.random(in: 0...1, using: &generator) }
            let rows = (height - 1) / step + 1
            for flags in [Self.padByContinuity | Self.transpose, Self.padByContinuity, Self.transpose, 0] {
                let transposed = flags & Self.transpose != 0
                let destinationStride = transposed ? rows + 3 : width + 2
                let count = destinationStride * (transposed ? width : rows)
                var theirs = [Float](repeating: -7, count: count), ours = theirs
                library(&theirs, UInt64(destinationStride), source, UInt64(width), UInt64(height), UInt64(stride),
                        filter, Int64(-half), Int64(half), Int32(step), flags)
                replica_convolve_columns(&ours, destinationStride, source, width, height, stride, filter,
                                         -half, half, step, flags & Self.padByContinuity != 0 ? 1 : 0,
                                         transposed ? 1 : 0)
                for index in 0..<count where abs(theirs[index] - ours[index]) > 1e-5 * max(1, abs(theirs[index])) {
                    return XCTFail("\(width)×\(height) stride \(stride), kernel \(2 * half + 1), step \(step), "
                                   + "flags \(flags): [\(index)] is \(ours[index]), VLFeat says \(theirs[index])")
                }
            }
        }
    }

    func testAnAsymmetricKernelRunsTheRightWayRound() {
        // Taps at offsets 0 and 1 with weights 1 and 10: out(y) = source(y) + 10 · source(y − 1), the first row
        // reading the edge row again.
        let source: [Float] = [1, 2, 3, 4]
        var out = [Float](repeating: 0, count: 4)
        replica_convolve_columns(&out, 1, source, 1, 4, 1, [1, 10], 0, 1, 1, 1, 0)
        XCTAssertEqual(out, [11, 12, 23, 34])
        replica_convolve_columns(&out, 1, source, 1, 4, 1, [1, 10], 0, 1, 1, 0, 0)
        XCTAssertEqual(out, [1, 12, 23, 34])
    }

    func testLibVLsOwnCallsBindToOurs() throws {
        // The process's definition of the name is the one libvl's procedure linkage table binds to: it must be
        // ours, not the library's (the only other definition), or SIFT silently smooths at the old speed.
        let resolved = try XCTUnwrap(dlsym(UnsafeMutableRawPointer(bitPattern: 0), "vl_imconvcol_vf"))
        let library = try libraryConvolution()
        XCTAssertNotEqual(unsafeBitCast(library, to: UnsafeMutableRawPointer.self), resolved,
                          "vl_imconvcol_vf resolves to libvl's own: is the executable still exporting ours?")
    }
}
