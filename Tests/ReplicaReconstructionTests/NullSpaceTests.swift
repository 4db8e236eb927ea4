@testable import ReplicaReconstruction
import ReplicaGeometry
import XCTest

/// The small-matrix SVD behind every minimal solver: exact null spaces, least-squares ones, and degeneracy.
final class NullSpaceTests: XCTestCase {
    private var generator = SplitMix64Generator(seed: 11)

    private func randomMatrix(rows: Int, columns: Int) -> [Double] {
        (0..<(rows * columns)).map { _ in generator.unit() * 2 - 1 }
    }

    private func product(_ matrix: [Double], rows: Int, columns: Int, _ vector: [Double]) -> [Double] {
        (0..<rows).map { row in (0..<columns).reduce(0) { $0 + matrix[row * columns + $1] * vector[$1] } }
    }

    private func norm(_ vector: [Double]) -> Double { vector.reduce(0) { $0 + $1 * $1 }.squareRoot() }

    func testAWideSystemGivesAnOrthonormalBasisOfItsNullSpace() throws {
        for (rows, dimension) in [(7, 2), (8, 1), (5, 4)] {
            let matrix = randomMatrix(rows: rows, columns: 9)
            let basis = try XCTUnwrap(DenseLinearAlgebra.nullSpace(matrix, rowCount: rows, columnCount: 9,
                                                                   dimension: dimension))
            XCTAssertEqual(basis.count, dimension)
            for (i, vector) in basis.enumerated() {
                XCTAssertEqual(norm(vector), 1, accuracy: 1e-12)
                XCTAssertLessThan(norm(product(matrix, rows: rows, columns: 9, vector)), 1e-12)
                for other in basis[(i + 1)...] {
                    XCTAssertEqual(zip(vector, other).reduce(0) { $0 + $1.0 * $1.1 }, 0, accuracy: 1e-12)
                }
            }
        }
    }

    func testATallSystemGivesItsSmallestRightSingularVector() throws {
        let rows = 300, columns = 9
        var matrix = randomMatrix(rows: rows, columns: columns)
        // Rows nearly orthogonal to a known direction, plus noise: that direction is the least-squares answer.
        let truth = [0.2, -0.4, 0.1, 0.5, 0.3, -0.2, 0.6, 0.1, -0.15]
        let length = norm(truth)
        for row in 0..<rows {
            let projection = (0..<columns).reduce(0) { $0 + matrix[row * columns + $1] * truth[$1] } / (length * length)
            for column in 0..<columns { matrix[row * columns + column] -= 0.999 * projection * truth[column] }
        }
        let vector = try XCTUnwrap(DenseLinearAlgebra.nullSpace(matrix, rowCount: rows, columnCount: columns,
                                                                dimension: 1)?.first)
        let alignment = abs(zip(vector, truth).reduce(0) { $0 + $1.0 * $1.1 }) / length
        XCTAssertEqual(alignment, 1, accuracy: 1e-6)
        // It is an eigenvector of AᵀA: no unit vector nearby does better.
        let best = norm(product(matrix, rows: rows, columns: columns, vector))
        for _ in 0..<200 {
            var other = vector.map { $0 + 1e-3 * (generator.unit() - 0.5) }
            let scale = norm(other)
            other = other.map { $0 / scale }
            XCTAssertGreaterThanOrEqual(norm(product(matrix, rows: rows, columns: columns, other)), best * (1 - 1e-12))
        }
    }

    func testARankDeficientSystemIsRefused() {
        // Two copies of the same four rows: rank 4, so a one-dimensional null space is not determined.
        let half = randomMatrix(rows: 4, columns: 9)
        XCTAssertNil(DenseLinearAlgebra.nullSpace(half + half, rowCount: 8, columnCount: 9, dimension: 1))
        XCTAssertNil(DenseLinearAlgebra.nullSpace([Double](repeating: 0, count: 72), rowCount: 8, columnCount: 9,
                                                  dimension: 1))
    }
}
