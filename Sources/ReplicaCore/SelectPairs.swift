/// Two images to match, by their indices in the job's list of images, the lower first.
public struct ImagePair: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var first: Int
    public var second: Int

    /// The pair of `a` and `b` in either order; they must differ.
    public init(_ a: Int, _ b: Int) {
        precondition(a != b, "an image is not matched with itself")
        (first, second) = a < b ? (a, b) : (b, a)
    }

    public static func < (x: ImagePair, y: ImagePair) -> Bool {
        (x.first, x.second) < (y.first, y.second)
    }

    public var description: String { "\(first)–\(second)" }
}

/// How the photos were taken, for choosing which pairs to match.
public enum PairSelection: Equatable, Sendable {
    /// Every pair: right for small unordered sets, n(n−1)/2 pairs.
    case exhaustive
    /// A walk: each image with its next `window` images, n·window pairs at most. A walk that comes back to an
    /// earlier place needs loop-closure pairs besides, which the job finds by image retrieval.
    case sequential(window: Int)

    /// Throws for a window below 1.
    public func validate() throws {
        if case .sequential(let window) = self {
            guard window >= 1 else { throw PairSelectionError("window must be at least 1 image, not \(window)") }
        }
    }
}

/// A pair selection that makes no sense.
public struct PairSelectionError: Error, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }
}

/// Chooses the pairs of images whose features are matched.
public enum SelectPairs {
    /// The pairs for `imageCount` images in capture order, sorted and without repeats.
    public static func pairs(imageCount: Int, selection: PairSelection) -> [ImagePair] {
        guard imageCount >= 2 else { return [] }
        switch selection {
        case .exhaustive:
            return (0..<imageCount).flatMap { a in ((a + 1)..<imageCount).map { ImagePair(a, $0) } }
        case .sequential(let window):
            return (0..<imageCount).flatMap { a in
                ((a + 1)..<min(imageCount, a + 1 + window)).map { ImagePair(a, $0) }
            }
        }
    }
}
